//! The simulator's Projects contract (vomo-api.md §12.7, P1–P21), checked on
//! the wire with raw HTTP: auth and org isolation, the envelope, every
//! filter, schedules, today under both readings, participants and removals,
//! what moves `updated_at`, seeding, the mutator, the admin surface and the
//! ground truth. Knob readings are each exercised both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vomo_sync::sim::projects::{
    ActionArgs, AnytimeDates, AnytimeDefault, MutationKind, MutationWeights, MutatorSettings, NewDate,
    ParticipationAction, ParticipationFields, ProjectFields, ProjectKnobs, ProjectSeed,
    RemovedParticipations, TodayTz,
};
use vomo_sync::sim::{self, OrgSpec, RateLimit, SimConfig, SimHandle};

/// 2030-06-15T12:00:00Z: every test's clock starts here, so "today" and
/// the dates around it are fixed.
const ANCHOR: i64 = 1_907_755_200;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

async fn sim_at(orgs: &[(&str, usize)], projects: &[(&str, usize)]) -> SimHandle {
    sim::start(SimConfig {
        orgs: orgs.iter().map(|(slug, users)| OrgSpec { slug: (*slug).to_owned(), users: *users }).collect(),
        projects: projects.iter().map(|(slug, n)| ((*slug).to_owned(), ProjectSeed::projects(*n))).collect(),
        seed: 7,
        anchor: Some(ANCHOR),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn iso(secs: i64) -> String {
    url::form_urlencoded::byte_serialize(at(secs).to_rfc3339().as_bytes()).collect()
}

struct Wire {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Wire {
    fn new(sim: &SimHandle, org: &str) -> Self {
        Self { http: reqwest::Client::new(), base: sim.base_url().to_owned(), token: sim.token(org).unwrap() }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.get_with(path, &format!("Bearer {}", self.token)).await;
        (status, body)
    }

    async fn get_with(&self, path: &str, auth: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response =
            self.http.get(format!("{}{path}", self.base)).header("Authorization", auth).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    /// Ids of every item of a list walked to its last page.
    async fn ids(&self, path_and_query: &str) -> Vec<i64> {
        let sep = if path_and_query.contains('?') { '&' } else { '?' };
        let mut ids = Vec::new();
        for page in 1.. {
            let (status, body) = self.get(&format!("{path_and_query}{sep}page={page}")).await;
            assert_eq!(status, 200, "{path_and_query}: {body}");
            ids.extend(body["data"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()));
            if body["meta"]["last_page"].as_u64().unwrap() <= page {
                return ids;
            }
        }
        unreachable!()
    }
}

fn project(name: &str, zone: &str, anytime: bool) -> ProjectFields {
    ProjectFields {
        name: Some(name.into()),
        timezone: Some(zone.into()),
        anytime: Some(anytime),
        ..ProjectFields::default()
    }
}

fn slot(starts: i64) -> NewDate {
    NewDate { starts_at: at(starts), ends_at: at(starts + 2 * HOUR), capacity: None }
}

fn set_knobs(sim: &SimHandle, change: impl FnOnce(&mut ProjectKnobs)) {
    let mut knobs = sim.project_knobs();
    change(&mut knobs);
    sim.set_project_knobs(knobs);
}

fn member(sim: &SimHandle, org: &str, n: usize) -> i64 {
    sim.users(org).unwrap()[n].id
}

#[tokio::test]
async fn auth_rate_limit_stats_and_org_isolation() {
    let sim = sim_at(&[("acme", 20), ("other", 20)], &[("acme", 4), ("other", 4)]).await;
    let wire = Wire::new(&sim, "acme");
    for auth in ["", "bearer x", "Bearer not-a-token"] {
        let (status, _, body) = wire.get_with("/projects", auth).await;
        assert_eq!((status, body), (401, json!({"message": "Unauthenticated."})), "{auth:?}");
    }
    let theirs = sim.project_truth("other").unwrap();
    let (their_project, their_date) = (theirs[0].project.id, theirs[0].dates[0].date.id);
    assert_eq!(wire.get(&format!("/projects/{their_project}")).await.0, 404);
    let (status, body) = wire.get(&format!("/projects/date/{their_date}")).await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string());
    let all = wire.ids("/projects").await;
    assert_eq!(all.len(), 4, "only acme's projects");
    assert!(!all.contains(&their_project));
    let (_, headers, _) =
        wire.get_with(&format!("/projects/{}", all[0]), &format!("Bearer {}", wire.token)).await;
    assert!(headers.contains_key("date"));
    let stats = sim.stats_for(&wire.token);
    assert_eq!((stats.project_list, stats.project_detail, stats.date_detail), (1, 2, 1), "{stats:?}");
    assert_eq!(wire.get("/projects/today").await.0, 200);
    assert_eq!(sim.stats_for(&wire.token).today, 1);

    // Project reads draw from the same per-token bucket as /users.
    sim.set_rate_limit(Some(RateLimit::parse("2/m").unwrap()));
    assert_eq!(wire.get("/users").await.0, 200);
    assert_eq!(wire.get("/projects").await.0, 200);
    let (status, headers, _) = wire.get_with("/projects/today", &format!("Bearer {}", wire.token)).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn envelope_pages_and_shapes() {
    let sim = sim_at(&[("acme", 30)], &[("acme", 40)]).await;
    let wire = Wire::new(&sim, "acme");
    let (status, body) = wire.get("/projects?anytime=0&per_page=100").await;
    assert_eq!(status, 200);
    let dated = sim.project_truth("acme").unwrap().iter().filter(|p| !p.project.anytime).count();
    assert_eq!(body["data"].as_array().unwrap().len(), 15, "page size is fixed");
    assert_eq!(body["meta"]["total"], dated);
    assert_eq!(body["meta"]["last_page"], dated.div_ceil(15));
    assert_eq!(body["meta"]["path"], format!("{}/projects", wire.base));
    let next = body["links"]["next"].as_str().unwrap();
    assert!(next.contains("anytime=0") && next.ends_with("page=2"), "{next}");
    assert!(body["links"]["prev"].is_null());
    let keys: Vec<&str> = body["data"][0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "type",
            "id",
            "name",
            "project_name",
            "description",
            "organization_slug",
            "project_type",
            "anytime",
            "active",
            "published",
            "draft",
            "privacy",
            "allow_guests",
            "age_limit",
            "address",
            "created_at",
            "updated_at",
            "next_date"
        ]
    );
    let first = &body["data"][0];
    assert_eq!((first["type"].as_str(), first["project_type"].as_str()), (Some("project"), Some("dated")));
    assert_eq!(first["name"], first["project_name"]);
    assert_eq!(first["draft"], json!(!first["published"].as_bool().unwrap()));
    assert!(first["address"]["timezone"].is_string());
    assert!(first["updated_at"].as_str().unwrap().ends_with("+00:00"));
    let ids = wire.ids("/projects").await;
    assert_eq!(ids.len(), 40);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    let (_, beyond) = wire.get("/projects?page=9").await;
    assert!(beyond["data"].as_array().unwrap().is_empty() && beyond["meta"]["from"].is_null());
}

#[tokio::test]
async fn filters_and_malformed_values() {
    let sim = sim_at(&[("parent", 5), ("other", 5)], &[]).await;
    sim.add_org("child", Some("parent")).unwrap();
    let wire = Wire::new(&sim, "parent");
    let kite = sim.create_project("parent", &project("Kite Festival", "Etc/UTC", false)).unwrap();
    let soup = sim.create_project("child", &project("soup kitchen", "Etc/UTC", false)).unwrap();
    let any = sim.create_project("parent", &project("Anytime knitting", "Etc/UTC", true)).unwrap();
    sim.create_project("other", &project("Kite elsewhere", "Etc/UTC", false)).unwrap();
    let early = sim.add_date(kite, &slot(ANCHOR + DAY)).unwrap();
    sim.add_date(kite, &slot(ANCHOR + 10 * DAY)).unwrap();
    sim.add_date(soup, &slot(ANCHOR + 5 * DAY)).unwrap();
    sim.edit_project(
        soup,
        &ProjectFields { published: Some(false), active: Some(false), ..Default::default() },
        true,
    )
    .unwrap();

    assert_eq!(wire.ids("/projects").await, [kite, soup, any], "the family's projects");
    assert_eq!(wire.ids("/projects?name_like=KITE").await, [kite], "case-insensitive, own family only");
    assert_eq!(wire.ids("/projects?org_slug=child").await, [soup]);
    assert_eq!(wire.ids("/projects?org_slug=child,%20parent").await, [kite, soup, any]);
    assert_eq!(wire.ids("/projects?published=false").await, [soup]);
    assert_eq!(wire.ids("/projects?active=1").await, [kite, any]);
    assert_eq!(wire.ids("/projects?anytime=true").await, [any]);
    // One date must meet both bounds; anytime projects never match.
    let window = format!("dates_after={}&dates_before={}", iso(ANCHOR + 2 * DAY), iso(ANCHOR + 6 * DAY));
    assert_eq!(wire.ids(&format!("/projects?{window}")).await, [soup]);
    assert_eq!(wire.ids(&format!("/projects?dates_after={}", iso(ANCHOR + DAY))).await, [kite, soup]);
    assert_eq!(wire.ids(&format!("/projects?dates_before={}", iso(ANCHOR + DAY))).await, [kite], "inclusive");
    sim.delete_date(early).unwrap();
    assert!(
        wire.ids(&format!("/projects?dates_before={}", iso(ANCHOR + DAY))).await.is_empty(),
        "live dates only"
    );

    sim.advance_clock(100);
    sim.edit_project(kite, &ProjectFields { description: Some("windy".into()), ..Default::default() }, true)
        .unwrap();
    let kite_updated = sim.project_truth("parent").unwrap()[0].project.updated_at.timestamp();
    assert_eq!(
        wire.ids(&format!("/projects?updated_after={}", iso(kite_updated))).await,
        [kite],
        "inclusive"
    );
    assert!(wire.ids(&format!("/projects?updated_after={}", iso(kite_updated + 1))).await.is_empty());

    for (query, field) in [
        ("updated_after=yesterday", "updated_after"),
        ("anytime=yes", "anytime"),
        ("active=maybe", "active"),
        ("published=", "published"),
        ("dates_after=2030-13-01", "dates_after"),
        ("dates_before=soon", "dates_before"),
    ] {
        let (status, body) = wire.get(&format!("/projects?{query}")).await;
        assert_eq!(status, 422, "{query}");
        assert!(body["errors"][field].is_array(), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_anytime_union_covers_every_project_under_both_defaults() {
    let sim = sim_at(&[("acme", 30)], &[("acme", 24)]).await;
    let wire = Wire::new(&sim, "acme");
    let truth = sim.project_truth("acme").unwrap();
    let all: BTreeSet<i64> = truth.iter().map(|p| p.project.id).collect();
    let dated: BTreeSet<i64> = truth.iter().filter(|p| !p.project.anytime).map(|p| p.project.id).collect();
    assert!(dated.len() < all.len(), "the seed has anytime projects");
    for default in [AnytimeDefault::Include, AnytimeDefault::Exclude] {
        set_knobs(&sim, |k| k.anytime_default = default);
        let mut union: BTreeSet<i64> = wire.ids("/projects?anytime=0").await.into_iter().collect();
        union.extend(wire.ids("/projects?anytime=1").await);
        assert_eq!(union, all, "{default:?}");
        let absent: BTreeSet<i64> = wire.ids("/projects").await.into_iter().collect();
        let expected = if default == AnytimeDefault::Include { &all } else { &dated };
        assert_eq!(&absent, expected, "{default:?}");
    }
}

#[tokio::test]
async fn schedules_next_date_and_anytime_dates_listed_or_hidden() {
    let sim = sim_at(&[("acme", 10)], &[]).await;
    let wire = Wire::new(&sim, "acme");
    let p = sim.create_project("acme", &project("Shifts", "Asia/Tokyo", false)).unwrap();
    let later = sim.add_date(p, &slot(ANCHOR + 3 * DAY)).unwrap();
    let past = sim.add_date(p, &slot(ANCHOR - 2 * DAY)).unwrap();
    let sooner = sim.add_date(p, &slot(ANCHOR + HOUR)).unwrap();
    let gone = sim.add_date(p, &slot(ANCHOR + 2 * DAY)).unwrap();
    sim.delete_date(gone).unwrap();
    let (_, body) = wire.get(&format!("/projects/{p}")).await;
    let data = &body["data"];
    let ids: Vec<i64> =
        data["all_dates"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [past, sooner, later], "live dates by starts_at");
    let date = &data["all_dates"][0];
    assert_eq!(
        (date["type"].as_str(), date["timezone"].as_str()),
        (Some("project_date"), Some("Asia/Tokyo"))
    );
    assert_eq!((date["project_id"].as_i64(), date["status"].as_str()), (Some(p), Some("active")));
    assert!(date.get("participants").is_none(), "schedules carry no participants");
    assert_eq!(data["next_date"]["id"], sooner);
    // The simulated clock moves next_date.
    sim.advance_clock(2 * HOUR);
    assert_eq!(wire.get(&format!("/projects/{p}")).await.1["data"]["next_date"]["id"], later);
    sim.advance_clock(4 * DAY);
    assert!(wire.get(&format!("/projects/{p}")).await.1["data"]["next_date"].is_null());

    let anytime = sim.create_project("acme", &project("Knit at home", "Etc/UTC", true)).unwrap();
    let (_, body) = wire.get(&format!("/projects/{anytime}")).await;
    let dates = body["data"]["all_dates"].as_array().unwrap().clone();
    assert_eq!(dates.len(), 1, "listed by default");
    assert_eq!((dates[0]["anytime"].as_bool(), dates[0]["ends_at"].is_null()), (Some(true), true));
    assert_eq!(dates[0]["starts_at"], body["data"]["created_at"]);
    assert!(body["data"]["next_date"].is_null());
    let anytime_date = dates[0]["id"].as_i64().unwrap();
    set_knobs(&sim, |k| k.anytime_dates = AnytimeDates::Hidden);
    let (_, body) = wire.get(&format!("/projects/{anytime}")).await;
    assert!(body["data"]["all_dates"].as_array().unwrap().is_empty(), "hidden");
    assert_eq!(wire.get(&format!("/projects/date/{anytime_date}")).await.0, 200, "still reachable by id");
    assert!(sim.add_date(anytime, &slot(ANCHOR)).is_err(), "an anytime project has exactly one date");
}

/// Dates around the anchor's day in zones ±12 h apart (see the table in
/// the body); returns (id by letter).
async fn dates_for_today(sim: &SimHandle) -> BTreeMap<char, i64> {
    let kiri = sim.create_project("acme", &project("Atoll", "Pacific/Kiritimati", false)).unwrap();
    let pago = sim.create_project("acme", &project("Harbour", "Pacific/Pago_Pago", false)).unwrap();
    let utc = sim.create_project("acme", &project("Greenwich", "Etc/UTC", false)).unwrap();
    sim.create_project("acme", &project("Anytime", "Etc/UTC", true)).unwrap();
    let midnight = ANCHOR - 12 * HOUR; // 2030-06-15T00:00Z
    // A: 15th 05:00Z = 15th 19:00 in Kiritimati (yesterday there).
    // B: 16th 05:00Z = 16th 19:00 in Kiritimati (today there).
    // C: 15th 08:00Z = 14th 21:00 in Pago Pago (yesterday there).
    // D: 15th 20:00Z = today everywhere used here.
    // E: 16th 10:30Z = 15th 23:30 in Pago Pago (today there).
    let plan = [
        ('A', kiri, midnight + 5 * HOUR),
        ('B', kiri, midnight + DAY + 5 * HOUR),
        ('C', pago, midnight + 8 * HOUR),
        ('D', utc, midnight + 20 * HOUR),
        ('E', pago, midnight + DAY + 10 * HOUR + 1_800),
    ];
    let mut ids = BTreeMap::new();
    for (letter, project, starts) in plan {
        ids.insert(letter, sim.add_date(project, &slot(starts)).unwrap());
    }
    ids
}

#[tokio::test]
async fn today_in_utc_or_each_projects_zone() {
    let sim = sim_at(&[("acme", 5), ("other", 5)], &[("other", 8)]).await;
    let wire = Wire::new(&sim, "acme");
    let ids = dates_for_today(&sim).await;
    let pick = |letters: &str| -> Vec<i64> { letters.chars().map(|c| ids[&c]).collect() };
    let (_, body) = wire.get("/projects/today").await;
    let today: Vec<i64> =
        body["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(today, pick("ACD"), "UTC day, by starts_at; no anytime date, no other org's");
    assert!(body["data"][0].get("participants").is_none());
    assert_eq!(body["meta"]["total"], 3);
    set_knobs(&sim, |k| k.today_tz = TodayTz::Project);
    let (_, body) = wire.get("/projects/today").await;
    let today: Vec<i64> =
        body["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(today, pick("DBE"), "each project's own day, by starts_at");
    // The simulated clock decides which day it is.
    set_knobs(&sim, |k| k.today_tz = TodayTz::Utc);
    sim.advance_clock(DAY);
    assert_eq!(wire.ids("/projects/today").await, pick("BE"));
}

#[tokio::test]
async fn today_paginated_or_bare() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let wire = Wire::new(&sim, "acme");
    let p = sim.create_project("acme", &project("Marathon", "Etc/UTC", false)).unwrap();
    let mut expected = Vec::new();
    for n in 0..20 {
        expected.push(sim.add_date(p, &slot(ANCHOR - 11 * HOUR + n * 1_800)).unwrap());
    }
    let (_, first) = wire.get("/projects/today").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 15);
    assert_eq!((first["meta"]["total"].as_u64(), first["meta"]["last_page"].as_u64()), (Some(20), Some(2)));
    assert!(first["links"]["next"].as_str().unwrap().contains("/projects/today?page=2"));
    assert_eq!(wire.ids("/projects/today").await, expected);
    set_knobs(&sim, |k| k.today_paginated = false);
    let (_, bare) = wire.get("/projects/today?page=2").await;
    assert_eq!(bare.as_object().unwrap().keys().collect::<Vec<_>>(), ["data"], "bare: no links, no meta");
    let ids: Vec<i64> = bare["data"].as_array().unwrap().iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, expected, "all of them at once, whatever the page");
}

/// One dated project with one date and two signed-up members.
async fn one_date(sim: &SimHandle) -> (i64, i64, i64, i64) {
    let p = sim.create_project("acme", &project("Pantry", "Etc/UTC", false)).unwrap();
    let d = sim.add_date(p, &slot(ANCHOR - DAY)).unwrap();
    let (a, b) = (member(sim, "acme", 0), member(sim, "acme", 1));
    for user in [a, b] {
        sim.participation_action(d, user, ParticipationAction::SignUp, ActionArgs::default()).unwrap();
    }
    (p, d, a, b)
}

fn participant_ids(body: &Value) -> Vec<i64> {
    body["data"]["participants"].as_array().unwrap().iter().map(|p| p["user_id"].as_i64().unwrap()).collect()
}

async fn user_parts(wire: &Wire, user: i64) -> Vec<Value> {
    wire.get(&format!("/users/{user}")).await.1["data"]["participations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn participants_shapes_and_removals_vanish_or_stay_cancelled() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let wire = Wire::new(&sim, "acme");
    let (p, d, a, b) = one_date(&sim).await;
    let (status, body) = wire.get(&format!("/projects/date/{d}")).await;
    assert_eq!(status, 200);
    assert_eq!(participant_ids(&body), [a, b]);
    assert_eq!(
        (body["data"]["taken"].as_u64(), body["data"]["project_name"].as_str()),
        (Some(2), Some("Pantry"))
    );
    let part = &body["data"]["participants"][0];
    let keys: Vec<&str> = part.as_object().unwrap().keys().map(String::as_str).collect();
    let expected_keys = [
        "id",
        "user_id",
        "project_id",
        "project_date_id",
        "signed_up_at",
        "checked_in_at",
        "checked_out_at",
        "hours",
        "verified",
        "role",
        "guests",
        "status",
    ];
    assert_eq!(keys, expected_keys);
    assert_eq!((part["project_id"].as_i64(), part["project_date_id"].as_i64()), (Some(p), Some(d)));
    assert_eq!((part["hours"].as_f64(), part["verified"].as_bool()), (Some(0.0), Some(false)));
    assert_eq!(part["status"], "APPROVED");
    let from_user = user_parts(&wire, a).await;
    assert_eq!(from_user, vec![part.clone()], "the same shape in both read paths");

    sim.participation_action(d, a, ParticipationAction::Cancel, ActionArgs::default()).unwrap();
    assert_eq!(participant_ids(&wire.get(&format!("/projects/date/{d}")).await.1), [b], "vanished");
    assert!(user_parts(&wire, a).await.is_empty());
    set_knobs(&sim, |k| k.removed_participations = RemovedParticipations::Status);
    let (_, body) = wire.get(&format!("/projects/date/{d}")).await;
    assert_eq!(participant_ids(&body), [a, b], "kept with a status");
    assert_eq!(
        (body["data"]["participants"][0]["status"].as_str(), body["data"]["taken"].as_u64()),
        (Some("CANCELLED"), Some(1))
    );
    assert_eq!(user_parts(&wire, a).await[0]["status"], "CANCELLED");
    let truth = sim.participation_truth("acme").unwrap();
    let cancelled = truth.iter().find(|t| t.participation.user_id == a).unwrap();
    assert!(cancelled.removed && cancelled.participation.is_cancelled());

    // A deleted date: 404, and its participations are gone from user detail
    // under either reading.
    sim.delete_date(d).unwrap();
    assert_eq!(wire.get(&format!("/projects/date/{d}")).await.0, 404);
    assert!(user_parts(&wire, b).await.is_empty());
    assert!(sim.participation_truth("acme").unwrap().iter().all(|t| t.removed));
    assert!(sim.participation_action(d, b, ParticipationAction::SignUp, ActionArgs::default()).is_err());
}

#[tokio::test]
async fn deleted_users_take_their_participations_anonymised_ones_keep_them() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let wire = Wire::new(&sim, "acme");
    let (_, d, a, b) = one_date(&sim).await;
    set_knobs(&sim, |k| k.removed_participations = RemovedParticipations::Status);
    sim.delete_user(a).unwrap();
    sim.anonymise_user(b).unwrap();
    assert_eq!(participant_ids(&wire.get(&format!("/projects/date/{d}")).await.1), [b]);
    assert_eq!(user_parts(&wire, b).await.len(), 1);
    let truth = sim.participation_truth("acme").unwrap();
    assert_eq!(
        truth.iter().map(|t| (t.participation.user_id, t.removed)).collect::<Vec<_>>(),
        [(a, true), (b, false)]
    );
}

#[tokio::test]
async fn check_out_hours_edits_and_verification() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let (_, d, a, _) = one_date(&sim).await;
    let start = ANCHOR - DAY;
    let act = |action, at_secs: Option<i64>, hours: Option<f64>| {
        sim.participation_action(d, a, action, ActionArgs { at: at_secs.map(at), hours })
    };
    assert!(act(ParticipationAction::CheckOut, Some(start), None).is_err(), "no check-out before check-in");
    act(ParticipationAction::CheckIn, Some(start + 300), None).unwrap();
    act(ParticipationAction::CheckOut, Some(start + 300 + 9_000 + 20), None).unwrap();
    let current = |sim: &SimHandle| {
        sim.participation_truth("acme").unwrap().into_iter().find(|t| t.participation.user_id == a).unwrap()
    };
    let p = current(&sim).participation;
    assert_eq!((p.hours.to_string(), p.verified), ("2.51".to_owned(), false), "out − in, two decimals");
    act(ParticipationAction::Hours, None, Some(3.25)).unwrap();
    let edited = current(&sim).participation;
    assert_eq!(
        (edited.hours.to_string(), edited.checked_out_at),
        ("3.25".to_owned(), p.checked_out_at),
        "hours alone"
    );
    act(ParticipationAction::Verify, None, None).unwrap();
    assert!(current(&sim).participation.verified);
    assert!(act(ParticipationAction::Hours, None, Some(-1.0)).is_err());
    assert!(act(ParticipationAction::SignUp, None, None).is_err(), "one participation per key");
    // Explicit fields: add, edit, clear.
    let c = member(&sim, "acme", 2);
    let fields = ParticipationFields {
        checked_in_at: Some(Some(at(start))),
        hours: Some(1.5),
        guests: Some(2),
        role: Some("Team Lead".into()),
        ..ParticipationFields::default()
    };
    assert!(sim.put_participation(d, c, &fields).unwrap(), "created");
    let clear = ParticipationFields { checked_in_at: Some(None), ..ParticipationFields::default() };
    assert!(!sim.put_participation(d, c, &clear).unwrap(), "edited");
    let t =
        sim.participation_truth("acme").unwrap().into_iter().find(|t| t.participation.user_id == c).unwrap();
    assert_eq!(
        (t.participation.checked_in_at, t.participation.guests, t.participation.hours.to_string()),
        (None, 2, "1.50".into())
    );
    assert_eq!(t.participation.role.as_deref(), Some("Team Lead"));
    let outsider = sim.create_user("acme", &Default::default()).unwrap();
    sim.remove_membership(outsider, "acme").unwrap();
    assert!(sim.put_participation(d, outsider, &fields).is_err(), "members only");
}

#[tokio::test]
async fn what_moves_updated_at() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let (p, d, a, _) = one_date(&sim).await;
    let project_updated =
        |sim: &SimHandle| sim.project_truth("acme").unwrap()[0].project.updated_at.timestamp();
    let user_updated = |sim: &SimHandle| sim.user("acme", a).unwrap().unwrap().updated_at.timestamp();
    let (p0, u0) = (project_updated(&sim), user_updated(&sim));
    // Participation changes move neither the user nor the project (P14).
    sim.advance_clock(50);
    for action in [ParticipationAction::CheckIn, ParticipationAction::CheckOut, ParticipationAction::Verify] {
        sim.participation_action(d, a, action, ActionArgs::default()).unwrap();
    }
    sim.participation_action(d, a, ParticipationAction::Cancel, ActionArgs::default()).unwrap();
    assert_eq!((project_updated(&sim), user_updated(&sim)), (p0, u0));
    // A project edit does (P15), a silent one does not.
    sim.advance_clock(50);
    sim.edit_project(p, &ProjectFields { age_limit: Some(16), ..Default::default() }, false).unwrap();
    assert_eq!(project_updated(&sim), p0);
    sim.edit_project(p, &ProjectFields { age_limit: Some(18), ..Default::default() }, true).unwrap();
    let p1 = project_updated(&sim);
    assert!(p1 >= p0 + 100, "{p1} vs {p0}");
    // Date changes: by date_change_bumps_project.
    sim.advance_clock(50);
    let added = sim.add_date(p, &slot(ANCHOR + DAY)).unwrap();
    let p2 = project_updated(&sim);
    assert!(p2 >= p1 + 50);
    set_knobs(&sim, |k| k.date_change_bumps_project = false);
    sim.advance_clock(50);
    let quiet = sim.add_date(p, &slot(ANCHOR + 2 * DAY)).unwrap();
    sim.delete_date(added).unwrap();
    assert_eq!(project_updated(&sim), p2, "the schedule changed silently");
    let truth = &sim.project_truth("acme").unwrap()[0];
    assert!(truth.dates.iter().any(|t| t.date.id == quiet && t.deleted_at.is_none()));
    assert!(truth.dates.iter().any(|t| t.date.id == added && t.deleted_at.is_some()));
    assert!(sim.edit_project(p, &ProjectFields { anytime: Some(true), ..Default::default() }, true).is_err());
}

#[tokio::test]
async fn participation_strings_quirk() {
    let sim = sim_at(&[("acme", 5)], &[]).await;
    let wire = Wire::new(&sim, "acme");
    let (_, d, a, _) = one_date(&sim).await;
    sim.participation_action(
        d,
        a,
        ParticipationAction::CheckIn,
        ActionArgs { at: Some(at(ANCHOR - DAY)), hours: None },
    )
    .unwrap();
    sim.participation_action(
        d,
        a,
        ParticipationAction::CheckOut,
        ActionArgs { at: Some(at(ANCHOR - DAY + 9_000)), hours: None },
    )
    .unwrap();
    sim.participation_action(d, a, ParticipationAction::Verify, ActionArgs::default()).unwrap();
    let (_, plain) = wire.get(&format!("/projects/date/{d}")).await;
    assert_eq!(
        (&plain["data"]["participants"][0]["hours"], &plain["data"]["participants"][0]["verified"]),
        (&json!(2.5), &json!(true))
    );
    set_knobs(&sim, |k| k.participation_strings = true);
    let (_, quirky) = wire.get(&format!("/projects/date/{d}")).await;
    let part = &quirky["data"]["participants"][0];
    assert_eq!((&part["hours"], &part["verified"]), (&json!("2.50"), &json!(1)));
    assert_eq!(user_parts(&wire, a).await[0]["hours"], "2.50");
}

/// Users, projects (less `next_date`, which follows the running clock) and
/// participations of acme.
fn world_dump(sim: &SimHandle) -> String {
    let users = sim.users("acme").unwrap();
    let mut projects = sim.project_truth("acme").unwrap();
    for p in &mut projects {
        p.project.next_date = None;
    }
    let parts = sim.participation_truth("acme").unwrap();
    serde_json::to_string(&(users, projects, parts)).unwrap()
}

#[tokio::test]
async fn seeding_is_deterministic_and_leaves_users_alone() {
    let a = sim_at(&[("acme", 60)], &[("acme", 16)]).await;
    let b = sim_at(&[("acme", 60)], &[("acme", 16)]).await;
    let plain = sim_at(&[("acme", 60)], &[]).await;
    assert_eq!(world_dump(&a), world_dump(&b), "same seed and anchor, same world");
    assert_eq!(a.users("acme").unwrap(), plain.users("acme").unwrap(), "projects do not touch users");
    assert_eq!(a.token("acme"), plain.token("acme"));
    let projects = a.project_truth("acme").unwrap();
    let anytime = projects.iter().filter(|p| p.project.anytime).count();
    assert_eq!((projects.len(), anytime), (16, 4), "a quarter anytime");
    let dates: Vec<_> = projects.iter().flat_map(|p| &p.dates).filter(|d| !d.date.anytime).collect();
    let starts = |d: &&vomo_sync::sim::projects::truth::DateTruth| d.date.starts_at.unwrap().timestamp();
    assert!(dates.iter().all(|d| (ANCHOR - 60 * DAY..ANCHOR + 30 * DAY).contains(&starts(d))));
    let (midnight, next) = (ANCHOR - 12 * HOUR, ANCHOR + 12 * HOUR);
    assert!(dates.iter().any(|d| (midnight..next).contains(&starts(d))), "some dates today");
    let parts = a.participation_truth("acme").unwrap();
    assert!(parts.iter().any(|p| p.participation.verified && p.participation.hours.hundredths() > 0));
    // Seeding through the admin call at a given anchor is deterministic too.
    let c = sim_at(&[("acme", 60)], &[]).await;
    c.seed_projects_at("acme", ProjectSeed::projects(16), 7, ANCHOR).unwrap();
    assert_eq!(world_dump(&c), world_dump(&a));
}

#[tokio::test]
async fn the_mutator_changes_participations_and_pauses_with_the_user_mutator() {
    let sim = sim_at(&[("acme", 40), ("quiet", 5)], &[("acme", 8)]).await;
    let users_before = sim.users("acme").unwrap();
    let before = sim.participation_truth("acme").unwrap();
    let projects_before = sim.project_truth("acme").unwrap();
    let only_participations =
        MutationWeights { project_edit: 0.0, date_add: 0.0, ..MutationWeights::default() };
    sim.set_participation_mutator(MutatorSettings {
        seed: 3,
        per_second: 40.0,
        weights: only_participations,
    });
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    sim.pause_mutators(true);
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let paused = sim.participation_truth("acme").unwrap();
    let changed = paused.iter().filter(|t| !before.contains(t)).count();
    assert!(changed >= 5, "only {changed} participations changed");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(sim.participation_truth("acme").unwrap(), paused, "paused");
    assert!(sim.mutators_paused());
    assert_eq!(sim.users("acme").unwrap(), users_before, "participation changes never touch users");
    let projects_after = sim.project_truth("acme").unwrap();
    let updated = |ps: &[vomo_sync::sim::projects::ProjectTruth]| {
        ps.iter().map(|p| p.project.updated_at).collect::<Vec<_>>()
    };
    assert_eq!(updated(&projects_after), updated(&projects_before), "nor projects");
    assert!(sim.participation_truth("quiet").unwrap().is_empty(), "orgs without projects are left alone");
    // Every kind can be asked for once through the random hook.
    sim.pause_mutators(false);
    for kind in [
        MutationKind::SignUp,
        MutationKind::Cancel,
        MutationKind::ProjectEdit,
        MutationKind::DateAdd,
        MutationKind::DateDelete,
    ] {
        let change = sim.random_participation_change("acme", kind).unwrap().expect("something qualifies");
        assert_eq!(change.kind, kind);
        assert!(change.project_id.is_some(), "{change:?}");
    }
    assert_eq!(sim.random_participation_change("quiet", MutationKind::SignUp).unwrap(), None);
}

/// One admin request (`Value::Null`: no body) → (status, JSON body).
async fn admin(sim: &SimHandle, method: &str, path: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = format!("{}{path}", sim.admin_url());
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(sim.admin_secret());
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_hooks_change_projects_dates_and_participations() {
    let sim = sim_at(&[("acme", 20)], &[]).await;
    let anchor = at(ANCHOR).to_rfc3339();
    let seed = json!({"projects": 6, "seed": 7, "anchor": anchor});
    let (status, report) = admin(&sim, "POST", "/orgs/acme/projects/seed", seed).await;
    assert_eq!((status, report["projects"].as_u64()), (200, Some(6)), "{report}");
    let typo = json!({"projetcs": 6});
    assert_eq!(admin(&sim, "POST", "/orgs/acme/projects/seed", typo).await.0 / 100, 4, "typos are refused");
    let fields = json!({"name": "Drive", "timezone": "Asia/Tokyo"});
    let p = admin(&sim, "POST", "/orgs/acme/projects", fields).await.1["id"].as_i64().unwrap();
    let slot = json!({"starts_at": anchor, "ends_at": at(ANCHOR + HOUR).to_rfc3339()});
    let (status, date) = admin(&sim, "POST", &format!("/projects/{p}/dates"), slot).await;
    assert_eq!(status, 201);
    let d = date["id"].as_i64().unwrap();
    let user = member(&sim, "acme", 0);
    let key = format!("/participations/{d}/{user}");
    assert_eq!(admin(&sim, "PUT", &key, json!({"hours": 2.5, "verified": true})).await.0, 201);
    assert_eq!(admin(&sim, "PUT", &key, json!({"guests": 1})).await.0, 200, "an edit");
    assert_eq!(admin(&sim, "POST", &format!("{key}/check-in"), Value::Null).await.0, 204);
    assert_eq!(admin(&sim, "POST", &format!("{key}/teleport"), Value::Null).await.0, 422);
    let silent = json!({"name": "Drive 2", "touch": false});
    assert_eq!(admin(&sim, "PATCH", &format!("/projects/{p}"), silent).await.0, 204);
    let typo = json!({"nmae": "Drive 3"});
    assert_eq!(admin(&sim, "PATCH", &format!("/projects/{p}"), typo).await.0, 422, "typos are refused");
    assert_eq!(admin(&sim, "DELETE", &key, Value::Null).await.0, 204);
    assert_eq!(admin(&sim, "DELETE", &key, Value::Null).await.0, 404, "already removed");
    let (_, truth) = admin(&sim, "GET", "/orgs/acme/participations", Value::Null).await;
    let ours = truth.as_array().unwrap().iter().find(|t| t["participation"]["project_date_id"] == d).unwrap();
    let part = &ours["participation"];
    assert_eq!(
        (ours["removed"].as_bool(), part["hours"].as_f64(), part["guests"].as_u64()),
        (Some(true), Some(2.5), Some(1))
    );
    assert!(part["checked_in_at"].is_string() && ours["changed_at"].is_string());
    let (_, projects) = admin(&sim, "GET", "/orgs/acme/projects", Value::Null).await;
    assert_eq!(projects.as_array().unwrap().len(), 7);
    assert_eq!(projects[6]["project"]["name"], "Drive 2");
    assert_eq!(admin(&sim, "DELETE", &format!("/dates/{d}"), Value::Null).await.0, 204);
    assert_eq!(admin(&sim, "DELETE", &format!("/dates/{d}"), Value::Null).await.0, 404);
    assert_eq!(admin(&sim, "GET", "/orgs/nobody/projects", Value::Null).await.0, 404);
}

#[tokio::test]
async fn admin_knobs_mutator_random_changes_and_secret() {
    let sim = sim_at(&[("acme", 20)], &[("acme", 6)]).await;
    let denied = reqwest::Client::new()
        .get(format!("{}/orgs/acme/participations", sim.admin_url()))
        .bearer_auth(sim.token("acme").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401, "a VOMO token cannot reach the admin surface");
    let verify = json!({"kind": "verify"});
    let (status, change) = admin(&sim, "POST", "/orgs/acme/participations/random", verify).await;
    assert_eq!((status, change["kind"].as_str()), (200, Some("verify")));
    let knobs = json!({"removed_participations": "status", "today_tz": "project"});
    assert_eq!(admin(&sim, "PUT", "/project-knobs", knobs).await.0, 204);
    assert_eq!(sim.project_knobs().today_tz, TodayTz::Project);
    assert!(sim.project_knobs().today_paginated, "absent knobs take their defaults");
    let (_, shown) = admin(&sim, "GET", "/project-knobs", Value::Null).await;
    assert_eq!(shown["removed_participations"], "status");
    assert_eq!(admin(&sim, "PUT", "/project-knobs", json!({"today": "utc"})).await.0 / 100, 4);
    let mutator = json!({"per_second": 2.0, "weights": {"cancel": 5.0}});
    assert_eq!(admin(&sim, "PUT", "/participation-mutator", mutator).await.0, 204);
    let (_, mutator) = admin(&sim, "GET", "/participation-mutator", Value::Null).await;
    let rates = (mutator["per_second"].as_f64(), mutator["weights"]["sign_up"].as_f64());
    assert_eq!(rates, (Some(2.0), Some(4.0)), "absent weights take their defaults");
    assert_eq!(admin(&sim, "PUT", "/mutators", json!({"paused": true})).await.0, 204);
    assert!(sim.mutators_paused());
}
