//! A stateless responder for I/O-ceiling runs: every relayed DISCOVER gets an OFFER and every
//! REQUEST an ACK, addressed to the relay (giaddr:67), with an address made from the xid. No
//! pools, no leases, no journal: what the generator measures against it is the cost of the
//! backend's I/O path alone.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peregrine_io::{RxFrame, RxQueue, TxQueue};
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{BOOTREQUEST, BootpHeader, DhcpMessage, DhcpWriter, MessageType, opt};
use peregrine_wire::frame::{Demuxed, MAX_HEADROOM, UdpFrameHeaders, demux_with, write_headers};

/// Counts of an echo run.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoStats {
    /// Replies written.
    pub answered: u64,
    /// Frames that were not relayed DISCOVERs or REQUESTs.
    pub ignored: u64,
    /// Replies the kernel refused.
    pub tx_refused: u64,
}

/// Answers until `quit` is set or `max_time` passes. `our_mac` is the source MAC of replies
/// (any value for the UDP backend).
pub fn run<R: RxQueue, T: TxQueue>(
    rx: &mut R,
    tx: &mut T,
    our_mac: [u8; 6],
    quit: &Arc<AtomicBool>,
    max_time: Duration,
) -> std::io::Result<EchoStats> {
    let start = Instant::now();
    let mut stats = EchoStats::default();
    while !quit.load(Ordering::Relaxed) && start.elapsed() < max_time {
        let n = rx.rx_burst(32, &mut |f| answer(f, our_mac, tx, &mut stats))?;
        let queued = tx.pending();
        if queued > 0 {
            let sent = tx.flush()?;
            stats.tx_refused += (queued - sent.min(queued)) as u64;
        }
        if n == 0 {
            rx.wait(Duration::from_millis(10))?;
        }
    }
    Ok(stats)
}

fn answer<T: TxQueue>(f: RxFrame<'_>, our_mac: [u8; 6], tx: &mut T, stats: &mut EchoStats) {
    if let Some(len) = tx.buffer().and_then(|buf| reply(f, our_mac, buf)) {
        tx.queue(len, 0);
        stats.answered += 1;
        if tx.buffer().is_none() {
            let queued = tx.pending();
            let sent = tx.flush().unwrap_or(0);
            stats.tx_refused += (queued - sent.min(queued)) as u64;
        }
    } else {
        stats.ignored += 1;
    }
}

/// Writes the reply to the request in `f` at the start of `buf`; returns its length, or
/// `None` if the frame is not a relayed DISCOVER or REQUEST.
pub fn reply(frame: RxFrame<'_>, our_mac: [u8; 6], buf: &mut [u8]) -> Option<usize> {
    let Ok(Demuxed::Udp {
        l2,
        l3,
        dst_port: 67,
        payload,
        ..
    }) = demux_with(frame.data, !frame.checksum_pending)
    else {
        return None;
    };
    let msg = DhcpMessage::parse(payload).ok()?;
    let p = msg.packet();
    let giaddr = p.giaddr();
    if p.op() != BOOTREQUEST || giaddr.is_unspecified() {
        return None;
    }
    let kind = match msg.message_type()? {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => MessageType::Ack,
        _ => return None,
    };
    let yiaddr = if p.ciaddr().is_unspecified() {
        let net = u32::from(giaddr) & 0xffff_0000;
        Ipv4Addr::from(net | (10 + p.xid() % 65_000))
    } else {
        p.ciaddr()
    };
    let mut h = BootpHeader::reply_to(p);
    h.yiaddr = yiaddr;
    let body = buf.get_mut(MAX_HEADROOM..)?;
    let mut w = DhcpWriter::new(body, 576).ok()?;
    w.header(&h);
    w.message_type(kind).ok()?;
    w.option_ipv4(opt::SERVER_ID, l3.dst).ok()?;
    w.option_u32(opt::LEASE_TIME, 3600).ok()?;
    w.option_ipv4(opt::SUBNET_MASK, Ipv4Addr::new(255, 255, 0, 0))
        .ok()?;
    w.option_ipv4(opt::ROUTER, giaddr).ok()?;
    if let Some(rai) = msg.relay_agent_info_raw().and_then(|v| v.as_slice()) {
        w.option(opt::RELAY_AGENT_INFO, rai).ok()?;
    }
    let len = w.finish().ok()?;
    let headers = UdpFrameHeaders {
        dst_mac: l2.src,
        src_mac: MacAddr(our_mac),
        vlans: l2.vlans,
        src_ip: l3.dst,
        dst_ip: giaddr,
        src_port: 67,
        dst_port: 67,
        ttl: 64,
    };
    let start = write_headers(buf, MAX_HEADROOM, len, &headers).ok()?;
    // Move the frame to the start of the buffer, where the TX queue expects it.
    buf.copy_within(start..MAX_HEADROOM + len, 0);
    Some(MAX_HEADROOM + len - start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Kind, Request, write_frame};
    use peregrine_wire::ethernet::VlanTags;

    #[test]
    fn discover_gets_an_offer_to_the_relay_with_option_82_echoed() {
        let giaddr = Ipv4Addr::new(10, 212, 0, 1);
        let server = Ipv4Addr::new(10, 200, 1, 1);
        let headers = UdpFrameHeaders {
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            vlans: VlanTags::NONE,
            src_ip: giaddr,
            dst_ip: server,
            src_port: 67,
            dst_port: 67,
            ttl: 64,
        };
        let req = Request {
            kind: Kind::Discover,
            xid: 77,
            mac: [2, 0, 0, 0, 0, 77],
            giaddr,
            secs: 0,
            circuit_id: Some(b"olt2/port9"),
            remote_id: None,
        };
        let mut frame = [0u8; 1522];
        let n = write_frame(&mut frame, &headers, &req).unwrap();
        let mut out = [0u8; 1522];
        let rx = RxFrame {
            data: &frame[..n],
            ifindex: 0,
            checksum_pending: false,
        };
        let len = reply(rx, [2, 0, 0, 0, 0, 1], &mut out).unwrap();
        let Ok(Demuxed::Udp {
            l2,
            l3,
            dst_port,
            payload,
            ..
        }) = demux_with(&out[..len], true)
        else {
            panic!("reply is not UDP");
        };
        assert_eq!(
            (l2.dst, l3.src, l3.dst, dst_port),
            (MacAddr([2, 0, 0, 0, 0, 2]), server, giaddr, 67)
        );
        let m = DhcpMessage::parse(payload).unwrap();
        assert_eq!(m.message_type(), Some(MessageType::Offer));
        assert_eq!(m.packet().xid(), 77);
        assert_eq!(m.packet().yiaddr(), Ipv4Addr::new(10, 212, 0, 87));
        let mut scratch = [0u8; 256];
        let rai = m.relay_agent_info(&mut scratch).unwrap().unwrap();
        assert_eq!(rai.circuit_id(), Some(&b"olt2/port9"[..]));
    }
}
