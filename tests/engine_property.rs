//! Property: whatever happens while windows are walked — users created,
//! updated, deleted and anonymised between page reads, 5xx and 429 answers,
//! unstable result order, the engine stopped or killed at random points and
//! restarted — after recovery plus one poll the destination equals VOMO: no
//! user missing, none stale, anonymised ones deleted. Failing seeds are
//! printed and kept by proptest in `tests/engine_property.proptest-regressions`
//! and can be replayed with the ignored `replay` test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::Duration;

use common::sim_with;
use common::sync::{assert_mirrors, engine_config, onboard, replay_jsonl, state_db};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use tokio_util::sync::CancellationToken;
use vomo_sync::engine::EngineConfig;
use vomo_sync::engine::once::OnceRun;
use vomo_sync::sim::{Faults, OrderMode, SimHandle, UserFields};
use vomo_sync::store::Store;

/// One interrupted run: stopped gracefully or dropped (a crash) after a delay.
async fn interrupted_run(store: &Store, config: &EngineConfig, after: Duration, crash: bool) {
    let cancel = CancellationToken::new();
    let mut run = OnceRun::start(store.clone(), config.clone(), cancel.clone()).await.unwrap();
    tokio::time::sleep(after).await;
    if crash {
        drop(run); // aborts the tasks wherever they are
        return;
    }
    cancel.cancel();
    while run.next().await {}
}

/// Runs until a run succeeds with the faults off (recovery), then one poll.
async fn recover_and_poll(store: &Store, config: &EngineConfig) {
    for attempt in 0..5 {
        let mut run = OnceRun::start(store.clone(), config.clone(), CancellationToken::new()).await.unwrap();
        while run.next().await {}
        if run.outcomes().iter().all(|o| o.result.is_ok()) {
            break;
        }
        assert!(attempt < 4, "no recovery after 5 runs");
    }
    let mut poll = OnceRun::start(store.clone(), config.clone(), CancellationToken::new()).await.unwrap();
    while poll.next().await {}
    let outcomes = poll.outcomes();
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "final poll: {outcomes:?}");
}

fn edit_some(sim: &SimHandle, rng: &mut rand::rngs::StdRng) {
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    for _ in 0..rng.random_range(0..10) {
        let id = ids[rng.random_range(0..ids.len())];
        let fields = UserFields {
            phone: Some(format!("+1-555-{:04}", rng.random_range(0..10_000))),
            ..UserFields::default()
        };
        let _ = sim.update_user(id, &fields, true);
    }
}

async fn scenario(seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sim = sim_with(&[("acme", rng.random_range(150..900))]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let path = dir.path().join("acme.jsonl");
    onboard(&store, &sim, "acme", "acme", &[format!("jsonl:{}", path.display())], 0.0).await;
    let order = [OrderMode::Id, OrderMode::UpdatedAt, OrderMode::UnstableTies][rng.random_range(0..3)];
    sim.set_faults(Faults {
        seed,
        error_rate: 0.05,
        rate_429: 0.03,
        mutate_rate: 0.08,
        mutate_delete_share: 0.2,
        mutate_anonymise_share: 0.1,
        mutate_create_share: 0.1,
        order,
        ..Faults::default()
    });
    // Kills and graceful stops reuse one lease owner, like a restarted process.
    let config = EngineConfig { chunk_users: rng.random_range(30..300), ..engine_config() };
    for _ in 0..rng.random_range(1..4) {
        let after = Duration::from_millis(rng.random_range(0..250));
        interrupted_run(&store, &config, after, rng.random_bool(0.5)).await;
        edit_some(&sim, &mut rng);
    }
    sim.set_faults(Faults { order, ..Faults::default() });
    // Let VOMO's clock leave the second of the last edit behind, so the
    // final poll's (closed) window can include it.
    sim.advance_clock(2);
    recover_and_poll(&store, &config).await;
    assert_mirrors(&replay_jsonl(&path), &sim.users("acme").unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_destination_equals_vomo_after_faults_and_restarts(seed in any::<u64>()) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let result = tokio::spawn(scenario(seed)).await;
            if let Err(e) = result {
                eprintln!("failing seed: {seed}");
                std::panic::resume_unwind(e.into_panic());
            }
        });
    }
}

/// Seeds that once failed, replayed on every run: 6006980466011431511 lost
/// a user of a 57-user second read in unstable order, accepted unverified
/// after four stalled walks (each walk saw only ~68 % of the second).
#[test]
fn seeds_that_once_failed() {
    const SEEDS: &[u64] = &[6_006_980_466_011_431_511];
    for &seed in SEEDS {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { tokio::spawn(scenario(seed)).await.unwrap() });
    }
}

/// Replays one scenario, or `N` scenarios from a base seed:
/// `SEED=… [N=200] cargo test --test engine_property replay -- --ignored`.
#[test]
#[ignore = "run by hand to replay a seed"]
fn replay() {
    let seed: u64 = std::env::var("SEED").expect("SEED=<u64>").parse().unwrap();
    let n: u64 = std::env::var("N").map_or(1, |v| v.parse().unwrap());
    for i in 0..n {
        let seed = if n == 1 { seed } else { seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i) };
        eprintln!("seed {seed}");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async { tokio::spawn(scenario(seed)).await.unwrap() });
    }
}
