//! `vomo-sync customer …`: onboarding, listing, token replacement, pause and
//! resume, through the engine's operator actions.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::{open_operator, open_ops, print_table};
use crate::cli::{AddArgs, CustomerCommand, TokenSource};
use crate::config::Config;
use crate::dest::DestinationSpec;
use crate::domain::{ApiToken, CustomerSettings, format_rfc3339};
use crate::engine::{Command, Details, OnboardRequest, Operator, os_user};

pub async fn run(command: CustomerCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        CustomerCommand::Add(args) => add(args, config).await,
        CustomerCommand::List { json } => list(json, config).await,
        CustomerCommand::Token { name, token } => {
            let token = read_token(&token)?;
            let operator = open_operator(config, true).await?;
            let done =
                operator.send(Command::ReplaceToken { customer: name.clone(), token }, &os_user()).await?;
            println!("{name}: {done}");
            Ok(ExitCode::SUCCESS)
        }
        CustomerCommand::Pause { name } => pause(&name, true, config).await,
        CustomerCommand::Resume { name } => pause(&name, false, config).await,
        CustomerCommand::Offboard { name, purge, yes } => offboard(&name, purge, yes, config).await,
        CustomerCommand::Restore { name, token } => {
            let token = read_token(&token)?;
            let operator = open_operator(config, true).await?;
            let done = operator.send(Command::Restore { customer: name.clone(), token }, &os_user()).await?;
            println!("{name} {done}, resuming from its checkpoint");
            Ok(ExitCode::SUCCESS)
        }
        CustomerCommand::HealthToken { name } => {
            let operator = open_operator(config, false).await?;
            let done =
                operator.send(Command::IssueHealthToken { customer: name.clone() }, &os_user()).await?;
            let Details::Secret(token) = done.details else { bail!("no health token came back") };
            // The one time this token is shown: it goes to stdout alone, so
            // it can be piped to the customer; the explanation to stderr.
            eprintln!(
                "{name}'s health token (shown once; any previous one stops working). \
                 Give it to the customer for GET /customers/{name}/health on the headless address:"
            );
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn offboard(name: &str, purge: bool, yes: bool, config: &Config) -> anyhow::Result<ExitCode> {
    let held = open_ops(config).await?.offboard_plan(name).await?;
    // What stays for the retention period (or goes with --purge): the token
    // goes at once, leases are bookkeeping, the audit log always stays.
    let rows: Vec<String> = held
        .iter()
        .filter(|(table, n)| *n > 0 && !["tokens", "leases", "audit_log", "customers"].contains(table))
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    if !yes {
        let retention = crate::domain::span_words(
            i64::try_from(config.sync.offboard_retention.as_secs()).unwrap_or(i64::MAX),
        );
        println!("Offboarding {name} would:");
        println!("  - stop its work and delete its VOMO token at once;");
        if purge {
            println!("  - remove all of its state now: {} (the audit log stays);", rows.join(", "));
        } else {
            println!(
                "  - keep its state for {retention} ({}) so `customer restore` can bring it back;",
                rows.join(", ")
            );
        }
        println!("  - leave the data already in the customer's own systems untouched.");
        println!("Run again with --yes to do it.");
        return Ok(ExitCode::from(2));
    }
    let operator = open_operator(config, false).await?;
    let done = operator.send(Command::Offboard { customer: name.to_owned(), purge }, &os_user()).await?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}

async fn add(args: AddArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let destinations =
        args.destinations.iter().map(|spec| DestinationSpec::parse(spec)).collect::<Result<Vec<_>, _>>()?;
    let rate = args.rate.unwrap_or(config.sync.rate);
    let poll_every = args.poll_every.unwrap_or(config.sync.poll_every);
    if poll_every.as_secs() == 0 {
        bail!("--poll-every must be at least one second");
    }
    let token = read_token(&args.token)?;
    let mut settings = CustomerSettings {
        poll_every_secs: poll_every.as_secs(),
        tail_every_secs: args.tail_every.unwrap_or(config.sync.tail_every).as_secs(),
        reconcile_every_secs: args.reconcile_every.unwrap_or(config.sync.reconcile_every).as_secs().max(60),
        deletion_scan_every_secs: args
            .deletion_scan_every
            .unwrap_or(config.sync.deletion_scan_every)
            .as_secs()
            .max(60),
        writeback_fields: args.writeback.clone(),
        ..CustomerSettings::default()
    };
    rate.apply(&mut settings);
    let request = OnboardRequest {
        name: args.name.clone(),
        token,
        vomo_url: args.vomo_url.clone().unwrap_or_else(|| config.vomo.base_url.clone()),
        destinations,
        settings,
    };
    // Onboarding may set up an empty state DB file (a new installation).
    let store = super::open_store_with(config, true, crate::store::EmptyFile::Initialise).await?;
    let operator = Operator::new(store, crate::engine::EngineConfig::from_config(config))?;
    let done = operator.send(Command::Onboard(Box::new(request)), &os_user()).await?;
    println!("{done}: `vomo-sync headless` runs it");
    Ok(ExitCode::SUCCESS)
}

async fn list(json: bool, config: &Config) -> anyhow::Result<ExitCode> {
    let customers = open_ops(config).await?.status(None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&customers)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = customers
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.status.to_string(),
                c.token.as_ref().map_or_else(|| "-".into(), |t| format!("{} {}", t.fingerprint, t.state)),
                c.budget.setting().to_string(),
                c.vomo_url.clone(),
                format_rfc3339(&c.watermark),
            ]
        })
        .collect();
    print_table(&["CUSTOMER", "STATUS", "TOKEN", "BUDGET", "VOMO", "CHECKPOINT"], &rows);
    Ok(ExitCode::SUCCESS)
}

async fn pause(name: &str, pause: bool, config: &Config) -> anyhow::Result<ExitCode> {
    let operator = open_operator(config, false).await?;
    let customer = name.to_owned();
    let command = if pause { Command::Pause { customer } } else { Command::Resume { customer } };
    let done = operator.send(command, &os_user()).await?;
    println!("{done}");
    Ok(ExitCode::SUCCESS)
}

/// Reads a token from a file or stdin; it never comes from the command line.
fn read_token(source: &TokenSource) -> anyhow::Result<ApiToken> {
    let text = match &source.token_file {
        Some(path) => {
            crate::store::crypto::warn_if_readable_by_others(path, "token file");
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the token from standard input")?;
            text
        }
    };
    ApiToken::new(&text).context("the token is empty")
}
