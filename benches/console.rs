//! Console benchmarks: the time to draw one frame with 1,000 customers
//! (target < 5 ms), and the CPU an idle console uses in a real terminal
//! (tmux), read from /proc.
//!
//! `cargo bench --bench console` runs both; `-- render` or `-- idle` one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark may panic on failure

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vomo_sync::domain::{CustomerStatus, RunCounts, RunKind, RunOutcome, TokenState};
use vomo_sync::engine::{BudgetView, CustomerSnapshot, DlqView, EngineSnapshot, RunView, TokenView};
use vomo_sync::tui::keys::KeyMap;
use vomo_sync::tui::state::{App, Msg, update};
use vomo_sync::tui::theme::{Theme, ThemeKind};
use vomo_sync::tui::view;

fn customer(n: usize) -> CustomerSnapshot {
    let now = Utc::now();
    CustomerSnapshot {
        name: format!("customer-{n:04}"),
        status: if n.is_multiple_of(17) { CustomerStatus::TokenRejected } else { CustomerStatus::Active },
        status_reason: None,
        vomo_url: "https://api.vomo.org/v1".into(),
        watermark: now,
        lag_secs: i64::try_from(n * 7 % 3600).unwrap(),
        checkpoint_ahead_secs: None,
        in_flight: None,
        users_synced: 1000,
        throughput_per_min: (n % 400) as f64,
        budget: BudgetView { configured: 3.0, effective: 3.0, requests: 100, ..BudgetView::default() },
        token: Some(TokenView {
            fingerprint: "…abcd".into(),
            state: TokenState::Valid,
            validated_at: Some(now),
        }),
        dlq: DlqView { pending: i64::try_from(n % 5).unwrap(), permanent: 0, oldest: None },
        current: None,
        background: None,
        last_runs: vec![RunView {
            id: 1,
            kind: RunKind::Poll,
            outcome: RunOutcome::Ok,
            started_at: now,
            finished_at: Some(now),
            counts: RunCounts { created: 1, ..RunCounts::default() },
            requests_used: 1,
            message: None,
        }],
        next_poll_at: Some(now),
        failure: None,
        owned_here: true,
        owner: None,
        owner_seen_at: None,
        stalled: false,
        requests_total: 100,
        destinations: Vec::new(),
        reconcile_every_secs: 86_400,
        tail: None,
    }
}

fn render() {
    let mut app = App::new(KeyMap::default(), false, String::new(), Utc::now());
    let snapshot = EngineSnapshot {
        at: Some(Utc::now()),
        owner: "bench".into(),
        customers: (0..1000).map(customer).collect(),
        ..EngineSnapshot::default()
    };
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let mut times = Vec::new();
    for frame in 0..400 {
        // Every frame gets a new snapshot (re-sorted) and a moved selection,
        // as when the engine publishes and the operator scrolls.
        let start = Instant::now();
        update(&mut app, Msg::Snapshot(Arc::new(snapshot.clone())));
        update(
            &mut app,
            Msg::Key(crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(if frame % 50 < 25 {
                'j'
            } else {
                'k'
            }))),
        );
        terminal.draw(|f| view::draw(f, &app, Theme::new(ThemeKind::Dark))).unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "render: 1,000 customers at 160×48, snapshot + key + frame: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        ms(times[times.len() - 1])
    );
}

/// CPU seconds used so far by `pid` (utime + stime from /proc).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

fn idle() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("idle: skipped (no tmux)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let socket = format!("vomo-bench-{}", std::process::id());
    let command = format!(
        "exec env HOME={h} XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data VOMO_SYNC_MASTER_KEY={key} {bin} demo --users 50,100,200",
        h = home.path().display(),
        key = "ab".repeat(32),
        bin = env!("CARGO_BIN_EXE_vomo-sync"),
    );
    let tmux = |args: &[&str]| {
        let out = Command::new("tmux").arg("-L").arg(&socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    tmux(&["new-session", "-d", "-s", "b", "-x", "160", "-y", "48", &command]);
    let pid = tmux(&["display", "-p", "-t", "b", "#{pane_pid}"]);
    // Let the small backfills finish; then the demo only polls every 20 s
    // while the simulator edits a user every 1.5 s.
    std::thread::sleep(Duration::from_secs(15));
    let (cpu0, t0) = (cpu_secs(&pid), Instant::now());
    std::thread::sleep(Duration::from_secs(30));
    let used = cpu_secs(&pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "idle: the demo (console + engine + simulator, 3 customers polling) used {:.2} CPU-s in {wall:.0} s = {:.2} % of one core",
        used,
        used / wall * 100.0
    );
    tmux(&["kill-server"]);
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("render") {
        render();
    }
    if run("idle") {
        idle();
    }
}
