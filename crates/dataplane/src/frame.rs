//! What happens to one received frame.

use std::net::Ipv4Addr;

use peregrine_engine::{
    BindingEvent, DropReason, Engine, InterfaceId, NextHop, RxMeta, Time, Verdict,
};
use peregrine_io::RxFrame;
use peregrine_stats::{WorkerDrop, WorkerStats};
use peregrine_wire::arp;
use peregrine_wire::checksum;
use peregrine_wire::dhcp::{DhcpMessage, MessageType, SERVER_PORT};
use peregrine_wire::ethernet::{VlanTags, ethertype};
use peregrine_wire::frame::{
    Demuxed, L2, L3, UdpFrameHeaders, demux_with, write_ethernet, write_headers,
};
use peregrine_wire::ipv4::{Ipv4Header, protocol};
use peregrine_wire::{MacAddr, ethernet, ipv4, udp};

use crate::admission::Admission;

/// The interface a queue serves, as the dataplane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// OS interface index (matches [`peregrine_io::RxFrame::ifindex`]).
    pub ifindex: u32,
    /// Our MAC address on it: the source of every frame we send.
    pub mac: MacAddr,
    /// Our IPv4 address on it: answered for ARP and ICMP, and the default server identifier.
    pub addr: Ipv4Addr,
    /// The engine's id for it (directly attached scopes), if the configuration names it.
    pub engine_id: Option<InterfaceId>,
    /// Whether option 82 may arrive without giaddr here (a trusted relay in front).
    pub trusted: bool,
}

/// What one received frame comes to: the one outcome type from frame processing to the TX
/// queue. Nothing is counted as sent yet: a message is counted once, when it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to send.
    Nothing,
    /// Send the frame written at the start of the TX buffer now.
    Send(Reply),
    /// A binding changed: `event` goes through the commit gate, and its reply, if any (RELEASE
    /// and DECLINE have none), written at the start of the TX buffer, leaves once the gate
    /// confirms the change.
    Commit {
        /// The change.
        event: BindingEvent,
        /// The reply that waits for it.
        reply: Option<Reply>,
    },
    /// An OFFER (written at the start of the TX buffer) that may leave only if nothing answers
    /// `probe` within `wait_ms` (a ping check).
    Probe {
        /// The OFFER.
        reply: Reply,
        /// What to probe, and how.
        probe: ProbeSpec,
        /// How long to wait for an answer, milliseconds.
        wait_ms: u32,
    },
    /// An answer to a probe of ours: something uses this address.
    Answered(Ipv4Addr),
}

/// A probe of an address before it is offered: ICMP echo through the relay that asked, or an
/// ARP request on a directly attached link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSpec {
    /// The address to probe.
    pub address: Ipv4Addr,
    /// Our address, the probe's source.
    pub src_ip: Ipv4Addr,
    /// `Some(relay's MAC)`: an ICMP echo request through the relay; `None`: an ARP request,
    /// broadcast on the link.
    pub via_relay: Option<MacAddr>,
    /// The request's VLAN tags, which the probe carries too.
    pub vlans: VlanTags,
}

/// The ICMP identifier of our probes' echo requests.
const PROBE_IDENT: u16 = 0x5047;

/// Writes the frame of `probe` at the start of `tx`; returns its length.
pub(crate) fn write_probe(
    iface: &Interface,
    probe: &ProbeSpec,
    tx: &mut [u8],
) -> Result<usize, ()> {
    let Some(relay) = probe.via_relay else {
        let n = write_ethernet(
            tx,
            MacAddr::BROADCAST,
            iface.mac,
            &probe.vlans,
            ethertype::ARP,
        )
        .map_err(|_| ())?;
        let m = arp::write(
            tx.get_mut(n..).ok_or(())?,
            arp::op::REQUEST,
            (iface.mac, probe.src_ip),
            (MacAddr([0; 6]), probe.address),
        )
        .map_err(|_| ())?;
        return Ok(pad(tx, n + m, &probe.vlans));
    };
    let n = write_ethernet(tx, relay, iface.mac, &probe.vlans, ethertype::IPV4).map_err(|_| ())?;
    let ip = Ipv4Header {
        src: probe.src_ip,
        dst: probe.address,
        protocol: protocol::ICMP,
        ttl: 64,
    };
    let h = ip.write(tx.get_mut(n..).ok_or(())?, 8).map_err(|_| ())?;
    let icmp = tx.get_mut(n + h..n + h + 8).ok_or(())?;
    icmp[0] = ICMP_ECHO_REQUEST;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4..6].copy_from_slice(&PROBE_IDENT.to_be_bytes());
    // The address's low half as the sequence number: replies are matched by source address.
    icmp[6..8].copy_from_slice(&probe.address.octets()[2..4]);
    let sum = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(pad(tx, n + h + 8, &probe.vlans))
}

/// A reply frame written at the start of the TX buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Frame length in bytes.
    pub len: usize,
    /// The DHCP message type, for a DHCP reply (`None`: ARP or ICMP).
    pub kind: Option<MessageType>,
}

/// Handles one received frame: ARP and ICMP echo for `iface.addr`, DHCP to the engine, drops
/// counted in `stats`, DHCP requests past `admission`'s limits dropped before the engine. A
/// reply is written at the start of `tx` (at least [`peregrine_io::FRAME_CAPACITY`] bytes),
/// with the request's VLAN tags.
pub fn process(
    engine: &Engine,
    iface: &Interface,
    now: Time,
    frame: &RxFrame<'_>,
    tx: &mut [u8],
    stats: &WorkerStats,
    admission: &mut Admission,
) -> Outcome {
    let d = match demux_with(frame.data, !frame.checksum_pending) {
        Ok(d) => d,
        Err(e) => {
            stats.count_drop(e);
            return Outcome::Nothing;
        }
    };
    let out = match d {
        Demuxed::Udp {
            l2,
            l3,
            src_port,
            dst_port: SERVER_PORT,
            payload,
        } if is_for_us(iface, &l3) => {
            return dhcp(
                engine,
                iface,
                now,
                (l2, l3, src_port),
                payload,
                tx,
                (stats, admission),
            )
            .unwrap_or_else(|()| {
                stats.count_drop(WorkerDrop::TxError);
                Outcome::Nothing
            });
        }
        Demuxed::Arp { l2, arp }
            if arp.operation() == arp::op::REQUEST && arp.target_ip() == iface.addr =>
        {
            arp_reply(iface, &l2, (arp.sender_mac(), arp.sender_ip()), tx)
                .inspect(|_| stats.arp_replies.inc())
        }
        Demuxed::Icmp { l2, l3, message }
            if l3.dst == iface.addr && message.first() == Some(&ICMP_ECHO_REQUEST) =>
        {
            echo_reply(iface, &l2, &l3, message, tx).inspect(|_| stats.icmp_replies.inc())
        }
        // Answers to our probes: whoever answers uses that address.
        Demuxed::Icmp { l3, message, .. }
            if l3.dst == iface.addr
                && message.first() == Some(&ICMP_ECHO_REPLY)
                && message.get(4..6) == Some(&PROBE_IDENT.to_be_bytes()[..]) =>
        {
            return Outcome::Answered(l3.src);
        }
        Demuxed::Arp { arp, .. }
            if arp.operation() == arp::op::REPLY
                && arp.target_ip() == iface.addr
                && !arp.sender_ip().is_unspecified() =>
        {
            return Outcome::Answered(arp.sender_ip());
        }
        _ => {
            stats.count_drop(WorkerDrop::NotForUs);
            return Outcome::Nothing;
        }
    };
    if let Ok(len) = out {
        Outcome::Send(Reply { len, kind: None })
    } else {
        stats.count_drop(WorkerDrop::TxError);
        Outcome::Nothing
    }
}

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;

fn is_for_us(iface: &Interface, l3: &L3) -> bool {
    l3.dst == iface.addr || l3.dst == Ipv4Addr::BROADCAST
}

fn dhcp(
    engine: &Engine,
    iface: &Interface,
    now: Time,
    (l2, l3, src_port): (L2, L3, u16),
    payload: &[u8],
    tx: &mut [u8],
    (stats, admission): (&WorkerStats, &mut Admission),
) -> Result<Outcome, ()> {
    let Ok(msg) = DhcpMessage::parse(payload) else {
        stats.message_in(None);
        stats.count_drop(DropReason::Malformed);
        return Ok(Outcome::Nothing);
    };
    if let Err(reason) = admission.admit(&msg) {
        stats.count_drop(reason);
        return Ok(Outcome::Nothing);
    }
    let meta = RxMeta {
        interface: iface.engine_id,
        vlans: l2.vlans,
        src_mac: l2.src,
        src_ip: l3.src,
        src_port,
        dst_ip: l3.dst,
        local_ip: iface.addr,
        trusted: iface.trusted,
    };
    // The reply leaves with the request's tags, so its headers take exactly this much room
    // in front of the DHCP message, and the frame starts at tx[0].
    let headroom =
        ethernet::HEADER_LEN + l2.vlans.wire_len() + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;
    let verdict = engine.handle_message(now, &meta, &msg, tx.get_mut(headroom..).ok_or(())?);
    stats.message_in(msg.message_type());
    let mut probe = None;
    let (kind, len, dst, event) = match verdict {
        Verdict::Reply { kind, len, dst } => (kind, len, dst, None),
        Verdict::Probe {
            len,
            dst,
            address,
            wait_ms,
        } => {
            let spec = ProbeSpec {
                address,
                src_ip: dst.src_ip,
                // A relayed DISCOVER's OFFER goes back to its relay; the probe goes through it.
                via_relay: (dst.next_hop == NextHop::Sender).then_some(l2.src),
                vlans: l2.vlans,
            };
            probe = Some((spec, wait_ms));
            (MessageType::Offer, len, dst, None)
        }
        Verdict::Defer {
            kind,
            len,
            dst,
            event,
        } => {
            stats.deferred.inc();
            (kind, len, dst, Some(event))
        }
        Verdict::Record { event } => return Ok(Outcome::Commit { event, reply: None }),
        Verdict::Drop(reason) => {
            stats.count_drop(reason);
            return Ok(Outcome::Nothing);
        }
    };
    let dst_mac = match dst.next_hop {
        NextHop::Sender => l2.src,
        NextHop::Client(mac) => mac,
        NextHop::Broadcast => MacAddr::BROADCAST,
    };
    let headers = UdpFrameHeaders {
        dst_mac,
        src_mac: iface.mac,
        vlans: l2.vlans,
        src_ip: dst.src_ip,
        dst_ip: dst.ip,
        src_port: SERVER_PORT,
        dst_port: dst.port,
        ttl: 64,
    };
    let start = write_headers(tx, headroom, len, &headers).map_err(|_| ())?;
    debug_assert_eq!(start, 0);
    let reply = Reply {
        len: headroom + len,
        kind: Some(kind),
    };
    Ok(match (event, probe) {
        (Some(event), _) => Outcome::Commit {
            event,
            reply: Some(reply),
        },
        (None, Some((probe, wait_ms))) => Outcome::Probe {
            reply,
            probe,
            wait_ms,
        },
        (None, None) => Outcome::Send(reply),
    })
}

fn arp_reply(
    iface: &Interface,
    l2: &L2,
    (mac, ip): (MacAddr, Ipv4Addr),
    tx: &mut [u8],
) -> Result<usize, ()> {
    let n = write_ethernet(tx, l2.src, iface.mac, &l2.vlans, ethertype::ARP).map_err(|_| ())?;
    let m = arp::write(
        &mut tx[n..],
        arp::op::REPLY,
        (iface.mac, iface.addr),
        (mac, ip),
    )
    .map_err(|_| ())?;
    Ok(pad(tx, n + m, &l2.vlans))
}

fn echo_reply(
    iface: &Interface,
    l2: &L2,
    l3: &L3,
    message: &[u8],
    tx: &mut [u8],
) -> Result<usize, ()> {
    if message.len() < 8 {
        return Err(());
    }
    let n = write_ethernet(tx, l2.src, iface.mac, &l2.vlans, ethertype::IPV4).map_err(|_| ())?;
    let ip = Ipv4Header {
        src: iface.addr,
        dst: l3.src,
        protocol: protocol::ICMP,
        ttl: 64,
    };
    let h = ip
        .write(tx.get_mut(n..).ok_or(())?, message.len())
        .map_err(|_| ())?;
    let icmp = tx.get_mut(n + h..n + h + message.len()).ok_or(())?;
    icmp.copy_from_slice(message);
    icmp[0] = ICMP_ECHO_REPLY;
    icmp[2..4].fill(0);
    let sum = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(pad(tx, n + h + message.len(), &l2.vlans))
}

/// Pads a short frame to the 60-byte Ethernet minimum (plus tags).
fn pad(tx: &mut [u8], len: usize, vlans: &VlanTags) -> usize {
    let min = 60 + vlans.wire_len();
    if len < min {
        tx[len..min].fill(0);
        min
    } else {
        len
    }
}
