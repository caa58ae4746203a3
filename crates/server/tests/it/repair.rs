//! A damaged journal, end to end: the server refuses it, `leases recover` repairs it, and the
//! restarted server confirms every rebooting client whose record survived, gives the client
//! whose record was lost its address back when it asks for it, and offers no held-back
//! address to a new client.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use peregrine_io::TxQueue;
use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketTx};
use peregrine_store::record::{HEADER_LEN, RECORD_LEN, decode};
use peregrine_testkit::frames::ClientMessage;
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::VlanTags;

use crate::scope_state::call;
use crate::{ask, discover, journaled_lab, message, metric, start, stop};

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// A rebooting client's REQUEST for `address` (option 50, no server identifier).
fn init_reboot(mac: [u8; 6], xid: u32, address: Ipv4Addr) -> Vec<u8> {
    let mut m = ClientMessage::new(MessageType::Request, mac, xid);
    m.broadcast = true;
    m.requested = Some(address);
    crate::broadcast(&m, VlanTags::NONE)
}

fn lease(tx: &mut AfPacketTx, rx: &mut AfPacketRx, mac: [u8; 6], xid: u32) -> Ipv4Addr {
    let offered = ask(
        tx,
        rx,
        &discover(mac, xid, VlanTags::NONE),
        MessageType::Offer,
    );
    let request = message(
        mac,
        xid + 1,
        VlanTags::NONE,
        MessageType::Request,
        Some((offered, SERVER_ID)),
    );
    assert_eq!(ask(tx, rx, &request, MessageType::Ack), offered);
    offered
}

/// Flips a byte of the journal record of `address`.
fn damage_record_of(journal: &std::path::Path, address: Ipv4Addr) {
    let mut bytes = std::fs::read(journal).unwrap();
    let at = (HEADER_LEN..bytes.len())
        .step_by(RECORD_LEN)
        .find(|at| {
            let record: &[u8; RECORD_LEN] = bytes[*at..*at + RECORD_LEN].try_into().unwrap();
            decode(record).is_ok_and(|e| e.address == address)
        })
        .unwrap();
    bytes[at + 40] ^= 0x10;
    std::fs::write(journal, &bytes).unwrap();
}

/// The server refuses the damaged journal (exits with an error, never serves); `leases
/// recover` then repairs it, keeping the four intact records and holding back the rest.
fn refused_then_recovered(ns: &Netns, config: &std::path::Path) {
    let status = start(ns, config)
        .exited_within(Duration::from_secs(10))
        .expect("the server started on a damaged journal");
    assert!(!status.success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["leases", "recover", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("kept 4 intact records"), "{said}");
    assert!(said.contains("held back"), "{said}");
}

#[test]
fn a_repaired_journal_keeps_its_clients_and_holds_back_the_lost_address() {
    let Some(ns) = Netns::new("repair") else {
        return;
    };
    let dir = TempDir::new("repair-e2e");
    let (config, leases) = journaled_lab(&ns, dir.path(), "repair.toml", "");
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let clients: Vec<[u8; 6]> = (1..=5).map(|n| [2, 0, 0, 0x7e, 0, n]).collect();

    let mut server = start(&ns, &config);
    let leased: Vec<Ipv4Addr> = clients
        .iter()
        .zip(0u32..)
        .map(|(mac, n)| lease(&mut tx, &mut rx, *mac, 10 * n + 1))
        .collect();
    assert!(stop(&mut server).success());

    // The third client's record is damaged: the server refuses to start, naming the repair.
    let lost = leased[2];
    damage_record_of(&leases.join("journal"), lost);
    refused_then_recovered(&ns, &config);

    // Every client whose record survived reboots into its address.
    let mut server = start(&ns, &config);
    for (k, (mac, address)) in clients.iter().zip(&leased).enumerate() {
        if k == 2 {
            continue;
        }
        let xid = 100 + k as u32;
        assert_eq!(
            ask(
                &mut tx,
                &mut rx,
                &init_reboot(*mac, xid, *address),
                MessageType::Ack
            ),
            *address
        );
    }
    // A new client is offered nothing: every free address is held back (none has a record
    // after the damage), the lost one among them.
    let scraped = call(&ns, "GET", "/metrics").1;
    let held = metric(
        &scraped,
        "peregrine_pool_addresses{scope=\"lan\",pool=\"0\",state=\"held_back\"}",
    );
    assert_eq!(held, 100 - 4, "{scraped}");
    let newcomer = [2, 0, 0, 0x7e, 0, 99];
    let exhausted = "peregrine_drops_total{reason=\"pool_exhausted\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frame = discover(newcomer, 200, VlanTags::NONE);
        let buf = tx.buffer().unwrap();
        buf[..frame.len()].copy_from_slice(&frame);
        tx.queue(frame.len(), 0);
        tx.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if metric(&call(&ns, "GET", "/metrics").1, exhausted) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new client's DISCOVER was not refused"
        );
    }
    assert!(
        crate::offers(&mut rx, 1).is_empty(),
        "a held-back address was offered"
    );
    // The client whose record was lost asks for its address by name: it is its again.
    assert_eq!(
        ask(
            &mut tx,
            &mut rx,
            &init_reboot(clients[2], 300, lost),
            MessageType::Ack
        ),
        lost
    );
    assert!(stop(&mut server).success());
}
