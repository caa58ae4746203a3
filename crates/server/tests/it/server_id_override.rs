//! RFC 5107 with a real client: a relay that asks for server identifier override (option 82
//! sub-option 11) gets its own address named as the server, so udhcpc's unicast renewal goes
//! to the relay, which relays it, and the lease is renewed. The relay is played by the test
//! (ISC's dhcrelay does not insert sub-option 11).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, find_tool};

use crate::{start, stop};

const CONFIG: &str = r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.85.0.1"

[[scope]]
name = "subscribers"
subnet = "10.84.0.0/24"

[[scope.pool]]
range = "10.84.0.100 - 10.84.0.199"
"#;

/// The relay's address towards the client: its giaddr, and the server identifier it asks for.
const RELAY_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 84, 0, 1);
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 85, 0, 1)), 67);
const CLIENT_BROADCAST: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(10, 84, 0, 255)), 68);

/// `request` as the relay forwards it: giaddr set, hops counted, option 82 (circuit-id and the
/// server identifier override) before END.
fn relayed(request: &[u8]) -> Option<Vec<u8>> {
    let mut m = request.to_vec();
    m[3] = m[3].saturating_add(1);
    m[24..28].copy_from_slice(&RELAY_CLIENT_SIDE.octets());
    let mut at = 240;
    while *m.get(at)? != 255 {
        at += if m[at] == 0 {
            1
        } else {
            2 + usize::from(*m.get(at + 1)?)
        };
    }
    let mut rai = vec![1, 6];
    rai.extend_from_slice(b"port-1");
    rai.extend_from_slice(&[11, 4]);
    rai.extend_from_slice(&RELAY_CLIENT_SIDE.octets());
    let mut option = vec![82, rai.len() as u8];
    option.extend(rai);
    m.splice(at..at, option);
    Some(m)
}

/// The relay: requests from the client (broadcast, or unicast to it) go to the server; the
/// server's replies go back to the client's link. Counts the unicast requests it relayed.
fn relay(socket: &UdpSocket, stop: &AtomicBool, unicast: &AtomicU64) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let m = &buf[..n];
        if n < 240 {
            continue;
        }
        if m[0] == 1 {
            // From the client: its unicast renewal names a ciaddr.
            if m[12..16] != [0, 0, 0, 0] {
                unicast.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(r) = relayed(m) {
                let _ = socket.send_to(&r, SERVER);
            }
        } else if from == SERVER {
            let _ = socket.send_to(m, CLIENT_BROADCAST);
        }
    }
}

/// The lines udhcpc's script wrote so far.
fn events(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for(log: &std::path::Path, event: &str) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(line) = events(log).into_iter().find(|l| l.starts_with(event)) {
            return Some(line);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn udhcpc_renews_through_the_relay_the_server_identifier_names() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(rly), Some(cli)) = (
        Netns::new("sio_server"),
        Netns::new("sio_relay"),
        Netns::new("sio_client"),
    ) else {
        return;
    };
    srv.ip(&format!(
        "link add srv0 type veth peer name r-s netns {}",
        rly.name()
    ));
    rly.ip(&format!(
        "link add r-c type veth peer name c0 netns {}",
        cli.name()
    ));
    srv.ip("addr add 10.85.0.1/24 dev srv0");
    srv.ip("link set srv0 up");
    rly.ip("addr add 10.85.0.2/24 dev r-s");
    rly.ip("addr add 10.84.0.1/24 dev r-c");
    rly.ip("link set r-s up");
    rly.ip("link set r-c up");
    cli.ip("link set c0 up");

    let dir = TempDir::new("peregrine-server-id-override");
    let config = dir.path().join("peregrine.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut server = start(&srv, &config);

    let socket = rly.enter(|| {
        let s = UdpSocket::bind("0.0.0.0:67").unwrap();
        s.set_broadcast(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s
    });
    let stop_relay = Arc::new(AtomicBool::new(false));
    let unicast = Arc::new(AtomicU64::new(0));
    let relay_thread = std::thread::spawn({
        let (stop, unicast) = (stop_relay.clone(), unicast.clone());
        move || relay(&socket, &stop, &unicast)
    });

    let log = dir.path().join("events");
    let script = dir.path().join("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  bound|renew)\n    ip addr replace \"$ip/$mask\" dev \"$interface\"\n    \
             echo \"$1 $ip $serverid\" >> {log}\n    ;;\n  deconfig) ip addr flush dev \"$interface\" ;;\nesac\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let mut client = cli
        .command(&udhcpc.to_string_lossy())
        .args(["-f", "-t", "8", "-T", "2", "-i", "c0", "-s"])
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let bound = wait_for(&log, "bound");
    let renewed = bound.as_ref().and_then(|_| {
        // SIGUSR1: renew now, unicast to the server identifier.
        let _ = std::process::Command::new("kill")
            .args(["-USR1", &client.id().to_string()])
            .status();
        wait_for(&log, "renew")
    });
    let _ = client.kill();
    let _ = client.wait();
    stop_relay.store(true, Ordering::Relaxed);
    relay_thread.join().unwrap();
    assert!(stop(&mut server).success());

    let bound = bound.expect("udhcpc got no lease through the relay");
    let [_, ip, server_id] = bound.split_whitespace().collect::<Vec<_>>()[..] else {
        panic!("{bound}")
    };
    assert!(ip.starts_with("10.84.0."), "{bound}");
    assert_eq!(
        server_id, "10.84.0.1",
        "the server identifier is the relay's override"
    );
    let renewed = renewed.expect("the renewal was not answered");
    assert!(renewed.starts_with(&format!("renew {ip} ")), "{renewed}");
    assert!(
        unicast.load(Ordering::Relaxed) >= 1,
        "the renewal did not come to the relay by unicast"
    );
}
