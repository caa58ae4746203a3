//! `peregrine-loadgen`: drive a DHCPv4 server with relayed subscribers, answer as a stateless
//! echo server, or chart a comparison. `peregrine-loadgen --help` lists everything.

// Counts become rates for reports; they stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use peregrine_bench::backend::{self, Server, Tagging};
use peregrine_bench::generator::{BURST, Generator, Mix, Progress, Scenario, Settings};
use peregrine_bench::template::Template;
use peregrine_bench::{echo, plot};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_wire::frame::UdpFrameHeaders;

#[derive(Parser, Debug)]
#[command(
    name = "peregrine-loadgen",
    version,
    about = "Relay-mode DHCPv4 load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Drive a server: emulated subscribers behind relays.
    Run(Box<RunArgs>),
    /// Answer every relayed DISCOVER/REQUEST with a fixed OFFER/ACK (I/O ceiling runs).
    Echo(EchoArgs),
    /// Chart goodput and p99 latency against offered rate from `run --csv` rows.
    Plot(PlotArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// A UDP socket on port 67 (recvmmsg/sendmmsg); the giaddrs must be local addresses.
    Udp,
    /// Raw frames on an interface (TPACKET_V3 RX ring, batched TX).
    Afpacket,
    /// A DPDK port (a generator built with the `dpdk` feature): `--eal-args`, `--dpdk-port`.
    Dpdk,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            BackendKind::Udp => "udp",
            BackendKind::Afpacket => "af-packet",
            BackendKind::Dpdk => "dpdk",
        }
    }
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// I/O backend.
    #[arg(long, value_enum, default_value = "udp")]
    backend: BackendKind,
    /// Interface for the AF_PACKET backend.
    #[arg(long, required_if_eq("backend", "afpacket"))]
    interface: Option<String>,
    #[command(flatten)]
    dpdk: DpdkArgs,
    /// The server's address; several, comma-separated, for a failover pair: each relay
    /// forwards what a client broadcasts to all of them, and a renewal or release only to the
    /// one whose server identifier the client holds.
    #[arg(long, value_delimiter = ',', required = true)]
    server: Vec<Ipv4Addr>,
    /// The servers' MACs on a raw backend, in --server's order; learned with ARP if not given.
    #[arg(long, value_delimiter = ',')]
    server_mac: Vec<String>,
    /// Relay addresses (giaddrs), comma-separated; client i sits behind relay i mod M.
    #[arg(long, value_delimiter = ',', required = true)]
    giaddr: Vec<Ipv4Addr>,
    /// Distinct clients.
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Exchanges begun per second (0: as fast as possible).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Exchanges begun per paced burst, released every burst/rate seconds (1: evenly spaced).
    #[arg(long, default_value_t = BURST, value_parser = clap::value_parser!(u32).range(1..=32))]
    burst: u32,
    /// What the clients do.
    #[arg(long, value_enum, default_value = "dora")]
    scenario: Scenario,
    /// Stop beginning exchanges after this many seconds (mix: default 10).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds to wait for an answer before it counts as lost (paced scenarios).
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
    /// Retransmissions before giving up (default 0; avalanche 3: 4, 8, 16 s ±1 s).
    #[arg(long)]
    retries: Option<u8>,
    /// Hard limit on the whole run, seconds.
    #[arg(long, default_value_t = 120.0)]
    max_time: f64,
    /// Option 82 circuit-id template, e.g. 'olt{relay}/port{port}' (also {client}, {mac}).
    #[arg(long)]
    circuit_id: Option<String>,
    /// Option 82 remote-id template, e.g. 'sub-{client}'.
    #[arg(long)]
    remote_id: Option<String>,
    /// 802.1Q C-VLAN id of every frame (AF_PACKET).
    #[arg(long)]
    vlan: Option<u16>,
    /// 802.1ad S-VLAN id (outer tag, QinQ) of every frame (AF_PACKET).
    #[arg(long)]
    svlan: Option<u16>,
    /// C-VLAN = --vlan + relay number.
    #[arg(long)]
    vlan_per_relay: bool,
    /// Mix weights for leased clients: renew,reboot,release,dora.
    #[arg(long, value_delimiter = ',', num_args = 4, default_values_t = [70u32, 10, 10, 10])]
    mix: Vec<u32>,
    /// Label of this run in reports (e.g. the server's name).
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Append the report's rows to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Measure this server process's CPU over the send period (/proc/PID/stat).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Mixed into every xid (default: from the clock), so late replies of another run never match.
    #[arg(long)]
    salt: Option<u32>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    quiet: bool,
    /// Exit with status 3 if a request phase (DISCOVER-OFFER, REQUEST-ACK, renew, reboot) lost
    /// more than this percentage of its exchanges.
    #[arg(long)]
    max_drop_pct: Option<f64>,
}

#[derive(clap::Args, Debug)]
struct EchoArgs {
    /// I/O backend.
    #[arg(long, value_enum, default_value = "udp")]
    backend: BackendKind,
    /// Interface for the AF_PACKET backend.
    #[arg(long, required_if_eq("backend", "afpacket"))]
    interface: Option<String>,
    #[command(flatten)]
    dpdk: DpdkArgs,
    /// Address to bind (UDP backend).
    #[arg(long, default_value = "0.0.0.0")]
    bind: Ipv4Addr,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 3600.0)]
    max_time: f64,
}

/// The DPDK backend's port.
#[derive(clap::Args, Debug)]
struct DpdkArgs {
    /// The EAL's arguments, space-separated (`--no-huge -l 1 --vdev=net_af_xdp0,iface=gen0`).
    #[arg(long, required_if_eq("backend", "dpdk"), allow_hyphen_values = true)]
    eal_args: Option<String>,
    /// The DPDK port to use (a vdev's name, or a PCI address).
    #[arg(long, required_if_eq("backend", "dpdk"))]
    dpdk_port: Option<String>,
}

#[derive(clap::Args, Debug)]
struct PlotArgs {
    /// CSV written by `run --csv`.
    #[arg(long)]
    input: PathBuf,
    /// PNG to write.
    #[arg(long)]
    output: PathBuf,
    /// Phase to chart.
    #[arg(long, default_value = "dora")]
    phase: String,
    /// TrueType font for the text (default: the sans font of fonts-dejavu-core).
    #[arg(long)]
    font: Option<PathBuf>,
    /// Chart title.
    #[arg(
        long,
        default_value = "DORA goodput and p99 latency against offered rate"
    )]
    title: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run(a) => run(&a),
        Command::Echo(a) => run_echo(&a).map(|()| ExitCode::SUCCESS),
        Command::Plot(a) => plot::load(&a.input, &a.phase)
            .and_then(|d| plot::draw(&d, &a.output, a.font.as_deref(), &a.title))
            .map(|()| ExitCode::SUCCESS),
    };
    r.unwrap_or_else(|e| {
        eprintln!("peregrine-loadgen: {e:#}");
        ExitCode::FAILURE
    })
}

fn quit_flag() -> Result<Arc<AtomicBool>> {
    let quit = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, quit.clone()).context("signal handler")?;
    }
    Ok(quit)
}

fn secs(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what}: {s} is not a duration"))
}

fn run(a: &RunArgs) -> Result<ExitCode> {
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let tagging = Tagging {
        svlan: a.svlan,
        cvlan: a.vlan,
        cvlan_per_relay: a.vlan_per_relay,
    };
    if tagging.any() && a.backend == BackendKind::Udp {
        bail!("VLAN tags need --backend afpacket");
    }
    let scenario = a.scenario;
    let duration = match (a.duration, scenario) {
        (Some(d), _) => Some(secs(d, "--duration")?),
        (None, Scenario::Mix) => Some(Duration::from_secs(10)),
        (None, _) => None,
    };
    let retries = a.retries.unwrap_or(if scenario == Scenario::Avalanche {
        3
    } else {
        0
    });
    let salt = a.salt.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Clients are numbered from 0 up: salt only the high bits so xids stay distinct.
        (t.subsec_nanos() ^ t.as_secs() as u32) & 0xff00_0000
    });
    let settings = |headers| -> Result<Settings> {
        Ok(Settings {
            label: a.label.clone(),
            backend: a.backend.name().to_owned(),
            scenario,
            rate: a.rate,
            clients: a.clients,
            giaddrs: a.giaddr.clone(),
            headers,
            circuit_id: a.circuit_id.as_deref().map(Template::parse).transpose()?,
            remote_id: a.remote_id.as_deref().map(Template::parse).transpose()?,
            timeout: secs(a.timeout, "--timeout")?,
            retries,
            duration,
            max_time: secs(a.max_time, "--max-time")?,
            mix: Mix {
                renew: a.mix[0],
                reboot: a.mix[1],
                release: a.mix[2],
                dora: a.mix[3],
            },
            salt,
            server_pid: a.server_pid,
            burst: a.burst,
        })
    };
    let quit = quit_flag()?;
    let report = match a.backend {
        BackendKind::Udp => {
            let (mut rx, mut tx) = backend::open_udp(Ipv4Addr::UNSPECIFIED, BURST as usize)?;
            let servers: Vec<Server> = a
                .server
                .iter()
                .map(|&ip| Server {
                    ip,
                    mac: backend::UDP_PEER_MAC,
                })
                .collect();
            let headers = backend::relay_headers(&a.giaddr, &servers, [0; 6], &tagging)?;
            drive(settings(headers)?, &mut rx, &mut tx, &quit, a.quiet)?
        }
        BackendKind::Afpacket => {
            let iface = a.interface.as_deref().unwrap_or_default();
            let (mut rx, mut tx) = backend::open_afpacket(iface, BURST as usize)?;
            let ours = tx.mac();
            let headers = raw_headers(a, &tagging, &mut rx, &mut tx, ours)?;
            // Reading the kernel's counters resets them: what is read after counts the run.
            rx.take_kernel_stats().context("PACKET_STATISTICS")?;
            let mut report = drive(settings(headers)?, &mut rx, &mut tx, &quit, a.quiet)?;
            report.rx_dropped = Some(rx.take_kernel_stats().context("PACKET_STATISTICS")?.drops);
            report
        }
        BackendKind::Dpdk => run_dpdk(a, &tagging, settings, &quit)?,
    };
    emit(&report, a)
}

/// The relays' frame headers on a raw backend sending from `ours`: to each server's MAC, given
/// or learned with ARP.
fn raw_headers<R: RxQueue, T: TxQueue>(
    a: &RunArgs,
    tagging: &Tagging,
    rx: &mut R,
    tx: &mut T,
    ours: [u8; 6],
) -> Result<Vec<Vec<UdpFrameHeaders>>> {
    if !a.server_mac.is_empty() && a.server_mac.len() != a.server.len() {
        bail!(
            "--server-mac: {} MACs for {} servers (one each, in --server's order)",
            a.server_mac.len(),
            a.server.len()
        );
    }
    let mut servers = Vec::with_capacity(a.server.len());
    for (i, &ip) in a.server.iter().enumerate() {
        let mac = match a.server_mac.get(i) {
            Some(m) => backend::parse_mac(m)?,
            None => backend::resolve_mac(
                rx,
                tx,
                (ours, a.giaddr[0]),
                ip,
                tagging.tags(0)?,
                Duration::from_secs(3),
            )?,
        };
        servers.push(Server { ip, mac });
    }
    backend::relay_headers(&a.giaddr, &servers, ours, tagging)
}

/// `run` on a DPDK port.
#[cfg(feature = "dpdk")]
fn run_dpdk(
    a: &RunArgs,
    tagging: &Tagging,
    settings: impl FnOnce(Vec<Vec<UdpFrameHeaders>>) -> Result<Settings>,
    quit: &Arc<AtomicBool>,
) -> Result<peregrine_bench::stats::Report> {
    let mut port = open_dpdk(&a.dpdk)?;
    let headers = raw_headers(a, tagging, &mut port.rx, &mut port.tx, port.mac)?;
    let before = port.rx_dropped()?;
    let mut report = drive(
        settings(headers)?,
        &mut port.rx,
        &mut port.tx,
        quit,
        a.quiet,
    )?;
    report.rx_dropped = Some(port.rx_dropped()?.saturating_sub(before));
    Ok(report)
}

/// `echo` on a DPDK port.
#[cfg(feature = "dpdk")]
fn echo_dpdk(a: &EchoArgs, quit: &Arc<AtomicBool>, max: Duration) -> Result<echo::EchoStats> {
    let mut port = open_dpdk(&a.dpdk)?;
    let name = a.dpdk.dpdk_port.as_deref().unwrap_or_default();
    // Answering in a server's place on a vdev over a kernel interface: hold UDP/67 as the
    // server does there, so that the kernel answers nothing (and a harness sees us up).
    let eal_args: Vec<&str> = a
        .dpdk
        .eal_args
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let _quiet = peregrine_dpdk::on_kernel_interfaces(&eal_args)
        .then(|| std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 67)))
        .transpose()
        .context("binding UDP/67 to keep the kernel quiet")?;
    eprintln!("echo: answering on DPDK port {name}");
    Ok(echo::run(&mut port.rx, &mut port.tx, port.mac, quit, max)?)
}

#[cfg(feature = "dpdk")]
fn open_dpdk(a: &DpdkArgs) -> Result<backend::DpdkPort> {
    backend::open_dpdk(
        a.eal_args.as_deref().unwrap_or_default(),
        a.dpdk_port.as_deref().unwrap_or_default(),
    )
}

#[cfg(not(feature = "dpdk"))]
fn run_dpdk(
    _: &RunArgs,
    _: &Tagging,
    _: impl FnOnce(Vec<Vec<UdpFrameHeaders>>) -> Result<Settings>,
    _: &Arc<AtomicBool>,
) -> Result<peregrine_bench::stats::Report> {
    no_dpdk()
}

#[cfg(not(feature = "dpdk"))]
fn echo_dpdk(_: &EchoArgs, _: &Arc<AtomicBool>, _: Duration) -> Result<echo::EchoStats> {
    no_dpdk()
}

#[cfg(not(feature = "dpdk"))]
fn no_dpdk<T>() -> Result<T> {
    bail!(
        "--backend dpdk: this peregrine-loadgen was built without DPDK \
         (cargo build --release -p peregrine-bench --features dpdk)"
    )
}

/// Prints the table, writes the files asked for, and judges the drops.
fn emit(report: &peregrine_bench::stats::Report, a: &RunArgs) -> Result<ExitCode> {
    println!("{}", report.table());
    if let Some(p) = &a.json {
        report.write_json(p)?;
    }
    if let Some(p) = &a.csv {
        report.append_csv(p)?;
    }
    if let Some(max) = a.max_drop_pct
        && report
            .phases
            .iter()
            .any(|p| p.phase != "dora" && p.drop_pct > max)
    {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn drive<R: RxQueue, T: TxQueue>(
    settings: Settings,
    rx: &mut R,
    tx: &mut T,
    quit: &Arc<AtomicBool>,
    quiet: bool,
) -> Result<peregrine_bench::stats::Report> {
    let mut g = Generator::new(settings);
    let open_ended = g.progress().planned == u64::MAX;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(0);
        // A scenario that runs for a duration has no total to show a bar against.
        let template = if open_ended {
            "{elapsed_precise} {pos} exchanges begun, {msg}"
        } else {
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}"
        };
        b.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let mut tick = |p: Progress| {
        if let Some(b) = &bar {
            if p.planned != u64::MAX {
                b.set_length(p.planned);
            }
            b.set_position(p.started);
            b.set_message(format!(
                "in flight {}, leased {}, lost {}",
                p.inflight, p.leased, p.drops
            ));
        }
    };
    g.run(rx, tx, quit, &mut tick)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(g.report())
}

fn run_echo(a: &EchoArgs) -> Result<()> {
    let quit = quit_flag()?;
    let max = secs(a.max_time, "--max-time")?;
    let stats = match a.backend {
        BackendKind::Udp => {
            let (mut rx, mut tx) = backend::open_udp(a.bind, BURST as usize)?;
            eprintln!("echo: answering on UDP {}:67", a.bind);
            echo::run(&mut rx, &mut tx, [0; 6], &quit, max)?
        }
        BackendKind::Afpacket => {
            let iface = a.interface.as_deref().unwrap_or_default();
            let (mut rx, mut tx) = backend::open_afpacket(iface, BURST as usize)?;
            let mac = tx.mac();
            eprintln!("echo: answering on AF_PACKET {iface}");
            echo::run(&mut rx, &mut tx, mac, &quit, max)?
        }
        BackendKind::Dpdk => echo_dpdk(a, &quit, max)?,
    };
    println!(
        "echo: {} answered, {} ignored, {} refused by the kernel",
        stats.answered, stats.ignored, stats.tx_refused
    );
    Ok(())
}
