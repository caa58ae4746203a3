//! `backend = "dpdk"` end to end (built with `--features dpdk`): the server's EAL drives a
//! `net_af_packet` port on one end of a veth pair, and udhcpc on the other end gets a lease, the
//! port's counters and link in `/metrics`; a port that does not exist stops the server with one
//! line naming it. On `net_af_xdp`, tagged DISCOVERs get tagged OFFERs and malformed frames are
//! counted drops, as on AF_PACKET; two workers on a port of two queues both serve relays, each
//! queue's counters and the driver's xstats in `/metrics`; one worker serves two ports.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::frames::{ClientMessage, udp_frame};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, find_tool};
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::VlanTags;
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux};

use crate::{CONFIG, metric, scrape, serve_tagged_and_bad_frames, start, stop, udhcpc_once};

/// [`CONFIG`] (srv0, 10.77.0.1) on DPDK: `workers` workers, the EAL with `vdev` as port `port`.
fn on_dpdk(vdev: &str, port: &str, workers: u32) -> String {
    let config = CONFIG
        .replace(
            "backend = \"af-packet\"",
            &format!("backend = \"dpdk\"\nworkers = {workers}"),
        )
        .replace(
            "address = \"10.77.0.1\"",
            &format!("address = \"10.77.0.1\"\ndpdk-port = \"{port}\""),
        );
    format!(
        r#"{config}
[dpdk]
eal-args = ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256", "-l", "0",
            "--log-level=lib.eal:error", "--vdev={vdev}",
            "--file-prefix=peregrine-dpdk-it-{pid}-{n}"]
"#,
        pid = std::process::id(),
        n = EALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    )
}

/// What the server said on its way out when `config` stops it at start (it must).
fn refused(srv: &Netns, config: &std::path::Path) -> String {
    let out = srv
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    said
}

/// EALs started by this test process: each server's gets a prefix of its own.
static EALS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A server on DPDK with the EAL's `vdevs`, and for each of `interfaces` (name, its DPDK port,
/// its /24) an interface at .1 of the net with a scope of its own (.100 - .199).
fn config_ports(vdevs: &[&str], interfaces: &[(&str, &str, &str)]) -> String {
    let vdevs: Vec<String> = vdevs.iter().map(|v| format!("\"--vdev={v}\", ")).collect();
    let mut text = format!(
        r#"
[dataplane]
backend = "dpdk"

[dpdk]
eal-args = ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256", "-l", "0",
            "--log-level=lib.eal:error", {vdevs}
            "--file-prefix=peregrine-dpdk-it-{pid}"]
mbufs = 2047
ring = 256
"#,
        vdevs = vdevs.concat(),
        pid = std::process::id()
    );
    for (name, port, net) in interfaces {
        let _ = write!(
            text,
            r#"
[[interface]]
name = "{name}"
address = "{net}.1"
dpdk-port = "{port}"

[[scope]]
name = "lan-{name}"
subnet = "{net}.0/24"
interfaces = ["{name}"]

[[scope.pool]]
range = "{net}.100 - {net}.199"
"#
        );
    }
    text
}

/// srv0 (10.86.0.1) on `port`, the EAL having `net_af_packet0` on srv0.
fn config(port: &str) -> String {
    config_ports(&["net_af_packet0,iface=srv0"], &[("srv0", port, "10.86.0")])
}

#[test]
fn udhcpc_gets_a_lease_from_a_server_on_a_dpdk_port() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(cli)) = (Netns::new("dpdk_server"), Netns::new("dpdk_client")) else {
        return;
    };
    srv.ip(&format!(
        "link add srv0 type veth peer name c0 netns {}",
        cli.name()
    ));
    srv.ip("link set srv0 up");
    cli.ip("link set c0 up");
    let dir = TempDir::new("peregrine-dpdk");

    // A port the EAL does not have: the server stops, saying which.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, config("net_af_packet7")).unwrap();
    let said = refused(&srv, &bad);
    assert!(
        said.contains("interface srv0: DPDK port net_af_packet7")
            && said.contains("rte_eth_dev_get_port_by_name(net_af_packet7)"),
        "{said}"
    );

    // An EAL that cannot start, or has too little memory for the pool: one line says why.
    for (eal, said_here) in [
        (
            "--vdev=net_nosuch0,iface=srv0",
            "starting DPDK (rte_eal_init; see [dpdk] eal-args): rte_eal_init: No such device",
        ),
        (
            "-m\", \"2",
            "the packet pool ([dpdk] mbufs = 2047, about 2.4 KB each): the EAL's memory",
        ),
    ] {
        let text = config("net_af_packet0").replace("\"-m\", \"256\"", &format!("\"{eal}\""));
        let path = dir.path().join("eal.toml");
        std::fs::write(&path, text).unwrap();
        let said = refused(&srv, &path);
        let errors: Vec<&str> = said.lines().filter(|l| l.contains("ERROR")).collect();
        assert_eq!(errors.len(), 1, "{said}");
        assert!(errors[0].contains(said_here), "{said}");
    }

    // A control plane that cannot listen (its port taken) stops the server before any worker
    // polls the port: nothing polls a port the server has closed on its way out.
    let taken = srv.enter(|| std::net::TcpListener::bind("127.0.0.1:9167").unwrap());
    let no_control = dir.path().join("no-control.toml");
    std::fs::write(&no_control, config("net_af_packet0")).unwrap();
    let said = refused(&srv, &no_control);
    assert!(said.contains("cannot listen on 127.0.0.1:9167"), "{said}");
    assert!(
        !said.contains("not ready port"),
        "a worker polled a closed port:\n{said}"
    );
    drop(taken);

    let good = dir.path().join("dpdk.toml");
    std::fs::write(&good, config("net_af_packet0")).unwrap();
    let mut server = start(&srv, &good);
    let said = udhcpc_once(&cli, &udhcpc, "c0", 10, &[]);
    assert!(said.contains("lease of 10.86.0.1"), "{said}");
    assert!(said.contains("obtained from 10.86.0.1"), "{said}");
    let metrics = scrape(&srv, "127.0.0.1:9167");
    assert_eq!(
        metric(&metrics, "peregrine_dhcp_messages_sent_total{type=\"ack\"}"),
        1
    );
    // The port's own view: its link, and at least the DISCOVER and REQUEST in, OFFER and ACK out.
    let port = "{interface=\"srv0\",port=\"net_af_packet0\"}";
    assert_eq!(
        metric(&metrics, &format!("peregrine_port_link_up{port}")),
        1
    );
    assert!(metric(&metrics, &format!("peregrine_port_rx_packets_total{port}")) >= 2);
    assert!(metric(&metrics, &format!("peregrine_port_tx_packets_total{port}")) >= 2);
    assert!(stop(&mut server).success());
}

/// Two interfaces on two DPDK ports and one worker: that one thread polls both ports (as an
/// l3fwd lcore polls its list of ports), and a client behind each gets a lease from its own
/// interface's scope, its replies leaving by the port its request came in on.
#[test]
fn one_worker_serves_two_ports() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(cli)) = (Netns::new("dpdk_2ports"), Netns::new("dpdk_2ports_c")) else {
        return;
    };
    for (s, c) in [("srv0", "c0"), ("srv1", "c1")] {
        srv.ip(&format!(
            "link add {s} type veth peer name {c} netns {}",
            cli.name()
        ));
        srv.ip(&format!("link set {s} up"));
        cli.ip(&format!("link set {c} up"));
    }
    let text = config_ports(
        &["net_af_packet0,iface=srv0", "net_af_packet1,iface=srv1"],
        &[
            ("srv0", "net_af_packet0", "10.86.0"),
            ("srv1", "net_af_packet1", "10.87.0"),
        ],
    );
    let dir = TempDir::new("peregrine-dpdk-2ports");
    let path = dir.path().join("two-ports.toml");
    std::fs::write(&path, text).unwrap();
    let mut server = start(&srv, &path);
    for (c, net) in [("c0", "10.86.0"), ("c1", "10.87.0")] {
        let said = udhcpc_once(&cli, &udhcpc, c, 10, &[]);
        assert!(said.contains(&format!("lease of {net}.1")), "{said}");
        assert!(said.contains(&format!("obtained from {net}.1")), "{said}");
    }
    let workers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.starts_with("pg-"))
        .collect();
    assert_eq!(workers, ["pg-dpdk-0"]);
    let metrics = scrape(&srv, "127.0.0.1:9167");
    for (interface, port) in [("srv0", "net_af_packet0"), ("srv1", "net_af_packet1")] {
        let labels = format!("{{interface=\"{interface}\",port=\"{port}\"}}");
        assert!(
            metric(
                &metrics,
                &format!("peregrine_port_tx_packets_total{labels}")
            ) >= 2
        );
    }
    assert!(stop(&mut server).success());
}

#[test]
fn tagged_clients_and_bad_frames_on_net_af_xdp() {
    let Some(ns) = Netns::new("dpdk_af_xdp") else {
        return;
    };
    // XDP sees frames before the kernel takes VLAN tags off (AF_PACKET is told them apart,
    // and DPDK's net_af_packet puts an 802.1ad outer tag back as 802.1Q).
    serve_tagged_and_bad_frames(&ns, &on_dpdk("net_af_xdp0,iface=srv0", "net_af_xdp0", 1));
}

#[test]
fn two_workers_on_two_queues_both_serve_relays() {
    let Some(ns) = Netns::new("dpdk_queues") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-dpdk-queues");
    let config = dir.path().join("queues.toml");
    let vdev = "net_af_packet0,iface=srv0,qpairs=2";
    std::fs::write(&config, on_dpdk(vdev, "net_af_packet0", 2)).unwrap();
    let mut server = start(&ns, &config);
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let server_mac = ns.mac("srv0");

    // Relays 30 at a time, each relaying DISCOVERs until its first is answered, until both
    // queues have taken some: the kernel spreads flows over the port's sockets by a hash it
    // does not promise to vary with the source address alone (seen: 32 relays all on one
    // queue once, with the host busy), so more relays are asked for until it has.
    let queue_rx = |metrics: &str, q: u32| {
        metric(
            metrics,
            &format!(
                "peregrine_port_queue_rx_packets_total{{interface=\"srv0\",port=\"net_af_packet0\",queue=\"{q}\"}}"
            ),
        )
    };
    let mut metrics = String::new();
    for batch in 0..8u8 {
        let relays: Vec<Ipv4Addr> = (0..30)
            .map(|r| Ipv4Addr::new(10, 77, 0, 10 + 30 * batch + r))
            .collect();
        relay_until_answered(&mut tx, &mut rx, server_mac, &relays);
        metrics = scrape(&ns, "127.0.0.1:9167");
        if queue_rx(&metrics, 0) > 0 && queue_rx(&metrics, 1) > 0 {
            break;
        }
    }
    assert_both_queues_served(&metrics);
    assert!(stop(&mut server).success());
}

/// Sends each of `relays`' DISCOVERs (one client each, option 82 added) to the server at
/// `server_mac` until every relay has its OFFER (within 20 s).
fn relay_until_answered(
    tx: &mut afpacket::AfPacketTx,
    rx: &mut afpacket::AfPacketRx,
    server_mac: [u8; 6],
    relays: &[Ipv4Addr],
) {
    let mut answered = std::collections::BTreeSet::new();
    let start = Instant::now();
    while answered.len() < relays.len() && start.elapsed() < Duration::from_secs(20) {
        for relay in relays {
            if answered.contains(relay) {
                continue;
            }
            let n = relay.octets()[3];
            let mac = [2, 0, 0, 0x78, 0, n];
            let m =
                ClientMessage::new(MessageType::Discover, mac, u32::from(n)).relayed(*relay, b"p1");
            let headers = UdpFrameHeaders {
                dst_mac: MacAddr(server_mac),
                src_mac: MacAddr([2, 0, 0, 0x79, 0, n]),
                vlans: VlanTags::NONE,
                src_ip: *relay,
                dst_ip: Ipv4Addr::new(10, 77, 0, 1),
                src_port: 67,
                dst_port: 67,
                ttl: 64,
            };
            let frame = udp_frame(&headers, &m.bytes());
            tx.buffer().unwrap()[..frame.len()].copy_from_slice(&frame);
            tx.queue(frame.len(), 0);
        }
        tx.flush().unwrap();
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            rx.rx_burst(32, &mut |f| {
                if let Ok(Demuxed::Udp {
                    dst_port: 67,
                    payload,
                    ..
                }) = demux(f.data)
                    && let Ok(m) = DhcpMessage::parse(payload)
                    && m.message_type() == Some(MessageType::Offer)
                {
                    answered.insert(m.packet().giaddr());
                }
            })
            .unwrap();
            rx.wait(Duration::from_millis(10)).unwrap();
        }
    }
    assert_eq!(
        answered.len(),
        relays.len(),
        "relays answered: {answered:?}"
    );
}

/// Both queues of `net_af_packet0` (interface srv0) received and sent, the driver's count of
/// good frames is their sum, and both workers counted time busy.
fn assert_both_queues_served(metrics: &str) {
    let queue = |what: &str, q: u32| {
        metric(
            metrics,
            &format!(
                "peregrine_port_queue_{what}_total{{interface=\"srv0\",port=\"net_af_packet0\",queue=\"{q}\"}}"
            ),
        )
    };
    for q in 0..2 {
        assert!(
            queue("rx_packets", q) > 0,
            "queue {q} received nothing:\n{metrics}"
        );
        assert!(
            queue("tx_packets", q) > 0,
            "queue {q} sent nothing:\n{metrics}"
        );
    }
    let xstat = |stat: &str| {
        metric(
            metrics,
            &format!(
                "peregrine_port_xstats_total{{interface=\"srv0\",port=\"net_af_packet0\",stat=\"{stat}\"}}"
            ),
        )
    };
    assert_eq!(
        xstat("rx_good_packets"),
        queue("rx_packets", 0) + queue("rx_packets", 1)
    );
    // Each worker polls without pause; what its frames cost is counted apart.
    for worker in 0..2 {
        let series = format!("peregrine_worker_busy_seconds_total{{worker=\"{worker}\"}} ");
        let busy: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .parse()
            .unwrap();
        assert!(busy > 0.0 && busy < 20.0, "worker {worker} busy {busy} s");
    }
}
