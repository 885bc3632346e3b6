//! The cold region's replacement policy: CLOCK over fixed-size slots.
//!
//! Keys are dense integers (a neuron's `layer · n_ff + rank`), so the key → slot index is a flat
//! table, not a hash map: a lookup is one load, and nothing is allocated after construction.
//! A slot used in the current *epoch* (the engine advances it once per layer step) is protected:
//! the active set being computed, and the next layer's prefetched records, are never evicted under
//! the compute that needs them. Evicted entries are dropped, never written back (weights are
//! read-only). CLOCK rather than exact LRU: one reference bit per slot instead of a list to
//! relink on every hit, and the same second-chance behaviour for a working set that cycles.

/// No key / no slot.
const EMPTY: u32 = u32::MAX;

/// Fixed slots with CLOCK replacement and per-epoch protection.
pub struct ClockCache {
    /// Slot → key held, or EMPTY.
    keys: Vec<u32>,
    refbit: Vec<bool>,
    /// Slot → epoch it was last used in.
    used: Vec<u32>,
    /// Key → slot, or EMPTY.
    index: Vec<u32>,
    hand: usize,
    epoch: u32,
}

/// What [`ClockCache::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub slot: usize,
    /// The key that slot held before, if any.
    pub evicted: Option<u32>,
}

impl ClockCache {
    /// `slots` slots for keys below `n_keys`.
    pub fn new(slots: usize, n_keys: usize) -> Self {
        ClockCache {
            keys: vec![EMPTY; slots],
            refbit: vec![false; slots],
            used: vec![0; slots],
            index: vec![EMPTY; n_keys],
            hand: 0,
            epoch: 1,
        }
    }

    pub fn slots(&self) -> usize {
        self.keys.len()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.iter().filter(|&&k| k != EMPTY).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a new epoch: what the last one protected may be evicted again.
    pub fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1).max(1);
    }

    /// The slot holding `key`, marking it referenced and protected for this epoch.
    pub fn lookup(&mut self, key: u32) -> Option<usize> {
        let s = *self.index.get(key as usize)?;
        if s == EMPTY {
            return None;
        }
        let s = s as usize;
        self.refbit[s] = true;
        self.used[s] = self.epoch;
        Some(s)
    }

    /// Whether `key` is held (no side effects).
    pub fn contains(&self, key: u32) -> bool {
        self.index.get(key as usize).is_some_and(|&s| s != EMPTY)
    }

    /// Gives `key` a slot, evicting by CLOCK: the hand skips slots protected this epoch and slots
    /// `busy` says may not be reused now (a read still landing), and gives referenced slots a
    /// second chance. `None` when every slot is protected or busy. The key must not be held.
    pub fn insert(&mut self, key: u32, busy: &dyn Fn(usize) -> bool) -> Option<Inserted> {
        debug_assert!(!self.contains(key));
        let n = self.keys.len();
        // Two sweeps clear every reference bit once; a third finds a victim if any exists.
        for _ in 0..3 * n {
            let s = self.hand;
            self.hand = (self.hand + 1) % n;
            if self.used[s] == self.epoch || busy(s) {
                continue;
            }
            if self.refbit[s] {
                self.refbit[s] = false;
                continue;
            }
            let old = self.keys[s];
            if old != EMPTY {
                self.index[old as usize] = EMPTY;
            }
            self.keys[s] = key;
            self.index[key as usize] = s as u32;
            self.refbit[s] = false;
            self.used[s] = self.epoch;
            return Some(Inserted {
                slot: s,
                evicted: (old != EMPTY).then_some(old),
            });
        }
        None
    }

    /// Forgets a key (its data turned out bad, e.g. a failed read).
    pub fn remove(&mut self, key: u32) {
        if let Some(&s) = self.index.get(key as usize) {
            if s != EMPTY {
                self.keys[s as usize] = EMPTY;
                self.refbit[s as usize] = false;
                self.index[key as usize] = EMPTY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREE: &dyn Fn(usize) -> bool = &|_| false;

    #[test]
    fn hits_after_insert_and_eviction_frees_the_index() {
        let mut c = ClockCache::new(2, 10);
        let a = c.insert(3, FREE).unwrap();
        assert_eq!(a.evicted, None);
        assert_eq!(c.lookup(3), Some(a.slot));
        assert_eq!(c.lookup(4), None);
        c.insert(4, FREE).unwrap();
        c.next_epoch();
        // Both referenced: the sweep clears bits, then evicts the first slot it meets again.
        let e = c.insert(5, FREE).unwrap();
        assert!(e.evicted == Some(3) || e.evicted == Some(4));
        assert!(!c.contains(e.evicted.unwrap()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn keys_used_this_epoch_are_never_evicted() {
        let mut c = ClockCache::new(3, 100);
        for k in 0..3 {
            c.insert(k, FREE).unwrap();
        }
        // Same epoch: everything is protected, nothing can be evicted.
        assert_eq!(c.insert(50, FREE), None);
        c.next_epoch();
        c.lookup(1);
        for k in 10..20 {
            let r = c.insert(k, FREE).unwrap();
            assert_ne!(r.evicted, Some(1), "the key used this epoch was evicted");
            c.next_epoch();
            c.lookup(1);
        }
        assert!(c.contains(1));
    }

    #[test]
    fn second_chance_keeps_a_referenced_key_over_an_unreferenced_one() {
        let mut c = ClockCache::new(2, 10);
        c.insert(0, FREE).unwrap();
        c.insert(1, FREE).unwrap();
        c.next_epoch();
        // Clear both bits with one eviction round, then reference key 1 only.
        let first = c.insert(2, FREE).unwrap().evicted.unwrap();
        let survivor = 1 - first;
        c.next_epoch();
        c.lookup(survivor);
        c.next_epoch();
        let r = c.insert(3, FREE).unwrap();
        assert_eq!(r.evicted, Some(2), "the unreferenced key goes first");
        assert!(c.contains(survivor));
    }

    #[test]
    fn busy_slots_are_skipped() {
        let mut c = ClockCache::new(2, 10);
        let a = c.insert(0, FREE).unwrap().slot;
        c.insert(1, FREE).unwrap();
        c.next_epoch();
        let busy = move |s: usize| s == a;
        for _ in 0..4 {
            let r = c.insert(7, &busy);
            let r = r.unwrap();
            assert_ne!(r.slot, a);
            c.remove(7);
            c.next_epoch();
        }
        let all_busy = |_: usize| true;
        assert_eq!(c.insert(8, &all_busy), None);
    }

    #[test]
    fn a_cycle_larger_than_the_cache_still_hits_what_fits_under_protection() {
        // A scan of 6 keys through 4 slots, the last 2 re-used each step (pinned): they stay.
        let mut c = ClockCache::new(4, 100);
        let mut hits = 0;
        for step in 0..50u32 {
            c.next_epoch();
            for k in [90, 91] {
                if c.lookup(k).is_some() {
                    hits += 1;
                } else {
                    c.insert(k, FREE).unwrap();
                }
            }
            let k = step % 6;
            if c.lookup(k).is_none() {
                c.insert(k, FREE).unwrap();
            }
        }
        assert!(hits >= 96, "hot keys hit {hits} times of 100");
    }
}
