//! The one decision about a customer (design.md §3.10): what state it is
//! in, how fresh its data is, and what needs a human — made here, once,
//! from a [`CustomerSnapshot`], and rendered by every front end (console,
//! `status`, the health page, alerts, `/metrics`). No front end decides
//! health on its own; the thresholds live in [`Thresholds`].
//!
//! Freshness is only a lag once the backfill is complete: before that the
//! customer's data is a partial copy, measured as backfill progress (% and
//! ETA at its budget), never as a lag from the epoch. A customer whose
//! owning instance stopped heart-beating is `no live instance`, with how
//! long ago it was last seen, whatever its last figures said.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::run::live::FailureKind;
use super::runtime::snapshot::CustomerSnapshot;
pub use super::thresholds::Thresholds;
use crate::domain::{CustomerStatus, RunKind, RunOutcome, duration_text};

/// Users per VOMO page: what one request of a backfill reads.
const PAGE: u64 = 15;

/// What a customer is doing, or why it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Onboarding,
    Backfilling,
    Active,
    Paused,
    TokenRejected,
    /// Its runs keep failing (VOMO, its clock, the state DB, a destination).
    Failing,
    /// A run made no progress for too long.
    Stalled,
    /// It should be running, but no live process holds it.
    NoLiveInstance,
    Offboarded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Backfilling => "backfilling",
            Self::Active => "active",
            Self::Paused => "paused",
            Self::TokenRejected => "token rejected",
            Self::Failing => "failing",
            Self::Stalled => "stalled",
            Self::NoLiveInstance => "no live instance",
            Self::Offboarded => "offboarded",
        }
    }
}

/// How current the customer's copy is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Freshness {
    /// The backfill is complete: VOMO's clock − checkpoint.
    Lag { secs: i64 },
    /// The backfill is not complete: how far it has read (when known), how
    /// long the rest takes at the budget, and when and why it stopped if
    /// it is not running.
    Backfill {
        percent: Option<u8>,
        eta_secs: Option<i64>,
        stopped_secs_ago: Option<i64>,
        stopped_because: Option<String>,
    },
}

/// How bad a matter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Paused or offboarded on purpose: nothing to do, nothing working.
    Idle,
    Good,
    /// Worth a look (a backfill under way, records waiting to be retried).
    Warn,
    /// Needs a human.
    Bad,
}

/// One thing about the customer worth knowing, worst first in a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    TokenRejected,
    NoLiveInstance,
    Stalled,
    ClockRefused,
    StateDbFailing,
    RunsFailing,
    CheckpointAhead,
    DestinationHalted,
    LagHigh,
    DlqPermanent,
    DlqStale,
    DeletionGuard,
    ReconcileGaps,
    DlqRetrying,
    Backfilling,
    Paused,
    Offboarded,
}

/// A reason, how bad it is, and a sentence for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    pub reason: Reason,
    pub level: Level,
    pub text: String,
}

/// The decision about one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub state: State,
    pub freshness: Freshness,
    /// What is worth knowing, worst first; empty when all is well.
    pub attention: Vec<Attention>,
    /// How long ago the owning process last heart-beat, when it is another
    /// process and it is known.
    pub owner_seen_secs_ago: Option<i64>,
}

impl Verdict {
    /// The worst level of its matters (`Good` when there are none).
    pub fn level(&self) -> Level {
        match self.state {
            State::Paused | State::Offboarded if self.attention.iter().all(|a| a.level < Level::Bad) => {
                Level::Idle
            }
            _ => self.attention.iter().map(|a| a.level).max().unwrap_or(Level::Good),
        }
    }

    /// True when something needs a human.
    pub fn needs_attention(&self) -> bool {
        self.level() == Level::Bad
    }

    pub fn has(&self, reason: Reason) -> bool {
        self.attention.iter().any(|a| a.reason == reason)
    }

    /// The state in a few words: `no live instance (last seen 70s ago)`.
    pub fn state_text(&self) -> String {
        match (self.state, self.owner_seen_secs_ago) {
            (State::NoLiveInstance, Some(secs)) => {
                format!("no live instance (last seen {} ago)", duration_text(secs))
            }
            (state, _) => state.as_str().to_owned(),
        }
    }

    /// The freshness in a column's width: `30s`, `58%`, `—`.
    pub fn freshness_short(&self) -> String {
        match &self.freshness {
            Freshness::Lag { secs } => duration_text(*secs),
            Freshness::Backfill { percent: Some(p), .. } => format!("{p}%"),
            Freshness::Backfill { percent: None, .. } => "—".to_owned(),
        }
    }

    /// The freshness in words: `lag 30s`, `backfill 58% · ETA 4m`,
    /// `backfill 58% · stopped 2m ago (token rejected)`.
    pub fn freshness_text(&self) -> String {
        match &self.freshness {
            Freshness::Lag { secs } => format!("lag {}", duration_text(*secs)),
            Freshness::Backfill { percent, eta_secs, stopped_secs_ago, stopped_because } => {
                let mut text = match percent {
                    Some(p) => format!("backfill {p}%"),
                    None => "backfill".to_owned(),
                };
                match (stopped_secs_ago, eta_secs) {
                    (Some(ago), _) => {
                        text.push_str(&format!(" · stopped {} ago", duration_text(*ago)));
                        if let Some(why) = stopped_because {
                            text.push_str(&format!(" ({why})"));
                        }
                    }
                    (None, Some(eta)) => text.push_str(&format!(" · ETA {}", duration_text(*eta))),
                    (None, None) => {}
                }
                text
            }
        }
    }
}

impl CustomerSnapshot {
    /// The one decision about this customer as of `now`.
    pub fn verdict(&self, thresholds: &Thresholds, now: DateTime<Utc>) -> Verdict {
        let owner_seen_secs_ago = self.owner_seen_at.map(|at| (now - at).num_seconds().max(0));
        let state = state_of(self, thresholds, owner_seen_secs_ago);
        let freshness = freshness_of(self, state, now);
        let mut attention = attention_of(self, state, &freshness, thresholds, now);
        attention.sort_by_key(|a| std::cmp::Reverse(a.level));
        Verdict { state, freshness, attention, owner_seen_secs_ago }
    }

    /// True once the customer's first full copy is complete. An active
    /// customer has one (that is how it became active), a backfilling one
    /// has not; for a customer stopped since (token, pause, offboarding) the
    /// run history tells: a poll has run, or a backfill ended well (the
    /// history keeps the last run of each kind).
    pub fn backfill_complete(&self) -> bool {
        match self.status {
            CustomerStatus::Active => true,
            CustomerStatus::Backfilling | CustomerStatus::Onboarding => false,
            CustomerStatus::TokenRejected | CustomerStatus::Paused | CustomerStatus::Offboarded => {
                self.last_runs.iter().any(|r| {
                    r.kind == RunKind::Poll || (r.kind == RunKind::Backfill && r.outcome == RunOutcome::Ok)
                })
            }
        }
    }
}

fn state_of(c: &CustomerSnapshot, thresholds: &Thresholds, owner_seen: Option<i64>) -> State {
    match c.status {
        CustomerStatus::Offboarded => return State::Offboarded,
        CustomerStatus::Paused => return State::Paused,
        CustomerStatus::TokenRejected => return State::TokenRejected,
        CustomerStatus::Onboarding | CustomerStatus::Backfilling | CustomerStatus::Active => {}
    }
    let alive = c.owned_here
        || (c.owner.is_some() && owner_seen.is_some_and(|secs| secs <= thresholds.alive_within_secs));
    if !alive {
        State::NoLiveInstance
    } else if c.stalled {
        State::Stalled
    } else if c.failure.is_some() {
        State::Failing
    } else if c.status == CustomerStatus::Active {
        State::Active
    } else if c.status == CustomerStatus::Onboarding {
        State::Onboarding
    } else {
        State::Backfilling
    }
}

fn freshness_of(c: &CustomerSnapshot, state: State, now: DateTime<Utc>) -> Freshness {
    if c.backfill_complete() {
        return Freshness::Lag { secs: c.lag_secs };
    }
    let synced = u64::try_from(c.users_synced).unwrap_or(0);
    let running =
        c.current.as_ref().filter(|r| r.kind == RunKind::Backfill && state != State::NoLiveInstance);
    // The mapping count is refreshed less often than a running walk's own
    // count: what is done is the larger of the two.
    let synced = running.map_or(synced, |run| synced.max(run.users));
    let (left, stopped) = match running {
        Some(run) if run.total > 0 => (Some(run.total.saturating_sub(run.users)), None),
        Some(_) => (None, None),
        None => {
            let last =
                c.last_runs.iter().filter(|r| r.kind == RunKind::Backfill).max_by_key(|r| r.started_at);
            let left = last.and_then(|r| {
                let total = u64::try_from(r.counts.window_total).ok().filter(|t| *t > 0)?;
                Some(total.saturating_sub(u64::try_from(r.counts.users_seen).unwrap_or(0)))
            });
            let stopped = last.and_then(|r| r.finished_at).map(|at| (now - at).num_seconds().max(0));
            (left, stopped)
        }
    };
    let percent = left.map(|left| {
        let whole = synced + left;
        let p = (synced * 100).checked_div(whole).unwrap_or(0);
        u8::try_from(p.min(99)).unwrap_or(99)
    });
    let eta_secs = left.filter(|_| stopped.is_none()).and_then(|left| {
        let rate = c.budget.effective;
        (rate > 0.0).then(|| (left.div_ceil(PAGE) as f64 / rate).ceil() as i64)
    });
    let stopped_because = stopped.and_then(|_| stop_reason(c, state));
    Freshness::Backfill { percent, eta_secs, stopped_secs_ago: stopped, stopped_because }
}

/// Why a backfill that is not running stopped, in a few words.
fn stop_reason(c: &CustomerSnapshot, state: State) -> Option<String> {
    match state {
        State::TokenRejected => Some("token rejected".to_owned()),
        State::Paused => Some("paused".to_owned()),
        State::NoLiveInstance => Some("no live instance".to_owned()),
        State::Offboarded => Some("offboarded".to_owned()),
        _ => c.failure.as_ref().map(|f| f.kind.as_str().replace('_', " ")),
    }
}

fn note(found: &mut Vec<Attention>, reason: Reason, level: Level, text: String) {
    found.push(Attention { reason, level, text });
}

fn attention_of(
    c: &CustomerSnapshot,
    state: State,
    freshness: &Freshness,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> Vec<Attention> {
    let mut found = Vec::new();
    state_attention(c, state, &mut found);
    if let Some(ahead) = c.checkpoint_ahead_secs {
        let text = format!(
            "the checkpoint stands {} in VOMO's future; the next run moves it back",
            crate::domain::span_words(ahead)
        );
        note(&mut found, Reason::CheckpointAhead, Level::Bad, text);
    }
    for d in &c.destinations {
        if let Some(halt) = &d.halt {
            let text =
                format!("destination {} halted ({}): {}", d.name, halt.reason.replace('_', " "), halt.hint);
            note(&mut found, Reason::DestinationHalted, Level::Bad, text);
        }
    }
    if let Freshness::Lag { secs } = freshness
        && *secs > thresholds.lag_above_secs
        && matches!(state, State::Active | State::Failing | State::NoLiveInstance)
    {
        let text = format!(
            "the checkpoint is {} behind VOMO (limit {})",
            duration_text(*secs),
            duration_text(thresholds.lag_above_secs)
        );
        note(&mut found, Reason::LagHigh, Level::Bad, text);
    }
    dlq_attention(c, thresholds, now, &mut found);
    run_attention(c, &mut found);
    found
}

fn state_attention(c: &CustomerSnapshot, state: State, found: &mut Vec<Attention>) {
    match state {
        State::TokenRejected => note(
            found,
            Reason::TokenRejected,
            Level::Bad,
            "VOMO rejected the token; the customer is stopped until a new one is given (console: u; CLI: vomo-sync customer token NAME)".into(),
        ),
        State::NoLiveInstance => note(
            found,
            Reason::NoLiveInstance,
            Level::Bad,
            "no live vomo-sync instance runs this customer; start `vomo-sync headless`".into(),
        ),
        State::Stalled => note(found, Reason::Stalled, Level::Bad, "a run has made no progress".into()),
        State::Backfilling | State::Onboarding => {
            note(found, Reason::Backfilling, Level::Warn, "the first full copy is in progress".into())
        }
        State::Paused => note(found, Reason::Paused, Level::Idle, "paused by an operator".into()),
        State::Offboarded => note(found, Reason::Offboarded, Level::Idle, "offboarded".into()),
        State::Active | State::Failing => {}
    }
    if let Some(f) = &c.failure {
        let reason = match f.kind {
            FailureKind::VomoClock => Reason::ClockRefused,
            FailureKind::StateDb => Reason::StateDbFailing,
            _ => Reason::RunsFailing,
        };
        let runs = if f.consecutive == 1 { "run" } else { "runs in a row" };
        let text = format!("{} {runs} failed: {}", f.consecutive, f.message);
        note(found, reason, Level::Bad, text);
    }
}

fn dlq_attention(
    c: &CustomerSnapshot,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
    found: &mut Vec<Attention>,
) {
    if c.dlq.permanent > 0 {
        let text = match c.dlq.permanent {
            1 => "1 DLQ entry waits for an operator (retry with t or discard)".to_owned(),
            n => format!("{n} DLQ entries wait for an operator (retry with t or discard)"),
        };
        note(found, Reason::DlqPermanent, Level::Bad, text);
    }
    if c.dlq.oldest.is_some_and(|oldest| (now - oldest).num_seconds() > thresholds.dlq_older_than_secs) {
        let text = format!(
            "{} DLQ entries, the oldest older than {}",
            c.dlq.pending,
            duration_text(thresholds.dlq_older_than_secs)
        );
        note(found, Reason::DlqStale, Level::Bad, text);
    }
    let retrying = c.dlq.pending - c.dlq.permanent;
    if retrying > 0 {
        let text = match retrying {
            1 => "1 DLQ entry is retried automatically".to_owned(),
            n => format!("{n} DLQ entries are retried automatically"),
        };
        note(found, Reason::DlqRetrying, Level::Warn, text);
    }
}

fn run_attention(c: &CustomerSnapshot, found: &mut Vec<Attention>) {
    if let Some(run) = c
        .last_runs
        .iter()
        .find(|r| r.kind == RunKind::Deletions && r.outcome == RunOutcome::NeedsConfirmation)
    {
        let text = format!(
            "deletion sweep run {} stopped at the mass-deletion guard; confirm or dismiss it",
            run.id
        );
        note(found, Reason::DeletionGuard, Level::Warn, text);
    }
    let last_reconcile =
        c.last_runs.iter().filter(|r| r.kind == RunKind::Reconcile).max_by_key(|r| r.started_at);
    if let Some(run) = last_reconcile {
        let gaps = run.counts.repaired();
        if gaps > 0 {
            let text = format!("reconciliation run {} found and repaired {gaps} gaps", run.id);
            note(found, Reason::ReconcileGaps, Level::Warn, text);
        }
    }
}
