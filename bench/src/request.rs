//! The client messages the generator sends, as a relay forwards them: giaddr set, hops 1,
//! option 82 appended, in a UDP frame from giaddr:67 to server:67. Written straight into a TX
//! buffer: no allocation.

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::relay::{self, sub};
use peregrine_wire::dhcp::{
    BOOTREQUEST, BootpHeader, DhcpWriter, HTYPE_ETHERNET, MessageType, opt,
};
use peregrine_wire::frame::{UdpFrameHeaders, build_udp_frame};

/// The parameter request list every message carries (mask, router, DNS, domain, lease time,
/// server id, T1, T2), as a typical CPE asks.
pub const PARAMETER_REQUEST_LIST: [u8; 8] = [1, 3, 6, 15, 51, 54, 58, 59];

/// What a message asks for, beyond its xid and client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPREQUEST in SELECTING: options 50 and 54, ciaddr 0.
    Select {
        /// Offered address (option 50).
        requested: Ipv4Addr,
        /// The offering server (option 54).
        server_id: Ipv4Addr,
    },
    /// DHCPREQUEST in RENEWING: ciaddr set, no options 50 and 54 (relayed, as perfdhcp does).
    Renew {
        /// The leased address.
        ciaddr: Ipv4Addr,
    },
    /// DHCPREQUEST in INIT-REBOOT: option 50, no option 54, ciaddr 0.
    Reboot {
        /// The address the client remembers.
        requested: Ipv4Addr,
    },
    /// DHCPRELEASE: ciaddr and option 54.
    Release {
        /// The leased address.
        ciaddr: Ipv4Addr,
        /// The server that leased it.
        server_id: Ipv4Addr,
    },
}

/// One client message.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What it asks.
    pub kind: Kind,
    /// Transaction id.
    pub xid: u32,
    /// Client MAC.
    pub mac: [u8; 6],
    /// The relay's address.
    pub giaddr: Ipv4Addr,
    /// Seconds since the client began (for retransmissions).
    pub secs: u16,
    /// Option 82 sub-option 1, if any.
    pub circuit_id: Option<&'a [u8]>,
    /// Option 82 sub-option 2, if any.
    pub remote_id: Option<&'a [u8]>,
}

/// Writes `req` as a whole frame with `headers` at the start of `buf`; returns the frame length.
pub fn write_frame(
    buf: &mut [u8],
    headers: &UdpFrameHeaders,
    req: &Request<'_>,
) -> peregrine_wire::Result<usize> {
    build_udp_frame(buf, headers, |payload| write_message(payload, req))
}

/// Writes `req` as a DHCP message (the UDP payload) into `buf`; returns its length.
pub fn write_message(buf: &mut [u8], req: &Request<'_>) -> peregrine_wire::Result<usize> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&req.mac);
    let ciaddr = match req.kind {
        Kind::Renew { ciaddr } | Kind::Release { ciaddr, .. } => ciaddr,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let mut w = DhcpWriter::new(buf, 576)?;
    w.header(&BootpHeader {
        op: BOOTREQUEST,
        htype: HTYPE_ETHERNET,
        hlen: 6,
        hops: 1,
        xid: req.xid,
        secs: req.secs,
        flags: 0,
        ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.giaddr,
        chaddr,
    });
    let kind = match req.kind {
        Kind::Discover => MessageType::Discover,
        Kind::Release { .. } => MessageType::Release,
        _ => MessageType::Request,
    };
    w.message_type(kind)?;
    match req.kind {
        Kind::Select {
            requested,
            server_id,
        } => {
            w.option_ipv4(opt::REQUESTED_IP, requested)?;
            w.option_ipv4(opt::SERVER_ID, server_id)?;
        }
        Kind::Reboot { requested } => w.option_ipv4(opt::REQUESTED_IP, requested)?,
        Kind::Release { server_id, .. } => w.option_ipv4(opt::SERVER_ID, server_id)?,
        Kind::Discover | Kind::Renew { .. } => {}
    }
    if !matches!(req.kind, Kind::Release { .. }) {
        w.option(opt::PARAMETER_REQUEST_LIST, &PARAMETER_REQUEST_LIST)?;
    }
    // The relay appends option 82 last (RFC 3046 section 2.1).
    let mut subs: [(u8, &[u8]); 2] = [(0, &[]); 2];
    let mut n = 0;
    for (code, value) in [
        (sub::CIRCUIT_ID, req.circuit_id),
        (sub::REMOTE_ID, req.remote_id),
    ] {
        if let Some(v) = value {
            subs[n] = (code, v);
            n += 1;
        }
    }
    if n > 0 {
        let mut rai = [0u8; 255];
        let len = relay::write_sub_options(&mut rai, &subs[..n])?;
        w.option(opt::RELAY_AGENT_INFO, &rai[..len])?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::MacAddr;
    use peregrine_wire::dhcp::DhcpMessage;
    use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
    use peregrine_wire::frame::{Demuxed, demux};

    fn headers(vlans: VlanTags) -> UdpFrameHeaders {
        UdpFrameHeaders {
            dst_mac: MacAddr([2, 0, 0, 0, 0, 0xaa]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 0xbb]),
            vlans,
            src_ip: Ipv4Addr::new(10, 211, 0, 1),
            dst_ip: Ipv4Addr::new(10, 200, 1, 1),
            src_port: 67,
            dst_port: 67,
            ttl: 64,
        }
    }

    fn parse(frame: &[u8]) -> (peregrine_wire::frame::L2, DhcpMessage<'_>) {
        match demux(frame).unwrap() {
            Demuxed::Udp {
                l2,
                l3,
                src_port,
                dst_port,
                payload,
            } => {
                assert_eq!(
                    (l3.src, l3.dst),
                    (Ipv4Addr::new(10, 211, 0, 1), Ipv4Addr::new(10, 200, 1, 1))
                );
                assert_eq!((src_port, dst_port), (67, 67));
                (l2, DhcpMessage::parse(payload).unwrap())
            }
            other => panic!("not UDP: {other:?}"),
        }
    }

    #[test]
    fn relayed_discover_parses_with_option_82_and_tags() {
        let qinq = VlanTags::double(
            VlanTag::new(ethertype::QINQ, 200, 0),
            VlanTag::new(ethertype::VLAN, 17, 0),
        );
        let req = Request {
            kind: Kind::Discover,
            xid: 0xdead_beef,
            mac: [2, 0, 0, 0, 0, 9],
            giaddr: Ipv4Addr::new(10, 211, 0, 1),
            secs: 0,
            circuit_id: Some(b"olt1/port4"),
            remote_id: Some(b"sub-9"),
        };
        let mut buf = [0u8; 1522];
        let n = write_frame(&mut buf, &headers(qinq), &req).unwrap();
        let (l2, m) = parse(&buf[..n]);
        assert_eq!(l2.vlans, qinq);
        let p = m.packet();
        assert_eq!((p.op(), p.hops(), p.xid()), (BOOTREQUEST, 1, 0xdead_beef));
        assert_eq!(p.giaddr(), Ipv4Addr::new(10, 211, 0, 1));
        assert_eq!(p.client_mac(), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        let mut scratch = [0u8; 256];
        let rai = m.relay_agent_info(&mut scratch).unwrap().unwrap();
        assert_eq!(rai.circuit_id(), Some(&b"olt1/port4"[..]));
        assert_eq!(rai.remote_id(), Some(&b"sub-9"[..]));
        assert_eq!(
            m.parameter_request_list().unwrap().as_slice(),
            Some(&PARAMETER_REQUEST_LIST[..])
        );
    }

    #[test]
    fn requests_carry_the_fields_of_their_state() {
        let a = Ipv4Addr::new(10, 211, 0, 77);
        let s = Ipv4Addr::new(10, 200, 1, 1);
        let cases = [
            (
                Kind::Select {
                    requested: a,
                    server_id: s,
                },
                Some(a),
                Some(s),
                Ipv4Addr::UNSPECIFIED,
                MessageType::Request,
            ),
            (
                Kind::Renew { ciaddr: a },
                None,
                None,
                a,
                MessageType::Request,
            ),
            (
                Kind::Reboot { requested: a },
                Some(a),
                None,
                Ipv4Addr::UNSPECIFIED,
                MessageType::Request,
            ),
            (
                Kind::Release {
                    ciaddr: a,
                    server_id: s,
                },
                None,
                Some(s),
                a,
                MessageType::Release,
            ),
        ];
        for (kind, requested, server_id, ciaddr, t) in cases {
            let req = Request {
                kind,
                xid: 7,
                mac: [2, 0, 0, 0, 0, 7],
                giaddr: Ipv4Addr::new(10, 211, 0, 1),
                secs: 4,
                circuit_id: None,
                remote_id: None,
            };
            let mut buf = [0u8; 1522];
            let n = write_frame(&mut buf, &headers(VlanTags::NONE), &req).unwrap();
            let (_, m) = parse(&buf[..n]);
            assert_eq!(m.message_type(), Some(t), "{kind:?}");
            assert_eq!(m.requested_ip(), requested, "{kind:?}");
            assert_eq!(m.server_id(), server_id, "{kind:?}");
            assert_eq!(m.packet().ciaddr(), ciaddr, "{kind:?}");
            assert_eq!(m.packet().secs(), 4);
            assert!(m.relay_agent_info_raw().is_none());
        }
    }
}
