//! Bytes on the wire: zero-copy views over received frames and an in-place reply writer.
//!
//! `peregrine-wire` owns the byte layouts Peregrine speaks: Ethernet II with 802.1Q and QinQ tags,
//! ARP, IPv4, UDP and DHCPv4 (BOOTP header, options with RFC 3396 concatenation and option 52
//! overload, and the RFC 3046 relay agent information sub-options). It makes no decisions: which
//! address to offer, or whether a frame is worth answering, belongs to `peregrine-engine` and
//! `peregrine-dataplane`. It never allocates, never uses `unsafe`, and reads no clock.
//!
//! # The `check_len` contract
//!
//! Every header type is a view, `Packet<T: AsRef<[u8]>>`, over a buffer that it does not copy.
//!
//! - `Packet::new_unchecked(buffer)` wraps the buffer without looking at it. Accessors on such a
//!   view may panic if the buffer is too short.
//! - `Packet::check_len()` verifies every length the accessors depend on, including lengths that the
//!   header itself declares (IPv4 IHL and total length, UDP length, BOOTP `hlen`).
//! - `Packet::new_checked(buffer)` is `new_unchecked` followed by `check_len`.
//!
//! **After `new_checked` succeeds, no accessor panics, on any input.** Malformed content that is
//! not a length (a bad checksum, a fragment, an unknown option) is reported by the accessor that
//! reads it, as a [`Error`], never by a panic. The fuzz targets in `fuzz/` and the property tests
//! in `tests/` hold the crate to this.
//!
//! Field offsets live in a `mod field` inside each module, as `usize` constants and ranges.
//!
//! # Writing replies
//!
//! [`dhcp::DhcpWriter`] builds a DHCP message in a caller-provided buffer: the BOOTP header, options
//! (split into RFC 3396 fragments when longer than 255 bytes, moved into `file`/`sname` with
//! option 52 when the options area is full), `END`, and padding to the 300-byte BOOTP minimum.
//! [`frame::write_headers`] then writes Ethernet (with the request's VLAN tags), IPv4 and UDP
//! headers, checksums included, into the headroom in front of it, so a reply frame is built
//! without a copy. Both return the length written, or [`Error::NoSpace`] if it would not fit.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
extern crate std;

pub mod arp;
pub mod checksum;
pub mod dhcp;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod udp;

mod error;

pub use error::{Error, Result};
pub use ethernet::MacAddr;

/// Reads a big-endian `u16` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Reads an IPv4 address at `at`. Callers have checked the length.
#[inline]
pub(crate) fn ipv4_at(buf: &[u8], at: usize) -> core::net::Ipv4Addr {
    core::net::Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3])
}
