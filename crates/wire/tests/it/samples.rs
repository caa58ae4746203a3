//! Frames shared by the tests and the benchmarks.

use std::net::Ipv4Addr;

use peregrine_wire::dhcp::{BootpHeader, DhcpMessage, DhcpWriter, MessageType, opt};
use peregrine_wire::frame::{self, MAX_HEADROOM, UdpFrameHeaders};
use peregrine_wire::{MacAddr, Result};

/// A relayed DISCOVER with option 82 (circuit-id, remote-id, link-selection, relay-id, relay
/// port), as `scripts/golden-frames.py` writes it.
pub(crate) const RELAYED_DISCOVER: &[u8] = include_bytes!("../golden/relayed_discover.bin");
/// A QinQ-tagged broadcast DISCOVER with options overloaded into `file` and `sname`.
pub(crate) const QINQ_OVERLOADED_DISCOVER: &[u8] =
    include_bytes!("../golden/qinq_overloaded_discover.bin");
/// An 802.1Q-tagged unicast renewing REQUEST with IPv4 options and no UDP checksum.
pub(crate) const VLAN_RENEW_REQUEST: &[u8] = include_bytes!("../golden/vlan_renew_request.bin");
/// A broadcast DISCOVER asking for rapid commit (RFC 4039), a 600 s lease and, in its parameter
/// request list, IPv6-only preferred (RFC 8925).
pub(crate) const RAPID_COMMIT_DISCOVER: &[u8] =
    include_bytes!("../golden/rapid_commit_discover.bin");
/// The ACK answering it: option 80, the lease, and option 108 of 1800 s.
pub(crate) const RAPID_COMMIT_ACK: &[u8] = include_bytes!("../golden/rapid_commit_ack.bin");
/// A leasequery answer (DHCPLEASEACTIVE) with options 51, 91, and the bulk answer's 152, 153
/// and 156.
pub(crate) const LEASEACTIVE: &[u8] = include_bytes!("../golden/leaseactive.bin");
/// The end of a bulk leasequery (DHCPLEASEQUERYDONE) with status-code 3 and its text.
pub(crate) const LEASEQUERY_DONE: &[u8] = include_bytes!("../golden/leasequery_done.bin");
/// An ARP who-has for the server's address.
pub(crate) const ARP_REQUEST: &[u8] = include_bytes!("../golden/arp_request.bin");
/// An IPv4 fragment (more-fragments set).
pub(crate) const FRAGMENT: &[u8] = include_bytes!("../golden/fragment.bin");

pub(crate) const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
pub(crate) const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub(crate) const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 77);

/// Writes the OFFER a server would send to `request` (received from `relay_mac`) into `buf`:
/// DHCP message at [`MAX_HEADROOM`], then headers in front. Returns the frame's range.
pub(crate) fn write_offer(
    buf: &mut [u8],
    request: &DhcpMessage<'_>,
    relay_mac: MacAddr,
    vlans: peregrine_wire::ethernet::VlanTags,
) -> Result<core::ops::Range<usize>> {
    let max = request.max_message_size().map_or(548, usize::from).max(548);
    let mut w = DhcpWriter::new(&mut buf[MAX_HEADROOM..], max)?;
    let mut header = BootpHeader::reply_to(request.packet());
    header.yiaddr = OFFERED;
    w.header(&header);
    w.message_type(MessageType::Offer)?;
    w.option_ipv4(opt::SERVER_ID, SERVER_IP)?;
    w.option_u32(opt::LEASE_TIME, 3600)?;
    if let Some(prl) = request.parameter_request_list() {
        for code in prl.bytes() {
            match code {
                opt::SUBNET_MASK => w.option_ipv4(code, Ipv4Addr::new(255, 255, 0, 0))?,
                opt::ROUTER => w.option_ipv4(code, Ipv4Addr::new(10, 201, 0, 1))?,
                opt::DNS_SERVERS => w.option(code, &[10, 0, 0, 53, 10, 0, 0, 54])?,
                opt::DOMAIN_NAME => w.option(code, b"isp.example")?,
                opt::RENEWAL_TIME => w.option_u32(code, 1800)?,
                opt::REBINDING_TIME => w.option_u32(code, 3150)?,
                _ => {}
            }
        }
    }
    if let Some(rai) = request.relay_agent_info_raw().and_then(|v| v.as_slice()) {
        w.option(opt::RELAY_AGENT_INFO, rai)?;
    }
    let len = w.finish()?;
    let giaddr = request.packet().giaddr();
    let h = UdpFrameHeaders {
        dst_mac: relay_mac,
        src_mac: SERVER_MAC,
        vlans,
        src_ip: SERVER_IP,
        dst_ip: giaddr,
        src_port: 67,
        dst_port: 67,
        ttl: 64,
    };
    let start = frame::write_headers(buf, MAX_HEADROOM, len, &h)?;
    Ok(start..MAX_HEADROOM + len)
}
