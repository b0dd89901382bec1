//! `vomo-sync demo`: everything on one machine, nothing to set up. A
//! simulated VOMO runs in-process with three organisations of different
//! sizes and a live stream of edits; they are onboarded as demo customers
//! into a fresh demo state DB under the data dir (JSONL destinations, plus
//! any `--dest`), and the console opens. Every pane has real work to show:
//! a large backfill in progress, polls landing, a record a demo webhook
//! refuses (the DLQ), a HubSpot-backed customer (a simulated HubSpot
//! account, its budget shown beside VOMO's), and a token the demo revokes
//! after a while (press `u` and paste the new one from the file the log
//! pane names).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

use crate::cli::DemoArgs;
use crate::config::{Config, StateLocation};
use crate::dest::DestinationSpec;
use crate::domain::ApiToken;
use crate::engine::{
    Command, Engine, EngineConfig, EngineHandle, EventLevel, OnboardRequest, Operator, os_user,
};
use crate::sim::{self, OrgSpec, SimConfig, SimControl, SimHandle};

use super::{default_settings, open_store};

/// The demo customers, smallest first.
const NAMES: [&str; 3] = ["harbour-food-bank", "city-marathon", "red-cross-east"];
/// An organisation left for onboarding from the console (`n`).
const SPARE: &str = "riverside-choir";
/// When the demo revokes the middle customer's token.
const REVOKE_AFTER: Duration = Duration::from_secs(25);
/// Requests per second per demo customer.
const DEMO_RATE: f64 = 8.0;

pub async fn run(args: &DemoArgs, config: &Config) -> anyhow::Result<ExitCode> {
    if args.users.len() != NAMES.len() {
        anyhow::bail!("--users takes three numbers, e.g. 500,5000,50000");
    }
    let dir = config.paths.data_dir.join("demo");
    fresh_dir(&dir)?;
    let mut config = config.clone();
    config.state = StateLocation::Sqlite(dir.join("state.db"));

    let mut orgs: Vec<OrgSpec> = NAMES
        .iter()
        .zip(&args.users)
        .map(|(slug, users)| OrgSpec { slug: (*slug).to_owned(), users: *users })
        .collect();
    orgs.push(OrgSpec { slug: SPARE.to_owned(), users: 120 });
    let sim = sim::start(SimConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        orgs,
        seed: 7,
        edit_every: Some(Duration::from_millis(1500)),
        ..SimConfig::default()
    })
    .await?;
    let refused_user = sim.users(NAMES[0]).ok().and_then(|users| users.get(3).map(|u| u.id)).unwrap_or(4);
    let hook = start_refusing_webhook(refused_user).await?;
    let secret = dir.join("webhook.secret");
    write_private(&secret, "demo-webhook-secret")?;
    // The smallest customer's contacts also go to a simulated HubSpot.
    let hubspot = crate::sim::hubspot::start(crate::sim::hubspot::HubspotSimConfig {
        seed: 7,
        ..crate::sim::hubspot::HubspotSimConfig::default()
    })
    .await?;
    let hubspot_token = dir.join("hubspot.token");
    write_private(&hubspot_token, hubspot.default_token())?;

    let store = open_store(&config, true).await?;
    let mut engine_config = EngineConfig::from_config(&config);
    // The simulator commits at once: a short settle keeps the demo lively.
    engine_config.settle = Duration::from_secs(2);
    // The demo's own receiver listens on loopback: allowed by name, as an
    // operator would allow an internal webhook.
    let allowed = allowed_hosts(&config, &[hook.as_str(), hubspot.base_url()]);
    engine_config.outbound =
        crate::outbound::OutboundPolicy::from_entries(&allowed).map_err(anyhow::Error::msg)?;
    let operator = Operator::new(store.clone(), engine_config.clone())?;
    for (n, name) in NAMES.iter().enumerate() {
        let mut destinations = vec![format!("jsonl:{}", dir.join(format!("{name}.jsonl")).display())];
        if n == 0 {
            destinations.push(format!("webhook:{hook},secret-file={}", secret.display()));
            destinations.push(format!(
                "hubspot:token-file={},base={}",
                hubspot_token.display(),
                hubspot.base_url()
            ));
        }
        destinations.extend(args.destinations.iter().cloned());
        onboard(&operator, &sim, name, &destinations, &config).await?;
    }
    let spare_token = dir.join(format!("{SPARE}.token"));
    write_private(&spare_token, &sim.token(SPARE).unwrap_or_default())?;

    let engine = Arc::new(Engine::start(store, engine_config).await?);
    // A read-only console has no n: it is told how to onboard instead.
    let onboard =
        if args.console.readonly { "Onboard (outside this read-only console)" } else { "Press n to onboard" };
    let greeting = format!(
        "demo: VOMO simulated at {}; state in {}. {onboard} {SPARE} (token in {}, destination jsonl:{}).",
        sim.base_url(),
        dir.display(),
        spare_token.display(),
        dir.join(format!("{SPARE}.jsonl")).display()
    );
    tokio::spawn(revoke_later(sim.control(), Arc::clone(&engine), dir.clone()));

    let code = if args.headless {
        println!("{greeting}\nRunning headless; Ctrl-C stops.");
        super::shutdown_signal().await;
        engine.shutdown().await;
        ExitCode::SUCCESS
    } else {
        let mut options = super::console::options(&args.console, &config, sim.base_url().to_owned())?;
        options.greeting = Some(greeting);
        super::console::hosted(engine, options, false).await?
    };
    sim.shutdown();
    hubspot.shutdown();
    Ok(code)
}

/// The operator's allow-list plus the demo's own receivers on loopback
/// (host:port each).
fn allowed_hosts(config: &Config, own: &[&str]) -> Vec<String> {
    let mut allowed = config.dest.allow_private_hosts.clone();
    for url in own.iter().filter_map(|u| url::Url::parse(u).ok()) {
        allowed.push(format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port_or_known_default().unwrap_or(80)
        ));
    }
    allowed
}

/// The demo starts from nothing each time: its state DB and files go.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot clear the demo dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the demo dir {}", dir.display()))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

async fn onboard(
    operator: &Operator,
    sim: &SimHandle,
    name: &str,
    destinations: &[String],
    config: &Config,
) -> anyhow::Result<()> {
    let token = sim.token(name).and_then(|t| ApiToken::new(&t)).context("the simulator has no token")?;
    let destinations = destinations
        .iter()
        .map(|d| DestinationSpec::parse(d).map_err(|e| anyhow::anyhow!("--dest {d}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut settings = default_settings(config);
    crate::domain::RateSetting::Cap(DEMO_RATE).apply(&mut settings);
    settings.poll_every_secs = 20;
    let request = OnboardRequest {
        name: name.to_owned(),
        token,
        vomo_url: sim.base_url().to_owned(),
        destinations,
        settings,
    };
    operator
        .send(Command::Onboard(Box::new(request)), &os_user())
        .await
        .with_context(|| format!("cannot onboard the demo customer {name}"))?;
    Ok(())
}

/// A webhook receiver that accepts everything except events of one user,
/// which it refuses as invalid (422): that user lands in the DLQ.
async fn start_refusing_webhook(refused_user: i64) -> anyhow::Result<String> {
    let needle = format!("\"vomo_user_id\":{refused_user},");
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let refuse = body.contains(&needle);
            async move {
                if refuse {
                    (StatusCode::UNPROCESSABLE_ENTITY, "demo: this receiver refuses that user's record")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

/// Revokes the middle customer's token after a while and leaves a new one
/// in a file, so the console shows a rejected token and `u` can fix it.
async fn revoke_later(sim: SimControl, engine: Arc<EngineHandle>, dir: PathBuf) {
    tokio::time::sleep(REVOKE_AFTER).await;
    let name = NAMES[1];
    let Some(old) = sim.token(name) else { return };
    sim.revoke_token(&old);
    let Ok(new) = sim.issue_token(name) else { return };
    let path = dir.join(format!("{name}.token"));
    if write_private(&path, &new).is_ok() {
        engine.announce(
            Some(name),
            EventLevel::Warn,
            format!("demo: this customer's token was revoked in VOMO. Select it, press u and paste the new token from {}", path.display()),
        );
    }
}
