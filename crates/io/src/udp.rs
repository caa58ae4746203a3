//! A UDP socket on port 67, presented as frames.
//!
//! For hosts where raw frames are not wanted. `recvmmsg` receives a burst of datagrams, each
//! straight into its buffer behind room for Ethernet, IPv4 and UDP headers; the backend writes
//! synthetic headers there (the datagram's addresses and ports, from the socket address and
//! `IP_PKTINFO`), so the dataplane sees the same frames as on a raw backend and nothing is
//! copied. On transmit it reads the addresses back from the headers the dataplane wrote and
//! sends every payload with one `sendmmsg`, choosing the outgoing interface and source address
//! with `IP_PKTINFO`.
//!
//! What a socket cannot do: unicast to a client that has no address yet (the kernel would ARP
//! for it in vain). A reply addressed to a client's hardware address is broadcast instead, as
//! RFC 2131 section 4.1 allows.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use peregrine_wire::MacAddr;
use peregrine_wire::ethernet::VlanTags;
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux_with, write_headers_unchecked};

use crate::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};

/// Bytes of synthetic Ethernet, IPv4 and UDP header in front of each received payload.
const HEADROOM: usize = 14 + 20 + 8;
/// Stand-in MAC of the datagram's sender. A reply the dataplane addresses to this MAC goes to
/// the datagram's source address; a reply to any other non-broadcast MAC is broadcast.
pub const SENDER_MAC: [u8; 6] = [0x02, 0x50, 0x52, 0x47, 0x00, 0x01];
const OUR_MAC: [u8; 6] = [0x02, 0x50, 0x52, 0x47, 0x00, 0x00];
const CMSG_SPACE: usize = 64;

/// The receive side.
pub struct UdpRx {
    fd: std::sync::Arc<OwnedFd>,
    bufs: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_in>,
    controls: Vec<[u8; CMSG_SPACE]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

/// The transmit side.
pub struct UdpTx {
    fd: std::sync::Arc<OwnedFd>,
    bufs: Vec<Vec<u8>>,
    queued: Vec<(usize, u32)>,
    names: Vec<libc::sockaddr_in>,
    controls: Vec<[u8; CMSG_SPACE]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside the mmsghdr/iovec arrays point only into buffers owned by
// the same struct; they are rebuilt before every syscall and never shared between threads.
unsafe impl Send for UdpRx {}
// SAFETY: as for `UdpRx`.
unsafe impl Send for UdpTx {}

fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if ret < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(ret)
    }
}

fn set_opt(fd: libc::c_int, level: libc::c_int, name: libc::c_int, what: &str) -> io::Result<()> {
    set_int(fd, level, name, 1, what)
}

fn set_int(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(r, what).map(|_| ())
}

/// Bytes of socket buffer asked for each way: a relay's burst of thousands of DISCOVERs waits
/// here while the worker is busy, instead of being dropped at the default of ~200 KiB (a few
/// hundred datagrams with their overhead).
pub const SOCKET_BUFFER: libc::c_int = 8 << 20;

/// Sets the receive and send buffers to [`SOCKET_BUFFER`]: with `SO_RCVBUFFORCE` /
/// `SO_SNDBUFFORCE` where allowed (`CAP_NET_ADMIN`), else as far as `net.core.rmem_max` /
/// `wmem_max` let `SO_RCVBUF` / `SO_SNDBUF` go.
fn size_buffers(fd: libc::c_int) -> io::Result<()> {
    let bytes = SOCKET_BUFFER;
    for (force, plain, what) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF"),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF"),
    ] {
        if set_int(fd, libc::SOL_SOCKET, force, bytes, what).is_err() {
            set_int(fd, libc::SOL_SOCKET, plain, bytes, what)?;
        }
    }
    Ok(())
}

/// Opens a non-blocking UDP socket bound to `bind:port` with `SO_BROADCAST`, `IP_PKTINFO` and
/// buffers of [`SOCKET_BUFFER`] bytes (see [`size_buffers`]), and splits it into receive and
/// transmit sides with `burst` buffers each.
pub fn open(bind: Ipv4Addr, port: u16, burst: usize) -> io::Result<(UdpRx, UdpTx)> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = check(
        unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        },
        "socket",
    )?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_opt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, "SO_REUSEADDR")?;
    set_opt(raw, libc::SOL_SOCKET, libc::SO_BROADCAST, "SO_BROADCAST")?;
    set_opt(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")?;
    size_buffers(raw)?;
    let addr = sockaddr(bind, port);
    // SAFETY: `addr` is a valid sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            raw,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    check(r, &format!("bind {bind}:{port}"))?;
    let fd = std::sync::Arc::new(fd);
    let burst = burst.max(1);
    let rx = UdpRx {
        fd: fd.clone(),
        bufs: vec![vec![0; FRAME_CAPACITY]; burst],
        // SAFETY: all-zero is a valid value of these plain C structs.
        names: vec![unsafe { zeroed() }; burst],
        controls: vec![[0; CMSG_SPACE]; burst],
        iovs: vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            burst
        ],
        // SAFETY: as above.
        msgs: vec![unsafe { zeroed() }; burst],
    };
    let tx = UdpTx {
        fd,
        bufs: vec![vec![0; FRAME_CAPACITY]; burst],
        queued: Vec::with_capacity(burst),
        // SAFETY: as above.
        names: vec![unsafe { zeroed() }; burst],
        controls: vec![[0; CMSG_SPACE]; burst],
        iovs: vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            burst
        ],
        // SAFETY: as above.
        msgs: vec![unsafe { zeroed() }; burst],
    };
    Ok((rx, tx))
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// The `IP_PKTINFO` of a received message: interface index and header destination address.
fn pktinfo(msg: &libc::msghdr) -> Option<(u32, Ipv4Addr)> {
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, bounded by
    // msg_controllen; the payload is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let dst = Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes());
                return Some((info.ipi_ifindex.cast_unsigned(), dst));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// Writes Ethernet, IPv4 and UDP headers in front of a datagram of `len` bytes from `src` to
/// `dst` received at `buf[HEADROOM..]`; the UDP checksum is left out (the kernel verified it).
fn synthesize(buf: &mut [u8], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), len: usize) -> bool {
    let headers = UdpFrameHeaders {
        dst_mac: MacAddr(OUR_MAC),
        src_mac: MacAddr(SENDER_MAC),
        vlans: VlanTags::NONE,
        src_ip: src.0,
        dst_ip: dst.0,
        src_port: src.1,
        dst_port: dst.1,
        ttl: 64,
    };
    write_headers_unchecked(buf, HEADROOM, len, &headers) == Ok(0)
}

impl RxQueue for UdpRx {
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        let n = max.min(self.bufs.len());
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i][HEADROOM..].as_mut_ptr().cast(),
                iov_len: FRAME_CAPACITY - HEADROOM,
            };
            // SAFETY: all-zero is a valid msghdr; every pointer set below lives in `self`.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&raw mut self.names[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_SPACE;
            self.msgs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: `msgs[..n]` point into buffers owned by `self` that outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = got.unsigned_abs() as usize;
        for i in 0..got {
            let len = self.msgs[i].msg_len as usize;
            let (ifindex, dst) =
                pktinfo(&self.msgs[i].msg_hdr).unwrap_or((0, Ipv4Addr::UNSPECIFIED));
            let name = self.names[i];
            let src = (
                Ipv4Addr::from(name.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(name.sin_port),
            );
            let buf = &mut self.bufs[i];
            // Headers that cannot be written (never, within a frame's capacity) leave an empty
            // frame, which the dataplane counts as truncated.
            let framed = synthesize(buf, src, (dst, 67), len);
            f(RxFrame {
                data: &buf[..if framed { HEADROOM + len } else { 0 }],
                ifindex,
                checksum_pending: false,
            });
        }
        Ok(got)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&raw mut p, 1, ms) };
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl TxQueue for UdpTx {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let i = self.queued.len();
        self.bufs.get_mut(i).map(Vec::as_mut_slice)
    }

    fn queue(&mut self, len: usize, ifindex: u32) {
        if self.queued.len() < self.bufs.len() {
            self.queued.push((len.min(FRAME_CAPACITY), ifindex));
        }
    }

    fn flush(&mut self) -> io::Result<usize> {
        let mut n = 0;
        for (i, &(len, ifindex)) in self.queued.iter().enumerate() {
            let Some(reply) = parse_reply(&self.bufs[i][..len]) else {
                continue;
            };
            let src_ip = reply.src;
            self.names[n] = sockaddr(reply.dst.0, reply.dst.1);
            self.iovs[n] = libc::iovec {
                iov_base: self.bufs[i][reply.payload_at..].as_mut_ptr().cast(),
                iov_len: reply.payload_len,
            };
            let info = libc::in_pktinfo {
                ipi_ifindex: ifindex.cast_signed(),
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from_ne_bytes(src_ip.octets()),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let control = &mut self.controls[n];
            // SAFETY: all-zero is a valid msghdr; the pointers set below live in `self`, and
            // the control buffer has room for one IP_PKTINFO message.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&raw mut self.names[n]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &raw mut self.iovs[n];
            h.msg_iovlen = 1;
            h.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on a constant size.
            h.msg_controllen =
                unsafe { libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) } as usize;
            // SAFETY: the control buffer is CMSG_SPACE bytes, larger than one in_pktinfo message.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&raw const h);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), info);
            }
            self.msgs[n] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
            n += 1;
        }
        self.queued.clear();
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: `msgs[..n]` point into buffers owned by `self` that outlive the call.
        let sent = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        Ok(sent.unsigned_abs() as usize)
    }

    fn pending(&self) -> usize {
        self.queued.len()
    }
}

/// Where a reply frame goes and where its payload lies.
struct Reply {
    dst: (Ipv4Addr, u16),
    src: Ipv4Addr,
    payload_at: usize,
    payload_len: usize,
}

/// Reads a reply frame the dataplane wrote (Ethernet, tags allowed, IPv4, UDP) with `wire`;
/// `None` for anything else, which is then not sent (and counted by the caller).
fn parse_reply(f: &[u8]) -> Option<Reply> {
    let Demuxed::Udp {
        l2,
        l3,
        dst_port,
        payload,
        ..
    } = demux_with(f, false).ok()?
    else {
        return None;
    };
    // Addressed to a client's hardware address: it has no address yet, so broadcast.
    let dst = if l2.dst.0 != SENDER_MAC && l2.dst != MacAddr::BROADCAST {
        Ipv4Addr::BROADCAST
    } else {
        l3.dst
    };
    // The payload is a slice of `f`: its offset is the distance between their starts.
    let payload_at = (payload.as_ptr() as usize).checked_sub(f.as_ptr() as usize)?;
    Some(Reply {
        dst: (dst, dst_port),
        src: l3.src,
        payload_at,
        payload_len: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_int(fd: libc::c_int, name: libc::c_int) -> usize {
        let mut value: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` outlive the call and describe a c_int.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        usize::try_from(value).unwrap_or(0)
    }

    /// A frame that is not an Ethernet/IPv4/UDP reply (one too short for its headers, one of
    /// another protocol) is not sent and not read past its end; flush reports it unsent, which
    /// the dataplane counts (`tx_refused`).
    #[test]
    fn frames_that_are_not_replies_are_not_sent() {
        let (_rx, mut tx) = open(Ipv4Addr::LOCALHOST, 0, 4).unwrap();
        let mut reply = vec![0u8; 300];
        let headers = UdpFrameHeaders {
            dst_mac: MacAddr(SENDER_MAC),
            src_mac: MacAddr(OUR_MAC),
            vlans: VlanTags::NONE,
            src_ip: Ipv4Addr::LOCALHOST,
            dst_ip: Ipv4Addr::LOCALHOST,
            src_port: 67,
            dst_port: 9,
            ttl: 64,
        };
        let len = peregrine_wire::frame::build_udp_frame(&mut reply, &headers, |p| {
            p[..4].copy_from_slice(b"DHCP");
            Ok(4)
        })
        .unwrap();
        // Cut inside the IPv4 header (the old reader indexed past the end here), inside the
        // Ethernet header, and an ARP frame.
        let mut arp = reply.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        for frame in [&reply[..27], &reply[..10], &arp[..60]] {
            let buf = tx.buffer().unwrap();
            buf[..frame.len()].copy_from_slice(frame);
            tx.queue(frame.len(), 0);
            assert_eq!(tx.flush().unwrap(), 0, "{} bytes", frame.len());
        }
        // A whole reply goes.
        let buf = tx.buffer().unwrap();
        buf[..len].copy_from_slice(&reply[..len]);
        tx.queue(len, 0);
        assert_eq!(tx.flush().unwrap(), 1);
        assert_eq!(parse_reply(&reply[..len]).map(|r| r.payload_len), Some(4));
    }

    /// The buffers are raised past the default (~200 KiB): to `SOCKET_BUFFER` (which the
    /// kernel reports doubled) with the privilege to force it, else to `rmem_max`/`wmem_max`.
    #[test]
    fn socket_buffers_are_raised() {
        let (rx, _tx) = open(Ipv4Addr::LOCALHOST, 0, 4).unwrap();
        let fd = rx.fd.as_raw_fd();
        let cap = |sysctl: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/core/{sysctl}"))
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(0)
        };
        // SAFETY: geteuid(2) takes nothing and cannot fail.
        let forced = unsafe { libc::geteuid() } == 0;
        for (name, sysctl) in [(libc::SO_RCVBUF, "rmem_max"), (libc::SO_SNDBUF, "wmem_max")] {
            let ours = usize::try_from(SOCKET_BUFFER).unwrap_or(0);
            let want = if forced { ours } else { ours.min(cap(sysctl)) };
            assert!(get_int(fd, name) >= want, "{sysctl}: {}", get_int(fd, name));
        }
    }
}
