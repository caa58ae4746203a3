//! Configuration reloads, by outcome, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file is in force.
    Ok,
    /// The file is not a valid configuration.
    Invalid,
    /// The file changes what only a restart can.
    NeedsRestart,
    /// The workers did not all stop in time.
    Busy,
    /// The new engine could not be built.
    Failed,
}

impl ReloadOutcome {
    /// Every outcome, in label order.
    pub const ALL: [ReloadOutcome; 5] = [
        ReloadOutcome::Ok,
        ReloadOutcome::Invalid,
        ReloadOutcome::NeedsRestart,
        ReloadOutcome::Busy,
        ReloadOutcome::Failed,
    ];

    /// The counter label.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Ok => "ok",
            ReloadOutcome::Invalid => "invalid",
            ReloadOutcome::NeedsRestart => "needs_restart",
            ReloadOutcome::Busy => "busy",
            ReloadOutcome::Failed => "failed",
        }
    }
}

/// Reloads so far, by outcome, and when the last one put a file in force.
#[derive(Debug, Default)]
pub struct ReloadStats {
    outcomes: [AtomicU64; 5],
    last_ok_unix: AtomicU64,
    last_pause_us: AtomicU64,
}

impl ReloadStats {
    /// Counts a reload that ended with `outcome`; one in force at `now` (UNIX seconds) after
    /// the workers waited `pause_us`.
    pub fn count(&self, outcome: ReloadOutcome, now: u64, pause_us: u64) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome == ReloadOutcome::Ok {
            self.last_ok_unix.store(now, Ordering::Relaxed);
            self.last_pause_us.store(pause_us, Ordering::Relaxed);
        }
    }

    /// Reloads that ended with `outcome`.
    pub fn get(&self, outcome: ReloadOutcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    /// When the last reload put a file in force (UNIX seconds; 0: none yet).
    pub fn last_ok_unix(&self) -> u64 {
        self.last_ok_unix.load(Ordering::Relaxed)
    }

    /// How long the workers waited in the last reload put in force, microseconds.
    pub fn last_pause_us(&self) -> u64 {
        self.last_pause_us.load(Ordering::Relaxed)
    }
}
