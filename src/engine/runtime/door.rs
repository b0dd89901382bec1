//! Carrying out a [`Command`] in this process — the same code whoever asked
//! (the console through its supervisor, the CLI through the [`Operator`],
//! another process through the command queue): changes of a customer's
//! state ([`change_state`]), work run here on a prepared run
//! ([`run_here`]), and the one audit entry every command leaves
//! ([`audit`]). Which process carries a command out is decided by its
//! routing (`Command::routing`), by the supervisor or the operator.
//!
//! [`Operator`]: super::operator::Operator

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::command::{Command, CommandError, CommandReply, Details, Done, OnboardRequest};
use super::shared::Shared;
use crate::dest::default_names;
use crate::domain::{CustomerStatus, RunKind};
use crate::engine::ops::{self, check_destination, customer_named, pause_transition, resumed_status};
use crate::engine::run::dlq_retry::{self, Selection};
use crate::engine::run::execute::{self, Mode};
use crate::engine::run::live::Live;
use crate::engine::run::settle;
use crate::store::{AuditEntry, Customer, NewCustomer, NewDestination};

/// A command's audit entry: who, what, and how it went (never a secret).
pub(crate) fn audit_entry(command: &Command, actor: &str, result: Result<&str, &CommandError>) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: actor.to_owned(),
        customer: command.customer().map(str::to_owned),
        action: command.action().to_owned(),
        detail: command.audit_detail(),
        result: match result {
            Ok(text) => text.to_owned(),
            Err(e) => format!("refused: {e}"),
        },
    }
}

/// Records `command`'s audit entry unless its change recorded a more
/// precise one in its own transaction.
pub(crate) async fn audit(
    shared: &Shared,
    command: &Command,
    actor: &str,
    result: Result<&str, &CommandError>,
) {
    if command.audits_itself() && result.is_ok() {
        return;
    }
    if let Err(e) = shared.store.record_audit(&audit_entry(command, actor, result)).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Carries out a command that only changes the state DB. The caller has
/// stopped the customer's worker first where one runs (offboarding), and
/// reloads afterwards so workers follow.
pub(crate) async fn change_state(shared: &Arc<Shared>, command: &Command, actor: &str) -> CommandReply {
    match command {
        Command::Onboard(request) => onboard(shared, request, actor).await,
        Command::ReplaceToken { customer, token } => {
            let customer = customer_named(&shared.store, customer).await?;
            if customer.status == CustomerStatus::Offboarded {
                return Err(CommandError::Refused(format!(
                    "{} is offboarded; restore it instead",
                    customer.name
                )));
            }
            ops::validate_token(shared, &customer.vomo_url, token).await?;
            shared.store.replace_token(&customer, token).await?;
            let mut status = customer.status;
            if status == CustomerStatus::TokenRejected {
                status = resumed_status(&shared.store, &customer).await?;
                shared.store.set_customer_status(customer.id, status, None).await?;
            }
            Ok(Done::with(
                format!("token {} stored; status {status}", token.fingerprint()),
                Details::Status(status),
            ))
        }
        Command::Restore { customer, token } => {
            let customer = customer_named(&shared.store, customer).await?;
            if customer.status != CustomerStatus::Offboarded {
                let why = format!("{} is not offboarded (it is {})", customer.name, customer.status);
                return Err(CommandError::Refused(why));
            }
            ops::validate_token(shared, &customer.vomo_url, token).await?;
            let status = resumed_status(&shared.store, &customer).await?;
            let text = format!("restored with token {}; status {status}", token.fingerprint());
            let entry = audit_entry(command, actor, Ok(&text));
            shared.store.restore_customer(&customer, token, status, &entry).await?;
            Ok(Done::with(text, Details::Status(status)))
        }
        Command::Pause { customer } | Command::Resume { customer } => {
            let customer = customer_named(&shared.store, customer).await?;
            let pause = matches!(command, Command::Pause { .. });
            let next = pause_transition(&shared.store, &customer, pause).await?;
            shared.store.set_customer_status(customer.id, next, None).await?;
            Ok(Done::with(format!("{} is now {next}", customer.name), Details::Status(next)))
        }
        Command::Offboard { customer, purge } => offboard(shared, customer, *purge, actor, command).await,
        Command::DiscardDlq { customer, id, note } => {
            discard(shared, customer, *id, note, actor, command).await
        }
        Command::IssueHealthToken { customer } => {
            let customer = customer_named(&shared.store, customer).await?;
            let token = crate::engine::health::new_health_token();
            shared
                .store
                .set_health_token(customer.id, &crate::engine::health::health_token_hash(&token))
                .await?;
            Ok(Done::with("new health token issued (shown once)", Details::Secret(token)))
        }
        Command::Reload => Ok(Done::said("customers reloaded")),
        _ => Err(CommandError::Refused(format!("{} is work, not a change of state", command.action()))),
    }
}

/// Onboards a customer (validated name, token and destinations; one
/// transaction); its backfill is queued for the engine.
async fn onboard(shared: &Arc<Shared>, request: &OnboardRequest, actor: &str) -> CommandReply {
    ops::validate_name(&request.name)?;
    if shared.store.customer(&request.name).await?.is_some() {
        return Err(CommandError::Refused(format!("a customer named {:?} already exists", request.name)));
    }
    if request.destinations.is_empty() {
        return Err(CommandError::Refused("give at least one --dest".into()));
    }
    ops::validate_writeback(&request.settings.writeback_fields, &request.destinations)?;
    ops::validate_token(shared, &request.vomo_url, &request.token).await?;
    let names = default_names(&request.destinations);
    for (name, spec) in names.iter().zip(&request.destinations) {
        check_destination(name, spec, &shared.config.outbound, &request.settings.writeback_fields).await?;
    }
    let destinations: Vec<NewDestination> = names
        .iter()
        .zip(&request.destinations)
        .map(|(name, spec)| NewDestination {
            name: name.clone(),
            kind: spec.kind().to_owned(),
            config: serde_json::json!({ "display": spec.display() }).to_string(),
            secret: Some(spec.to_spec_string()),
        })
        .collect();
    let text = format!("onboarded {} (token {}); backfill queued", request.name, request.token.fingerprint());
    let entry = audit_entry(&Command::Onboard(Box::new(request.clone())), actor, Ok("ok; backfill queued"));
    let new = NewCustomer {
        name: &request.name,
        vomo_url: &request.vomo_url,
        settings: &request.settings,
        status: CustomerStatus::Backfilling,
    };
    let customer = shared.store.add_customer(&new, &request.token, &destinations, &entry).await?;
    Ok(Done::with(text, Details::Onboarded(Box::new(customer))))
}

/// Offboards a customer: its token is deleted at once, its state kept for
/// the retention period (removed now with `purge`). Data in the customer's
/// own systems is theirs and is not touched.
async fn offboard(shared: &Shared, name: &str, purge: bool, actor: &str, command: &Command) -> CommandReply {
    let customer = customer_named(&shared.store, name).await?;
    let retention = crate::domain::span_words(
        i64::try_from(shared.config.offboard_retention.as_secs()).unwrap_or(i64::MAX),
    );
    if customer.status != CustomerStatus::Offboarded {
        let entry = audit_entry(command, actor, Ok(&format!("token deleted; state kept for {retention}")));
        shared.store.offboard_customer(&customer, &entry).await?;
    } else if !purge {
        return Err(CommandError::Refused(format!(
            "{name} is already offboarded; add --purge to remove its state now"
        )));
    }
    if purge {
        purge_customer(shared, &customer, actor, "purged on request").await?;
        return Ok(Done::said(format!("{name} offboarded and purged (the audit log keeps its history)")));
    }
    Ok(Done::said(format!("{name} offboarded: token deleted; its state is kept for {retention}")))
}

/// Removes everything of a customer but the audit log, audited.
pub(crate) async fn purge_customer(
    shared: &Shared,
    customer: &Customer,
    actor: &str,
    why: &str,
) -> Result<(), CommandError> {
    shared.store.purge_customer(customer.id).await?;
    let entry = AuditEntry {
        at: Utc::now(),
        actor: actor.to_owned(),
        customer: Some(customer.name.clone()),
        action: "customer.purge".to_owned(),
        detail: format!("{why}; everything but the audit log removed"),
        result: "ok".to_owned(),
    };
    shared.store.record_audit(&entry).await?;
    Ok(())
}

/// Purges customers offboarded longer than the retention period (the
/// engine's housekeeping); returns their names.
pub(crate) async fn purge_past_retention(
    shared: &Shared,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<String>, CommandError> {
    let retention =
        chrono::Duration::from_std(shared.config.offboard_retention).unwrap_or(chrono::Duration::MAX);
    let mut purged = Vec::new();
    for customer in shared.store.customers().await? {
        let expired = customer.offboarded_at.is_some_and(|at| at < now - retention);
        if customer.status == CustomerStatus::Offboarded && expired {
            purge_customer(shared, &customer, "engine", "retention period over").await?;
            purged.push(customer.name);
        }
    }
    Ok(purged)
}

/// Gives up on a DLQ entry of `customer`, with a note (audited with it).
async fn discard(
    shared: &Shared,
    customer: &str,
    id: i64,
    note: &str,
    actor: &str,
    command: &Command,
) -> CommandReply {
    if note.trim().is_empty() {
        return Err(CommandError::Refused("a discard needs a note saying why".into()));
    }
    let owner = customer_named(&shared.store, customer).await?;
    let entry = shared
        .store
        .dlq_entry(id)
        .await?
        .filter(|e| e.customer_id == owner.id)
        .ok_or_else(|| CommandError::Refused(format!("{customer} has no DLQ entry {id}")))?;
    let text = format!("entry {id} (user {}, {}) discarded", entry.vomo_user_id, entry.destination);
    shared.store.discard_dlq(id, note, &audit_entry(command, actor, Ok(&text))).await?;
    Ok(Done::said(text))
}

/// Runs a command's work here, on a run prepared for `customer` (whose
/// lease `lease_owner` holds): the CLI's path when no process runs the
/// customer. A worker does the same work with its own runtime.
pub(crate) async fn run_here(
    shared: &Arc<Shared>,
    customer: &Customer,
    command: &Command,
    actor: &str,
    lease_owner: &str,
) -> CommandReply {
    let runtime = shared.prepare(customer, Arc::new(Live::default()), Some(lease_owner)).await?;
    let cancel = CancellationToken::new();
    let (kind, mode) = match command {
        Command::Backfill { .. } | Command::PollNow { .. } => {
            let report = super::advance::advancing_run(shared, &runtime, true, &cancel).await?;
            let report =
                report.ok_or_else(|| CommandError::Refused("the backfill may not start now".into()))?;
            return Ok(Done::with(report.to_string(), Details::Run(Box::new(report))));
        }
        Command::RetryDlq { id, .. } => {
            let selection = id.map_or(Selection::All, |id| Selection::Ids(vec![id]));
            let report = dlq_retry::retry_dlq(&runtime, &selection).await?;
            let text = format!("{} delivered, {} still failing", report.delivered, report.failed);
            return Ok(Done::with(text, Details::Retry(report)));
        }
        Command::SettleDeletions { run, confirm, .. } => {
            let settled = settle::settle(&runtime, *run, *confirm, actor).await?;
            let details = Details::Settled { deleted: settled.deleted, kept: settled.kept };
            return Ok(Done::with(settled.message, details));
        }
        Command::Reconcile { .. } => (RunKind::Reconcile, Mode::Reconcile),
        Command::DeletionSweep { dry_run, .. } => (RunKind::Deletions, Mode::FullScan { dry_run: *dry_run }),
        _ => return Err(CommandError::Refused(format!("{} is not work to run", command.action()))),
    };
    if !matches!(customer.status, CustomerStatus::Active | CustomerStatus::Paused) {
        return Err(CommandError::Refused(format!(
            "{} is {}; reconciliation and sweeps need a completed backfill and a valid token",
            customer.name, customer.status
        )));
    }
    let report = execute::run(&runtime, kind, mode, &cancel).await?;
    Ok(Done::with(report.to_string(), Details::Run(Box::new(report))))
}
