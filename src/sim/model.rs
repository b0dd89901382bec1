//! The simulator's world: organisations, tokens and users with their
//! memberships, plus the indexes that answer `GET /users` quickly at a million
//! users. Timestamps are whole Unix seconds, as VOMO stores them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

pub type OrgId = usize;
pub type UserId = i64;

/// An organisation; `parent` makes org families (vomo-api.md §2).
#[derive(Debug, Clone, Serialize)]
pub struct Org {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
    pub parent: Option<OrgId>,
    pub invite_code: String,
    /// API access switched off (the add-on disabled): valid tokens get 403.
    pub api_disabled: bool,
}

/// A user's membership of one organisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub org: OrgId,
    pub status: String,
    pub role: String,
}

/// A stored user. `password` is kept only to apply the upsert rules.
#[derive(Debug, Clone, Serialize)]
pub struct SimUser {
    pub id: UserId,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub birthday: String,
    pub gender: String,
    #[serde(skip)]
    pub password: Option<String>,
    pub user_status: String,
    pub home_org: OrgId,
    pub created_at: i64,
    pub updated_at: i64,
    pub memberships: Vec<Membership>,
    pub participations: Vec<serde_json::Value>,
    pub profile_field_values: Vec<serde_json::Value>,
}

impl SimUser {
    pub fn membership_in(&self, org: OrgId) -> Option<&Membership> {
        self.memberships.iter().find(|m| m.org == org)
    }
}

/// Parsed `GET /users` filters; instants are whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserQuery {
    pub updated_after: Option<i64>,
    pub updated_before: Option<i64>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub name_like: Option<String>,
    pub email_like: Option<String>,
}

/// Result order of `GET /users` (vomo-api.md §10.8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderMode {
    /// Primary-key order, the Laravel default.
    #[default]
    Id,
    /// By `updated_at`, ties by id.
    UpdatedAt,
    /// By `updated_at` with ties in a fresh random order on every request:
    /// paging is unstable across requests.
    UnstableTies,
}

/// What removing a membership does to the org's list (vomo-api.md §10.20b).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalMode {
    #[default]
    Vanish,
    Status,
}

type CacheKey = (OrgId, UserQuery, OrderMode);

/// Everything the simulated VOMO knows.
#[derive(Debug, Default)]
pub struct World {
    pub orgs: Vec<Org>,
    /// token → org.
    pub tokens: HashMap<String, OrgId>,
    users: HashMap<UserId, SimUser>,
    by_email: HashMap<String, UserId>,
    /// Per org: its members ordered by (`updated_at`, id).
    members: Vec<BTreeSet<(i64, UserId)>>,
    next_id: UserId,
    /// Bumped on every change; invalidates cached query results.
    version: u64,
    cache: HashMap<CacheKey, (u64, Arc<Vec<UserId>>)>,
}

/// Entries kept in the query cache before it is cleared wholesale.
const CACHE_LIMIT: usize = 512;

impl World {
    pub fn new() -> Self {
        Self { next_id: 1, ..Self::default() }
    }

    pub fn add_org(&mut self, slug: &str, name: &str, parent: Option<OrgId>) -> OrgId {
        let id = self.orgs.len();
        self.orgs.push(Org {
            id,
            slug: slug.to_owned(),
            name: name.to_owned(),
            parent,
            invite_code: format!("INV-{}", slug.to_uppercase()),
            api_disabled: false,
        });
        self.members.push(BTreeSet::new());
        id
    }

    pub fn org_by_slug(&self, slug: &str) -> Option<OrgId> {
        self.orgs.iter().find(|o| o.slug == slug).map(|o| o.id)
    }

    /// The org and all its descendants.
    pub fn family(&self, org: OrgId) -> Vec<OrgId> {
        let mut family = vec![org];
        let mut i = 0;
        while i < family.len() {
            let current = family[i];
            family.extend(self.orgs.iter().filter(|o| o.parent == Some(current)).map(|o| o.id));
            i += 1;
        }
        family
    }

    pub fn user(&self, id: UserId) -> Option<&SimUser> {
        self.users.get(&id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&SimUser> {
        self.by_email.get(&email.to_lowercase()).and_then(|id| self.users.get(id))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn member_count(&self, org: OrgId) -> usize {
        self.members.get(org).map_or(0, BTreeSet::len)
    }

    /// True when `user` has a membership in `org`'s family.
    pub fn visible_to(&self, user: &SimUser, org: OrgId) -> bool {
        let family = self.family(org);
        user.memberships.iter().any(|m| family.contains(&m.org))
    }

    pub fn allocate_id(&mut self) -> UserId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Stores a new user (id from [`World::allocate_id`]).
    pub fn insert(&mut self, user: SimUser) {
        self.by_email.insert(user.email.to_lowercase(), user.id);
        for m in &user.memberships {
            self.members[m.org].insert((user.updated_at, user.id));
        }
        self.users.insert(user.id, user);
        self.version += 1;
    }

    /// Changes a user in place, keeping the indexes right. With `touch`,
    /// `updated_at` becomes `now`; without, it is left alone (a change VOMO
    /// did not stamp, for reconciliation tests).
    pub fn modify(&mut self, id: UserId, now: i64, touch: bool, change: impl FnOnce(&mut SimUser)) -> bool {
        let Some(mut user) = self.users.remove(&id) else { return false };
        self.unindex(&user);
        change(&mut user);
        if touch {
            user.updated_at = now.max(user.updated_at);
        }
        self.insert(user);
        true
    }

    /// Hard delete: gone from every list; detail is 404.
    pub fn delete(&mut self, id: UserId) -> bool {
        let Some(user) = self.users.remove(&id) else { return false };
        self.unindex(&user);
        self.version += 1;
        true
    }

    fn unindex(&mut self, user: &SimUser) {
        self.by_email.remove(&user.email.to_lowercase());
        for m in &user.memberships {
            self.members[m.org].remove(&(user.updated_at, user.id));
        }
    }

    /// GDPR anonymisation as the help centre describes it (vomo-api.md §6).
    pub fn anonymise(&mut self, id: UserId, now: i64) -> bool {
        self.modify(id, now, true, |u| {
            u.first_name = "Deleted".into();
            u.last_name = "User".into();
            u.email = format!("vomodeleteduser{}@vomo.org", u.id);
            u.birthday = "1900-01-01".into();
            u.address = None;
            u.phone = Some("555-555-5555".into());
        })
    }

    /// Ends a membership: the user vanishes from that org's list, or stays with
    /// status `REMOVED`.
    pub fn remove_membership(&mut self, id: UserId, org: OrgId, mode: RemovalMode, now: i64) -> bool {
        self.modify(id, now, true, |u| match mode {
            RemovalMode::Vanish => u.memberships.retain(|m| m.org != org),
            RemovalMode::Status => {
                for m in u.memberships.iter_mut().filter(|m| m.org == org) {
                    m.status = "REMOVED".into();
                }
            }
        })
    }

    /// Ids matching `query` for a token of `org`, in `order`. Results of the
    /// stable orders are cached until the next change, so paging a large
    /// result costs one scan, not one per page.
    pub fn query(
        &mut self,
        org: OrgId,
        query: &UserQuery,
        order: OrderMode,
        rng: &mut StdRng,
    ) -> Arc<Vec<UserId>> {
        let key = (org, query.clone(), order);
        if order != OrderMode::UnstableTies
            && let Some((version, ids)) = self.cache.get(&key)
            && *version == self.version
        {
            return Arc::clone(ids);
        }
        let mut hits: Vec<(i64, UserId)> = Vec::new();
        let lower = (query.updated_after.unwrap_or(i64::MIN), UserId::MIN);
        let upper = (query.updated_before.unwrap_or(i64::MAX), UserId::MAX);
        for member_org in self.family(org) {
            for &(updated, id) in self.members[member_org].range(lower..=upper) {
                if let Some(user) = self.users.get(&id)
                    && matches_rest(user, query)
                {
                    hits.push((updated, id));
                }
            }
        }
        match order {
            OrderMode::Id => hits.sort_unstable_by_key(|&(_, id)| id),
            OrderMode::UpdatedAt | OrderMode::UnstableTies => hits.sort_unstable(),
        }
        hits.dedup_by_key(|&mut (_, id)| id);
        if order == OrderMode::UnstableTies {
            shuffle_ties(&mut hits, rng);
        }
        let ids = Arc::new(hits.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
        if order != OrderMode::UnstableTies {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(key, (self.version, Arc::clone(&ids)));
        }
        ids
    }

    /// Every user visible to `org`'s family, by id (admin dumps).
    pub fn users_of(&self, org: OrgId) -> Vec<&SimUser> {
        let family = self.family(org);
        let mut users: Vec<&SimUser> =
            self.users.values().filter(|u| u.memberships.iter().any(|m| family.contains(&m.org))).collect();
        users.sort_by_key(|u| u.id);
        users
    }
}

fn matches_rest(user: &SimUser, query: &UserQuery) -> bool {
    let created_ok = query.created_after.is_none_or(|t| user.created_at >= t)
        && query.created_before.is_none_or(|t| user.created_at <= t);
    let name_ok = query.name_like.as_ref().is_none_or(|needle| {
        let needle = needle.to_lowercase();
        user.first_name.to_lowercase().contains(&needle) || user.last_name.to_lowercase().contains(&needle)
    });
    let email_ok = query
        .email_like
        .as_ref()
        .is_none_or(|needle| user.email.to_lowercase().contains(&needle.to_lowercase()));
    created_ok && name_ok && email_ok
}

/// Shuffles each run of equal `updated_at` values.
fn shuffle_ties(hits: &mut [(i64, UserId)], rng: &mut StdRng) {
    let mut start = 0;
    while start < hits.len() {
        let mut end = start + 1;
        while end < hits.len() && hits[end].0 == hits[start].0 {
            end += 1;
        }
        for i in (start + 1..end).rev() {
            let j = rng.random_range(start..=i);
            hits.swap(i, j);
        }
        start = end;
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Leslie",
    "Tim",
    "Katherine",
    "Niklaus",
    "Hedy",
    "Linus",
    "Sophie",
    "Carlos",
    "Amara",
    "Yuki",
    "Priya",
    "Omar",
    "Ingrid",
    "Mateo",
    "Zanele",
    "Chen",
    "Fatima",
    "Lars",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Ritchie",
    "Allen",
    "McCarthy",
    "Perlman",
    "Lamport",
    "Berners-Lee",
    "Johnson",
    "Wirth",
    "Lamarr",
    "Torvalds",
    "Wilson",
    "Silva",
    "Okafor",
    "Tanaka",
    "Sharma",
    "Haddad",
    "Berg",
    "Garcia",
    "Dlamini",
    "Wei",
    "Khan",
    "Nilsen",
];
const STREETS: &[&str] = &["Main St", "High St", "Oak Ave", "Elm Rd", "Harbour Way", "Mill Lane"];

/// Seeds `count` members of `org`, deterministically from `seed`: the same
/// seed gives the same names, e-mails and relative timestamps. A tenth of a
/// large batch (at most 60) shares one timestamp (a bulk import), so some single seconds
/// hold more users than a page.
pub fn seed_users(world: &mut World, org: OrgId, count: usize, seed: u64, now: i64) -> Vec<UserId> {
    let mut rng = StdRng::seed_from_u64(seed ^ (org as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    const THREE_YEARS: i64 = 3 * 365 * 86_400;
    let bulk = if count >= 100 { (count / 10).min(60) } else { 0 };
    let bulk_at = now - rng.random_range(86_400..THREE_YEARS);
    let slug = world.orgs[org].slug.clone();
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let id = world.allocate_id();
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let (created_at, updated_at) = if n < bulk {
            (bulk_at, bulk_at)
        } else {
            let created = now - rng.random_range(3_600..THREE_YEARS);
            let edited = rng.random_bool(0.7);
            let updated = if edited { rng.random_range(created..now - 600) } else { created };
            (created, updated)
        };
        let role = match rng.random_range(0..20) {
            0 => "ADMIN",
            1..=2 => "ORGANIZER",
            _ => "VOLUNTEER",
        };
        let status = if rng.random_bool(0.95) { "ACCEPTED" } else { "PENDING" };
        let user = SimUser {
            id,
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            email: format!("{}.{}.{id}@{slug}.example.org", first.to_lowercase(), last.to_lowercase()),
            address: rng.random_bool(0.8).then(|| {
                format!("{} {}", rng.random_range(1..999), STREETS[rng.random_range(0..STREETS.len())])
            }),
            phone: rng.random_bool(0.85).then(|| format!("+1-555-{:04}", rng.random_range(0..10_000))),
            birthday: format!(
                "{}-{:02}-{:02}",
                rng.random_range(1940..2008),
                rng.random_range(1..=12),
                rng.random_range(1..=28)
            ),
            gender: ["M", "F", "N"][rng.random_range(0..3)].to_owned(),
            password: None,
            user_status: if rng.random_bool(0.9) { "VERIFIED" } else { "UNVERIFIED" }.to_owned(),
            home_org: org,
            created_at,
            updated_at,
            memberships: vec![Membership { org, status: status.to_owned(), role: role.to_owned() }],
            participations: Vec::new(),
            profile_field_values: Vec::new(),
        };
        world.insert(user);
        ids.push(id);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world_with(count: usize) -> (World, OrgId) {
        let mut world = World::new();
        let org = world.add_org("acme", "Acme", None);
        seed_users(&mut world, org, count, 7, 2_000_000_000);
        (world, org)
    }

    #[test]
    fn seeding_is_deterministic() {
        let (a, org) = world_with(300);
        let (b, _) = world_with(300);
        let emails =
            |w: &World| w.users_of(org).iter().map(|u| (u.email.clone(), u.updated_at)).collect::<Vec<_>>();
        assert_eq!(emails(&a), emails(&b));
        assert_eq!(a.member_count(org), 300);
        // A bulk import: one second holds more users than a page.
        let mut per_second: HashMap<i64, usize> = HashMap::new();
        for u in a.users_of(org) {
            *per_second.entry(u.updated_at).or_default() += 1;
        }
        assert!(per_second.values().any(|n| *n > 15));
    }

    #[test]
    fn window_queries_are_inclusive_and_follow_changes() {
        let (mut world, org) = world_with(200);
        let mut rng = StdRng::seed_from_u64(1);
        let all = world.query(org, &UserQuery::default(), OrderMode::Id, &mut rng);
        assert_eq!(all.len(), 200);
        let target = world.user(all[10]).unwrap().updated_at;
        let q =
            UserQuery { updated_after: Some(target), updated_before: Some(target), ..UserQuery::default() };
        let hits = world.query(org, &q, OrderMode::Id, &mut rng);
        assert!(hits.contains(&all[10]));
        assert!(hits.iter().all(|id| world.user(*id).unwrap().updated_at == target));
        world.modify(all[10], target + 5, true, |u| u.phone = None);
        let hits = world.query(org, &q, OrderMode::Id, &mut rng);
        assert!(!hits.contains(&all[10]), "a touched user leaves its old window");
        world.delete(all[11]);
        assert_eq!(world.query(org, &UserQuery::default(), OrderMode::Id, &mut rng).len(), 199);
    }

    #[test]
    fn families_see_child_orgs() {
        let mut world = World::new();
        let parent = world.add_org("parent", "P", None);
        let child = world.add_org("child", "C", Some(parent));
        let other = world.add_org("other", "O", None);
        seed_users(&mut world, child, 5, 1, 2_000_000_000);
        seed_users(&mut world, other, 5, 1, 2_000_000_000);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(world.query(parent, &UserQuery::default(), OrderMode::Id, &mut rng).len(), 5);
        assert_eq!(world.query(child, &UserQuery::default(), OrderMode::Id, &mut rng).len(), 5);
        assert_eq!(world.family(parent), vec![parent, child]);
    }
}
