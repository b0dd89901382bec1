//! The operator's answer to a deletion sweep the mass-deletion guard stopped
//! (design.md §3.3): checking that a run can be settled, and recording the
//! answer — the run's outcome, its counts, the audit entry. The deletions
//! themselves (each listed user asked about once more, by
//! [`super::sweep::delete_confirmed`]) are done by [`settle`], in whichever
//! process holds the customer's lease: the CLI or the engine.

use chrono::Utc;

use super::customer::CustomerRuntime;
use crate::domain::{RunKind, RunOutcome, VomoUserId};
use crate::engine::error::SyncError;
use crate::store::{AuditEntry, Customer, Run, RunId, Store, StoreError};

/// A guarded run waiting for an operator.
pub struct Waiting {
    pub run: Run,
    pub customer: Customer,
    /// The users it would delete.
    pub ids: Vec<VomoUserId>,
}

/// Why a run cannot be settled.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What settling a sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The run's new message.
    pub message: String,
    pub deleted: usize,
    pub kept: usize,
}

/// Carries out (`confirm`) or drops the sweep `run` of `runtime`'s
/// customer: confirmed users are asked about once more, one by one, and
/// only those VOMO still does not have are deleted downstream.
pub async fn settle(
    runtime: &CustomerRuntime,
    run: RunId,
    confirm: bool,
    actor: &str,
) -> Result<Settled, SettleError> {
    let store = &runtime.target.store;
    let waiting = waiting(store, run).await?;
    if waiting.customer.id != runtime.customer.id {
        return Err(SettleError::Invalid(format!("run {run} belongs to {}", waiting.customer.name)));
    }
    let (deleted, kept) = if confirm {
        super::sweep::delete_confirmed(runtime, &waiting.ids).await?
    } else {
        (0, waiting.ids.len())
    };
    let message = record(store, &waiting, confirm, (deleted, kept), actor).await?;
    Ok(Settled { message, deleted, kept })
}

/// The run `run_id`, if it is a deletion sweep waiting for confirmation.
pub async fn waiting(store: &Store, run_id: RunId) -> Result<Waiting, SettleError> {
    let run = store.run(run_id).await?.ok_or_else(|| SettleError::Invalid(format!("no run {run_id}")))?;
    if run.kind != RunKind::Deletions || run.outcome != RunOutcome::NeedsConfirmation {
        return Err(SettleError::Invalid(format!(
            "run {run_id} is a {} run that is {}, not a deletion sweep waiting for confirmation",
            run.kind, run.outcome
        )));
    }
    let customer = store
        .customer_by_id(run.customer_id)
        .await?
        .ok_or_else(|| SettleError::Invalid(format!("run {run_id}'s customer is gone")))?;
    let ids = store.pending_deletions(run_id).await?;
    Ok(Waiting { run, customer, ids })
}

/// Records the answer: confirmed with `deleted` users deleted and `kept`
/// found still in VOMO, or dismissed. Returns the run's new message.
pub async fn record(
    store: &Store,
    waiting: &Waiting,
    confirmed: bool,
    (deleted, kept): (usize, usize),
    actor: &str,
) -> Result<String, StoreError> {
    let Waiting { run, customer, ids } = waiting;
    let outcome = if confirmed { RunOutcome::Confirmed } else { RunOutcome::Dismissed };
    let message = format!("{} by {actor}: {deleted} deleted, {kept} kept", outcome.as_str());
    let mut counts = run.counts;
    counts.deleted = crate::domain::count_of(deleted);
    store.finish_run(run.id, outcome, &counts, run.requests_used, Some(&message)).await?;
    store.clear_pending_deletions(run.id).await?;
    let action = if confirmed { "sync.deletions.confirm" } else { "sync.deletions.dismiss" };
    store
        .record_audit(&AuditEntry {
            at: Utc::now(),
            actor: actor.to_owned(),
            customer: Some(customer.name.clone()),
            action: action.to_owned(),
            detail: format!("run {}: {} users listed", run.id, ids.len()),
            result: message.clone(),
        })
        .await?;
    Ok(message)
}
