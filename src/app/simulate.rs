//! `vomo-sync simulate`: a local VOMO (and with `--hubspot` a local HubSpot)
//! on loopback until Ctrl-C, printing what a user needs to point curl, the
//! demo or a customer at it.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::SimulateArgs;
use crate::sim::hubspot::{self, HubspotSimConfig};
use crate::sim::{self, Faults, MutatorSettings, OrgSpec, ProjectKnobs, ProjectSeed, RateLimit, SimConfig};

pub async fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let rate_limit =
        args.rate_limit.as_deref().map(RateLimit::parse).transpose().map_err(anyhow::Error::msg)?;
    let faults = read_json::<Faults>(args.faults.as_deref(), "faults")?;
    let admin_port = args.admin_port.unwrap_or(if args.port == 0 { 0 } else { args.port.saturating_add(1) });
    let config = SimConfig {
        bind: args.bind,
        port: args.port,
        admin_port,
        orgs: (1..=args.orgs).map(|n| OrgSpec { slug: format!("org-{n}"), users: args.users }).collect(),
        seed: args.seed,
        rate_limit,
        admin_secret: args.admin_secret.clone(),
        edit_every: args.edit_every,
        anchor: None,
        projects: (1..=args.orgs)
            .filter(|_| args.projects > 0)
            .map(|n| (format!("org-{n}"), ProjectSeed::projects(args.projects)))
            .collect(),
        project_knobs: read_json::<ProjectKnobs>(args.project_knobs.as_deref(), "project knobs")?
            .unwrap_or_default(),
        participation_mutator: MutatorSettings {
            seed: args.seed,
            per_second: args.participation_changes,
            ..MutatorSettings::default()
        },
    };
    let handle = sim::start(config).await?;
    if let Some(faults) = faults {
        handle.set_faults(faults);
    }
    println!("VOMO simulator (seed {})", args.seed);
    println!("  base URL   {}", handle.base_url());
    println!("  admin URL  {}  (Authorization: Bearer {})", handle.admin_url(), handle.admin_secret());
    println!("  rate limit {}", rate_limit.map_or_else(|| "none".to_owned(), |r| format!("{r} per token")));
    for org in handle.orgs() {
        println!("  {:<8} {:>8} users  token {}", org.slug, org.users, org.tokens.join(", "));
    }
    if args.projects > 0 {
        println!(
            "  {} projects per organisation; knobs {}",
            args.projects,
            serde_json::to_string(&handle.project_knobs())?
        );
    }
    let hubspot = if args.hubspot { Some(start_hubspot(args).await?) } else { None };
    println!("Press Ctrl-C to stop.");
    super::shutdown_signal().await;
    handle.shutdown();
    if let Some(hubspot) = hubspot {
        hubspot.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON settings file (`--faults`, `--project-knobs`), when given.
fn read_json<T: serde::de::DeserializeOwned>(
    path: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<Option<T>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid {what} file", path.display()))?;
    Ok(Some(value))
}

/// The HubSpot simulator beside VOMO's; prints what a `hubspot:` destination needs.
async fn start_hubspot(args: &SimulateArgs) -> anyhow::Result<hubspot::HubspotSim> {
    let admin_port = if args.hubspot_port == 0 { 0 } else { args.hubspot_port.saturating_add(1) };
    let config = HubspotSimConfig {
        bind: args.bind,
        port: args.hubspot_port,
        admin_port,
        seed: args.seed,
        admin_secret: args.admin_secret.clone(),
        ..HubspotSimConfig::default()
    };
    let sim = hubspot::start(config).await?;
    let limits = sim.limits();
    let shown = |n: Option<u64>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
    println!("HubSpot simulator (seed {})", args.seed);
    println!("  base URL   {}", sim.base_url());
    println!("  admin URL  {}  (Authorization: Bearer {})", sim.admin_url(), sim.admin_secret());
    println!(
        "  limits     {} requests / 10 s, {} / day per account",
        shown(limits.ten_secondly.map(u64::from)),
        shown(limits.daily)
    );
    println!("  token      {}  (scopes {})", sim.default_token(), hubspot::ALL_SCOPES.join(", "));
    println!("  dest spec  hubspot:token-env=HS_TOKEN,base={}", sim.base_url());
    Ok(sim)
}
