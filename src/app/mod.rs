//! The composition root: turns a parsed command line into a configured,
//! logging, running process. One file per command group; this file picks the
//! command and maps its outcome to an exit code.

mod console;
mod customer;
mod demo;
mod dlq;
mod run;
mod simulate;
mod sync;
mod systemd;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::engine::EngineConfig;
use crate::engine::Operator;
use crate::engine::ops::Ops;
use crate::store::Store;
use crate::telemetry::{self, LogTarget};

/// Exit code for bad usage or configuration (clap uses 2 as well).
const EXIT_USAGE: u8 = 2;
/// Exit code of `headless --once` when a customer was skipped (its lease
/// is held by a live process, or its backfill may not start at this hour).
const EXIT_SKIPPED: u8 = 4;

/// Runs the command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let config = match Config::load(&cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    use std::io::IsTerminal;
    // In a terminal, no subcommand means the console.
    let command = match cli.command {
        Some(command) => command,
        None if std::io::stdout().is_terminal() => Command::Console(crate::cli::ConsoleArgs::default()),
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // The console owns the screen: its logs go to a file.
    let target = match &command {
        Command::Console(_) => LogTarget::File,
        Command::Demo(args) if !args.headless => LogTarget::File,
        _ => LogTarget::Stderr,
    };
    let _telemetry = match telemetry::init(&config.log, target) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(command, &config));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config => {
            print!("{}", config.render());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => migrate(config).await,
        Command::Simulate(args) => simulate::run(&args).await,
        Command::Customer(command) => customer::run(command, config).await,
        Command::Dlq(command) => dlq::run(command, config).await,
        Command::Headless(args) => run::headless(&args, config).await,
        Command::Status(args) => run::status(&args, config).await,
        Command::Sync(command) => sync::run(command, config).await,
        Command::Console(args) => console::run(&args, config).await,
        Command::Demo(args) => demo::run(&args, config).await,
    }
}

/// Opens (and migrates) the state DB and loads the master key; with
/// `create_key`, a missing key file is created (a secret is about to be
/// stored).
pub(crate) async fn open_store(config: &Config, create_key: bool) -> anyhow::Result<Store> {
    open_store_with(config, create_key, crate::store::EmptyFile::Refuse).await
}

/// [`open_store`] for onboarding, which may set up an empty state DB file.
pub(crate) async fn open_store_with(
    config: &Config,
    create_key: bool,
    empty: crate::store::EmptyFile,
) -> anyhow::Result<Store> {
    let mut store = Store::open_with(&config.state, empty).await?;
    let env = std::env::var("VOMO_SYNC_MASTER_KEY").ok();
    crate::store::load_master_key(&mut store, env.as_deref(), &config.master_key_file(), create_key).await?;
    Ok(store)
}

/// Read-only questions over the state DB.
pub(crate) async fn open_ops(config: &Config) -> anyhow::Result<Ops> {
    let store = open_store(config, false).await?;
    Ok(Ops::new(store, EngineConfig::from_config(config))?)
}

/// The one door for the CLI's commands; with `create_key`, a missing key
/// file is created (the command stores a secret).
pub(crate) async fn open_operator(config: &Config, create_key: bool) -> anyhow::Result<Operator> {
    let store = open_store(config, create_key).await?;
    Ok(Operator::new(store, EngineConfig::from_config(config))?)
}

/// Settings of customers onboarded without flags (the console's form).
pub(crate) fn default_settings(config: &Config) -> crate::domain::CustomerSettings {
    let mut settings = crate::domain::CustomerSettings {
        poll_every_secs: config.sync.poll_every.as_secs().max(1),
        tail_every_secs: config.sync.tail_every.as_secs(),
        reconcile_every_secs: config.sync.reconcile_every.as_secs().max(60),
        deletion_scan_every_secs: config.sync.deletion_scan_every.as_secs().max(60),
        ..crate::domain::CustomerSettings::default()
    };
    config.sync.rate.apply(&mut settings);
    settings
}

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// "3m", "2h", "4d": how long ago `then` was.
pub(crate) fn age(now: chrono::DateTime<chrono::Utc>, then: chrono::DateTime<chrono::Utc>) -> String {
    duration_text((now - then).num_seconds())
}

pub(crate) use crate::domain::duration_text;

/// `vomo-sync migrate`: applies pending migrations and says what it did.
async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&config.state).await?;
    let applied = store.migrate().await?;
    let all = store.applied_versions().await?;
    if applied.is_empty() {
        println!("state DB {} is up to date (schema version {})", store.location(), all.last().unwrap_or(&0));
    } else {
        let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!("state DB {}: applied migration(s) {}", store.location(), list.join(", "));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves when the process is asked to stop (Ctrl-C, SIGTERM).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
