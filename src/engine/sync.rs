//! One sync run of one customer: from the checkpoint to VOMO's clock minus
//! the settle margin, walked as verified windows, delivered, committed. The
//! backfill is simply the first such run from the epoch (one mechanism for
//! backfill and polling). A full re-walk reads every user again without
//! moving the checkpoint. Token failures stop the customer at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::budget::{Budget, Priority};
use super::clock::ServerClock;
use super::fetch::Fetcher;
use super::process::{Counters, DeliveryTarget, Sink, SinkOptions};
use super::snapshot::{EngineEvent, EventLevel, FailureKind, RunFailure};
use super::window::{Progress, WalkSummary, Walker};
use super::{EngineConfig, SyncError};
use crate::domain::{CustomerStatus, RunKind, RunOutcome, TokenState, Window, epoch, whole_second};
use crate::store::{AuditEntry, Customer};
use crate::vomo::VomoClient;

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

/// Live figures of a customer's work, shared with the supervisor.
#[derive(Debug, Default)]
pub struct Live {
    pub progress: Progress,
    pub current: std::sync::Mutex<Option<(RunKind, DateTime<Utc>)>>,
    pub requests_total: AtomicU64,
    pub users_total: AtomicU64,
    /// Chunk sizing the walker learned (kept between runs).
    pub sizer: std::sync::Mutex<super::window::ChunkSizer>,
    /// Set once the customer's backfill has completed (it never un-completes).
    pub backfill_done: std::sync::atomic::AtomicBool,
    /// The failure streak of the runs (cleared by a successful run).
    pub failure: std::sync::Mutex<Option<RunFailure>>,
    pub next_poll_at: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// When the current run last made progress (for stall detection).
    pub last_progress: std::sync::Mutex<Option<Instant>>,
    /// (time, users read so far) samples for the throughput figure.
    pub samples: std::sync::Mutex<std::collections::VecDeque<(Instant, u64)>>,
    /// The figures of a reconciliation or full scan running beside the
    /// polls, while it runs.
    pub background: std::sync::Mutex<Option<Arc<Live>>>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    pub fn current(&self) -> Option<(RunKind, DateTime<Utc>)> {
        *locked(&self.current)
    }

    pub fn failure(&self) -> Option<RunFailure> {
        locked(&self.failure).clone()
    }

    /// Records a failed run (or a failed start): the streak grows, and
    /// keeps the time it began.
    pub fn record_failure(&self, kind: FailureKind, message: String, run_id: Option<crate::store::RunId>) {
        let mut failure = locked(&self.failure);
        let now = Utc::now();
        let (since, consecutive) = match failure.as_ref() {
            Some(f) => (f.since, f.consecutive.saturating_add(1)),
            None => (now, 1),
        };
        *failure = Some(RunFailure { kind, message, since, last_at: now, consecutive, run_id });
    }

    pub fn clear_failure(&self) {
        *locked(&self.failure) = None;
    }

    pub fn next_poll_at(&self) -> Option<DateTime<Utc>> {
        *locked(&self.next_poll_at)
    }

    pub fn set_next_poll(&self, at: Option<DateTime<Utc>>) {
        *locked(&self.next_poll_at) = at;
    }

    pub fn background(&self) -> Option<Arc<Live>> {
        locked(&self.background).clone()
    }

    pub fn set_background(&self, live: Option<Arc<Live>>) {
        *locked(&self.background) = live;
    }

    pub fn last_progress(&self) -> Option<Instant> {
        *locked(&self.last_progress)
    }

    /// Records the users read so far; keeps ten minutes of samples.
    pub fn sample(&self) {
        let users = self.users_total.load(Ordering::Relaxed) + self.progress.users.load(Ordering::Relaxed);
        let mut samples = locked(&self.samples);
        let now = Instant::now();
        if samples.back().is_some_and(|(_, n)| *n != users) {
            *locked(&self.last_progress) = Some(now);
        }
        samples.push_back((now, users));
        while samples.front().is_some_and(|(t, _)| now.duration_since(*t).as_secs() > 600) {
            samples.pop_front();
        }
    }

    /// Users read per minute over the last five minutes.
    pub fn throughput_per_min(&self) -> f64 {
        let samples = locked(&self.samples);
        let Some(&(t_last, n_last)) = samples.back() else { return 0.0 };
        let first = samples.iter().find(|(t, _)| t_last.duration_since(*t).as_secs() <= 300);
        match first {
            Some(&(t0, n0)) if t_last > t0 => {
                (n_last - n0) as f64 * 60.0 / t_last.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Everything a run of one customer needs.
#[derive(Clone)]
pub struct CustomerRuntime {
    pub customer: Customer,
    pub client: VomoClient,
    pub budget: Arc<Budget>,
    pub clock: Arc<ServerClock>,
    pub target: Arc<DeliveryTarget>,
    pub config: Arc<EngineConfig>,
    pub live: Arc<Live>,
    pub events: broadcast::Sender<EngineEvent>,
}

/// Copies a walk's figures into the run report.
fn record_walk(report: &mut RunReport, walked: &Walked) {
    let summary = &walked.summary;
    for (key, value) in [
        ("chunks", summary.chunks),
        ("failed_walks", summary.failed_walks),
        ("probes_split", summary.probes_split),
        ("unverified_accepted", summary.unverified_accepted),
    ] {
        report.counts.insert(key.to_owned(), i64::try_from(value).unwrap_or(i64::MAX));
    }
    if let Some(sweep) = &walked.sweep {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        report.counts.insert("deletion_candidates".to_owned(), n(sweep.candidates));
        report.counts.insert("moved_mid_scan".to_owned(), n(sweep.moved));
        report.counts.insert("confirmed_gone".to_owned(), n(sweep.gone.len()));
        report.counts.insert("deletion_threshold".to_owned(), n(sweep.threshold));
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
            report.counts.get("deletion_threshold").copied().unwrap_or(0)
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
    pub counts: BTreeMap<String, i64>,
    pub requests: u64,
    pub window: Option<Window>,
    pub walk: WalkSummary,
    /// Users a full scan found gone from VOMO (deleted, or waiting for
    /// confirmation, or — in a dry run — that would be deleted).
    pub deletions: Vec<crate::domain::VomoUserId>,
    /// A full scan tripped the mass-deletion guard: nothing was deleted.
    pub needs_confirmation: bool,
}

/// What a walk found beyond the counters.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub window: Option<Window>,
    pub summary: WalkSummary,
    pub sweep: Option<super::sweep::Sweep>,
}

impl CustomerRuntime {
    /// Logs and broadcasts something this customer's work did or saw.
    pub fn event(&self, level: EventLevel, message: impl Into<String>) {
        self.run_event(level, None, message);
    }

    /// [`Self::event`] naming the run it is about, in the log's fields.
    pub fn run_event(&self, level: EventLevel, run: Option<crate::store::RunId>, message: impl Into<String>) {
        let event = EngineEvent::new(Some(&self.customer.name), level, message);
        let (customer, message) = (self.customer.name.as_str(), event.message.as_str());
        match level {
            EventLevel::Info => tracing::info!(customer, run, "{message}"),
            EventLevel::Warn => tracing::warn!(customer, run, "{message}"),
            EventLevel::Error => tracing::error!(customer, run, "{message}"),
        }
        // No receivers is normal (headless without a console).
        let _ = self.events.send(event);
    }

    /// The kind of an advancing run now: backfill until one has completed
    /// (however many runs it takes: a backfill resumed after a crash is
    /// still a backfill), polls after.
    pub async fn advancing_kind(&self) -> Result<RunKind, SyncError> {
        if self.live.backfill_done.load(Ordering::Relaxed) {
            return Ok(RunKind::Poll);
        }
        let done = self.target.store.backfill_completed(self.customer.id).await?;
        self.live.backfill_done.store(done, Ordering::Relaxed);
        Ok(if done { RunKind::Poll } else { RunKind::Backfill })
    }

    /// Runs one sync and records it (run row, live figures, events). A run
    /// that cannot even be recorded (the state DB is failing) is still
    /// announced and counted as failed, so the streak and its backoff see it.
    pub async fn run(
        &self,
        kind: RunKind,
        mode: Mode,
        cancel: &CancellationToken,
    ) -> Result<RunReport, SyncError> {
        let store = &self.target.store;
        let run_id = if mode.dry_run() {
            None
        } else {
            match store.start_run(self.customer.id, kind, self.target.lease_owner.as_deref()).await {
                Ok(id) => Some(id),
                Err(e) => return Err(self.after_failure(kind, None, SyncError::Store(e)).await),
            }
        };
        let fetcher = Fetcher::new(
            self.client.clone(),
            Arc::clone(&self.budget),
            Arc::clone(&self.clock),
            self.config.request_retry,
            cancel.child_token(),
        );
        self.begin(kind, run_id);
        let counters = Arc::new(Counters::default());
        let result = self.walk(kind, mode, run_id, &fetcher, Arc::clone(&counters)).await;
        let causes = matches!(mode, Mode::Reconcile | Mode::FullScan { .. });
        let mut report = RunReport {
            kind: Some(kind),
            run_id,
            counts: counters.to_map(causes),
            requests: fetcher.requests(),
            ..RunReport::default()
        };
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
            Err(e) => (RunOutcome::Failed, Some(self.failure_text(e).await)),
        };
        let mut result = result;
        if let Some(id) = run_id {
            let requests = i64::try_from(report.requests).unwrap_or(i64::MAX);
            if let Err(e) = store.finish_run(id, outcome, &report.counts, requests, message.as_deref()).await
            {
                // Its work is done (or failed) all the same; a success that
                // cannot be recorded counts as a failure of the state DB.
                if result.is_ok() {
                    result = Err(SyncError::Store(e));
                } else {
                    tracing::error!(customer = %self.customer.name, run = id, error = %e, "cannot record the run's end");
                }
            }
        }
        self.end(&report);
        match result {
            Ok(_) => match self.after_success(kind, mode, &report).await {
                Ok(()) => Ok(report),
                Err(e) => Err(self.after_failure(kind, run_id, e).await),
            },
            Err(e) => Err(self.after_failure(kind, run_id, e).await),
        }
    }

    /// Records a failure of `what` (a run, or the work before one) in the
    /// live figures and logs it with the customer, the run and the cause:
    /// no failure is silent, whether or not a run could be recorded.
    pub async fn note_failure(
        &self,
        what: &str,
        run_id: Option<crate::store::RunId>,
        error: SyncError,
    ) -> SyncError {
        let Some(failure) = FailureKind::of(&error) else { return error };
        let text = self.failure_text(&error).await;
        self.live.record_failure(failure, text.clone(), run_id);
        self.run_event(EventLevel::Error, run_id, format!("{what} failed: {text}"));
        error
    }

    /// A failed run in words, with where the checkpoint stays.
    async fn failure_text(&self, error: &SyncError) -> String {
        if matches!(error, SyncError::TokenRejected(_) | SyncError::Forbidden(_)) {
            return error.to_string();
        }
        match self.target.store.load_checkpoint(self.customer.id).await {
            Ok(checkpoint) => format!(
                "{error}; checkpoint kept at {}",
                crate::domain::format_rfc3339(&checkpoint.watermark)
            ),
            Err(_) => error.to_string(),
        }
    }

    /// Reads the run's window into a sink, then always waits for the sink's
    /// last batch: a run only ends once what it read is delivered and
    /// committed (or has failed).
    async fn walk(
        &self,
        kind: RunKind,
        mode: Mode,
        run_id: Option<crate::store::RunId>,
        fetcher: &Fetcher,
        counters: Arc<Counters>,
    ) -> Result<Walked, SyncError> {
        let mut sink = Sink::new(Arc::clone(&self.target), counters, mode.sink_options()).await?;
        let walked = match self.walk_into(kind, mode, fetcher, &mut sink).await {
            Ok((window, summary)) if matches!(mode, Mode::FullScan { .. }) && window.is_some() => {
                let sweep = self.sweep(run_id, fetcher, &mut sink).await;
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
        &self,
        kind: RunKind,
        mode: Mode,
        fetcher: &Fetcher,
        sink: &mut Sink,
    ) -> Result<(Option<Window>, WalkSummary), SyncError> {
        let store = &self.target.store;
        let priority = match (kind, mode) {
            (RunKind::Backfill, _) => Priority::Backfill,
            (_, Mode::Reconcile | Mode::FullScan { .. }) => Priority::Reconcile,
            _ => Priority::Poll,
        };
        let checkpoint = store.load_checkpoint(self.customer.id).await?;
        // A window must be closed: no write may land in it after we read it.
        // VOMO's clock has whole-second precision, so the second it reports
        // as "now" may still be filling; whatever the settle margin, `to` is
        // at least one second before it.
        let settle = chrono::Duration::from_std(self.config.settle)
            .unwrap_or_default()
            .max(chrono::Duration::seconds(1));
        let window = match mode {
            Mode::Advance => {
                let mut read = self.open_read(fetcher, priority, checkpoint.watermark, settle, sink).await?;
                if matches!(read, OpenRead::Empty)
                    && let Some(repaired) = self.repair_future_checkpoint(checkpoint.watermark).await?
                {
                    read = self.open_read(fetcher, priority, repaired, settle, sink).await?;
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
                let lookback = chrono::Duration::from_std(self.config.reconcile_lookback).unwrap_or_default();
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
            store.begin_window(self.customer.id, window).await?;
        }
        let mut sizer = *locked(&self.live.sizer);
        let mut walker = Walker {
            fetcher,
            priority,
            progress: &self.live.progress,
            sizer: &mut sizer,
            max_chunk: self.config.chunk_users,
        };
        let walked = walker.walk(window, sink, mode == Mode::Advance).await;
        *locked(&self.live.sizer) = sizer;
        walked.map(|summary| (Some(window), summary))
    }

    /// The first read of an advancing run: page 1 of everything changed
    /// since the watermark, with no upper bound. Its `Date` header fixes the
    /// window's end, so no separate request asks VOMO for the time. When the
    /// whole rest fits in that one page, the page is a consistent read of the
    /// window and the run is done in one request (the usual quiet poll).
    async fn open_read(
        &self,
        fetcher: &Fetcher,
        priority: Priority,
        watermark: DateTime<Utc>,
        settle: chrono::Duration,
        sink: &mut Sink,
    ) -> Result<OpenRead, SyncError> {
        let open = crate::vomo::UserFilter { updated_after: Some(watermark), ..Default::default() };
        let first = fetcher.list(priority, &open, 1).await?;
        let progress = &self.live.progress;
        progress.pages.fetch_add(1, Ordering::Relaxed);
        let server_now = self.clock.now().ok_or(super::clock::ClockError::NoDate)?;
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
        &self,
        watermark: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, SyncError> {
        let Some(now) = self.clock.now() else { return Ok(None) };
        if watermark <= whole_second(now) {
            return Ok(None);
        }
        let store = &self.target.store;
        let newest = store.newest_mapped_update(self.customer.id).await?.unwrap_or_else(epoch);
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
            customer: Some(self.customer.name.clone()),
            action: "checkpoint.repaired".into(),
            detail: detail.clone(),
            result: "ok".into(),
        };
        store.repair_checkpoint(self.customer.id, to, &entry).await?;
        self.event(EventLevel::Warn, detail);
        Ok(Some(to))
    }

    fn begin(&self, kind: RunKind, run_id: Option<crate::store::RunId>) {
        let progress = &self.live.progress;
        for counter in [&progress.pages, &progress.users, &progress.total] {
            counter.store(0, Ordering::Relaxed);
        }
        *locked(&self.live.current) = Some((kind, Utc::now()));
        *locked(&self.live.last_progress) = Some(Instant::now());
        self.run_event(EventLevel::Info, run_id, format!("{kind} started"));
    }

    fn end(&self, report: &RunReport) {
        let live = &self.live;
        live.users_total.fetch_add(live.progress.users.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        live.requests_total.fetch_add(report.requests, Ordering::Relaxed);
        *locked(&live.current) = None;
        live.sample();
    }

    async fn after_success(&self, kind: RunKind, mode: Mode, report: &RunReport) -> Result<(), SyncError> {
        self.live.clear_failure();
        if mode == Mode::Advance {
            // An advancing run that ends well has read up to VOMO's present.
            self.live.backfill_done.store(true, Ordering::Relaxed);
        }
        if report.needs_confirmation {
            self.event(
                EventLevel::Warn,
                format!(
                    "{kind}: {} users are gone from VOMO, more than the guard allows; nothing was deleted — confirm with `vomo-sync sync deletions {} --confirm {}`",
                    report.deletions.len(),
                    self.customer.name,
                    report.run_id.unwrap_or_default()
                ),
            );
        }
        let count = |key: &str| report.counts.get(key).copied().unwrap_or(0);
        self.run_event(
            EventLevel::Info,
            report.run_id,
            format!(
                "{kind} done: {} users read, {} created, {} updated, {} deleted, {} to the DLQ, {} requests",
                count("users_seen"),
                count("created"),
                count("updated"),
                count("deleted"),
                count("dlq_parked"),
                report.requests
            ),
        );
        let status = self.target.store.customer_by_id(self.customer.id).await?.map(|c| c.status);
        if mode == Mode::Advance && status == Some(CustomerStatus::Backfilling) && report.window.is_some() {
            self.target.store.set_customer_status(self.customer.id, CustomerStatus::Active, None).await?;
            self.event(EventLevel::Info, "backfill complete; polling from now on");
        }
        Ok(())
    }

    /// Records a failed run in the live figures and the log; a token
    /// failure stops the customer.
    async fn after_failure(
        &self,
        kind: RunKind,
        run_id: Option<crate::store::RunId>,
        error: SyncError,
    ) -> SyncError {
        let error = self.note_failure(&kind.to_string(), run_id, error).await;
        let state = match &error {
            SyncError::TokenRejected(_) => TokenState::Rejected,
            SyncError::Forbidden(_) => TokenState::Forbidden,
            _ => return error,
        };
        let store = &self.target.store;
        let reason = error.to_string();
        let recorded = async {
            store.record_token_state(self.customer.id, state).await?;
            store.set_customer_status(self.customer.id, CustomerStatus::TokenRejected, Some(&reason)).await?;
            store
                .record_audit(&AuditEntry {
                    at: Utc::now(),
                    actor: "engine".into(),
                    customer: Some(self.customer.name.clone()),
                    action: "token.rejected".into(),
                    detail: reason.clone(),
                    result: "customer stopped; waiting for a new token".into(),
                })
                .await
        };
        if let Err(e) = recorded.await {
            tracing::error!(customer = %self.customer.name, error = %e, "cannot record the rejected token");
        }
        error
    }
}
