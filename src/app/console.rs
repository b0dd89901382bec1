//! `vomo-sync console`: the engine and the operations console in one
//! process; with `--attach`, a console over the state DB that runs no
//! customers itself and acts through the instances that do. Quitting (or SIGTERM/SIGHUP) restores the terminal first, then
//! lets the engine finish its pages in flight and give its leases back.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::ConsoleArgs;
use crate::config::Config;
use crate::engine::{Engine, EngineConfig, EngineHandle, Role, os_user};
use crate::tui::keys::KeyMap;
use crate::tui::theme::ThemeKind;
use crate::tui::{self, ConsoleOptions};

use super::{default_settings, open_store};

pub async fn run(args: &ConsoleArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut options = options(args, config, config.vomo.base_url.clone())?;
    let store = open_store(config, true).await?;
    let mut engine_config = EngineConfig::from_config(config);
    if args.attach {
        engine_config.role = Role::Attached;
        options.greeting = Some(format!(
            "attached to {}: this console runs no customers; it shows what the instances running them \
             publish every {} and sends actions to them through the state DB",
            store.location(),
            humantime::format_duration(engine_config.reload_every)
        ));
    }
    let engine = Arc::new(Engine::start(store, engine_config).await?);
    hosted(engine, options, args.attach).await
}

/// The console needs a real terminal: a dumb one (`TERM=dumb`, an editor's
/// shell, a pipe) gets a clear refusal and the commands that work there.
fn check_terminal() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let term = std::env::var("TERM").unwrap_or_default();
    if term == "dumb" || !std::io::stdout().is_terminal() {
        let what = if term == "dumb" {
            "TERM=dumb".to_owned()
        } else {
            "standard output is not a terminal".to_owned()
        };
        anyhow::bail!(
            "the console needs a full terminal ({what}); use `vomo-sync status` to see the customers, \
             `vomo-sync headless` to run them unattended, or run the console in a terminal such as xterm or tmux"
        );
    }
    Ok(())
}

/// The console's options from flags and config; bad key remaps are a
/// usage error.
pub(super) fn options(
    args: &ConsoleArgs,
    config: &Config,
    vomo_url: String,
) -> anyhow::Result<ConsoleOptions> {
    check_terminal()?;
    let keys = KeyMap::with_overrides(&config.console.keys.clone().into_iter().collect())
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("config {}", config.paths.config_file.display()))?;
    let no_color = args.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = if no_color {
        ThemeKind::Mono
    } else {
        ThemeKind::parse(args.theme.as_deref().unwrap_or(&config.console.theme)).unwrap_or_default()
    };
    Ok(ConsoleOptions {
        readonly: args.readonly,
        theme,
        keys,
        default_vomo_url: vomo_url,
        default_settings: default_settings(config),
        actor: os_user(),
        greeting: None,
    })
}

/// Runs the console over a started engine, then stops the engine (an
/// attached console runs no customers: it only detaches).
pub(super) async fn hosted(
    engine: Arc<EngineHandle>,
    options: ConsoleOptions,
    attached: bool,
) -> anyhow::Result<ExitCode> {
    let result = tui::run(Arc::clone(&engine), options).await;
    if attached {
        eprintln!("detached; the instances running the customers go on");
    } else {
        eprintln!("stopping the engine: finishing the pages in flight…");
    }
    engine.shutdown().await;
    result.context("the terminal failed")?;
    Ok(ExitCode::SUCCESS)
}
