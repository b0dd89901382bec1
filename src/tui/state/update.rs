//! The one pure step, [`update`]: applies a message to the model and says
//! what the runtime must do. Messages from the engine and from finished
//! actions are folded in here; a key goes to the open prompt (see
//! `prompts` and `command_line`) or, in normal mode, through the key map
//! to an action, refused when the console is read-only and it changes a
//! customer.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tui_input::Input;

use super::command_line::command_key;
use super::messages::{Effect, Msg};
use super::model::{App, Cost, CostlyAction, Guarded, Mode, OnboardForm, Pane, selection_effects};
use super::prompts::{confirm_key, filter_key, form_key, note_key, token_key};
use crate::domain::CustomerStatus;
use crate::engine::{Command, EngineEvent, EventLevel};
use crate::tui::keys::Action;

/// One step: applies `msg` to `app` and returns what the runtime must do.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Snapshot(snapshot) => {
            let before = app.current_name();
            app.snapshot = snapshot;
            if let Some(at) = app.snapshot.at {
                app.now = at;
            }
            app.judge();
            app.reorder();
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
            app.judge();
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

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        match key.code {
            KeyCode::Char('l') => return vec![Effect::Redraw],
            // As in k9s and htop: Ctrl-C quits like q, from any mode (a
            // half-typed prompt is dropped, nothing is sent).
            KeyCode::Char('c') => {
                app.mode = Mode::Normal;
                app.quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char('z') => {
                app.say(
                    EventLevel::Warn,
                    "Ctrl-Z: the console does not suspend (it hosts the engine); q quits, or detach tmux/screen",
                );
                return Vec::new();
            }
            _ => {}
        }
    }
    match std::mem::take(&mut app.mode) {
        Mode::Normal => normal_key(app, key),
        Mode::Help(offset) => {
            // j/k, arrows and PgUp/PgDn scroll; any other key closes it.
            let by: i32 = match app.keys.action(key) {
                Some(Action::Down) => 1,
                Some(Action::Up) => -1,
                Some(Action::PageDown) => 10,
                Some(Action::PageUp) => -10,
                Some(Action::Bottom) => 1000,
                Some(Action::Top) => -1000,
                _ => return Vec::new(),
            };
            let next = (i32::from(offset) + by).clamp(0, i32::from(u16::MAX));
            app.mode = Mode::Help(u16::try_from(next).unwrap_or(0));
            Vec::new()
        }
        Mode::LogSearch(input) => log_search_key(app, input, key),
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

fn normal_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(action) = app.keys.action(key) else { return Vec::new() };
    if action.mutates() && app.readonly {
        app.say(EventLevel::Warn, format!("read-only console: {} is not available", action.name()));
        return Vec::new();
    }
    let before = app.current_name();
    let effects = act(app, action);
    // Said at once, not after the queue gives up: nobody may carry it out.
    let orphaned = app.current_verdict().filter(|v| v.state == crate::engine::verdict::State::NoLiveInstance);
    if let (Some(verdict), true) = (orphaned, effects.iter().any(|e| matches!(e, Effect::Engine(_)))) {
        let text = format!(
            "{}: {}; the command waits up to 30 s for an instance to take it",
            before.clone().unwrap_or_default(),
            verdict.state_text()
        );
        app.say(EventLevel::Warn, text);
    }
    if effects.is_empty() { selection_effects(app, before) } else { effects }
}

fn act(app: &mut App, action: Action) -> Vec<Effect> {
    match action {
        Action::Quit => {
            app.quit = true;
            vec![Effect::Quit]
        }
        Action::Help => {
            app.mode = Mode::Help(0);
            Vec::new()
        }
        Action::Filter if app.focus == Pane::Log => {
            app.mode = Mode::LogSearch(Input::default());
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
            // Esc first leaves a pane, then clears a committed filter.
            if app.focus == Pane::Customers && !app.filter.is_empty() {
                app.filter.clear();
                app.reorder();
                app.say(EventLevel::Info, "filter cleared");
            } else if app.focus == Pane::Log && !app.log_search.is_empty() {
                app.log_search.clear();
                app.log_scroll = 0;
            }
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

/// `b` and `d` read every user again: refused while such a run is going,
/// and a full re-walk or scan asks first, showing its cost. The first
/// backfill of a customer that has none running is simply started.
fn costly(app: &mut App, action: Action) -> Vec<Effect> {
    let Some(c) = app.current() else { return Vec::new() };
    let customer = c.name.clone();
    let (kind, what) = match action {
        Action::Sweep => (crate::domain::RunKind::Deletions, CostlyAction::FullScan),
        _ => (crate::domain::RunKind::Backfill, CostlyAction::Rewalk),
    };
    let running = [&c.current, &c.background].into_iter().flatten().find(|r| r.kind == kind);
    if let Some(run) = running {
        let ago = crate::domain::duration_text((app.now - run.started_at).num_seconds());
        app.say(
            EventLevel::Info,
            format!("a {kind} of {customer} is already running (started {ago} ago); nothing queued"),
        );
        return Vec::new();
    }
    if what == CostlyAction::Rewalk && c.status != CustomerStatus::Active {
        return vec![Effect::Engine(Command::Backfill { customer })];
    }
    let cost = Cost::of(c.users_synced, c.budget.effective);
    app.mode =
        Mode::Confirm { customer, what: Guarded::Costly { action: what, cost }, typed: Input::default() };
    Vec::new()
}

/// The actions that change a customer (refused when read-only).
fn act_on_customer(app: &mut App, action: Action) -> Vec<Effect> {
    let customer = app.current_name();
    let engine = |command: fn(String) -> Command| -> Vec<Effect> {
        customer.clone().map(|c| Effect::Engine(command(c))).into_iter().collect()
    };
    match action {
        Action::Backfill | Action::Sweep => costly(app, action),
        Action::Reconcile => engine(|customer| Command::Reconcile { customer }),
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
        Pane::Customers => app.selected = step(app.selected, app.order.len()),
        // Up is back in time; G (down all the way) follows the tail again.
        Pane::Log => {
            let len = app.visible_log().count();
            let back = i64::try_from(app.log_scroll).unwrap_or(0).saturating_sub(by);
            app.log_scroll =
                usize::try_from(back.clamp(0, i64::try_from(len.saturating_sub(1)).unwrap_or(0)))
                    .unwrap_or(0);
        }
    }
    Vec::new()
}

/// Typing a log search: shown as typed, kept on Enter, cleared on Esc.
fn log_search_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
    match super::prompts::prompt(input, key) {
        super::prompts::Prompt::Submit(text) => app.log_search = text,
        super::prompts::Prompt::Cancel => app.log_search.clear(),
        super::prompts::Prompt::Editing(input) => {
            app.log_search = input.value().to_owned();
            app.mode = Mode::LogSearch(input);
        }
    }
    app.log_scroll = 0;
    Vec::new()
}
