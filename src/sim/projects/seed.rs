//! Deterministic Project seeding (P21): the same seed and anchor give the same
//! Projects, dates and participations. It draws from its own random stream
//! and only reads the org's members, so seeding Projects leaves users (ids,
//! fields, `updated_at`) exactly as they would be without them. About a
//! quarter of the Projects are anytime; dated ones have dates from 60 days
//! before to 30 days after the anchor, some of them today; past dates carry
//! check-ins, check-outs, hours and verifications, future ones sign-ups only.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::knobs::ProjectSeed;
use super::ops::hours_between;
use super::store::{SimProject, Store};
use super::tz;
use crate::domain::{DateId, ProjectId};
use crate::sim::model::{OrgId, UserId};

const DAY: i64 = 86_400;
const QUARTER_HOUR: i64 = 900;

const ACTIVITIES: &[&str] = &[
    "Beach clean-up",
    "Food bank shift",
    "Tree planting",
    "Reading buddies",
    "Soup kitchen",
    "Park restoration",
    "Animal shelter walks",
    "Blood drive",
    "Home build",
    "Senior centre visits",
    "Community garden",
    "River monitoring",
];

/// What one seeding created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeedReport {
    pub projects: usize,
    pub dates: usize,
    pub participations: usize,
}

/// One seeding run: the random stream, the members to draw from, the anchor.
struct Seeder<'a> {
    store: &'a mut Store,
    rng: StdRng,
    members: &'a [UserId],
    anchor: i64,
    spec: ProjectSeed,
    report: SeedReport,
}

/// Seeds `spec.projects` Projects into `org`, whose members are `members`
/// (sorted), relative to `anchor`.
pub fn seed_projects(
    store: &mut Store,
    org: OrgId,
    members: &[UserId],
    spec: ProjectSeed,
    seed: u64,
    anchor: i64,
) -> SeedReport {
    // Its own stream: never the users' (seed_users) nor the faults' RNG.
    let mixed = seed ^ 0x7072_6F6A_6563_7473 ^ (org as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
    let rng = StdRng::seed_from_u64(mixed);
    let mut seeder = Seeder { store, rng, members, anchor, spec, report: SeedReport::default() };
    for n in 0..spec.projects {
        seeder.project(org, n);
    }
    seeder.report
}

impl Seeder<'_> {
    fn project(&mut self, org: OrgId, n: usize) {
        let anytime = n % 4 == 3;
        let id = self.insert_project(org, anytime);
        self.report.projects += 1;
        if anytime {
            self.anytime_date(id);
            return;
        }
        let wanted = self.spec.dates_per_project;
        let count = if wanted == 0 { 0 } else { self.rng.random_range(1..=wanted * 2 - 1) };
        for k in 0..count {
            // The first date of every third Project is today (UTC).
            let today = k == 0 && n.is_multiple_of(3);
            self.dated(id, today);
        }
    }

    fn insert_project(&mut self, org: OrgId, anytime: bool) -> ProjectId {
        let rng = &mut self.rng;
        let (zone, _, place) = tz::TIMEZONES[rng.random_range(0..tz::TIMEZONES.len())];
        let activity = ACTIVITIES[rng.random_range(0..ACTIVITIES.len())];
        let created_at = self.anchor - rng.random_range(61 * DAY..400 * DAY);
        let updated_at = rng.random_range(created_at..self.anchor - 3_600);
        let project = SimProject {
            id: 0,
            org,
            name: format!("{activity} ({place})"),
            description: format!("{activity}: volunteers welcome."),
            anytime,
            active: rng.random_bool(0.9),
            published: rng.random_bool(0.9),
            privacy: ["PUBLIC", "PUBLIC", "PUBLIC", "PRIVATE", "UNLISTED"][rng.random_range(0..5)].into(),
            allow_guests: rng.random_bool(0.5),
            age_limit: [0, 0, 0, 13, 16, 18][rng.random_range(0..6)],
            timezone: zone.into(),
            locality: place.into(),
            created_at,
            updated_at,
            dates: Vec::new(),
        };
        self.store.insert_project(project)
    }

    /// A dated date between 60 days before and 30 days after the anchor (or
    /// in the anchor's UTC day), with its participants.
    fn dated(&mut self, project: ProjectId, today: bool) {
        let (from, to) =
            if today { tz::day_of(self.anchor, 0) } else { (self.anchor - 60 * DAY, self.anchor + 30 * DAY) };
        let starts = self.rng.random_range(from..to - 4 * 3_600).div_euclid(QUARTER_HOUR) * QUARTER_HOUR;
        let ends = starts + self.rng.random_range(2..=8) * 1_800;
        let capacity = self.rng.random_bool(0.5).then(|| self.rng.random_range(5..40));
        let Some(id) = self.store.insert_date(project, starts, Some(ends), capacity) else { return };
        self.report.dates += 1;
        let wanted = self.participant_count().min(capacity.map_or(usize::MAX, |c| c as usize));
        for user in self.pick_members(wanted) {
            self.dated_participant(id, user, starts, ends);
        }
    }

    fn anytime_date(&mut self, project: ProjectId) {
        let created = self.store.project(project).map_or(self.anchor, |p| p.created_at);
        let Some(id) = self.store.insert_date(project, created, None, None) else { return };
        self.report.dates += 1;
        let wanted = self.participant_count() * 2;
        for user in self.pick_members(wanted) {
            self.anytime_participant(id, user, created);
        }
    }

    fn participant_count(&mut self) -> usize {
        let avg = self.spec.participants_per_date;
        if avg == 0 { 0 } else { self.rng.random_range(0..=avg * 2) }
    }

    /// `wanted` distinct members (all of them when there are fewer).
    fn pick_members(&mut self, wanted: usize) -> Vec<UserId> {
        if wanted >= self.members.len() {
            return self.members.to_vec();
        }
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < wanted {
            picked.insert(self.members[self.rng.random_range(0..self.members.len())]);
        }
        picked.into_iter().collect()
    }

    fn dated_participant(&mut self, date: DateId, user: UserId, starts: i64, ends: i64) {
        let rng = &mut self.rng;
        let signed_up = starts.min(self.anchor) - rng.random_range(3_600..30 * DAY);
        let started = starts <= self.anchor;
        let ended = ends <= self.anchor;
        let checked_in = (started && rng.random_bool(if ended { 0.85 } else { 0.5 }))
            .then(|| (starts + rng.random_range(-900..900)).min(self.anchor));
        let checked_out = checked_in
            .filter(|_| ended && rng.random_bool(0.9))
            .map(|at| (ends + rng.random_range(-1_800..1_800)).max(at + 60));
        // A missing check-out counts to the end of the slot (help centre).
        let hours = match (checked_in, checked_out) {
            (Some(i), Some(o)) => hours_between(i, o),
            (Some(i), None) if ended => hours_between(i, ends),
            _ => 0,
        };
        let verified = checked_in.is_some() && ended && rng.random_bool(0.6);
        let role = if rng.random_bool(0.1) { "Team Lead" } else { "Volunteer" };
        let guests = if rng.random_bool(0.15) { rng.random_range(1..=3) } else { 0 };
        let anchor = self.anchor;
        if let Some(part) = self.store.sign_up(date, user, signed_up) {
            part.checked_in_at = checked_in;
            part.checked_out_at = checked_out;
            part.hours = hours;
            part.verified = verified;
            part.role = role.into();
            part.guests = guests;
            part.changed_at = anchor;
            self.report.participations += 1;
        }
    }

    /// Anytime sign-ups, some with logged hours (no check-in or out).
    fn anytime_participant(&mut self, date: DateId, user: UserId, created: i64) {
        let rng = &mut self.rng;
        let signed_up = rng.random_range(created..self.anchor - 3_600);
        let hours = if rng.random_bool(0.6) { rng.random_range(1..=32) * 25 } else { 0 };
        let verified = hours > 0 && rng.random_bool(0.4);
        let anchor = self.anchor;
        if let Some(part) = self.store.sign_up(date, user, signed_up) {
            part.hours = hours;
            part.verified = verified;
            part.changed_at = anchor;
            self.report.participations += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: i64 = 1_907_755_200;

    fn seeded(seed: u64) -> (Store, SeedReport) {
        let mut store = Store::default();
        let members: Vec<UserId> = (1..=40).collect();
        let report = seed_projects(&mut store, 0, &members, ProjectSeed::projects(12), seed, ANCHOR);
        (store, report)
    }

    fn dump(store: &Store) -> String {
        let parts: Vec<_> = store.all_participations().collect();
        let dates: Vec<_> = store.dates().collect();
        let projects: Vec<_> = store.projects().collect();
        serde_json::to_string(&(projects, dates, parts)).unwrap()
    }

    #[test]
    fn the_same_seed_and_anchor_give_the_same_world() {
        let (a, report) = seeded(5);
        let (b, _) = seeded(5);
        assert_eq!(dump(&a), dump(&b));
        assert_ne!(dump(&a), dump(&seeded(6).0));
        assert_eq!(report.projects, 12);
        assert_eq!(a.projects().filter(|p| p.anytime).count(), 3, "a quarter are anytime");
        assert!(report.dates > 12 && report.participations > report.dates);
    }

    #[test]
    fn dates_span_the_window_and_only_past_ones_have_attendance() {
        let (store, _) = seeded(9);
        let (today_start, today_end) = tz::day_of(ANCHOR, 0);
        let dated: Vec<_> = store.dates().filter(|d| !d.anytime).collect();
        assert!(dated.iter().all(|d| (ANCHOR - 60 * DAY..ANCHOR + 30 * DAY).contains(&d.starts_at)));
        assert!(dated.iter().any(|d| (today_start..today_end).contains(&d.starts_at)), "some today");
        for part in store.all_participations() {
            let date = store.date(part.date).unwrap();
            if date.starts_at > ANCHOR && !date.anytime {
                assert!(part.checked_in_at.is_none() && part.hours == 0 && !part.verified, "{part:?}");
            }
            assert!(part.signed_up_at <= ANCHOR);
        }
        let attended = store.all_participations().filter(|p| p.checked_out_at.is_some() && p.hours > 0);
        assert!(attended.count() > 0);
        assert!(store.all_participations().any(|p| p.verified));
        for anytime in store.dates().filter(|d| d.anytime) {
            assert_eq!(anytime.ends_at, None);
            assert_eq!(Some(anytime.starts_at), store.project(anytime.project).map(|p| p.created_at));
        }
    }
}
