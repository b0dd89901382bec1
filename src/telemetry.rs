//! Process logging with `tracing`. The console owns the screen, so it logs to a
//! daily rolling file; every other command logs to stderr as text or JSON
//! lines. Nothing here ever formats a token: secrets are wrapped types whose
//! `Debug` shows a fingerprint only.

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// stderr, in the configured format.
    Stderr,
    /// A rolling file in the log directory (the console).
    File,
}

/// Keeps the background log writer alive; dropping it flushes the file.
pub struct TelemetryGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber. Fails only when the log directory cannot be
/// created, and says which directory.
pub fn init(settings: &LogSettings, target: LogTarget) -> Result<TelemetryGuard, String> {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    match target {
        LogTarget::Stderr => {
            let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
            // A second init (tests running several commands in one process) is harmless.
            let _ = match settings.format {
                LogFormat::Json => builder.json().flatten_event(true).try_init(),
                LogFormat::Text => builder.with_target(false).try_init(),
            };
            Ok(TelemetryGuard { _file: None })
        }
        LogTarget::File => {
            let guard = init_file(&settings.dir, filter, settings.format)?;
            Ok(TelemetryGuard { _file: Some(guard) })
        }
    }
}

fn init_file(dir: &Path, filter: EnvFilter, format: LogFormat) -> Result<WorkerGuard, String> {
    let appender = PrivateDailyFile::open(dir)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(guard)
}

/// Days of log files kept.
const KEEP_LOG_FILES: usize = 14;

/// A daily log file (`vomo-sync.YYYY-MM-DD.log`, UTC days) created
/// owner-only: diagnostics name customers, users and URLs. The directory is
/// made owner-only too. The oldest files beyond two weeks are removed when
/// a new day's file is opened.
struct PrivateDailyFile {
    dir: PathBuf,
    day: String,
    file: std::fs::File,
}

impl PrivateDailyFile {
    fn open(dir: &Path) -> Result<Self, String> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
        let day = today();
        let file = Self::open_day(dir, &day)
            .map_err(|e| format!("cannot open a log file in {}: {e}", dir.display()))?;
        Ok(Self { dir: dir.to_owned(), day, file })
    }

    fn open_day(dir: &Path, day: &str) -> std::io::Result<std::fs::File> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(dir.join(format!("vomo-sync.{day}.log")))
    }

    /// Removes the oldest log files beyond the ones kept (best effort).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vomo-sync.") && n.ends_with(".log"))
            })
            .collect();
        logs.sort();
        let excess = logs.len().saturating_sub(KEEP_LOG_FILES);
        for old in logs.into_iter().take(excess) {
            let _ = std::fs::remove_file(old);
        }
    }
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

impl std::io::Write for PrivateDailyFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let day = today();
        if day != self.day {
            self.file = Self::open_day(&self.dir, &day)?;
            self.day = day;
            self.prune();
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_log_file_and_its_directory_are_owner_only() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let mut file = PrivateDailyFile::open(&logs).unwrap();
        file.write_all(b"line\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&logs.join(format!("vomo-sync.{}.log", today()))), 0o600);
    }
}
