//! `vomo-sync sync …`: a reconciliation or a deletion sweep now, and the
//! operator's answer to a sweep the mass-deletion guard stopped. When an
//! instance runs the customer, the command goes to it through the state
//! DB's command queue (it is carried out there, once) and its answer is
//! printed; otherwise reconciliations and sweeps run here.

use std::process::ExitCode;

use crate::cli::SyncCommand;
use crate::config::Config;
use crate::engine::ops::RunNow;
use crate::engine::{Command, os_user};

use super::open_ops;

/// Exit status of a sweep that stopped at the mass-deletion guard.
const EXIT_NEEDS_CONFIRMATION: u8 = 3;

pub async fn run(command: SyncCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let ops = open_ops(config, false).await?;
    let actor = os_user();
    if let Some(queued) = as_engine_command(&command)
        && let Some(answer) = ops.forward(&queued, &actor).await?
    {
        println!("{}: {answer}", queued.customer().unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        SyncCommand::Poll { name } | SyncCommand::Backfill { name } => {
            anyhow::bail!(
                "no instance is running {name} (paused, token rejected, or no `vomo-sync headless` up); \
                 `vomo-sync status` shows its state, `vomo-sync headless --once` syncs it once here"
            )
        }
        SyncCommand::Reconcile { name } => {
            let report = ops.run_now(&name, RunNow::Reconcile, &actor).await?;
            let count = |k: &str| report.counts.get(k).copied().unwrap_or(0);
            println!(
                "{name}: reconciled {} users in {} requests — {} missed creates, {} missed updates, {} drifted, \
                 {} lost downstream repaired; {} held in the DLQ",
                count("users_seen"),
                report.requests,
                count("missed_create"),
                count("missed_update"),
                count("drift"),
                count("lost_downstream"),
                count("dlq_held"),
            );
            Ok(ExitCode::SUCCESS)
        }
        SyncCommand::Deletions { name, dry_run, confirm, dismiss } => {
            if let Some(run) = confirm.or(dismiss) {
                let (deleted, kept) = ops.settle_deletions(run, confirm.is_some(), &actor).await?;
                println!("run {run}: {deleted} users deleted downstream, {kept} kept");
                return Ok(ExitCode::SUCCESS);
            }
            let report = ops.run_now(&name, RunNow::Deletions { dry_run }, &actor).await?;
            let count = |k: &str| report.counts.get(k).copied().unwrap_or(0);
            let listed: Vec<String> = report.deletions.iter().take(20).map(ToString::to_string).collect();
            let more = report.deletions.len().saturating_sub(20);
            let list =
                if more > 0 { format!("{} and {more} more", listed.join(", ")) } else { listed.join(", ") };
            if report.needs_confirmation && dry_run {
                println!(
                    "{name}: {} users are gone from VOMO's listing, above the guard of {}: a real sweep would \
                     delete nothing and wait for an operator's confirmation. Dry run, nothing changed.\nUsers: {list}",
                    report.deletions.len(),
                    count("deletion_threshold"),
                );
                return Ok(ExitCode::from(EXIT_NEEDS_CONFIRMATION));
            }
            if report.needs_confirmation {
                println!(
                    "{name}: {} users are gone from VOMO's listing, above the guard of {}; nothing was deleted.\n\
                     Users: {list}\nConfirm with `vomo-sync sync deletions {name} --confirm {id}` \
                     (each is checked once more) or drop with `--dismiss {id}`.",
                    report.deletions.len(),
                    count("deletion_threshold"),
                    id = report.run_id.unwrap_or_default()
                );
                return Ok(ExitCode::from(EXIT_NEEDS_CONFIRMATION));
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!(
                "{name}: scanned {} users in {} requests; {verb} {} ({}), {} moved mid-scan, {} drifted repaired{}",
                count("users_seen"),
                report.requests,
                report.deletions.len(),
                if list.is_empty() { "none".to_owned() } else { list },
                count("moved_mid_scan"),
                count("drift"),
                if dry_run { " — dry run, nothing changed" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The engine command a `sync …` invocation stands for.
fn as_engine_command(command: &SyncCommand) -> Option<Command> {
    Some(match command {
        SyncCommand::Reconcile { name } => Command::Reconcile { customer: name.clone() },
        SyncCommand::Poll { name } => Command::PollNow { customer: name.clone() },
        SyncCommand::Backfill { name } => Command::Backfill { customer: name.clone() },
        SyncCommand::Deletions { name, dry_run, confirm: None, dismiss: None } => {
            Command::DeletionSweep { customer: name.clone(), dry_run: *dry_run }
        }
        SyncCommand::Deletions { name, confirm, dismiss, .. } => Command::SettleDeletions {
            customer: name.clone(),
            run: confirm.or(*dismiss)?,
            confirm: confirm.is_some(),
        },
    })
}
