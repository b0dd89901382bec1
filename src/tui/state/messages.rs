//! What goes into the console's one step and what comes out: a [`Msg`]
//! (a key, an engine snapshot or event, an action's result, a tick) and
//! the [`Effect`]s the runtime carries out.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use crate::engine::DlqItem;
use crate::engine::{Command, EngineEvent, EngineSnapshot};

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
