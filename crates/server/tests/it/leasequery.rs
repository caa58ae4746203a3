//! Leasequery (RFC 4388) and bulk leasequery (RFC 6926) end to end: a server holding 100 000
//! imported bindings answers a requestor built with the wire crate, which asks over UDP, and
//! for everything at once over TCP, from a relay's address as a rebooted BNG rebuilding its
//! subscriber table would; and refuses one it does not trust.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use peregrine_testkit::frames::LeaseQuery;
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;
use peregrine_wire::dhcp::{DhcpMessage, MessageType, opt};

use crate::{metric, scrape, start, stop};

/// Bindings the server holds.
const LEASES: u32 = 100_000;
/// The server, and the relay that asks (trusted), on one link.
const SERVER: [u8; 4] = [10, 90, 0, 1];
const RELAY: [u8; 4] = [10, 90, 0, 2];
/// A second address of the relay's, which the server does not trust.
const STRANGER: [u8; 4] = [10, 90, 0, 3];

/// The `n`th imported lease: its address and hardware address.
fn lease(n: u32) -> (Ipv4Addr, [u8; 6]) {
    let b = n.to_be_bytes();
    (
        Ipv4Addr::from(0x0a5c_0001 + n),
        [2, 0x4c, b[0], b[1], b[2], b[3]],
    )
}

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
[dataplane]
backend = "af-packet"
bulk-leasequery-listen = "10.90.0.1:67"

[[interface]]
name = "srv0"
address = "10.90.0.1"

[server]
leasequery-requesters = ["10.90.0.2"]

[[scope]]
name = "subscribers"
subnet = "10.92.0.0/14"
relay-addresses = ["10.90.0.2"]

[[scope.pool]]
range = "10.92.0.1 - 10.95.255.254"

[leases]
directory = {:?}
"#,
        dir.join("leases").display().to_string()
    )
}

/// A leasequery from `giaddr`, by `ciaddr` or else by `chaddr`, listing option 82.
fn query(xid: u32, giaddr: [u8; 4], ciaddr: Option<Ipv4Addr>, chaddr: Option<[u8; 6]>) -> Vec<u8> {
    LeaseQuery {
        ciaddr,
        chaddr,
        prl: &[opt::RELAY_AGENT_INFO],
        ..LeaseQuery::new(xid, giaddr)
    }
    .bytes()
}

/// Sends `q` until the answer with its `xid` comes, or `patience` passes.
fn ask(socket: &UdpSocket, q: &[u8], patience: Duration) -> Option<Vec<u8>> {
    let server = SocketAddr::from((SERVER, 67));
    let xid = DhcpMessage::parse(q).unwrap().packet().xid();
    let start = Instant::now();
    let mut buf = [0u8; 1500];
    while start.elapsed() < patience {
        socket.send_to(q, server).unwrap();
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            if DhcpMessage::parse(&buf[..n]).is_ok_and(|m| m.packet().xid() == xid) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

/// The server's srv0 and the relay's r0, one link; the relay has a trusted and an untrusted
/// address on it.
fn link(srv: &Netns, relay: &Netns) {
    srv.ip(&format!(
        "link add srv0 type veth peer name r0 netns {}",
        relay.name()
    ));
    srv.ip("addr add 10.90.0.1/24 dev srv0");
    srv.ip("link set srv0 up");
    relay.ip("addr add 10.90.0.2/24 dev r0");
    relay.ip("addr add 10.90.0.3/24 dev r0");
    relay.ip("link set r0 up");
}

/// Writes the configuration into `dir` and imports [`LEASES`] leases of an hour into its lease
/// directory; returns the configuration's path.
fn import_leases(dir: &std::path::Path) -> std::path::PathBuf {
    let config_path = dir.join("peregrine.toml");
    std::fs::write(&config_path, config(dir)).unwrap();
    let expire = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let mut csv = String::from(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,\
         state,user_context\n",
    );
    for n in 0..LEASES {
        let (a, m) = lease(n);
        let mac = m.map(|b| format!("{b:02x}")).join(":");
        writeln!(csv, "{a},{mac},,3600,{expire},1,0,0,,0,").unwrap();
    }
    let leases = dir.join("kea.csv");
    std::fs::write(&leases, csv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["leases", "import", "--config"])
        .arg(&config_path)
        .args(["--format", "kea-csv"])
        .arg(&leases)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("imported {LEASES} leases")),
        "{said}"
    );

    config_path
}

/// Asks for every binding over TCP from the relay; the DHCPLEASEACTIVEs that came before the
/// DHCPLEASEQUERYDONE, the bytes read and the time taken.
fn bulk_all(relay: &Netns) -> (usize, usize, Duration) {
    let q = LeaseQuery {
        bulk: true,
        prl: &[opt::RELAY_AGENT_INFO],
        ..LeaseQuery::new(77, [0, 0, 0, 0])
    }
    .bytes();
    let stream = relay.enter(|| {
        TcpStream::connect_timeout(&SocketAddr::from((SERVER, 67)), Duration::from_secs(5)).unwrap()
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut w = &stream;
    w.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    w.write_all(&q).unwrap();
    let mut r = std::io::BufReader::new(&stream);
    let (mut active, mut bytes) = (0, 0);
    loop {
        let mut len = [0u8; 2];
        r.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        r.read_exact(&mut m).unwrap();
        bytes += 2 + m.len();
        let m = DhcpMessage::parse(&m).unwrap();
        assert_eq!(m.packet().xid(), 77);
        match m.message_type() {
            Some(MessageType::LeaseActive) => active += 1,
            Some(MessageType::LeaseQueryDone) => {
                assert_eq!(m.get(opt::STATUS_CODE).unwrap().as_slice().unwrap()[0], 0);
                return (active, bytes, started.elapsed());
            }
            other => panic!("{other:?} in a bulk answer"),
        }
    }
}

#[test]
fn a_relay_asks_a_server_of_100_000_bindings_by_address_and_hardware_address() {
    let (Some(srv), Some(relay)) = (Netns::new("lq_server"), Netns::new("lq_relay")) else {
        return;
    };
    link(&srv, &relay);
    let dir = TempDir::new("peregrine-leasequery");
    let config_path = import_leases(dir.path());

    let mut server = start(&srv, &config_path);
    let socket = |addr: [u8; 4]| {
        relay.enter(|| {
            let s = UdpSocket::bind(SocketAddr::from((addr, 67))).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s
        })
    };
    let (trusted, stranger) = (socket(RELAY), socket(STRANGER));

    // The first answer waits for the server to start; then one in every 500 leases, by address
    // and by hardware address.
    let (first, first_mac) = lease(0);
    let answer = ask(
        &trusted,
        &query(1, RELAY, Some(first), None),
        Duration::from_secs(20),
    )
    .expect("no answer to a leasequery within 20 s");
    let m = DhcpMessage::parse(&answer).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.packet().client_mac().unwrap().octets(), first_mac);
    let started = Instant::now();
    let mut answered = 0;
    for n in (0..LEASES).step_by(500) {
        let (a, mac) = lease(n);
        for q in [
            query(n * 2 + 2, RELAY, Some(a), None),
            query(n * 2 + 3, RELAY, None, Some(mac)),
        ] {
            let answer = ask(&trusted, &q, Duration::from_secs(2)).expect("no answer");
            let m = DhcpMessage::parse(&answer).unwrap();
            assert_eq!(
                m.message_type(),
                Some(MessageType::LeaseActive),
                "lease {n}"
            );
            assert_eq!(
                (
                    m.packet().ciaddr(),
                    m.packet().client_mac().unwrap().octets()
                ),
                (a, mac)
            );
            assert!(m.lease_time().is_some_and(|t| t > 3000 && t <= 3600));
            answered += 1;
        }
    }
    eprintln!(
        "{answered} leasequeries answered in {:?}",
        started.elapsed()
    );
    // An address of the pool nobody holds, and a client nobody leased to.
    let free = Ipv4Addr::from(0x0a5c_0001 + LEASES + 7);
    let m = ask(
        &trusted,
        &query(9, RELAY, Some(free), None),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(
        DhcpMessage::parse(&m).unwrap().message_type(),
        Some(MessageType::LeaseUnassigned)
    );
    let m = ask(
        &trusted,
        &query(10, RELAY, None, Some([2, 0, 0, 0, 0, 1])),
        Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!(
        DhcpMessage::parse(&m).unwrap().message_type(),
        Some(MessageType::LeaseUnknown)
    );

    // A requestor not in leasequery-requesters hears nothing, and the drop is counted.
    let none = ask(
        &stranger,
        &query(11, STRANGER, Some(first), None),
        Duration::from_secs(1),
    );
    assert!(none.is_none(), "an untrusted requestor was answered");
    let (active, bytes, took) = bulk_all(&relay);
    eprintln!("bulk leasequery: {active} bindings, {bytes} bytes in {took:?}");
    assert_eq!(active, LEASES as usize);
    let metrics = scrape(&srv, "127.0.0.1:9167");
    assert!(
        metric(
            &metrics,
            "peregrine_drops_total{reason=\"leasequery_not_allowed\"}"
        ) >= 1
    );
    assert!(
        metric(
            &metrics,
            "peregrine_dhcp_messages_sent_total{type=\"leaseactive\"}"
        ) >= 400
    );
    assert!(stop(&mut server).success());
}
