//! What a polling worker does when its queue gave it nothing: yield the core while frames came
//! lately, nap once the queue has been quiet for a while, and sleep its whole wait once it has
//! been quiet for long.
//!
//! A poll-mode queue has nothing to sleep on. Yielding keeps a port with traffic answered at
//! once, but a worker whose port is quiet (a second port, a standby link, the night) would
//! otherwise take half of a core it shares with busy workers or the journal writer. Napping
//! only after [`Idle::NAP_AFTER`] of silence keeps a port with traffic from ever napping (at
//! 1 000 frames a second it sees one a millisecond), and a nap of at most [`Idle::MAX_NAP`]
//! leaves a 1 024-descriptor ring room for what a 10-gigabit port can bring meanwhile (about 340
//! DHCP frames of 350 bytes at line rate). Each nap still wakes the worker for a turn (on the
//! 2-core VM of BENCHMARKS.md about 8 % of a core at 100 µs), so a port quiet for
//! [`Idle::SLEEP_AFTER`] sleeps the worker's whole wait (1 ms unless replies are held): the
//! first frames after such a silence wait up to that long, and a line-rate flood arriving in
//! it could overflow the ring (clients retransmit).

use std::time::{Duration, Instant};

/// The idle state of one queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct Idle {
    /// Since when the queue has given nothing, if it has not lately.
    quiet_since: Option<Instant>,
}

/// What to do instead of polling again at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// Give the core to another runnable thread, if any, and poll again.
    Yield,
    /// Sleep this long, then poll again.
    Nap(Duration),
}

impl Idle {
    /// Silence after which an empty poll naps instead of yielding.
    pub const NAP_AFTER: Duration = Duration::from_millis(2);
    /// The longest nap.
    pub const MAX_NAP: Duration = Duration::from_micros(100);
    /// Silence after which an empty poll sleeps the whole wait the worker asks for.
    pub const SLEEP_AFTER: Duration = Duration::from_secs(1);

    /// The queue gave frames: the next empty poll yields.
    pub fn frames(&mut self) {
        self.quiet_since = None;
    }

    /// The queue gave nothing at `now`; the worker would wait at most `timeout`.
    pub fn empty(&mut self, now: Instant, timeout: Duration) -> IdleAction {
        let quiet = now.saturating_duration_since(*self.quiet_since.get_or_insert(now));
        if quiet >= Self::SLEEP_AFTER {
            IdleAction::Nap(timeout)
        } else if quiet >= Self::NAP_AFTER {
            IdleAction::Nap(timeout.min(Self::MAX_NAP))
        } else {
            IdleAction::Yield
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_queue_naps_only_after_being_quiet_for_nap_after() {
        let t0 = Instant::now();
        let mut idle = Idle::default();
        assert_eq!(idle.empty(t0, MS), IdleAction::Yield);
        assert_eq!(idle.empty(t0 + MS, MS), IdleAction::Yield);
        assert_eq!(idle.empty(t0 + 2 * MS, MS), IdleAction::Nap(Idle::MAX_NAP));
        // A shorter wait asked for (replies held for the journal) is a shorter nap.
        let drain = Duration::from_micros(40);
        assert_eq!(idle.empty(t0 + 3 * MS, drain), IdleAction::Nap(drain));
        // Quiet for a second: the whole wait.
        let long = t0 + Idle::SLEEP_AFTER;
        let almost = t0 + Duration::from_millis(999);
        assert_eq!(idle.empty(almost, MS), IdleAction::Nap(Idle::MAX_NAP));
        assert_eq!(idle.empty(long, MS), IdleAction::Nap(MS));
        idle.frames();
        assert_eq!(idle.empty(long + MS, MS), IdleAction::Yield);
    }

    #[test]
    fn a_frame_starts_the_quiet_over() {
        let t0 = Instant::now();
        let mut idle = Idle::default();
        assert_eq!(idle.empty(t0, MS), IdleAction::Yield);
        idle.frames();
        // Quiet since t0 + 1.5 ms, not since t0: still yielding 2 ms after t0.
        let again = t0 + MS + MS / 2;
        assert_eq!(idle.empty(again, MS), IdleAction::Yield);
        assert_eq!(idle.empty(t0 + 3 * MS, MS), IdleAction::Yield);
        assert_eq!(
            idle.empty(again + 2 * MS, MS),
            IdleAction::Nap(Idle::MAX_NAP)
        );
    }
}
