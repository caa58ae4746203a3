//! IPv4 headers (RFC 791): options skipped by IHL, fragments recognised, header checksum.

use core::net::Ipv4Addr;

use crate::{Error, Result, be16, checksum, ipv4_at};

mod field {
    pub(super) const VER_IHL: usize = 0;
    pub(super) const TOTAL_LEN: usize = 2;
    pub(super) const IDENT: usize = 4;
    pub(super) const FLAGS_FRAG: usize = 6;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: usize = 10;
    pub(super) const SRC: usize = 12;
    pub(super) const DST: usize = 16;
    pub(super) const MIN_HEADER_LEN: usize = 20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = field::MIN_HEADER_LEN;

/// IP protocol numbers this crate recognises.
pub mod protocol {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// UDP.
    pub const UDP: u8 = 17;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` and checks version, header length and total length.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the version is 4, that `IHL >= 5`, that the header fits in the total length,
    /// and that the total length fits in the buffer (trailing link-layer padding is allowed).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < field::MIN_HEADER_LEN || total_len < header_len {
            return Err(Error::Malformed);
        }
        if b.len() < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Total length of header and payload.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// Whether this is a fragment of a larger datagram (more-fragments set, or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | 0x1fff) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::DST)
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The payload: after the header and its options, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

/// The fields of an option-less IPv4 header that a reply needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Header {
    /// Writes the header (20 bytes, DF set, identification 0, checksum filled) for a payload of
    /// `payload_len` bytes.
    pub fn write(&self, buf: &mut [u8], payload_len: usize) -> Result<usize> {
        let total =
            u16::try_from(field::MIN_HEADER_LEN + payload_len).map_err(|_| Error::NoSpace)?;
        let b = buf.get_mut(..field::MIN_HEADER_LEN).ok_or(Error::NoSpace)?;
        b[field::VER_IHL] = 0x45;
        b[1] = 0;
        b[field::TOTAL_LEN..field::TOTAL_LEN + 2].copy_from_slice(&total.to_be_bytes());
        // Atomic datagram (RFC 6864): DF set, so the identification carries no meaning.
        b[field::IDENT..field::IDENT + 2].copy_from_slice(&[0, 0]);
        b[field::FLAGS_FRAG..field::FLAGS_FRAG + 2].copy_from_slice(&FLAG_DF.to_be_bytes());
        b[field::TTL] = self.ttl;
        b[field::PROTOCOL] = self.protocol;
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
        b[field::SRC..field::SRC + 4].copy_from_slice(&self.src.octets());
        b[field::DST..field::DST + 4].copy_from_slice(&self.dst.octets());
        let sum = checksum::checksum(b);
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
        Ok(field::MIN_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_parse_roundtrip() {
        let mut buf = [0u8; 28];
        let h = Ipv4Header {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: protocol::UDP,
            ttl: 64,
        };
        h.write(&mut buf, 8).unwrap();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(
            (p.src_addr(), p.dst_addr(), p.ttl(), p.protocol()),
            (h.src, h.dst, 64, 17)
        );
        assert_eq!(p.payload().len(), 8);
        buf[8] = 63;
        assert!(!Ipv4Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn options_are_skipped_and_lengths_checked() {
        let mut buf = [0u8; 40];
        buf[0] = 0x46; // IHL 6: four bytes of options
        buf[2..4].copy_from_slice(&30u16.to_be_bytes());
        buf[24..30].copy_from_slice(b"abcdef");
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), b"abcdef");
        buf[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Malformed
        );
        buf[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Malformed
        );
        buf[0] = 0x45;
        buf[2..4].copy_from_slice(&41u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Truncated
        );
        buf[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&buf[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn fragments_recognised() {
        let mut buf = [0u8; 20];
        buf[0] = 0x45;
        buf[2..4].copy_from_slice(&20u16.to_be_bytes());
        for (flags, frag) in [
            (0x2000u16, true),
            (0x0001, true),
            (0x4000, false),
            (0, false),
        ] {
            buf[6..8].copy_from_slice(&flags.to_be_bytes());
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..]).unwrap().is_fragment(),
                frag
            );
        }
    }
}
