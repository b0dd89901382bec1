//! What happens to users read from VOMO: change detection against the
//! mappings (§3.2), delivery to every destination, parking failures in the
//! DLQ, and the mapping writes — committed, with the checkpoint when a window
//! is complete, in one transaction. Pages are gathered into batches so one
//! lookup, one destination write and one commit serve many pages (random
//! e-mail index inserts make small commits write most of the index again).
//!
//! A batch is processed on its own task while the walk reads on: at most one
//! batch is in flight, and the next starts only when it has committed, so
//! commits — and the checkpoint — keep their order, and a failed batch stops
//! everything after it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::future::join_all;

use super::detect::{Verdict, classify};
use super::fetch::RetryPolicy;
use super::lock::locked;
use crate::dest::{DestError, Destination};
use crate::domain::{Change, ChangeKind, ContentHash, RunCounts, User, VomoUserId, count_of};
use crate::engine::error::SyncError;
use crate::store::{CustomerId, Mapping, MappingWrite, NewDlqEntry, Store};
use crate::vomo::MalformedUser;

/// Users gathered before a flush (about ten pages).
pub const FLUSH_USERS: usize = 1500;

/// What a customer's changes are delivered to.
pub struct DeliveryTarget {
    pub store: Store,
    pub customer_id: CustomerId,
    pub customer: String,
    pub destinations: Arc<Vec<Destination>>,
    pub dlq_backoff: RetryPolicy,
    /// The lease this delivery runs under: checkpoints move only while it
    /// is held (`None` for work that never moves one, like DLQ retries).
    pub lease_owner: Option<String>,
}

/// Counters of one run, by cause.
#[derive(Debug, Default)]
pub struct Counters {
    pub users_seen: AtomicU64,
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub deleted: AtomicU64,
    pub unchanged: AtomicU64,
    pub dlq_parked: AtomicU64,
    /// Reconciliation causes: changes the polls should have delivered.
    pub missed_create: AtomicU64,
    pub missed_update: AtomicU64,
    /// Content that changed without `updated_at` moving.
    pub drift: AtomicU64,
    /// Differences already owned by a pending DLQ entry.
    pub dlq_held: AtomicU64,
    /// Rows a readable destination lost or that were changed there.
    pub lost_downstream: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as the run record stores them.
    pub fn counts(&self) -> RunCounts {
        let get = |c: &AtomicU64| count_of(c.load(Ordering::Relaxed));
        RunCounts {
            users_seen: get(&self.users_seen),
            created: get(&self.created),
            updated: get(&self.updated),
            deleted: get(&self.deleted),
            unchanged: get(&self.unchanged),
            dlq_parked: get(&self.dlq_parked),
            missed_create: get(&self.missed_create),
            missed_update: get(&self.missed_update),
            drift: get(&self.drift),
            dlq_held: get(&self.dlq_held),
            lost_downstream: get(&self.lost_downstream),
            ..RunCounts::default()
        }
    }
}

/// How a sink treats what it is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkOptions {
    /// Reconciliation: count causes, and ask readable destinations whether
    /// they still hold what the mappings say they were sent.
    pub reconcile: bool,
    /// Detect and count only: nothing is delivered or committed.
    pub dry_run: bool,
    /// Keep the id of every user seen (a full scan's deletion check).
    pub collect_seen: bool,
}

/// A change waiting for delivery, with what its mapping needs.
struct Pending {
    change: Change,
    hash: ContentHash,
    email: String,
    updated_at: DateTime<Utc>,
    previous: Option<Mapping>,
}

/// Gathers users and hands them, batch by batch, to the batch processor.
pub struct Sink {
    batches: Arc<Batches>,
    counters: Arc<Counters>,
    buffer: Vec<User>,
    /// Listed users that could not be read, parked with the next batch.
    unreadable: Vec<MalformedUser>,
    in_flight: Option<tokio::task::JoinHandle<Result<(), SyncError>>>,
}

/// The DLQ kind of a user VOMO listed but whose record could not be read.
pub const UNREADABLE_KIND: &str = "user.unreadable";

/// Processes batches; shared with the task of the batch in flight.
struct Batches {
    target: Arc<DeliveryTarget>,
    counters: Arc<Counters>,
    options: SinkOptions,
    /// (destination, user) pairs with a pending DLQ entry. Batches run one
    /// at a time, so the locks are never contended.
    dlq_keys: std::sync::Mutex<HashSet<(String, VomoUserId)>>,
    seen: std::sync::Mutex<HashSet<VomoUserId>>,
}

impl Sink {
    pub async fn new(
        target: Arc<DeliveryTarget>,
        counters: Arc<Counters>,
        options: SinkOptions,
    ) -> Result<Self, SyncError> {
        let dlq_keys = target.store.pending_dlq_keys(target.customer_id).await?.into_iter().collect();
        let batches = Arc::new(Batches {
            target,
            counters: Arc::clone(&counters),
            options,
            dlq_keys: std::sync::Mutex::new(dlq_keys),
            seen: std::sync::Mutex::new(HashSet::new()),
        });
        Ok(Self {
            batches,
            counters,
            buffer: Vec::with_capacity(FLUSH_USERS + 15),
            unreadable: Vec::new(),
            in_flight: None,
        })
    }

    /// Ids of every user seen so far (with `collect_seen`), after waiting
    /// for the batch in flight.
    pub async fn seen(&mut self) -> Result<HashSet<VomoUserId>, SyncError> {
        self.flush(None).await?;
        self.finish().await?;
        Ok(std::mem::take(&mut *locked(&self.batches.seen)))
    }

    /// Deletes mapped users downstream (`user.deleted`) and marks their
    /// mappings deleted, after the batch in flight.
    pub async fn delete(&mut self, ids: &[VomoUserId]) -> Result<(), SyncError> {
        self.finish().await?;
        if self.batches.options.dry_run {
            return Ok(());
        }
        self.batches.delete(ids).await
    }

    /// Adds a page's users; starts a batch when enough have gathered.
    pub async fn push(&mut self, users: Vec<User>) -> Result<(), SyncError> {
        Counters::add(&self.counters.users_seen, users.len() as u64);
        self.buffer.extend(users);
        if self.buffer.len() >= FLUSH_USERS {
            self.flush(None).await?;
        }
        Ok(())
    }

    /// Adds listed users whose records could not be read: they go to the
    /// DLQ (permanent, with the reason) before the checkpoint can pass them.
    pub fn push_unreadable(&mut self, users: Vec<MalformedUser>) {
        Counters::add(&self.counters.users_seen, users.len() as u64);
        self.unreadable.extend(users);
    }

    /// Starts a batch of what has gathered, once the batch before it has
    /// committed; with `advance_to`, the checkpoint moves there in the
    /// batch's transaction. Call [`Sink::finish`] to wait for it.
    pub async fn flush(&mut self, advance_to: Option<DateTime<Utc>>) -> Result<(), SyncError> {
        self.finish().await?;
        let users = std::mem::take(&mut self.buffer);
        let unreadable = std::mem::take(&mut self.unreadable);
        let batches = Arc::clone(&self.batches);
        self.in_flight = Some(tokio::spawn(async move {
            batches.park_unreadable(&unreadable).await?;
            batches.process(users, advance_to).await
        }));
        Ok(())
    }

    /// Waits for the batch in flight; its error, if it failed.
    pub async fn finish(&mut self) -> Result<(), SyncError> {
        match self.in_flight.take() {
            Some(task) => {
                task.await.map_err(|e| SyncError::Internal(format!("a delivery batch failed: {e}")))?
            }
            None => Ok(()),
        }
    }
}

impl Batches {
    /// Parks each unreadable user for every destination, as permanent: an
    /// operator's retry reads the user again (`dlq_retry`), and a newer
    /// version read later supersedes the entry.
    async fn park_unreadable(&self, users: &[MalformedUser]) -> Result<(), SyncError> {
        if self.options.collect_seen {
            // Listed, so not gone: a full scan must not take them for deleted.
            locked(&self.seen).extend(users.iter().map(|u| u.id));
        }
        if users.is_empty() || self.options.dry_run {
            return Ok(());
        }
        let target = &self.target;
        for user in users {
            let payload = serde_json::json!({ "unreadable": { "id": user.id, "reason": user.reason, "raw": user.raw } });
            for destination in target.destinations.iter() {
                let entry = NewDlqEntry {
                    vomo_user_id: user.id,
                    destination: destination.name().to_owned(),
                    change_kind: UNREADABLE_KIND.to_owned(),
                    payload: payload.to_string(),
                    content_hash: ContentHash::of_bytes(user.raw.as_bytes()),
                    vomo_updated_at: user.updated_at.unwrap_or_else(crate::domain::epoch),
                    class: crate::domain::FailureClass::Permanent,
                    message: format!("VOMO sent a record that cannot be read: {}", user.reason),
                    next_retry_at: None,
                };
                target.store.park_in_dlq(target.customer_id, &entry).await?;
                locked(&self.dlq_keys).insert((destination.name().to_owned(), user.id));
                Counters::add(&self.counters.dlq_parked, 1);
            }
            tracing::warn!(customer = %target.customer, user = user.id, reason = %user.reason,
                "VOMO listed a user whose record cannot be read; parked in the DLQ");
        }
        Ok(())
    }

    async fn process(&self, users: Vec<User>, advance_to: Option<DateTime<Utc>>) -> Result<(), SyncError> {
        let users = newest_per_user(users);
        if self.options.collect_seen {
            locked(&self.seen).extend(users.iter().map(|u| u.id));
        }
        let ids: Vec<VomoUserId> = users.iter().map(|u| u.id).collect();
        let known = self.target.store.lookup_mappings(self.target.customer_id, &ids).await?;
        let now = Utc::now();
        let (mut pending, quiet, unchanged) = self.detect(users, known, now);
        if self.options.reconcile {
            pending.extend(self.lost_downstream(unchanged).await);
        }
        if self.options.dry_run {
            return Ok(());
        }
        let mut writes = quiet;
        if !pending.is_empty() {
            writes.extend(self.deliver(pending, now).await?);
        }
        self.target
            .store
            .commit_window(self.target.customer_id, &writes, advance_to, self.target.lease_owner.as_deref())
            .await?;
        Ok(())
    }

    /// Splits users into changes to deliver, mapping writes that need no
    /// delivery (anonymised users never synced), and users the mappings say
    /// are up to date (with their mappings).
    fn detect(
        &self,
        users: Vec<User>,
        mut known: HashMap<VomoUserId, Mapping>,
        now: DateTime<Utc>,
    ) -> (Vec<Pending>, Vec<MappingWrite>, Vec<(User, Mapping)>) {
        let (mut pending, mut quiet, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
        let dlq_users: HashSet<VomoUserId> = locked(&self.dlq_keys).iter().map(|(_, id)| *id).collect();
        let c = &self.counters;
        for user in users {
            let hash = user.content_hash();
            let previous = known.remove(&user.id);
            let verdict = classify(&user, hash, previous.as_ref());
            let (kind, cause) = match verdict {
                Verdict::Unchanged | Verdict::Stale => {
                    Counters::add(&c.unchanged, 1);
                    if self.options.reconcile && dlq_users.contains(&user.id) {
                        // The DLQ retries it; not "lost downstream".
                        Counters::add(&c.dlq_held, 1);
                        continue;
                    }
                    if let (Verdict::Unchanged, Some(mapping)) = (verdict, previous) {
                        unchanged.push((user, mapping));
                    }
                    continue;
                }
                Verdict::ErasedUnsent => {
                    quiet.push(mapping_write(&user, hash, BTreeMap::new(), now, Some(now)));
                    Counters::add(&c.unchanged, 1);
                    continue;
                }
                Verdict::Created => (ChangeKind::Created, &c.missed_create),
                Verdict::Updated => (ChangeKind::Updated, &c.missed_update),
                Verdict::Drifted => (ChangeKind::Updated, &c.drift),
                Verdict::Deleted => (ChangeKind::Deleted, &c.deleted),
            };
            if self.options.reconcile && kind != ChangeKind::Deleted {
                Counters::add(cause, 1);
            }
            let counter = match kind {
                ChangeKind::Created => &c.created,
                ChangeKind::Updated => &c.updated,
                ChangeKind::Deleted => &c.deleted,
            };
            Counters::add(counter, 1);
            pending.push(pending_change(kind, user, hash, previous));
        }
        (pending, quiet, unchanged)
    }

    /// Users whose mapping says "sent" but a readable destination (the
    /// PostgreSQL table) no longer holds that version: sent again. A
    /// destination that cannot be read now is skipped, not failed.
    async fn lost_downstream(&self, unchanged: Vec<(User, Mapping)>) -> Vec<Pending> {
        if unchanged.is_empty() {
            return Vec::new();
        }
        let users: Vec<&User> = unchanged.iter().map(|(u, _)| u).collect();
        let mut lost: HashSet<VomoUserId> = HashSet::new();
        for destination in self.target.destinations.iter() {
            match destination.missing_or_different(&users).await {
                Ok(ids) => lost.extend(ids),
                Err(e) => {
                    tracing::warn!(destination = destination.name(), error = %e, "cannot read the destination back")
                }
            }
        }
        let mut pending = Vec::new();
        for (user, mapping) in unchanged.into_iter().filter(|(u, _)| lost.contains(&u.id)) {
            Counters::add(&self.counters.lost_downstream, 1);
            Counters::add(&self.counters.updated, 1);
            let hash = user.content_hash();
            pending.push(pending_change(ChangeKind::Updated, user, hash, Some(mapping)));
        }
        pending
    }

    /// `user.deleted` for mapped, not yet deleted users.
    async fn delete(&self, ids: &[VomoUserId]) -> Result<(), SyncError> {
        let known = self.target.store.lookup_mappings(self.target.customer_id, ids).await?;
        let pending: Vec<Pending> = known
            .into_values()
            .filter(|m| m.deleted_at.is_none())
            .map(|m| Pending {
                change: Change { kind: ChangeKind::Deleted, vomo_user_id: m.vomo_user_id, user: None },
                hash: m.content_hash,
                email: m.email.clone(),
                updated_at: m.vomo_updated_at,
                previous: Some(m),
            })
            .collect();
        Counters::add(&self.counters.deleted, pending.len() as u64);
        if pending.is_empty() {
            return Ok(());
        }
        let writes = self.deliver(pending, Utc::now()).await?;
        self.target.store.commit_window(self.target.customer_id, &writes, None, None).await?;
        Ok(())
    }

    /// Sends the changes to every destination at once; acknowledged changes
    /// supersede older DLQ entries, failed ones are parked. Returns the
    /// mapping writes (a change parked in the DLQ is owned by the DLQ).
    async fn deliver(
        &self,
        pending: Vec<Pending>,
        now: DateTime<Utc>,
    ) -> Result<Vec<MappingWrite>, SyncError> {
        let changes: Vec<Change> = pending.iter().map(|p| p.change.clone()).collect();
        let target = &self.target;
        let results =
            join_all(target.destinations.iter().map(|d| d.apply(&target.customer, &changes, now))).await;
        let mut writes = Vec::with_capacity(pending.len());
        for (i, item) in pending.iter().enumerate() {
            let mut external_ids = item.previous.as_ref().map(|m| m.external_ids.clone()).unwrap_or_default();
            for (dest, outcomes) in target.destinations.iter().zip(&results) {
                match outcomes.get(i) {
                    Some(Ok(external_id)) => {
                        external_ids.insert(dest.name().to_owned(), external_id.clone());
                        self.supersede(dest.name(), item).await?;
                    }
                    Some(Err(error)) => self.park(dest.name(), item, error, now).await?,
                    None => self.park(dest.name(), item, &DestError::retryable("no result"), now).await?,
                }
            }
            let deleted_at = (item.change.kind == ChangeKind::Deleted).then_some(now);
            writes.push(MappingWrite {
                vomo_user_id: item.change.vomo_user_id,
                email: item.email.clone(),
                content_hash: item.hash,
                vomo_updated_at: item.updated_at,
                external_ids,
                synced_at: now,
                deleted_at,
            });
        }
        Ok(writes)
    }

    async fn supersede(&self, destination: &str, item: &Pending) -> Result<(), SyncError> {
        let key = (destination.to_owned(), item.change.vomo_user_id);
        let pending = locked(&self.dlq_keys).remove(&key);
        if pending {
            let target = &self.target;
            target.store.supersede_dlq(target.customer_id, destination, key.1, item.updated_at).await?;
        }
        Ok(())
    }

    async fn park(
        &self,
        destination: &str,
        item: &Pending,
        error: &DestError,
        now: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let next_retry_at = (error.class == crate::domain::FailureClass::Retryable).then(|| {
            now + chrono::Duration::from_std(self.target.dlq_backoff.backoff(1)).unwrap_or_default()
        });
        let entry = NewDlqEntry {
            vomo_user_id: item.change.vomo_user_id,
            destination: destination.to_owned(),
            change_kind: item.change.kind.as_str().to_owned(),
            payload: serde_json::to_string(&item.change).map_err(|e| {
                SyncError::Internal(format!("a change could not be serialised for the DLQ: {e}"))
            })?,
            content_hash: item.hash,
            vomo_updated_at: item.updated_at,
            class: error.class,
            message: error.message.clone(),
            next_retry_at,
        };
        self.target.store.park_in_dlq(self.target.customer_id, &entry).await?;
        let mut keys = locked(&self.dlq_keys);
        keys.insert((destination.to_owned(), item.change.vomo_user_id));
        drop(keys);
        Counters::add(&self.counters.dlq_parked, 1);
        tracing::warn!(customer = %self.target.customer, destination, user = item.change.vomo_user_id,
            class = %error.class, error = %error.message, "change parked in the DLQ");
        Ok(())
    }
}

/// One version per user, the newest (a user can show up twice when pages
/// shift under a walk).
fn newest_per_user(users: Vec<User>) -> Vec<User> {
    let mut newest: HashMap<VomoUserId, User> = HashMap::with_capacity(users.len());
    for user in users {
        match newest.get(&user.id) {
            Some(seen) if seen.updated_at > user.updated_at => {}
            _ => {
                newest.insert(user.id, user);
            }
        }
    }
    let mut users: Vec<User> = newest.into_values().collect();
    users.sort_by_key(|u| u.id);
    users
}

fn pending_change(kind: ChangeKind, user: User, hash: ContentHash, previous: Option<Mapping>) -> Pending {
    let (email, updated_at, id) = (user.email.clone(), user.updated_at, user.id);
    // A deletion read from VOMO is an erasure (the account anonymised in
    // place); it keeps the anonymised user so a destination can tell it from
    // a hard delete (HubSpot removes an erased person with its GDPR delete).
    // Event destinations still send `user: null` for every deletion.
    Pending { change: Change { kind, vomo_user_id: id, user: Some(user) }, hash, email, updated_at, previous }
}

fn mapping_write(
    user: &User,
    hash: ContentHash,
    external_ids: BTreeMap<String, String>,
    now: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
) -> MappingWrite {
    MappingWrite {
        vomo_user_id: user.id,
        email: user.email.clone(),
        content_hash: hash,
        vomo_updated_at: user.updated_at,
        external_ids,
        synced_at: now,
        deleted_at,
    }
}
