//! `AF_PACKET` on one interface: a `TPACKET_V3` mmap RX ring, `sendmmsg(2)` TX, `PACKET_FANOUT`.
//!
//! The kernel packs received frames into the blocks of a ring shared with this process and
//! hands a block over when it is full or [`AfPacketConfig::block_timeout`] has passed.
//! [`AfPacketRx`] passes the frames of a handed-over block to the callback in place and gives
//! the block back once all of them were seen. [`AfPacketTx`] lends preallocated buffers and
//! sends a burst with one `sendmmsg(2)`.
//!
//! Several workers share an interface by opening one socket each with the same
//! [`AfPacketConfig::fanout_group`]; the kernel then hands each flow to one member by its hash
//! over addresses and ports. Broadcasts from clients without an address (`0.0.0.0:68` to
//! `255.255.255.255:67`) hash alike, so on an untagged link they all reach one member;
//! relayed traffic spreads by relay.
//!
//! The kernel strips the outer VLAN tag of a received frame into the ring's frame header.
//! [`AfPacketRx`] puts it back, into a scratch buffer and for tagged frames only, so the
//! dataplane sees every frame as it was on the wire (a QinQ frame's inner tag was never
//! removed).
// The ring is memory shared with the kernel, and sockets are set up with libc calls.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint};
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use std::{fmt, io};

use crate::sys::{self, SendFailure};
use crate::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};

const BACKEND: &str = "AF_PACKET";

/// `ETH_P_ALL` in network byte order: bind to every protocol.
const ALL_PROTOCOLS: u16 = 0x0003_u16.to_be();

/// The TPID of an 802.1Q tag, for kernels that do not report the stripped tag's own.
const TPID_8021Q: u16 = 0x8100;

/// Bytes of destination and source MAC, in front of the place a VLAN tag goes.
const MACS: usize = 12;

/// Bytes of an 802.1Q or 802.1ad tag.
const TAG: usize = 4;

// Where the fields this module reads lie in a block and in a frame header.
const BLOCK_STATUS: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, block_status);
const BLOCK_FRAMES: usize =
    offset_of!(libc::tpacket_block_desc, hdr) + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST: usize = offset_of!(libc::tpacket_block_desc, hdr)
    + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
const FRAME_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const FRAME_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const FRAME_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
/// `linux/if_packet.h`: the transport checksum of a locally sent or offloaded frame is still
/// to be computed (not in every libc version's constants).
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const FRAME_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const FRAME_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
const FRAME_VLAN_TCI: usize = offset_of!(libc::tpacket3_hdr, hv1.tp_vlan_tci);
const FRAME_VLAN_TPID: usize = offset_of!(libc::tpacket3_hdr, hv1.tp_vlan_tpid);
/// The kernel writes a `sockaddr_ll` after each frame header; only its packet type is used.
const FRAME_PKTTYPE: usize = size_of::<libc::tpacket3_hdr>()
    .next_multiple_of(libc::TPACKET_ALIGNMENT)
    + offset_of!(libc::sockaddr_ll, sll_pkttype);

/// Ring geometry and socket options for [`open`].
///
/// The defaults give each socket a 16 MiB ring of 64 blocks of 256 KiB. A 342-byte DHCP frame
/// takes 432 bytes of it with its header, so the ring holds about 39 000 frames: 39 ms at
/// 1 Mpps for a worker that was descheduled to catch up. With light traffic a frame waits at
/// most the 1 ms block timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Bytes per RX ring block: a multiple of the page size, best a power of two (the kernel
    /// allocates a power of two of pages per block). The longest frame the ring holds whole
    /// is a little shorter than a block.
    pub block_size: u32,
    /// Blocks in the RX ring.
    pub block_count: u32,
    /// The frame size the kernel checks the ring geometry with: a multiple of 16 that divides
    /// `block_size`. `TPACKET_V3` packs frames of any length into a block, so it limits
    /// nothing else.
    pub frame_size: u32,
    /// How long the kernel fills a block before handing it over anyway: the latency added
    /// when traffic is light. Whole milliseconds, at least one.
    pub block_timeout: Duration,
    /// The `PACKET_FANOUT` group (hash mode) to join, or `None` to receive every frame of the
    /// interface. Group ids are per network namespace; every member must use this backend.
    pub fanout_group: Option<u16>,
    /// Frames per TX burst: how many buffers [`TxQueue::buffer`] lends before a flush.
    pub tx_burst: usize,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        Self {
            block_size: 256 << 10,
            block_count: 64,
            frame_size: 2048,
            block_timeout: Duration::from_millis(1),
            fanout_group: None,
            tx_burst: 64,
        }
    }
}

/// Frames the RX ring held that were not handed to the callback.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketRxStats {
    /// Frames the ring held only in part (longer than a block can take).
    pub truncated: u64,
    /// Blocks whose frame headers pointed outside the block; the rest of each was skipped.
    pub corrupt_blocks: u64,
}

/// The kernel's counters for one socket (`PACKET_STATISTICS`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    /// Frames the kernel offered the socket, the dropped ones included.
    pub packets: u64,
    /// Frames dropped because the ring was full.
    pub drops: u64,
}

/// The receive side of an `AF_PACKET` socket: its `TPACKET_V3` ring.
pub struct AfPacketRx {
    fd: Arc<OwnedFd>,
    ring: Ring,
    /// The block being walked, or the next one to wait for.
    block: usize,
    /// Frames of `block` not walked yet; 0 while the kernel owns it.
    left: u32,
    /// Offset in `block` of the next frame's header.
    offset: usize,
    /// Where a frame whose VLAN tag the kernel stripped is rebuilt: a block's worth, as no
    /// frame is longer.
    scratch: Box<[u8]>,
    ifindex: u32,
    mac: [u8; 6],
    stats: AfPacketRxStats,
}

/// The transmit side of an `AF_PACKET` socket.
pub struct AfPacketTx {
    fd: Arc<OwnedFd>,
    /// One [`FRAME_CAPACITY`] buffer per frame of a burst, back to back.
    buffers: Box<[u8]>,
    /// Length and interface of each queued frame, in buffer order.
    queued: Vec<(usize, u32)>,
    burst: usize,
    messages: Messages,
    ifindex: u32,
    mac: [u8; 6],
}

/// Opens an `AF_PACKET` socket on `interface` (in the calling thread's network namespace),
/// with its RX ring mapped, joined to the fanout group if one is configured.
///
/// Errors name the interface and the step that failed.
pub fn open(interface: &str, config: &AfPacketConfig) -> io::Result<(AfPacketRx, AfPacketTx)> {
    let ctx = |step: &'static str| move |e: io::Error| sys::context(&e, BACKEND, interface, step);
    let ifindex = sys::interface_index(interface).map_err(ctx("if_nametoindex"))?;
    let request = ring_request(config).map_err(ctx("ring geometry"))?;
    // Protocol 0: the socket receives nothing until it is bound, after the ring is in place.
    // SAFETY: socket(2) takes no pointers.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(ctx("socket")(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a descriptor just opened and owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mac = hardware_address(&fd, interface).map_err(ctx("SIOCGIFHWADDR"))?;
    let version = libc::tpacket_versions::TPACKET_V3 as c_int;
    set_option(&fd, libc::PACKET_VERSION, &version).map_err(ctx("PACKET_VERSION"))?;
    set_option(&fd, libc::PACKET_RX_RING, &request).map_err(ctx("PACKET_RX_RING"))?;
    let ring = Ring::map(
        &fd,
        request.tp_block_size as usize,
        request.tp_block_nr as usize,
    )
    .map_err(ctx("mmap"))?;
    // Kernels before 4.20 lack the option; the RX walk skips outgoing frames itself.
    match set_option(&fd, libc::PACKET_IGNORE_OUTGOING, &1_i32) {
        Err(e) if e.raw_os_error() != Some(libc::ENOPROTOOPT) => {
            return Err(ctx("PACKET_IGNORE_OUTGOING")(e));
        }
        _ => {}
    }
    bind(&fd, ifindex).map_err(ctx("bind"))?;
    if let Some(group) = config.fanout_group {
        join_fanout(&fd, group).map_err(ctx("PACKET_FANOUT"))?;
    }
    let fd = Arc::new(fd);
    let burst = config.tx_burst.max(1);
    let rx = AfPacketRx {
        fd: fd.clone(),
        scratch: vec![0; ring.block_size].into_boxed_slice(),
        ring,
        block: 0,
        left: 0,
        offset: 0,
        ifindex,
        mac,
        stats: AfPacketRxStats::default(),
    };
    let tx = AfPacketTx {
        fd,
        buffers: vec![0; burst * FRAME_CAPACITY].into_boxed_slice(),
        queued: Vec::with_capacity(burst),
        burst,
        messages: Messages::new(burst),
        ifindex,
        mac,
    };
    Ok((rx, tx))
}

fn ring_request(config: &AfPacketConfig) -> io::Result<libc::tpacket_req3> {
    let frames = config
        .block_size
        .checked_div(config.frame_size)
        .and_then(|per_block| per_block.checked_mul(config.block_count))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} blocks of {} bytes in frames of {} bytes is not a ring",
                    config.block_count, config.block_size, config.frame_size
                ),
            )
        })?;
    Ok(libc::tpacket_req3 {
        tp_block_size: config.block_size,
        tp_block_nr: config.block_count,
        tp_frame_size: config.frame_size,
        tp_frame_nr: frames,
        tp_retire_blk_tov: u32::try_from(config.block_timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1),
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    })
}

/// Sets a `SOL_PACKET` option.
fn set_option<T>(fd: &OwnedFd, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T`, and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The interface's MAC address; an error if it is not an Ethernet interface, as the
/// dataplane parses every frame from an Ethernet header.
fn hardware_address(fd: &OwnedFd, interface: &str) -> io::Result<[u8; 6]> {
    // SAFETY: `ifreq` is plain C data, for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name = sys::interface_name(interface)?;
    // SAFETY: SIOCGIFHWADDR reads the name from and writes an address into `req`, which is
    // a live `ifreq`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled in `ifru_hwaddr`; any bytes are a valid `sockaddr`.
    let address = unsafe { req.ifr_ifru.ifru_hwaddr };
    if address.sa_family != libc::ARPHRD_ETHER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "not an Ethernet interface (hardware type {})",
                address.sa_family
            ),
        ));
    }
    let mut mac = [0; 6];
    for (m, c) in mac.iter_mut().zip(address.sa_data) {
        *m = c.to_ne_bytes()[0];
    }
    Ok(mac)
}

fn bind(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: ALL_PROTOCOLS,
        sll_ifindex: c_int::try_from(ifindex)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `address` is a live `sockaddr_ll`, and the length passed is its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            ptr::from_ref(&address).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Joins fanout `group` in hash mode. A fanout group has a kernel hook of its own, which does
/// not honour the members' `PACKET_IGNORE_OUTGOING` but a group flag that older kernels
/// refuse; without it the RX walk skips outgoing frames itself.
fn join_fanout(fd: &OwnedFd, group: u16) -> io::Result<()> {
    let with = |flags: c_uint| u32::from(group) | ((libc::PACKET_FANOUT_HASH | flags) << 16);
    match set_option(
        fd,
        libc::PACKET_FANOUT,
        &with(libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING),
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            set_option(fd, libc::PACKET_FANOUT, &with(0))
        }
        r => r,
    }
}

impl AfPacketRx {
    /// The interface's index, as reported in every [`RxFrame`].
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Frames skipped so far, by reason.
    pub fn stats(&self) -> AfPacketRxStats {
        self.stats
    }

    /// The kernel's counters since the previous call (reading them resets them).
    pub fn take_kernel_stats(&mut self) -> io::Result<KernelStats> {
        let mut stats = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `stats` is a live `tpacket_stats_v3` and `len` says its size.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                ptr::from_mut(&mut stats).cast(),
                &raw mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(KernelStats {
            packets: stats.tp_packets.into(),
            drops: stats.tp_drops.into(),
        })
    }

    /// Opens the next block if the kernel has handed it over; false if it has not.
    fn take_block(&mut self) -> bool {
        // Once around the ring at most: blocks without frames are given straight back.
        for _ in 0..self.ring.blocks {
            if self.ring.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                return false;
            }
            // SAFETY: the load above saw TP_STATUS_USER: the block is ours until released,
            // which happens after the last use of `block`.
            let block = unsafe { self.ring.block(self.block) };
            let frames = read_u32(block, BLOCK_FRAMES).unwrap_or(0);
            if let (1.., Some(first)) = (frames, read_u32(block, BLOCK_FIRST)) {
                self.left = frames;
                self.offset = first as usize;
                return true;
            }
            self.release();
        }
        false
    }

    /// Gives the current block back to the kernel and moves on to the next.
    fn release(&mut self) {
        self.ring
            .status(self.block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % self.ring.blocks;
        self.left = 0;
    }
}

// By hand: the buffers would print as hundreds of thousands of bytes.
impl fmt::Debug for AfPacketRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfPacketRx")
            .field("ifindex", &self.ifindex)
            .field("block", &self.block)
            .field("left", &self.left)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AfPacketTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfPacketTx")
            .field("ifindex", &self.ifindex)
            .field("burst", &self.burst)
            .field("pending", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl RxQueue for AfPacketRx {
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        let mut n = 0;
        while n < max && (self.left > 0 || self.take_block()) {
            // SAFETY: `left > 0`: `take_block` saw TP_STATUS_USER on this block, which is
            // released below, after the last use of `block`.
            let block = unsafe { self.ring.block(self.block) };
            let Some(frame) = Frame::at(block, self.offset) else {
                self.stats.corrupt_blocks += 1;
                self.release();
                continue;
            };
            let next = frame.next;
            if !frame.outgoing {
                match frame.wire_bytes(&mut self.scratch) {
                    Some(data) => {
                        f(RxFrame {
                            data,
                            ifindex: self.ifindex,
                            checksum_pending: frame.status & TP_STATUS_CSUMNOTREADY != 0,
                        });
                        n += 1;
                    }
                    None => self.stats.truncated += 1,
                }
            }
            self.left -= 1;
            if self.left == 0 {
                self.release();
            } else if let (1.., Some(next)) = (next, self.offset.checked_add(next)) {
                self.offset = next;
            } else {
                // More frames claimed, but no way to the next one.
                self.stats.corrupt_blocks += 1;
                self.release();
            }
        }
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if self.left > 0
            || self.ring.status(self.block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
        {
            return Ok(());
        }
        sys::wait_readable(self.fd.as_fd(), timeout)
    }
}

/// One frame of a block, as its header describes it.
#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    /// The bytes the ring holds, from the destination MAC on.
    data: &'a [u8],
    /// The frame's length before any snapping (without a stripped tag).
    len: u32,
    status: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    /// Sent by this host: not for the dataplane.
    outgoing: bool,
    /// Offset of the next frame's header from this one's; 0 for the last.
    next: usize,
}

impl<'a> Frame<'a> {
    /// The frame whose header starts at `offset` in `block`; `None` if the header or the
    /// bytes it points to do not lie inside the block.
    fn at(block: &'a [u8], offset: usize) -> Option<Self> {
        let header = block.get(offset..offset.checked_add(libc::TPACKET3_HDRLEN)?)?;
        let start = offset.checked_add(read_u16(header, FRAME_MAC)?.into())?;
        let snaplen = read_u32(header, FRAME_SNAPLEN)? as usize;
        Some(Self {
            data: block.get(start..start.checked_add(snaplen)?)?,
            len: read_u32(header, FRAME_LEN)?,
            status: read_u32(header, FRAME_STATUS)?,
            // The TCI is 16 bits in a 32-bit field.
            vlan_tci: read_u32(header, FRAME_VLAN_TCI)? as u16,
            vlan_tpid: read_u16(header, FRAME_VLAN_TPID)?,
            outgoing: *header.get(FRAME_PKTTYPE)? == libc::PACKET_OUTGOING,
            next: read_u32(header, FRAME_NEXT)? as usize,
        })
    }

    /// The frame as it was on the wire: the ring's bytes, or, if the kernel stripped a VLAN
    /// tag, the frame rebuilt with it in `scratch`. `None` if the ring holds it only in part.
    fn wire_bytes<'s>(&self, scratch: &'s mut [u8]) -> Option<&'s [u8]>
    where
        'a: 's,
    {
        if self.data.len() < self.len as usize {
            return None;
        }
        if self.status & libc::TP_STATUS_VLAN_VALID == 0 {
            return Some(self.data);
        }
        let tpid = if self.status & libc::TP_STATUS_VLAN_TPID_VALID == 0 {
            TPID_8021Q
        } else {
            self.vlan_tpid
        };
        let (macs, rest) = self.data.split_at_checked(MACS)?;
        let out = scratch.get_mut(..self.data.len() + TAG)?;
        let (out_macs, out_rest) = out.split_at_mut(MACS);
        let (tag, out_rest) = out_rest.split_at_mut(TAG);
        out_macs.copy_from_slice(macs);
        tag[..2].copy_from_slice(&tpid.to_be_bytes());
        tag[2..].copy_from_slice(&self.vlan_tci.to_be_bytes());
        out_rest.copy_from_slice(rest);
        Some(out)
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The mapped RX ring. The kernel owns each block whose status lacks `TP_STATUS_USER`; this
/// side reads a block only after seeing that bit (acquire) and writes nothing but the status
/// that hands the block back (release).
#[derive(Debug)]
struct Ring {
    base: NonNull<u8>,
    block_size: usize,
    blocks: usize,
}

// SAFETY: the mapping belongs to this value alone and is reached only through it, so moving
// it to another thread moves the only access with it.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring that `PACKET_RX_RING` set up on `fd`.
    fn map(fd: &OwnedFd, block_size: usize, blocks: usize) -> io::Result<Self> {
        let len = block_size
            .checked_mul(blocks)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))?;
        // SAFETY: a fresh shared mapping of the socket's ring at an address of the kernel's
        // choosing; nothing else is affected.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self {
            base,
            block_size,
            blocks,
        })
    }

    /// The status word of block `i`, which the kernel and this side hand the block over with.
    fn status(&self, i: usize) -> &AtomicU32 {
        debug_assert!(i < self.blocks);
        // SAFETY: `i < blocks`, so the word lies inside the mapping, which lives as long as
        // `self`; blocks start at page boundaries, so it is aligned for a u32. The kernel
        // accesses it with its own barriers, this side only atomically.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .as_ptr()
                    .add(i * self.block_size + BLOCK_STATUS)
                    .cast(),
            )
        }
    }

    /// The bytes of block `i`.
    ///
    /// # Safety
    ///
    /// The block's status must have shown `TP_STATUS_USER` (read with acquire), and the block
    /// must not be released while the slice lives: until then the kernel does not write to it.
    unsafe fn block(&self, i: usize) -> &[u8] {
        debug_assert!(i < self.blocks);
        // SAFETY: `i < blocks`, so the block lies inside the mapping, which lives as long as
        // `self`; the caller guarantees that the kernel leaves it alone meanwhile.
        unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(i * self.block_size), self.block_size)
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing borrows any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.block_size * self.blocks) };
    }
}

impl AfPacketTx {
    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's MAC address, the source address of the frames this queue sends.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

impl TxQueue for AfPacketTx {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let start = self.queued.len() * FRAME_CAPACITY;
        self.buffers.get_mut(start..start + FRAME_CAPACITY)
    }

    /// Queues the frame; ignored when the burst is full (no buffer was lent for it).
    fn queue(&mut self, len: usize, ifindex: u32) {
        if self.queued.len() < self.burst {
            let ifindex = if ifindex == self.ifindex { 0 } else { ifindex };
            self.queued.push((len.min(FRAME_CAPACITY), ifindex));
        }
    }

    /// Sends the burst with one `sendmmsg(2)`. Only a frame the kernel refuses costs another
    /// call, to send the frames behind it; a full or downed device drops the rest of the
    /// burst rather than blocking the worker.
    fn flush(&mut self) -> io::Result<usize> {
        let n = self.messages.fill(&mut self.buffers, &self.queued);
        self.queued.clear();
        let (mut at, mut sent) = (0, 0);
        while let Some(rest) = self
            .messages
            .headers
            .get_mut(at..n)
            .filter(|r| !r.is_empty())
        {
            // SAFETY: `fill` pointed these headers at this queue's own iovecs, addresses and
            // buffers, which stay put and untouched until the call returns.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if let Ok(k @ 1..) = usize::try_from(r) {
                at += k;
                sent += k;
                continue;
            }
            let e = io::Error::last_os_error();
            match SendFailure::of(&e) {
                SendFailure::Retry => {}
                SendFailure::Frame => at += 1,
                SendFailure::Burst => break,
                SendFailure::Fatal => return Err(e),
            }
        }
        Ok(sent)
    }

    fn pending(&self) -> usize {
        self.queued.len()
    }
}

/// The `sendmmsg(2)` arguments for one burst, allocated once and filled in by each flush.
struct Messages {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    addresses: Vec<libc::sockaddr_ll>,
}

// SAFETY: the raw pointers inside point only into the `AfPacketTx` that owns this value (its
// buffers and this value's own vectors), are rewritten before every use, and are read only by
// the kernel during `sendmmsg`; nothing is shared with another thread.
unsafe impl Send for Messages {}

impl Messages {
    fn new(burst: usize) -> Self {
        // SAFETY: `mmsghdr` and `iovec` are plain C data, for which all zeroes (null
        // pointers, zero lengths) is a valid value.
        let (header, iovec) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        let address = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0,
            sll_ifindex: 0,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        Self {
            headers: vec![header; burst],
            iovecs: vec![iovec; burst],
            addresses: vec![address; burst],
        }
    }

    /// Points one header per queued frame at its buffer and, for a frame leaving on another
    /// interface than the bound one, at that interface's address. Returns how many.
    fn fill(&mut self, buffers: &mut [u8], queued: &[(usize, u32)]) -> usize {
        let slots = self
            .headers
            .iter_mut()
            .zip(&mut self.iovecs)
            .zip(&mut self.addresses);
        let frames = queued.iter().zip(buffers.chunks_exact_mut(FRAME_CAPACITY));
        let mut n = 0;
        for (((header, iovec), address), (&(len, ifindex), buffer)) in slots.zip(frames) {
            *iovec = libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: len,
            };
            let message = &mut header.msg_hdr;
            message.msg_iov = iovec;
            message.msg_iovlen = 1;
            if ifindex == 0 {
                message.msg_name = ptr::null_mut();
                message.msg_namelen = 0;
            } else {
                // No interface has an index beyond `c_int`: the kernel refuses the frame.
                address.sll_ifindex = c_int::try_from(ifindex).unwrap_or(-1);
                message.msg_name = ptr::from_mut(address).cast();
                message.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            }
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 4096;
    const MAC_AT: u16 = 80;

    impl Ring {
        /// Anonymous memory laid out like a ring, for walking blocks written by the test.
        fn anonymous(blocks: usize) -> Self {
            // SAFETY: a fresh private anonymous mapping; nothing else is affected.
            let base = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    BLOCK * blocks,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            Self {
                base: NonNull::new(base.cast()).unwrap(),
                block_size: BLOCK,
                blocks,
            }
        }

        fn block_mut(&mut self, i: usize) -> &mut [u8] {
            assert!(i < self.blocks);
            // SAFETY: block `i` lies inside the mapping, and `&mut self` makes this the only
            // view of it (no kernel shares an anonymous mapping).
            unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(i * BLOCK), BLOCK) }
        }
    }

    /// What the kernel writes for one frame.
    #[derive(Clone, Copy)]
    struct Put<'a> {
        data: &'a [u8],
        len: u32,
        status: u32,
        tci: u16,
        tpid: u16,
        pkttype: u8,
        mac: u16,
    }

    impl<'a> Put<'a> {
        fn plain(data: &'a [u8]) -> Self {
            let len = data.len() as u32;
            Self {
                data,
                len,
                status: 0,
                tci: 0,
                tpid: 0,
                pkttype: 0,
                mac: MAC_AT,
            }
        }
    }

    /// Writes `frames` into block `i` back to back, and hands it to "user space".
    fn fill(ring: &mut Ring, i: usize, frames: &[Put<'_>], claimed: u32) {
        let block = ring.block_mut(i);
        block.fill(0);
        let first = 48;
        let mut at = first;
        for (k, p) in frames.iter().enumerate() {
            let size = (usize::from(MAC_AT) + p.data.len()).next_multiple_of(16);
            let next = if k + 1 == frames.len() {
                0
            } else {
                size as u32
            };
            let h = &mut block[at..];
            h[FRAME_NEXT..][..4].copy_from_slice(&next.to_ne_bytes());
            h[FRAME_SNAPLEN..][..4].copy_from_slice(&(p.data.len() as u32).to_ne_bytes());
            h[FRAME_LEN..][..4].copy_from_slice(&p.len.to_ne_bytes());
            h[FRAME_STATUS..][..4].copy_from_slice(&p.status.to_ne_bytes());
            h[FRAME_MAC..][..2].copy_from_slice(&p.mac.to_ne_bytes());
            h[FRAME_VLAN_TCI..][..4].copy_from_slice(&u32::from(p.tci).to_ne_bytes());
            h[FRAME_VLAN_TPID..][..2].copy_from_slice(&p.tpid.to_ne_bytes());
            h[FRAME_PKTTYPE] = p.pkttype;
            if let Some(d) = h.get_mut(usize::from(p.mac)..usize::from(p.mac) + p.data.len()) {
                d.copy_from_slice(p.data);
            }
            at += size;
        }
        block[BLOCK_FRAMES..][..4].copy_from_slice(&claimed.to_ne_bytes());
        block[BLOCK_FIRST..][..4].copy_from_slice(&(first as u32).to_ne_bytes());
        ring.status(i)
            .store(libc::TP_STATUS_USER, Ordering::Release);
    }

    fn rx(blocks: usize) -> AfPacketRx {
        let fd = std::fs::File::open("/dev/null").unwrap().into();
        AfPacketRx {
            fd: Arc::new(fd),
            ring: Ring::anonymous(blocks),
            block: 0,
            left: 0,
            offset: 0,
            scratch: vec![0; BLOCK].into_boxed_slice(),
            ifindex: 9,
            mac: [0; 6],
            stats: AfPacketRxStats::default(),
        }
    }

    fn burst(rx: &mut AfPacketRx, max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = rx
            .rx_burst(max, &mut |f| {
                assert_eq!(f.ifindex, 9);
                out.push(f.data.to_vec());
            })
            .unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn owned_by_kernel(rx: &AfPacketRx, i: usize) -> bool {
        rx.ring.status(i).load(Ordering::Acquire) == libc::TP_STATUS_KERNEL
    }

    const A: &[u8] = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\0frame-a";
    const B: &[u8] = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\0frame-b";

    #[test]
    fn blocks_are_walked_in_order_and_released_once_walked() {
        let mut rx = rx(4);
        let vlan = Put {
            status: libc::TP_STATUS_VLAN_VALID,
            tci: 0x2064,
            ..Put::plain(B)
        };
        let outgoing = Put {
            pkttype: libc::PACKET_OUTGOING,
            ..Put::plain(A)
        };
        fill(&mut rx.ring, 0, &[Put::plain(A), vlan, outgoing], 3);
        fill(&mut rx.ring, 1, &[Put::plain(B)], 1);
        assert_eq!(burst(&mut rx, 1), [A]);
        assert!(!owned_by_kernel(&rx, 0), "released with frames left");
        let mut tagged = B[..12].to_vec();
        tagged.extend([0x81, 0x00, 0x20, 0x64]);
        tagged.extend(&B[12..]);
        // The outgoing frame is skipped and not counted.
        assert_eq!(burst(&mut rx, 10), [tagged, B.to_vec()]);
        assert!(owned_by_kernel(&rx, 0) && owned_by_kernel(&rx, 1));
        assert!(burst(&mut rx, 10).is_empty());
        // Around the ring: block 2 and 3, then 0 again.
        for i in [2, 3, 0] {
            fill(&mut rx.ring, i, &[Put::plain(A)], 1);
        }
        assert_eq!(burst(&mut rx, 10), [A, A, A]);
        assert_eq!(rx.stats(), AfPacketRxStats::default());
    }

    #[test]
    fn a_stripped_tag_goes_back_with_its_own_tpid() {
        let mut rx = rx(1);
        let status = libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID;
        fill(
            &mut rx.ring,
            0,
            &[Put {
                status,
                tci: 100,
                tpid: 0x88a8,
                ..Put::plain(A)
            }],
            1,
        );
        let mut tagged = A[..12].to_vec();
        tagged.extend([0x88, 0xa8, 0x00, 0x64]);
        tagged.extend(&A[12..]);
        assert_eq!(burst(&mut rx, 10), [tagged]);
    }

    #[test]
    fn truncated_frames_are_counted_and_skipped() {
        let mut rx = rx(1);
        let vlan = Put {
            status: libc::TP_STATUS_VLAN_VALID,
            ..Put::plain(&A[..6])
        };
        fill(
            &mut rx.ring,
            0,
            &[
                Put {
                    len: 9000,
                    ..Put::plain(A)
                },
                vlan,
                Put::plain(B),
            ],
            3,
        );
        assert_eq!(burst(&mut rx, 10), [B]);
        assert_eq!(
            rx.stats(),
            AfPacketRxStats {
                truncated: 2,
                corrupt_blocks: 0
            }
        );
        assert!(owned_by_kernel(&rx, 0));
    }

    #[test]
    fn a_corrupt_block_is_given_back_and_the_next_one_read() {
        let mut rx = rx(3);
        // A frame whose bytes lie past the end of the block.
        fill(
            &mut rx.ring,
            0,
            &[
                Put {
                    mac: BLOCK as u16,
                    ..Put::plain(A)
                },
                Put::plain(B),
            ],
            2,
        );
        // More frames claimed than chained.
        fill(&mut rx.ring, 1, &[Put::plain(A)], 5);
        // No frames at all.
        fill(&mut rx.ring, 2, &[], 0);
        assert_eq!(burst(&mut rx, 10), [A]);
        assert_eq!(
            rx.stats(),
            AfPacketRxStats {
                truncated: 0,
                corrupt_blocks: 2
            }
        );
        assert!((0..3).all(|i| owned_by_kernel(&rx, i)));
        fill(&mut rx.ring, 0, &[Put::plain(B)], 1);
        assert_eq!(burst(&mut rx, 10), [B]);
    }

    #[test]
    fn bad_geometry_is_refused_before_the_kernel_sees_it() {
        let zero = AfPacketConfig {
            frame_size: 0,
            ..AfPacketConfig::default()
        };
        assert!(ring_request(&zero).is_err());
        let empty = AfPacketConfig {
            block_count: 0,
            ..AfPacketConfig::default()
        };
        assert!(ring_request(&empty).is_err());
        let r = ring_request(&AfPacketConfig::default()).unwrap();
        assert_eq!((r.tp_frame_nr, r.tp_retire_blk_tov), (128 * 64, 1));
    }
}
