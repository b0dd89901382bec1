//! One customer's task: prepares the customer's VOMO client, budget and
//! destinations, then loops over its schedule — the backfill (under the
//! concurrency cap and the allowed hours), polls every interval (jittered so
//! customers spread out), automatic DLQ retries, the daily reconciliation
//! and the weekly full scan — and the operator's commands. Reconciliations,
//! full scans and confirmed deletions run in the background, one at a time,
//! so polls go on meanwhile. A rejected token ends the task at once: no
//! retry loop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::{CommandError, CommandReply, Details, Done};
use super::shared::Shared;
use crate::domain::RunKind;
use crate::engine::error::SyncError;
use crate::engine::run::customer::CustomerRuntime;
use crate::engine::run::dlq_retry::{self, Selection};
use crate::engine::run::events::EventLevel;
use crate::engine::run::execute::{self, Mode};
use crate::engine::run::live::{FailureKind, Live};
use crate::engine::run::lock::locked;
use crate::engine::run::settle;
use crate::engine::run::tail::{self, TailRead};
use crate::store::Customer;

/// Messages from the supervisor to a worker: work to do now, or work to
/// start beside the polls.
pub enum WorkerMsg {
    Now(Now, oneshot::Sender<CommandReply>),
    Background(Job, oneshot::Sender<CommandReply>),
}

/// Work a worker does at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    Poll,
    Backfill,
    RetryDlq(Selection),
}

/// Work that runs beside the polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Reconcile,
    FullScan {
        dry_run: bool,
    },
    /// An operator's answer to a guarded sweep.
    Settle {
        waiting_run: crate::store::RunId,
        confirm: bool,
        actor: String,
    },
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Self::Reconcile => "reconciliation",
            Self::FullScan { .. } => "full scan",
            Self::Settle { .. } => "deletion confirmation",
        }
    }
}

/// The background job in flight, if any.
type Background = Option<(&'static str, JoinHandle<Result<String, CommandError>>)>;

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
    let runtime = Arc::new(runtime);
    let interval = Duration::from_secs(customer.settings.poll_every_secs.max(1));
    let (next_reconcile, next_scan) = audit_schedule(&shared, &customer).await;
    let tail_every = Duration::from_secs(customer.settings.tail_every_secs);
    let mut schedule = Schedule {
        next_poll: first_poll(&runtime, interval).await,
        failures: 0,
        force_backfill: false,
        next_reconcile,
        next_scan,
        next_tail: (!tail_every.is_zero()).then(|| Utc::now() + jittered(tail_every)),
        tail_mark: None,
        tail_failing: false,
    };
    locked(&live.tail).every_secs = tail_every.as_secs();
    let mut background: Background = None;
    loop {
        live.set_next_poll(Some(schedule.next_poll));
        let next_dlq = shared.store.next_dlq_retry_at(customer.id).await.ok().flatten();
        let wake = [
            Some(schedule.next_poll),
            next_dlq,
            Some(schedule.next_reconcile),
            Some(schedule.next_scan),
            schedule.next_tail,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(schedule.next_poll);
        let sleep = (wake - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = cancel.cancelled() => return stop_background(background).await,
            finished = join_background(&mut background) => {
                if let Some(end) = background_done(&runtime, finished) {
                    return end;
                }
            }
            message = inbox.recv() => match message {
                None => return stop_background(background).await,
                Some(WorkerMsg::Background(job, reply)) => {
                    let _ = reply.send(start_background(&runtime, &mut background, job, &cancel));
                }
                Some(WorkerMsg::Now(now, reply)) => {
                    if let Some(end) = handle(&runtime, &mut schedule, now, reply, &cancel).await {
                        return end;
                    }
                }
            },
            () = tokio::time::sleep(sleep) => {
                start_due_audits(&runtime, &mut schedule, &mut background, &cancel).await;
                if Utc::now() >= schedule.next_poll
                    && let Some(end) = sync_when_due(&shared, &runtime, &mut schedule, interval, &cancel).await
                {
                    return end;
                }
                if next_dlq.is_some_and(|d| d <= Utc::now())
                    && let Err(e) = dlq_retry::retry_dlq(&runtime, &Selection::Due).await
                {
                    runtime.event(EventLevel::Error, format!("DLQ retry failed: {e}"));
                }
                if schedule.next_tail.is_some_and(|t| t <= Utc::now()) && Utc::now() < schedule.next_poll
                    && let Some(end) = tail_when_due(&runtime, &mut schedule, tail_every, &cancel).await
                {
                    return end;
                }
            }
        }
    }
}

struct Schedule {
    next_poll: DateTime<Utc>,
    failures: u32,
    force_backfill: bool,
    next_reconcile: DateTime<Utc>,
    next_scan: DateTime<Utc>,
    /// The next live-tail read (none when the tail is off).
    next_tail: Option<DateTime<Utc>>,
    /// The tail's position (see [`tail`]); in memory only.
    tail_mark: Option<DateTime<Utc>>,
    /// The tail's last read failed (its failure was announced).
    tail_failing: bool,
}

/// A failing tail waits at least this long before reading again.
const TAIL_FAILURE_PAUSE: Duration = Duration::from_secs(60);

/// Runs a live-tail read when due, once the backfill is complete (the tail
/// yields to it), and acts on what it found: a burst is handed over to an
/// early verified poll; a rejected token brings the poll forward, which
/// stops the customer and records why; other failures are announced once
/// and leave the polls to go on.
async fn tail_when_due(
    runtime: &CustomerRuntime,
    schedule: &mut Schedule,
    every: Duration,
    cancel: &CancellationToken,
) -> Option<WorkerEnd> {
    schedule.next_tail = Some(Utc::now() + jittered(every));
    let backfilled = runtime.live.backfill_done.load(std::sync::atomic::Ordering::Relaxed)
        || runtime.customer.status == crate::domain::CustomerStatus::Active;
    if !backfilled {
        return None;
    }
    let outcome = tail::read(runtime, &mut schedule.tail_mark, cancel).await;
    tail::record(runtime, &outcome);
    match outcome {
        Ok(read) => {
            if schedule.tail_failing {
                schedule.tail_failing = false;
                runtime.event(EventLevel::Info, "live tail reading again");
            }
            if let TailRead::HandOver { changes, poll_at } = read
                && poll_at < schedule.next_poll
            {
                schedule.next_poll = poll_at;
                runtime.event(
                    EventLevel::Info,
                    format!(
                        "live tail: more than a page changed ({changes} delivered now); a verified poll at {} reads the rest",
                        poll_at.format("%H:%M:%S")
                    ),
                );
            }
            None
        }
        Err(SyncError::Cancelled) => Some(WorkerEnd::Stopped),
        Err(SyncError::TokenRejected(_) | SyncError::Forbidden(_)) => {
            schedule.next_poll = Utc::now();
            None
        }
        Err(e) => {
            schedule.next_tail = Some(Utc::now() + every.max(TAIL_FAILURE_PAUSE));
            if !schedule.tail_failing {
                schedule.tail_failing = true;
                runtime.event(EventLevel::Warn, format!("live tail failed: {e}; the verified polls go on"));
            }
            None
        }
    }
}

/// When the next reconciliation and full scan are due: one interval after
/// the last one started, or after onboarding — so restarts do not postpone
/// them.
async fn audit_schedule(shared: &Shared, customer: &Customer) -> (DateTime<Utc>, DateTime<Utc>) {
    // Unreadable history (the state DB is failing) counts from now: one
    // interval late beats a burst of reconciliations on every restart.
    let last = match shared.store.last_run_of_each_kind(customer.id).await {
        Ok(last) => Some(last),
        Err(e) => {
            tracing::warn!(customer = %customer.name, error = %e, "run history unreadable; audits scheduled from now");
            None
        }
    };
    let due = |kind: RunKind, every_secs: u64| {
        let since = match &last {
            Some(last) => last.iter().find(|r| r.kind == kind).map_or(customer.created_at, |r| r.started_at),
            None => Utc::now(),
        };
        since + every(every_secs)
    };
    (
        due(RunKind::Reconcile, customer.settings.reconcile_every_secs),
        due(RunKind::Deletions, customer.settings.deletion_scan_every_secs),
    )
}

/// An interval from a customer's settings (at least a second).
fn every(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs.max(1)).unwrap_or(i64::MAX / 2))
}

/// Starts the scheduled reconciliation or full scan when due (once the
/// backfill is done; the full scan first, as it covers a reconciliation).
async fn start_due_audits(
    runtime: &Arc<CustomerRuntime>,
    schedule: &mut Schedule,
    background: &mut Background,
    cancel: &CancellationToken,
) {
    let now = Utc::now();
    let settings = &runtime.customer.settings;
    let job = if now >= schedule.next_scan {
        schedule.next_scan = now + every(settings.deletion_scan_every_secs);
        schedule.next_reconcile = schedule.next_reconcile.max(now + every(settings.reconcile_every_secs));
        Job::FullScan { dry_run: false }
    } else if now >= schedule.next_reconcile {
        schedule.next_reconcile = now + every(settings.reconcile_every_secs);
        Job::Reconcile
    } else {
        return;
    };
    if !matches!(runtime.advancing_kind().await, Ok(RunKind::Poll)) {
        return; // still backfilling: the backfill is the audit
    }
    if let Err(why) = start_background(runtime, background, job, cancel) {
        runtime.event(EventLevel::Info, format!("scheduled run skipped: {why}"));
    }
}

/// Starts `job` beside the polls, unless one is running already.
fn start_background(
    runtime: &Arc<CustomerRuntime>,
    background: &mut Background,
    job: Job,
    cancel: &CancellationToken,
) -> CommandReply {
    if let Some((running, _)) = background {
        return Err(CommandError::Refused(format!(
            "a {running} is running for {}; try again when it is done",
            runtime.customer.name
        )));
    }
    let name = job.name();
    // Its own live figures, so the poll's progress stays readable; the
    // console finds them through the customer's.
    let live = Arc::new(Live::default());
    runtime.live.set_background(Some(Arc::clone(&live)));
    let mut copy = CustomerRuntime::clone(runtime);
    copy.live = live;
    let (main_live, cancel) = (Arc::clone(&runtime.live), cancel.child_token());
    let task = tokio::spawn(async move {
        let result = run_job(&copy, job, &cancel).await;
        main_live.set_background(None);
        result
    });
    *background = Some((name, task));
    Ok(Done::said(format!("{name} started")))
}

async fn run_job(
    runtime: &CustomerRuntime,
    job: Job,
    cancel: &CancellationToken,
) -> Result<String, CommandError> {
    match job {
        Job::Reconcile => {
            let report = execute::run(runtime, RunKind::Reconcile, Mode::Reconcile, cancel).await?;
            let c = &report.counts;
            Ok(format!(
                "reconciliation done: missed_create {}, missed_update {}, drift {}, lost_downstream {}, dlq_held {}, \
                 {} requests",
                c.missed_create, c.missed_update, c.drift, c.lost_downstream, c.dlq_held, report.requests
            ))
        }
        Job::FullScan { dry_run } => {
            let report =
                execute::run(runtime, RunKind::Deletions, Mode::FullScan { dry_run }, cancel).await?;
            if report.needs_confirmation {
                return Ok(format!(
                    "full scan stopped at the mass-deletion guard: {} users listed; {}",
                    report.deletions.len(),
                    report.confirmation_hint(&runtime.customer.name)
                ));
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            Ok(format!(
                "full scan done: {verb} {}, moved_mid_scan {}, drift {}, {} requests",
                report.deletions.len(),
                report.counts.moved_mid_scan,
                report.counts.drift,
                report.requests
            ))
        }
        Job::Settle { waiting_run, confirm, actor } => {
            Ok(settle::settle(runtime, waiting_run, confirm, &actor).await?.message)
        }
    }
}

/// Waits for the background job; pending forever when there is none.
async fn join_background(background: &mut Background) -> Result<String, CommandError> {
    let Some((_, task)) = background.as_mut() else {
        return std::future::pending().await;
    };
    let result =
        task.await.unwrap_or_else(|e| Err(SyncError::Internal(format!("background run failed: {e}")).into()));
    *background = None;
    result
}

/// Reports a finished background job; a token failure ends the worker.
fn background_done(runtime: &CustomerRuntime, finished: Result<String, CommandError>) -> Option<WorkerEnd> {
    match finished {
        Ok(text) => {
            runtime.event(EventLevel::Info, text);
            None
        }
        Err(CommandError::Sync(e @ (SyncError::TokenRejected(_) | SyncError::Forbidden(_)))) => {
            Some(WorkerEnd::TokenProblem(e.to_string()))
        }
        // A run records and announces its own failure (or was stopped).
        Err(CommandError::Sync(_)) => None,
        Err(refused) => {
            runtime.event(EventLevel::Warn, refused.to_string());
            None
        }
    }
}

/// On stop, the background job is cancelled (it shares the worker's
/// token) and waited for, so what it read is committed or dropped whole.
async fn stop_background(background: Background) -> WorkerEnd {
    if let Some((_, task)) = background {
        let _ = task.await;
    }
    WorkerEnd::Stopped
}

/// Builds the runtime, retrying while a destination or the state DB is down.
async fn prepare_until_ready(
    shared: &Arc<Shared>,
    customer: &Customer,
    live: &Arc<Live>,
    cancel: &CancellationToken,
) -> Option<CustomerRuntime> {
    loop {
        match shared.prepare(customer, Arc::clone(live), Some(&shared.config.owner)).await {
            Ok(runtime) => {
                live.clear_failure();
                return Some(runtime);
            }
            Err(e) => {
                if let Some(kind) = FailureKind::of(&e) {
                    live.record_failure(kind, format!("cannot start: {e}"), None);
                }
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
    let result = super::advance::advancing_run(shared, runtime, schedule.force_backfill, cancel).await;
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
            schedule.next_poll = Utc::now() + failure_backoff(schedule.failures, interval);
            None
        }
    }
}

/// The pause after the `failures`-th failed run in a row: capped
/// exponential with jitter, starting at the poll interval (at most 30 s), so
/// a failing state DB or VOMO is not hammered — and the same changes not
/// re-sent — every interval, however short.
fn failure_backoff(failures: u32, interval: Duration) -> chrono::Duration {
    let base = interval.min(Duration::from_secs(30)).max(Duration::from_secs(1));
    let backoff = base.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_FAILURE_BACKOFF);
    chrono::Duration::from_std(backoff.mul_f64(rand::rng().random_range(0.8..1.2))).unwrap_or_default()
}

fn jittered(interval: Duration) -> chrono::Duration {
    chrono::Duration::from_std(interval.mul_f64(rand::rng().random_range(0.9..1.1))).unwrap_or_default()
}

async fn handle(
    runtime: &Arc<CustomerRuntime>,
    schedule: &mut Schedule,
    now: Now,
    reply: oneshot::Sender<CommandReply>,
    cancel: &CancellationToken,
) -> Option<WorkerEnd> {
    match now {
        Now::Poll => {
            schedule.next_poll = Utc::now();
            let _ = reply.send(Ok(Done::said("poll started")));
            None
        }
        Now::Backfill => match runtime.advancing_kind().await {
            Ok(RunKind::Backfill) => {
                schedule.next_poll = Utc::now();
                schedule.force_backfill = true;
                let _ = reply.send(Ok(Done::said("backfill started")));
                None
            }
            Ok(_) => {
                let _ = reply.send(Ok(Done::said("re-walking every user (the checkpoint stays)")));
                match execute::run(runtime, RunKind::Backfill, Mode::FullRewalk, cancel).await {
                    Ok(_) => None,
                    Err(e) => end_or_backoff(e, schedule, Duration::from_secs(60)),
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                None
            }
        },
        Now::RetryDlq(selection) => {
            let result = dlq_retry::retry_dlq(runtime, &selection).await.map(|r| {
                let text = format!(
                    "{} delivered, {} still failing, {} without destination",
                    r.delivered, r.failed, r.orphaned
                );
                Done::with(text, Details::Retry(r))
            });
            let _ = reply.send(result.map_err(CommandError::from));
            None
        }
    }
}
