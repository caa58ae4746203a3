//! Why frames are dropped: one enum over the wire's, the engine's and the worker's reasons.

use peregrine_engine::DropReason;
use peregrine_wire::Error as WireError;
use strum::{EnumCount, IntoEnumIterator};

/// Why the worker itself dropped a frame or a reply (the wire and the engine have their own
/// reasons, see [`FrameDrop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumCount, strum::EnumIter)]
#[repr(u8)]
pub enum WorkerDrop {
    /// A frame for another protocol, port or address.
    NotForUs,
    /// A reply did not fit the TX buffer or could not be addressed.
    TxError,
    /// The kernel (or NIC) refused a queued frame at flush.
    TxRefused,
    /// The commit gate's sink could not take a binding change: the reply is not sent (the
    /// client retries).
    JournalFull,
    /// Too many replies already wait for their binding change to commit: this one is not sent.
    HeldFull,
    /// Too many OFFERs already wait for their ping check: this DISCOVER is not answered (the
    /// client retries).
    ProbeFull,
    /// The client sent more than `[limits] client-rate` allows.
    RateLimitedClient,
    /// The relay sent more than `[limits] relay-rate` allows.
    RateLimitedRelay,
    /// A new DISCOVER past the share a worker that falls behind takes (`overload-priority`).
    OverloadDiscover,
    /// A DISCOVER its client already sent (same transaction id), while the worker falls behind.
    OverloadRetransmission,
}

impl WorkerDrop {
    /// The counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerDrop::NotForUs => "not_for_us",
            WorkerDrop::TxError => "tx_error",
            WorkerDrop::TxRefused => "tx_refused",
            WorkerDrop::JournalFull => "journal_full",
            WorkerDrop::HeldFull => "held_full",
            WorkerDrop::ProbeFull => "probe_full",
            WorkerDrop::RateLimitedClient => "rate_limited_client",
            WorkerDrop::RateLimitedRelay => "rate_limited_relay",
            WorkerDrop::OverloadDiscover => "overload_discover",
            WorkerDrop::OverloadRetransmission => "overload_retransmission",
        }
    }
}

/// Why a received frame got no answer, or a reply did not leave: every variant is one
/// counter of [`crate::WorkerStats::drops`] and one `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDrop {
    /// The frame did not parse (truncated, bad checksum, fragment, more than two tags...).
    Wire(WireError),
    /// The engine dropped the request.
    Engine(DropReason),
    /// The worker dropped it.
    Worker(WorkerDrop),
}

/// Where the engine's reasons start in the counter array: after the wire's.
const ENGINE_FROM: usize = WireError::COUNT;
/// Where the worker's reasons start: after the engine's.
const WORKER_FROM: usize = ENGINE_FROM + DropReason::COUNT;

impl FrameDrop {
    /// How many reasons there are: the length of a counter array indexed by [`Self::index`].
    pub const COUNT: usize = WORKER_FROM + WorkerDrop::COUNT;

    /// The reason's counter index, below [`Self::COUNT`].
    #[inline]
    pub const fn index(self) -> usize {
        match self {
            FrameDrop::Wire(e) => e as usize,
            FrameDrop::Engine(r) => ENGINE_FROM + r as usize,
            FrameDrop::Worker(w) => WORKER_FROM + w as usize,
        }
    }

    /// The `reason` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            FrameDrop::Wire(e) => e.as_str(),
            FrameDrop::Engine(r) => r.as_str(),
            FrameDrop::Worker(w) => w.as_str(),
        }
    }

    /// Every reason, in counter order.
    pub fn all() -> impl Iterator<Item = FrameDrop> {
        WireError::iter()
            .map(FrameDrop::Wire)
            .chain(DropReason::iter().map(FrameDrop::Engine))
            .chain(WorkerDrop::iter().map(FrameDrop::Worker))
    }

    /// The reason labelled `label`.
    pub fn from_label(label: &str) -> Option<FrameDrop> {
        FrameDrop::all().find(|d| d.as_str() == label)
    }
}

impl From<WireError> for FrameDrop {
    fn from(e: WireError) -> FrameDrop {
        FrameDrop::Wire(e)
    }
}

impl From<DropReason> for FrameDrop {
    fn from(r: DropReason) -> FrameDrop {
        FrameDrop::Engine(r)
    }
}

impl From<WorkerDrop> for FrameDrop {
    fn from(w: WorkerDrop) -> FrameDrop {
        FrameDrop::Worker(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_index_and_label() {
        let all: Vec<FrameDrop> = FrameDrop::all().collect();
        assert_eq!(all.len(), FrameDrop::COUNT);
        for (i, d) in all.iter().enumerate() {
            assert_eq!(d.index(), i, "{d:?}");
            assert_eq!(
                FrameDrop::from_label(d.as_str()),
                Some(*d),
                "label of {d:?} repeats"
            );
        }
    }
}
