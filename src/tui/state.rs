//! The console's state and its one pure step, [`update`]: a message (a key,
//! a new engine snapshot, an event, an action's result) changes the state
//! and yields [`Effect`]s for the runtime to carry out. No IO and no clock
//! here — `now` arrives with the messages — so every flow (selection,
//! filtering, confirmations, read-only refusals) is unit-tested.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::keys::{Action, KeyMap};
use crate::domain::{CustomerStatus, RunKind, RunOutcome, TokenState};
use crate::engine::DlqItem;
use crate::engine::{Command, CustomerSnapshot, EngineEvent, EngineSnapshot, EventLevel};

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

/// A customer's health: bad when it cannot sync (token, errors, stall,
/// records only an operator can fix, far behind), warning when it needs a
/// look, idle when paused or offboarded.
pub fn health(c: &CustomerSnapshot) -> Health {
    match c.status {
        CustomerStatus::TokenRejected => return Health::Bad,
        CustomerStatus::Paused | CustomerStatus::Offboarded => return Health::Idle,
        _ => {}
    }
    let behind = c.status == CustomerStatus::Active && c.next_poll_at.is_some() && c.lag_secs > 2 * 3600;
    if c.stalled || c.failure.is_some() || c.dlq.permanent > 0 || behind {
        return Health::Bad;
    }
    let waiting = c.last_runs.iter().any(|r| r.outcome == RunOutcome::NeedsConfirmation);
    if c.dlq.pending > 0 || waiting || c.status == CustomerStatus::Backfilling {
        return Health::Warn;
    }
    Health::Good
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
    fn next(self) -> Self {
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
    ConfirmDeletions { run: i64, users: i64 },
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
    Help,
    Filter(Input),
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

/// What onboarding from the form asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardText {
    pub name: String,
    pub token: String,
    pub vomo_url: String,
    pub destinations: Vec<String>,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Engine(Command),
    Onboard(OnboardText),
    ReplaceToken { customer: String, token: String },
    DiscardDlq { id: i64, note: String },
    LoadDlq(String),
    Redraw,
    Quit,
}

/// What changes the state.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Snapshot(Arc<EngineSnapshot>),
    Event(EngineEvent),
    Dlq {
        customer: String,
        items: Vec<DlqItem>,
    },
    /// The outcome of an action the runtime carried out; `engine_logged`
    /// when the engine already put it in its event stream (its commands).
    Done {
        what: String,
        result: Result<String, String>,
        engine_logged: bool,
    },
    OnboardDone(Result<String, String>),
    Tick(DateTime<Utc>),
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
    pub dlq: Vec<DlqItem>,
    pub dlq_of: Option<String>,
    pub dlq_selected: usize,
    /// First visible row of the customers pane (kept by the view).
    pub offset: std::cell::Cell<usize>,
    pub history: HashMap<String, History>,
    pub readonly: bool,
    pub keys: KeyMap,
    pub default_vomo_url: String,
    /// The latest one-line outcome, shown in the status bar.
    pub status: Option<(EventLevel, String)>,
    pub now: DateTime<Utc>,
    pub quit: bool,
}

impl App {
    pub fn new(keys: KeyMap, readonly: bool, default_vomo_url: String, now: DateTime<Utc>) -> Self {
        Self { keys, readonly, default_vomo_url, now, ..Self::default() }
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

    /// Log events as the pane shows them, newest last.
    pub fn visible_log(&self) -> impl Iterator<Item = &EngineEvent> {
        let only = if self.log_selected_only { self.current_name() } else { None };
        self.log.iter().filter(move |e| only.as_ref().is_none_or(|name| e.customer.as_ref() == Some(name)))
    }

    /// The DLQ entries of the selected customer (when loaded).
    pub fn dlq_entries(&self) -> &[DlqItem] {
        if self.dlq_of.is_some() && self.dlq_of == self.current_name() { &self.dlq } else { &[] }
    }

    /// Recomputes `order` and keeps the selection on the same customer.
    fn reorder(&mut self) {
        let keep = self.current_name();
        let needle = self.filter.to_lowercase();
        let customers = &self.snapshot.customers;
        let mut order: Vec<usize> = (0..customers.len())
            .filter(|&i| needle.is_empty() || customers[i].name.to_lowercase().contains(&needle))
            .collect();
        match self.sort {
            SortKey::Lag => order.sort_by(|&a, &b| {
                let (a, b) = (&customers[a], &customers[b]);
                (health(a), std::cmp::Reverse(a.lag_secs), &a.name).cmp(&(
                    health(b),
                    std::cmp::Reverse(b.lag_secs),
                    &b.name,
                ))
            }),
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

    fn record_history(&mut self, now: DateTime<Utc>) {
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

    fn say(&mut self, level: EventLevel, text: impl Into<String>) {
        self.status = Some((level, text.into()));
    }

    fn push_log(&mut self, event: EngineEvent) {
        self.log.push_back(event);
        while self.log.len() > LOG_CAPACITY {
            self.log.pop_front();
        }
    }

    /// The run of the selected customer waiting for confirmation, if any.
    fn waiting_sweep(&self) -> Option<(i64, i64)> {
        self.current()?
            .last_runs
            .iter()
            .find(|r| r.kind == RunKind::Deletions && r.outcome == RunOutcome::NeedsConfirmation)
            .map(|r| (r.id, r.counts.get("deletion_candidates").copied().unwrap_or(0)))
    }
}

/// One step: applies `msg` to `app` and returns what the runtime must do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Snapshot(snapshot) => {
            let before = app.current_name();
            app.snapshot = snapshot;
            app.reorder();
            if let Some(at) = app.snapshot.at {
                app.now = at;
            }
            let now = app.now;
            app.record_history(now);
            selection_effects(app, before)
        }
        Msg::Event(event) => {
            app.push_log(event);
            Vec::new()
        }
        Msg::Tick(now) => {
            app.now = now;
            app.current_name().map(Effect::LoadDlq).into_iter().collect()
        }
        Msg::Dlq { customer, items } => {
            app.dlq_selected = app.dlq_selected.min(items.len().saturating_sub(1));
            app.dlq = items;
            app.dlq_of = Some(customer);
            Vec::new()
        }
        Msg::Done { what, result, engine_logged } => {
            let (level, text) = match result {
                Ok(text) => (EventLevel::Info, format!("{what}: {text}")),
                Err(e) => (EventLevel::Error, format!("{what} refused: {e}")),
            };
            // Every action's outcome reaches the log pane once.
            if !engine_logged {
                let mut event = EngineEvent::new(None, level, text.clone());
                event.at = app.now;
                app.push_log(event);
            }
            app.say(level, text);
            Vec::new()
        }
        Msg::OnboardDone(result) => {
            match (&mut app.mode, result) {
                (Mode::Onboard(_), Ok(text)) => {
                    app.mode = Mode::Normal;
                    let mut event = EngineEvent::new(None, EventLevel::Info, text.clone());
                    event.at = app.now;
                    app.push_log(event);
                    app.say(EventLevel::Info, text);
                }
                (Mode::Onboard(form), Err(e)) => {
                    form.busy = false;
                    form.error = Some(e);
                }
                (_, result) => app.say(EventLevel::Info, result.unwrap_or_else(|e| e)),
            }
            Vec::new()
        }
        Msg::Key(key) => on_key(app, key),
    }
}

/// A new selection loads its DLQ entries.
fn selection_effects(app: &mut App, before: Option<String>) -> Vec<Effect> {
    let now = app.current_name();
    if now != before {
        app.dlq_selected = 0;
        if let Some(name) = now {
            return vec![Effect::LoadDlq(name)];
        }
    }
    Vec::new()
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('l') {
        return vec![Effect::Redraw];
    }
    match std::mem::take(&mut app.mode) {
        Mode::Normal => normal_key(app, key),
        Mode::Help => {
            // Any key closes the help.
            Vec::new()
        }
        Mode::Payload(i) => {
            if !matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q')) {
                app.mode = Mode::Payload(i);
            }
            Vec::new()
        }
        Mode::Filter(input) => filter_key(app, input, key),
        Mode::Command(input) => command_key(app, input, key),
        Mode::Confirm { customer, what, typed } => confirm_key(app, customer, what, typed, key),
        Mode::Token { customer, input } => token_key(app, customer, input, key),
        Mode::DiscardNote { id, input } => note_key(app, id, input, key),
        Mode::Onboard(form) => form_key(app, form, key),
    }
}

/// Edits `input` with `key`; returns `Some(text)` on Enter, `None` on Esc
/// (both end the prompt) and keeps editing otherwise.
enum Prompt {
    Submit(String),
    Cancel,
    Editing(Input),
}

fn prompt(mut input: Input, key: KeyEvent) -> Prompt {
    match key.code {
        KeyCode::Enter => Prompt::Submit(input.value().to_owned()),
        KeyCode::Esc => Prompt::Cancel,
        _ => {
            input.handle_event(&crossterm::event::Event::Key(key));
            Prompt::Editing(input)
        }
    }
}

fn filter_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
    let before = app.current_name();
    match prompt(input, key) {
        Prompt::Submit(text) => app.filter = text,
        Prompt::Cancel => app.filter.clear(),
        Prompt::Editing(input) => {
            app.filter = input.value().to_owned();
            app.mode = Mode::Filter(input);
        }
    }
    app.reorder();
    selection_effects(app, before)
}

fn command_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
    match prompt(input, key) {
        Prompt::Submit(text) => run_command_line(app, &text),
        Prompt::Cancel => Vec::new(),
        Prompt::Editing(input) => {
            app.mode = Mode::Command(input);
            Vec::new()
        }
    }
}

fn confirm_key(app: &mut App, customer: String, what: Guarded, typed: Input, key: KeyEvent) -> Vec<Effect> {
    match prompt(typed, key) {
        Prompt::Submit(text) if text == customer => match what {
            Guarded::Offboard => vec![Effect::Engine(Command::Offboard { customer, purge: false })],
            Guarded::ConfirmDeletions { run, .. } => {
                vec![Effect::Engine(Command::SettleDeletions { customer, run, confirm: true })]
            }
        },
        Prompt::Submit(_) => {
            app.say(EventLevel::Warn, format!("the name did not match {customer:?}; nothing was done"));
            Vec::new()
        }
        Prompt::Cancel => {
            app.say(EventLevel::Info, "cancelled; nothing was done");
            Vec::new()
        }
        Prompt::Editing(typed) => {
            app.mode = Mode::Confirm { customer, what, typed };
            Vec::new()
        }
    }
}

fn token_key(app: &mut App, customer: String, input: Input, key: KeyEvent) -> Vec<Effect> {
    match prompt(input, key) {
        Prompt::Submit(token) if !token.trim().is_empty() => {
            vec![Effect::ReplaceToken { customer, token: token.trim().to_owned() }]
        }
        Prompt::Submit(_) | Prompt::Cancel => Vec::new(),
        Prompt::Editing(input) => {
            app.mode = Mode::Token { customer, input };
            Vec::new()
        }
    }
}

fn note_key(app: &mut App, id: i64, input: Input, key: KeyEvent) -> Vec<Effect> {
    match prompt(input, key) {
        Prompt::Submit(note) if !note.trim().is_empty() => {
            vec![Effect::DiscardDlq { id, note: note.trim().to_owned() }]
        }
        Prompt::Submit(_) => {
            app.say(EventLevel::Warn, "a discard needs a note saying why; nothing was done");
            Vec::new()
        }
        Prompt::Cancel => Vec::new(),
        Prompt::Editing(input) => {
            app.mode = Mode::DiscardNote { id, input };
            Vec::new()
        }
    }
}

fn form_key(app: &mut App, mut form: Box<OnboardForm>, key: KeyEvent) -> Vec<Effect> {
    if form.busy {
        app.mode = Mode::Onboard(form);
        return Vec::new();
    }
    match key.code {
        KeyCode::Esc => return Vec::new(),
        KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % FORM_FIELDS.len(),
        KeyCode::BackTab | KeyCode::Up => {
            form.focus = (form.focus + FORM_FIELDS.len() - 1) % FORM_FIELDS.len()
        }
        KeyCode::Enter => {
            let value = |i: usize| form.fields[i].value().trim().to_owned();
            let request = OnboardText {
                name: value(0),
                token: value(1),
                vomo_url: value(2),
                destinations: value(3).split_whitespace().map(str::to_owned).collect(),
            };
            let missing: Vec<&str> = FORM_FIELDS
                .iter()
                .zip([&request.name, &request.token, &request.vomo_url])
                .filter(|(_, v)| v.is_empty())
                .map(|(f, _)| *f)
                .collect();
            if !missing.is_empty() || request.destinations.is_empty() {
                form.error =
                    Some("fill in every field (destinations: one or more specs, space-separated)".into());
            } else {
                form.busy = true;
                form.error = None;
                app.mode = Mode::Onboard(form);
                return vec![Effect::Onboard(request)];
            }
        }
        _ => {
            let focus = form.focus;
            form.fields[focus].handle_event(&crossterm::event::Event::Key(key));
        }
    }
    app.mode = Mode::Onboard(form);
    Vec::new()
}

fn normal_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(action) = app.keys.action(key) else { return Vec::new() };
    if action.mutates() && app.readonly {
        app.say(EventLevel::Warn, format!("read-only console: {} is not available", action.name()));
        return Vec::new();
    }
    let before = app.current_name();
    let effects = act(app, action);
    if effects.is_empty() { selection_effects(app, before) } else { effects }
}

fn act(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            app.quit = true;
            vec![Effect::Quit]
        }
        Action::Help => {
            app.mode = Mode::Help;
            Vec::new()
        }
        Action::Filter => {
            // A new search, as in less and k9s; Esc in it shows everyone again.
            app.mode = Mode::Filter(Input::default());
            Vec::new()
        }
        Action::CommandLine => {
            app.mode = Mode::Command(Input::default());
            Vec::new()
        }
        Action::Up => move_selection(app, -1),
        Action::Down => move_selection(app, 1),
        Action::PageUp => move_selection(app, -10),
        Action::PageDown => move_selection(app, 10),
        Action::Top => move_selection(app, -(i64::MAX / 2)),
        Action::Bottom => move_selection(app, i64::MAX / 2),
        Action::NextPane => {
            app.focus = match app.focus {
                Pane::Customers => Pane::Dlq,
                Pane::Dlq => Pane::Log,
                Pane::Log => Pane::Customers,
            };
            Vec::new()
        }
        Action::Back => {
            app.focus = Pane::Customers;
            Vec::new()
        }
        Action::Open => {
            if app.focus == Pane::Dlq && !app.dlq_entries().is_empty() {
                app.mode = Mode::Payload(app.dlq_selected);
            }
            Vec::new()
        }
        Action::Sort => {
            app.sort = app.sort.next();
            app.reorder();
            app.say(EventLevel::Info, format!("sorted by {}", app.sort.label()));
            Vec::new()
        }
        Action::LogFilter => {
            app.log_selected_only = !app.log_selected_only;
            Vec::new()
        }
        _ => act_on_customer(app, action),
    }
}

/// The actions that change a customer (refused when read-only).
fn act_on_customer(app: &mut App, action: Action) -> Vec<Effect> {
    let customer = app.current_name();
    let engine = |command: fn(String) -> Command| -> Vec<Effect> {
        customer.clone().map(|c| Effect::Engine(command(c))).into_iter().collect()
    };
    match action {
        Action::Backfill => engine(|customer| Command::Backfill { customer }),
        Action::Reconcile => engine(|customer| Command::Reconcile { customer }),
        Action::Sweep => engine(|customer| Command::DeletionSweep { customer, dry_run: false }),
        Action::PollNow => engine(|customer| Command::PollNow { customer }),
        Action::Retry => {
            let id = (app.focus == Pane::Dlq)
                .then(|| app.dlq_entries().get(app.dlq_selected).map(|e| e.id))
                .flatten();
            customer.map(|customer| Effect::Engine(Command::RetryDlq { customer, id })).into_iter().collect()
        }
        Action::Discard => {
            match app.dlq_entries().get(app.dlq_selected) {
                Some(entry) if app.focus == Pane::Dlq => {
                    app.mode = Mode::DiscardNote { id: entry.id, input: Input::default() };
                }
                _ => app.say(EventLevel::Info, "select a DLQ entry first (Tab to the DLQ pane)"),
            }
            Vec::new()
        }
        Action::Pause => {
            let paused = app.current().is_some_and(|c| c.status == CustomerStatus::Paused);
            if paused {
                engine(|customer| Command::Resume { customer })
            } else {
                engine(|customer| Command::Pause { customer })
            }
        }
        Action::Token => {
            if let Some(customer) = customer {
                app.mode = Mode::Token { customer, input: Input::default() };
            }
            Vec::new()
        }
        Action::Onboard => {
            let mut form = OnboardForm::default();
            form.fields[2] = Input::new(app.default_vomo_url.clone());
            app.mode = Mode::Onboard(Box::new(form));
            Vec::new()
        }
        Action::Offboard => {
            if let Some(customer) = customer {
                app.mode = Mode::Confirm { customer, what: Guarded::Offboard, typed: Input::default() };
            }
            Vec::new()
        }
        Action::ConfirmDeletions => {
            match (customer, app.waiting_sweep()) {
                (Some(customer), Some((run, users))) => {
                    app.mode = Mode::Confirm {
                        customer,
                        what: Guarded::ConfirmDeletions { run, users },
                        typed: Input::default(),
                    };
                }
                _ => app.say(EventLevel::Info, "no deletion sweep of this customer waits for confirmation"),
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn move_selection(app: &mut App, by: i64) -> Vec<Effect> {
    let step = |at: usize, len: usize| {
        let target = i64::try_from(at).unwrap_or(0).saturating_add(by);
        usize::try_from(target.clamp(0, i64::try_from(len).unwrap_or(0).saturating_sub(1).max(0)))
            .unwrap_or(0)
    };
    match app.focus {
        Pane::Dlq => app.dlq_selected = step(app.dlq_selected, app.dlq_entries().len()),
        Pane::Customers | Pane::Log => app.selected = step(app.selected, app.order.len()),
    }
    Vec::new()
}

/// `:backfill acme`, `:q`, …: the command line, for every action by name.
fn run_command_line(app: &mut App, line: &str) -> Vec<Effect> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else { return Vec::new() };
    if matches!(verb, "q" | "quit") {
        app.quit = true;
        return vec![Effect::Quit];
    }
    if verb == "sort" {
        app.sort = match args.first().copied() {
            Some("name") => SortKey::Name,
            Some("dlq") => SortKey::Dlq,
            Some("throughput") => SortKey::Throughput,
            _ => SortKey::Lag,
        };
        app.reorder();
        return Vec::new();
    }
    let customer = args.first().map(|s| (*s).to_owned()).or_else(|| app.current_name());
    let Some(customer) = customer else {
        app.say(EventLevel::Warn, format!(":{verb} needs a customer name"));
        return Vec::new();
    };
    let command = match verb {
        "backfill" => Command::Backfill { customer },
        "poll" => Command::PollNow { customer },
        "reconcile" => Command::Reconcile { customer },
        "sweep" | "deletions" => {
            Command::DeletionSweep { customer, dry_run: args.get(1) == Some(&"--dry-run") }
        }
        "retry" => Command::RetryDlq { customer, id: None },
        "pause" => Command::Pause { customer },
        "resume" => Command::Resume { customer },
        "dismiss" => match args.get(1).and_then(|r| r.parse().ok()) {
            Some(run) => Command::SettleDeletions { customer, run, confirm: false },
            None => {
                app.say(EventLevel::Warn, "usage: :dismiss CUSTOMER RUN_ID");
                return Vec::new();
            }
        },
        "offboard" => {
            // Still typed-name confirmed, like the key.
            if app.readonly {
                app.say(EventLevel::Warn, "read-only console: offboard is not available");
                return Vec::new();
            }
            app.mode = Mode::Confirm { customer, what: Guarded::Offboard, typed: Input::default() };
            return Vec::new();
        }
        other => {
            app.say(EventLevel::Warn, format!("unknown command :{other} (? lists the keys; commands: backfill, poll, reconcile, sweep, retry, pause, resume, dismiss, offboard, sort, q)"));
            return Vec::new();
        }
    };
    if app.readonly {
        app.say(EventLevel::Warn, format!("read-only console: :{verb} is not available"));
        return Vec::new();
    }
    vec![Effect::Engine(command)]
}

/// Display helpers shared by the view.
pub fn token_health(c: &CustomerSnapshot) -> (&'static str, Health) {
    match c.token.as_ref().map(|t| t.state) {
        None => ("none", if c.status == CustomerStatus::Offboarded { Health::Idle } else { Health::Bad }),
        Some(TokenState::Valid) => ("valid", Health::Good),
        Some(TokenState::Unchecked) => ("unchecked", Health::Warn),
        Some(TokenState::Rejected) => ("rejected", Health::Bad),
        Some(TokenState::Forbidden) => ("forbidden", Health::Bad),
    }
}
