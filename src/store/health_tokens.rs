//! Read-only access tokens of the customer-facing health page: one per
//! customer, stored as a SHA-256 hex hash, so the state DB never holds a
//! usable token (it is shown once, when made).

use chrono::Utc;

use super::types::CustomerId;
use super::{Store, StoreError, with_pool};

impl Store {
    /// Stores the hash of a customer's new health token, replacing any
    /// previous one.
    pub async fn set_health_token(&self, customer: CustomerId, token_hash: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO health_tokens (customer_id, token_hash, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (customer_id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
            )
            .bind(customer)
            .bind(token_hash)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|e| self.err(e))
    }

    /// The name of the customer a health-token hash belongs to.
    pub async fn health_token_owner(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT c.name FROM health_tokens h JOIN customers c ON c.id = h.customer_id WHERE h.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }
}
