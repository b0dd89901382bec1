//! JSONL destination: appends one event per line to a file, the whole batch
//! as one buffer under a lock (so concurrent batches never interleave) and one
//! `fsync` per batch (so an acknowledged change is on disk).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{DestError, Outcome, event_json};
use crate::domain::Change;

pub struct JsonlDest {
    path: Arc<PathBuf>,
    /// Held for the whole append-and-sync of a batch. Within one process it
    /// is what keeps batches whole: an appending `write` of a large buffer
    /// may be split by the kernel.
    lock: tokio::sync::Mutex<()>,
}

impl JsonlDest {
    /// Touches nothing: the file and its directory are made on first use.
    pub fn new(path: &Path) -> Self {
        Self { path: Arc::new(path.to_owned()), lock: tokio::sync::Mutex::new(()) }
    }

    /// Creates the directory and the file if needed, opens it for append and
    /// syncs it: proves it writable without adding a line.
    pub async fn check(&self) -> Result<(), DestError> {
        let _guard = self.lock.lock().await;
        let path = Arc::clone(&self.path);
        blocking(move || {
            let (file, _) = open_for_append(&path)?;
            file.sync_all().map_err(|e| io_error(&path, "cannot sync", &e))
        })
        .await
    }

    /// Appends one line per change; every change shares the batch's fate.
    pub async fn apply(&self, customer: &str, changes: &[Change], synced_at: DateTime<Utc>) -> Vec<Outcome> {
        let mut buffer = Vec::with_capacity(changes.len() * 512);
        for change in changes {
            // Writing a `Value` into a Vec cannot fail; a failure would be a bug
            // worth failing the batch for rather than writing half a line.
            if let Err(e) = serde_json::to_writer(&mut buffer, &event_json(customer, change, synced_at)) {
                let error =
                    DestError::permanent(format!("cannot encode an event for {}: {e}", self.path.display()));
                return changes.iter().map(|_| Err(error.clone())).collect();
            }
            buffer.push(b'\n');
        }
        let _guard = self.lock.lock().await;
        let path = Arc::clone(&self.path);
        match blocking(move || append(&path, &buffer)).await {
            Ok(()) => changes.iter().map(|c| Ok(c.vomo_user_id.to_string())).collect(),
            Err(error) => changes.iter().map(|_| Err(error.clone())).collect(),
        }
    }
}

/// Runs file IO off the async workers.
async fn blocking(work: impl FnOnce() -> Result<(), DestError> + Send + 'static) -> Result<(), DestError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(DestError::retryable(format!("the JSONL writer task failed: {e}"))))
}

/// Appends `buffer` and syncs. On failure the file is cut back to its old
/// length, so a retry does not follow a torn half-line.
fn append(path: &Path, buffer: &[u8]) -> Result<(), DestError> {
    let (mut file, created) = open_for_append(path)?;
    let start = file.metadata().map_err(|e| io_error(path, "cannot read the size of", &e))?.len();
    let written = file.write_all(buffer).and_then(|()| file.sync_data());
    if let Err(e) = written {
        // Best effort: if even this fails the next reader sees one torn line.
        let _ = file.set_len(start).and_then(|()| file.sync_data());
        return Err(io_error(path, "cannot append to", &e));
    }
    if created {
        sync_parent(path);
    }
    Ok(())
}

/// Opens `path` for append, creating it and its directory; also says
/// whether the file is new.
fn open_for_append(path: &Path) -> Result<(File, bool), DestError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // A directory that cannot be made (a file in the way, no such mount)
        // will not appear by retrying: an operator must fix the path.
        std::fs::create_dir_all(dir).map_err(|e| {
            DestError::permanent(format!(
                "cannot create the directory {} for the JSONL file {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
    }
    let existed = path.exists();
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    // Every line holds a person's data: a new file is its owner's only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| io_error(path, "cannot open for append", &e))?;
    Ok((file, !existed))
}

/// A new file's directory entry is durable only once its directory is
/// synced. Best effort: some filesystems refuse to sync a directory.
fn sync_parent(path: &Path) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Disk full, permission denied, a read-only remount: an operator can fix
/// these while the changes wait, so they are retryable.
fn io_error(path: &Path, what: &str, e: &std::io::Error) -> DestError {
    DestError::retryable(format!("{what} the JSONL file {}: {e}", path.display()))
}
