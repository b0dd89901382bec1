//! The binary as a user runs it: `config` output and redaction, bad config and
//! bad flags (clear message, non-zero exit), and `simulate` answering curl-style
//! requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The binary with a private HOME and no inherited `VOMO_SYNC_*` settings.
fn vomo_sync(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vomo-sync"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("VOMO_SYNC_") || k.starts_with("XDG_")) {
        command.env_remove(key);
    }
    command.env("HOME", home).env_remove("RUST_LOG");
    command
}

#[test]
fn config_prints_paths_and_redacts_secrets() {
    let home = tempfile::tempdir().unwrap();
    let out = vomo_sync(home.path())
        .args(["--state", "postgres://sync:hunter2@db.internal:5432/vomo", "config"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres://sync:***@db.internal:5432/vomo"), "{text}");
    let config_file = home.path().join(".config/vomo-sync/config.toml");
    assert!(text.contains(&format!("# config file: {}", config_file.display())), "{text}");
    assert!(text.contains(&home.path().join(".local/share/vomo-sync/logs").display().to_string()), "{text}");
    assert!(text.contains("base_url = \"https://api.vomo.org/v1\""), "{text}");
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("custom.toml");
    std::fs::write(&file, "[vomo]\nrequest_timeout = \"11s\"\n[state]\nurl = \"/file.db\"\n").unwrap();
    let out = vomo_sync(home.path())
        .env("VOMO_SYNC_CONFIG", &file)
        .env("VOMO_SYNC_STATE", "/env.db")
        .arg("config")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("request_timeout = \"11s\"") && text.contains("url = \"/env.db\""), "{text}");
    let out = vomo_sync(home.path())
        .env("VOMO_SYNC_CONFIG", &file)
        .env("VOMO_SYNC_STATE", "/env.db")
        .args(["--state", "/flag.db", "config"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("url = \"/flag.db\""));
}

#[test]
fn a_bad_config_file_names_file_line_and_key_and_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/vomo-sync");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "[log]\nlevel = \"info\"\nformat = \"yaml\"\n").unwrap();
    let out = vomo_sync(home.path()).arg("config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&dir.join("config.toml").display().to_string()), "{err}");
    assert!(err.contains("line 3") && err.contains("log.format"), "{err}");
}

#[test]
fn bad_flags_are_clear_and_non_zero() {
    let home = tempfile::tempdir().unwrap();
    let out = vomo_sync(home.path()).args(["simulate", "--orgs", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--orgs"));
    let out = vomo_sync(home.path()).args(["--state", "mysql://x/y", "config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported state URL"));
    let out =
        vomo_sync(home.path()).args(["simulate", "--port", "0", "--rate-limit", "lots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid rate limit"));
}

#[test]
fn simulate_serves_pages_to_curl_and_401_to_a_wrong_token() {
    let home = tempfile::tempdir().unwrap();
    let mut child = vomo_sync(home.path())
        .args(["simulate", "--orgs", "2", "--users", "40", "--seed", "7", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut base = String::new();
    let mut token = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("base URL") {
            base = url.trim().to_owned();
        }
        if line.trim_start().starts_with("org-1") {
            token = line.split_whitespace().last().unwrap().to_owned();
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(base.starts_with("http://127.0.0.1:") && token.len() == 40, "{base} {token}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let page: serde_json::Value = http
            .get(format!("{base}/users?page=2"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["data"].as_array().unwrap().len(), 15);
        assert_eq!(page["meta"]["current_page"], 2);
        assert_eq!(page["meta"]["total"], 40);
        let denied = http
            .get(format!("{base}/users?page=2"))
            .header("Authorization", "Bearer wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 401);
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn migrate_creates_the_state_db_then_reports_it_up_to_date() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("deep/dir/state.db");
    let run =
        || vomo_sync(home.path()).args(["--state", state.to_str().unwrap(), "migrate"]).output().unwrap();
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied migration(s) 1, 2, 3, 4"));
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date (schema version 4)"));
    assert!(state.is_file());
}

#[test]
fn migrate_refuses_a_file_that_is_not_a_state_db() {
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("notes.txt");
    std::fs::write(&state, "shopping list").unwrap();
    let out = vomo_sync(home.path()).args(["--state", state.to_str().unwrap(), "migrate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.txt") && err.contains("not a SQLite database"), "{err}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "shopping list");
}

#[test]
fn a_dumb_terminal_gets_a_refusal_that_names_what_works_there() {
    let home = tempfile::tempdir().unwrap();
    let out = vomo_sync(home.path())
        .env("TERM", "dumb")
        .env("VOMO_SYNC_MASTER_KEY", "ab".repeat(32))
        .args(["--state", home.path().join("state.db").to_str().unwrap(), "console"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TERM=dumb") && err.contains("vomo-sync status") && err.contains("vomo-sync headless"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no escape codes were written: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}
