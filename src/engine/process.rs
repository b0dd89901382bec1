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

use super::SyncError;
use super::fetch::RetryPolicy;
use crate::dest::{DestError, Destination};
use crate::domain::{Change, ChangeKind, ContentHash, User, VomoUserId};
use crate::store::{CustomerId, Mapping, MappingWrite, NewDlqEntry, Store};

/// Users gathered before a flush (about ten pages).
pub const FLUSH_USERS: usize = 1500;

/// What a customer's changes are delivered to.
pub struct DeliveryTarget {
    pub store: Store,
    pub customer_id: CustomerId,
    pub customer: String,
    pub destinations: Arc<Vec<Destination>>,
    pub dlq_backoff: RetryPolicy,
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
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters as the run record stores them.
    pub fn to_map(&self) -> BTreeMap<String, i64> {
        let get = |c: &AtomicU64| i64::try_from(c.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        BTreeMap::from([
            ("users_seen".to_owned(), get(&self.users_seen)),
            ("created".to_owned(), get(&self.created)),
            ("updated".to_owned(), get(&self.updated)),
            ("deleted".to_owned(), get(&self.deleted)),
            ("unchanged".to_owned(), get(&self.unchanged)),
            ("dlq_parked".to_owned(), get(&self.dlq_parked)),
        ])
    }
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
    in_flight: Option<tokio::task::JoinHandle<Result<(), SyncError>>>,
}

/// Processes batches; shared with the task of the batch in flight.
struct Batches {
    target: Arc<DeliveryTarget>,
    counters: Arc<Counters>,
    /// (destination, user) pairs with a pending DLQ entry. Batches run one
    /// at a time, so the lock is never contended.
    dlq_keys: std::sync::Mutex<HashSet<(String, VomoUserId)>>,
}

impl Sink {
    pub async fn new(target: Arc<DeliveryTarget>, counters: Arc<Counters>) -> Result<Self, SyncError> {
        let dlq_keys = target.store.pending_dlq_keys(target.customer_id).await?.into_iter().collect();
        let batches = Arc::new(Batches {
            target,
            counters: Arc::clone(&counters),
            dlq_keys: std::sync::Mutex::new(dlq_keys),
        });
        Ok(Self { batches, counters, buffer: Vec::with_capacity(FLUSH_USERS + 15), in_flight: None })
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

    /// Starts a batch of what has gathered, once the batch before it has
    /// committed; with `advance_to`, the checkpoint moves there in the
    /// batch's transaction. Call [`Sink::finish`] to wait for it.
    pub async fn flush(&mut self, advance_to: Option<DateTime<Utc>>) -> Result<(), SyncError> {
        self.finish().await?;
        let users = std::mem::take(&mut self.buffer);
        let batches = Arc::clone(&self.batches);
        self.in_flight = Some(tokio::spawn(async move { batches.process(users, advance_to).await }));
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
    async fn process(&self, users: Vec<User>, advance_to: Option<DateTime<Utc>>) -> Result<(), SyncError> {
        let users = newest_per_user(users);
        let ids: Vec<VomoUserId> = users.iter().map(|u| u.id).collect();
        let known = self.target.store.lookup_mappings(self.target.customer_id, &ids).await?;
        let now = Utc::now();
        let (pending, quiet) = self.detect(users, known, now);
        let mut writes = quiet;
        if !pending.is_empty() {
            writes.extend(self.deliver(pending, now).await?);
        }
        self.target.store.commit_window(self.target.customer_id, &writes, advance_to).await?;
        Ok(())
    }

    /// Splits users into changes to deliver and mapping writes that need no
    /// delivery (anonymised users never synced).
    fn detect(
        &self,
        users: Vec<User>,
        mut known: HashMap<VomoUserId, Mapping>,
        now: DateTime<Utc>,
    ) -> (Vec<Pending>, Vec<MappingWrite>) {
        let (mut pending, mut quiet) = (Vec::new(), Vec::new());
        for user in users {
            let hash = user.content_hash();
            let previous = known.remove(&user.id);
            let kind = match (&previous, user.is_anonymised()) {
                (Some(m), true) if m.deleted_at.is_none() => Some(ChangeKind::Deleted),
                (Some(_), true) => None,
                (None, true) => {
                    // Never synced, already erased: remember it, tell nobody.
                    quiet.push(mapping_write(&user, hash, BTreeMap::new(), now, Some(now)));
                    None
                }
                (None, false) => Some(ChangeKind::Created),
                (Some(m), false) if m.content_hash != hash || m.deleted_at.is_some() => {
                    Some(ChangeKind::Updated)
                }
                (Some(_), false) => None,
            };
            let Some(kind) = kind else {
                Counters::add(&self.counters.unchanged, 1);
                continue;
            };
            let counter = match kind {
                ChangeKind::Created => &self.counters.created,
                ChangeKind::Updated => &self.counters.updated,
                ChangeKind::Deleted => &self.counters.deleted,
            };
            Counters::add(counter, 1);
            let (email, updated_at) = (user.email.clone(), user.updated_at);
            let user = (kind != ChangeKind::Deleted).then_some(user);
            let vomo_user_id =
                previous.as_ref().map_or_else(|| user.as_ref().map_or(0, |u| u.id), |m| m.vomo_user_id);
            pending.push(Pending {
                change: Change { kind, vomo_user_id, user },
                hash,
                email,
                updated_at,
                previous,
            });
        }
        (pending, quiet)
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
        let pending = self.dlq_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
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
            payload: serde_json::to_string(&item.change).unwrap_or_default(),
            content_hash: item.hash,
            vomo_updated_at: item.updated_at,
            class: error.class,
            message: error.message.clone(),
            next_retry_at,
        };
        self.target.store.park_in_dlq(self.target.customer_id, &entry).await?;
        let mut keys = self.dlq_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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
