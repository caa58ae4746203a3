//! The `peregrine` process, end to end, in a network namespace of its own (needs root):
//! tagged and untagged DISCOVERs get OFFERs with the same tags, malformed frames leave it
//! serving, and SIGTERM stops it cleanly; and (without root) the lease import and export
//! commands, in `leases`; and the migration from ISC dhcpd with real clients, in `migration`.

#![allow(clippy::unwrap_used)]

mod leases;
mod migration;
mod pair;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::frames::{ClientMessage, udp_frame};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::Running;
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux};

mod admin_token;
mod client_id;
mod crash;
#[cfg(feature = "dpdk")]
mod dpdk;
mod leasequery;
mod live_import;
mod ping_check;
mod prometheus;
mod reload;
mod repair;
mod scope_state;
mod server_id_override;
mod service;
mod split_scope;
mod vlan;
mod workers;

const CONFIG: &str = r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.77.0.1"

[[scope]]
name = "lan"
subnet = "10.77.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.77.0.100 - 10.77.0.199"
"#;

/// The lab link in `ns` (srv0 at 10.77.0.1, cli0 for the clients), and in `dir` the
/// configuration `name`: [`CONFIG`] with its lease directory beside it, and `extra` lines of
/// `[leases]`. Returns the configuration's path and the lease directory's.
fn journaled_lab(ns: &Netns, dir: &Path, name: &str, extra: &str) -> (PathBuf, PathBuf) {
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.77.0.1/24 dev srv0");
    let config = dir.join(name);
    let leases = dir.join("leases");
    let text = format!(
        "{CONFIG}\n[leases]\ndirectory = {:?}\n{extra}",
        leases.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    (config, leases)
}

/// Stops the server with SIGTERM, as an operator's service manager does; it must exit within
/// 10 s.
fn stop(server: &mut Running) -> std::process::ExitStatus {
    server
        .terminate(Duration::from_secs(10))
        .expect("peregrine did not stop within 10 s of SIGTERM")
}

fn discover(mac: [u8; 6], xid: u32, vlans: VlanTags) -> Vec<u8> {
    message(mac, xid, vlans, MessageType::Discover, None)
}

/// A broadcast client message of `kind`; with `request`, options 50 and 54 (SELECTING).
fn message(
    mac: [u8; 6],
    xid: u32,
    vlans: VlanTags,
    kind: MessageType,
    request: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Vec<u8> {
    let mut m = ClientMessage::new(kind, mac, xid);
    m.broadcast = true;
    m.requested = request.map(|r| r.0);
    m.server_id = request.map(|r| r.1);
    broadcast(&m, vlans)
}

/// `m` broadcast from its client's MAC (UDP 68 to 67), with `vlans`.
fn broadcast(m: &ClientMessage<'_>, vlans: VlanTags) -> Vec<u8> {
    let headers = UdpFrameHeaders {
        dst_mac: MacAddr::BROADCAST,
        src_mac: MacAddr(m.mac),
        vlans,
        src_ip: Ipv4Addr::UNSPECIFIED,
        dst_ip: Ipv4Addr::BROADCAST,
        src_port: 68,
        dst_port: 67,
        ttl: 64,
    };
    udp_frame(&headers, &m.bytes())
}

/// Collects OFFERs (by xid: tags and yiaddr) arriving on `rx` until `want` came or 5 s passed.
fn offers(rx: &mut impl RxQueue, want: usize) -> Vec<(u32, VlanTags, Ipv4Addr)> {
    replies(rx, want, MessageType::Offer)
}

/// Collects replies of `kind` arriving on `rx` until `want` came or 5 s passed.
fn replies(
    rx: &mut impl RxQueue,
    want: usize,
    kind: MessageType,
) -> Vec<(u32, VlanTags, Ipv4Addr)> {
    replies_within(rx, want, kind, Duration::from_secs(5))
}

/// Collects replies of `kind` arriving on `rx` until `want` came or `timeout` passed.
fn replies_within(
    rx: &mut impl RxQueue,
    want: usize,
    kind: MessageType,
    timeout: Duration,
) -> Vec<(u32, VlanTags, Ipv4Addr)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    while got.len() < want && Instant::now() < deadline {
        rx.rx_burst(32, &mut |f| {
            if let Ok(Demuxed::Udp {
                l2,
                dst_port: 68,
                payload,
                ..
            }) = demux(f.data)
                && let Ok(m) = DhcpMessage::parse(payload)
                && m.message_type() == Some(kind)
            {
                got.push((m.packet().xid(), l2.vlans, m.packet().yiaddr()));
            }
        })
        .unwrap();
        rx.wait(Duration::from_millis(20)).unwrap();
    }
    got
}

#[test]
fn tagged_clients_get_tagged_replies_and_bad_frames_leave_the_server_serving() {
    let Some(ns) = Netns::new("server_end_to_end") else {
        return;
    };
    serve_tagged_and_bad_frames(&ns, CONFIG);
}

/// The server configured with `config_text` (serving srv0 as in [`CONFIG`]) on a veth pair
/// srv0-cli0 of `ns`: OFFERs tagged as their DISCOVERs, malformed frames counted by reason and
/// the server serving on, a clean stop on SIGTERM.
fn serve_tagged_and_bad_frames(ns: &Netns, config_text: &str) {
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.77.0.1/24 dev srv0");
    let dir = std::env::temp_dir().join(format!("peregrine-e2e-{}", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("e2e.toml");
    std::fs::write(&config, config_text).unwrap();
    let child = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running::new(child);
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let mac = [2, 0, 0, 0x77, 0, 1];
    let send = |tx: &mut afpacket::AfPacketTx, frame: &[u8]| {
        let buf = tx.buffer().unwrap();
        buf[..frame.len()].copy_from_slice(frame);
        tx.queue(frame.len(), 0);
        tx.flush().unwrap();
    };

    // The server needs a moment to open its sockets: retry the untagged DISCOVER until answered.
    let start = Instant::now();
    let first = loop {
        send(&mut tx, &discover(mac, 1, VlanTags::NONE));
        let o = offers(&mut rx, 1);
        if !o.is_empty() {
            break o[0];
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no OFFER within 10 s"
        );
    };
    assert_eq!(first.1, VlanTags::NONE);

    let dot1q = VlanTags::single(VlanTag::new(ethertype::VLAN, 100, 0));
    let qinq = VlanTags::double(
        VlanTag::new(ethertype::QINQ, 200, 0),
        VlanTag::new(ethertype::VLAN, 10, 0),
    );
    send(&mut tx, &discover([2, 0, 0, 0x77, 0, 2], 2, dot1q));
    send(&mut tx, &discover([2, 0, 0, 0x77, 0, 3], 3, qinq));
    let mut got = offers(&mut rx, 2);
    got.sort_by_key(|o| o.0);
    assert_eq!(
        got.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>(),
        [(2, dot1q), (3, qinq)]
    );

    // Malformed frames: truncated, bad UDP checksum, an IPv4 fragment, broken options, oversize.
    // (Zero bytes after the IPv4 length are Ethernet padding, not an error.)
    let good = discover([2, 0, 0, 0x77, 0, 4], 4, VlanTags::NONE);
    let mut bad_checksum = good.clone();
    *bad_checksum.last_mut().unwrap() ^= 0x55;
    // More fragments follow, with the header checksum redone: a fragment, nothing else wrong.
    let mut fragment = good.clone();
    fragment[14 + 6] = 0x20;
    fragment[14 + 10..14 + 12].fill(0);
    let sum = peregrine_wire::checksum::checksum(&fragment[14..34]);
    fragment[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    let mut bad_options = good.clone();
    let opt_at = 14 + 20 + 8 + 240;
    bad_options[opt_at + 1] = 250; // option 53's length runs past the message
    let udp_len = 14 + 20 + 6;
    bad_options[udp_len..udp_len + 2].fill(0); // no UDP checksum, so only the options are wrong
    // Oversize: a full-size frame whose IPv4 header claims more than the frame carries.
    let mut oversize = good.clone();
    oversize.resize(1514, 0);
    oversize[14 + 2..14 + 4].copy_from_slice(&1600u16.to_be_bytes());
    oversize[14 + 10..14 + 12].fill(0);
    let sum = peregrine_wire::checksum::checksum(&oversize[14..34]);
    oversize[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    for f in [
        &good[..30],
        &bad_checksum[..],
        &fragment[..],
        &bad_options[..],
        &oversize[..],
    ] {
        send(&mut tx, f);
    }
    send(&mut tx, &good);
    let after = offers(&mut rx, 1);
    assert_eq!(
        after.iter().map(|o| o.0).collect::<Vec<_>>(),
        [4],
        "still serving after bad frames"
    );
    assert!(server.is_running(), "server still running");

    assert_bad_frames_counted(ns);

    let status = stop(&mut server);
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The running server counts each bad frame of the test above under its reason in /metrics.
fn assert_bad_frames_counted(ns: &Netns) {
    let metrics = scrape(ns, "127.0.0.1:9167");
    let drops = |reason: &str| {
        metric(
            &metrics,
            &format!("peregrine_drops_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(
        ["truncated", "checksum", "fragment", "dhcp_malformed"].map(drops),
        [2, 1, 1, 1],
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "peregrine_dhcp_messages_sent_total{type=\"offer\"}"
        ),
        4
    );
}

/// The Prometheus exposition the control plane at `addr` serves inside `ns`.
fn scrape(ns: &Netns, addr: &str) -> String {
    let url = format!("http://{addr}/metrics");
    ns.enter(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        agent
            .get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
}

/// The value of the sample written exactly as `series` (name and labels) in `exposition`.
fn metric(exposition: &str, series: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{exposition}"))
        .parse()
        .unwrap()
}

/// Runs udhcpc once in `ns` on `interface`: in the foreground, quitting once leased, at most
/// `tries` DISCOVERs 2 s apart, no script, with `extra` arguments. Fails the test unless it got a
/// lease; returns what it printed.
fn udhcpc_once(
    ns: &Netns,
    udhcpc: &std::path::Path,
    interface: &str,
    tries: u32,
    extra: &[&str],
) -> String {
    let tries = tries.to_string();
    let out = ns
        .command(&udhcpc.to_string_lossy())
        .args(["-f", "-q", "-n", "-t", &tries, "-T", "2", "-i", interface])
        .args(["-s", "/bin/true"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "udhcpc failed:\n{text}");
    text
}

/// Starts `peregrine run` with `config` inside `ns`.
fn start(ns: &Netns, config: &std::path::Path) -> Running {
    let child = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running::new(child)
}

/// Sends `frame` until a reply of `kind` comes (the server may still be starting).
fn ask(
    tx: &mut afpacket::AfPacketTx,
    rx: &mut afpacket::AfPacketRx,
    frame: &[u8],
    kind: MessageType,
) -> Ipv4Addr {
    let start = Instant::now();
    loop {
        let buf = tx.buffer().unwrap();
        buf[..frame.len()].copy_from_slice(frame);
        tx.queue(frame.len(), 0);
        tx.flush().unwrap();
        if let Some(r) = replies(rx, 1, kind).first() {
            return r.2;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {kind:?} within 15 s"
        );
    }
}

/// A lease acknowledged before `kill -9` survives: the journal holds it before the ACK leaves, so after a
/// restart the client is offered its address again and another client is not.
#[test]
fn an_acked_lease_survives_kill_9() {
    let Some(ns) = Netns::new("server_crash") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("peregrine-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (config, _) = journaled_lab(&ns, &dir, "crash.toml", "durability = \"fsync\"\n");
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let (a, b) = ([2, 0, 0, 0x77, 1, 1], [2, 0, 0, 0x77, 1, 2]);
    let server_id = Ipv4Addr::new(10, 77, 0, 1);

    let mut server = start(&ns, &config);
    let offered = ask(
        &mut tx,
        &mut rx,
        &discover(a, 10, VlanTags::NONE),
        MessageType::Offer,
    );
    let acked = ask(
        &mut tx,
        &mut rx,
        &message(
            a,
            11,
            VlanTags::NONE,
            MessageType::Request,
            Some((offered, server_id)),
        ),
        MessageType::Ack,
    );
    assert_eq!(acked, offered);
    // SIGKILL: no chance to flush anything the ACK did not already wait for.
    let mut child = server.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let mut server = start(&ns, &config);
    let other = ask(
        &mut tx,
        &mut rx,
        &message(b, 20, VlanTags::NONE, MessageType::Discover, None),
        MessageType::Offer,
    );
    assert_ne!(
        other, acked,
        "the lease of a client was given to another after a crash"
    );
    let again = ask(
        &mut tx,
        &mut rx,
        &discover(a, 21, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_eq!(
        again, acked,
        "the client gets its lease back after the crash"
    );
    assert!(stop(&mut server).success());
    std::fs::remove_dir_all(&dir).ok();
}
