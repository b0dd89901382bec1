//! The live tail (design.md §3.8) against the simulator with faults on, in a
//! running engine: an edit reaches the destination within seconds while the
//! checkpoint stays where the last verified window left it; a burst of more
//! than a page is handed over to an early verified poll, after which the
//! destination mirrors VOMO; the verified re-read of what the tail delivered
//! sends nothing twice; a tail set to 0 reads nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::sim_with;
use common::sync::{assert_mirrors, engine_config, operator, replay_jsonl, state_db};
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, RunKind};
use vomo_sync::engine::{Command, Engine, EngineHandle, EngineSnapshot, OnboardRequest};
use vomo_sync::sim::{Faults, SimHandle, UserFields};
use vomo_sync::store::Store;

async fn onboard(store: &Store, sim: &SimHandle, jsonl: &Path, tail_every_secs: u64) {
    let request = OnboardRequest {
        name: "acme".into(),
        token: ApiToken::new(&sim.token("acme").unwrap()).unwrap(),
        vomo_url: sim.base_url().to_owned(),
        destinations: vec![DestinationSpec::parse(&format!("jsonl:{}", jsonl.display())).unwrap()],
        // Polls far apart: whatever arrives within seconds came by the tail.
        settings: CustomerSettings {
            rate_per_s: 0.0,
            poll_every_secs: 3600,
            tail_every_secs,
            ..CustomerSettings::default()
        },
    };
    operator(store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap();
}

async fn until(handle: &EngineHandle, what: &str, check: impl Fn(&EngineSnapshot) -> bool) -> EngineSnapshot {
    let mut watch = handle.watch();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snapshot = watch.borrow_and_update().as_ref().clone();
        if check(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        let _ = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
    }
}

/// Waits until the destination shows `phone` for every user in `ids`.
async fn until_delivered(jsonl: &Path, ids: &[i64], phone: &str) -> Duration {
    let started = Instant::now();
    loop {
        let state = replay_jsonl(jsonl);
        let arrived = ids
            .iter()
            .all(|id| state.get(id).and_then(Option::as_ref).and_then(|u| u.phone.as_deref()) == Some(phone));
        if arrived {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{phone} never reached the destination");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events_of(jsonl: &Path, id: i64) -> usize {
    let text = std::fs::read_to_string(jsonl).unwrap_or_default();
    text.lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["vomo_user_id"].as_i64() == Some(id)
        })
        .count()
}

async fn watermark(store: &Store) -> chrono::DateTime<chrono::Utc> {
    let customer = store.require_customer("acme").await.unwrap();
    store.load_checkpoint(customer.id).await.unwrap().watermark
}

async fn polls(store: &Store) -> usize {
    let customer = store.require_customer("acme").await.unwrap();
    let runs = store.recent_runs(customer.id, 50).await.unwrap();
    runs.iter().filter(|r| r.kind == RunKind::Poll).count()
}

fn edit(sim: &SimHandle, ids: &[i64], phone: &str) {
    for id in ids {
        sim.update_user(*id, &UserFields { phone: Some(phone.into()), ..UserFields::default() }, true)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tail_delivers_within_seconds_and_hands_a_burst_to_a_verified_poll() {
    let sim = sim_with(&[("acme", 300)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let jsonl = dir.path().join("acme.jsonl");
    onboard(&store, &sim, &jsonl, 1).await;
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    until(&handle, "the backfill", |s| s.customer("acme").is_some_and(|c| c.users_synced == 300)).await;
    // Faults on from here: 5xx, dropped connections, slow answers.
    sim.set_faults(Faults { seed: 5, error_rate: 0.15, drop_rate: 0.05, latency_ms: 5, ..Faults::default() });
    let checkpoint = watermark(&store).await;
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();

    // One edit arrives by the tail, within seconds, with no poll.
    edit(&sim, &ids[..1], "+1-555-0100");
    let took = until_delivered(&jsonl, &ids[..1], "+1-555-0100").await;
    assert!(took < Duration::from_secs(8), "the edit took {took:?}");
    assert_eq!(watermark(&store).await, checkpoint, "the tail never moves the checkpoint");
    assert_eq!(polls(&store).await, 0, "no verified poll ran");
    let snapshot = until(&handle, "the tail's figures", |s| {
        s.customer("acme").and_then(|c| c.tail.as_ref()).is_some_and(|t| t.changes >= 1)
    })
    .await;
    let acme = snapshot.customer("acme").unwrap();
    assert!(acme.budget.by_class.tail >= 1, "tail requests are counted as such: {:?}", acme.budget.by_class);

    // A burst of 40: the tail delivers its first page and hands the rest to
    // an early verified poll, which moves the checkpoint past them.
    edit(&sim, &ids[10..50], "+1-555-0200");
    until_delivered(&jsonl, &ids[10..50], "+1-555-0200").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while polls(&store).await == 0 || watermark(&store).await <= checkpoint {
        assert!(Instant::now() < deadline, "no early verified poll after the burst");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let handed = until(&handle, "a handover", |s| {
        s.customer("acme").and_then(|c| c.tail.as_ref()).is_some_and(|t| t.handovers >= 1)
    })
    .await;
    assert!(handed.customer("acme").unwrap().tail.as_ref().unwrap().handovers >= 1);

    // The verified poll re-read the single edit and sent nothing again.
    assert_eq!(events_of(&jsonl, ids[0]), 2, "one create from the backfill, one update from the tail");
    sim.set_faults(Faults::default());
    handle.send(Command::PollNow { customer: "acme".into() }, "tester").await.unwrap();
    sim.advance_clock(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while polls(&store).await < 2 {
        assert!(Instant::now() < deadline, "the poll did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_mirrors(&replay_jsonl(&jsonl), &sim.users("acme").unwrap());
    assert_eq!(events_of(&jsonl, ids[0]), 2, "no duplicate event after the verified windows");
    handle.shutdown().await;
}

/// A process that starts on a customer another run backfilled has not yet
/// heard VOMO's clock: its tail reads at once all the same, long before the
/// first poll (due at a random point of the hour).
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_process_tails_before_its_first_poll() {
    let sim = sim_with(&[("acme", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let jsonl = dir.path().join("acme.jsonl");
    onboard(&store, &sim, &jsonl, 1).await;
    common::sync::run_once(&store).await;
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    sim.advance_clock(2);
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    edit(&sim, &ids[..1], "+1-555-0400");
    let took = until_delivered(&jsonl, &ids[..1], "+1-555-0400").await;
    assert!(took < Duration::from_secs(8), "the edit took {took:?}");
    assert_eq!(polls(&store).await, 0, "no verified poll ran");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tail_set_to_zero_reads_nothing() {
    let sim = sim_with(&[("acme", 30)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let jsonl = dir.path().join("acme.jsonl");
    onboard(&store, &sim, &jsonl, 0).await;
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    let backfilled =
        until(&handle, "the backfill", |s| s.customer("acme").is_some_and(|c| c.users_synced == 30)).await;
    assert!(backfilled.customer("acme").unwrap().tail.is_none(), "no tail shown when it is off");
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    let requests = sim.stats_for(&sim.token("acme").unwrap()).requests;
    edit(&sim, &ids[..1], "+1-555-0300");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim.stats_for(&sim.token("acme").unwrap()).requests, requests, "no request between polls");
    let state = replay_jsonl(&jsonl);
    assert_ne!(state[&ids[0]].as_ref().unwrap().phone.as_deref(), Some("+1-555-0300"));
    handle.shutdown().await;
}
