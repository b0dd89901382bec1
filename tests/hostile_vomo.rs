//! The engine against a hostile VOMO (tests/common/hostile.rs), one defect
//! per path: a `Date` from the future, the past, missing or garbage; a body
//! that never ends; page counts and totals that lie; a user whose fields —
//! or whose id — cannot be read; a huge error body. Each run must fail
//! loudly (or isolate the bad record), never move the checkpoint on a lie,
//! stay bounded in memory and requests, and keep personal data out of logs,
//! run records and DLQ messages. Also: a checkpoint already in the future
//! is repaired.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::hostile::{Defect, Hostile, PRIVATE_EMAIL, PRIVATE_NAME, TOKEN};
use common::sync::{engine_config, replay_jsonl, state_db};
use tokio_util::sync::CancellationToken;
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{ApiToken, CustomerSettings, epoch};
use vomo_sync::engine::once::OnceRun;
use vomo_sync::engine::ops::Ops;
use vomo_sync::engine::{Command, OnboardRequest};
use vomo_sync::engine::{EngineConfig, OnceOutcome};
use vomo_sync::store::Store;

/// Log lines written while a test runs (this thread's subscriber).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    jsonl: std::path::PathBuf,
}

/// A customer on `defect`'s path, onboarded while the path behaves.
async fn onboarded(hostile: &Hostile, defect: Defect) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let jsonl = dir.path().join("out.jsonl");
    let request = OnboardRequest {
        name: "acme".into(),
        token: ApiToken::new(TOKEN).unwrap(),
        vomo_url: hostile.base_url(defect),
        destinations: vec![DestinationSpec::parse(&format!("jsonl:{}", jsonl.display())).unwrap()],
        settings: CustomerSettings { rate_per_s: 0.0, ..CustomerSettings::default() },
    };
    common::sync::operator(&store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap();
    Fixture { _dir: dir, store, jsonl }
}

async fn once_with(store: &Store, config: EngineConfig) -> OnceOutcome {
    let mut run = OnceRun::start(store.clone(), config, CancellationToken::new()).await.unwrap();
    while run.next().await {}
    run.outcomes().pop().unwrap()
}

async fn once(store: &Store) -> OnceOutcome {
    once_with(store, engine_config()).await
}

async fn watermark(store: &Store) -> chrono::DateTime<Utc> {
    let customer = store.require_customer("acme").await.unwrap();
    store.load_checkpoint(customer.id).await.unwrap().watermark
}

fn failure(outcome: &OnceOutcome) -> String {
    outcome.result.as_ref().expect_err("the run must fail").clone()
}

/// The message of the last run recorded.
async fn last_run_message(store: &Store) -> String {
    let customer = store.require_customer("acme").await.unwrap();
    let runs = store.last_run_of_each_kind(customer.id).await.unwrap();
    runs.iter().max_by_key(|r| r.started_at).and_then(|r| r.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_date_from_the_future_fails_the_run_and_moves_nothing() {
    let hostile = Hostile::start(40).await;
    let fx = onboarded(&hostile, Defect::FutureDate).await;
    hostile.arm(Defect::FutureDate);
    let outcome = once(&fx.store).await;
    let error = failure(&outcome);
    assert!(error.contains("VOMO's Date says 2100-01-01T00:00:00Z, 73 years ahead"), "{error}");
    assert!(error.contains("checkpoint kept at 1970-01-01T00:00:00Z"), "{error}");
    assert_eq!(watermark(&fx.store).await, epoch(), "the checkpoint did not move");
    assert!(replay_jsonl(&fx.jsonl).is_empty(), "nothing read under a refused clock is delivered");
    assert!(last_run_message(&fx.store).await.contains("73 years ahead"));
    // The clock heals: the same customer backfills, and a user created
    // afterwards arrives with the next poll.
    hostile.disarm(Defect::FutureDate);
    assert!(once(&fx.store).await.result.is_ok());
    assert_eq!(replay_jsonl(&fx.jsonl).len(), 40);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hostile.add_user(41);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(once(&fx.store).await.result.is_ok());
    assert!(replay_jsonl(&fx.jsonl).contains_key(&41), "a user created after the bad Date arrives");
}

#[tokio::test]
async fn a_date_from_the_past_missing_or_garbage_fails_the_run() {
    let hostile = Hostile::start(20).await;
    for (defect, expected) in [
        (Defect::PastDate, "36 years behind"),
        (Defect::NoDate, "no usable Date header"),
        (Defect::GarbageDate, "no usable Date header"),
    ] {
        let fx = onboarded(&hostile, defect).await;
        hostile.arm(defect);
        let error = failure(&once(&fx.store).await);
        assert!(error.contains(expected), "{defect:?}: {error}");
        assert_eq!(watermark(&fx.store).await, epoch(), "{defect:?}: the checkpoint did not move");
        assert!(replay_jsonl(&fx.jsonl).is_empty(), "{defect:?}");
    }
}

#[tokio::test]
async fn a_checkpoint_in_the_future_is_reported_and_repaired_with_an_audit_entry() {
    let hostile = Hostile::start(30).await;
    let fx = onboarded(&hostile, Defect::FutureDate).await;
    assert!(once(&fx.store).await.result.is_ok(), "backfill");
    let customer = fx.store.require_customer("acme").await.unwrap();
    let newest = fx.store.newest_mapped_update(customer.id).await.unwrap().unwrap();
    // What an older version left behind after believing a Date of 2100.
    let future = chrono::DateTime::parse_from_rfc3339("2099-12-31T23:57:59Z").unwrap().with_timezone(&Utc);
    fx.store.commit_window(customer.id, &[], Some(future), None).await.unwrap();
    let ops = Ops::new(fx.store.clone(), engine_config()).unwrap();
    let status = ops.status(Some("acme")).await.unwrap();
    assert!(status[0].checkpoint_ahead_secs.is_some_and(|s| s > 70 * 365 * 86_400), "status detects it");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    hostile.add_user(31);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcome = once(&fx.store).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert!(watermark(&fx.store).await < Utc::now(), "repaired");
    assert!(replay_jsonl(&fx.jsonl).contains_key(&31), "the user created meanwhile arrives");
    let audit = fx.store.audit_log(Some("acme"), 50).await.unwrap();
    let repaired = audit.iter().find(|a| a.action == "checkpoint.repaired").expect("audited");
    assert!(repaired.detail.contains(&vomo_sync::domain::format_rfc3339(&newest)), "{}", repaired.detail);
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    let hostile = Hostile::start(20).await;
    let fx = onboarded(&hostile, Defect::EndlessBody).await;
    hostile.arm(Defect::EndlessBody);
    let mut config = engine_config();
    config.client.max_body = 1 << 20;
    config.request_retry.retries = 1;
    let started = std::time::Instant::now();
    let error = failure(&once_with(&fx.store, config).await);
    assert!(error.contains("larger than 1 MiB (vomo.max_body)"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20), "refused without reading 300 MB");
    assert_eq!(watermark(&fx.store).await, epoch());
    assert!(last_run_message(&fx.store).await.len() < 600, "the run record holds no body");
}

#[tokio::test]
async fn page_counts_and_totals_that_lie_end_the_walk_with_few_requests() {
    let hostile = Hostile::start(40).await;
    for (defect, expected) in [
        (Defect::ImplausibleTotal, "more than any organisation holds"),
        (Defect::EmptyPagesBeforeTheEnd, "is empty but meta.last_page claims 1000 pages"),
        (Defect::LastPageLies, "meta.last_page is 1000 but meta.total"),
    ] {
        let fx = onboarded(&hostile, defect).await;
        hostile.arm(defect);
        let before = hostile.requests();
        let error = failure(&once(&fx.store).await);
        assert!(error.contains(expected), "{defect:?}: {error}");
        assert!(hostile.requests() - before <= 40, "{defect:?}: {} requests", hostile.requests() - before);
        assert_eq!(watermark(&fx.store).await, epoch(), "{defect:?}");
    }
}

#[tokio::test]
async fn a_vomo_that_ignores_the_date_filter_fails_the_poll_and_moves_nothing() {
    let hostile = Hostile::start(40).await;
    let fx = onboarded(&hostile, Defect::IgnoresFilter).await;
    assert!(once(&fx.store).await.result.is_ok(), "backfill");
    let after_backfill = watermark(&fx.store).await;
    hostile.arm(Defect::IgnoresFilter);
    let before = hostile.requests();
    let error = failure(&once(&fx.store).await);
    assert!(error.contains("VOMO is not applying its updated_after/updated_before filter"), "{error}");
    assert!(error.contains("outside the requested updated_after="), "{error}");
    // One page, retried as any page that fails its checks (request_retry.retries = 8).
    assert!(hostile.requests() - before <= 9, "{} requests", hostile.requests() - before);
    assert_eq!(watermark(&fx.store).await, after_backfill);
}

#[tokio::test]
async fn one_unreadable_user_goes_to_the_dlq_and_the_others_arrive_without_leaking_it() {
    let (logs, _guard) = Captured::install();
    let hostile = Hostile::start(40).await;
    let fx = onboarded(&hostile, Defect::OneUnreadableUser).await;
    hostile.arm(Defect::OneUnreadableUser);
    let outcome = once(&fx.store).await;
    let report = outcome.result.as_ref().unwrap().as_ref().unwrap();
    // Every page's first user is unreadable: 3 pages of 40 users.
    let delivered = replay_jsonl(&fx.jsonl);
    assert_eq!(delivered.len(), 37, "the readable users arrive");
    assert!(watermark(&fx.store).await > epoch(), "the checkpoint moved past the parked users");
    let customer = fx.store.require_customer("acme").await.unwrap();
    let dlq = fx.store.pending_dlq(Some(customer.id)).await.unwrap();
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    for entry in &dlq {
        assert_eq!(entry.class, vomo_sync::domain::FailureClass::Permanent);
        assert!(entry.message.contains("field `first_name`"), "{}", entry.message);
        assert!(entry.message.contains(&format!("user {}", entry.vomo_user_id)), "{}", entry.message);
        assert!(!entry.message.contains(PRIVATE_EMAIL) && !entry.message.contains(PRIVATE_NAME));
        assert!(entry.payload.contains("raw"), "the raw record is kept for the operator");
    }
    assert_eq!(report.counts.dlq_parked, 3);
    let logged = logs.text();
    assert!(logged.contains("parked in the DLQ"), "{logged}");
    assert!(!logged.contains(PRIVATE_EMAIL) && !logged.contains(PRIVATE_NAME), "personal data in the log");
    // VOMO fixes the records: an operator's retry reads them again and
    // delivers them.
    hostile.disarm(Defect::OneUnreadableUser);
    let retry = Command::RetryDlq { customer: "acme".into(), id: None };
    common::sync::operator(&fx.store).send(retry, "tester").await.unwrap();
    assert_eq!(replay_jsonl(&fx.jsonl).len(), 40, "retried entries delivered");
    assert!(fx.store.pending_dlq(Some(customer.id)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_without_a_readable_id_fails_the_page_naming_the_field_not_the_data() {
    let (logs, _guard) = Captured::install();
    let hostile = Hostile::start(20).await;
    let fx = onboarded(&hostile, Defect::UnreadableId).await;
    hostile.arm(Defect::UnreadableId);
    let error = failure(&once(&fx.store).await);
    assert!(error.contains("user #1 of the page has no readable id"), "{error}");
    assert!(error.contains("field `id`") || error.contains("field `first_name`"), "{error}");
    assert!(!error.contains(PRIVATE_EMAIL) && !error.contains(PRIVATE_NAME), "{error}");
    assert_eq!(watermark(&fx.store).await, epoch());
    let recorded = last_run_message(&fx.store).await;
    assert!(!recorded.contains(PRIVATE_EMAIL) && !recorded.contains(PRIVATE_NAME), "{recorded}");
    let logged = logs.text();
    assert!(!logged.contains(PRIVATE_EMAIL) && !logged.contains(PRIVATE_NAME), "personal data in the log");
}

#[tokio::test]
async fn a_huge_error_body_is_quoted_as_a_short_excerpt() {
    let hostile = Hostile::start(20).await;
    let fx = onboarded(&hostile, Defect::HugeErrorBody).await;
    hostile.arm(Defect::HugeErrorBody);
    let mut config = engine_config();
    config.request_retry.retries = 1;
    let error = failure(&once_with(&fx.store, config).await);
    assert!(error.contains("VOMO server error 500"), "{error}");
    assert!(error.len() < 700, "{} bytes: {error}", error.len());
    assert!(last_run_message(&fx.store).await.len() < 700);
}
