//! The partner state DB: customers, encrypted tokens, destinations,
//! checkpoints, mappings, the dead-letter queue, runs, the audit log,
//! leases, instance heartbeats, the command queue and alerts sent. One API over two backends — SQLite (embedded default) and
//! PostgreSQL (several instances) — each with its own pool and its own
//! embedded migrations (sqlx's `Any` driver cannot carry chrono types; see
//! stack.md §4). Queries bind every value; no SQL is built from data.
//!
//! Methods are grouped by concern in the submodules and named for what they
//! do. Only the engine (and the composition root, for `migrate`) calls them.

mod alerts_sent;
mod commands;
pub mod crypto;
mod customers;
mod deletions;
mod dlq;
mod error;
mod health_tokens;
mod history;
mod instances;
mod leases;
mod open;
mod overview;
mod sync_state;
mod types;

pub use commands::{CommandId, CommandSignal, CommandStatus, QueuedCommand};
pub use instances::InstanceRow;
pub use leases::Lease;
pub use open::{EmptyFile, load_master_key, migration_versions};
pub use overview::Overview;

use sqlx::{PgPool, SqlitePool};

pub use crypto::{KeySource, MasterKey};
pub use error::StoreError;
pub use types::*;

/// Runs `$body` with `$pool` bound to whichever backend pool the store has.
/// Both arms are type-checked, so a query that one dialect rejects at compile
/// time cannot hide.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Inserts an audit entry inside the transaction `$tx` (either backend).
macro_rules! insert_audit {
    ($tx:expr, $entry:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, customer, action, detail, result) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($entry.at)
        .bind(&$entry.actor)
        .bind(&$entry.customer)
        .bind(&$entry.action)
        .bind(&$entry.detail)
        .bind(&$entry.result)
        .execute(&mut *$tx)
        .await
    };
}
pub(crate) use insert_audit;

/// Starts a transaction that will write. On SQLite it takes the write lock
/// at once (`BEGIN IMMEDIATE`): a read that later upgrades to a write fails
/// with `SQLITE_BUSY_SNAPSHOT` when another connection wrote in between, and
/// the busy timeout does not retry that.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A connected, migrated state DB. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The location for messages (PostgreSQL password redacted).
    location: String,
    key: Option<MasterKey>,
    recycle: std::sync::Arc<open::Recycle>,
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl Store {
    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Where the DB is, safe to print.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes the pools, waiting for checked-out connections.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }

    fn key(&self) -> Result<&MasterKey, StoreError> {
        self.key.as_ref().ok_or(StoreError::NoMasterKey)
    }
}

/// Decodes the `Option<String>` / `String` JSON columns; a bad value means the
/// DB was edited by hand or damaged, which is reported, not panicked on.
fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { what: format!("{what}: {e}") })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising our own plain structs and maps cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}
