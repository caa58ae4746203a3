//! Ping check: OFFERs that wait for a probe of their address to go unanswered.
//!
//! The worker that holds an OFFER is not always the one the answer reaches (an ICMP reply
//! from a client's segment has no client hardware address to hand it off by), so answers are
//! noted in a table all workers of a server share ([`ProbeAnswers`]), and the holding worker
//! looks there when its wait ends. Everything is allocated when the worker starts: a full
//! table of waiting OFFERs is a counted drop, never a stall.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use peregrine_io::FRAME_CAPACITY;

/// Addresses that answered a probe lately, shared by the workers of a server: a fixed table
/// of atomics indexed by address, so noting and checking take no lock and allocate nothing.
/// Two addresses that share a cell overwrite each other's note; the one lost is offered as if
/// it had not answered (a ping check is a best effort, as ISC's and Kea's are).
#[derive(Debug)]
pub struct ProbeAnswers {
    cells: Box<[AtomicU32]>,
}

impl ProbeAnswers {
    /// A table of `cells` entries (rounded up to a power of two).
    pub fn new(cells: usize) -> ProbeAnswers {
        let n = cells.next_power_of_two().max(1);
        ProbeAnswers {
            cells: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn cell(&self, a: Ipv4Addr) -> &AtomicU32 {
        // Fibonacci hashing spreads consecutive addresses of one pool over the table.
        let i = (u32::from(a).wrapping_mul(0x9e37_79b9) as usize) & (self.cells.len() - 1);
        &self.cells[i]
    }

    /// Something answered a probe of `a`.
    pub fn note(&self, a: Ipv4Addr) {
        self.cell(a).store(u32::from(a), Ordering::Relaxed);
    }

    /// Forgets an earlier answer of `a`, before a new probe of it.
    pub fn clear(&self, a: Ipv4Addr) {
        let _ =
            self.cell(a)
                .compare_exchange(u32::from(a), 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether `a` answered since it was last cleared.
    pub fn answered(&self, a: Ipv4Addr) -> bool {
        self.cell(a).load(Ordering::Relaxed) == u32::from(a)
    }
}

impl Default for ProbeAnswers {
    fn default() -> ProbeAnswers {
        ProbeAnswers::new(4096)
    }
}

/// One OFFER waiting for its probe, with the request it answers (handled again if the
/// address answers).
struct Waiting {
    address: Ipv4Addr,
    until: Instant,
    ifindex: u32,
    offer: Box<[u8]>,
    offer_len: usize,
    request: Box<[u8]>,
    request_len: usize,
}

/// A waiting OFFER whose wait has ended; the frame it concerns is copied to the caller's
/// scratch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing answered: send the OFFER (`len` bytes of scratch).
    Offer {
        /// Frame length.
        len: usize,
        /// The interface it leaves on.
        ifindex: u32,
    },
    /// The address answered: it is in use; handle the request (`len` bytes of scratch) again.
    InUse {
        /// The address.
        address: Ipv4Addr,
        /// Frame length.
        len: usize,
        /// The interface it arrived on.
        ifindex: u32,
    },
}

/// The OFFERs of one worker that wait for their probes, in the order their waits end (each
/// scope has one wait, and most servers one ping-check time).
pub(crate) struct Probes {
    slots: Vec<Waiting>,
    free: Vec<usize>,
    waiting: VecDeque<usize>,
}

impl Probes {
    /// Room for `capacity` waiting OFFERs, allocated now.
    pub(crate) fn new(capacity: usize) -> Probes {
        Probes {
            slots: (0..capacity)
                .map(|_| Waiting {
                    address: Ipv4Addr::UNSPECIFIED,
                    until: Instant::now(),
                    ifindex: 0,
                    offer: vec![0; FRAME_CAPACITY].into_boxed_slice(),
                    offer_len: 0,
                    request: vec![0; FRAME_CAPACITY].into_boxed_slice(),
                    request_len: 0,
                })
                .collect(),
            free: (0..capacity).rev().collect(),
            waiting: VecDeque::with_capacity(capacity),
        }
    }

    /// How many OFFERs wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Holds `offer` for `address` until `until`; `false` if there is no room.
    pub(crate) fn hold(
        &mut self,
        address: Ipv4Addr,
        until: Instant,
        (offer, request): (&[u8], &[u8]),
        ifindex: u32,
    ) -> bool {
        if offer.len() > FRAME_CAPACITY || request.len() > FRAME_CAPACITY {
            return false;
        }
        let Some(i) = self.free.pop() else {
            return false;
        };
        let w = &mut self.slots[i];
        w.address = address;
        w.until = until;
        w.ifindex = ifindex;
        w.offer[..offer.len()].copy_from_slice(offer);
        w.offer_len = offer.len();
        w.request[..request.len()].copy_from_slice(request);
        w.request_len = request.len();
        self.waiting.push_back(i);
        true
    }

    /// The oldest OFFER whose wait ended by `now`, judged against `answers`, its frame (or
    /// its request's) copied into `scratch` (at least [`FRAME_CAPACITY`] bytes); its slot is
    /// free again. `None` if none is due.
    pub(crate) fn take_due(
        &mut self,
        now: Instant,
        answers: &ProbeAnswers,
        scratch: &mut [u8],
    ) -> Option<Due> {
        let &i = self.waiting.front()?;
        let w = &self.slots[i];
        // Waits of different lengths (scopes with other ping-check times) end out of order;
        // the queue is FIFO, so a shorter one may wait for a longer one ahead of it.
        if w.until > now {
            return None;
        }
        self.waiting.pop_front();
        self.free.push(i);
        Some(if answers.answered(w.address) {
            answers.clear(w.address);
            scratch[..w.request_len].copy_from_slice(&w.request[..w.request_len]);
            Due::InUse {
                address: w.address,
                len: w.request_len,
                ifindex: w.ifindex,
            }
        } else {
            scratch[..w.offer_len].copy_from_slice(&w.offer[..w.offer_len]);
            Due::Offer {
                len: w.offer_len,
                ifindex: w.ifindex,
            }
        })
    }
}

/// A wait in milliseconds as a duration.
pub(crate) fn wait(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}
