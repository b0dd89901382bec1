//! Verified windows (design.md §3.1): every read of users is a walk of a
//! closed range of `updated_at` seconds, page 1 .. `last_page`, with URLs the
//! client builds. A closed window can only lose members while it is walked
//! (an updated user moves to a later second, a deleted one vanishes), and a
//! loss shifts later pages so an unchanged user can slip past. So a walk
//! counts as complete only when `meta.total` is the same on its first and
//! last page and the distinct ids seen equal it.
//!
//! Large windows are cut into chunks of about `target` users, oldest first,
//! by probing page 1 of a candidate chunk; split points come from the
//! `updated_at` values seen (quantiles), and every probe's page 1 is
//! processed, and reused as the walk's page 1 when the chunk is accepted. A
//! chunk that fails verification is not walked again whole: the chunk size
//! halves, and the next chunk is planned from the exact times just seen. The
//! size grows back by a quarter after each verified chunk, so it settles
//! where walks mostly succeed at the current rate of concurrent edits. A
//! single second cannot be split; it is re-walked a bounded number of times
//! and then accepted with a warning (reconciliation covers it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::SyncError;
use super::budget::Priority;
use super::fetch::Fetcher;
use super::process::Sink;
use crate::domain::Window;
use crate::vomo::{PAGE_SIZE, UserFilter, UserPage};

/// Failed walks of a one-second chunk before it is accepted unverified.
const SINGLE_SECOND_TRIES: u32 = 4;
/// A probe this many times the target is split before walking.
const TOO_BIG_FACTOR: u64 = 2;

/// Live progress of a walk, read by status screens and progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    pub pages: AtomicU64,
    pub users: AtomicU64,
    /// Users in the whole window, from its first probe (0 until known).
    pub total: AtomicU64,
}

/// What a walk of a window found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalkSummary {
    pub chunks: u64,
    pub failed_walks: u64,
    pub probes_split: u64,
    /// Chunks accepted without verification (a crowded single second).
    pub unverified_accepted: u64,
    pub warnings: Vec<String>,
}

/// Walks windows for one customer and run.
pub struct Walker<'a> {
    pub fetcher: &'a Fetcher,
    pub priority: Priority,
    pub progress: &'a Progress,
    /// Current chunk size in users; adapts to the rate of failed walks and
    /// is kept between runs by the caller.
    pub target: &'a mut u64,
    pub max_chunk: u64,
}

/// Where the users of the rest of a window probably are: sorted
/// `updated_at` seconds, each standing for `weight` users.
struct Estimate {
    times: Vec<i64>,
    weight: f64,
}

impl Estimate {
    fn from_probe(window: Window, page: &UserPage) -> Self {
        let mut times: Vec<i64> = page
            .users
            .iter()
            .map(|u| u.updated_at.timestamp())
            .filter(|t| (window.from.timestamp()..=window.to.timestamp()).contains(t))
            .collect();
        times.sort_unstable();
        let weight = page.total as f64 / times.len().max(1) as f64;
        Self { times, weight: weight.max(1.0) }
    }

    fn exact(mut times: Vec<i64>) -> Self {
        times.sort_unstable();
        Self { times, weight: 1.0 }
    }

    /// The end of a chunk from `cursor` holding about `target` users; `None`
    /// when the estimate knows nothing beyond `cursor`.
    fn end_for(&self, cursor: i64, target: u64) -> Option<i64> {
        let ahead = &self.times[self.times.partition_point(|t| *t < cursor)..];
        let first = *ahead.first()?;
        let k = (target as f64 / self.weight).floor() as usize;
        if k >= ahead.len() {
            return None;
        }
        if k == 0 {
            // Less than one sample's worth: interpolate towards the first.
            let share = target as f64 / self.weight;
            return Some(cursor + ((first - cursor) as f64 * share) as i64);
        }
        Some(ahead[k - 1])
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// Result of walking one chunk.
struct ChunkWalk {
    verified: bool,
    times: Vec<i64>,
}

impl Walker<'_> {
    /// Walks `window` oldest chunk first. After each verified chunk the sink
    /// flushes; with `advance`, the checkpoint moves to the chunk's end in
    /// the same transaction.
    pub async fn walk(
        &mut self,
        window: Window,
        sink: &mut Sink<'_>,
        advance: bool,
    ) -> Result<WalkSummary, SyncError> {
        let mut summary = WalkSummary::default();
        let mut cursor = window.from.timestamp();
        let last = window.to.timestamp();
        let mut estimate: Option<Estimate> = None;
        let mut failures_here = 0;
        // After a probe that was too big or a walk that failed, the next
        // chunk ends strictly earlier, so the walk always progresses: in the
        // worst case down to one second, which is accepted after a few tries.
        let mut cap: Option<i64> = None;
        while cursor <= last {
            let end = estimate
                .as_ref()
                .and_then(|e| e.end_for(cursor, *self.target))
                .unwrap_or(last)
                .min(cap.unwrap_or(last))
                .clamp(cursor, last);
            let chunk = Window { from: at(cursor), to: at(end) };
            let filter = UserFilter::updated_between(chunk.from, chunk.to);
            let first = self.fetcher.list(self.priority, &filter, 1).await?;
            self.record_page(&first);
            if cursor == window.from.timestamp() && estimate.is_none() {
                self.progress.total.store(first.total, Ordering::Relaxed);
            }
            if first.total > *self.target * TOO_BIG_FACTOR && end > cursor {
                summary.probes_split += 1;
                cap = Some(end - 1);
                estimate = Some(Estimate::from_probe(chunk, &first));
                sink.push(first.users).await?;
                continue;
            }
            let walked = self.walk_chunk(chunk, &filter, first, sink).await?;
            let crowded_second = end == cursor && failures_here + 1 >= SINGLE_SECOND_TRIES;
            if walked.verified || crowded_second {
                if !walked.verified {
                    summary.unverified_accepted += 1;
                    summary.warnings.push(format!(
                        "the second {chunk} holds more users than a page and kept changing while read; accepted unverified (reconciliation will re-check it)"
                    ));
                }
                sink.flush(advance.then_some(chunk.to)).await?;
                summary.chunks += 1;
                cursor = end + 1;
                failures_here = 0;
                cap = None;
                *self.target = (*self.target + *self.target / 4).clamp(PAGE_SIZE, self.max_chunk);
            } else {
                summary.failed_walks += 1;
                failures_here += 1;
                cap = (end > cursor).then(|| end - 1);
                *self.target = (*self.target / 2).max(PAGE_SIZE);
                estimate = Some(Estimate::exact(walked.times));
                tracing::debug!(%chunk, target = *self.target, "walk not verified; planning smaller chunks");
            }
        }
        Ok(summary)
    }

    fn record_page(&self, page: &UserPage) {
        self.progress.pages.fetch_add(1, Ordering::Relaxed);
        self.progress.users.fetch_add(page.users.len() as u64, Ordering::Relaxed);
    }

    /// Reads pages 2.. of a chunk (page 1 is `first`) and checks the walk.
    async fn walk_chunk(
        &self,
        chunk: Window,
        filter: &UserFilter,
        first: UserPage,
        sink: &mut Sink<'_>,
    ) -> Result<ChunkWalk, SyncError> {
        let (total_first, last_page) = (first.total, first.last_page);
        let mut total_last = total_first;
        let mut seen = HashSet::with_capacity(usize::try_from(total_first).unwrap_or(0).min(1 << 20));
        let mut times = Vec::new();
        let mut note = |page: &UserPage| {
            for user in &page.users {
                if chunk.from <= user.updated_at && user.updated_at < chunk.to + Duration::seconds(1) {
                    seen.insert(user.id);
                    times.push(user.updated_at.timestamp());
                }
            }
        };
        note(&first);
        // One request in flight at a time — a revoked token costs exactly one
        // request — but the next page is fetched while this one is processed.
        let mut users = first.users;
        for n in 2..=last_page {
            let (page, pushed) = tokio::join!(self.fetcher.list(self.priority, filter, n), sink.push(users));
            pushed?;
            let page = page?;
            self.record_page(&page);
            total_last = page.total;
            note(&page);
            users = page.users;
        }
        sink.push(users).await?;
        let verified = total_first == total_last && seen.len() as u64 == total_first;
        Ok(ChunkWalk { verified, times })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_pick_ends_by_quantile() {
        let exact = Estimate::exact((0..100).map(|i| 1000 + i * 10).collect());
        assert_eq!(exact.end_for(1000, 30), Some(1290), "30 users: up to the 30th time");
        assert_eq!(exact.end_for(1295, 10), Some(1390), "only the times ahead count");
        assert_eq!(exact.end_for(1000, 500), None, "more than known: the rest of the window");
        assert_eq!(exact.end_for(5000, 10), None);
        let coarse = Estimate { times: vec![2000, 3000, 4000], weight: 100.0 };
        assert_eq!(coarse.end_for(1000, 200), Some(3000));
        assert_eq!(coarse.end_for(1000, 50), Some(1500), "half a sample: interpolated");
    }
}
