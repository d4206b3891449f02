//! A journey's touchpoints, in one allocation: fixed-size records from the front of the block, their id strings
//! from its back. Open touchpoints are where a worker's memory goes (a million of them, most journeys holding a
//! few), so the layout is chosen for size first; `journey` keeps them sorted and credits them.

use crate::intern::Sym;

/// A touchpoint as the engine keeps it: 40 bytes, its two ids in the owning list's id bytes.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TouchRec {
    pub time: i64,
    pub reward: f64,
    pub earned: i64, // running total (base minor units) while open; unused in a split's copy
    off: u32,
    tid_len: u16,
    ep_len: u16,
    pub campaign: Sym,
    pub channel: Sym,
}

impl TouchRec {
    /// Bytes of its touchpoint and episode ids.
    pub fn id_len(&self) -> usize {
        self.tid_len as usize + self.ep_len as usize
    }
}

// Every field is a plain number and there is no padding, so any 40 bytes are a valid TouchRec: the slots after
// the touches can hold id bytes (see `Touches`).
const SLOT: usize = std::mem::size_of::<TouchRec>();
const _: () = assert!(SLOT == 40 && std::mem::align_of::<TouchRec>() == 8);

/// Touches with their id strings in one allocation: the `n` records from the front of the block, the ids' bytes
/// from its back (each touch's id and episode together, `off` bytes from the end), free slots between. A million
/// open touchpoints live in these: one block a journey instead of two saves the second block's header and
/// rounding (a five-touch journey: 320 bytes instead of 224 + 128), and the list is 24 bytes (a boxed slice
/// whose length is the capacity) instead of 48. Ids at the back, not after the records, so that appending a
/// touch moves nothing (after the records, every append would move all the ids, which a long journey's copy
/// makes quadratic).
#[derive(Clone, Debug, Default)]
pub struct Touches {
    slots: Box<[TouchRec]>, // `n` touches, free slots, then the id bytes (the last `bytes` bytes)
    n: u32,
    bytes: u32, // id bytes in use
}

fn slots_for(bytes: usize) -> usize {
    bytes.div_ceil(SLOT)
}

impl Touches {
    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn items(&self) -> &[TouchRec] {
        &self.slots[..self.n as usize]
    }

    pub fn items_mut(&mut self) -> &mut [TouchRec] {
        &mut self.slots[..self.n as usize]
    }

    /// Slots the touches and their ids need.
    fn used(&self) -> usize {
        self.n as usize + slots_for(self.bytes as usize)
    }

    /// The block as bytes (records and ids).
    fn block(&self) -> &[u8] {
        // SAFETY: the slots are initialised `TouchRec`s: plain numbers, no padding; u8 has no alignment.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr().cast::<u8>(), self.slots.len() * SLOT) }
    }

    fn block_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `block`; any bytes written make valid `TouchRec`s.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<u8>(), self.slots.len() * SLOT) }
    }

    /// Make the block `cap` slots long (at least those in use), the ids moved to its new end; through a Vec so
    /// the allocator can grow or shrink it in place (a new block and a copy each time leaves more memory behind
    /// an open touchpoint).
    fn resize_to(&mut self, cap: usize) {
        debug_assert!(cap >= self.used());
        let (old_len, new_len, bytes) = (self.slots.len() * SLOT, cap * SLOT, self.bytes as usize);
        let growing = new_len > old_len;
        if !growing {
            // the ids go to the new end before the slots past it do
            self.block_mut().copy_within(old_len - bytes..old_len, new_len - bytes);
        }
        let mut v = std::mem::take(&mut self.slots).into_vec();
        if growing {
            v.reserve_exact(cap - v.len());
            v.resize(cap, TouchRec::default());
        } else {
            v.truncate(cap);
            v.shrink_to_fit();
        }
        self.slots = v.into_boxed_slice(); // length == capacity: no second move
        if growing {
            self.block_mut().copy_within(old_len - bytes..old_len, new_len - bytes);
        }
    }

    /// Append a touch's ids to the others (its record's `off`), with room for the record the caller inserts
    /// next. The block grows exactly while it is small (most journeys hold a few touches, and a million of them
    /// is where memory goes), by a quarter beyond `exact_up_to` slots so that long journeys stay linear.
    fn append_ids(&mut self, tid: &[u8], episode: &[u8], exact_up_to: usize) -> u32 {
        let add = tid.len() + episode.len();
        let need = self.n as usize + 1 + slots_for(self.bytes as usize + add);
        if need > self.slots.len() {
            self.resize_to(if need <= exact_up_to { need } else { need + need / 4 });
        }
        let off = self.bytes;
        let end = self.slots.len() * SLOT - off as usize;
        let block = self.block_mut();
        block[end - add..end - episode.len()].copy_from_slice(tid);
        block[end - episode.len()..end].copy_from_slice(episode);
        self.bytes += add as u32;
        off
    }

    /// Touch `i`'s id and episode bytes, together.
    fn ids(&self, i: usize) -> (&[u8], &[u8]) {
        let t = &self.slots[i];
        let end = self.slots.len() * SLOT - t.off as usize;
        let start = end - t.id_len();
        self.block()[start..end].split_at(t.tid_len as usize)
    }

    pub(crate) fn tid_bytes(&self, i: usize) -> &[u8] {
        self.ids(i).0
    }

    pub fn tid(&self, i: usize) -> &str {
        // SAFETY: the id bytes are copied whole from `&str`s (see `record` and `push_copy`), and every slice
        // taken here is one of those strings, so it is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(self.tid_bytes(i)) }
    }

    pub fn episode(&self, i: usize) -> &str {
        // SAFETY: as in `tid`.
        unsafe { std::str::from_utf8_unchecked(self.ids(i).1) }
    }

    pub fn contains_tid(&self, tid: &str) -> bool {
        (0..self.len()).any(|i| self.tid_bytes(i) == tid.as_bytes())
    }

    fn record(&mut self, time: i64, reward: f64, earned: i64, tid: &str, episode: &str, campaign: Sym,
              channel: Sym) -> TouchRec {
        let off = self.append_ids(tid.as_bytes(), episode.as_bytes(), 16);
        TouchRec { time, reward, earned, off, tid_len: tid.len() as u16, ep_len: episode.len() as u16, campaign,
                   channel }
    }

    /// Put a record at `at` (room made by `append_ids`): only the records after it move.
    fn insert_rec(&mut self, at: usize, rec: TouchRec) {
        let n = self.len();
        debug_assert!(at <= n && (n + 1) * SLOT + self.bytes as usize <= self.slots.len() * SLOT);
        self.slots.copy_within(at..n, at + 1);
        self.slots[at] = rec;
        self.n += 1;
    }

    /// Append a new touch (ids given).
    pub fn push_new(&mut self, time: i64, reward: f64, earned: i64, tid: &str, episode: &str, campaign: Sym,
                    channel: Sym) {
        let rec = self.record(time, reward, earned, tid, episode, campaign, channel);
        self.insert_rec(self.len(), rec);
    }

    pub fn insert_new(&mut self, at: usize, time: i64, reward: f64, tid: &str, episode: &str, campaign: Sym,
                      channel: Sym) {
        let rec = self.record(time, reward, 0, tid, episode, campaign, channel);
        self.insert_rec(at, rec);
    }

    /// Append a copy of `other`'s touch `i`.
    pub fn push_copy(&mut self, other: &Touches, i: usize) {
        let mut t = other.slots[i];
        let (tid, episode) = other.ids(i);
        t.off = self.append_ids(tid, episode, usize::MAX);
        t.earned = 0;
        self.insert_rec(self.len(), t);
    }

    /// Room for `touches` touches with `bytes` of ids, exactly (a split's copy is made once and kept).
    pub fn with_capacity(touches: usize, bytes: usize) -> Touches {
        let slots = vec![TouchRec::default(); touches + slots_for(bytes)].into_boxed_slice();
        Touches { slots, n: 0, bytes: 0 }
    }

    pub fn arena_len(&self) -> usize {
        self.bytes as usize
    }

    /// Position where a touch (time, tid) goes so the list stays sorted by (time, touchpoint id), after equals.
    pub fn bisect(&self, time: i64, tid: &str) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let t = &self.slots[mid];
            if (time, tid) < (t.time, self.tid(mid)) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// Drop the first `k` touches, compacting the ids once most of their bytes are unused.
    pub fn drain_front(&mut self, k: usize) {
        debug_assert!(k <= self.len());
        if k == self.len() {
            // none left: the block goes (a journey waits out its refund retention with its conversions only)
            *self = Touches::default();
            return;
        }
        let n = self.len();
        self.slots.copy_within(k..n, 0);
        self.n -= k as u32;
        if self.bytes <= 64 {
            return;
        }
        let live: usize = self.items().iter().map(TouchRec::id_len).sum();
        if self.bytes as usize > 2 * live {
            let mut fresh = Touches::with_capacity(self.len(), live);
            for i in 0..self.len() {
                fresh.push_copy(self, i);
                fresh.slots[i].earned = self.slots[i].earned; // push_copy makes a split's copy: earned 0
            }
            *self = fresh;
        }
    }

    /// Give back spare slots once it is worth a move (more than a quarter unused).
    pub fn shrink(&mut self) {
        let used = self.used();
        if self.slots.len() > used + used / 4 + 1 {
            self.resize_to(used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_list_is_small_and_one_exact_block() {
        assert_eq!(std::mem::size_of::<Touches>(), 24);
        let mut t = Touches::default();
        for k in 0..5 {
            t.push_new(k, 0.5, 0, &format!("tp-0000123-{k}"), "ep-0000123", 1, 2);
        }
        // five records and 110 id bytes in three slots: 320 bytes, nothing spare
        assert_eq!((t.slots.len(), t.used()), (8, 8));
        t.insert_new(2, 1, 0.25, "tp-late", "ep-other", 3, 4);
        let ids: Vec<(&str, &str)> = (0..t.len()).map(|i| (t.tid(i), t.episode(i))).collect();
        assert_eq!(ids[2], ("tp-late", "ep-other"));
        assert_eq!(ids[5], ("tp-0000123-4", "ep-0000123"));
        t.drain_front(3);
        assert_eq!((t.len(), t.tid(0), t.items()[0].time), (3, "tp-0000123-2", 2));
        t.shrink();
        assert!(t.slots.len() <= t.used() + t.used() / 4 + 1);
        assert_eq!((t.tid(2), t.episode(2)), ("tp-0000123-4", "ep-0000123"));
        t.drain_front(3);
        assert!(t.is_empty() && t.slots.is_empty() && t.arena_len() == 0);
    }

    #[test]
    fn a_long_list_keeps_its_ids_through_growth_and_compaction() {
        let mut t = Touches::default();
        for k in 0..1000 {
            t.push_new(k, k as f64, k, &format!("t{k}"), &format!("e{}", k % 7), 0, 0);
        }
        let copy = {
            let mut c = Touches::with_capacity(t.len(), t.arena_len());
            (0..t.len()).for_each(|i| c.push_copy(&t, i));
            c
        };
        assert_eq!(copy.slots.len(), copy.used()); // the copy is exact
        t.drain_front(900); // most ids now dead: compacted, running totals kept
        assert_eq!((t.len(), t.tid(0), t.episode(0), t.items()[0].earned), (100, "t900", "e4", 900));
        assert!(t.arena_len() < 1000);
        for i in 0..1000 {
            assert_eq!((copy.tid(i), copy.episode(i)), (format!("t{i}").as_str(), format!("e{}", i % 7).as_str()));
        }
    }
}
