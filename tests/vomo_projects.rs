//! The VOMO client's Projects calls against the simulator: what it decodes
//! equals the simulator's ground truth field by field, under every quirk
//! (`participation_strings`, ids and meta numbers as strings), for both
//! readings of `/projects/today` and of anytime dates; and its errors are
//! typed, name the endpoint and field, and quote no body.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client_for, client_with_token};
use vomo_sync::domain::{Participation, Project, ProjectDate};
use vomo_sync::sim::projects::{AnytimeDates, ParticipationAction, ProjectKnobs, RemovedParticipations};
use vomo_sync::sim::{self, Faults, OrgSpec, ProjectSeed, Quirks, SimConfig, SimHandle};
use vomo_sync::vomo::{ProjectFilter, VomoClient, VomoError};

/// 2030-06-15T12:00:00Z.
const ANCHOR: i64 = 1_907_755_200;

/// A seeded simulator whose clock sits between two quarter hours, so no
/// seeded date (they start on quarter hours) becomes past while a test
/// compares two reads of `next_date`.
async fn seeded(projects: usize) -> SimHandle {
    sim::start(SimConfig {
        orgs: vec![OrgSpec { slug: "acme".into(), users: 60 }, OrgSpec { slug: "other".into(), users: 10 }],
        projects: [
            ("acme".to_owned(), ProjectSeed::projects(projects)),
            ("other".into(), ProjectSeed::projects(4)),
        ]
        .into(),
        seed: 11,
        anchor: Some(ANCHOR + 450),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn all_quirks(sim: &SimHandle) {
    sim.set_faults(Faults {
        quirks: Quirks { meta_as_strings: true, null_links_as_strings: true, ids_as_strings: true },
        ..Faults::default()
    });
    sim.set_project_knobs(ProjectKnobs { participation_strings: true, ..sim.project_knobs() });
}

async fn walk(client: &VomoClient, filter: &ProjectFilter) -> Vec<Project> {
    let first = client.list_projects(filter, 1).await.unwrap();
    let mut projects = first.projects;
    for page in 2..=first.last_page {
        let next = client.list_projects(filter, page).await.unwrap();
        assert_eq!(next.total, first.total);
        projects.extend(next.projects);
    }
    assert_eq!(projects.len() as u64, first.total);
    projects
}

/// Every project through the union of `anytime=false` and `anytime=true`.
async fn union(client: &VomoClient) -> Vec<Project> {
    let [dated, anytime] = ProjectFilter::default().by_anytime();
    let mut all = walk(client, &dated).await;
    all.extend(walk(client, &anytime).await);
    all.sort_by_key(|p| p.id);
    all
}

/// The live participations of a date in the ground truth.
fn truth_of_date(sim: &SimHandle, date: i64) -> Vec<Participation> {
    let truth = sim.participation_truth("acme").unwrap();
    truth
        .into_iter()
        .filter(|t| !t.removed && t.participation.project_date_id == date)
        .map(|t| t.participation)
        .collect()
}

#[tokio::test]
async fn projects_and_schedules_equal_the_truth_under_every_quirk() {
    let sim = seeded(20).await;
    let client = client_for(&sim, "acme");
    let truth = sim.project_truth("acme").unwrap();
    let expected: Vec<Project> = truth.iter().map(|t| t.project.clone()).collect();
    let plain = union(&client).await;
    assert_eq!(plain, expected, "every project, field by field");
    all_quirks(&sim);
    assert_eq!(union(&client).await, plain, "the same under the quirks");
    for t in &truth {
        let detail = client.get_project(t.project.id).await.unwrap();
        assert_eq!(detail.project, t.project);
        let mut live: Vec<ProjectDate> =
            t.dates.iter().filter(|d| d.deleted_at.is_none()).map(|d| d.date.clone()).collect();
        live.sort_by_key(|d| (d.starts_at, d.id));
        assert_eq!(detail.all_dates, live, "project {}", t.project.id);
        assert!(detail.server_time.is_some());
    }
    let since = expected.iter().map(|p| p.updated_at).max().unwrap();
    let recent = walk(&client, &ProjectFilter::updated_since(since)).await;
    assert!(!recent.is_empty() && recent.iter().all(|p| p.updated_at >= since));
}

#[tokio::test]
async fn participants_and_user_participations_equal_the_truth() {
    let sim = seeded(12).await;
    let client = client_for(&sim, "acme");
    let truth = sim.project_truth("acme").unwrap();
    let dates: Vec<i64> = truth.iter().flat_map(|p| p.dates.iter().map(|d| d.date.id)).collect();
    let mut plain = Vec::new();
    for &date in &dates {
        let detail = client.get_project_date(date).await.unwrap();
        assert_eq!(detail.date.id, date);
        assert_eq!(detail.participants, truth_of_date(&sim, date), "date {date}");
        plain.push(detail.participants);
    }
    assert!(plain.iter().map(Vec::len).sum::<usize>() > 20, "the seed has participants");
    let hours: BTreeSet<String> = plain.iter().flatten().map(|p| p.hours.to_string()).collect();
    assert!(hours.len() > 3, "varied hours: {hours:?}");
    all_quirks(&sim);
    for (date, before) in dates.iter().zip(&plain) {
        assert_eq!(
            &client.get_project_date(*date).await.unwrap().participants,
            before,
            "hours as strings, verified as 0/1"
        );
    }
    let users: BTreeSet<i64> = plain.iter().flatten().map(|p| p.user_id).collect();
    for &user in users.iter().take(8) {
        let mine = client.get_user_participations(user).await.unwrap();
        let expected: Vec<Participation> = sim
            .participation_truth("acme")
            .unwrap()
            .into_iter()
            .filter(|t| !t.removed && t.participation.user_id == user)
            .map(|t| t.participation)
            .collect();
        assert_eq!((mine.user_id, mine.participations), (user, expected));
    }
    // The lenient raw view of user detail still works alongside.
    let user = *users.iter().next().unwrap();
    assert!(!client.get_user(user).await.unwrap().participations.is_empty());
}

#[tokio::test]
async fn today_paginated_or_bare_gives_the_same_dates() {
    let sim = seeded(60).await;
    let client = client_for(&sim, "acme");
    let first = client.projects_today(1).await.unwrap();
    assert!(first.paginated && first.last_page > 1, "more than a page today: {}", first.total);
    let mut paged = first.dates.clone();
    for page in 2..=first.last_page {
        paged.extend(client.projects_today(page).await.unwrap().dates);
    }
    assert_eq!(paged.len() as u64, first.total);
    assert!(paged.iter().all(|d| !d.anytime && d.starts_at.is_some()));
    sim.set_project_knobs(ProjectKnobs { today_paginated: false, ..sim.project_knobs() });
    let bare = client.projects_today(1).await.unwrap();
    assert!(!bare.paginated);
    assert_eq!((bare.page, bare.last_page, bare.total), (1, 1, paged.len() as u64));
    assert_eq!(bare.dates, paged);
}

#[tokio::test]
async fn removed_participations_and_hidden_anytime_dates() {
    let sim = seeded(8).await;
    let client = client_for(&sim, "acme");
    sim.set_project_knobs(ProjectKnobs {
        removed_participations: RemovedParticipations::Status,
        anytime_dates: AnytimeDates::Hidden,
        ..ProjectKnobs::default()
    });
    let truth = sim.project_truth("acme").unwrap();
    let anytime_dates: Vec<i64> =
        truth.iter().filter(|p| p.project.anytime).flat_map(|p| p.dates.iter().map(|d| d.date.id)).collect();
    let signed_up = sim.participation_truth("acme").unwrap();
    let anytime_date = signed_up
        .iter()
        .map(|t| t.participation.project_date_id)
        .find(|d| anytime_dates.contains(d))
        .unwrap();
    let anytime = truth.iter().find(|p| p.dates.iter().any(|d| d.date.id == anytime_date)).unwrap();
    assert!(client.get_project(anytime.project.id).await.unwrap().all_dates.is_empty(), "hidden");
    let someone = client.get_project_date(anytime_date).await.unwrap().participants[0].clone();
    let from_user = client.get_user_participations(someone.user_id).await.unwrap().participations;
    assert!(from_user.contains(&someone), "reachable through user detail");
    sim.participation_action(anytime_date, someone.user_id, ParticipationAction::Cancel, Default::default())
        .unwrap();
    let again = client.get_project_date(anytime_date).await.unwrap();
    let cancelled = again.participants.iter().find(|p| p.user_id == someone.user_id).unwrap();
    assert!(cancelled.is_cancelled());
    assert_eq!(cancelled.hours, someone.hours, "kept with its fields");
}

#[tokio::test]
async fn errors_are_typed_and_quote_nothing() {
    let sim = seeded(6).await;
    let client = client_for(&sim, "acme");
    let theirs = sim.project_truth("other").unwrap();
    let e = client.get_project(theirs[0].project.id).await.unwrap_err();
    assert!(matches!(e, VomoError::NotFound { .. }), "{e:?}");
    let date = sim
        .project_truth("acme")
        .unwrap()
        .into_iter()
        .flat_map(|p| p.dates)
        .find(|d| !d.date.anytime)
        .unwrap();
    sim.delete_date(date.date.id).unwrap();
    let e = client.get_project_date(date.date.id).await.unwrap_err();
    assert!(
        matches!(e, VomoError::NotFound { ref endpoint } if endpoint.starts_with("/projects/date/")),
        "{e:?}"
    );

    sim.set_faults(Faults { html_rate: 1.0, ..Faults::default() });
    let e = client.list_projects(&ProjectFilter::default(), 1).await.unwrap_err();
    let VomoError::Decode { ref endpoint, ref reason } = e else { panic!("{e:?}") };
    assert_eq!(endpoint.as_str(), "/projects?page=1");
    assert!(reason.starts_with("field `(body)`") && reason.contains("HTML") && e.is_retryable(), "{e}");
    sim.set_faults(Faults { truncate_rate: 1.0, ..Faults::default() });
    let e = client.list_projects(&ProjectFilter::default(), 1).await.unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    let names: Vec<String> = sim.users("acme").unwrap().iter().map(|u| u.first_name.clone()).collect();
    assert!(names.iter().all(|n| !e.to_string().contains(&format!("\"{n}"))), "{e}");
    sim.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let e = client.projects_today(1).await.unwrap_err();
    assert!(matches!(e, VomoError::Server { .. }), "{e:?}");
    sim.set_faults(Faults::default());

    let token = sim.token("acme").unwrap();
    assert!(sim.revoke_token(&token));
    let e =
        client_with_token(&sim, &token, Duration::from_secs(5)).get_user_participations(1).await.unwrap_err();
    assert!(matches!(e, VomoError::Unauthorized { .. }) && !e.to_string().contains(&token), "{e:?}");
}
