//! The composition root: turns a parsed command line into a configured,
//! logging, running process. One file per command group; this file picks the
//! command and maps its outcome to an exit code.

mod simulate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::{self, LogTarget};

/// Exit code for bad usage or configuration (clap uses 2 as well).
const EXIT_USAGE: u8 = 2;

/// Runs the command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    let config = match Config::load(&cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return ExitCode::from(EXIT_USAGE);
    };
    let _telemetry = match telemetry::init(&config.log, LogTarget::Stderr) {
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
    }
}

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
