//! The fixed BOOTP header (RFC 951, RFC 2131 §2) and the DHCP magic cookie.

use core::net::Ipv4Addr;

use crate::{Error, MacAddr, Result, be16, be32, ipv4_at};

pub(crate) mod field {
    use core::ops::Range;
    pub(crate) const OP: usize = 0;
    pub(crate) const HTYPE: usize = 1;
    pub(crate) const HLEN: usize = 2;
    pub(crate) const HOPS: usize = 3;
    pub(crate) const XID: usize = 4;
    pub(crate) const SECS: usize = 8;
    pub(crate) const FLAGS: usize = 10;
    pub(crate) const CIADDR: usize = 12;
    pub(crate) const YIADDR: usize = 16;
    pub(crate) const SIADDR: usize = 20;
    pub(crate) const GIADDR: usize = 24;
    pub(crate) const CHADDR: Range<usize> = 28..44;
    pub(crate) const SNAME: Range<usize> = 44..108;
    pub(crate) const FILE: Range<usize> = 108..236;
    pub(crate) const MAGIC: Range<usize> = 236..240;
    pub(crate) const OPTIONS: usize = 240;
}

/// The magic cookie that opens the options area: 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the BOOTP header and magic cookie; options start here.
pub const OPTIONS_OFFSET: usize = field::OPTIONS;
/// The smallest BOOTP message relays and old clients accept (RFC 1542 §2.1); replies are padded to it.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The DHCP message size every client must accept: a 576-byte IP datagram less IP and UDP headers.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 576 - 20 - 8;
/// The broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;
/// `op` of a client's message.
pub const BOOTREQUEST: u8 = 1;
/// `op` of a server's message.
pub const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet.
pub const HTYPE_ETHERNET: u8 = 1;

/// A view of a DHCP message: the BOOTP header, the magic cookie and the raw options area.
///
/// For options, parse the message with [`super::DhcpMessage::parse`], which indexes them once.
#[derive(Debug, Clone)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// Wraps `buffer` without checking it.
    pub const fn new_unchecked(buffer: T) -> DhcpPacket<T> {
        DhcpPacket { buffer }
    }

    /// Wraps `buffer`, checks the length and the magic cookie.
    pub fn new_checked(buffer: T) -> Result<DhcpPacket<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        if p.buffer.as_ref()[field::MAGIC] != MAGIC_COOKIE {
            return Err(Error::BadMagic);
        }
        Ok(p)
    }

    /// Checks that the header and magic cookie are present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::OPTIONS {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Message op code: [`BOOTREQUEST`] or [`BOOTREPLY`].
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }

    /// Hardware address type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }

    /// Hardware address length as sent (may exceed 16 in hostile input; see [`Self::chaddr`]).
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Relay hop count.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        be32(self.buffer.as_ref(), field::XID)
    }

    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SECS)
    }

    /// Flags (only [`FLAG_BROADCAST`] is defined).
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS)
    }

    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    /// Client IP address (set when the client is bound, renewing or rebinding).
    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::CIADDR)
    }

    /// "Your" IP address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::YIADDR)
    }

    /// Next server IP address.
    pub fn siaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SIADDR)
    }

    /// Relay agent IP address.
    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::GIADDR)
    }

    /// The whole 16-byte `chaddr` field.
    pub fn chaddr_field(&self) -> &[u8; 16] {
        let b = &self.buffer.as_ref()[field::CHADDR];
        b.try_into().unwrap_or(&[0; 16])
    }

    /// The client hardware address: the first `hlen` bytes of `chaddr`, clamped to 16.
    pub fn chaddr(&self) -> &[u8] {
        let n = usize::from(self.hlen()).min(16);
        &self.buffer.as_ref()[field::CHADDR][..n]
    }

    /// The client MAC address, if `htype` is Ethernet and `hlen` is 6.
    pub fn client_mac(&self) -> Option<MacAddr> {
        if self.htype() == HTYPE_ETHERNET && self.hlen() == 6 {
            MacAddr::from_slice(self.chaddr())
        } else {
            None
        }
    }

    /// The `sname` field (64 bytes; a name or, with option 52, options).
    pub fn sname(&self) -> &[u8] {
        &self.buffer.as_ref()[field::SNAME]
    }

    /// The `file` field (128 bytes; a boot file name or, with option 52, options).
    pub fn file(&self) -> &[u8] {
        &self.buffer.as_ref()[field::FILE]
    }

    /// The options area after the magic cookie, to the end of the buffer.
    pub fn options_area(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }
}
