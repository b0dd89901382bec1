//! Customers, their encrypted tokens and their destinations: onboarding in
//! one transaction, lifecycle status, token replacement, and the purge that
//! removes everything of a customer except the audit log.

use chrono::{DateTime, Utc};

use super::types::{
    AuditEntry, Customer, CustomerId, CustomerStatus, DestinationRecord, NewCustomer, NewDestination,
    TokenInfo, TokenState,
};
use super::{BeginWrite, Store, StoreError, from_json, to_json, with_pool};
use crate::domain::{ApiToken, epoch};

/// The only stream today: VOMO users.
pub const USERS_STREAM: &str = "users";

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: i64,
    name: String,
    status: String,
    status_reason: Option<String>,
    vomo_url: String,
    settings: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    offboarded_at: Option<DateTime<Utc>>,
}

impl CustomerRow {
    fn into_customer(self) -> Result<Customer, StoreError> {
        Ok(Customer {
            status: self.status.parse().map_err(|what| StoreError::Corrupt { what })?,
            settings: from_json(&self.settings, "customer settings")?,
            id: self.id,
            name: self.name,
            status_reason: self.status_reason,
            vomo_url: self.vomo_url,
            created_at: self.created_at,
            updated_at: self.updated_at,
            offboarded_at: self.offboarded_at,
        })
    }
}

/// Stores a sealed token as the customer's valid token (replacing any),
/// inside the transaction `$tx` (either backend).
macro_rules! upsert_token {
    ($tx:expr, $customer:expr, $sealed:expr, $fingerprint:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO tokens (customer_id, ciphertext, fingerprint, state, validated_at, created_at)
             VALUES ($1, $2, $3, 'valid', $4, $4)
             ON CONFLICT (customer_id) DO UPDATE SET ciphertext = excluded.ciphertext,
               fingerprint = excluded.fingerprint, state = 'valid', validated_at = excluded.validated_at,
               created_at = excluded.created_at",
        )
        .bind($customer)
        .bind($sealed)
        .bind($fingerprint)
        .bind($now)
        .execute(&mut *$tx)
        .await
    };
}

/// Records the master key's check value with the first secret stored.
macro_rules! record_key_check {
    ($tx:expr, $check:expr) => {
        if let Some(check) = &$check {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(check)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

/// Selects every customer column; `$where` is the rest of the statement.
macro_rules! select_customers {
    ($where:literal) => {
        concat!(
            "SELECT id, name, status, status_reason, vomo_url, settings, created_at, updated_at, offboarded_at ",
            "FROM customers ",
            $where
        )
    };
}

impl Store {
    /// Onboards a customer in one transaction: the customer, its sealed token,
    /// its destinations, a `users` checkpoint at the epoch (so the backfill is
    /// the first window), a free lease row and the audit entry.
    pub async fn add_customer(
        &self,
        new: &NewCustomer<'_>,
        token: &ApiToken,
        destinations: &[NewDestination],
        audit: &AuditEntry,
    ) -> Result<Customer, StoreError> {
        let key = self.key()?;
        let sealed_token = key.seal(new.name, token.expose().as_bytes())?;
        let sealed_secrets: Vec<Option<Vec<u8>>> = destinations
            .iter()
            .map(|d| d.secret.as_ref().map(|s| key.seal(new.name, s.as_bytes())).transpose())
            .collect::<Result<_, _>>()?;
        let key_check = self.key_check_to_record().await?;
        let now = Utc::now();
        let settings = to_json(new.settings);
        let result = with_pool!(self, |pool| {
            async {
            let mut tx = pool.begin_write().await?;
            record_key_check!(tx, key_check);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO customers (name, status, vomo_url, settings, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(new.name)
            .bind(new.status.as_str())
            .bind(new.vomo_url)
            .bind(&settings)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO tokens (customer_id, ciphertext, fingerprint, state, validated_at, created_at)
                 VALUES ($1, $2, $3, 'valid', $4, $4)",
            )
            .bind(id)
            .bind(&sealed_token)
            .bind(token.fingerprint())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (dest, secret) in destinations.iter().zip(&sealed_secrets) {
                sqlx::query(
                    "INSERT INTO destinations (customer_id, name, kind, config, secret, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(&dest.name)
                .bind(&dest.kind)
                .bind(&dest.config)
                .bind(secret.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO checkpoints (customer_id, stream, watermark, updated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(USERS_STREAM)
            .bind(epoch())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO leases (customer_id, expires_at) VALUES ($1, $2)")
                .bind(id)
                .bind(epoch())
                .execute(&mut *tx)
                .await?;
            super::insert_audit!(tx, audit)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(id)
        }
        .await
        });
        let id = result.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict { what: format!("a customer named {:?} already exists", new.name) }
            }
            _ => self.err(e),
        })?;
        self.customer_by_id(id).await?.ok_or_else(|| StoreError::NotFound { what: format!("customer {id}") })
    }

    /// Every customer, offboarded ones included, by name.
    pub async fn customers(&self) -> Result<Vec<Customer>, StoreError> {
        let sql = select_customers!("ORDER BY name");
        let rows: Vec<CustomerRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await).map_err(|e| self.err(e))?;
        rows.into_iter().map(CustomerRow::into_customer).collect()
    }

    pub async fn customer(&self, name: &str) -> Result<Option<Customer>, StoreError> {
        let sql = select_customers!("WHERE name = $1");
        let row: Option<CustomerRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(name).fetch_optional(pool).await)
                .map_err(|e| self.err(e))?;
        row.map(CustomerRow::into_customer).transpose()
    }

    pub async fn customer_by_id(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let sql = select_customers!("WHERE id = $1");
        let row: Option<CustomerRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).bind(id).fetch_optional(pool).await)
                .map_err(|e| self.err(e))?;
        row.map(CustomerRow::into_customer).transpose()
    }

    /// The customer named `name`, or a `NotFound` that says so.
    pub async fn require_customer(&self, name: &str) -> Result<Customer, StoreError> {
        self.customer(name).await?.ok_or_else(|| StoreError::NotFound { what: format!("customer {name:?}") })
    }

    /// Moves a customer to `status` (with a reason shown to operators).
    pub async fn set_customer_status(
        &self,
        id: CustomerId,
        status: CustomerStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let offboarded = (status == CustomerStatus::Offboarded).then_some(now);
        with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE customers SET status = $1, status_reason = $2, updated_at = $3,
                 offboarded_at = CASE WHEN $1 = 'offboarded' THEN $4 ELSE NULL END WHERE id = $5",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(offboarded)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Replaces a customer's settings.
    pub async fn set_customer_settings(
        &self,
        id: CustomerId,
        settings: &crate::domain::CustomerSettings,
    ) -> Result<(), StoreError> {
        let json = to_json(settings);
        with_pool!(self, |pool| {
            sqlx::query("UPDATE customers SET settings = $1, updated_at = $2 WHERE id = $3")
                .bind(&json)
                .bind(Utc::now())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores a new (validated) token for a customer, replacing any old one.
    pub async fn replace_token(&self, customer: &Customer, token: &ApiToken) -> Result<(), StoreError> {
        let sealed = self.key()?.seal(&customer.name, token.expose().as_bytes())?;
        let key_check = self.key_check_to_record().await?;
        let now = Utc::now();
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            record_key_check!(tx, key_check);
            upsert_token!(tx, customer.id, &sealed, token.fingerprint(), now)?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// The customer's token, decrypted; `None` when it has none (offboarded).
    pub async fn load_token(&self, customer: &Customer) -> Result<Option<ApiToken>, StoreError> {
        let sealed: Option<Vec<u8>> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT ciphertext FROM tokens WHERE customer_id = $1")
                .bind(customer.id)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.err(e))?;
        let Some(sealed) = sealed else { return Ok(None) };
        let plain = self
            .key()?
            .open(&customer.name, &sealed)
            .ok_or_else(|| StoreError::Undecryptable { owner: customer.name.clone() })?;
        let text = String::from_utf8(plain)
            .map_err(|_| StoreError::Undecryptable { owner: customer.name.clone() })?;
        Ok(ApiToken::new(&text))
    }

    /// What may be shown about a customer's token.
    pub async fn token_info(&self, id: CustomerId) -> Result<Option<TokenInfo>, StoreError> {
        let row: Option<(String, String, Option<DateTime<Utc>>)> = with_pool!(self, |pool| {
            sqlx::query_as("SELECT fingerprint, state, validated_at FROM tokens WHERE customer_id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.err(e))?;
        row.map(|(fingerprint, state, validated_at)| {
            Ok(TokenInfo {
                fingerprint,
                state: state.parse().map_err(|what| StoreError::Corrupt { what })?,
                validated_at,
            })
        })
        .transpose()
    }

    /// Records what VOMO said about the token (valid, rejected, forbidden).
    pub async fn record_token_state(&self, id: CustomerId, state: TokenState) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("UPDATE tokens SET state = $1, validated_at = $2 WHERE customer_id = $3")
                .bind(state.as_str())
                .bind(Utc::now())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes a customer's token at once (offboarding).
    pub async fn delete_token(&self, id: CustomerId) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("DELETE FROM tokens WHERE customer_id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A customer's destinations in onboarding order, secrets decrypted.
    pub async fn destinations(&self, customer: &Customer) -> Result<Vec<DestinationRecord>, StoreError> {
        type Row = (i64, String, String, String, Option<Vec<u8>>);
        let rows: Vec<Row> = with_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, kind, config, secret FROM destinations WHERE customer_id = $1 ORDER BY id",
            )
            .bind(customer.id)
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|(id, name, kind, config, secret)| {
                let secret = match secret {
                    Some(sealed) => {
                        let plain = self
                            .key()?
                            .open(&customer.name, &sealed)
                            .ok_or_else(|| StoreError::Undecryptable { owner: customer.name.clone() })?;
                        Some(String::from_utf8_lossy(&plain).into_owned())
                    }
                    None => None,
                };
                Ok(DestinationRecord { id, name, kind, config, secret })
            })
            .collect()
    }

    /// Offboards a customer in one transaction: the token is deleted at
    /// once, the status and time recorded, the lease freed, the audit entry
    /// written. Mappings, DLQ and history stay for the retention period.
    pub async fn offboard_customer(&self, customer: &Customer, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = Utc::now();
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM tokens WHERE customer_id = $1").bind(customer.id).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE customers SET status = 'offboarded', status_reason = NULL, offboarded_at = $1, updated_at = $1
                 WHERE id = $2",
            )
            .bind(now)
            .bind(customer.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE leases SET owner = NULL, expires_at = $1 WHERE customer_id = $2")
                .bind(epoch())
                .bind(customer.id)
                .execute(&mut *tx)
                .await?;
            super::insert_audit!(tx, audit)?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// Brings an offboarded customer back with a new token; it resumes from
    /// its checkpoint with `status`.
    pub async fn restore_customer(
        &self,
        customer: &Customer,
        token: &ApiToken,
        status: CustomerStatus,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let sealed = self.key()?.seal(&customer.name, token.expose().as_bytes())?;
        let key_check = self.key_check_to_record().await?;
        let now = Utc::now();
        // One transaction: a crash in between must not leave an offboarded
        // customer with a live token (or a restored one without).
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            record_key_check!(tx, key_check);
            upsert_token!(tx, customer.id, &sealed, token.fingerprint(), now)?;
            sqlx::query(
                "UPDATE customers SET status = $1, status_reason = NULL, offboarded_at = NULL, updated_at = $2
                 WHERE id = $3",
            )
            .bind(status.as_str())
            .bind(now)
            .bind(customer.id)
            .execute(&mut *tx)
            .await?;
            super::insert_audit!(tx, audit)?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }

    /// How many rows each table holds for a customer (what offboarding keeps
    /// and a purge removes). The audit log is counted by customer name.
    pub async fn rows_held(&self, customer: &Customer) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut counts = Vec::new();
        for (table, sql) in [
            ("customers", "SELECT COUNT(*) FROM customers WHERE id = $1"),
            ("tokens", "SELECT COUNT(*) FROM tokens WHERE customer_id = $1"),
            ("destinations", "SELECT COUNT(*) FROM destinations WHERE customer_id = $1"),
            ("checkpoints", "SELECT COUNT(*) FROM checkpoints WHERE customer_id = $1"),
            ("mappings", "SELECT COUNT(*) FROM mappings WHERE customer_id = $1"),
            ("dlq", "SELECT COUNT(*) FROM dlq WHERE customer_id = $1"),
            ("runs", "SELECT COUNT(*) FROM runs WHERE customer_id = $1"),
            ("leases", "SELECT COUNT(*) FROM leases WHERE customer_id = $1"),
            ("pending_deletions", "SELECT COUNT(*) FROM pending_deletions WHERE customer_id = $1"),
            ("health_tokens", "SELECT COUNT(*) FROM health_tokens WHERE customer_id = $1"),
        ] {
            let n: i64 =
                with_pool!(self, |pool| sqlx::query_scalar(sql).bind(customer.id).fetch_one(pool).await)
                    .map_err(|e| self.err(e))?;
            counts.push((table, n));
        }
        let audit: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE customer = $1")
                .bind(&customer.name)
                .fetch_one(pool)
                .await
        })
        .map_err(|e| self.err(e))?;
        counts.push(("audit_log", audit));
        Ok(counts)
    }

    /// Removes every row of a customer except its audit-log lines (which
    /// name it by text and have no foreign key).
    pub async fn purge_customer(&self, id: CustomerId) -> Result<(), StoreError> {
        with_pool!(self, |pool| async {
            let mut tx = pool.begin_write().await?;
            // Children first: correct even where foreign keys are not enforced.
            for statement in [
                "DELETE FROM pending_deletions WHERE customer_id = $1",
                "DELETE FROM leases WHERE customer_id = $1",
                "DELETE FROM runs WHERE customer_id = $1",
                "DELETE FROM dlq WHERE customer_id = $1",
                "DELETE FROM mappings WHERE customer_id = $1",
                "DELETE FROM checkpoints WHERE customer_id = $1",
                "DELETE FROM destinations WHERE customer_id = $1",
                "DELETE FROM tokens WHERE customer_id = $1",
                "DELETE FROM health_tokens WHERE customer_id = $1",
            ] {
                sqlx::query(statement).bind(id).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM customers WHERE id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await
        }
        .await)
        .map_err(|e| self.err(e))
    }
}
