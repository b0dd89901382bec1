//! Process logging with `tracing`. The console owns the screen, so it logs to a
//! daily rolling file; every other command logs to stderr as text or JSON
//! lines. Nothing here ever formats a token: secrets are wrapped types whose
//! `Debug` shows a fingerprint only.

use std::path::Path;

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
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("vomo-sync")
        .filename_suffix("log")
        .max_log_files(14)
        .build(dir)
        .map_err(|e| format!("cannot open a log file in {}: {e}", dir.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Ok(guard)
}
