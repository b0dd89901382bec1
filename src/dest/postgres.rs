//! PostgreSQL destination: one row per VOMO user in a table of the
//! customer's reporting database (`vomo_users` unless `?table=` says
//! otherwise), created if absent. A batch is one multi-row upsert; when the
//! database rejects it for the data of some row, the batch is replayed one
//! statement per change so only the bad rows fail. A deletion keeps the row
//! as a tombstone with the personal fields erased.
//!
//! For write-back, `vomo_sync_written` remembers the values of the fields the
//! customer's system owns as vomo-sync last wrote them: a row whose owned
//! field differs from it was edited by the customer. Such an edit wins over
//! VOMO's value (the upsert keeps it) until it has been written back to VOMO.
//! The table can also be read back, so reconciliation notices rows that were
//! lost or changed here.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::query_builder::Separated;
use sqlx::{Connection, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};

use super::{DestError, Outcome};
use crate::config::redact_url;
use crate::domain::{Change, ChangeKind, FailureClass, User};

/// How long a connection attempt (the first probe and each pool acquire) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one statement may take before the batch is given up as retryable;
/// sqlx has no statement timeout of its own, and a hung server must not stall
/// the engine.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// A reporting database is not ours: a handful of connections is plenty.
const MAX_CONNECTIONS: u32 = 4;
/// 16 binds per row; PostgreSQL allows 65 535 per statement.
const ROWS_PER_STATEMENT: usize = 1000;

/// The column list of every insert, in the order `push_row` binds.
const COLUMNS: &str = "vomo_user_id, first_name, last_name, full_name, email, address, phone, birthday, gender, \
     created_at, updated_at, user_status, membership_status, membership_role, synced_at, deleted_at, \
     vomo_sync_written";
/// Fields a customer's system may own and write back: the ones VOMO's
/// upsert accepts (e-mail is its match key, so it cannot be owned).
pub const WRITABLE: [&str; 5] = ["phone", "first_name", "last_name", "birthday", "gender"];
/// Fields erased when a user is deleted: everything personal, gender included.
const PERSONAL: [&str; 8] =
    ["first_name", "last_name", "full_name", "email", "address", "phone", "birthday", "gender"];
/// Fields a deletion leaves as they were (they identify no one and keep
/// reports of past volunteers meaningful).
const KEPT: [&str; 5] = ["created_at", "updated_at", "user_status", "membership_status", "membership_role"];

/// The table the destination writes: one row per user.
fn create_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            vomo_user_id BIGINT PRIMARY KEY,
            first_name TEXT, last_name TEXT, full_name TEXT, email TEXT, address TEXT, phone TEXT,
            birthday TEXT, gender TEXT,
            created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
            user_status TEXT, membership_status TEXT, membership_role TEXT,
            synced_at TIMESTAMPTZ NOT NULL,
            deleted_at TIMESTAMPTZ,
            vomo_sync_written JSONB NOT NULL DEFAULT '{{}}'
        )"
    )
}

/// "The customer edited `field`": it differs from what vomo-sync last wrote.
fn edited(field: &str) -> String {
    format!(
        "(t.vomo_sync_written ? '{field}' AND t.{field} IS DISTINCT FROM t.vomo_sync_written->>'{field}')"
    )
}

/// The `ON CONFLICT` half of the upsert. A row with `deleted_at` set is a
/// deletion: personal fields take the (NULL) new values, the other fields keep
/// the old ones, and the first deletion time is kept so replays change
/// nothing. A row without `deleted_at` overwrites everything and un-deletes.
fn conflict_clause(owned: &[String]) -> String {
    let mut sets: Vec<String> = PERSONAL
        .iter()
        .map(|c| {
            if owned.iter().any(|o| o == c) {
                // The customer's own edit wins until it is written back.
                format!(
                    "{c} = CASE WHEN EXCLUDED.deleted_at IS NULL AND {} THEN t.{c} ELSE EXCLUDED.{c} END",
                    edited(c)
                )
            } else {
                format!("{c} = EXCLUDED.{c}")
            }
        })
        .collect();
    sets.extend(
        KEPT.iter()
            .map(|c| format!("{c} = CASE WHEN EXCLUDED.deleted_at IS NULL THEN EXCLUDED.{c} ELSE t.{c} END")),
    );
    sets.push("synced_at = EXCLUDED.synced_at".to_owned());
    let written = if owned.is_empty() {
        "EXCLUDED.vomo_sync_written".to_owned()
    } else {
        let pairs: Vec<String> = owned
            .iter()
            .map(|f| {
                format!(
                    "'{f}', CASE WHEN {} THEN t.vomo_sync_written->'{f}' ELSE EXCLUDED.vomo_sync_written->'{f}' END",
                    edited(f)
                )
            })
            .collect();
        format!(
            "CASE WHEN EXCLUDED.deleted_at IS NOT NULL THEN '{{}}'::jsonb ELSE jsonb_build_object({}) END",
            pairs.join(", ")
        )
    };
    sets.push(format!("vomo_sync_written = {written}"));
    sets.push(
        "deleted_at = CASE WHEN EXCLUDED.deleted_at IS NULL THEN NULL \
         ELSE COALESCE(t.deleted_at, EXCLUDED.deleted_at) END"
            .to_owned(),
    );
    format!(" ON CONFLICT (vomo_user_id) DO UPDATE SET {}", sets.join(", "))
}

pub struct PostgresDest {
    pool: PgPool,
    /// `name` or `schema.name`, validated by `valid_table` when the spec was
    /// parsed: plain identifiers only, so it is safe to place in SQL text.
    table: String,
    /// The URL with its password replaced, for messages.
    shown: String,
    upsert_head: String,
    upsert_tail: String,
    /// Fields the customer's system owns (validated against `WRITABLE`).
    owned: Vec<String>,
}

impl PostgresDest {
    /// Connects once directly (so a refused connection or a bad password is
    /// reported at once with its cause, not as a pool timeout), then keeps a
    /// small lazy pool. Does not touch the table.
    pub async fn connect(url: &str, table: &str, owned: &[String]) -> Result<Self, DestError> {
        if let Some(bad) = owned.iter().find(|f| !WRITABLE.contains(&f.as_str())) {
            return Err(DestError::permanent(format!(
                "{bad:?} cannot be written back to VOMO; writable fields: {}",
                WRITABLE.join(", ")
            )));
        }
        let shown = redact_url(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            DestError::permanent(format!(
                "invalid PostgreSQL URL {shown}: {}",
                e.to_string().replace(url, &shown)
            ))
        })?;
        let unreachable = |reason: String| {
            DestError::retryable(format!(
                "cannot reach PostgreSQL at {shown}: {}; check that it is running and the URL, user and password are right",
                reason.replace(url, &shown)
            ))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Err(_) => return Err(unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            upsert_head: format!("INSERT INTO {table} AS t ({COLUMNS}) "),
            upsert_tail: conflict_clause(owned),
            table: table.to_owned(),
            shown,
            owned: owned.to_vec(),
        })
    }

    /// Creates the table if absent and proves we may write it, with an upsert
    /// of a probe row inside a transaction that is rolled back.
    pub async fn check(&self) -> Result<(), DestError> {
        self.create_table().await.map_err(|e| self.error(&e))?;
        let probe = probe_change();
        let mut tx = timed(self.pool.begin()).await.map_err(|e| self.error(&e))?;
        let written = self.upsert(&mut *tx, &[&probe], Utc::now()).await;
        // Rolled back whatever happened: the check must not leave a user.
        let _ = tx.rollback().await;
        written.map_err(|e| self.error(&e))
    }

    /// Writes `changes`; one outcome per change, in order.
    pub async fn apply(&self, changes: &[Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = changes.iter().map(validate).collect();
        let valid: Vec<(usize, &Change)> =
            changes.iter().enumerate().filter(|(i, _)| outcomes[*i].is_ok()).collect();
        for chunk in valid.chunks(ROWS_PER_STATEMENT) {
            let batch: Vec<&Change> = chunk.iter().map(|(_, c)| *c).collect();
            let results = self.apply_batch(&batch, synced_at).await;
            for ((at, _), result) in chunk.iter().zip(results) {
                outcomes[*at] = result;
            }
        }
        outcomes
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Users whose row is missing, deleted, or differs from `users` in a
    /// field vomo-sync owns (the customer's own fields are theirs).
    pub async fn missing_or_different(&self, users: &[&User]) -> Result<Vec<i64>, DestError> {
        let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
        let sql = format!(
            "SELECT vomo_user_id, first_name, last_name, full_name, email, address, phone, birthday, gender, \
             created_at, updated_at, user_status, membership_status, membership_role, deleted_at \
             FROM {} WHERE vomo_user_id = ANY($1)",
            self.table
        );
        let rows = timed(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&ids).fetch_all(&self.pool))
            .await
            .map_err(|e| self.error(&e))?;
        let mut stored: std::collections::HashMap<i64, User> = std::collections::HashMap::new();
        for row in &rows {
            use sqlx::Row;
            let deleted: Option<DateTime<Utc>> = row.try_get("deleted_at").map_err(|e| self.error(&e))?;
            if deleted.is_some() {
                continue;
            }
            let user = user_of_row(row).map_err(|e| self.error(&e))?;
            stored.insert(user.id, user);
        }
        let mut lost = Vec::new();
        for user in users {
            let same = stored.get(&user.id).is_some_and(|row| {
                let mut expected = (*user).clone();
                for field in &self.owned {
                    set_field(&mut expected, field, field_value(row, field));
                }
                *row == expected
            });
            if !same {
                lost.push(user.id);
            }
        }
        Ok(lost)
    }

    /// Rows where the customer changed an owned field since vomo-sync wrote
    /// it: (user, owned field → the customer's value).
    pub async fn pending_edits(
        &self,
    ) -> Result<Vec<(i64, std::collections::BTreeMap<String, Option<String>>)>, DestError> {
        if self.owned.is_empty() {
            return Ok(Vec::new());
        }
        // As text, so the object holds only strings and nulls.
        let pairs: Vec<String> = self.owned.iter().map(|f| format!("'{f}', t.{f}::text")).collect();
        let edits: Vec<String> = self.owned.iter().map(|f| edited(f)).collect();
        let sql = format!(
            "SELECT t.vomo_user_id, jsonb_build_object({})::text FROM {} t WHERE t.deleted_at IS NULL AND ({}) \
             ORDER BY t.vomo_user_id",
            pairs.join(", "),
            self.table,
            edits.join(" OR ")
        );
        let rows: Vec<(i64, String)> = timed(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool))
            .await
            .map_err(|e| self.error(&e))?;
        rows.into_iter()
            .map(|(id, json)| {
                let edits = serde_json::from_str(&json).map_err(|e| DestError {
                    class: FailureClass::Permanent,
                    message: format!(
                        "PostgreSQL {} (table {}): user {id}'s owned fields could not be read: {e}",
                        self.shown, self.table
                    ),
                    halt: None,
                })?;
                Ok((id, edits))
            })
            .collect()
    }

    /// Records that `values` of a user's owned fields are now in VOMO too
    /// (written back), with VOMO's new `updated_at`.
    pub async fn mark_written(
        &self,
        id: i64,
        values: &std::collections::BTreeMap<String, Option<String>>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), DestError> {
        let json = serde_json::to_string(values).unwrap_or_else(|_| "{}".to_owned());
        let sql = format!(
            "UPDATE {} SET vomo_sync_written = vomo_sync_written || $2::jsonb, updated_at = $3, synced_at = now() \
             WHERE vomo_user_id = $1",
            self.table
        );
        timed(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(json).bind(updated_at).execute(&self.pool))
            .await
            .map(drop)
            .map_err(|e| self.error(&e))
    }

    /// One statement for the batch; per-change statements when a row's data
    /// was refused; the table (re)created once when it is missing.
    async fn apply_batch(&self, batch: &[&Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        let rows = last_per_user(batch);
        let mut result = self.upsert(&self.pool, &rows, synced_at).await;
        if result.as_ref().is_err_and(|e| sqlstate(e).as_deref() == Some("42P01")) {
            // Not created yet, or dropped since: create it and try once more.
            result = match self.create_table().await {
                Ok(()) => self.upsert(&self.pool, &rows, synced_at).await,
                Err(e) => Err(e),
            };
        }
        match result {
            Ok(()) => batch.iter().map(|c| Ok(c.vomo_user_id.to_string())).collect(),
            Err(e) if is_data_error(&e) && batch.len() > 1 => self.one_by_one(batch, synced_at).await,
            Err(e) if is_data_error(&e) => vec![Err(self.row_error(batch[0].vomo_user_id, &e))],
            Err(e) => {
                let error = self.error(&e);
                batch.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }

    /// Replays a refused batch one change at a time, in order. Once the
    /// database itself fails (not a row), the rest are not tried: they would
    /// fail the same way, each after a timeout.
    async fn one_by_one(&self, batch: &[&Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut down: Option<DestError> = None;
        for change in batch {
            if let Some(error) = &down {
                outcomes.push(Err(error.clone()));
                continue;
            }
            match self.upsert(&self.pool, &[change], synced_at).await {
                Ok(()) => outcomes.push(Ok(change.vomo_user_id.to_string())),
                Err(e) => {
                    let error = self.row_error(change.vomo_user_id, &e);
                    if error.class == FailureClass::Retryable {
                        down = Some(error.clone());
                    }
                    outcomes.push(Err(error));
                }
            }
        }
        outcomes
    }

    /// The multi-row upsert of `rows` (at most one per user: PostgreSQL
    /// refuses to update a row twice in one statement).
    async fn upsert<'c>(
        &self,
        executor: impl PgExecutor<'c>,
        rows: &[&Change],
        synced_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(self.upsert_head.as_str());
        builder.push_values(rows, |mut row, change| push_row(&mut row, change, synced_at, &self.owned));
        builder.push(&self.upsert_tail);
        timed(builder.build().execute(executor)).await.map(drop)
    }

    /// `CREATE TABLE IF NOT EXISTS`; losing a race with another process
    /// creating it at the same moment counts as success.
    async fn create_table(&self) -> Result<(), sqlx::Error> {
        // The table name was validated as plain identifiers (`valid_table`).
        let sql = sqlx::AssertSqlSafe(create_table_sql(&self.table));
        match timed(sqlx::query(sql).execute(&self.pool)).await {
            Ok(_) => {}
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P07" | "23505")) => {}
            Err(e) => return Err(e),
        }
        // Tables made by versions before write-back lack this column.
        let add = format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS vomo_sync_written JSONB NOT NULL DEFAULT '{{}}'",
            self.table
        );
        match timed(sqlx::query(sqlx::AssertSqlSafe(add)).execute(&self.pool)).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("42701" | "23505")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// An error that concerns the whole destination.
    fn error(&self, e: &sqlx::Error) -> DestError {
        let message = format!("PostgreSQL {} (table {}): {}", self.shown, self.table, self.reason(e));
        DestError { class: classify(e), message, halt: None }
    }

    /// An error for one user's row; a refusal of its data is permanent.
    fn row_error(&self, id: i64, e: &sqlx::Error) -> DestError {
        let message =
            format!("PostgreSQL {} (table {}) refused user {id}: {}", self.shown, self.table, self.reason(e));
        let class = if is_data_error(e) { FailureClass::Permanent } else { classify(e) };
        DestError { class, message, halt: None }
    }

    fn reason(&self, e: &sqlx::Error) -> String {
        match e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let hint = match code.as_str() {
                    "3F000" => format!(
                        "; create the schema first (CREATE SCHEMA {}) or choose another ?table=",
                        self.table.split('.').next().unwrap_or_default()
                    ),
                    "42703" => {
                        format!("; the existing table {} lacks columns this destination writes", self.table)
                    }
                    "42501" => {
                        "; grant this user CREATE on the schema and INSERT, UPDATE on the table".to_owned()
                    }
                    _ => String::new(),
                };
                format!("{} (SQLSTATE {code}){hint}", db.message())
            }
            sqlx::Error::PoolTimedOut => {
                format!(
                    "no connection became free within {} s (server down or overloaded)",
                    CONNECT_TIMEOUT.as_secs()
                )
            }
            other => other.to_string(),
        }
    }
}

/// A create or update must carry the user; anything else could only be
/// written as a deletion, which would erase a user by mistake.
fn validate(change: &Change) -> Outcome {
    match (&change.kind, &change.user) {
        (ChangeKind::Created | ChangeKind::Updated, None) => Err(DestError::permanent(format!(
            "the {} change of user {} carries no user data",
            change.kind.as_str(),
            change.vomo_user_id
        ))),
        _ => Ok(change.vomo_user_id.to_string()),
    }
}

/// The last change of each user, in batch order: earlier ones are superseded
/// and a statement may touch each row only once.
fn last_per_user<'a>(batch: &[&'a Change]) -> Vec<&'a Change> {
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<&Change> =
        batch.iter().rev().filter(|c| seen.insert(c.vomo_user_id)).copied().collect();
    rows.reverse();
    rows
}

/// Binds one row in `COLUMNS` order. A deletion binds NULL for every field
/// and sets `deleted_at`.
fn push_row(
    row: &mut Separated<'_, Postgres, &'static str>,
    change: &Change,
    synced_at: DateTime<Utc>,
    owned: &[String],
) {
    let user = change.user.as_ref().filter(|_| change.kind != ChangeKind::Deleted);
    let written: serde_json::Map<String, serde_json::Value> = user
        .map(|u| {
            owned
                .iter()
                .map(|f| (f.clone(), field_value(u, f).map_or(serde_json::Value::Null, Into::into)))
                .collect()
        })
        .unwrap_or_default();
    let text = |field: fn(&User) -> &str| user.map(field);
    let optional = |field: fn(&User) -> Option<&str>| user.and_then(field);
    row.push_bind(change.vomo_user_id)
        .push_bind(text(|u| &u.first_name))
        .push_bind(text(|u| &u.last_name))
        .push_bind(text(|u| &u.full_name))
        .push_bind(text(|u| &u.email))
        .push_bind(optional(|u| u.address.as_deref()))
        .push_bind(optional(|u| u.phone.as_deref()))
        .push_bind(optional(|u| u.birthday.as_deref()))
        .push_bind(optional(|u| u.gender.as_deref()))
        .push_bind(user.map(|u| u.created_at))
        .push_bind(user.map(|u| u.updated_at))
        .push_bind(optional(|u| u.user_status.as_deref()))
        .push_bind(optional(|u| u.membership_status.as_deref()))
        .push_bind(optional(|u| u.membership_role.as_deref()))
        .push_bind(synced_at)
        .push_bind(user.is_none().then_some(synced_at))
        .push_bind(serde_json::Value::Object(written).to_string())
        .push_unseparated("::jsonb");
}

/// A stored row as a user.
fn user_of_row(row: &sqlx::postgres::PgRow) -> Result<User, sqlx::Error> {
    use sqlx::Row;
    let text = |name: &str| -> Result<String, sqlx::Error> {
        Ok(row.try_get::<Option<String>, _>(name)?.unwrap_or_default())
    };
    let at = |name: &str| -> Result<DateTime<Utc>, sqlx::Error> {
        Ok(row.try_get::<Option<DateTime<Utc>>, _>(name)?.unwrap_or_default())
    };
    Ok(User {
        id: row.try_get("vomo_user_id")?,
        first_name: text("first_name")?,
        last_name: text("last_name")?,
        full_name: text("full_name")?,
        email: text("email")?,
        address: row.try_get("address")?,
        phone: row.try_get("phone")?,
        birthday: row.try_get("birthday")?,
        gender: row.try_get("gender")?,
        created_at: at("created_at")?,
        updated_at: at("updated_at")?,
        user_status: row.try_get("user_status")?,
        membership_status: row.try_get("membership_status")?,
        membership_role: row.try_get("membership_role")?,
    })
}

/// Sets a writable field of a user.
pub fn set_field(user: &mut User, field: &str, value: Option<String>) {
    match field {
        "phone" => user.phone = value,
        "first_name" => user.first_name = value.unwrap_or_default(),
        "last_name" => user.last_name = value.unwrap_or_default(),
        "birthday" => user.birthday = value,
        "gender" => user.gender = value,
        _ => {}
    }
}

/// The value of a writable field of a user.
pub fn field_value(user: &User, field: &str) -> Option<String> {
    match field {
        "phone" => user.phone.clone(),
        "first_name" => Some(user.first_name.clone()),
        "last_name" => Some(user.last_name.clone()),
        "birthday" => user.birthday.clone(),
        "gender" => user.gender.clone(),
        _ => None,
    }
}

/// The row `check` writes and rolls back: every column filled, so a column
/// of the wrong type or a missing privilege shows up.
fn probe_change() -> Change {
    let at = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
    let text = |s: &str| Some(s.to_owned());
    let user = User {
        id: 0,
        first_name: "vomo-sync".into(),
        last_name: "check".into(),
        full_name: "vomo-sync check".into(),
        email: "check@vomo-sync.invalid".into(),
        address: text("-"),
        phone: text("-"),
        birthday: text("1970-01-01"),
        gender: text("-"),
        created_at: at,
        updated_at: at,
        user_status: text("-"),
        membership_status: text("-"),
        membership_role: text("-"),
    };
    Change { kind: ChangeKind::Created, vomo_user_id: 0, user: Some(user) }
}

/// Runs a database call under `STATEMENT_TIMEOUT`; running out is an IO
/// timeout, i.e. retryable.
async fn timed<T>(call: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    tokio::time::timeout(STATEMENT_TIMEOUT, call).await.unwrap_or_else(|_| {
        let reason = format!("no answer within {} s", STATEMENT_TIMEOUT.as_secs());
        Err(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, reason)))
    })
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The database refused a value of some row (data exception, integrity
/// constraint, cardinality): other rows may well be fine.
fn is_data_error(e: &sqlx::Error) -> bool {
    sqlstate(e).is_some_and(|code| matches!(code.get(..2), Some("21" | "22" | "23")))
}

/// Retryable: the connection or the server's state, which time heals —
/// connection exceptions (08), serialization failures and deadlocks (40),
/// insufficient resources (53), operator intervention such as a restart
/// (57), system errors (58), a read-only server during a failover (25006),
/// and every transport or pool failure. Everything else is permanent.
fn classify(e: &sqlx::Error) -> FailureClass {
    let retryable = match e {
        sqlx::Error::Database(_) => sqlstate(e).is_some_and(|code| {
            matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "25006"
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        _ => false,
    };
    if retryable { FailureClass::Retryable } else { FailureClass::Permanent }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_sqlstate_and_transport() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(classify(&io), FailureClass::Retryable);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), FailureClass::Retryable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), FailureClass::Permanent);
    }

    #[test]
    fn later_changes_of_a_user_win_within_a_statement() {
        let change = |id, kind| Change { kind, vomo_user_id: id, user: None };
        let (a, b, c) =
            (change(1, ChangeKind::Deleted), change(2, ChangeKind::Deleted), change(1, ChangeKind::Deleted));
        let rows = last_per_user(&[&a, &b, &c]);
        assert_eq!(rows.len(), 2);
        assert!(std::ptr::eq(rows[0], &b) && std::ptr::eq(rows[1], &c));
    }

    #[test]
    fn updates_without_a_user_are_refused() {
        let change = Change { kind: ChangeKind::Updated, vomo_user_id: 3, user: None };
        let err = validate(&change).unwrap_err();
        assert_eq!(err.class, FailureClass::Permanent);
        assert!(err.message.contains("user 3"), "{}", err.message);
        let clause = conflict_clause(&[]);
        assert!(
            clause.contains("gender = EXCLUDED.gender") && clause.contains("ELSE t.user_status END"),
            "{clause}"
        );
        let owned = conflict_clause(&["phone".to_owned()]);
        assert!(owned.contains("phone = CASE WHEN EXCLUDED.deleted_at IS NULL AND"), "{owned}");
    }
}
