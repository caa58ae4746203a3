//! Golden frames built by `scripts/golden-frames.py` (plain Python struct packing, independent
//! of this crate) and read by tshark into `tests/golden/tshark.txt`; the values asserted here
//! are the ones tshark shows.

use std::net::Ipv4Addr;

use peregrine_wire::Error;
use peregrine_wire::dhcp::{DhcpMessage, MessageType, opt};
use peregrine_wire::ethernet::ethertype;
use peregrine_wire::frame::{Demuxed, demux};

use crate::samples::*;

fn udp(
    frame: &[u8],
) -> (
    peregrine_wire::frame::L2,
    peregrine_wire::frame::L3,
    u16,
    u16,
    &[u8],
) {
    match demux(frame).unwrap() {
        Demuxed::Udp {
            l2,
            l3,
            src_port,
            dst_port,
            payload,
        } => (l2, l3, src_port, dst_port, payload),
        other => panic!("expected UDP, got {other:?}"),
    }
}

#[test]
fn relayed_discover_with_option_82() {
    let (l2, l3, sport, dport, payload) = udp(RELAYED_DISCOVER);
    assert!(l2.vlans.is_empty());
    assert_eq!(l2.src.to_string(), "02:00:00:00:00:fe");
    assert_eq!((l3.src, l3.dst), (Ipv4Addr::new(10, 201, 0, 1), SERVER_IP));
    assert_eq!((sport, dport), (67, 67));
    assert_eq!(payload.len(), 353 - 28);

    let m = DhcpMessage::parse(payload).unwrap();
    let p = m.packet();
    assert_eq!(
        (p.op(), p.hops(), p.xid(), p.secs()),
        (1, 1, 0xdead_beef, 7)
    );
    assert!(!p.broadcast());
    assert_eq!(p.giaddr(), Ipv4Addr::new(10, 201, 0, 1));
    assert_eq!(p.client_mac().unwrap().to_string(), "02:00:00:aa:bb:01");
    assert_eq!(m.message_type(), Some(MessageType::Discover));
    assert_eq!(
        m.client_id().unwrap().as_slice().unwrap(),
        &[1, 2, 0, 0, 0xaa, 0xbb, 1]
    );
    assert_eq!(m.hostname().unwrap().as_slice().unwrap(), b"cpe-01");
    assert_eq!(
        m.parameter_request_list().unwrap().as_slice().unwrap(),
        &[1, 3, 6, 15, 51, 54, 58, 59]
    );
    assert_eq!(m.max_message_size(), Some(1500));
    assert_eq!(m.vendor_class().unwrap().as_slice().unwrap(), b"docsis3.0");
    assert_eq!(
        (m.requested_ip(), m.server_id(), m.overload()),
        (None, None, 0)
    );

    let mut scratch = [0u8; 1024];
    let rai = m.relay_agent_info(&mut scratch).unwrap().unwrap();
    assert_eq!(rai.as_bytes().len(), 37);
    assert_eq!(rai.circuit_id().unwrap(), b"eth1/1/1:100");
    assert_eq!(
        rai.remote_id().unwrap(),
        &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]
    );
    assert_eq!(rai.link_selection(), Some(Ipv4Addr::new(10, 201, 0, 0)));
    assert_eq!(rai.relay_id().unwrap(), b"bng-7");
    assert_eq!(rai.relay_source_port(), Some(&[][..]));
    assert_eq!(rai.subscriber_id(), None);
    let codes: Vec<u8> = m.options().map(|o| o.code).collect();
    assert_eq!(codes, [53, 61, 12, 55, 57, 60, 82]);
}

#[test]
fn qinq_broadcast_discover_with_overload_and_split_option() {
    let (l2, l3, sport, dport, payload) = udp(QINQ_OVERLOADED_DISCOVER);
    let tags = l2.vlans;
    assert_eq!(tags.len(), 2);
    let (outer, inner) = (tags.outer().unwrap(), tags.inner().unwrap());
    assert_eq!(
        (outer.tpid, outer.vid(), outer.pcp()),
        (ethertype::QINQ, 200, 3)
    );
    assert_eq!((inner.tpid, inner.vid()), (ethertype::VLAN, 10));
    assert!(l2.dst.is_broadcast());
    assert_eq!(
        (l3.src, l3.dst),
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
    );
    assert_eq!((sport, dport), (68, 67));

    let m = DhcpMessage::parse(payload).unwrap();
    assert!(m.packet().broadcast());
    assert_eq!(m.overload(), 3);
    // Option 55 arrives in two instances: options field [1, 3], then `file` [6, 42].
    let prl = m.parameter_request_list().unwrap();
    assert!(prl.is_split() && prl.as_slice().is_none());
    assert_eq!(
        prl.fragments().collect::<Vec<_>>(),
        [&[1u8, 3][..], &[6, 42][..]]
    );
    assert_eq!(prl.bytes().collect::<Vec<_>>(), [1, 3, 6, 42]);
    let mut scratch = [0u8; 4];
    assert_eq!(prl.contiguous(&mut scratch).unwrap(), &[1, 3, 6, 42]);
    assert_eq!(prl.contiguous(&mut [0u8; 3]), Err(Error::NoSpace));
    assert_eq!(m.requested_ip(), Some(Ipv4Addr::new(10, 202, 3, 4)));
    assert_eq!(
        m.hostname().unwrap().as_slice().unwrap(),
        b"overloaded-host"
    );
    // Aggregate order: options field, then file, then sname (RFC 3396 section 5).
    let codes: Vec<u8> = m.options().map(|o| o.code).collect();
    assert_eq!(codes, [opt::MESSAGE_TYPE, opt::OVERLOAD, 55, 55, 50, 12]);
}

#[test]
fn vlan_renewing_request_with_ip_options_and_no_udp_checksum() {
    let (l2, l3, sport, _, payload) = udp(VLAN_RENEW_REQUEST);
    let tag = l2.vlans.outer().unwrap();
    assert_eq!((l2.vlans.len(), tag.vid(), tag.pcp()), (1, 42, 1));
    assert_eq!(l3.src, Ipv4Addr::new(10, 201, 5, 6));
    assert_eq!(sport, 68);
    let m = DhcpMessage::parse(payload).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Request));
    assert_eq!(m.packet().ciaddr(), Ipv4Addr::new(10, 201, 5, 6));
    assert_eq!(m.relay_agent_info(&mut [0u8; 8]).unwrap(), None);
}

#[test]
fn rapid_commit_discover_and_its_ack() {
    // tshark: "(80) Rapid commit", "IP Address Lease Time: (600s)", "Parameter Request List
    // Item: (108) IPv6-Only Preferred"; the ACK's option 108 "Value: 00000708".
    let (_, _, sport, dport, payload) = udp(RAPID_COMMIT_DISCOVER);
    assert_eq!((sport, dport), (68, 67));
    let m = DhcpMessage::parse(payload).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Discover));
    assert_eq!(m.get(opt::RAPID_COMMIT).unwrap().len(), 0);
    assert_eq!(m.lease_time(), Some(600));
    assert_eq!(
        m.parameter_request_list().unwrap().as_slice().unwrap(),
        &[1, 3, 6, opt::IPV6_ONLY_PREFERRED]
    );
    let (_, l3, sport, dport, payload) = udp(RAPID_COMMIT_ACK);
    assert_eq!((l3.src, sport, dport), (SERVER_IP, 67, 68));
    let m = DhcpMessage::parse(payload).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::Ack));
    assert_eq!(m.packet().yiaddr(), Ipv4Addr::new(10, 200, 0, 123));
    assert_eq!(m.get(opt::RAPID_COMMIT).unwrap().len(), 0);
    assert_eq!(
        m.get(opt::IPV6_ONLY_PREFERRED).unwrap().as_slice().unwrap(),
        &1800u32.to_be_bytes()
    );
}

#[test]
fn leasequery_answers() {
    // tshark: "Lease Active (13)", "(91) Client last transaction time", "Start Time Of State:
    // (600s)", "Dhcp State: Active (2)"; "Lease Query Done (15)", "Status Code: MalformedQuery
    // (3)", "Status Code Message: malformed query". (tshark 4.0 shows base-time, 152, as an
    // NTP-era date; RFC 6926 counts it from 1970.)
    let u32_of = |m: &DhcpMessage<'_>, code| {
        u32::from_be_bytes(m.get(code).unwrap().as_slice().unwrap().try_into().unwrap())
    };
    let (_, _, _, _, payload) = udp(LEASEACTIVE);
    let m = DhcpMessage::parse(payload).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::LeaseActive));
    assert_eq!(m.packet().ciaddr(), Ipv4Addr::new(10, 201, 1, 7));
    assert_eq!(m.lease_time(), Some(3000));
    assert_eq!(u32_of(&m, opt::CLIENT_LAST_TRANSACTION_TIME), 600);
    assert_eq!(u32_of(&m, opt::BASE_TIME), 1_800_000_600);
    assert_eq!(u32_of(&m, opt::START_TIME_OF_STATE), 600);
    assert_eq!(m.get(opt::DHCP_STATE).unwrap().as_slice().unwrap(), [2]);
    let (_, _, _, _, payload) = udp(LEASEQUERY_DONE);
    let m = DhcpMessage::parse(payload).unwrap();
    assert_eq!(m.message_type(), Some(MessageType::LeaseQueryDone));
    assert_eq!(
        m.get(opt::STATUS_CODE).unwrap().as_slice().unwrap(),
        b"\x03malformed query"
    );
}

#[test]
fn arp_and_fragment() {
    match demux(ARP_REQUEST).unwrap() {
        Demuxed::Arp { arp, .. } => {
            assert_eq!(arp.operation(), 1);
            assert_eq!(arp.sender_ip(), Ipv4Addr::new(10, 200, 0, 254));
            assert_eq!(arp.target_ip(), SERVER_IP);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(demux(FRAGMENT).unwrap_err(), Error::Fragment);
}

#[test]
fn every_truncation_of_every_golden_frame_is_refused() {
    // The UDP frames carry no Ethernet padding, so any cut loses declared bytes; the ARP
    // frame is padded to 60 bytes, of which 42 (Ethernet header and ARP) are needed.
    let cases = [
        (RELAYED_DISCOVER, RELAYED_DISCOVER.len()),
        (QINQ_OVERLOADED_DISCOVER, QINQ_OVERLOADED_DISCOVER.len()),
        (VLAN_RENEW_REQUEST, VLAN_RENEW_REQUEST.len()),
        (RAPID_COMMIT_DISCOVER, RAPID_COMMIT_DISCOVER.len()),
        (RAPID_COMMIT_ACK, RAPID_COMMIT_ACK.len()),
        (LEASEACTIVE, LEASEACTIVE.len()),
        (LEASEQUERY_DONE, LEASEQUERY_DONE.len()),
        (ARP_REQUEST, 42),
    ];
    for (frame, needed) in cases {
        for cut in 0..needed {
            assert!(demux(&frame[..cut]).is_err(), "cut at {cut} accepted");
        }
        assert!(demux(&frame[..needed]).is_ok());
    }
}

#[test]
fn every_truncation_of_a_dhcp_payload_is_refused_or_parses() {
    let (_, _, _, _, payload) = udp(RELAYED_DISCOVER);
    for cut in 0..240 {
        assert_eq!(
            DhcpMessage::parse(&payload[..cut]).unwrap_err(),
            Error::Truncated
        );
    }
    // Past the header, a cut inside an option is malformed; a cut on an option boundary parses.
    let mut accepted = 0;
    for cut in 240..payload.len() {
        match DhcpMessage::parse(&payload[..cut]) {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e, Error::Malformed, "cut at {cut}"),
        }
    }
    assert!(accepted > 0 && accepted < payload.len() - 240);
}

#[test]
fn bad_magic_and_bad_overload_are_refused() {
    let (_, _, _, _, payload) = udp(RELAYED_DISCOVER);
    let mut bad = payload.to_vec();
    bad[236] = 0;
    assert_eq!(DhcpMessage::parse(&bad).unwrap_err(), Error::BadMagic);
    let (_, _, _, _, payload) = udp(QINQ_OVERLOADED_DISCOVER);
    assert_eq!(payload[243..246], [opt::OVERLOAD, 1, 3]);
    for v in [0, 4, 255] {
        let mut bad = payload.to_vec();
        bad[245] = v;
        assert_eq!(
            DhcpMessage::parse(&bad).unwrap_err(),
            Error::Malformed,
            "overload {v}"
        );
    }
}
