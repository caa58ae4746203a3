//! The commit gate: where a worker's binding changes go, and the replies that wait for them.
//!
//! Every binding change a worker makes goes to one sink chosen at start-up
//! ([`BindingSink`]): the lease journal, or a [`Fanout`] of the journal (which must confirm a
//! change before its reply leaves) and a sink told lazily (a failover partner, which the reply
//! does not wait for). A reply that depends on a change is copied into a buffer allocated when
//! the worker starts and leaves, in submission order, once the sink confirms it. Nothing here
//! allocates or blocks: a sink that cannot take a change, or no free buffer, is a counted drop.

use std::collections::VecDeque;
use std::time::Instant;

use peregrine_engine::{BindingEvent, BindingSink};
use peregrine_io::FRAME_CAPACITY;
use peregrine_wire::dhcp::MessageType;

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
    buffer: usize,
    pub(crate) len: usize,
    pub(crate) kind: MessageType,
    pub(crate) ifindex: u32,
    /// When its request left the receive ring.
    pub(crate) received: Instant,
}

/// One worker's commit gate: its sink and the replies held for it.
pub(crate) struct CommitGate<S> {
    sink: Option<S>,
    buffers: Vec<Box<[u8]>>,
    free: Vec<usize>,
    waiting: VecDeque<HeldReply>,
    /// Whether anything was submitted since the last [`CommitGate::flush`].
    submitted: bool,
}

impl<S: BindingSink> CommitGate<S> {
    /// A gate over `sink` (`None`: memory only) holding up to `capacity` replies, whose
    /// buffers are allocated now.
    pub(crate) fn new(sink: Option<S>, capacity: usize) -> CommitGate<S> {
        let capacity = if sink.is_some() { capacity } else { 0 };
        CommitGate {
            sink,
            buffers: (0..capacity)
                .map(|_| vec![0u8; FRAME_CAPACITY].into_boxed_slice())
                .collect(),
            free: (0..capacity).rev().collect(),
            waiting: VecDeque::with_capacity(capacity),
            submitted: false,
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
        let Some(buffer) = self.free.pop() else {
            return false;
        };
        self.buffers[buffer][..frame.len()].copy_from_slice(frame);
        self.waiting.push_back(HeldReply {
            seq,
            buffer,
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
            let frame = &self.buffers[front.buffer][..front.len];
            if !send(front, frame) {
                break;
            }
            let buffer = front.buffer;
            self.waiting.pop_front();
            self.free.push(buffer);
        }
    }

    /// Replies waiting now.
    pub(crate) fn held(&self) -> usize {
        self.waiting.len()
    }
}
