//! The advancing run of a customer — its backfill until one completes,
//! then polls — as its worker's schedule and the one-door commands start
//! it: customer edits are written back to VOMO before a poll reads VOMO's
//! changes, and a backfill waits for one of the process's backfill slots
//! and, unless forced, for the allowed hours.

use std::sync::Arc;

use chrono::{Timelike, Utc};
use tokio_util::sync::CancellationToken;

use super::shared::Shared;
use crate::domain::RunKind;
use crate::engine::error::SyncError;
use crate::engine::run::customer::CustomerRuntime;
use crate::engine::run::events::EventLevel;
use crate::engine::run::execute::{self, Mode, RunReport};
use crate::engine::run::writeback;

/// The backfill or a poll. `Ok(None)` when a backfill may not start now.
pub async fn advancing_run(
    shared: &Arc<Shared>,
    runtime: &CustomerRuntime,
    force: bool,
    cancel: &CancellationToken,
) -> Result<Option<RunReport>, SyncError> {
    let kind = match runtime.advancing_kind().await {
        Ok(kind) => kind,
        Err(e) => return Err(runtime.note_failure("run", None, e).await),
    };
    if kind != RunKind::Backfill {
        // Customer edits go to VOMO before the poll reads VOMO's changes.
        if let Err(e) = writeback::write_back_pass(runtime, cancel).await {
            if matches!(e, SyncError::TokenRejected(_) | SyncError::Forbidden(_) | SyncError::Cancelled) {
                return Err(e);
            }
            runtime.event(EventLevel::Error, format!("write-back failed: {e}; retried before the next poll"));
        }
        return execute::run(runtime, kind, Mode::Advance, cancel).await.map(Some);
    }
    if !force && !backfill_allowed_now(shared) {
        return Ok(None);
    }
    let permit = tokio::select! {
        () = cancel.cancelled() => return Err(SyncError::Cancelled),
        permit = Arc::clone(&shared.backfill_slots).acquire_owned() => permit,
    };
    let result = execute::run(runtime, kind, Mode::Advance, cancel).await.map(Some);
    drop(permit);
    result
}

fn backfill_allowed_now(shared: &Shared) -> bool {
    shared.config.backfill_hours.is_none_or(|hours| {
        let now = Utc::now();
        hours.contains(now.hour() * 60 + now.minute())
    })
}
