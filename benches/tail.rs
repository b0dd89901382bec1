//! Freshness with the live tail (design.md §3.8, §7): a 10,000-user
//! customer at a 3 req/s budget (VOMO limiting at 3/s too), the production
//! settle margin (120 s), polls every 5 minutes and a tail read every 10 s,
//! while one user is edited every 2 s. Reports the change-to-destination
//! latency (edit time, known here to the millisecond, to the JSONL event's
//! `synced_at`) at p50/p95/max, the requests per hour by work class and
//! their share of the budget, and then checks that after a verified poll
//! nothing is missing or stale.
//!
//! `cargo bench --bench tail` (`BENCH_MINUTES`, default 5, sets how long the
//! edits run).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on failure

#[path = "../tests/common/sync.rs"]
mod sync;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::{RngExt, SeedableRng};
use vomo_sync::domain::{CustomerSettings, RunKind};
use vomo_sync::engine::{Command, Engine, EngineConfig};
use vomo_sync::sim::{self, OrgSpec, SimConfig, UserFields};

const USERS: usize = 10_000;
const RATE: f64 = 3.0;
const EDIT_EVERY: Duration = Duration::from_secs(2);

/// Every delivery of a phone number to a user: when it was first synced.
fn deliveries(jsonl: &Path) -> HashMap<(i64, String), DateTime<Utc>> {
    let mut first = HashMap::new();
    for line in std::fs::read_to_string(jsonl).unwrap().lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(phone) = event["user"]["phone"].as_str() else { continue };
        let id = event["vomo_user_id"].as_i64().unwrap();
        let at =
            DateTime::parse_from_rfc3339(event["synced_at"].as_str().unwrap()).unwrap().with_timezone(&Utc);
        first.entry((id, phone.to_owned())).or_insert(at);
    }
    first
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn run() {
    let minutes: u64 = std::env::var("BENCH_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let sim = sim::start(SimConfig {
        orgs: vec![OrgSpec { slug: "acme".into(), users: USERS }],
        seed: 7,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = sync::state_db(dir.path()).await;
    let jsonl = dir.path().join("acme.jsonl");
    sync::onboard(&store, &sim, "acme", "acme", &[format!("jsonl:{}", jsonl.display())], 0.0).await;
    sync::run_once(&store).await; // the backfill, unlimited: not what is measured
    let customer = store.require_customer("acme").await.unwrap();
    let settings = CustomerSettings {
        rate_per_s: RATE,
        poll_every_secs: 300,
        tail_every_secs: 10,
        ..CustomerSettings::default()
    };
    store.set_customer_settings(customer.id, &settings).await.unwrap();
    sim.set_rate_limit(Some(sim::RateLimit::parse("3/s").unwrap()));
    let config = EngineConfig { settle: Duration::from_secs(120), ..sync::engine_config() };
    let handle = Engine::start(store.clone(), config).await.unwrap();

    // Steady state: the worker is up and its tail has read once.
    let mut watch = handle.watch();
    let tail_has_read = |s: &vomo_sync::engine::EngineSnapshot| {
        s.customer("acme").and_then(|c| c.tail.as_ref()).is_some_and(|t| t.reads > 0)
    };
    while !tail_has_read(&watch.borrow_and_update()) {
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut edits: Vec<(i64, String, DateTime<Utc>)> = Vec::new();
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        let id = ids[rng.random_range(0..ids.len())];
        let phone = format!("+1-555-{:04}", n % 10_000);
        n += 1;
        sim.update_user(id, &UserFields { phone: Some(phone.clone()), ..UserFields::default() }, true)
            .unwrap();
        edits.push((id, phone, Utc::now()));
        tokio::time::sleep(EDIT_EVERY).await;
    }
    // The last edits get a tail read's worth of time to arrive.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let elapsed_h = started.elapsed().as_secs_f64() / 3600.0;
    let snapshot = handle.watch().borrow().clone();
    let acme = snapshot.customer("acme").unwrap();
    let delivered = deliveries(&jsonl);

    let mut latencies = Vec::new();
    let (mut superseded, mut missing) = (0, 0);
    for (i, (id, phone, at)) in edits.iter().enumerate() {
        match delivered.get(&(*id, phone.clone())) {
            Some(synced) => {
                let latency = (*synced - *at).num_milliseconds() as f64 / 1000.0;
                if std::env::var_os("BENCH_VERBOSE").is_some() {
                    println!("edit {i} at {at} of user {id}: {latency:.1} s");
                }
                latencies.push(latency);
            }
            // Edited again before it was read: the newer value is what counts.
            None if edits[i + 1..].iter().any(|(later, ..)| later == id) => superseded += 1,
            None => missing += 1,
        }
    }
    latencies.sort_by(f64::total_cmp);
    let by_class = acme.budget.by_class;
    let per_hour = |n: u64| n as f64 / elapsed_h;
    let total = per_hour(acme.budget.requests);
    println!(
        "tail: {USERS} users, {RATE} req/s, settle 120 s, polls every 5 min, tail every 10 s, an edit every {} s for {minutes} min: \
         {} edits, latency p50 {:.1} s, p95 {:.1} s, max {:.1} s; {missing} missing, {superseded} superseded before a read",
        EDIT_EVERY.as_secs(),
        edits.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(0.0),
    );
    println!(
        "tail: requests per hour: tail {:.0}, poll {:.0}, reconcile {:.0}, backfill {:.0}, writeback {:.0}; \
         all {:.0} = {:.1} % of the budget ({} × 429); tail reads {}, handed over {}",
        per_hour(by_class.tail),
        per_hour(by_class.poll),
        per_hour(by_class.reconcile),
        per_hour(by_class.backfill),
        per_hour(by_class.writeback),
        total,
        total / (RATE * 3600.0) * 100.0,
        acme.budget.rate_limited,
        acme.tail.as_ref().map_or(0, |t| t.reads),
        acme.tail.as_ref().map_or(0, |t| t.handovers),
    );

    // A verified poll over everything: nothing missing, nothing stale.
    let polls = |runs: &[vomo_sync::store::Run]| runs.iter().filter(|r| r.kind == RunKind::Poll).count();
    let before = polls(&store.recent_runs(customer.id, 500).await.unwrap());
    sim.advance_clock(130);
    handle.send(Command::PollNow { customer: "acme".into() }, "bench").await.unwrap();
    while polls(&store.recent_runs(customer.id, 500).await.unwrap()) == before {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sync::assert_mirrors(&sync::replay_jsonl(&jsonl), &sim.users("acme").unwrap());
    println!("tail: after a verified poll the destination mirrors VOMO (0 missing, 0 stale)");
    handle.shutdown().await;
}

fn main() {
    // RUST_LOG=info shows what the engine did (the tail's handovers, polls).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}
