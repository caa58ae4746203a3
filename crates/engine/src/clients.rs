//! The client index: client key → where its binding lives, in lock shards of its own.
//!
//! Lock order, everywhere in the engine: a client-index shard first, then at most one pool
//! shard. Holding the client's entry while allocating is what keeps two workers that see the
//! same client at once (a retransmission landing on two queues) from giving it two addresses.

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, TryLockError};

use crossbeam_utils::CachePadded;

use crate::binding::ScopeId;
use crate::key::{ClientKey, KeySecret};
use crate::pool::SlotRef;

/// Where a client's binding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) scope: ScopeId,
    pub(crate) pool: u16,
    pub(crate) at: SlotRef,
}

/// A client key with its keyed hash, computed once per request.
///
/// The hash is SipHash under a key derived from the lease directory's secret: clients who do
/// not know it cannot aim at one bucket (HashDoS), and the same secret makes the same choices
/// (which shard a client locks, where its search for a free address starts), so a run
/// replays exactly. The map below places entries by the hash as is instead of hashing again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashedKey {
    pub(crate) hash: u64,
    pub(crate) key: ClientKey,
}

impl Loc {
    pub(crate) fn new(scope: ScopeId, pool: usize, at: SlotRef) -> Loc {
        // Pools per scope are bounded by the config; a scope never has 65 536 of them.
        Loc {
            scope,
            pool: pool as u16,
            at,
        }
    }
}

/// One entry of a [`ClientMap`], alone on its cache line: a lookup reads one line per probe
/// (the hash, the key and where the binding is together), where a general-purpose map reads
/// a line of control bytes and then an entry that two lines in seven straddle.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Bucket(Option<(HashedKey, Loc)>);

const _: () = assert!(size_of::<Bucket>() == 64);

/// One shard's client index: an open-addressing table of [`Bucket`]s with linear probing,
/// placed by the key's keyed hash, kept at most three quarters full. Removal shifts the rest
/// of a run back (no tombstones), so a lookup that misses stops at the first empty bucket
/// however long the server has run. The table is sized to what it must hold, not rounded up
/// to a power of two (which at 10 M clients took a third more memory): a hash is mapped onto
/// the buckets by a multiply and shift.
pub(crate) struct ClientMap {
    buckets: Box<[Bucket]>,
    len: usize,
}

impl std::fmt::Debug for ClientMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMap")
            .field("len", &self.len)
            .field("buckets", &self.buckets.len())
            .finish()
    }
}

impl ClientMap {
    /// A map that holds `entries` without growing. Its buckets are written here, so that
    /// their pages are faulted in now and not on the packet path the first time a new client
    /// lands in one (17 000 faults in the worker for 375 000 new clients on the bench's pools
    /// with a map allocated untouched): a stall each, during a flood of new clients most of all.
    pub(crate) fn with_capacity(entries: usize) -> ClientMap {
        let buckets = (entries.saturating_mul(4).div_ceil(3) + 1).max(8);
        ClientMap {
            buckets: vec![Bucket(None); buckets].into_boxed_slice(),
            len: 0,
        }
    }

    /// Entries it holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries it can hold before it grows.
    pub(crate) fn capacity(&self) -> usize {
        self.buckets.len() * 3 / 4
    }

    /// The bucket `hash` belongs in: its low 32 bits scaled onto the table (the bits above
    /// pick the shard and so are nearly the same for every key of one map).
    fn home(&self, hash: u64) -> usize {
        ((u64::from(hash as u32) * self.buckets.len() as u64) >> 32) as usize
    }

    /// The bucket after `i`, around the table.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        }
    }

    /// How many buckets on from `from` `to` is, around the table.
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.buckets.len() - from
        }
    }

    /// The bucket holding `key`, or the empty bucket that ends its run.
    fn find(&self, key: &HashedKey) -> (usize, bool) {
        let mut i = self.home(key.hash);
        // The map is never full (at most three quarters), so an empty bucket ends every run.
        loop {
            match &self.buckets[i].0 {
                None => return (i, false),
                Some((k, _)) if k.hash == key.hash && k.key == key.key => return (i, true),
                Some(_) => i = self.next(i),
            }
        }
    }

    /// Where `key`'s binding is, if it has an entry.
    pub(crate) fn get(&self, key: &HashedKey) -> Option<&Loc> {
        match self.find(key) {
            (i, true) => self.buckets[i].0.as_ref().map(|(_, loc)| loc),
            (_, false) => None,
        }
    }

    /// Sets `key`'s entry to `loc`; the entry it replaces, if any.
    pub(crate) fn insert(&mut self, key: HashedKey, loc: Loc) -> Option<Loc> {
        match self.find(&key) {
            (i, true) => self.buckets[i].0.replace((key, loc)).map(|(_, old)| old),
            (i, false) => {
                self.add(i, key, loc);
                None
            }
        }
    }

    /// Adds `key`'s entry unless it has one; the entry it keeps.
    pub(crate) fn insert_if_absent(&mut self, key: HashedKey, loc: Loc) -> Loc {
        match self.find(&key) {
            (i, true) => self.buckets[i].0.map_or(loc, |(_, kept)| kept),
            (i, false) => {
                self.add(i, key, loc);
                loc
            }
        }
    }

    /// Puts a new entry in the empty bucket `at` that ends its run, growing the map first if
    /// that would fill it past three quarters.
    fn add(&mut self, at: usize, key: HashedKey, loc: Loc) {
        let at = if self.len + 1 > self.capacity() {
            self.grow();
            self.find(&key).0
        } else {
            at
        };
        self.buckets[at].0 = Some((key, loc));
        self.len += 1;
    }

    /// Doubles the table. Sized for every address the engine's pools hold, a map grows only
    /// when its shard gets more than its share of clients.
    #[cold]
    fn grow(&mut self) {
        let doubled = vec![Bucket(None); self.buckets.len() * 2].into_boxed_slice();
        let old = std::mem::replace(&mut self.buckets, doubled);
        for (key, loc) in old.iter().filter_map(|b| b.0) {
            let (at, _) = self.find(&key);
            self.buckets[at].0 = Some((key, loc));
        }
    }

    /// Removes `key`'s entry; what it held.
    pub(crate) fn remove(&mut self, key: &HashedKey) -> Option<Loc> {
        match self.find(key) {
            (i, true) => self.remove_at(i),
            (_, false) => None,
        }
    }

    /// Removes `key`'s entry if it holds `loc`.
    pub(crate) fn remove_if_at(&mut self, key: &HashedKey, loc: Loc) {
        if let (i, true) = self.find(key)
            && self.buckets[i].0.is_some_and(|(_, l)| l == loc)
        {
            self.remove_at(i);
        }
    }

    /// Empties bucket `hole` and moves back each later entry of its run that may sit there
    /// (its home bucket is not cyclically between the hole and where it is), so that every
    /// entry stays reachable from its home bucket without passing an empty one.
    fn remove_at(&mut self, mut hole: usize) -> Option<Loc> {
        let removed = self.buckets[hole].0.take().map(|(_, loc)| loc);
        self.len -= 1;
        let mut i = self.next(hole);
        while let Some((key, _)) = self.buckets[i].0 {
            if self.distance(self.home(key.hash), i) >= self.distance(hole, i) {
                self.buckets[hole].0 = self.buckets[i].0.take();
                hole = i;
            }
            i = self.next(i);
        }
        removed
    }

    /// Keeps the entries `keep` accepts (asked once or more of each: it must not change its
    /// mind).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Loc) -> bool) {
        let mut i = 0;
        while i < self.buckets.len() {
            match self.buckets[i].0 {
                // A removal may move a later entry into `i`: look at `i` again. An entry moved
                // back across the end of the table comes from where the scan has been (it was
                // kept) and may be looked at a second time.
                Some((_, loc)) if !keep(&loc) => {
                    self.remove_at(i);
                }
                _ => i += 1,
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct ClientIndex {
    shards: Box<[CachePadded<Mutex<ClientMap>>]>,
    seed: KeySecret,
}

impl ClientIndex {
    /// `shards` is rounded up to a power of two; each map reserves room for `per_shard`
    /// entries so that steady-state allocation never grows (and reallocates) it. Keys are
    /// hashed under a key derived from `secret`.
    pub(crate) fn new(shards: u32, per_shard: usize, secret: &KeySecret) -> ClientIndex {
        let n = shards.max(1).next_power_of_two();
        ClientIndex {
            shards: (0..n)
                .map(|_| CachePadded::new(Mutex::new(ClientMap::with_capacity(per_shard))))
                .collect(),
            seed: secret.derive(b"client index"),
        }
    }

    pub(crate) fn hashed(&self, key: ClientKey) -> HashedKey {
        HashedKey {
            hash: self.seed.hash_one(key),
            key,
        }
    }

    /// The shard of a key: bits 32 and up of its hash, apart from the low bits that pick its
    /// bucket inside the shard's map.
    fn shard_of(&self, key: &HashedKey) -> usize {
        ((key.hash >> 32) as usize) & (self.shards.len() - 1)
    }

    /// Where to start looking for a free address, spreading clients over pool shards.
    pub(crate) fn spread(key: &HashedKey) -> u64 {
        key.hash >> 40
    }

    pub(crate) fn lock(&self, key: &HashedKey) -> (usize, MutexGuard<'_, ClientMap>) {
        let i = self.shard_of(key);
        let map = self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (i, map)
    }

    /// Drops `other`'s entry if it still points at `loc`, while the caller holds shard `held`
    /// (as `held_map`) and a pool shard. Another client shard is only tried, never waited for,
    /// so the lock order cannot invert; if it is busy the entry stays, and a later lookup finds
    /// the binding no longer owned by that client and drops it then.
    pub(crate) fn forget(&self, other: ClientKey, loc: Loc, held: usize, held_map: &mut ClientMap) {
        let other = &self.hashed(other);
        let i = self.shard_of(other);
        if i == held {
            held_map.remove_if_at(other, loc);
            return;
        }
        let mut map = match self.shards[i].try_lock() {
            Ok(m) => m,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        map.remove_if_at(other, loc);
    }

    /// Takes `other`'s entries (an index of the same shape, the same secret), keeping those
    /// `keep` accepts (`None`: all, without looking at them); `other` gets this index's.
    pub(crate) fn take_from(&self, other: &ClientIndex, keep: Option<&dyn Fn(&Loc) -> bool>) {
        fn lock(m: &Mutex<ClientMap>) -> MutexGuard<'_, ClientMap> {
            m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
        for (mine, theirs) in self.shards.iter().zip(other.shards.iter()) {
            let (mut mine, mut theirs) = (lock(mine), lock(theirs));
            std::mem::swap(&mut *mine, &mut *theirs);
            if let Some(keep) = keep {
                mine.retain(keep);
            }
        }
    }

    /// Total entries (for tests and the API; takes every lock in turn).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_index_is_empty_and_keeps_the_room_it_reserved() {
        let index = ClientIndex::new(4, 1000, &KeySecret([7; 16]));
        assert_eq!(index.len(), 0);
        for shard in &index.shards {
            assert!(shard.lock().unwrap().capacity() >= 1000);
        }
        let key = index.hashed(ClientKey::from_raw(1, b"client").unwrap());
        let loc = Loc::new(ScopeId(1), 0, SlotRef { shard: 0, slot: 5 });
        let (_, mut map) = index.lock(&key);
        assert_eq!(map.get(&key), None);
        map.insert(key, loc);
        assert_eq!(map.get(&key), Some(&loc));
    }

    fn key(id: u32, hash: u64) -> HashedKey {
        HashedKey {
            hash,
            key: ClientKey::from_raw(0, &id.to_be_bytes()).unwrap(),
        }
    }

    fn loc(n: u32) -> Loc {
        Loc::new(ScopeId(0), 0, SlotRef { shard: 0, slot: n })
    }

    /// Hashes whose homes are the last few buckets of any table (so runs wrap around its
    /// end), equal for ids a multiple of 7 apart.
    fn crowded(id: u32, round: u32) -> u64 {
        u64::from(u32::MAX - ((id % 7) << 26)) | (u64::from(round) << 32)
    }

    /// The map against std's under random operations on keys whose hashes crowd a few
    /// buckets (long runs, runs that wrap around the table's end, equal hashes of different
    /// keys), starting small enough to grow twice.
    #[test]
    fn the_map_agrees_with_a_model_under_crowded_hashes() {
        use std::collections::HashMap;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..10u32 {
            let mut map = ClientMap::with_capacity(20);
            let mut model: HashMap<u32, (HashedKey, Loc)> = HashMap::new();
            for step in 0..4000u32 {
                let id = (next() % 120) as u32;
                let k = key(id, crowded(id, round));
                let l = loc(step);
                match next() % 6 {
                    0 | 1 => {
                        let old = model.insert(id, (k, l)).map(|(_, o)| o);
                        assert_eq!(map.insert(k, l), old);
                    }
                    2 => {
                        let kept = model.entry(id).or_insert((k, l)).1;
                        assert_eq!(map.insert_if_absent(k, l), kept);
                    }
                    3 => assert_eq!(map.remove(&k), model.remove(&id).map(|(_, o)| o)),
                    4 => {
                        let at = model.get(&id).map(|&(_, o)| o).filter(|_| next() % 2 == 0);
                        let target = at.unwrap_or(l);
                        if at.is_some() {
                            model.remove(&id);
                        }
                        map.remove_if_at(&k, target);
                    }
                    _ if step % 500 == 0 => {
                        let odd = |l: &Loc| l.at.slot % 2 == 1;
                        model.retain(|_, (_, l)| odd(l));
                        map.retain(odd);
                    }
                    _ => {}
                }
                assert_eq!(map.len(), model.len());
                for probe in 0..120 {
                    let k = key(probe, crowded(probe, round));
                    assert_eq!(
                        map.get(&k),
                        model.get(&probe).map(|(_, l)| l),
                        "round {round} step {step}: client {probe}"
                    );
                }
            }
            assert!(map.len() <= map.capacity());
        }
    }
}
