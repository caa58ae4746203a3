//! `peregrine run`: wiring and lifetime of the server process.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use peregrine_config::model::{Backend, Config, InterfaceConfig};
use peregrine_dataplane::{Interface, Worker, WorkerConfig, WorkerStats};
use peregrine_engine::{Engine, EngineOptions};
use peregrine_io::{RxQueue, TxQueue};
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
    let engine =
        Arc::new(Engine::new(&config, EngineOptions::default()).context("building the engine")?);
    let interfaces = config
        .runtime
        .interfaces
        .iter()
        .map(|i| interface(i, &engine))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let quit = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, quit.clone()).context("installing signal handlers")?;
    }

    let stats: Vec<Arc<WorkerStats>> = Vec::new();
    let mut handles = Vec::new();
    let mut stats = stats;
    match config.runtime.backend {
        Backend::Udp => {
            // One socket on port 67 receives for every interface; IP_PKTINFO tells them apart.
            // A second socket would receive every broadcast again, so UDP mode runs one worker.
            if config.runtime.workers > 1 {
                tracing::warn!(
                    "backend udp runs one worker; workers = {} ignored",
                    config.runtime.workers
                );
            }
            let queue = peregrine_io::udp::open(Ipv4Addr::UNSPECIFIED, 67, 32)
                .context("opening UDP port 67")?;
            let s = Arc::new(WorkerStats::default());
            stats.push(s.clone());
            handles.push(spawn(
                "peregrine-udp",
                &engine,
                queue,
                interfaces.clone(),
                s,
                true,
                &quit,
            )?);
        }
        Backend::AfPacket | Backend::Tap => {
            bail!(
                "backend {:?} is not wired into the server yet; use backend = \"udp\"",
                config.runtime.backend
            );
        }
    }
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
    let (rx, tx): (u64, u64) = stats
        .iter()
        .map(|s| (s.rx_frames.get(), s.tx_frames.get()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    tracing::info!(rx_frames = rx, tx_frames = tx, "peregrine stopped");
    failed.map_or(Ok(()), Err)
}

fn spawn<R, T>(
    name: &str,
    engine: &Arc<Engine>,
    queue: (R, T),
    interfaces: Vec<Interface>,
    stats: Arc<WorkerStats>,
    runs_expiry: bool,
    quit: &Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>>
where
    R: RxQueue + Send + 'static,
    T: TxQueue + Send + 'static,
{
    let engine = engine.clone();
    let quit = quit.clone();
    let config = WorkerConfig {
        runs_expiry,
        ..WorkerConfig::default()
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut worker = Worker::new(engine, queue, interfaces, stats, config);
            worker.run(&quit).context("worker I/O")
        })
        .context("starting a worker thread")
}

/// What the dataplane needs of a configured interface, read from sysfs.
fn interface(i: &InterfaceConfig, engine: &Engine) -> anyhow::Result<Interface> {
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
