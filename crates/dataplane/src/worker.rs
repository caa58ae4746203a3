//! The worker loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_engine::{Engine, Time};
use peregrine_io::{RxQueue, TxQueue};

use crate::frame::{Interface, Processed, process};
use crate::stats::{TX_REFUSED, WorkerStats};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Frames taken per receive burst.
    pub burst: usize,
    /// Longest a queued reply waits for its burst to fill (DPDK l3fwd's drain timer).
    pub drain: Duration,
    /// How long an idle worker sleeps in the kernel before polling again.
    pub idle_wait: Duration,
    /// Whether this worker also runs lease expiry (one worker does).
    pub runs_expiry: bool,
    /// Bindings expired per expiry run, so one run never stalls packets for long.
    pub expiry_budget: usize,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            burst: 32,
            drain: Duration::from_micros(100),
            idle_wait: Duration::from_millis(1),
            runs_expiry: false,
            expiry_budget: 1024,
        }
    }
}

/// One worker: a queue pair, the interfaces it serves, the shared engine, its own counters.
pub struct Worker<R, T> {
    engine: Arc<Engine>,
    rx: R,
    tx: T,
    interfaces: Vec<Interface>,
    stats: Arc<WorkerStats>,
    config: WorkerConfig,
}

impl<R: RxQueue, T: TxQueue> Worker<R, T> {
    /// A worker over `rx`/`tx`. Frames whose ifindex matches none of `interfaces` are
    /// handled as the first one's (backends with one interface report 0 or its index).
    pub fn new(
        engine: Arc<Engine>,
        (rx, tx): (R, T),
        interfaces: Vec<Interface>,
        stats: Arc<WorkerStats>,
        config: WorkerConfig,
    ) -> Worker<R, T> {
        Worker {
            engine,
            rx,
            tx,
            interfaces,
            stats,
            config,
        }
    }

    /// Runs until `quit` is set; flushes what is queued before returning.
    pub fn run(&mut self, quit: &AtomicBool) -> std::io::Result<()> {
        let mut last_flush = Instant::now();
        let mut last_expiry = Instant::now();
        while !quit.load(Ordering::Relaxed) {
            let now = unix_now();
            let received = self.poll(now)?;
            let waited = last_flush.elapsed();
            if self.tx.pending() > 0 && (received == 0 || waited >= self.config.drain) {
                self.flush()?;
                last_flush = Instant::now();
            }
            if self.config.runs_expiry && last_expiry.elapsed() >= Duration::from_secs(1) {
                let expired = self.engine.tick(now, self.config.expiry_budget, |_| {});
                self.stats.expired.add(expired as u64);
                last_expiry = Instant::now();
            }
            if received == 0 {
                self.rx.wait(self.config.idle_wait)?;
            }
        }
        self.flush()
    }

    /// One receive burst: handles every frame; returns how many arrived.
    pub fn poll(&mut self, now: Time) -> std::io::Result<usize> {
        let Worker {
            engine,
            rx,
            tx,
            interfaces,
            stats,
            config,
        } = self;
        let mut io_error = None;
        let n = rx.rx_burst(config.burst, &mut |frame| {
            stats.rx_frames.inc();
            let Some(iface) = interfaces
                .iter()
                .find(|i| i.ifindex == frame.ifindex)
                .or(interfaces.first())
            else {
                return;
            };
            if tx.buffer().is_none()
                && let Err(e) = flush(tx, stats)
            {
                io_error = Some(e);
                return;
            }
            let Some(buf) = tx.buffer() else { return };
            if let Processed::Reply(len) = process(engine, iface, now, &frame, buf, stats) {
                tx.queue(len, iface.ifindex);
            }
        })?;
        match io_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Sends the queued burst.
    pub fn flush(&mut self) -> std::io::Result<()> {
        flush(&mut self.tx, &self.stats)
    }
}

fn flush<T: TxQueue>(tx: &mut T, stats: &WorkerStats) -> std::io::Result<()> {
    let queued = tx.pending();
    if queued == 0 {
        return Ok(());
    }
    let sent = tx.flush()?;
    stats.tx_frames.add(sent as u64);
    stats.drops[TX_REFUSED].add(queued.saturating_sub(sent) as u64);
    Ok(())
}

/// Seconds since the UNIX epoch (the vDSO clock: no syscall).
fn unix_now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
