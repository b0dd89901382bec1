//! The one door: the CLI (`vomo-sync customer pause`, the binary) and the
//! console (its pure step turning a key into an engine command, sent to the
//! engine it hosts) reach the same `Command` path, and leave the same audit
//! entry. A corrupt DLQ payload is kept with its reason, never turned into
//! an empty change that would then be "delivered".
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::sim_with;
use common::sync::{engine_config, onboard};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use vomo_sync::config::StateLocation;
use vomo_sync::engine::{Command, Engine, os_user};
use vomo_sync::store::{AuditEntry, KeySource, MasterKey, NewDlqEntry, Store};
use vomo_sync::tui::keys::KeyMap;
use vomo_sync::tui::state::{App, Effect, Msg, update};

async fn store_at(path: &Path) -> Store {
    let mut store = Store::open(&StateLocation::Sqlite(path.to_owned())).await.unwrap();
    store.unlock(MasterKey::from_hex(common::MASTER_KEY).unwrap(), &KeySource::Env).await.unwrap();
    store
}

/// The newest audit entry of `action`, without its time.
async fn last(store: &Store, action: &str) -> (String, Option<String>, String, String, String) {
    let entries: Vec<AuditEntry> = store.audit_log(Some("acme"), 100).await.unwrap();
    let entry = entries.into_iter().filter(|e| e.action == action).max_by_key(|e| e.at).expect("audited");
    (entry.actor, entry.customer, entry.action, entry.detail, entry.result)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_from_the_cli_and_from_the_console_leaves_the_same_audit_entry() {
    let sim = sim_with(&[("acme", 30)]).await;
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("state.db");
    let store = store_at(&db).await;
    let dest = format!("jsonl:{}", home.path().join("acme.jsonl").display());
    onboard(&store, &sim, "acme", "acme", &[dest], 0.0).await;

    // The CLI, as an operator runs it.
    let cli = |args: &[&str]| {
        let mut command = common::test_command(home.path(), env!("CARGO_BIN_EXE_vomo-sync"));
        command.env("VOMO_SYNC_STATE", &db).args(args);
        command.output().unwrap()
    };
    let paused = cli(&["customer", "pause", "acme"]);
    assert!(paused.status.success(), "{}", String::from_utf8_lossy(&paused.stderr));
    let from_cli = last(&store, "customer.pause").await;
    assert!(cli(&["customer", "resume", "acme"]).status.success());

    // The console: the key `p` on the selected customer gives an engine
    // command, which the console sends to the engine it hosts.
    let handle = Arc::new(Engine::start(store.clone(), engine_config()).await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handle.snapshot().customer("acme").is_none() {
        assert!(std::time::Instant::now() < deadline, "the engine never showed acme");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut app = App::new(KeyMap::default(), false, sim.base_url().to_owned(), Utc::now());
    update(&mut app, Msg::Snapshot(handle.snapshot()));
    let effects = update(&mut app, Msg::Key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE)));
    let [Effect::Engine(command)] = effects.as_slice() else { panic!("the key gave {effects:?}") };
    assert_eq!(*command, Command::Pause { customer: "acme".into() });
    handle.send(command.clone(), &os_user()).await.unwrap();
    let from_console = last(&store, "customer.pause").await;
    handle.shutdown().await;

    assert_eq!(from_cli, from_console, "one door, one audit entry");
    assert_eq!(from_cli.4, "acme is now paused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_dlq_payload_is_kept_with_its_reason() {
    let sim = sim_with(&[("acme", 10)]).await;
    let home = tempfile::tempdir().unwrap();
    let store = store_at(&home.path().join("state.db")).await;
    let dest = format!("jsonl:{}", home.path().join("acme.jsonl").display());
    onboard(&store, &sim, "acme", "acme", &[dest], 0.0).await;
    let customer = store.require_customer("acme").await.unwrap();
    let corrupt = |destination: &str, kind: &str| NewDlqEntry {
        vomo_user_id: 3,
        destination: destination.to_owned(),
        change_kind: kind.to_owned(),
        payload: "{not json".to_owned(),
        content_hash: vomo_sync::domain::ContentHash([7; 16]),
        vomo_updated_at: Utc::now(),
        class: vomo_sync::domain::FailureClass::Retryable,
        message: "timed out".to_owned(),
        next_retry_at: None,
    };
    // A change for the JSONL destination, and a write-back to VOMO.
    let change = store.park_in_dlq(customer.id, &corrupt("jsonl", "user.updated")).await.unwrap();
    let writeback = store.park_in_dlq(customer.id, &corrupt("vomo", "writeback")).await.unwrap();
    let retry = Command::RetryDlq { customer: "acme".into(), id: None };
    let done = common::sync::operator(&store).send(retry, "tester").await.unwrap();
    assert!(done.message.contains("0 delivered, 2 still failing"), "{}", done.message);
    for id in [change, writeback] {
        let entry = store.dlq_entry(id).await.unwrap().unwrap();
        assert_eq!(entry.status, vomo_sync::store::DlqStatus::Pending, "kept, not resolved");
        assert_eq!(entry.class, vomo_sync::domain::FailureClass::Permanent);
        assert!(
            entry.message.contains("cannot be read") && entry.message.contains("discard"),
            "{}",
            entry.message
        );
    }
    let lines = std::fs::read_to_string(home.path().join("acme.jsonl")).unwrap_or_default();
    assert!(lines.is_empty(), "nothing was delivered for the unreadable entry: {lines}");
}
