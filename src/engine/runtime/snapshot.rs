//! What front ends see of the engine: an [`EngineSnapshot`] (cheap to clone,
//! no handles, rebuilt about once a second and on every change worth
//! showing) and a stream of [`EngineEvent`]s for log panes. Front ends render
//! from the latest snapshot and never hold a lock while drawing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::RateSetting;
use crate::domain::{CustomerStatus, RunKind, RunOutcome, TokenState, Window};
use crate::engine::run::budget::{Budget, BudgetFigures, Priority};
use crate::engine::run::live::{FailureKind, Live, RunFailure, TailFigures};

/// The engine as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineSnapshot {
    pub at: Option<DateTime<Utc>>,
    /// This process's lease owner id.
    pub owner: String,
    /// The limits its customers' verdicts are judged by (the same for
    /// every front end).
    pub thresholds: crate::engine::thresholds::Thresholds,
    pub customers: Vec<CustomerSnapshot>,
    /// The supervisor cannot read or write the state DB (reload,
    /// heartbeat): since when, and the last error.
    pub state_db_failing: Option<StateDbFailure>,
}

/// Snapshots come about once a second; one this old means the engine is
/// stuck (waiting on its state DB), and what it shows may not be true.
const STALE_SNAPSHOT_SECS: i64 = 30;

/// The state DB failing the supervisor's own reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateDbFailure {
    pub since: DateTime<Utc>,
    pub message: String,
}

impl EngineSnapshot {
    /// Why this process is not ready to be trusted with its customers,
    /// if it is not: the state DB fails the supervisor, or a customer's
    /// runs keep failing on it (two in a row), or a run is stalled.
    pub fn not_ready(&self) -> Option<String> {
        let age = self.at.map(|at| (Utc::now() - at).num_seconds());
        if let Some(age) = age.filter(|age| *age > STALE_SNAPSHOT_SECS) {
            return Some(format!("the engine has published nothing for {age} s (blocked on the state DB?)"));
        }
        if let Some(failure) = &self.state_db_failing {
            return Some(format!("state DB failing: {}", failure.message));
        }
        let failing: Vec<&str> = self
            .customers
            .iter()
            .filter(|c| {
                c.failure.as_ref().is_some_and(|f| f.kind == FailureKind::StateDb && f.consecutive >= 2)
            })
            .map(|c| c.name.as_str())
            .collect();
        if !failing.is_empty() {
            return Some(format!("state DB failing the runs of: {}", failing.join(", ")));
        }
        let stalled: Vec<&str> =
            self.customers.iter().filter(|c| c.stalled).map(|c| c.name.as_str()).collect();
        (!stalled.is_empty()).then(|| format!("stalled: {}", stalled.join(", ")))
    }
}

impl EngineSnapshot {
    pub fn customer(&self, name: &str) -> Option<&CustomerSnapshot> {
        self.customers.iter().find(|c| c.name == name)
    }
}

/// One customer's health and work.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerSnapshot {
    pub name: String,
    pub status: CustomerStatus,
    pub status_reason: Option<String>,
    pub vomo_url: String,
    /// Everything updated before this is synced.
    pub watermark: DateTime<Utc>,
    /// How far the checkpoint trails VOMO's clock, in seconds.
    pub lag_secs: i64,
    /// How far the checkpoint stands ahead of VOMO's clock (or, without
    /// it, of this machine's beyond the allowed skew), in seconds: a
    /// checkpoint in the future hides every later edit; the next run
    /// repairs it.
    pub checkpoint_ahead_secs: Option<i64>,
    pub in_flight: Option<Window>,
    /// Mapped users not marked deleted.
    pub users_synced: i64,
    /// Users read per minute over the last minutes of work.
    pub throughput_per_min: f64,
    pub budget: BudgetView,
    pub token: Option<TokenView>,
    pub dlq: DlqView,
    pub current: Option<RunProgress>,
    /// A reconciliation or full scan running beside the polls.
    pub background: Option<RunProgress>,
    pub last_runs: Vec<RunView>,
    pub next_poll_at: Option<DateTime<Utc>>,
    /// The runs' current failure streak, if they are failing.
    pub failure: Option<RunFailure>,
    /// True when this process holds the customer's lease and works on it.
    pub owned_here: bool,
    /// The process holding the customer's lease (`host:pid:tag`), if any.
    pub owner: Option<String>,
    /// When the process that last held the lease last showed life (none
    /// when it is this process, or no process ever held it).
    pub owner_seen_at: Option<DateTime<Utc>>,
    /// True when a run has made no progress for too long.
    pub stalled: bool,
    pub requests_total: u64,
    /// The destinations as the process running the customer sees them
    /// (empty when nobody runs it).
    pub destinations: Vec<DestinationView>,
    /// How often the customer is reconciled (its settings).
    pub reconcile_every_secs: u64,
    /// The live tail as the process running the customer sees it (none
    /// when it is off or nobody runs the customer).
    pub tail: Option<TailFigures>,
}

/// The rate budget as shown.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct BudgetView {
    /// The rate follows what VOMO declares, from a safe start (`--rate auto`).
    #[serde(default)]
    pub auto: bool,
    /// The operator's cap, requests/s (0 = none).
    pub configured: f64,
    /// The rate allowed now, requests/s (0 = unlimited).
    pub effective: f64,
    /// Requests per second sent over the last minute.
    #[serde(default)]
    pub used_per_s: f64,
    /// What VOMO's `X-RateLimit-*` said last; `None` before an answer carried them.
    #[serde(default)]
    pub declared: Option<DeclaredView>,
    pub requests: u64,
    /// `requests` by work class.
    #[serde(default)]
    pub by_class: ClassRequests,
    pub rate_limited: u64,
    pub paused: bool,
}

impl BudgetView {
    /// The view of a budget not running here: the rate it would start at.
    fn idle(setting: RateSetting) -> Self {
        let (auto, configured, effective) = match setting {
            RateSetting::Auto => (true, 0.0, crate::engine::run::budget::AUTO_START),
            RateSetting::Cap(cap) => (false, cap, cap),
        };
        Self { auto, configured, effective, ..Self::default() }
    }

    /// The operator's setting: `auto` or the cap.
    pub fn setting(&self) -> RateSetting {
        if self.auto { RateSetting::Auto } else { RateSetting::Cap(self.configured) }
    }

    /// What VOMO declares, short enough to sit beside the rate used:
    /// "VOMO 3/s (2 left)", "VOMO 60/? (30 left)" while the window is not
    /// yet read, "no VOMO limit" while no answer carried the headers.
    pub fn declared_text(&self) -> String {
        match self.declared {
            Some(DeclaredView { per_s: Some(per_s), remaining, .. }) => {
                format!("VOMO {}/s ({remaining} left)", trim_rate(per_s))
            }
            Some(DeclaredView { limit, remaining, .. }) => format!("VOMO {limit}/? ({remaining} left)"),
            None => "no VOMO limit".to_owned(),
        }
    }
}

/// `3`, `0.5`, `16.7`: a rate without a trailing `.0`.
fn trim_rate(rate: f64) -> String {
    let text = format!("{rate:.1}");
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => text,
    }
}

/// VOMO's declared rate limit as its answers carried it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DeclaredView {
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining` of the latest answer.
    pub remaining: u32,
    /// The limit as requests/s, once the answers showed its window.
    pub per_s: Option<f64>,
    /// Seconds since the latest answer with the headers.
    pub age_secs: u64,
}

/// Requests a customer's budget granted, by work class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRequests {
    pub writeback: u64,
    pub poll: u64,
    pub reconcile: u64,
    pub backfill: u64,
    pub tail: u64,
}

impl ClassRequests {
    /// Each class with its count, highest priority first.
    pub fn each(&self) -> [(Priority, u64); 5] {
        [
            (Priority::Writeback, self.writeback),
            (Priority::Poll, self.poll),
            (Priority::Reconcile, self.reconcile),
            (Priority::Backfill, self.backfill),
            (Priority::Tail, self.tail),
        ]
    }
}

impl From<BudgetFigures> for BudgetView {
    fn from(f: BudgetFigures) -> Self {
        let class = |p: Priority| f.granted_by_class[p as usize];
        Self {
            auto: f.setting == RateSetting::Auto,
            configured: match f.setting {
                RateSetting::Auto => 0.0,
                RateSetting::Cap(cap) => cap,
            },
            effective: f.effective,
            used_per_s: f.used_per_s,
            declared: f.declared.map(|d| DeclaredView {
                limit: d.limit,
                remaining: d.remaining,
                per_s: d.per_s,
                age_secs: d.age.as_secs(),
            }),
            requests: f.granted,
            by_class: ClassRequests {
                writeback: class(Priority::Writeback),
                poll: class(Priority::Poll),
                reconcile: class(Priority::Reconcile),
                backfill: class(Priority::Backfill),
                tail: class(Priority::Tail),
            },
            rate_limited: f.rate_limited,
            paused: f.paused,
        }
    }
}

/// What may be shown of a token: its fingerprint, never the token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub fingerprint: String,
    pub state: TokenState,
    pub validated_at: Option<DateTime<Utc>>,
}

/// Pending DLQ entries.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DlqView {
    pub pending: i64,
    pub permanent: i64,
    pub oldest: Option<DateTime<Utc>>,
}

/// A run in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunProgress {
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub pages: u64,
    pub users: u64,
    /// Users in the window, once its first page is read.
    pub total: u64,
    pub requests: u64,
}

/// A finished (or waiting) run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: crate::store::RunId,
    pub kind: RunKind,
    pub outcome: RunOutcome,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: crate::domain::RunCounts,
    pub requests_used: i64,
    pub message: Option<String>,
}

/// One destination of a customer as shown: whether it halted (its token
/// rejected, its permissions or its daily allowance gone) and, for one with
/// a request budget of its own (HubSpot), that budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationView {
    pub name: String,
    pub kind: String,
    pub halt: Option<DestinationHalt>,
    pub budget: Option<DestinationBudget>,
}

/// A destination that takes nothing for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationHalt {
    /// `token_rejected`, `forbidden` or `daily_limit`.
    pub reason: String,
    pub message: String,
    /// What to do about it.
    pub hint: String,
    pub since: DateTime<Utc>,
    pub retry_at: DateTime<Utc>,
}

/// A destination's own request budget (HubSpot's, per 10 seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationBudget {
    pub configured_per_10s: f64,
    pub effective_per_10s: f64,
    pub requests: u64,
    /// 429 answers by the destination's policy name.
    pub rate_limited: std::collections::BTreeMap<String, u64>,
    pub paused: bool,
    pub daily_limit: Option<u64>,
    pub daily_remaining: Option<u64>,
    pub daily_stop_until: Option<DateTime<Utc>>,
}

impl DestinationView {
    fn of(destination: &crate::dest::Destination) -> Self {
        Self {
            name: destination.name().to_owned(),
            kind: destination.spec().kind().to_owned(),
            halt: destination.halt().map(|h| DestinationHalt {
                reason: h.reason.to_owned(),
                message: h.message,
                hint: h.hint,
                since: h.since,
                retry_at: h.retry_at,
            }),
            budget: destination.budget_figures().map(|f| DestinationBudget {
                configured_per_10s: f.configured_per_10s,
                effective_per_10s: f.effective_per_10s,
                requests: f.requests,
                rate_limited: f.rate_limited,
                paused: f.paused,
                daily_limit: f.daily_limit,
                daily_remaining: f.daily_remaining,
                daily_stop_until: f.daily_stop_until,
            }),
        }
    }
}

/// What only the process running a customer knows: its figures in memory.
/// Owners publish these in their heartbeat row, so processes elsewhere
/// (an attached console, another instance's health page) show them too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiveFigures {
    pub throughput_per_min: f64,
    pub budget: Option<BudgetView>,
    pub current: Option<RunProgress>,
    pub background: Option<RunProgress>,
    pub next_poll_at: Option<DateTime<Utc>>,
    pub failure: Option<RunFailure>,
    pub stalled: bool,
    pub requests_total: u64,
    /// The customer's destinations as its runs see them (older heartbeat
    /// rows carry none).
    #[serde(default)]
    pub destinations: Vec<DestinationView>,
    /// The live tail's figures (older heartbeat rows carry none).
    #[serde(default)]
    pub tail: Option<TailFigures>,
}

impl LiveFigures {
    /// A worker's figures now.
    pub(crate) fn of(live: &Live, budget: Option<&Budget>, stall_after: std::time::Duration) -> Self {
        use std::sync::atomic::Ordering;
        let progress_of = |live: &Live| {
            live.current().map(|(kind, started_at)| RunProgress {
                kind,
                started_at,
                pages: live.progress.pages.load(Ordering::Relaxed),
                users: live.progress.users.load(Ordering::Relaxed),
                total: live.progress.total.load(Ordering::Relaxed),
                requests: 0,
            })
        };
        let current = progress_of(live);
        Self {
            throughput_per_min: live.throughput_per_min(),
            budget: budget.map(|b| b.figures().into()),
            background: live.background().and_then(|b| progress_of(&b)),
            stalled: current.is_some() && live.last_progress().is_some_and(|at| at.elapsed() > stall_after),
            current,
            next_poll_at: live.next_poll_at(),
            failure: live.failure(),
            requests_total: live.requests_total.load(Ordering::Relaxed),
            destinations: live
                .destinations()
                .map(|all| all.iter().map(DestinationView::of).collect())
                .unwrap_or_default(),
            tail: Some(live.tail()),
        }
    }
}

/// How far this machine's clock may be from VOMO's when VOMO's is not known
/// (the default `sync.max_clock_skew`; a checkpoint beyond it is surely wrong).
const MAX_LOCAL_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Who holds a customer, as a snapshot shows it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Holder<'a> {
    pub owner: Option<&'a str>,
    pub here: bool,
    /// When the last holder last showed life, if it is another process.
    pub seen_at: Option<DateTime<Utc>>,
}

/// Builds one customer's snapshot from the state DB's figures and the live
/// figures of the process running it (here or elsewhere), if any.
pub(crate) fn build_customer(
    customer: &crate::store::Customer,
    overview: Option<&crate::store::Overview>,
    users_synced: i64,
    live: Option<&LiveFigures>,
    server_now: Option<DateTime<Utc>>,
    holder: Holder<'_>,
) -> CustomerSnapshot {
    let watermark = overview.and_then(|o| o.watermark).unwrap_or_else(crate::domain::epoch);
    let now = server_now.unwrap_or_else(Utc::now);
    // Without VOMO's clock, this machine's may differ from it by the skew.
    let margin = if server_now.is_some() { chrono::Duration::zero() } else { MAX_LOCAL_SKEW };
    let ahead = watermark - (now + margin);
    let idle = LiveFigures::default();
    let live = live.unwrap_or(&idle);
    let budget = live.budget.unwrap_or_else(|| BudgetView::idle(RateSetting::of(&customer.settings)));
    CustomerSnapshot {
        name: customer.name.clone(),
        status: customer.status,
        status_reason: customer.status_reason.clone(),
        vomo_url: customer.vomo_url.clone(),
        watermark,
        lag_secs: (now - watermark).num_seconds().max(0),
        checkpoint_ahead_secs: (ahead > chrono::Duration::zero()).then(|| (watermark - now).num_seconds()),
        in_flight: overview.and_then(|o| o.in_flight),
        users_synced,
        throughput_per_min: live.throughput_per_min,
        budget,
        token: overview.and_then(|o| o.token.as_ref()).map(|t| TokenView {
            fingerprint: t.fingerprint.clone(),
            state: t.state,
            validated_at: t.validated_at,
        }),
        dlq: overview.map_or_else(DlqView::default, |o| DlqView {
            pending: o.dlq.pending,
            permanent: o.dlq.permanent,
            oldest: o.dlq.oldest,
        }),
        current: live.current.clone(),
        background: live.background.clone(),
        last_runs: overview.map_or_else(Vec::new, |o| {
            o.last_runs
                .iter()
                .map(|r| RunView {
                    id: r.id,
                    kind: r.kind,
                    outcome: r.outcome,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    counts: r.counts,
                    requests_used: r.requests_used,
                    message: r.message.clone(),
                })
                .collect()
        }),
        next_poll_at: live.next_poll_at,
        failure: live.failure.clone(),
        owned_here: holder.here,
        owner: holder.owner.map(str::to_owned),
        owner_seen_at: holder.seen_at.filter(|_| !holder.here),
        stalled: live.stalled,
        requests_total: live.requests_total,
        destinations: live.destinations.clone(),
        reconcile_every_secs: customer.settings.reconcile_every_secs,
        tail: live.tail.clone().filter(|t| t.every_secs > 0 || t.reads > 0),
    }
}
