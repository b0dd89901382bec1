//! HubSpot destination: VOMO users as HubSpot contacts, upserted in batches
//! of up to 100 by the unique custom property `vomo_user_id` (e-mail is not
//! a safe key: VOMO users change e-mail, HubSpot treats it as the natural
//! key). Spec: `hubspot:token-env=VAR|token-file=PATH[,base=URL]
//! [,object=contacts][,delete=gdpr|archive][,rate=N]`.
//!
//! - `check` reads the token's scopes and refuses naming the missing ones,
//!   then creates the property group `vomo` and the `vomo_*` properties the
//!   mapping needs (`vomo_user_id` with `hasUniqueValue`).
//! - `apply` sends each input with `objectWriteTraceId` = the VOMO user id,
//!   so HubSpot answers per input (207); a batch refused as a whole is split
//!   until the refused input stands alone. An e-mail already held by a
//!   contact without `vomo_user_id` is adopted: `batch/update` by HubSpot id
//!   sets it, and that id becomes the external id. Deleted users are
//!   archived; anonymised users GDPR-deleted (or archived with
//!   `delete=archive`), their contact found by `vomo_user_id`.
//! - Errors: validation and conflicts are permanent, with HubSpot's reason;
//!   5xx, timeouts, lost connections and 429s retryable. 401/403 and the
//!   daily limit carry a [`Halt`] the engine can act on.
//! - Its own request budget ([`budget`]) at 80 % of HubSpot's documented
//!   Free/Starter private-app limit unless `rate=` says otherwise.
//!
//! Which HubSpot behaviour is documented and which assumed is listed in
//! the header of the HubSpot simulator (`sim::hubspot`), written from the
//! same reading.

pub mod budget;
mod client;
pub mod mapping;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

pub use budget::BudgetFigures;
use client::{CallError, Client, HubspotError};
pub use mapping::{Field, ID_PROPERTY, MappingError, PropertyMap, PropertyOverrides};

use super::spec::{HubspotDeletes, HubspotSpec};
use super::{DestError, Halt, Outcome};
use crate::config::redact_url;
use crate::domain::{Change, ChangeKind, FailureClass, User, VomoUserId};

/// Scopes the destination needs: writing and reading contacts, creating
/// and reading the `vomo_*` properties.
pub const REQUIRED_SCOPES: [&str; 4] = [
    "crm.objects.contacts.write",
    "crm.objects.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.contacts.read",
];
/// Inputs per batch call (HubSpot's limit).
pub const BATCH: usize = 100;

const CONTACTS: &str = "/crm/v3/objects/contacts";
const PROPERTIES: &str = "/crm/v3/properties/contacts";
const TOKEN_INFO: &str = "/oauth/v2/private-apps/get/access-token-info";
/// Categories of a per-input error that no retry will change.
const PERMANENT: [&str; 4] = ["VALIDATION_ERROR", "CONFLICT", "OBJECT_NOT_FOUND", "INVALID_PARAMS"];

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One user to upsert: its position in the changes and its version.
type Item<'a> = (usize, &'a User);
/// A user whose e-mail a contact already holds: position, user, contact id.
type Conflict<'a> = (usize, &'a User, String);

pub struct HubspotDest {
    client: Client,
    map: PropertyMap,
    deletes: HubspotDeletes,
    /// The base URL as it may be shown.
    shown: String,
    /// Where the token comes from, read again before a halted destination
    /// is tried again (the operator replaces the file or the variable).
    token_source: crate::dest::SecretSource,
}

impl HubspotDest {
    /// Reads the token now, so a missing one is reported at onboarding.
    pub fn new(spec: &HubspotSpec, http: reqwest::Client) -> Result<Self, DestError> {
        let shown = redact_url(&spec.base);
        let token = spec
            .token
            .read()
            .map_err(|reason| DestError::permanent(format!("HubSpot {shown}: no access token: {reason}")))?;
        let map = match &spec.properties {
            Some(path) => mapping::read_overrides(path).map_err(|e| DestError::permanent(e.to_string()))?,
            None => PropertyMap::default(),
        };
        let budget = Arc::new(budget::Budget::new(spec.rate));
        let client = Client::new(http, &spec.base, SecretString::from(token), budget);
        Ok(Self { client, map, deletes: spec.deletes, shown, token_source: spec.token.clone() })
    }

    /// Reads the token from its source again; true when it changed. A
    /// source that cannot be read now keeps the token in use.
    pub fn reload_token(&self) -> bool {
        match self.token_source.read() {
            Ok(token) => self.client.replace_token(SecretString::from(token)),
            Err(reason) => {
                tracing::warn!(destination = %self.shown, %reason, "HubSpot token source unreadable; keeping the old token");
                false
            }
        }
    }

    /// Uses `map` instead of the default property mapping.
    pub fn with_properties(mut self, map: PropertyMap) -> Self {
        self.map = map;
        self
    }

    /// The budget's figures: configured and effective rate, requests, 429s
    /// by policy, the daily allowance as HubSpot reports it.
    pub fn figures(&self) -> BudgetFigures {
        self.client.budget().figures()
    }

    /// Turns a failed call into the error recorded for each change.
    fn error(&self, e: &CallError) -> DestError {
        let message = format!("HubSpot {}: {}", self.shown, e.describe());
        let halt = match e {
            CallError::Status { status: StatusCode::UNAUTHORIZED, .. } => Some(Halt::TokenRejected),
            CallError::Status { status: StatusCode::FORBIDDEN, error } => {
                Some(Halt::Forbidden { missing_scopes: error.required_scopes.clone() })
            }
            CallError::DailyLimit { until } => Some(Halt::DailyLimit { until: *until }),
            CallError::Status { .. } | CallError::Transport(_) => None,
        };
        let class = if e.retryable() { FailureClass::Retryable } else { FailureClass::Permanent };
        DestError { class, message, halt }
    }

    // ---- check ----------------------------------------------------------

    /// Onboarding check: token and scopes, then the `vomo` group and the
    /// properties the mapping needs (created when missing). Writes no contact.
    pub async fn check(&self) -> Result<(), DestError> {
        if let Some(scopes) = self.token_scopes().await? {
            let missing: Vec<String> = REQUIRED_SCOPES
                .iter()
                .filter(|s| !scopes.iter().any(|g| g == *s))
                .map(|s| (*s).to_owned())
                .collect();
            if !missing.is_empty() {
                let message = format!(
                    "HubSpot {}: the private app's token lacks the scope(s) {}; add them in HubSpot (Settings → \
                     Integrations → Private apps → Scopes) and use the new token",
                    self.shown,
                    missing.join(", ")
                );
                return Err(DestError {
                    class: FailureClass::Permanent,
                    message,
                    halt: Some(Halt::Forbidden { missing_scopes: missing }),
                });
            }
        }
        self.ensure_group().await?;
        self.ensure_properties().await
    }

    /// The token's scopes; `None` when the account does not offer the
    /// token-info endpoint (then the calls below find missing scopes).
    async fn token_scopes(&self) -> Result<Option<Vec<String>>, DestError> {
        let body = json!({ "tokenKey": self.client.token().expose_secret() });
        match self.client.call(Method::POST, TOKEN_INFO, Some(&body)).await {
            Ok(reply) => Ok(Some(strings(reply.body.get("scopes")))),
            Err(CallError::Status { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn ensure_group(&self) -> Result<(), DestError> {
        let path = format!("{PROPERTIES}/groups");
        let groups = self.client.call(Method::GET, &path, None).await.map_err(|e| self.error(&e))?;
        if names(&groups.body).contains(mapping::GROUP) {
            return Ok(());
        }
        let group = json!({"name": mapping::GROUP, "label": "VOMO", "displayOrder": -1});
        match self.client.call(Method::POST, &path, Some(&group)).await {
            Ok(_) | Err(CallError::Status { status: StatusCode::CONFLICT, .. }) => Ok(()),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn ensure_properties(&self) -> Result<(), DestError> {
        let listed = self.client.call(Method::GET, PROPERTIES, None).await.map_err(|e| self.error(&e))?;
        let existing: HashMap<String, &Value> = listed
            .body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("name")?.as_str()?.to_owned(), p)))
            .collect();
        if let Some(id) = existing.get(ID_PROPERTY)
            && id.get("hasUniqueValue").and_then(Value::as_bool) != Some(true)
        {
            return Err(DestError::permanent(format!(
                "HubSpot {}: the contact property {ID_PROPERTY} exists but is not unique (hasUniqueValue false); \
                 contacts cannot be upserted by it — delete or rename that property",
                self.shown
            )));
        }
        let mut absent = Vec::new();
        for (name, kind) in self.needed() {
            if existing.contains_key(&name) {
                continue;
            }
            if !name.starts_with("vomo_") {
                absent.push(name);
                continue;
            }
            self.create_property(&name, kind).await?;
        }
        if absent.is_empty() {
            return Ok(());
        }
        Err(DestError::permanent(format!(
            "HubSpot {}: the mapped contact properties {} do not exist; create them in HubSpot or change the mapping",
            self.shown,
            absent.join(", ")
        )))
    }

    /// Every property written, with the kind its values have.
    fn needed(&self) -> Vec<(String, mapping::Kind)> {
        let mut needed = vec![(ID_PROPERTY.to_owned(), mapping::Kind::Text)];
        needed.extend(self.map.iter().map(|(field, name)| (name.to_owned(), field.kind())));
        needed
    }

    async fn create_property(&self, name: &str, kind: mapping::Kind) -> Result<(), DestError> {
        let (kind, field_type) = match kind {
            mapping::Kind::DateTime => ("datetime", "date"),
            mapping::Kind::Date => ("date", "date"),
            mapping::Kind::Text | mapping::Kind::Email => ("string", "text"),
        };
        let label = name.trim_start_matches("vomo_").replace('_', " ");
        let definition = json!({
            "name": name,
            "label": format!("VOMO {label}"),
            "type": kind,
            "fieldType": field_type,
            "groupName": mapping::GROUP,
            "hasUniqueValue": name == ID_PROPERTY,
            "description": "Written by vomo-sync from VOMO; edits in HubSpot are overwritten.",
        });
        match self.client.call(Method::POST, PROPERTIES, Some(&definition)).await {
            Ok(_) | Err(CallError::Status { status: StatusCode::CONFLICT, .. }) => Ok(()),
            Err(e) => Err(self.error(&e)),
        }
    }

    // ---- apply ----------------------------------------------------------

    /// One outcome per change, in order: the contact's HubSpot id, or why not.
    pub async fn apply(&self, changes: &[Change]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; changes.len()];
        let mut upserts: Vec<Item<'_>> = Vec::new();
        let mut removals = Vec::new();
        for (at, change) in changes.iter().enumerate() {
            match &change.user {
                Some(user) if user.is_anonymised() => removals.push((at, change.vomo_user_id, true)),
                Some(user) if change.kind != ChangeKind::Deleted => upserts.push((at, user)),
                _ => removals.push((at, change.vomo_user_id, false)),
            }
        }
        for chunk in unique_chunks(&upserts) {
            for (at, outcome) in self.upsert(&chunk).await {
                outcomes[at] = Some(outcome);
            }
        }
        for (at, outcome) in self.remove(&removals).await {
            outcomes[at] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(DestError::retryable("HubSpot: no result"))))
            .collect()
    }

    fn input(&self, user: &User) -> Value {
        let id = user.id.to_string();
        json!({"idProperty": ID_PROPERTY, "id": id, "objectWriteTraceId": id, "properties": self.map.properties(user)})
    }

    /// Upserts ≤ 100 users; a batch refused whole is split in halves.
    fn upsert<'a>(&'a self, items: &'a [Item<'a>]) -> Boxed<'a, Vec<(usize, Outcome)>> {
        Box::pin(async move {
            let inputs: Vec<Value> = items.iter().map(|(_, u)| self.input(u)).collect();
            let body = json!({ "inputs": inputs });
            let path = format!("{CONTACTS}/batch/upsert");
            let error = match self.client.call(Method::POST, &path, Some(&body)).await {
                Ok(reply) => {
                    let (mut done, conflicts) = self.per_input(items, &reply.body);
                    done.extend(self.adopt(conflicts).await);
                    return done;
                }
                Err(error) => error,
            };
            if !about_inputs(&error) {
                let error = self.error(&error);
                return items.iter().map(|(at, _)| (*at, Err(error.clone()))).collect();
            }
            if items.len() > 1 {
                let (left, right) = items.split_at(items.len() / 2);
                let mut done = self.upsert(left).await;
                done.extend(self.upsert(right).await);
                return done;
            }
            let (at, user) = items[0];
            let CallError::Status { error: said, .. } = &error else {
                return vec![(at, Err(self.error(&error)))];
            };
            match existing_id(said) {
                Some(existing) => self.adopt(vec![(at, user, existing)]).await,
                None => vec![(at, Err(self.refused(user.id, said)))],
            }
        })
    }

    /// Reads a batch answer (200 or 207): ids by trace id, errors by trace
    /// id; e-mail conflicts come back separately, to adopt.
    fn per_input<'a>(&self, items: &[Item<'a>], body: &Value) -> (Vec<(usize, Outcome)>, Vec<Conflict<'a>>) {
        // By trace id; an answer without them (HubSpot answering the batch
        // as a whole) still names each contact's vomo_user_id.
        let ids: HashMap<String, String> = results(body)
            .filter_map(|r| {
                let key =
                    r.get("objectWriteTraceId").or_else(|| r.pointer(&format!("/properties/{ID_PROPERTY}")));
                Some((text(key?)?, text(r.get("id")?)?))
            })
            .collect();
        let mut errors: HashMap<String, HubspotError> = HashMap::new();
        for entry in body.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let traces = entry.pointer("/context/objectWriteTraceId").and_then(Value::as_array);
            for trace in traces.into_iter().flatten().filter_map(text) {
                errors.insert(trace, HubspotError::from_json(entry));
            }
        }
        let mut done = Vec::new();
        let mut conflicts = Vec::new();
        for (at, user) in items {
            let key = user.id.to_string();
            match (ids.get(&key), errors.get(&key)) {
                (Some(id), _) => done.push((*at, Ok(id.clone()))),
                (None, Some(said)) => match existing_id(said) {
                    Some(existing) => conflicts.push((*at, *user, existing)),
                    None => done.push((*at, Err(self.refused(user.id, said)))),
                },
                (None, None) => {
                    let message =
                        format!("HubSpot {}: the answer had no result for user {}", self.shown, user.id);
                    done.push((*at, Err(DestError::retryable(message))));
                }
            }
        }
        (done, conflicts)
    }

    /// A per-input refusal with HubSpot's reason.
    fn refused(&self, id: VomoUserId, said: &HubspotError) -> DestError {
        let permanent = said.category.as_deref().is_some_and(|c| PERMANENT.contains(&c));
        let class = if permanent { FailureClass::Permanent } else { FailureClass::Retryable };
        let message = format!("HubSpot {} refused user {id}: {}", self.shown, said.describe());
        DestError { class, message, halt: None }
    }

    /// Adopts contacts that already hold a user's e-mail: those without a
    /// `vomo_user_id` (or with this user's) get it set by HubSpot id.
    async fn adopt(&self, conflicts: Vec<Conflict<'_>>) -> Vec<(usize, Outcome)> {
        if conflicts.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = conflicts.iter().map(|(_, _, id)| id.clone()).collect();
        let owners = match self.read(&ids, "hs_object_id", &[ID_PROPERTY.to_owned()]).await {
            Ok(found) => found,
            Err(e) => return conflicts.iter().map(|(at, _, _)| (*at, Err(e.clone()))).collect(),
        };
        let mut done = Vec::new();
        let mut free = Vec::new();
        for (at, user, existing) in conflicts {
            let owner =
                owners.get(&existing).map(|p| p.get(ID_PROPERTY).and_then(Value::as_str).unwrap_or(""));
            match owner {
                None => {
                    let message = format!(
                        "HubSpot {}: contact {existing} holding user {}'s e-mail vanished",
                        self.shown, user.id
                    );
                    done.push((at, Err(DestError::retryable(message))));
                }
                Some(owner) if !owner.is_empty() && owner != user.id.to_string() => {
                    let message = format!(
                        "HubSpot {}: user {}'s e-mail {} belongs to contact {existing}, which is synced for VOMO user {owner}",
                        self.shown, user.id, user.email
                    );
                    done.push((at, Err(DestError::permanent(message))));
                }
                Some(_) => free.push((at, user, existing)),
            }
        }
        done.extend(self.update_by_id(&free).await);
        done
    }

    /// `batch/update` by HubSpot id, setting `vomo_user_id` with the rest.
    /// A batch refused as a whole is retried one contact at a time.
    fn update_by_id<'a>(&'a self, items: &'a [Conflict<'a>]) -> Boxed<'a, Vec<(usize, Outcome)>> {
        Box::pin(async move {
            if items.is_empty() {
                return Vec::new();
            }
            let inputs: Vec<Value> = items
                .iter()
                .map(|(_, user, existing)| {
                    let mut properties = self.map.properties(user);
                    properties.insert(ID_PROPERTY.to_owned(), Value::String(user.id.to_string()));
                    json!({"id": existing, "objectWriteTraceId": user.id.to_string(), "properties": properties})
                })
                .collect();
            let path = format!("{CONTACTS}/batch/update");
            let error = match self.client.call(Method::POST, &path, Some(&json!({ "inputs": inputs }))).await
            {
                Ok(reply) => return self.adopted(items, &reply.body),
                Err(error) => error,
            };
            match &error {
                CallError::Status { .. } if about_inputs(&error) && items.len() > 1 => {
                    let mut done = Vec::new();
                    for item in items {
                        done.extend(self.update_by_id(std::slice::from_ref(item)).await);
                    }
                    done
                }
                CallError::Status { error: said, .. } if about_inputs(&error) => {
                    vec![(items[0].0, Err(self.refused(items[0].1.id, said)))]
                }
                _ => {
                    let error = self.error(&error);
                    items.iter().map(|(at, _, _)| (*at, Err(error.clone()))).collect()
                }
            }
        })
    }

    /// The outcomes of an adoption; a second conflict is permanent.
    fn adopted(&self, items: &[Conflict<'_>], body: &Value) -> Vec<(usize, Outcome)> {
        let listed: Vec<Item<'_>> = items.iter().map(|(at, user, _)| (*at, *user)).collect();
        let (mut done, conflicts) = self.per_input(&listed, body);
        for (at, user, existing) in conflicts {
            let message = format!(
                "HubSpot {}: adopting contact {existing} for user {} conflicts again",
                self.shown, user.id
            );
            done.push((at, Err(DestError::permanent(message))));
        }
        done
    }

    /// `batch/read` of ≤ 100 ids by `id_property`: found id → its properties.
    async fn read(
        &self,
        ids: &[String],
        id_property: &str,
        properties: &[String],
    ) -> Result<HashMap<String, serde_json::Map<String, Value>>, DestError> {
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let mut properties = properties.to_vec();
        if id_property != "hs_object_id" && !properties.iter().any(|p| p == id_property) {
            properties.push(id_property.to_owned());
        }
        let body = json!({"idProperty": id_property, "properties": properties, "inputs": inputs});
        let path = format!("{CONTACTS}/batch/read");
        let reply = self.client.call(Method::POST, &path, Some(&body)).await.map_err(|e| self.error(&e))?;
        let mut found = HashMap::new();
        for result in results(&reply.body) {
            let Some(props) = result.get("properties").and_then(Value::as_object) else { continue };
            let key = if id_property == "hs_object_id" {
                result.get("id").and_then(text)
            } else {
                props.get(id_property).and_then(text)
            };
            if let Some(key) = key {
                let mut props = props.clone();
                if let Some(id) = result.get("id").and_then(text) {
                    props.insert("hs_object_id".into(), Value::String(id));
                }
                found.insert(key, props);
            }
        }
        Ok(found)
    }

    // ---- deletions ------------------------------------------------------

    /// Archives deleted users' contacts and GDPR-deletes erased users'
    /// (archives them with `delete=archive`). A user HubSpot has no contact
    /// for is done (external id empty).
    async fn remove(&self, removals: &[(usize, VomoUserId, bool)]) -> Vec<(usize, Outcome)> {
        let mut done = Vec::new();
        for chunk in removals.chunks(BATCH) {
            let ids: Vec<String> = chunk.iter().map(|(_, id, _)| id.to_string()).collect();
            let found = match self.read(&ids, ID_PROPERTY, &[]).await {
                Ok(found) => found,
                Err(e) => {
                    done.extend(chunk.iter().map(|(at, _, _)| (*at, Err(e.clone()))));
                    continue;
                }
            };
            let contact_of = |id: &VomoUserId| {
                found.get(&id.to_string()).and_then(|p| p.get("hs_object_id")).and_then(text)
            };
            let mut archive = Vec::new();
            for (at, id, erased) in chunk {
                match contact_of(id) {
                    None => done.push((*at, Ok(String::new()))),
                    Some(contact) if *erased && self.deletes == HubspotDeletes::Gdpr => {
                        done.push((*at, self.gdpr_delete(&contact).await));
                    }
                    Some(contact) => archive.push((*at, contact)),
                }
            }
            done.extend(self.archive(&archive).await);
        }
        done
    }

    async fn archive(&self, contacts: &[(usize, String)]) -> Vec<(usize, Outcome)> {
        if contacts.is_empty() {
            return Vec::new();
        }
        let inputs: Vec<Value> = contacts.iter().map(|(_, id)| json!({ "id": id })).collect();
        let path = format!("{CONTACTS}/batch/archive");
        match self.client.call(Method::POST, &path, Some(&json!({ "inputs": inputs }))).await {
            Ok(_) => contacts.iter().map(|(at, id)| (*at, Ok(id.clone()))).collect(),
            Err(e) => {
                let error = self.error(&e);
                contacts.iter().map(|(at, _)| (*at, Err(error.clone()))).collect()
            }
        }
    }

    /// HubSpot's GDPR delete of one contact; a 404 means it is gone already
    /// (a retry after a lost answer).
    async fn gdpr_delete(&self, contact: &str) -> Outcome {
        let path = format!("{CONTACTS}/gdpr-delete");
        match self.client.call(Method::POST, &path, Some(&json!({ "objectId": contact }))).await {
            Ok(_) | Err(CallError::Status { status: StatusCode::NOT_FOUND, .. }) => Ok(contact.to_owned()),
            Err(e) => Err(self.error(&e)),
        }
    }

    // ---- reconciliation -------------------------------------------------

    /// Users whose contact is missing or differs in a mapped property.
    pub async fn missing_or_different(&self, users: &[&User]) -> Result<Vec<VomoUserId>, DestError> {
        let properties = self.map.property_names();
        let mut lost = Vec::new();
        for chunk in users.chunks(BATCH) {
            let ids: Vec<String> = chunk.iter().map(|u| u.id.to_string()).collect();
            let found = self.read(&ids, ID_PROPERTY, &properties).await?;
            for user in chunk {
                let differs = found
                    .get(&user.id.to_string())
                    .is_none_or(|stored| !self.map.differences(user, stored).is_empty());
                if differs {
                    lost.push(user.id);
                }
            }
        }
        Ok(lost)
    }
}

/// Chunks of ≤ 100 users with no user twice (HubSpot refuses duplicate ids).
fn unique_chunks<'a>(items: &[Item<'a>]) -> Vec<Vec<Item<'a>>> {
    let mut chunks: Vec<Vec<Item<'a>>> = Vec::new();
    let mut seen: HashSet<VomoUserId> = HashSet::new();
    for item in items {
        let full = chunks.last().is_none_or(|c| c.len() >= BATCH);
        if full || seen.contains(&item.1.id) {
            chunks.push(Vec::new());
            seen.clear();
        }
        seen.insert(item.1.id);
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(*item);
        }
    }
    chunks
}

/// Whether a refused batch may concern some inputs only (worth splitting):
/// a 4xx other than auth, timeouts and limits.
fn about_inputs(error: &CallError) -> bool {
    match error {
        CallError::Status { status, .. } => {
            status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 404 | 408 | 429)
        }
        CallError::Transport(_) | CallError::DailyLimit { .. } => false,
    }
}

/// The contact id in "Contact already exists. Existing ID: 123".
fn existing_id(error: &HubspotError) -> Option<String> {
    if error.category.as_deref() != Some("CONFLICT") {
        return None;
    }
    let (_, tail) = error.message.rsplit_once("Existing ID:")?;
    let digits: String = tail.trim().chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

fn results(body: &Value) -> impl Iterator<Item = &Value> {
    body.get("results").and_then(Value::as_array).into_iter().flatten()
}

/// A string or number as text (HubSpot sends ids as strings; be tolerant).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn names(body: &Value) -> HashSet<String> {
    results(body).filter_map(|r| r.get("name").and_then(Value::as_str)).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_the_existing_contact() {
        let said = |category: &str, message: &str| HubspotError {
            category: Some(category.into()),
            message: message.into(),
            ..HubspotError::default()
        };
        assert_eq!(
            existing_id(&said("CONFLICT", "Contact already exists. Existing ID: 9012")).as_deref(),
            Some("9012")
        );
        assert_eq!(existing_id(&said("VALIDATION_ERROR", "Existing ID: 9012")), None);
        assert_eq!(existing_id(&said("CONFLICT", "Existing ID: none")), None);
    }

    #[test]
    fn chunks_hold_each_user_once() {
        let user = |id| User {
            id,
            first_name: String::new(),
            last_name: String::new(),
            full_name: String::new(),
            email: String::new(),
            address: None,
            phone: None,
            birthday: None,
            gender: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            user_status: None,
            membership_status: None,
            membership_role: None,
        };
        let users: Vec<User> = (0..250).map(|i| user(i % 240)).collect();
        let items: Vec<Item<'_>> = users.iter().enumerate().collect();
        let chunks = unique_chunks(&items);
        assert!(chunks.iter().all(|c| c.len() <= BATCH));
        for chunk in &chunks {
            let ids: HashSet<_> = chunk.iter().map(|(_, u)| u.id).collect();
            assert_eq!(ids.len(), chunk.len());
        }
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 250);
    }
}
