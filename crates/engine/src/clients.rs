//! The client index: client key → where its binding lives, in lock shards of its own.
//!
//! Lock order, everywhere in the engine: a client-index shard first, then at most one pool
//! shard. Holding the client's entry while allocating is what keeps two workers that see the
//! same client at once (a retransmission landing on two queues) from giving it two addresses.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
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
/// replays exactly. The map below uses the hash as is instead of hashing the key again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashedKey {
    pub(crate) hash: u64,
    pub(crate) key: ClientKey,
}

impl Hash for HashedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes a precomputed hash through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashedKey`; fold anything else rather than lose it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
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

pub(crate) type ClientMap = HashMap<HashedKey, Loc, BuildHasherDefault<PassThrough>>;

/// Fills `map` with `entries` placeholders and empties it again, so that the pages of its table
/// are written once here. A map's table is allocated untouched: otherwise each of its pages
/// faults on the packet path the first time a new client lands in it (17 000 faults in the
/// worker for 375 000 new clients on the bench's pools), a stall each, during a flood of new
/// clients most of all. `entries` is within the map's capacity, so nothing is reallocated.
fn prefault(map: &mut ClientMap, entries: usize) {
    let Some(key) = ClientKey::from_raw(0, &[]) else {
        return;
    };
    let loc = Loc::new(ScopeId(0), 0, SlotRef { shard: 0, slot: 0 });
    for i in 0..entries as u64 {
        // Spread over the table as keyed hashes are (a multiplicative hash of the count).
        let hash = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        map.insert(HashedKey { hash, key }, loc);
    }
    map.clear();
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
                .map(|_| {
                    let mut map =
                        HashMap::with_capacity_and_hasher(per_shard, BuildHasherDefault::default());
                    prefault(&mut map, per_shard);
                    CachePadded::new(Mutex::new(map))
                })
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

    /// The shard of a key: bits 32 and up of its hash, apart from the low bits that pick a
    /// bucket and the top bits that tag it inside the shard's map.
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
            if held_map.get(other) == Some(&loc) {
                held_map.remove(other);
            }
            return;
        }
        let mut map = match self.shards[i].try_lock() {
            Ok(m) => m,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if map.get(other) == Some(&loc) {
            map.remove(other);
        }
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
                mine.retain(|_, loc| keep(loc));
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
        assert_eq!(
            index.len(),
            0,
            "the placeholders that fault the tables in are gone"
        );
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
}
