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
//! [`Idle::SLEEP_AFTER`] sleeps the worker's whole wait, up to [`Idle::MAX_SLEEP`] (the
//! server's worker waits 1 ms, the load generator's echo 10 ms): the first frames after such a
//! silence wait up to that long, and a line-rate flood arriving in it could overflow the ring
//! (clients retransmit).

use std::time::{Duration, Instant};

/// The idle state of one queue.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Idle {
    /// Empty polls since the queue last gave frames.
    empty_polls: u32,
    /// When the clock was first read in this run of empty polls.
    quiet_since: Option<Instant>,
    /// How long the queue has been quiet, as of the last look at the clock.
    quiet: Duration,
}

/// What to do instead of polling again at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleAction {
    /// Give the core to another runnable thread, if any, and poll again.
    Yield,
    /// Sleep this long, then poll again.
    Nap(Duration),
}

impl Idle {
    /// Silence after which an empty poll naps instead of yielding.
    pub(crate) const NAP_AFTER: Duration = Duration::from_millis(2);
    /// The longest nap.
    pub(crate) const MAX_NAP: Duration = Duration::from_micros(100);
    /// Silence after which an empty poll sleeps the whole wait the worker asks for.
    pub(crate) const SLEEP_AFTER: Duration = Duration::from_secs(1);
    /// The longest sleep. A millisecond of a 10-gigabit port at line rate is about 3 400 frames,
    /// more than a 1 024-descriptor ring holds: only a flood after a quiet second loses its
    /// first frames, where the echo's 10 ms wait would lose ten times as many.
    pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(1);
    /// Empty polls in a row between two looks at the clock: under load a queue is empty for
    /// a few polls at a time, and then the clock is never read (each read is a call in a VM:
    /// 1 % of a busy worker's time when read at every empty poll). Silence counts from the
    /// first look.
    pub(crate) const CHECK_EVERY: u32 = 64;

    /// The queue gave frames: the next empty polls yield.
    pub(crate) fn frames(&mut self) {
        *self = Idle::default();
    }

    /// The queue gave nothing; the worker would wait at most `timeout`. `now` is called only
    /// every [`Idle::CHECK_EVERY`] empty polls.
    pub(crate) fn empty(&mut self, now: impl FnOnce() -> Instant, timeout: Duration) -> IdleAction {
        self.empty_polls = self.empty_polls.wrapping_add(1);
        if self.empty_polls.is_multiple_of(Self::CHECK_EVERY) {
            let now = now();
            self.quiet = now.saturating_duration_since(*self.quiet_since.get_or_insert(now));
        }
        if self.quiet >= Self::SLEEP_AFTER {
            IdleAction::Nap(timeout.min(Self::MAX_SLEEP))
        } else if self.quiet >= Self::NAP_AFTER {
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

    /// [`Idle::CHECK_EVERY`] empty polls, the clock saying `at` when read; what the last
    /// one decided, and whether the clock was read once.
    fn look(idle: &mut Idle, at: Instant, timeout: Duration) -> IdleAction {
        let mut reads = 0;
        let mut action = IdleAction::Yield;
        for _ in 0..Idle::CHECK_EVERY {
            action = idle.empty(
                || {
                    reads += 1;
                    at
                },
                timeout,
            );
        }
        assert_eq!(
            reads, 1,
            "the clock is read once every CHECK_EVERY empty polls"
        );
        action
    }

    #[test]
    fn a_queue_naps_only_after_being_quiet_for_nap_after() {
        let t0 = Instant::now();
        let mut idle = Idle::default();
        assert_eq!(look(&mut idle, t0, MS), IdleAction::Yield);
        assert_eq!(look(&mut idle, t0 + MS, MS), IdleAction::Yield);
        assert_eq!(
            look(&mut idle, t0 + 2 * MS, MS),
            IdleAction::Nap(Idle::MAX_NAP)
        );
        // Between looks the last one holds: the next empty poll naps too.
        assert_eq!(
            idle.empty(|| unreachable!(), MS),
            IdleAction::Nap(Idle::MAX_NAP)
        );
        // A shorter wait asked for (replies held for the journal) is a shorter nap.
        let drain = Duration::from_micros(40);
        assert_eq!(look(&mut idle, t0 + 3 * MS, drain), IdleAction::Nap(drain));
        // Quiet for a second: the whole wait.
        let almost = t0 + Duration::from_millis(999);
        assert_eq!(look(&mut idle, almost, MS), IdleAction::Nap(Idle::MAX_NAP));
        assert_eq!(
            look(&mut idle, t0 + Idle::SLEEP_AFTER, MS),
            IdleAction::Nap(MS)
        );
        // Never longer than MAX_SLEEP, whatever the wait asked for.
        let long = t0 + Idle::SLEEP_AFTER + MS;
        assert_eq!(
            look(&mut idle, long, 10 * MS),
            IdleAction::Nap(Idle::MAX_SLEEP)
        );
        idle.frames();
        assert_eq!(idle.empty(|| unreachable!(), MS), IdleAction::Yield);
    }

    #[test]
    fn a_frame_starts_the_quiet_over() {
        let t0 = Instant::now();
        let mut idle = Idle::default();
        assert_eq!(look(&mut idle, t0, MS), IdleAction::Yield);
        idle.frames();
        // Quiet since t0 + 1.5 ms, not since t0: still yielding 2 ms after t0.
        let again = t0 + MS + MS / 2;
        assert_eq!(look(&mut idle, again, MS), IdleAction::Yield);
        assert_eq!(look(&mut idle, t0 + 3 * MS, MS), IdleAction::Yield);
        assert_eq!(
            look(&mut idle, again + 2 * MS, MS),
            IdleAction::Nap(Idle::MAX_NAP)
        );
    }
}
