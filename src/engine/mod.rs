//! The sync engine: the only module that uses the VOMO client, the state DB
//! and the destinations together. Per customer it backfills, polls, retries
//! the DLQ and keeps token health, each customer in its own task so one
//! customer's failure never stops another.
//!
//! Two rooms: [`run`] is one customer's sync run and nothing else (fetching
//! through the budget and VOMO's clock, verified windows, change detection,
//! delivery, sweeps, write-back, DLQ retries, the run's live figures);
//! [`runtime`] is the processes around runs (the supervisor, workers, the
//! fleet of instances, the command queue, snapshots, `--once`). Arrows run
//! only runtime → run. Front ends reach the engine through an
//! [`EngineHandle`] (commands in, snapshots and events out); the CLI sends
//! the same commands through [`Operator`]; [`ops::Ops`] answers read-only
//! questions.
//!
//! The invariant everything here serves: a customer's checkpoint moves to
//! the end of a window only when the window was walked completely (verified)
//! and every change in it is acknowledged by the destinations or durably
//! parked in the DLQ. A crash anywhere means at-least-once, never a gap.

pub mod alerts;
mod config;
mod error;
pub mod health;
pub mod ops;
mod run;
mod runtime;
mod thresholds;
pub mod verdict;

pub use config::{EngineConfig, Role, default_owner, os_user};
pub use error::SyncError;
pub use ops::DlqItem;
pub use run::dlq_retry::RetryReport;
pub use run::events::{EngineEvent, EventLevel};
pub use run::execute::RunReport;
pub use run::fetch::RetryPolicy;
pub use run::live::{FailureKind, RunFailure};
pub use runtime::command::{Command, CommandError, CommandReply, Details, Done, OnboardRequest, Routing};
pub use runtime::handle::{Engine, EngineHandle};
pub use runtime::once;
pub use runtime::once::OnceOutcome;
pub use runtime::operator::Operator;
pub use runtime::snapshot::{
    BudgetView, ClassRequests, CustomerSnapshot, DeclaredView, DestinationBudget, DestinationHalt,
    DestinationView, DlqView, EngineSnapshot, RunProgress, RunView, StateDbFailure, TokenView,
};
