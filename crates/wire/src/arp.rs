//! ARP for IPv4 over Ethernet (RFC 826): the only kind a DHCP server on a raw interface answers.

use core::net::Ipv4Addr;

use crate::{Error, MacAddr, Result, be16, ipv4_at};

mod field {
    pub(super) const HTYPE: usize = 0;
    pub(super) const PTYPE: usize = 2;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: usize = 6;
    pub(super) const SHA: usize = 8;
    pub(super) const SPA: usize = 14;
    pub(super) const THA: usize = 18;
    pub(super) const TPA: usize = 24;
    pub(super) const LEN: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::LEN;

/// ARP operation codes.
pub mod op {
    /// Who-has.
    pub const REQUEST: u16 = 1;
    /// Is-at.
    pub const REPLY: u16 = 2;
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps `buffer`, checks its length, and refuses ARP for anything but IPv4 over Ethernet.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        let b = p.buffer.as_ref();
        if be16(b, field::HTYPE) != 1 || be16(b, field::PTYPE) != 0x0800 {
            return Err(Error::Unsupported);
        }
        if b[field::HLEN] != 6 || b[field::PLEN] != 4 {
            return Err(Error::Malformed);
        }
        Ok(p)
    }

    /// Checks that the buffer holds a whole Ethernet/IPv4 ARP packet.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Operation ([`op::REQUEST`] or [`op::REPLY`]).
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[8], b[9], b[10], b[11], b[12], b[13]])
    }

    /// Sender protocol address.
    pub fn sender_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SPA)
    }

    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        let b = self.buffer.as_ref();
        MacAddr([b[18], b[19], b[20], b[21], b[22], b[23]])
    }

    /// Target protocol address.
    pub fn target_ip(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::TPA)
    }
}

/// Writes an Ethernet/IPv4 ARP packet of `operation` into the first [`PACKET_LEN`] bytes of `buf`.
pub fn write(
    buf: &mut [u8],
    operation: u16,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> Result<usize> {
    let b = buf.get_mut(..field::LEN).ok_or(Error::NoSpace)?;
    b[field::HTYPE..field::HTYPE + 2].copy_from_slice(&1u16.to_be_bytes());
    b[field::PTYPE..field::PTYPE + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    b[field::HLEN] = 6;
    b[field::PLEN] = 4;
    b[field::OPER..field::OPER + 2].copy_from_slice(&operation.to_be_bytes());
    b[field::SHA..field::SHA + 6].copy_from_slice(&sender.0.0);
    b[field::SPA..field::SPA + 4].copy_from_slice(&sender.1.octets());
    b[field::THA..field::THA + 6].copy_from_slice(&target.0.0);
    b[field::TPA..field::TPA + 4].copy_from_slice(&target.1.octets());
    Ok(field::LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut buf = [0u8; 28];
        let me = (MacAddr([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1));
        let you = (MacAddr([2, 0, 0, 0, 0, 2]), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(write(&mut buf, op::REPLY, me, you), Ok(28));
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.operation(), op::REPLY);
        assert_eq!((p.sender_mac(), p.sender_ip()), me);
        assert_eq!((p.target_mac(), p.target_ip()), you);
        assert_eq!(
            ArpPacket::new_checked(&buf[..27]).unwrap_err(),
            Error::Truncated
        );
        buf[3] = 0xdd; // ptype 0x08dd
        assert_eq!(
            ArpPacket::new_checked(&buf[..]).unwrap_err(),
            Error::Unsupported
        );
        assert_eq!(
            write(&mut [0u8; 27], op::REPLY, me, you),
            Err(Error::NoSpace)
        );
    }
}
