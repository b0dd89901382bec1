//! The only way into a running engine: commands from front ends, each
//! answered with a one-line result for the operator.

use crate::store::DlqId;

/// Something an operator asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            Self::Pause { .. } => "customer.pause",
            Self::Resume { .. } => "customer.resume",
            Self::Reload => "engine.reload",
        }
    }
}

/// The answer to a command: what happened, or why not.
pub type CommandReply = Result<String, String>;
