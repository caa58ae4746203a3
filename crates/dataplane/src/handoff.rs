//! Hand-off between the workers of one interface: each DHCP request goes to the worker its
//! client hashes to.
//!
//! The kernel's fanout (and a NIC's RSS) hashes on the flow: every request a relay sends comes
//! from one address and port to ours, so one relay's subscribers all land on one worker. The
//! worker that receives a request therefore hashes its client hardware address and, when the
//! hash names another worker, copies the frame onto a single-producer single-consumer ring to
//! it. The owner handles it as if it had received it and replies from its own queue on the same
//! interface. A client is then always served by the same worker, and one relay can use them all.
//!
//! Each direction between two workers is a pair of `peregrine-ring` rings: `full` carries
//! frames to the owner, `empty` returns their buffers to the sender. Neither worker ever waits
//! on the other, also when they share a core and one is preempted mid-push. Buffers are
//! allocated once, when the mesh is built; a hand-off moves a pointer. When a ring is full the
//! receiving worker handles the frame itself rather than drop it.

use std::time::Instant;

use peregrine_io::{FRAME_CAPACITY, RxFrame};
use peregrine_ring::{Consumer, Producer, ring};
use peregrine_wire::dhcp::SERVER_PORT;
use peregrine_wire::frame::{Demuxed, demux_with};

/// A frame on its way to its owner.
struct Slot {
    buffer: Box<[u8]>,
    len: usize,
    ifindex: u32,
    checksum_pending: bool,
    /// When the receiving worker took it off its ring, for the latency histogram.
    received: Instant,
}

/// The sender's ends of one direction between two workers.
struct Outbound {
    /// Frames to the owner.
    full: Producer<Slot>,
    /// Buffers back from it.
    empty: Consumer<Slot>,
}

/// The owner's ends of one direction between two workers.
struct Inbound {
    full: Consumer<Slot>,
    empty: Producer<Slot>,
}

/// The two ends of one direction, with `depth` buffers for it.
fn direction(depth: usize) -> (Outbound, Inbound) {
    let (to_owner, from_sender) = ring(depth);
    let (mut to_sender, from_owner) = ring(depth);
    let now = Instant::now();
    for _ in 0..depth {
        let slot = Slot {
            buffer: vec![0u8; FRAME_CAPACITY].into_boxed_slice(),
            len: 0,
            ifindex: 0,
            checksum_pending: false,
            received: now,
        };
        // `depth` slots into a ring of at least `depth`.
        let _ = to_sender.push(slot);
    }
    (
        Outbound {
            full: to_owner,
            empty: from_owner,
        },
        Inbound {
            full: from_sender,
            empty: to_sender,
        },
    )
}

/// One worker's end of the mesh: a ring to every other worker and one from each.
pub struct Handoff {
    index: usize,
    /// Indexed by destination worker; `None` at this worker's own index.
    outbound: Vec<Option<Outbound>>,
    inbound: Vec<Inbound>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("index", &self.index)
            .field("workers", &self.outbound.len())
            .finish_non_exhaustive()
    }
}

/// What [`Handoff::offer`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// On its way to its owner.
    Sent,
    /// This worker's to handle: its own client, not a DHCP request, or the ring is full
    /// (`full` true).
    Keep {
        /// The owner's ring was full.
        full: bool,
    },
}

impl Handoff {
    /// Builds the rings between `workers` workers, `depth` frames each way per pair; returns
    /// each worker's end, in worker order. One worker gets an end that keeps everything.
    pub fn mesh(workers: usize, depth: usize) -> Vec<Handoff> {
        let depth = depth.max(1);
        let mut ends: Vec<Handoff> = (0..workers)
            .map(|index| Handoff {
                index,
                outbound: (0..workers).map(|_| None).collect(),
                inbound: Vec::with_capacity(workers.saturating_sub(1)),
            })
            .collect();
        for from in 0..workers {
            for to in (0..workers).filter(|&to| to != from) {
                let (outbound, inbound) = direction(depth);
                ends[from].outbound[to] = Some(outbound);
                ends[to].inbound.push(inbound);
            }
        }
        ends
    }

    /// The worker that owns `frame`'s client, if it is a DHCP request with a hardware address;
    /// `None` for anything else (ARP, ICMP, unparsable frames stay with the worker that
    /// received them, which counts them).
    pub(crate) fn owner(&self, frame: &[u8]) -> Option<usize> {
        let workers = self.outbound.len();
        if workers < 2 {
            return None;
        }
        // Headers only: the owner verifies checksums when it handles the frame.
        let Ok(Demuxed::Udp {
            dst_port: SERVER_PORT,
            payload,
            ..
        }) = demux_with(frame, false)
        else {
            return None;
        };
        // chaddr: 16 bytes at offset 28 of the BOOTP header; a MAC is the first 6.
        let mac = payload.get(28..34)?;
        let mut key = [0u8; 8];
        key[..6].copy_from_slice(mac);
        // Fibonacci hashing: the top bits of a multiply by 2^64 / golden ratio spread
        // sequential MACs evenly. Spreading needs no secret: a client that picks its hash
        // only picks which worker serves it.
        let h = u64::from_le_bytes(key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Some(((u128::from(h) * workers as u128) >> 64) as usize)
    }

    /// Sends `frame` to its owner if that is another worker and its ring has room.
    pub(crate) fn offer(&mut self, frame: &RxFrame<'_>, received: Instant) -> Offered {
        let Some(owner) = self.owner(frame.data) else {
            return Offered::Keep { full: false };
        };
        let Some(ring) = self.outbound[owner].as_mut() else {
            return Offered::Keep { full: false };
        };
        if frame.data.len() > FRAME_CAPACITY {
            return Offered::Keep { full: false };
        }
        let Some(mut slot) = ring.empty.pop() else {
            return Offered::Keep { full: true };
        };
        slot.buffer[..frame.data.len()].copy_from_slice(frame.data);
        slot.len = frame.data.len();
        slot.ifindex = frame.ifindex;
        slot.checksum_pending = frame.checksum_pending;
        slot.received = received;
        // The ring holds as many slots as exist for it: a popped slot always fits back.
        let _ = ring.full.push(slot);
        Offered::Sent
    }

    /// Hands up to `max` frames other workers sent here to `f`, with when they were received;
    /// returns how many.
    pub(crate) fn receive(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&RxFrame<'_>, Instant),
    ) -> usize {
        let mut n = 0;
        for ring in &mut self.inbound {
            while n < max {
                let Some(slot) = ring.full.pop() else { break };
                let frame = RxFrame {
                    data: &slot.buffer[..slot.len],
                    ifindex: slot.ifindex,
                    checksum_pending: slot.checksum_pending,
                };
                f(&frame, slot.received);
                n += 1;
                let _ = ring.empty.push(slot);
            }
        }
        n
    }

    /// Whether frames wait for this worker.
    pub(crate) fn pending(&self) -> bool {
        self.inbound.iter().any(|r| !r.full.is_empty())
    }
}
