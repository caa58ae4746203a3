//! The client index: client key → where its binding lives, in lock shards of its own.
//!
//! Lock order, everywhere in the engine: a client-index shard first, then at most one pool
//! shard. Holding the client's entry while allocating is what keeps two workers that see the
//! same client at once (a retransmission landing on two queues) from giving it two addresses.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, TryLockError};

use crossbeam_utils::CachePadded;

use crate::binding::ScopeId;
use crate::key::ClientKey;
use crate::pool::SlotRef;

/// Where a client's binding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) scope: ScopeId,
    pub(crate) pool: u16,
    pub(crate) at: SlotRef,
}

pub(crate) type ClientMap = HashMap<ClientKey, Loc, RandomState>;

#[derive(Debug)]
pub(crate) struct ClientIndex {
    shards: Box<[CachePadded<Mutex<ClientMap>>]>,
    seed: RandomState,
}

impl ClientIndex {
    /// `shards` is rounded up to a power of two; each map reserves room for `per_shard`
    /// entries so that steady-state allocation never grows (and reallocates) it.
    pub(crate) fn new(shards: u32, per_shard: usize) -> ClientIndex {
        let n = shards.max(1).next_power_of_two();
        ClientIndex {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Mutex::new(HashMap::with_capacity_and_hasher(
                        per_shard,
                        RandomState::new(),
                    )))
                })
                .collect(),
            seed: RandomState::new(),
        }
    }

    pub(crate) fn shard_of(&self, key: &ClientKey) -> usize {
        (self.seed.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    /// A hash of the key, for spreading clients over pool shards.
    pub(crate) fn spread(&self, key: &ClientKey) -> u64 {
        self.seed.hash_one(key).rotate_left(32)
    }

    pub(crate) fn lock(&self, key: &ClientKey) -> (usize, MutexGuard<'_, ClientMap>) {
        let i = self.shard_of(key);
        (
            i,
            self.shards[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Drops `other`'s entry if it still points at `loc`, while the caller holds shard `held`
    /// (as `held_map`) and a pool shard. Another client shard is only tried, never waited for,
    /// so the lock order cannot invert; if it is busy the entry stays, and a later lookup finds
    /// the binding no longer owned by that client and drops it then.
    pub(crate) fn forget(
        &self,
        other: &ClientKey,
        loc: Loc,
        held: usize,
        held_map: &mut ClientMap,
    ) {
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
