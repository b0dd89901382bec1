//! The `:` command line: every customer action by name (`:backfill acme`,
//! `:dismiss acme 42`, `:sort dlq`, `:q`), for operators who would rather
//! type than remember keys. The same read-only refusals and typed-name
//! confirmation apply as for the keys.

use crossterm::event::KeyEvent;
use tui_input::Input;

use super::messages::Effect;
use super::model::{App, Guarded, Mode, SortKey};
use super::prompts::{Prompt, prompt};
use crate::engine::{Command, EventLevel};

pub(super) fn command_key(app: &mut App, input: Input, key: KeyEvent) -> Vec<Effect> {
    match prompt(input, key) {
        Prompt::Submit(text) => run_command_line(app, &text),
        Prompt::Cancel => Vec::new(),
        Prompt::Editing(input) => {
            app.mode = Mode::Command(input);
            Vec::new()
        }
    }
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
