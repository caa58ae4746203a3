//! The generator's loop: begin exchanges at the paced rate, turn OFFERs into REQUESTs, match
//! every reply to its client in O(1), retransmit or give up on timers, and count it all.
//!
//! Shaped like DPDK's l3fwd: one thread polls RX a burst at a time (32 frames), answers what it
//! received into the TX burst, begins the exchanges the pacer grants, fires due timers, and
//! flushes TX once per round. Nothing is allocated per packet: client state is a flat table,
//! timers are lists threaded through a second one, frames are written into the TX queue's
//! buffers (a test counts the allocations).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peregrine_io::{RxFrame, RxQueue, TxQueue};
use peregrine_wire::dhcp::{BOOTREPLY, DhcpMessage, MessageType};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux_with};

use crate::clients::{Client, Identity, State};
use crate::pacing::Pacer;
use crate::request::{self, Kind, Request};
use crate::stats::{Phase, Report, Stats};
use crate::template::{Subscriber, Template};

/// Frames per RX poll and per TX burst.
pub const BURST: u32 = 32;
/// A burst due sooner than this is waited for by polling, not by sleeping: about what a sleep
/// overshoots by (the kernel's default timer slack is 50 µs).
const MIN_SLEEP_NS: u64 = 50_000;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Scenario {
    /// Every client does one DISCOVER-OFFER-REQUEST-ACK.
    Dora,
    /// DORA for every client, then one renewal (REQUEST with ciaddr) each.
    Renew,
    /// DORA for every client, then one RELEASE each.
    Release,
    /// DORA for every client, then one INIT-REBOOT REQUEST (option 50, no server id) each.
    InitReboot,
    /// Clients without a lease do DORA; clients with one renew, reboot or release by the
    /// `--mix` weights, until `--duration` is over.
    Mix,
    /// Every client begins DORA at once (no pacing) and retransmits with the RFC 2131 back-off
    /// (4, 8, 16 s ... ±1 s) up to `--retries` times.
    Avalanche,
}

impl Scenario {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Dora => "dora",
            Scenario::Renew => "renew",
            Scenario::Release => "release",
            Scenario::InitReboot => "init-reboot",
            Scenario::Mix => "mix",
            Scenario::Avalanche => "avalanche",
        }
    }
}

/// Relative weights of what a leased client does in the `mix` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Renew (REQUEST with ciaddr).
    pub renew: u32,
    /// INIT-REBOOT.
    pub reboot: u32,
    /// RELEASE (the client then does DORA on its next turn).
    pub release: u32,
    /// DORA again, as a new client would, keeping its MAC.
    pub dora: u32,
}

/// Everything a run needs besides the I/O queues.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Label for the report.
    pub label: String,
    /// Backend name for the report.
    pub backend: String,
    /// What the clients do.
    pub scenario: Scenario,
    /// Exchanges begun per second; 0 = as fast as possible.
    pub rate: u64,
    /// Distinct clients.
    pub clients: u32,
    /// Relay addresses; client `i` sits behind relay `i % len`.
    pub giaddrs: Vec<Ipv4Addr>,
    /// Frame headers per relay (same order as `giaddrs`): one per server the relay forwards to.
    pub headers: Vec<Vec<UdpFrameHeaders>>,
    /// Option 82 circuit-id template.
    pub circuit_id: Option<Template>,
    /// Option 82 remote-id template.
    pub remote_id: Option<Template>,
    /// Wait for an answer before retransmitting or giving up (paced scenarios).
    pub timeout: Duration,
    /// Retransmissions before giving up.
    pub retries: u8,
    /// Stop beginning exchanges after this long.
    pub duration: Option<Duration>,
    /// Stop everything after this long.
    pub max_time: Duration,
    /// Mix weights.
    pub mix: Mix,
    /// `XOR`ed into every xid.
    pub salt: u32,
    /// Server process to measure the CPU of.
    pub server_pid: Option<u32>,
    /// Exchanges begun per paced burst (1 to [`BURST`]).
    pub burst: u32,
}

/// "No client" in the timer wheel's links.
const NIL: u32 = u32::MAX;

/// Where a client's timer lies in the wheel: its slot and its neighbours there.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    /// `NIL` when the client has no timer armed.
    slot: u32,
}

/// A hashed timer wheel of 1 ms slots holding at most one timer per client (the one of its
/// latest transmission), as doubly linked lists threaded through a table indexed by client:
/// arming, re-arming and firing are O(1), and nothing is allocated after construction.
struct Wheel {
    heads: Vec<u32>,
    links: Vec<Link>,
    /// The next slot (in ms since start) not yet fired.
    next_ms: u64,
}

const WHEEL_SLOTS: usize = 1 << 17; // 131 s, longer than any wait

impl Wheel {
    fn new(clients: u32) -> Self {
        let unlinked = Link {
            prev: NIL,
            next: NIL,
            slot: NIL,
        };
        Self {
            heads: vec![NIL; WHEEL_SLOTS],
            links: vec![unlinked; clients as usize],
            next_ms: 0,
        }
    }

    /// Arms client `idx`'s timer for `at_ns`, replacing any it had.
    fn arm(&mut self, idx: u32, at_ns: u64) {
        self.disarm(idx);
        let ms = (at_ns / 1_000_000).max(self.next_ms);
        let slot = (ms as usize) % WHEEL_SLOTS;
        let head = self.heads[slot];
        self.links[idx as usize] = Link {
            prev: NIL,
            next: head,
            slot: slot as u32,
        };
        if head != NIL {
            self.links[head as usize].prev = idx;
        }
        self.heads[slot] = idx;
    }

    /// Removes client `idx`'s timer, if armed.
    fn disarm(&mut self, idx: u32) {
        let l = self.links[idx as usize];
        if l.slot == NIL {
            return;
        }
        if l.prev == NIL {
            self.heads[l.slot as usize] = l.next;
        } else {
            self.links[l.prev as usize].next = l.next;
        }
        if l.next != NIL {
            self.links[l.next as usize].prev = l.prev;
        }
        self.links[idx as usize].slot = NIL;
    }

    /// Takes one timer out of `slot`: the client whose timer it was.
    fn pop(&mut self, slot: usize) -> Option<u32> {
        let head = self.heads[slot];
        (head != NIL).then(|| {
            self.disarm(head);
            head
        })
    }
}

/// A tiny xorshift generator for jitter and mix choices: deterministic per run.
#[derive(Debug, Clone, Copy)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0), close enough for weights and jitter.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The generator's state.
pub struct Generator {
    s: Settings,
    id: Identity,
    clients: Vec<Client>,
    stats: Stats,
    wheel: Wheel,
    rng: Rng,
    pacer: Pacer,
    base: Instant,
    /// Exchanges begun.
    started: u64,
    /// Exchanges to begin in all (`u64::MAX`: until the duration ends).
    planned: u64,
    /// Next client to begin an exchange.
    cursor: u32,
    /// Exchanges in flight.
    inflight: u64,
    /// Clients holding a lease.
    leased: u64,
    /// When the first and the last exchange were begun (ns).
    first_ns: Option<u64>,
    last_start_ns: u64,
    /// Avalanche: when 50/90/99/100 % first held a lease.
    lease_marks: [Option<u64>; 4],
    scratch_circuit: [u8; 255],
    scratch_remote: [u8; 255],
    gen_cpu_pct: f64,
    server_cpu_pct: Option<f64>,
    /// Time spent in rounds that did some work (not in idle polls or waits).
    busy_ns: u64,
}

/// Counts while running, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Exchanges begun.
    pub started: u64,
    /// Exchanges to begin (`u64::MAX`: open-ended).
    pub planned: u64,
    /// Exchanges in flight.
    pub inflight: u64,
    /// Clients holding a lease.
    pub leased: u64,
    /// Exchanges given up so far.
    pub drops: u64,
}

impl Generator {
    /// A generator for `s`.
    pub fn new(s: Settings) -> Self {
        let n = s.clients;
        let planned = match s.scenario {
            Scenario::Dora | Scenario::Avalanche => u64::from(n),
            Scenario::Renew | Scenario::Release | Scenario::InitReboot => 2 * u64::from(n),
            Scenario::Mix => u64::MAX,
        };
        let rate = if s.scenario == Scenario::Avalanche {
            0
        } else {
            s.rate
        };
        Self {
            id: Identity::new(n, s.giaddrs.len() as u32, s.salt),
            clients: vec![Client::default(); n as usize],
            stats: Stats::new(),
            wheel: Wheel::new(n),
            rng: Rng(u64::from(s.salt) | 1 << 40),
            pacer: Pacer::new(rate, s.burst),
            base: Instant::now(),
            started: 0,
            planned,
            cursor: 0,
            inflight: 0,
            leased: 0,
            first_ns: None,
            last_start_ns: 0,
            lease_marks: [None; 4],
            scratch_circuit: [0; 255],
            scratch_remote: [0; 255],
            gen_cpu_pct: 0.0,
            server_cpu_pct: None,
            busy_ns: 0,
            s,
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs until every planned exchange ended, `quit` is set, or the time limit passes;
    /// `tick` is called about every 100 ms with the counts so far.
    pub fn run<R: RxQueue, T: TxQueue>(
        &mut self,
        rx: &mut R,
        tx: &mut T,
        quit: &Arc<AtomicBool>,
        tick: &mut dyn FnMut(Progress),
    ) -> std::io::Result<()> {
        self.base = Instant::now();
        let cpu0 = crate::cpu::process_ticks(None);
        let mut server_cpu = self
            .s
            .server_pid
            .and_then(|p| crate::cpu::process_ticks(Some(p)));
        let mut server_cpu_end = None;
        let max_ns = u64::try_from(self.s.max_time.as_nanos()).unwrap_or(u64::MAX);
        let duration_ns = self.s.duration.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        let mut next_tick = 0u64;
        let mut sending = true;
        loop {
            let mut now = self.now_ns();
            let round_start = now;
            // 1. Replies: a burst at a time, follow-up REQUESTs go into the TX burst.
            let mut got = 0;
            loop {
                let n = rx.rx_burst(BURST as usize, &mut |f| self.on_frame(f, now, tx))?;
                got += n;
                if n < BURST as usize {
                    break;
                }
                now = self.now_ns();
            }
            // 2. New exchanges, as many as the pacer grants.
            let stop_sending = quit.load(Ordering::Relaxed)
                || now >= duration_ns
                || now >= max_ns
                || self.started >= self.planned;
            if sending && stop_sending {
                sending = false;
                server_cpu_end = self
                    .s
                    .server_pid
                    .and_then(|p| crate::cpu::process_ticks(Some(p)));
                if self.first_ns.is_none() {
                    self.first_ns = Some(now);
                }
                self.last_start_ns = self.last_start_ns.max(self.first_ns.unwrap_or(now));
            }
            let mut begun = 0;
            if sending {
                // A burst at a time; more than one only to catch up after a stall.
                'bursts: for _ in 0..crate::pacing::CATCH_UP {
                    let due = self.pacer.take(now);
                    if due == 0 {
                        break;
                    }
                    for _ in 0..due {
                        if self.started >= self.planned || !self.begin_next(now, tx) {
                            break 'bursts;
                        }
                        begun += 1;
                    }
                    self.flush(tx)?;
                }
                if begun > 0 {
                    if self.first_ns.is_none() {
                        self.first_ns = Some(now);
                        server_cpu = self
                            .s
                            .server_pid
                            .and_then(|p| crate::cpu::process_ticks(Some(p)));
                    }
                    self.last_start_ns = now;
                }
            }
            // 3. Timers.
            let fired = self.fire_timers(now, tx);
            // 4. One flush per round.
            self.flush(tx)?;
            if got > 0 || begun > 0 || fired {
                self.busy_ns += self.now_ns() - round_start;
            }
            if now >= next_tick {
                next_tick = now + 100_000_000;
                tick(self.progress());
            }
            // 5. Done?
            if !sending
                && (self.inflight == 0
                    || now >= max_ns
                    || quit.load(Ordering::Relaxed) && now > self.last_start_ns + 2_000_000_000)
            {
                break;
            }
            // Idle: wait for frames (1 ms at most: the backends wait in whole milliseconds), or,
            // when the next burst is due sooner, sleep until it is due rather than spin. A
            // generator that never lets its CPU go idle makes a VM whose every vCPU is busy: this
            // one's hypervisor then takes a vCPU away for 100 ms at a time (bench/vcpu-pauses.py),
            // which a responder on the other one reads as 100 ms of lost frames. Replies that
            // come meanwhile wait in the ring, their latency read at most one sleep late.
            if got == 0 && begun == 0 {
                let due_in = self.pacer.next_due_ns().map(|d| d.saturating_sub(now));
                match (sending, due_in) {
                    // Unpaced: keep polling.
                    (true, None) => {}
                    (true, Some(ns)) if ns < 1_000_000 => {
                        // Due within the sleep's own overshoot: keep polling.
                        if ns > MIN_SLEEP_NS {
                            std::thread::sleep(Duration::from_nanos(ns - MIN_SLEEP_NS));
                        }
                    }
                    _ => rx.wait(Duration::from_millis(1))?,
                }
            }
        }
        self.finish_cpu(cpu0, server_cpu, server_cpu_end);
        tick(self.progress());
        Ok(())
    }

    fn finish_cpu(&mut self, cpu0: Option<u64>, server0: Option<u64>, server1: Option<u64>) {
        let total_s = self.base.elapsed().as_secs_f64();
        let hz = crate::cpu::ticks_per_second();
        self.gen_cpu_pct = match (cpu0, crate::cpu::process_ticks(None)) {
            (Some(a), Some(b)) if total_s > 0.0 => 100.0 * (b - a) as f64 / hz / total_s,
            _ => 0.0,
        };
        let send_s = self.send_seconds();
        self.server_cpu_pct = match (server0, server1) {
            (Some(a), Some(b)) if send_s > 0.0 => Some(100.0 * (b - a) as f64 / hz / send_s),
            _ => None,
        };
    }

    fn send_seconds(&self) -> f64 {
        let first = self.first_ns.unwrap_or(0);
        (self.last_start_ns.saturating_sub(first)) as f64 / 1e9
    }

    /// Counts so far.
    pub fn progress(&self) -> Progress {
        let drops = Phase::ALL
            .iter()
            .map(|p| self.stats.get(*p).drops)
            .sum::<u64>()
            - self.stats.get(Phase::Dora).drops;
        Progress {
            started: self.started,
            planned: self.planned,
            inflight: self.inflight,
            leased: self.leased,
            drops,
        }
    }

    /// The report of the run.
    pub fn report(&self) -> Report {
        let send_s = match self.s.scenario {
            // Everything is begun at once; rates are over the whole storm.
            Scenario::Avalanche => self.base.elapsed().as_secs_f64(),
            _ => self.send_seconds().max(1e-9),
        };
        let marks = (self.s.scenario == Scenario::Avalanche)
            .then(|| self.lease_marks.map(|m| m.map(|ns| ns as f64 / 1e9)));
        Report {
            label: self.s.label.clone(),
            scenario: self.s.scenario.name().to_owned(),
            backend: self.s.backend.clone(),
            // An avalanche is not paced.
            target_rate: if self.s.scenario == Scenario::Avalanche {
                0
            } else {
                self.s.rate
            },
            clients: self.s.clients,
            relays: self.s.giaddrs.len() as u32,
            send_s,
            total_s: self.base.elapsed().as_secs_f64(),
            offered_per_s: self.started as f64 / send_s,
            leased_clients: self.leased,
            unexpected: self.stats.unexpected,
            foreign: self.stats.foreign,
            tx_refused: self.stats.tx_refused,
            rx_dropped: None,
            generator_cpu_pct: self.gen_cpu_pct,
            generator_busy_pct: 100.0 * self.busy_ns as f64
                / self.base.elapsed().as_nanos().max(1) as f64,
            server_cpu_pct: self.server_cpu_pct,
            lease_times_s: marks,
            phases: Report::phases_of(&self.stats, send_s),
        }
    }

    /// Begins the next exchange; false if every client in reach is busy.
    fn begin_next<T: TxQueue>(&mut self, now: u64, tx: &mut T) -> bool {
        let n = self.s.clients;
        // Skip clients still in an exchange, but not forever.
        for _ in 0..BURST {
            let idx = self.cursor;
            self.cursor = if idx + 1 >= n { 0 } else { idx + 1 };
            if self.clients[idx as usize].state.busy() {
                continue;
            }
            self.begin(idx, now, tx);
            return true;
        }
        false
    }

    fn begin<T: TxQueue>(&mut self, idx: u32, now: u64, tx: &mut T) {
        self.started += 1;
        self.inflight += 1;
        let c = self.clients[idx as usize];
        if c.lease == 0 {
            self.start(idx, State::Selecting, now);
            self.stats.phase(Phase::Dora).sent += 1;
            self.transmit(idx, now, tx);
            return;
        }
        let action = match self.s.scenario {
            Scenario::Renew => State::Renewing,
            Scenario::InitReboot => State::Rebooting,
            Scenario::Release => State::Idle,
            Scenario::Dora | Scenario::Avalanche => State::Selecting,
            Scenario::Mix => {
                let m = self.s.mix;
                let total = u64::from(m.renew + m.reboot + m.release + m.dora).max(1);
                let r = self.rng.below(total);
                if r < u64::from(m.renew) {
                    State::Renewing
                } else if r < u64::from(m.renew + m.reboot) {
                    State::Rebooting
                } else if r < u64::from(m.renew + m.reboot + m.release) {
                    State::Idle
                } else {
                    State::Selecting
                }
            }
        };
        match action {
            State::Idle => {
                // RELEASE: no answer comes; the exchange ends when it is sent.
                self.stats.phase(Phase::Release).sent += 1;
                self.send(
                    idx,
                    Kind::Release {
                        ciaddr: Ipv4Addr::from(c.lease),
                        server_id: Ipv4Addr::from(c.server_id),
                    },
                    0,
                    tx,
                );
                let c = &mut self.clients[idx as usize];
                c.lease = 0;
                self.leased -= 1;
                self.inflight -= 1;
            }
            State::Selecting => {
                let c = &mut self.clients[idx as usize];
                c.lease = 0;
                self.leased -= 1;
                self.start(idx, State::Selecting, now);
                self.stats.phase(Phase::Dora).sent += 1;
                self.transmit(idx, now, tx);
            }
            state => {
                self.start(idx, state, now);
                self.transmit(idx, now, tx);
            }
        }
    }

    /// Puts client `idx` into `state` at the start of a request.
    fn start(&mut self, idx: u32, state: State, now: u64) {
        let c = &mut self.clients[idx as usize];
        if state != State::Requesting {
            c.started_ns = now;
        }
        c.state = state;
        c.tries = 0;
        c.sent_ns = now;
    }

    /// Sends (or re-sends) the request client `idx`'s state calls for and arms its timer.
    fn transmit<T: TxQueue>(&mut self, idx: u32, now: u64, tx: &mut T) {
        let c = self.clients[idx as usize];
        let (kind, phase) = match c.state {
            State::Selecting => (Kind::Discover, Phase::Discover),
            State::Requesting => (
                Kind::Select {
                    requested: Ipv4Addr::from(c.offered),
                    server_id: Ipv4Addr::from(c.server_id),
                },
                Phase::Request,
            ),
            State::Renewing => (
                Kind::Renew {
                    ciaddr: Ipv4Addr::from(c.lease),
                },
                Phase::Renew,
            ),
            State::Rebooting => (
                Kind::Reboot {
                    requested: Ipv4Addr::from(c.lease),
                },
                Phase::Reboot,
            ),
            State::Idle => return,
        };
        let secs =
            u16::try_from(now.saturating_sub(c.started_ns) / 1_000_000_000).unwrap_or(u16::MAX);
        self.stats.phase(phase).sent += 1;
        self.send(idx, kind, secs, tx);
        let wait = self.wait_ns(c.tries);
        let c = &mut self.clients[idx as usize];
        c.tries = c.tries.saturating_add(1);
        self.wheel.arm(idx, now + wait);
    }

    /// How long to wait after transmission number `tries` (0-based).
    fn wait_ns(&mut self, tries: u8) -> u64 {
        if self.s.scenario == Scenario::Avalanche {
            // RFC 2131 4.1: 4 s, doubled each time up to 64 s, randomised by ±1 s.
            let base = 4_000_000_000u64 << u32::from(tries.min(4));
            base - 1_000_000_000 + self.rng.below(2_000_000_000)
        } else {
            u64::try_from(self.s.timeout.as_nanos())
                .unwrap_or(u64::MAX)
                .min(60_000_000_000)
        }
    }

    /// Writes one message for client `idx` into the TX burst.
    fn send<T: TxQueue>(&mut self, idx: u32, kind: Kind, secs: u16, tx: &mut T) {
        let relay = self.id.relay(idx);
        let mac = Identity::mac(idx);
        let sub = Subscriber {
            relay,
            port: self.id.port(idx),
            client: idx,
            mac,
        };
        let circuit_len = self
            .s
            .circuit_id
            .as_ref()
            .and_then(|t| t.expand(&sub, &mut self.scratch_circuit));
        let remote_len = self
            .s
            .remote_id
            .as_ref()
            .and_then(|t| t.expand(&sub, &mut self.scratch_remote));
        let req = Request {
            kind,
            xid: self.id.xid(idx),
            mac,
            giaddr: self.s.giaddrs[relay as usize],
            secs,
            circuit_id: circuit_len.map(|n| &self.scratch_circuit[..n]),
            remote_id: remote_len.map(|n| &self.scratch_remote[..n]),
        };
        // A relay forwards what the client broadcasts to every server it knows; a renewal or a
        // release goes to the server that granted the lease (its identifier is its address),
        // or to all when none of them has that address.
        let servers = &self.s.headers[relay as usize];
        let to = match kind {
            Kind::Renew { .. } | Kind::Release { .. } => {
                let id = Ipv4Addr::from(self.clients[idx as usize].server_id);
                servers.iter().position(|h| h.dst_ip == id)
            }
            Kind::Discover | Kind::Select { .. } | Kind::Reboot { .. } => None,
        };
        let (first, last) = to.map_or((0, servers.len()), |i| (i, i + 1));
        for headers in &servers[first..last] {
            if tx.buffer().is_none() {
                let queued = tx.pending();
                let sent = tx.flush().unwrap_or(0);
                self.stats.tx_refused += (queued - sent.min(queued)) as u64;
            }
            let Some(buf) = tx.buffer() else {
                self.stats.tx_refused += 1;
                continue;
            };
            match request::write_frame(buf, headers, &req) {
                Ok(len) => tx.queue(len, 0),
                Err(_) => self.stats.tx_refused += 1,
            }
        }
    }

    fn flush<T: TxQueue>(&mut self, tx: &mut T) -> std::io::Result<()> {
        let queued = tx.pending();
        if queued > 0 {
            let sent = tx.flush()?;
            self.stats.tx_refused += (queued - sent.min(queued)) as u64;
        }
        Ok(())
    }

    /// Fires the timers due by `now`; true if any was live.
    fn fire_timers<T: TxQueue>(&mut self, now: u64, tx: &mut T) -> bool {
        let now_ms = now / 1_000_000;
        let mut fired = false;
        while self.wheel.next_ms <= now_ms {
            let slot = (self.wheel.next_ms as usize) % WHEEL_SLOTS;
            while let Some(idx) = self.wheel.pop(slot) {
                let c = self.clients[idx as usize];
                let phase = match c.state {
                    State::Selecting => Phase::Discover,
                    State::Requesting => Phase::Request,
                    State::Renewing => Phase::Renew,
                    State::Rebooting => Phase::Reboot,
                    State::Idle => continue, // answered since
                };
                fired = true;
                self.stats.phase(phase).timeouts += 1;
                if c.tries <= self.s.retries {
                    self.transmit(idx, now, tx);
                } else {
                    self.stats.phase(phase).drops += 1;
                    if matches!(c.state, State::Selecting | State::Requesting) {
                        self.stats.phase(Phase::Dora).drops += 1;
                    }
                    // A renewing or rebooting client keeps its lease: it got no answer.
                    self.clients[idx as usize].state = State::Idle;
                    self.inflight -= 1;
                }
            }
            self.wheel.next_ms += 1;
        }
        fired
    }

    /// Handles one received frame.
    fn on_frame<T: TxQueue>(&mut self, frame: RxFrame<'_>, now: u64, tx: &mut T) {
        let Ok(Demuxed::Udp {
            l3,
            dst_port: 67,
            payload,
            ..
        }) = demux_with(frame.data, !frame.checksum_pending)
        else {
            self.stats.foreign += 1;
            return;
        };
        let Ok(msg) = DhcpMessage::parse(payload) else {
            self.stats.foreign += 1;
            return;
        };
        let p = msg.packet();
        let Some(idx) = self.id.client_of(p.xid()).filter(|_| p.op() == BOOTREPLY) else {
            self.stats.foreign += 1;
            return;
        };
        if p.chaddr().get(..6) != Some(&Identity::mac(idx)[..]) {
            self.stats.foreign += 1;
            return;
        }
        let c = self.clients[idx as usize];
        let since = now.saturating_sub(c.sent_ns);
        match (c.state, msg.message_type()) {
            (State::Selecting, Some(MessageType::Offer)) => {
                self.stats.phase(Phase::Discover).answered_after(since);
                let server = msg.server_id().unwrap_or(l3.src);
                let c = &mut self.clients[idx as usize];
                c.offered = u32::from(p.yiaddr());
                c.server_id = u32::from(server);
                self.start(idx, State::Requesting, now);
                self.transmit(idx, now, tx);
            }
            (
                State::Requesting | State::Renewing | State::Rebooting,
                Some(t @ (MessageType::Ack | MessageType::Nak)),
            ) => {
                let phase = match c.state {
                    State::Requesting => Phase::Request,
                    State::Renewing => Phase::Renew,
                    _ => Phase::Reboot,
                };
                let had = c.lease != 0;
                self.wheel.disarm(idx);
                let c = &mut self.clients[idx as usize];
                c.state = State::Idle;
                self.inflight -= 1;
                if t == MessageType::Ack {
                    self.stats.phase(phase).answered_after(since);
                    if phase == Phase::Request {
                        self.stats
                            .phase(Phase::Dora)
                            .answered_after(now.saturating_sub(c.started_ns));
                    }
                    c.lease = u32::from(p.yiaddr());
                    if let Some(s) = msg.server_id() {
                        c.server_id = u32::from(s);
                    }
                    if !had {
                        self.leased += 1;
                        self.mark_leases(now);
                    }
                } else {
                    self.stats.phase(phase).naks += 1;
                    if phase == Phase::Request {
                        self.stats.phase(Phase::Dora).naks += 1;
                    }
                    c.lease = 0;
                    if had {
                        self.leased -= 1;
                    }
                }
            }
            _ => self.stats.unexpected += 1,
        }
    }

    fn mark_leases(&mut self, now: u64) {
        let n = u64::from(self.s.clients);
        for (i, pct) in [50u64, 90, 99, 100].into_iter().enumerate() {
            if self.lease_marks[i].is_none() && self.leased * 100 >= n * pct {
                self.lease_marks[i] = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_io::mem::{self, MemPeer};
    use peregrine_wire::MacAddr;
    use peregrine_wire::ethernet::VlanTags;

    /// A server on the other side of an in-memory port: answers with the echo responder, but
    /// ignores the first transmission of every DISCOVER whose client number `ignore` picks and
    /// turns the ACK of every client `nak` picks into a NAK.
    fn server(
        peer: &MemPeer,
        stop: &AtomicBool,
        ignore: impl Fn(u32) -> bool,
        nak: impl Fn(u32) -> bool,
    ) {
        let mut seen = std::collections::HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            for (frame, _) in peer.sent() {
                let mut out = [0u8; 1522];
                let f = RxFrame {
                    data: &frame,
                    ifindex: 0,
                    checksum_pending: false,
                };
                let Some(len) = crate::echo::reply(f, [2, 0, 0, 0, 0, 1], &mut out) else {
                    continue;
                };
                let Ok(Demuxed::Udp { payload, .. }) = demux_with(&out[..len], true) else {
                    continue;
                };
                let msg = DhcpMessage::parse(payload).unwrap();
                let client = msg.packet().xid(); // salt 0 in these tests
                let kind = msg.message_type().unwrap();
                if kind == MessageType::Offer && ignore(client) && seen.insert(client) {
                    continue;
                }
                if kind == MessageType::Ack && nak(client) {
                    // Message type is the first option, right after the cookie.
                    let at = len - payload.len() + peregrine_wire::dhcp::OPTIONS_OFFSET + 2;
                    out[at] = MessageType::Nak as u8;
                    // The UDP checksum no longer holds; the generator is told not to check.
                    peer.inject(&out[..len], 1);
                    continue;
                }
                peer.inject(&out[..len], 0);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn settings(scenario: Scenario, clients: u32) -> Settings {
        let giaddrs = vec![Ipv4Addr::new(10, 210, 0, 1), Ipv4Addr::new(10, 211, 0, 1)];
        let headers = giaddrs
            .iter()
            .map(|&g| vec![header(g, Ipv4Addr::new(10, 200, 1, 1))])
            .collect();
        Settings {
            label: "test".into(),
            backend: "mem".into(),
            scenario,
            rate: 20_000,
            clients,
            giaddrs,
            headers,
            circuit_id: Some(Template::parse("olt{relay}/port{port}").unwrap()),
            remote_id: None,
            timeout: Duration::from_secs(2),
            retries: 0,
            duration: None,
            max_time: Duration::from_secs(20),
            mix: Mix {
                renew: 1,
                reboot: 1,
                release: 1,
                dora: 1,
            },
            salt: 0,
            server_pid: None,
            burst: BURST,
        }
    }

    fn header(giaddr: Ipv4Addr, server: Ipv4Addr) -> UdpFrameHeaders {
        UdpFrameHeaders {
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            vlans: VlanTags::NONE,
            src_ip: giaddr,
            dst_ip: server,
            src_port: 67,
            dst_port: 67,
            ttl: 64,
        }
    }

    /// [`settings`] for a run in which every request is answered: a wait long enough that a
    /// busy machine (the responder thread not scheduled for seconds) loses none.
    fn answered(scenario: Scenario, clients: u32) -> Settings {
        Settings {
            timeout: Duration::from_mins(1),
            max_time: Duration::from_mins(2),
            ..settings(scenario, clients)
        }
    }

    fn run(s: Settings, ignore: fn(u32) -> bool, nak: fn(u32) -> bool) -> Report {
        let (peer, mut rx, mut tx) = mem::port(BURST as usize);
        let stop = AtomicBool::new(false);
        let quit = Arc::new(AtomicBool::new(false));
        let mut g = Generator::new(s);
        std::thread::scope(|scope| {
            scope.spawn(|| server(&peer, &stop, ignore, nak));
            // The in-memory port marks NAKed frames with ifindex 1; their checksum is stale.
            let mut rx = NakTolerant(&mut rx);
            g.run(&mut rx, &mut tx, &quit, &mut |_| {}).unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        g.report()
    }

    /// Presents frames that arrived with ifindex 1 as having a checksum still to compute.
    struct NakTolerant<'a>(&'a mut mem::MemRx);

    impl RxQueue for NakTolerant<'_> {
        fn rx_burst(
            &mut self,
            max: usize,
            f: &mut dyn FnMut(RxFrame<'_>),
        ) -> std::io::Result<usize> {
            self.0.rx_burst(max, &mut |frame| {
                f(RxFrame {
                    checksum_pending: frame.ifindex == 1,
                    ..frame
                });
            })
        }

        fn wait(&mut self, timeout: Duration) -> std::io::Result<()> {
            self.0.wait(timeout)
        }
    }

    #[global_allocator]
    static GLOBAL: peregrine_testkit::CountingAllocator = peregrine_testkit::CountingAllocator;

    /// Frames the generator sends are answered at once by the echo responder into a ring of
    /// preallocated buffers that its RX side reads: a server that allocates nothing either.
    struct Ring {
        frames: Vec<[u8; 1522]>,
        lens: Vec<usize>,
        head: usize,
        len: usize,
    }

    /// Copies each frame out before handing it up, so that the generator may send (and the
    /// ring take replies) from inside the RX callback, as with real backends.
    struct LoopRx(std::rc::Rc<std::cell::RefCell<Ring>>, [u8; 1522]);

    struct LoopTx {
        ring: std::rc::Rc<std::cell::RefCell<Ring>>,
        bufs: Vec<[u8; 1522]>,
        queued: Vec<usize>,
    }

    impl RxQueue for LoopRx {
        fn rx_burst(
            &mut self,
            max: usize,
            f: &mut dyn FnMut(RxFrame<'_>),
        ) -> std::io::Result<usize> {
            let mut n = 0;
            while n < max {
                let len = {
                    let mut r = self.0.borrow_mut();
                    if r.len == 0 {
                        break;
                    }
                    let at = r.head;
                    let len = r.lens[at];
                    self.1[..len].copy_from_slice(&r.frames[at][..len]);
                    r.head = (at + 1) % r.frames.len();
                    r.len -= 1;
                    len
                };
                f(RxFrame {
                    data: &self.1[..len],
                    ifindex: 0,
                    checksum_pending: false,
                });
                n += 1;
            }
            Ok(n)
        }

        fn wait(&mut self, _: Duration) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl TxQueue for LoopTx {
        fn buffer(&mut self) -> Option<&mut [u8]> {
            let i = self.queued.len();
            self.bufs.get_mut(i).map(|b| &mut b[..])
        }

        fn queue(&mut self, len: usize, _: u32) {
            self.queued.push(len);
        }

        fn flush(&mut self) -> std::io::Result<usize> {
            let mut r = self.ring.borrow_mut();
            let cap = r.frames.len();
            for (i, &len) in self.queued.iter().enumerate() {
                let f = RxFrame {
                    data: &self.bufs[i][..len],
                    ifindex: 0,
                    checksum_pending: false,
                };
                if r.len < cap {
                    let at = (r.head + r.len) % cap;
                    if let Some(n) = crate::echo::reply(f, [2, 0, 0, 0, 0, 1], &mut r.frames[at]) {
                        r.lens[at] = n;
                        r.len += 1;
                    }
                }
            }
            let n = self.queued.len();
            self.queued.clear();
            Ok(n)
        }

        fn pending(&self) -> usize {
            self.queued.len()
        }
    }

    /// Allocations made by a whole run of `clients` DORAs at full speed over the loopback.
    fn allocations_for(clients: u32) -> (usize, Report) {
        let ring = std::rc::Rc::new(std::cell::RefCell::new(Ring {
            frames: vec![[0; 1522]; 1024],
            lens: vec![0; 1024],
            head: 0,
            len: 0,
        }));
        let mut rx = LoopRx(ring.clone(), [0; 1522]);
        let mut tx = LoopTx {
            ring,
            bufs: vec![[0; 1522]; BURST as usize],
            queued: Vec::with_capacity(BURST as usize),
        };
        let mut s = settings(Scenario::Dora, clients);
        s.rate = 0;
        let mut g = Generator::new(s);
        let quit = Arc::new(AtomicBool::new(false));
        let n = peregrine_testkit::allocations_during(|| {
            g.run(&mut rx, &mut tx, &quit, &mut |_| {}).unwrap();
        });
        (n, g.report())
    }

    #[test]
    fn nothing_is_allocated_per_exchange() {
        let (small, r1) = allocations_for(1_000);
        let (large, r2) = allocations_for(20_000);
        assert_eq!(r1.phase("dora").unwrap().answered, 1_000);
        assert_eq!(r2.phase("dora").unwrap().answered, 20_000);
        // What a run allocates (reading /proc for its CPU time) does not grow with its length.
        assert_eq!(
            small, large,
            "allocations grow with the number of exchanges"
        );
    }

    #[test]
    fn timers_rearm_and_disarm_in_place() {
        let mut w = Wheel::new(4);
        w.arm(0, 5_000_000);
        w.arm(1, 5_000_000);
        w.arm(2, 6_000_000);
        w.arm(1, 7_000_000); // re-armed: leaves slot 5
        w.disarm(2);
        assert_eq!(w.pop(5), Some(0));
        assert_eq!(w.pop(5), None);
        assert_eq!(w.pop(6), None);
        assert_eq!(w.pop(7), Some(1));
        w.disarm(3); // never armed
        assert_eq!(w.pop(7), None);
    }

    #[test]
    fn every_reply_is_matched_to_its_client() {
        let r = run(answered(Scenario::Dora, 2000), |_| false, |_| false);
        let dora = r.phase("dora").unwrap();
        assert_eq!((dora.sent, dora.answered, dora.drops), (2000, 2000, 0));
        assert_eq!(r.phase("discover-offer").unwrap().answered, 2000);
        assert_eq!(r.phase("request-ack").unwrap().answered, 2000);
        assert_eq!((r.leased_clients, r.unexpected, r.foreign), (2000, 0, 0));
    }

    #[test]
    fn unanswered_requests_are_drops_and_naks_are_counted() {
        // Every tenth client's DISCOVER goes unanswered; every seventh client is NAKed.
        let r = run(
            settings(Scenario::Dora, 1000),
            |c| c % 10 == 0,
            |c| c % 7 == 0,
        );
        let d = r.phase("discover-offer").unwrap();
        assert_eq!((d.answered, d.timeouts, d.drops), (900, 100, 100));
        let ra = r.phase("request-ack").unwrap();
        // Clients 0, 70, 140 ... were already lost at DISCOVER.
        let naked = (0..1000).filter(|c| c % 7 == 0 && c % 10 != 0).count() as u64;
        assert_eq!((ra.naks, ra.answered), (naked, 900 - naked));
        assert_eq!(r.leased_clients, 900 - naked);
    }

    /// Each client leases, then renews, reboots or releases: 1000 exchanges for 500 clients.
    /// A client still in its DORA when its turn comes again is passed over, and another
    /// client's turn goes to a new DORA instead (on a loaded machine), so the split between
    /// the phases may vary; each exchange is answered as its client's lease says.
    #[test]
    fn renew_and_reboot_follow_the_lease() {
        for (scenario, phase) in [
            (Scenario::Renew, "renew"),
            (Scenario::InitReboot, "init-reboot"),
            (Scenario::Release, "release"),
        ] {
            let r = run(answered(scenario, 500), |_| false, |_| false);
            let p = r.phase(phase).unwrap();
            let dora = r.phase("dora").unwrap();
            assert_eq!(p.sent + dora.sent, 1000, "{scenario:?}");
            assert!(
                p.sent >= 250 && dora.sent >= 500,
                "{scenario:?}: {p:?} {dora:?}"
            );
            assert_eq!((dora.answered, dora.drops), (dora.sent, 0), "{scenario:?}");
            if scenario == Scenario::Release {
                // Releases are not answered; whoever released holds nothing.
                assert_eq!(r.leased_clients, dora.answered - p.sent, "{scenario:?}");
            } else {
                assert_eq!((p.answered, p.drops), (p.sent, 0), "{scenario:?}");
            }
        }
    }

    /// Two servers splitting the clients as a failover pair does (client `c` is answered by
    /// server `c % 2` only): every DISCOVER and SELECTING REQUEST reaches both, every renewal
    /// only the server that granted the lease, and every exchange is answered.
    #[test]
    fn a_relay_with_two_servers_broadcasts_to_both_and_renews_with_one() {
        const PAIR: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 200, 1, 1), Ipv4Addr::new(10, 200, 1, 2)];
        let mut s = answered(Scenario::Renew, 200);
        s.headers = s
            .giaddrs
            .iter()
            .map(|&g| PAIR.iter().map(|&server| header(g, server)).collect())
            .collect();
        // (client, message type, renewal, to server 0 or 1) of every frame sent.
        let seen = std::sync::Mutex::new(Vec::new());
        let (peer, mut rx, mut tx) = mem::port(BURST as usize);
        let stop = AtomicBool::new(false);
        let quit = Arc::new(AtomicBool::new(false));
        let mut g = Generator::new(s);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for (frame, _) in peer.sent() {
                        let Ok(Demuxed::Udp { l3, payload, .. }) = demux_with(&frame, true) else {
                            continue;
                        };
                        let msg = DhcpMessage::parse(payload).unwrap();
                        let client = msg.packet().xid();
                        let to = PAIR.iter().position(|&a| a == l3.dst).unwrap();
                        let renewal = !msg.packet().ciaddr().is_unspecified();
                        seen.lock().unwrap().push((
                            client,
                            msg.message_type().unwrap(),
                            renewal,
                            to,
                        ));
                        if to != client as usize % 2 {
                            continue;
                        }
                        let mut out = [0u8; 1522];
                        let f = RxFrame {
                            data: &frame,
                            ifindex: 0,
                            checksum_pending: false,
                        };
                        if let Some(len) = crate::echo::reply(f, [2, 0, 0, 0, 0, 1], &mut out) {
                            peer.inject(&out[..len], 0);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
            g.run(&mut rx, &mut tx, &quit, &mut |_| {}).unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        let r = g.report();
        let dora = r.phase("dora").unwrap();
        let renew = r.phase("renew").unwrap();
        assert_eq!((dora.answered, dora.drops), (dora.sent, 0));
        assert_eq!((renew.answered, renew.drops), (renew.sent, 0));
        assert!(renew.sent > 0);
        let seen = seen.into_inner().unwrap();
        let to_each = |t: MessageType, renewal: bool, server: usize| {
            seen.iter()
                .filter(|&&(_, mt, rn, to)| mt == t && rn == renewal && to == server)
                .count() as u64
        };
        for server in 0..2 {
            assert_eq!(to_each(MessageType::Discover, false, server), dora.sent);
            assert_eq!(to_each(MessageType::Request, false, server), dora.sent);
        }
        assert_eq!(
            to_each(MessageType::Request, true, 0) + to_each(MessageType::Request, true, 1),
            renew.sent
        );
        assert!(
            seen.iter()
                .filter(|&&(_, _, renewal, _)| renewal)
                .all(|&(client, _, _, to)| to == client as usize % 2),
            "a renewal went to the server that did not grant the lease"
        );
        assert_eq!((r.unexpected, r.foreign), (0, 0));
    }

    #[test]
    fn avalanche_retransmits_after_the_back_off() {
        let mut s = settings(Scenario::Avalanche, 50);
        s.retries = 1;
        // Every DISCOVER's first transmission is lost; the retransmission 3-5 s later is answered.
        let r = run(s, |_| true, |_| false);
        let d = r.phase("discover-offer").unwrap();
        assert_eq!((d.sent, d.timeouts, d.answered, d.drops), (100, 50, 50, 0));
        let t = r.lease_times_s.unwrap();
        assert!(t[3].is_some_and(|t| (3.0..7.0).contains(&t)), "{t:?}");
    }
}
