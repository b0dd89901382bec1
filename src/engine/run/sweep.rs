//! Deletion detection (design.md §3.3), the second half of a full scan:
//! after a verified walk of every user, mapped users that were not seen are
//! candidates. Above the mass-deletion guard nothing more happens: the run
//! waits for an operator with the list. Otherwise each candidate is confirmed
//! with `GET /users/{id}` — 404 means deleted (`user.deleted` downstream, the
//! mapping marked deleted, never removed), 200 means it moved mid-scan and is
//! processed as an update. Nothing is deleted before the walk completed, so
//! an interrupted sweep deletes nothing.

use std::collections::HashSet;

use super::budget::Priority;
use super::customer::CustomerRuntime;
use super::fetch::Fetcher;
use super::process::Sink;
use crate::domain::VomoUserId;
use crate::engine::error::SyncError;
use crate::store::RunId;

/// What the deletion check of a full scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Mapped users the walk did not see.
    pub candidates: usize,
    /// Candidates VOMO still has (they moved mid-scan).
    pub moved: usize,
    /// Candidates confirmed gone — or, when guarded, all candidates.
    pub gone: Vec<VomoUserId>,
    /// Candidates allowed before the guard trips.
    pub threshold: usize,
    /// The guard tripped: nothing was deleted.
    pub guarded: bool,
}

/// Candidates above which a sweep waits for an operator: a share of the
/// customer's users, capped.
pub fn deletion_threshold(rt: &CustomerRuntime, users: usize) -> usize {
    let share = (users as f64 * rt.config.deletion_guard_share).ceil() as usize;
    share.max(1).min(usize::try_from(rt.config.deletion_guard_max).unwrap_or(usize::MAX))
}

pub(super) async fn sweep(
    rt: &CustomerRuntime,
    run_id: Option<RunId>,
    fetcher: &Fetcher,
    sink: &mut Sink,
) -> Result<Sweep, SyncError> {
    let store = &rt.target.store;
    let seen = sink.seen().await?;
    let mapped = store.mapped_user_ids(rt.customer.id, false).await?;
    let candidates: Vec<VomoUserId> = mapped.iter().filter(|id| !seen.contains(id)).copied().collect();
    let threshold = deletion_threshold(rt, mapped.len());
    if candidates.len() > threshold {
        if let Some(run) = run_id {
            store.record_pending_deletions(run, rt.customer.id, &candidates).await?;
        }
        return Ok(Sweep {
            candidates: candidates.len(),
            moved: 0,
            gone: candidates,
            threshold,
            guarded: true,
        });
    }
    let (gone, moved) = confirm_gone(fetcher, sink, &candidates).await?;
    sink.delete(&gone).await?;
    Ok(Sweep { candidates: candidates.len(), moved, gone, threshold, guarded: false })
}

/// An operator confirmed a guarded sweep: each listed user is asked
/// about once more; those VOMO still does not have are deleted
/// downstream, the others processed. Returns (deleted, kept).
pub async fn delete_confirmed(rt: &CustomerRuntime, ids: &[VomoUserId]) -> Result<(usize, usize), SyncError> {
    let fetcher = Fetcher::new(
        rt.client.clone(),
        std::sync::Arc::clone(&rt.budget),
        std::sync::Arc::clone(&rt.clock),
        rt.config.request_retry,
        tokio_util::sync::CancellationToken::new(),
    );
    let counters = std::sync::Arc::new(super::process::Counters::default());
    let mut sink =
        Sink::new(std::sync::Arc::clone(&rt.target), counters, super::process::SinkOptions::default())
            .await?;
    let (gone, kept) = confirm_gone(&fetcher, &mut sink, ids).await?;
    sink.delete(&gone).await?;
    Ok((gone.len(), kept))
}

/// Asks VOMO about each user: the ones it no longer has are returned;
/// the ones it still has are processed (as updates when they changed).
pub(super) async fn confirm_gone(
    fetcher: &Fetcher,
    sink: &mut Sink,
    ids: &[VomoUserId],
) -> Result<(Vec<VomoUserId>, usize), SyncError> {
    let mut gone = Vec::new();
    let mut still_there = Vec::new();
    let unique: HashSet<VomoUserId> = ids.iter().copied().collect();
    let mut ordered: Vec<VomoUserId> = unique.into_iter().collect();
    ordered.sort_unstable();
    for id in ordered {
        match fetcher.get_user(Priority::Reconcile, id).await? {
            None => gone.push(id),
            Some(detail) => still_there.push(detail.user),
        }
    }
    let moved = still_there.len();
    sink.push(still_there).await?;
    sink.flush(None).await?;
    sink.finish().await?;
    Ok((gone, moved))
}
