//! The three destinations against real counterparts: a throwaway PostgreSQL
//! (skipped with a note when none is available), an axum webhook receiver on
//! loopback that verifies every request with `webhook::verify`, and temp files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vomo_sync::outbound::OutboundPolicy;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use vomo_sync::dest::webhook::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER, VerifyError};
use vomo_sync::dest::{DestError, Destination, DestinationSpec, Outcome, SecretSource, event_json};
use vomo_sync::domain::{Change, ChangeKind, FailureClass, User};

// ---------------------------------------------------------------- fixtures

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_000_000 + secs, 0).unwrap()
}

fn user(id: i64) -> User {
    User {
        id,
        first_name: format!("First{id}"),
        last_name: format!("Last{id}"),
        full_name: format!("First{id} Last{id}"),
        email: format!("user{id}@example.org"),
        address: Some(format!("{id} Main St")),
        phone: (id % 2 == 0).then(|| format!("555-{id}")),
        birthday: Some("1990-01-02".into()),
        gender: Some("F".into()),
        created_at: at(-1000 - id),
        updated_at: at(-id),
        user_status: Some("VERIFIED".into()),
        membership_status: Some("ACCEPTED".into()),
        membership_role: Some("VOLUNTEER".into()),
    }
}

fn created(user: User) -> Change {
    Change { kind: ChangeKind::Created, vomo_user_id: user.id, user: Some(user) }
}

fn updated(user: User) -> Change {
    Change { kind: ChangeKind::Updated, vomo_user_id: user.id, user: Some(user) }
}

fn deleted(id: i64) -> Change {
    Change { kind: ChangeKind::Deleted, vomo_user_id: id, user: None }
}

fn ids(changes: &[Change]) -> Vec<Outcome> {
    changes.iter().map(|c| Ok(c.vomo_user_id.to_string())).collect()
}

/// Receivers in these tests listen on loopback, which the operator allows.
fn outbound(timeout: Duration) -> OutboundPolicy {
    OutboundPolicy::from_entries(&["127.0.0.1".into()]).unwrap().with_timeout(timeout)
}

async fn connect(spec: &str) -> Result<Destination, DestError> {
    let spec = DestinationSpec::parse(spec).unwrap();
    let timeout = Duration::from_secs(5);
    Destination::connect("test", &spec, &outbound(timeout), &[]).await
}

fn only_error(outcome: &Outcome) -> &DestError {
    outcome.as_ref().expect_err("expected a failure")
}

// -------------------------------------------------------------- PostgreSQL

/// One row of the destination table, as the tests read it back.
#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Row {
    vomo_user_id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    email: Option<String>,
    address: Option<String>,
    phone: Option<String>,
    birthday: Option<String>,
    gender: Option<String>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    user_status: Option<String>,
    membership_status: Option<String>,
    membership_role: Option<String>,
    synced_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

/// The row a live user should have.
fn row_of(u: &User, synced_at: DateTime<Utc>) -> Row {
    Row {
        vomo_user_id: u.id,
        first_name: Some(u.first_name.clone()),
        last_name: Some(u.last_name.clone()),
        full_name: Some(u.full_name.clone()),
        email: Some(u.email.clone()),
        address: u.address.clone(),
        phone: u.phone.clone(),
        birthday: u.birthday.clone(),
        gender: u.gender.clone(),
        created_at: Some(u.created_at),
        updated_at: Some(u.updated_at),
        user_status: u.user_status.clone(),
        membership_status: u.membership_status.clone(),
        membership_role: u.membership_role.clone(),
        synced_at,
        deleted_at: None,
    }
}

async fn rows(url: &str, table: &str) -> Vec<Row> {
    let mut db = PgConnection::connect(url).await.unwrap();
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT * FROM {table} ORDER BY vomo_user_id")))
        .fetch_all(&mut db)
        .await
        .unwrap()
}

async fn table_exists(url: &str, table: &str) -> bool {
    let mut db = PgConnection::connect(url).await.unwrap();
    let found: Option<String> =
        sqlx::query_scalar("SELECT to_regclass($1)::text").bind(table).fetch_one(&mut db).await.unwrap();
    found.is_some()
}

async fn execute(url: &str, sql: &str) {
    let mut db = PgConnection::connect(url).await.unwrap();
    db.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.unwrap();
}

#[tokio::test]
async fn pg_check_creates_the_table_without_writing_a_user() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let dest = connect(&url).await.unwrap();
    assert!(!table_exists(&url, "vomo_users").await, "connect must not create the table");
    dest.check().await.unwrap();
    assert!(table_exists(&url, "vomo_users").await);
    assert!(rows(&url, "vomo_users").await.is_empty(), "check must leave no row");
    dest.check().await.unwrap(); // idempotent
    dest.close().await;
}

#[tokio::test]
async fn pg_created_updated_deleted_round_trip() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let dest = connect(&url).await.unwrap();
    // No check first: the first batch creates the table itself.
    let batch = [created(user(1)), created(user(2)), created(user(3))];
    assert_eq!(dest.apply("acme", &batch, at(10)).await, ids(&batch));
    let expected: Vec<Row> = (1..=3).map(|id| row_of(&user(id), at(10))).collect();
    assert_eq!(rows(&url, "vomo_users").await, expected);

    let mut changed = user(2);
    changed.email = "new2@example.org".into();
    changed.phone = None; // a field VOMO cleared must be cleared here too
    let batch = [updated(changed.clone()), deleted(3), deleted(99)];
    assert_eq!(dest.apply("acme", &batch, at(20)).await, ids(&batch));
    let table = rows(&url, "vomo_users").await;
    assert_eq!(table[0], row_of(&user(1), at(10)));
    assert_eq!(table[1], row_of(&changed, at(20)));
    let erased = Row {
        first_name: None,
        last_name: None,
        full_name: None,
        email: None,
        address: None,
        phone: None,
        birthday: None,
        gender: None,
        deleted_at: Some(at(20)),
        ..row_of(&user(3), at(20))
    };
    assert_eq!(table[2], erased, "personal fields erased, the rest kept");
    let tombstone = Row {
        vomo_user_id: 99,
        first_name: None,
        last_name: None,
        full_name: None,
        email: None,
        address: None,
        phone: None,
        birthday: None,
        gender: None,
        created_at: None,
        updated_at: None,
        user_status: None,
        membership_status: None,
        membership_role: None,
        synced_at: at(20),
        deleted_at: Some(at(20)),
    };
    assert_eq!(table[3], tombstone);

    // A returning user is un-deleted.
    let batch = [updated(user(3))];
    assert_eq!(dest.apply("acme", &batch, at(30)).await, ids(&batch));
    assert_eq!(rows(&url, "vomo_users").await[2], row_of(&user(3), at(30)));
    dest.close().await;
}

#[tokio::test]
async fn pg_replays_change_nothing() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let dest = connect(&url).await.unwrap();
    let batch = [created(user(1)), created(user(2)), deleted(2), created(user(4)), deleted(5)];
    assert_eq!(dest.apply("acme", &batch, at(10)).await, ids(&batch));
    let first = rows(&url, "vomo_users").await;
    assert_eq!(first.len(), 4);
    assert!(first[1].deleted_at.is_some() && first[1].email.is_none(), "the later delete of 2 wins");
    assert_eq!(dest.apply("acme", &batch, at(10)).await, ids(&batch));
    assert_eq!(rows(&url, "vomo_users").await, first);

    // A deletion replayed later keeps the first deletion time.
    assert_eq!(dest.apply("acme", &[deleted(5)], at(50)).await, ids(&[deleted(5)]));
    let later = rows(&url, "vomo_users").await;
    assert_eq!(later[3].deleted_at, Some(at(10)));
    assert_eq!(later[3].synced_at, at(50));
    dest.close().await;
}

#[tokio::test]
async fn pg_custom_schema_table_and_missing_schema() {
    let Some(url) = common::pg::fresh_database().await else { return };
    execute(&url, "CREATE SCHEMA crm").await;
    let dest = connect(&format!("{url}?table=crm.volunteers")).await.unwrap();
    dest.check().await.unwrap();
    let batch = [created(user(7))];
    assert_eq!(dest.apply("acme", &batch, at(1)).await, ids(&batch));
    assert_eq!(rows(&url, "crm.volunteers").await, vec![row_of(&user(7), at(1))]);
    assert!(!table_exists(&url, "vomo_users").await);
    dest.close().await;

    let missing = connect(&format!("{url}?table=nosuch.users")).await.unwrap();
    let err = missing.check().await.unwrap_err();
    assert_eq!(err.class, FailureClass::Permanent);
    assert!(err.message.contains("\"nosuch\" does not exist"), "{}", err.message);
    assert!(err.message.contains("CREATE SCHEMA nosuch"), "{}", err.message);
    let outcomes = missing.apply("acme", &batch, at(1)).await;
    assert_eq!(only_error(&outcomes[0]).class, FailureClass::Permanent);
    assert!(only_error(&outcomes[0]).message.contains("nosuch"), "{:?}", outcomes[0]);
    missing.close().await;
}

#[tokio::test]
async fn pg_bad_rows_fail_alone() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let dest = connect(&url).await.unwrap();
    dest.check().await.unwrap();
    execute(&url, "ALTER TABLE vomo_users ADD CONSTRAINT email_has_at CHECK (email LIKE '%@%')").await;
    let mut no_at = user(3);
    no_at.email = "not-an-address".into();
    let mut nul = user(5);
    nul.first_name = "Nul\0Byte".into(); // PostgreSQL text cannot hold NUL
    let batch = [created(user(1)), created(user(2)), created(no_at), created(user(4)), created(nul)];
    let outcomes = dest.apply("acme", &batch, at(10)).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 || i == 4 {
            let err = only_error(outcome);
            assert_eq!(err.class, FailureClass::Permanent, "{err:?}");
            assert!(err.message.contains(&format!("user {}", i + 1)), "{}", err.message);
        } else {
            assert_eq!(outcome, &Ok((i + 1).to_string()));
        }
    }
    assert!(only_error(&outcomes[2]).message.contains("email_has_at"), "{:?}", outcomes[2]);
    let written: Vec<i64> = rows(&url, "vomo_users").await.iter().map(|r| r.vomo_user_id).collect();
    assert_eq!(written, [1, 2, 4]);
    dest.close().await;
}

#[tokio::test]
async fn pg_a_dropped_table_is_recreated() {
    let Some(url) = common::pg::fresh_database().await else { return };
    let dest = connect(&url).await.unwrap();
    dest.check().await.unwrap();
    execute(&url, "DROP TABLE vomo_users").await;
    let batch = [created(user(1))];
    assert_eq!(dest.apply("acme", &batch, at(1)).await, ids(&batch));
    assert_eq!(rows(&url, "vomo_users").await.len(), 1);
    dest.close().await;
    // A closed pool is a destination that is down, not a bad record.
    let outcomes = dest.apply("acme", &batch, at(2)).await;
    assert_eq!(only_error(&outcomes[0]).class, FailureClass::Retryable);
}

#[tokio::test]
async fn pg_unreachable_server_is_retryable_and_hides_the_password() {
    let started = Instant::now();
    let err = connect("postgres://u:secret@127.0.0.1:1/db").await.unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    assert!(!err.message.contains("secret"), "{}", err.message);
    assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(5), "a refusal is reported at once");
}

// ----------------------------------------------------------------- webhook

const SECRET: &str = "whsec-test-0123456789";

#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    /// 400 for any batch holding this user.
    RejectUser(i64),
    Status(u16),
    /// Answers after a minute.
    Hang,
    /// 400 quoting the request's signature and our secret back.
    Echo,
}

struct Request {
    headers: HeaderMap,
    body: Bytes,
    verified: Result<(), VerifyError>,
}

struct Receiver {
    behaviour: Behaviour,
    requests: Mutex<Vec<Request>>,
    /// Events of the batches answered 2xx.
    accepted: Mutex<Vec<Value>>,
}

async fn receive(
    State(state): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let verified = webhook::verify(
        SECRET,
        &header(TIMESTAMP_HEADER),
        &header(SIGNATURE_HEADER),
        &body,
        Utc::now(),
        Duration::from_secs(300),
    );
    let signature = header(SIGNATURE_HEADER);
    state.requests.lock().unwrap().push(Request { headers, body: body.clone(), verified: verified.clone() });
    if let Err(e) = verified {
        return (StatusCode::UNAUTHORIZED, e.to_string());
    }
    let events = serde_json::from_slice::<Value>(&body).unwrap()["events"].as_array().unwrap().clone();
    let answer = match state.behaviour {
        Behaviour::Accept => (StatusCode::OK, String::new()),
        Behaviour::RejectUser(id) if events.iter().any(|e| e["vomo_user_id"] == id) => {
            (StatusCode::BAD_REQUEST, format!("{{\"error\":\n  \"user {id} has an invalid email\"}}"))
        }
        Behaviour::RejectUser(_) => (StatusCode::OK, String::new()),
        Behaviour::Status(code) => (StatusCode::from_u16(code).unwrap(), "receiver says no".into()),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            (StatusCode::OK, String::new())
        }
        Behaviour::Echo => (StatusCode::BAD_REQUEST, format!("bad signature {signature} for key {SECRET}")),
    };
    if answer.0.is_success() {
        state.accepted.lock().unwrap().extend(events);
    }
    answer
}

/// A receiver on loopback; returns its state and URL.
async fn receiver(behaviour: Behaviour) -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver { behaviour, requests: Mutex::default(), accepted: Mutex::default() });
    let app = Router::new().route("/hook", axum::routing::post(receive)).with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=t0k3n", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

/// A webhook destination whose secret is read from a file (with the
/// trailing newline editors leave).
async fn webhook_dest(url: &str, dir: &Path, timeout: Duration) -> Destination {
    let file = dir.join("hook.key");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let spec = DestinationSpec::parse(&format!("webhook:{url},secret-file={}", file.display())).unwrap();
    Destination::connect("hook", &spec, &outbound(timeout), &[]).await.unwrap()
}

fn mixed_batch() -> Vec<Change> {
    vec![created(user(1)), updated(user(2)), deleted(3)]
}

#[tokio::test]
async fn webhook_delivers_signed_batches() {
    let (state, url) = receiver(Behaviour::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await;
    let batch = mixed_batch();
    assert_eq!(dest.apply("acme", &batch, at(10)).await, ids(&batch));

    let expected: Vec<Value> = batch.iter().map(|c| event_json("acme", c, at(10))).collect();
    assert_eq!(*state.accepted.lock().unwrap(), expected);
    assert_eq!(expected[2]["user"], Value::Null);
    let requests = state.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.verified, Ok(()));
    assert_eq!(request.headers["content-type"], "application/json");
    let timestamp: i64 = request.headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
    assert!((Utc::now().timestamp() - timestamp).abs() < 5);
    let signature = request.headers[SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(signature, webhook::sign(SECRET, timestamp, &request.body));
    assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
}

#[test]
fn signatures_match_an_independent_hmac() {
    // Computed with Python's hmac module.
    let body = br#"{"events":[]}"#;
    assert_eq!(
        webhook::sign(SECRET, 1_700_000_000, body),
        "sha256=ae59f880ef02eeebe0888c5e46f662f82b33fd3eb006ef2164cfeada182acaf6"
    );
    // Keys of exactly one block and longer than one (hashed first).
    assert_eq!(
        webhook::sign(&"k".repeat(64), 1_700_000_000, body),
        "sha256=ecb58a67557023ab49c662c3dd2e606829f140beccba5b7f44b30207db9dce48"
    );
    assert_eq!(
        webhook::sign(&"k".repeat(100), 1_700_000_000, body),
        "sha256=70ddc44e579917d482b66d964d435ff9027a07a9efc0607c9eb4aadea2d40de8"
    );
}

#[test]
fn verify_refuses_tampering_replays_and_garbage() {
    let now = Utc::now();
    let tolerance = Duration::from_secs(300);
    let body = br#"{"events":[{"vomo_user_id":1}]}"#;
    let ts = now.timestamp();
    let good = webhook::sign(SECRET, ts, body);
    let check = |secret: &str, ts: &str, sig: &str, body: &[u8]| {
        webhook::verify(secret, ts, sig, body, now, tolerance)
    };
    assert_eq!(check(SECRET, &ts.to_string(), &good, body), Ok(()));
    let tampered = br#"{"events":[{"vomo_user_id":2}]}"#;
    assert_eq!(check(SECRET, &ts.to_string(), &good, tampered), Err(VerifyError::Mismatch));
    assert_eq!(check("another-secret", &ts.to_string(), &good, body), Err(VerifyError::Mismatch));
    // The timestamp is signed: moving it breaks the signature.
    assert_eq!(check(SECRET, &(ts - 1).to_string(), &good, body), Err(VerifyError::Mismatch));

    let old = ts - 301;
    let replay = webhook::sign(SECRET, old, body);
    assert!(matches!(
        check(SECRET, &old.to_string(), &replay, body),
        Err(VerifyError::Stale { age_secs: 301, tolerance_secs: 300 })
    ));
    let future = ts + 301;
    let early = webhook::sign(SECRET, future, body);
    assert!(matches!(check(SECRET, &future.to_string(), &early, body), Err(VerifyError::Stale { .. })));

    assert_eq!(check(SECRET, "yesterday", &good, body), Err(VerifyError::BadTimestamp));
    assert_eq!(check(SECRET, &ts.to_string(), &good[7..], body), Err(VerifyError::BadSignatureFormat));
    assert_eq!(check(SECRET, &ts.to_string(), "sha256=zz", body), Err(VerifyError::BadSignatureFormat));
}

#[tokio::test]
async fn webhook_server_errors_and_rate_limits_are_retryable() {
    let dir = tempfile::tempdir().unwrap();
    for code in [500, 503, 429, 408] {
        let (state, url) = receiver(Behaviour::Status(code)).await;
        let dest = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await;
        let outcomes = dest.apply("acme", &mixed_batch(), at(1)).await;
        assert_eq!(outcomes.len(), 3);
        for outcome in &outcomes {
            let err = only_error(outcome);
            assert_eq!(err.class, FailureClass::Retryable, "{code}: {err:?}");
            assert!(err.message.contains(&code.to_string()), "{}", err.message);
            assert!(err.message.contains("receiver says no"), "{}", err.message);
            assert!(!err.message.contains("t0k3n"), "the URL's query is hidden: {}", err.message);
        }
        assert_eq!(state.requests.lock().unwrap().len(), 1, "a retryable batch is not split");
    }
}

#[tokio::test]
async fn webhook_a_refused_event_fails_alone() {
    let (state, url) = receiver(Behaviour::RejectUser(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await;
    let batch = mixed_batch();
    let outcomes = dest.apply("acme", &batch, at(1)).await;
    assert_eq!(outcomes[0], Ok("1".into()));
    assert_eq!(outcomes[2], Ok("3".into()));
    let err = only_error(&outcomes[1]);
    assert_eq!(err.class, FailureClass::Permanent);
    assert!(err.message.contains("user 2") && err.message.contains("400"), "{}", err.message);
    // The body excerpt is quoted on one line.
    assert!(err.message.contains(r#"{"error": "user 2 has an invalid email"}"#), "{}", err.message);
    let accepted: Vec<Value> = state.accepted.lock().unwrap().clone();
    assert_eq!(accepted, [event_json("acme", &batch[0], at(1)), event_json("acme", &batch[2], at(1))]);
    assert_eq!(state.requests.lock().unwrap().len(), 4, "the batch, then each event alone");
}

#[tokio::test]
async fn webhook_endpoint_errors_fail_the_batch_without_splitting() {
    let dir = tempfile::tempdir().unwrap();
    for code in [401, 404, 410] {
        let (state, url) = receiver(Behaviour::Status(code)).await;
        let dest = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await;
        let outcomes = dest.apply("acme", &mixed_batch(), at(1)).await;
        for outcome in &outcomes {
            let err = only_error(outcome);
            assert_eq!(err.class, FailureClass::Permanent, "{code}: {err:?}");
            assert!(err.message.contains(&code.to_string()), "{}", err.message);
        }
        assert_eq!(state.requests.lock().unwrap().len(), 1, "{code}: every event alone would get the same");
    }
}

#[tokio::test]
async fn webhook_errors_never_quote_the_secret_or_signature() {
    let (state, url) = receiver(Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await;
    let outcomes = dest.apply("acme", &[deleted(1)], at(1)).await;
    let err = only_error(&outcomes[0]);
    let signature = state.requests.lock().unwrap()[0].headers[SIGNATURE_HEADER].to_str().unwrap().to_owned();
    assert!(err.message.contains("bad signature *** for key ***"), "{}", err.message);
    assert!(!err.message.contains(SECRET) && !err.message.contains(&signature), "{}", err.message);
}

#[tokio::test]
async fn webhook_a_silent_receiver_is_retryable() {
    let (_state, url) = receiver(Behaviour::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = webhook_dest(&url, dir.path(), Duration::from_millis(400)).await;
    let started = Instant::now();
    let outcomes = dest.apply("acme", &mixed_batch(), at(1)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    for outcome in &outcomes {
        let err = only_error(outcome);
        assert_eq!(err.class, FailureClass::Retryable);
        assert!(err.message.contains("timeout"), "{}", err.message);
    }
}

#[tokio::test]
async fn webhook_check_sends_a_signed_empty_batch() {
    let (state, url) = receiver(Behaviour::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    webhook_dest(&url, dir.path(), Duration::from_secs(5)).await.check().await.unwrap();
    {
        let requests = state.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].verified, Ok(()));
        assert_eq!(
            serde_json::from_slice::<Value>(&requests[0].body).unwrap(),
            serde_json::json!({"events": []})
        );
        assert!(state.accepted.lock().unwrap().is_empty());
    }

    let (_state, url) = receiver(Behaviour::Status(404)).await;
    let err = webhook_dest(&url, dir.path(), Duration::from_secs(5)).await.check().await.unwrap_err();
    assert_eq!(err.class, FailureClass::Permanent);
    assert!(err.message.contains("404") && err.message.contains("empty batch"), "{}", err.message);

    let refused = "http://127.0.0.1:1/hook";
    let err = webhook_dest(refused, dir.path(), Duration::from_secs(5)).await.check().await.unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    assert!(err.message.contains("cannot connect"), "{}", err.message);
}

#[tokio::test]
async fn webhook_secret_sources_are_named_when_missing() {
    let name = "VOMO_SYNC_DEST_TEST_SURELY_UNSET_7F3A";
    assert!(std::env::var_os(name).is_none());
    let err = connect(&format!("webhook:http://127.0.0.1:1/h,secret-env={name}")).await.unwrap_err();
    assert_eq!(err.class, FailureClass::Permanent);
    assert!(err.message.contains(name), "{}", err.message);

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.key");
    let spec = format!("webhook:http://127.0.0.1:1/h,secret-file={}", missing.display());
    let err = connect(&spec).await.unwrap_err();
    assert!(err.message.contains("absent.key"), "{}", err.message);

    // A secret from the environment, using a variable every test run has.
    let home = std::env::var("HOME").unwrap();
    assert_eq!(SecretSource::Env("HOME".into()).read().unwrap(), home.trim());
    assert!(connect("webhook:http://127.0.0.1:1/h,secret-env=HOME").await.is_ok());
}

// ------------------------------------------------------------------- JSONL

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn jsonl_appends_one_event_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/users.jsonl");
    let dest = connect(&format!("jsonl:{}", path.display())).await.unwrap();
    dest.check().await.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "check creates the file, writes no line");

    let first = mixed_batch();
    assert_eq!(dest.apply("acme", &first, at(1)).await, ids(&first));
    let second = [updated(user(9))];
    assert_eq!(dest.apply("acme", &second, at(2)).await, ids(&second));
    dest.close().await;

    let read = lines(&path);
    let expected: Vec<Value> = first
        .iter()
        .map(|c| event_json("acme", c, at(1)))
        .chain(second.iter().map(|c| event_json("acme", c, at(2))))
        .collect();
    assert_eq!(read, expected);
    assert_eq!(read[0]["type"], "user.created");
    assert_eq!(read[0]["user"]["email"], "user1@example.org");
    assert_eq!(read[2]["type"], "user.deleted");
    assert_eq!(read[2]["user"], Value::Null);
    assert_eq!(read[3]["synced_at"], "2025-11-13T02:13:22Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jsonl_concurrent_batches_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    let dest = Arc::new(connect(&format!("jsonl:{}", path.display())).await.unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let dest = Arc::clone(&dest);
            tokio::spawn(async move {
                let batch: Vec<Change> = (0..200).map(|i| created(user(task * 1000 + i))).collect();
                let outcomes = dest.apply(&format!("customer-{task}"), &batch, at(1)).await;
                assert!(outcomes.iter().all(Result::is_ok));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let read = lines(&path);
    assert_eq!(read.len(), 8 * 200);
    // Each batch is one contiguous run of its customer, in its own order.
    for run in read.chunks(200) {
        let customer = &run[0]["customer"];
        let task: i64 = customer.as_str().unwrap()["customer-".len()..].parse().unwrap();
        for (i, event) in run.iter().enumerate() {
            assert_eq!(&event["customer"], customer);
            assert_eq!(event["vomo_user_id"], task * 1000 + i as i64);
        }
    }
}

#[tokio::test]
async fn jsonl_a_file_in_the_way_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let path = blocker.join("users.jsonl");
    let dest = connect(&format!("jsonl:{}", path.display())).await.unwrap();
    let outcomes = dest.apply("acme", &mixed_batch(), at(1)).await;
    assert_eq!(outcomes.len(), 3);
    for outcome in &outcomes {
        let err = only_error(outcome);
        assert_eq!(err.class, FailureClass::Permanent);
        assert!(err.message.contains("cannot create the directory"), "{}", err.message);
        assert!(err.message.contains(&path.display().to_string()), "{}", err.message);
    }
    let err = dest.check().await.unwrap_err();
    assert!(err.message.contains("not-a-dir"), "{}", err.message);
}

#[tokio::test]
async fn jsonl_a_full_disk_is_retryable() {
    // /dev/full accepts opens and fails every write with ENOSPC.
    if !Path::new("/dev/full").exists() {
        eprintln!("SKIPPED (no /dev/full here)");
        return;
    }
    let dest = connect("jsonl:/dev/full").await.unwrap();
    let outcomes = dest.apply("acme", &mixed_batch(), at(1)).await;
    for outcome in &outcomes {
        let err = only_error(outcome);
        assert_eq!(err.class, FailureClass::Retryable);
        assert!(err.message.contains("/dev/full"), "{}", err.message);
    }
}
