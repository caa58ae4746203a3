//! Whole frames: demultiplexing a received frame down to its UDP payload, and writing the
//! Ethernet/VLAN, IPv4 and UDP headers of a reply in front of a payload already in place.

use core::net::Ipv4Addr;

use crate::arp::ArpPacket;
use crate::ethernet::{self, EthernetFrame, VlanTags, ethertype};
use crate::ipv4::{self, Ipv4Header, Ipv4Packet, protocol};
use crate::udp::{self, UdpPacket};
use crate::{Error, MacAddr, Result};

/// The most bytes that Ethernet (two VLAN tags), IPv4 and UDP headers take in front of a
/// payload. A reply written at this offset can take any tagging without moving.
pub const MAX_HEADROOM: usize = ethernet::HEADER_LEN
    + ethernet::MAX_TAGS * ethernet::TAG_LEN
    + ipv4::MIN_HEADER_LEN
    + udp::HEADER_LEN;

/// Link-layer facts of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// VLAN tags, outermost first.
    pub vlans: VlanTags,
}

/// IPv4 facts of a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L3 {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// Protocol number.
    pub protocol: u8,
}

/// What a received frame carries, as far as a DHCP server cares.
#[derive(Debug, Clone)]
pub enum Demuxed<'a> {
    /// An Ethernet/IPv4 ARP packet.
    Arp {
        /// Link layer.
        l2: L2,
        /// The ARP packet.
        arp: ArpPacket<&'a [u8]>,
    },
    /// A UDP datagram whose IPv4 and UDP checksums verified.
    Udp {
        /// Link layer.
        l2: L2,
        /// Network layer.
        l3: L3,
        /// UDP source port.
        src_port: u16,
        /// UDP destination port.
        dst_port: u16,
        /// The UDP payload.
        payload: &'a [u8],
    },
    /// An ICMP message (header checksum verified; the ICMP checksum is the responder's business).
    Icmp {
        /// Link layer.
        l2: L2,
        /// Network layer.
        l3: L3,
        /// The ICMP message.
        message: &'a [u8],
    },
    /// Another IP protocol.
    OtherIp {
        /// Link layer.
        l2: L2,
        /// Network layer.
        l3: L3,
    },
    /// Another EtherType.
    Other {
        /// Link layer.
        l2: L2,
        /// The EtherType after any tags.
        ethertype: u16,
    },
}

/// Parses a received Ethernet frame down to the layer a DHCP server acts on.
///
/// Refuses truncated headers, more than two VLAN tags, bad IPv4 header or UDP checksums
/// ([`Error::Checksum`]) and IPv4 fragments ([`Error::Fragment`]). Never panics.
pub fn demux(frame: &[u8]) -> Result<Demuxed<'_>> {
    demux_with(frame, true)
}

/// [`demux`], verifying the UDP checksum only if `verify_udp_checksum`: a frame received from
/// this host or a virtual link with checksum offload carries a checksum still to be computed
/// (the receiving backend says so), and must not be dropped for it.
pub fn demux_with(frame: &[u8], verify_udp_checksum: bool) -> Result<Demuxed<'_>> {
    let eth = EthernetFrame::new_checked(frame)?;
    let l2 = L2 {
        dst: eth.dst_addr(),
        src: eth.src_addr(),
        vlans: eth.vlan_tags(),
    };
    let payload = &frame[eth.header_len()..];
    match eth.ethertype() {
        ethertype::ARP => Ok(Demuxed::Arp {
            l2,
            arp: ArpPacket::new_checked(payload)?,
        }),
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(payload)?;
            if !ip.verify_checksum() {
                return Err(Error::Checksum);
            }
            if ip.is_fragment() {
                return Err(Error::Fragment);
            }
            let l3 = L3 {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
                ttl: ip.ttl(),
                protocol: ip.protocol(),
            };
            let body = &payload[ip.header_len()..usize::from(ip.total_len())];
            match l3.protocol {
                protocol::UDP => {
                    let u = UdpPacket::new_checked(body)?;
                    if verify_udp_checksum && !u.verify_checksum(l3.src, l3.dst) {
                        return Err(Error::Checksum);
                    }
                    Ok(Demuxed::Udp {
                        l2,
                        l3,
                        src_port: u.src_port(),
                        dst_port: u.dst_port(),
                        payload: &body[udp::HEADER_LEN..usize::from(u.len())],
                    })
                }
                protocol::ICMP => Ok(Demuxed::Icmp {
                    l2,
                    l3,
                    message: body,
                }),
                _ => Ok(Demuxed::OtherIp { l2, l3 }),
            }
        }
        other => Ok(Demuxed::Other {
            l2,
            ethertype: other,
        }),
    }
}

/// Addressing of a reply frame: every header field a UDP reply needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameHeaders {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// VLAN tags to send with, outermost first (normally those the request came with).
    pub vlans: VlanTags,
    /// Source address.
    pub src_ip: Ipv4Addr,
    /// Destination address.
    pub dst_ip: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Time to live.
    pub ttl: u8,
}

impl UdpFrameHeaders {
    /// Bytes the headers take in front of the payload.
    pub const fn len(&self) -> usize {
        ethernet::HEADER_LEN + self.vlans.wire_len() + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN
    }

    /// Always false: there is always at least an Ethernet header.
    pub const fn is_empty(&self) -> bool {
        false
    }
}

/// Writes an Ethernet header with `vlans` and `ethertype` at the start of `buf`; returns its length.
pub fn write_ethernet(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    vlans: &VlanTags,
    ethertype: u16,
) -> Result<usize> {
    let len = ethernet::HEADER_LEN + vlans.wire_len();
    let b = buf.get_mut(..len).ok_or(Error::NoSpace)?;
    b[0..6].copy_from_slice(&dst.0);
    b[6..12].copy_from_slice(&src.0);
    let mut at = 12;
    for tag in vlans.as_slice() {
        b[at..at + 2].copy_from_slice(&tag.tpid.to_be_bytes());
        b[at + 2..at + 4].copy_from_slice(&tag.tci.to_be_bytes());
        at += ethernet::TAG_LEN;
    }
    b[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
    Ok(len)
}

/// Writes Ethernet, IPv4 and UDP headers immediately before `buf[payload_at..payload_at + payload_len]`
/// and returns the offset where the frame starts; the frame is `buf[start..payload_at + payload_len]`.
///
/// Fails with [`Error::NoSpace`] if the headroom is smaller than [`UdpFrameHeaders::len`] or
/// the payload runs past the buffer.
pub fn write_headers(
    buf: &mut [u8],
    payload_at: usize,
    payload_len: usize,
    h: &UdpFrameHeaders,
) -> Result<usize> {
    write_headers_with(buf, payload_at, payload_len, h, udp::write_header)
}

/// As [`write_headers`], with UDP checksum 0 ("none"): a datagram a UDP socket received (the
/// kernel verified its checksum) presented as a frame, its payload not read again.
pub fn write_headers_unchecked(
    buf: &mut [u8],
    payload_at: usize,
    payload_len: usize,
    h: &UdpFrameHeaders,
) -> Result<usize> {
    write_headers_with(buf, payload_at, payload_len, h, udp::write_header_unchecked)
}

type UdpHeaderWriter = fn(&mut [u8], (Ipv4Addr, u16), (Ipv4Addr, u16), usize) -> Result<usize>;

fn write_headers_with(
    buf: &mut [u8],
    payload_at: usize,
    payload_len: usize,
    h: &UdpFrameHeaders,
    udp_header: UdpHeaderWriter,
) -> Result<usize> {
    let start = payload_at.checked_sub(h.len()).ok_or(Error::NoSpace)?;
    let end = payload_at.checked_add(payload_len).ok_or(Error::NoSpace)?;
    let frame = buf.get_mut(start..end).ok_or(Error::NoSpace)?;
    let l2 = write_ethernet(frame, h.dst_mac, h.src_mac, &h.vlans, ethertype::IPV4)?;
    let ip = Ipv4Header {
        src: h.src_ip,
        dst: h.dst_ip,
        protocol: protocol::UDP,
        ttl: h.ttl,
    };
    let l3 = ip.write(&mut frame[l2..], udp::HEADER_LEN + payload_len)?;
    udp_header(
        &mut frame[l2 + l3..],
        (h.src_ip, h.src_port),
        (h.dst_ip, h.dst_port),
        payload_len,
    )?;
    Ok(start)
}

/// Builds a whole UDP frame at the start of `buf`: `payload` writes the payload into the slice
/// it is given and returns its length; the headers are then written in front. Returns the
/// frame length.
pub fn build_udp_frame(
    buf: &mut [u8],
    h: &UdpFrameHeaders,
    payload: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    let at = h.len();
    let n = payload(buf.get_mut(at..).ok_or(Error::NoSpace)?)?;
    write_headers(buf, at, n, h)?;
    Ok(at + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::VlanTag;

    #[test]
    fn unchecked_headers_carry_no_udp_checksum_and_demux_alike() {
        let h = headers(VlanTags::NONE);
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        for buf in [&mut a, &mut b] {
            buf[h.len()..h.len() + 5].copy_from_slice(b"hello");
        }
        assert_eq!(write_headers(&mut a, h.len(), 5, &h), Ok(0));
        assert_eq!(write_headers_unchecked(&mut b, h.len(), 5, &h), Ok(0));
        let at = h.len() - udp::HEADER_LEN + 6;
        assert_ne!(a[at..at + 2], [0, 0]);
        assert_eq!(b[at..at + 2], [0, 0], "checksum 0: none");
        assert_eq!(a[..at], b[..at]);
        let payload = |f: &[u8]| match demux(f) {
            Ok(Demuxed::Udp { payload, .. }) => payload.to_vec(),
            other => panic!("{other:?}"),
        };
        assert_eq!(payload(&a[..h.len() + 5]), payload(&b[..h.len() + 5]));
    }

    fn headers(vlans: VlanTags) -> UdpFrameHeaders {
        UdpFrameHeaders {
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            vlans,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 67,
            dst_port: 68,
            ttl: 64,
        }
    }

    #[test]
    fn build_then_demux_with_every_tagging() {
        let taggings = [
            VlanTags::NONE,
            VlanTags::single(VlanTag::new(ethertype::VLAN, 100, 0)),
            VlanTags::double(
                VlanTag::new(ethertype::QINQ, 200, 3),
                VlanTag::new(ethertype::VLAN, 7, 0),
            ),
        ];
        for vlans in taggings {
            let h = headers(vlans);
            let mut buf = [0u8; 128];
            let n = build_udp_frame(&mut buf, &h, |p| {
                p[..5].copy_from_slice(b"hello");
                Ok(5)
            })
            .unwrap();
            assert_eq!(n, h.len() + 5);
            match demux(&buf[..n]).unwrap() {
                Demuxed::Udp {
                    l2,
                    l3,
                    src_port,
                    dst_port,
                    payload,
                } => {
                    assert_eq!(l2.vlans, vlans);
                    assert_eq!((l2.src, l2.dst), (h.src_mac, h.dst_mac));
                    assert_eq!((l3.src, l3.dst, l3.ttl), (h.src_ip, h.dst_ip, 64));
                    assert_eq!((src_port, dst_port, payload), (67, 68, &b"hello"[..]));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn headroom_is_checked() {
        let h = headers(VlanTags::NONE);
        let mut buf = [0u8; 100];
        assert_eq!(
            write_headers(&mut buf, h.len() - 1, 4, &h),
            Err(Error::NoSpace)
        );
        assert_eq!(
            write_headers(&mut buf, h.len(), 100, &h),
            Err(Error::NoSpace)
        );
        assert_eq!(
            write_headers(&mut buf, MAX_HEADROOM, 4, &h),
            Ok(MAX_HEADROOM - h.len())
        );
    }

    #[test]
    fn corrupt_checksums_and_fragments_are_refused() {
        let h = headers(VlanTags::NONE);
        let mut buf = [0u8; 64];
        let n = build_udp_frame(&mut buf, &h, |p| {
            p[..4].copy_from_slice(b"data");
            Ok(4)
        })
        .unwrap();
        let mut bad = buf;
        bad[n - 1] ^= 1;
        assert_eq!(demux(&bad[..n]).unwrap_err(), Error::Checksum);
        let mut bad = buf;
        bad[14 + 8] ^= 1; // TTL: header checksum no longer verifies
        assert_eq!(demux(&bad[..n]).unwrap_err(), Error::Checksum);
        let mut frag = buf;
        frag[14 + 6] = 0x20; // MF, then fix the header checksum
        frag[14 + 10..14 + 12].fill(0);
        let sum = crate::checksum::checksum(&frag[14..34]);
        frag[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(demux(&frag[..n]).unwrap_err(), Error::Fragment);
    }
}
