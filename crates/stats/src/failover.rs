//! What the failover link shows the control plane, and what the operator asks of it.

use std::collections::BTreeMap;
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
    /// The partner's binding updates refused here, by reason (see
    /// [`FailoverStatus::rejected_update`]).
    pub rejected: Tally,
    /// Our binding updates the partner refused, by reason.
    pub refused_by_partner: Tally,
    /// Connections closed or refused by this server, by reason (see
    /// [`FailoverStatus::refuse_connection`]).
    pub connections_closed: Tally,
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

    /// The partner's update was refused here for `reason` (the reject reason's name).
    pub fn rejected_update(&self, reason: &'static str) {
        self.updates_rejected.fetch_add(1, Ordering::Relaxed);
        self.rejected.add(reason);
    }

    /// A connection was closed or refused by this server for `reason`.
    pub fn refuse_connection(&self, reason: &'static str) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
        self.connections_closed.add(reason);
    }
}

/// Counts by reason, a short stable name (a metrics label). Written by the failover link's
/// thread only, never by a worker: a lock is cheap there.
#[derive(Debug, Default)]
pub struct Tally(Mutex<BTreeMap<&'static str, u64>>);

impl Tally {
    /// Counts one more for `reason`.
    pub fn add(&self, reason: &'static str) {
        if let Ok(mut t) = self.0.lock() {
            *t.entry(reason).or_default() += 1;
        }
    }

    /// Every reason counted so far, with its count.
    pub fn read(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}
