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
    hosted(engine, options).await
}

/// The console's options from flags and config; bad key remaps are a
/// usage error.
pub(super) fn options(
    args: &ConsoleArgs,
    config: &Config,
    vomo_url: String,
) -> anyhow::Result<ConsoleOptions> {
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

/// Runs the console over a started engine, then stops the engine.
pub(super) async fn hosted(engine: Arc<EngineHandle>, options: ConsoleOptions) -> anyhow::Result<ExitCode> {
    let result = tui::run(Arc::clone(&engine), options).await;
    eprintln!("stopping the engine: finishing the pages in flight…");
    engine.shutdown().await;
    result.context("the terminal failed")?;
    Ok(ExitCode::SUCCESS)
}
