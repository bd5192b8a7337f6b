//! Sequence accounting: what a receiver saw of one sender's (or one room's) numbered stream.

use std::collections::BTreeSet;

/// Holes remembered individually; beyond this a hole is only counted (a late arrival into
/// it is then indistinguishable from a duplicate and counted as one).
const MAX_TRACKED_HOLES: usize = 100_000;

/// How one observed sequence number relates to what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next expected one.
    InOrder,
    /// Ahead of the next expected one: this many were skipped (so far missing).
    Gap(u64),
    /// Fills an earlier hole (reordered).
    Late,
    /// Already seen.
    Duplicate,
}

/// Tracks one numbered stream: gaps, late (reordered) arrivals and duplicates.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    next: u64,
    holes: BTreeSet<u64>,
    untracked_holes: u64,
    /// Distinct numbers received.
    pub unique: u64,
    /// Numbers received again.
    pub duplicates: u64,
    /// Numbers that arrived after a later one.
    pub late: u64,
}

impl SeqTracker {
    /// A tracker expecting `first` next.
    pub fn new(first: u64) -> SeqTracker {
        SeqTracker {
            next: first,
            holes: BTreeSet::new(),
            untracked_holes: 0,
            unique: 0,
            duplicates: 0,
            late: 0,
        }
    }

    /// The next number expected in order (one past the highest seen).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The highest number up to which everything was seen: where a client resumes (a sync
    /// from the highest number seen would skip the holes below it). Assumes the stream
    /// started at the tracker's first number.
    pub fn contiguous(&self) -> u64 {
        self.holes
            .first()
            .copied()
            .unwrap_or(self.next)
            .saturating_sub(1)
    }

    /// Records `seq`.
    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq == self.next {
            self.next += 1;
            self.unique += 1;
            return Seen::InOrder;
        }
        if seq > self.next {
            let skipped = seq - self.next;
            let room = MAX_TRACKED_HOLES.saturating_sub(self.holes.len()) as u64;
            let tracked = skipped.min(room);
            self.holes.extend(self.next..self.next + tracked);
            self.untracked_holes += skipped - tracked;
            self.next = seq + 1;
            self.unique += 1;
            return Seen::Gap(skipped);
        }
        if self.holes.remove(&seq) {
            self.unique += 1;
            self.late += 1;
            Seen::Late
        } else {
            self.duplicates += 1;
            Seen::Duplicate
        }
    }

    /// Numbers below `next()` never received.
    pub fn missing(&self) -> u64 {
        self.holes.len() as u64 + self.untracked_holes
    }

    /// Numbers never received among everything up to and including `last`.
    pub fn missing_up_to(&self, last: u64) -> u64 {
        let below = self.holes.range(..=last).count() as u64 + self.untracked_holes;
        below + (last + 1).saturating_sub(self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_order_gap_late_and_duplicate() {
        let mut t = SeqTracker::new(1);
        assert_eq!(t.observe(1), Seen::InOrder);
        assert_eq!(t.observe(2), Seen::InOrder);
        assert_eq!(t.observe(5), Seen::Gap(2));
        assert_eq!(t.missing(), 2);
        assert_eq!(t.observe(3), Seen::Late);
        assert_eq!(t.observe(3), Seen::Duplicate);
        assert_eq!(t.observe(5), Seen::Duplicate);
        assert_eq!(t.observe(1), Seen::Duplicate);
        assert_eq!((t.unique, t.duplicates, t.late, t.missing()), (4, 3, 1, 1));
        assert_eq!(t.next(), 6);
        assert_eq!(
            t.missing_up_to(8),
            4,
            "hole 4 plus 6, 7, 8 not yet received"
        );
        assert_eq!(t.missing_up_to(3), 0);
        assert_eq!(t.contiguous(), 3, "4 is still missing");
        assert_eq!(t.observe(4), Seen::Late);
        assert_eq!(t.contiguous(), 5);
    }

    #[test]
    fn huge_gap_is_counted_without_tracking_every_hole() {
        let mut t = SeqTracker::new(0);
        assert_eq!(t.observe(1_000_000), Seen::Gap(1_000_000));
        assert_eq!(t.missing(), 1_000_000);
        assert_eq!(t.observe(5), Seen::Late);
        assert_eq!(t.missing(), 999_999);
        assert_eq!(t.unique, 2);
    }

    #[test]
    fn a_stream_resumed_after_a_sync_has_no_gaps() {
        // Live 1..=3, then the sync reply 4..=8 and a live copy of 8 (the client dedups it).
        let mut t = SeqTracker::new(1);
        for s in (1..=3).chain(4..=8) {
            t.observe(s);
        }
        assert_eq!(t.observe(8), Seen::Duplicate);
        assert_eq!(t.missing_up_to(8), 0);
        assert_eq!(t.duplicates, 1);
    }
}
