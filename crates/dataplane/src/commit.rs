//! The commit gate: where a worker's binding changes go, and the replies that wait for them.
//!
//! Every binding change a worker makes goes to one sink chosen at start-up
//! ([`BindingSink`]): the lease journal, or a [`Fanout`] of the journal (which must confirm a
//! change before its reply leaves) and a sink told lazily (a failover partner, which the reply
//! does not wait for). A reply that depends on a change is copied into the gate's room, allocated
//! when the worker starts, and leaves, in submission order, once the sink confirms it. Nothing
//! here allocates or blocks: a sink that cannot take a change, or a full room, is a counted drop.

use std::collections::VecDeque;
use std::time::Instant;

use peregrine_engine::{BindingEvent, BindingSink};
use peregrine_io::FRAME_CAPACITY;
use peregrine_wire::dhcp::{MIN_MESSAGE_LEN, MessageType};
use peregrine_wire::{ethernet, ipv4, udp};

/// The sink of a server that keeps leases in memory only: `Option::<NoSink>::None`.
#[derive(Debug, Clone, Copy)]
pub enum NoSink {}

impl BindingSink for NoSink {
    fn submit(&mut self, _: &BindingEvent) -> Option<u64> {
        match *self {}
    }

    fn flush(&mut self) {
        match *self {}
    }

    fn confirmed(&self) -> u64 {
        match *self {}
    }
}

/// Fans one change out to a sink that confirms it (`C`: replies wait for it) and a sink that is
/// only told (`L`: replies do not wait; what it promises meanwhile is its own to bound, as the
/// MCLT bounds a failover partner's). A change `C` refuses is not passed to `L`: its reply is
/// dropped and the client retries.
#[derive(Debug)]
pub struct Fanout<C, L> {
    /// The sink whose confirmation releases replies.
    pub confirming: C,
    /// The sink told of every change `confirming` took.
    pub lazy: L,
}

impl<C: BindingSink, L: BindingSink> BindingSink for Fanout<C, L> {
    fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        let seq = self.confirming.submit(event)?;
        // The lazy sink counts what it cannot take itself; the reply does not depend on it.
        let _ = self.lazy.submit(event);
        Some(seq)
    }

    fn flush(&mut self) {
        self.confirming.flush();
        self.lazy.flush();
    }

    fn confirmed(&self) -> u64 {
        self.confirming.confirmed()
    }
}

/// What the gate did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// No sink: the change lives in memory only, and its reply may leave now.
    InMemory,
    /// The sink took it as this sequence number.
    Submitted(u64),
    /// The sink could not take it now.
    Refused,
}

/// A reply waiting for its change to be confirmed.
pub(crate) struct HeldReply {
    seq: u64,
    /// Where its frame starts in the gate's room.
    at: usize,
    pub(crate) len: usize,
    pub(crate) kind: MessageType,
    pub(crate) ifindex: u32,
    /// When its request left the receive ring.
    pub(crate) received: Instant,
}

/// The shortest frame a reply can be (the writer pads a DHCP message to `MIN_MESSAGE_LEN`): the
/// room holds at most this many of them.
const MIN_REPLY_FRAME: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + MIN_MESSAGE_LEN;

/// One worker's commit gate: its sink and the replies held for it.
///
/// Held replies lie back to back in one room, a ring of bytes: they leave in the order they
/// came, so the oldest is always the first waiting one and the next goes at `tail` (or, when it
/// does not fit before the end, at the start). A room for `capacity` frames of the largest size holds about
/// four times as many replies of a usual size (350 bytes), where a buffer per reply held
/// `capacity`: four times as long a stall of the journal's commits before a reply is dropped.
pub(crate) struct CommitGate<S> {
    sink: Option<S>,
    room: Box<[u8]>,
    /// Where the newest held frame ends.
    tail: usize,
    waiting: VecDeque<HeldReply>,
    /// Whether anything was submitted since the last [`CommitGate::flush`].
    submitted: bool,
}

impl<S: BindingSink> CommitGate<S> {
    /// A gate over `sink` (`None`: memory only) whose room holds `capacity` frames of the largest
    /// size, allocated now.
    pub(crate) fn new(sink: Option<S>, capacity: usize) -> CommitGate<S> {
        let bytes = if sink.is_some() {
            capacity * FRAME_CAPACITY
        } else {
            0
        };
        CommitGate {
            sink,
            room: vec![0u8; bytes].into_boxed_slice(),
            tail: 0,
            waiting: VecDeque::with_capacity(bytes / MIN_REPLY_FRAME + 1),
            submitted: false,
        }
    }

    /// Where a frame of `len` bytes fits in the room now, if it does. The used bytes run from
    /// the oldest frame's start to `tail`, wrapping past the end; a frame never straddles the
    /// end, and never fills the gap up to the oldest entirely, so that the two meet only when
    /// nothing is held.
    fn place(&self, len: usize) -> Option<usize> {
        let Some(head) = self.waiting.front().map(|oldest| oldest.at) else {
            return (len <= self.room.len()).then_some(0);
        };
        if self.tail >= head {
            if len <= self.room.len() - self.tail {
                Some(self.tail)
            } else {
                (len < head).then_some(0)
            }
        } else {
            (len < head - self.tail).then_some(self.tail)
        }
    }

    /// Passes `event` to the sink.
    pub(crate) fn admit(&mut self, event: &BindingEvent) -> Admitted {
        let Some(sink) = self.sink.as_mut() else {
            return Admitted::InMemory;
        };
        match sink.submit(event) {
            Some(seq) => {
                self.submitted = true;
                Admitted::Submitted(seq)
            }
            None => Admitted::Refused,
        }
    }

    /// Keeps a copy of `frame` until `seq` is confirmed; false if every buffer is in use.
    pub(crate) fn hold(
        &mut self,
        seq: u64,
        frame: &[u8],
        kind: MessageType,
        ifindex: u32,
        received: Instant,
    ) -> bool {
        // The queue was made for as many of the shortest replies as the room holds: it never
        // grows.
        if self.waiting.len() == self.waiting.capacity() {
            return false;
        }
        let Some(at) = self.place(frame.len()) else {
            return false;
        };
        self.room[at..at + frame.len()].copy_from_slice(frame);
        self.tail = at + frame.len();
        self.waiting.push_back(HeldReply {
            seq,
            at,
            len: frame.len(),
            kind,
            ifindex,
            received,
        });
        true
    }

    /// Has the sink process what was submitted since the last call (once per burst).
    pub(crate) fn flush(&mut self) {
        if std::mem::take(&mut self.submitted)
            && let Some(sink) = self.sink.as_mut()
        {
            sink.flush();
        }
    }

    /// Hands `send` each held reply whose change is confirmed, in order, while it accepts
    /// them (it returns false when it has no room: the reply stays first in line).
    pub(crate) fn release(&mut self, mut send: impl FnMut(&HeldReply, &[u8]) -> bool) {
        let Some(sink) = self.sink.as_ref() else {
            return;
        };
        let confirmed = sink.confirmed();
        while let Some(front) = self.waiting.front() {
            if front.seq > confirmed {
                break;
            }
            let frame = &self.room[front.at..front.at + front.len];
            if !send(front, frame) {
                break;
            }
            self.waiting.pop_front();
        }
    }

    /// Replies waiting now.
    pub(crate) fn held(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that confirms what the test says.
    struct Manual {
        next: u64,
        confirmed: u64,
    }

    impl BindingSink for Manual {
        fn submit(&mut self, _: &BindingEvent) -> Option<u64> {
            self.next += 1;
            Some(self.next)
        }

        fn confirmed(&self) -> u64 {
            self.confirmed
        }
    }

    fn gate(capacity: usize) -> CommitGate<Manual> {
        CommitGate::new(
            Some(Manual {
                next: 0,
                confirmed: 0,
            }),
            capacity,
        )
    }

    /// A frame of `len` bytes, each the low byte of `n`.
    fn frame(n: u64, len: usize) -> Vec<u8> {
        vec![n as u8; len]
    }

    fn hold(g: &mut CommitGate<Manual>, seq: u64, len: usize) -> bool {
        g.hold(seq, &frame(seq, len), MessageType::Ack, 1, Instant::now())
    }

    /// Releases what is confirmed up to `seq`; returns each released reply's number and length,
    /// checking its bytes.
    fn release(g: &mut CommitGate<Manual>, seq: u64) -> Vec<(u64, usize)> {
        g.sink.as_mut().unwrap().confirmed = seq;
        let mut out = Vec::new();
        g.release(|held, bytes| {
            assert_eq!(bytes, frame(held.seq, held.len), "reply {}", held.seq);
            out.push((held.seq, held.len));
            true
        });
        out
    }

    #[test]
    fn replies_of_a_usual_size_fit_four_times_over_where_the_largest_fit_once() {
        let mut g = gate(4);
        let mut held = 0;
        while hold(&mut g, held + 1, 350) {
            held += 1;
        }
        // 4 frames of FRAME_CAPACITY bytes make room for at least 4 times as many of 350.
        assert!(held as usize >= 4 * 4, "{held} held");
        assert_eq!(g.held(), held as usize);
        let released = release(&mut g, held);
        assert_eq!(released.len(), held as usize);
        assert_eq!(g.held(), 0);
        for _ in 0..4 {
            assert!(hold(&mut g, 1, FRAME_CAPACITY));
        }
        assert!(!hold(&mut g, 1, FRAME_CAPACITY));
    }

    /// Frames of mixed sizes go round the room many times: each leaves whole and in order, and
    /// the room refuses only when what is held leaves no gap for the next.
    #[test]
    fn held_replies_leave_whole_and_in_order_as_the_room_wraps() {
        let mut g = gate(2);
        let room = 2 * FRAME_CAPACITY;
        let sizes = [300, 350, 1200, 400, 342, 999, 600];
        let mut next = 1;
        let mut released = 0;
        for round in 0..200 {
            // Hold until full, then release about half.
            loop {
                let len = sizes[next as usize % sizes.len()];
                if !hold(&mut g, next, len) {
                    let used: usize = g.waiting.iter().map(|h| h.len).sum();
                    assert!(used + len > room / 2, "refused with {used} of {room} used");
                    break;
                }
                next += 1;
            }
            let upto = released + (next - 1 - released).div_ceil(2) + round % 2;
            let out = release(&mut g, upto.min(next - 1));
            for (k, (seq, _)) in out.iter().enumerate() {
                assert_eq!(*seq, released + 1 + k as u64);
            }
            released += out.len() as u64;
        }
        let out = release(&mut g, next - 1);
        assert_eq!(released + out.len() as u64, next - 1);
        assert_eq!(g.held(), 0);
    }
}
