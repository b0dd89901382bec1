//! Reconciliation, deletion sweeps, offboarding and write-back against the
//! simulator, a SQLite state DB and (where the feature needs a readable
//! destination) a real PostgreSQL table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::sim_with;
use common::sync::{assert_mirrors, onboard, replay_jsonl, run_once, run_report, state_db};
use sqlx::{Connection, SqliteConnection};
use vomo_sync::dest::DestinationSpec;
use vomo_sync::domain::{
    ApiToken, CustomerSettings, CustomerStatus, FailureClass, RunKind, RunOutcome, User,
};
use vomo_sync::engine::{Command, CommandError, Details, OnboardRequest, Operator};
use vomo_sync::sim::{Faults, SimHandle, UserFields};
use vomo_sync::store::{NewDlqEntry, Store};

fn ops(store: &Store) -> Operator {
    common::sync::operator(store)
}

fn reconcile() -> Command {
    Command::Reconcile { customer: "acme".into() }
}

fn sweep(dry_run: bool) -> Command {
    Command::DeletionSweep { customer: "acme".into(), dry_run }
}

/// Settles a guarded sweep here: (deleted, kept).
async fn settle(store: &Store, run: i64, confirm: bool) -> Result<(usize, usize), CommandError> {
    let done =
        ops(store).send(Command::SettleDeletions { customer: "acme".into(), run, confirm }, "tester").await?;
    match done.details {
        Details::Settled { deleted, kept } => Ok((deleted, kept)),
        other => panic!("not settled here: {other:?}"),
    }
}

async fn state_sql(dir: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", dir.join("state.db").display())).await.unwrap()
}

async fn pg(url: &str) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(url).await.unwrap()
}

/// The users of the default destination table.
async fn table_users(url: &str) -> BTreeMap<i64, Option<User>> {
    common::pg::table_users(url, "vomo_users").await
}

fn phone(value: &str) -> UserFields {
    UserFields { phone: Some(value.into()), ..UserFields::default() }
}

/// A lost destination write, a change that never moved `updated_at`, a
/// lost mapping commit, a mapping left at an older version, and a user whose
/// delivery waits in the DLQ — in that order of `ids`.
async fn break_five_ways(url: &str, dir: &Path, store: &Store, sim: &SimHandle, ids: &[i64]) {
    let [lost, drifted, unmapped, outdated, held] = ids[..] else { unreachable!() };
    let customer = store.require_customer("acme").await.unwrap();
    sqlx::query("DELETE FROM vomo_users WHERE vomo_user_id = $1")
        .bind(lost)
        .execute(&mut pg(url).await)
        .await
        .unwrap();
    sim.update_user(drifted, &phone("+1-555-0999"), false).unwrap();
    let mut state = state_sql(dir).await;
    sqlx::query("DELETE FROM mappings WHERE vomo_user_id = ?")
        .bind(unmapped)
        .execute(&mut state)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE mappings SET content_hash = '00000000000000000000000000000000', vomo_updated_at = '2020-01-01T00:00:00+00:00' \
         WHERE vomo_user_id = ?",
    )
    .bind(outdated)
    .execute(&mut state)
    .await
    .unwrap();
    let held_user = sim.user("acme", held).unwrap().unwrap();
    let entry = NewDlqEntry {
        vomo_user_id: held,
        destination: "postgres".into(),
        change_kind: "updated".into(),
        payload: "{}".into(),
        content_hash: held_user.content_hash(),
        vomo_updated_at: held_user.updated_at,
        class: FailureClass::Retryable,
        message: "destination down".into(),
        next_retry_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    };
    store.park_in_dlq(customer.id, &entry).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reconciliation_repairs_what_polling_missed_and_counts_it_by_cause() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let sim = sim_with(&[("acme", 200)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    onboard(&store, &sim, "acme", "acme", std::slice::from_ref(&url), 0.0).await;
    run_once(&store).await;

    // Five recent users (reconciliation looks back 26 hours), synced by a poll.
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).take(5).collect();
    let [lost, drifted, unmapped, outdated, _] = ids[..] else { unreachable!() };
    for (n, id) in ids.iter().enumerate() {
        sim.update_user(*id, &phone(&format!("+1-555-010{n}")), true).unwrap();
    }
    sim.advance_clock(2);
    run_once(&store).await;
    let customer = store.require_customer("acme").await.unwrap();
    let checkpoint = store.load_checkpoint(customer.id).await.unwrap();

    break_five_ways(&url, dir.path(), &store, &sim, &ids).await;

    let report = ops(&store).send(reconcile(), "tester").await.map(run_report).unwrap();
    let c = &report.counts;
    assert_eq!(
        (c.missed_create, c.missed_update, c.drift, c.lost_downstream, c.dlq_held),
        (1, 1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!(report.kind, Some(RunKind::Reconcile));
    assert!(report.requests >= 1);
    let table = table_users(&url).await;
    for id in [lost, drifted, unmapped, outdated] {
        assert_eq!(table[&id].as_ref(), sim.user("acme", id).unwrap().as_ref(), "user {id} repaired");
    }
    let run = store.run(report.run_id.unwrap()).await.unwrap().unwrap();
    assert_eq!((run.kind, run.outcome), (RunKind::Reconcile, RunOutcome::Ok));
    assert_eq!(run.counts.drift, 1);
    assert!(run.requests_used >= 1);
    assert_eq!(
        store.load_checkpoint(customer.id).await.unwrap().watermark,
        checkpoint.watermark,
        "a reconciliation never moves the polling checkpoint"
    );
    // A second reconciliation finds nothing left to repair.
    let again = ops(&store).send(reconcile(), "tester").await.map(run_report).unwrap();
    let c = &again.counts;
    assert_eq!(c.repaired(), 0, "{c:?}");
}

async fn jsonl_customer(users: usize) -> (SimHandle, tempfile::TempDir, Store, std::path::PathBuf) {
    let sim = sim_with(&[("acme", users)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let path = dir.path().join("acme.jsonl");
    onboard(&store, &sim, "acme", "acme", &[format!("jsonl:{}", path.display())], 0.0).await;
    run_once(&store).await;
    (sim, dir, store, path)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

async fn deleted_mappings(dir: &Path) -> Vec<i64> {
    sqlx::query_scalar("SELECT vomo_user_id FROM mappings WHERE deleted_at IS NOT NULL ORDER BY 1")
        .fetch_all(&mut state_sql(dir).await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_scan_deletes_confirmed_users_and_repairs_drift() {
    let (sim, dir, store, path) = jsonl_customer(300).await;
    let users = sim.users("acme").unwrap();
    let (gone_a, gone_b, old) = (users[10].id, users[20].id, users[30].id);
    sim.delete_user(gone_a).unwrap();
    sim.delete_user(gone_b).unwrap();
    // An old user changed without its `updated_at` moving: only a full
    // scan can see it.
    sim.update_user(old, &phone("+1-555-0404"), false).unwrap();
    // A few users missing from the listing but still there by id — like a
    // user that moved mid-scan — are not deleted.
    sim.set_faults(Faults { seed: 3, hide_share: 0.01, ..Faults::default() });
    let hidden: Vec<i64> = users.iter().map(|u| u.id).filter(|id| sim.faults().hides(*id)).collect();
    assert!(!hidden.is_empty() && hidden.len() <= 4, "{hidden:?}");

    let before = lines(&path);
    let dry = ops(&store).send(sweep(true), "tester").await.map(run_report).unwrap();
    assert_eq!(dry.deletions, vec![gone_a, gone_b]);
    assert_eq!(dry.counts.moved_mid_scan, hidden.len() as i64);
    assert_eq!(dry.run_id, None, "a dry run records no run");
    assert_eq!(lines(&path), before, "a dry run changes nothing");
    assert!(deleted_mappings(dir.path()).await.is_empty());

    let report = ops(&store).send(sweep(false), "tester").await.map(run_report).unwrap();
    assert_eq!(report.deletions, vec![gone_a, gone_b]);
    assert_eq!(report.counts.drift, 1, "{:?}", report.counts);
    assert_eq!(report.counts.deletion_candidates, 2 + hidden.len() as i64);
    let state = replay_jsonl(&path);
    assert_eq!((state[&gone_a].as_ref(), state[&gone_b].as_ref()), (None, None), "deleted downstream");
    assert_eq!(state[&old].as_ref().unwrap().phone.as_deref(), Some("+1-555-0404"));
    assert_eq!(deleted_mappings(dir.path()).await, vec![gone_a, gone_b], "mappings kept, marked deleted");
    for id in &hidden {
        assert!(state[id].is_some(), "hidden user {id} is not deleted");
    }
    sim.set_faults(Faults::default());
    assert_mirrors(&state, &sim.users("acme").unwrap());

    // A deleted user who comes back is an update, not a second create.
    let line_count = lines(&path);
    let again = ops(&store).send(sweep(false), "tester").await.map(run_report).unwrap();
    assert!(again.deletions.is_empty(), "deleted once: {:?}", again.deletions);
    assert_eq!(lines(&path), line_count);
}

#[tokio::test]
async fn the_mass_deletion_guard_waits_for_an_operator() {
    let (sim, dir, store, path) = jsonl_customer(300).await;
    // A truncated listing: a fifth of the users missing (guard: 2 % = 6).
    sim.set_faults(Faults { seed: 9, hide_share: 0.2, ..Faults::default() });
    let before = lines(&path);
    let guarded = ops(&store).send(sweep(false), "tester").await.map(run_report).unwrap();
    assert!(guarded.needs_confirmation);
    assert!(guarded.deletions.len() > 30, "{}", guarded.deletions.len());
    assert_eq!(guarded.counts.deletion_threshold, 6);
    assert_eq!(lines(&path), before, "nothing deleted");
    let run_id = guarded.run_id.unwrap();
    let run = store.run(run_id).await.unwrap().unwrap();
    assert_eq!(run.outcome, RunOutcome::NeedsConfirmation);

    // Dismissed: nothing happens, and it cannot be settled twice.
    assert_eq!(settle(&store, run_id, false).await.unwrap(), (0, guarded.deletions.len()));
    assert_eq!(store.run(run_id).await.unwrap().unwrap().outcome, RunOutcome::Dismissed);
    assert!(settle(&store, run_id, true).await.is_err());
    assert_eq!(lines(&path), before);

    // Confirmed: each listed user is asked about again; the hidden ones
    // still exist and stay, the really deleted ones go.
    let really_gone: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).skip(100).take(10).collect();
    for id in &really_gone {
        sim.delete_user(*id).unwrap();
    }
    let guarded = ops(&store).send(sweep(false), "tester").await.map(run_report).unwrap();
    assert!(guarded.needs_confirmation);
    let listed = guarded.deletions.len();
    let (deleted, kept) = settle(&store, guarded.run_id.unwrap(), true).await.unwrap();
    assert_eq!((deleted, kept), (10, listed - 10));
    assert_eq!(deleted_mappings(dir.path()).await, really_gone);
    let state = replay_jsonl(&path);
    assert!(really_gone.iter().all(|id| state[id].is_none()));
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(&mut state_sql(dir.path()).await)
        .await
        .unwrap();
    assert!(actions.contains(&"sync.deletions.confirm".to_owned()), "{actions:?}");
    assert!(actions.contains(&"sync.deletions.dismiss".to_owned()), "{actions:?}");
}

#[tokio::test]
async fn an_interrupted_sweep_deletes_nothing() {
    let (sim, dir, store, path) = jsonl_customer(400).await;
    for user in sim.users("acme").unwrap().iter().take(3) {
        sim.delete_user(user.id).unwrap();
    }
    sim.set_faults(Faults { latency_ms: 20, ..Faults::default() });
    let before = lines(&path);
    let ops = ops(&store);
    let sweep = ops.send(sweep(false), "tester");
    assert!(tokio::time::timeout(Duration::from_millis(300), sweep).await.is_err(), "still walking");
    assert_eq!(lines(&path), before);
    assert!(deleted_mappings(dir.path()).await.is_empty());
}

#[tokio::test]
async fn offboarding_removes_the_token_at_once_and_restore_resumes_without_a_backfill() {
    let (sim, dir, store, _path) = jsonl_customer(100).await;
    let ops = ops(&store);
    let unknown =
        ops.send(Command::Offboard { customer: "nobody".into(), purge: false }, "tester").await.unwrap_err();
    assert!(matches!(unknown, CommandError::UnknownCustomer(_)), "{unknown}");

    ops.send(Command::Offboard { customer: "acme".into(), purge: false }, "tester").await.unwrap();
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
        .fetch_one(&mut state_sql(dir.path()).await)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "the token is gone at once");
    assert_eq!(store.require_customer("acme").await.unwrap().status, CustomerStatus::Offboarded);
    let outcomes = run_once(&store).await;
    assert!(outcomes.is_empty(), "an offboarded customer is not synced: {outcomes:?}");

    let token = ApiToken::new(&sim.issue_token("acme").unwrap()).unwrap();
    let restored = ops.send(Command::Restore { customer: "acme".into(), token }, "tester").await.unwrap();
    assert!(matches!(restored.details, Details::Status(CustomerStatus::Active)), "{restored}");
    sim.update_user(sim.users("acme").unwrap()[0].id, &phone("+1-555-0123"), true).unwrap();
    sim.advance_clock(2);
    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.kind, Some(RunKind::Poll), "resumed from the checkpoint, no new backfill");
    assert_eq!(report.counts.updated, 1);
}

#[tokio::test]
async fn purge_leaves_only_the_audit_log() {
    let (_sim, dir, store, _path) = jsonl_customer(100).await;
    let customer = store.require_customer("acme").await.unwrap();
    ops(&store).send(Command::Offboard { customer: "acme".into(), purge: true }, "tester").await.unwrap();
    let mut state = state_sql(dir.path()).await;
    for table in [
        "tokens",
        "destinations",
        "checkpoints",
        "mappings",
        "dlq",
        "runs",
        "leases",
        "pending_deletions",
        "health_tokens",
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE customer_id = ?"
        )))
        .bind(customer.id)
        .fetch_one(&mut state)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} still holds rows of the purged customer");
    }
    let customers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(&mut state).await.unwrap();
    assert_eq!(customers, 0);
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE customer = 'acme' ORDER BY id")
            .fetch_all(&mut state)
            .await
            .unwrap();
    assert_eq!(audit, ["customer.add", "customer.offboard", "customer.purge"]);
    // Retention: nothing else is purged early.
    assert!(ops(&store).purge_expired().await.unwrap().is_empty());
}

/// Onboards `acme` with a PostgreSQL destination owning `owned`.
async fn writeback_customer(url: &str, owned: &[&str]) -> (SimHandle, tempfile::TempDir, Store) {
    let sim = sim_with(&[("acme", 60)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let request = OnboardRequest {
        name: "acme".into(),
        token: ApiToken::new(&sim.token("acme").unwrap()).unwrap(),
        vomo_url: sim.base_url().to_owned(),
        destinations: vec![DestinationSpec::parse(url).unwrap()],
        settings: CustomerSettings {
            writeback_fields: owned.iter().map(|f| (*f).to_owned()).collect(),
            ..CustomerSettings::default()
        },
    };
    ops(&store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap();
    run_once(&store).await;
    (sim, dir, store)
}

async fn set_column(url: &str, id: i64, column: &str, value: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE vomo_users SET {column} = $1 WHERE vomo_user_id = $2")))
        .bind(value)
        .bind(id)
        .execute(&mut pg(url).await)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_round_trip_without_echo_and_per_field_conflict_rules() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let (sim, dir, store) = writeback_customer(&url, &["phone", "gender"]).await;
    let complete: Vec<User> = sim
        .users("acme")
        .unwrap()
        .into_iter()
        .filter(|u| u.birthday.is_some() && u.gender.is_some())
        .collect();
    let (edited, conflicted, refused) = (complete[0].id, complete[1].id, complete[2].id);

    // The customer edits phones (one also edited in VOMO: the owned field,
    // the external system wins) and a VOMO-owned field (VOMO wins), and
    // sets a gender VOMO refuses.
    set_column(&url, edited, "phone", "+1-555-7001").await;
    set_column(&url, conflicted, "phone", "+1-555-7002").await;
    set_column(&url, conflicted, "last_name", "Customer-Side").await;
    sim.update_user(
        conflicted,
        &UserFields {
            phone: Some("+1-555-9999".into()),
            last_name: Some("Vomo-Side".into()),
            ..UserFields::default()
        },
        true,
    )
    .unwrap();
    set_column(&url, refused, "gender", "X").await;
    sim.advance_clock(2);
    let outcomes = run_once(&store).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");

    let vomo = |id| sim.user("acme", id).unwrap().unwrap();
    assert_eq!(vomo(edited).phone.as_deref(), Some("+1-555-7001"), "VOMO has the customer's edit");
    assert_eq!(
        vomo(conflicted).phone.as_deref(),
        Some("+1-555-7002"),
        "owned field: the external system wins"
    );
    assert_eq!(vomo(conflicted).last_name, "Vomo-Side");
    let table = table_users(&url).await;
    assert_eq!(table[&conflicted].as_ref().unwrap().last_name, "Vomo-Side", "VOMO-owned field: VOMO wins");
    assert_eq!(table[&conflicted].as_ref().unwrap().phone.as_deref(), Some("+1-555-7002"));
    assert_eq!(vomo(refused).gender, complete[2].gender, "VOMO refused the gender");

    // The refusal waits in the DLQ as permanent, with VOMO's message.
    let dlq = store.pending_dlq(None).await.unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!((dlq[0].vomo_user_id, dlq[0].class), (refused, FailureClass::Permanent));
    assert!(dlq[0].message.contains("gender"), "{}", dlq[0].message);

    // No echo: the next poll sees our own writes as unchanged.
    sim.advance_clock(2);
    let outcomes = run_once(&store).await;
    let report = outcomes[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(report.kind, Some(RunKind::Poll));
    assert_eq!((report.counts.created, report.counts.updated), (0, 0), "{:?}", report.counts);
    // And the edits are not sent again.
    let requests_before = sim.stats_for(&sim.token("acme").unwrap()).requests;
    sim.advance_clock(2);
    run_once(&store).await;
    let requests = sim.stats_for(&sim.token("acme").unwrap()).requests - requests_before;
    assert!(requests <= 2, "{requests} requests for a quiet poll");
    drop(dir);
}
