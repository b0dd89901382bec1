//! Opening the state DB: a SQLite file (created owner-only, WAL, busy
//! timeout, foreign keys on) or a PostgreSQL URL; refusing corrupt, foreign or
//! newer databases before writing anything; applying the embedded migrations;
//! and checking the master key against the one the DB was written with.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection};

use super::crypto::{KeySource, MasterKey};
use super::{Backend, Store, StoreError, with_pool};
use crate::config::{StateLocation, redact_url};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const KEY_CHECK: &str = "key_check";

/// The migration versions each backend embeds (a test checks they match).
pub fn migration_versions() -> (Vec<i64>, Vec<i64>) {
    let versions = |m: &Migrator| m.iter().map(|m| m.version).collect();
    (versions(&SQLITE_MIGRATIONS), versions(&POSTGRES_MIGRATIONS))
}

/// Whether opening may set up an empty SQLite file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyFile {
    /// `migrate` and onboarding: an empty (0-byte) file becomes a new DB.
    Initialise,
    /// Everything else: an empty file is refused (it is more likely a state
    /// DB that was lost, truncated or not restored than a new one).
    Refuse,
}

impl Store {
    /// Connects and applies pending migrations; a missing SQLite file is
    /// created, an empty one refused.
    pub async fn open(location: &StateLocation) -> Result<Self, StoreError> {
        Self::open_with(location, EmptyFile::Refuse).await
    }

    /// [`Store::open`], saying what to do with an empty SQLite file.
    pub async fn open_with(location: &StateLocation, empty: EmptyFile) -> Result<Self, StoreError> {
        let store = Self::connect_with(location, empty).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (`migrate`, which may set up an empty
    /// file); refuses corrupt and foreign SQLite files.
    pub async fn connect(location: &StateLocation) -> Result<Self, StoreError> {
        Self::connect_with(location, EmptyFile::Initialise).await
    }

    async fn connect_with(location: &StateLocation, empty: EmptyFile) -> Result<Self, StoreError> {
        match location {
            StateLocation::Sqlite(path) => open_sqlite(path, empty).await,
            StateLocation::Postgres(url) => open_postgres(url).await,
        }
    }

    /// Applies pending migrations; returns the versions applied now. A DB
    /// that has a migration this binary does not know is refused untouched.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let before = self.applied_versions().await?;
        let migrator = match self.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
        };
        if let Some(unknown) = before.iter().find(|v| !migrator.iter().any(|m| m.version == **v)) {
            return Err(StoreError::NewerSchema { location: self.location.clone(), version: *unknown });
        }
        let result = with_pool!(self, |pool| migrator.run(pool).await);
        result.map_err(|e| match e {
            MigrateError::VersionMissing(version) => {
                StoreError::NewerSchema { location: self.location.clone(), version }
            }
            other => StoreError::Migration { location: self.location.clone(), reason: other.to_string() },
        })?;
        let after = self.applied_versions().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    /// Versions recorded in `_sqlx_migrations` (empty for a new DB).
    pub async fn applied_versions(&self) -> Result<Vec<i64>, StoreError> {
        let table_exists: bool = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(pool)
            .await
            .map(|n| n > 0),
            Backend::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(pool)
                    .await
            }
        }
        .map_err(|e| self.err(e))?;
        if !table_exists {
            return Ok(Vec::new());
        }
        with_pool!(self, |pool| {
            sqlx::query_scalar::<_, i64>(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(|e| self.err(e))
    }

    /// Attaches the master key after checking it is the one this DB's
    /// secrets were written with. Reads only; a wrong key changes nothing.
    pub async fn unlock(&mut self, key: MasterKey, source: &KeySource) -> Result<(), StoreError> {
        if let Some(check) = self.meta(KEY_CHECK).await?
            && !key.matches_check(&check)
        {
            return Err(StoreError::WrongMasterKey { key_id: key.id(), source_name: source.to_string() });
        }
        self.key = Some(key);
        Ok(())
    }

    /// True when secrets have been stored (so a master key is required).
    pub async fn has_secrets(&self) -> Result<bool, StoreError> {
        Ok(self.meta(KEY_CHECK).await?.is_some())
    }

    pub(crate) async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| self.err(e))
    }

    /// The key-check value to record with the first secret, if none is yet.
    pub(crate) async fn key_check_to_record(&self) -> Result<Option<String>, StoreError> {
        if self.meta(KEY_CHECK).await?.is_some() {
            return Ok(None);
        }
        self.key()?.key_check().map(Some)
    }

    pub(crate) fn err(&self, e: sqlx::Error) -> StoreError {
        if matches!(self.backend, Backend::Sqlite(_)) && Recycle::is_file_failure(&e) {
            self.recycle.now();
        }
        StoreError::backend(&self.location, e)
    }
}

/// Replaces the pool's connections after the database file failed under
/// them. A SQLite connection opened while its file could not be written
/// (made read-only or immutable, a full disk) stays read-only for good, and
/// one whose COMMIT or ROLLBACK failed is left inside a transaction that
/// every later `BEGIN` refuses. Either would wedge a worker until a restart;
/// instead every connection older than the last such failure is closed when
/// next acquired, and fresh ones see the file as it is now.
#[derive(Debug, Default)]
pub(crate) struct Recycle {
    /// Unix milliseconds of the last file failure (0: none).
    failed_at_ms: std::sync::atomic::AtomicI64,
}

impl Recycle {
    fn now(&self) {
        self.failed_at_ms.store(chrono::Utc::now().timestamp_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    /// True when a connection of this age predates the last failure.
    fn predates_failure(&self, age: Duration) -> bool {
        let failed = self.failed_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        let opened =
            chrono::Utc::now().timestamp_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        failed > 0 && opened <= failed
    }

    /// SQLite's read-only, I/O, full and cannot-open results, and I/O errors.
    fn is_file_failure(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, 8 | 10 | 13 | 14)),
            _ => false,
        }
    }
}

async fn open_sqlite(path: &Path, empty: EmptyFile) -> Result<Store, StoreError> {
    let shown = path.display().to_string();
    let cannot = |reason: String| StoreError::CannotCreate { path: shown.clone(), reason };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| cannot(format!("cannot create {}: {e}", parent.display())))?;
    }
    match std::fs::read(path).map(|bytes| bytes.into_iter().take(SQLITE_MAGIC.len()).collect::<Vec<u8>>()) {
        Ok(head) if head.is_empty() && empty == EmptyFile::Refuse => {
            return Err(StoreError::EmptyFile { path: shown });
        }
        Ok(head) if head.is_empty() => {}
        Ok(head) if head != SQLITE_MAGIC => return Err(StoreError::NotSqlite { path: shown }),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_owner_only(path).map_err(cannot)?,
        Err(e) => return Err(cannot(e.to_string())),
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        .pragma("cache_size", "-8192")
        .pragma("wal_autocheckpoint", "16384");
    let recycle = std::sync::Arc::new(Recycle::default());
    let check = std::sync::Arc::clone(&recycle);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // A connection still inside a transaction (its COMMIT or ROLLBACK
        // failed) is closed rather than handed out again.
        .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .before_acquire(move |_, meta| {
            let fresh = !check.predates_failure(meta.age);
            Box::pin(async move { Ok(fresh) })
        })
        .connect_with(options)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.message().contains("not a database") => {
                StoreError::NotSqlite { path: shown.clone() }
            }
            _ => cannot(e.to_string()),
        })?;
    let store = Store { backend: Backend::Sqlite(pool.clone()), location: shown.clone(), key: None, recycle };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.message().contains("not a database") => {
            StoreError::NotSqlite { path: shown.clone() }
        }
        _ => store.err(e),
    })?;
    if !tables.is_empty() && !tables.iter().any(|t| t == "_sqlx_migrations") {
        pool.close().await;
        return Err(StoreError::Foreign { path: shown });
    }
    Ok(store)
}

/// Creates an empty file readable by its owner only; SQLite gives its WAL and
/// shared-memory files the same permissions.
fn create_owner_only(path: &Path) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop).map_err(|e| e.to_string())
}

async fn open_postgres(url: &str) -> Result<Store, StoreError> {
    let shown = redact_url(url);
    let unreachable = |reason: String| StoreError::Unreachable { url: shown.clone(), reason };
    let options = PgConnectOptions::from_str(url).map_err(|e| unreachable(format!("invalid URL: {e}")))?;
    // One direct attempt first: the pool would retry until its acquire
    // timeout and then report only "timed out"; this reports the cause
    // (refused, unknown host, bad password) at once.
    let probe = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options)).await;
    match probe {
        Err(_) => return Err(unreachable("no answer within 10 s".into())),
        Ok(Err(e)) => return Err(unreachable(e.to_string().replace(url, &shown))),
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(10)
        // A connection still inside a transaction (its COMMIT failed as the
        // server went away) is closed rather than handed out again.
        .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| unreachable(e.to_string().replace(url, &shown)))?;
    Ok(Store {
        backend: Backend::Postgres(pool),
        location: shown,
        key: None,
        recycle: std::sync::Arc::default(),
    })
}

/// Loads the master key for a store: from the environment or the key file;
/// creating the file only when `create` (the caller is about to store a
/// secret). Errors when the DB holds secrets and no key is found.
pub async fn load_master_key(
    store: &mut Store,
    env: Option<&str>,
    key_file: &Path,
    create: bool,
) -> Result<(), StoreError> {
    // A new key beside secrets sealed with a lost one would only hide the
    // loss: with secrets stored, the key must be found, never made.
    let create = create && !store.has_secrets().await?;
    match MasterKey::load(env, key_file, create)? {
        Some((key, source)) => store.unlock(key, &source).await,
        None if store.has_secrets().await? => {
            Err(StoreError::MissingMasterKey { path: key_file.display().to_string() })
        }
        None => Ok(()),
    }
}
