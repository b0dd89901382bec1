//! The live tail (design.md §3.8): between verified polls, one cheap read
//! of what changed since the tail's own mark, delivered at once through the
//! normal pipeline (change detection against the mappings, destinations,
//! DLQ). It never moves the checkpoint — only verified windows do — so the
//! next verified window re-reads the same users and the content hash makes
//! that a no-op downstream: the tail can make data fresher, never wrong or
//! incomplete.
//!
//! A read covers `[mark − overlap, VOMO's clock − 1 s]`, never earlier than
//! the checkpoint. The mark lives in memory (a restart starts from the
//! checkpoint) and moves to the read's end once the read is done: a quiet
//! customer costs one request per read, and a busy one does not re-read the
//! minutes since the checkpoint each time. The overlap re-reads the last
//! seconds, for writes that committed after a read yet carry an earlier
//! time. More than a page of changes is not chased page by page: the page
//! read is delivered and the rest is handed over to a verified poll as soon
//! as those seconds can be verified (after the settle margin).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::budget::Priority;
use super::customer::CustomerRuntime;
use super::fetch::Fetcher;
use super::lock::locked;
use super::process::{Counters, Sink, SinkOptions};
use crate::domain::whole_second;
use crate::engine::error::SyncError;
use crate::vomo::UserFilter;

/// Seconds before the mark each read starts at.
const OVERLAP: Duration = Duration::seconds(3);

/// What one tail read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailRead {
    /// Nothing to read: the checkpoint is already at VOMO's present.
    Skipped,
    /// Read whole; `changes` were delivered (created, updated or deleted).
    Read { changes: u64 },
    /// More than a page had changed: the first page was delivered and a
    /// verified poll should run at `poll_at` for the rest.
    HandOver { changes: u64, poll_at: DateTime<Utc> },
}

/// One tail read of a customer. `mark` is the tail's own position, kept by
/// the caller between reads.
pub async fn read(
    rt: &CustomerRuntime,
    mark: &mut Option<DateTime<Utc>>,
    cancel: &CancellationToken,
) -> Result<TailRead, SyncError> {
    // VOMO's current second may still be filling: a read ends before it.
    let before_now = |now: DateTime<Utc>| whole_second(now) - Duration::seconds(1);
    let known_end = rt.clock.now().map(before_now);
    let checkpoint = rt.target.store.load_checkpoint(rt.customer.id).await?.watermark;
    let from = mark.map_or(checkpoint, |m| (m - OVERLAP).max(checkpoint));
    if known_end.is_some_and(|end| from > end) {
        return Ok(TailRead::Skipped);
    }
    let fetcher = Fetcher::new(
        rt.client.clone(),
        Arc::clone(&rt.budget),
        Arc::clone(&rt.clock),
        rt.config.request_retry,
        cancel.child_token(),
    );
    // Without VOMO's clock yet (a fresh process before its first poll) the
    // read is open-ended and its own `Date` says where it ends.
    let filter = UserFilter { updated_after: Some(from), updated_before: known_end, ..UserFilter::default() };
    let page = fetcher.list(Priority::Tail, &filter, 1).await?;
    // Our idea of VOMO's clock may have run ahead of it: the mark never
    // passes the last whole second VOMO itself has lived through.
    let now = rt.clock.now().ok_or(super::clock::ClockError::NoDate)?;
    let end = known_end.map_or(before_now(now), |end| end.min(before_now(now)));
    let listed = (page.users.len() + page.malformed.len()) as u64;
    let complete = page.last_page <= 1 && listed == page.total;
    // Only users inside the read (a hostile page may list others); the
    // unreadable ones are parked by the verified poll, once.
    let users: Vec<_> =
        page.users.into_iter().filter(|u| from <= u.updated_at && u.updated_at <= end).collect();
    let counters = Arc::new(Counters::default());
    let mut sink = Sink::new(Arc::clone(&rt.target), Arc::clone(&counters), SinkOptions::default()).await?;
    let delivered = async {
        sink.push(users).await?;
        sink.flush(None).await
    }
    .await;
    let finished = sink.finish().await;
    delivered?;
    finished?;
    let changes = [&counters.created, &counters.updated, &counters.deleted]
        .into_iter()
        .map(|n| n.load(Ordering::Relaxed))
        .sum();
    *mark = Some(mark.map_or(end, |m| m.max(end)));
    if complete {
        return Ok(TailRead::Read { changes });
    }
    let settle = Duration::from_std(rt.config.settle).unwrap_or_default().max(Duration::seconds(1));
    Ok(TailRead::HandOver { changes, poll_at: end + settle + Duration::seconds(1) })
}

/// Records a read's outcome in the customer's live tail figures.
pub fn record(rt: &CustomerRuntime, outcome: &Result<TailRead, SyncError>) {
    let mut tail = locked(&rt.live.tail);
    let now = Utc::now();
    match outcome {
        Ok(TailRead::Skipped) => {}
        Ok(TailRead::Read { changes } | TailRead::HandOver { changes, .. }) => {
            tail.reads += 1;
            tail.changes += changes;
            tail.last_read_at = Some(now);
            if *changes > 0 {
                tail.last_change_at = Some(now);
            }
            if matches!(outcome, Ok(TailRead::HandOver { .. })) {
                tail.handovers += 1;
            }
            tail.failing = None;
        }
        Err(e) => tail.failing = Some(e.to_string()),
    }
}
