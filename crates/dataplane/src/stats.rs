//! Per-worker counters: written by one worker, read by the control plane at scrape time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use peregrine_engine::DropReason;
use peregrine_wire::dhcp::MessageType;

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

/// Reply latency in nanoseconds, from the frame leaving the receive ring to its reply being
/// queued for sending (the wait for the journal included), with two significant digits up to
/// [`Latency::MAX_NS`].
///
/// The worker records into a histogram of its own and adds it here about once a second with
/// `try_lock` (never waiting: if the control plane is reading, it tries again next time); the
/// control plane merges the workers' at scrape time. So no packet touches this lock.
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

impl Latency {
    /// Latencies above this (10 s) are recorded as this.
    pub const MAX_NS: u64 = 10_000_000_000;

    /// An empty histogram with the bounds every worker uses, so that they merge exactly.
    pub fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(1, Latency::MAX_NS, 2)
            .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
    }

    /// Adds `local` and empties it, unless the control plane holds the lock right now.
    pub fn publish(&self, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        if let Ok(mut shared) = self.0.try_lock() {
            // Same bounds on both sides: adding cannot fail.
            let _ = shared.add(&*local);
            local.reset();
        }
    }

    /// Everything published so far (for the control plane).
    pub fn read(&self) -> Histogram<u64> {
        match self.0.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Default for Latency {
    fn default() -> Latency {
        Latency(Mutex::new(Latency::histogram()))
    }
}

/// Why the dataplane dropped a frame before or after the engine: every variant is a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// The frame did not parse (truncated, bad checksum, fragment, more than two tags...).
    Wire(peregrine_wire::Error),
    /// A frame for another protocol, port or address.
    NotForUs,
    /// The engine dropped the request.
    Engine(DropReason),
    /// A reply did not fit the TX buffer or could not be addressed.
    TxError,
    /// The journal could not take a binding change: the reply is not sent (the client retries).
    JournalFull,
    /// Too many replies already wait for the journal: this one is not sent.
    HeldFull,
}

/// Labels of [`Drop`], in counter order.
pub const DROP_LABELS: [&str; 24] = [
    "truncated",
    "malformed",
    "checksum",
    "fragment",
    "bad_magic",
    "unsupported",
    "no_space",
    "not_for_us",
    "dhcp_malformed",
    "not_request",
    "not_dhcp",
    "unexpected_type",
    "untrusted_relay_info",
    "no_scope",
    "scope_inactive",
    "pool_exhausted",
    "server_id_not_ours",
    "unknown_client",
    "no_binding",
    "reply_too_large",
    "tx_error",
    "tx_refused",
    "journal_full",
    "held_full",
];

impl Drop {
    /// Index into [`DROP_LABELS`].
    pub const fn index(self) -> usize {
        match self {
            Drop::Wire(e) => match e {
                peregrine_wire::Error::Truncated => 0,
                peregrine_wire::Error::Malformed => 1,
                peregrine_wire::Error::Checksum => 2,
                peregrine_wire::Error::Fragment => 3,
                peregrine_wire::Error::BadMagic => 4,
                peregrine_wire::Error::Unsupported => 5,
                peregrine_wire::Error::NoSpace => 6,
            },
            Drop::NotForUs => 7,
            Drop::Engine(r) => match r {
                DropReason::Malformed(_) => 8,
                DropReason::NotRequest => 9,
                DropReason::NotDhcp => 10,
                DropReason::UnexpectedType => 11,
                DropReason::UntrustedRelayInfo => 12,
                DropReason::NoScope => 13,
                DropReason::ScopeInactive => 14,
                DropReason::PoolExhausted => 15,
                DropReason::NotForUs => 16,
                DropReason::UnknownClient => 17,
                DropReason::NoBinding => 18,
                DropReason::ReplyTooLarge => 19,
            },
            Drop::TxError => 20,
            Drop::JournalFull => 22,
            Drop::HeldFull => 23,
        }
    }
}

/// Index of frames the kernel refused at flush, in [`DROP_LABELS`].
pub const TX_REFUSED: usize = 21;

/// Everything one worker counts.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_frames: Counter,
    /// Frames sent.
    pub tx_frames: Counter,
    /// DHCP messages received, by type code 1..=8 (index 0: other).
    pub messages_in: [Counter; 9],
    /// DHCP messages sent, by type code.
    pub messages_out: [Counter; 9],
    /// Drops, by [`Drop::index`].
    pub drops: [Counter; DROP_LABELS.len()],
    /// ARP replies sent for our addresses.
    pub arp_replies: Counter,
    /// ICMP echo replies sent.
    pub icmp_replies: Counter,
    /// ACKs whose binding change had to be durable before they left.
    pub deferred: Counter,
    /// Binding changes handed to the journal.
    pub journaled: Counter,
    /// Leases expired by this worker's timer runs.
    pub expired: Counter,
    /// DHCP requests handed to the worker that owns their client.
    pub handed_off: Counter,
    /// DHCP requests handled here because the owner's hand-off ring was full.
    pub handoff_full: Counter,
    /// DHCP requests other workers handed here.
    pub handed_in: Counter,
    /// Reply latency (see [`Latency`]).
    pub latency: Latency,
    /// Replies waiting for the journal to commit their binding change.
    pub held_replies: Gauge,
    /// Frames the last receive burst brought: at the burst size, the worker is saturated and
    /// frames queue in the ring.
    pub last_burst: Gauge,
}

impl WorkerStats {
    pub(crate) fn count_drop(&self, d: Drop) {
        self.drops[d.index()].inc();
    }

    pub(crate) fn message_in(&self, t: Option<MessageType>) {
        self.messages_in[t.map_or(0, |t| t as usize)].inc();
    }

    pub(crate) fn message_out(&self, t: MessageType) {
        self.messages_out[t as usize].inc();
    }
}
