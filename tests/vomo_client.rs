//! The VOMO client against the simulator: paging to the end, inclusive
//! filters, tolerant decoding, every error class, and no token in any output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{client_for, client_with_token, sim_with};
use vomo_sync::sim::{Faults, Quirks, RateLimit};
use vomo_sync::vomo::{UpsertOutcome, UpsertRequest, UserFilter, VomoError};

async fn walk_all(client: &vomo_sync::vomo::VomoClient, filter: &UserFilter) -> (Vec<i64>, u64) {
    let first = client.list_users(filter, 1).await.unwrap();
    let mut ids: Vec<i64> = first.users.iter().map(|u| u.id).collect();
    for page in 2..=first.last_page {
        let next = client.list_users(filter, page).await.unwrap();
        assert_eq!(next.total, first.total);
        ids.extend(next.users.iter().map(|u| u.id));
    }
    (ids, first.total)
}

#[tokio::test]
async fn pages_to_the_end_and_reads_the_server_clock() {
    let sim = sim_with(&[("acme", 100), ("other", 20)]).await;
    let client = client_for(&sim, "acme");
    let first = client.list_users(&UserFilter::default(), 1).await.unwrap();
    assert_eq!((first.total, first.last_page, first.users.len()), (100, 7, 15));
    let server = first.server_time.expect("Date header");
    assert!((server - Utc::now()).num_seconds().abs() <= 2);
    let (ids, _) = walk_all(&client, &UserFilter::default()).await;
    let expected: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    assert_eq!(ids, expected, "every user once, none from the other org");
    let past_end = client.list_users(&UserFilter::default(), 8).await.unwrap();
    assert!(past_end.users.is_empty());
    assert_eq!(past_end.total, 100);
}

#[tokio::test]
async fn filters_are_inclusive_at_the_second() {
    let sim = sim_with(&[("acme", 60)]).await;
    let client = client_for(&sim, "acme");
    let users = sim.users("acme").unwrap();
    let target = &users[17];
    let at = target.updated_at;
    let second = chrono::Duration::seconds(1);
    let (ids, total) = walk_all(&client, &UserFilter::updated_between(at, at)).await;
    assert!(ids.contains(&target.id));
    let same_second = users.iter().filter(|u| u.updated_at == at).count();
    assert_eq!(total as usize, same_second);
    let (after, _) =
        walk_all(&client, &UserFilter::updated_between(at + second, at + second * 100_000_000)).await;
    assert!(!after.contains(&target.id));
    let (before, _) =
        walk_all(&client, &UserFilter::updated_between(at - second * 100_000_000, at - second)).await;
    assert!(!before.contains(&target.id));
    // A sub-second instant is compared at second precision.
    let fractional = at + chrono::Duration::milliseconds(500);
    let (ids, _) = walk_all(&client, &UserFilter::updated_between(fractional, fractional)).await;
    assert!(ids.contains(&target.id));
    // Windows partition the users: [epoch, at-1] + [at, far future].
    let epoch = Utc.timestamp_opt(0, 0).unwrap();
    let far = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap();
    let (left, _) = walk_all(&client, &UserFilter::updated_between(epoch, at - second)).await;
    let (right, _) = walk_all(&client, &UserFilter::updated_between(at, far)).await;
    let union: BTreeSet<i64> = left.iter().chain(&right).copied().collect();
    assert_eq!(union.len(), 60);
    assert_eq!(left.len() + right.len(), 60);
}

#[tokio::test]
async fn spec_defect_quirks_decode_the_same() {
    let sim = sim_with(&[("acme", 40)]).await;
    let client = client_for(&sim, "acme");
    let plain = walk_all(&client, &UserFilter::default()).await;
    sim.set_faults(Faults {
        quirks: Quirks { meta_as_strings: true, null_links_as_strings: true, ids_as_strings: true },
        ..Faults::default()
    });
    let quirky = walk_all(&client, &UserFilter::default()).await;
    assert_eq!(plain, quirky);
    let id = plain.0[3];
    assert_eq!(client.get_user(id).await.unwrap().user.id, id);
}

/// Formats an error every way it could reach a log and checks for the token.
fn assert_no_token(error: &VomoError, token: &str) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(token), "token leaked: {shown}");
}

#[tokio::test]
async fn every_error_class_is_typed_and_hides_the_token() {
    let sim = sim_with(&[("acme", 30)]).await;
    let token = sim.token("acme").unwrap();
    let client = client_for(&sim, "acme");
    let all = UserFilter::default();

    let bad = client_with_token(&sim, "not-a-real-token-0000", Duration::from_secs(5));
    let e = bad.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Unauthorized { .. }), "{e:?}");
    assert!(e.is_token_problem() && !e.is_retryable());

    let e = client.get_user(999_999).await.unwrap_err();
    assert!(matches!(e, VomoError::NotFound { .. }), "{e:?}");
    assert_no_token(&e, &token);

    let incomplete = UpsertRequest {
        first_name: "A".into(),
        last_name: "B".into(),
        email: "a.b@example.org".into(),
        birthday: "19-1-1".into(),
        gender: "X".into(),
        role: "VOLUNTEER".into(),
        phone: None,
        org: None,
    };
    let e = client.upsert_user(&incomplete).await.unwrap_err();
    let VomoError::Validation { ref fields, .. } = e else { panic!("{e:?}") };
    assert!(fields.contains_key("birthday") && fields.contains_key("gender"), "{fields:?}");
    assert!(e.to_string().contains("birthday"));
    assert_no_token(&e, &token);

    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let e = client.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Server { status: 500 | 503, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_no_token(&e, &token);

    sim.set_faults(Faults { html_rate: 1.0, ..Faults::default() });
    let e = client.list_users(&all, 2).await.unwrap_err();
    let VomoError::Decode { ref endpoint, ref reason } = e else { panic!("{e:?}") };
    assert!(endpoint.starts_with("/users?") && endpoint.contains("page=2"), "{endpoint}");
    assert!(reason.contains("not JSON; it starts: <!DOCTYPE html>"), "{reason}");
    assert_no_token(&e, &token);

    sim.set_faults(Faults { truncate_rate: 1.0, ..Faults::default() });
    let e = client.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Decode { .. }), "{e:?}");

    sim.set_faults(Faults { storm_requests: 1, storm_retry_after: 9, ..Faults::default() });
    let e = client.list_users(&all, 1).await.unwrap_err();
    let VomoError::RateLimited { retry_after, .. } = e else { panic!("{e:?}") };
    assert_eq!(retry_after, Some(Duration::from_secs(9)));

    sim.set_faults(Faults { latency_ms: 1500, ..Faults::default() });
    let impatient = client_with_token(&sim, &token, Duration::from_millis(200));
    let e = impatient.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Timeout { .. }), "{e:?}");
    assert_no_token(&e, &token);
    sim.set_faults(Faults::default());

    sim.set_api_access("acme", false).unwrap();
    let e = client.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Forbidden { .. }), "{e:?}");
    assert!(e.is_token_problem());
    sim.set_api_access("acme", true).unwrap();

    assert!(sim.revoke_token(&token));
    let e = client.list_users(&all, 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Unauthorized { .. }), "{e:?}");
    assert_no_token(&e, &token);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let sim = sim_with(&[("acme", 1)]).await;
    let token = sim.token("acme").unwrap();
    let addr = sim.addr();
    drop(sim);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let http = vomo_sync::vomo::http_pool(common::settings(Duration::from_secs(2))).unwrap();
    let token = vomo_sync::domain::ApiToken::new(&token).unwrap();
    let client = vomo_sync::vomo::VomoClient::new(http, &format!("http://{addr}/v1"), &token).unwrap();
    let e = client.list_users(&UserFilter::default(), 1).await.unwrap_err();
    assert!(matches!(e, VomoError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("/users?page=1"), "{e}");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sim = sim_with(&[("acme", 5)]).await;
    sim.set_rate_limit(Some(RateLimit::parse("2/m").unwrap()));
    let client = client_for(&sim, "acme");
    let first = client.list_users(&UserFilter::default(), 1).await.unwrap();
    assert_eq!((first.rate.limit, first.rate.remaining), (Some(2), Some(1)));
    client.list_users(&UserFilter::default(), 1).await.unwrap();
    let e = client.list_users(&UserFilter::default(), 1).await.unwrap_err();
    let VomoError::RateLimited { retry_after: Some(wait), .. } = e else { panic!("{e:?}") };
    assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(30), "{wait:?}");
}

#[tokio::test]
async fn upsert_tells_created_from_updated() {
    let sim = sim_with(&[("acme", 3)]).await;
    let client = client_for(&sim, "acme");
    let mut request = UpsertRequest {
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        email: "Grace.Hopper@Example.org".into(),
        birthday: "1906-12-09".into(),
        gender: "F".into(),
        role: "ORGANIZER".into(),
        phone: Some("+1-555-0100".into()),
        org: None,
    };
    let UpsertOutcome::Created(created) = client.upsert_user(&request).await.unwrap() else {
        panic!("not created")
    };
    assert_eq!(created.user.membership_role.as_deref(), Some("ORGANIZER"));
    request.email = "grace.hopper@example.org".into();
    request.phone = Some("+1-555-0199".into());
    let UpsertOutcome::Updated(updated) = client.upsert_user(&request).await.unwrap() else {
        panic!("not updated")
    };
    assert_eq!(updated.user.id, created.user.id, "matched case-insensitively on e-mail");
    assert_eq!(updated.user.phone.as_deref(), Some("+1-555-0199"));
    let detail = client.get_user(created.user.id).await.unwrap();
    assert_eq!(detail.user, updated.user);
    assert!(detail.participations.is_empty());
}
