//! Benchmarks of the sync engine against the simulator (release build):
//!
//! - `budget`: 1,000- and 10,000-user backfills at 3 req/s — requests used against
//!   ⌈N/15⌉ and the achieved request rate against the budget.
//! - `edits`: a 10,000-user backfill (no limiter) while the simulator changes
//!   a user of the walked window before 2 % and then 5 % of page reads —
//!   the cost of verification, in requests per ⌈N/15⌉; then 3,000 users with
//!   edits before 10 % of reads in each list order (id, `updated_at`,
//!   `updated_at` with ties shuffled on every request).
//! - `small`: backfills of 100, 900, 1,500 and 10,000 users with no edits —
//!   requests against ⌈N/15⌉.
//! - `throughput`: limiter off, loopback, SQLite state, JSONL destination —
//!   users per second.
//! - `rss`: peak resident memory of `headless --once` backfilling 1,000,000
//!   users from a simulator in another process.
//!
//! `cargo bench --bench sync -- budget|small|edits|throughput|rss` (all when none
//! is named). `BENCH_USERS` changes the size of `throughput` and `rss`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on failure

#[path = "../tests/common/sync.rs"]
mod sync;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vomo_sync::domain::RateSetting;
use vomo_sync::sim::{self, Faults, OrderMode, OrgSpec, SimConfig, SimHandle};

async fn simulator(users: usize) -> SimHandle {
    sim::start(SimConfig {
        orgs: vec![OrgSpec { slug: "acme".into(), users }],
        seed: 7,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Onboards one customer and runs its backfill; returns (seconds, requests).
async fn backfill(sim: &SimHandle, rate: RateSetting) -> (f64, u64) {
    let (secs, requests, _) = backfill_counts(sim, rate).await;
    (secs, requests)
}

/// Like `backfill`, with the run's counters.
async fn backfill_counts(sim: &SimHandle, rate: RateSetting) -> (f64, u64, vomo_sync::domain::RunCounts) {
    let dir = tempfile::tempdir().unwrap();
    let store = sync::state_db(dir.path()).await;
    let dest = format!("jsonl:{}", dir.path().join("acme.jsonl").display());
    sync::onboard_with(&store, sim, "acme", "acme", &[dest], rate).await;
    // Onboarding's token check spent one of VOMO's allowance.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sim.reset_stats();
    let started = Instant::now();
    let outcomes = sync::run_once(&store).await;
    let elapsed = started.elapsed().as_secs_f64();
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    // Users edited during the backfill moved past its window: the next poll
    // (with the simulator calm) carries them, and then nothing may differ.
    sim.set_faults(Faults::default());
    // Edits of the backfill's last second are visible once it has closed
    // (a window ends before VOMO's current second).
    sim.advance_clock(2);
    sync::run_once(&store).await;
    sync::assert_mirrors(&sync::replay_jsonl(&dir.path().join("acme.jsonl")), &sim.users("acme").unwrap());
    (elapsed, report.requests, report.counts)
}

async fn budget() {
    // The recipe's own sizes: its table says ~3 min for 1,000 users and
    // ~30 min for 10,000 at 3 req/s.
    // `auto` (the default: the rate VOMO declares, here 3/s) at both sizes,
    // and a cap of 3 req/s at 10,000.
    for (users, rate) in
        [(1_000, RateSetting::Auto), (10_000, RateSetting::Auto), (10_000, RateSetting::Cap(3.0))]
    {
        let sim = simulator(users).await;
        sim.set_rate_limit(Some(sim::RateLimit::parse("3/s").unwrap()));
        let (secs, requests) = backfill(&sim, rate).await;
        let ideal = users.div_ceil(15) as f64;
        let rejected = sim.stats().values().map(|s| s.status.get(&429).copied().unwrap_or(0)).sum::<u64>();
        println!(
            "budget: {users} users, --rate {rate}, VOMO at 3 req/s: {requests} requests for ⌈N/15⌉ = {ideal} ({:+.1} %), {secs:.0} s, \
             {:.3} req/s = {:.1} % of the budget, {rejected} answered 429",
            (requests as f64 / ideal - 1.0) * 100.0,
            requests as f64 / secs,
            requests as f64 / secs / 3.0 * 100.0
        );
    }
}

async fn edits() {
    let users = 10_000;
    for rate in [0.02, 0.05] {
        edits_case(users, rate, OrderMode::Id).await;
    }
    // VOMO's list order is undocumented (vomo-api.md §10 item 8): the cost of
    // verification in each order the simulator can answer in.
    for order in [OrderMode::Id, OrderMode::UpdatedAt, OrderMode::UnstableTies] {
        edits_case(3_000, 0.10, order).await;
    }
}

async fn edits_case(users: usize, rate: f64, order: OrderMode) {
    let sim = simulator(users).await;
    sim.set_faults(Faults {
        seed: 11,
        mutate_rate: rate,
        mutate_delete_share: 0.3,
        order,
        ..Faults::default()
    });
    let (secs, requests, counts) = backfill_counts(&sim, RateSetting::Cap(0.0)).await;
    let ideal = users.div_ceil(15) as f64;
    println!(
        "edits: {users} users, {order:?} order, a user of the window changed before {:.0} % of page reads: {requests} requests = {:.2} × ⌈N/15⌉ ({secs:.1} s; {} chunks, {} failed walks, {} probes split)",
        rate * 100.0,
        requests as f64 / ideal,
        counts.chunks,
        counts.failed_walks,
        counts.probes_split
    );
}

/// Backfills of small and middling customers with no concurrent edits:
/// requests against ⌈N/15⌉ (+ 1 for the first read, which has no upper
/// bound when the engine has not yet heard VOMO's clock).
async fn small() {
    for users in [100, 900, 1_500, 10_000] {
        let sim = simulator(users).await;
        let (_, requests, counts) = backfill_counts(&sim, RateSetting::Cap(0.0)).await;
        let ideal = users.div_ceil(15);
        println!(
            "small: {users} users, no edits: {requests} requests for ⌈N/15⌉ = {ideal} ({:+.1} %; {} chunks, {} probes split)",
            (requests as f64 / ideal as f64 - 1.0) * 100.0,
            counts.chunks,
            counts.probes_split
        );
    }
}

async fn throughput() {
    let users: usize = std::env::var("BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let sim = simulator(users).await;
    let (secs, requests) = backfill(&sim, RateSetting::Cap(0.0)).await;
    println!(
        "throughput: {users} users, limiter off, SQLite state, JSONL destination: {secs:.2} s = {:.0} users/s ({requests} requests)",
        users as f64 / secs
    );
}

/// Peak RSS (VmHWM) of a process, in MiB, sampled until it exits.
fn peak_rss_mib(child: &mut std::process::Child) -> f64 {
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = std::fs::read_to_string(&status) {
            for line in text.lines().filter(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                peak_kib = peak_kib.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    peak_kib as f64 / 1024.0
}

fn rss() {
    let users: usize = std::env::var("BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let exe = env!("CARGO_BIN_EXE_vomo-sync");
    let home = tempfile::tempdir().unwrap();
    let with_env = |command: &mut Command| {
        command
            .env("HOME", home.path())
            .env("VOMO_SYNC_MASTER_KEY", "ab".repeat(32))
            .env("VOMO_SYNC_SYNC_SETTLE", "0s")
            .env("RUST_LOG", "warn");
    };
    let mut simulator = Command::new(exe);
    with_env(&mut simulator);
    let mut simulator = simulator
        .args(["simulate", "--orgs", "1", "--users", &users.to_string(), "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(simulator.stdout.take().unwrap()).lines();
    let (mut base, mut token) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("base URL") {
            base = url.trim().to_owned();
        }
        if line.trim_start().starts_with("org-1") {
            token = line.split_whitespace().last().unwrap().to_owned();
            break;
        }
    }
    let token_file = home.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let jsonl = home.path().join("out.jsonl");
    let mut add = Command::new(exe);
    with_env(&mut add);
    let added = add
        .args(["customer", "add", "big", "--token-file", token_file.to_str().unwrap(), "--vomo-url", &base])
        .args(["--dest", &format!("jsonl:{}", jsonl.display()), "--rate", "0"])
        .status()
        .unwrap();
    assert!(added.success());
    let started = Instant::now();
    let mut once = Command::new(exe);
    with_env(&mut once);
    let mut child = once.args(["headless", "--once"]).stdout(Stdio::null()).spawn().unwrap();
    let peak = peak_rss_mib(&mut child);
    let elapsed = started.elapsed().as_secs_f64();
    simulator.kill().unwrap();
    simulator.wait().unwrap();
    let lines = std::fs::read_to_string(&jsonl).map(|t| t.lines().count()).unwrap_or(0);
    println!(
        "rss: backfill of {users} users ({lines} events written) in {elapsed:.0} s: peak RSS of the engine process {peak:.0} MiB"
    );
}

/// Paging alone: the simulator and the client, no engine (for comparison).
async fn fetch_only() {
    let users: usize = std::env::var("BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let sim = simulator(users).await;
    let http = vomo_sync::vomo::http_pool(vomo_sync::vomo::ClientSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        max_body: vomo_sync::vomo::DEFAULT_MAX_BODY,
    })
    .unwrap();
    let token = vomo_sync::domain::ApiToken::new(&sim.token("acme").unwrap()).unwrap();
    let client = vomo_sync::vomo::VomoClient::new(http, sim.base_url(), &token).unwrap();
    let filter = vomo_sync::vomo::UserFilter::default();
    let started = Instant::now();
    let first = client.list_users(&filter, 1).await.unwrap();
    for page in 2..=first.last_page {
        client.list_users(&filter, page).await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!("fetch only: {} pages in {secs:.2} s = {:.0} users/s", first.last_page, users as f64 / secs);
}

fn main() {
    let chosen: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if chosen.iter().any(|c| c == "fetch") {
        runtime.block_on(fetch_only());
    }
    if wants("throughput") {
        runtime.block_on(throughput());
    }
    if wants("small") {
        runtime.block_on(small());
    }
    if wants("edits") {
        runtime.block_on(edits());
    }
    if wants("budget") {
        runtime.block_on(budget());
    }
    if wants("rss") {
        rss();
    }
}
