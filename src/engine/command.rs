//! The only way into a running engine: commands from front ends, each
//! answered with a one-line result for the operator.

use crate::store::{DlqId, RunId};

/// Something an operator asks the engine to do. Serialisable: a command
/// for a customer another process runs travels through the state DB.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Start the backfill now (outside allowed hours too), or re-walk every
    /// user of an active customer without moving its checkpoint.
    Backfill {
        customer: String,
    },
    /// Poll now instead of at the next scheduled time.
    PollNow {
        customer: String,
    },
    /// Retry one DLQ entry, or every pending one of the customer.
    RetryDlq {
        customer: String,
        id: Option<DlqId>,
    },
    /// Reconcile the recent past now (in the background; polls go on).
    Reconcile {
        customer: String,
    },
    /// Scan every user for deletions and drift now (in the background).
    DeletionSweep {
        customer: String,
        dry_run: bool,
    },
    /// Carry out (`confirm`) or drop a sweep the mass-deletion guard stopped.
    SettleDeletions {
        customer: String,
        run: RunId,
        confirm: bool,
    },
    /// Stop the customer, delete its token, keep (or with `purge`, remove)
    /// its state.
    Offboard {
        customer: String,
        purge: bool,
    },
    Pause {
        customer: String,
    },
    Resume {
        customer: String,
    },
    /// Re-read customers from the state DB now.
    Reload,
}

impl Command {
    pub fn customer(&self) -> Option<&str> {
        match self {
            Self::Backfill { customer }
            | Self::PollNow { customer }
            | Self::RetryDlq { customer, .. }
            | Self::Reconcile { customer }
            | Self::DeletionSweep { customer, .. }
            | Self::SettleDeletions { customer, .. }
            | Self::Offboard { customer, .. }
            | Self::Pause { customer }
            | Self::Resume { customer } => Some(customer),
            Self::Reload => None,
        }
    }

    /// The audit-log action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Backfill { .. } => "sync.backfill",
            Self::PollNow { .. } => "sync.poll",
            Self::RetryDlq { .. } => "dlq.retry",
            Self::Reconcile { .. } => "sync.reconcile",
            Self::DeletionSweep { dry_run: true, .. } => "sync.deletions.dry_run",
            Self::DeletionSweep { .. } => "sync.deletions",
            Self::SettleDeletions { confirm: true, .. } => "sync.deletions.confirm",
            Self::SettleDeletions { .. } => "sync.deletions.dismiss",
            Self::Offboard { .. } => "customer.offboard",
            Self::Pause { .. } => "customer.pause",
            Self::Resume { .. } => "customer.resume",
            Self::Reload => "engine.reload",
        }
    }
}

impl Command {
    /// Commands whose action writes its own, more precise audit entry.
    pub fn audits_itself(&self) -> bool {
        matches!(self, Self::SettleDeletions { .. } | Self::Offboard { .. })
    }
}

/// The answer to a command: what happened, or why not.
pub type CommandReply = Result<String, String>;
