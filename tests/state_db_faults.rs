//! A state DB that fails under a running `headless` and comes back: a
//! SQLite file made immutable (`chattr +i`, where the filesystem and the
//! user allow it), and a PostgreSQL server stopped for 60 s. The engine
//! must not wedge: `/readyz` says so while it lasts, the failed runs are
//! logged with the customer and the cause, nothing is re-sent in a storm,
//! and once the state DB is back every edit made meanwhile arrives —
//! with no restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::sim_with;
use common::sync::{assert_mirrors, replay_jsonl};
use tokio::process::{Child, Command};
use vomo_sync::sim::{SimHandle, UserFields};

fn vomo_sync(home: &Path, state: &str) -> Command {
    let mut command = Command::from(common::test_command(home, env!("CARGO_BIN_EXE_vomo-sync")));
    command.env("VOMO_SYNC_STATE", state);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn readyz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

async fn wait_until<F: AsyncFn() -> bool>(what: &str, limit: Duration, check: F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How often each of `ids` appears in the JSONL file.
fn copies(path: &Path, ids: &[i64]) -> Vec<usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    ids.iter()
        .map(|id| {
            text.lines()
                .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["vomo_user_id"] == *id)
                .count()
        })
        .collect()
}

struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
    jsonl: PathBuf,
}

/// Onboards `acme` (polls every second) and starts `headless`, once its
/// backfill is in the destination.
async fn start(home: &Path, state: &str, sim: &SimHandle) -> Running {
    let jsonl = home.join("acme.jsonl");
    let token = home.join("acme.token");
    std::fs::write(&token, sim.token("acme").unwrap()).unwrap();
    let added = vomo_sync(home, state)
        .args(["customer", "add", "acme", "--token-file"])
        .arg(&token)
        .args(["--vomo-url", sim.base_url(), "--poll-every", "1s", "--rate", "0", "--dest"])
        .arg(format!("jsonl:{}", jsonl.display()))
        .output()
        .await
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let port = free_port();
    let log = home.join("headless.log");
    let child = vomo_sync(home, state)
        .args(["headless", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let users = sim.users("acme").unwrap();
    wait_until("the backfill", Duration::from_secs(60), async || replay_jsonl(&jsonl).len() == users.len())
        .await;
    Running { child, port, log, jsonl }
}

/// Breaks the state DB, edits VOMO meanwhile, heals it, and checks what the
/// issue asks for.
async fn outage(
    sim: &SimHandle,
    running: &mut Running,
    outage: Duration,
    break_db: impl Fn(),
    heal_db: impl Fn(),
) {
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().take(4).map(|u| u.id).collect();
    let before = copies(&running.jsonl, &ids);
    break_db();
    let broken_at = Instant::now();
    for (n, id) in ids.iter().enumerate() {
        let phone = Some(format!("+1-555-01{n:02}"));
        sim.update_user(*id, &UserFields { phone, ..UserFields::default() }, true).unwrap();
    }
    let port = running.port;
    wait_until("/readyz to report the state DB", Duration::from_secs(30), async || {
        readyz(port).await.is_some_and(|(status, body)| status == 503 && body.contains("state DB"))
    })
    .await;
    tokio::time::sleep(outage.saturating_sub(broken_at.elapsed())).await;
    let during = copies(&running.jsonl, &ids);
    for ((b, d), id) in before.iter().zip(&during).zip(&ids) {
        assert!(d - b <= 3, "user {id} was re-sent {} times while the state DB was down", d - b);
    }
    let polls_done =
        |log: &str| log.lines().filter(|l| l.contains("poll done") && l.contains("acme")).count();
    let done_before = polls_done(&std::fs::read_to_string(&running.log).unwrap());
    heal_db();
    let jsonl = running.jsonl.clone();
    let log_path = running.log.clone();
    // Recovered means polls complete (and are recorded) again, not only
    // that changes reach the destination (a wedged worker re-sends them).
    wait_until("a poll recorded after the recovery", Duration::from_secs(120), async || {
        polls_done(&std::fs::read_to_string(&log_path).unwrap()) > done_before
    })
    .await;
    wait_until("the edits made during the outage", Duration::from_secs(120), async || {
        replay_jsonl(&jsonl).get(&ids[3]).cloned().flatten().and_then(|u| u.phone).as_deref()
            == Some("+1-555-0103")
    })
    .await;
    wait_until("/readyz to be ready again", Duration::from_secs(30), async || {
        readyz(port).await.is_some_and(|(status, _)| status == 200)
    })
    .await;
    // Polling goes on: a later edit arrives too, and everything mirrors VOMO.
    sim.update_user(ids[0], &UserFields { phone: Some("+1-555-0999".into()), ..UserFields::default() }, true)
        .unwrap();
    wait_until("an edit after the recovery", Duration::from_secs(30), async || {
        replay_jsonl(&jsonl).get(&ids[0]).cloned().flatten().and_then(|u| u.phone).as_deref()
            == Some("+1-555-0999")
    })
    .await;
    assert_mirrors(&replay_jsonl(&jsonl), &sim.users("acme").unwrap());
    for ((b, after), id) in before.iter().zip(copies(&jsonl, &ids)).zip(&ids) {
        assert!(after - b <= 5, "user {id} was sent {} times for two edits: a resend storm", after - b);
    }
    assert!(running.child.try_wait().unwrap().is_none(), "recovered without a restart");
    let log = std::fs::read_to_string(&running.log).unwrap();
    let failed = log.lines().find(|l| l.contains(" failed: ") && l.contains("acme")).unwrap_or_default();
    assert!(
        failed.contains("ERROR") && failed.contains("state DB"),
        "a failed run is logged with its cause:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("INFO") && l.contains("poll done") && l.contains("acme")),
        "{log}"
    );
}

fn chattr(flag: &str, files: &[PathBuf]) -> bool {
    files
        .iter()
        .filter(|f| f.exists())
        .all(|f| std::process::Command::new("chattr").arg(flag).arg(f).status().is_ok_and(|s| s.success()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_file_made_immutable_is_survived_without_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("state.db");
    // Can this filesystem and user make a file immutable at all?
    let probe = home.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    if !chattr("+i", std::slice::from_ref(&probe)) {
        eprintln!("SKIPPED (chattr +i is not allowed here: needs root on ext4/xfs/btrfs)");
        return;
    }
    chattr("-i", std::slice::from_ref(&probe));
    let sim = sim_with(&[("acme", 300)]).await;
    let mut running = start(home.path(), db.to_str().unwrap(), &sim).await;
    // In WAL mode every commit is written to the WAL: making it immutable
    // fails writes at COMMIT, the failure that used to leave a connection
    // inside a transaction forever (the main file alone, or with the WAL,
    // fails writes earlier, at BEGIN).
    let files = vec![db.with_extension("db-wal")];
    let (broken, healed) = (files.clone(), files.clone());
    outage(
        &sim,
        &mut running,
        Duration::from_secs(20),
        move || assert!(chattr("+i", &broken), "chattr +i"),
        move || assert!(chattr("-i", &healed), "chattr -i"),
    )
    .await;
    chattr("-i", &files);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_state_db_stopped_for_a_minute_is_survived_without_a_restart() {
    if std::env::var("VOMO_SYNC_TEST_PG").is_ok() {
        eprintln!("SKIPPED (VOMO_SYNC_TEST_PG points at a shared server, which this test must not stop)");
        return;
    }
    let Some(cluster) = common::pg::StoppableCluster::start() else { return };
    let home = tempfile::tempdir().unwrap();
    let sim = sim_with(&[("acme", 300)]).await;
    let mut running = start(home.path(), &cluster.url("postgres"), &sim).await;
    let cluster = std::sync::Arc::new(cluster);
    let (down, up) = (std::sync::Arc::clone(&cluster), std::sync::Arc::clone(&cluster));
    outage(&sim, &mut running, Duration::from_secs(60), move || down.halt(), move || up.resume()).await;
}
