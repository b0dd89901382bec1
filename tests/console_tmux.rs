//! The console in a real terminal: tmux runs `vomo-sync demo`, `send-keys`
//! drives onboarding, a backfill, a DLQ retry and an offboarding, and
//! `capture-pane` plus the demo's state DB are checked after each step, and
//! the scrollback after quitting.
//! A second test attaches a console (`console --attach`) to a state DB a
//! separate `headless` process runs, and acts through the command queue.
//! Without tmux the test says so and returns; with `VOMO_SYNC_REQUIRE_TMUX=1`
//! (CI) it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, SqliteConnection};

mod common;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", "t", key]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
        std::thread::sleep(Duration::from_millis(100));
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits until the screen shows `needle`.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "the screen never showed {needle:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

fn tmux_available() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("VOMO_SYNC_REQUIRE_TMUX").as_deref() != Ok("1"),
            "tmux is required here (VOMO_SYNC_REQUIRE_TMUX=1) but not installed"
        );
        eprintln!("SKIPPED (no tmux): install tmux to run the console end-to-end test");
    }
    found
}

async fn db(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display())).await.unwrap()
}

/// Polls the demo's state DB until `sql` returns a row count ≥ 1.
async fn until_row(state: &Path, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM ({sql})")))
            .fetch_one(&mut db(state).await)
            .await
            .unwrap_or(0);
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no row for {sql}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn select(tmux: &Tmux, name: &str) {
    tmux.keys(&["Escape", "/"]);
    tmux.text(name);
    tmux.keys(&["Enter"]);
}

/// Onboarding from the form; the token is typed masked.
async fn onboard_from_the_form(tmux: &Tmux, demo: &Path, state: &Path) {
    let token = std::fs::read_to_string(demo.join("riverside-choir.token")).unwrap();
    tmux.keys(&["n"]);
    tmux.wait_for("Onboard a customer");
    tmux.text("riverside-choir");
    tmux.keys(&["Tab"]);
    tmux.text(&token);
    tmux.keys(&["Tab", "Tab"]);
    tmux.text(&format!("jsonl:{}", demo.join("riverside-choir.jsonl").display()));
    let form = tmux.screen();
    assert!(!form.contains(&token), "the token is masked:\n{form}");
    tmux.keys(&["Enter"]);
    tmux.wait_for("onboarded riverside-choir");
    until_row(state, "SELECT 1 FROM customers WHERE name = 'riverside-choir' AND status = 'active'").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_console_onboards_backfills_retries_and_offboards() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let data: PathBuf = home.path().join("data");
    let demo = data.join("vomo-sync/demo");
    let state = demo.join("state.db");
    let tmux = Tmux { socket: format!("vomo-test-{}", std::process::id()) };
    let command = format!(
        "env HOME={home} XDG_CONFIG_HOME={home}/config XDG_DATA_HOME={data} VOMO_SYNC_MASTER_KEY={key} {bin} demo --users 60,200,2000; echo EXITED $?; sleep 60",
        home = home.path().display(),
        data = data.display(),
        key = "cd".repeat(32),
        bin = env!("CARGO_BIN_EXE_vomo-sync"),
    );
    tmux.run(&["new-session", "-d", "-s", "t", "-x", "160", "-y", "48", &command]);
    tmux.wait_for("harbour-food-bank");
    tmux.wait_for("Press n to onboard riverside-choir");

    onboard_from_the_form(&tmux, &demo, &state).await;

    // A backfill on command (an active customer: a re-walk, which asks
    // first and says what it costs).
    select(&tmux, "riverside");
    tmux.wait_for("backfill  ok"); // the onboarding backfill has ended on screen too
    tmux.keys(&["b"]);
    tmux.wait_for("Re-walk every user of riverside-choir? That is about 8 requests");
    tmux.text("riverside-choir");
    tmux.keys(&["Enter"]);
    tmux.wait_for("sync.backfill: re-walking every user");
    until_row(
        &state,
        "SELECT 1 FROM audit_log WHERE action = 'sync.backfill' AND customer = 'riverside-choir'",
    )
    .await;

    // The demo webhook refuses one record: it waits in the DLQ; retry it.
    select(&tmux, "harbour");
    until_row(&state, "SELECT 1 FROM dlq WHERE status = 'pending'").await;
    tmux.wait_for("DLQ 1 pending, 1 permanent");
    tmux.keys(&["Tab"]);
    std::thread::sleep(Duration::from_millis(2500)); // the entries load
    tmux.keys(&["t"]);
    tmux.wait_for("dlq.retry: 0 delivered, 1 still failing");
    until_row(
        &state,
        "SELECT 1 FROM audit_log WHERE action = 'dlq.retry' AND customer = 'harbour-food-bank'",
    )
    .await;

    // Offboarding needs the name typed; a wrong one does nothing.
    select(&tmux, "riverside");
    tmux.keys(&["o"]);
    tmux.wait_for("Type the customer's name");
    tmux.text("riverside");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the name did not match");
    tmux.keys(&["o"]);
    tmux.text("riverside-choir");
    tmux.keys(&["Enter"]);
    tmux.wait_for("riverside-choir offboarded");
    until_row(&state, "SELECT 1 FROM customers WHERE name = 'riverside-choir' AND status = 'offboarded'")
        .await;
    let tokens: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tokens t JOIN customers c ON c.id = t.customer_id WHERE c.name = 'riverside-choir'",
    )
    .fetch_one(&mut db(&state).await)
    .await
    .unwrap();
    assert_eq!(tokens, 0, "the token is deleted at once");

    // The demo revokes city-marathon's token after 25 s: the console says
    // so and what to do, and never shows a lag in days (it once counted
    // one from the epoch).
    select(&tmux, "city");
    let revoked = tmux.wait_for("VOMO rejected the token");
    assert!(revoked.contains("token rejected ·"), "{revoked}");
    let in_days = revoked.split("lag ").skip(1).any(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !digits.is_empty() && rest[digits.len()..].starts_with('d')
    });
    assert!(!in_days, "a lag in days:\n{revoked}");

    // At 80×24 the footer still shows how to get help and how to quit.
    tmux.run(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    tmux.keys(&["Escape"]);
    let small = tmux.wait_for("q quit");
    let footer = small.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(footer.starts_with("? help  q quit"), "footer at 80×24: {footer:?}\n{small}");

    quit_after_growing_the_pane(&tmux);
}

/// Grows the pane, quits with Ctrl-C, and checks the terminal is given back
/// clean — scrollback included.
fn quit_after_growing_the_pane(tmux: &Tmux) {
    // The pane grows past its size at start (a bigger window) before the
    // operator quits: tmux then shrinks the alternate screen back to that
    // size on exit, pushing the lines above the cursor into the scrollback —
    // the console blanks the screen first.
    tmux.run(&["resize-window", "-t", "t", "-x", "200", "-y", "64"]);
    std::thread::sleep(Duration::from_millis(800));

    // Ctrl-C quits like q: the engine stops cleanly and the terminal is given back.
    tmux.keys(&["C-c"]);
    let screen = tmux.wait_for("EXITED 0");
    assert!(!screen.contains("Customers"), "the alternate screen is gone:\n{screen}");
    let scrollback = tmux.run(&["capture-pane", "-p", "-S", "-", "-t", "t"]);
    assert!(
        !scrollback.contains("Customers")
            && !scrollback.chars().any(|c| ('\u{2500}'..='\u{257f}').contains(&c)),
        "quitting after a resize left the frame in the scrollback:\n{scrollback}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attached_console_shows_and_acts_on_customers_a_headless_instance_runs() {
    if !tmux_available() {
        return;
    }
    let sim = common::sim_with(&[("acme", 300)]).await;
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let state = dir.join("state.db");
    let bin = env!("CARGO_BIN_EXE_vomo-sync");
    let vomo_sync = |args: &[&str]| {
        let mut command = common::test_command(dir, bin);
        // A 1 s heartbeat, so "no live instance" shows within seconds.
        command.env("VOMO_SYNC_STATE", &state).env("VOMO_SYNC_SYNC_HEARTBEAT_EVERY", "1s").args(args);
        command
    };
    let token = dir.join("acme.token");
    std::fs::write(&token, sim.token("acme").unwrap()).unwrap();
    let dest = format!("jsonl:{}", dir.join("acme.jsonl").display());
    let add = vomo_sync(&["customer", "add", "acme", "--vomo-url", sim.base_url(), "--dest", &dest])
        .args(["--token-file", token.to_str().unwrap(), "--rate", "0"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    let mut headless = vomo_sync(&["headless", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let owner_pid = format!(":{}:", headless.id());
    until_row(&state, "SELECT 1 FROM customers WHERE name = 'acme' AND status = 'active'").await;

    let tmux = Tmux { socket: format!("vomo-attach-{}", std::process::id()) };
    let command = format!(
        "env HOME={home} VOMO_SYNC_STATE={state} VOMO_SYNC_MASTER_KEY={key} VOMO_SYNC_SYNC_HEARTBEAT_EVERY=1s {bin} console --attach; echo EXITED $?; sleep 60",
        home = dir.display(),
        state = state.display(),
        key = common::MASTER_KEY,
    );
    tmux.run(&["new-session", "-d", "-s", "t", "-x", "160", "-y", "48", &command]);
    tmux.wait_for("attached to");
    select(&tmux, "acme");
    let screen = tmux.wait_for("run by ");
    assert!(screen.contains(&owner_pid), "the detail names the headless process:\n{screen}");

    // Poll now: queued, carried out by the headless process, answered here.
    tmux.keys(&["P"]);
    tmux.wait_for("poll started (on ");
    let done: Vec<(String, String)> = sqlx::query_as("SELECT status, claimed_by FROM commands")
        .fetch_all(&mut db(&state).await)
        .await
        .unwrap();
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(done[0].0 == "done" && done[0].1.contains(&owner_pid), "{done:?}");

    // Pause goes to the owner too, which stops its worker.
    tmux.keys(&["p"]);
    tmux.wait_for("acme is now paused");
    until_row(&state, "SELECT 1 FROM customers WHERE name = 'acme' AND status = 'paused'").await;
    tmux.wait_for("not running");
    tmux.keys(&["p"]);
    tmux.wait_for("acme is now active");
    until_row(&state, "SELECT 1 FROM leases l JOIN customers c ON c.id = l.customer_id WHERE c.status = 'active' AND l.owner IS NOT NULL").await;

    assert!(headless.try_wait().unwrap().is_none(), "the attached console leaves the instance running");

    // The instance dies: within three heartbeats (plus a reload and a
    // frame) the console says nobody runs acme, and how long ago it was
    // seen, instead of showing its last figures as if they were live.
    tmux.wait_for("running");
    headless.kill().unwrap();
    headless.wait().unwrap();
    let killed = Instant::now();
    let screen = tmux.wait_for("no live instance (last seen");
    let took = killed.elapsed();
    eprintln!("no live instance shown {took:?} after the kill (heartbeat 1 s)");
    assert!(took <= Duration::from_secs(3 + 3), "{took:?} after the kill:\n{screen}");
    assert!(screen.contains("1 need attention"), "{screen}");

    tmux.keys(&["Escape", "q"]);
    tmux.wait_for("EXITED 0");
}
