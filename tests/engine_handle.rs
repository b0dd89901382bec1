//! The engine as front ends drive it: `Engine::start` runs every customer,
//! the snapshot shows their progress and health, commands (poll now,
//! backfill, retry DLQ, pause, resume) are answered and audited, events
//! stream out, and shutdown returns the leases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use sqlx::Connection;

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
    let reply = said(&handle, Command::PollNow { customer: "acme".into() }).await;
    assert_eq!(reply, Ok("poll started".into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while replay_jsonl(&acme_out)[&id].as_ref().unwrap().phone.as_deref() != Some("+1-555-4242") {
        assert!(Instant::now() < deadline, "the poll did not deliver the edit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Pause stops the worker; resume brings it back; both are audited.
    let reply = said(&handle, Command::Pause { customer: "beta".into() }).await;
    assert_eq!(reply, Ok("beta is now paused".into()));
    until(&handle, "beta paused and stopped", |s| {
        s.customer("beta").is_some_and(|c| c.status == CustomerStatus::Paused && !c.owned_here)
    })
    .await;
    let refused = said(&handle, Command::PollNow { customer: "beta".into() }).await;
    assert!(
        refused.unwrap_err().contains("beta is paused; resume it first"),
        "a paused customer does not poll"
    );
    let reply = said(&handle, Command::Resume { customer: "beta".into() }).await;
    assert_eq!(reply, Ok("beta is now active".into()));
    until(&handle, "beta running again", |s| s.customer("beta").is_some_and(|c| c.owned_here)).await;
    let unknown = said(&handle, Command::Pause { customer: "nobody".into() }).await;
    assert!(unknown.unwrap_err().contains("no customer named"));

    // A full re-walk of an active customer keeps the checkpoint.
    let before =
        store.load_checkpoint(store.require_customer("acme").await.unwrap().id).await.unwrap().watermark;
    let reply = said(&handle, Command::Backfill { customer: "acme".into() }).await;
    assert!(reply.unwrap().contains("re-walking"));
    let reply = said(&handle, Command::RetryDlq { customer: "acme".into(), id: None }).await;
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

/// Waits until the latest run of `kind` of customer `name` has ended (or
/// waits for an operator).
async fn finished_run(store: &vomo_sync::store::Store, name: &str, kind: RunKind) -> vomo_sync::store::Run {
    let customer = store.require_customer(name).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = store.last_run_of_each_kind(customer.id).await.unwrap();
        if let Some(run) =
            runs.into_iter().find(|r| r.kind == kind && r.outcome != vomo_sync::domain::RunOutcome::Running)
        {
            return run;
        }
        if Instant::now() >= deadline {
            let recent = store.recent_runs(customer.id, 10).await.unwrap();
            panic!("no finished {kind} run: {recent:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_runs_audits_beside_polls_and_offboards_on_command() {
    let sim = sim_with(&[("acme", 300)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let out = dir.path().join("acme.jsonl");
    onboard(&store, &sim, "acme", "acme", &[format!("jsonl:{}", out.display())], 0.0).await;
    // Reconcile every 2 s (scheduled by the worker itself).
    let mut state =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("state.db").display()))
            .await
            .unwrap();
    sqlx::query("UPDATE customers SET settings = json_set(settings, '$.reconcile_every_secs', 2)")
        .execute(&mut state)
        .await
        .unwrap();
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    until(&handle, "backfill done", |s| {
        s.customer("acme").is_some_and(|c| c.status == CustomerStatus::Active)
    })
    .await;
    let reconcile = finished_run(&store, "acme", RunKind::Reconcile).await;
    assert_eq!(reconcile.outcome, vomo_sync::domain::RunOutcome::Ok, "{reconcile:?}");

    // A sweep on command finds a hard-deleted user; polls are not blocked.
    let gone = sim.users("acme").unwrap()[7].id;
    sim.delete_user(gone).unwrap();
    sim.set_faults(vomo_sync::sim::Faults { latency_ms: 30, ..Default::default() });
    let reply = said(&handle, Command::DeletionSweep { customer: "acme".into(), dry_run: false }).await;
    assert_eq!(reply, Ok("full scan started".into()));
    let busy = said(&handle, Command::Reconcile { customer: "acme".into() }).await;
    assert!(busy.as_ref().is_err_and(|e| e.contains("full scan is running")), "one at a time: {busy:?}");
    let poll = said(&handle, Command::PollNow { customer: "acme".into() }).await;
    assert_eq!(poll, Ok("poll started".into()), "polls go on beside it");
    let sweep = finished_run(&store, "acme", RunKind::Deletions).await;
    assert_eq!(sweep.counts.confirmed_gone, 1, "{sweep:?}");
    assert!(replay_jsonl(&out)[&gone].is_none(), "deleted downstream");
    sim.set_faults(vomo_sync::sim::Faults::default());

    // A mass disappearance waits; confirmed from the engine it deletes
    // only what VOMO confirms.
    sim.set_faults(vomo_sync::sim::Faults { seed: 5, hide_share: 0.3, ..Default::default() });
    said(&handle, Command::DeletionSweep { customer: "acme".into(), dry_run: false }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let run = finished_run(&store, "acme", RunKind::Deletions).await;
        if run.outcome == vomo_sync::domain::RunOutcome::NeedsConfirmation {
            break run;
        }
        assert!(Instant::now() < deadline, "the guard did not trip");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reply =
        said(&handle, Command::SettleDeletions { customer: "acme".into(), run: waiting.id, confirm: true })
            .await;
    assert_eq!(reply, Ok("deletion confirmation started".into()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.run(waiting.id).await.unwrap().unwrap().outcome != vomo_sync::domain::RunOutcome::Confirmed {
        assert!(Instant::now() < deadline, "not confirmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = store.run(waiting.id).await.unwrap().unwrap();
    assert_eq!(settled.counts.deleted, 0, "every listed user still exists: {settled:?}");

    // Offboarding stops the worker and deletes the token at once.
    sim.set_faults(vomo_sync::sim::Faults::default());
    let reply = said(&handle, Command::Offboard { customer: "acme".into(), purge: false }).await;
    assert!(reply.as_ref().is_ok_and(|r| r.contains("offboarded")), "{reply:?}");
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens").fetch_one(&mut state).await.unwrap();
    assert_eq!(tokens, 0);
    until(&handle, "the worker stopped", |s| {
        s.customer("acme").is_some_and(|c| c.status == CustomerStatus::Offboarded && !c.owned_here)
    })
    .await;
    handle.shutdown().await;
}

/// A command's answer as the operator reads it: its line, or why not.
async fn said(handle: &vomo_sync::engine::EngineHandle, command: Command) -> Result<String, String> {
    handle.send(command, "tester").await.map(|done| done.message).map_err(|e| e.to_string())
}
