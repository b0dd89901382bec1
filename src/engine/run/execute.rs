//! One sync run of one customer: from the checkpoint to VOMO's clock minus
//! the settle margin, walked as verified windows, delivered, committed. The
//! backfill is simply the first such run from the epoch (one mechanism for
//! backfill and polling). A full re-walk reads every user again without
//! moving the checkpoint; a reconciliation re-reads the recent past; a full
//! scan reads everyone and then looks for deletions. Token failures stop the
//! customer at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::budget::Priority;
use super::customer::CustomerRuntime;
use super::events::EventLevel;
use super::fetch::Fetcher;
use super::lock::locked;
use super::process::{Counters, Sink, SinkOptions};
use super::window::{WalkSummary, Walker};
use crate::domain::{
    CustomerStatus, RunCounts, RunKind, RunOutcome, TokenState, Window, count_of, epoch, whole_second,
};
use crate::engine::error::SyncError;
use crate::store::AuditEntry;

/// How a run treats the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From the checkpoint to now; the checkpoint follows verified chunks.
    Advance,
    /// Every user up to the checkpoint again; the checkpoint stays.
    FullRewalk,
    /// The recent past again (`lookback`), not trusting the checkpoint;
    /// what the destinations miss is sent and counted by cause.
    Reconcile,
    /// Every user, then users VOMO no longer has are confirmed one by one
    /// and deleted downstream (within the mass-deletion guard). A dry run
    /// reports and changes nothing.
    FullScan { dry_run: bool },
}

impl Mode {
    fn sink_options(self) -> SinkOptions {
        match self {
            Self::Advance | Self::FullRewalk => SinkOptions::default(),
            Self::Reconcile => SinkOptions { reconcile: true, ..SinkOptions::default() },
            Self::FullScan { dry_run } => SinkOptions { reconcile: true, dry_run, collect_seen: true },
        }
    }

    fn dry_run(self) -> bool {
        matches!(self, Self::FullScan { dry_run: true })
    }
}

/// Copies a walk's figures into the run report.
fn record_walk(report: &mut RunReport, walked: &Walked) {
    let summary = &walked.summary;
    let counts = &mut report.counts;
    counts.chunks = count_of(summary.chunks);
    counts.failed_walks = count_of(summary.failed_walks);
    counts.probes_split = count_of(summary.probes_split);
    counts.unverified_accepted = count_of(summary.unverified_accepted);
    if let Some(sweep) = &walked.sweep {
        counts.deletion_candidates = count_of(sweep.candidates);
        counts.moved_mid_scan = count_of(sweep.moved);
        counts.confirmed_gone = count_of(sweep.gone.len());
        counts.deletion_threshold = count_of(sweep.threshold);
        report.deletions.clone_from(&sweep.gone);
        report.needs_confirmation = sweep.guarded;
    }
}

/// A run's outcome and message from its report.
fn outcome_of(report: &RunReport) -> (RunOutcome, Option<String>) {
    if report.needs_confirmation {
        let message = format!(
            "{} users are gone from VOMO, above the mass-deletion guard ({}); nothing was deleted until an operator confirms",
            report.deletions.len(),
            report.counts.deletion_threshold
        );
        return (RunOutcome::NeedsConfirmation, Some(message));
    }
    let warnings = &report.walk.warnings;
    (RunOutcome::Ok, (!warnings.is_empty()).then(|| warnings.join("; ")))
}

/// What the open-ended first read of an advancing run found.
enum OpenRead {
    /// The window is empty (the watermark is VOMO's present).
    Empty,
    /// The window was read whole and committed.
    Done(Window),
    /// The window needs a walk.
    Walk(Window),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub kind: Option<RunKind>,
    /// The run record (none for a dry run, which records nothing).
    pub run_id: Option<crate::store::RunId>,
    pub counts: RunCounts,
    pub requests: u64,
    pub window: Option<Window>,
    pub walk: WalkSummary,
    /// Users a full scan found gone from VOMO (deleted, or waiting for
    /// confirmation, or — in a dry run — that would be deleted).
    pub deletions: Vec<crate::domain::VomoUserId>,
    /// A full scan tripped the mass-deletion guard: nothing was deleted.
    pub needs_confirmation: bool,
}

impl RunReport {
    /// What an operator does about a sweep stopped at the mass-deletion
    /// guard: confirm or dismiss its recorded run; a dry run records none.
    pub fn confirmation_hint(&self, customer: &str) -> String {
        match self.run_id {
            Some(id) => format!(
                "confirm with `vomo-sync sync deletions {customer} --confirm {id}` or drop with `--dismiss {id}`"
            ),
            None => "a dry run: a real sweep would wait for an operator's confirmation".to_owned(),
        }
    }
}

/// The run-summary sentence: `poll done: 12 users read, 1 created, 3
/// updated, 0 deleted, 0 to the DLQ, 2 requests`.
impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "{} done: {} users read, {} created, {} updated, {} deleted, {} to the DLQ, {} requests",
            self.kind.map_or("run", RunKind::as_str),
            c.users_seen,
            c.created,
            c.updated,
            c.deleted,
            c.dlq_parked,
            self.requests
        )
    }
}

/// What a walk found beyond the counters.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub window: Option<Window>,
    pub summary: WalkSummary,
    pub sweep: Option<super::sweep::Sweep>,
}

/// Runs one sync and records it (run row, live figures, events). A run
/// that cannot even be recorded (the state DB is failing) is still
/// announced and counted as failed, so the streak and its backoff see it.
pub async fn run(
    rt: &CustomerRuntime,
    kind: RunKind,
    mode: Mode,
    cancel: &CancellationToken,
) -> Result<RunReport, SyncError> {
    let store = &rt.target.store;
    let run_id = if mode.dry_run() {
        None
    } else {
        match store.start_run(rt.customer.id, kind, rt.target.lease_owner.as_deref()).await {
            Ok(id) => Some(id),
            Err(e) => return Err(after_failure(rt, kind, None, SyncError::Store(e)).await),
        }
    };
    let fetcher = Fetcher::new(
        rt.client.clone(),
        Arc::clone(&rt.budget),
        Arc::clone(&rt.clock),
        rt.config.request_retry,
        cancel.child_token(),
    );
    begin(rt, kind, run_id);
    let counters = Arc::new(Counters::default());
    let result = walk(rt, kind, mode, run_id, &fetcher, Arc::clone(&counters)).await;
    let mut report = RunReport {
        kind: Some(kind),
        run_id,
        counts: counters.counts(),
        requests: fetcher.requests(),
        ..RunReport::default()
    };
    report.counts.window_total = count_of(rt.live.progress.total.load(Ordering::Relaxed));
    let (outcome, message) = match &result {
        Ok(walked) => {
            report.window = walked.window;
            report.walk = walked.summary.clone();
            record_walk(&mut report, walked);
            outcome_of(&report)
        }
        Err(SyncError::Cancelled) => {
            (RunOutcome::Aborted, Some("stopped before the window was complete".to_owned()))
        }
        Err(e) => (RunOutcome::Failed, Some(rt.failure_text(e).await)),
    };
    let mut result = result;
    if let Some(id) = run_id {
        let requests = i64::try_from(report.requests).unwrap_or(i64::MAX);
        if let Err(e) = store.finish_run(id, outcome, &report.counts, requests, message.as_deref()).await {
            // Its work is done (or failed) all the same; a success that
            // cannot be recorded counts as a failure of the state DB.
            if result.is_ok() {
                result = Err(SyncError::Store(e));
            } else {
                tracing::error!(customer = %rt.customer.name, run = id, error = %e, "cannot record the run's end");
            }
        }
    }
    end(rt, &report);
    match result {
        Ok(_) => match after_success(rt, kind, mode, &report).await {
            Ok(()) => Ok(report),
            Err(e) => Err(after_failure(rt, kind, run_id, e).await),
        },
        Err(e) => Err(after_failure(rt, kind, run_id, e).await),
    }
}

/// Reads the run's window into a sink, then always waits for the sink's
/// last batch: a run only ends once what it read is delivered and
/// committed (or has failed).
async fn walk(
    rt: &CustomerRuntime,
    kind: RunKind,
    mode: Mode,
    run_id: Option<crate::store::RunId>,
    fetcher: &Fetcher,
    counters: Arc<Counters>,
) -> Result<Walked, SyncError> {
    let mut sink = Sink::new(Arc::clone(&rt.target), counters, mode.sink_options()).await?;
    let walked = match walk_into(rt, kind, mode, fetcher, &mut sink).await {
        Ok((window, summary)) if matches!(mode, Mode::FullScan { .. }) && window.is_some() => {
            let sweep = super::sweep::sweep(rt, run_id, fetcher, &mut sink).await;
            sweep.map(|sweep| Walked { window, summary, sweep: Some(sweep) })
        }
        other => other.map(|(window, summary)| Walked { window, summary, sweep: None }),
    };
    if matches!(walked, Err(SyncError::Cancelled)) {
        // Deliver and record what was read; the checkpoint stays.
        sink.flush(None).await?;
    }
    let finished = sink.finish().await;
    let result = walked?;
    finished?;
    Ok(result)
}

async fn walk_into(
    rt: &CustomerRuntime,
    kind: RunKind,
    mode: Mode,
    fetcher: &Fetcher,
    sink: &mut Sink,
) -> Result<(Option<Window>, WalkSummary), SyncError> {
    let store = &rt.target.store;
    let priority = match (kind, mode) {
        (RunKind::Backfill, _) => Priority::Backfill,
        (_, Mode::Reconcile | Mode::FullScan { .. }) => Priority::Reconcile,
        _ => Priority::Poll,
    };
    let checkpoint = store.load_checkpoint(rt.customer.id).await?;
    // A window must be closed: no write may land in it after we read it.
    // VOMO's clock has whole-second precision, so the second it reports
    // as "now" may still be filling; whatever the settle margin, `to` is
    // at least one second before it.
    let settle =
        chrono::Duration::from_std(rt.config.settle).unwrap_or_default().max(chrono::Duration::seconds(1));
    let window = match mode {
        Mode::Advance => {
            let mut read = open_read(rt, fetcher, priority, checkpoint.watermark, settle, sink).await?;
            if matches!(read, OpenRead::Empty)
                && let Some(repaired) = repair_future_checkpoint(rt, checkpoint.watermark).await?
            {
                read = open_read(rt, fetcher, priority, repaired, settle, sink).await?;
            }
            match read {
                OpenRead::Empty => return Ok((None, WalkSummary::default())),
                OpenRead::Done(window) => {
                    return Ok((Some(window), WalkSummary { chunks: 1, ..WalkSummary::default() }));
                }
                OpenRead::Walk(window) => window,
            }
        }
        Mode::FullRewalk | Mode::Reconcile | Mode::FullScan { .. } => {
            let to = whole_second(fetcher.server_now(priority).await? - settle);
            let lookback = chrono::Duration::from_std(rt.config.reconcile_lookback).unwrap_or_default();
            let window = match mode {
                Mode::FullRewalk => Window::new(epoch(), to.min(checkpoint.watermark)),
                Mode::Reconcile => Window::new((to - lookback).max(epoch()), to),
                _ => Window::new(epoch(), to),
            };
            match window {
                Some(window) => window,
                None => return Ok((None, WalkSummary::default())),
            }
        }
    };
    if mode == Mode::Advance {
        store.begin_window(rt.customer.id, window).await?;
    }
    let mut sizer = *locked(&rt.live.sizer);
    let mut walker = Walker {
        fetcher,
        priority,
        progress: &rt.live.progress,
        sizer: &mut sizer,
        max_chunk: rt.config.chunk_users,
    };
    let walked = walker.walk(window, sink, mode == Mode::Advance).await;
    *locked(&rt.live.sizer) = sizer;
    walked.map(|summary| (Some(window), summary))
}

/// The first read of an advancing run: page 1 of everything changed
/// since the watermark, with no upper bound. Its `Date` header fixes the
/// window's end, so no separate request asks VOMO for the time. When the
/// whole rest fits in that one page, the page is a consistent read of the
/// window and the run is done in one request (the usual quiet poll).
async fn open_read(
    rt: &CustomerRuntime,
    fetcher: &Fetcher,
    priority: Priority,
    watermark: DateTime<Utc>,
    settle: chrono::Duration,
    sink: &mut Sink,
) -> Result<OpenRead, SyncError> {
    let open = crate::vomo::UserFilter { updated_after: Some(watermark), ..Default::default() };
    let first = fetcher.list(priority, &open, 1).await?;
    let progress = &rt.live.progress;
    progress.pages.fetch_add(1, Ordering::Relaxed);
    let server_now = rt.clock.now().ok_or(super::clock::ClockError::NoDate)?;
    let Some(window) = Window::new(watermark, whole_second(server_now - settle)) else {
        return Ok(OpenRead::Empty);
    };
    let listed = (first.users.len() + first.malformed.len()) as u64;
    let complete = first.last_page == 1 && listed == first.total;
    if !complete {
        // Processed, not thrown away; the walk of the window re-reads them
        // as unchanged.
        sink.push(first.users).await?;
        return Ok(OpenRead::Walk(window));
    }
    let users: Vec<_> = first.users.into_iter().filter(|u| u.updated_at <= window.to).collect();
    let unreadable: Vec<_> =
        first.malformed.into_iter().filter(|u| u.updated_at.is_none_or(|at| at <= window.to)).collect();
    progress.users.fetch_add((users.len() + unreadable.len()) as u64, Ordering::Relaxed);
    progress.total.store((users.len() + unreadable.len()) as u64, Ordering::Relaxed);
    sink.push_unreadable(unreadable);
    sink.push(users).await?;
    sink.flush(Some(window.to)).await?;
    Ok(OpenRead::Done(window))
}

/// A checkpoint in VOMO's future (left by an older version, or by a
/// clock believed before it was bounded) would hide every later edit:
/// it goes back to the newest `updated_at` the mappings hold, audited.
/// Returns the repaired watermark, if it was repaired.
async fn repair_future_checkpoint(
    rt: &CustomerRuntime,
    watermark: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, SyncError> {
    let Some(now) = rt.clock.now() else { return Ok(None) };
    if watermark <= whole_second(now) {
        return Ok(None);
    }
    let store = &rt.target.store;
    let newest = store.newest_mapped_update(rt.customer.id).await?.unwrap_or_else(epoch);
    let to = newest.min(whole_second(now));
    let detail = format!(
        "checkpoint {} is ahead of VOMO's clock ({}); moved back to {}, the newest update synced",
        crate::domain::format_rfc3339(&watermark),
        crate::domain::format_rfc3339(&now),
        crate::domain::format_rfc3339(&to)
    );
    let entry = AuditEntry {
        at: Utc::now(),
        actor: "engine".into(),
        customer: Some(rt.customer.name.clone()),
        action: "checkpoint.repaired".into(),
        detail: detail.clone(),
        result: "ok".into(),
    };
    store.repair_checkpoint(rt.customer.id, to, &entry).await?;
    rt.event(EventLevel::Warn, detail);
    Ok(Some(to))
}

fn begin(rt: &CustomerRuntime, kind: RunKind, run_id: Option<crate::store::RunId>) {
    let progress = &rt.live.progress;
    for counter in [&progress.pages, &progress.users, &progress.total] {
        counter.store(0, Ordering::Relaxed);
    }
    *locked(&rt.live.current) = Some((kind, Utc::now()));
    *locked(&rt.live.last_progress) = Some(Instant::now());
    rt.run_event(EventLevel::Info, run_id, format!("{kind} started"));
}

fn end(rt: &CustomerRuntime, report: &RunReport) {
    let live = &rt.live;
    live.users_total.fetch_add(live.progress.users.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    live.requests_total.fetch_add(report.requests, Ordering::Relaxed);
    *locked(&live.current) = None;
    live.sample();
}

async fn after_success(
    rt: &CustomerRuntime,
    kind: RunKind,
    mode: Mode,
    report: &RunReport,
) -> Result<(), SyncError> {
    rt.live.clear_failure();
    if mode == Mode::Advance {
        // An advancing run that ends well has read up to VOMO's present.
        rt.live.backfill_done.store(true, Ordering::Relaxed);
    }
    if report.needs_confirmation {
        rt.event(
            EventLevel::Warn,
            format!(
                "{kind}: {} users are gone from VOMO, more than the guard allows; nothing was deleted — {}",
                report.deletions.len(),
                report.confirmation_hint(&rt.customer.name)
            ),
        );
    }
    rt.run_event(EventLevel::Info, report.run_id, report.to_string());
    let status = rt.target.store.customer_by_id(rt.customer.id).await?.map(|c| c.status);
    if mode == Mode::Advance && status == Some(CustomerStatus::Backfilling) && report.window.is_some() {
        rt.target.store.set_customer_status(rt.customer.id, CustomerStatus::Active, None).await?;
        rt.event(EventLevel::Info, "backfill complete; polling from now on");
    }
    Ok(())
}

/// Records a failed run in the live figures and the log; a token
/// failure stops the customer.
async fn after_failure(
    rt: &CustomerRuntime,
    kind: RunKind,
    run_id: Option<crate::store::RunId>,
    error: SyncError,
) -> SyncError {
    let error = rt.note_failure(&kind.to_string(), run_id, error).await;
    let state = match &error {
        SyncError::TokenRejected(_) => TokenState::Rejected,
        SyncError::Forbidden(_) => TokenState::Forbidden,
        _ => return error,
    };
    let store = &rt.target.store;
    let reason = error.to_string();
    let recorded = async {
        store.record_token_state(rt.customer.id, state).await?;
        store.set_customer_status(rt.customer.id, CustomerStatus::TokenRejected, Some(&reason)).await?;
        store
            .record_audit(&AuditEntry {
                at: Utc::now(),
                actor: "engine".into(),
                customer: Some(rt.customer.name.clone()),
                action: "token.rejected".into(),
                detail: reason.clone(),
                result: "customer stopped; waiting for a new token".into(),
            })
            .await
    };
    if let Err(e) = recorded.await {
        tracing::error!(customer = %rt.customer.name, error = %e, "cannot record the rejected token");
    }
    error
}
