//! Single-writer counters and gauges, and the set one worker keeps.

use std::sync::atomic::{AtomicU64, Ordering};

use peregrine_wire::dhcp::MessageType;

use crate::{FrameDrop, Latency};

/// A counter with one writer. Increments are a plain load and store (no locked
/// read-modify-write), which is exact as long as only the owning worker writes.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only the owning worker may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one; only the owning worker may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value, from any thread.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge with one writer: the owning worker stores, anyone reads.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value; only the owning worker may call this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value, from any thread.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Rows of a table indexed by DHCP message type code.
const TYPE_SLOTS: usize = MessageType::LAST as usize + 1;

/// Everything one worker counts.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_frames: Counter,
    /// Frames sent.
    pub tx_frames: Counter,
    /// DHCP messages received, by type code (index 0: other).
    pub messages_in: [Counter; TYPE_SLOTS],
    /// DHCP messages sent, by type code.
    pub messages_out: [Counter; TYPE_SLOTS],
    /// Drops, by reason ([`WorkerStats::count_drop`], [`WorkerStats::dropped`]).
    drops: Drops,
    /// ARP replies sent for our addresses.
    pub arp_replies: Counter,
    /// ICMP echo replies sent.
    pub icmp_replies: Counter,
    /// ACKs whose binding change had to be committed before they left.
    pub deferred: Counter,
    /// Binding changes handed to the commit gate's sink.
    pub journaled: Counter,
    /// Leases expired by this worker's timer runs.
    pub expired: Counter,
    /// DHCP requests handed to the worker that owns their client.
    pub handed_off: Counter,
    /// DHCP requests handled here because the owner's hand-off ring was full.
    pub handoff_full: Counter,
    /// DHCP requests other workers handed here.
    pub handed_in: Counter,
    /// Ping-check probes sent (ICMP echo or ARP) for addresses about to be offered.
    pub probes_sent: Counter,
    /// Probes answered: the address was in use and another was offered.
    pub probes_answered: Counter,
    /// OFFERs waiting for their ping check.
    pub probes_waiting: Gauge,
    /// Reply latency (see [`Latency`]).
    pub latency: Latency,
    /// Replies waiting for their binding change to commit.
    pub held_replies: Gauge,
    /// Frames the last receive burst brought: at the burst size, the worker is saturated and
    /// frames queue in the ring.
    pub last_burst: Gauge,
    /// Nanoseconds spent on loop turns whose burst brought frames (receiving, answering,
    /// queueing, sending): a polling worker's core is busy whatever the load, this is what
    /// the frames cost.
    pub busy_ns: Counter,
}

/// A counter for every drop reason, by [`FrameDrop::index`] (more than `Default` derives for
/// an array).
#[derive(Debug)]
struct Drops([Counter; FrameDrop::COUNT]);

impl Default for Drops {
    fn default() -> Drops {
        Drops(std::array::from_fn(|_| Counter::default()))
    }
}

impl WorkerStats {
    /// Counts one drop; only the owning worker may call this.
    #[inline]
    pub fn count_drop(&self, d: impl Into<FrameDrop>) {
        self.drops.0[d.into().index()].inc();
    }

    /// Counts `n` drops for one reason; only the owning worker may call this.
    #[inline]
    pub fn count_drops(&self, d: impl Into<FrameDrop>, n: u64) {
        self.drops.0[d.into().index()].add(n);
    }

    /// Drops counted for `d` so far.
    pub fn dropped(&self, d: impl Into<FrameDrop>) -> u64 {
        self.drops.0[d.into().index()].get()
    }

    /// Counts one DHCP message received (`None`: no or an unknown message type).
    #[inline]
    pub fn message_in(&self, t: Option<MessageType>) {
        self.messages_in[t.map_or(0, |t| t as usize)].inc();
    }

    /// Counts one DHCP message sent.
    #[inline]
    pub fn message_out(&self, t: MessageType) {
        self.messages_out[t as usize].inc();
    }
}
