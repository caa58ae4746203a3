//! Building a DHCP message in place: header, options (with RFC 3396 splitting and option 52
//! overload), END and padding.

use core::net::Ipv4Addr;

use crate::{Error, Result};

use super::codes::{MessageType, opt};
use super::packet::{BOOTREPLY, DhcpPacket, MAGIC_COOKIE, MIN_MESSAGE_LEN, OPTIONS_OFFSET, field};

/// The fixed BOOTP fields of a message to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootpHeader {
    /// [`super::BOOTREQUEST`] or [`super::BOOTREPLY`].
    pub op: u8,
    /// Hardware address type.
    pub htype: u8,
    /// Hardware address length.
    pub hlen: u8,
    /// Relay hops.
    pub hops: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    /// Flags.
    pub flags: u16,
    /// Client address.
    pub ciaddr: Ipv4Addr,
    /// Address given to the client.
    pub yiaddr: Ipv4Addr,
    /// Next server.
    pub siaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address field.
    pub chaddr: [u8; 16],
}

impl BootpHeader {
    /// The header of a server reply to `request` (RFC 2131 table 3): `op` BOOTREPLY, `hops` and
    /// `secs` zero, and `xid`, `flags`, `giaddr`, `htype`, `hlen`, `chaddr` from the request.
    /// `ciaddr`, `yiaddr` and `siaddr` start at zero for the caller to set.
    pub fn reply_to<T: AsRef<[u8]>>(request: &DhcpPacket<T>) -> BootpHeader {
        BootpHeader {
            op: BOOTREPLY,
            htype: request.htype(),
            hlen: request.hlen(),
            hops: 0,
            xid: request.xid(),
            secs: 0,
            flags: request.flags(),
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: request.giaddr(),
            chaddr: *request.chaddr_field(),
        }
    }
}

/// Where options may go: the options field, then `file` and `sname` once it is full.
#[derive(Debug, Clone, Copy)]
struct Area {
    /// Next write position (absolute offset in the buffer).
    pos: usize,
    /// One past the last byte options may use, END excluded.
    end: usize,
    /// Whether this area may take options (file/sname are lost to a name once one is set).
    usable: bool,
    used: bool,
}

/// Writes a DHCP message into a caller-provided buffer without allocating.
///
/// Call [`Self::header`] once, then any `option*` methods, then [`Self::finish`], which writes
/// option 52 if `file` or `sname` took options, the END options, and pads to 300 bytes. An
/// option that does not fit where it is tried goes to the next area with room, so the
/// parameter request list order is kept within each area. Options longer than 255 bytes are
/// split into consecutive instances (RFC 3396).
#[derive(Debug)]
pub struct DhcpWriter<'b> {
    buf: &'b mut [u8],
    /// Options field, `file`, `sname`, in aggregate order.
    areas: [Area; 3],
    /// Room kept free in the options field for option 52 while `file` or `sname` may take options.
    main_reserve: usize,
}

const OVERLOAD_OPTION_LEN: usize = 3;

impl<'b> DhcpWriter<'b> {
    /// A writer for a message of at most `max_len` bytes in `buf`.
    ///
    /// `max_len` is what the peer accepts (option 57, at least 548 for a DHCP client); it is
    /// clamped to the buffer. Fails with [`Error::NoSpace`] below the 300-byte BOOTP minimum.
    pub fn new(buf: &'b mut [u8], max_len: usize) -> Result<DhcpWriter<'b>> {
        let limit = max_len.min(buf.len());
        if limit < MIN_MESSAGE_LEN {
            return Err(Error::NoSpace);
        }
        let area = |range: core::ops::Range<usize>| Area {
            pos: range.start,
            end: range.end - 1,
            usable: true,
            used: false,
        };
        Ok(DhcpWriter {
            buf: &mut buf[..limit],
            areas: [
                area(OPTIONS_OFFSET..limit),
                area(field::FILE),
                area(field::SNAME),
            ],
            main_reserve: OVERLOAD_OPTION_LEN,
        })
    }

    /// Writes the 236-byte BOOTP header and the magic cookie, zeroing `sname` and `file`.
    pub fn header(&mut self, h: &BootpHeader) {
        let b = &mut self.buf[..OPTIONS_OFFSET];
        b[field::OP] = h.op;
        b[field::HTYPE] = h.htype;
        b[field::HLEN] = h.hlen;
        b[field::HOPS] = h.hops;
        b[field::XID..field::XID + 4].copy_from_slice(&h.xid.to_be_bytes());
        b[field::SECS..field::SECS + 2].copy_from_slice(&h.secs.to_be_bytes());
        b[field::FLAGS..field::FLAGS + 2].copy_from_slice(&h.flags.to_be_bytes());
        b[field::CIADDR..field::CIADDR + 4].copy_from_slice(&h.ciaddr.octets());
        b[field::YIADDR..field::YIADDR + 4].copy_from_slice(&h.yiaddr.octets());
        b[field::SIADDR..field::SIADDR + 4].copy_from_slice(&h.siaddr.octets());
        b[field::GIADDR..field::GIADDR + 4].copy_from_slice(&h.giaddr.octets());
        b[field::CHADDR].copy_from_slice(&h.chaddr);
        b[field::SNAME.start..field::FILE.end].fill(0);
        b[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
    }

    /// Puts a server host name in `sname`; `sname` then carries no options.
    pub fn sname(&mut self, name: &[u8]) -> Result<()> {
        self.name_field(2, field::SNAME, name)
    }

    /// Puts a boot file name in `file`; `file` then carries no options.
    pub fn file(&mut self, name: &[u8]) -> Result<()> {
        self.name_field(1, field::FILE, name)
    }

    fn name_field(
        &mut self,
        area: usize,
        range: core::ops::Range<usize>,
        name: &[u8],
    ) -> Result<()> {
        // The name must leave a terminating zero, and the area must not hold options already.
        if name.len() >= range.len() || self.areas[area].used {
            return Err(Error::NoSpace);
        }
        self.areas[area].usable = false;
        if !self.areas[1].usable && !self.areas[2].usable {
            self.main_reserve = 0;
        }
        self.buf[range.start..range.start + name.len()].copy_from_slice(name);
        Ok(())
    }

    /// Appends option `code` with `data`, split into 255-byte instances if longer.
    #[inline]
    pub fn option(&mut self, code: u8, data: &[u8]) -> Result<()> {
        debug_assert!(code != opt::PAD && code != opt::END);
        // Fast path, nearly every option of every reply: one instance, in the options field.
        let main = &mut self.areas[0];
        let end = main.pos + 2 + data.len();
        if data.len() <= 255 && end + self.main_reserve <= main.end {
            let dst = &mut self.buf[main.pos..end];
            dst[0] = code;
            dst[1] = data.len() as u8;
            dst[2..].copy_from_slice(data);
            main.pos = end;
            main.used = true;
            return Ok(());
        }
        self.option_anywhere(code, data)
    }

    /// The general case: split into instances, and placed in the first area with room.
    fn option_anywhere(&mut self, code: u8, data: &[u8]) -> Result<()> {
        let instances = data.len().div_ceil(255).max(1);
        let encoded = data.len() + 2 * instances;
        let area = self.area_for(encoded)?;
        let a = &mut self.areas[area];
        let mut pos = a.pos;
        let mut chunks = data.chunks(255);
        for _ in 0..instances {
            let chunk = chunks.next().unwrap_or(&[]);
            self.buf[pos] = code;
            self.buf[pos + 1] = chunk.len() as u8;
            self.buf[pos + 2..pos + 2 + chunk.len()].copy_from_slice(chunk);
            pos += 2 + chunk.len();
        }
        a.pos = pos;
        a.used = true;
        Ok(())
    }

    /// The first area with room for `encoded` bytes.
    fn area_for(&self, encoded: usize) -> Result<usize> {
        let overload_possible = self.areas[1..].iter().any(|a| a.usable);
        for (i, a) in self.areas.iter().enumerate() {
            // Keep room in the options field for option 52 while file/sname could still be used.
            let reserve = if i == 0 && overload_possible {
                OVERLOAD_OPTION_LEN
            } else {
                0
            };
            if a.usable && a.pos + encoded + reserve <= a.end {
                return Ok(i);
            }
        }
        Err(Error::NoSpace)
    }

    /// Option 53.
    #[inline]
    pub fn message_type(&mut self, t: MessageType) -> Result<()> {
        self.option(opt::MESSAGE_TYPE, &[t as u8])
    }

    /// An option holding one IPv4 address.
    #[inline]
    pub fn option_ipv4(&mut self, code: u8, addr: Ipv4Addr) -> Result<()> {
        self.option(code, &addr.octets())
    }

    /// An option holding one big-endian `u32` (lease, T1, T2 times).
    #[inline]
    pub fn option_u32(&mut self, code: u8, v: u32) -> Result<()> {
        self.option(code, &v.to_be_bytes())
    }

    /// Bytes of options written so far in the options field (without END).
    pub fn options_len(&self) -> usize {
        self.areas[0].pos - OPTIONS_OFFSET
    }

    /// Terminates the message and returns its length.
    pub fn finish(self) -> Result<usize> {
        let DhcpWriter { buf, mut areas, .. } = self;
        let mut overload = 0;
        for (i, bit) in [(1, 1u8), (2, 2u8)] {
            if areas[i].used {
                overload |= bit;
                buf[areas[i].pos] = opt::END;
            }
        }
        let main = &mut areas[0];
        if overload != 0 {
            buf[main.pos..main.pos + 3].copy_from_slice(&[opt::OVERLOAD, 1, overload]);
            main.pos += 3;
        }
        buf[main.pos] = opt::END;
        let end = main.pos + 1;
        let len = end.max(MIN_MESSAGE_LEN);
        buf[end..len].fill(opt::PAD);
        Ok(len)
    }
}
