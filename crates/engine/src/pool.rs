//! Address pools split into lock shards.
//!
//! A pool's addresses are dealt round-robin to its shards (offset `i` lives in shard `i % n`),
//! so consecutive addresses never share a lock. Each shard keeps, under its one mutex, the
//! bindings of its addresses, an intrusive FIFO list of the addresses that may be allocated
//! (two with a failover partner: the primary's FREE and the secondary's BACKUP addresses),
//! a timer heap, and per-state counts. Allocation pops the list head: O(1) however full the
//! pool is, and the address freed longest ago goes first, which gives returning clients the
//! best chance to find their old address still theirs (lease affinity).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use crossbeam_utils::CachePadded;

use crate::binding::{Binding, BindingState, Time};

const NIL: u32 = u32::MAX;
/// `next` value of a slot that is not on the free list.
const UNLINKED: u32 = u32::MAX - 1;
const STATES: usize = 10;

/// The bindings and free list of one shard.
#[derive(Debug)]
pub(crate) struct Shard {
    slots: Vec<Binding>,
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    tail: u32,
    /// The BACKUP list: available addresses a failover secondary owns.
    backup_head: u32,
    backup_tail: u32,
    timers: BinaryHeap<Reverse<(Time, u32)>>,
    timer_capacity: usize,
    counts: [u32; STATES],
}

/// An empty timer heap with room for `capacity` entries, whose pages are written once here. A
/// vector's room is allocated untouched: otherwise each page of it faults on the packet path the
/// first time a grant's timer lands in it (2 500 faults in the DPDK worker for 330 000 new
/// clients on the bench's pools). Renewals fill the room over a server's life anyway.
fn prefaulted_timers(capacity: usize) -> BinaryHeap<Reverse<(Time, u32)>> {
    let mut room = Vec::with_capacity(capacity);
    room.resize(capacity, Reverse((Time::MAX, u32::MAX)));
    room.clear();
    BinaryHeap::from(room)
}

impl Shard {
    fn new(len: usize) -> Shard {
        let timer_capacity = 2 * len + 16;
        let mut shard = Shard {
            slots: vec![Binding::FREE; len],
            next: vec![UNLINKED; len],
            prev: vec![NIL; len],
            head: NIL,
            tail: NIL,
            backup_head: NIL,
            backup_tail: NIL,
            timers: prefaulted_timers(timer_capacity),
            timer_capacity,
            counts: [0; STATES],
        };
        shard.counts[BindingState::Free as usize] = len as u32;
        for i in 0..len as u32 {
            shard.push_free(i);
        }
        shard
    }

    pub(crate) fn binding(&self, slot: u32) -> &Binding {
        &self.slots[slot as usize]
    }

    /// Number of slots (addresses) in the shard.
    pub(crate) fn slot_count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Replaces a slot's binding with `b` as its next version, keeping the per-state counts
    /// right, and returns what was stored. The free list is the caller's business
    /// ([`Self::push_free`], [`Self::unlink`]).
    pub(crate) fn set(&mut self, slot: u32, b: Binding) -> Binding {
        let version = self.slots[slot as usize].version.wrapping_add(1);
        self.put(slot, Binding { version, ..b })
    }

    /// Replaces a slot's binding with `b` exactly as given, version included (journal replay).
    pub(crate) fn put(&mut self, slot: u32, b: Binding) -> Binding {
        let old = &mut self.slots[slot as usize];
        self.counts[old.state as usize] -= 1;
        self.counts[b.state as usize] += 1;
        *old = b;
        b
    }

    /// Takes the available address freed longest ago (of the FREE list).
    pub(crate) fn pop_free(&mut self) -> Option<u32> {
        let slot = self.head;
        if slot == NIL {
            return None;
        }
        self.unlink(slot);
        Some(slot)
    }

    /// Takes the BACKUP address freed longest ago (a failover secondary's to allocate).
    pub(crate) fn pop_backup(&mut self) -> Option<u32> {
        let slot = self.backup_head;
        if slot == NIL {
            return None;
        }
        self.unlink(slot);
        Some(slot)
    }

    /// Appends `slot` to the list its state belongs to: BACKUP addresses to the BACKUP list,
    /// every other to the FREE list (no-op if already on one).
    pub(crate) fn push_free(&mut self, slot: u32) {
        let i = slot as usize;
        if self.next[i] != UNLINKED {
            return;
        }
        let backup = self.slots[i].state == BindingState::Backup;
        let (head, tail) = if backup {
            (&mut self.backup_head, &mut self.backup_tail)
        } else {
            (&mut self.head, &mut self.tail)
        };
        self.next[i] = NIL;
        self.prev[i] = *tail;
        if *tail == NIL {
            *head = slot;
        } else {
            self.next[*tail as usize] = slot;
        }
        *tail = slot;
    }

    /// Removes `slot` from whichever list holds it (no-op if none).
    pub(crate) fn unlink(&mut self, slot: u32) {
        let i = slot as usize;
        let (next, prev) = (self.next[i], self.prev[i]);
        if next == UNLINKED {
            return;
        }
        if prev == NIL {
            if self.head == slot {
                self.head = next;
            } else {
                self.backup_head = next;
            }
        } else {
            self.next[prev as usize] = next;
        }
        if next == NIL {
            if self.tail == slot {
                self.tail = prev;
            } else {
                self.backup_tail = prev;
            }
        } else {
            self.prev[next as usize] = prev;
        }
        self.next[i] = UNLINKED;
        self.prev[i] = NIL;
    }

    /// Arranges for [`Self::due`] to report `slot` at `at`.
    pub(crate) fn schedule(&mut self, slot: u32, at: Time) {
        if self.timers.len() == self.timer_capacity {
            // Renewals leave superseded entries behind; dropping them in place keeps the
            // heap within the capacity reserved up front, so it never reallocates.
            let slots = &self.slots;
            self.timers
                .retain(|Reverse((t, s))| is_timed(&slots[*s as usize], *t));
            if self.timers.len() == self.timer_capacity {
                return;
            }
        }
        self.timers.push(Reverse((at, slot)));
    }

    /// Pops the next slot whose timer is due at `now`, skipping superseded entries.
    pub(crate) fn due(&mut self, now: Time) -> Option<u32> {
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > now {
                return None;
            }
            self.timers.pop();
            if is_timed(&self.slots[slot as usize], at) {
                return Some(slot);
            }
        }
        None
    }

    /// Number of slots in `state`.
    pub(crate) fn count(&self, state: BindingState) -> u32 {
        self.counts[state as usize]
    }

    /// Number of addresses that may be allocated now.
    #[cfg(test)]
    pub(crate) fn free_len(&self) -> usize {
        let mut n = 0;
        let mut s = self.head;
        while s != NIL {
            n += 1;
            s = self.next[s as usize];
        }
        n
    }
}

/// Whether a timer entry for `at` still applies to `b`.
fn is_timed(b: &Binding, at: Time) -> bool {
    b.expires == at
        && matches!(
            b.state,
            BindingState::Offered
                | BindingState::Active
                | BindingState::Abandoned
                | BindingState::HeldBack
        )
}

/// The addresses of a pool: a range, or (for reservations outside every range) a sorted list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Addresses {
    Range { first: u32, len: u32 },
    List(Box<[u32]>),
}

impl Addresses {
    pub(crate) fn len(&self) -> u32 {
        match self {
            Addresses::Range { len, .. } => *len,
            Addresses::List(l) => l.len() as u32,
        }
    }

    fn offset_of(&self, a: u32) -> Option<u32> {
        match self {
            Addresses::Range { first, len } => a.checked_sub(*first).filter(|o| o < len),
            Addresses::List(l) => l.binary_search(&a).ok().map(|i| i as u32),
        }
    }

    fn at(&self, offset: u32) -> u32 {
        match self {
            Addresses::Range { first, .. } => first + offset,
            Addresses::List(l) => l[offset as usize],
        }
    }
}

/// Where an address lives: its shard and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotRef {
    pub(crate) shard: u32,
    pub(crate) slot: u32,
}

/// A pool: addresses, the classes allowed to use it, and its shards.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) addresses: Addresses,
    /// Class bits allowed to allocate here; 0 allows everyone.
    pub(crate) classes: u32,
    /// Whether addresses are handed out dynamically (false for the reserved-only list).
    pub(crate) dynamic: bool,
    shards: Box<[CachePadded<Mutex<Shard>>]>,
}

impl Pool {
    pub(crate) fn new(addresses: Addresses, classes: u32, dynamic: bool, shards: u32) -> Pool {
        let len = addresses.len();
        let n = shards.clamp(1, len.max(1));
        let shards = (0..n)
            .map(|k| CachePadded::new(Mutex::new(Shard::new(((len + n - 1 - k) / n) as usize))))
            .collect();
        Pool {
            addresses,
            classes,
            dynamic,
            shards,
        }
    }

    pub(crate) fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    pub(crate) fn locate(&self, a: Ipv4Addr) -> Option<SlotRef> {
        let offset = self.addresses.offset_of(a.to_bits())?;
        let n = self.shard_count();
        Some(SlotRef {
            shard: offset % n,
            slot: offset / n,
        })
    }

    pub(crate) fn address(&self, at: SlotRef) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addresses.at(at.slot * self.shard_count() + at.shard))
    }

    /// Locks one shard. A poisoned lock means a worker panicked mid-update; the data is still
    /// the last consistent state a completed operation left, so serving goes on.
    pub(crate) fn lock(&self, shard: u32) -> MutexGuard<'_, Shard> {
        self.shards[shard as usize]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, a: Ipv4Addr) -> bool {
        self.addresses.offset_of(a.to_bits()).is_some()
    }

    /// Calls `f` with each binding of the pool that says anything
    /// ([`Binding::says_anything`]), and where it is; one shard lock at a time, `f` running
    /// under it.
    pub(crate) fn for_each_binding(&self, mut f: impl FnMut(SlotRef, &Binding)) {
        for k in 0..self.shard_count() {
            let shard = self.lock(k);
            for slot in 0..shard.slot_count() {
                let b = shard.binding(slot);
                if b.says_anything() {
                    f(SlotRef { shard: k, slot }, b);
                }
            }
        }
    }

    /// Whether `other` lays out the same addresses in the same slots.
    pub(crate) fn same_slots(&self, other: &Pool) -> bool {
        self.addresses == other.addresses
            && self.dynamic == other.dynamic
            && self.shard_count() == other.shard_count()
    }

    /// Swaps every shard with `to`'s (a pool of [`Pool::same_slots`]): `to` gets this pool's
    /// bindings, free lists and timers, this pool `to`'s. Returns how many of the bindings
    /// handed over are in a state `counted` counts.
    pub(crate) fn take_into(&self, to: &Pool, counted: impl Fn(BindingState) -> bool) -> u32 {
        debug_assert!(self.same_slots(to));
        let mut n = 0;
        for k in 0..self.shard_count() {
            let (mut mine, mut theirs) = (self.lock(k), to.lock(k));
            std::mem::swap(&mut *mine, &mut *theirs);
            n += theirs
                .counts
                .iter()
                .enumerate()
                .filter(|(state, _)| counted(STATE_ORDER[*state]))
                .map(|(_, c)| *c)
                .sum::<u32>();
        }
        n
    }
}

/// Every state, by its discriminant (the index of [`Shard`]'s counts).
const STATE_ORDER: [BindingState; STATES] = [
    BindingState::Free,
    BindingState::Offered,
    BindingState::Active,
    BindingState::Expired,
    BindingState::Released,
    BindingState::Abandoned,
    BindingState::Reserved,
    BindingState::Reset,
    BindingState::Backup,
    BindingState::HeldBack,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_list_is_fifo_with_o1_unlink() {
        let mut s = Shard::new(5);
        assert_eq!(s.free_len(), 5);
        s.unlink(2);
        s.unlink(2);
        assert_eq!(s.pop_free(), Some(0));
        s.push_free(0);
        s.push_free(0);
        let order: Vec<_> = std::iter::from_fn(|| s.pop_free()).collect();
        assert_eq!(order, [1, 3, 4, 0]);
        s.push_free(2);
        assert_eq!(s.pop_free(), Some(2));
        assert_eq!(s.pop_free(), None);
    }

    #[test]
    fn addresses_deal_round_robin_over_shards() {
        let first = Ipv4Addr::new(10, 0, 0, 10).to_bits();
        let p = Pool::new(Addresses::Range { first, len: 10 }, 0, true, 4);
        let mut seen = std::collections::BTreeSet::new();
        for k in 0..p.shard_count() {
            let n = p.lock(k).slots.len() as u32;
            for slot in 0..n {
                let a = p.address(SlotRef { shard: k, slot });
                assert_eq!(p.locate(a), Some(SlotRef { shard: k, slot }));
                seen.insert(a);
            }
        }
        assert_eq!(seen.len(), 10);
        assert_eq!(p.locate(Ipv4Addr::new(10, 0, 0, 20)), None);
    }

    /// The room written when the shard is made stays reserved, and nothing is left in it.
    #[test]
    fn a_new_shard_has_no_timer_and_keeps_the_room_it_reserved() {
        let mut s = Shard::new(100);
        assert!(s.timers.is_empty());
        assert!(s.timers.capacity() >= s.timer_capacity);
        assert_eq!(s.due(Time::MAX), None);
    }

    #[test]
    fn timers_skip_superseded_entries_and_stay_within_capacity() {
        let mut s = Shard::new(2);
        let mut b = Binding::FREE;
        b.state = BindingState::Active;
        b.expires = 100;
        s.set(0, b);
        s.schedule(0, 100);
        b.expires = 200;
        s.set(0, b);
        s.schedule(0, 200);
        assert_eq!(s.due(150), None);
        assert_eq!(s.due(250), Some(0));
        for t in 0..1000 {
            b.expires = 300 + t;
            s.set(1, b);
            s.schedule(1, 300 + t);
        }
        assert!(s.timers.len() <= s.timer_capacity);
        assert_eq!(s.due(10_000), Some(1));
        assert_eq!(s.due(10_000), None);
    }
}
