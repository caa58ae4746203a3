//! Emit → parse → equal, over arbitrary headers, options, names and size limits.

use std::net::Ipv4Addr;

use peregrine_wire::Error;
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, MIN_MESSAGE_LEN, opt};
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, build_udp_frame, demux};
use proptest::prelude::*;

pub(crate) fn header() -> impl Strategy<Value = BootpHeader> {
    (
        (
            1u8..=2,
            any::<u8>(),
            0u8..=16,
            any::<u8>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
        ),
    )
        .prop_map(
            |((op, htype, hlen, hops, xid, secs, flags), (ci, yi, si, gi, chaddr))| BootpHeader {
                op,
                htype,
                hlen,
                hops,
                xid,
                secs,
                flags,
                ciaddr: Ipv4Addr::from(ci),
                yiaddr: Ipv4Addr::from(yi),
                siaddr: Ipv4Addr::from(si),
                giaddr: Ipv4Addr::from(gi),
                chaddr,
            },
        )
}

/// Options with distinct codes (52 is the writer's), values up to 600 bytes so that RFC 3396
/// splitting is exercised.
pub(crate) fn options() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::btree_map(
        (1u8..=254).prop_filter("overload is the writer's", |c| *c != opt::OVERLOAD),
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..20),
            1 => prop::collection::vec(any::<u8>(), 200..600),
        ],
        0..12,
    )
    .prop_map(|m| m.into_iter().collect::<Vec<_>>())
    .prop_shuffle()
}

fn name(max: usize) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(1u8..=255, 0..max))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn dhcp_emit_parse_equal(
        h in header(),
        opts in options(),
        sname in name(64),
        file in name(128),
        max_len in prop_oneof![Just(548usize), 300usize..1500, Just(4096)],
    ) {
        let mut buf = vec![0xa5u8; 4096];
        let mut w = DhcpWriter::new(&mut buf, max_len).unwrap();
        w.header(&h);
        if let Some(n) = &sname { w.sname(n).unwrap(); }
        if let Some(n) = &file { w.file(n).unwrap(); }
        let mut written = Vec::new();
        for (code, data) in &opts {
            match w.option(*code, data) {
                Ok(()) => written.push((*code, data.clone())),
                // Out of room: the writer must leave the message intact and keep going.
                Err(e) => prop_assert_eq!(e, Error::NoSpace),
            }
        }
        let len = w.finish().unwrap();
        prop_assert!(len >= MIN_MESSAGE_LEN && len <= max_len);

        let m = DhcpMessage::parse(&buf[..len]).unwrap();
        let p = m.packet();
        prop_assert_eq!(
            (p.op(), p.htype(), p.hlen(), p.hops(), p.xid(), p.secs(), p.flags()),
            (h.op, h.htype, h.hlen, h.hops, h.xid, h.secs, h.flags)
        );
        prop_assert_eq!((p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr()), (h.ciaddr, h.yiaddr, h.siaddr, h.giaddr));
        prop_assert_eq!(p.chaddr_field(), &h.chaddr);
        for (code, data) in &written {
            let v = m.get(*code).unwrap();
            prop_assert!(v.bytes().eq(data.iter().copied()), "option {}", code);
        }
        let listed: std::collections::BTreeSet<u8> =
            m.options().map(|o| o.code).filter(|c| *c != opt::OVERLOAD).collect();
        let expected: std::collections::BTreeSet<u8> = written.iter().map(|(c, _)| *c).collect();
        prop_assert_eq!(listed, expected);
        if let Some(n) = &sname { prop_assert_eq!(&p.sname()[..n.len()], &n[..]); prop_assert_eq!(p.sname()[n.len()], 0); }
        if let Some(n) = &file { prop_assert_eq!(&p.file()[..n.len()], &n[..]); prop_assert_eq!(p.file()[n.len()], 0); }
        // A field that holds a name never holds options, and options only spill over when
        // the options field is full.
        if m.overload() & 1 != 0 { prop_assert!(file.is_none()); }
        if m.overload() & 2 != 0 { prop_assert!(sname.is_none()); }
        let encoded: usize = written.iter().map(|(_, d)| d.len() + 2 * d.len().div_ceil(255).max(1)).sum();
        // Options, option 52's reserve and END all fit in the options field: nothing spills.
        if 240 + encoded + 3 < max_len { prop_assert_eq!(m.overload(), 0); }
    }

    #[test]
    fn frame_emit_demux_equal(
        tags in prop::collection::vec((prop::sample::select(vec![ethertype::VLAN, ethertype::QINQ, ethertype::QINQ_LEGACY]), 0u16..4096, 0u8..8), 0..=2),
        macs in any::<([u8; 6], [u8; 6])>(),
        ips in any::<([u8; 4], [u8; 4])>(),
        ports in any::<(u16, u16)>(),
        ttl in any::<u8>(),
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let tags: Vec<VlanTag> = tags.into_iter().map(|(t, v, p)| VlanTag::new(t, v, p)).collect();
        let h = UdpFrameHeaders {
            dst_mac: MacAddr(macs.0),
            src_mac: MacAddr(macs.1),
            vlans: VlanTags::from_slice(&tags).unwrap(),
            src_ip: Ipv4Addr::from(ips.0),
            dst_ip: Ipv4Addr::from(ips.1),
            src_port: ports.0,
            dst_port: ports.1,
            ttl,
        };
        let mut buf = vec![0u8; 1600];
        let n = build_udp_frame(&mut buf, &h, |p| { p[..payload.len()].copy_from_slice(&payload); Ok(payload.len()) }).unwrap();
        match demux(&buf[..n]).unwrap() {
            Demuxed::Udp { l2, l3, src_port, dst_port, payload: got } => {
                prop_assert_eq!((l2.dst, l2.src, l2.vlans), (h.dst_mac, h.src_mac, h.vlans));
                prop_assert_eq!((l3.src, l3.dst, l3.ttl), (h.src_ip, h.dst_ip, ttl));
                prop_assert_eq!((src_port, dst_port), ports);
                prop_assert_eq!(got, &payload[..]);
            }
            other => prop_assert!(false, "demuxed as {:?}", other),
        }
    }
}

/// A DHCP payload: a BOOTREQUEST header of zeroes, the magic cookie, `options`, END.
fn payload_with(options: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[..3].copy_from_slice(&[1, 1, 6]);
    p.extend_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(options);
    p.push(opt::END);
    p
}

/// The fixed-size accessors read an option whole or split (RFC 3396: its instances
/// concatenated), and one of the wrong length as absent, either way.
#[test]
fn fixed_size_options_read_the_same_whole_or_split_and_refuse_a_wrong_length() {
    let whole = payload_with(&[
        53, 1, 3, 50, 4, 10, 1, 2, 3, 51, 4, 0, 0, 2, 88, 57, 2, 5, 220,
    ]);
    let split = payload_with(&[
        53, 1, 3, 50, 2, 10, 1, 51, 1, 0, 57, 1, 5, 50, 2, 2, 3, 51, 3, 0, 2, 88, 57, 1, 220,
    ]);
    for bytes in [&whole, &split] {
        let m = DhcpMessage::parse(bytes).unwrap();
        assert_eq!(
            m.message_type(),
            Some(peregrine_wire::dhcp::MessageType::Request)
        );
        assert_eq!(m.requested_ip(), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(m.lease_time(), Some(600));
        assert_eq!(m.max_message_size(), Some(1500));
    }
    let wrong = payload_with(&[
        53, 2, 3, 3, 50, 3, 10, 1, 2, 54, 2, 1, 2, 50, 2, 3, 4, 51, 5, 0, 0, 0, 0, 1,
    ]);
    let m = DhcpMessage::parse(&wrong).unwrap();
    // Option 50 split as 3 + 2 bytes is 5: not an address.
    assert_eq!(
        (
            m.message_type(),
            m.requested_ip(),
            m.server_id(),
            m.lease_time()
        ),
        (None, None, None, None)
    );
}
