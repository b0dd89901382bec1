//! The engine with a HubSpot destination, against both simulators with
//! faults on: a backfill and polls with edits end with HubSpot's contacts
//! equal to VOMO's users, refused inputs wait in the DLQ with HubSpot's
//! reason, a known e-mail is adopted, an erasure is GDPR-deleted; a rejected
//! HubSpot token halts that destination (not the customer), every surface
//! says so, nothing is sent while halted, and a new token resumes it; a
//! customer's property mapping file is used and checked at onboarding.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hubspot::assert_contacts_match;
use common::sim_with;
use common::sync::{assert_mirrors, engine_config, onboard, operator, replay_jsonl, run_once, state_db};
use vomo_sync::domain::{ApiToken, CustomerSettings, FailureClass, User};
use vomo_sync::engine::{Command, Engine, EngineHandle, EngineSnapshot, OnboardRequest};
use vomo_sync::sim::hubspot::{self, ALL_SCOPES, HubspotFaults, HubspotSim, HubspotSimConfig};
use vomo_sync::sim::{Faults, UserFields};
use vomo_sync::store::Store;

async fn hubspot_sim() -> HubspotSim {
    hubspot::start(HubspotSimConfig { seed: 11, ..HubspotSimConfig::default() }).await.unwrap()
}

/// A spec naming a token file in `dir` that holds `token`.
fn hubspot_spec(sim: &HubspotSim, dir: &Path, token: &str, options: &str) -> (String, PathBuf) {
    let path = dir.join("hubspot.token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    (format!("hubspot:token-file={},base={}{options}", path.display(), sim.base_url()), path)
}

/// Runs `headless --once` until the DLQ holds only permanent entries.
async fn settle(store: &Store) {
    for _ in 0..30 {
        run_once(store).await;
        let pending = store.pending_dlq(None).await.unwrap();
        if pending.iter().all(|e| e.class == FailureClass::Permanent) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("retryable DLQ entries never drained: {:?}", store.pending_dlq(None).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5000_user_backfill_and_polls_end_with_hubspot_equal_to_vomo_despite_faults() {
    let vomo = sim_with(&[("acme", 5000)]).await;
    let hs = hubspot_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    // The customer's CRM already knows one volunteer by e-mail.
    let users = vomo.users("acme").unwrap();
    let known = &users[10];
    let existing = hs.seed_contact(&[("email", &known.email), ("firstname", "Known")]).unwrap();
    // One VOMO record HubSpot will refuse.
    let refused = users[20].id;
    vomo.update_user(
        refused,
        &UserFields { email: Some("not-an-address".into()), ..UserFields::default() },
        false,
    )
    .unwrap();
    let (spec, _) = hubspot_spec(&hs, dir.path(), hs.default_token(), "");
    onboard(&store, &vomo, "acme", "acme", &[spec], 0.0).await;
    hs.set_faults(HubspotFaults { seed: 5, error_rate: 0.04, drop_rate: 0.02, ..HubspotFaults::default() });
    vomo.set_faults(Faults { seed: 5, error_rate: 0.03, ..Faults::default() });

    settle(&store).await;
    let expected = |all: Vec<User>| -> Vec<User> { all.into_iter().filter(|u| u.id != refused).collect() };
    assert_contacts_match(&hs, &expected(vomo.users("acme").unwrap()));
    let adopted = hs.contact_by("vomo_user_id", &known.id.to_string()).unwrap();
    assert_eq!(adopted.id, existing, "the contact that held the e-mail was adopted, not duplicated");
    let customer = store.require_customer("acme").await.unwrap();
    let mapping = store.lookup_mappings(customer.id, &[known.id]).await.unwrap().remove(&known.id).unwrap();
    assert_eq!(mapping.external_ids["hubspot"], existing.to_string(), "HubSpot's id is the external id");
    let parked = store.pending_dlq(None).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!((parked[0].vomo_user_id, parked[0].class), (refused, FailureClass::Permanent));
    assert!(parked[0].message.contains("INVALID_EMAIL"), "HubSpot's reason: {}", parked[0].message);

    // Polls carry edits, an erasure and a new user.
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    for id in ids.iter().step_by(97).take(40) {
        let fields = UserFields {
            phone: Some(format!("+44-{id}")),
            last_name: Some(format!("Edited{id}")),
            ..UserFields::default()
        };
        vomo.update_user(*id, &fields, true).unwrap();
    }
    vomo.anonymise_user(ids[33]).unwrap();
    vomo.create_user("acme", &UserFields::default()).unwrap();
    vomo.advance_clock(2);
    settle(&store).await;
    let now: Vec<User> = vomo.users("acme").unwrap().into_iter().filter(|u| !u.is_anonymised()).collect();
    assert_contacts_match(&hs, &expected(now));
    assert_eq!(hs.gdpr_deleted().len(), 1, "the erased volunteer is removed with HubSpot's GDPR delete");
    assert!(hs.archived().is_empty());
    let stats = hs.stats();
    assert!(stats.apps.values().any(|a| a.status.keys().any(|s| *s >= 500)), "faults were on");
    assert!(
        stats.rate_limited_at.is_empty(),
        "no 429 at HubSpot's default limits: {:?}",
        stats.rate_limited_at
    );
}

/// Waits until `check` holds for the latest snapshot.
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

fn halted(snapshot: &EngineSnapshot) -> bool {
    snapshot.customer("acme").is_some_and(|c| c.destinations.iter().any(|d| d.halt.is_some()))
}

/// Every surface says the same: this destination is halted, not the
/// customer — snapshot, metrics, the health page, alerts and `status`.
async fn assert_every_surface_says_halted(snapshot: &EngineSnapshot, store: &Store) {
    let acme = snapshot.customer("acme").unwrap();
    let hubspot = acme.destinations.iter().find(|d| d.kind == "hubspot").unwrap();
    let halt = hubspot.halt.as_ref().unwrap();
    assert_eq!(halt.reason, "token_rejected");
    assert!(halt.hint.contains("token-file"), "{}", halt.hint);
    assert!(hubspot.budget.is_some(), "HubSpot's own budget is shown beside VOMO's");
    assert_eq!(acme.status, vomo_sync::domain::CustomerStatus::Active, "VOMO's side goes on");
    let metrics = vomo_sync::headless::render_metrics(snapshot).unwrap();
    assert!(
        metrics.contains(
            r#"vomo_sync_destination_halted{customer="acme",destination="hubspot",kind="hubspot"} 1"#
        ),
        "{metrics}"
    );
    let health = vomo_sync::engine::health::customer_health(acme, &snapshot.thresholds, chrono::Utc::now());
    assert_eq!(health.state, vomo_sync::engine::health::HealthState::Failing);
    assert!(health.reasons[0].contains("HubSpot destination"), "{:?}", health.reasons);
    let kinds: Vec<_> = vomo_sync::engine::alerts::conditions(acme, &snapshot.thresholds, chrono::Utc::now())
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert!(kinds.contains(&vomo_sync::engine::alerts::AlertKind::DestinationHalted), "{kinds:?}");
    let listed =
        vomo_sync::engine::ops::Ops::new(store.clone(), engine_config()).unwrap().status(Some("acme")).await;
    let listed = listed.unwrap();
    assert!(listed[0].destinations.iter().any(|d| d.halt.is_some()), "status reads the owner's figures");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_hubspot_token_halts_that_destination_everywhere_until_a_new_one_is_put() {
    let vomo = sim_with(&[("acme", 300)]).await;
    let hs = hubspot_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let token = hs.create_token("acme-app", &ALL_SCOPES);
    let (spec, token_file) = hubspot_spec(&hs, dir.path(), &token, "");
    let jsonl = dir.path().join("acme.jsonl");
    onboard(&store, &vomo, "acme", "acme", &[spec, format!("jsonl:{}", jsonl.display())], 0.0).await;
    let handle = Engine::start(store.clone(), engine_config()).await.unwrap();
    until(&handle, "the backfill", |s| s.customer("acme").is_some_and(|c| c.users_synced == 300)).await;
    assert_eq!(hs.contacts().len(), 300);

    hs.revoke_token(&token);
    let ids: Vec<i64> = vomo.users("acme").unwrap().iter().map(|u| u.id).collect();
    let edit = |id: i64, phone: &str| {
        vomo.update_user(id, &UserFields { phone: Some(phone.into()), ..UserFields::default() }, true)
            .unwrap();
    };
    for id in &ids[..5] {
        edit(*id, "+1-555-0101");
    }
    vomo.advance_clock(2);
    handle.send(Command::PollNow { customer: "acme".into() }, "tester").await.unwrap();
    let snapshot = until(&handle, "the destination halted", halted).await;

    assert_every_surface_says_halted(&snapshot, &store).await;

    // The JSONL destination got the edits; HubSpot's wait in the DLQ, and
    // later changes cost HubSpot no request while it is halted.
    let wait = Instant::now() + Duration::from_secs(20);
    while replay_jsonl(&jsonl)[&ids[0]].as_ref().unwrap().phone.as_deref() != Some("+1-555-0101") {
        assert!(Instant::now() < wait, "the JSONL destination did not get the edit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = |hs: &HubspotSim| hs.stats().apps.values().map(|a| a.requests).sum::<u64>();
    let before = sent(&hs);
    for id in &ids[5..10] {
        edit(*id, "+1-555-0202");
    }
    vomo.advance_clock(2);
    handle.send(Command::PollNow { customer: "acme".into() }, "tester").await.unwrap();
    let wait = Instant::now() + Duration::from_secs(20);
    while replay_jsonl(&jsonl)[&ids[9]].as_ref().unwrap().phone.as_deref() != Some("+1-555-0202") {
        assert!(Instant::now() < wait, "the second poll did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent(&hs), before, "nothing is sent to a halted destination");
    let parked = store.pending_dlq(None).await.unwrap();
    assert_eq!(parked.len(), 10, "{parked:?}");
    assert!(parked.iter().all(|e| e.destination == "hubspot" && e.class == FailureClass::Retryable));

    // A new token where the spec points, and an operator's retry: the
    // destination is tried at once, with the new token, and resumes.
    let fresh = hs.create_token("acme-app-2", &ALL_SCOPES);
    std::fs::write(&token_file, format!("{fresh}\n")).unwrap();
    handle.send(Command::RetryDlq { customer: "acme".into(), id: None }, "tester").await.unwrap();
    until(&handle, "the halt cleared", |s| !halted(s)).await;
    let wait = Instant::now() + Duration::from_secs(20);
    while !store.pending_dlq(None).await.unwrap().is_empty() {
        assert!(Instant::now() < wait, "the parked changes were not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_contacts_match(&hs, &vomo.users("acme").unwrap());
    assert_mirrors(&replay_jsonl(&jsonl), &vomo.users("acme").unwrap());
    handle.shutdown().await;
}

#[tokio::test]
async fn a_customers_property_mapping_file_is_used_and_checked_at_onboarding() {
    let vomo = sim_with(&[("acme", 40)]).await;
    let hs = hubspot_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    let mapping = dir.path().join("acme-hubspot.toml");
    std::fs::write(&mapping, "[dest.hubspot.properties]\nphone = \"mobilephone\"\n").unwrap();
    let (spec, _) =
        hubspot_spec(&hs, dir.path(), hs.default_token(), &format!(",properties={}", mapping.display()));
    onboard(&store, &vomo, "acme", "acme", &[spec], 0.0).await;
    run_once(&store).await;
    let user = vomo.users("acme").unwrap().into_iter().find(|u| u.phone.is_some()).unwrap();
    let contact = hs.contact_by("vomo_user_id", &user.id.to_string()).unwrap();
    assert_eq!(contact.properties.get("mobilephone"), user.phone.as_ref());
    assert!(!contact.properties.contains_key("phone"));

    // A typo in another customer's file is refused at onboarding, naming it.
    let typo = dir.path().join("beta-hubspot.toml");
    std::fs::write(&typo, "[dest.hubspot.properties]\nphnoe = \"mobilephone\"\n").unwrap();
    let (spec, _) =
        hubspot_spec(&hs, dir.path(), hs.default_token(), &format!(",properties={}", typo.display()));
    let request = OnboardRequest {
        name: "beta".into(),
        token: ApiToken::new(&vomo.token("acme").unwrap()).unwrap(),
        vomo_url: vomo.base_url().to_owned(),
        destinations: vec![vomo_sync::dest::DestinationSpec::parse(&spec).unwrap()],
        settings: CustomerSettings::default(),
    };
    let error =
        operator(&store).send(Command::Onboard(Box::new(request)), "tester").await.unwrap_err().to_string();
    assert!(error.contains("beta-hubspot.toml") && error.contains("unknown VOMO field \"phnoe\""), "{error}");
    assert!(store.require_customer("beta").await.is_err(), "nothing was stored");
}
