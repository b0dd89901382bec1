//! Leases: which process owns a customer's work. One row per customer with
//! owner, heartbeat and expiry. Acquire and renew are single conditional
//! UPDATEs, so two processes can never both hold a live lease: PostgreSQL
//! re-checks the condition under the row lock, and SQLite has one writer.
//! Bulk claims on PostgreSQL skip rows another claimer has locked
//! (`FOR UPDATE SKIP LOCKED`), so racing instances split the customers
//! instead of queueing on each other. Times come from the caller's clock.

use chrono::{DateTime, Utc};

use super::types::{AuditEntry, CustomerId};
use super::{Backend, BeginWrite, Store, StoreError, insert_audit, with_pool};
use crate::domain::epoch;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub customer_id: CustomerId,
    pub owner: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Takes the lease of `customer` for `owner` until `expires_at` when it
    /// is free, expired, or already `owner`'s. True when `owner` holds it.
    pub async fn acquire_lease(
        &self,
        customer: CustomerId,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE leases SET acquired_at = CASE WHEN owner = $1 THEN acquired_at ELSE $2 END,
                   owner = $1, heartbeat_at = $2, expires_at = $3
                 WHERE customer_id = $4 AND (owner IS NULL OR owner = $1 OR expires_at < $2)",
            )
            .bind(owner)
            .bind(now)
            .bind(expires_at)
            .bind(customer)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done == 1)
    }

    /// Extends every lease `owner` holds, in one statement; returns the
    /// customers it still holds (any other was taken over: stop it at once).
    pub async fn renew_leases(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<CustomerId>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "UPDATE leases SET heartbeat_at = $1, expires_at = $2 WHERE owner = $3 RETURNING customer_id",
            )
            .bind(now)
            .bind(expires_at)
            .bind(owner)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Takes `customer`'s lease from `from` (a process known to be gone)
    /// for `owner`, with an audit entry, in one transaction. False when
    /// `from` no longer holds it (someone else was quicker).
    pub async fn take_over_lease(
        &self,
        customer: CustomerId,
        from: &str,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            let taken = sqlx::query(
                "UPDATE leases SET owner = $1, acquired_at = $2, heartbeat_at = $2, expires_at = $3
                 WHERE customer_id = $4 AND owner = $5",
            )
            .bind(owner)
            .bind(now)
            .bind(expires_at)
            .bind(customer)
            .bind(from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken == 1 {
                insert_audit!(tx, audit)?;
            }
            tx.commit().await.map(|()| taken == 1)
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// Gives a lease back so another process can take it at once.
    pub async fn release_lease(&self, customer: CustomerId, owner: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE leases SET owner = NULL, expires_at = $1 WHERE customer_id = $2 AND owner = $3",
            )
            .bind(epoch())
            .bind(customer)
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Claims up to `limit` free or expired leases of customers that are not
    /// offboarded; returns the customers now owned by `owner`.
    pub async fn claim_customers(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<CustomerId>, StoreError> {
        // Both statements are identical but for the row lock PostgreSQL
        // needs and SQLite does not have.
        let sql = match self.backend {
            Backend::Postgres(_) => concat!(
                "UPDATE leases SET owner = $1, acquired_at = $2, heartbeat_at = $2, expires_at = $3 ",
                "WHERE customer_id IN (SELECT l.customer_id FROM leases l JOIN customers c ON c.id = l.customer_id ",
                "WHERE (l.owner IS NULL OR l.expires_at < $2) AND c.status <> 'offboarded' ",
                "ORDER BY l.customer_id LIMIT $4 FOR UPDATE OF l SKIP LOCKED) RETURNING customer_id"
            ),
            Backend::Sqlite(_) => concat!(
                "UPDATE leases SET owner = $1, acquired_at = $2, heartbeat_at = $2, expires_at = $3 ",
                "WHERE customer_id IN (SELECT l.customer_id FROM leases l JOIN customers c ON c.id = l.customer_id ",
                "WHERE (l.owner IS NULL OR l.expires_at < $2) AND c.status <> 'offboarded' ",
                "ORDER BY l.customer_id LIMIT $4) RETURNING customer_id"
            ),
        };
        let mut claimed: Vec<CustomerId> = with_pool!(self, |pool| {
            sqlx::query_scalar(sql).bind(owner).bind(now).bind(expires_at).bind(limit).fetch_all(pool).await
        })
        .map_err(|e| self.err(e))?;
        claimed.sort_unstable();
        Ok(claimed)
    }

    /// One customer's lease.
    pub async fn lease(&self, customer: CustomerId) -> Result<Option<Lease>, StoreError> {
        type Row = (i64, Option<String>, Option<DateTime<Utc>>, DateTime<Utc>);
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT customer_id, owner, heartbeat_at, expires_at FROM leases WHERE customer_id = $1",
            )
            .bind(customer)
            .fetch_optional(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(row.map(|(customer_id, owner, heartbeat_at, expires_at)| Lease {
            customer_id,
            owner,
            heartbeat_at,
            expires_at,
        }))
    }

    /// Every lease, by customer.
    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        type Row = (i64, Option<String>, Option<DateTime<Utc>>, DateTime<Utc>);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT customer_id, owner, heartbeat_at, expires_at FROM leases ORDER BY customer_id",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(customer_id, owner, heartbeat_at, expires_at)| Lease {
                customer_id,
                owner,
                heartbeat_at,
                expires_at,
            })
            .collect())
    }
}
