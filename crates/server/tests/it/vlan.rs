//! Real clients on tagged segments. This kernel has no 802.1Q devices and no bridge VLAN
//! filtering, so the test plays the access switch itself: a forwarder on AF_PACKET tags what
//! a client port sends (802.1Q VLAN 100 on one port, QinQ S-VLAN 200 / C-VLAN 10 on the other)
//! onto the trunk to the server, and forwards from the trunk to a client port only frames that
//! carry exactly that port's tags, popped. A client that gets its lease therefore saw only
//! replies the server tagged as its requests were.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketTx};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, find_tool};

use crate::{metric, scrape, start, stop, udhcpc_once};

const CONFIG: &str = r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.80.0.1"

[[scope]]
name = "access"
subnet = "10.80.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.80.0.100 - 10.80.0.199"

# The same interface's VLANs select scopes of their own.
[[scope]]
name = "dot1q-100"
subnet = "10.81.0.0/24"
interfaces = ["srv0"]
vlans = [100]

[[scope.pool]]
range = "10.81.0.100 - 10.81.0.199"

[[scope]]
name = "qinq-200-10"
subnet = "10.82.0.0/24"
interfaces = ["srv0"]
vlans = ["200.10"]

[[scope.pool]]
range = "10.82.0.100 - 10.82.0.199"
"#;

/// The tags of an access port, outermost first: (TPID, VLAN id).
type Tags = &'static [(u16, u16)];

const DOT1Q: Tags = &[(0x8100, 100)];
const QINQ: Tags = &[(0x88a8, 200), (0x8100, 10)];

/// `frame` with `tags` inserted after the MAC addresses.
fn push(frame: &[u8], tags: Tags) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for (tpid, vid) in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&vid.to_be_bytes());
    }
    out.extend_from_slice(&frame[12..]);
    out
}

/// `frame` without `tags`, if it carries exactly those (priority bits aside) and no more.
fn pop(frame: &[u8], tags: Tags) -> Option<Vec<u8>> {
    let mut at = 12;
    for (tpid, vid) in tags {
        let t = frame.get(at..at + 4)?;
        if u16::from_be_bytes([t[0], t[1]]) != *tpid
            || u16::from_be_bytes([t[2], t[3]]) & 0xfff != *vid
        {
            return None;
        }
        at += 4;
    }
    let inner = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
    if inner == 0x8100 || inner == 0x88a8 {
        return None;
    }
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&frame[at..]);
    Some(out)
}

fn send(tx: &mut AfPacketTx, frame: &[u8]) {
    if let Some(buf) = tx.buffer() {
        buf[..frame.len()].copy_from_slice(frame);
        tx.queue(frame.len(), 0);
        let _ = tx.flush();
    }
}

/// The access switch: one trunk, two access ports with their tags.
struct Switch {
    trunk: (AfPacketRx, AfPacketTx),
    ports: Vec<(AfPacketRx, AfPacketTx, Tags)>,
    /// Frames from the trunk that matched no port's tags.
    mistagged: Arc<AtomicU64>,
    /// Frames forwarded from the trunk to each port.
    to_port: Arc<[AtomicU64; 2]>,
}

impl Switch {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            for (rx, _, tags) in &mut self.ports {
                let trunk = &mut self.trunk.1;
                let _ = rx.rx_burst(32, &mut |f| send(trunk, &push(f.data, tags)));
            }
            let (ports, mistagged, to_port) = (&mut self.ports, &self.mistagged, &self.to_port);
            let _ = self.trunk.0.rx_burst(32, &mut |f| {
                let hit = ports
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, (_, tx, tags))| pop(f.data, tags).map(|p| (i, tx, p)));
                match hit {
                    Some((i, tx, plain)) => {
                        send(tx, &plain);
                        to_port[i].fetch_add(1, Ordering::Relaxed);
                    }
                    // The kernel's own chatter on the trunk is untagged; anything tagged
                    // otherwise would be the server's mistake.
                    None if f.data.get(12..14) == Some(&[0x81, 0x00])
                        || f.data.get(12..14) == Some(&[0x88, 0xa8]) =>
                    {
                        mistagged.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {}
                }
            });
            let _ = self.trunk.0.wait(Duration::from_millis(1));
        }
    }
}

/// udhcpc on an 802.1Q port and on a QinQ port each lease an address through the switch, from
/// the scope its VLAN selects.
#[test]
fn udhcpc_on_vlan_and_qinq_ports_gets_leases_through_a_tagging_switch() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(cli1), Some(cli2)) = (
        Netns::new("vlan_server"),
        Netns::new("vlan_dot1q"),
        Netns::new("vlan_qinq"),
    ) else {
        return;
    };
    srv.veth("srv0", "trunk0");
    srv.ip("addr add 10.80.0.1/24 dev srv0");
    for (port, client) in [("acc1", &cli1), ("acc2", &cli2)] {
        srv.ip(&format!(
            "link add {port} type veth peer name c0 netns {}",
            client.name()
        ));
        srv.ip(&format!("link set {port} up"));
        client.ip("link set c0 up");
    }
    let open = |name: &str| {
        srv.enter(|| afpacket::open(name, &AfPacketConfig::default()))
            .unwrap()
    };
    let (a1, a2) = (open("acc1"), open("acc2"));
    let switch = Switch {
        trunk: open("trunk0"),
        ports: vec![(a1.0, a1.1, DOT1Q), (a2.0, a2.1, QINQ)],
        mistagged: Arc::new(AtomicU64::new(0)),
        to_port: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
    };
    let (mistagged, to_port) = (switch.mistagged.clone(), switch.to_port.clone());
    let stop_switch = Arc::new(AtomicBool::new(false));
    let forwarder = std::thread::spawn({
        let stop = stop_switch.clone();
        move || switch.run(&stop)
    });

    let dir = TempDir::new("peregrine-vlan");
    let config = dir.path().join("vlan.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut server = start(&srv, &config);
    let mut leased = Vec::new();
    for client in [&cli1, &cli2] {
        let text = udhcpc_once(client, &udhcpc, "c0", 8, &[]);
        let addr = text
            .split("lease of ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap_or_else(|| panic!("no lease in:\n{text}"))
            .to_string();
        assert!(text.contains("obtained from 10.80.0.1"), "{text}");
        leased.push(addr);
    }
    assert!(leased[0].starts_with("10.81.0."), "VLAN 100: {}", leased[0]);
    assert!(
        leased[1].starts_with("10.82.0."),
        "QinQ 200.10: {}",
        leased[1]
    );
    let metrics = scrape(&srv, "127.0.0.1:9167");
    assert_eq!(
        metric(&metrics, "peregrine_dhcp_messages_sent_total{type=\"ack\"}"),
        2
    );
    assert!(stop(&mut server).success());
    stop_switch.store(true, Ordering::Relaxed);
    forwarder.join().unwrap();
    // OFFER and ACK reached each port, and nothing came back with tags of no port.
    assert!(to_port.iter().all(|n| n.load(Ordering::Relaxed) >= 2));
    assert_eq!(mistagged.load(Ordering::Relaxed), 0);
}
