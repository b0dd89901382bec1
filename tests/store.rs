//! The state DB: one storage story (onboard → mappings → checkpoint → DLQ →
//! runs and audit → leases → purge) run on SQLite and on PostgreSQL, the
//! lease race on PostgreSQL, the master-key check, and the bad-input cases
//! (corrupt, foreign, newer, uncreatable, unreachable).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use vomo_sync::config::StateLocation;
use vomo_sync::domain::{ApiToken, ContentHash, CustomerSettings, epoch};
use vomo_sync::store::{
    AuditEntry, CustomerStatus, DlqStatus, FailureClass, KeySource, MappingWrite, MasterKey, NewCustomer,
    NewDestination, NewDlqEntry, RunKind, RunOutcome, Store, StoreError, TokenState, migration_versions,
};

fn audit(customer: &str, action: &str) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: "tester".into(),
        customer: Some(customer.into()),
        action: action.into(),
        detail: String::new(),
        result: "ok".into(),
    }
}

fn hash(n: u8) -> ContentHash {
    ContentHash([n; 16])
}

async fn onboard(store: &Store, name: &str) -> vomo_sync::store::Customer {
    let token = ApiToken::new(&format!("token-of-{name}-0123456789abcdef")).unwrap();
    let destinations = [NewDestination {
        name: "warehouse".into(),
        kind: "postgres".into(),
        config: r#"{"table":"vomo_users"}"#.into(),
        secret: Some("postgres://rep:hunter2@db/rep".into()),
    }];
    let new = NewCustomer {
        name,
        vomo_url: "http://127.0.0.1:1/v1",
        settings: &CustomerSettings::default(),
        status: CustomerStatus::Backfilling,
    };
    store.add_customer(&new, &token, &destinations, &audit(name, "customer.add")).await.unwrap()
}

async fn unlocked(location: &StateLocation, key: &MasterKey) -> Store {
    let mut store = Store::open(location).await.unwrap();
    store.unlock(key.clone(), &KeySource::Env).await.unwrap();
    store
}

/// The story both backends must tell the same way.
async fn storage_story(location: StateLocation) {
    let key = MasterKey::generate();
    let store = unlocked(&location, &key).await;
    let acme = onboarding(&store).await;
    mappings_and_checkpoint(&store, &acme).await;
    dead_letter_queue(&store, &acme).await;
    runs_and_audit(&store, &acme).await;
    leases(&store, &acme).await;
    let other = offboarding_and_purge(&store, &acme).await;
    store.close().await;
    wrong_master_key(&location, key, &other).await;
}

async fn onboarding(store: &Store) -> vomo_sync::store::Customer {
    // Onboarding: customer, sealed token, destinations, checkpoint at epoch.
    let acme = onboard(store, "acme").await;
    assert_eq!(acme.status, CustomerStatus::Backfilling);
    let token = store.load_token(&acme).await.unwrap().unwrap();
    assert_eq!(token.expose(), "token-of-acme-0123456789abcdef");
    let info = store.token_info(acme.id).await.unwrap().unwrap();
    assert_eq!((info.fingerprint.as_str(), info.state), ("…cdef", TokenState::Valid));
    let dests = store.destinations(&acme).await.unwrap();
    assert_eq!(dests[0].secret.as_deref(), Some("postgres://rep:hunter2@db/rep"));
    assert!(!format!("{dests:?}").contains("hunter2"));
    let settings = CustomerSettings::default();
    let again =
        NewCustomer { name: "acme", vomo_url: "x", settings: &settings, status: CustomerStatus::Onboarding };
    let dup = store.add_customer(&again, &token, &[], &audit("acme", "customer.add")).await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })));
    let checkpoint = store.load_checkpoint(acme.id).await.unwrap();
    assert_eq!((checkpoint.watermark, checkpoint.in_flight), (epoch(), None));
    acme
}

async fn mappings_and_checkpoint(store: &Store, acme: &vomo_sync::store::Customer) {
    // A window's page of mappings, committed with the checkpoint.
    let to = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let window = vomo_sync::domain::Window::new(epoch(), to).unwrap();
    store.begin_window(acme.id, window).await.unwrap();
    assert_eq!(store.load_checkpoint(acme.id).await.unwrap().in_flight, Some(window));
    let ids: Vec<i64> = (1..=15).collect();
    assert!(store.lookup_mappings(acme.id, &ids).await.unwrap().is_empty());
    let page: Vec<MappingWrite> = ids
        .iter()
        .map(|id| MappingWrite {
            vomo_user_id: *id,
            email: format!("u{id}@example.org"),
            content_hash: hash(1),
            vomo_updated_at: to - Duration::seconds(*id),
            external_ids: BTreeMap::from([("warehouse".to_owned(), id.to_string())]),
            synced_at: Utc::now(),
            deleted_at: None,
        })
        .collect();
    store.commit_window(acme.id, &page, Some(to), None).await.unwrap();
    let found = store.lookup_mappings(acme.id, &ids).await.unwrap();
    assert_eq!(found.len(), 15);
    assert_eq!(found[&7].external_ids["warehouse"], "7");
    assert_eq!(found[&7].vomo_updated_at, to - Duration::seconds(7));
    let checkpoint = store.load_checkpoint(acme.id).await.unwrap();
    assert_eq!((checkpoint.watermark, checkpoint.in_flight), (to, None));
    // A later write updates in place and keeps first_synced_at; an older
    // watermark never moves the checkpoint back.
    let mut again = page[..1].to_vec();
    again[0].content_hash = hash(2);
    store.commit_window(acme.id, &again, Some(to - Duration::days(1)), None).await.unwrap();
    let one = &store.lookup_mappings(acme.id, &[1]).await.unwrap()[&1];
    assert_eq!((one.content_hash, one.first_synced_at), (hash(2), found[&1].first_synced_at));
    assert_eq!(store.load_checkpoint(acme.id).await.unwrap().watermark, to);
    // A batch that names a user twice keeps the last write.
    let mut twice = vec![page[1].clone(), page[1].clone()];
    twice[1].content_hash = hash(3);
    store.commit_window(acme.id, &twice, None, None).await.unwrap();
    assert_eq!(store.lookup_mappings(acme.id, &[2]).await.unwrap()[&2].content_hash, hash(3));
    store.mark_deleted(acme.id, &[3, 4], Utc::now()).await.unwrap();
    assert_eq!(store.mapping_counts(acme.id).await.unwrap(), (15, 2));
    assert_eq!(store.mapped_user_ids(acme.id, false).await.unwrap().len(), 13);
}

async fn dead_letter_queue(store: &Store, acme: &vomo_sync::store::Customer) {
    let to = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    // The dead-letter queue: park, refresh, supersede, retry, discard.
    let entry = |version: i64, n: u8| NewDlqEntry {
        vomo_user_id: 9,
        destination: "warehouse".into(),
        change_kind: "user.updated".into(),
        payload: format!(r#"{{"version":{version}}}"#),
        content_hash: hash(n),
        vomo_updated_at: to + Duration::seconds(version),
        class: FailureClass::Retryable,
        message: "503 from warehouse".into(),
        next_retry_at: Some(Utc::now() - Duration::seconds(1)),
    };
    let first = store.park_in_dlq(acme.id, &entry(1, 10)).await.unwrap();
    assert_eq!(store.park_in_dlq(acme.id, &entry(1, 10)).await.unwrap(), first, "same version refreshes");
    let newer = store.park_in_dlq(acme.id, &entry(2, 11)).await.unwrap();
    assert_ne!(newer, first);
    assert_eq!(store.dlq_entry(first).await.unwrap().unwrap().status, DlqStatus::Superseded);
    assert_eq!(store.park_in_dlq(acme.id, &entry(0, 12)).await.unwrap(), newer, "an older version is stale");
    let due = store.due_dlq(acme.id, Utc::now(), 10).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [newer]);
    assert_eq!(due[0].payload, r#"{"version":2}"#);
    store.record_dlq_failure(newer, FailureClass::Permanent, "422 invalid email", None).await.unwrap();
    let parked = store.dlq_entry(newer).await.unwrap().unwrap();
    assert_eq!((parked.attempts, parked.class), (2, FailureClass::Permanent));
    assert!(
        store.due_dlq(acme.id, Utc::now(), 10).await.unwrap().is_empty(),
        "permanent waits for an operator"
    );
    let depth = store.dlq_depth(acme.id).await.unwrap();
    assert_eq!((depth.pending, depth.permanent), (1, 1));
    assert!(depth.oldest.is_some());
    store.discard_dlq(newer, "bad address, told the customer", &audit("acme", "dlq.discard")).await.unwrap();
    assert_eq!(
        store.dlq_entry(newer).await.unwrap().unwrap().note.as_deref(),
        Some("bad address, told the customer")
    );
    assert!(matches!(
        store.discard_dlq(newer, "again", &audit("acme", "dlq.discard")).await,
        Err(StoreError::NotFound { .. })
    ));
    let resolved_later = store.park_in_dlq(acme.id, &entry(3, 13)).await.unwrap();
    assert_eq!(store.supersede_dlq(acme.id, "warehouse", 9, to + Duration::seconds(5)).await.unwrap(), 1);
    assert_eq!(store.dlq_entry(resolved_later).await.unwrap().unwrap().status, DlqStatus::Superseded);
    assert_eq!(store.dlq_depth(acme.id).await.unwrap().pending, 0);
}

async fn runs_and_audit(store: &Store, acme: &vomo_sync::store::Customer) {
    // Runs and the audit log.
    let run = store.start_run(acme.id, RunKind::Backfill, None).await.unwrap();
    let counts = vomo_sync::domain::RunCounts { created: 15, ..Default::default() };
    store.finish_run(run, RunOutcome::Ok, &counts, 2, None).await.unwrap();
    let last = store.last_run_of_each_kind(acme.id).await.unwrap();
    assert_eq!(
        (last[0].kind, last[0].outcome, last[0].requests_used),
        (RunKind::Backfill, RunOutcome::Ok, 2)
    );
    assert_eq!(last[0].counts.created, 15);
    let log = store.audit_log(Some("acme"), 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["dlq.discard", "customer.add"]);
}

async fn leases(store: &Store, acme: &vomo_sync::store::Customer) {
    // Leases: one owner at a time, takeover after expiry.
    let now = Utc::now();
    assert!(store.acquire_lease(acme.id, "a", now, now + Duration::seconds(30)).await.unwrap());
    assert!(!store.acquire_lease(acme.id, "b", now, now + Duration::seconds(30)).await.unwrap());
    assert_eq!(store.renew_leases("a", now, now + Duration::seconds(30)).await.unwrap(), [acme.id]);
    let later = now + Duration::seconds(31);
    assert!(
        store.acquire_lease(acme.id, "b", later, later + Duration::seconds(30)).await.unwrap(),
        "expired: taken over"
    );
    assert!(
        store.renew_leases("a", later, later + Duration::seconds(30)).await.unwrap().is_empty(),
        "a lost it"
    );
    store.release_lease(acme.id, "b").await.unwrap();
    assert_eq!(
        store.claim_customers("c", later, later + Duration::seconds(30), 10).await.unwrap(),
        [acme.id]
    );
}

async fn offboarding_and_purge(
    store: &Store,
    acme: &vomo_sync::store::Customer,
) -> vomo_sync::store::Customer {
    let later = Utc::now() + Duration::seconds(31);
    // Offboarding keeps history; a purge leaves only the audit log.
    store.delete_token(acme.id).await.unwrap();
    assert!(store.load_token(acme).await.unwrap().is_none());
    store.set_customer_status(acme.id, CustomerStatus::Offboarded, Some("contract ended")).await.unwrap();
    let offboarded = store.require_customer("acme").await.unwrap();
    assert!(offboarded.offboarded_at.is_some());
    assert!(
        store.claim_customers("d", later, later, 10).await.unwrap().is_empty(),
        "offboarded is never claimed"
    );
    let other = onboard(store, "other").await;
    store.purge_customer(acme.id).await.unwrap();
    let held: BTreeMap<&str, i64> = store.rows_held(acme).await.unwrap().into_iter().collect();
    assert!(held.iter().all(|(table, n)| *n == 0 || *table == "audit_log"), "{held:?}");
    assert_eq!(held["audit_log"], 2);
    assert!(store.customer("acme").await.unwrap().is_none());
    assert!(store.rows_held(&other).await.unwrap().iter().all(
        |(t, n)| *n > 0 || ["mappings", "dlq", "runs", "pending_deletions", "health_tokens"].contains(t)
    ));
    other
}

/// The wrong master key is refused and changes nothing.
async fn wrong_master_key(location: &StateLocation, key: MasterKey, other: &vomo_sync::store::Customer) {
    let mut reopened = Store::open(location).await.unwrap();
    let wrong = reopened.unlock(MasterKey::generate(), &KeySource::Env).await.unwrap_err();
    assert!(
        wrong.to_string().contains("tokens in this state DB were written with a different master key"),
        "{wrong}"
    );
    reopened.unlock(key, &KeySource::Env).await.unwrap();
    assert!(reopened.load_token(other).await.unwrap().is_some());
}

#[tokio::test]
async fn storage_story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/state.db");
    storage_story(StateLocation::Sqlite(path.clone())).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0, "owner-only");
    }
}

#[tokio::test]
async fn storage_story_on_postgres() {
    let Some(url) = common::pg::fresh_database().await else { return };
    storage_story(StateLocation::Postgres(url)).await;
}

#[tokio::test]
async fn racing_processes_never_both_own_a_customer_on_postgres() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let location = StateLocation::Postgres(url);
    let key = MasterKey::generate();
    let setup = unlocked(&location, &key).await;
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(onboard(&setup, &format!("c{n:02}")).await.id);
    }
    // Two processes (separate pools) claim in small batches at the same time.
    let (a, b) =
        (Arc::new(Store::open(&location).await.unwrap()), Arc::new(Store::open(&location).await.unwrap()));
    let claim = |store: Arc<Store>, owner: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..20 {
                let now = Utc::now();
                mine.extend(store.claim_customers(owner, now, now + Duration::seconds(60), 3).await.unwrap());
            }
            mine
        })
    };
    let (ta, tb) = (claim(Arc::clone(&a), "a"), claim(Arc::clone(&b), "b"));
    let (mine_a, mine_b) = (ta.await.unwrap(), tb.await.unwrap());
    let set_a: BTreeSet<i64> = mine_a.iter().copied().collect();
    let set_b: BTreeSet<i64> = mine_b.iter().copied().collect();
    assert_eq!(set_a.len(), mine_a.len(), "no double claim by a");
    assert!(
        set_a.is_disjoint(&set_b),
        "a customer claimed by both: {:?}",
        set_a.intersection(&set_b).collect::<Vec<_>>()
    );
    assert_eq!(set_a.len() + set_b.len(), ids.len(), "every customer claimed");
    assert!(!set_a.is_empty() && !set_b.is_empty(), "both made progress");

    // Single-customer acquisition raced 2 × 25 times: exactly one winner each.
    let target = ids[0];
    setup.release_lease(target, if set_a.contains(&target) { "a" } else { "b" }).await.unwrap();
    let mut attempts = Vec::new();
    for n in 0..50 {
        let store = if n % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        attempts.push(tokio::spawn(async move {
            let owner = if n % 2 == 0 { "a" } else { "b" };
            let now = Utc::now();
            (owner, store.acquire_lease(target, owner, now, now + Duration::seconds(60)).await.unwrap())
        }));
    }
    let mut winners = BTreeSet::new();
    for attempt in attempts {
        let (owner, won) = attempt.await.unwrap();
        if won {
            winners.insert(owner);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one process owns it: {winners:?}");
    let leases = setup.leases().await.unwrap();
    assert!(leases.iter().all(|l| l.owner.is_some()));
}

#[tokio::test]
async fn bad_state_locations_are_refused_clearly_and_untouched() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database at all, just some text").unwrap();
    let err = Store::open(&StateLocation::Sqlite(garbage.clone())).await.unwrap_err();
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err}");
    assert!(err.to_string().contains(&garbage.display().to_string()));
    assert_eq!(std::fs::read(&garbage).unwrap(), b"this is not a database at all, just some text");

    let foreign = dir.path().join("foreign.db");
    {
        let pool =
            sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", foreign.display())).await.unwrap();
        sqlx::query("CREATE TABLE recipes (name TEXT)").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let err = Store::open(&StateLocation::Sqlite(foreign.clone())).await.unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Store::open(&StateLocation::Sqlite(blocker.join("state.db"))).await.unwrap_err();
    assert!(matches!(err, StoreError::CannotCreate { .. }), "{err}");

    let newer = dir.path().join("newer.db");
    let store = Store::open(&StateLocation::Sqlite(newer.clone())).await.unwrap();
    store.close().await;
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", newer.display())).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let err = Store::open(&StateLocation::Sqlite(newer)).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { version: 9999, .. }), "{err}");
    assert!(err.to_string().contains("upgrade vomo-sync"));

    let err = Store::open(&StateLocation::Postgres("postgres://sync:hunter2@127.0.0.1:1/vomo".into()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{text}");
    assert!(!text.contains("hunter2") && text.contains("postgres://sync:***@127.0.0.1:1/vomo"), "{text}");
}

#[tokio::test]
async fn storing_a_secret_without_a_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StateLocation::Sqlite(dir.path().join("s.db"))).await.unwrap();
    let new = NewCustomer {
        name: "acme",
        vomo_url: "x",
        settings: &CustomerSettings::default(),
        status: CustomerStatus::Onboarding,
    };
    let err = store
        .add_customer(&new, &ApiToken::new("t0123456789abcdef").unwrap(), &[], &audit("acme", "add"))
        .await;
    assert!(matches!(err, Err(StoreError::NoMasterKey)));
    assert!(store.customers().await.unwrap().is_empty(), "nothing half-written");
}

#[test]
fn both_backends_embed_the_same_migration_versions() {
    let (sqlite, postgres) = migration_versions();
    assert_eq!(sqlite, postgres);
    assert!(!sqlite.is_empty());
    let names = |dir: &str| {
        let mut names: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    };
    assert_eq!(names("sqlite"), names("postgres"));
}

/// The command queue, the lease fence and alert claims, on either backend: a queued
/// command is claimed by exactly one of many racing claimers, its result
/// read back; a command nobody claimed can be expired (and then never runs);
/// a checkpoint commit fenced by a lease this process lost is refused and
/// changes nothing.
async fn queue_and_fence(location: StateLocation) {
    let key = MasterKey::generate();
    let store = Arc::new(unlocked(&location, &key).await);
    let acme = onboard(&store, "acme").await;
    let other = Arc::new(Store::open(&location).await.unwrap());

    let now = Utc::now();
    let id = store
        .enqueue_command("acme", r#"{"command":"poll_now","customer":"acme"}"#, "alice", "box-1", now)
        .await
        .unwrap();
    assert!(store.pending_commands_for("owner-a").await.unwrap().is_empty(), "only for the lease holder");
    assert!(store.acquire_lease(acme.id, "owner-a", now, now + Duration::seconds(60)).await.unwrap());
    assert_eq!(store.pending_commands_for("owner-a").await.unwrap().len(), 1);
    let mut claims = Vec::new();
    for n in 0..16 {
        let s = if n % 2 == 0 { Arc::clone(&store) } else { Arc::clone(&other) };
        claims.push(tokio::spawn(async move { s.claim_command(id, "owner-a", Utc::now()).await.unwrap() }));
    }
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1, "claimed exactly once");
    store.finish_command(id, true, "poll started", Utc::now()).await.unwrap();
    let row = other.queued_command(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.result.as_deref()),
        (vomo_sync::store::CommandStatus::Done, Some("poll started"))
    );
    assert!(
        !store.expire_command(id, "too late", Utc::now()).await.unwrap(),
        "a finished command stays finished"
    );

    let late = store.enqueue_command("acme", "{}", "bob", "box-2", Utc::now()).await.unwrap();
    assert!(store.expire_command(late, "nobody took it", Utc::now()).await.unwrap());
    assert!(
        !store.claim_command(late, "owner-a", Utc::now()).await.unwrap(),
        "an expired command never runs"
    );

    // The fence: owner-b takes the lease over (owner-a's expired); owner-a's
    // commit is refused and the checkpoint stays.
    let to = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    store.commit_window(acme.id, &[], Some(to), Some("owner-a")).await.unwrap();
    let later = Utc::now() + Duration::seconds(120);
    assert!(store.acquire_lease(acme.id, "owner-b", later, later + Duration::seconds(60)).await.unwrap());
    let refused = store.commit_window(acme.id, &[], Some(to + Duration::days(1)), Some("owner-a")).await;
    assert!(matches!(refused, Err(StoreError::LeaseLost { .. })), "{refused:?}");
    assert_eq!(store.load_checkpoint(acme.id).await.unwrap().watermark, to);
    store.commit_window(acme.id, &[], Some(to + Duration::days(1)), Some("owner-b")).await.unwrap();
    assert_eq!(store.load_checkpoint(acme.id).await.unwrap().watermark, to + Duration::days(1));

    // Alerts: the first instance to claim a transition sends it; nobody
    // again within the cool-down; after it, once more.
    let t = Utc::now();
    let hour = Duration::hours(1);
    assert!(store.claim_alert("acme", "lag_high", t, t - hour).await.unwrap());
    let soon = t + Duration::seconds(5);
    assert!(!other.claim_alert("acme", "lag_high", soon, soon - hour).await.unwrap(), "within the cool-down");
    assert!(other.claim_alert("acme", "dlq_stale", soon, soon - hour).await.unwrap(), "another kind");
    let later = t + Duration::hours(2);
    assert!(other.claim_alert("acme", "lag_high", later, later - hour).await.unwrap(), "after the cool-down");
}

#[tokio::test]
async fn command_queue_and_lease_fence_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    queue_and_fence(StateLocation::Sqlite(dir.path().join("state.db"))).await;
}

#[tokio::test]
async fn command_queue_and_lease_fence_on_postgres() {
    let Some(url) = common::pg::fresh_database().await else { return };
    queue_and_fence(StateLocation::Postgres(url)).await;
}
