//! `vomo-sync sync …`: a reconciliation or a deletion sweep now, and the
//! operator's answer to a sweep the mass-deletion guard stopped. When an
//! instance runs the customer, the command goes to it through the state
//! DB's command queue (it is carried out there, once) and its answer is
//! printed; otherwise reconciliations and sweeps run here.

use std::process::ExitCode;

use crate::cli::SyncCommand;
use crate::config::Config;
use crate::engine::{Command, Details, RunReport, os_user};

use super::open_operator;

/// Exit status of a sweep that stopped at the mass-deletion guard.
const EXIT_NEEDS_CONFIRMATION: u8 = 3;

pub async fn run(command: SyncCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let operator = open_operator(config, false).await?;
    let engine_command = as_engine_command(&command);
    let (SyncCommand::Reconcile { name }
    | SyncCommand::Poll { name }
    | SyncCommand::Backfill { name }
    | SyncCommand::Deletions { name, .. }) = &command;
    let name = name.clone();
    let done = operator.send(engine_command, &os_user()).await?;
    // Carried out by the instance that runs the customer, its answer is
    // all there is; carried out here, the run's counts are printed.
    let report = match done.details {
        Details::Run(report) => *report,
        Details::Settled { deleted, kept } => {
            let run = match &command {
                SyncCommand::Deletions { confirm, dismiss, .. } => confirm.or(*dismiss),
                _ => None,
            };
            let run = run.map_or_else(|| "the sweep".to_owned(), |id| format!("run {id}"));
            println!("{run}: {deleted} users deleted downstream, {kept} kept");
            return Ok(ExitCode::SUCCESS);
        }
        _ => {
            println!("{name}: {}", done.message);
            return Ok(ExitCode::SUCCESS);
        }
    };
    match command {
        SyncCommand::Poll { .. } | SyncCommand::Backfill { .. } => {
            println!("{name}: {report}");
            Ok(ExitCode::SUCCESS)
        }
        SyncCommand::Reconcile { .. } => {
            let c = &report.counts;
            println!(
                "{name}: reconciled {} users in {} requests — {} missed creates, {} missed updates, {} drifted, \
                 {} lost downstream repaired; {} held in the DLQ",
                c.users_seen,
                report.requests,
                c.missed_create,
                c.missed_update,
                c.drift,
                c.lost_downstream,
                c.dlq_held,
            );
            Ok(ExitCode::SUCCESS)
        }
        SyncCommand::Deletions { dry_run, .. } => deletions(&name, dry_run, &report),
    }
}

/// What a sweep run here found, and its exit status.
fn deletions(name: &str, dry_run: bool, report: &RunReport) -> anyhow::Result<ExitCode> {
    let c = &report.counts;
    let listed: Vec<String> = report.deletions.iter().take(20).map(ToString::to_string).collect();
    let more = report.deletions.len().saturating_sub(20);
    let list = if more > 0 { format!("{} and {more} more", listed.join(", ")) } else { listed.join(", ") };
    if report.needs_confirmation && dry_run {
        println!(
            "{name}: {} users are gone from VOMO's listing, above the guard of {}: a real sweep would \
                     delete nothing and wait for an operator's confirmation. Dry run, nothing changed.\nUsers: {list}",
            report.deletions.len(),
            c.deletion_threshold,
        );
        return Ok(ExitCode::from(EXIT_NEEDS_CONFIRMATION));
    }
    if report.needs_confirmation {
        println!(
            "{name}: {} users are gone from VOMO's listing, above the guard of {}; nothing was deleted.\n\
                     Users: {list}\nTo go on, {} (each user is checked once more).",
            report.deletions.len(),
            c.deletion_threshold,
            report.confirmation_hint(name)
        );
        return Ok(ExitCode::from(EXIT_NEEDS_CONFIRMATION));
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    println!(
        "{name}: scanned {} users in {} requests; {verb} {} ({}), {} moved mid-scan, {} drifted repaired{}",
        c.users_seen,
        report.requests,
        report.deletions.len(),
        if list.is_empty() { "none".to_owned() } else { list },
        c.moved_mid_scan,
        c.drift,
        if dry_run { " — dry run, nothing changed" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// The engine command a `sync …` invocation stands for.
fn as_engine_command(command: &SyncCommand) -> Command {
    match command {
        SyncCommand::Reconcile { name } => Command::Reconcile { customer: name.clone() },
        SyncCommand::Poll { name } => Command::PollNow { customer: name.clone() },
        SyncCommand::Backfill { name } => Command::Backfill { customer: name.clone() },
        SyncCommand::Deletions { name, dry_run, confirm, dismiss } => match confirm.or(*dismiss) {
            Some(run) => Command::SettleDeletions { customer: name.clone(), run, confirm: confirm.is_some() },
            None => Command::DeletionSweep { customer: name.clone(), dry_run: *dry_run },
        },
    }
}
