//! Something the engine did or saw, for log panes and logs: runs starting
//! and ending, failures, operators' commands.

use chrono::{DateTime, Utc};
use serde::Serialize;

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
