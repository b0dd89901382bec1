//! The dead-letter queue: failed changes parked with their full payload, so
//! the checkpoint can move on and nothing is lost. A newer version of a user
//! supersedes an older entry (a retry never writes stale data); the same
//! version parked again refreshes the entry instead of duplicating it.

use chrono::{DateTime, Utc};

use super::types::{AuditEntry, CustomerId, DlqDepth, DlqEntry, DlqId, DlqStatus, FailureClass, NewDlqEntry};
use super::{BeginWrite, Store, StoreError, with_pool};
use crate::domain::{ContentHash, VomoUserId};

#[derive(sqlx::FromRow)]
struct DlqRow {
    id: i64,
    customer_id: i64,
    vomo_user_id: i64,
    destination: String,
    change_kind: String,
    payload: String,
    content_hash: String,
    class: String,
    message: String,
    attempts: i32,
    next_retry_at: Option<DateTime<Utc>>,
    status: String,
    note: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DlqRow {
    fn into_entry(self) -> Result<DlqEntry, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt { what };
        Ok(DlqEntry {
            content_hash: ContentHash::from_hex(&self.content_hash)
                .ok_or_else(|| corrupt(format!("DLQ content hash {:?}", self.content_hash)))?,
            class: self.class.parse().map_err(corrupt)?,
            status: self.status.parse().map_err(corrupt)?,
            id: self.id,
            customer_id: self.customer_id,
            vomo_user_id: self.vomo_user_id,
            destination: self.destination,
            change_kind: self.change_kind,
            payload: self.payload,
            message: self.message,
            attempts: self.attempts,
            next_retry_at: self.next_retry_at,
            note: self.note,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Selects every DLQ column; `$rest` is the rest of the statement.
macro_rules! select_dlq {
    ($rest:literal) => {
        concat!(
            "SELECT id, customer_id, vomo_user_id, destination, change_kind, payload, content_hash, class, ",
            "message, attempts, next_retry_at, status, note, created_at, updated_at FROM dlq ",
            $rest
        )
    };
}

impl Store {
    /// Parks a failed change. Returns the id of the pending entry that now
    /// holds this user's latest version for this destination.
    pub async fn park_in_dlq(&self, customer: CustomerId, entry: &NewDlqEntry) -> Result<DlqId, StoreError> {
        let now = Utc::now();
        let hash = entry.content_hash.to_hex();
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            let pending: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(
                "SELECT id, content_hash, vomo_updated_at FROM dlq
                 WHERE customer_id = $1 AND vomo_user_id = $2 AND destination = $3 AND status = 'pending'",
            )
            .bind(customer)
            .bind(entry.vomo_user_id)
            .bind(&entry.destination)
            .fetch_all(&mut *tx)
            .await?;
            // The same version again: refresh the entry. A newer one already
            // parked: this version is stale, keep the newer.
            if let Some((id, ..)) =
                pending.iter().find(|(_, h, at)| *h == hash || *at > entry.vomo_updated_at)
            {
                sqlx::query(
                    "UPDATE dlq SET class = $1, message = $2, next_retry_at = $3, updated_at = $4
                     WHERE id = $5 AND content_hash = $6",
                )
                .bind(entry.class.as_str())
                .bind(&entry.message)
                .bind(entry.next_retry_at)
                .bind(now)
                .bind(id)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(*id);
            }
            for (id, ..) in &pending {
                sqlx::query("UPDATE dlq SET status = 'superseded', updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO dlq (customer_id, vomo_user_id, destination, change_kind, payload, content_hash,
                   vomo_updated_at, class, message, attempts, next_retry_at, status, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, 'pending', $11, $11) RETURNING id",
            )
            .bind(customer)
            .bind(entry.vomo_user_id)
            .bind(&entry.destination)
            .bind(&entry.change_kind)
            .bind(&entry.payload)
            .bind(&hash)
            .bind(entry.vomo_updated_at)
            .bind(entry.class.as_str())
            .bind(&entry.message)
            .bind(entry.next_retry_at)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(id)
        }
        .await)
        .map_err(|e: sqlx::Error| self.err(e))
    }

    /// A version at `acknowledged_at` or later reached `destination`: pending
    /// entries for older (or the same) versions of that user are superseded.
    pub async fn supersede_dlq(
        &self,
        customer: CustomerId,
        destination: &str,
        user: VomoUserId,
        acknowledged_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE dlq SET status = 'superseded', updated_at = $1
                 WHERE customer_id = $2 AND destination = $3 AND vomo_user_id = $4 AND status = 'pending'
                   AND vomo_updated_at <= $5",
            )
            .bind(Utc::now())
            .bind(customer)
            .bind(destination)
            .bind(user)
            .bind(acknowledged_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(done)
    }

    /// (destination, user) of every pending entry of a customer: the engine
    /// supersedes entries only for these, instead of one query per write.
    pub async fn pending_dlq_keys(
        &self,
        customer: CustomerId,
    ) -> Result<Vec<(String, VomoUserId)>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT destination, vomo_user_id FROM dlq WHERE customer_id = $1 AND status = 'pending'",
            )
            .bind(customer)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// When the next automatic retry of a customer's DLQ is due.
    pub async fn next_dlq_retry_at(&self, customer: CustomerId) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT MIN(next_retry_at) FROM dlq WHERE customer_id = $1 AND status = 'pending' AND class = 'retryable'",
            )
            .bind(customer)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Retryable pending entries whose retry time has come, oldest first.
    pub async fn due_dlq(
        &self,
        customer: CustomerId,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DlqEntry>, StoreError> {
        let sql = select_dlq!(
            "WHERE customer_id = $1 AND status = 'pending' AND class = 'retryable'
             AND next_retry_at <= $2 ORDER BY next_retry_at, id LIMIT $3"
        );
        let rows: Vec<DlqRow> = with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(customer)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(|e| self.err(e))?;
        rows.into_iter().map(DlqRow::into_entry).collect()
    }

    /// Pending entries, of one customer or all, oldest first.
    pub async fn pending_dlq(&self, customer: Option<CustomerId>) -> Result<Vec<DlqEntry>, StoreError> {
        let sql = select_dlq!(
            "WHERE status = 'pending' AND ($1 IS NULL OR customer_id = $1) ORDER BY created_at, id"
        );
        let rows: Vec<DlqRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(customer).fetch_all(pool).await)
                .map_err(|e| self.err(e))?;
        rows.into_iter().map(DlqRow::into_entry).collect()
    }

    pub async fn dlq_entry(&self, id: DlqId) -> Result<Option<DlqEntry>, StoreError> {
        let sql = select_dlq!("WHERE id = $1");
        let row: Option<DlqRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_optional(pool).await)
                .map_err(|e| self.err(e))?;
        row.map(DlqRow::into_entry).transpose()
    }

    /// Another failed attempt: count it and set the next retry (none for a
    /// permanent failure).
    pub async fn record_dlq_failure(
        &self,
        id: DlqId,
        class: FailureClass,
        message: &str,
        next_retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE dlq SET attempts = attempts + 1, class = $1, message = $2, next_retry_at = $3,
                 updated_at = $4 WHERE id = $5",
            )
            .bind(class.as_str())
            .bind(message)
            .bind(next_retry_at)
            .bind(Utc::now())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The entry's change reached its destination.
    pub async fn resolve_dlq(&self, id: DlqId) -> Result<(), StoreError> {
        self.set_dlq_status(id, DlqStatus::Resolved, None).await
    }

    /// An operator gives up on an entry, with a note; audited in the same
    /// transaction.
    pub async fn discard_dlq(&self, id: DlqId, note: &str, audit: &AuditEntry) -> Result<(), StoreError> {
        let changed = with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE dlq SET status = 'discarded', note = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
            )
            .bind(note)
            .bind(Utc::now())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                super::insert_audit!(tx, audit)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        }
        .await)
        .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(StoreError::NotFound { what: format!("pending DLQ entry {id}") });
        }
        Ok(())
    }

    async fn set_dlq_status(
        &self,
        id: DlqId,
        status: DlqStatus,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE dlq SET status = $1, note = COALESCE($2, note), updated_at = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(note)
            .bind(Utc::now())
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Pending entries, permanent ones, and the oldest pending entry's age.
    pub async fn dlq_depth(&self, customer: CustomerId) -> Result<DlqDepth, StoreError> {
        let (pending, permanent, oldest): (i64, i64, Option<DateTime<Utc>>) = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*), COUNT(CASE WHEN class = 'permanent' THEN 1 END), MIN(created_at)
                 FROM dlq WHERE customer_id = $1 AND status = 'pending'",
            )
            .bind(customer)
            .fetch_one(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        Ok(DlqDepth { pending, permanent, oldest })
    }
}
