//! `vomo-sync headless` (the engine until SIGTERM, or `--once`) and
//! `vomo-sync status`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::{age, open_store, print_table};
use crate::cli::{HeadlessArgs, StatusArgs};
use crate::config::Config;
use crate::domain::{RunKind, format_rfc3339};
use crate::engine::once::{OnceProgress, OnceRun};
use crate::engine::{Engine, EngineConfig};

pub async fn headless(args: &HeadlessArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_store(config, false).await?;
    let engine_config = EngineConfig::from_config(config);
    if args.once {
        return once(store, engine_config).await;
    }
    let outbound = engine_config.outbound.clone();
    let alert_webhook = match &config.alerts.webhook {
        Some(url) => Some(crate::headless::AlertWebhook::new(url, &outbound).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let auth = crate::engine::health::HealthAuth::new(store.clone());
    let engine = Engine::start(store.clone(), engine_config).await?;
    let stop_server = CancellationToken::new();
    let listen = args.listen.unwrap_or(config.headless.listen);
    let bound = crate::headless::serve(listen, engine.watch(), auth, stop_server.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    tracing::info!(address = %bound, "headless engine running; /healthz /readyz /metrics /customers/NAME/health served");
    let sinks =
        crate::headless::AlertSinks { webhook: alert_webhook, command: config.alerts.command.clone() };
    if sinks.any() {
        let rules = crate::engine::alerts::AlertRules { cooldown: config.alerts.cooldown };
        let ledger = crate::engine::alerts::AlertLedger::new(store.clone());
        crate::headless::spawn_alerts(engine.watch(), rules, sinks, ledger, stop_server.clone());
    }
    super::systemd::ready(&format!("serving on {bound}"));
    super::systemd::spawn_watchdog(engine.watch());
    super::shutdown_signal().await;
    super::systemd::stopping();
    tracing::info!("stopping: finishing the pages in flight");
    engine.shutdown().await;
    stop_server.cancel();
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

async fn once(store: crate::store::Store, config: EngineConfig) -> anyhow::Result<ExitCode> {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        stop.cancel();
    });
    let mut run = OnceRun::start(store, config, cancel).await?;
    let bars = std::io::stderr().is_terminal().then(|| Bars::new(&run.progress()));
    loop {
        let next = tokio::select! {
            more = run.next() => Some(more),
            () = tokio::time::sleep(Duration::from_millis(200)) => None,
        };
        if let Some(bars) = &bars {
            bars.update(&run.progress());
        }
        if next == Some(false) {
            break;
        }
    }
    if let Some(bars) = &bars {
        bars.finish();
    }
    let outcomes = run.outcomes();
    let (mut failed, mut skipped) = (0, 0);
    for outcome in &outcomes {
        skipped += usize::from(outcome.skipped);
        match (&outcome.result, &outcome.note) {
            (_, Some(note)) => println!("{:<20} {note}", outcome.customer),
            (Ok(Some(report)), None) => println!("{:<20} {report}", outcome.customer),
            (Ok(None), None) => println!("{:<20} nothing to do", outcome.customer),
            (Err(e), None) => {
                failed += 1;
                println!("{:<20} FAILED: {e}", outcome.customer);
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else if skipped > 0 {
        // A script must not take "nothing was done" for success.
        eprintln!("{skipped} customer(s) skipped; exit status {}", super::EXIT_SKIPPED);
        ExitCode::from(super::EXIT_SKIPPED)
    } else {
        ExitCode::SUCCESS
    })
}

/// One progress bar per customer: users and pages of `meta.total`.
struct Bars {
    _multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
}

impl Bars {
    fn new(progress: &[OnceProgress]) -> Self {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{prefix:<16} {bar:30} {pos}/{len} users  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bars = progress
            .iter()
            .map(|p| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style.clone());
                bar.set_prefix(p.customer.clone());
                (p.customer.clone(), bar)
            })
            .collect();
        Self { _multi: multi, bars }
    }

    fn update(&self, progress: &[OnceProgress]) {
        for p in progress {
            if let Some((_, bar)) = self.bars.iter().find(|(name, _)| *name == p.customer) {
                bar.set_length(p.total.max(p.users));
                bar.set_position(p.users);
                bar.set_message(format!("{} pages", p.pages));
                if p.finished {
                    bar.finish();
                }
            }
        }
    }

    fn finish(&self) {
        for (_, bar) in &self.bars {
            bar.finish();
        }
    }
}

/// One customer as `status --json` prints it: the snapshot's fields and
/// the engine's verdict on them (state, freshness, what needs a human).
#[derive(serde::Serialize)]
struct StatusRow<'a> {
    #[serde(flatten)]
    customer: &'a crate::engine::CustomerSnapshot,
    verdict: crate::engine::verdict::Verdict,
}

pub async fn status(args: &StatusArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let customers = super::open_ops(config).await?.status(args.name.as_deref()).await?;
    let now = chrono::Utc::now();
    let thresholds = EngineConfig::from_config(config).thresholds;
    if args.json {
        let rows: Vec<StatusRow<'_>> = customers
            .iter()
            .map(|c| StatusRow { customer: c, verdict: c.verdict(&thresholds, now) })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = customers
        .iter()
        .map(|c| {
            let last_poll = c
                .last_runs
                .iter()
                .filter(|r| matches!(r.kind, RunKind::Poll | RunKind::Backfill))
                .max_by_key(|r| r.started_at)
                .map_or_else(
                    || "never".into(),
                    |r| {
                        // "running" with no live process holding the customer:
                        // the process that ran it is gone.
                        let interrupted =
                            r.outcome == crate::domain::RunOutcome::Running && c.owner.is_none();
                        let outcome =
                            if interrupted { "interrupted".to_owned() } else { r.outcome.to_string() };
                        format!("{} {outcome} {} ago", r.kind, age(now, r.started_at))
                    },
                );
            let verdict = c.verdict(&thresholds, now);
            let state = state_text(&verdict);
            let lag =
                if c.checkpoint_ahead_secs.is_some() { "ahead!".into() } else { verdict.freshness_text() };
            vec![
                c.name.clone(),
                state,
                format_rfc3339(&c.watermark),
                lag,
                last_poll,
                c.users_synced.to_string(),
                c.dlq.oldest.map_or_else(
                    || c.dlq.pending.to_string(),
                    |t| format!("{} ({})", c.dlq.pending, age(now, t)),
                ),
                c.token.as_ref().map_or_else(|| "none".into(), |t| format!("{} {}", t.fingerprint, t.state)),
                c.budget.setting().to_string(),
                c.owner.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_table(
        &[
            "CUSTOMER",
            "STATE",
            "CHECKPOINT",
            "FRESHNESS",
            "LAST RUN",
            "USERS",
            "DLQ (OLDEST)",
            "TOKEN",
            "BUDGET",
            "OWNER",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// The STATE column: the engine's verdict — the state, and the worst
/// matter that needs a human, if any.
fn state_text(verdict: &crate::engine::verdict::Verdict) -> String {
    let state = verdict.state_text();
    match verdict.attention.first().filter(|a| a.level == crate::engine::verdict::Level::Bad) {
        Some(worst) if worst.text != state => format!("{state} ({})", worst.text),
        _ => state,
    }
}
