//! `vomo-sync simulate`: a local VOMO (and with `--hubspot` a local HubSpot)
//! on loopback until Ctrl-C, printing what a user needs to point curl, the
//! demo or a customer at it.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::SimulateArgs;
use crate::sim::hubspot::{self, HubspotSimConfig};
use crate::sim::{self, Faults, OrgSpec, RateLimit, SimConfig};

pub async fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let rate_limit =
        args.rate_limit.as_deref().map(RateLimit::parse).transpose().map_err(anyhow::Error::msg)?;
    let faults = match &args.faults {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let faults: Faults = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid faults file", path.display()))?;
            Some(faults)
        }
        None => None,
    };
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
    let hubspot = if args.hubspot { Some(start_hubspot(args).await?) } else { None };
    println!("Press Ctrl-C to stop.");
    super::shutdown_signal().await;
    handle.shutdown();
    if let Some(hubspot) = hubspot {
        hubspot.shutdown();
    }
    Ok(ExitCode::SUCCESS)
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
