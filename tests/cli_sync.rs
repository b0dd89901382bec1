//! End to end through the binary, as an operator runs it: simulator →
//! `customer add` → `headless --once` → the PostgreSQL table and the JSONL
//! file hold exactly VOMO's users; edits travel on the next run; onboarding
//! refuses bad tokens and destinations without storing anything; the DLQ
//! commands; and `headless` serving health and metrics until SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sim_with;
use common::sync::{assert_mirrors, replay_jsonl};
use sqlx::Connection;
use tokio::process::Command;
use vomo_sync::sim::{SimHandle, UserFields};

/// The binary with a private HOME, a fixed master key, no settle margin
/// (the simulator commits at once) and fast retries.
fn vomo_sync(home: &Path) -> Command {
    command_in(home, env!("CARGO_BIN_EXE_vomo-sync"))
}

/// `program` with the test environment of `vomo-sync` (a wrapper shell too).
fn command_in(home: &Path, program: &str) -> Command {
    Command::from(common::test_command(home, program))
}

async fn run(home: &Path, args: &[&str]) -> Output {
    vomo_sync(home).args(args).output().await.unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn token_file(dir: &Path, sim: &SimHandle, org: &str) -> String {
    let path = dir.join(format!("{org}.token"));
    std::fs::write(&path, format!("{}\n", sim.token(org).unwrap())).unwrap();
    path.display().to_string()
}

/// The PostgreSQL destination's table as users (deleted rows as `None`).

#[tokio::test(flavor = "multi_thread")]
async fn onboard_then_once_mirrors_vomo_into_postgres_and_jsonl() {
    let Some(pg) = common::pg::fresh_database().await else { return };
    let sim = sim_with(&[("acme", 400)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let jsonl = dir.join("acme.jsonl");
    let tokens = token_file(dir, &sim, "acme");
    let pg_dest = format!("{pg}?table=volunteers");
    let jsonl_dest = format!("jsonl:{}", jsonl.display());
    let add = run(
        dir,
        &[
            "customer",
            "add",
            "acme",
            "--token-file",
            &tokens,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &jsonl_dest,
            "--dest",
            &pg_dest,
            "--rate",
            "0",
        ],
    )
    .await;
    assert!(add.status.success(), "{}", text(&add));
    assert!(!text(&add).contains(&sim.token("acme").unwrap()), "the token is never printed");

    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    assert!(text(&once).contains("backfill done"), "{}", text(&once));
    let vomo = sim.users("acme").unwrap();
    assert_mirrors(&common::pg::table_users(&pg, "volunteers").await, &vomo);
    assert_eq!(common::pg::table_users(&pg, "volunteers").await.len(), 400, "one row per user");
    assert_mirrors(&replay_jsonl(&jsonl), &vomo);

    let ids: Vec<i64> = vomo.iter().map(|u| u.id).collect();
    sim.update_user(ids[0], &UserFields { last_name: Some("Edited".into()), ..UserFields::default() }, true)
        .unwrap();
    sim.anonymise_user(ids[1]).unwrap();
    let created = sim
        .create_user("acme", &UserFields { first_name: Some("Newcomer".into()), ..UserFields::default() })
        .unwrap();
    sim.advance_clock(2); // edits become visible once their second has closed
    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    assert!(text(&once).contains("poll done"), "{}", text(&once));
    let vomo = sim.users("acme").unwrap();
    let table = common::pg::table_users(&pg, "volunteers").await;
    assert_mirrors(&table, &vomo);
    assert_eq!(table[&ids[0]].as_ref().unwrap().last_name, "Edited");
    assert_eq!(table[&ids[1]], None, "the anonymised user is erased downstream");
    assert!(table[&created].is_some());
    assert_mirrors(&replay_jsonl(&jsonl), &vomo);

    let status = run(dir, &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json[0]["status"], "active");
    assert_eq!(json[0]["users_synced"], 400, "400 seeded + 1 created - 1 anonymised");
    assert_eq!(json[0]["token"]["fingerprint"].as_str().unwrap().chars().count(), 5);
    let list = run(dir, &["customer", "list"]).await;
    assert!(text(&list).contains("acme") && text(&list).contains("active"), "{}", text(&list));
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_refuses_bad_tokens_and_destinations_and_stores_nothing() {
    let sim = sim_with(&[("acme", 5)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let jsonl_dest = format!("jsonl:{}", dir.join("a.jsonl").display());
    let bad_token = dir.join("bad.token");
    std::fs::write(&bad_token, "not-a-real-token-1234").unwrap();
    let bad = bad_token.display().to_string();
    let add = |token: String, dest: String| {
        let dir = dir.to_owned();
        let base = sim.base_url().to_owned();
        async move {
            run(
                &dir,
                &["customer", "add", "acme", "--token-file", &token, "--vomo-url", &base, "--dest", &dest],
            )
            .await
        }
    };

    let out = add(bad.clone(), jsonl_dest.clone()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("VOMO rejected this token"), "{}", text(&out));
    assert!(!text(&out).contains("not-a-real-token"), "the token is never printed");

    let good = token_file(dir, &sim, "acme");
    let out = add(good.clone(), "s3://bucket".into()).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("jsonl:") && text(&out).contains("postgres://"),
        "names the accepted forms: {}",
        text(&out)
    );

    let out = add(good.clone(), "postgres://rep:hunter2@127.0.0.1:1/db".into()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("failed its check") && !text(&out).contains("hunter2"), "{}", text(&out));

    let out = add(good.clone(), "webhook:http://127.0.0.1:1/hook".into()).await;
    assert!(text(&out).contains("signing secret"), "{}", text(&out));

    let list = run(dir, &["customer", "list", "--json"]).await;
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]", "nothing was stored");
    let out = add(good, jsonl_dest).await;
    assert!(out.status.success(), "{}", text(&out));
}

/// A webhook receiver whose answers the test can change: it refuses the
/// users in `reject` (400) or everything (`down`: 503).
#[derive(Clone, Default)]
struct Receiver {
    reject: Arc<Mutex<Vec<i64>>>,
    down: Arc<Mutex<bool>>,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn start_receiver(receiver: Receiver, secret: String) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let receiver = receiver.clone();
            let secret = secret.clone();
            async move {
                let header = |name: &str| {
                    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
                };
                let verified = vomo_sync::dest::webhook::verify(
                    &secret,
                    &header("x-vomo-sync-timestamp"),
                    &header("x-vomo-sync-signature"),
                    &body,
                    chrono::Utc::now(),
                    Duration::from_secs(300),
                );
                if verified.is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                if *receiver.down.lock().unwrap() {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let batch: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let events = batch["events"].as_array().unwrap();
                let reject = receiver.reject.lock().unwrap().clone();
                if events.iter().any(|e| reject.contains(&e["vomo_user_id"].as_i64().unwrap())) {
                    return StatusCode::BAD_REQUEST;
                }
                receiver.received.lock().unwrap().extend(events.iter().cloned());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

/// A customer syncing `acme` (60 users) to a webhook receiver.
async fn webhook_customer(dir: &Path) -> (SimHandle, Receiver, Vec<i64>) {
    let sim = sim_with(&[("acme", 60)]).await;
    let secret_file = dir.join("hook.secret");
    std::fs::write(&secret_file, "shared-secret-for-hmac\n").unwrap();
    let receiver = Receiver::default();
    let url = start_receiver(receiver.clone(), "shared-secret-for-hmac".into()).await;
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    let tokens = token_file(dir, &sim, "acme");
    let dest = format!("webhook:{url},secret-file={}", secret_file.display());
    let add = run(
        dir,
        &["customer", "add", "acme", "--token-file", &tokens, "--vomo-url", sim.base_url(), "--dest", &dest],
    )
    .await;
    assert!(add.status.success(), "{}", text(&add));
    (sim, receiver, ids)
}

async fn dlq_entries(dir: &Path) -> Vec<serde_json::Value> {
    let list = run(dir, &["dlq", "list", "--json"]).await;
    serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_record_waits_for_an_operator_in_the_dlq() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (sim, receiver, ids) = webhook_customer(dir).await;
    receiver.reject.lock().unwrap().push(ids[7]);

    // One refused user goes to the DLQ as permanent; the rest are delivered
    // and the checkpoint moves on.
    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    assert_eq!(receiver.received.lock().unwrap().len(), 59);
    let entries = dlq_entries(dir).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0]["vomo_user_id"].as_i64(), entries[0]["class"].as_str()),
        (Some(ids[7]), Some("permanent"))
    );
    let entry_id = entries[0]["id"].as_i64().unwrap().to_string();
    let retry = run(dir, &["dlq", "retry", "acme", "--id", &entry_id]).await;
    assert_eq!(retry.status.code(), Some(1), "still refused: {}", text(&retry));

    // The receiver is fixed: an operator retry delivers it.
    receiver.reject.lock().unwrap().clear();
    let retry = run(dir, &["dlq", "retry", "acme", "--all"]).await;
    assert!(retry.status.success() && text(&retry).contains("1 delivered"), "{}", text(&retry));
    assert!(receiver.received.lock().unwrap().iter().any(|e| e["vomo_user_id"] == ids[7]));
    assert!(dlq_entries(dir).await.is_empty());

    // Discarding needs a note and is audited.
    receiver.reject.lock().unwrap().push(ids[20]);
    sim.update_user(
        ids[20],
        &UserFields { phone: Some("+1-555-9999".into()), ..UserFields::default() },
        true,
    )
    .unwrap();
    sim.advance_clock(2); // edits become visible once their second has closed
    run(dir, &["headless", "--once"]).await;
    let id = dlq_entries(dir).await[0]["id"].as_i64().unwrap().to_string();
    let refused = run(dir, &["dlq", "discard", &id, "--note", " "]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let discard =
        run(dir, &["dlq", "discard", &id, "--note", "customer deleted this record on their side"]).await;
    assert!(discard.status.success(), "{}", text(&discard));
    assert!(dlq_entries(dir).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_destination_loses_nothing_and_stale_versions_are_never_sent() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (sim, receiver, ids) = webhook_customer(dir).await;
    assert!(run(dir, &["headless", "--once"]).await.status.success());

    // The receiver is down: changes wait in the DLQ as retryable and the
    // checkpoint moves on.
    *receiver.down.lock().unwrap() = true;
    for id in &ids[10..13] {
        sim.update_user(
            *id,
            &UserFields { phone: Some("+1-555-7777".into()), ..UserFields::default() },
            true,
        )
        .unwrap();
    }
    sim.advance_clock(2); // edits become visible once their second has closed
    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    let entries = dlq_entries(dir).await;
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| e["class"] == "retryable"));

    // Back up; a newer version of one user supersedes its entry, and the
    // automatic retry delivers the rest.
    *receiver.down.lock().unwrap() = false;
    sim.update_user(
        ids[10],
        &UserFields { phone: Some("+1-555-8888".into()), ..UserFields::default() },
        true,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.advance_clock(2); // edits become visible once their second has closed
    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    assert!(dlq_entries(dir).await.is_empty());
    let phones: Vec<(i64, serde_json::Value)> = {
        let received = receiver.received.lock().unwrap();
        [ids[10], ids[11]]
            .iter()
            .map(|id| {
                (
                    *id,
                    received.iter().rev().find(|e| e["vomo_user_id"] == *id).unwrap()["user"]["phone"]
                        .clone(),
                )
            })
            .collect()
    };
    assert_eq!(phones[0].1, "+1-555-8888", "never overwritten by the stale version");
    assert_eq!(phones[1].1, "+1-555-7777");
}

#[tokio::test(flavor = "multi_thread")]
async fn headless_serves_health_and_metrics_and_stops_cleanly_on_sigterm() {
    let sim = sim_with(&[("acme", 300)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let tokens = token_file(dir, &sim, "acme");
    let jsonl = dir.join("acme.jsonl");
    let dest = format!("jsonl:{}", jsonl.display());
    let add = run(
        dir,
        &[
            "customer",
            "add",
            "acme",
            "--token-file",
            &tokens,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &dest,
            "--rate",
            "0",
        ],
    )
    .await;
    assert!(add.status.success(), "{}", text(&add));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut child =
        vomo_sync(dir).args(["headless", "--listen", &listen]).kill_on_drop(true).spawn().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    let mut synced = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(metrics) = http.get(format!("{base}/metrics")).send().await else { continue };
        let body = metrics.text().await.unwrap();
        if body.contains("vomo_sync_users_synced{customer=\"acme\"} 300") {
            synced = true;
            assert!(body.contains("vomo_sync_checkpoint_lag_seconds{customer=\"acme\"}"), "{body}");
            assert!(body.contains("vomo_sync_dlq_depth{customer=\"acme\"} 0"), "{body}");
            assert!(body.contains("vomo_sync_requests_total{customer=\"acme\"}"), "{body}");
            break;
        }
    }
    assert!(synced, "the backfill finished and shows in /metrics");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);
    assert_mirrors(&replay_jsonl(&jsonl), &sim.users("acme").unwrap());

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends headless cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_backfill_exits_cleanly_and_a_restart_completes_without_loss() {
    let sim = sim_with(&[("acme", 3000)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let tokens = token_file(dir, &sim, "acme");
    let jsonl = dir.join("acme.jsonl");
    let dest = format!("jsonl:{}", jsonl.display());
    let add = run(
        dir,
        &[
            "customer",
            "add",
            "acme",
            "--token-file",
            &tokens,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &dest,
            "--rate",
            "40",
        ],
    )
    .await;
    assert!(add.status.success(), "{}", text(&add));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = vomo_sync(dir)
        .args(["headless", "--listen", &format!("127.0.0.1:{port}")])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pid = child.id().unwrap().to_string();
    let signalled = std::time::Instant::now();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5), "drained quickly: {:?}", signalled.elapsed());
    let partial = replay_jsonl(&jsonl).len();
    assert!(partial > 0 && partial < 3000, "stopped mid-backfill after {partial} users");
    let status = run(dir, &["status", "--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json[0]["status"], "backfilling");
    assert_eq!(json[0]["last_runs"][0]["outcome"], "aborted", "{json}");

    let once = run(dir, &["headless", "--once"]).await;
    assert!(once.status.success(), "{}", text(&once));
    assert_mirrors(&replay_jsonl(&jsonl), &sim.users("acme").unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_fails_the_run_and_a_new_token_resumes_from_the_checkpoint() {
    let sim = sim_with(&[("acme", 120)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let tokens = token_file(dir, &sim, "acme");
    let jsonl = dir.join("acme.jsonl");
    let dest = format!("jsonl:{}", jsonl.display());
    let add = run(
        dir,
        &["customer", "add", "acme", "--token-file", &tokens, "--vomo-url", sim.base_url(), "--dest", &dest],
    )
    .await;
    assert!(add.status.success(), "{}", text(&add));
    assert!(run(dir, &["headless", "--once"]).await.status.success());

    // Paused customers are skipped; resumed ones run again.
    assert!(run(dir, &["customer", "pause", "acme"]).await.status.success());
    let once = run(dir, &["headless", "--once"]).await;
    assert!(!text(&once).contains("acme"), "{}", text(&once));
    let again = run(dir, &["customer", "pause", "acme"]).await;
    assert!(text(&again).contains("already paused") && again.status.code() == Some(1), "{}", text(&again));
    assert!(run(dir, &["customer", "resume", "acme"]).await.status.success());

    sim.revoke_token(&sim.token("acme").unwrap());
    let once = run(dir, &["headless", "--once"]).await;
    assert_eq!(once.status.code(), Some(1), "a failed customer fails the run: {}", text(&once));
    assert!(text(&once).contains("FAILED") && text(&once).contains("401"), "{}", text(&once));
    let status = run(dir, &["status"]).await;
    assert!(
        text(&status).contains("token rejected") && text(&status).contains("VOMO rejected the token"),
        "{}",
        text(&status)
    );

    // A bad replacement is refused; a good one resumes the customer.
    let bad = dir.join("bad.token");
    std::fs::write(&bad, "still-not-valid-0000").unwrap();
    let refused = run(dir, &["customer", "token", "acme", "--token-file", bad.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    let new_token = sim.issue_token("acme").unwrap();
    let fresh = dir.join("fresh.token");
    std::fs::write(&fresh, &new_token).unwrap();
    let replaced = run(dir, &["customer", "token", "acme", "--token-file", fresh.to_str().unwrap()]).await;
    assert!(replaced.status.success() && text(&replaced).contains("status active"), "{}", text(&replaced));
    sim.update_user(
        sim.users("acme").unwrap()[5].id,
        &UserFields { phone: Some("+1-555-1111".into()), ..UserFields::default() },
        true,
    )
    .unwrap();
    sim.advance_clock(2); // edits become visible once their second has closed
    let once = run(dir, &["headless", "--once"]).await;
    assert!(
        once.status.success() && text(&once).contains("poll done"),
        "resumed as a poll, not a new backfill: {}",
        text(&once)
    );
    assert_mirrors(&replay_jsonl(&jsonl), &sim.users("acme").unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_commands_and_offboarding_from_the_command_line() {
    let sim = sim_with(&[("acme", 200)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let jsonl_dest = format!("jsonl:{}", dir.join("acme.jsonl").display());
    let tokens = token_file(dir, &sim, "acme");
    let args = ["customer", "add", "acme", "--token-file", &tokens, "--vomo-url", sim.base_url()];
    let add = run(dir, &[&args[..], &["--dest", &jsonl_dest, "--rate", "0"]].concat()).await;
    assert!(add.status.success(), "{}", text(&add));
    assert!(run(dir, &["headless", "--once"]).await.status.success());

    let reconcile = run(dir, &["sync", "reconcile", "acme"]).await;
    assert!(
        reconcile.status.success() && text(&reconcile).contains("0 missed creates"),
        "{}",
        text(&reconcile)
    );
    let gone = sim.users("acme").unwrap()[3].id;
    sim.delete_user(gone).unwrap();
    let dry = run(dir, &["sync", "deletions", "acme", "--dry-run"]).await;
    assert!(
        dry.status.success() && text(&dry).contains(&format!("would delete 1 ({gone})")),
        "{}",
        text(&dry)
    );
    let sweep = run(dir, &["sync", "deletions", "acme"]).await;
    assert!(
        sweep.status.success() && text(&sweep).contains(&format!("deleted 1 ({gone})")),
        "{}",
        text(&sweep)
    );

    let unknown = run(dir, &["customer", "offboard", "nobody", "--yes"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("no customer named \"nobody\""), "{}", text(&unknown));
    let explain = run(dir, &["customer", "offboard", "acme"]).await;
    assert_eq!(explain.status.code(), Some(2), "{}", text(&explain));
    assert!(text(&explain).contains("--yes") && text(&explain).contains("mappings"), "{}", text(&explain));
    let offboard = run(dir, &["customer", "offboard", "acme", "--yes"]).await;
    assert!(offboard.status.success(), "{}", text(&offboard));
    let list = run(dir, &["customer", "list"]).await;
    assert!(text(&list).contains("offboarded"), "{}", text(&list));
    let fresh = dir.join("fresh.token");
    std::fs::write(&fresh, sim.issue_token("acme").unwrap()).unwrap();
    let restore = run(dir, &["customer", "restore", "acme", "--token-file", fresh.to_str().unwrap()]).await;
    assert!(restore.status.success() && text(&restore).contains("active"), "{}", text(&restore));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn headless_tells_systemd_ready_pings_the_watchdog_and_says_stopping() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let socket_path = dir.join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: a shell that execs
    // vomo-sync gives it its own pid.
    let mut child = command_in(dir, "sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .args([env!("CARGO_BIN_EXE_vomo-sync"), "headless", "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let mut next = async || {
        let n =
            tokio::time::timeout(Duration::from_secs(15), socket.recv(&mut buffer)).await.unwrap().unwrap();
        String::from_utf8_lossy(&buffer[..n]).trim_end().to_owned()
    };
    let ready = next().await;
    assert!(ready.contains("READY=1") && ready.contains("STATUS=serving on 127.0.0.1:"), "{ready}");
    assert_eq!(next().await, "WATCHDOG=1", "pinged at half the watchdog period");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut stopping = next().await;
    while stopping == "WATCHDOG=1" {
        stopping = next().await;
    }
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_send_one_alert_per_transition_to_webhook_and_command() {
    use std::sync::{Arc, Mutex};
    let sim = sim_with(&[("acme", 30)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let tokens = token_file(dir, &sim, "acme");
    let dest = format!("jsonl:{}", dir.join("acme.jsonl").display());
    let args =
        ["customer", "add", "acme", "--token-file", &tokens, "--vomo-url", sim.base_url(), "--dest", &dest];
    assert!(run(dir, &args).await.status.success());
    // The token is revoked before the engine starts: its backfill is refused.
    sim.revoke_token(&sim.token("acme").unwrap());

    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Two instances on one state DB, each with the webhook and a command:
    // the fleet sends the alert once.
    let paged = dir.join("paged.jsonl");
    let config = dir.join("alerts.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\ncommand = [\"sh\", \"-c\", \"cat >> {}; echo \\\" $VOMO_SYNC_ALERT_KIND\\\" >> {}\"]\n",
            paged.display(),
            paged.display()
        ),
    )
    .unwrap();
    let start = || {
        vomo_sync(dir)
            .args(["--config", config.to_str().unwrap(), "headless", "--listen", "127.0.0.1:0"])
            .env("VOMO_SYNC_ALERTS_WEBHOOK", &webhook)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut children = [start(), start()];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no alert arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Several more snapshots (one a second) in both: still one alert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = received.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0]["customer"].as_str(), alerts[0]["kind"].as_str()),
        (Some("acme"), Some("token_rejected"))
    );
    let paged = std::fs::read_to_string(&paged).unwrap();
    assert_eq!(paged.matches("token_rejected").count(), 2, "one JSON alert and its kind, once: {paged}");
    assert!(paged.contains("\"customer\":\"acme\""), "{paged}");
    for child in &mut children {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
        assert_eq!(status.code(), Some(0));
    }
}

/// A second process's command for a customer a running `headless` owns
/// goes through the SQLite state DB's queue (polled): carried out once, by
/// the owner, audited with the issuing process; `status` names the owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_from_another_process_is_carried_out_once_by_the_owner() {
    let sim = sim_with(&[("acme", 100)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let state = dir.join("state.db");
    let with_state = |args: &[&str]| {
        let mut command = vomo_sync(dir);
        command.env("VOMO_SYNC_STATE", &state).args(args);
        command
    };
    let tokens = token_file(dir, &sim, "acme");
    let jsonl_dest = format!("jsonl:{}", dir.join("acme.jsonl").display());
    let add = with_state(&["customer", "add", "acme", "--token-file", &tokens, "--vomo-url", sim.base_url()])
        .args(["--dest", &jsonl_dest, "--rate", "0"])
        .output()
        .await
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));

    // No process runs acme: the CLI carries the command out itself, with
    // the engine's code, under a short lease of its own (the one door).
    let idle = with_state(&["sync", "poll", "acme"]).output().await.unwrap();
    assert_polled_here(&idle, &state).await;

    let mut headless =
        with_state(&["headless", "--listen", "127.0.0.1:0"]).kill_on_drop(true).spawn().unwrap();
    let mut owner = String::new();
    for _ in 0..100 {
        let status = with_state(&["status", "--json"]).output().await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if json[0]["status"] == "active"
            && let Some(o) = json[0]["owner"].as_str()
        {
            owner = o.to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(owner.contains(&format!(":{}:", headless.id().unwrap())), "headless owns acme: {owner:?}");
    let table = with_state(&["status"]).output().await.unwrap();
    assert!(text(&table).contains("OWNER") && text(&table).contains(&owner), "{}", text(&table));

    let reconcile = with_state(&["sync", "reconcile", "acme"]).output().await.unwrap();
    assert!(reconcile.status.success(), "{}", text(&reconcile));
    assert!(
        text(&reconcile).contains(&format!("(on {owner})")),
        "answered by the owner: {}",
        text(&reconcile)
    );

    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", state.display())).await.unwrap();
    let commands: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT command, status, claimed_by FROM commands").fetch_all(&mut db).await.unwrap();
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert!(commands[0].0.contains("reconcile") && commands[0].1 == "done", "{commands:?}");
    assert_eq!(commands[0].2.as_deref(), Some(owner.as_str()));
    // The reconciliation runs in the owner, once.
    let mut reconciles = 0;
    for _ in 0..50 {
        reconciles = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM runs WHERE kind = 'reconcile' AND outcome <> 'running' AND owner = $1",
        )
        .bind(&owner)
        .fetch_one(&mut db)
        .await
        .unwrap();
        if reconciles > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reconciles, 1);
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM audit_log WHERE action = 'sync.reconcile'")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(audited[0].contains(" via "), "{audited:?}");
    headless.start_kill().unwrap();
    headless.wait().await.unwrap();
}

/// `sync poll` when no process runs the customer: the CLI ran it, under a
/// lease of its own that it gave back.
async fn assert_polled_here(idle: &Output, state: &Path) {
    assert!(idle.status.success(), "{}", text(idle));
    assert!(String::from_utf8_lossy(&idle.stdout).contains("acme: backfill done: "), "{}", text(idle));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", state.display())).await.unwrap();
    let cli_runs: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, owner FROM runs").fetch_all(&pool).await.unwrap();
    assert!(
        cli_runs.len() == 1 && cli_runs[0].0 == "backfill" && cli_runs[0].1.ends_with("(cli)"),
        "run here under a CLI lease: {cli_runs:?}"
    );
    let lease: Option<String> =
        sqlx::query_scalar("SELECT owner FROM leases").fetch_one(&pool).await.unwrap();
    assert_eq!(lease, None, "the CLI's lease is given back");
    pool.close().await;
}
