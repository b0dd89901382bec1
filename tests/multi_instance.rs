//! Several `headless` instances on one PostgreSQL state DB, as a partner
//! runs them: 50 simulated customers shared through leases. Two instances
//! split the customers, a third joins and gets its share, one is killed
//! with SIGKILL mid-backfill and its customers continue on the others from
//! their checkpoints. Throughout, a monitor checks that no checkpoint moves
//! backwards; afterwards, that no two advancing runs of a customer ever
//! overlapped (one walker at a time), that every customer mirrors VOMO
//! (edits made after the kill included), and that a command sent from a
//! separate process is carried out once, by the owner, and audited.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};
use vomo_sync::config::StateLocation;
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, User};
use vomo_sync::engine::{OnboardRequest, Operator};
use vomo_sync::sim::{SimHandle, UserFields};
use vomo_sync::store::{KeySource, MasterKey, Store};

const CUSTOMERS: usize = 50;
const USERS: usize = 300;
/// Short enough for a test; the heartbeat is a quarter of it.
const LEASE: Duration = Duration::from_secs(4);

fn org(i: usize) -> String {
    format!("org{i:02}")
}

/// `vomo-sync` against the shared state DB with test timings.
fn vomo_sync(home: &Path, state: &str) -> Command {
    let mut command = Command::from(common::test_command(home, env!("CARGO_BIN_EXE_vomo-sync")));
    command
        .env("VOMO_SYNC_STATE", state)
        .env("VOMO_SYNC_SYNC_LEASE_PERIOD", "4s")
        .env("VOMO_SYNC_SYNC_HEARTBEAT_EVERY", "1s");
    command
}

/// A headless instance; its log goes to `NAME.log` in `home`.
fn start_instance(home: &Path, state: &str, name: &str) -> Child {
    let log = std::fs::File::create(home.join(format!("{name}.log"))).unwrap();
    vomo_sync(home, state)
        .args(["headless", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The lease owner id of a child (`host:PID:tag`).
fn owner_of(owners: &[String], child: &Child) -> Option<String> {
    let pid = format!(":{}:", child.id()?);
    owners.iter().find(|o| o.contains(&pid)).cloned()
}

async fn onboard_all(state: &str, sim: &SimHandle, dest: &str) {
    let mut store = Store::open(&StateLocation::Postgres(state.to_owned())).await.unwrap();
    store.unlock(MasterKey::from_hex(common::MASTER_KEY).unwrap(), &KeySource::Env).await.unwrap();
    let config = common::sync::engine_config();
    let ops = Operator::new(store.clone(), config).unwrap();
    for i in 0..CUSTOMERS {
        let request = OnboardRequest {
            name: format!("customer{i:02}"),
            token: ApiToken::new(&sim.token(&org(i)).unwrap()).unwrap(),
            vomo_url: sim.base_url().to_owned(),
            destinations: vec![DestinationSpec::parse(&format!("{dest}?table=c{i:02}")).unwrap()],
            settings: CustomerSettings { rate_per_s: 6.0, poll_every_secs: 2, ..CustomerSettings::default() },
        };
        ops.send(vomo_sync::engine::Command::Onboard(Box::new(request)), "tester").await.unwrap();
    }
    store.close().await;
}

/// Lease holders (unexpired) by customer, and every checkpoint.
struct Sample {
    holders: BTreeMap<i64, String>,
    watermarks: BTreeMap<i64, DateTime<Utc>>,
}

async fn sample(conn: &mut PgConnection) -> Sample {
    let holders: Vec<(i64, String)> = sqlx::query_as(
        "SELECT customer_id, owner FROM leases WHERE owner IS NOT NULL AND expires_at > now() ORDER BY customer_id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let watermarks: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT customer_id, watermark FROM checkpoints").fetch_all(&mut *conn).await.unwrap();
    Sample { holders: holders.into_iter().collect(), watermarks: watermarks.into_iter().collect() }
}

/// What the monitor saw: checkpoint regressions and the latest holders.
#[derive(Clone, Default)]
struct Monitor {
    problems: Arc<Mutex<Vec<String>>>,
    holders: Arc<Mutex<BTreeMap<i64, String>>>,
}

impl Monitor {
    fn holders(&self) -> BTreeMap<i64, String> {
        self.holders.lock().unwrap().clone()
    }

    fn owners(&self) -> Vec<String> {
        self.holders().into_values().collect()
    }

    /// True when `n` instances hold every customer, each within `range`.
    fn shared_by(&self, n: usize, range: std::ops::RangeInclusive<usize>) -> bool {
        let counts = count_by_owner(&self.holders());
        counts.len() == n
            && counts.values().all(|c| range.contains(c))
            && counts.values().sum::<usize>() == CUSTOMERS
    }
}

/// Watches the state DB every 50 ms: records checkpoint regressions and the
/// latest lease holders.
fn spawn_monitor(state: String) -> Monitor {
    let monitor = Monitor::default();
    let (p, h) = (Arc::clone(&monitor.problems), Arc::clone(&monitor.holders));
    tokio::spawn(async move {
        let mut conn = PgConnection::connect(&state).await.unwrap();
        let mut highest: HashMap<i64, DateTime<Utc>> = HashMap::new();
        loop {
            let now = sample(&mut conn).await;
            for (customer, watermark) in &now.watermarks {
                let before = highest.entry(*customer).or_insert(*watermark);
                if watermark < before {
                    p.lock()
                        .unwrap()
                        .push(format!("customer {customer}: checkpoint {before} -> {watermark}"));
                }
                *before = (*before).max(*watermark);
            }
            *h.lock().unwrap() = now.holders;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    monitor
}

fn count_by_owner(holders: &BTreeMap<i64, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for owner in holders.values() {
        *counts.entry(owner.clone()).or_insert(0) += 1;
    }
    counts
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Differences between a destination table and VOMO's users.
fn differences(table: &BTreeMap<i64, Option<User>>, vomo: &[User]) -> usize {
    vomo.iter()
        .filter(|u| !u.is_anonymised())
        .filter(|u| table.get(&u.id).and_then(Option::as_ref) != Some(*u))
        .count()
}

async fn all_mirror(dest: &str, sim: &SimHandle) -> bool {
    let mut conn = PgConnection::connect(dest).await.unwrap();
    for i in 0..CUSTOMERS {
        let table = format!("c{i:02}");
        // A destination creates its table at its first run.
        let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if exists.is_none()
            || differences(&common::pg::table_users(dest, &table).await, &sim.users(&org(i)).unwrap()) > 0
        {
            return false;
        }
    }
    true
}

type RunSpan = (i64, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// One walker at a time: a customer's advancing runs never overlap, also
/// across a takeover (a killed owner's open runs are closed first).
async fn assert_runs_never_overlap(conn: &mut PgConnection, killed: &str) {
    let runs: Vec<RunSpan> = sqlx::query_as(
        "SELECT customer_id, coalesce(owner, ''), started_at, finished_at FROM runs
         WHERE kind IN ('backfill', 'poll') ORDER BY customer_id, started_at, id",
    )
    .fetch_all(conn)
    .await
    .unwrap();
    for pair in runs.windows(2) {
        let (c1, o1, s1, f1) = &pair[0];
        let (c2, o2, s2, _) = &pair[1];
        if c1 != c2 {
            continue;
        }
        let finished = f1.unwrap_or_else(|| panic!("customer {c1}: run by {o1} from {s1} still open"));
        assert!(
            finished <= *s2,
            "customer {c1}: run by {o1} {s1}..{finished} overlaps one by {o2} from {s2}"
        );
    }
    let owners: std::collections::BTreeSet<&String> = runs.iter().map(|r| &r.1).collect();
    assert!(owners.contains(&killed.to_owned()) && owners.len() >= 3, "{owners:?}");
}

/// `sync poll` from a separate process for a customer `owner` runs: carried
/// out once, by the owner, audited with the issuing process.
async fn assert_command_runs_once_on(
    conn: &mut PgConnection,
    home: &Path,
    state: &str,
    owner: &str,
    target: i64,
) {
    let name: String = sqlx::query_scalar("SELECT name FROM customers WHERE id = $1")
        .bind(target)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let out = vomo_sync(home, state).args(["sync", "poll", &name]).output().await.unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("poll started") && printed.contains(owner), "{printed}");
    let commands: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, claimed_by FROM commands WHERE customer = $1")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(commands, vec![("done".to_owned(), Some(owner.to_owned()))]);
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM audit_log WHERE customer = $1 AND action = 'sync.poll'")
            .bind(&name)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(audited.len(), 1, "executed and audited once: {audited:?}");
    assert!(audited[0].contains(" via "), "the audit names the issuing process: {audited:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_share_customers_survive_a_sigkill_and_take_commands() {
    let Some(state) = common::pg::fresh_database().await else { return };
    let Some(dest) = common::pg::fresh_database().await else { return };
    let orgs: Vec<(String, usize)> = (0..CUSTOMERS).map(|i| (org(i), USERS)).collect();
    let orgs: Vec<(&str, usize)> = orgs.iter().map(|(o, n)| (o.as_str(), *n)).collect();
    let sim = common::sim_with(&orgs).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    onboard_all(&state, &sim, &dest).await;
    let monitor = spawn_monitor(state.clone());

    // Two instances split the customers; a third joins and takes its share.
    let a = start_instance(dir, &state, "a");
    let mut b = start_instance(dir, &state, "b");
    let limit = Duration::from_secs(20);
    wait_for("two instances sharing the customers", limit, async || monitor.shared_by(2, 24..=26)).await;
    let c = start_instance(dir, &state, "c");
    wait_for("three instances sharing the customers", limit, async || monitor.shared_by(3, 16..=17)).await;
    let b_owner = owner_of(&monitor.owners(), &b).expect("b holds customers");

    // Kill b while it walks a backfill.
    let mut conn = PgConnection::connect(&state).await.unwrap();
    wait_for("b in the middle of a backfill", Duration::from_secs(30), async || {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM runs WHERE owner = $1 AND kind = 'backfill' AND outcome = 'running'",
        )
        .bind(&b_owner)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        running > 0
    })
    .await;
    let b_customers: Vec<i64> =
        monitor.holders().into_iter().filter(|(_, o)| *o == b_owner).map(|(c, _)| c).collect();
    b.start_kill().unwrap();
    b.wait().await.unwrap();
    let killed_at = Instant::now();

    // Its customers continue on the others within one lease period (plus a
    // heartbeat to notice), shared evenly again.
    wait_for("b's customers taken over", LEASE + Duration::from_secs(4), async || {
        let now = monitor.holders();
        b_customers.iter().all(|c| now.get(c).is_some_and(|o| *o != b_owner))
    })
    .await;
    let takeover = killed_at.elapsed();
    eprintln!("takeover of {} customers {takeover:?} after the SIGKILL (lease {LEASE:?})", b_customers.len());
    assert!(takeover <= LEASE + Duration::from_secs(3), "{takeover:?}");
    wait_for("two instances sharing again", Duration::from_secs(5), async || monitor.shared_by(2, 24..=26))
        .await;

    // Edits after the kill travel too; every customer converges.
    for i in (0..CUSTOMERS).step_by(5) {
        let id = sim.users(&org(i)).unwrap()[7].id;
        sim.update_user(
            id,
            &UserFields { last_name: Some(format!("Moved{i}")), ..UserFields::default() },
            true,
        )
        .unwrap();
    }
    wait_for("every customer mirroring VOMO", Duration::from_secs(90), async || {
        all_mirror(&dest, &sim).await
    })
    .await;
    assert_runs_never_overlap(&mut conn, &b_owner).await;
    let problems = monitor.problems.lock().unwrap().clone();
    assert!(problems.is_empty(), "checkpoints moved backwards: {problems:?}");

    let c_owner = owner_of(&monitor.owners(), &c).expect("c holds customers");
    let target = *monitor.holders().iter().find(|(_, o)| **o == c_owner).unwrap().0;
    assert_command_runs_once_on(&mut conn, dir, &state, &c_owner, target).await;
    drop((a, c));
}
