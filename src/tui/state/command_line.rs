//! The `:` command line: every customer action by name (`:backfill acme`,
//! `:dismiss acme 42`, `:sort dlq`, `:q`), for operators who would rather
//! type than remember keys. The same read-only refusals and typed-name
//! confirmation apply as for the keys.

use crossterm::event::{KeyCode, KeyEvent};
use tui_input::Input;

use super::messages::Effect;
use super::model::{App, Guarded, Mode, SortKey};
use super::prompts::{Prompt, prompt};
use crate::engine::{Command, EventLevel};

/// The command line's verbs, for Tab completion.
const VERBS: [&str; 12] = [
    "backfill",
    "poll",
    "reconcile",
    "sweep",
    "retry",
    "pause",
    "resume",
    "dismiss",
    "offboard",
    "sort",
    "quit",
    "q",
];

/// Lines kept for Up/Down.
const HISTORY: usize = 50;

pub(super) fn command_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
    match key.code {
        KeyCode::Tab => {
            app.mode = Mode::Command(complete(app, &input));
            return Vec::new();
        }
        KeyCode::Up | KeyCode::Down => {
            app.mode = Mode::Command(recall(app, &input, key.code == KeyCode::Up));
            return Vec::new();
        }
        _ => {}
    }
    match prompt(input, key) {
        Prompt::Submit(text) => {
            app.history_at = None;
            if !text.trim().is_empty() && app.command_history.last() != Some(&text) {
                app.command_history.push(text.clone());
                if app.command_history.len() > HISTORY {
                    app.command_history.remove(0);
                }
            }
            run_command_line(app, &text)
        }
        Prompt::Cancel => {
            app.history_at = None;
            Vec::new()
        }
        Prompt::Editing(input) => {
            app.mode = Mode::Command(input);
            Vec::new()
        }
    }
}

/// Tab: the verb (first word) or the customer (second word) completed to
/// the longest prefix its candidates share; several left are listed in the
/// status bar.
fn complete(app: &mut App, input: &Input) -> Input {
    let text = input.value();
    let (head, word) = match text.rfind(' ') {
        Some(at) => (&text[..=at], &text[at + 1..]),
        None => ("", text),
    };
    let pool: Vec<String> = if head.is_empty() {
        VERBS.iter().map(|v| (*v).to_owned()).collect()
    } else {
        app.snapshot.customers.iter().map(|c| c.name.clone()).collect()
    };
    let found: Vec<String> = pool.into_iter().filter(|c| c.starts_with(word)).collect();
    let Some(first) = found.first() else { return input.clone() };
    let mut common = first.clone();
    for other in &found[1..] {
        while !other.starts_with(&common) {
            common.pop();
        }
    }
    if found.len() > 1 {
        app.say(EventLevel::Info, found.join("  "));
    }
    let done = if found.len() == 1 { " " } else { "" };
    Input::new(format!("{head}{common}{done}"))
}

/// Up/Down: earlier and later lines of this session.
fn recall(app: &mut App, input: &Input, back: bool) -> Input {
    let len = app.command_history.len();
    if len == 0 {
        return input.clone();
    }
    let at = match (app.history_at, back) {
        (None, true) => Some(len - 1),
        (None, false) => None,
        (Some(i), true) => Some(i.saturating_sub(1)),
        (Some(i), false) => (i + 1 < len).then_some(i + 1),
    };
    app.history_at = at;
    Input::new(at.map(|i| app.command_history[i].clone()).unwrap_or_default())
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
        app.sort = sort_key(args.first().copied());
        app.reorder();
        return Vec::new();
    }
    let customer = args.first().map(|s| (*s).to_owned()).or_else(|| app.current_name());
    let Some(customer) = customer else {
        app.say(EventLevel::Warn, format!(":{verb} needs a customer name"));
        return Vec::new();
    };
    if verb == "offboard" {
        offboard(app, customer);
        return Vec::new();
    }
    match engine_command(verb, customer, args) {
        Err(warning) => app.say(EventLevel::Warn, warning),
        Ok(_) if app.readonly => {
            app.say(EventLevel::Warn, format!("read-only console: :{verb} is not available"));
        }
        Ok(command) => return vec![Effect::Engine(command)],
    }
    Vec::new()
}

/// `:sort name|dlq|throughput`; anything else sorts by health and lag.
fn sort_key(by: Option<&str>) -> SortKey {
    match by {
        Some("name") => SortKey::Name,
        Some("dlq") => SortKey::Dlq,
        Some("throughput") => SortKey::Throughput,
        _ => SortKey::Lag,
    }
}

/// `:offboard` is still typed-name confirmed, like the key.
fn offboard(app: &mut App, customer: String) {
    if app.readonly {
        app.say(EventLevel::Warn, "read-only console: offboard is not available");
    } else {
        app.mode = Mode::Confirm { customer, what: Guarded::Offboard, typed: Input::default() };
    }
}

/// The engine command `verb` names, or the warning saying why there is none.
fn engine_command(verb: &str, customer: String, args: &[&str]) -> Result<Command, String> {
    Ok(match verb {
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
            None => return Err("usage: :dismiss CUSTOMER RUN_ID".to_owned()),
        },
        other => {
            return Err(format!(
                "unknown command :{other} (? lists the keys; commands: backfill, poll, reconcile, sweep, retry, pause, resume, dismiss, offboard, sort, q)"
            ));
        }
    })
}
