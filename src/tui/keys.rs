//! Key bindings: every console action by name, the default keys (k9s- and
//! vim-like, no destructive action on a Ctrl chord), and remapping from the
//! config file's `[console.keys]` table (`offboard = "O"`).

use std::collections::HashMap;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

macro_rules! actions {
    ($( $variant:ident => $name:literal, $mutates:literal, $help:literal; )*) => {
        /// Something a key can do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $( $variant, )* }

        impl Action {
            pub const ALL: &[Action] = &[$( Action::$variant, )*];

            /// The name used in `[console.keys]` and in messages.
            pub fn name(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// Whether it changes anything (refused by `--readonly`).
            pub fn mutates(self) -> bool {
                match self { $( Self::$variant => $mutates, )* }
            }

            pub fn help(self) -> &'static str {
                match self { $( Self::$variant => $help, )* }
            }

            fn by_name(name: &str) -> Option<Self> {
                match name { $( $name => Some(Self::$variant), )* _ => None }
            }
        }
    };
}

actions! {
    Backfill => "backfill", true, "backfill now (an active customer: re-walk every user)";
    Reconcile => "reconcile", true, "reconcile the recent past now";
    Sweep => "sweep", true, "deletion sweep: scan every user now";
    ConfirmDeletions => "confirm_deletions", true, "confirm a sweep the mass-deletion guard stopped (type the name)";
    PollNow => "poll", true, "poll now";
    Retry => "retry", true, "retry the selected DLQ entry (DLQ pane) or all";
    Discard => "discard", true, "discard the selected DLQ entry, with a note";
    Pause => "pause", true, "pause / resume";
    Token => "token", true, "replace the token (masked input)";
    Onboard => "onboard", true, "onboard a customer";
    Offboard => "offboard", true, "offboard (type the name)";
    Help => "help", false, "this help";
    CommandLine => "command", false, "command line (:backfill acme, :dismiss acme RUN, :sort name, :q)";
    Filter => "filter", false, "filter customers by name";
    Sort => "sort", false, "cycle the sort: health+lag, name, DLQ, throughput";
    LogFilter => "log_filter", false, "log pane: all customers / the selected one";
    Open => "open", false, "open the selected DLQ entry's payload";
    NextPane => "next_pane", false, "next pane: customers, DLQ, log";
    Back => "back", false, "back to the customers pane / close";
    Up => "up", false, "up";
    Down => "down", false, "down";
    PageUp => "page_up", false, "ten up";
    PageDown => "page_down", false, "ten down";
    Top => "top", false, "first";
    Bottom => "bottom", false, "last";
    Quit => "quit", false, "quit (the engine finishes its pages in flight)";
}

/// Keys to actions.
#[derive(Debug, Clone)]
pub struct KeyMap {
    map: HashMap<KeyCode, Action>,
}

impl Default for KeyMap {
    fn default() -> Self {
        use Action as A;
        let chars = [
            ('b', A::Backfill),
            ('r', A::Reconcile),
            ('d', A::Sweep),
            ('c', A::ConfirmDeletions),
            ('P', A::PollNow),
            ('t', A::Retry),
            ('x', A::Discard),
            ('p', A::Pause),
            ('u', A::Token),
            ('n', A::Onboard),
            ('o', A::Offboard),
            ('?', A::Help),
            (':', A::CommandLine),
            ('/', A::Filter),
            ('s', A::Sort),
            ('f', A::LogFilter),
            ('k', A::Up),
            ('j', A::Down),
            ('g', A::Top),
            ('G', A::Bottom),
            ('q', A::Quit),
        ];
        let mut map: HashMap<KeyCode, Action> =
            chars.into_iter().map(|(c, a)| (KeyCode::Char(c), a)).collect();
        for (code, action) in [
            (KeyCode::Up, A::Up),
            (KeyCode::Down, A::Down),
            (KeyCode::PageUp, A::PageUp),
            (KeyCode::PageDown, A::PageDown),
            (KeyCode::Home, A::Top),
            (KeyCode::End, A::Bottom),
            (KeyCode::Tab, A::NextPane),
            (KeyCode::Right, A::NextPane),
            (KeyCode::Char('l'), A::NextPane),
            (KeyCode::Left, A::Back),
            (KeyCode::Char('h'), A::Back),
            (KeyCode::Esc, A::Back),
            (KeyCode::Enter, A::Open),
        ] {
            map.insert(code, action);
        }
        Self { map }
    }
}

impl KeyMap {
    /// The defaults with `overrides` (action name → key) applied. A key
    /// given to a new action leaves its old one.
    pub fn with_overrides(overrides: &HashMap<String, String>) -> Result<Self, String> {
        let mut keys = Self::default();
        for (name, key) in overrides {
            let action = Action::by_name(name).ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("[console.keys]: unknown action {name:?}; actions are {}", names.join(", "))
            })?;
            let code = parse_key(key).ok_or_else(|| {
                format!("[console.keys] {name} = {key:?}: give one character, or Enter, Esc, Tab, Up, Down, Left, Right, PageUp, PageDown, Home, End")
            })?;
            keys.map.retain(|_, a| *a != action);
            keys.map.insert(code, action);
        }
        Ok(keys)
    }

    /// The action of a key press; Ctrl and Alt chords do nothing here.
    pub fn action(&self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) {
            return None;
        }
        self.map.get(&key.code).copied()
    }

    /// The keys bound to `action`, for the help.
    pub fn keys_of(&self, action: Action) -> Vec<String> {
        let mut keys: Vec<String> =
            self.map.iter().filter(|(_, a)| **a == action).map(|(k, _)| key_label(*k)).collect();
        keys.sort();
        keys
    }
}

fn parse_key(text: &str) -> Option<KeyCode> {
    let mut chars = text.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(KeyCode::Char(c));
    }
    Some(match text.to_lowercase().as_str() {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pageup" => KeyCode::PageUp,
        "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        _ => return None,
    })
}

fn key_label(code: KeyCode) -> String {
    match code {
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remapping_moves_a_key_and_refuses_unknown_names() {
        let overrides = HashMap::from([("offboard".to_owned(), "O".to_owned())]);
        let keys = KeyMap::with_overrides(&overrides).unwrap();
        let press = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(keys.action(press('O')), Some(Action::Offboard));
        assert_eq!(keys.action(press('o')), None);
        let err =
            KeyMap::with_overrides(&HashMap::from([("explode".to_owned(), "e".to_owned())])).unwrap_err();
        assert!(err.contains("unknown action \"explode\""), "{err}");
        assert_eq!(KeyMap::default().action(KeyEvent::new(KeyCode::Char('o'), KeyModifiers::CONTROL)), None);
    }
}
