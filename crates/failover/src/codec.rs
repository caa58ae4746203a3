//! Framing of one failover message (D12 §6): the checked header view, the option iterator and
//! the writer that builds a message in a caller's buffer.
//!
//! ```text
//! 0      2        3              4        8        12 (payload offset)
//! | len  | type   | payload-off  | time   | xid    | [extra header] | code u16 | len u16 | value | ...
//! ```

use std::net::Ipv4Addr;

use crate::error::{Error, Result};

/// Length of the fixed message header.
pub const HEADER_LEN: usize = 12;
/// The most bytes one message may hold, header included (D12 §6.1).
pub const MAX_MESSAGE_LEN: usize = 2048;

mod field {
    use core::ops::Range;

    pub(crate) const LENGTH: Range<usize> = 0..2;
    pub(crate) const TYPE: usize = 2;
    pub(crate) const PAYLOAD_OFFSET: usize = 3;
    pub(crate) const TIME: Range<usize> = 4..8;
    pub(crate) const XID: Range<usize> = 8..12;
}

/// The message types of D12 §6.1, with the numbers on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// The secondary asks the primary for BACKUP addresses.
    PoolReq = 1,
    /// The primary's answer to POOLREQ: how many addresses it moved to BACKUP.
    PoolResp = 2,
    /// One or more binding transactions.
    BndUpd = 3,
    /// The answer to a BNDUPD, one per transaction, accepting or rejecting it.
    BndAck = 4,
    /// The primary's first message on a connection.
    Connect = 5,
    /// The secondary's answer to CONNECT.
    ConnectAck = 6,
    /// "Send me every binding" (a server that lost its database).
    UpdReqAll = 7,
    /// Every requested binding was sent and acknowledged.
    UpdDone = 8,
    /// "Send me the bindings I have not acknowledged."
    UpdReq = 9,
    /// The sender's server state.
    State = 10,
    /// Keepalive.
    Contact = 11,
    /// The last message before the sender closes the connection.
    Disconnect = 12,
}

impl MessageType {
    /// The message type of a wire value, or `None` for a value D12 does not define.
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => MessageType::PoolReq,
            2 => MessageType::PoolResp,
            3 => MessageType::BndUpd,
            4 => MessageType::BndAck,
            5 => MessageType::Connect,
            6 => MessageType::ConnectAck,
            7 => MessageType::UpdReqAll,
            8 => MessageType::UpdDone,
            9 => MessageType::UpdReq,
            10 => MessageType::State,
            11 => MessageType::Contact,
            12 => MessageType::Disconnect,
            _ => return None,
        })
    }

    /// The upper-case name the draft and tshark use.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::PoolReq => "POOLREQ",
            MessageType::PoolResp => "POOLRESP",
            MessageType::BndUpd => "BNDUPD",
            MessageType::BndAck => "BNDACK",
            MessageType::Connect => "CONNECT",
            MessageType::ConnectAck => "CONNECTACK",
            MessageType::UpdReqAll => "UPDREQALL",
            MessageType::UpdDone => "UPDDONE",
            MessageType::UpdReq => "UPDREQ",
            MessageType::State => "STATE",
            MessageType::Contact => "CONTACT",
            MessageType::Disconnect => "DISCONNECT",
        }
    }
}

/// Option codes of D12 §12 (ISC `includes/failover.h`), in code order.
pub mod option {
    /// u32: addresses moved to BACKUP (POOLRESP).
    pub const ADDRESSES_TRANSFERRED: u16 = 1;
    /// 4 bytes: the address a binding transaction is about; starts each transaction.
    pub const ASSIGNED_IP_ADDRESS: u16 = 2;
    /// u8: the binding status (FREE, ACTIVE, ...).
    pub const BINDING_STATUS: u16 = 3;
    /// The client's DHCP option 61, when it sent one.
    pub const CLIENT_IDENTIFIER: u16 = 4;
    /// Hardware type, then the hardware address.
    pub const CLIENT_HARDWARE_ADDRESS: u16 = 5;
    /// u32: client last transaction time.
    pub const CLIENT_LAST_TRANSACTION_TIME: u16 = 6;
    /// DHCP options the server sent the client.
    pub const CLIENT_REPLY_OPTIONS: u16 = 7;
    /// DHCP options the client sent.
    pub const CLIENT_REQUEST_OPTIONS: u16 = 8;
    /// DDNS flags and name.
    pub const DDNS: u16 = 9;
    /// u8: delayed service parameter.
    pub const DELAYED_SERVICE_PARAMETER: u16 = 10;
    /// 32 bytes: the load-balancing hash bucket assignment (CONNECT).
    pub const HASH_BUCKET_ASSIGNMENT: u16 = 11;
    /// u16 (ISC; D12 §12.12 says one byte but draws two): RESERVED and BOOTP flags.
    pub const IP_FLAGS: u16 = 12;
    /// u32: lease expiration time told to the client.
    pub const LEASE_EXPIRATION_TIME: u16 = 13;
    /// u32: the most BNDUPDs the sender accepts unacknowledged.
    pub const MAX_UNACKED_BNDUPD: u16 = 14;
    /// u32: maximum client lead time (CONNECT).
    pub const MCLT: u16 = 15;
    /// Text.
    pub const MESSAGE: u16 = 16;
    /// Digest type, then the digest.
    pub const MESSAGE_DIGEST: u16 = 17;
    /// u32: potential expiration time.
    pub const POTENTIAL_EXPIRATION_TIME: u16 = 18;
    /// u32: seconds without traffic after which the sender drops the connection.
    pub const RECEIVE_TIMER: u16 = 19;
    /// u8: protocol version (1).
    pub const PROTOCOL_VERSION: u16 = 20;
    /// u8: why a message or connection was refused.
    pub const REJECT_REASON: u16 = 21;
    /// The failover relationship's name.
    pub const RELATIONSHIP_NAME: u16 = 22;
    /// u8: server flags (bit 0: STARTUP).
    pub const SERVER_FLAGS: u16 = 23;
    /// u8: server state.
    pub const SERVER_STATE: u16 = 24;
    /// u32: when the server or binding entered its state.
    pub const START_TIME_OF_STATE: u16 = 25;
    /// u8: TLS reply (CONNECTACK).
    pub const TLS_REPLY: u16 = 26;
    /// u8: TLS request (CONNECT).
    pub const TLS_REQUEST: u16 = 27;
    /// The sender's vendor class (ISC: `isc-4.4.3-P1`).
    pub const VENDOR_CLASS_IDENTIFIER: u16 = 28;
    /// Vendor-specific options.
    pub const VENDOR_SPECIFIC_OPTIONS: u16 = 29;
}

/// A read-only view over one failover message, after the `check_len` contract of
/// `peregrine-wire`: after [`Packet::new_checked`] succeeds no accessor panics.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without looking at it; accessors may panic until [`Packet::check_len`] passes.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking every length the accessors depend on.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header, the declared length (12 to 2048, within the buffer) and the payload
    /// offset (within the message, not inside the fixed header). Bytes past the declared length
    /// are not part of the message (the next one, on a stream).
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let declared = usize::from(self.length());
        if declared < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if declared > MAX_MESSAGE_LEN {
            return Err(Error::Oversized);
        }
        if declared > buf.len() {
            return Err(Error::Truncated);
        }
        let offset = usize::from(self.payload_offset());
        if !(HEADER_LEN..=declared).contains(&offset) {
            return Err(Error::BadPayloadOffset);
        }
        Ok(())
    }

    /// The declared message length, header included.
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// The message type as sent (see [`MessageType::from_u8`]).
    pub fn message_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Where the options start. ISC sends 12 (D12 §6.1 prose says 8, an erratum); the received
    /// value is honoured, so an extra header is skipped.
    pub fn payload_offset(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_OFFSET]
    }

    /// The sender's clock at transmission, Unix seconds.
    pub fn time(&self) -> u32 {
        be32(self.buffer.as_ref(), field::TIME.start)
    }

    /// The transaction id; an answer copies its request's.
    pub fn xid(&self) -> u32 {
        be32(self.buffer.as_ref(), field::XID.start)
    }

    /// The message's options, in order.
    pub fn options(&self) -> Options<'_> {
        let buf = self.buffer.as_ref();
        Options::new(&buf[usize::from(self.payload_offset())..usize::from(self.length())])
    }
}

/// How many bytes of `stream` the message that starts it takes, from its length field; `None`
/// until two bytes have arrived. A length below the 12-byte header counts as 12, so a caller
/// that hands those bytes on (and the decoder refuses them) always makes progress.
pub fn frame_len(stream: &[u8]) -> Option<usize> {
    (stream.len() >= 2).then(|| usize::from(be16(stream, 0)).max(HEADER_LEN))
}

/// One option: its code and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Option code (see [`option`]).
    pub code: u16,
    /// The value, `len` bytes.
    pub data: &'a [u8],
}

/// Iterator over the options of an area; yields one [`Error::OptionOverrun`] and stops if an
/// option runs past the end.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates over the options in `area`.
    pub const fn new(area: &'a [u8]) -> Self {
        Options { rest: area }
    }

    /// What has not been read yet.
    pub const fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        self.rest = &[];
        if rest.len() < 4 {
            return Some(Err(Error::OptionOverrun));
        }
        let code = be16(rest, 0);
        let len = usize::from(be16(rest, 2));
        let Some(data) = rest.get(4..4 + len) else {
            return Some(Err(Error::OptionOverrun));
        };
        self.rest = &rest[4 + len..];
        Some(Ok(RawOption { code, data }))
    }
}

/// Builds one message in a caller's buffer: the header first, then options in the order they
/// are added; [`Writer::finish`] writes the length. No allocation; nothing past the buffer or
/// past 2048 bytes is written.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// Starts a message of `kind` with the sender's `time` and transaction id `xid`; the payload
    /// offset is 12, as ISC sends it.
    pub fn new(buf: &'a mut [u8], kind: MessageType, time: u32, xid: u32) -> Result<Self> {
        if buf.len() < HEADER_LEN {
            return Err(Error::NoSpace);
        }
        buf[field::TYPE] = kind as u8;
        buf[field::PAYLOAD_OFFSET] = HEADER_LEN as u8;
        buf[field::TIME].copy_from_slice(&time.to_be_bytes());
        buf[field::XID].copy_from_slice(&xid.to_be_bytes());
        Ok(Writer {
            buf,
            len: HEADER_LEN,
        })
    }

    /// Appends an option with `data` as its value.
    pub fn bytes(&mut self, code: u16, data: &[u8]) -> Result<&mut Self> {
        let end = self.len + 4 + data.len();
        let len = u16::try_from(data.len()).map_err(|_| Error::Oversized)?;
        if end > MAX_MESSAGE_LEN {
            return Err(Error::Oversized);
        }
        let out = self.buf.get_mut(self.len..end).ok_or(Error::NoSpace)?;
        out[0..2].copy_from_slice(&code.to_be_bytes());
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..].copy_from_slice(data);
        self.len = end;
        Ok(self)
    }

    /// Appends a one-byte option.
    pub fn u8(&mut self, code: u16, value: u8) -> Result<&mut Self> {
        self.bytes(code, &[value])
    }

    /// Appends a two-byte big-endian option.
    pub fn u16(&mut self, code: u16, value: u16) -> Result<&mut Self> {
        self.bytes(code, &value.to_be_bytes())
    }

    /// Appends a four-byte big-endian option (counts, seconds, Unix times).
    pub fn u32(&mut self, code: u16, value: u32) -> Result<&mut Self> {
        self.bytes(code, &value.to_be_bytes())
    }

    /// Appends an IPv4 address option.
    pub fn ip(&mut self, code: u16, value: Ipv4Addr) -> Result<&mut Self> {
        self.bytes(code, &value.octets())
    }

    /// Appends already-encoded options verbatim.
    pub fn raw(&mut self, options: &[u8]) -> Result<&mut Self> {
        let end = self.len + options.len();
        if end > MAX_MESSAGE_LEN {
            return Err(Error::Oversized);
        }
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::NoSpace)?
            .copy_from_slice(options);
        self.len = end;
        Ok(self)
    }

    /// Writes the length into the header and returns it.
    pub fn finish(self) -> usize {
        // `len` is at most MAX_MESSAGE_LEN, which fits the u16 field.
        self.buf[field::LENGTH].copy_from_slice(&(self.len as u16).to_be_bytes());
        self.len
    }
}

/// Reads a big-endian `u16` at `at`. Callers have checked the length.
pub(crate) fn be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian `u32` at `at`. Callers have checked the length.
pub(crate) fn be32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}
