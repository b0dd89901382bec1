//! The sync engine against the simulator: backfill and polls mirror VOMO,
//! token rejection stops one customer within one request, rate budgets hold,
//! and the engine survives concurrent edits, faults and being dropped at
//! random points (a property test over seeds).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::sim_with;
use common::sync::{assert_mirrors, engine_config, onboard, replay_jsonl, run_once, state_db};
use vomo_sync::domain::{CustomerStatus, RunKind};
use vomo_sync::engine::once::OnceRun;
use vomo_sync::sim::{Faults, RateLimit, UserFields};
use vomo_sync::store::Store;

fn jsonl(dir: &std::path::Path, name: &str) -> (String, std::path::PathBuf) {
    let path = dir.join(format!("{name}.jsonl"));
    (format!("jsonl:{}", path.display()), path)
}

async fn status_of(store: &Store, name: &str) -> CustomerStatus {
    store.require_customer(name).await.unwrap().status
}

#[tokio::test]
async fn backfill_mirrors_vomo_and_polls_carry_edits() {
    let sim = sim_with(&[("acme", 700)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let (spec, path) = jsonl(dir.path(), "acme");
    onboard(&store, &sim, "acme", "acme", &[spec], 0.0).await;

    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.kind, Some(RunKind::Backfill));
    assert_eq!(report.counts.created, 700);
    assert_mirrors(&replay_jsonl(&path), &sim.users("acme").unwrap());
    assert_eq!(status_of(&store, "acme").await, CustomerStatus::Active);
    // ⌈700/15⌉ = 47 pages, plus the open-ended first read.
    assert!(report.requests <= 49, "{} requests", report.requests);

    // Edits, an anonymisation and a new user reach the destination.
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    sim.update_user(ids[3], &UserFields { phone: Some("+1-555-0000".into()), ..UserFields::default() }, true)
        .unwrap();
    sim.anonymise_user(ids[4]).unwrap();
    let new_id = sim.create_user("acme", &UserFields::default()).unwrap();
    sim.advance_clock(2); // edits become visible once their second has closed
    let lines_before = std::fs::read_to_string(&path).unwrap().lines().count();
    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.kind, Some(RunKind::Poll));
    assert_eq!((report.counts.created, report.counts.updated, report.counts.deleted), (1, 1, 1));
    let state = replay_jsonl(&path);
    assert_mirrors(&state, &sim.users("acme").unwrap());
    assert_eq!(state[&ids[4]], None, "the anonymised user is deleted downstream");
    assert!(state[&new_id].is_some());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        lines_before + 3,
        "only the three changes"
    );

    // A quiet poll costs one request and writes nothing.
    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.requests, 1);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), lines_before + 3);
}

#[tokio::test]
async fn a_crowded_second_in_unstable_order_is_read_whole() {
    // 1,000 users: a bulk import puts 60 of them (4 pages) in one second,
    // and VOMO shuffles same-second ties on every request.
    let sim = sim_with(&[("acme", 1000)]).await;
    sim.set_faults(Faults { order: vomo_sync::sim::OrderMode::UnstableTies, ..Faults::default() });
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let (spec, path) = jsonl(dir.path(), "acme");
    onboard(&store, &sim, "acme", "acme", &[spec], 0.0).await;

    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.counts.created, 1000);
    assert_eq!(report.counts.unverified_accepted, 0, "the union of re-walks covers the second");
    assert!(report.counts.failed_walks > 0, "one walk of a shuffled crowded second is not enough");
    assert_mirrors(&replay_jsonl(&path), &sim.users("acme").unwrap());
}

#[tokio::test]
async fn a_rejected_token_stops_that_customer_within_one_request_and_others_finish() {
    let sim = sim_with(&[("acme", 3000), ("other", 900)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let (acme_spec, _) = jsonl(dir.path(), "acme");
    let (other_spec, other_path) = jsonl(dir.path(), "other");
    onboard(&store, &sim, "acme", "acme", &[acme_spec], 40.0).await;
    onboard(&store, &sim, "other", "other", &[other_spec], 40.0).await;
    let token = sim.token("acme").unwrap();

    let mut run = OnceRun::start(store.clone(), engine_config(), tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    // Revoke acme's token mid-backfill.
    let deadline = Instant::now() + Duration::from_secs(20);
    while run.progress().iter().find(|p| p.customer == "acme").unwrap().pages < 10 {
        assert!(Instant::now() < deadline, "backfill did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.revoke_token(&token));
    while run.next().await {}
    let outcomes = run.outcomes();

    let acme = outcomes.iter().find(|o| o.customer == "acme").unwrap();
    assert!(acme.result.as_ref().unwrap_err().contains("401"), "{:?}", acme.result);
    let stats = sim.stats_for(&token);
    assert_eq!(stats.status.get(&401).copied(), None, "401s are counted under the unauthenticated bucket");
    let rejected = sim.stats_for("(unauthenticated)");
    assert_eq!(rejected.requests, 1, "exactly one request after the revocation: no retry loop");
    assert_eq!(status_of(&store, "acme").await, CustomerStatus::TokenRejected);
    let acme_row = store.require_customer("acme").await.unwrap();
    let info = store.token_info(acme_row.id).await.unwrap().unwrap();
    assert_eq!(info.state, vomo_sync::domain::TokenState::Rejected);
    let audit = store.audit_log(Some("acme"), 5).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "token.rejected"));

    let other = outcomes.iter().find(|o| o.customer == "other").unwrap();
    assert!(other.result.is_ok(), "{:?}", other.result);
    assert_mirrors(&replay_jsonl(&other_path), &sim.users("other").unwrap());

    // A stopped customer is not run again until its token is replaced.
    let outcomes = run_once(&store).await;
    assert!(outcomes.iter().all(|o| o.customer != "acme"));
    assert_eq!(sim.stats_for("(unauthenticated)").requests, 1);
}

#[tokio::test]
async fn the_budget_holds_the_configured_rate_for_every_customer() {
    let sim = sim_with(&[("a", 300), ("b", 300)]).await;
    // VOMO allows 10/s per token; each customer is configured for 8/s.
    sim.set_rate_limit(Some(RateLimit::parse("10/s").unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    for name in ["a", "b"] {
        let (spec, _) = jsonl(dir.path(), name);
        onboard(&store, &sim, name, name, &[spec], 8.0).await;
    }
    sim.reset_stats();
    let started = Instant::now();
    let outcomes = run_once(&store).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    for name in ["a", "b"] {
        let stats = sim.stats_for(&sim.token(name).unwrap());
        assert_eq!(stats.status.get(&429), None, "{name} never exceeded VOMO's limit: {stats:?}");
        let rate = stats.requests as f64 / elapsed;
        assert!(rate <= 8.5, "{name}: {rate:.2} req/s over a budget of 8/s");
        assert!(stats.requests >= 21, "{name}: {} requests", stats.requests);
    }
}

#[tokio::test]
async fn a_budget_above_vomos_limit_backs_off_on_429_and_finishes() {
    // A VOMO that refuses without declaring a limit: the only guide is
    // its 429s (a declared limit is followed before any; tests/rate_learning.rs).
    let sim = sim_with(&[("a", 450)]).await;
    sim.set_faults(Faults { rate_429: 0.2, seed: 3, ..Faults::default() });
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let (spec, path) = jsonl(dir.path(), "a");
    onboard(&store, &sim, "a", "a", &[spec], 20.0).await;
    let outcomes = run_once(&store).await;
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    let stats = sim.stats_for(&sim.token("a").unwrap());
    assert!(stats.status.get(&429).copied().unwrap_or(0) >= 1, "VOMO pushed back: {stats:?}");
    assert_mirrors(&replay_jsonl(&path), &sim.users("a").unwrap());
}

#[tokio::test]
async fn a_malformed_page_never_advances_the_checkpoint() {
    let sim = sim_with(&[("acme", 100)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let (spec, path) = jsonl(dir.path(), "acme");
    onboard(&store, &sim, "acme", "acme", &[spec], 0.0).await;
    let customer = store.require_customer("acme").await.unwrap();
    for faults in
        [Faults { html_rate: 1.0, ..Faults::default() }, Faults { truncate_rate: 1.0, ..Faults::default() }]
    {
        sim.set_faults(faults);
        let outcomes = run_once(&store).await;
        let error = outcomes[0].result.as_ref().unwrap_err();
        assert!(error.contains("cannot decode"), "{error}");
        let checkpoint = store.load_checkpoint(customer.id).await.unwrap();
        assert_eq!(checkpoint.watermark, vomo_sync::domain::epoch(), "the checkpoint did not move");
        assert_eq!(status_of(&store, "acme").await, CustomerStatus::Backfilling);
    }
    let runs = store.recent_runs(customer.id, 5).await.unwrap();
    assert!(runs.iter().all(|r| r.outcome == vomo_sync::domain::RunOutcome::Failed), "{runs:?}");
    sim.set_faults(Faults::default());
    run_once(&store).await;
    assert_mirrors(&replay_jsonl(&path), &sim.users("acme").unwrap());
}
