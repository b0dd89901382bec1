//! One customer's task: prepares the customer's VOMO client, budget and
//! destinations, then loops over its schedule — the backfill (under the
//! concurrency cap and the allowed hours), polls every interval (jittered so
//! customers spread out), automatic DLQ retries — and the operator's
//! commands. A rejected token ends the task at once: no retry loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::command::CommandReply;
use super::dlq_retry::Selection;
use super::supervisor::Shared;
use super::sync::{CustomerRuntime, Live, Mode, RunReport};
use super::{EventLevel, SyncError};
use crate::domain::RunKind;
use crate::store::Customer;

/// Messages from the supervisor to a worker.
pub enum WorkerMsg {
    PollNow(oneshot::Sender<CommandReply>),
    Backfill(oneshot::Sender<CommandReply>),
    RetryDlq(Selection, oneshot::Sender<CommandReply>),
}

/// Longest pause after a failed run before trying again.
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Pause between attempts to prepare a customer whose destination is down.
const PREPARE_RETRY: Duration = Duration::from_secs(30);

/// Why a worker's loop ended.
#[derive(Debug)]
pub enum WorkerEnd {
    Stopped,
    TokenProblem(String),
}

/// Runs a customer until cancelled or its token is rejected.
pub async fn run(
    shared: Arc<Shared>,
    customer: Customer,
    live: Arc<Live>,
    mut inbox: mpsc::Receiver<WorkerMsg>,
    cancel: CancellationToken,
) -> WorkerEnd {
    let Some(runtime) = prepare_until_ready(&shared, &customer, &live, &cancel).await else {
        return WorkerEnd::Stopped;
    };
    let interval = Duration::from_secs(customer.settings.poll_every_secs.max(1));
    let mut schedule =
        Schedule { next_poll: first_poll(&runtime, interval).await, failures: 0, force_backfill: false };
    loop {
        live.set_next_poll(Some(schedule.next_poll));
        let next_dlq = shared.store.next_dlq_retry_at(customer.id).await.ok().flatten();
        let wake = next_dlq.map_or(schedule.next_poll, |d| d.min(schedule.next_poll));
        let sleep = (wake - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = cancel.cancelled() => return WorkerEnd::Stopped,
            message = inbox.recv() => match message {
                None => return WorkerEnd::Stopped,
                Some(message) => {
                    if let Some(end) = handle(&runtime, &mut schedule, message, &cancel).await {
                        return end;
                    }
                }
            },
            () = tokio::time::sleep(sleep) => {
                if Utc::now() >= schedule.next_poll
                    && let Some(end) = sync_when_due(&shared, &runtime, &mut schedule, interval, &cancel).await
                {
                    return end;
                }
                if next_dlq.is_some_and(|d| d <= Utc::now())
                    && let Err(e) = runtime.retry_dlq(&Selection::Due).await
                {
                    runtime.event(EventLevel::Error, format!("DLQ retry failed: {e}"));
                }
            }
        }
    }
}

struct Schedule {
    next_poll: DateTime<Utc>,
    failures: u32,
    force_backfill: bool,
}

/// Builds the runtime, retrying while a destination or the state DB is down.
async fn prepare_until_ready(
    shared: &Arc<Shared>,
    customer: &Customer,
    live: &Arc<Live>,
    cancel: &CancellationToken,
) -> Option<CustomerRuntime> {
    loop {
        match shared.prepare(customer, Arc::clone(live)).await {
            Ok(runtime) => {
                live.set_error(None);
                return Some(runtime);
            }
            Err(e) => {
                live.set_error(Some(e.to_string()));
                shared.event(
                    Some(&customer.name),
                    EventLevel::Error,
                    format!("cannot start: {e}; retrying in 30 s"),
                );
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(PREPARE_RETRY) => {}
        }
    }
}

/// A backfill is due at once; a poll at a random point of the first
/// interval, so customers started together spread out.
async fn first_poll(runtime: &CustomerRuntime, interval: Duration) -> DateTime<Utc> {
    if matches!(runtime.advancing_kind().await, Ok(RunKind::Backfill) | Err(_)) {
        return Utc::now();
    }
    let offset = interval.mul_f64(rand::rng().random_range(0.0..1.0));
    Utc::now() + chrono::Duration::from_std(offset).unwrap_or_default()
}

/// Runs the advancing sync if allowed now and sets the next poll time.
async fn sync_when_due(
    shared: &Arc<Shared>,
    runtime: &CustomerRuntime,
    schedule: &mut Schedule,
    interval: Duration,
    cancel: &CancellationToken,
) -> Option<WorkerEnd> {
    let result = advancing_run(shared, runtime, schedule.force_backfill, cancel).await;
    schedule.force_backfill = false;
    match result {
        Ok(Some(_)) => {
            schedule.failures = 0;
            schedule.next_poll = Utc::now() + jittered(interval);
            None
        }
        Ok(None) => {
            // Outside the backfill hours: look again in a minute.
            schedule.next_poll = Utc::now() + chrono::Duration::minutes(1);
            None
        }
        Err(e) => end_or_backoff(e, schedule, interval),
    }
}

fn end_or_backoff(error: SyncError, schedule: &mut Schedule, interval: Duration) -> Option<WorkerEnd> {
    match error {
        SyncError::TokenRejected(_) | SyncError::Forbidden(_) => {
            Some(WorkerEnd::TokenProblem(error.to_string()))
        }
        SyncError::Cancelled => Some(WorkerEnd::Stopped),
        _ => {
            schedule.failures += 1;
            let backoff = Duration::from_secs(30)
                .saturating_mul(1 << schedule.failures.min(8))
                .min(MAX_FAILURE_BACKOFF);
            schedule.next_poll =
                Utc::now() + chrono::Duration::from_std(backoff.min(interval)).unwrap_or_default();
            None
        }
    }
}

/// The backfill or a poll. `Ok(None)` when a backfill may not start now.
pub async fn advancing_run(
    shared: &Arc<Shared>,
    runtime: &CustomerRuntime,
    force: bool,
    cancel: &CancellationToken,
) -> Result<Option<RunReport>, SyncError> {
    let kind = runtime.advancing_kind().await?;
    if kind != RunKind::Backfill {
        // Customer edits go to VOMO before the poll reads VOMO's changes.
        if let Err(e) = runtime.write_back_pass(cancel).await {
            if matches!(e, SyncError::TokenRejected(_) | SyncError::Forbidden(_) | SyncError::Cancelled) {
                return Err(e);
            }
            runtime.event(EventLevel::Error, format!("write-back failed: {e}; retried before the next poll"));
        }
        return runtime.run(kind, Mode::Advance, cancel).await.map(Some);
    }
    if !force && !backfill_allowed_now(shared) {
        return Ok(None);
    }
    let permit = tokio::select! {
        () = cancel.cancelled() => return Err(SyncError::Cancelled),
        permit = Arc::clone(&shared.backfill_slots).acquire_owned() => permit,
    };
    let result = runtime.run(kind, Mode::Advance, cancel).await.map(Some);
    drop(permit);
    result
}

fn backfill_allowed_now(shared: &Shared) -> bool {
    shared.config.backfill_hours.is_none_or(|hours| {
        let now = Utc::now();
        hours.contains(now.hour() * 60 + now.minute())
    })
}

fn jittered(interval: Duration) -> chrono::Duration {
    chrono::Duration::from_std(interval.mul_f64(rand::rng().random_range(0.9..1.1))).unwrap_or_default()
}

async fn handle(
    runtime: &CustomerRuntime,
    schedule: &mut Schedule,
    message: WorkerMsg,
    cancel: &CancellationToken,
) -> Option<WorkerEnd> {
    match message {
        WorkerMsg::PollNow(reply) => {
            schedule.next_poll = Utc::now();
            let _ = reply.send(Ok("poll started".into()));
            None
        }
        WorkerMsg::Backfill(reply) => match runtime.advancing_kind().await {
            Ok(RunKind::Backfill) => {
                schedule.next_poll = Utc::now();
                schedule.force_backfill = true;
                let _ = reply.send(Ok("backfill started".into()));
                None
            }
            Ok(_) => {
                let _ = reply.send(Ok("re-walking every user (the checkpoint stays)".into()));
                match runtime.run(RunKind::Backfill, Mode::FullRewalk, cancel).await {
                    Ok(_) => None,
                    Err(e) => end_or_backoff(e, schedule, Duration::from_secs(60)),
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                None
            }
        },
        WorkerMsg::RetryDlq(selection, reply) => {
            let result = runtime.retry_dlq(&selection).await.map(|r| {
                format!(
                    "{} delivered, {} still failing, {} without destination",
                    r.delivered, r.failed, r.orphaned
                )
            });
            let _ = reply.send(result.map_err(|e| e.to_string()));
            None
        }
    }
}
