//! Errors of the state DB, each saying what is wrong and what to do.

/// What went wrong with the state DB.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create the state DB at {path}: {reason}; choose another path with --state or fix the directory's permissions"
    )]
    CannotCreate { path: String, reason: String },
    #[error(
        "{path} is not a SQLite database (it is corrupt or another kind of file); point --state at a new path or restore it from a backup"
    )]
    NotSqlite { path: String },
    #[error(
        "the state DB {path} is an empty file; if it held customers, restore it from a backup (nothing was \
         written); to start afresh, run `vomo-sync migrate` or onboard a customer"
    )]
    EmptyFile { path: String },
    #[error(
        "{path} is a SQLite database of another application (it has tables but no vomo-sync schema); refusing to write into it; point --state at a new path"
    )]
    Foreign { path: String },
    #[error(
        "cannot reach the PostgreSQL state DB at {url}: {reason}; check that it is running and the URL, user and password are right"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the state DB at {location} was written by a newer vomo-sync (it has migration {version}, unknown to this version); upgrade vomo-sync, nothing was changed"
    )]
    NewerSchema { location: String, version: i64 },
    #[error("cannot migrate the state DB at {location}: {reason}")]
    Migration { location: String, reason: String },
    #[error(
        "tokens in this state DB were written with a different master key (this key is {key_id}, from {source_name}); set VOMO_SYNC_MASTER_KEY or restore the key file it was written with; nothing was changed"
    )]
    WrongMasterKey { key_id: String, source_name: String },
    #[error(
        "this state DB holds encrypted tokens but no master key was found; set VOMO_SYNC_MASTER_KEY or restore the key file {path}"
    )]
    MissingMasterKey { path: String },
    #[error("no master key is loaded to encrypt or decrypt tokens")]
    NoMasterKey,
    #[error("master key: {message}")]
    MasterKey { message: String },
    #[error("a stored secret for {owner} cannot be decrypted with this master key")]
    Undecryptable { owner: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what}")]
    Conflict { what: String },
    #[error(
        "this process no longer holds the lease of customer {customer} (another instance took it over); nothing was committed"
    )]
    LeaseLost { customer: i64 },
    #[error("the state DB holds an invalid value ({what}); it was edited by hand or is damaged")]
    Corrupt { what: String },
    #[error(
        "the disk holding the state DB at {location} is full; the transaction was rolled back and nothing was written; free space and retry"
    )]
    DiskFull { location: String },
    #[error("state DB error at {location}: {source}")]
    Backend {
        location: String,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Wraps a driver error, recognising a full disk.
    pub(crate) fn backend(location: &str, source: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &source {
            // SQLITE_FULL is 13; PostgreSQL reports disk_full as SQLSTATE 53100.
            let code = db.code();
            if matches!(code.as_deref(), Some("13" | "53100")) || db.message().contains("disk is full") {
                return Self::DiskFull { location: location.to_owned() };
            }
        }
        Self::Backend { location: location.to_owned(), source }
    }
}
