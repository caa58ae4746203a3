//! Open-loop rate control: a token bucket refilled at the target rate and emptied a burst at a
//! time. At 20 000/s with bursts of 32 a burst leaves every 1.6 ms, as from a batching relay or
//! an l3fwd-style TX loop; with bursts of 1 exchanges are spaced evenly. After a stall (the
//! generator descheduled) up to [`CATCH_UP`] bursts are made up at once, and no more: the
//! schedule is open-loop, not catch-up. Times are nanoseconds since the run started; no clock
//! is read here.

/// Bursts a stalled generator may make up: 16 of 32 are 2.1 ms at 240 000/s. With 4 (0.5 ms)
/// the late wake-ups of this lab's VM left the generator 4-8 % short of its rate against a
/// server with fsync and 3-7 % against the echo, a shortfall it never made good
/// (BENCHMARKS.md, "The generator's catch-up").
pub const CATCH_UP: u64 = 16;

/// Sends per second and burst size.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Sends per second; 0 means as fast as possible.
    rate: u64,
    /// Sends are granted this many at a time.
    burst: u64,
    /// Sends granted so far (or forgiven after a stall).
    granted: u64,
}

impl Pacer {
    /// A pacer for `rate` sends per second (0: no limit) granting `burst` at a time.
    pub fn new(rate: u64, burst: u32) -> Self {
        Self {
            rate,
            burst: u64::from(burst.max(1)),
            granted: 0,
        }
    }

    /// Sends the ideal schedule has made by `now_ns`.
    fn ideal(&self, now_ns: u64) -> u64 {
        u64::try_from(u128::from(now_ns) * u128::from(self.rate) / 1_000_000_000)
            .unwrap_or(u64::MAX)
    }

    /// How many sends are due at `now_ns`: a whole burst or nothing. Call again until it
    /// returns 0 to catch up after a stall.
    pub fn take(&mut self, now_ns: u64) -> u32 {
        if self.rate == 0 {
            return self.burst as u32;
        }
        let ideal = self.ideal(now_ns);
        // Forget what a stall left undone beyond CATCH_UP bursts.
        self.granted = self
            .granted
            .max(ideal.saturating_sub(CATCH_UP * self.burst));
        if ideal >= self.granted + self.burst {
            self.granted += self.burst;
            self.burst as u32
        } else {
            0
        }
    }

    /// When (ns since start) the next burst becomes due, for an idle loop to sleep until.
    pub fn next_due_ns(&self) -> Option<u64> {
        if self.rate == 0 {
            return None;
        }
        let next = self.granted + self.burst;
        Some(
            u64::try_from(u128::from(next) * 1_000_000_000 / u128::from(self.rate))
                .unwrap_or(u64::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_the_rate_over_time_in_whole_bursts() {
        let mut p = Pacer::new(20_000, 32);
        let mut total = 0u64;
        let mut sizes = std::collections::BTreeSet::new();
        // Poll every 10 µs for one second.
        for t in (0..=1_000_000_000u64).step_by(10_000) {
            let n = p.take(t);
            if n > 0 {
                sizes.insert(n);
            }
            total += u64::from(n);
        }
        assert_eq!(total, 20_000 / 32 * 32);
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [32]);
        // Bursts of one are spaced evenly.
        let mut p = Pacer::new(20_000, 1);
        let n: u32 = (0..=100u64).map(|i| p.take(i * 10_000)).sum();
        assert_eq!(n, 20);
    }

    #[test]
    fn a_stall_is_made_up_by_at_most_catch_up_bursts() {
        let mut p = Pacer::new(100_000, 32);
        assert_eq!(p.take(0), 0);
        // 10 ms stall: 1 000 sends due, 16 bursts (512) are granted and the rest forgiven.
        let caught_up: Vec<u32> = (0..20).map(|_| p.take(10_000_000)).collect();
        assert_eq!(caught_up.iter().filter(|&&n| n == 32).count(), 16);
        assert_eq!(caught_up[16..], [0, 0, 0, 0]);
        // From then on the schedule continues at the rate: 100 more due in 1 ms.
        let n: u32 = (1..=100).map(|i| p.take(10_000_000 + i * 10_000)).sum();
        assert_eq!(n, 96);
    }

    #[test]
    fn unlimited_rate_always_grants_a_burst_and_next_due_follows_the_rate() {
        let mut p = Pacer::new(0, 32);
        assert_eq!(p.take(0), 32);
        assert_eq!(p.next_due_ns(), None);
        let mut p = Pacer::new(1000, 32);
        assert_eq!(p.take(1_000_000), 0);
        assert_eq!(p.next_due_ns(), Some(32_000_000));
        assert_eq!(p.take(32_000_000), 32);
        assert_eq!(p.next_due_ns(), Some(64_000_000));
    }
}
