//! Benchmarks of running many customers, and many instances:
//!
//! - `idle`: 200 customers (30 users each) on one `headless` process after
//!   their backfills: CPU (user + system, from /proc) and RSS over a
//!   minute, with the default 15-minute polls and with 1-minute polls, on
//!   SQLite and on PostgreSQL. The simulator runs in the benchmark process,
//!   so its CPU is not counted.
//! - `capacity`: how many quiet polls per second the state DB sustains: 1, 2
//!   and 3 "instances" (separate pools, 8 workers each) run the state-DB
//!   statements of a quiet poll (as `engine/sync.rs` and `worker.rs` issue
//!   them: checkpoint read, run opened, checkpoint read, fenced checkpoint
//!   commit, run closed, DLQ due and next-retry reads) as fast as they can,
//!   beside each instance's heartbeat work every second (customers,
//!   overview, leases, instances, lease renewal, heartbeat row, command
//!   queue). Polls/s × the poll interval is the number of customers the DB
//!   carries before it becomes the bottleneck.
//!
//! `cargo bench --bench fleet -- idle|capacity` (both when none is named).
//! PostgreSQL is started like the tests do; without it those rows are skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on failure

#[path = "../tests/common/pg.rs"]
mod pg;
#[allow(dead_code)] // only the engine configuration is used here
#[path = "../tests/common/sync.rs"]
mod test_config;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use vomo_sync::config::StateLocation;
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, RunKind, RunOutcome, epoch};
use vomo_sync::engine::default_owner;
use vomo_sync::engine::{OnboardRequest, Operator};
use vomo_sync::sim::{self, OrgSpec, SimConfig};
use vomo_sync::store::{InstanceRow, KeySource, MasterKey, Store};

const KEY: &str = "ab";
const CUSTOMERS: usize = 200;

fn key() -> MasterKey {
    MasterKey::from_hex(&KEY.repeat(32)).unwrap()
}

async fn open(location: &StateLocation) -> Store {
    let mut store = Store::open(location).await.unwrap();
    store.unlock(key(), &KeySource::Env).await.unwrap();
    store
}

/// CPU seconds (user + system) of a process.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Resident memory now and at peak, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn idle_run(label: &str, location: StateLocation, state_env: String, poll: &str) {
    let orgs = (0..CUSTOMERS).map(|i| OrgSpec { slug: format!("org{i:03}"), users: 30 }).collect();
    let sim = sim::start(SimConfig { orgs, seed: 3, ..SimConfig::default() }).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let store = open(&location).await;
    let ops = Operator::new(store.clone(), test_config::engine_config()).unwrap();
    let poll_secs = humantime::parse_duration(poll).unwrap().as_secs();
    for i in 0..CUSTOMERS {
        let request = OnboardRequest {
            name: format!("customer{i:03}"),
            token: ApiToken::new(&sim.token(&format!("org{i:03}")).unwrap()).unwrap(),
            vomo_url: sim.base_url().to_owned(),
            destinations: vec![
                DestinationSpec::parse(&format!(
                    "jsonl:{}",
                    home.path().join(format!("c{i}.jsonl")).display()
                ))
                .unwrap(),
            ],
            settings: CustomerSettings {
                rate_per_s: 3.0,
                poll_every_secs: poll_secs,
                ..CustomerSettings::default()
            },
        };
        ops.send(vomo_sync::engine::Command::Onboard(Box::new(request)), "bench").await.unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_vomo-sync"))
        .env("HOME", home.path())
        .env("VOMO_SYNC_MASTER_KEY", KEY.repeat(32))
        .env("VOMO_SYNC_STATE", &state_env)
        .env("VOMO_SYNC_SYNC_SETTLE", "0s")
        .env("VOMO_SYNC_SYNC_MAX_CONCURRENT_BACKFILLS", "16")
        .env("RUST_LOG", "warn")
        .args(["headless", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let active =
            store.customers().await.unwrap().iter().filter(|c| c.status.as_str() == "active").count();
        if active == CUSTOMERS {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "backfills did not finish: {active}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let backfilled = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = child.id();
    let runs_before = polls(&store).await;
    let (cpu0, t0) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let used = cpu_secs(pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let polled = polls(&store).await - runs_before;
    let (rss, peak) = rss_mib(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    println!(
        "idle {label}, polls every {poll}: 200 customers backfilled in {backfilled:.0} s; then {polled} polls in \
         {wall:.0} s, {used:.2} CPU-s = {:.2} % of one core; RSS {rss:.0} MiB (peak {peak:.0} MiB)",
        used / wall * 100.0
    );
}

async fn polls(store: &Store) -> usize {
    let mut n = 0;
    for c in store.customers().await.unwrap() {
        n += store.recent_runs(c.id, 1000).await.unwrap().iter().filter(|r| r.kind == RunKind::Poll).count();
    }
    n
}

async fn idle() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("state.db");
    idle_run("SQLite", StateLocation::Sqlite(sqlite.clone()), sqlite.display().to_string(), "15m").await;
    let sqlite2 = dir.path().join("state2.db");
    idle_run("SQLite", StateLocation::Sqlite(sqlite2.clone()), sqlite2.display().to_string(), "1m").await;
    match pg::fresh_database().await {
        Some(url) => idle_run("PostgreSQL", StateLocation::Postgres(url.clone()), url, "15m").await,
        None => println!("idle PostgreSQL: skipped (no PostgreSQL)"),
    }
}

/// One instance's share: its own pool, its customers' leases, and workers
/// running quiet polls until `until`.
async fn instance(location: StateLocation, customers: Vec<i64>, until: Instant, polls: Arc<AtomicU64>) {
    let store = open(&location).await;
    let owner = default_owner();
    let now = Utc::now();
    for id in &customers {
        assert!(store.acquire_lease(*id, &owner, now, now + chrono::Duration::hours(1)).await.unwrap());
    }
    let heartbeat = {
        let (store, owner, started) = (store.clone(), owner.clone(), Utc::now());
        tokio::spawn(async move {
            while Instant::now() < until {
                store.customers().await.unwrap();
                store.overview().await.unwrap();
                store.leases().await.unwrap();
                store.instances_since(Utc::now() - chrono::Duration::seconds(15)).await.unwrap();
                let now = Utc::now();
                store.renew_leases(&owner, now, now + chrono::Duration::hours(1)).await.unwrap();
                let row = InstanceRow {
                    owner: owner.clone(),
                    role: "worker".into(),
                    started_at: started,
                    heartbeat_at: now,
                    figures: "{\"customers\":{}}".into(),
                };
                store.heartbeat_instance(&row).await.unwrap();
                store.pending_commands_for(&owner).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let chunks: Vec<Vec<i64>> = customers.chunks(customers.len().div_ceil(8)).map(<[i64]>::to_vec).collect();
    let mut workers = Vec::new();
    for mine in chunks {
        let (store, owner, polls) = (store.clone(), owner.clone(), Arc::clone(&polls));
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let id = mine[n % mine.len()];
                n += 1;
                store.load_checkpoint(id).await.unwrap();
                let run = store.start_run(id, RunKind::Poll, Some(&owner)).await.unwrap();
                let checkpoint = store.load_checkpoint(id).await.unwrap();
                let to = checkpoint.watermark.max(epoch()) + chrono::Duration::seconds(1);
                store.commit_window(id, &[], Some(to), Some(&owner)).await.unwrap();
                store
                    .finish_run(run, RunOutcome::Ok, &vomo_sync::domain::RunCounts::default(), 1, None)
                    .await
                    .unwrap();
                store.due_dlq(id, Utc::now(), 100).await.unwrap();
                store.next_dlq_retry_at(id).await.unwrap();
                polls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    heartbeat.await.unwrap();
    store.close().await;
}

/// Adds bare active customers (no destinations) numbered `range`.
async fn add_customers(store: &Store, range: std::ops::Range<usize>) -> Vec<i64> {
    let settings = CustomerSettings::default();
    let mut ids = Vec::new();
    for i in range {
        let name = format!("c{i:05}");
        let new = vomo_sync::store::NewCustomer {
            name: &name,
            vomo_url: "http://vomo.invalid/v1",
            settings: &settings,
            status: vomo_sync::store::CustomerStatus::Active,
        };
        let audit = vomo_sync::store::AuditEntry {
            at: Utc::now(),
            actor: "bench".into(),
            customer: Some(name.clone()),
            action: "customer.add".into(),
            detail: String::new(),
            result: "ok".into(),
        };
        let token = ApiToken::new(&format!("bench-token-{i:04}-0123456789")).unwrap();
        ids.push(store.add_customer(&new, &token, &[], &audit).await.unwrap().id);
    }
    ids
}

/// Median time of one heartbeat reload's state DB reads and writes.
async fn reload_ms(store: &Store) -> f64 {
    let owner = default_owner();
    let mut times = Vec::new();
    for _ in 0..9 {
        let t0 = Instant::now();
        store.customers().await.unwrap();
        store.overview().await.unwrap();
        store.leases().await.unwrap();
        store.instances_since(Utc::now() - chrono::Duration::seconds(15)).await.unwrap();
        let now = Utc::now();
        store.renew_leases(&owner, now, now + chrono::Duration::minutes(1)).await.unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

async fn capacity_of(label: &str, location: StateLocation) {
    let store = open(&location).await;
    let ids = add_customers(&store, 0..CUSTOMERS).await;
    for instances in 1..=3usize {
        for id in &ids {
            let leases = store.leases().await.unwrap();
            if let Some(owner) = leases.iter().find(|l| l.customer_id == *id).and_then(|l| l.owner.clone()) {
                store.release_lease(*id, &owner).await.unwrap();
            }
        }
        let polls = Arc::new(AtomicU64::new(0));
        let secs = 10.0;
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let share = ids.len().div_ceil(instances);
        let tasks: Vec<_> = ids
            .chunks(share)
            .map(|mine| tokio::spawn(instance(location.clone(), mine.to_vec(), until, Arc::clone(&polls))))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let per_s = polls.load(Ordering::Relaxed) as f64 / secs;
        println!(
            "capacity {label}, {instances} instance(s): {per_s:.0} quiet polls/s → {:.0} customers at 15-min polls \
             ({:.0} per instance)",
            per_s * 900.0,
            per_s * 900.0 / instances as f64
        );
    }
    // What grows with the customer count: the heartbeat reload every
    // instance does (customers, overview, leases, instances, renewal).
    let mut count = CUSTOMERS;
    for target in [200, 2_000, 10_000] {
        if target > count {
            add_customers(&store, count..target).await;
            count = target;
        }
        let ms = reload_ms(&store).await;
        println!(
            "reload {label}, {count} customers: {ms:.1} ms per heartbeat reload ({:.1} % of a 5 s heartbeat)",
            ms / 50.0
        );
    }
}

async fn capacity() {
    let dir = tempfile::tempdir().unwrap();
    capacity_of("SQLite", StateLocation::Sqlite(dir.path().join("capacity.db"))).await;
    match pg::fresh_database().await {
        Some(url) => capacity_of("PostgreSQL", StateLocation::Postgres(url)).await,
        None => println!("capacity PostgreSQL: skipped (no PostgreSQL)"),
    }
}

fn main() {
    let chosen: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if wants("capacity") {
        runtime.block_on(capacity());
    }
    if wants("idle") {
        runtime.block_on(idle());
    }
}
