//! The prompts that take over the keyboard: the filter, the typed-name
//! confirmation of a destructive action, the masked token, the note a DLQ
//! discard needs, and the onboarding form. Each handler gets the prompt's
//! state back out of `Mode`, edits it with the key, and either puts it back
//! (still editing) or ends it with the effects it asked for.

use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use super::messages::{Effect, OnboardText};
use super::model::{App, CostlyAction, FORM_FIELDS, Guarded, Mode, OnboardForm, selection_effects};
use crate::engine::{Command, EventLevel};

/// Edits `input` with `key`; returns `Some(text)` on Enter, `None` on Esc
/// (both end the prompt) and keeps editing otherwise.
pub(super) enum Prompt {
    Submit(String),
    Cancel,
    Editing(Input),
}

pub(super) fn prompt(mut input: Input, key: KeyEvent) -> Prompt {
    match key.code {
        KeyCode::Enter => Prompt::Submit(input.value().to_owned()),
        KeyCode::Esc => Prompt::Cancel,
        _ => {
            input.handle_event(&crossterm::event::Event::Key(key));
            Prompt::Editing(input)
        }
    }
}

pub(super) fn filter_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
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

pub(super) fn confirm_key(
    app: &mut App,
    customer: String,
    what: Guarded,
    typed: Input,
    key: KeyEvent,
) -> Vec<Effect> {
    match prompt(typed, key) {
        Prompt::Submit(text) if text == customer => match what {
            Guarded::Offboard => vec![Effect::Engine(Command::Offboard { customer, purge: false })],
            Guarded::ConfirmDeletions { run, .. } => {
                vec![Effect::Engine(Command::SettleDeletions { customer, run, confirm: true })]
            }
            Guarded::Costly { action: CostlyAction::Rewalk, .. } => {
                vec![Effect::Engine(Command::Backfill { customer })]
            }
            Guarded::Costly { action: CostlyAction::FullScan, .. } => {
                vec![Effect::Engine(Command::DeletionSweep { customer, dry_run: false })]
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

pub(super) fn token_key(app: &mut App, customer: String, input: Input, key: KeyEvent) -> Vec<Effect> {
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

pub(super) fn note_key(app: &mut App, id: i64, input: Input, key: KeyEvent) -> Vec<Effect> {
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

pub(super) fn form_key(app: &mut App, mut form: Box<OnboardForm>, key: KeyEvent) -> Vec<Effect> {
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
        KeyCode::Enter => match form_request(&form) {
            Some(request) => {
                form.busy = true;
                form.error = None;
                app.mode = Mode::Onboard(form);
                return vec![Effect::Onboard(request)];
            }
            None => {
                form.error =
                    Some("fill in every field (destinations: one or more specs, space-separated)".into());
            }
        },
        _ => {
            let focus = form.focus;
            form.fields[focus].handle_event(&crossterm::event::Event::Key(key));
        }
    }
    app.mode = Mode::Onboard(form);
    Vec::new()
}

/// What the form asks for, or `None` while a field is empty.
fn form_request(form: &OnboardForm) -> Option<OnboardText> {
    let value = |i: usize| form.fields[i].value().trim().to_owned();
    let request = OnboardText {
        name: value(0),
        token: value(1),
        vomo_url: value(2),
        destinations: value(3).split_whitespace().map(str::to_owned).collect(),
    };
    let filled = [&request.name, &request.token, &request.vomo_url].iter().all(|v| !v.is_empty());
    (filled && !request.destinations.is_empty()).then_some(request)
}
