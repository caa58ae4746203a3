//! Opening the generator's I/O and addressing its frames.
//!
//! - **AF_PACKET** (`peregrine-io`'s `TPACKET_V3` RX ring and batched TX): the generator *is*
//!   the relays. It sends relayed unicast requests from giaddr:67 to server:67 as raw frames
//!   (with VLAN tags if asked) to the server's MAC, which it learns with an ARP request, and
//!   reads the replies the server sends to giaddr:67 off the ring. The giaddrs need not be
//!   configured anywhere, but the kernel of the generator's namespace also sees the replies:
//!   drop UDP/67 at ingress there (`nft`, see `bench/compare.sh`) if the giaddrs are local
//!   addresses, or it answers each one with an ICMP port-unreachable.
//! - **UDP**: one socket bound to `0.0.0.0:67` (`recvmmsg`/`sendmmsg` with `IP_PKTINFO`);
//!   each request leaves with its relay's giaddr as the source address, so every giaddr must
//!   be an address of the generator's host (namespace), and replies to any of them arrive on
//!   the one socket.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketTx};
use peregrine_io::udp::{self, UdpRx, UdpTx};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_wire::MacAddr;
use peregrine_wire::arp::{self, ArpPacket};
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux, write_ethernet};

/// VLAN tagging of the generator's frames (AF_PACKET only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tagging {
    /// Outer 802.1ad S-VLAN, for QinQ.
    pub svlan: Option<u16>,
    /// 802.1Q C-VLAN (the inner tag under QinQ).
    pub cvlan: Option<u16>,
    /// Add the relay number to the C-VLAN: one VLAN per relay.
    pub cvlan_per_relay: bool,
}

impl Tagging {
    /// The tags of relay `relay`'s frames.
    pub fn tags(&self, relay: u16) -> Result<VlanTags> {
        let c = match self.cvlan {
            Some(v) => {
                let vid = if self.cvlan_per_relay { v + relay } else { v };
                if vid == 0 || vid > 4094 {
                    bail!("VLAN id {vid} out of range 1..4094");
                }
                Some(VlanTag::new(ethertype::VLAN, vid, 0))
            }
            None => None,
        };
        Ok(match (self.svlan, c) {
            (None, None) => VlanTags::NONE,
            (None, Some(c)) => VlanTags::single(c),
            (Some(s), None) => VlanTags::single(VlanTag::new(ethertype::QINQ, s, 0)),
            (Some(s), Some(c)) => VlanTags::double(VlanTag::new(ethertype::QINQ, s, 0), c),
        })
    }

    /// Whether any tag is set.
    pub fn any(&self) -> bool {
        self.svlan.is_some() || self.cvlan.is_some()
    }
}

/// A server the relays forward to: its address and the MAC its frames go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// Its IPv4 address.
    pub ip: Ipv4Addr,
    /// The destination MAC of frames to it (the UDP backend: [`UDP_PEER_MAC`]).
    pub mac: [u8; 6],
}

/// Frame headers of each relay's requests: per relay (in `giaddrs`' order), one per server
/// (in `servers`' order), as a relay configured with several servers forwards to each.
pub fn relay_headers(
    giaddrs: &[Ipv4Addr],
    servers: &[Server],
    src_mac: [u8; 6],
    tagging: &Tagging,
) -> Result<Vec<Vec<UdpFrameHeaders>>> {
    giaddrs
        .iter()
        .enumerate()
        .map(|(i, &giaddr)| {
            let vlans = tagging.tags(u16::try_from(i).unwrap_or(u16::MAX))?;
            Ok(servers
                .iter()
                .map(|server| UdpFrameHeaders {
                    dst_mac: MacAddr(server.mac),
                    src_mac: MacAddr(src_mac),
                    vlans,
                    src_ip: giaddr,
                    dst_ip: server.ip,
                    src_port: 67,
                    dst_port: 67,
                    ttl: 64,
                })
                .collect())
        })
        .collect()
}

/// Opens the UDP backend: one socket on `bind:67` with `burst` buffers per direction.
pub fn open_udp(bind: Ipv4Addr, burst: usize) -> Result<(UdpRx, UdpTx)> {
    udp::open(bind, 67, burst).with_context(|| format!("UDP socket on {bind}:67 (needs root)"))
}

/// The destination MAC that makes the UDP backend send to the frame's IPv4 destination.
pub const UDP_PEER_MAC: [u8; 6] = udp::SENDER_MAC;

/// Opens the AF_PACKET backend on `interface` with a TX burst of `burst`.
pub fn open_afpacket(interface: &str, burst: usize) -> Result<(AfPacketRx, AfPacketTx)> {
    let config = AfPacketConfig {
        tx_burst: burst,
        ..AfPacketConfig::default()
    };
    afpacket::open(interface, &config).with_context(|| format!("AF_PACKET on {interface}"))
}

/// A DPDK port opened for the generator: the EAL started with `eal_args`, `port` started with
/// one queue; its queue's two sides, and what must outlive them.
#[cfg(feature = "dpdk")]
pub struct DpdkPort {
    /// The queue's receive side.
    pub rx: peregrine_dpdk::DpdkRx,
    /// The queue's transmit side.
    pub tx: peregrine_dpdk::DpdkTx,
    /// The port's hardware address.
    pub mac: [u8; 6],
    port: peregrine_dpdk::Port,
}

#[cfg(feature = "dpdk")]
impl DpdkPort {
    /// Frames the port has dropped on receive since it started: no room in its queue or no
    /// buffer for them (`imissed` and `rx_nombuf` of `rte_eth_stats_get`).
    pub fn rx_dropped(&self) -> Result<u64> {
        let s = self.port.stats()?;
        Ok(s.imissed + s.rx_nombuf)
    }
}

/// Opens the DPDK backend (a generator built with the `dpdk` feature).
#[cfg(feature = "dpdk")]
pub fn open_dpdk(eal_args: &str, port: &str) -> Result<DpdkPort> {
    use peregrine_dpdk::{Eal, Mempool, Port};
    let args: Vec<&str> = eal_args.split_whitespace().collect();
    let eal = Eal::init(&args).context("starting DPDK (--eal-args)")?;
    let pool = std::sync::Arc::new(Mempool::new(&eal, "loadgen", 16_383)?);
    let id = eal.port_by_name(port)?;
    let started = Port::start(&eal, id, 1, 1024, &pool)?;
    let (rx, tx) = started
        .queue(0, &pool)
        .context("queue 0 of a one-queue port")?;
    Ok(DpdkPort {
        rx,
        tx,
        mac: started.mac()?,
        port: started,
    })
}

/// Asks for `target`'s MAC with ARP requests from (`our_mac`, `our_ip`), tagged with `vlans`;
/// gives up after `timeout`.
pub fn resolve_mac<R: RxQueue, T: TxQueue>(
    rx: &mut R,
    tx: &mut T,
    (our_mac, our_ip): ([u8; 6], Ipv4Addr),
    target: Ipv4Addr,
    vlans: VlanTags,
    timeout: Duration,
) -> Result<[u8; 6]> {
    let start = Instant::now();
    let mut found = None;
    while start.elapsed() < timeout {
        if let Some(buf) = tx.buffer() {
            let l2 = write_ethernet(
                buf,
                MacAddr::BROADCAST,
                MacAddr(our_mac),
                &vlans,
                ethertype::ARP,
            )?;
            let n = arp::write(
                &mut buf[l2..],
                arp::op::REQUEST,
                (MacAddr(our_mac), our_ip),
                (MacAddr::ZERO, target),
            )?;
            let len = (l2 + n).max(60);
            buf[l2 + n..len].fill(0);
            tx.queue(len, 0);
            tx.flush()?;
        }
        let round = Instant::now();
        while found.is_none() && round.elapsed() < Duration::from_millis(300) {
            rx.rx_burst(32, &mut |f| {
                if let Ok(Demuxed::Arp { arp, .. }) = demux(f.data)
                    && is_reply_from(&arp, target)
                {
                    found = Some(arp.sender_mac().0);
                }
            })?;
            rx.wait(Duration::from_millis(10))?;
        }
        if let Some(mac) = found {
            return Ok(mac);
        }
    }
    bail!("no ARP reply from {target} within {timeout:?} (give --server-mac)")
}

fn is_reply_from(arp: &ArpPacket<&[u8]>, target: Ipv4Addr) -> bool {
    arp.operation() == arp::op::REPLY && arp.sender_ip() == target
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("MAC {s:?}: want six hex bytes separated by ':'");
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("MAC {s:?}"))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_per_relay_and_qinq() {
        let t = Tagging {
            svlan: Some(300),
            cvlan: Some(100),
            cvlan_per_relay: true,
        };
        let tags = t.tags(3).unwrap();
        assert_eq!(tags.as_slice()[0].vid(), 300);
        assert_eq!(tags.as_slice()[1].vid(), 103);
        assert_eq!(Tagging::default().tags(5).unwrap(), VlanTags::NONE);
        let bad = Tagging {
            cvlan: Some(4094),
            cvlan_per_relay: true,
            ..Tagging::default()
        };
        assert!(bad.tags(1).is_err());
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:0a:0B:ff:01").unwrap(),
            [2, 0, 10, 11, 255, 1]
        );
        assert!(parse_mac("02:00:0a").is_err());
        assert!(parse_mac("02:00:0a:0b:ff:zz").is_err());
    }
}
