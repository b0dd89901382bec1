//! The one door for operator actions: every action that changes a
//! customer's state is a [`Command`], whoever asks (the console, the CLI, a
//! command queued by another process) and wherever it is carried out (by
//! the process that owns the customer, or — when none does — by the asking
//! process under a short lease). Each is answered with a [`Done`] or a
//! [`CommandError`].

use std::fmt;

use crate::dest::DestinationSpec;
use crate::domain::{ApiToken, CustomerSettings, CustomerStatus};
use crate::engine::error::SyncError;
use crate::engine::run::dlq_retry::RetryReport;
use crate::engine::run::execute::RunReport;
use crate::store::{Customer, DlqId, RunId, StoreError};
use crate::vomo::VomoError;

/// What onboarding needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardRequest {
    pub name: String,
    pub token: ApiToken,
    pub vomo_url: String,
    pub destinations: Vec<DestinationSpec>,
    pub settings: CustomerSettings,
}

impl OnboardRequest {
    /// A request from text as an operator typed it (the console's form):
    /// the token and the destination specs parsed, nothing checked yet.
    pub fn from_text(
        name: &str,
        token: &str,
        vomo_url: &str,
        destinations: &[String],
        settings: CustomerSettings,
    ) -> Result<Self, CommandError> {
        let token = ApiToken::new(token).ok_or_else(|| CommandError::Refused("the token is empty".into()))?;
        let destinations = destinations
            .iter()
            .map(|d| DestinationSpec::parse(d).map_err(|e| CommandError::Refused(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { name: name.to_owned(), token, vomo_url: vomo_url.to_owned(), destinations, settings })
    }
}

/// Something an operator asks the engine to do. Serialisable: a command
/// for a customer another process runs travels through the state DB —
/// except those carrying or answering with a secret, which never leave the
/// process they are given to (`#[serde(skip)]`: queueing one fails).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Give up on a DLQ entry, with a note saying why.
    DiscardDlq {
        customer: String,
        id: DlqId,
        note: String,
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
    /// A new customer, its token validated and its destinations checked.
    #[serde(skip)]
    Onboard(Box<OnboardRequest>),
    /// A new (validated) token; a customer stopped by a rejected token
    /// resumes from its checkpoint.
    #[serde(skip)]
    ReplaceToken {
        customer: String,
        token: ApiToken,
    },
    /// An offboarded customer back, with a new (validated) token.
    #[serde(skip)]
    Restore {
        customer: String,
        token: ApiToken,
    },
    /// A new read-only health token for the customer's health page (the
    /// answer carries it: shown once).
    #[serde(skip)]
    IssueHealthToken {
        customer: String,
    },
    /// Re-read customers from the state DB now.
    Reload,
}

/// Who may carry out a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing<'a> {
    /// The process that runs the named customer (its worker does the work,
    /// or must stop first); through the command queue when that is another
    /// process; under a short lease of the asking process when none is.
    Owner(&'a str),
    /// Any process: it only changes the state DB, and the owner (if any)
    /// sees the change at its next reload.
    Anywhere,
}

impl Command {
    pub fn customer(&self) -> Option<&str> {
        match self {
            Self::Backfill { customer }
            | Self::PollNow { customer }
            | Self::RetryDlq { customer, .. }
            | Self::DiscardDlq { customer, .. }
            | Self::Reconcile { customer }
            | Self::DeletionSweep { customer, .. }
            | Self::SettleDeletions { customer, .. }
            | Self::Offboard { customer, .. }
            | Self::Pause { customer }
            | Self::Resume { customer }
            | Self::ReplaceToken { customer, .. }
            | Self::Restore { customer, .. }
            | Self::IssueHealthToken { customer } => Some(customer),
            Self::Onboard(request) => Some(&request.name),
            Self::Reload => None,
        }
    }

    /// The audit-log action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Backfill { .. } => "sync.backfill",
            Self::PollNow { .. } => "sync.poll",
            Self::RetryDlq { .. } => "dlq.retry",
            Self::DiscardDlq { .. } => "dlq.discard",
            Self::Reconcile { .. } => "sync.reconcile",
            Self::DeletionSweep { dry_run: true, .. } => "sync.deletions.dry_run",
            Self::DeletionSweep { .. } => "sync.deletions",
            Self::SettleDeletions { confirm: true, .. } => "sync.deletions.confirm",
            Self::SettleDeletions { .. } => "sync.deletions.dismiss",
            Self::Offboard { .. } => "customer.offboard",
            Self::Pause { .. } => "customer.pause",
            Self::Resume { .. } => "customer.resume",
            Self::Onboard(_) => "customer.add",
            Self::ReplaceToken { .. } => "customer.token",
            Self::Restore { .. } => "customer.restore",
            Self::IssueHealthToken { .. } => "customer.health_token",
            Self::Reload => "engine.reload",
        }
    }

    pub fn routing(&self) -> Routing<'_> {
        match self {
            Self::Backfill { customer }
            | Self::PollNow { customer }
            | Self::RetryDlq { customer, .. }
            | Self::Reconcile { customer }
            | Self::DeletionSweep { customer, .. }
            | Self::SettleDeletions { customer, .. }
            | Self::Offboard { customer, .. }
            | Self::Pause { customer } => Routing::Owner(customer),
            Self::DiscardDlq { .. }
            | Self::Resume { .. }
            | Self::Onboard(_)
            | Self::ReplaceToken { .. }
            | Self::Restore { .. }
            | Self::IssueHealthToken { .. }
            | Self::Reload => Routing::Anywhere,
        }
    }

    /// Whether the command may travel through the state DB's queue (it
    /// carries no secret and its answer shows none).
    pub fn queueable(&self) -> bool {
        !matches!(
            self,
            Self::Onboard(_)
                | Self::ReplaceToken { .. }
                | Self::Restore { .. }
                | Self::IssueHealthToken { .. }
        )
    }

    /// Commands whose action writes its own, more precise audit entry (in
    /// the transaction of the change itself).
    pub fn audits_itself(&self) -> bool {
        matches!(
            self,
            Self::SettleDeletions { .. }
                | Self::Offboard { .. }
                | Self::Onboard(_)
                | Self::Restore { .. }
                | Self::DiscardDlq { .. }
        )
    }

    /// What the audit log records of the command: no secret, ever.
    pub fn audit_detail(&self) -> String {
        match self {
            Self::Onboard(request) => {
                let shown: Vec<String> = request.destinations.iter().map(DestinationSpec::display).collect();
                format!("destinations: {}", shown.join(", "))
            }
            Self::ReplaceToken { token, .. } | Self::Restore { token, .. } => {
                format!("new token {}", token.fingerprint())
            }
            Self::RetryDlq { id: Some(id), .. } => format!("entry {id}"),
            Self::RetryDlq { id: None, .. } => "all pending entries".to_owned(),
            Self::DiscardDlq { id, note, .. } => format!("entry {id}: {note}"),
            Self::DeletionSweep { dry_run, .. } => format!("dry run: {dry_run}"),
            Self::SettleDeletions { run, .. } => format!("run {run}"),
            Self::Offboard { purge, .. } => format!("purge: {purge}"),
            _ => String::new(),
        }
    }
}

/// What a command did beyond its one-line answer, for callers that show
/// more (the CLI prints a run's counts). A command carried out by another
/// process answers with its line only.
#[derive(Debug, Clone, Default)]
pub enum Details {
    #[default]
    None,
    /// A run carried out here (reconciliation, sweep, poll, backfill).
    Run(Box<RunReport>),
    /// A settled sweep: users deleted, users kept.
    Settled {
        deleted: usize,
        kept: usize,
    },
    Retry(RetryReport),
    /// The customer's status after the command.
    Status(CustomerStatus),
    Onboarded(Box<Customer>),
    /// A secret to show once (a health token).
    Secret(String),
}

/// A command's answer.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// One line for the operator.
    pub message: String,
    pub details: Details,
}

impl Done {
    pub fn said(message: impl Into<String>) -> Self {
        Self { message: message.into(), details: Details::None }
    }

    pub fn with(message: impl Into<String>, details: Details) -> Self {
        Self { message: message.into(), details }
    }
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why a command was not carried out (or failed), in words an operator can
/// act on.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(
        "VOMO rejected this token (401 Unauthorized); nothing was stored. Check that it was copied whole and has not been revoked"
    )]
    TokenRejected,
    #[error(
        "VOMO refused access with this token (403 Forbidden); nothing was stored. Is API access enabled for the customer's organisation?"
    )]
    TokenForbidden,
    #[error("cannot validate the token: {0}; nothing was stored")]
    Vomo(VomoError),
    #[error("destination {name} ({shown}) failed its check: {reason}; nothing was stored")]
    Destination { name: String, shown: String, reason: String },
    #[error("no customer named {0:?}; `vomo-sync customer list` shows them")]
    UnknownCustomer(String),
    /// Not allowed in the customer's state (with what to do instead).
    #[error("{0}")]
    Refused(String),
    /// No process runs the customer's work, and it cannot be done here.
    #[error("{0}")]
    NotRunning(String),
    /// A process holds the customer that takes no commands now.
    #[error("{0}")]
    Busy(String),
    /// The answer of the process that carried it out (or of the queue).
    #[error("{0}")]
    Remote(String),
    #[error("the engine has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<crate::engine::run::settle::SettleError> for CommandError {
    fn from(e: crate::engine::run::settle::SettleError) -> Self {
        use crate::engine::run::settle::SettleError;
        match e {
            SettleError::Invalid(why) => Self::Refused(why),
            SettleError::Store(e) => Self::Store(e),
            SettleError::Sync(e) => Self::Sync(e),
        }
    }
}

/// The answer to a command.
pub type CommandReply = Result<Done, CommandError>;
