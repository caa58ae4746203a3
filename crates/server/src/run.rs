//! `peregrine run`: wiring and lifetime of the server process.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context, bail};
use peregrine_config::model::{Backend, Config, Durability, InterfaceConfig};
use peregrine_control::{ControlSources, Importer};
use peregrine_dataplane::{Handoff, Interface, Journal, Worker, WorkerConfig, WorkerStats};
use peregrine_engine::{BindingEvent, Engine, EngineOptions, KeySecret};
use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_io::tap::{Tap, TapConfig};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_store::{
    Journal as StoreWriter, JournalOptions, JournalWriter, LeaseDir, WorkerJournal,
};
use peregrine_wire::MacAddr;

/// Runs the server described by the file at `path` until SIGTERM or SIGINT.
pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let config =
        peregrine_config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    if config.runtime.interfaces.is_empty() {
        bail!(
            "{}: no [[interface]] configured: nothing to serve",
            path.display()
        );
    }
    let store = config
        .runtime
        .leases
        .as_ref()
        .map(|l| LeaseDir::open(&l.directory))
        .transpose()?;
    let key_secret = store
        .as_ref()
        .map_or_else(KeySecret::random, LeaseDir::key_secret);
    let options = EngineOptions {
        key_secret,
        ..EngineOptions::default()
    };
    let engine = Arc::new(Engine::new(&config, options).context("building the engine")?);
    if let Some(dir) = &store {
        recover(&engine, dir)?;
    }
    // TAP devices exist once we create them: open them before reading their interfaces.
    let mut taps = open_taps(&config)?;
    let interfaces = config
        .runtime
        .interfaces
        .iter()
        .map(|i| interface(i, &engine, config.runtime.backend))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, quit.clone()).context("installing signal handlers")?;
    }

    let workers = match config.runtime.backend {
        Backend::Udp => 1,
        Backend::AfPacket | Backend::Tap => interfaces.len() * config.runtime.workers as usize,
    };
    let (writer, mut journals, import_side) = start_journal(&config, store.as_ref(), workers)?;
    let started = std::time::Instant::now();
    let Started {
        handles,
        stats,
        quiet_kernel,
    } = start_workers(
        &config,
        &engine,
        &interfaces,
        &mut taps,
        &mut journals,
        &quit,
    )?;
    let sources = ControlSources {
        engine: engine.clone(),
        workers: stats.clone(),
        started,
        journal: writer.as_ref().map(JournalWriter::stats),
        importer: import_side.map(|side| Arc::new(Importer::new(Arc::new(config.clone()), side))),
    };
    let control = peregrine_control::spawn(config.runtime.control_listen, sources)?;
    tracing::info!(listen = %control.local_addr(), "control plane: /metrics /healthz /v1/pools /v1/leases/IP");
    tracing::info!(
        scopes = config.scopes.len(),
        interfaces = interfaces.len(),
        workers = handles.len(),
        backend = ?config.runtime.backend,
        "peregrine serving"
    );
    log_interfaces(&config, &interfaces);
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a worker panicked")),
        }
    }
    drop(quiet_kernel);
    if let Err(e) = control.shutdown() {
        tracing::warn!("control plane: {e}");
    }
    if let Some(writer) = writer {
        writer.stop().context("lease journal")?;
    }
    drop(store);
    let (rx, tx): (u64, u64) = stats
        .iter()
        .map(|s| (s.rx_frames.get(), s.tx_frames.get()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    tracing::info!(rx_frames = rx, tx_frames = tx, "peregrine stopped");
    failed.map_or(Ok(()), Err)
}

/// Starts the journal writer, if leases are kept durably, with a side for each of `workers`
/// and one for imports through the admin API.
fn start_journal(
    config: &Config,
    store: Option<&LeaseDir>,
    workers: usize,
) -> anyhow::Result<(
    Option<JournalWriter>,
    Vec<StoreJournal>,
    Option<WorkerJournal>,
)> {
    let (Some(dir), Some(leases)) = (store, &config.runtime.leases) else {
        tracing::warn!("no [leases] directory configured: leases live in memory only");
        return Ok((None, Vec::new(), None));
    };
    let options = JournalOptions {
        durability: match leases.durability {
            Durability::Fsync => peregrine_store::Durability::Fsync,
            Durability::NoneUnsafe => peregrine_store::Durability::NoneUnsafe,
        },
        compact_after: leases.compact_after,
        core: leases.writer_core,
        commit_interval: std::time::Duration::from_micros(u64::from(leases.commit_interval_us)),
    };
    let (writer, mut sides) = StoreWriter::start(dir, options, workers + 1)?;
    let import_side = sides.pop();
    Ok((
        Some(writer),
        sides.into_iter().map(StoreJournal).collect(),
        import_side,
    ))
}

/// The running workers, their counters, and the socket that keeps the kernel quiet.
struct Started {
    handles: Vec<std::thread::JoinHandle<anyhow::Result<()>>>,
    stats: Vec<Arc<WorkerStats>>,
    quiet_kernel: Option<std::net::UdpSocket>,
}

/// Opens the configured backend on every interface and starts the workers.
fn start_workers(
    config: &Config,
    engine: &Arc<Engine>,
    interfaces: &[Interface],
    taps: &mut Vec<Tap>,
    journals: &mut Vec<StoreJournal>,
    quit: &Arc<AtomicBool>,
) -> anyhow::Result<Started> {
    let mut started = Started {
        handles: Vec::new(),
        stats: Vec::new(),
        quiet_kernel: None,
    };
    let workers = config.runtime.workers as usize;
    let cores = &config.runtime.cores;
    let mut plan = |name: String, iface: Vec<Interface>, handoff, runs_expiry| {
        let stats = Arc::new(WorkerStats::default());
        let index = started.stats.len();
        started.stats.push(stats.clone());
        WorkerPlan {
            name,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
            interfaces: iface,
            stats,
            journal: journals.pop(),
            handoff,
            runs_expiry,
        }
    };
    let mut handles = Vec::new();
    // Every worker of an interface shares its rings; one worker needs none.
    let mesh = || -> Vec<Option<Handoff>> {
        if config.runtime.handoff && workers > 1 {
            Handoff::mesh(workers, HANDOFF_DEPTH)
                .into_iter()
                .map(Some)
                .collect()
        } else {
            (0..workers).map(|_| None).collect()
        }
    };
    match config.runtime.backend {
        Backend::Udp => {
            // One socket on port 67 receives for every interface; IP_PKTINFO tells them apart.
            // A second socket would receive every broadcast again, so UDP mode runs one worker.
            if workers > 1 {
                tracing::warn!("backend udp runs one worker; workers = {workers} ignored");
            }
            let queue = peregrine_io::udp::open(Ipv4Addr::UNSPECIFIED, 67, 32)
                .context("opening UDP port 67")?;
            let plan = plan("peregrine-udp".into(), interfaces.to_vec(), None, true);
            handles.push(spawn(plan, engine, queue, quit)?);
        }
        Backend::AfPacket => {
            // The kernel still owns these interfaces and sees every frame we do. A UDP/67
            // socket that is never read keeps it from answering relays with ICMP port
            // unreachable (and any other DHCP server from starting here); its buffer fills and
            // the kernel drops its copies silently. ARP is answered twice, identically.
            started.quiet_kernel = Some(
                std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67))
                    .context("binding UDP/67 to keep the kernel quiet")?,
            );
            for (k, iface) in interfaces.iter().enumerate() {
                let name = &config.runtime.interfaces[k].name;
                // Fanout groups are per network namespace: mix in the pid so that two servers
                // in one namespace do not join each other's group.
                let group = ((std::process::id() as u16) << 4) ^ k as u16;
                for (w, handoff) in mesh().into_iter().enumerate() {
                    let afp = AfPacketConfig {
                        fanout_group: Some(group),
                        ..AfPacketConfig::default()
                    };
                    let queue = afpacket::open(name, &afp)
                        .with_context(|| format!("AF_PACKET on {name}"))?;
                    let thread = format!("pg-{name}-{w}");
                    let plan = plan(thread, vec![iface.clone()], handoff, k == 0 && w == 0);
                    handles.push(spawn(plan, engine, queue, quit)?);
                }
            }
        }
        Backend::Tap => {
            // The kernel is the peer on a TAP device, not a second owner of our address: it
            // answers nothing for us, so nothing needs quieting.
            for (k, (tap, iface)) in taps.drain(..).zip(interfaces).enumerate() {
                for (w, (queue, handoff)) in tap.queues.into_iter().zip(mesh()).enumerate() {
                    let thread = format!("pg-{}-{w}", tap.name);
                    let plan = plan(thread, vec![iface.clone()], handoff, k == 0 && w == 0);
                    handles.push(spawn(plan, engine, queue, quit)?);
                }
            }
        }
    }
    started.handles = handles;
    Ok(started)
}

/// Frames each way between two workers of one interface that may wait for the other.
const HANDOFF_DEPTH: usize = 1024;

/// Creates the TAP devices of a `tap` configuration, each with one queue per worker.
fn open_taps(config: &Config) -> anyhow::Result<Vec<Tap>> {
    if config.runtime.backend != Backend::Tap {
        return Ok(Vec::new());
    }
    let workers = config.runtime.workers as usize;
    config
        .runtime
        .interfaces
        .iter()
        .map(|i| {
            let tap = TapConfig {
                queues: workers,
                multi_queue: workers > 1,
                ..TapConfig::default()
            };
            peregrine_io::tap::open(&i.name, &tap)
                .with_context(|| format!("creating TAP device {}", i.name))
        })
        .collect()
}

/// Everything one worker thread starts with.
struct WorkerPlan {
    name: String,
    core: Option<usize>,
    interfaces: Vec<Interface>,
    stats: Arc<WorkerStats>,
    journal: Option<StoreJournal>,
    handoff: Option<Handoff>,
    runs_expiry: bool,
}

/// Starts a worker thread, pinned to its core if it has one. A worker that cannot be pinned
/// sets `quit`, so the server stops with its error instead of running unpinned.
fn spawn<R, T>(
    plan: WorkerPlan,
    engine: &Arc<Engine>,
    queue: (R, T),
    quit: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>>
where
    R: RxQueue + Send + 'static,
    T: TxQueue + Send + 'static,
{
    let engine = engine.clone();
    let quit = quit.clone();
    let config = WorkerConfig {
        runs_expiry: plan.runs_expiry,
        ..WorkerConfig::default()
    };
    let name = plan.name.clone();
    std::thread::Builder::new()
        .name(plan.name)
        .spawn(move || {
            if let Some(core) = plan.core
                && let Err(e) = peregrine_io::pin_current_thread(core)
            {
                quit.store(true, Ordering::Relaxed);
                return Err(anyhow::anyhow!("worker {name}: {e}"));
            }
            let mut worker = Worker::new(
                engine,
                queue,
                plan.interfaces,
                plan.stats,
                config,
                plan.journal,
            );
            if let Some(handoff) = plan.handoff {
                worker = worker.with_handoff(handoff);
            }
            worker.run(&quit).context("worker I/O")
        })
        .context("starting a worker thread")
}

/// A worker's side of the lease journal, as the dataplane's [`Journal`].
struct StoreJournal(WorkerJournal);

impl Journal for StoreJournal {
    fn submit(&mut self, event: &BindingEvent) -> Option<u64> {
        self.0.enqueue(event)
    }

    fn flush(&mut self) {
        self.0.wake();
    }

    fn committed(&self) -> u64 {
        self.0.committed()
    }
}

/// Reads the lease history into the engine: snapshot, sealed segments, journal, each change
/// replayed as it is read (a 10 M-lease history is never held in memory twice), on every core.
fn recover(engine: &Engine, dir: &LeaseDir) -> anyhow::Result<()> {
    let t = std::time::Instant::now();
    let (recovered, refused) = replay_history(engine, dir)?;
    if recovered.truncated_bytes > 0 {
        tracing::warn!(
            bytes = recovered.truncated_bytes,
            offset = recovered.truncated_at,
            "lease journal: removed a record torn by a crash (its ACK was never sent)"
        );
    }
    if recovered.tidied > 0 {
        tracing::info!(
            files = recovered.tidied,
            "lease directory: removed files a crash left during sealing or compaction"
        );
    }
    tracing::info!(
        directory = %dir.path().display(),
        records = recovered.records,
        files = recovered.history_files + 1,
        refused,
        ms = t.elapsed().as_millis(),
        "leases recovered"
    );
    if refused > 0 {
        tracing::warn!(
            refused,
            "lease journal: bindings outside the configured pools were not restored"
        );
    }
    Ok(())
}

/// Replays `dir`'s lease history into `engine` on every core; returns what recovery read and
/// how many records the configuration refused (addresses in no pool). Replay keeps each
/// address's newest version whatever the order, so the threads need no coordination; nothing
/// else may use the engine meanwhile.
pub(crate) fn replay_history(
    engine: &Engine,
    dir: &LeaseDir,
) -> anyhow::Result<(peregrine_store::Recovered, u64)> {
    let refused = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let recovered = dir.recover_parallel(threads, |event| {
        if let Err(e) = engine.replay(event) {
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?e, "lease journal: binding not restored");
        }
    })?;
    Ok((recovered, refused.into_inner()))
}

/// What the dataplane needs of a configured interface, read from sysfs.
///
/// On a TAP device the interface's own MAC address is the kernel's, the peer's: we send from a
/// locally administered address made from ours (`02:00:` and the four octets of the IPv4
/// address), unique on the segment as long as the addresses are.
fn interface(i: &InterfaceConfig, engine: &Engine, backend: Backend) -> anyhow::Result<Interface> {
    let sys = Path::new("/sys/class/net").join(&i.name);
    let ifindex: u32 = std::fs::read_to_string(sys.join("ifindex"))
        .with_context(|| format!("interface {}: not found", i.name))?
        .trim()
        .parse()
        .with_context(|| format!("interface {}: unreadable ifindex", i.name))?;
    let mac = std::fs::read_to_string(sys.join("address"))
        .with_context(|| format!("interface {}: no MAC address", i.name))?;
    let mac = parse_mac(mac.trim())
        .with_context(|| format!("interface {}: MAC address {mac:?}", i.name))?;
    let mac = if backend == Backend::Tap {
        let octets = i.address.octets();
        MacAddr([0x02, 0x00, octets[0], octets[1], octets[2], octets[3]])
    } else {
        mac
    };
    Ok(Interface {
        ifindex,
        mac,
        addr: i.address,
        engine_id: engine.interface(&i.name),
        trusted: i.trusted,
    })
}

fn parse_mac(s: &str) -> anyhow::Result<MacAddr> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next().context("too short")?, 16)?;
    }
    if parts.next().is_some() {
        bail!("too long");
    }
    Ok(MacAddr(out))
}

fn log_interfaces(config: &Config, interfaces: &[Interface]) {
    for (c, i) in config.runtime.interfaces.iter().zip(interfaces) {
        tracing::info!(interface = %c.name, ifindex = i.ifindex, address = %i.addr, mac = %i.mac, trusted = i.trusted, "listening");
    }
}
