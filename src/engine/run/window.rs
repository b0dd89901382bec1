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
//! processed, and reused as the walk's page 1 when the chunk is accepted; a
//! probed chunk up to `max_chunk` is walked whole when that is the cheaper
//! bet ([`ChunkSizer::walk_whole`]), so a small customer's backfill reads
//! each page once. A
//! chunk that fails verification is not walked again whole: the next chunk
//! is planned from the exact times just seen, and its size comes from the
//! observed rate of edits during walks ([`ChunkSizer`]): the size that
//! minimises the expected requests per user, so a calm customer is read in
//! big chunks and a busy one in small ones. A single second cannot be split,
//! and VOMO promises no order among users of the same second, so one walk of
//! a crowded second may skip some and repeat others. Such a second is
//! re-walked and verified by the union of its walks: while `meta.total`
//! stays the same no member has left the (closed) second, so once the union
//! of ids seen reaches that total every member has been read. Only when
//! re-walks stop adding ids is it accepted with a warning (reconciliation
//! covers it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::budget::Priority;
use super::fetch::Fetcher;
use super::process::Sink;
use crate::domain::Window;
use crate::engine::error::SyncError;
use crate::vomo::{PAGE_SIZE, UserFilter, UserPage};

/// Fewest walks of a one-second chunk in a row that add no id to the union
/// of its walks before it is accepted unverified; more when the walks each
/// see little of the second (see [`SecondUnion::give_up`]).
const SINGLE_SECOND_TRIES: u32 = 4;
/// ... and at most this many.
const SINGLE_SECOND_MAX_TRIES: u32 = 40;
/// The chance, left by the stalled walks, that a member was missed by all
/// of them, below which the second is accepted.
const SINGLE_SECOND_MISS: f64 = 1e-6;
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

/// Chooses chunk sizes from the observed rate of edits that break walks.
///
/// A walk of `p` pages survives when none of its `p - 1` later page reads
/// follows an edit in the window: probability `(1 - q)^(p-1)` for an edit
/// rate `q` per read. A failed walk's requests are lost and its last page is
/// half full on average, so the expected requests per useful page are
/// `p / (p - ½) / (1 - q)^(p-1)`; the sizer picks the `p` that minimises it.
/// `q` is estimated from recent walks (older ones decay), starting from a
/// small prior rate, so a busy customer does not lose a 100-page walk
/// before the sizer has seen anything; calm walks decay the prior away and
/// the chunks grow to the largest size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkSizer {
    /// Walks that failed verification (decayed).
    failures: f64,
    /// Page reads after page 1 of those walks (decayed).
    reads: f64,
}

/// The prior: this many failures in this many page reads.
const PRIOR_FAILURES: f64 = 0.1;
const PRIOR_READS: f64 = 100.0;
/// Weight kept by earlier observations at each new one.
const DECAY: f64 = 0.95;

impl Default for ChunkSizer {
    fn default() -> Self {
        Self { failures: PRIOR_FAILURES, reads: PRIOR_READS }
    }
}

impl ChunkSizer {
    /// Records a walk of `pages` pages.
    pub fn observe(&mut self, pages: u64, failed: bool) {
        self.failures = self.failures * DECAY + f64::from(u8::from(failed));
        self.reads = (self.reads * DECAY + pages.saturating_sub(1) as f64).max(1.0);
    }

    /// The estimated edit rate per page read.
    pub fn edit_rate(&self) -> f64 {
        (self.failures / self.reads).min(0.99)
    }

    /// Whether a probed chunk of `users` (at most `max_users`) is walked
    /// whole rather than split. Its page 1 is already read, so walking it
    /// costs `p − 1` more reads for its `p` pages, lost with the chance that
    /// an edit breaks the walk; splitting throws the probe's place away and
    /// pays the best chunk size's cost per page, half-empty last pages
    /// included. Before any walk has been seen the prior's caution is not
    /// applied: a first backfill of a small customer is read in exactly
    /// ⌈N/15⌉ pages, and at worst one walk of `max_users` is lost before the
    /// sizer learns.
    pub fn walk_whole(&self, users: u64, max_users: u64) -> bool {
        if users > max_users {
            return false;
        }
        if *self == Self::default() {
            return true;
        }
        let q = self.edit_rate();
        let pages = users.div_ceil(PAGE_SIZE).max(1) as f64;
        let whole = (pages - 1.0) / (1.0 - q).powf(pages - 1.0);
        let best = (self.target(max_users) / PAGE_SIZE).max(1);
        whole <= pages * self.cost(best)
    }

    /// Expected requests per useful page of a fresh chunk of `p` pages.
    fn cost(&self, p: u64) -> f64 {
        let q = self.edit_rate();
        p as f64 / (p as f64 - 0.5) / (1.0 - q).powf(p as f64 - 1.0)
    }

    /// The chunk size in users, between one page and `max_users`.
    pub fn target(&self, max_users: u64) -> u64 {
        let max_pages = (max_users / PAGE_SIZE).max(1);
        let best =
            (1..=max_pages).min_by(|a, b| self.cost(*a).total_cmp(&self.cost(*b))).unwrap_or(max_pages);
        best * PAGE_SIZE
    }
}

/// Walks windows for one customer and run.
pub struct Walker<'a> {
    pub fetcher: &'a Fetcher,
    pub priority: Priority,
    pub progress: &'a Progress,
    /// Chunk sizing, kept between runs by the caller.
    pub sizer: &'a mut ChunkSizer,
    pub max_chunk: u64,
}

/// Where the users of part of a window are: a cumulative count over the
/// seconds `lo..=hi`, from every user's time after a walk (exact) or from a
/// probe's page 1 (`total` users, sampled by its times).
#[derive(Clone)]
struct Estimate {
    lo: i64,
    hi: i64,
    /// Sorted `updated_at` seconds within `lo..=hi`.
    times: Vec<i64>,
    total: f64,
    exact: bool,
    /// Which users of the window a probe's page 1 holds.
    sample: Sample,
}

/// What page 1 of a window tells about where its users are. VOMO's order
/// is undocumented: a page in `updated_at` order holds the window's oldest
/// users, not a spread of them, and reading it as a spread puts nearly the
/// whole window into its first seconds (chunks far too small, each paying
/// its own half-empty last page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    /// Spread over the window (an order unrelated to time, such as ids).
    Spread,
    /// The oldest users (ascending `updated_at`).
    Oldest,
    /// The newest users (descending `updated_at`).
    Newest,
}

impl Sample {
    /// Reads the order off a page: fifteen users of unrelated order come
    /// sorted by time once in 15! pages; a page of one second says nothing.
    fn of(page: &UserPage) -> Self {
        let times: Vec<i64> = page.users.iter().map(|u| u.updated_at.timestamp()).collect();
        let listed = (page.users.len() + page.malformed.len()) as u64;
        if times.len() < 3 || listed >= page.total || times.first() == times.last() {
            return Self::Spread;
        }
        if times.windows(2).all(|w| w[0] <= w[1]) {
            Self::Oldest
        } else if times.windows(2).all(|w| w[0] >= w[1]) {
            Self::Newest
        } else {
            Self::Spread
        }
    }
}

impl Estimate {
    fn from_probe(window: Window, page: &UserPage) -> Self {
        let (lo, hi) = (window.from.timestamp(), window.to.timestamp());
        let mut times: Vec<i64> =
            page.users.iter().map(|u| u.updated_at.timestamp()).filter(|t| (lo..=hi).contains(t)).collect();
        times.sort_unstable();
        Self { lo, hi, times, total: page.total as f64, exact: false, sample: Sample::of(page) }
    }

    fn exact(window: Window, mut times: Vec<i64>) -> Self {
        times.sort_unstable();
        let total = times.len() as f64;
        let (lo, hi) = (window.from.timestamp(), window.to.timestamp());
        Self { lo, hi, times, total, exact: true, sample: Sample::Spread }
    }

    /// The estimated count of users up to and including the `i`-th sample
    /// (0-based, in time order).
    fn rank(&self, i: usize) -> f64 {
        let k = self.times.len() as f64;
        match self.sample {
            Sample::Spread => (i + 1) as f64 * self.total / (k + 1.0),
            Sample::Oldest => (i + 1) as f64,
            Sample::Newest => self.total - k + (i + 1) as f64,
        }
    }

    /// Estimated users with `updated_at <= t`. Exact counts are a step
    /// function; a probe's samples give a piecewise-linear curve through
    /// (lo, 0), each sample at its rank, and (hi, total).
    fn below(&self, t: i64) -> f64 {
        if t < self.lo {
            return 0.0;
        }
        if t >= self.hi {
            return self.total;
        }
        if self.exact {
            return self.times.partition_point(|x| *x <= t) as f64;
        }
        let mut points = vec![(self.lo as f64, 0.0)];
        points.extend(self.times.iter().enumerate().map(|(i, x)| (*x as f64, self.rank(i))));
        points.push((self.hi as f64 + 1.0, self.total));
        let t = t as f64 + 1.0;
        let after = points.partition_point(|(x, _)| *x < t).min(points.len() - 1);
        let (x1, y1) = points[after];
        let (x0, y0) = points[after.saturating_sub(1)];
        if x1 <= x0 { y1 } else { y0 + (y1 - y0) * (t - x0) / (x1 - x0) }
    }

    /// The end of a chunk from `cursor` holding about `target` users: within
    /// the estimate's range, or `None` past it.
    fn end_for(&self, cursor: i64, target: u64) -> Option<i64> {
        if cursor > self.hi {
            return None;
        }
        let goal = self.below(cursor - 1) + target as f64;
        if self.below(self.hi) <= goal {
            return Some(self.hi);
        }
        // The smallest end whose count reaches the goal.
        let (mut low, mut high) = (cursor, self.hi);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.below(mid) >= goal { high = mid } else { low = mid + 1 }
        }
        Some(low)
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// Result of walking one chunk.
struct ChunkWalk {
    verified: bool,
    pages: u64,
    times: Vec<i64>,
    /// Distinct ids seen inside the chunk.
    seen: HashSet<i64>,
    /// `meta.total`, when it was the same on the first and last page.
    stable_total: Option<u64>,
}

/// The union of the walks of one crowded second (see the module docs).
#[derive(Default)]
struct SecondUnion {
    ids: HashSet<i64>,
    total: Option<u64>,
    /// Walks in a row that added nothing.
    stalled: u32,
    /// Share of the second each walk saw, summed, and the walks counted.
    seen_share: f64,
    walks: u32,
}

impl SecondUnion {
    /// Adds a walk; true when the union now holds every member.
    fn add(&mut self, walk: &ChunkWalk) -> bool {
        let before = self.ids.len();
        match walk.stable_total {
            Some(total) if self.total == Some(total) => self.ids.extend(walk.seen.iter().copied()),
            // The membership changed (or changed during this walk): only
            // walks under one unchanged total may be combined.
            total => {
                self.ids.clone_from(&walk.seen);
                self.total = total;
            }
        }
        if let Some(total) = walk.stable_total.filter(|t| *t > 0) {
            self.seen_share += (walk.seen.len() as f64 / total as f64).min(1.0);
            self.walks += 1;
        }
        self.stalled = if self.ids.len() > before { 0 } else { self.stalled + 1 };
        self.total == Some(self.ids.len() as u64)
    }

    /// Whether to stop re-walking and accept the second unverified. In an
    /// unstable order a walk of a crowded second sees only part of it (a
    /// share `s`), so a member still missing survives a walk with chance
    /// about `1 − s`: with four pages of 57 users that is a third, and four
    /// stalled walks in a row would still leave a 1 % chance that a member
    /// was never read. So the walks in a row that added nothing must bring
    /// that chance below one in a million — bounded, for a second that can
    /// never be completed (a member VOMO leaves out of every listing).
    fn give_up(&self) -> bool {
        let miss = if self.walks == 0 {
            0.5
        } else {
            (1.0 - self.seen_share / f64::from(self.walks)).clamp(0.0, 0.999)
        };
        let needed = if miss <= 0.0 {
            SINGLE_SECOND_TRIES
        } else {
            let walks = (SINGLE_SECOND_MISS.ln() / miss.ln()).ceil();
            // Bounded above, so the cast cannot truncate anything meaningful.
            (walks.min(f64::from(SINGLE_SECOND_MAX_TRIES)) as u32).max(SINGLE_SECOND_TRIES)
        };
        self.stalled >= needed
    }
}

impl Walker<'_> {
    /// Walks `window` oldest chunk first. After each verified chunk the sink
    /// flushes; with `advance`, the checkpoint moves to the chunk's end in
    /// the same transaction.
    pub async fn walk(
        &mut self,
        window: Window,
        sink: &mut Sink,
        advance: bool,
    ) -> Result<WalkSummary, SyncError> {
        let mut summary = WalkSummary::default();
        let mut cursor = window.from.timestamp();
        let last = window.to.timestamp();
        let mut estimate: Option<Estimate> = None;
        let mut second = SecondUnion::default();
        // After a probe that was too big or a walk that failed, the next
        // chunk ends strictly earlier, so the walk always progresses: in the
        // worst case down to one second, which is accepted after a few tries.
        let mut cap: Option<i64> = None;
        while cursor <= last {
            let end = estimate
                .as_ref()
                .and_then(|e| e.end_for(cursor, self.sizer.target(self.max_chunk)))
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
            if self.too_big(&first) && end > cursor {
                summary.probes_split += 1;
                cap = Some(end - 1);
                estimate = Some(Estimate::from_probe(chunk, &first));
                sink.push_unreadable(first.malformed);
                sink.push(first.users).await?;
                continue;
            }
            let walked = self.walk_chunk(chunk, &filter, first, sink).await?;
            self.sizer.observe(walked.pages, !walked.verified);
            let one_second = end == cursor;
            let complete = walked.verified || (one_second && second.add(&walked));
            let give_up = one_second && second.give_up();
            if complete || give_up {
                if !complete {
                    summary.unverified_accepted += 1;
                    summary.warnings.push(format!(
                        "the second {chunk} holds more users than a page and kept changing while read; accepted unverified (reconciliation will re-check it)"
                    ));
                }
                sink.flush(advance.then_some(chunk.to)).await?;
                summary.chunks += 1;
                cursor = end + 1;
                second = SecondUnion::default();
                cap = None;
            } else {
                summary.failed_walks += 1;
                cap = (end > cursor).then(|| end - 1);
                estimate = Some(Estimate::exact(chunk, walked.times));
                tracing::debug!(%chunk, edit_rate = self.sizer.edit_rate(), "walk not verified; planning smaller chunks");
            }
        }
        Ok(summary)
    }

    /// Whether a probe's chunk is split before it is walked: when it holds
    /// well over the target, unless walking it whole (its page 1 read
    /// already) is the cheaper bet.
    fn too_big(&self, probe: &UserPage) -> bool {
        probe.total > self.sizer.target(self.max_chunk) * TOO_BIG_FACTOR
            && !self.sizer.walk_whole(probe.total, self.max_chunk)
    }

    fn record_page(&self, page: &UserPage) {
        self.progress.pages.fetch_add(1, Ordering::Relaxed);
        self.progress.users.fetch_add((page.users.len() + page.malformed.len()) as u64, Ordering::Relaxed);
    }

    /// Reads pages 2.. of a chunk (page 1 is `first`) and checks the walk.
    async fn walk_chunk(
        &self,
        chunk: Window,
        filter: &UserFilter,
        first: UserPage,
        sink: &mut Sink,
    ) -> Result<ChunkWalk, SyncError> {
        let (total_first, last_page) = (first.total, first.last_page);
        let mut total_last = total_first;
        let mut seen = HashSet::with_capacity(usize::try_from(total_first).unwrap_or(0).min(1 << 20));
        let mut times = Vec::new();
        let within = |at: DateTime<Utc>| chunk.from <= at && at < chunk.to + Duration::seconds(1);
        let mut note = |page: &mut UserPage, sink: &mut Sink| {
            for user in page.users.iter().filter(|u| within(u.updated_at)) {
                seen.insert(user.id);
                times.push(user.updated_at.timestamp());
            }
            // An unreadable user VOMO listed is a member all the same (its
            // time, when readable, says where); it goes to the DLQ.
            for user in page.malformed.iter().filter(|u| u.updated_at.is_none_or(within)) {
                seen.insert(user.id);
                times.extend(user.updated_at.map(|at| at.timestamp()));
            }
            sink.push_unreadable(std::mem::take(&mut page.malformed));
        };
        let mut first = first;
        note(&mut first, sink);
        // One request in flight at a time — a revoked token costs exactly one
        // request — but the next page is fetched while this one is processed.
        let mut users = first.users;
        for n in 2..=last_page {
            let (page, pushed) = tokio::join!(self.fetcher.list(self.priority, filter, n), sink.push(users));
            pushed?;
            let mut page = page?;
            self.record_page(&page);
            total_last = page.total;
            note(&mut page, sink);
            users = page.users;
        }
        sink.push(users).await?;
        let stable_total = (total_first == total_last).then_some(total_first);
        let verified = stable_total == Some(seen.len() as u64);
        Ok(ChunkWalk { verified, pages: last_page, times, seen, stable_total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_with_the_edit_rate_and_grow_back() {
        let mut sizer = ChunkSizer::default();
        assert!(
            (150..=450).contains(&sizer.target(1500)),
            "the prior: middling chunks, got {}",
            sizer.target(1500)
        );
        for _ in 0..100 {
            sizer.observe(20, false);
        }
        assert_eq!(sizer.target(1500), 1500, "calm: the largest chunk");
        for _ in 0..20 {
            sizer.observe(10, false);
            sizer.observe(10, true);
        }
        let busy = sizer.target(1500);
        assert!((30..=150).contains(&busy), "an edit every ~18 reads: small chunks, got {busy}");
        for _ in 0..200 {
            sizer.observe(20, false);
        }
        assert!(sizer.target(1500) > busy * 3, "calm again: bigger chunks");
        assert_eq!(ChunkSizer { failures: 50.0, reads: 60.0 }.target(1500), 15, "mostly failing: one page");
    }

    #[test]
    fn a_crowded_second_read_in_part_is_walked_until_a_miss_is_unlikely() {
        let walk = |ids: &[i64], total: u64| ChunkWalk {
            verified: false,
            pages: 4,
            times: Vec::new(),
            seen: ids.iter().copied().collect(),
            stable_total: Some(total),
        };
        let mut second = SecondUnion::default();
        // Each walk sees 39 of 57 users (68 %), and the union stops growing.
        let seen: Vec<i64> = (0..39).collect();
        assert!(!second.add(&walk(&seen, 57)));
        for stalled in 1..=11 {
            second.add(&walk(&seen, 57));
            assert!(
                !second.give_up(),
                "after {stalled} stalled walks a member may still hide (0.32^{stalled})"
            );
        }
        second.add(&walk(&seen, 57));
        assert!(second.give_up(), "0.32^12 < 1e-6");
        // Walks that each see everything but one never-listed user stop at four.
        let mut hidden = SecondUnion::default();
        let all_but_one: Vec<i64> = (0..56).collect();
        for _ in 0..5 {
            hidden.add(&walk(&all_but_one, 57));
        }
        assert!(hidden.give_up());
    }

    #[test]
    fn exact_estimates_count_users() {
        let window = Window::new(at(1000), at(2000)).unwrap();
        let exact = Estimate::exact(window, (0..100).map(|i| 1000 + i * 10).collect());
        assert_eq!(exact.end_for(1000, 30), Some(1290), "30 users: up to the 30th time");
        assert_eq!(exact.end_for(1295, 10), Some(1390), "only the times ahead count");
        assert_eq!(exact.end_for(1000, 500), Some(2000), "more than known: the estimate's end");
        assert_eq!(exact.end_for(2001, 10), None, "past the estimate");
    }

    #[test]
    fn a_page_in_time_order_holds_the_oldest_users_not_a_spread() {
        // 1000 users, one a second over [0, 999]; page 1 in `updated_at`
        // order holds seconds 0..14.
        let oldest = Estimate {
            lo: 0,
            hi: 999,
            times: (0..15).collect(),
            total: 1000.0,
            exact: false,
            sample: Sample::Oldest,
        };
        let end = oldest.end_for(0, 100).unwrap();
        assert!((90..=110).contains(&end), "100 users end near second 100, got {end}");
        let spread = Estimate { sample: Sample::Spread, ..oldest.clone() };
        assert!(spread.end_for(0, 100).unwrap() < 15, "read as a spread, the chunk would be tiny");
        let newest = Estimate { times: (985..1000).collect(), sample: Sample::Newest, ..oldest };
        let end = newest.end_for(0, 100).unwrap();
        assert!((90..=110).contains(&end), "descending: the same, got {end}");
    }

    #[test]
    fn probe_estimates_interpolate_between_samples() {
        // 1000 users over [0, 999], sampled evenly: about one user per second.
        let probe = Estimate {
            lo: 0,
            hi: 999,
            times: (1..15).map(|i| i * 66).collect(),
            total: 1000.0,
            exact: false,
            sample: Sample::Spread,
        };
        let end = probe.end_for(0, 100).unwrap();
        assert!((90..=110).contains(&end), "{end}");
        // Further along, the same density: no shrinking chunks.
        let end = probe.end_for(500, 100).unwrap();
        assert!((590..=610).contains(&end), "{end}");
        assert_eq!(probe.end_for(950, 100), Some(999));
    }
}
