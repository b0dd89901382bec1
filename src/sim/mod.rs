//! A local VOMO: an axum server faithful to vomo-api.md §10 for `/v1/users`
//! and §12.7 for Projects, Project Dates and participations ([`projects`]),
//! with an admin surface on its own port (its own secret) to seed users and
//! Projects, change them behind the sync engine's back, revoke tokens and
//! switch faults on. Used by tests, benchmarks, `vomo-sync simulate` and the
//! demo; never by the engine itself.

mod admin;
mod api;
pub mod faults;
pub mod hubspot;
pub mod model;
pub mod projects;
mod wire_out;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::{Faults, Quirks, RateLimit};
use model::{Membership, OrgId, SimUser, World};
pub use model::{OrderMode, RemovalMode, UserId};
pub use projects::{MutatorSettings, ProjectKnobs, ProjectSeed};

/// Errors of the simulator's own API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("no organisation {0:?}")]
    UnknownOrg(String),
    #[error("no user {0}")]
    UnknownUser(UserId),
    #[error("organisation {0:?} already exists")]
    DuplicateOrg(String),
    #[error("e-mail {0:?} is already taken")]
    DuplicateEmail(String),
    #[error("no project {0}")]
    UnknownProject(i64),
    #[error("no project date {0}")]
    UnknownDate(i64),
    #[error("no live participation of user {1} in project date {0}")]
    UnknownParticipation(i64, UserId),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// One organisation to create at start-up.
#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub slug: String,
    pub users: usize,
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub admin_port: u16,
    pub orgs: Vec<OrgSpec>,
    pub seed: u64,
    pub rate_limit: Option<RateLimit>,
    /// Generated from the seed when not given.
    pub admin_secret: Option<String>,
    /// A background edit of one random user this often (the demo's live
    /// stream of changes).
    pub edit_every: Option<Duration>,
    /// The simulated clock's start (Unix seconds): users and Projects are
    /// seeded relative to it, so the same seed and anchor give the same
    /// world. Default: the real clock.
    pub anchor: Option<i64>,
    /// Projects to seed, by org slug (P21); none unless asked for, so the
    /// user world is what it always was.
    pub projects: BTreeMap<String, ProjectSeed>,
    pub project_knobs: ProjectKnobs,
    /// The background participation mutator (P19); off at rate 0.
    pub participation_mutator: MutatorSettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            admin_port: 0,
            orgs: Vec::new(),
            seed: 1,
            rate_limit: None,
            admin_secret: None,
            edit_every: None,
            anchor: None,
            projects: BTreeMap::new(),
            project_knobs: ProjectKnobs::default(),
            participation_mutator: MutatorSettings::default(),
        }
    }
}

/// Requests seen for one token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    pub requests: u64,
    pub list: u64,
    pub detail: u64,
    pub upsert: u64,
    /// `GET /projects`, `GET /projects/{id}`, `GET /projects/today`,
    /// `GET /projects/date/{id}`.
    #[serde(default)]
    pub project_list: u64,
    #[serde(default)]
    pub project_detail: u64,
    #[serde(default)]
    pub today: u64,
    #[serde(default)]
    pub date_detail: u64,
    /// Status code → count.
    pub status: BTreeMap<u16, u64>,
}

type Limiter = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

/// Mutable simulator state, behind one std mutex: every critical section is
/// short and never awaits, so a blocking lock is cheaper than an async one.
pub(crate) struct SimState {
    pub world: World,
    pub faults: Faults,
    pub rng: StdRng,
    pub storm_left: u64,
    pub clock_offset: i64,
    pub stats: BTreeMap<String, TokenStats>,
    pub projects: projects::store::Store,
    pub mutator: projects::mutator::MutatorState,
    /// Pauses the user edit stream and the participation mutator together.
    pub mutators_paused: bool,
    token_counter: u64,
    seed: u64,
}

impl SimState {
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset
    }

    fn new_token(&mut self, org: OrgId) -> String {
        self.token_counter += 1;
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(31).wrapping_add(self.token_counter));
        let bytes: [u8; 20] = rng.random();
        let token = hex::encode(bytes);
        self.world.tokens.insert(token.clone(), org);
        token
    }

    fn org(&self, slug: &str) -> Result<OrgId, SimError> {
        self.world.org_by_slug(slug).ok_or_else(|| SimError::UnknownOrg(slug.to_owned()))
    }

    /// Hard-deletes a user; their participations go with them (P16).
    pub fn delete_user(&mut self, id: UserId) -> bool {
        let now = self.now();
        let deleted = self.world.delete(id);
        if deleted {
            self.projects.user_deleted(id, now);
        }
        deleted
    }
}

pub(crate) struct Shared {
    state: Mutex<SimState>,
    limiter: Mutex<Option<(RateLimit, Arc<Limiter>)>>,
    base_url: String,
    admin_secret: String,
}

impl Shared {
    /// Locks the state. A panic while holding the lock would be a simulator
    /// bug; the data is still usable, so a poisoned lock is recovered.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn limiter(&self) -> Option<(RateLimit, Arc<Limiter>)> {
        self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_limiter(&self, rate: Option<RateLimit>) {
        let limiter = rate.map(|rate| {
            let burst = std::num::NonZeroU32::new(rate.requests).unwrap_or(std::num::NonZeroU32::MIN);
            // One request replenished every period/requests; the whole allowance as burst.
            let interval = Duration::from_secs(u64::from(rate.per_seconds)) / rate.requests.max(1);
            let quota =
                Quota::with_period(interval).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
            let plain: DefaultKeyedRateLimiter<String> = governor::RateLimiter::keyed(quota);
            (rate, Arc::new(plain.with_middleware::<StateInformationMiddleware>()))
        });
        *self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = limiter;
    }
}

/// An organisation as the admin surface reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgInfo {
    pub slug: String,
    pub users: usize,
    pub tokens: Vec<String>,
    pub parent: Option<String>,
}

/// Fields for an admin-created user or an admin edit; absent fields are
/// generated (create) or left alone (edit).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserFields {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub user_status: Option<String>,
    pub role: Option<String>,
}

/// A running simulator. Dropping the handle stops both servers; its
/// [`SimControl`] methods (through `Deref`) drive the simulated world.
pub struct SimHandle {
    control: SimControl,
    admin_url: String,
    addr: SocketAddr,
    cancel: CancellationToken,
}

/// The admin operations on a simulator's world, shared by the admin HTTP
/// surface and in-process callers (tests, the demo). Cheap to clone.
#[derive(Clone)]
pub struct SimControl {
    shared: Arc<Shared>,
}

impl std::ops::Deref for SimHandle {
    type Target = SimControl;

    fn deref(&self) -> &SimControl {
        &self.control
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a simulator on `config`'s ports and returns once both listen.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let bind = |port| async move {
        let addr = SocketAddr::new(config.bind, port);
        let listener =
            TcpListener::bind(addr).await.map_err(|e| SimError::Bind { addr, reason: e.to_string() })?;
        let local = listener.local_addr().map_err(|e| SimError::Bind { addr, reason: e.to_string() })?;
        Ok::<_, SimError>((listener, local))
    };
    let (api_listener, api_addr) = bind(config.port).await?;
    let (admin_listener, admin_addr) = bind(config.admin_port).await?;
    let state = initial_state(&config)?;
    let admin_secret = config.admin_secret.clone().unwrap_or_else(|| {
        let bytes: [u8; 16] = StdRng::seed_from_u64(config.seed ^ 0xAD41_u64).random();
        format!("sim-admin-{}", hex::encode(bytes))
    });
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        limiter: Mutex::new(None),
        base_url: format!("http://{api_addr}/v1"),
        admin_secret,
    });
    shared.set_limiter(config.rate_limit);
    let cancel = CancellationToken::new();
    serve(api_listener, api::router(Arc::clone(&shared)), cancel.clone());
    serve(admin_listener, admin::router(Arc::clone(&shared)), cancel.clone());
    if let Some(every) = config.edit_every {
        tokio::spawn(edit_stream(Arc::clone(&shared), every, cancel.clone()));
    }
    tokio::spawn(projects::mutator::run(Arc::clone(&shared), cancel.clone()));
    Ok(SimHandle {
        control: SimControl { shared },
        admin_url: format!("http://{admin_addr}/admin"),
        addr: api_addr,
        cancel,
    })
}

/// The seeded world: orgs with users and tokens, then the Projects asked for
/// (after every user, so Projects never change a user id).
fn initial_state(config: &SimConfig) -> Result<SimState, SimError> {
    let mut state = SimState {
        world: World::new(),
        faults: Faults::default(),
        rng: StdRng::seed_from_u64(config.seed),
        storm_left: 0,
        clock_offset: 0,
        stats: BTreeMap::new(),
        projects: projects::store::Store::default(),
        mutator: projects::mutator::MutatorState::default(),
        mutators_paused: false,
        token_counter: 0,
        seed: config.seed,
    };
    if let Some(anchor) = config.anchor {
        state.clock_offset = anchor - chrono::Utc::now().timestamp();
    }
    // The anchor itself, not the clock read again: a second boundary
    // crossed meanwhile would make two runs differ.
    let now = config.anchor.unwrap_or_else(|| state.now());
    for spec in &config.orgs {
        let org = state.world.add_org(&spec.slug, &spec.slug, None);
        model::seed_users(&mut state.world, org, spec.users, config.seed, now);
        state.new_token(org);
    }
    for (slug, spec) in &config.projects {
        projects::control::seed_into(&mut state, slug, *spec, config.seed, now)?;
    }
    state.projects.knobs = config.project_knobs;
    state.mutator.set(config.participation_mutator);
    Ok(state)
}

fn serve(listener: TcpListener, router: axum::Router, cancel: CancellationToken) {
    tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
}

/// Edits one random user of a random org every `every`, like volunteers
/// updating their profiles.
async fn edit_stream(shared: Arc<Shared>, every: Duration, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut state = shared.state();
        let orgs = state.world.orgs.len();
        if orgs == 0 || state.mutators_paused {
            continue;
        }
        let org = state.rng.random_range(0..orgs);
        let now = state.now();
        let mut rng = StdRng::seed_from_u64(state.rng.random());
        let ids = state.world.query(org, &model::UserQuery::default(), OrderMode::Id, &mut rng);
        if ids.is_empty() {
            continue;
        }
        let id = ids[state.rng.random_range(0..ids.len())];
        let phone = format!("+1-555-{:04}", state.rng.random_range(0..10_000));
        state.world.modify(id, now, true, |u| u.phone = Some(phone));
    }
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Stops both servers (also done on drop).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// A control that outlives nothing: it keeps the world, not the servers.
    pub fn control(&self) -> SimControl {
        self.control.clone()
    }
}

impl SimControl {
    /// The VOMO base URL, e.g. `http://127.0.0.1:41234/v1`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn admin_secret(&self) -> &str {
        &self.shared.admin_secret
    }

    /// Organisations with their user counts and live tokens.
    pub fn orgs(&self) -> Vec<OrgInfo> {
        let state = self.shared.state();
        let world = &state.world;
        world
            .orgs
            .iter()
            .map(|org| {
                let mut tokens: Vec<String> =
                    world.tokens.iter().filter(|(_, o)| **o == org.id).map(|(t, _)| t.clone()).collect();
                tokens.sort();
                OrgInfo {
                    slug: org.slug.clone(),
                    users: world.member_count(org.id),
                    tokens,
                    parent: org.parent.map(|p| world.orgs[p].slug.clone()),
                }
            })
            .collect()
    }

    /// The first live token of `slug`.
    pub fn token(&self, slug: &str) -> Option<String> {
        self.orgs().into_iter().find(|o| o.slug == slug).and_then(|o| o.tokens.into_iter().next())
    }

    pub fn add_org(&self, slug: &str, parent: Option<&str>) -> Result<String, SimError> {
        admin::add_org(&mut self.shared.state(), slug, parent)
    }

    /// Adds `count` deterministic users to `slug`; returns their ids.
    pub fn seed(&self, slug: &str, count: usize, seed: u64) -> Result<Vec<UserId>, SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        let now = state.now();
        Ok(model::seed_users(&mut state.world, org, count, seed, now))
    }

    pub fn issue_token(&self, slug: &str) -> Result<String, SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        Ok(state.new_token(org))
    }

    /// Revokes a token: from now on it gets 401.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.shared.state().world.tokens.remove(token).is_some()
    }

    pub fn create_user(&self, slug: &str, fields: &UserFields) -> Result<UserId, SimError> {
        admin::create_user(&mut self.shared.state(), slug, fields)
    }

    /// Edits a user. With `touch` false, `updated_at` does not move (a change
    /// polling cannot see).
    pub fn update_user(&self, id: UserId, fields: &UserFields, touch: bool) -> Result<(), SimError> {
        admin::update_user(&mut self.shared.state(), id, fields, touch)
    }

    pub fn delete_user(&self, id: UserId) -> Result<(), SimError> {
        self.shared.state().delete_user(id).then_some(()).ok_or(SimError::UnknownUser(id))
    }

    pub fn anonymise_user(&self, id: UserId) -> Result<(), SimError> {
        let mut state = self.shared.state();
        let now = state.now();
        state.world.anonymise(id, now).then_some(()).ok_or(SimError::UnknownUser(id))
    }

    pub fn remove_membership(&self, id: UserId, slug: &str) -> Result<(), SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        let now = state.now();
        let mode = state.faults.membership_removal;
        state.world.remove_membership(id, org, mode, now).then_some(()).ok_or(SimError::UnknownUser(id))
    }

    /// Switches an organisation's API access off (valid tokens then get 403)
    /// or back on.
    pub fn set_api_access(&self, slug: &str, enabled: bool) -> Result<(), SimError> {
        let mut state = self.shared.state();
        let org = state.org(slug)?;
        state.world.orgs[org].api_disabled = !enabled;
        Ok(())
    }

    pub fn set_faults(&self, faults: Faults) {
        admin::set_faults(&mut self.shared.state(), faults);
    }

    pub fn faults(&self) -> Faults {
        self.shared.state().faults.clone()
    }

    pub fn set_rate_limit(&self, rate: Option<RateLimit>) {
        self.shared.set_limiter(rate);
    }

    /// Moves the simulator's clock (its `Date` header and the timestamps it
    /// writes) by `secs` from real time.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.state().clock_offset = secs;
    }

    /// Moves the simulator's clock `secs` further on. Tests use it instead of
    /// sleeping: a sync only reads closed seconds, so edits become visible to
    /// it once VOMO's clock has left their second behind.
    pub fn advance_clock(&self, secs: i64) {
        self.shared.state().clock_offset += secs;
    }

    /// The simulator's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.state().now()
    }

    pub fn stats(&self) -> BTreeMap<String, TokenStats> {
        self.shared.state().stats.clone()
    }

    pub fn stats_for(&self, token: &str) -> TokenStats {
        self.shared.state().stats.get(token).cloned().unwrap_or_default()
    }

    pub fn reset_stats(&self) {
        self.shared.state().stats.clear();
    }

    /// Every user `slug`'s token can see, in the list shape, by id: the ground
    /// truth tests compare destinations with.
    pub fn users(&self, slug: &str) -> Result<Vec<crate::domain::User>, SimError> {
        let state = self.shared.state();
        let org = state.org(slug)?;
        Ok(state.world.users_of(org).into_iter().map(|u| api::to_domain(&state.world, u, org)).collect())
    }

    /// One user as `slug` sees it, or `None` when it is gone or invisible.
    pub fn user(&self, slug: &str, id: UserId) -> Result<Option<crate::domain::User>, SimError> {
        let state = self.shared.state();
        let org = state.org(slug)?;
        Ok(state
            .world
            .user(id)
            .filter(|u| state.world.visible_to(u, org))
            .map(|u| api::to_domain(&state.world, u, org)))
    }
}

/// A fresh user for `org` with generated defaults for absent fields.
pub(crate) fn new_user(id: UserId, org: OrgId, fields: &UserFields, now: i64) -> SimUser {
    SimUser {
        id,
        first_name: fields.first_name.clone().unwrap_or_else(|| "New".into()),
        last_name: fields.last_name.clone().unwrap_or_else(|| format!("Volunteer{id}")),
        email: fields.email.clone().unwrap_or_else(|| format!("new.volunteer.{id}@example.org")),
        address: fields.address.clone(),
        phone: fields.phone.clone(),
        birthday: fields.birthday.clone().unwrap_or_else(|| "1990-01-01".into()),
        gender: fields.gender.clone().unwrap_or_else(|| "N".into()),
        password: None,
        user_status: fields.user_status.clone().unwrap_or_else(|| "VERIFIED".into()),
        home_org: org,
        created_at: now,
        updated_at: now,
        memberships: vec![Membership {
            org,
            status: "ACCEPTED".into(),
            role: fields.role.clone().unwrap_or_else(|| "VOLUNTEER".into()),
        }],
        participations: Vec::new(),
        profile_field_values: Vec::new(),
    }
}
