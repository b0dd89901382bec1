//! The engine as front ends drive it: `Engine::start` runs every customer,
//! the snapshot shows their progress and health, commands (poll now,
//! backfill, retry DLQ, pause, resume) are answered and audited, events
//! stream out, and shutdown returns the leases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::sim_with;
use common::sync::{assert_mirrors, engine_config, onboard, replay_jsonl, state_db};
use vomo_sync::domain::{CustomerStatus, RunKind};
use vomo_sync::engine::{Command, Engine, EngineSnapshot};
use vomo_sync::sim::UserFields;

/// Waits until `check` holds for the latest snapshot.
async fn until(
    handle: &vomo_sync::engine::EngineHandle,
    what: &str,
    check: impl Fn(&EngineSnapshot) -> bool,
) {
    let mut watch = handle.watch();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if check(&watch.borrow_and_update()) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        let _ = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn front_ends_observe_and_command_a_running_engine() {
    let sim = sim_with(&[("acme", 400), ("beta", 100)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let acme_out = dir.path().join("acme.jsonl");
    onboard(&store, &sim, "acme", "acme", &[format!("jsonl:{}", acme_out.display())], 0.0).await;
    onboard(
        &store,
        &sim,
        "beta",
        "beta",
        &[format!("jsonl:{}", dir.path().join("beta.jsonl").display())],
        0.0,
    )
    .await;
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    let mut events = handle.events();

    until(&handle, "both backfills done", |s| {
        s.customers.len() == 2
            && s.customers.iter().all(|c| c.status == CustomerStatus::Active && c.users_synced > 0)
    })
    .await;
    let snapshot = handle.snapshot();
    let acme = snapshot.customer("acme").unwrap();
    assert!(acme.owned_here && !acme.stalled);
    assert_eq!(acme.users_synced, 400);
    assert_eq!(acme.token.as_ref().unwrap().fingerprint.chars().count(), 5);
    assert!(acme.last_runs.iter().any(|r| r.kind == RunKind::Backfill));
    assert!(acme.next_poll_at.is_some());
    assert_mirrors(&replay_jsonl(&acme_out), &sim.users("acme").unwrap());

    // Poll now carries an edit.
    let id = sim.users("acme").unwrap()[0].id;
    sim.update_user(id, &UserFields { phone: Some("+1-555-4242".into()), ..UserFields::default() }, true)
        .unwrap();
    sim.advance_clock(2); // edits become visible once their second has closed
    let reply = handle.send(Command::PollNow { customer: "acme".into() }, "tester").await;
    assert_eq!(reply, Ok("poll started".into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while replay_jsonl(&acme_out)[&id].as_ref().unwrap().phone.as_deref() != Some("+1-555-4242") {
        assert!(Instant::now() < deadline, "the poll did not deliver the edit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Pause stops the worker; resume brings it back; both are audited.
    let reply = handle.send(Command::Pause { customer: "beta".into() }, "tester").await;
    assert_eq!(reply, Ok("beta is now paused".into()));
    until(&handle, "beta paused and stopped", |s| {
        s.customer("beta").is_some_and(|c| c.status == CustomerStatus::Paused && !c.owned_here)
    })
    .await;
    let refused = handle.send(Command::PollNow { customer: "beta".into() }, "tester").await;
    assert!(refused.unwrap_err().contains("not running"), "a paused customer does not poll");
    let reply = handle.send(Command::Resume { customer: "beta".into() }, "tester").await;
    assert_eq!(reply, Ok("beta is now active".into()));
    until(&handle, "beta running again", |s| s.customer("beta").is_some_and(|c| c.owned_here)).await;
    let unknown = handle.send(Command::Pause { customer: "nobody".into() }, "tester").await;
    assert!(unknown.unwrap_err().contains("no customer named"));

    // A full re-walk of an active customer keeps the checkpoint.
    let before =
        store.load_checkpoint(store.require_customer("acme").await.unwrap().id).await.unwrap().watermark;
    let reply = handle.send(Command::Backfill { customer: "acme".into() }, "tester").await;
    assert!(reply.unwrap().contains("re-walking"));
    let reply = handle.send(Command::RetryDlq { customer: "acme".into(), id: None }, "tester").await;
    assert!(reply.unwrap().contains("0 delivered"), "nothing pending");
    let after =
        store.load_checkpoint(store.require_customer("acme").await.unwrap().id).await.unwrap().watermark;
    assert!(after >= before);

    let audit = store.audit_log(None, 50).await.unwrap();
    for action in ["customer.pause", "customer.resume", "sync.poll", "sync.backfill", "dlq.retry"] {
        let entry = audit.iter().find(|a| a.action == action).unwrap_or_else(|| panic!("{action} audited"));
        assert_eq!(entry.actor, "tester");
    }
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event.message);
    }
    assert!(seen.iter().any(|m| m.contains("backfill done")), "{seen:?}");
    assert!(seen.iter().any(|m| m.contains("beta is now paused")), "{seen:?}");

    handle.shutdown().await;
    let leases = store.leases().await.unwrap();
    assert!(leases.iter().all(|l| l.owner.is_none()), "leases given back: {leases:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_the_configured_number_of_backfills_run_at_once() {
    let sim = sim_with(&[("a", 200), ("b", 200), ("c", 200)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    for name in ["a", "b", "c"] {
        onboard(&store, &sim, name, name, &[format!("jsonl:{}", dir.path().join(name).display())], 50.0)
            .await;
    }
    let config = vomo_sync::engine::EngineConfig { max_concurrent_backfills: 1, ..engine_config() };
    let handle = Engine::start(store.clone(), config).await.unwrap();
    until(&handle, "all backfilled", |s| s.customers.iter().all(|c| c.status == CustomerStatus::Active))
        .await;
    handle.shutdown().await;
    let mut spans = Vec::new();
    for customer in store.customers().await.unwrap() {
        let runs = store.recent_runs(customer.id, 10).await.unwrap();
        let backfill = runs.iter().find(|r| r.kind == RunKind::Backfill).unwrap();
        spans.push((backfill.started_at, backfill.finished_at.unwrap()));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "backfills overlapped: {spans:?}");
    }
}
