//! Retrying the dead-letter queue: automatic retries of retryable entries
//! when their time comes (capped exponential backoff with jitter), and
//! operator retries of chosen entries, permanent ones included. An entry is
//! always the latest known version of its user for its destination (newer
//! versions supersede older entries), so a retry never writes stale data.

use std::collections::BTreeMap;

use chrono::Utc;

use super::customer::CustomerRuntime;
use super::process::UNREADABLE_KIND;
use crate::domain::{Change, ChangeKind, FailureClass};
use crate::engine::error::SyncError;
use crate::store::{DlqEntry, DlqId, MappingWrite};

/// Which entries to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Retryable entries whose time has come.
    Due,
    /// These entries (an operator asked), whatever their class.
    Ids(Vec<DlqId>),
    /// Every pending entry of the customer (an operator asked).
    All,
}

/// What a retry pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryReport {
    pub delivered: u64,
    pub failed: u64,
    /// Entries whose destination no longer exists; left pending.
    pub orphaned: u64,
    /// Entries of a halted destination, left for its next try.
    pub held_back: u64,
}

/// Entries retried in one pass at most.
const PASS_LIMIT: i64 = 500;

/// Retries the selected entries of this customer.
pub async fn retry_dlq(rt: &CustomerRuntime, selection: &Selection) -> Result<RetryReport, SyncError> {
    let store = &rt.target.store;
    let id = rt.customer.id;
    let entries: Vec<DlqEntry> = match selection {
        Selection::Due => store.due_dlq(id, Utc::now(), PASS_LIMIT).await?,
        Selection::All => store.pending_dlq(Some(id)).await?,
        Selection::Ids(ids) => {
            store.pending_dlq(Some(id)).await?.into_iter().filter(|e| ids.contains(&e.id)).collect()
        }
    };
    let mut by_destination: BTreeMap<String, Vec<DlqEntry>> = BTreeMap::new();
    for entry in entries {
        by_destination.entry(entry.destination.clone()).or_default().push(entry);
    }
    let mut report = RetryReport::default();
    if let Some(writebacks) = by_destination.remove(super::writeback::WRITEBACK_DESTINATION) {
        retry_writebacks(rt, &writebacks, &mut report).await?;
    }
    for (name, entries) in by_destination {
        let Some(destination) = rt.target.destinations.iter().find(|d| d.name() == name) else {
            report.orphaned += entries.len() as u64;
            continue;
        };
        if *selection != Selection::Due {
            // An operator asked: a halted destination is tried at once.
            destination.try_now();
        } else if destination.held_back() {
            // Halted: the entries wait for the halt's next try, their
            // attempts uncounted.
            report.held_back += entries.len() as u64;
            continue;
        }
        let (unreadable, entries): (Vec<DlqEntry>, Vec<DlqEntry>) =
            entries.into_iter().partition(|e| e.change_kind == UNREADABLE_KIND);
        retry_unreadable(rt, destination, &unreadable, &mut report).await?;
        let mut ready = Vec::with_capacity(entries.len());
        for entry in entries {
            match serde_json::from_str::<Change>(&entry.payload) {
                Ok(change) => ready.push((entry, change)),
                Err(e) => {
                    // Kept, with why: a default in its place would
                    // deliver (and resolve) something never read.
                    let why = format!("the stored payload cannot be read ({e}); discard the entry");
                    store.record_dlq_failure(entry.id, FailureClass::Permanent, &why, None).await?;
                    report.failed += 1;
                }
            }
        }
        let changes: Vec<Change> = ready.iter().map(|(_, c)| c.clone()).collect();
        let outcomes = destination.apply(&rt.customer.name, &changes, Utc::now()).await;
        for ((entry, change), outcome) in ready.iter().zip(outcomes) {
            settle_entry(rt, entry, change, &name, outcome, &mut report).await?;
        }
    }
    if report.delivered + report.failed > 0 {
        rt.event(
            super::events::EventLevel::Info,
            format!("DLQ retry: {} delivered, {} still failing", report.delivered, report.failed),
        );
    }
    Ok(report)
}

/// Records one retried entry's outcome: resolved with the destination's
/// id, or failed again (retryable ones rescheduled with backoff).
async fn settle_entry(
    rt: &CustomerRuntime,
    entry: &DlqEntry,
    change: &Change,
    destination: &str,
    outcome: Result<String, crate::dest::DestError>,
    report: &mut RetryReport,
) -> Result<(), SyncError> {
    let store = &rt.target.store;
    match outcome {
        Ok(external_id) => {
            store.resolve_dlq(entry.id).await?;
            record_external_id(rt, change, destination, external_id).await?;
            report.delivered += 1;
        }
        Err(error) => {
            let next = (error.class == FailureClass::Retryable).then(|| {
                let attempts = u32::try_from(entry.attempts).unwrap_or(u32::MAX).saturating_add(1);
                let wait = rt.config.dlq_retry.backoff(attempts).min(rt.config.dlq_retry_max);
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            store.record_dlq_failure(entry.id, error.class, &error.message, next).await?;
            report.failed += 1;
        }
    }
    Ok(())
}

/// Users VOMO listed with unreadable records, read again one by one: a
/// record that reads now is delivered (and mapped); one still unreadable
/// stays parked with the new reason; one VOMO no longer has is resolved
/// (the full scan deletes it downstream if it was ever sent).
async fn retry_unreadable(
    rt: &CustomerRuntime,
    destination: &crate::dest::Destination,
    entries: &[DlqEntry],
    report: &mut RetryReport,
) -> Result<(), SyncError> {
    if entries.is_empty() {
        return Ok(());
    }
    let store = &rt.target.store;
    let fetcher = retry_fetcher(rt);
    for entry in entries {
        let user = match fetcher.get_user(super::budget::Priority::Poll, entry.vomo_user_id).await {
            Ok(Some(detail)) => detail.user,
            Ok(None) => {
                store.resolve_dlq(entry.id).await?;
                report.delivered += 1;
                continue;
            }
            Err(SyncError::Vomo(e @ crate::vomo::VomoError::Decode { .. })) => {
                let why = format!("VOMO's record still cannot be read: {e}");
                store.record_dlq_failure(entry.id, FailureClass::Permanent, &why, None).await?;
                report.failed += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let known = store.lookup_mappings(rt.customer.id, &[user.id]).await?.remove(&user.id);
        let kind = if known.is_some() { ChangeKind::Updated } else { ChangeKind::Created };
        let change = Change { kind, vomo_user_id: user.id, user: Some(user.clone()) };
        let now = Utc::now();
        let outcome = destination.apply(&rt.customer.name, std::slice::from_ref(&change), now).await;
        let outcome =
            outcome.into_iter().next().unwrap_or_else(|| Err(crate::dest::DestError::retryable("no result")));
        if let Ok(external_id) = &outcome {
            let external_ids = crate::store::Store::merge_external_ids(
                known.as_ref().map(|m| &m.external_ids),
                &BTreeMap::from([(destination.name().to_owned(), external_id.clone())]),
            );
            let write = MappingWrite {
                vomo_user_id: user.id,
                email: user.email.clone(),
                content_hash: user.content_hash(),
                vomo_updated_at: user.updated_at,
                external_ids,
                synced_at: now,
                deleted_at: None,
            };
            store.commit_window(rt.customer.id, &[write], None, None).await?;
            store.resolve_dlq(entry.id).await?;
            report.delivered += 1;
        } else {
            settle_entry(rt, entry, &change, destination.name(), outcome, report).await?;
        }
    }
    Ok(())
}

/// VOMO access for retries, outside any run.
fn retry_fetcher(rt: &CustomerRuntime) -> super::fetch::Fetcher {
    super::fetch::Fetcher::new(
        rt.client.clone(),
        std::sync::Arc::clone(&rt.budget),
        std::sync::Arc::clone(&rt.clock),
        rt.config.request_retry,
        tokio_util::sync::CancellationToken::new(),
    )
}

/// Write-backs VOMO refused, sent again (after an operator's fix).
async fn retry_writebacks(
    rt: &CustomerRuntime,
    entries: &[DlqEntry],
    report: &mut RetryReport,
) -> Result<(), SyncError> {
    let fetcher = retry_fetcher(rt);
    for entry in entries {
        let edit = match decode_writeback(&entry.payload) {
            Ok(edit) => edit,
            Err(why) => {
                // Kept, with why: an empty edit in its place would be
                // "written" and the entry resolved, losing the edit.
                let why = format!("the stored write-back cannot be read ({why}); discard the entry");
                rt.target.store.record_dlq_failure(entry.id, FailureClass::Permanent, &why, None).await?;
                report.failed += 1;
                continue;
            }
        };
        match super::writeback::write_back_one(rt, &fetcher, None, entry.vomo_user_id, &edit).await? {
            super::writeback::Written::Done | super::writeback::Written::Gone => {
                rt.target.store.resolve_dlq(entry.id).await?;
                report.delivered += 1;
            }
            super::writeback::Written::Refused => {
                // The refusal parked a fresh entry; this one is superseded.
                report.failed += 1;
            }
        }
    }
    Ok(())
}

/// Notes the destination's id for the user on its mapping.
async fn record_external_id(
    rt: &CustomerRuntime,
    change: &Change,
    destination: &str,
    external_id: String,
) -> Result<(), SyncError> {
    let store = &rt.target.store;
    let mappings = store.lookup_mappings(rt.customer.id, &[change.vomo_user_id]).await?;
    let Some(mapping) = mappings.get(&change.vomo_user_id) else { return Ok(()) };
    let mut external_ids = mapping.external_ids.clone();
    external_ids.insert(destination.to_owned(), external_id);
    let write = MappingWrite {
        vomo_user_id: mapping.vomo_user_id,
        email: mapping.email.clone(),
        content_hash: mapping.content_hash,
        vomo_updated_at: mapping.vomo_updated_at,
        external_ids,
        synced_at: Utc::now(),
        deleted_at: mapping.deleted_at,
    };
    store.commit_window(rt.customer.id, &[write], None, None).await?;
    Ok(())
}

/// The edit a write-back DLQ entry holds (`{"writeback": {…}}`).
fn decode_writeback(payload: &str) -> Result<super::writeback::Edit, String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        writeback: super::writeback::Edit,
    }
    serde_json::from_str::<Stored>(payload).map(|s| s.writeback).map_err(|e| e.to_string())
}
