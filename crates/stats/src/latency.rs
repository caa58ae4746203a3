//! The reply latency histogram: recorded per worker, merged at scrape time.

use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Reply latency in nanoseconds, from the frame leaving the receive ring to its reply being
/// queued for sending (the wait for the commit gate included), with two significant digits up
/// to [`Latency::MAX_NS`].
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
