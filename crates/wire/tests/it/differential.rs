//! Differential tests against dhcproto, an independent DHCP implementation (dev-dependency only).
//!
//! dhcproto's owned `Message` keeps options in a map and its borrowed reader concatenates only
//! adjacent instances and ignores option 52, so messages here keep to what both understand and
//! are compared field by field, not byte by byte.

use std::net::Ipv4Addr;

use dhcproto::Encodable;
use dhcproto::v4::{self, relay};
use peregrine_wire::dhcp::{DhcpMessage, DhcpWriter, MessageType, opt};
use proptest::prelude::*;

use crate::roundtrip::{header, options};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Our writer's output, read by dhcproto.
    #[test]
    fn dhcproto_reads_what_we_write(h in header(), opts in options()) {
        let mut buf = vec![0u8; 16 * 1024];
        let mut w = DhcpWriter::new(&mut buf, 16 * 1024).unwrap();
        w.header(&h);
        for (code, data) in &opts {
            w.option(*code, data).unwrap();
        }
        let len = w.finish().unwrap();

        // dhcproto's owned decoder panics on some option contents (it slices typed options
        // without checking lengths), so the borrowed reader is the oracle here.
        let theirs_msg = v4::borrowed::Message::new(&buf[..len]).unwrap();
        prop_assert_eq!(u8::from(theirs_msg.opcode()), h.op);
        prop_assert_eq!(u8::from(theirs_msg.htype()), h.htype);
        prop_assert_eq!((theirs_msg.hlen(), theirs_msg.hops(), theirs_msg.xid(), theirs_msg.secs()), (h.hlen, h.hops, h.xid, h.secs));
        prop_assert_eq!(u16::from(theirs_msg.flags()), h.flags);
        prop_assert_eq!((theirs_msg.ciaddr(), theirs_msg.yiaddr(), theirs_msg.siaddr(), theirs_msg.giaddr()), (h.ciaddr, h.yiaddr, h.siaddr, h.giaddr));

        let theirs: Vec<(u8, Vec<u8>)> =
            theirs_msg.opts().map(|o| (u8::from(o.code()), o.data().to_vec())).collect();
        prop_assert_eq!(theirs, opts);
    }

    /// dhcproto's encoder, read by us.
    #[test]
    fn we_read_what_dhcproto_writes(
        h in header(),
        mtype in prop_oneof![1u8..=8, 10u8..=15],
        requested in prop::option::of(any::<[u8; 4]>()),
        prl in prop::option::of(prop::collection::vec(1u8..=254, 1..40)),
        client_id in prop::option::of(prop::collection::vec(any::<u8>(), 2..64)),
        max_size in prop::option::of(576u16..=9000),
        vendor in prop::option::of(prop::collection::vec(any::<u8>(), 1..64)),
        circuit in prop::option::of(prop::collection::vec(any::<u8>(), 1..64)),
        remote in prop::option::of(prop::collection::vec(any::<u8>(), 1..64)),
        link in prop::option::of(any::<[u8; 4]>()),
        (lease, rapid) in (prop::option::of(any::<u32>()), any::<bool>()),
    ) {
        let mut m = v4::Message::new_with_id(h.xid, h.ciaddr, h.yiaddr, h.siaddr, h.giaddr, &h.chaddr[..usize::from(h.hlen)]);
        m.set_opcode(v4::Opcode::from(h.op)).set_hops(h.hops).set_secs(h.secs).set_flags(v4::Flags::from(h.flags));
        let mt = v4::MessageType::from(mtype);
        m.opts_mut().insert(v4::DhcpOption::MessageType(mt));
        if let Some(a) = requested { m.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(Ipv4Addr::from(a))); }
        if let Some(l) = &prl {
            m.opts_mut().insert(v4::DhcpOption::ParameterRequestList(l.iter().map(|c| v4::OptionCode::from(*c)).collect()));
        }
        if let Some(c) = &client_id { m.opts_mut().insert(v4::DhcpOption::ClientIdentifier(c.clone())); }
        if let Some(s) = max_size { m.opts_mut().insert(v4::DhcpOption::MaxMessageSize(s)); }
        if let Some(v) = &vendor { m.opts_mut().insert(v4::DhcpOption::ClassIdentifier(v.clone())); }
        if let Some(t) = lease { m.opts_mut().insert(v4::DhcpOption::AddressLeaseTime(t)); }
        if rapid { m.opts_mut().insert(v4::DhcpOption::RapidCommit); }
        let mut rai = relay::RelayAgentInformation::default();
        if let Some(c) = &circuit { rai.insert(relay::RelayInfo::AgentCircuitId(c.clone())); }
        if let Some(r) = &remote { rai.insert(relay::RelayInfo::AgentRemoteId(r.clone())); }
        if let Some(l) = link { rai.insert(relay::RelayInfo::LinkSelection(Ipv4Addr::from(l))); }
        let has_rai = circuit.is_some() || remote.is_some() || link.is_some();
        if has_rai { m.opts_mut().insert(v4::DhcpOption::RelayAgentInformation(rai)); }
        let bytes = m.to_vec().unwrap();

        let ours = DhcpMessage::parse(&bytes).unwrap();
        let p = ours.packet();
        prop_assert_eq!((p.op(), p.hops(), p.xid(), p.secs(), p.flags()), (h.op, h.hops, h.xid, h.secs, h.flags));
        prop_assert_eq!((p.ciaddr(), p.yiaddr(), p.siaddr(), p.giaddr()), (h.ciaddr, h.yiaddr, h.siaddr, h.giaddr));
        prop_assert_eq!(p.chaddr(), &h.chaddr[..usize::from(h.hlen)]);
        prop_assert_eq!(ours.message_type(), MessageType::from_u8(mtype));
        prop_assert_eq!(ours.requested_ip(), requested.map(Ipv4Addr::from));
        prop_assert_eq!(ours.parameter_request_list().map(|v| v.bytes().collect::<Vec<_>>()), prl);
        prop_assert_eq!(ours.client_id().map(|v| v.bytes().collect::<Vec<_>>()), client_id);
        prop_assert_eq!(ours.max_message_size(), max_size);
        prop_assert_eq!(ours.vendor_class().map(|v| v.bytes().collect::<Vec<_>>()), vendor);
        prop_assert_eq!(ours.lease_time(), lease);
        prop_assert_eq!(ours.get(opt::RAPID_COMMIT).map(|v| v.len()), rapid.then_some(0));
        let mut scratch = [0u8; 1024];
        let info = ours.relay_agent_info(&mut scratch).unwrap();
        prop_assert_eq!(info.is_some(), has_rai);
        if let Some(info) = info {
            prop_assert_eq!(info.circuit_id(), circuit.as_deref());
            prop_assert_eq!(info.remote_id(), remote.as_deref());
            prop_assert_eq!(info.link_selection(), link.map(Ipv4Addr::from));
        }
    }
}
