//! Checkpoints and mappings, the hot path of a sync: the mappings of a page
//! of users are looked up in one query, and a page's mappings are written —
//! together with the checkpoint when a window completes — in one transaction.
//! A checkpoint never moves backwards.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::customers::USERS_STREAM;
use super::types::{AuditEntry, Checkpoint, CustomerId, Mapping, MappingWrite};
use super::{Backend, BeginWrite, Store, StoreError, from_json, insert_audit, to_json, with_pool};
use crate::domain::{ContentHash, VomoUserId, Window};

/// Rows per multi-row INSERT: well inside SQLite's bound-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

#[derive(sqlx::FromRow)]
struct MappingRow {
    vomo_user_id: i64,
    email: String,
    content_hash: String,
    vomo_updated_at: DateTime<Utc>,
    external_ids: String,
    first_synced_at: DateTime<Utc>,
    last_synced_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl MappingRow {
    fn into_mapping(self) -> Result<Mapping, StoreError> {
        Ok(Mapping {
            content_hash: ContentHash::from_hex(&self.content_hash).ok_or_else(|| StoreError::Corrupt {
                what: format!("content hash {:?}", self.content_hash),
            })?,
            external_ids: from_json(&self.external_ids, "external ids")?,
            vomo_user_id: self.vomo_user_id,
            email: self.email,
            vomo_updated_at: self.vomo_updated_at,
            first_synced_at: self.first_synced_at,
            last_synced_at: self.last_synced_at,
            deleted_at: self.deleted_at,
        })
    }
}

/// Appends the multi-row upsert of `rows` to a query builder.
macro_rules! push_mapping_upsert {
    ($builder:expr, $customer:expr, $rows:expr) => {{
        $builder.push(
            "INSERT INTO mappings (customer_id, vomo_user_id, email, content_hash, vomo_updated_at,
             external_ids, first_synced_at, last_synced_at, deleted_at) ",
        );
        $builder.push_values($rows, |mut b, m: &MappingWrite| {
            b.push_bind($customer)
                .push_bind(m.vomo_user_id)
                .push_bind(m.email.clone())
                .push_bind(m.content_hash.to_hex())
                .push_bind(m.vomo_updated_at)
                .push_bind(to_json(&m.external_ids))
                .push_bind(m.synced_at)
                .push_bind(m.synced_at)
                .push_bind(m.deleted_at);
        });
        $builder.push(
            " ON CONFLICT (customer_id, vomo_user_id) DO UPDATE SET email = excluded.email,
              content_hash = excluded.content_hash, vomo_updated_at = excluded.vomo_updated_at,
              external_ids = excluded.external_ids, last_synced_at = excluded.last_synced_at,
              deleted_at = excluded.deleted_at",
        );
    }};
}

/// One write per user, the last one given: an upsert statement may not touch
/// a row twice (PostgreSQL refuses), and the last write is the newest.
fn last_write_per_user(mappings: &[MappingWrite]) -> Vec<MappingWrite> {
    let mut seen = std::collections::HashSet::with_capacity(mappings.len());
    let mut unique: Vec<MappingWrite> =
        mappings.iter().rev().filter(|m| seen.insert(m.vomo_user_id)).cloned().collect();
    unique.reverse();
    unique
}

impl Store {
    /// The `users` checkpoint of a customer.
    pub async fn load_checkpoint(&self, customer: CustomerId) -> Result<Checkpoint, StoreError> {
        type Row = (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>);
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT watermark, window_from, window_to, updated_at FROM checkpoints
                 WHERE customer_id = $1 AND stream = $2",
            )
            .bind(customer)
            .bind(USERS_STREAM)
            .fetch_optional(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        let (watermark, from, to, updated_at) =
            row.ok_or_else(|| StoreError::NotFound { what: format!("checkpoint of customer {customer}") })?;
        let in_flight = from.zip(to).and_then(|(from, to)| Window::new(from, to));
        Ok(Checkpoint { watermark, in_flight, updated_at })
    }

    /// Records the window being walked, so an operator (and a restart) can
    /// see it. The watermark does not move.
    pub async fn begin_window(&self, customer: CustomerId, window: Window) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE checkpoints SET window_from = $1, window_to = $2, updated_at = $3
                 WHERE customer_id = $4 AND stream = $5",
            )
            .bind(window.from)
            .bind(window.to)
            .bind(Utc::now())
            .bind(customer)
            .bind(USERS_STREAM)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes a page's mappings and, when `advance_to` is given (the window
    /// is verified and every change acknowledged or parked), moves the
    /// watermark there and clears the in-flight window — all in one
    /// transaction. The watermark never moves backwards.
    ///
    /// With `fence` (the lease owner the caller runs as), the watermark moves
    /// only while that owner still holds the customer's lease; otherwise the
    /// whole transaction is rolled back with [`StoreError::LeaseLost`], so a
    /// process that lost its lease (paused, partitioned) cannot move a
    /// checkpoint another process now owns.
    pub async fn commit_window(
        &self,
        customer: CustomerId,
        mappings: &[MappingWrite],
        advance_to: Option<DateTime<Utc>>,
        fence: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let mappings = last_write_per_user(mappings);
        // On PostgreSQL the lease row is share-locked until commit, so a
        // takeover waits for this commit instead of slipping in after the check.
        let lease_sql = match self.backend {
            Backend::Postgres(_) => {
                "SELECT customer_id FROM leases WHERE customer_id = $1 AND owner = $2 FOR SHARE"
            }
            Backend::Sqlite(_) => "SELECT customer_id FROM leases WHERE customer_id = $1 AND owner = $2",
        };
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            for chunk in mappings.chunks(ROWS_PER_STATEMENT) {
                let mut builder = QueryBuilder::new("");
                push_mapping_upsert!(builder, customer, chunk);
                builder.build().execute(&mut *tx).await?;
            }
            if let Some(to) = advance_to {
                if let Some(owner) = fence {
                    let held: Option<i64> = sqlx::query_scalar(lease_sql)
                            .bind(customer)
                            .bind(owner)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if held.is_none() {
                        return Ok(false);
                    }
                }
                let current: DateTime<Utc> = sqlx::query_scalar(
                    "SELECT watermark FROM checkpoints WHERE customer_id = $1 AND stream = $2",
                )
                .bind(customer)
                .bind(USERS_STREAM)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE checkpoints SET watermark = $1, window_from = NULL, window_to = NULL, updated_at = $2
                     WHERE customer_id = $3 AND stream = $4",
                )
                .bind(current.max(to))
                .bind(now)
                .bind(customer)
                .bind(USERS_STREAM)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await.map(|()| true)
        }
        .await)
        .map_err(|e| self.err(e))
        .and_then(|held| if held { Ok(()) } else { Err(StoreError::LeaseLost { customer }) })
    }

    /// The newest VOMO `updated_at` the customer's mappings hold: the last
    /// version of any user that was read and delivered.
    pub async fn newest_mapped_update(
        &self,
        customer: CustomerId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(vomo_updated_at) FROM mappings WHERE customer_id = $1")
                .bind(customer)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.err(e))
    }

    /// Moves a checkpoint that stands in VOMO's future back to `to`, with
    /// `audit`, in one transaction. The one way a watermark moves backwards:
    /// a checkpoint ahead of VOMO's clock would hide every later edit.
    pub async fn repair_checkpoint(
        &self,
        customer: CustomerId,
        to: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE checkpoints SET watermark = $1, window_from = NULL, window_to = NULL, updated_at = $2
                 WHERE customer_id = $3 AND stream = $4",
            )
            .bind(to)
            .bind(Utc::now())
            .bind(customer)
            .bind(USERS_STREAM)
            .execute(&mut *tx)
            .await?;
            insert_audit!(tx, audit)?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// The mappings of the given users, in one query.
    pub async fn lookup_mappings(
        &self,
        customer: CustomerId,
        ids: &[VomoUserId],
    ) -> Result<HashMap<VomoUserId, Mapping>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<MappingRow> = with_pool!(self, |pool| {
                let mut builder = QueryBuilder::new(
                    "SELECT vomo_user_id, email, content_hash, vomo_updated_at, external_ids, first_synced_at,
                     last_synced_at, deleted_at FROM mappings WHERE customer_id = ",
                );
                builder.push_bind(customer).push(" AND vomo_user_id IN (");
                let mut list = builder.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
                builder.build_query_as().fetch_all(pool).await
            })
            .map_err(|e| self.err(e))?;
            for row in rows {
                let mapping = row.into_mapping()?;
                found.insert(mapping.vomo_user_id, mapping);
            }
        }
        Ok(found)
    }

    /// Ids of the customer's mapped users; with `include_deleted` false, only
    /// those not marked deleted.
    pub async fn mapped_user_ids(
        &self,
        customer: CustomerId,
        include_deleted: bool,
    ) -> Result<Vec<VomoUserId>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT vomo_user_id FROM mappings WHERE customer_id = $1 AND ($2 OR deleted_at IS NULL)
                 ORDER BY vomo_user_id",
            )
            .bind(customer)
            .bind(include_deleted)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Marks users deleted (the mapping stays, so a returning user is an
    /// update, not a create).
    pub async fn mark_deleted(
        &self,
        customer: CustomerId,
        ids: &[VomoUserId],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, |pool| {
                let mut builder = QueryBuilder::new("UPDATE mappings SET deleted_at = ");
                builder.push_bind(at).push(", last_synced_at = ").push_bind(at);
                builder.push(" WHERE customer_id = ").push_bind(customer).push(" AND vomo_user_id IN (");
                let mut list = builder.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
                builder.build().execute(pool).await.map(|r| r.rows_affected())
            })
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// (all mappings, mappings marked deleted) of a customer.
    pub async fn mapping_counts(&self, customer: CustomerId) -> Result<(i64, i64), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*), COUNT(deleted_at) FROM mappings WHERE customer_id = $1")
                .bind(customer)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.err(e))
    }

    /// External ids merged: `update` wins over `base` per destination.
    pub fn merge_external_ids(
        base: Option<&BTreeMap<String, String>>,
        update: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut merged = base.cloned().unwrap_or_default();
        merged.extend(update.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }
}
