//! Write-back (bidirectional mode, opt-in per customer): fields the
//! customer's system owns (e.g. `phone`) flow from its PostgreSQL table back
//! to VOMO. An edit is a row whose owned field differs from what vomo-sync
//! last wrote there. Each is sent with `POST /users` — the full required
//! record, VOMO's current values for the fields VOMO owns, the customer's for
//! the owned ones, `role` always — through the customer's budget at the
//! highest priority. VOMO's answer becomes the mapping's version, so the next
//! poll reads our own write as unchanged (no echo). A 422 parks the edit in
//! the DLQ as permanent with VOMO's field messages and does not block the
//! others.

use std::collections::BTreeMap;

use chrono::Utc;

use super::budget::Priority;
use super::customer::CustomerRuntime;
use super::events::EventLevel;
use super::fetch::Fetcher;
use crate::dest::Destination;
use crate::dest::postgres::set_field;
use crate::domain::{Change, ChangeKind, FailureClass, VomoUserId};
use crate::engine::error::SyncError;
use crate::store::{MappingWrite, NewDlqEntry};
use crate::vomo::{UpsertOutcome, UpsertRequest, VomoError};

/// The DLQ's name for write-backs to VOMO.
pub const WRITEBACK_DESTINATION: &str = "vomo";

/// What a write-back pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WritebackReport {
    pub written: u64,
    pub refused: u64,
    /// Edits of users VOMO no longer has.
    pub gone: u64,
}

/// The owned fields of one edit: field → the customer's value.
pub type Edit = BTreeMap<String, Option<String>>;

pub(super) enum Written {
    Done,
    Refused,
    Gone,
}

/// A write-back pass with its own requests counted against the budget.
pub async fn write_back_pass(
    rt: &CustomerRuntime,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<WritebackReport, SyncError> {
    if rt.customer.settings.writeback_fields.is_empty() {
        return Ok(WritebackReport::default());
    }
    let fetcher = Fetcher::new(
        rt.client.clone(),
        std::sync::Arc::clone(&rt.budget),
        std::sync::Arc::clone(&rt.clock),
        rt.config.request_retry,
        cancel.child_token(),
    );
    write_back(rt, &fetcher).await
}

/// Sends every pending edit of the customer's tables to VOMO.
pub async fn write_back(rt: &CustomerRuntime, fetcher: &Fetcher) -> Result<WritebackReport, SyncError> {
    let mut report = WritebackReport::default();
    if rt.customer.settings.writeback_fields.is_empty() {
        return Ok(report);
    }
    for destination in rt.target.destinations.iter().filter(|d| d.supports_writeback()) {
        let edits = destination.pending_edits().await.map_err(|e| SyncError::Destination(e.to_string()))?;
        for (id, edit) in edits {
            match write_back_one(rt, fetcher, Some(destination), id, &edit).await? {
                Written::Done => report.written += 1,
                Written::Refused => report.refused += 1,
                Written::Gone => report.gone += 1,
            }
        }
    }
    if report.written + report.refused > 0 {
        rt.event(
            EventLevel::Info,
            format!(
                "write-back: {} edits sent to VOMO, {} refused (in the DLQ)",
                report.written, report.refused
            ),
        );
    }
    Ok(report)
}

/// Writes one edit back; a DLQ retry calls this with no destination.
pub(super) async fn write_back_one(
    rt: &CustomerRuntime,
    fetcher: &Fetcher,
    destination: Option<&Destination>,
    id: VomoUserId,
    edit: &Edit,
) -> Result<Written, SyncError> {
    let Some(current) = fetcher.get_user(Priority::Writeback, id).await? else {
        return Ok(Written::Gone);
    };
    let mut wanted = current.user.clone();
    for (field, value) in edit {
        set_field(&mut wanted, field, value.clone());
    }
    let request = UpsertRequest {
        first_name: wanted.first_name.clone(),
        last_name: wanted.last_name.clone(),
        email: current.user.email.clone(),
        birthday: wanted.birthday.clone().unwrap_or_default(),
        gender: wanted.gender.clone().unwrap_or_default(),
        role: current.user.membership_role.clone().unwrap_or_else(|| "VOLUNTEER".to_owned()),
        phone: wanted.phone.clone(),
        org: None,
    };
    let store = &rt.target.store;
    match fetcher.upsert(Priority::Writeback, &request).await {
        Ok(UpsertOutcome::Updated(detail) | UpsertOutcome::Created(detail)) => {
            if let Some(destination) = destination {
                // The row takes VOMO's answer: VOMO's values win for
                // the fields it owns (a VOMO edit the poll has not read
                // yet), the customer's edit stays in the owned ones.
                let change =
                    Change { kind: ChangeKind::Updated, vomo_user_id: id, user: Some(detail.user.clone()) };
                for outcome in destination.apply(&rt.customer.name, &[change], Utc::now()).await {
                    outcome.map_err(|e| SyncError::Destination(e.to_string()))?;
                }
            }
            adopt_version(rt, &detail.user).await?;
            if let Some(destination) = destination {
                destination
                    .mark_written(id, edit, detail.user.updated_at)
                    .await
                    .map_err(|e| SyncError::Destination(e.to_string()))?;
            }
            store.supersede_dlq(rt.customer.id, WRITEBACK_DESTINATION, id, detail.user.updated_at).await?;
            Ok(Written::Done)
        }
        Err(SyncError::Vomo(error @ VomoError::Validation { .. })) => {
            park_refused(rt, id, edit, &current.user, &error).await?;
            if let Some(destination) = destination {
                // Not detected again: the DLQ owns it now.
                destination
                    .mark_written(id, edit, current.user.updated_at)
                    .await
                    .map_err(|e| SyncError::Destination(e.to_string()))?;
            }
            Ok(Written::Refused)
        }
        Err(e) => Err(e),
    }
}

/// Echo suppression: the mapping takes the version VOMO answered with,
/// so the next poll reads it as unchanged.
async fn adopt_version(rt: &CustomerRuntime, user: &crate::domain::User) -> Result<(), SyncError> {
    let store = &rt.target.store;
    let known = store.lookup_mappings(rt.customer.id, &[user.id]).await?;
    let previous = known.get(&user.id);
    let write = MappingWrite {
        vomo_user_id: user.id,
        email: user.email.clone(),
        content_hash: user.content_hash(),
        vomo_updated_at: user.updated_at,
        external_ids: previous.map(|m| m.external_ids.clone()).unwrap_or_default(),
        synced_at: Utc::now(),
        deleted_at: None,
    };
    store.commit_window(rt.customer.id, &[write], None, None).await?;
    Ok(())
}

async fn park_refused(
    rt: &CustomerRuntime,
    id: VomoUserId,
    edit: &Edit,
    current: &crate::domain::User,
    error: &VomoError,
) -> Result<(), SyncError> {
    let payload = serde_json::json!({ "vomo_user_id": id, "writeback": edit }).to_string();
    let mut hash_input = current.clone();
    for (field, value) in edit {
        set_field(&mut hash_input, field, value.clone());
    }
    let entry = NewDlqEntry {
        vomo_user_id: id,
        destination: WRITEBACK_DESTINATION.to_owned(),
        change_kind: "writeback".to_owned(),
        payload,
        content_hash: hash_input.content_hash(),
        vomo_updated_at: current.updated_at,
        class: FailureClass::Permanent,
        message: error.to_string(),
        next_retry_at: None,
    };
    rt.target.store.park_in_dlq(rt.customer.id, &entry).await?;
    rt.event(EventLevel::Warn, format!("VOMO refused the write-back of user {id}: {error}"));
    Ok(())
}
