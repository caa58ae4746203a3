//! The worker loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use peregrine_engine::{BindingEvent, BindingSink, Engine, Time};
use peregrine_io::{RxFrame, RxQueue, TxQueue};
use peregrine_stats::{Latency, WorkerDrop, WorkerStats};
use peregrine_wire::dhcp::MessageType;

use crate::admission::Admission;
use crate::commit::{Admitted, CommitGate};
use crate::frame::{Interface, Outcome, Reply, process, write_probe};
use crate::handoff::{Handoff, Offered};
use crate::probe::{self, Due, ProbeAnswers, Probes};
use crate::shared::Member;

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
    /// The commit gate's room, in replies of the largest size: [`peregrine_io::FRAME_CAPACITY`]
    /// bytes each, allocated when the worker starts (6 MiB at the default 4096). Replies are held
    /// back to back in it, so about four times as many of a usual size (350 bytes) fit.
    pub held_replies: usize,
    /// How long after the last frame another worker handed here this worker keeps polling at
    /// the drain interval instead of sleeping [`WorkerConfig::idle_wait`]: a worker that sleeps
    /// in its own queue's wait sees handed frames only when it wakes.
    pub handoff_linger: Duration,
    /// OFFERs that may wait for a ping check at once; each has two buffers of
    /// [`peregrine_io::FRAME_CAPACITY`] bytes allocated when the worker starts (12 MiB at
    /// 4096). With a ping check of W ms, a worker offers at most this many addresses per W ms;
    /// 0 (the default) for a server with no ping check.
    pub probe_slots: usize,
    /// The workers sharing `[limits]`' rates (each applies its share).
    pub workers: u32,
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
            probe_slots: 0,
            workers: 1,
        }
    }
}

/// One worker: a queue pair, the interfaces it serves, the shared engine, its own counters,
/// and its commit gate (over its side of the lease journal, or of a fan-out).
pub struct Worker<R, T, S> {
    engine: Arc<Engine>,
    rx: R,
    tx: T,
    interfaces: Vec<Interface>,
    stats: Arc<WorkerStats>,
    config: WorkerConfig,
    gate: CommitGate<S>,
    /// Latencies recorded since the last [`Latency::publish`].
    latency: Histogram<u64>,
    /// This worker's end of the hand-off mesh, if it shares its interface with others.
    handoff: Option<Handoff>,
    /// When another worker last handed a frame here.
    last_handed_in: Instant,
    /// OFFERs waiting for a ping check.
    probes: Probes,
    /// Addresses that answered a probe, shared with the other workers.
    answers: Arc<ProbeAnswers>,
    /// Where a due OFFER or its request is copied while it is sent or handled again.
    scratch: Box<[u8]>,
    /// This worker's membership of the server's shared engine, if it can be reloaded.
    member: Option<Member>,
    /// Storm and flood control.
    admission: Admission,
    /// Frames the last receive burst brought.
    last_burst: usize,
}

impl<R: RxQueue, T: TxQueue, S: BindingSink> Worker<R, T, S> {
    /// A worker over `rx`/`tx`. Frames whose ifindex matches none of `interfaces` are
    /// handled as the first one's (backends with one interface report 0 or its index).
    /// Binding changes go to `sink`, and the replies that depend on them leave once it
    /// confirms them; without one, replies leave at once and changes live in memory only.
    pub fn new(
        engine: Arc<Engine>,
        (rx, tx): (R, T),
        interfaces: Vec<Interface>,
        stats: Arc<WorkerStats>,
        config: WorkerConfig,
        sink: Option<S>,
    ) -> Worker<R, T, S> {
        let gate = CommitGate::new(sink, config.held_replies);
        let probes = Probes::new(config.probe_slots);
        let admission = Admission::new(*engine.limits(), config.workers, config.burst);
        Worker {
            engine,
            rx,
            tx,
            interfaces,
            stats,
            config,
            gate,
            latency: Latency::histogram(),
            handoff: None,
            last_handed_in: Instant::now(),
            probes,
            answers: Arc::new(ProbeAnswers::default()),
            scratch: vec![0; peregrine_io::FRAME_CAPACITY].into_boxed_slice(),
            member: None,
            admission,
            last_burst: 0,
        }
    }

    /// Uses the engine `member` shares from then on, and stops for a reload between bursts
    /// (see [`crate::SharedEngine`]).
    #[must_use]
    pub fn with_shared(mut self, member: Member) -> Worker<R, T, S> {
        self.engine = member.engine().clone();
        self.admission.set_limits(*self.engine.limits());
        self.member = Some(member);
        self
    }

    /// Shares `answers` with the other workers of the server: an answer to a probe may reach
    /// any of them.
    #[must_use]
    pub fn with_probe_answers(mut self, answers: Arc<ProbeAnswers>) -> Worker<R, T, S> {
        self.answers = answers;
        self
    }

    /// Hands each DHCP request this worker receives to the worker of `handoff`'s mesh that
    /// owns its client, and handles what the others hand here (see [`Handoff`]).
    #[must_use]
    pub fn with_handoff(mut self, handoff: Handoff) -> Worker<R, T, S> {
        self.handoff = Some(handoff);
        self
    }

    /// Runs until `quit` is set; flushes what is queued before returning.
    pub fn run(&mut self, quit: &AtomicBool) -> std::io::Result<()> {
        self.rx.attach_thread();
        let mut last_flush = Instant::now();
        let mut last_expiry = Instant::now();
        // The wall clock, read once a second and carried forward on the monotonic one, so
        // that a turn reads one clock; a step of the wall clock reaches the engine within a
        // second.
        let mut wall = (since_epoch(), last_expiry);
        while !quit.load(Ordering::Relaxed) {
            if let Some(member) = &mut self.member
                && member.checkpoint()
            {
                self.engine = member.engine().clone();
                self.admission.set_limits(*self.engine.limits());
            }
            // The turn's timers read the clock once (a polling worker turns often, and each
            // read is a call in a VM).
            let turn = Instant::now();
            let now = (wall.0 + turn.saturating_duration_since(wall.1)).as_secs();
            let received = self.poll(now)?;
            self.release_committed()?;
            if self.probes.len() > 0 {
                self.release_probes(now)?;
            }
            let waited = turn.saturating_duration_since(last_flush);
            if self.tx.pending() > 0 && (received == 0 || waited >= self.config.drain) {
                self.flush()?;
                last_flush = turn;
            }
            if turn.saturating_duration_since(last_expiry) >= Duration::from_secs(1) {
                if self.config.runs_expiry {
                    self.expire(now);
                }
                self.publish_latency();
                last_expiry = turn;
                wall = (since_epoch(), turn);
            }
            self.stats.held_replies.set(self.gate.held() as u64);
            if received > 0 {
                self.stats.busy_ns.add(nanos(turn.elapsed()));
            }
            if received == 0 && !self.handoff.as_ref().is_some_and(Handoff::pending) {
                // Replies waiting for the gate are released as soon as it confirms, and
                // frames other workers hand here wait for this loop: poll for them at the
                // drain interval rather than sleeping a whole idle period, while they come.
                let handed_lately = self.handoff.is_some()
                    && self.last_handed_in.elapsed() < self.config.handoff_linger;
                let wait = if self.gate.held() == 0 && !handed_lately {
                    self.config.idle_wait
                } else {
                    self.config.drain
                };
                self.rx.wait(wait)?;
            }
        }
        // Let the sink confirm what is held (bounded), so a clean stop loses no reply.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.gate.held() > 0 && Instant::now() < deadline {
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

    /// Runs lease expiry, passing what it changes through the commit gate.
    fn expire(&mut self, now: Time) {
        let Worker {
            engine,
            gate,
            stats,
            config,
            ..
        } = self;
        let expired = engine.tick(now, config.expiry_budget, |event| {
            admit_change(gate, stats, &event);
        });
        gate.flush();
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
            gate,
            latency,
            handoff,
            probes,
            answers,
            admission,
            last_burst,
            ..
        } = self;
        let mut io_error = None;
        let received = Instant::now();
        admission.start_burst(received, *last_burst);
        let mut ctx = Context {
            engine,
            tx,
            interfaces,
            stats,
            gate,
            probes,
            answers,
            admission,
            now,
            replies: 0,
        };
        let n = rx.rx_burst(config.burst, &mut |frame| {
            ctx.stats.rx_frames.inc();
            if let Some(h) = handoff.as_mut() {
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
        *last_burst = n;
        if ctx.replies > 0 {
            // One clock read per burst: every reply of the burst is charged the whole burst.
            latency.saturating_record_n(nanos(received.elapsed()), ctx.replies);
        }
        let mut handed_in = 0;
        if let Some(h) = handoff.as_mut() {
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
        ctx.gate.flush();
        match io_error {
            Some(e) => Err(e),
            None => Ok(n + handed_in),
        }
    }

    /// Queues, in order, every held reply whose binding change the gate has confirmed.
    pub fn release_committed(&mut self) -> std::io::Result<()> {
        let Worker {
            tx,
            stats,
            gate,
            latency,
            ..
        } = self;
        let mut io_error = None;
        // One clock read for every reply released together.
        let mut released_at = None;
        gate.release(|held, frame| {
            if tx.buffer().is_none()
                && let Err(e) = flush(tx, stats)
            {
                io_error = Some(e);
                return false;
            }
            let Some(buf) = tx.buffer() else {
                return false;
            };
            buf[..frame.len()].copy_from_slice(frame);
            queue(tx, stats, held.len, Some(held.kind), held.ifindex);
            let at = *released_at.get_or_insert_with(Instant::now);
            latency.saturating_record(nanos(at.saturating_duration_since(held.received)));
            true
        });
        io_error.map_or(Ok(()), Err)
    }

    /// Sends every OFFER whose ping check went unanswered; for one whose address answered,
    /// takes the address out of service and handles its DISCOVER again (which probes another).
    pub fn release_probes(&mut self, now: Time) -> std::io::Result<()> {
        let Worker {
            engine,
            tx,
            interfaces,
            stats,
            gate,
            probes,
            answers,
            scratch,
            ..
        } = self;
        while let Some(due) = probes.take_due(Instant::now(), answers, scratch) {
            match due {
                Due::Offer { len, ifindex } => {
                    if tx.buffer().is_none() {
                        flush(tx, stats)?;
                    }
                    let Some(buf) = tx.buffer() else {
                        stats.count_drop(WorkerDrop::TxError);
                        continue;
                    };
                    buf[..len].copy_from_slice(&scratch[..len]);
                    queue(tx, stats, len, Some(MessageType::Offer), ifindex);
                }
                Due::InUse {
                    address,
                    len,
                    ifindex,
                } => {
                    stats.probes_answered.inc();
                    if let Some(event) = engine.address_in_use(now, address) {
                        admit_change(gate, stats, &event);
                    }
                    // Admitted once already: not counted against its limits again.
                    let mut admitted = Admission::default();
                    let mut ctx = Context {
                        engine,
                        tx,
                        interfaces,
                        stats,
                        gate,
                        probes,
                        answers,
                        admission: &mut admitted,
                        now,
                        replies: 0,
                    };
                    let frame = RxFrame {
                        data: &scratch[..len],
                        ifindex,
                        checksum_pending: false,
                    };
                    ctx.handle(&frame, Instant::now())?;
                }
            }
        }
        gate.flush();
        stats.probes_waiting.set(probes.len() as u64);
        Ok(())
    }

    /// Sends the queued burst.
    pub fn flush(&mut self) -> std::io::Result<()> {
        flush(&mut self.tx, &self.stats)
    }
}

/// Passes a change no client waits on (an expiry, an address found in use) through the commit
/// gate, counting where it went.
fn admit_change<S: BindingSink>(
    gate: &mut CommitGate<S>,
    stats: &WorkerStats,
    event: &BindingEvent,
) {
    match gate.admit(event) {
        Admitted::InMemory => {}
        Admitted::Submitted(_) => stats.journaled.inc(),
        Admitted::Refused => stats.count_drop(WorkerDrop::JournalFull),
    }
}

/// What handling one frame needs of its worker, borrowed for a burst.
struct Context<'w, T, S> {
    engine: &'w Engine,
    tx: &'w mut T,
    interfaces: &'w [Interface],
    stats: &'w WorkerStats,
    gate: &'w mut CommitGate<S>,
    probes: &'w mut Probes,
    answers: &'w ProbeAnswers,
    admission: &'w mut Admission,
    now: Time,
    /// Replies queued so far in this burst.
    replies: u64,
}

impl<T: TxQueue, S: BindingSink> Context<'_, T, S> {
    /// Handles one frame received at `received`: the reply is queued, held in the commit
    /// gate, or there is none. Errors are the TX queue's.
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
        match process(
            self.engine,
            iface,
            self.now,
            frame,
            buf,
            stats,
            self.admission,
        ) {
            Outcome::Nothing => {}
            Outcome::Send(Reply { len, kind }) => {
                queue(self.tx, stats, len, kind, iface.ifindex);
                self.replies += 1;
            }
            Outcome::Commit { event, reply } => match self.gate.admit(&event) {
                Admitted::InMemory => {
                    if let Some(Reply { len, kind }) = reply {
                        queue(self.tx, stats, len, kind, iface.ifindex);
                        self.replies += 1;
                    }
                }
                Admitted::Refused => stats.count_drop(WorkerDrop::JournalFull),
                Admitted::Submitted(seq) => {
                    stats.journaled.inc();
                    if let Some(Reply {
                        len,
                        kind: Some(kind),
                    }) = reply
                        && !self
                            .gate
                            .hold(seq, &buf[..len], kind, iface.ifindex, received)
                    {
                        stats.count_drop(WorkerDrop::HeldFull);
                    }
                }
            },
            Outcome::Probe {
                reply,
                probe,
                wait_ms,
            } => {
                let until = received + probe::wait(wait_ms);
                self.answers.clear(probe.address);
                let frames = (&buf[..reply.len], frame.data);
                if !self
                    .probes
                    .hold(probe.address, until, frames, iface.ifindex)
                {
                    stats.count_drop(WorkerDrop::ProbeFull);
                    return Ok(());
                }
                // The OFFER is copied away; the probe is written over it and leaves now.
                match write_probe(iface, &probe, buf) {
                    Ok(len) => {
                        queue(self.tx, stats, len, None, iface.ifindex);
                        stats.probes_sent.inc();
                    }
                    Err(()) => stats.count_drop(WorkerDrop::TxError),
                }
            }
            Outcome::Answered(address) => self.answers.note(address),
        }
        Ok(())
    }
}

/// Queues the frame of `len` bytes written into `tx`'s buffer, and counts it: the one place a
/// DHCP message is counted as sent.
fn queue<T: TxQueue>(
    tx: &mut T,
    stats: &WorkerStats,
    len: usize,
    kind: Option<MessageType>,
    ifindex: u32,
) {
    tx.queue(len, ifindex);
    if let Some(kind) = kind {
        stats.message_out(kind);
    }
}

fn flush<T: TxQueue>(tx: &mut T, stats: &WorkerStats) -> std::io::Result<()> {
    let queued = tx.pending();
    if queued == 0 {
        return Ok(());
    }
    let sent = tx.flush()?;
    stats.tx_frames.add(sent as u64);
    stats.count_drops(WorkerDrop::TxRefused, queued.saturating_sub(sent) as u64);
    Ok(())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Seconds since the UNIX epoch (the vDSO clock: no syscall): the engine's `now`, for every
/// thread of the runtime that hands one to it.
pub fn unix_now() -> Time {
    since_epoch().as_secs()
}

/// The wall clock's time since the UNIX epoch (zero for a clock set before it).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
