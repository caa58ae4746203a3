//! What the failover link shows the control plane, and what the operator asks of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::Latency;

/// The failover link's state and counters, written by the link thread, read at scrape and API
/// time; and the operator's PARTNER-DOWN request, which the link thread carries out.
#[derive(Debug, Default)]
pub struct FailoverStatus {
    view: Mutex<FailoverView>,
    partner_down: AtomicBool,
    /// Binding updates sent to the partner.
    pub updates_sent: AtomicU64,
    /// The partner's binding updates accepted.
    pub updates_accepted: AtomicU64,
    /// The partner's binding updates refused by the acceptance rules.
    pub updates_rejected: AtomicU64,
    /// Connections made (either side opened them).
    pub connections: AtomicU64,
    /// Connections closed by the session (a timeout, a refusal, bad input) or refused at
    /// accept (an unconfigured address).
    pub connections_refused: AtomicU64,
    /// Binding changes the workers could not queue for the partner (the queue was full).
    pub queue_dropped: AtomicU64,
    /// Replication lag, nanoseconds: from a worker's change reaching the link to the
    /// partner's acknowledgement of its update (ACK to BNDACK, the journal write at the
    /// partner included).
    pub lag: Latency,
}

/// A snapshot of the relationship.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailoverView {
    /// `primary` or `secondary`.
    pub role: &'static str,
    /// Our state (the draft's name).
    pub state: &'static str,
    /// Its number in the protocol (2 NORMAL, 3 COMMUNICATIONS-INTERRUPTED, 4 PARTNER-DOWN, ...).
    pub state_code: u8,
    /// When we entered `state`.
    pub since: u64,
    /// The partner's last reported state, if heard since this server started.
    pub partner_state: Option<&'static str>,
    /// Its number in the protocol.
    pub partner_state_code: Option<u8>,
    /// Whether the connection is up.
    pub connected: bool,
    /// When the partner was last heard (UNIX seconds), if ever.
    pub last_contact: Option<u64>,
    /// The partner's clock minus ours, seconds, as measured at connect.
    pub clock_skew: Option<i64>,
    /// Our updates waiting for room or for their acknowledgement.
    pub unacked: usize,
    /// The MCLT in force, seconds (the secondary's once learned).
    pub mclt: Option<u32>,
    /// The outcome of the operator's last PARTNER-DOWN request: `None` if none was made,
    /// else the state it was refused in, or `accepted`.
    pub partner_down: Option<String>,
}

impl FailoverStatus {
    /// The current snapshot.
    pub fn view(&self) -> FailoverView {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Replaces the snapshot (the link thread).
    pub fn publish(&self, view: FailoverView) {
        if let Ok(mut v) = self.view.lock() {
            *v = view;
        }
    }

    /// The operator asks for PARTNER-DOWN.
    pub fn request_partner_down(&self) {
        self.partner_down.store(true, Ordering::Release);
    }

    /// The link thread carried the request out and published the outcome.
    pub fn partner_down_done(&self) {
        self.partner_down.store(false, Ordering::Release);
    }

    /// Whether a PARTNER-DOWN request is still waiting for the link thread.
    pub fn partner_down_pending(&self) -> bool {
        self.partner_down.load(Ordering::Acquire)
    }
}
