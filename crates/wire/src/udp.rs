//! UDP datagrams (RFC 768) with the IPv4 pseudo-header checksum.

use core::net::Ipv4Addr;

use crate::{Error, Result, be16, checksum, ipv4::protocol};

mod field {
    pub(super) const SRC_PORT: usize = 0;
    pub(super) const DST_PORT: usize = 2;
    pub(super) const LENGTH: usize = 4;
    pub(super) const CHECKSUM: usize = 6;
    pub(super) const HEADER_LEN: usize = 8;
}

/// Length of a UDP header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` and checks the header and the declared length.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the header is present, that the length field is at least 8, and that the
    /// buffer holds that many bytes.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < field::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length of header and payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the datagram has no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == field::HEADER_LEN
    }

    /// Checksum field; zero means the sender did not compute one.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the checksum verifies against the pseudo-header (a zero checksum always does).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let sum = checksum::pseudo_header(src, dst, protocol::UDP, len);
        let sum = checksum::accumulate(sum, &self.buffer.as_ref()[..usize::from(len)]);
        checksum::finish(sum) == 0
    }

    /// The payload, up to the declared length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..usize::from(self.len())]
    }
}

/// Writes a UDP header in front of the `payload_len` bytes that already follow it in `buf`
/// (`buf[8..8 + payload_len]`) and fills the checksum over pseudo-header, header and payload.
pub fn write_header(
    buf: &mut [u8],
    (src, src_port): (Ipv4Addr, u16),
    (dst, dst_port): (Ipv4Addr, u16),
    payload_len: usize,
) -> Result<usize> {
    write_header_with(buf, (src, src_port), (dst, dst_port), payload_len, true)
}

/// As [`write_header`], with checksum 0 ("none", RFC 768): for a datagram whose checksum was
/// verified on its way in (a UDP socket's), presented as a frame without reading it again.
pub fn write_header_unchecked(
    buf: &mut [u8],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload_len: usize,
) -> Result<usize> {
    write_header_with(buf, src, dst, payload_len, false)
}

fn write_header_with(
    buf: &mut [u8],
    (src, src_port): (Ipv4Addr, u16),
    (dst, dst_port): (Ipv4Addr, u16),
    payload_len: usize,
    checksum: bool,
) -> Result<usize> {
    let total = field::HEADER_LEN + payload_len;
    let len = u16::try_from(total).map_err(|_| Error::NoSpace)?;
    let b = buf.get_mut(..total).ok_or(Error::NoSpace)?;
    b[field::SRC_PORT..field::SRC_PORT + 2].copy_from_slice(&src_port.to_be_bytes());
    b[field::DST_PORT..field::DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    b[field::LENGTH..field::LENGTH + 2].copy_from_slice(&len.to_be_bytes());
    b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&[0, 0]);
    if !checksum {
        return Ok(field::HEADER_LEN);
    }
    let sum = checksum::accumulate(checksum::pseudo_header(src, dst, protocol::UDP, len), b);
    // A computed zero is sent as all ones: zero on the wire means "no checksum" (RFC 768).
    let sum = match checksum::finish(sum) {
        0 => 0xffff,
        s => s,
    };
    b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(field::HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    #[test]
    fn write_verify_and_zero_checksum() {
        let mut buf = [0u8; 13];
        buf[8..].copy_from_slice(b"hello");
        write_header(&mut buf, (A, 67), (B, 68), 5).unwrap();
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (67, 68, 13));
        assert!(p.verify_checksum(A, B));
        assert!(!p.verify_checksum(A, Ipv4Addr::new(192, 0, 2, 3)));
        assert_eq!(p.payload(), b"hello");
        buf[6..8].copy_from_slice(&[0, 0]);
        assert!(
            UdpPacket::new_checked(&buf[..])
                .unwrap()
                .verify_checksum(A, Ipv4Addr::BROADCAST)
        );
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Search a 2-byte payload whose checksum comes out as zero; it must be sent as 0xffff.
        let mut buf = [0u8; 10];
        let mut found = false;
        for v in 0..=u16::MAX {
            buf[8..].copy_from_slice(&v.to_be_bytes());
            write_header(&mut buf, (A, 1), (B, 2), 2).unwrap();
            let p = UdpPacket::new_unchecked(&buf[..]);
            assert_ne!(p.checksum(), 0);
            assert!(p.verify_checksum(A, B));
            if p.checksum() == 0xffff {
                found = true;
                break;
            }
        }
        assert!(found, "no payload produced the all-ones checksum");
    }

    #[test]
    fn lengths() {
        let mut buf = [0u8; 8];
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).unwrap_err(),
            Error::Malformed
        );
        buf[4..6].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&buf[..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&buf[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
