//! The HubSpot simulator's rules, checked with raw HTTP, and the HubSpot
//! destination against it: backfill with faults, adoption of existing
//! contacts, deletions, per-input errors, limits, token rejection, the daily
//! stop and read-back for reconciliation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vomo_sync::dest::hubspot::PropertyMap;
use vomo_sync::dest::{DestError, Destination, DestinationSpec, Halt, Outcome};
use vomo_sync::domain::{Change, ChangeKind, FailureClass, User};
use vomo_sync::sim::hubspot::{
    self, ALL_SCOPES, DEFAULT_APP, HubspotFaults, HubspotSim, HubspotSimConfig, Limits, OBJECTS_READ,
    OBJECTS_WRITE, SCHEMAS_READ, SCHEMAS_WRITE,
};

// ---------------------------------------------------------------- fixtures

async fn new_sim() -> HubspotSim {
    hubspot::start(HubspotSimConfig { seed: 7, ..HubspotSimConfig::default() })
        .await
        .expect("simulator starts")
}

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
        address: (id % 3 != 0).then(|| format!("{id} Main St")),
        phone: (id % 2 == 0).then(|| format!("+1-555-{id:04}")),
        birthday: Some(format!("19{:02}-0{}-1{}", id % 100, 1 + id % 9, id % 10)),
        gender: Some(["F", "M", "N"][(id % 3) as usize].into()),
        created_at: at(-1000 - id),
        updated_at: at(-id),
        user_status: Some("VERIFIED".into()),
        membership_status: Some("ACCEPTED".into()),
        membership_role: Some(if id % 5 == 0 { "ORGANIZER" } else { "VOLUNTEER" }.into()),
    }
}

fn upsert(user: User) -> Change {
    Change { kind: ChangeKind::Updated, vomo_user_id: user.id, user: Some(user) }
}

/// The HubSpot simulator listens on loopback, which the operator allows.
fn outbound() -> vomo_sync::outbound::OutboundPolicy {
    vomo_sync::outbound::OutboundPolicy::from_entries(&["127.0.0.1".into()])
        .unwrap()
        .with_timeout(Duration::from_secs(2))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// A destination for `token` (kept in a temp file: the spec names where the
/// token is, never the token), with `options` appended to the spec.
struct Harness {
    dest: Destination,
    _dir: tempfile::TempDir,
}

async fn connect(sim: &HubspotSim, token: &str, options: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hs.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    let spec = format!("hubspot:token-file={},base={}{options}", path.display(), sim.base_url());
    let spec = DestinationSpec::parse(&spec).unwrap();
    let dest = Destination::connect("hubspot", &spec, &outbound(), &[]).await.unwrap();
    Harness { dest, _dir: dir }
}

/// A destination with every scope whose `check` has run.
async fn ready(sim: &HubspotSim) -> Harness {
    let harness = connect(sim, sim.default_token(), "").await;
    harness.dest.check().await.unwrap();
    harness
}

fn failure(outcome: &Outcome) -> &DestError {
    outcome.as_ref().expect_err("expected a failure")
}

/// Applies like the engine does: in batches, and retrying retryable
/// failures (its DLQ retry) until only permanent ones are left.
async fn apply_until_settled(dest: &Destination, changes: &[Change], batch: usize) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; changes.len()];
    let mut pending: Vec<usize> = (0..changes.len()).collect();
    for _round in 0..8 {
        let mut retry = Vec::new();
        for chunk in pending.chunks(batch) {
            let batch: Vec<Change> = chunk.iter().map(|i| changes[*i].clone()).collect();
            let results = dest.apply("acme", &batch, Utc::now()).await;
            for (i, result) in chunk.iter().zip(results) {
                if matches!(&result, Err(e) if e.class == FailureClass::Retryable) {
                    retry.push(*i);
                }
                outcomes[*i] = Some(result);
            }
        }
        if retry.is_empty() {
            break;
        }
        pending = retry;
    }
    outcomes.into_iter().map(Option::unwrap).collect()
}

async fn post(sim: &HubspotSim, token: Option<&str>, path: &str, body: Value) -> (StatusCode, Value) {
    let mut request = http().post(format!("{}{path}", sim.base_url())).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

const UPSERT: &str = "/crm/v3/objects/contacts/batch/upsert";

fn input(id: i64, email: &str, traced: bool) -> Value {
    let mut input =
        json!({"idProperty": "vomo_user_id", "id": id.to_string(), "properties": {"email": email}});
    if traced {
        input["objectWriteTraceId"] = json!(id.to_string());
    }
    input
}

// ------------------------------------------------------- simulator rules

#[tokio::test]
async fn auth_answers_401_and_missing_scopes_403_in_hubspots_shape() {
    let sim = new_sim().await;
    let (status, body) = post(&sim, None, UPSERT, json!({"inputs": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());

    let reader = sim.create_token("reader", &[OBJECTS_READ, SCHEMAS_READ]);
    let (status, body) = post(&sim, Some(&reader), UPSERT, json!({"inputs": []})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["category"], "MISSING_SCOPES");
    assert_eq!(body["errors"][0]["context"]["requiredScopes"], json!([OBJECTS_WRITE]));
    assert!(body["message"].as_str().unwrap().contains("required scopes"));

    let (status, body) = post(
        &sim,
        Some(&reader),
        "/oauth/v2/private-apps/get/access-token-info",
        json!({"tokenKey": reader}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["scopes"], json!([OBJECTS_READ, SCHEMAS_READ]));

    assert!(sim.revoke_token(&reader));
    let (status, _) =
        post(&sim, Some(&reader), "/crm/v3/objects/contacts/batch/read", json!({"inputs": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stats = sim.stats();
    assert_eq!(stats.apps["reader"].status[&403], 1);
    assert_eq!(stats.apps["(unauthenticated)"].requests, 2);
}

#[tokio::test]
async fn batch_upsert_enforces_uniqueness_limits_and_validation() {
    let sim = new_sim().await;
    ready(&sim).await; // creates vomo_user_id, unique
    let token = sim.default_token().to_owned();

    // 101 inputs: refused whole.
    let many: Vec<Value> = (0..101).map(|i| input(i, &format!("u{i}@x.org"), true)).collect();
    let (status, body) = post(&sim, Some(&token), UPSERT, json!({ "inputs": many })).await;
    assert_eq!((status, body["category"].as_str()), (StatusCode::BAD_REQUEST, Some("VALIDATION_ERROR")));

    // Without trace ids one bad e-mail fails the batch, and nothing is written.
    let batch = json!({"inputs": [input(1, "a@x.org", false), input(2, "not-an-email", false)]});
    let (status, body) = post(&sim, Some(&token), UPSERT, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("INVALID_EMAIL"), "{body}");
    assert!(sim.contacts().is_empty());

    // With trace ids: 207, the good input written, the bad one named.
    let batch = json!({"inputs": [input(1, "A@X.org", true), input(2, "not-an-email", true)]});
    let (status, body) = post(&sim, Some(&token), UPSERT, batch).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["results"][0]["objectWriteTraceId"], "1");
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"], json!(["2"]));
    let first = sim.contact_by("vomo_user_id", "1").unwrap();
    assert_eq!(first.properties["email"], "a@x.org", "stored lower-cased");

    // The same e-mail for another user: a conflict naming the holder.
    let (status, body) =
        post(&sim, Some(&token), UPSERT, json!({"inputs": [input(3, "a@x.ORG", true)]})).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["errors"][0]["category"], "CONFLICT");
    assert_eq!(body["errors"][0]["message"], format!("Contact already exists. Existing ID: {}", first.id));
    let (status, body) =
        post(&sim, Some(&token), UPSERT, json!({"inputs": [input(3, "a@x.org", false)]})).await;
    assert_eq!((status, body["category"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));

    // Unknown properties, bad dates, a non-unique id property.
    let bad = json!({"inputs": [{"idProperty": "vomo_user_id", "id": "4", "objectWriteTraceId": "4",
        "properties": {"nickname": "x", "date_of_birth": "1990-02-30"}}]});
    let (_, body) = post(&sim, Some(&token), UPSERT, bad).await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("PROPERTY_DOESNT_EXIST") && message.contains("INVALID_DATE"), "{message}");
    let by_name = json!({"inputs": [{"idProperty": "firstname", "id": "Ada", "properties": {}}]});
    let (status, _) = post(&sim, Some(&token), UPSERT, by_name).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Upserting again by the unique property updates, never duplicates.
    let (status, body) =
        post(&sim, Some(&token), UPSERT, json!({"inputs": [input(1, "b@x.org", true)]})).await;
    assert_eq!((status, body["results"][0]["new"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(sim.contacts().len(), 1);
}

#[tokio::test]
async fn read_archive_and_gdpr_delete_follow_hubspot() {
    let sim = new_sim().await;
    ready(&sim).await;
    let token = sim.default_token().to_owned();
    let batch = json!({"inputs": [input(1, "a@x.org", true), input(2, "b@x.org", true)]});
    post(&sim, Some(&token), UPSERT, batch).await;
    let read = |ids: Vec<&str>| {
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        json!({"idProperty": "vomo_user_id", "properties": ["email", "phone"], "inputs": inputs})
    };
    let (status, body) =
        post(&sim, Some(&token), "/crm/v3/objects/contacts/batch/read", read(vec!["1", "9"])).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["results"][0]["properties"]["email"], "a@x.org");
    assert_eq!(body["results"][0]["properties"]["phone"], Value::Null);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");

    let one = sim.contact_by("vomo_user_id", "1").unwrap().id;
    let two = sim.contact_by("vomo_user_id", "2").unwrap().id;
    let archive = json!({"inputs": [{ "id": one.to_string() }]});
    let (status, _) = post(&sim, Some(&token), "/crm/v3/objects/contacts/batch/archive", archive).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.archived().iter().map(|c| c.id).collect::<Vec<_>>(), [one]);
    let (status, _) = post(&sim, Some(&token), "/crm/v3/objects/contacts/batch/read", read(vec!["1"])).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "archived contacts are not read");

    let gdpr = "/crm/v3/objects/contacts/gdpr-delete";
    let (status, _) = post(&sim, Some(&token), gdpr, json!({ "objectId": two.to_string() })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sim.contact(two).is_none());
    assert_eq!(sim.gdpr_deleted()[0].email.as_deref(), Some("b@x.org"));
    let (status, _) = post(&sim, Some(&token), gdpr, json!({ "objectId": two.to_string() })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // By an unknown e-mail: blocklisted, so it can never come back.
    let by_email = json!({"objectId": "gone@x.org", "idProperty": "email"});
    assert_eq!(post(&sim, Some(&token), gdpr, by_email).await.0, StatusCode::NO_CONTENT);
    let (_, body) = post(&sim, Some(&token), UPSERT, json!({"inputs": [input(5, "gone@x.org", true)]})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("BLOCKLISTED_EMAIL"), "{body}");
}

#[tokio::test]
async fn limits_answer_429_with_the_policy_name_and_headers() {
    let sim = new_sim().await;
    sim.set_limits(Limits { ten_secondly: Some(3), daily: Some(1000) });
    let token = sim.default_token().to_owned();
    let groups = "/crm/v3/properties/contacts/groups";
    let get = || http().get(format!("{}{groups}", sim.base_url())).bearer_auth(&token).send();
    for remaining in [2, 1, 0] {
        let response = get().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let header = |n: &str| response.headers()[n].to_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(header("x-hubspot-ratelimit-remaining"), remaining);
        assert_eq!(header("x-hubspot-ratelimit-max"), 3);
        assert_eq!(header("x-hubspot-ratelimit-interval-milliseconds"), 10_000);
    }
    let response = get().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["policyName"].as_str(), body["errorType"].as_str()),
        (Some("TEN_SECONDLY_ROLLING"), Some("RATE_LIMIT"))
    );

    sim.reset_usage();
    sim.set_limits(Limits { ten_secondly: None, daily: Some(2) });
    for _ in 0..2 {
        assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    }
    let response = get().await.unwrap();
    assert_eq!(response.headers()["x-hubspot-ratelimit-daily-remaining"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["policyName"], "DAILY");
    let stats = sim.stats();
    let limited = &stats.apps[DEFAULT_APP].rate_limited;
    assert_eq!((limited["TEN_SECONDLY_ROLLING"], limited["DAILY"]), (1, 1));
    assert_eq!(stats.rate_limited_at.len(), 2);
}

/// Statuses of `n` sequential requests (0 for a connection lost mid-answer).
async fn statuses(sim: &HubspotSim, n: usize) -> Vec<u16> {
    let mut seen = Vec::new();
    for i in 0..n {
        let body = json!({"inputs": [{"id": i.to_string()}]});
        let response = http()
            .post(format!("{}/crm/v3/objects/contacts/batch/read", sim.base_url()))
            .bearer_auth(sim.default_token())
            .json(&body)
            .send()
            .await;
        let status = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                if response.bytes().await.is_ok() { status } else { 0 }
            }
            Err(_) => 0,
        };
        seen.push(status);
    }
    seen
}

#[tokio::test]
async fn faults_are_reproducible_from_their_seed() {
    let faults = HubspotFaults { seed: 42, error_rate: 0.3, drop_rate: 0.2, ..HubspotFaults::default() };
    let (a, b) = (new_sim().await, new_sim().await);
    a.set_faults(faults.clone());
    b.set_faults(faults.clone());
    let (first, second) = (statuses(&a, 40).await, statuses(&b, 40).await);
    assert_eq!(first, second);
    assert!(first.iter().any(|s| *s >= 500) && first.contains(&0) && first.contains(&207), "{first:?}");
    b.set_faults(HubspotFaults { seed: 43, ..faults });
    assert_ne!(statuses(&b, 40).await, first);
}

#[tokio::test]
async fn the_admin_surface_needs_its_secret() {
    let sim = new_sim().await;
    let admin = |secret: &str| {
        http().get(format!("{}/contacts", sim.admin_url())).bearer_auth(secret.to_owned()).send()
    };
    assert_eq!(admin(sim.default_token()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let response = admin(sim.admin_secret()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let created = http()
        .post(format!("{}/tokens", sim.admin_url()))
        .bearer_auth(sim.admin_secret())
        .json(&json!({"app": "crm-import", "scopes": [OBJECTS_READ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = created.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pat-na1-"));
}

// --------------------------------------------------------- the destination

#[tokio::test]
async fn check_creates_the_properties_and_names_missing_scopes() {
    let sim = new_sim().await;
    let harness = connect(&sim, sim.default_token(), "").await;
    harness.dest.check().await.unwrap();
    let properties = sim.properties();
    let id = properties.iter().find(|p| p.name == "vomo_user_id").expect("vomo_user_id created");
    assert!(id.has_unique_value);
    assert_eq!(id.group_name, "vomo");
    for name in [
        "vomo_updated_at",
        "vomo_membership_status",
        "vomo_membership_role",
        "vomo_user_status",
        "vomo_gender",
    ] {
        assert!(properties.iter().any(|p| p.name == name), "{name}");
    }
    assert!(sim.groups().iter().any(|g| g.name == "vomo"));
    harness.dest.check().await.expect("check is repeatable");

    let no_schema = sim.create_token("narrow", &[OBJECTS_READ, OBJECTS_WRITE, SCHEMAS_READ]);
    let narrow = connect(&sim, &no_schema, "").await;
    let error = narrow.dest.check().await.unwrap_err();
    assert!(error.message.contains(SCHEMAS_WRITE), "{}", error.message);
    assert_eq!(error.halt, Some(Halt::Forbidden { missing_scopes: vec![SCHEMAS_WRITE.to_owned()] }));
    assert!(!error.message.contains(&no_schema), "the token is never shown");

    let revoked = sim.create_token("old", &ALL_SCOPES);
    sim.revoke_token(&revoked);
    let error = connect(&sim, &revoked, "").await.dest.check().await.unwrap_err();
    assert_eq!(error.halt, Some(Halt::TokenRejected));
}

#[tokio::test]
async fn a_backfill_of_5000_and_edits_end_equal_field_by_field_despite_faults() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    sim.set_faults(HubspotFaults {
        seed: 3,
        error_rate: 0.05,
        drop_rate: 0.03,
        slow_rate: 0.02,
        slow_ms: 2500, // beyond the client's 2 s timeout
        ..HubspotFaults::default()
    });
    let mut users: Vec<User> = (1..=5000).map(user).collect();
    let changes: Vec<Change> = users.iter().cloned().map(upsert).collect();
    let outcomes = apply_until_settled(&harness.dest, &changes, 250).await;
    assert!(outcomes.iter().all(Result::is_ok), "{:?}", outcomes.iter().find(|o| o.is_err()));
    // Edits, as polling would bring them: new phone, new name, new e-mail, cleared address.
    for user in users.iter_mut().filter(|u| u.id % 17 == 0) {
        user.phone = Some(format!("+44-{}", user.id));
        user.last_name = format!("Edited{}", user.id);
        user.email = format!("moved{}@example.net", user.id);
        user.address = None;
        user.updated_at += chrono::Duration::seconds(3600);
    }
    let edits: Vec<Change> = users.iter().filter(|u| u.id % 17 == 0).cloned().map(upsert).collect();
    let outcomes = apply_until_settled(&harness.dest, &edits, 150).await;
    assert!(outcomes.iter().all(Result::is_ok));
    common::hubspot::assert_contacts_match(&sim, &users);
    tokio::time::sleep(Duration::from_secs(1)).await; // slow answers the client gave up on finish
    let stats = sim.stats();
    let app = &stats.apps[DEFAULT_APP];
    assert!(app.status.keys().any(|s| *s >= 500), "faults were on: {:?}", app.status);
    assert!(app.rate_limited.is_empty(), "no 429 at the default limits: {:?}", app.rate_limited);
    let figures = harness.dest.budget_figures().unwrap();
    assert_eq!(figures.configured_per_10s, 80.0);
    // Every request the budget let through was sent, retries included; a
    // few die on a connection the server had just closed and never arrive.
    let arrived = app.requests + stats.apps["(token-info)"].requests;
    assert!(
        figures.requests >= arrived && figures.requests <= arrived + arrived / 20,
        "{} vs {arrived}",
        figures.requests
    );
}

#[tokio::test]
async fn contacts_per_second_at_the_default_limits() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    let changes: Vec<Change> = (1..=5000).map(user).map(upsert).collect();
    let started = Instant::now();
    let outcomes = apply_until_settled(&harness.dest, &changes, 500).await;
    let elapsed = started.elapsed();
    assert!(outcomes.iter().all(Result::is_ok));
    let rate = 5000.0 / elapsed.as_secs_f64();
    eprintln!(
        "HubSpot destination: 5000 contacts in {:.1} s = {rate:.0} contacts/s (budget 80 requests/10 s)",
        elapsed.as_secs_f64()
    );
    // 50 upserts at 8 requests/s: a little over 6 s; the limit, not the code, decides.
    assert!(rate > 300.0 && rate < 1000.0, "{rate}");
}

#[tokio::test]
async fn existing_contacts_with_the_same_emails_are_adopted_not_duplicated() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    let mut seeded = BTreeMap::new();
    for id in 1..=20 {
        let email = format!("USER{id}@Example.org"); // the CRM's own spelling
        let contact = sim.seed_contact(&[("email", &email), ("firstname", "Known")]).unwrap();
        seeded.insert(id, contact);
    }
    // One known person already belongs to another VOMO user: never taken over.
    sim.seed_contact(&[("email", "user21@example.org"), ("vomo_user_id", "999")]).unwrap();
    let changes: Vec<Change> = (1..=30).map(user).map(upsert).collect();
    let outcomes = harness.dest.apply("acme", &changes, Utc::now()).await;
    for (id, contact) in &seeded {
        assert_eq!(outcomes[*id as usize - 1].as_ref().unwrap(), &contact.to_string(), "user {id} adopted");
        let adopted = sim.contact(*contact).unwrap();
        assert_eq!(adopted.properties["vomo_user_id"], id.to_string());
        assert_eq!(adopted.properties["firstname"], format!("First{id}"));
    }
    let refused = failure(&outcomes[20]);
    assert_eq!(refused.class, FailureClass::Permanent);
    assert!(refused.message.contains("VOMO user 999"), "{}", refused.message);
    assert!(outcomes[21..].iter().all(Result::is_ok));
    assert_eq!(sim.contacts().len(), 30, "20 adopted + 1 untouched + 9 new, no duplicates");

    // A HubSpot answering all or nothing: the batch's 409 is split down to
    // the conflicting user, who is then adopted all the same.
    let whole = new_sim().await;
    let harness = ready(&whole).await;
    let known = whole.seed_contact(&[("email", "user4@example.org")]).unwrap();
    whole.set_faults(HubspotFaults { whole_batch_errors: true, ..HubspotFaults::default() });
    let outcomes =
        harness.dest.apply("acme", &(1..=6).map(user).map(upsert).collect::<Vec<_>>(), Utc::now()).await;
    assert_eq!(outcomes[3].as_ref().unwrap(), &known.to_string());
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(whole.contacts().len(), 6);
}

#[tokio::test]
async fn deleted_users_are_archived_and_anonymised_ones_gdpr_deleted() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    let changes: Vec<Change> = (1..=4).map(user).map(upsert).collect();
    let ids: Vec<String> =
        harness.dest.apply("acme", &changes, Utc::now()).await.into_iter().map(Result::unwrap).collect();
    let mut erased = user(2);
    erased.email = "vomodeleteduser2@vomo.org".into();
    let removals = vec![
        Change { kind: ChangeKind::Deleted, vomo_user_id: 1, user: None },
        Change { kind: ChangeKind::Deleted, vomo_user_id: 2, user: Some(erased.clone()) },
        Change { kind: ChangeKind::Deleted, vomo_user_id: 77, user: None },
    ];
    let outcomes = harness.dest.apply("acme", &removals, Utc::now()).await;
    assert_eq!(outcomes[0].as_ref().unwrap(), &ids[0]);
    assert_eq!(outcomes[1].as_ref().unwrap(), &ids[1]);
    assert_eq!(outcomes[2].as_ref().unwrap(), "", "nothing to delete for a user HubSpot never had");
    assert_eq!(sim.archived().iter().map(|c| c.id.to_string()).collect::<Vec<_>>(), [ids[0].clone()]);
    let gdpr = sim.gdpr_deleted();
    assert_eq!((gdpr.len(), gdpr[0].email.as_deref()), (1, Some("user2@example.org")));
    assert_eq!(sim.contacts().len(), 2);
    // Replays are harmless.
    let again = harness.dest.apply("acme", &removals, Utc::now()).await;
    assert!(again.iter().all(|o| o.as_ref().is_ok_and(String::is_empty)), "{again:?}");

    // delete=archive: an erasure is archived too.
    let archive_only = connect(&sim, sim.default_token(), ",delete=archive").await;
    let erased3 = User { email: "vomodeleteduser3@vomo.org".into(), ..user(3) };
    let change = Change { kind: ChangeKind::Deleted, vomo_user_id: 3, user: Some(erased3) };
    archive_only.dest.apply("acme", &[change], Utc::now()).await[0].as_ref().unwrap();
    assert_eq!(sim.archived().len(), 2);
    assert_eq!(sim.gdpr_deleted().len(), 1);
}

fn with_bad_inputs() -> Vec<Change> {
    (1..=10)
        .map(|id| {
            let mut u = user(id);
            if id == 3 {
                u.email = "three-at-example.org".into();
            }
            if id == 6 {
                u.birthday = Some("1990-02-31".into());
            }
            upsert(u)
        })
        .collect()
}

fn assert_bad_inputs_alone(outcomes: &[Outcome]) {
    for (i, outcome) in outcomes.iter().enumerate() {
        match i + 1 {
            3 => {
                let error = failure(outcome);
                assert_eq!(error.class, FailureClass::Permanent);
                assert!(
                    error.message.contains("INVALID_EMAIL") && error.message.contains("user 3"),
                    "{}",
                    error.message
                );
            }
            6 => assert!(failure(outcome).message.contains("INVALID_DATE"), "{}", failure(outcome).message),
            _ => assert!(outcome.is_ok(), "{i}: {outcome:?}"),
        }
    }
}

#[tokio::test]
async fn bad_inputs_fail_alone_with_hubspots_reason() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    let outcomes = harness.dest.apply("acme", &with_bad_inputs(), Utc::now()).await;
    assert_bad_inputs_alone(&outcomes);
    assert_eq!(sim.contacts().len(), 8);
    assert_eq!(sim.stats().apps[DEFAULT_APP].endpoints["upsert"], 1, "one call: HubSpot answered per input");

    // A HubSpot that fails such a batch whole: split until the bad inputs stand alone.
    let whole = new_sim().await;
    let harness = ready(&whole).await;
    whole.set_faults(HubspotFaults { whole_batch_errors: true, ..HubspotFaults::default() });
    let outcomes = harness.dest.apply("acme", &with_bad_inputs(), Utc::now()).await;
    assert_bad_inputs_alone(&outcomes);
    assert_eq!(whole.contacts().len(), 8);
    assert!(whole.stats().apps[DEFAULT_APP].endpoints["upsert"] > 2);
}

#[tokio::test]
async fn a_shared_account_costs_at_most_one_429_per_ten_seconds() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    // Another app of the customer's account uses 40 of the 100 requests per 10 s.
    let other = sim.create_token("other-app", &ALL_SCOPES);
    let url = format!("{}/crm/v3/properties/contacts/groups", sim.base_url());
    let background = tokio::spawn(async move {
        loop {
            let _ = http().get(&url).bearer_auth(&other).send().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let changes: Vec<Change> = (1..=12_000).map(user).map(upsert).collect();
    let outcomes = apply_until_settled(&harness.dest, &changes, 1000).await;
    background.abort();
    assert!(outcomes.iter().all(Result::is_ok));
    let ours: Vec<u64> =
        sim.stats().rate_limited_at.iter().filter(|r| r.app == DEFAULT_APP).map(|r| r.at_ms).collect();
    eprintln!("429s of vomo-sync at ms {ours:?}");
    assert!(!ours.is_empty(), "the test must make the account overflow");
    for pair in ours.windows(2) {
        assert!(pair[1] - pair[0] >= 10_000, "two 429s within 10 s: {ours:?}");
    }
    let figures = harness.dest.budget_figures().unwrap();
    assert_eq!(figures.rate_limited.values().sum::<u64>(), ours.len() as u64);
    assert!(figures.effective_per_10s < 80.0, "{figures:?}");
}

#[tokio::test]
async fn rejected_and_forbidden_tokens_halt_the_destination() {
    let sim = new_sim().await;
    ready(&sim).await;
    let token = sim.create_token("to-revoke", &ALL_SCOPES);
    let harness = connect(&sim, &token, "").await;
    sim.revoke_token(&token);
    let outcomes = harness.dest.apply("acme", &[upsert(user(1)), upsert(user(2))], Utc::now()).await;
    for outcome in &outcomes {
        let error = failure(outcome);
        assert_eq!((error.class, &error.halt), (FailureClass::Retryable, &Some(Halt::TokenRejected)));
        assert!(error.message.contains("401"), "{}", error.message);
    }
    let read_only = sim.create_token("read-only", &[OBJECTS_READ, SCHEMAS_READ]);
    let harness = connect(&sim, &read_only, "").await;
    let outcome = &harness.dest.apply("acme", &[upsert(user(1))], Utc::now()).await[0];
    assert_eq!(
        failure(outcome).halt,
        Some(Halt::Forbidden { missing_scopes: vec![OBJECTS_WRITE.to_owned()] })
    );
    assert_eq!(sim.stats().apps["read-only"].endpoints["upsert"], 1, "a 403 is not split or retried");
}

#[tokio::test]
async fn the_daily_limit_stops_the_destination_for_the_day() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    sim.reset_usage();
    sim.set_limits(Limits { ten_secondly: Some(100), daily: Some(3) });
    let changes: Vec<Change> = (1..=500).map(user).map(upsert).collect();
    let outcomes = harness.dest.apply("acme", &changes, Utc::now()).await;
    assert!(outcomes[..300].iter().all(Result::is_ok));
    let error = failure(&outcomes[300]);
    let Some(Halt::DailyLimit { until }) = error.halt else { panic!("{error:?}") };
    assert!(until > Utc::now() && until <= Utc::now() + chrono::Duration::minutes(30));
    assert!(error.message.contains("daily request limit"), "{}", error.message);
    assert_eq!(error.class, FailureClass::Retryable);
    let figures = harness.dest.budget_figures().unwrap();
    assert_eq!((figures.daily_remaining, figures.daily_stop_until), (Some(0), Some(until)));
    let before = sim.stats().apps[DEFAULT_APP].requests;
    let later = harness.dest.apply("acme", &changes[400..], Utc::now()).await;
    assert!(later.iter().all(|o| matches!(failure(o).halt, Some(Halt::DailyLimit { .. }))));
    assert_eq!(sim.stats().apps[DEFAULT_APP].requests, before, "nothing is sent while stopped");
    assert!(sim.stats().apps[DEFAULT_APP].rate_limited.is_empty(), "stopped before HubSpot had to refuse");
}

#[tokio::test]
async fn reconciliation_reads_contacts_back() {
    let sim = new_sim().await;
    let harness = ready(&sim).await;
    let users: Vec<User> = (1..=120).map(user).collect();
    let changes: Vec<Change> = users.iter().cloned().map(upsert).collect();
    assert!(harness.dest.apply("acme", &changes, Utc::now()).await.iter().all(Result::is_ok));
    let refs: Vec<&User> = users.iter().collect();
    assert!(harness.dest.missing_or_different(&refs).await.unwrap().is_empty());
    // Behind the sync's back: an edited phone, an archived contact.
    let token = sim.default_token().to_owned();
    let three = sim.contact_by("vomo_user_id", "3").unwrap().id.to_string();
    let edit = json!({"inputs": [{"id": three, "properties": {"phone": "000"}}]});
    assert_eq!(
        post(&sim, Some(&token), "/crm/v3/objects/contacts/batch/update", edit).await.0,
        StatusCode::OK
    );
    let gone = sim.contact_by("vomo_user_id", "110").unwrap().id.to_string();
    post(&sim, Some(&token), "/crm/v3/objects/contacts/batch/archive", json!({"inputs": [{ "id": gone }]}))
        .await;
    assert_eq!(harness.dest.missing_or_different(&refs).await.unwrap(), [3, 110]);
}

#[tokio::test]
async fn a_property_mapping_override_is_used_and_checked() {
    let sim = new_sim().await;
    let overrides = BTreeMap::from([("phone".to_owned(), "mobilephone".to_owned())]);
    let map = PropertyMap::with_overrides(&overrides).unwrap();
    let spec = DestinationSpec::parse(&format!("hubspot:token-env=UNUSED,base={}", sim.base_url())).unwrap();
    let DestinationSpec::Hubspot(spec) = spec else { panic!() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::write(&path, sim.default_token()).unwrap();
    let spec = vomo_sync::dest::HubspotSpec { token: vomo_sync::dest::SecretSource::File(path), ..spec };
    let dest = vomo_sync::dest::hubspot::HubspotDest::new(&spec, http()).unwrap().with_properties(map);
    dest.check().await.unwrap();
    dest.apply(&[upsert(user(2))]).await[0].as_ref().unwrap();
    let contact = sim.contact_by("vomo_user_id", "2").unwrap();
    assert_eq!(contact.properties["mobilephone"], "+1-555-0002");
    assert!(!contact.properties.contains_key("phone"));

    let missing = BTreeMap::from([("gender".to_owned(), "pronouns".to_owned())]);
    let dest = vomo_sync::dest::hubspot::HubspotDest::new(&spec, http())
        .unwrap()
        .with_properties(PropertyMap::with_overrides(&missing).unwrap());
    let error = dest.check().await.unwrap_err();
    assert!(error.message.contains("pronouns do not exist"), "{}", error.message);
}

#[test]
fn simulate_hubspot_prints_a_base_url_and_a_working_token() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vomo-sync"))
        .env("HOME", home.path())
        .env("VOMO_SYNC_MASTER_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .args(["simulate", "--orgs", "1", "--users", "3", "--port", "0", "--hubspot", "--hubspot-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut in_hubspot, mut base, mut token, mut spec) =
        (false, String::new(), String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        in_hubspot |= line.starts_with("HubSpot simulator");
        let field = |name: &str| {
            line.trim().strip_prefix(name).map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        };
        if in_hubspot {
            base = field("base URL").unwrap_or(base);
            token = field("token").unwrap_or(token);
            spec = field("dest spec").unwrap_or(spec);
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(base.starts_with("http://127.0.0.1:") && token.starts_with("pat-na1-"), "{base} {token}");
    assert_eq!(spec, format!("hubspot:token-env=HS_TOKEN,base={base}"));
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        http()
            .get(format!("{base}/crm/v3/properties/contacts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, StatusCode::OK);
}
