//! Helpers for engine tests: a state DB with a master key, an engine config
//! with test-sized timings, onboarding against the simulator, and reading a
//! JSONL destination back as the state it describes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vomo_sync::config::StateLocation;
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, RateSetting, User};
use vomo_sync::engine::once::OnceRun;
use vomo_sync::engine::{Command, Details, Done, OnboardRequest, Operator, RunReport};
use vomo_sync::engine::{EngineConfig, OnceOutcome, RetryPolicy, default_owner};
use vomo_sync::sim::SimHandle;
use vomo_sync::store::{KeySource, MasterKey, Store};
use vomo_sync::vomo::ClientSettings;

/// Fast retries, no settle margin (the simulator commits at once), small
/// chunks so walks have several.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        client: ClientSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_body: vomo_sync::vomo::DEFAULT_MAX_BODY,
        },
        settle: Duration::ZERO,
        max_concurrent_backfills: 4,
        backfill_hours: None,
        request_retry: RetryPolicy { retries: 8, base: Duration::from_millis(5) },
        dlq_retry: RetryPolicy { retries: u32::MAX, base: Duration::from_millis(50) },
        dlq_retry_max: Duration::from_secs(1),
        chunk_users: 1500,
        reload_every: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(30),
        role: vomo_sync::engine::Role::Worker,
        owner: default_owner(),
        reconcile_lookback: Duration::from_secs(26 * 3600),
        deletion_guard_share: 0.02,
        deletion_guard_max: 500,
        offboard_retention: Duration::from_secs(30 * 24 * 3600),
        max_clock_skew: Duration::from_secs(300),
        allow_insecure_http: false,
        // Test destinations (webhook receivers) listen on loopback.
        outbound: vomo_sync::outbound::OutboundPolicy::from_entries(&["127.0.0.1".into()]).unwrap(),
        thresholds: vomo_sync::engine::verdict::Thresholds::new(
            Duration::from_secs(3600),
            Duration::from_secs(3 * 86_400),
            Duration::from_millis(200),
        ),
    }
}

/// A SQLite state DB in `dir` with a fresh master key.
pub async fn state_db(dir: &Path) -> Store {
    let mut store = Store::open(&StateLocation::Sqlite(dir.join("state.db"))).await.unwrap();
    store.unlock(MasterKey::from_hex(&"ab".repeat(32)).unwrap(), &KeySource::Env).await.unwrap();
    store
}

/// Onboards `name` for simulator org `org` with the given destinations,
/// capped at `rate` requests/s (0 = no cap).
#[allow(dead_code)] // the sync benchmark onboards through `onboard_with`
pub async fn onboard(store: &Store, sim: &SimHandle, org: &str, name: &str, dests: &[String], rate: f64) {
    onboard_with(store, sim, org, name, dests, RateSetting::Cap(rate)).await;
}

/// [`onboard`] with any rate setting (`auto` included).
pub async fn onboard_with(
    store: &Store,
    sim: &SimHandle,
    org: &str,
    name: &str,
    dests: &[String],
    rate: RateSetting,
) {
    // The live tail reads every second, so every test of a running engine
    // runs with it on (a tail can only make data fresher, never wrong).
    let mut settings =
        CustomerSettings { poll_every_secs: 900, tail_every_secs: 1, ..CustomerSettings::default() };
    rate.apply(&mut settings);
    let request = OnboardRequest {
        name: name.to_owned(),
        token: ApiToken::new(&sim.token(org).unwrap()).unwrap(),
        vomo_url: sim.base_url().to_owned(),
        destinations: dests.iter().map(|d| DestinationSpec::parse(d).unwrap()).collect(),
        settings,
    };
    operator(store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap();
}

/// The one door for a test's commands, as the CLI uses it.
pub fn operator(store: &Store) -> Operator {
    Operator::new(store.clone(), engine_config()).unwrap()
}

/// The run a command carried out here.
#[allow(dead_code)] // the benchmarks that include this file run no commands
pub fn run_report(done: Done) -> RunReport {
    match done.details {
        Details::Run(report) => *report,
        other => panic!("no run came back: {} {other:?}", done.message),
    }
}

/// Runs `headless --once` in-process and returns the outcomes.
pub async fn run_once(store: &Store) -> Vec<OnceOutcome> {
    let mut run = OnceRun::start(store.clone(), engine_config(), CancellationToken::new()).await.unwrap();
    while run.next().await {}
    run.outcomes()
}

/// The state a JSONL destination describes: the last event per user wins;
/// `None` marks a deletion.
pub fn replay_jsonl(path: &Path) -> BTreeMap<i64, Option<User>> {
    let mut state = BTreeMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = event["vomo_user_id"].as_i64().unwrap();
        let user = match event["type"].as_str().unwrap() {
            "user.deleted" => None,
            _ => Some(serde_json::from_value::<User>(event["user"].clone()).unwrap()),
        };
        state.insert(id, user);
    }
    state
}

/// Checks a destination's state against VOMO's: every VOMO user present and
/// equal, every anonymised one deleted (or never sent), nothing stale.
/// Users hard-deleted in VOMO may remain (only the deletion sweep sees them).
pub fn assert_mirrors(destination: &BTreeMap<i64, Option<User>>, vomo: &[User]) {
    let mut problems = Vec::new();
    for user in vomo {
        match (destination.get(&user.id), user.is_anonymised()) {
            (Some(None) | None, true) => {}
            (Some(Some(_)), true) => {
                problems.push(format!("user {} is anonymised in VOMO but not deleted downstream", user.id))
            }
            (Some(Some(copy)), false) if copy == user => {}
            (Some(Some(copy)), false) => {
                problems.push(format!("user {} is stale: {copy:?} != {user:?}", user.id))
            }
            (Some(None), false) => {
                problems.push(format!("user {} is deleted downstream but exists in VOMO", user.id))
            }
            (None, false) => problems.push(format!("user {} is missing downstream", user.id)),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}
