//! Bulk reads for status screens: one query per table for all customers, so a
//! snapshot of a thousand customers costs a handful of queries, not
//! thousands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::types::{CustomerId, DlqDepth, Run, TokenInfo};
use super::{Store, StoreError, with_pool};
use crate::domain::Window;

/// Per-customer figures that come from the state DB.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub watermark: Option<DateTime<Utc>>,
    pub in_flight: Option<Window>,
    pub token: Option<TokenInfo>,
    pub dlq: DlqDepth,
    pub last_runs: Vec<Run>,
}

impl Store {
    /// Checkpoint, token, DLQ depth and last run of each kind, by customer.
    pub async fn overview(&self) -> Result<HashMap<CustomerId, Overview>, StoreError> {
        let mut all: HashMap<CustomerId, Overview> = HashMap::new();
        type CheckpointRow = (i64, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let checkpoints: Vec<CheckpointRow> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT customer_id, watermark, window_from, window_to FROM checkpoints WHERE stream = 'users'")
                .fetch_all(pool)
                .await
        })
        .map_err(|e| self.err(e))?;
        for (id, watermark, from, to) in checkpoints {
            let entry = all.entry(id).or_default();
            entry.watermark = Some(watermark);
            entry.in_flight = from.zip(to).and_then(|(f, t)| Window::new(f, t));
        }
        type TokenRow = (i64, String, String, Option<DateTime<Utc>>);
        let tokens: Vec<TokenRow> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT customer_id, fingerprint, state, validated_at FROM tokens")
                .fetch_all(pool)
                .await
        })
        .map_err(|e| self.err(e))?;
        for (id, fingerprint, state, validated_at) in tokens {
            let state = state.parse().map_err(|what| StoreError::Corrupt { what })?;
            all.entry(id).or_default().token = Some(TokenInfo { fingerprint, state, validated_at });
        }
        type DlqRow = (i64, i64, i64, Option<DateTime<Utc>>);
        let dlq: Vec<DlqRow> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT customer_id, COUNT(*), COUNT(CASE WHEN class = 'permanent' THEN 1 END), MIN(created_at)
                 FROM dlq WHERE status = 'pending' GROUP BY customer_id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        for (id, pending, permanent, oldest) in dlq {
            all.entry(id).or_default().dlq = DlqDepth { pending, permanent, oldest };
        }
        for run in self.last_runs_of_everyone().await? {
            all.entry(run.customer_id).or_default().last_runs.push(run);
        }
        Ok(all)
    }

    /// Mapped users not marked deleted, by customer. Scans the mappings, so
    /// callers refresh it less often than the rest.
    pub async fn synced_user_counts(&self) -> Result<HashMap<CustomerId, i64>, StoreError> {
        let rows: Vec<(i64, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT customer_id, COUNT(*) FROM mappings WHERE deleted_at IS NULL GROUP BY customer_id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().collect())
    }
}
