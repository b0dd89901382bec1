//! What front ends see of the engine: an [`EngineSnapshot`] (cheap to clone,
//! no handles, rebuilt about once a second and on every change worth
//! showing) and a stream of [`EngineEvent`]s for log panes. Front ends render
//! from the latest snapshot and never hold a lock while drawing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::budget::BudgetFigures;
use crate::domain::{CustomerStatus, RunKind, RunOutcome, TokenState, Window};

/// The engine as a whole.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineSnapshot {
    pub at: Option<DateTime<Utc>>,
    /// This process's lease owner id.
    pub owner: String,
    pub customers: Vec<CustomerSnapshot>,
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
    pub last_error: Option<String>,
    /// True when this process holds the customer's lease and works on it.
    pub owned_here: bool,
    /// The process holding the customer's lease (`host:pid:tag`), if any.
    pub owner: Option<String>,
    /// True when a run has made no progress for too long.
    pub stalled: bool,
    pub requests_total: u64,
    /// How often the customer is reconciled (its settings).
    pub reconcile_every_secs: u64,
}

/// The rate budget as shown.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct BudgetView {
    pub configured: f64,
    pub effective: f64,
    pub requests: u64,
    pub rate_limited: u64,
    pub paused: bool,
}

impl From<BudgetFigures> for BudgetView {
    fn from(f: BudgetFigures) -> Self {
        Self {
            configured: f.configured,
            effective: f.effective,
            requests: f.granted,
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
    pub counts: BTreeMap<String, i64>,
    pub requests_used: i64,
    pub message: Option<String>,
}

/// How much an event matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    Info,
    Warn,
    Error,
}

/// Something the engine did or saw, for log panes.
#[derive(Debug, Clone, Serialize)]
pub struct EngineEvent {
    pub at: DateTime<Utc>,
    pub customer: Option<String>,
    pub level: EventLevel,
    pub message: String,
}

impl EngineEvent {
    pub fn new(customer: Option<&str>, level: EventLevel, message: impl Into<String>) -> Self {
        Self { at: Utc::now(), customer: customer.map(str::to_owned), level, message: message.into() }
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
    pub last_error: Option<String>,
    pub stalled: bool,
    pub requests_total: u64,
}

impl LiveFigures {
    /// A worker's figures now.
    pub(super) fn of(
        live: &super::sync::Live,
        budget: Option<&super::budget::Budget>,
        stall_after: std::time::Duration,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let progress_of = |live: &super::sync::Live| {
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
            last_error: live.last_error(),
            requests_total: live.requests_total.load(Ordering::Relaxed),
        }
    }
}

/// Who holds a customer, as a snapshot shows it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Holder<'a> {
    pub owner: Option<&'a str>,
    pub here: bool,
}

/// Builds one customer's snapshot from the state DB's figures and the live
/// figures of the process running it (here or elsewhere), if any.
pub(super) fn build_customer(
    customer: &crate::store::Customer,
    overview: Option<&crate::store::Overview>,
    users_synced: i64,
    live: Option<&LiveFigures>,
    server_now: Option<DateTime<Utc>>,
    holder: Holder<'_>,
) -> CustomerSnapshot {
    let watermark = overview.and_then(|o| o.watermark).unwrap_or_else(crate::domain::epoch);
    let now = server_now.unwrap_or_else(Utc::now);
    let idle = LiveFigures::default();
    let live = live.unwrap_or(&idle);
    let budget = live.budget.unwrap_or(BudgetView {
        configured: customer.settings.rate_per_s,
        effective: customer.settings.rate_per_s,
        ..BudgetView::default()
    });
    CustomerSnapshot {
        name: customer.name.clone(),
        status: customer.status,
        status_reason: customer.status_reason.clone(),
        vomo_url: customer.vomo_url.clone(),
        watermark,
        lag_secs: (now - watermark).num_seconds().max(0),
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
                    counts: r.counts.clone(),
                    requests_used: r.requests_used,
                    message: r.message.clone(),
                })
                .collect()
        }),
        next_poll_at: live.next_poll_at,
        last_error: live.last_error.clone(),
        owned_here: holder.here,
        owner: holder.owner.map(str::to_owned),
        stalled: live.stalled,
        requests_total: live.requests_total,
        reconcile_every_secs: customer.settings.reconcile_every_secs,
    }
}
