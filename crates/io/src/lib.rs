//! Burst packet I/O: the traits every backend implements, and the backends.
//!
//! `peregrine-io` moves Ethernet frames between a NIC queue (or a stand-in for one) and the
//! dataplane, in bursts, without copying in the fast path and without a syscall per packet. It
//! knows nothing of DHCP. Backends:
//!
//! - [`mem`]: an in-process pair of queues, for tests.
//! - [`udp`]: a UDP socket with `recvmmsg`/`sendmmsg` and `IP_PKTINFO`, for hosts where raw
//!   frames are not wanted. It presents datagrams as frames (synthetic Ethernet/IPv4/UDP
//!   headers written in front of the payload, which is received in place) so the dataplane has
//!   one path.
//! - [`afpacket`]: `AF_PACKET` with a `TPACKET_V3` mmap RX ring, batched TX, `PACKET_FANOUT`.
//! - [`tap`]: `/dev/net/tun` with `IFF_TAP | IFF_NO_PI`, multi-queue.
//!
//! A DPDK backend implements the same traits in `dpdk/`.
//!
//! # The contract
//!
//! RX hands each frame to a callback while it lies in the backend's buffer (a ring slot, an
//! mbuf); the frame is gone when the callback returns. TX lends a buffer of at least
//! [`FRAME_CAPACITY`] bytes for the next frame ([`TxQueue::buffer`]), the caller writes the
//! frame and queues it ([`TxQueue::queue`]), and [`TxQueue::flush`] sends what is queued in
//! one burst. RX and TX of one queue are separate objects, so a reply can be written while the
//! request is still borrowed.

use std::io;

#[cfg(target_os = "linux")]
pub mod afpacket;
pub mod mem;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
pub mod tap;
#[cfg(target_os = "linux")]
pub mod udp;

/// Bytes every TX buffer can hold: a full Ethernet frame with two VLAN tags.
pub const FRAME_CAPACITY: usize = 1522;

/// A received frame, borrowed from the backend for the duration of the RX callback.
#[derive(Debug, Clone, Copy)]
pub struct RxFrame<'a> {
    /// The frame, from the destination MAC to the end of the payload.
    pub data: &'a [u8],
    /// Index of the interface it arrived on (the OS ifindex; 0 where there is none).
    pub ifindex: u32,
    /// The UDP/TCP checksum is not filled in yet: the frame was sent by this host or through
    /// a virtual link with checksum offload (`TP_STATUS_CSUMNOTREADY`), so it cannot be verified
    /// and must not be held against the frame.
    pub checksum_pending: bool,
}

/// The receive side of one queue.
pub trait RxQueue {
    /// Hands up to `max` received frames to `f`, without blocking; returns how many.
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize>;

    /// Waits until frames may be ready or `timeout` passes (for an idle worker; a busy worker
    /// keeps polling `rx_burst`).
    fn wait(&mut self, timeout: std::time::Duration) -> io::Result<()>;

    /// Readies the queue to be polled by the calling thread, once, before its first burst
    /// (DPDK registers the thread with its EAL). Most queues need nothing.
    fn attach_thread(&mut self) {}
}

/// The transmit side of one queue.
pub trait TxQueue {
    /// A buffer for the next frame, at least [`FRAME_CAPACITY`] bytes; `None` when the burst is
    /// full and must be flushed first.
    fn buffer(&mut self) -> Option<&mut [u8]>;

    /// Queues the frame written into the first `len` bytes of the buffer last returned by
    /// [`Self::buffer`], to leave on interface `ifindex` (0: the queue's own interface).
    fn queue(&mut self, len: usize, ifindex: u32);

    /// Sends every queued frame; returns how many left. Frames the kernel refused are
    /// dropped and counted by the caller from the difference.
    fn flush(&mut self) -> io::Result<usize>;

    /// Frames queued and not yet flushed.
    fn pending(&self) -> usize;
}
