//! The customer-facing health page served by headless: each customer's
//! token sees that customer only (401 without a valid token, 404 for
//! another customer), JSON by default and HTML for browsers, and the state
//! follows what happens: ok after the backfill, degraded with a failed
//! record, failing when VOMO rejects the token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::time::{Duration, Instant};

use common::sim_with;
use common::sync::{engine_config, onboard, state_db};
use tokio_util::sync::CancellationToken;
use vomo_sync::domain::{ContentHash, CustomerStatus, FailureClass};
use vomo_sync::engine::health::HealthAuth;
use vomo_sync::engine::{Command, Engine};
use vomo_sync::engine::{Details, Operator};
use vomo_sync::store::NewDlqEntry;

async fn get(url: &str, token: Option<&str>, html: bool) -> (u16, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if html {
        request = request.header("Accept", "text/html");
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `url` until its JSON `state` is `want`.
async fn until_state(url: &str, token: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(url, Some(token), false).await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        if json["state"] == want {
            return json;
        }
        assert!(Instant::now() < deadline, "state never became {want}: {json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_customer_sees_its_own_health_and_nothing_else() {
    let sim = sim_with(&[("acme", 100), ("beta", 50)]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = state_db(dir.path()).await;
    for name in ["acme", "beta"] {
        let dest = format!("jsonl:{}", dir.path().join(format!("{name}.jsonl")).display());
        onboard(&store, &sim, name, name, &[dest], 0.0).await;
    }
    let ops = Operator::new(store.clone(), engine_config()).unwrap();
    let acme_token = health_token(&ops, "acme").await;
    let beta_token = health_token(&ops, "beta").await;
    assert_ne!(acme_token, beta_token);
    let engine = Engine::start(store.clone(), engine_config()).await.unwrap();
    let stop = CancellationToken::new();
    let addr = vomo_sync::headless::serve(
        "127.0.0.1:0".parse().unwrap(),
        engine.watch(),
        HealthAuth::new(store.clone()),
        stop.clone(),
    )
    .await
    .unwrap();
    let acme = format!("http://{addr}/customers/acme/health");
    let beta = format!("http://{addr}/customers/beta/health");

    assert_eq!(get(&acme, None, false).await.0, 401);
    assert_eq!(get(&acme, Some("not-a-token"), false).await.0, 401);
    assert_eq!(get(&beta, Some(&acme_token), false).await.0, 404, "another customer's page");
    assert_eq!(get(&format!("http://{addr}/customers/nobody/health"), Some(&acme_token), false).await.0, 404);

    let json = until_state(&acme, &acme_token, "ok").await;
    assert_eq!(json["users_synced"], 100);
    assert!(json["last_successful_sync"].is_string(), "{json}");
    assert!(json["reasons"][0].as_str().unwrap().starts_with("Working"), "{json}");
    let (status, page) = get(&format!("{acme}?token={acme_token}"), None, true).await;
    assert_eq!(status, 200);
    assert!(page.contains("<h1>acme</h1>") && page.contains("Working"), "{page}");

    // A record the customer's system refused: degraded, in plain words.
    let customer = store.require_customer("acme").await.unwrap();
    let entry = NewDlqEntry {
        vomo_user_id: 1,
        destination: "jsonl".into(),
        change_kind: "updated".into(),
        payload: "{}".into(),
        content_hash: ContentHash::from_hex("00000000000000000000000000000000").unwrap(),
        vomo_updated_at: chrono::Utc::now(),
        class: FailureClass::Permanent,
        message: "refused".into(),
        next_retry_at: None,
    };
    store.park_in_dlq(customer.id, &entry).await.unwrap();
    let json = until_state(&acme, &acme_token, "degraded").await;
    assert_eq!(json["records_failed"], 1);
    assert!(json["reasons"][0].as_str().unwrap().contains("could not be delivered"), "{json}");

    // VOMO rejects beta's token: failing, and acme is unaffected.
    until_state(&beta, &beta_token, "ok").await;
    sim.revoke_token(&sim.token("beta").unwrap());
    engine.send(Command::PollNow { customer: "beta".into() }, "tester").await.unwrap();
    let json = until_state(&beta, &beta_token, "failing").await;
    assert!(json["reasons"][0].as_str().unwrap().contains("access token"), "{json}");
    assert_eq!(json["token_state"], "rejected");
    assert_eq!(store.require_customer("beta").await.unwrap().status, CustomerStatus::TokenRejected);
    assert_eq!(get(&acme, Some(&acme_token), false).await.0, 200);

    // A new token replaces the old one.
    let newer = health_token(&ops, "acme").await;
    assert_eq!(get(&acme, Some(&acme_token), false).await.0, 401);
    assert_eq!(get(&acme, Some(&newer), false).await.0, 200);
    stop.cancel();
    engine.shutdown().await;
}

/// A new health token for `customer`, issued through the one door.
async fn health_token(operator: &Operator, customer: &str) -> String {
    let issue = vomo_sync::engine::Command::IssueHealthToken { customer: customer.into() };
    let done = operator.send(issue, "tester").await.unwrap();
    match done.details {
        Details::Secret(token) => token,
        other => panic!("no token: {other:?}"),
    }
}
