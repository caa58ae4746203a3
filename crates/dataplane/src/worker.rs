//! The worker loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::VecDeque;

use hdrhistogram::Histogram;
use peregrine_engine::{BindingEvent, Engine, Time};
use peregrine_io::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};
use peregrine_wire::dhcp::MessageType;

use crate::frame::{Interface, Processed, process};
use crate::handoff::{Handoff, Offered};
use crate::stats::{Drop, Latency, TX_REFUSED, WorkerStats};

/// Where binding changes become durable (the lease journal), as one worker sees it.
pub trait Journal {
    /// Queues `event` without blocking; returns its sequence number, or `None` when the
    /// journal cannot take it now.
    fn submit(&mut self, event: &BindingEvent) -> Option<u64>;

    /// The worker submitted a burst of changes: have them written now. Called once per burst
    /// in which anything was submitted, so that a journal whose writer must be woken wakes it
    /// once per burst rather than once per change.
    fn flush(&mut self) {}

    /// The highest sequence number that is on stable storage.
    fn committed(&self) -> u64;
}

/// The journal of a server that keeps leases in memory only: `Option::<NoJournal>::None`.
#[derive(Debug, Clone, Copy)]
pub enum NoJournal {}

impl Journal for NoJournal {
    fn submit(&mut self, _: &BindingEvent) -> Option<u64> {
        match *self {}
    }

    fn committed(&self) -> u64 {
        match *self {}
    }

    fn flush(&mut self) {
        match *self {}
    }
}

/// Replies waiting for their binding change to be durable, in submission order, in buffers
/// allocated once.
struct Held {
    buffers: Vec<Box<[u8]>>,
    free: Vec<usize>,
    waiting: VecDeque<HeldReply>,
}

struct HeldReply {
    seq: u64,
    buffer: usize,
    len: usize,
    /// Counted in [`WorkerStats::messages_out`] when it leaves.
    kind: MessageType,
    ifindex: u32,
    /// When its request left the receive ring.
    received: Instant,
}

impl Held {
    fn new(capacity: usize) -> Held {
        Held {
            buffers: (0..capacity)
                .map(|_| vec![0u8; FRAME_CAPACITY].into_boxed_slice())
                .collect(),
            free: (0..capacity).rev().collect(),
            waiting: VecDeque::with_capacity(capacity),
        }
    }

    /// Keeps a copy of `frame` until `seq` is durable; false if every buffer is in use.
    fn hold(
        &mut self,
        seq: u64,
        frame: &[u8],
        kind: MessageType,
        ifindex: u32,
        received: Instant,
    ) -> bool {
        let Some(buffer) = self.free.pop() else {
            return false;
        };
        self.buffers[buffer][..frame.len()].copy_from_slice(frame);
        self.waiting.push_back(HeldReply {
            seq,
            buffer,
            len: frame.len(),
            kind,
            ifindex,
            received,
        });
        true
    }
}

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
    /// Replies that may wait for the journal at once; each has a buffer of
    /// [`FRAME_CAPACITY`] bytes allocated when the worker starts (6 MiB at the default 4096).
    pub held_replies: usize,
    /// How long after the last frame another worker handed here this worker keeps polling at
    /// the drain interval instead of sleeping [`WorkerConfig::idle_wait`]: a worker that sleeps
    /// in its own queue's wait sees handed frames only when it wakes.
    pub handoff_linger: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            burst: 32,
            drain: Duration::from_micros(100),
            idle_wait: Duration::from_millis(1),
            runs_expiry: false,
            expiry_budget: 1024,
            held_replies: 4096,
            handoff_linger: Duration::from_secs(1),
        }
    }
}

/// One worker: a queue pair, the interfaces it serves, the shared engine, its own counters,
/// and its side of the lease journal.
pub struct Worker<R, T, J> {
    engine: Arc<Engine>,
    rx: R,
    tx: T,
    interfaces: Vec<Interface>,
    stats: Arc<WorkerStats>,
    config: WorkerConfig,
    journal: Option<J>,
    held: Held,
    /// Latencies recorded since the last [`Latency::publish`].
    latency: Histogram<u64>,
    /// This worker's end of the hand-off mesh, if it shares its interface with others.
    handoff: Option<Handoff>,
    /// When another worker last handed a frame here.
    last_handed_in: Instant,
}

impl<R: RxQueue, T: TxQueue, J: Journal> Worker<R, T, J> {
    /// A worker over `rx`/`tx`. Frames whose ifindex matches none of `interfaces` are
    /// handled as the first one's (backends with one interface report 0 or its index).
    /// Without a `journal`, replies leave at once and binding changes are kept in memory only.
    pub fn new(
        engine: Arc<Engine>,
        (rx, tx): (R, T),
        interfaces: Vec<Interface>,
        stats: Arc<WorkerStats>,
        config: WorkerConfig,
        journal: Option<J>,
    ) -> Worker<R, T, J> {
        let held = Held::new(if journal.is_some() {
            config.held_replies
        } else {
            0
        });
        Worker {
            engine,
            rx,
            tx,
            interfaces,
            stats,
            config,
            journal,
            held,
            latency: Latency::histogram(),
            handoff: None,
            last_handed_in: Instant::now(),
        }
    }

    /// Hands each DHCP request this worker receives to the worker of `handoff`'s mesh that
    /// owns its client, and handles what the others hand here (see [`Handoff`]).
    #[must_use]
    pub fn with_handoff(mut self, handoff: Handoff) -> Worker<R, T, J> {
        self.handoff = Some(handoff);
        self
    }

    /// Runs until `quit` is set; flushes what is queued before returning.
    pub fn run(&mut self, quit: &AtomicBool) -> std::io::Result<()> {
        let mut last_flush = Instant::now();
        let mut last_expiry = Instant::now();
        while !quit.load(Ordering::Relaxed) {
            let now = unix_now();
            let received = self.poll(now)?;
            self.release_committed()?;
            let waited = last_flush.elapsed();
            if self.tx.pending() > 0 && (received == 0 || waited >= self.config.drain) {
                self.flush()?;
                last_flush = Instant::now();
            }
            if last_expiry.elapsed() >= Duration::from_secs(1) {
                if self.config.runs_expiry {
                    self.expire(now);
                }
                self.publish_latency();
                last_expiry = Instant::now();
            }
            self.stats.held_replies.set(self.held.waiting.len() as u64);
            if received == 0 && !self.handoff.as_ref().is_some_and(Handoff::pending) {
                // Replies waiting for the journal are released as soon as it commits, and
                // frames other workers hand here wait for this loop: poll for them at the
                // drain interval rather than sleeping a whole idle period, while they come.
                let handed_lately = self.handoff.is_some()
                    && self.last_handed_in.elapsed() < self.config.handoff_linger;
                let wait = if self.held.waiting.is_empty() && !handed_lately {
                    self.config.idle_wait
                } else {
                    self.config.drain
                };
                self.rx.wait(wait)?;
            }
        }
        // Let the journal commit what is held (bounded), so a clean stop loses no reply.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.held.waiting.is_empty() && Instant::now() < deadline {
            self.release_committed()?;
            std::thread::sleep(self.config.drain);
        }
        self.publish_latency();
        self.flush()
    }

    /// Adds the latencies recorded since the last call to [`WorkerStats::latency`], where the
    /// control plane reads them. [`Worker::run`] does this about once a second.
    pub fn publish_latency(&mut self) {
        self.stats.latency.publish(&mut self.latency);
    }

    /// Runs lease expiry, journaling what it changes.
    fn expire(&mut self, now: Time) {
        let Worker {
            engine,
            journal,
            stats,
            config,
            ..
        } = self;
        let expired = engine.tick(now, config.expiry_budget, |event| {
            if let Some(j) = journal.as_mut() {
                match j.submit(&event) {
                    Some(_) => stats.journaled.inc(),
                    None => stats.count_drop(Drop::JournalFull),
                }
            }
        });
        if expired > 0
            && let Some(j) = journal.as_mut()
        {
            j.flush();
        }
        stats.expired.add(expired as u64);
    }

    /// One receive burst: handles every frame (or hands it to the worker that owns its
    /// client), then what other workers handed here; returns how many frames were handled or
    /// passed on.
    pub fn poll(&mut self, now: Time) -> std::io::Result<usize> {
        let Worker {
            engine,
            rx,
            tx,
            interfaces,
            stats,
            config,
            journal,
            held,
            latency,
            handoff,
            ..
        } = self;
        let mut io_error = None;
        let received = Instant::now();
        let mut ctx = Context {
            engine,
            tx,
            interfaces,
            stats,
            journal,
            held,
            now,
            replies: 0,
            submitted: false,
        };
        let n = rx.rx_burst(config.burst, &mut |frame| {
            ctx.stats.rx_frames.inc();
            if let Some(h) = handoff.as_ref() {
                match h.offer(&frame, received) {
                    Offered::Sent => {
                        ctx.stats.handed_off.inc();
                        return;
                    }
                    Offered::Keep { full: true } => ctx.stats.handoff_full.inc(),
                    Offered::Keep { full: false } => {}
                }
            }
            if let Err(e) = ctx.handle(&frame, received) {
                io_error = Some(e);
            }
        })?;
        ctx.stats.last_burst.set(n as u64);
        if ctx.replies > 0 {
            // One clock read per burst: every reply of the burst is charged the whole burst.
            latency.saturating_record_n(nanos(received.elapsed()), ctx.replies);
        }
        let mut handed_in = 0;
        if let Some(h) = handoff.as_ref() {
            handed_in = h.receive(config.burst, &mut |frame, received| {
                let before = ctx.replies;
                if let Err(e) = ctx.handle(frame, received) {
                    io_error = Some(e);
                }
                if ctx.replies > before {
                    latency.saturating_record(nanos(received.elapsed()));
                }
            });
            ctx.stats.handed_in.add(handed_in as u64);
            if handed_in > 0 {
                self.last_handed_in = Instant::now();
            }
        }
        if ctx.submitted
            && let Some(j) = ctx.journal.as_mut()
        {
            j.flush();
        }
        match io_error {
            Some(e) => Err(e),
            None => Ok(n + handed_in),
        }
    }

    /// Queues, in order, every held reply whose binding change the journal has committed.
    pub fn release_committed(&mut self) -> std::io::Result<()> {
        let Some(journal) = self.journal.as_ref() else {
            return Ok(());
        };
        let committed = journal.committed();
        while let Some(front) = self.held.waiting.front() {
            if front.seq > committed {
                break;
            }
            if self.tx.buffer().is_none() {
                flush(&mut self.tx, &self.stats)?;
            }
            let Some(buf) = self.tx.buffer() else { break };
            let reply = self
                .held
                .waiting
                .pop_front()
                .unwrap_or_else(|| unreachable!());
            buf[..reply.len].copy_from_slice(&self.held.buffers[reply.buffer][..reply.len]);
            self.tx.queue(reply.len, reply.ifindex);
            self.stats.message_out(reply.kind);
            self.held.free.push(reply.buffer);
            self.latency
                .saturating_record(nanos(reply.received.elapsed()));
        }
        Ok(())
    }

    /// Sends the queued burst.
    pub fn flush(&mut self) -> std::io::Result<()> {
        flush(&mut self.tx, &self.stats)
    }
}

/// What handling one frame needs of its worker, borrowed for a burst.
struct Context<'w, T, J> {
    engine: &'w Engine,
    tx: &'w mut T,
    interfaces: &'w [Interface],
    stats: &'w WorkerStats,
    journal: &'w mut Option<J>,
    held: &'w mut Held,
    now: Time,
    /// Replies queued so far in this burst.
    replies: u64,
    /// Whether a binding change went to the journal in this burst.
    submitted: bool,
}

impl<T: TxQueue, J: Journal> Context<'_, T, J> {
    /// Handles one frame received at `received`: the reply is queued, held for the journal,
    /// or there is none. Errors are the TX queue's.
    fn handle(&mut self, frame: &RxFrame<'_>, received: Instant) -> std::io::Result<()> {
        let Some(iface) = self
            .interfaces
            .iter()
            .find(|i| i.ifindex == frame.ifindex)
            .or(self.interfaces.first())
        else {
            return Ok(());
        };
        if self.tx.buffer().is_none() {
            flush(self.tx, self.stats)?;
        }
        let Some(buf) = self.tx.buffer() else {
            return Ok(());
        };
        let stats = self.stats;
        match process(self.engine, iface, self.now, frame, buf, stats) {
            Processed::Nothing => {}
            Processed::Reply(len) => {
                self.tx.queue(len, iface.ifindex);
                self.replies += 1;
            }
            Processed::AfterCommit { len, event, kind } => match self.journal.as_mut() {
                // No journal configured: the change lives in memory only, the reply goes now.
                None => {
                    if let Some(kind) = kind.filter(|_| len > 0) {
                        self.tx.queue(len, iface.ifindex);
                        stats.message_out(kind);
                        self.replies += 1;
                    }
                }
                Some(j) => match j.submit(&event) {
                    None => stats.count_drop(Drop::JournalFull),
                    Some(seq) => {
                        stats.journaled.inc();
                        self.submitted = true;
                        if let Some(kind) = kind.filter(|_| len > 0) {
                            let reply = &buf[..len];
                            if !self.held.hold(seq, reply, kind, iface.ifindex, received) {
                                stats.count_drop(Drop::HeldFull);
                            }
                        }
                    }
                },
            },
        }
        Ok(())
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

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Seconds since the UNIX epoch (the vDSO clock: no syscall).
fn unix_now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
