//! The console's model: [`App`] and its plain data — the customer rows in
//! their filtered and sorted order, the selection, the pane in focus, what
//! the keyboard is doing ([`Mode`]), the log, the DLQ entries, the
//! sparkline history — and the health ranking the rows are sorted and
//! coloured by. Methods here change the model only; deciding what a key or
//! a message means is `update`'s job.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tui_input::Input;

use super::messages::Effect;
use crate::domain::{CustomerStatus, RunKind, RunOutcome, TokenState};
use crate::engine::DlqItem;
use crate::engine::verdict::{Level, Verdict};
use crate::engine::{CustomerSnapshot, EngineEvent, EngineSnapshot, EventLevel};
use crate::tui::keys::KeyMap;

/// How long an outcome stays in the status bar before the key hints return.
pub const STATUS_SHOWN_SECS: i64 = 10;

/// Events kept for the log pane.
const LOG_CAPACITY: usize = 500;
/// Samples kept per customer for the sparklines (one per snapshot
/// second would be 3,600 an hour; one every 15 s keeps the hour in 240).
const HISTORY_SAMPLES: usize = 240;
const HISTORY_EVERY_SECS: i64 = 15;

/// How healthy a customer looks, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Bad,
    Warn,
    Good,
    Idle,
}

/// How a customer is drawn, from the engine's verdict (the console decides
/// nothing about health itself).
pub fn health(verdict: &Verdict) -> Health {
    match verdict.level() {
        Level::Bad => Health::Bad,
        Level::Warn => Health::Warn,
        Level::Good => Health::Good,
        Level::Idle => Health::Idle,
    }
}

/// The token's state as the panes show it, and how healthy that is.
pub fn token_health(c: &CustomerSnapshot) -> (&'static str, Health) {
    match c.token.as_ref().map(|t| t.state) {
        None => ("none", if c.status == CustomerStatus::Offboarded { Health::Idle } else { Health::Bad }),
        Some(TokenState::Valid) => ("valid", Health::Good),
        Some(TokenState::Unchecked) => ("unchecked", Health::Warn),
        Some(TokenState::Rejected) => ("rejected", Health::Bad),
        Some(TokenState::Forbidden) => ("forbidden", Health::Bad),
    }
}

/// How the customers pane is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Worst health first, then the largest lag.
    #[default]
    Lag,
    Name,
    Dlq,
    Throughput,
}

impl SortKey {
    pub(super) fn next(self) -> Self {
        match self {
            Self::Lag => Self::Name,
            Self::Name => Self::Dlq,
            Self::Dlq => Self::Throughput,
            Self::Throughput => Self::Lag,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Lag => "health, lag",
            Self::Name => "name",
            Self::Dlq => "DLQ",
            Self::Throughput => "throughput",
        }
    }
}

/// The pane keys act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Customers,
    Dlq,
    Log,
}

/// A destructive action that needs the customer's name typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded {
    Offboard,
    ConfirmDeletions {
        run: i64,
        users: i64,
    },
    /// A full re-walk (`b` on a customer past its backfill) or a full scan
    /// (`d`): every user read again, at this cost.
    Costly {
        action: CostlyAction,
        cost: Cost,
    },
}

/// The actions that read every user again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostlyAction {
    Rewalk,
    FullScan,
}

/// What reading every user of a customer costs at its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub requests: u64,
    /// At the budget in force; `None` without a limit.
    pub secs: Option<u64>,
}

impl Cost {
    /// One request a page of 15, at `rate` requests per second.
    pub fn of(users: i64, rate: f64) -> Self {
        let requests = u64::try_from(users).unwrap_or(0).div_ceil(15).max(1);
        let secs = (rate > 0.0).then(|| (requests as f64 / rate).ceil() as u64);
        Self { requests, secs }
    }
}

/// The onboarding form's fields, in tab order.
pub const FORM_FIELDS: [&str; 4] = ["Name", "Token", "VOMO URL", "Destinations"];

/// The onboarding form.
#[derive(Debug, Clone, Default)]
pub struct OnboardForm {
    pub fields: [Input; 4],
    pub focus: usize,
    /// Why the last submission was refused.
    pub error: Option<String>,
    pub busy: bool,
}

/// What the console is doing with the keyboard.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    #[default]
    Normal,
    /// The key list, scrolled this many lines down.
    Help(u16),
    Filter(Input),
    /// Searching the log pane (Enter keeps the search, Esc clears it).
    LogSearch(Input),
    Command(Input),
    Confirm {
        customer: String,
        what: Guarded,
        typed: Input,
    },
    Token {
        customer: String,
        input: Input,
    },
    DiscardNote {
        id: i64,
        input: Input,
    },
    Payload(usize),
    Onboard(Box<OnboardForm>),
}

/// Lag and throughput over the last hour, for sparklines.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub lag: VecDeque<u64>,
    pub throughput: VecDeque<u64>,
    last: Option<DateTime<Utc>>,
}

/// The whole console state.
#[derive(Debug, Default)]
pub struct App {
    pub snapshot: Arc<EngineSnapshot>,
    /// The engine's verdict on each customer of `snapshot` (same order),
    /// as of `now`.
    pub verdicts: Vec<Verdict>,
    /// Indices into `snapshot.customers`, filtered and sorted.
    pub order: Vec<usize>,
    /// Position in `order`.
    pub selected: usize,
    pub sort: SortKey,
    pub filter: String,
    pub focus: Pane,
    pub mode: Mode,
    pub log: VecDeque<EngineEvent>,
    /// Show only the selected customer's events.
    pub log_selected_only: bool,
    /// Events scrolled back from the newest (0: the pane follows the tail).
    pub log_scroll: usize,
    /// Only events containing this (case-insensitive) are shown.
    pub log_search: String,
    /// Command lines entered this session, oldest first, and where Up/Down
    /// stands in them.
    pub command_history: Vec<String>,
    pub history_at: Option<usize>,
    pub dlq: Vec<DlqItem>,
    pub dlq_of: Option<String>,
    pub dlq_selected: usize,
    /// First visible row of the customers pane (kept by the view).
    pub offset: std::cell::Cell<usize>,
    pub history: HashMap<String, History>,
    pub readonly: bool,
    pub keys: KeyMap,
    pub default_vomo_url: String,
    /// The latest one-line outcome, shown in the status bar until
    /// [`STATUS_SHOWN_SECS`] have passed (the log keeps it).
    pub status: Option<(EventLevel, String)>,
    pub status_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub quit: bool,
}

impl App {
    pub fn new(keys: KeyMap, readonly: bool, default_vomo_url: String, now: DateTime<Utc>) -> Self {
        Self { keys, readonly, default_vomo_url, now, ..Self::default() }
    }

    /// Judges every customer of the snapshot as of `now` (the engine's
    /// one classifier, with the engine's thresholds).
    pub(super) fn judge(&mut self) {
        let (thresholds, now) = (self.snapshot.thresholds, self.now);
        self.verdicts = self.snapshot.customers.iter().map(|c| c.verdict(&thresholds, now)).collect();
    }

    /// The verdict on `snapshot.customers[index]`.
    pub fn verdict(&self, index: usize) -> Option<&Verdict> {
        self.verdicts.get(index)
    }

    /// The selected customer's verdict.
    pub fn current_verdict(&self) -> Option<&Verdict> {
        self.order.get(self.selected).and_then(|&i| self.verdict(i))
    }

    /// The status bar's outcome, while it is fresh.
    pub fn shown_status(&self) -> Option<&(EventLevel, String)> {
        self.status.as_ref().filter(|_| (self.now - self.status_at).num_seconds() < STATUS_SHOWN_SECS)
    }

    /// The selected customer.
    pub fn current(&self) -> Option<&CustomerSnapshot> {
        self.order.get(self.selected).and_then(|&i| self.snapshot.customers.get(i))
    }

    pub fn current_name(&self) -> Option<String> {
        self.current().map(|c| c.name.clone())
    }

    /// The customers shown, in order.
    pub fn shown(&self) -> impl Iterator<Item = &CustomerSnapshot> {
        self.order.iter().filter_map(|&i| self.snapshot.customers.get(i))
    }

    /// Log events as the pane shows them (the selected customer's only,
    /// if asked; those matching the search), newest last.
    pub fn visible_log(&self) -> impl Iterator<Item = &EngineEvent> {
        let only = if self.log_selected_only { self.current_name() } else { None };
        self.log
            .iter()
            .filter(move |e| only.as_ref().is_none_or(|name| e.customer.as_ref() == Some(name)))
            .filter(|e| self.matches_search(e))
    }

    /// The DLQ entries of the selected customer (when loaded).
    pub fn dlq_entries(&self) -> &[DlqItem] {
        if self.dlq_of.is_some() && self.dlq_of == self.current_name() { &self.dlq } else { &[] }
    }

    /// Recomputes `order` and keeps the selection on the same customer.
    pub(super) fn reorder(&mut self) {
        let keep = self.current_name();
        let needle = self.filter.to_lowercase();
        let customers = &self.snapshot.customers;
        let mut order: Vec<usize> = (0..customers.len())
            .filter(|&i| needle.is_empty() || customers[i].name.to_lowercase().contains(&needle))
            .collect();
        match self.sort {
            SortKey::Lag => {
                let rank = |i: usize| self.verdicts.get(i).map_or(Health::Good, health);
                order.sort_by(|&a, &b| {
                    (rank(a), std::cmp::Reverse(customers[a].lag_secs), &customers[a].name).cmp(&(
                        rank(b),
                        std::cmp::Reverse(customers[b].lag_secs),
                        &customers[b].name,
                    ))
                });
            }
            SortKey::Name => order.sort_by(|&a, &b| customers[a].name.cmp(&customers[b].name)),
            SortKey::Dlq => order.sort_by(|&a, &b| {
                let (a, b) = (&customers[a], &customers[b]);
                (std::cmp::Reverse(a.dlq.pending), &a.name).cmp(&(std::cmp::Reverse(b.dlq.pending), &b.name))
            }),
            SortKey::Throughput => order.sort_by(|&a, &b| {
                let (a, b) = (&customers[a], &customers[b]);
                b.throughput_per_min.total_cmp(&a.throughput_per_min).then_with(|| a.name.cmp(&b.name))
            }),
        }
        self.order = order;
        self.selected = keep
            .and_then(|name| self.order.iter().position(|&i| customers[i].name == name))
            .unwrap_or(0)
            .min(self.order.len().saturating_sub(1));
    }

    pub(super) fn record_history(&mut self, now: DateTime<Utc>) {
        for c in &self.snapshot.customers {
            let h = self.history.entry(c.name.clone()).or_default();
            if h.last.is_some_and(|t| (now - t).num_seconds() < HISTORY_EVERY_SECS) {
                continue;
            }
            h.last = Some(now);
            h.lag.push_back(u64::try_from(c.lag_secs).unwrap_or(0));
            h.throughput.push_back(c.throughput_per_min.max(0.0) as u64);
            while h.lag.len() > HISTORY_SAMPLES {
                h.lag.pop_front();
                h.throughput.pop_front();
            }
        }
    }

    pub(super) fn say(&mut self, level: EventLevel, text: impl Into<String>) {
        self.status = Some((level, text.into()));
        self.status_at = self.now;
    }

    /// Adds an event in time order (the console's own outcomes and the
    /// engine's events arrive by different roads); a scrolled-back log pane
    /// stays where it is.
    pub(super) fn push_log(&mut self, event: EngineEvent) {
        let at = self.log.iter().rposition(|e| e.at <= event.at).map_or(0, |i| i + 1);
        if self.log_scroll > 0 && self.matches_search(&event) {
            self.log_scroll += 1;
        }
        self.log.insert(at, event);
        while self.log.len() > LOG_CAPACITY {
            self.log.pop_front();
        }
    }

    fn matches_search(&self, event: &EngineEvent) -> bool {
        self.log_search.is_empty() || {
            let needle = self.log_search.to_lowercase();
            event.message.to_lowercase().contains(&needle)
                || event.customer.as_ref().is_some_and(|c| c.to_lowercase().contains(&needle))
        }
    }

    /// The run of the selected customer waiting for confirmation, if any.
    pub(super) fn waiting_sweep(&self) -> Option<(i64, i64)> {
        self.current()?
            .last_runs
            .iter()
            .find(|r| r.kind == RunKind::Deletions && r.outcome == RunOutcome::NeedsConfirmation)
            .map(|r| (r.id, r.counts.deletion_candidates))
    }
}

/// A new selection loads its DLQ entries.
pub(super) fn selection_effects(app: &mut App, before: Option<String>) -> Vec<Effect> {
    let now = app.current_name();
    if now != before {
        app.dlq_selected = 0;
        if let Some(name) = now {
            return vec![Effect::LoadDlq(name)];
        }
    }
    Vec::new()
}
