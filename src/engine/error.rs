//! Why a run (or an operator's command) stopped: one variant per kind of
//! trouble, each message saying what to do.

use super::run::clock::ClockError;
use crate::store::StoreError;
use crate::vomo::VomoError;

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("VOMO rejected the customer's token (401); replace it with `vomo-sync customer token`")]
    TokenRejected(#[source] VomoError),
    #[error(
        "VOMO refused access with the customer's token (403): is API access enabled for the organisation?"
    )]
    Forbidden(#[source] VomoError),
    #[error("{0}")]
    Vomo(#[source] VomoError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// VOMO's clock is not believable; nothing may move on its word.
    #[error("{0}")]
    Clock(#[from] ClockError),
    #[error("a destination could not be prepared: {0}")]
    Destination(String),
    #[error("stopped")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}
