//! A local HubSpot: the slice of the CRM v3 API a contact sync uses, written
//! from HubSpot's public documentation, with an admin surface on its own port
//! (its own secret) to issue private-app tokens with scopes, pre-seed
//! contacts, read what was written, set limits and faults, and read request
//! statistics. Used by tests, `vomo-sync simulate --hubspot` and the demo;
//! never by the engine.
//!
//! What is HubSpot's documented behaviour and what is assumed here:
//!
//! Documented (developers.hubspot.com: API reference, error handling, usage
//! guidelines, changelog; community answers quoting them):
//! - `Authorization: Bearer <private app token>`; 401 when the token is not
//!   valid; 403 `MISSING_SCOPES` ("This app hasn't been granted all required
//!   scopes…", `errors[].context.requiredScopes`) when a scope is missing.
//! - Scopes: `crm.objects.contacts.read|write` for contacts,
//!   `crm.schemas.contacts.read|write` for the properties API.
//! - Error bodies: `status`, `message`, `correlationId`, `category`,
//!   optional `errors[]` (`message`, `in`, `code`, `context`) and `context`;
//!   clients must treat every field as optional.
//! - `POST /crm/v3/objects/contacts/batch/upsert` with inputs `{id,
//!   idProperty, properties, objectWriteTraceId}`; the id property must be a
//!   unique-value property; batch endpoints take at most 100 inputs.
//! - 207 Multi-Status with per-input errors when every input carries an
//!   `objectWriteTraceId` (documented for batch create; assumed identical
//!   for upsert and update); otherwise one bad input fails the whole batch.
//! - E-mail is unique per contact: a duplicate is a 409 `CONFLICT` "Contact
//!   already exists. Existing ID: N".
//! - `batch/update` by HubSpot id, `batch/read` with `idProperty` and
//!   `properties`, `batch/archive` (204), `POST …/gdpr-delete` with
//!   `objectId` and optional `idProperty=email` (an unknown e-mail is
//!   blocklisted).
//! - Properties API: property groups, `hasUniqueValue`, 409 for an existing
//!   name; at most ten unique-value properties per object.
//! - Private-app limits for Free/Starter accounts: 100 requests per rolling
//!   10 seconds and 250,000 per day, per account and shared by its apps; a
//!   429 body with `errorType: RATE_LIMIT` and `policyName`
//!   (`TEN_SECONDLY_ROLLING`, `DAILY`); headers `X-HubSpot-RateLimit-Max`,
//!   `-Remaining`, `-Interval-Milliseconds`, `-Daily`, `-Daily-Remaining`;
//!   the day resets at midnight in the account's time zone.
//! - `POST /oauth/v2/private-apps/get/access-token-info` with `tokenKey`
//!   returns the token's scopes.
//!
//! Assumed (not found in the documentation; chosen to be plausible and
//! strict):
//! - The wording of validation messages and their codes (`INVALID_EMAIL`,
//!   `INVALID_DATE`, `PROPERTY_DOESNT_EXIST`, `READ_ONLY_VALUE`), of the
//!   100-input and duplicate-id refusals, and of the batch-read
//!   `OBJECT_NOT_FOUND` error; how a 207 error names its input
//!   (`context.objectWriteTraceId: [id]`).
//! - E-mails are stored lower-cased; archiving frees a contact's unique
//!   values; archiving an unknown id is a no-op; a GDPR delete by id of an
//!   unknown contact is a 404; no `Retry-After` on 429 (clients fall back to
//!   the interval header); refused requests do not count against limits;
//!   the token-info endpoint is outside the limits.
//! - `date_of_birth` is a `date` property (`YYYY-MM-DD`).

mod admin;
mod api;
pub mod faults;
pub mod limits;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use faults::HubspotFaults;
pub use limits::{Limits, Policy};
pub use model::{Contact, ContactId, GdprRecord, GroupDef, PropertyDef};

/// Read contacts.
pub const OBJECTS_READ: &str = "crm.objects.contacts.read";
/// Create, update, archive and GDPR-delete contacts.
pub const OBJECTS_WRITE: &str = "crm.objects.contacts.write";
/// Read contact properties and groups.
pub const SCHEMAS_READ: &str = "crm.schemas.contacts.read";
/// Create contact properties and groups.
pub const SCHEMAS_WRITE: &str = "crm.schemas.contacts.write";
/// Every scope a contact sync needs.
pub const ALL_SCOPES: [&str; 4] = [OBJECTS_READ, OBJECTS_WRITE, SCHEMAS_READ, SCHEMAS_WRITE];

/// The name the default token's app is counted under.
pub const DEFAULT_APP: &str = "vomo-sync";

/// Errors of the simulator's own API.
#[derive(Debug, thiserror::Error)]
pub enum HubspotSimError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct HubspotSimConfig {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub admin_port: u16,
    pub seed: u64,
    /// Generated from the seed when not given.
    pub admin_secret: Option<String>,
    pub limits: Limits,
    pub faults: HubspotFaults,
}

impl Default for HubspotSimConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            admin_port: 0,
            seed: 1,
            admin_secret: None,
            limits: Limits::default(),
            faults: HubspotFaults::default(),
        }
    }
}

/// Requests seen for one app (token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStats {
    pub requests: u64,
    /// Endpoint (`upsert`, `update`, `read`, `archive`, `gdpr_delete`,
    /// `properties`, `groups`) → count.
    pub endpoints: BTreeMap<String, u64>,
    /// Status code → count.
    pub status: BTreeMap<u16, u64>,
    /// `policyName` → 429 answers.
    pub rate_limited: BTreeMap<String, u64>,
}

/// Request statistics of the whole account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubspotStats {
    /// App name → its requests (`(unauthenticated)` for bad tokens).
    pub apps: BTreeMap<String, AppStats>,
    /// Every 429 in order.
    pub rate_limited_at: Vec<RateLimited>,
}

/// One 429 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimited {
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    pub app: String,
    pub policy: String,
}

/// A private app: its name and the scopes its token was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    pub scopes: Vec<String>,
}

/// Mutable simulator state behind one std mutex: every critical section is
/// short and never awaits (latency faults sleep after the lock is released).
pub(crate) struct HsState {
    pub portal: model::Portal,
    pub tokens: HashMap<String, App>,
    pub limits: Limits,
    pub usage: limits::Usage,
    pub faults: HubspotFaults,
    pub rng: StdRng,
    pub stats: HubspotStats,
    pub started: Instant,
    correlation: u64,
    token_counter: u64,
    seed: u64,
}

impl HsState {
    fn new_token(&mut self, app: &str, scopes: &[String]) -> String {
        self.token_counter += 1;
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(131).wrapping_add(self.token_counter));
        let bytes: [u8; 16] = rng.random();
        let hex = hex::encode(bytes);
        let token = format!("pat-na1-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..]);
        self.tokens.insert(token.clone(), App { name: app.to_owned(), scopes: scopes.to_vec() });
        token
    }

    /// A fresh `correlationId` (a counter, so runs are reproducible).
    pub fn correlation_id(&mut self) -> String {
        self.correlation += 1;
        format!("5e1a0000-0000-4000-8000-{:012x}", self.correlation)
    }
}

pub(crate) struct Shared {
    state: Mutex<HsState>,
    base_url: String,
    admin_secret: String,
    default_token: String,
}

impl Shared {
    /// Locks the state; a poisoned lock (a simulator bug) is recovered, the
    /// data is still usable.
    pub fn state(&self) -> MutexGuard<'_, HsState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running HubSpot simulator; dropping it stops both servers. Its
/// [`HubspotControl`] methods (through `Deref`) drive the account.
pub struct HubspotSim {
    control: HubspotControl,
    admin_url: String,
    addr: SocketAddr,
    cancel: CancellationToken,
}

/// The admin operations, shared by the admin HTTP surface and in-process
/// callers. Cheap to clone.
#[derive(Clone)]
pub struct HubspotControl {
    shared: Arc<Shared>,
}

impl std::ops::Deref for HubspotSim {
    type Target = HubspotControl;

    fn deref(&self) -> &HubspotControl {
        &self.control
    }
}

impl Drop for HubspotSim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts a simulator and returns once both servers listen. It has one
/// token, for the app `vomo-sync`, with every scope a contact sync needs.
pub async fn start(config: HubspotSimConfig) -> Result<HubspotSim, HubspotSimError> {
    let bind = |port| async move {
        let addr = SocketAddr::new(config.bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| HubspotSimError::Bind { addr, reason: e.to_string() })?;
        let local =
            listener.local_addr().map_err(|e| HubspotSimError::Bind { addr, reason: e.to_string() })?;
        Ok::<_, HubspotSimError>((listener, local))
    };
    let (api_listener, api_addr) = bind(config.port).await?;
    let (admin_listener, admin_addr) = bind(config.admin_port).await?;
    let mut state = HsState {
        portal: model::Portal::new(),
        tokens: HashMap::new(),
        limits: config.limits,
        usage: limits::Usage::default(),
        rng: StdRng::seed_from_u64(config.faults.seed),
        faults: config.faults.clone(),
        stats: HubspotStats::default(),
        started: Instant::now(),
        correlation: 0,
        token_counter: 0,
        seed: config.seed,
    };
    let scopes: Vec<String> = ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let default_token = state.new_token(DEFAULT_APP, &scopes);
    let admin_secret = config.admin_secret.clone().unwrap_or_else(|| {
        let bytes: [u8; 16] = StdRng::seed_from_u64(config.seed ^ 0x4b5f).random();
        format!("hs-sim-admin-{}", hex::encode(bytes))
    });
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        base_url: format!("http://{api_addr}"),
        admin_secret,
        default_token,
    });
    let cancel = CancellationToken::new();
    serve(api_listener, api::router(Arc::clone(&shared)), cancel.clone());
    serve(admin_listener, admin::router(Arc::clone(&shared)), cancel.clone());
    Ok(HubspotSim {
        control: HubspotControl { shared },
        admin_url: format!("http://{admin_addr}/admin"),
        addr: api_addr,
        cancel,
    })
}

fn serve(listener: TcpListener, router: axum::Router, cancel: CancellationToken) {
    tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HubSpot simulator server stopped");
        }
    });
}

impl HubspotSim {
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

    pub fn control(&self) -> HubspotControl {
        self.control.clone()
    }
}

impl HubspotControl {
    /// The API base URL, e.g. `http://127.0.0.1:41234` (the destination's `base=`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn admin_secret(&self) -> &str {
        &self.shared.admin_secret
    }

    /// The token of the `vomo-sync` app, with every scope a sync needs.
    pub fn default_token(&self) -> &str {
        &self.shared.default_token
    }

    /// Issues a token for `app` with exactly `scopes`.
    pub fn create_token(&self, app: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shared.state().new_token(app, &scopes)
    }

    /// Revokes a token: from now on it gets 401.
    pub fn revoke_token(&self, token: &str) -> bool {
        self.shared.state().tokens.remove(token).is_some()
    }

    /// A contact created behind the sync's back (e.g. the customer's CRM
    /// already knew the person). Validated like an API write.
    pub fn seed_contact(&self, properties: &[(&str, &str)]) -> Result<ContactId, HubspotSimError> {
        let properties = properties.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.shared
            .state()
            .portal
            .seed_contact(&properties, chrono::Utc::now())
            .map_err(|e| HubspotSimError::Invalid(e.message()))
    }

    /// Live contacts by id.
    pub fn contacts(&self) -> Vec<Contact> {
        self.shared.state().portal.contacts.values().cloned().collect()
    }

    pub fn contact(&self, id: ContactId) -> Option<Contact> {
        self.shared.state().portal.contacts.get(&id).cloned()
    }

    /// The live contact whose unique property `name` holds `value`.
    pub fn contact_by(&self, name: &str, value: &str) -> Option<Contact> {
        let state = self.shared.state();
        state.portal.find(name, value).and_then(|id| state.portal.contacts.get(&id).cloned())
    }

    /// Archived contacts (HubSpot's recycle bin).
    pub fn archived(&self) -> Vec<Contact> {
        self.shared.state().portal.archived.values().cloned().collect()
    }

    pub fn gdpr_deleted(&self) -> Vec<GdprRecord> {
        self.shared.state().portal.gdpr_deleted.clone()
    }

    pub fn properties(&self) -> Vec<PropertyDef> {
        self.shared.state().portal.properties.values().cloned().collect()
    }

    pub fn groups(&self) -> Vec<GroupDef> {
        self.shared.state().portal.groups.values().cloned().collect()
    }

    pub fn set_limits(&self, limits: Limits) {
        self.shared.state().limits = limits;
    }

    pub fn limits(&self) -> Limits {
        self.shared.state().limits
    }

    /// Forgets the day's count and the rolling window (midnight, early).
    pub fn reset_usage(&self) {
        self.shared.state().usage.reset();
    }

    /// Switches faults; restarts the fault RNG from `faults.seed`.
    pub fn set_faults(&self, faults: HubspotFaults) {
        let mut state = self.shared.state();
        state.rng = StdRng::seed_from_u64(faults.seed);
        state.faults = faults;
    }

    pub fn faults(&self) -> HubspotFaults {
        self.shared.state().faults.clone()
    }

    pub fn stats(&self) -> HubspotStats {
        self.shared.state().stats.clone()
    }

    pub fn reset_stats(&self) {
        self.shared.state().stats = HubspotStats::default();
    }
}
