//! The backend seam: how the configured packet I/O backend finds its interfaces, opens its
//! ports and queues, and gets a worker polling each queue.
//!
//! The worker loop is the same code on every backend; what differs is behind [`Backend`]:
//! AF_PACKET, TAP and the UDP socket open their queues here and poll each on a thread the
//! server makes and pins ([`spawn_pinned`]); a backend that brings its own threads (DPDK's
//! lcores) implements [`Backend::start`] by launching the same worker on them.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use peregrine_config::model::{Backend as BackendKind, Config, InterfaceConfig};
use peregrine_dataplane::{
    Fanout, Handoff, Interface, ProbeAnswers, SharedEngine, Worker, WorkerConfig,
};
use peregrine_engine::Engine;
use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_io::tap::{Tap, TapConfig};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_stats::WorkerStats;
use peregrine_store::WorkerJournal;
use peregrine_wire::MacAddr;

use peregrine_control::PortCounterSource;

use crate::partner::PartnerQueue;
use crate::placement::pin_current_thread;

/// Where a worker's binding changes go: its side of the lease journal, which confirms them,
/// and the failover link, which is only told (nobody without a partner).
pub(crate) type WorkerSink = Fanout<WorkerJournal, PartnerQueue>;

/// A running worker thread.
pub(crate) type WorkerThread = JoinHandle<anyhow::Result<()>>;

/// One queue a backend opened, as the server plans its worker.
#[derive(Debug, Clone)]
pub(crate) struct QueueSlot {
    /// Thread name of its worker.
    pub(crate) name: String,
    /// Index of the interface it serves, in [`Backend::interfaces`]; `None`: every interface
    /// (one UDP socket receives for all of them).
    pub(crate) interface: Option<usize>,
}

/// Everything a worker starts with but its queue.
pub(crate) struct WorkerSeed {
    pub(crate) name: String,
    pub(crate) core: Option<usize>,
    pub(crate) interfaces: Vec<Interface>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) sink: Option<WorkerSink>,
    pub(crate) handoff: Option<Handoff>,
    pub(crate) runs_expiry: bool,
    /// Ping check: OFFERs that may wait at once (0: no scope has one), and the answers every
    /// worker of the server notes and reads.
    pub(crate) probes: (usize, Arc<ProbeAnswers>),
    /// Every worker of the server: each applies its share of `[limits]`' rates.
    pub(crate) workers: u32,
}

/// A packet I/O backend, opened: its interfaces found, its queues ready.
pub(crate) trait Backend {
    /// The interfaces it serves, in configuration order.
    fn interfaces(&self) -> &[Interface];

    /// Its queues, one worker each, in the order [`Backend::start`] takes seeds.
    fn queues(&self) -> &[QueueSlot];

    /// Starts a worker on each queue with its seed (as many as [`Backend::queues`]). A worker
    /// that cannot be placed sets `quit`, so the server stops with its error.
    fn start(
        &mut self,
        seeds: Vec<WorkerSeed>,
        engine: &Arc<SharedEngine>,
        quit: &Arc<AtomicBool>,
    ) -> anyhow::Result<Vec<WorkerThread>>;

    /// The counters of its ports, for `/metrics`, if it has ports of its own (DPDK's).
    fn port_counters(&self) -> Option<Arc<dyn PortCounterSource>>;
}

/// Opens the backend `config` names on every configured interface.
pub(crate) fn open(config: &Config, engine: &Engine) -> anyhow::Result<Box<dyn Backend>> {
    let runtime = &config.runtime;
    let workers = runtime.workers as usize;
    Ok(match runtime.backend {
        BackendKind::Udp => {
            // One socket on port 67 receives for every interface; IP_PKTINFO tells them apart.
            // A second socket would receive every broadcast again, so UDP mode runs one worker.
            if workers > 1 {
                tracing::warn!("backend udp runs one worker; workers = {workers} ignored");
            }
            let interfaces = discover(config, engine, MacFrom::Interface)?;
            let queue = peregrine_io::udp::open(Ipv4Addr::UNSPECIFIED, 67, 32)
                .context("opening UDP port 67")?;
            Box::new(Threads {
                interfaces,
                slots: vec![QueueSlot {
                    name: "peregrine-udp".into(),
                    interface: None,
                }],
                queues: vec![queue],
                _hold: Vec::new(),
                ports: None,
            })
        }
        BackendKind::AfPacket => {
            let interfaces = discover(config, engine, MacFrom::Interface)?;
            let mut slots = Vec::new();
            let mut queues = Vec::new();
            for (k, i) in runtime.interfaces.iter().enumerate() {
                let name = &i.name;
                // Fanout groups are per network namespace: mix in the pid so that two servers
                // in one namespace do not join each other's group.
                let group = ((std::process::id() as u16) << 4) ^ k as u16;
                for w in 0..workers {
                    let afp = AfPacketConfig {
                        fanout_group: Some(group),
                        ..AfPacketConfig::default()
                    };
                    queues.push(
                        afpacket::open(name, &afp)
                            .with_context(|| format!("AF_PACKET on {name}"))?,
                    );
                    slots.push(QueueSlot {
                        name: format!("pg-{name}-{w}"),
                        interface: Some(k),
                    });
                }
            }
            // The kernel still owns these interfaces and sees every frame we do. A UDP/67
            // socket that is never read keeps it from answering relays with ICMP port
            // unreachable (and any other DHCP server from starting here); its buffer fills and
            // the kernel drops its copies silently. ARP is answered twice, identically. It is
            // bound once every ring is open, so that a bound UDP/67 means frames are kept.
            let quiet = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67))
                .context("binding UDP/67 to keep the kernel quiet")?;
            Box::new(Threads {
                interfaces,
                slots,
                queues,
                _hold: vec![Box::new(quiet)],
                ports: None,
            })
        }
        BackendKind::Tap => {
            // TAP devices exist once we create them: open them before reading their interfaces.
            // The kernel is the peer on a TAP device, not a second owner of our address: it
            // answers nothing for us, so nothing needs quieting.
            let taps = open_taps(config)?;
            let interfaces = discover(config, engine, MacFrom::TapPeer)?;
            let mut slots = Vec::new();
            let mut queues = Vec::new();
            for (k, tap) in taps.into_iter().enumerate() {
                for (w, queue) in tap.queues.into_iter().enumerate() {
                    queues.push(queue);
                    slots.push(QueueSlot {
                        name: format!("pg-{}-{w}", tap.name),
                        interface: Some(k),
                    });
                }
            }
            Box::new(Threads {
                interfaces,
                slots,
                queues,
                _hold: Vec::new(),
                ports: None,
            })
        }
        BackendKind::Dpdk => dpdk(config, engine)?,
    })
}

#[cfg(feature = "dpdk")]
fn dpdk(config: &Config, engine: &Engine) -> anyhow::Result<Box<dyn Backend>> {
    crate::dpdk::open(config, engine)
}

#[cfg(not(feature = "dpdk"))]
fn dpdk(_: &Config, _: &Engine) -> anyhow::Result<Box<dyn Backend>> {
    bail!(
        "backend dpdk: this peregrine was built without DPDK \
         (cargo build --release -p peregrine --features dpdk; dpdk/README.md)"
    )
}

/// A backend whose queues are polled by threads the server makes and pins: AF_PACKET, TAP,
/// UDP, and DPDK's ports for now.
pub(crate) struct Threads<R, T> {
    pub(crate) interfaces: Vec<Interface>,
    pub(crate) slots: Vec<QueueSlot>,
    pub(crate) queues: Vec<(R, T)>,
    /// What must live as long as the queues: the UDP/67 socket that keeps the kernel quiet
    /// (the AF_PACKET arm of [`open`]), DPDK's pool and EAL.
    pub(crate) _hold: Vec<Box<dyn std::any::Any>>,
    /// Its ports, by their counters (DPDK's): they live as long as this or the control plane.
    pub(crate) ports: Option<Arc<dyn PortCounterSource>>,
}

impl<R, T> Backend for Threads<R, T>
where
    R: RxQueue + Send + 'static,
    T: TxQueue + Send + 'static,
{
    fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    fn queues(&self) -> &[QueueSlot] {
        &self.slots
    }

    fn start(
        &mut self,
        seeds: Vec<WorkerSeed>,
        engine: &Arc<SharedEngine>,
        quit: &Arc<AtomicBool>,
    ) -> anyhow::Result<Vec<WorkerThread>> {
        debug_assert_eq!(seeds.len(), self.queues.len());
        let mut threads = Vec::new();
        for (seed, queue) in seeds.into_iter().zip(self.queues.drain(..)) {
            threads.push(spawn_pinned(seed, engine, queue, quit)?);
        }
        Ok(threads)
    }

    fn port_counters(&self) -> Option<Arc<dyn PortCounterSource>> {
        self.ports.clone()
    }
}

/// Starts a worker thread on `queue`, pinned to its seed's core if it has one. A worker that
/// cannot be pinned sets `quit`, so the server stops with its error instead of running unpinned.
fn spawn_pinned<R, T>(
    seed: WorkerSeed,
    engine: &Arc<SharedEngine>,
    queue: (R, T),
    quit: &Arc<AtomicBool>,
) -> anyhow::Result<WorkerThread>
where
    R: RxQueue + Send + 'static,
    T: TxQueue + Send + 'static,
{
    // A member from now on: a reload waits for this worker from the moment it exists.
    let member = engine.member();
    let quit = quit.clone();
    let config = WorkerConfig {
        runs_expiry: seed.runs_expiry,
        probe_slots: seed.probes.0,
        workers: seed.workers,
        ..WorkerConfig::default()
    };
    let name = seed.name.clone();
    std::thread::Builder::new()
        .name(seed.name)
        .spawn(move || {
            if let Some(core) = seed.core
                && let Err(e) = pin_current_thread(core)
            {
                quit.store(true, Ordering::Relaxed);
                return Err(anyhow::anyhow!("worker {name}: {e}"));
            }
            let mut worker = Worker::new(
                member.engine().clone(),
                queue,
                seed.interfaces,
                seed.stats,
                config,
                seed.sink,
            )
            .with_probe_answers(seed.probes.1)
            .with_shared(member);
            if let Some(handoff) = seed.handoff {
                worker = worker.with_handoff(handoff);
            }
            worker.run(&quit).context("worker I/O")
        })
        .context("starting a worker thread")
}

/// Creates the TAP devices of a `tap` configuration, each with one queue per worker.
fn open_taps(config: &Config) -> anyhow::Result<Vec<Tap>> {
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

/// Which MAC address we send from on an interface.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MacFrom {
    /// The interface's own.
    Interface,
    /// On a TAP device the interface's own MAC address is the kernel's, the peer's: we send
    /// from a locally administered address made from ours (`02:00:` and the four octets of
    /// the IPv4 address), unique on the segment as long as the addresses are.
    TapPeer,
}

/// What the dataplane needs of every configured interface, read from sysfs.
fn discover(config: &Config, engine: &Engine, mac: MacFrom) -> anyhow::Result<Vec<Interface>> {
    config
        .runtime
        .interfaces
        .iter()
        .map(|i| interface(i, engine, mac))
        .collect()
}

fn interface(i: &InterfaceConfig, engine: &Engine, mac_from: MacFrom) -> anyhow::Result<Interface> {
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
    let mac = match mac_from {
        MacFrom::Interface => mac,
        MacFrom::TapPeer => {
            let octets = i.address.octets();
            MacAddr([0x02, 0x00, octets[0], octets[1], octets[2], octets[3]])
        }
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
