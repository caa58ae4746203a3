//! Crash safety under load: the server is killed with SIGKILL at random moments while clients
//! are being leased, restarted, killed again; at the end every lease a client saw
//! acknowledged is still that client's, and no address was ever acknowledged to two clients.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use peregrine_io::TxQueue;
use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketTx};
use peregrine_testkit::netns::Netns;
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::VlanTags;

use super::{discover, message, replies_within, start, stop};

/// Kill-restart rounds.
const ROUNDS: u32 = 8;
/// Clients leased together: their DISCOVERs, then their REQUESTs, go out in one burst.
const BATCH: u32 = 16;
/// A small journal limit, so the rounds seal segments and compact them while being killed.
const COMPACT_AFTER: u32 = 65_536;

fn config(leases: &std::path::Path) -> String {
    format!(
        r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.78.0.1"

[[scope]]
name = "lan"
subnet = "10.78.0.0/16"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.78.1.0 - 10.78.255.254"

[leases]
directory = {:?}
durability = "fsync"
compact-after = {COMPACT_AFTER}
"#,
        leases.display().to_string()
    )
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn mac(round: u32, n: u32) -> [u8; 6] {
    [
        2,
        0x78,
        round as u8,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ]
}

fn send(tx: &mut AfPacketTx, frames: &[Vec<u8>]) {
    for f in frames {
        let buf = tx.buffer().unwrap();
        buf[..f.len()].copy_from_slice(f);
        tx.queue(f.len(), 0);
    }
    tx.flush().unwrap();
}

/// Leases `BATCH` new clients of `round` (numbers from `first`): returns the ACKs seen.
fn lease_batch(
    tx: &mut AfPacketTx,
    rx: &mut AfPacketRx,
    round: u32,
    first: u32,
) -> Vec<([u8; 6], Ipv4Addr)> {
    let server = Ipv4Addr::new(10, 78, 0, 1);
    let xid = |n: u32, step: u32| (round << 24) | (n << 1) | step;
    let clients = first..first + BATCH;
    let discovers: Vec<_> = clients
        .clone()
        .map(|n| discover(mac(round, n), xid(n, 0), VlanTags::NONE))
        .collect();
    send(tx, &discovers);
    let wait = Duration::from_millis(500);
    let offers = replies_within(rx, BATCH as usize, MessageType::Offer, wait);
    let offered: HashMap<u32, Ipv4Addr> = offers.iter().map(|o| (o.0, o.2)).collect();
    let mut requests = Vec::new();
    for n in clients.clone() {
        if let Some(addr) = offered.get(&xid(n, 0)) {
            requests.push(message(
                mac(round, n),
                xid(n, 1),
                VlanTags::NONE,
                MessageType::Request,
                Some((*addr, server)),
            ));
        }
    }
    send(tx, &requests);
    let acks = replies_within(rx, requests.len(), MessageType::Ack, wait);
    let by_xid: HashMap<u32, Ipv4Addr> = acks.iter().map(|a| (a.0, a.2)).collect();
    clients
        .filter_map(|n| by_xid.get(&xid(n, 1)).map(|a| (mac(round, n), *a)))
        .collect()
}

/// Sends a DISCOVER for every client in `acked` until each is offered; checks the offer is
/// the address it was acknowledged.
fn offered_again(tx: &mut AfPacketTx, rx: &mut AfPacketRx, acked: &HashMap<[u8; 6], Ipv4Addr>) {
    let clients: Vec<_> = acked.iter().map(|(m, a)| (*m, *a)).collect();
    let deadline = Instant::now() + Duration::from_mins(1);
    for (k, chunk) in clients.chunks(BATCH as usize).enumerate() {
        let xid = |i: usize| 0xff00_0000 | ((k * BATCH as usize + i) as u32);
        let mut missing: Vec<usize> = (0..chunk.len()).collect();
        while !missing.is_empty() {
            assert!(Instant::now() < deadline, "offers did not come within 60 s");
            let frames: Vec<_> = missing
                .iter()
                .map(|i| discover(chunk[*i].0, xid(*i), VlanTags::NONE))
                .collect();
            send(tx, &frames);
            let offers = replies_within(
                rx,
                missing.len(),
                MessageType::Offer,
                Duration::from_millis(500),
            );
            missing.retain(|i| {
                let Some(offer) = offers.iter().find(|o| o.0 == xid(*i)) else {
                    return true;
                };
                let (m, a) = chunk[*i];
                assert_eq!(
                    offer.2, a,
                    "client {m:02x?} was ACKed {a} before a crash and is offered {} after",
                    offer.2
                );
                false
            });
        }
    }
}

#[test]
fn acked_leases_survive_repeated_kill_9_under_load() {
    let Some(ns) = Netns::new("server_kill9") else {
        return;
    };
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.78.0.1/16 dev srv0");
    let dir = std::env::temp_dir().join(format!("peregrine-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("kill9.toml");
    let leases = dir.join("leases");
    std::fs::write(&config_path, config(&leases)).unwrap();
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");

    let mut acked: HashMap<[u8; 6], Ipv4Addr> = HashMap::new();
    let mut holder: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    let mut record = |acks: Vec<([u8; 6], Ipv4Addr)>| {
        for (m, a) in acks {
            if let Some(other) = holder.insert(a, m) {
                assert_eq!(other, m, "{a} was ACKed to two clients");
            }
            acked.insert(m, a);
        }
    };
    for round in 0..ROUNDS {
        let mut server = start(&ns, &config_path);
        // Serving (and recovered) once the first batch is answered; bounded.
        let started = Instant::now();
        let mut n = 0;
        loop {
            let acks = lease_batch(&mut tx, &mut rx, round, n);
            n += BATCH;
            if !acks.is_empty() {
                record(acks);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "round {round}: the server did not serve within 20 s"
            );
        }
        // Load until SIGKILL lands, at a random moment, from another thread: mid-batch, mid-fsync.
        let mut child = server.take().unwrap();
        let pid = child.id().to_string();
        let delay = Duration::from_millis(50 + xorshift(&mut seed) % 400);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap();
        });
        while child.try_wait().unwrap().is_none() {
            record(lease_batch(&mut tx, &mut rx, round, n));
            n += BATCH;
        }
        killer.join().unwrap();
        // Every other round, the crash also left half a record at the journal's end.
        if round % 2 == 1 {
            let mut garbage = [0u8; 40];
            for b in &mut garbage {
                *b = xorshift(&mut seed) as u8;
            }
            std::fs::OpenOptions::new()
                .append(true)
                .open(leases.join("journal"))
                .unwrap()
                .write_all(&garbage)
                .unwrap();
        }
    }
    assert!(
        acked.len() >= (ROUNDS * BATCH) as usize,
        "too little load to mean anything: {} ACKs",
        acked.len()
    );

    // Every client that saw an ACK is offered its own address again.
    let mut server = start(&ns, &config_path);
    offered_again(&mut tx, &mut rx, &acked);
    assert!(stop(&mut server).success());
    let snapshots = std::fs::read_dir(&leases)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    println!(
        "{} clients ACKed over {ROUNDS} kills; {snapshots} snapshot(s) in the lease directory",
        acked.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}
