//! Alerts sent, by customer and kind. Every instance watches every customer
//! and sees the same transitions; the one whose claim succeeds sends the
//! alert, so a fleet pages once, and nobody sends that alert again within
//! the cool-down.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, with_pool};

impl Store {
    /// Claims the sending of `kind` for `customer` at `now`, unless it was
    /// sent after `quiet_since`. True for exactly one of racing claimers.
    pub async fn claim_alert(
        &self,
        customer: &str,
        kind: &str,
        now: DateTime<Utc>,
        quiet_since: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO alerts_sent (customer, kind, sent_at) VALUES ($1, $2, $3)
                 ON CONFLICT (customer, kind) DO UPDATE SET sent_at = excluded.sent_at
                 WHERE alerts_sent.sent_at <= $4",
            )
            .bind(customer)
            .bind(kind)
            .bind(now)
            .bind(quiet_since)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done == 1)
    }
}
