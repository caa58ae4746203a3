//! DHCPLEASEQUERY (RFC 4388), answered from the binding tables on a fake clock.

use std::net::Ipv4Addr;

use peregrine_config::model::Ipv4Net;
use peregrine_engine::{BulkStatus, DropReason, NextHop, RxMeta, Verdict};
use peregrine_testkit::frames::LeaseQuery;
use peregrine_wire::dhcp::{DhcpMessage, MessageType, opt};

use crate::support::*;

/// The relay of the lab's relayed scope, which also asks the leasequeries.
pub(crate) const RELAY: [u8; 4] = [10, 201, 0, 1];

/// A leasequery from `giaddr`: by `ciaddr` if given, else by `client_id`, else by `chaddr`.
pub(crate) fn query(
    giaddr: [u8; 4],
    ciaddr: Option<Ipv4Addr>,
    chaddr: Option<[u8; 6]>,
    client_id: Option<&[u8]>,
    prl: &[u8],
) -> Vec<u8> {
    LeaseQuery {
        ciaddr,
        chaddr,
        client_id,
        prl,
        ..LeaseQuery::new(0x4c51, giaddr)
    }
    .bytes()
}

/// The lab, leasequeries allowed from the relayed scope's relays.
pub(crate) fn sim() -> Sim {
    let mut config = lab_config();
    config.server.leasequery_requesters = vec![Ipv4Net {
        addr: Ipv4Addr::new(10, 201, 0, 0),
        prefix: 24,
    }];
    Sim::new(&config)
}

/// How the relay's query arrives: from the relay, at its port 67.
pub(crate) fn from_relay(sim: &Sim) -> RxMeta {
    RxMeta {
        src_ip: RELAY.into(),
        src_port: 67,
        dst_ip: SERVER,
        ..sim.meta()
    }
}

fn u32_option(m: &DhcpMessage<'_>, code: u8) -> Option<u32> {
    let v = m.get(code)?.as_slice()?.to_vec();
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// The message type of a reply sent now.
fn kind(v: &Verdict) -> Option<MessageType> {
    match v {
        Verdict::Reply { kind, .. } => Some(*kind),
        _ => None,
    }
}

/// RFC 4388 §6.4: a leased address is DHCPLEASEACTIVE with the client's chaddr, the time
/// left (51) and since its last transaction (91), and the relay agent information the relay
/// asks for (82).
#[test]
fn a_relay_learns_a_lease_by_its_address() {
    let mut sim = sim();
    let c = Client::new(80).relayed(RELAY, b"olt-1/1/1:100");
    let addr = sim.dora(&c);
    sim.advance(600);
    let meta = from_relay(&sim);

    let v = sim.send_with(
        &meta,
        &query(RELAY, Some(addr), None, None, &[opt::RELAY_AGENT_INFO]),
    );
    let Verdict::Reply { dst, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(
        (dst.ip, dst.port, dst.next_hop),
        (RELAY.into(), 67, NextHop::Sender)
    );
    let m = sim.reply(&v);
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.packet().ciaddr(), addr);
    assert_eq!(m.packet().client_mac(), Some(c.mac()));
    assert_eq!(m.packet().xid(), 0x4c51);
    assert_eq!(m.server_id(), Some(SERVER));
    assert_eq!(m.lease_time(), Some(3000));
    assert_eq!(u32_option(&m, opt::CLIENT_LAST_TRANSACTION_TIME), Some(600));
    let mut scratch = [0u8; 255];
    let rai = m.relay_agent_info(&mut scratch).unwrap().unwrap();
    assert_eq!(rai.circuit_id(), Some(&b"olt-1/1/1:100"[..]));
    // Without 82 in its list, the relay gets none.
    let v = sim.send_with(&meta, &query(RELAY, Some(addr), None, None, &[]));
    assert!(sim.reply(&v).relay_agent_info_raw().is_none());
}

#[test]
fn a_relay_learns_a_lease_by_hardware_address_and_client_identifier() {
    let mut sim = sim();
    let c = Client::new(80).relayed(RELAY, b"olt-1/1/1:100");
    let addr = sim.dora(&c);
    let meta = from_relay(&sim);
    let v = sim.send_with(&meta, &query(RELAY, None, Some(c.mac), None, &[]));
    assert_eq!(kind(&v), Some(MessageType::LeaseActive));
    assert_eq!(sim.reply(&v).packet().ciaddr(), addr);
    // A client identifier of the client's own, and one that is its hardware address.
    let mut d = Client::new(81).relayed(RELAY, b"olt-1/1/2:100");
    d.identifier = Some(b"\x00cpe-81".to_vec());
    let d_addr = sim.dora(&d);
    let v = sim.send_with(&meta, &query(RELAY, None, None, Some(b"\x00cpe-81"), &[]));
    assert_eq!(sim.reply(&v).packet().ciaddr(), d_addr);
    assert_eq!(sim.reply(&v).packet().client_mac(), Some(d.mac()));
    let mut own = vec![1];
    own.extend_from_slice(&c.mac);
    let v = sim.send_with(&meta, &query(RELAY, None, None, Some(&own), &[]));
    assert_eq!(sim.reply(&v).packet().ciaddr(), addr);
}

/// An address the server manages but nobody holds is DHCPLEASEUNASSIGNED; one it knows
/// nothing of, or a client it never leased to, DHCPLEASEUNKNOWN; so is a lease once over.
#[test]
fn free_addresses_are_unassigned_and_strangers_unknown() {
    let mut sim = sim();
    let c = Client::new(80).relayed(RELAY, b"olt-1/1/1:100");
    let addr = sim.dora(&c);
    let meta = from_relay(&sim);
    let free = Ipv4Addr::new(10, 201, 1, 250);
    let v = sim.send_with(&meta, &query(RELAY, Some(free), None, None, &[]));
    assert_eq!(kind(&v), Some(MessageType::LeaseUnassigned));
    assert_eq!(sim.reply(&v).packet().ciaddr(), free);
    let v = sim.send_with(
        &meta,
        &query(RELAY, Some([192, 0, 2, 5].into()), None, None, &[]),
    );
    assert_eq!(kind(&v), Some(MessageType::LeaseUnknown));
    let v = sim.send_with(
        &meta,
        &query(RELAY, None, Some([2, 0, 0, 0, 0, 9]), None, &[]),
    );
    assert_eq!(kind(&v), Some(MessageType::LeaseUnknown));

    sim.advance(3600);
    let v = sim.send_with(&meta, &query(RELAY, Some(addr), None, None, &[]));
    assert_eq!(kind(&v), Some(MessageType::LeaseUnassigned));
    let v = sim.send_with(&meta, &query(RELAY, None, Some(c.mac), None, &[]));
    assert_eq!(kind(&v), Some(MessageType::LeaseUnknown));
}

/// Only the requestors the configuration lists are answered, and a query must name something.
#[test]
fn leasequeries_from_strangers_or_about_nothing_are_dropped() {
    let mut sim = sim();
    let meta = from_relay(&sim);
    let addr = Some(Ipv4Addr::new(10, 201, 1, 1));
    let v = sim.send_with(&meta, &query([10, 202, 0, 1], addr, None, None, &[]));
    assert_eq!(v, Verdict::Drop(DropReason::LeasequeryNotAllowed));
    let v = sim.send_with(&meta, &query([0, 0, 0, 0], addr, None, None, &[]));
    assert_eq!(v, Verdict::Drop(DropReason::LeasequeryNotAllowed));
    let v = sim.send_with(&meta, &query(RELAY, None, None, None, &[]));
    assert_eq!(v, Verdict::Drop(DropReason::LeasequeryWithoutSubject));
    // Without leasequery-requesters, nobody is answered.
    let mut sim = Sim::new(&lab_config());
    let v = sim.send_with(&meta, &query(RELAY, addr, None, None, &[]));
    assert_eq!(v, Verdict::Drop(DropReason::LeasequeryNotAllowed));
    // The answers are the server's to send, never anyone's to ask.
    let answer =
        Client::new(1).message(MessageType::LeaseActive, Ipv4Addr::UNSPECIFIED, None, None);
    let v = sim.send_with(&meta, &answer);
    assert_eq!(v, Verdict::Drop(DropReason::UnexpectedType));
}

/// A bulk leasequery (RFC 6926) from `giaddr` (absent: asks for everything), by `ciaddr`,
/// `chaddr` or relay agent sub-options, and optionally from `since` on.
fn bulk_query(
    ciaddr: Option<Ipv4Addr>,
    chaddr: Option<[u8; 6]>,
    agent: &[(u8, &[u8])],
    since: Option<u32>,
) -> Vec<u8> {
    LeaseQuery {
        ciaddr,
        chaddr,
        prl: &[opt::RELAY_AGENT_INFO],
        bulk: true,
        agent,
        query_start_time: since,
        ..LeaseQuery::new(0x4c51, [0, 0, 0, 0])
    }
    .bytes()
}

/// The messages a bulk leasequery from `requestor` is answered with, and its status.
fn bulk(sim: &Sim, requestor: [u8; 4], q: &[u8]) -> (Vec<Vec<u8>>, BulkStatus) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    let (status, sent) = sim
        .engine
        .bulk_leasequery::<()>(sim.now, SERVER, requestor.into(), q, &mut buf, |m| {
            out.push(m.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(
        sent as usize,
        out.len() - 1,
        "every binding sent, then the end"
    );
    let done = DhcpMessage::parse(out.last().unwrap()).unwrap();
    assert_eq!(done.message_type(), Some(MessageType::LeaseQueryDone));
    let code = done.get(opt::STATUS_CODE).unwrap().as_slice().unwrap()[0];
    assert_eq!(code, status as u8);
    (out, status)
}

/// RFC 6926 §6.2: every binding the query names, as DHCPLEASEACTIVE with the server's clock
/// (152), the time in its state (153) and the state (156), then DHCPLEASEQUERYDONE.
#[test]
fn a_bulk_leasequery_sends_every_lease_behind_a_relay_then_done() {
    let mut sim = sim();
    let behind = |n: u32, bng: &[u8]| {
        let mut c = Client::new(n).relayed(RELAY, format!("olt-1/1/{n}").as_bytes());
        c.relay_info.push((12, bng.to_vec()));
        c
    };
    let clients = [
        behind(90, b"bng-1"),
        behind(91, b"bng-1"),
        behind(92, b"bng-2"),
    ];
    let addrs: Vec<Ipv4Addr> = clients.iter().map(|c| sim.dora(c)).collect();
    sim.advance(100);

    let (all, status) = bulk(&sim, RELAY, &bulk_query(None, None, &[], None));
    assert_eq!((all.len(), status), (4, BulkStatus::Success));
    let mut seen: Vec<Ipv4Addr> = all[..3]
        .iter()
        .map(|m| {
            let m = DhcpMessage::parse(m).unwrap();
            assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
            assert_eq!(u32_option(&m, opt::BASE_TIME), Some(sim.now as u32));
            assert_eq!(u32_option(&m, opt::START_TIME_OF_STATE), Some(100));
            assert_eq!(m.get(opt::DHCP_STATE).unwrap().as_slice().unwrap(), [2]);
            assert!(m.relay_agent_info_raw().is_some());
            m.packet().ciaddr()
        })
        .collect();
    seen.sort();
    let mut want = addrs.clone();
    want.sort();
    assert_eq!(seen, want);

    let (by_relay, _) = bulk(
        &sim,
        RELAY,
        &bulk_query(None, None, &[(12, b"bng-1")], None),
    );
    assert_eq!(by_relay.len(), 3);
    let remote = clients[2].mac;
    let (by_remote, _) = bulk(&sim, RELAY, &bulk_query(None, None, &[(2, &remote)], None));
    let m = DhcpMessage::parse(&by_remote[0]).unwrap();
    assert_eq!((by_remote.len(), m.packet().ciaddr()), (2, addrs[2]));
    let (by_mac, _) = bulk(
        &sim,
        RELAY,
        &bulk_query(None, Some(clients[1].mac), &[], None),
    );
    assert_eq!(
        DhcpMessage::parse(&by_mac[0]).unwrap().packet().ciaddr(),
        addrs[1]
    );
    let free = Ipv4Addr::new(10, 201, 1, 250);
    let (by_free, _) = bulk(&sim, RELAY, &bulk_query(Some(free), None, &[], None));
    let m = DhcpMessage::parse(&by_free[0]).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::LeaseUnassigned));
    // Nothing changed since now: only the end.
    let since = Some(sim.now as u32);
    assert_eq!(
        bulk(&sim, RELAY, &bulk_query(None, None, &[], since))
            .0
            .len(),
        1
    );
    let stranger = Some([2, 0, 0, 0, 0, 9]);
    assert_eq!(
        bulk(&sim, RELAY, &bulk_query(None, stranger, &[], None))
            .0
            .len(),
        1
    );
}

#[test]
fn a_bulk_leasequery_from_a_stranger_or_malformed_ends_at_once_with_its_status() {
    let mut sim = sim();
    sim.dora(&Client::new(93).relayed(RELAY, b"olt-1/1/93"));
    let q = bulk_query(None, None, &[], None);
    let (out, status) = bulk(&sim, [10, 202, 0, 1], &q);
    assert_eq!((out.len(), status), (1, BulkStatus::NotAllowed));
    assert_eq!(DhcpMessage::parse(&out[0]).unwrap().packet().xid(), 0x4c51);
    let (out, status) = bulk(&sim, RELAY, &q[..100]);
    assert_eq!((out.len(), status), (1, BulkStatus::MalformedQuery));
    // A single leasequery sent where a bulk one belongs is malformed too.
    let single = query(RELAY, None, None, None, &[]);
    assert_eq!(bulk(&sim, RELAY, &single).1, BulkStatus::MalformedQuery);
}
