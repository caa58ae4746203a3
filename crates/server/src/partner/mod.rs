//! The failover link: one thread, off the worker cores, that keeps the TCP connection to the
//! partner and drives the sans-I/O [`Session`] with it. It is the only place failover touches
//! a socket, a clock or the disk.
//!
//! Workers tell it of their binding changes through [`PartnerQueue`]s, one bounded ring each
//! that neither they nor the link ever wait on (a full ring is counted; the MCLT rule bounds
//! what was promised meanwhile).
//! The partner's updates enter the engine through its `install_partner` door and are journaled
//! before their acknowledgement leaves; a state change is on disk before its STATE message
//! leaves (D12 §9.2).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod auth;

use anyhow::Context;
use peregrine_config::model::Failover;
use peregrine_dataplane::{Member, SharedEngine, unix_now};
use peregrine_engine::{BindingEvent, BindingSink, FailoverDriver, FailoverPolicy, Notice, Time};
use peregrine_failover::codec::{MAX_MESSAGE_LEN, frame_len};
use peregrine_failover::hash::{BitOrder, HashBucketAssignment};
use peregrine_failover::message::RejectReason;
use peregrine_failover::{CloseReason, Config, Restored, Role, ServerState, Session};
use peregrine_ring::{Consumer, Producer, ring};
use peregrine_stats::{FailoverStatus, FailoverView};
use peregrine_store::WorkerJournal;

/// Binding changes the workers may have queued for the link at once, shared among their rings.
const QUEUE: usize = 1 << 16;
/// Binding changes one ring holds at least, however many share [`QUEUE`] (a power of two).
const MIN_RING: usize = 8192;
/// Updates the session may hold for the partner before the link stops draining the queue.
const SESSION_BACKLOG: usize = 1 << 16;
/// How often the link looks at its socket, queue and timers when nothing happens.
const TICK: Duration = Duration::from_millis(5);
/// The longest wait between attempts to connect to the partner.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The engine's failover policy for `f`.
pub(crate) fn policy(f: &Failover) -> FailoverPolicy {
    FailoverPolicy {
        primary: f.primary,
        mclt: f.mclt,
        buckets: HashBucketAssignment::split(f.split),
        bit_order: BitOrder::Draft,
        load_balance_max_secs: f.load_balance_max_seconds,
        broken: None,
    }
}

/// One producer's side of the link (a worker's, the importer's): binding changes for the
/// partner. A server without failover has none, and its workers tell nobody.
#[derive(Debug, Default)]
pub(crate) struct PartnerQueue {
    queue: Option<Producer<BindingEvent>>,
    status: Arc<FailoverStatus>,
}

impl BindingSink for PartnerQueue {
    fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        let queue = self.queue.as_mut()?;
        if queue.push(*event).is_err() {
            self.status.queue_dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(0)
    }

    fn confirmed(&self) -> u64 {
        // Never waited on: the reply does not depend on the partner (Fanout's lazy side).
        u64::MAX
    }
}

/// The running link thread.
pub(crate) struct PartnerLink {
    thread: JoinHandle<anyhow::Result<()>>,
    status: Arc<FailoverStatus>,
}

impl PartnerLink {
    /// The link's state and counters, for the control plane.
    pub(crate) fn status(&self) -> Arc<FailoverStatus> {
        self.status.clone()
    }

    /// Waits for the thread (it stops when `quit` is set).
    pub(crate) fn join(self) -> anyhow::Result<()> {
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the failover link panicked"))?
    }
}

/// The link thread, and a queue to it for each of `producers` threads.
pub(crate) fn start(
    f: &Failover,
    engine: &Arc<SharedEngine>,
    journal: WorkerJournal,
    dir: &Path,
    quit: &Arc<AtomicBool>,
    producers: usize,
) -> anyhow::Result<(Vec<PartnerQueue>, PartnerLink)> {
    let status = Arc::new(FailoverStatus::default());
    // A ring's size is a power of two: round each share down, so that together they hold
    // QUEUE at most, unless each is at its least.
    let share = (QUEUE / producers.max(1)).max(1);
    let each = (1 << share.ilog2()).max(MIN_RING);
    let (queues, consumers): (Vec<_>, Vec<_>) = (0..producers)
        .map(|_| {
            let (producer, consumer) = ring(each);
            let queue = PartnerQueue {
                queue: Some(producer),
                status: status.clone(),
            };
            (queue, consumer)
        })
        .unzip();
    let state_path = dir.join(STATE_FILE);
    let restored = read_state(&state_path)?;
    let now = unix_now();
    let session = Session::new(session_config(f), restored, now);
    let listener = if f.primary {
        None
    } else {
        let l = TcpListener::bind(f.local)
            .with_context(|| format!("failover: listening on {}", f.local))?;
        l.set_nonblocking(true)?;
        Some(l)
    };
    tracing::info!(
        role = if f.primary { "primary" } else { "secondary" },
        local = %f.local,
        peer = %f.peer,
        restored = ?restored.map(|r| r.state),
        "failover: link starting"
    );
    let member = engine.member();
    let mut link = Link {
        driver: FailoverDriver::new(session, member.engine()),
        member,
        journal,
        state_path,
        peer: f.peer,
        primary: f.primary,
        listener,
        stream: None,
        inbox: Vec::with_capacity(4 * MAX_MESSAGE_LEN),
        outbox: Vec::with_capacity(4 * MAX_MESSAGE_LEN),
        queues: consumers,
        first_queue: 0,
        next_attempt: Instant::now(),
        backoff: Duration::from_millis(250),
        status: status.clone(),
        last_contact: None,
        partner_down: None,
        told_mismatch: false,
        auth: f.secret.as_deref().map(auth::Auth::new),
        waiting: std::collections::HashMap::new(),
        lag: peregrine_stats::Latency::histogram(),
    };
    let quit = quit.clone();
    let thread = std::thread::Builder::new()
        .name("failover".into())
        .spawn(move || link.run(&quit))
        .context("starting the failover link")?;
    Ok((queues, PartnerLink { thread, status }))
}

fn session_config(f: &Failover) -> Config {
    Config {
        role: if f.primary {
            Role::Primary
        } else {
            Role::Secondary
        },
        relationship_name: f.relationship.as_bytes().into(),
        mclt: f.primary.then_some(f.mclt),
        hash_bucket_assignment: HashBucketAssignment::split(f.split),
        max_unacked_bndupd: f.max_unacked_updates,
        receive_timer: f.max_response_delay,
        max_clock_skew: 60,
        vendor_class: concat!("peregrine-", env!("CARGO_PKG_VERSION"))
            .as_bytes()
            .into(),
        safe_period: f.auto_partner_down,
    }
}

struct Link {
    /// The session, driven against the engine and the journal.
    driver: FailoverDriver,
    /// The engine, which a reload replaces while the link waits at its checkpoint.
    member: Member,
    journal: WorkerJournal,
    state_path: PathBuf,
    peer: SocketAddr,
    primary: bool,
    listener: Option<TcpListener>,
    stream: Option<TcpStream>,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    /// Each producer's changes.
    queues: Vec<Consumer<BindingEvent>>,
    /// The queue [`Link::drain_workers`] starts with, in turn.
    first_queue: usize,
    next_attempt: Instant,
    backoff: Duration,
    status: Arc<FailoverStatus>,
    last_contact: Option<Time>,
    /// The outcome of the operator's last PARTNER-DOWN request.
    partner_down: Option<String>,
    /// Whether this connection has logged that the partners' pools differ (once is enough).
    told_mismatch: bool,
    /// With `[failover] secret`: every message is authenticated both ways.
    auth: Option<auth::Auth>,
    /// When each address's oldest unacknowledged change from the workers reached the link.
    waiting: std::collections::HashMap<std::net::Ipv4Addr, Instant>,
    /// Replication lag recorded since the last publication.
    lag: hdrhistogram::Histogram<u64>,
}

impl PartnerQueue {
    /// Queues `event` for the partner; false if the queue is full (nothing counted: the
    /// caller waits and tries again). True without a partner.
    pub(crate) fn try_push(&mut self, event: &BindingEvent) -> bool {
        self.queue.as_mut().is_none_or(|q| q.push(*event).is_ok())
    }
}

impl Link {
    fn run(&mut self, quit: &AtomicBool) -> anyhow::Result<()> {
        while !quit.load(Ordering::Relaxed) {
            if self.member.checkpoint() {
                self.driver.reconfigured(self.member.engine());
            }
            let now = unix_now();
            self.connect(now);
            let mut busy = self.read(now);
            busy |= self.drain_workers();
            if self
                .driver
                .session()
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.driver.session_mut().handle_timeout(now);
            }
            let asked = self.status.partner_down_pending();
            if asked {
                self.partner_down = Some(match self.driver.session_mut().partner_down(now) {
                    Ok(()) => "accepted".to_owned(),
                    Err(state) => format!("refused in {state}: the partner is in contact"),
                });
            }
            self.events(now)?;
            if asked {
                // The outcome, state on disk included, is visible before the request is done.
                self.publish();
                self.status.partner_down_done();
            }
            busy |= self.write(now);
            self.publish();
            if !busy {
                std::thread::sleep(TICK);
            }
        }
        Ok(())
    }

    /// Shows the relationship to the control plane.
    fn publish(&mut self) {
        self.status.lag.publish(&mut self.lag);
        let s = self.driver.session();
        self.status.publish(FailoverView {
            role: if self.primary { "primary" } else { "secondary" },
            state: s.state().as_str(),
            state_code: s.state() as u8,
            since: s.since(),
            partner_state: s.partner_state().map(ServerState::as_str),
            partner_state_code: s.partner_state().map(|p| p as u8),
            connected: self.stream.is_some(),
            last_contact: self.last_contact,
            clock_skew: s.clock_skew(),
            unacked: s.pending_updates(),
            mclt: s.mclt(),
            partner_down: self.partner_down.clone(),
        });
    }

    /// A connection to the partner: the primary connects, the secondary accepts it (from the
    /// configured peer only).
    fn connect(&mut self, now: Time) {
        if self.stream.is_some() {
            return;
        }
        let stream = if self.primary {
            if Instant::now() < self.next_attempt {
                return;
            }
            match TcpStream::connect_timeout(&self.peer, Duration::from_secs(1)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("failover: connecting to {}: {e}", self.peer);
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
            }
        } else {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((s, from)) if from.ip() == self.peer.ip() => s,
                Ok((_, from)) => {
                    tracing::warn!(%from, "failover: connection from an unconfigured address refused");
                    self.status.refuse_connection("unconfigured_address");
                    return;
                }
                Err(_) => return,
            }
        };
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        tracing::info!(peer = %self.peer, "failover: connected");
        self.backoff = Duration::from_millis(250);
        self.inbox.clear();
        self.outbox.clear();
        self.stream = Some(stream);
        if let Some(a) = &mut self.auth {
            a.reset();
        }
        self.status.connections.fetch_add(1, Ordering::Relaxed);
        self.told_mismatch = false;
        self.driver.session_mut().connected(now);
    }

    /// The connection is gone (closed, reset, or given up by the session).
    fn lost(&mut self, now: Time, why: &str) {
        if self.stream.take().is_some() {
            tracing::info!(peer = %self.peer, "failover: connection lost: {why}");
            self.driver.session_mut().disconnected(now);
            self.next_attempt = Instant::now() + self.backoff;
        }
    }

    /// Reads what arrived and hands each whole message to the session.
    fn read(&mut self, now: Time) -> bool {
        let Some(stream) = self.stream.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut got = false;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.lost(now, "closed by the partner");
                    return got;
                }
                Ok(n) => {
                    self.inbox.extend_from_slice(&buf[..n]);
                    self.last_contact = Some(now);
                    got = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lost(now, &e.to_string());
                    return got;
                }
            }
        }
        let longest = MAX_MESSAGE_LEN
            + if self.auth.is_some() {
                auth::TRAILER
            } else {
                0
            };
        let mut at = 0;
        while let Some(len) = frame_len(&self.inbox[at..]) {
            if len > longest {
                // No message is that long: a peer that says so is not speaking the protocol,
                // and waiting for the rest would hold its buffer open.
                tracing::warn!(len, "failover: oversized message; closing the connection");
                self.status.refuse_connection("oversized_message");
                self.lost(now, "oversized message");
                return got;
            }
            if self.inbox.len() - at < len {
                break;
            }
            let frame = &mut self.inbox[at..at + len];
            let inner = match &mut self.auth {
                None => len,
                Some(a) => match a.open(frame) {
                    Ok(inner) => inner,
                    Err(why) => {
                        tracing::warn!("failover: {why}; closing the connection");
                        self.status.refuse_connection("unauthenticated");
                        self.lost(now, why);
                        return got;
                    }
                },
            };
            self.driver
                .session_mut()
                .handle(now, &self.inbox[at..at + inner]);
            at += len;
        }
        self.inbox.drain(..at);
        got
    }

    /// The workers' changes, for the partner: each queue's in order, the queues in turn.
    fn drain_workers(&mut self) -> bool {
        let mut any = false;
        let queues = self.queues.len();
        for k in 0..queues {
            let queue = (self.first_queue + k) % queues;
            while self.driver.session().pending_updates() < SESSION_BACKLOG {
                let Some(event) = self.queues[queue].pop() else {
                    break;
                };
                // Only what goes to the partner waits for its acknowledgement (a scope served
                // alone does not).
                if self.driver.send(&event) {
                    self.waiting
                        .entry(event.address)
                        .or_insert_with(Instant::now);
                }
                any = true;
            }
        }
        self.first_queue = (self.first_queue + 1) % queues.max(1);
        any
    }

    /// What the session asks of the server, carried out by the driver; the link keeps the
    /// state file, counts, and measures replication lag.
    fn events(&mut self, now: Time) -> anyhow::Result<()> {
        while let Some(notice) = self
            .driver
            .poll(now, self.member.engine(), &mut self.journal)
        {
            match notice {
                Notice::Persist(state) => {
                    write_state(&self.state_path, state)?;
                    tracing::info!(
                        since = state.start_time,
                        mclt = state.mclt,
                        "failover: state {}",
                        state.state
                    );
                    self.driver.persisted(self.member.engine());
                }
                Notice::Installed { result: Ok(()), .. } => {
                    self.status.updates_accepted.fetch_add(1, Ordering::Relaxed);
                }
                Notice::Installed {
                    address,
                    result: Err(reason),
                } => {
                    self.status.rejected_update(reason.as_str());
                    if reason == RejectReason::ILLEGAL_IP_ADDRESS {
                        self.pools_differ(address, "this server");
                    }
                }
                Notice::NotJournaled(address) => {
                    self.status.updates_accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%address, "failover: journal full, update not acknowledged");
                }
                Notice::Acknowledged { address, result } => {
                    if let Err(reason) = result {
                        self.status.refused_by_partner.add(reason.as_str());
                        if reason == RejectReason::ILLEGAL_IP_ADDRESS {
                            self.pools_differ(address, "the partner");
                        }
                    }
                    if let Some(at) = self.waiting.remove(&address)
                        && result.is_ok()
                    {
                        let ns = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        let _ = self
                            .lag
                            .record(ns.clamp(1, peregrine_stats::Latency::MAX_NS));
                    }
                }
                Notice::Balanced(moved) => {
                    tracing::info!(moved, "failover: pool balanced for the secondary");
                }
                Notice::PoolResponse(moved) => {
                    tracing::debug!(moved, "failover: the primary balanced the pools");
                }
                Notice::Closed(reason) => {
                    if matches!(reason, CloseReason::Renegotiate) {
                        tracing::info!(
                            "failover: ISC partner: connecting again advertising twice its \
                             window (max-unacked-updates), so that it acknowledges at once"
                        );
                    } else {
                        tracing::warn!(reason = reason.as_str(), "failover: connection closed");
                    }
                    self.status.refuse_connection(reason.as_str());
                    // The farewell (a refusal, a DISCONNECT) leaves first.
                    self.write(now);
                    self.lost(now, reason.as_str());
                }
            }
        }
        self.status
            .updates_sent
            .store(self.driver.updates_sent(), Ordering::Relaxed);
        Ok(())
    }

    /// An update named an address in none of `whose` pools: the two configurations do not
    /// share the same scopes. Said once per connection; every such update is counted.
    fn pools_differ(&mut self, address: std::net::Ipv4Addr, whose: &str) {
        if !std::mem::replace(&mut self.told_mismatch, true) {
            tracing::error!(
                %address,
                "failover: {address} is in none of {whose}'s pools: the partners' scopes and \
                 pools differ; give both servers the same [[scope]] tables"
            );
        }
    }

    /// Writes what the session has to say.
    fn write(&mut self, now: Time) -> bool {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        while let Some(len) = self.driver.session_mut().poll_transmit(now, &mut buf) {
            let start = self.outbox.len();
            self.outbox.extend_from_slice(&buf[..len]);
            if let Some(a) = &mut self.auth {
                a.seal(&mut self.outbox, start);
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            self.outbox.clear();
            return false;
        };
        let mut wrote = false;
        while !self.outbox.is_empty() {
            match stream.write(&self.outbox) {
                Ok(0) => break,
                Ok(n) => {
                    self.outbox.drain(..n);
                    wrote = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = e.to_string();
                    self.lost(now, &why);
                    break;
                }
            }
        }
        wrote
    }
}

/// The file in the lease directory that keeps the failover state.
pub(crate) const STATE_FILE: &str = "failover.state";

/// The failover state kept on disk: `state since mclt` (mclt 0: not known yet).
fn read_state(path: &Path) -> anyhow::Result<Option<Restored>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = || {
        anyhow::anyhow!(
            "{}: not a failover state (`state since mclt`); remove it to start in RECOVER and \
             learn every binding from the partner",
            path.display()
        )
    };
    let mut words = text.split_whitespace();
    let state = words
        .next()
        .and_then(|w| w.parse::<u8>().ok())
        .and_then(ServerState::from_u8)
        .ok_or_else(bad)?;
    let start_time = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let mclt: u32 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    Ok(Some(Restored {
        state,
        start_time,
        mclt: (mclt != 0).then_some(mclt),
    }))
}

/// Moves the failover state of lease directory `dir` aside (to
/// `failover.state.before-repair-<time>`, the directory synced), so that the server starts as
/// one that lost its database: in RECOVER, asking its partner for every binding. `None` if
/// there was no state.
pub(crate) fn set_state_aside(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let state = dir.join(STATE_FILE);
    if !state.try_exists()? {
        return Ok(None);
    }
    let aside = dir.join(format!("{STATE_FILE}.before-repair-{}", unix_now()));
    std::fs::rename(&state, &aside).with_context(|| format!("moving {}", state.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(Some(aside))
}

/// Writes the state durably (a new file, synced, renamed over the old, the directory synced).
fn write_state(path: &Path, r: Restored) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let text = format!(
        "{} {} {}\n",
        r.state as u8,
        r.start_time,
        r.mclt.unwrap_or(0)
    );
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
