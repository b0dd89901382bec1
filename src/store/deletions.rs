//! Deletions waiting for an operator: a full scan that found more missing
//! users than the mass-deletion guard allows records them here, by run, and
//! deletes nothing until the run is confirmed (or dismissed).

use super::types::{CustomerId, RunId};
use super::{BeginWrite, Store, StoreError, with_pool};
use crate::domain::VomoUserId;

impl Store {
    /// Records the users a guarded run would delete.
    pub async fn record_pending_deletions(
        &self,
        run: RunId,
        customer: CustomerId,
        ids: &[VomoUserId],
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            for id in ids {
                sqlx::query(
                    "INSERT INTO pending_deletions (run_id, customer_id, vomo_user_id) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, vomo_user_id) DO NOTHING",
                )
                .bind(run)
                .bind(customer)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// The users a guarded run would delete, by id.
    pub async fn pending_deletions(&self, run: RunId) -> Result<Vec<VomoUserId>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT vomo_user_id FROM pending_deletions WHERE run_id = $1 ORDER BY vomo_user_id",
            )
            .bind(run)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Forgets a run's pending deletions (confirmed or dismissed).
    pub async fn clear_pending_deletions(&self, run: RunId) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM pending_deletions WHERE run_id = $1")
                .bind(run)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
