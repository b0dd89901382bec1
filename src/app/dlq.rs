//! `vomo-sync dlq …`: list, retry and discard dead-letter entries.

use std::process::ExitCode;

use chrono::Utc;

use super::{open_operator, open_ops, print_table};
use crate::cli::DlqCommand;
use crate::config::Config;
use crate::engine::{Command, Details, os_user};

pub async fn run(command: DlqCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List { name, json } => {
            let ops = open_ops(config).await?;
            let entries = ops.dlq_list(name.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(ExitCode::SUCCESS);
            }
            let now = Utc::now();
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.customer.clone(),
                        e.vomo_user_id.to_string(),
                        e.destination.clone(),
                        e.change.clone(),
                        e.class.clone(),
                        e.attempts.to_string(),
                        super::age(now, e.created_at),
                        e.message.chars().take(60).collect(),
                    ]
                })
                .collect();
            print_table(
                &["ID", "CUSTOMER", "USER", "DEST", "CHANGE", "CLASS", "TRIES", "AGE", "MESSAGE"],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Retry { name, id, all: _ } => {
            let operator = open_operator(config, false).await?;
            let done = operator.send(Command::RetryDlq { customer: name.clone(), id }, &os_user()).await?;
            // Carried out here the counts are known; by the instance that
            // runs the customer, its answer says them.
            let Details::Retry(report) = done.details else {
                println!("{name}: {done}");
                return Ok(ExitCode::SUCCESS);
            };
            println!(
                "{name}: {} delivered, {} still failing, {} whose destination is gone",
                report.delivered, report.failed, report.orphaned
            );
            Ok(if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        DlqCommand::Discard { id, note } => {
            let customer = open_ops(config).await?.dlq_item(id).await?.customer;
            let operator = open_operator(config, false).await?;
            let done = operator.send(Command::DiscardDlq { customer, id, note }, &os_user()).await?;
            println!("discarded DLQ {done}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
