//! Retrying the dead-letter queue: automatic retries of retryable entries
//! when their time comes (capped exponential backoff with jitter), and
//! operator retries of chosen entries, permanent ones included. An entry is
//! always the latest known version of its user for its destination (newer
//! versions supersede older entries), so a retry never writes stale data.

use std::collections::BTreeMap;

use chrono::Utc;

use super::SyncError;
use super::sync::CustomerRuntime;
use crate::domain::{Change, FailureClass};
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
}

/// Entries retried in one pass at most.
const PASS_LIMIT: i64 = 500;

impl CustomerRuntime {
    /// Retries the selected entries of this customer.
    pub async fn retry_dlq(&self, selection: &Selection) -> Result<RetryReport, SyncError> {
        let store = &self.target.store;
        let id = self.customer.id;
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
            self.retry_writebacks(&writebacks, &mut report).await?;
        }
        for (name, entries) in by_destination {
            let Some(destination) = self.target.destinations.iter().find(|d| d.name() == name) else {
                report.orphaned += entries.len() as u64;
                continue;
            };
            let changes: Vec<Change> =
                entries.iter().filter_map(|e| serde_json::from_str(&e.payload).ok()).collect();
            if changes.len() != entries.len() {
                return Err(SyncError::Store(crate::store::StoreError::Corrupt {
                    what: format!("a DLQ payload of destination {name} is not a change"),
                }));
            }
            let outcomes = destination.apply(&self.customer.name, &changes, Utc::now()).await;
            for ((entry, change), outcome) in entries.iter().zip(&changes).zip(outcomes) {
                match outcome {
                    Ok(external_id) => {
                        store.resolve_dlq(entry.id).await?;
                        self.record_external_id(change, &name, external_id).await?;
                        report.delivered += 1;
                    }
                    Err(error) => {
                        let next = (error.class == FailureClass::Retryable).then(|| {
                            let attempts =
                                u32::try_from(entry.attempts).unwrap_or(u32::MAX).saturating_add(1);
                            let wait = self.config.dlq_retry.backoff(attempts).min(self.config.dlq_retry_max);
                            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
                        });
                        store.record_dlq_failure(entry.id, error.class, &error.message, next).await?;
                        report.failed += 1;
                    }
                }
            }
        }
        if report.delivered + report.failed > 0 {
            self.event(
                super::EventLevel::Info,
                format!("DLQ retry: {} delivered, {} still failing", report.delivered, report.failed),
            );
        }
        Ok(report)
    }

    /// Write-backs VOMO refused, sent again (after an operator's fix).
    async fn retry_writebacks(
        &self,
        entries: &[DlqEntry],
        report: &mut RetryReport,
    ) -> Result<(), SyncError> {
        let fetcher = super::fetch::Fetcher::new(
            self.client.clone(),
            std::sync::Arc::clone(&self.budget),
            std::sync::Arc::clone(&self.clock),
            self.config.request_retry,
            tokio_util::sync::CancellationToken::new(),
        );
        for entry in entries {
            let payload: serde_json::Value = serde_json::from_str(&entry.payload).unwrap_or_default();
            let edit: super::writeback::Edit =
                serde_json::from_value(payload["writeback"].clone()).unwrap_or_default();
            match self.write_back_one(&fetcher, None, entry.vomo_user_id, &edit).await? {
                super::writeback::Written::Done | super::writeback::Written::Gone => {
                    self.target.store.resolve_dlq(entry.id).await?;
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
        &self,
        change: &Change,
        destination: &str,
        external_id: String,
    ) -> Result<(), SyncError> {
        let store = &self.target.store;
        let mappings = store.lookup_mappings(self.customer.id, &[change.vomo_user_id]).await?;
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
        store.commit_window(self.customer.id, &[write], None, None).await?;
        Ok(())
    }
}
