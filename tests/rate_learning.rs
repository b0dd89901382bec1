//! `--rate auto` against a simulator that declares its limit in
//! `X-RateLimit-*`: the backfill learns the limit from the headers and runs
//! at ≥ 95 % of it with at most one 429 (issue 14 §2); a cap below the
//! declared limit holds; a cap above it follows the declared limit.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::Instant;

use common::sim_with;
use common::sync::{assert_mirrors, operator, replay_jsonl, run_once, state_db};
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, RateSetting};
use vomo_sync::engine::{Command, OnboardRequest};
use vomo_sync::sim::RateLimit;

struct Measured {
    rate: f64,
    requests: u64,
    too_many: u64,
}

/// Backfills `users` users from a VOMO declaring `limit` per second with
/// the customer's rate set to `setting`; checks the copy is whole.
async fn backfill(limit: u32, users: usize, setting: RateSetting) -> Measured {
    let sim = sim_with(&[("acme", users)]).await;
    sim.set_rate_limit(Some(RateLimit { requests: limit, per_seconds: 1 }));
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let path = dir.path().join("acme.jsonl");
    let mut settings = CustomerSettings { tail_every_secs: 0, ..CustomerSettings::default() };
    setting.apply(&mut settings);
    let request = OnboardRequest {
        name: "acme".into(),
        token: ApiToken::new(&sim.token("acme").unwrap()).unwrap(),
        vomo_url: sim.base_url().to_owned(),
        destinations: vec![DestinationSpec::parse(&format!("jsonl:{}", path.display())).unwrap()],
        settings,
    };
    operator(&store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap();
    // Onboarding's token check spent one of the allowance; let it refill.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    sim.reset_stats();
    let started = Instant::now();
    let outcomes = run_once(&store).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
    assert_mirrors(&replay_jsonl(&path), &sim.users("acme").unwrap());
    let stats = sim.stats_for(&sim.token("acme").unwrap());
    let too_many = stats.status.get(&429).copied().unwrap_or(0);
    let granted = stats.requests - too_many;
    Measured { rate: granted as f64 / elapsed, requests: stats.requests, too_many }
}

/// About 30 s of backfill at `limit` per second.
async fn learns(limit: u32) {
    let users = 15 * 30 * limit as usize;
    let m = backfill(limit, users, RateSetting::Auto).await;
    let share = m.rate / f64::from(limit);
    eprintln!(
        "declared {limit}/s: {:.2} req/s ({:.1} %), {} requests, {} × 429",
        m.rate,
        share * 100.0,
        m.requests,
        m.too_many
    );
    assert!(share >= 0.95, "declared {limit}/s, ran at {:.2} req/s ({:.1} %)", m.rate, share * 100.0);
    assert!(share <= 1.01, "declared {limit}/s, ran at {:.2} req/s", m.rate);
    assert!(m.too_many <= 1, "{} × 429", m.too_many);
}

#[tokio::test]
async fn auto_learns_a_declared_limit_of_1_per_second() {
    learns(1).await;
}

#[tokio::test]
async fn auto_learns_a_declared_limit_of_3_per_second() {
    learns(3).await;
}

#[tokio::test]
async fn auto_learns_a_declared_limit_of_10_per_second() {
    learns(10).await;
}

#[tokio::test]
async fn a_cap_holds_below_the_declared_limit_and_yields_above_it() {
    let below = backfill(10, 450, RateSetting::Cap(4.0)).await;
    assert!(below.rate <= 4.2 && below.rate >= 3.5, "capped at 4/s: {:.2} req/s", below.rate);
    assert_eq!(below.too_many, 0);
    let above = backfill(5, 900, RateSetting::Cap(20.0)).await;
    assert!(above.rate <= 5.05, "VOMO declares 5/s: {:.2} req/s", above.rate);
    assert!(above.rate >= 0.9 * 5.0, "{:.2} req/s", above.rate);
    assert!(above.too_many <= 1, "{} × 429", above.too_many);
}
