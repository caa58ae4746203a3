//! Our binding updates waiting for room under the partner's max-unacked-bndupd.
//!
//! At most one waits per address: an update says what the binding is, not what changed, so a
//! later change replaces the waiting one where it stands. Every operation the session does per
//! message is O(1) (amortized) however long the queue: a server answering an UPDREQALL holds
//! every binding it has in it (a million, bench/updreqall.sh), while it acknowledges and
//! receives updates.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use crate::binding::Binding;

/// The queue: entries in the order their addresses were first queued (sequence numbers
/// increasing), and per address the sequence number of its live entry. An entry whose address
/// names another sequence number (or none) was removed, and is skipped.
#[derive(Debug, Default)]
pub(crate) struct UpdateQueue {
    entries: VecDeque<(u64, Binding)>,
    live: HashMap<Ipv4Addr, u64>,
}

impl UpdateQueue {
    /// Updates waiting.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether an update of `address` waits.
    pub(crate) fn contains(&self, address: Ipv4Addr) -> bool {
        self.live.contains_key(&address)
    }

    /// Queues `binding` as update `seq` (greater than any queued), or puts it in place of the
    /// update of its address already waiting, which keeps its place and number.
    pub(crate) fn push(&mut self, seq: u64, binding: Binding) {
        if let Some(&at) = self.live.get(&binding.address)
            && let Ok(i) = self.entries.binary_search_by_key(&at, |(s, _)| *s)
        {
            self.entries[i].1 = binding;
            return;
        }
        self.live.insert(binding.address, seq);
        self.entries.push_back((seq, binding));
    }

    /// Puts back at the front an update that was in flight when the connection fell (`seq` is
    /// lower than any queued); dropped if a later update of its address waits.
    pub(crate) fn push_front(&mut self, seq: u64, binding: Binding) {
        if self.live.contains_key(&binding.address) {
            return;
        }
        self.live.insert(binding.address, seq);
        self.entries.push_front((seq, binding));
    }

    /// The next update to send.
    pub(crate) fn pop(&mut self) -> Option<(u64, Binding)> {
        self.prune();
        let (seq, binding) = self.entries.pop_front()?;
        self.live.remove(&binding.address);
        Some((seq, binding))
    }

    /// The sequence number of the next update to send.
    pub(crate) fn first_seq(&mut self) -> Option<u64> {
        self.prune();
        self.entries.front().map(|(s, _)| *s)
    }

    /// Drops the update of `address` waiting, if any.
    pub(crate) fn remove(&mut self, address: Ipv4Addr) {
        self.live.remove(&address);
    }

    /// Drops every waiting update.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.live.clear();
    }

    /// Drops the removed entries at the front.
    fn prune(&mut self) {
        while let Some((seq, b)) = self.entries.front()
            && self.live.get(&b.address) != Some(seq)
        {
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BindingStatus;

    fn update(last: u8, status: BindingStatus) -> Binding {
        Binding::new(Ipv4Addr::new(10, 0, 0, last), status)
    }

    #[test]
    fn one_update_per_address_in_the_order_first_queued() {
        let mut q = UpdateQueue::default();
        q.push(1, update(1, BindingStatus::Active));
        q.push(2, update(2, BindingStatus::Active));
        q.push(3, update(1, BindingStatus::Expired));
        assert_eq!(q.len(), 2);
        let (seq, b) = q.pop().unwrap();
        assert_eq!((seq, b.status), (1, BindingStatus::Expired));
        q.remove(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((q.len(), q.first_seq()), (0, None));
        assert!(q.pop().is_none());
        // Back from flight, unless a later update of its address waits.
        q.push(4, update(3, BindingStatus::Free));
        q.push_front(1, update(1, BindingStatus::Expired));
        q.push_front(0, update(3, BindingStatus::Active));
        assert_eq!(q.first_seq(), Some(1));
        assert_eq!(q.pop().unwrap().0, 1);
        assert_eq!(q.pop().unwrap().1.status, BindingStatus::Free);
        assert!(!q.contains(Ipv4Addr::new(10, 0, 0, 3)));
    }
}
