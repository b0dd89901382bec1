//! The simulator's own rules, checked on the wire with raw HTTP: envelope and
//! links, paging edge cases, filters, Bearer rules, upsert validation and
//! semantics, rate limiting, the admin surface and reproducible faults.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use common::sim_with;
use serde_json::{Value, json};
use vomo_sync::sim::{Faults, RateLimit, UserFields};

struct Wire {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Wire {
    fn new(sim: &vomo_sync::sim::SimHandle, org: &str) -> Self {
        Self { http: reqwest::Client::new(), base: sim.base_url().to_owned(), token: sim.token(org).unwrap() }
    }

    async fn get(&self, path_and_query: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.get_with(path_and_query, &format!("Bearer {}", self.token)).await
    }

    async fn get_with(&self, path_and_query: &str, auth: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/users", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

#[tokio::test]
async fn envelope_links_and_paging_edges() {
    let sim = sim_with(&[("acme", 40)]).await;
    let wire = Wire::new(&sim, "acme");
    let filter = "updated_after=2000-01-01T00:00:00.000Z";
    let (status, headers, body) = wire.get(&format!("/users?{filter}&per_page=100")).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("date"));
    assert_eq!(body["data"].as_array().unwrap().len(), 15, "page size is fixed");
    let first = &body["data"][0];
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "type",
            "id",
            "first_name",
            "last_name",
            "full_name",
            "email",
            "address",
            "phone",
            "birthday",
            "gender",
            "created_at",
            "updated_at",
            "user_status",
            "membership_status",
            "membership_role"
        ]
    );
    assert_eq!(first["type"], "user");
    let updated = first["updated_at"].as_str().unwrap();
    assert!(updated.ends_with("+00:00") && updated.len() == 25, "{updated}");
    let meta = &body["meta"];
    assert_eq!((meta["current_page"].as_u64(), meta["per_page"].as_u64()), (Some(1), Some(15)));
    assert_eq!((meta["total"].as_u64(), meta["last_page"].as_u64()), (Some(40), Some(3)));
    assert_eq!((meta["from"].as_u64(), meta["to"].as_u64()), (Some(1), Some(15)));
    assert_eq!(meta["path"], format!("{}/users", wire.base));
    let links = &body["links"];
    assert!(links["prev"].is_null());
    let next = links["next"].as_str().unwrap();
    assert!(
        next.starts_with(&wire.base) && next.contains("updated_after=2000-01-01") && next.ends_with("page=2"),
        "{next}"
    );
    assert!(links["last"].as_str().unwrap().ends_with("page=3"));

    let (_, _, last) = wire.get(&format!("/users?{filter}&page=3")).await;
    assert_eq!(last["data"].as_array().unwrap().len(), 10);
    assert!(last["links"]["next"].is_null());
    assert_eq!((last["meta"]["from"].as_u64(), last["meta"]["to"].as_u64()), (Some(31), Some(40)));

    let (status, _, beyond) = wire.get("/users?page=9").await;
    assert_eq!(status, 200);
    assert!(beyond["data"].as_array().unwrap().is_empty());
    assert!(beyond["meta"]["from"].is_null() && beyond["meta"]["to"].is_null());

    for odd in ["0", "-2", "abc"] {
        let (_, _, body) = wire.get(&format!("/users?page={odd}")).await;
        assert_eq!(body["meta"]["current_page"], 1, "page={odd}");
    }
}

#[tokio::test]
async fn filters_and_bad_filter_values() {
    let sim = sim_with(&[("acme", 50)]).await;
    let wire = Wire::new(&sim, "acme");
    let id = sim
        .create_user(
            "acme",
            &UserFields {
                first_name: Some("Zebedee".into()),
                last_name: Some("Quark".into()),
                email: Some("zq@unusual.example".into()),
                ..UserFields::default()
            },
        )
        .unwrap();
    let (_, _, by_name) = wire.get("/users?name_like=zEBed").await;
    assert_eq!(by_name["meta"]["total"], 1);
    assert_eq!(by_name["data"][0]["id"], id);
    let (_, _, by_last) = wire.get("/users?name_like=QUARK").await;
    assert_eq!(by_last["meta"]["total"], 1);
    let (_, _, by_email) = wire.get("/users?email_like=UNUSUAL.example").await;
    assert_eq!(by_email["meta"]["total"], 1);
    let (_, _, combined) = wire.get("/users?email_like=unusual&name_like=nobody").await;
    assert_eq!(combined["meta"]["total"], 0, "filters combine with AND");

    let user = sim.user("acme", id).unwrap().unwrap();
    let created = user.created_at.to_rfc3339();
    let (_, _, on) =
        wire.get(&format!("/users?created_after={0}&created_before={0}", urlencode(&created))).await;
    assert!(on["data"].as_array().unwrap().iter().any(|u| u["id"] == id));

    let (status, _, body) = wire.get("/users?updated_after=yesterday").await;
    assert_eq!(status, 422);
    assert!(body["errors"]["updated_after"][0].as_str().unwrap().contains("valid date"));
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn bearer_rules_and_org_isolation() {
    let sim = sim_with(&[("acme", 5), ("other", 5)]).await;
    let wire = Wire::new(&sim, "acme");
    for auth in [
        format!("bearer {}", wire.token),
        format!("Bearer  {}", wire.token),
        wire.token.clone(),
        String::new(),
    ] {
        let (status, _, body) = wire.get_with("/users", &auth).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(body, json!({"message": "Unauthenticated."}));
    }
    let other_id = sim.users("other").unwrap()[0].id;
    let (status, _, body) = wire.get(&format!("/users/{other_id}")).await;
    assert_eq!(status, 404, "another org's user is not found, not forbidden");
    assert!(body["message"].is_string());
    let own = sim.users("acme").unwrap()[0].id;
    let (status, _, body) = wire.get(&format!("/users/{own}")).await;
    assert_eq!(status, 200);
    assert!(body["data"]["participations"].is_array() && body["data"]["profile_field_values"].is_array());
}

fn grace() -> Value {
    json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example",
           "birthday": "1906-12-09", "gender": "F", "role": "ADMIN", "phone": "555-0100"})
}

#[tokio::test]
async fn upsert_validation() {
    let sim = sim_with(&[("acme", 1)]).await;
    let wire = Wire::new(&sim, "acme");
    let (status, body) = wire.post(&json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "The given data was invalid.");
    for field in ["first_name", "last_name", "email", "birthday", "gender"] {
        assert!(body["errors"][field].is_array(), "{field} required: {body}");
    }
    let cases = [
        ("birthday", json!("09/12/1906")),
        ("gender", json!("X")),
        ("email", json!("not-an-email")),
        ("password", json!("short1")),
        ("password", json!("lettersonlyhere")),
        ("role", json!("OWNER")),
        ("org", json!("someone-else")),
        ("invite_code", json!("INV-NOPE")),
    ];
    for (field, value) in cases {
        let mut body = grace();
        body[field] = value.clone();
        let (status, reply) = wire.post(&body).await;
        assert_eq!(status, 422, "{field}={value}");
        assert!(reply["errors"][field].is_array(), "{field}={value}: {reply}");
    }
    let mut ok = grace();
    ok["password"] = json!("correct-horse-9");
    assert_eq!(wire.post(&ok).await.0, 201);
}

#[tokio::test]
async fn upsert_semantics() {
    let sim = sim_with(&[("acme", 1), ("other", 1)]).await;
    let wire = Wire::new(&sim, "acme");
    let (status, created) = wire.post(&grace()).await;
    assert_eq!(status, 201);
    assert_eq!((created["code"].as_str(), created["message"].as_str()), (Some("201"), Some("User created.")));
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(created["data"]["membership_role"], "ADMIN");
    assert_eq!(created["data"]["created_at"], created["data"]["updated_at"]);

    // Omitting role keeps it unless the simulator is told VOMO resets it.
    let mut no_role = grace();
    no_role.as_object_mut().unwrap().remove("role");
    no_role["email"] = json!("GRACE@navy.EXAMPLE");
    let (status, updated) = wire.post(&no_role).await;
    assert_eq!((status, updated["code"].as_str()), (200, Some("200")));
    assert_eq!(updated["data"]["id"], id);
    assert_eq!(updated["data"]["membership_role"], "ADMIN");
    sim.set_faults(Faults { reset_role_on_omit: true, ..Faults::default() });
    let (_, demoted) = wire.post(&no_role).await;
    assert_eq!(demoted["data"]["membership_role"], "VOLUNTEER");

    // A user from another org family keeps name and e-mail; only the
    // membership here is created.
    let outsider = sim.users("other").unwrap()[0].clone();
    let mut body = grace();
    body["email"] = json!(outsider.email.to_uppercase());
    body["first_name"] = json!("Renamed");
    let (status, reply) = wire.post(&body).await;
    assert_eq!(status, 200);
    assert_eq!(reply["data"]["first_name"], json!(outsider.first_name));
    assert_eq!(reply["data"]["membership_role"], "ADMIN");
    assert!(sim.user("acme", outsider.id).unwrap().is_some(), "now a member of acme too");
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let sim = sim_with(&[("acme", 1), ("other", 1)]).await;
    sim.set_rate_limit(Some(RateLimit::parse("3/s").unwrap()));
    let wire = Wire::new(&sim, "acme");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = wire.get("/users").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        remaining.push(headers["x-ratelimit-remaining"].to_str().unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let (status, headers, body) = wire.get("/users").await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "Too Many Attempts.");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(headers.contains_key("x-ratelimit-reset"));
    // The budget is per token.
    let other = Wire::new(&sim, "other");
    assert_eq!(other.get("/users").await.0, 200);
}

#[tokio::test]
async fn admin_surface_needs_its_own_secret() {
    let sim = sim_with(&[("acme", 3)]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/orgs", sim.admin_url());
    let denied = http.get(&url).bearer_auth(sim.token("acme").unwrap()).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let orgs: Value =
        http.get(&url).bearer_auth(sim.admin_secret()).send().await.unwrap().json().await.unwrap();
    assert_eq!(orgs[0]["slug"], "acme");
    assert_eq!(orgs[0]["users"], 3);
    // Seed, fault and revoke over HTTP.
    let seeded = http
        .post(format!("{}/orgs/acme/seed", sim.admin_url()))
        .bearer_auth(sim.admin_secret())
        .json(&json!({"users": 20, "seed": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 200);
    assert_eq!(sim.users("acme").unwrap().len(), 23);
    let faults = http
        .put(format!("{}/faults", sim.admin_url()))
        .bearer_auth(sim.admin_secret())
        .json(&json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 204);
    assert_eq!(Wire::new(&sim, "acme").get("/users").await.0 / 100, 5);
    let token = sim.token("acme").unwrap();
    let revoked = http
        .delete(format!("{}/tokens/{token}", sim.admin_url()))
        .bearer_auth(sim.admin_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert!(sim.token("acme").is_none());
}

#[tokio::test]
async fn admin_changes_anonymise_delete_and_silent_edit() {
    let sim = sim_with(&[("acme", 10)]).await;
    let wire = Wire::new(&sim, "acme");
    let ids: Vec<i64> = sim.users("acme").unwrap().iter().map(|u| u.id).collect();
    sim.anonymise_user(ids[0]).unwrap();
    let (_, _, body) = wire.get(&format!("/users/{}", ids[0])).await;
    let data = &body["data"];
    assert_eq!((data["first_name"].as_str(), data["last_name"].as_str()), (Some("Deleted"), Some("User")));
    assert!(data["email"].as_str().unwrap().starts_with("vomodeleteduser"));
    assert_eq!(
        (data["birthday"].as_str(), data["phone"].as_str()),
        (Some("1900-01-01"), Some("555-555-5555"))
    );
    assert!(data["address"].is_null());

    sim.delete_user(ids[1]).unwrap();
    assert_eq!(wire.get(&format!("/users/{}", ids[1])).await.0, 404);
    let (_, _, list) = wire.get("/users").await;
    assert_eq!(list["meta"]["total"], 9);

    let before = sim.user("acme", ids[2]).unwrap().unwrap();
    sim.update_user(ids[2], &UserFields { phone: Some("silent".into()), ..UserFields::default() }, false)
        .unwrap();
    let after = sim.user("acme", ids[2]).unwrap().unwrap();
    assert_eq!(after.phone.as_deref(), Some("silent"));
    assert_eq!(after.updated_at, before.updated_at, "a silent edit does not move updated_at");
}

#[tokio::test]
async fn mutations_between_pages_are_reproducible_from_the_seed() {
    async fn run() -> Vec<(i64, String)> {
        let sim = sim_with(&[("acme", 200)]).await;
        sim.set_faults(Faults { seed: 42, mutate_rate: 0.5, mutate_delete_share: 0.3, ..Faults::default() });
        let wire = Wire::new(&sim, "acme");
        for page in 1..=14 {
            wire.get(&format!("/users?page={page}")).await;
        }
        sim.users("acme").unwrap().into_iter().map(|u| (u.id, u.phone.unwrap_or_default())).collect()
    }
    let (a, b) = (run().await, run().await);
    assert!(a.len() < 200, "some users were deleted mid-walk");
    assert_eq!(a, b);
}

#[tokio::test]
async fn the_date_header_follows_the_simulated_clock() {
    let sim = sim_with(&[("acme", 1)]).await;
    sim.set_clock_offset(-86_400);
    let (_, headers, _) = Wire::new(&sim, "acme").get("/users").await;
    let date = chrono::DateTime::parse_from_rfc2822(headers["date"].to_str().unwrap()).unwrap();
    let lag = chrono::Utc::now().signed_duration_since(date).num_seconds();
    assert!((86_398..=86_402).contains(&lag), "{lag}");
}
