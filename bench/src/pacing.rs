//! Open-loop rate control: a token bucket refilled at the target rate and emptied a burst at a
//! time, so a 20 000/s run sends bursts of up to 32 spread evenly instead of a clump per
//! millisecond. Times are nanoseconds since the run started; no clock is read here.

/// Sends per second and burst size.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Sends per second; 0 means as fast as possible.
    rate: u64,
    /// At most this many tokens accumulate (and are handed out at once).
    burst: u32,
    /// Sends granted so far.
    granted: u64,
    /// Grants do not run ahead of this: the bucket lags at most one burst behind the ideal
    /// schedule, so a stall is not followed by a flood.
    floor: u64,
}

impl Pacer {
    /// A pacer for `rate` sends per second (0: no limit) handing out at most `burst` at once.
    pub fn new(rate: u64, burst: u32) -> Self {
        Self {
            rate,
            burst: burst.max(1),
            granted: 0,
            floor: 0,
        }
    }

    /// How many sends are due at `now_ns`, at most `burst`; the caller sends them.
    pub fn take(&mut self, now_ns: u64) -> u32 {
        if self.rate == 0 {
            return self.burst;
        }
        // Sends the ideal schedule has made by now.
        let ideal = u64::try_from(u128::from(now_ns) * u128::from(self.rate) / 1_000_000_000)
            .unwrap_or(u64::MAX);
        // Forget what a stall left undone beyond one burst: open-loop, not catch-up.
        let behind = ideal.saturating_sub(u64::from(self.burst));
        self.floor = self.floor.max(behind);
        let base = self.granted.max(self.floor);
        let due = ideal.saturating_sub(base).min(u64::from(self.burst));
        self.granted = base + due;
        due as u32
    }

    /// When (ns since start) the next send becomes due, for an idle loop to sleep until.
    pub fn next_due_ns(&self) -> Option<u64> {
        if self.rate == 0 {
            return None;
        }
        let next = self.granted.max(self.floor) + 1;
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
    fn grants_the_rate_over_time_in_small_bursts() {
        let mut p = Pacer::new(20_000, 32);
        let mut total = 0u64;
        let mut biggest = 0;
        // Poll every 10 µs for one second.
        for t in (0..=1_000_000_000u64).step_by(10_000) {
            let n = p.take(t);
            biggest = biggest.max(n);
            total += u64::from(n);
        }
        assert_eq!(total, 20_000);
        assert!(
            biggest <= 1,
            "polled often, sends come one at a time: {biggest}"
        );
    }

    #[test]
    fn bursts_are_capped_and_a_stall_is_not_made_up() {
        let mut p = Pacer::new(100_000, 32);
        assert_eq!(p.take(0), 0);
        // 10 ms stall: 1 000 sends due, at most one burst is granted.
        assert_eq!(p.take(10_000_000), 32);
        assert_eq!(p.take(10_000_000), 0);
        // From then on the schedule continues at the rate.
        let n: u32 = (1..=100).map(|i| p.take(10_000_000 + i * 10_000)).sum();
        assert_eq!(n, 100);
    }

    #[test]
    fn unlimited_rate_always_grants_a_burst_and_next_due_follows_the_rate() {
        let mut p = Pacer::new(0, 32);
        assert_eq!(p.take(0), 32);
        assert_eq!(p.next_due_ns(), None);
        let mut p = Pacer::new(1000, 32);
        assert_eq!(p.take(1_000_000), 1);
        assert_eq!(p.next_due_ns(), Some(2_000_000));
    }
}
