//! Issue 11 through the binary, as an operator meets it: a crashed
//! `--once` does not leave its customer waiting for a dead lease, a skipped
//! customer is not reported as success, onboarding survives dropped
//! connections, destinations and VOMO URLs are held to the transport and
//! private-address rules, and secrets and personal data stay out of sight
//! (redacted config, owner-only files, no key made beside sealed secrets,
//! an empty state DB not silently re-initialised, safe customer names).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::sim_with;
use common::sync::replay_jsonl;
use tokio::process::Command;
use vomo_sync::sim::{Faults, SimHandle};

fn vomo_sync(home: &Path) -> Command {
    Command::from(common::test_command(home, env!("CARGO_BIN_EXE_vomo-sync")))
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
    #[cfg(unix)]
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&path).unwrap().permissions(), 0o600);
    path.display().to_string()
}

async fn add(home: &Path, name: &str, sim: &SimHandle, org: &str, dest: &str, extra: &[&str]) -> Output {
    let tokens = token_file(home, sim, org);
    let mut args =
        vec!["customer", "add", name, "--token-file", &tokens, "--vomo-url", sim.base_url(), "--dest", dest];
    args.extend_from_slice(extra);
    run(home, &args).await
}

fn state_db(home: &Path) -> std::path::PathBuf {
    home.join(".local/share/vomo-sync/state.db")
}

async fn sqlite(home: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite:{}", state_db(home).display())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_once_leaves_no_wait_and_its_backfill_resumes_as_a_backfill() {
    let sim = sim_with(&[("org1", 5000)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let jsonl = dir.join("org1.jsonl");
    let dest = format!("jsonl:{}", jsonl.display());
    // 150 requests/s: the backfill takes a few seconds, time to kill it.
    let added = add(dir, "org1", &sim, "org1", &dest, &["--rate", "150"]).await;
    assert!(added.status.success(), "{}", text(&added));
    let mut once = vomo_sync(dir).args(["headless", "--once"]).spawn().unwrap();
    let pool = sqlite(dir).await;
    let started = std::time::Instant::now();
    loop {
        let mapped: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mappings").fetch_one(&pool).await.unwrap();
        if mapped >= 600 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the backfill never got going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    once.start_kill().unwrap(); // SIGKILL
    once.wait().await.unwrap();
    // The next --once takes the dead process's lease at once (no 60 s wait)
    // and finishes the backfill, recorded as a backfill.
    let started = std::time::Instant::now();
    let next = run(dir, &["headless", "--once"]).await;
    assert!(next.status.success(), "{}", text(&next));
    assert!(started.elapsed() < Duration::from_secs(45), "waited for a dead lease");
    assert!(text(&next).contains("backfill done"), "{}", text(&next));
    assert_eq!(replay_jsonl(&jsonl).len(), 5000, "every user arrived");
    let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'lease.taken_over'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(taken, 1, "the takeover is audited");
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, outcome FROM runs ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(
        kinds,
        vec![("backfill".into(), "aborted".into()), ("backfill".into(), "ok".into())],
        "the killed run is closed, the resumed one is a backfill"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn once_exits_4_naming_the_customer_a_live_process_holds() {
    let sim = sim_with(&[("org1", 50)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let dest = format!("jsonl:{}", dir.join("org1.jsonl").display());
    assert!(add(dir, "org1", &sim, "org1", &dest, &[]).await.status.success());
    let mut headless =
        vomo_sync(dir).args(["headless", "--listen", "127.0.0.1:0"]).kill_on_drop(true).spawn().unwrap();
    let pool = sqlite(dir).await;
    let started = std::time::Instant::now();
    loop {
        let held: Option<String> =
            sqlx::query_scalar("SELECT owner FROM leases").fetch_optional(&pool).await.unwrap().flatten();
        if held.is_some() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "headless never took the customer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let once = run(dir, &["headless", "--once"]).await;
    assert_eq!(once.status.code(), Some(4), "{}", text(&once));
    let said = text(&once);
    assert!(
        said.contains("org1") && said.contains("holds its lease") && said.contains("expires in"),
        "{said}"
    );
    headless.start_kill().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_add_retries_a_dropped_connection() {
    let sim = sim_with(&[("org1", 10)]).await;
    // With this seed the first request's connection drops (checked here).
    let faults = Faults { seed: 11, drop_rate: 0.5, ..Faults::default() };
    sim.set_faults(faults.clone());
    let client = common::client_for(&sim, "org1");
    let first = client.list_users(&vomo_sync::vomo::UserFilter::default(), 1).await;
    assert!(first.is_err(), "seed 11 drops the first connection: {first:?}");
    sim.set_faults(faults); // the same sequence again
    let home = tempfile::tempdir().unwrap();
    let dest = format!("jsonl:{}", home.path().join("org1.jsonl").display());
    let added = add(home.path(), "org1", &sim, "org1", &dest, &[]).await;
    assert!(added.status.success(), "{}", text(&added));
}

/// A receiver that counts what reaches it (an unauthenticated admin
/// endpoint a webhook spec must not be able to hit).
async fn counting_receiver() -> (String, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            "deleted"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/admin/users/1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_on_a_private_address_is_refused_unless_allowed() {
    let sim = sim_with(&[("org1", 5)]).await;
    let (url, hits) = counting_receiver().await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("hook.secret"), "s3cret").unwrap();
    let dest = format!("webhook:{url},secret-file={}", dir.join("hook.secret").display());
    let tokens = token_file(dir, &sim, "org1");
    let refused = vomo_sync(dir)
        .env_remove("VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS")
        .args([
            "customer",
            "add",
            "org1",
            "--token-file",
            &tokens,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &dest,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("dest.allow_private_hosts"), "{}", text(&refused));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the private endpoint");
    // A host name that resolves to loopback is refused when resolved.
    let by_name = dest.replace("127.0.0.1", "localhost");
    let refused = vomo_sync(dir)
        .env_remove("VOMO_SYNC_DEST_ALLOW_PRIVATE_HOSTS")
        .args([
            "customer",
            "add",
            "org2",
            "--token-file",
            &tokens,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &by_name,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached it by name either");
    // The operator allows it: accepted (the check sends one empty batch).
    let allowed = add(dir, "org1", &sim, "org1", &dest, &[]).await;
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_vomo_off_loopback_is_refused_unless_allowed() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(dir.join("t.token"), "abc").unwrap();
    let token = dir.join("t.token").display().to_string();
    let args = [
        "customer",
        "add",
        "org1",
        "--token-file",
        &token,
        "--vomo-url",
        "http://vomo.example.invalid/v1",
        "--dest",
        "jsonl:/tmp/x.jsonl",
    ];
    let refused = run(dir, &args).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("clear text") && text(&refused).contains("allow_insecure_http"),
        "{}",
        text(&refused)
    );
    // Allowed, it gets as far as trying to reach the host.
    let tried = vomo_sync(dir)
        .env("VOMO_SYNC_VOMO_ALLOW_INSECURE_HTTP", "true")
        .env("VOMO_SYNC_SYNC_REQUEST_RETRIES", "0")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(!text(&tried).contains("clear text"), "{}", text(&tried));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_and_personal_data_stay_out_of_sight() {
    let sim = sim_with(&[("org1", 20)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    // `config` redacts the alert webhook's path and query.
    let config = vomo_sync(dir)
        .env("VOMO_SYNC_ALERTS_WEBHOOK", "https://hooks.example.org/services/T0/B0/supersecret?token=abc")
        .arg("config")
        .output()
        .await
        .unwrap();
    let shown = text(&config);
    assert!(config.status.success(), "{shown}");
    assert!(!shown.contains("supersecret") && !shown.contains("token=abc"), "{shown}");
    assert!(shown.contains("https://hooks.example.org/…"), "{shown}");
    // Customer names are safe path segments.
    for bad in [".", "..", ".hidden", "a/b"] {
        let out = add(dir, bad, &sim, "org1", "jsonl:/tmp/never.jsonl", &[]).await;
        assert!(
            !out.status.success() && text(&out).contains("invalid customer name"),
            "{bad}: {}",
            text(&out)
        );
    }
    // The JSONL file and the key file are owner-only; a readable token file is warned about.
    let jsonl = dir.join("out/org1.jsonl");
    let dest = format!("jsonl:{}", jsonl.display());
    let token = token_file(dir, &sim, "org1");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let added = vomo_sync(dir)
        .env_remove("VOMO_SYNC_MASTER_KEY")
        .args([
            "customer",
            "add",
            "org1",
            "--token-file",
            &token,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &dest,
        ])
        .output()
        .await
        .unwrap();
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains("token file is readable by its group or others"), "{}", text(&added));
    let once = vomo_sync(dir)
        .env_remove("VOMO_SYNC_MASTER_KEY")
        .args(["headless", "--once"])
        .output()
        .await
        .unwrap();
    assert!(once.status.success(), "{}", text(&once));
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!(mode(&jsonl), 0o600, "the JSONL destination holds personal data");
    let key = dir.join(".config/vomo-sync/master.key");
    assert_eq!(mode(&key), 0o600);
    // The key file goes missing while sealed tokens exist: refused, and no
    // new key is made beside them.
    std::fs::rename(&key, dir.join("master.key.bak")).unwrap();
    let again = vomo_sync(dir)
        .env_remove("VOMO_SYNC_MASTER_KEY")
        .args([
            "customer",
            "add",
            "org2",
            "--token-file",
            &token,
            "--vomo-url",
            sim.base_url(),
            "--dest",
            &dest,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("holds encrypted tokens but no master key was found"), "{}", text(&again));
    assert!(!key.exists(), "no new key beside the sealed secrets");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_state_db_is_not_reinitialised_by_status() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let db = state_db(dir);
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"").unwrap();
    let status = run(dir, &["status"]).await;
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert!(
        text(&status).contains("is an empty file") && text(&status).contains("restore it from a backup"),
        "{}",
        text(&status)
    );
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "nothing was written");
    let migrate = run(dir, &["migrate"]).await;
    assert!(migrate.status.success(), "{}", text(&migrate));
    assert!(run(dir, &["status"]).await.status.success());
}
