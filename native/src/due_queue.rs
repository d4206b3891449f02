//! The expiry schedule's priority queue: (deadline, user id) entries taken smallest first.
//!
//! Deadlines are an event's time plus a fixed window or retention, and events come nearly in time order, so
//! entries often arrive in order within a family (touchpoints' windows, conversions' retentions). Such an entry
//! is appended to a sorted lane, and taking the smallest compares the lanes' fronts: sequential memory and a
//! handful of comparisons, where a large binary heap sifts each pop through many levels of cold cache lines.
//! Entries that fit no lane go to a binary heap beside the lanes, so any order is still taken exactly smallest
//! first.
//!
//! How much goes to the lanes depends on the journeys. Short ones in time order: nearly all, and that is where
//! the lanes pay. Long ones: a journey's next deadline is scheduled when its previous touch expires, in no
//! particular order, so most entries go to the heap and the lanes cost a little.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use crate::user_key::UserKey;

/// A queue entry: ordered by (deadline, user id) like the Python schedule's tuples, with the id's first eight
/// bytes compared as one integer first, so ties rarely reach a full string comparison.
#[derive(PartialEq, Eq)]
pub struct Due {
    pub deadline: i64,
    prefix: u64,
    pub user: UserKey,
}

impl Due {
    pub fn new(deadline: i64, user: UserKey) -> Due {
        let mut b = [0u8; 8];
        let n = user.len().min(8);
        b[..n].copy_from_slice(&user.as_bytes()[..n]);
        Due { deadline, prefix: u64::from_be_bytes(b), user }
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.deadline.cmp(&other.deadline).then(self.prefix.cmp(&other.prefix)).then_with(|| self.user.cmp(&other.user))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sorted lanes: enough for the two families of deadlines and some slack; each push looks at every lane's back.
const LANES: usize = 4;

/// How far past a lane's last entry an entry may be appended to it.
const LANE_GAP_MS: i64 = 3_600_000;

#[derive(Default)]
pub struct DueQueue {
    lanes: [VecDeque<Due>; LANES], // each ascending
    heap: BinaryHeap<Reverse<Due>>, // the rest
}

/// Where the smallest entry is.
#[derive(Clone, Copy)]
enum At {
    Lane(usize),
    Heap,
}

impl DueQueue {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum::<usize>() + self.heap.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Into the lane whose last entry is the greatest not above it (the tightest fit keeps the lanes' ranges
    /// apart) if it is within `LANE_GAP_MS` of that entry, else an empty lane, else the heap.
    pub fn push(&mut self, due: Due) {
        let mut fit: Option<usize> = None;
        let mut empty: Option<usize> = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            match lane.back() {
                None => {
                    empty.get_or_insert(i);
                }
                Some(back) if *back <= due => {
                    if fit.is_none_or(|f| self.lanes[f].back().is_some_and(|b| back > b)) {
                        fit = Some(i);
                    }
                }
                Some(_) => {}
            }
        }
        // a far one (a retention after a lane of windows) would shut the lane to the family it was following
        let close = fit.filter(|&f| self.lanes[f].back().is_some_and(|b| due.deadline - b.deadline <= LANE_GAP_MS));
        match close.or(empty) {
            Some(i) => self.lanes[i].push_back(due),
            None => self.heap.push(Reverse(due)),
        }
    }

    fn smallest(&self) -> Option<(At, &Due)> {
        let mut best: Option<(At, &Due)> = self.heap.peek().map(|Reverse(d)| (At::Heap, d));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.front() {
                if best.is_none_or(|(_, b)| front < b) {
                    best = Some((At::Lane(i), front));
                }
            }
        }
        best
    }

    pub fn peek(&self) -> Option<&Due> {
        self.smallest().map(|(_, d)| d)
    }

    pub fn pop(&mut self) -> Option<Due> {
        let (at, _) = self.smallest()?;
        match at {
            At::Lane(i) => self.lanes[i].pop_front(),
            At::Heap => self.heap.pop().map(|Reverse(d)| d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dev-dependency for one test).
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn takes_entries_smallest_first_whatever_order_they_come_in() {
        let mut seed = 7u64;
        for round in 0..50 {
            let mut q = DueQueue::default();
            let mut reference: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
            let users: Vec<String> = (0..40).map(|u| format!("user-{:03}", u * 7 % 40)).collect();
            let mut clock = 0i64;
            for step in 0..2000 {
                // mostly in order in two families, some out of order, many ties, pops interleaved
                let r = next(&mut seed);
                clock += (r % 3) as i64;
                let deadline = match r % 10 {
                    0..=3 => clock + 100,
                    4..=7 => clock + 1000,
                    _ => clock + (next(&mut seed) % 2000) as i64 - 500,
                };
                let user = &users[(next(&mut seed) % 40) as usize];
                q.push(Due::new(deadline, user.as_str().into()));
                reference.push(Reverse(Due::new(deadline, user.as_str().into())));
                if (step + round) % 3 == 0 {
                    let (a, b) = (q.pop().unwrap(), reference.pop().unwrap().0);
                    assert_eq!((a.deadline, &*a.user), (b.deadline, &*b.user));
                }
                assert_eq!(q.len(), reference.len());
            }
            while let Some(Reverse(b)) = reference.pop() {
                let a = q.pop().unwrap();
                assert_eq!((a.deadline, &*a.user), (b.deadline, &*b.user));
            }
            assert!(q.pop().is_none() && q.is_empty());
        }
    }
}
