//! Typed failover messages: decoded from a checked [`Packet`] without allocating (values borrow
//! the received bytes), and encoded into a caller's buffer with the options in the order ISC
//! dhcpd 4.4 emits them, so that a message ISC sent re-encodes to the same bytes.
//!
//! Decoding is lenient where the draft and ISC allow it (unknown options are skipped by their
//! length, an extra header is skipped by the payload offset, BNDUPD and BNDACK may batch several
//! transactions) and strict where ISC is (a known option's length, a repeated option).

use std::net::Ipv4Addr;

use crate::binding::BindingStatus;
use crate::codec::{MessageType, Options, Packet, RawOption, Writer, be32, option};
use crate::error::{Error, Result};
use crate::state::ServerState;

/// The per-message header fields a sender chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The sender's clock at transmission, Unix seconds.
    pub time: u32,
    /// Transaction id: unique per sender and connection; an answer copies its request's.
    pub xid: u32,
}

/// A reject reason (D12 §12.21): why a binding update, a connection or a session was refused.
/// Kept as the wire value, so that a code this version does not name still round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u8);

impl RejectReason {
    /// The address is not in a pool shared with the partner.
    pub const ILLEGAL_IP_ADDRESS: Self = Self(1);
    /// The address is in use by another client.
    pub const FATAL_CONFLICT: Self = Self(2);
    /// A required option of the update is missing.
    pub const MISSING_BINDING_INFORMATION: Self = Self(3);
    /// The clocks of the partners differ too much.
    pub const CONNECTION_TIME_MISMATCH: Self = Self(4);
    /// The MCLT offered does not match the one configured.
    pub const INVALID_MCLT: Self = Self(5);
    /// Unknown or unspecified.
    pub const UNKNOWN: Self = Self(6);
    /// A connection for this relationship already exists.
    pub const DUPLICATE_CONNECTION: Self = Self(7);
    /// The partner is not configured (relationship name or address).
    pub const INVALID_PARTNER: Self = Self(8);
    /// TLS not supported.
    pub const TLS_NOT_SUPPORTED: Self = Self(9);
    /// TLS supported but not configured.
    pub const TLS_NOT_CONFIGURED: Self = Self(10);
    /// TLS required but not offered.
    pub const TLS_REQUIRED: Self = Self(11);
    /// The message digest type is not supported.
    pub const DIGEST_NOT_SUPPORTED: Self = Self(12);
    /// A message digest is not configured.
    pub const DIGEST_NOT_CONFIGURED: Self = Self(13);
    /// The protocol versions differ.
    pub const VERSION_MISMATCH: Self = Self(14);
    /// The receiver holds newer information about the binding.
    pub const OUTDATED_BINDING_INFORMATION: Self = Self(15);
    /// The receiver holds more critical information (ISC: its own update is in flight).
    pub const LESS_CRITICAL_BINDING_INFORMATION: Self = Self(16);
    /// Nothing was received for the receive timer.
    pub const NO_TRAFFIC_WITHIN_TIMEOUT: Self = Self(17);
    /// The hash bucket assignments of the partners conflict.
    pub const HASH_BUCKET_ASSIGNMENT_CONFLICT: Self = Self(18);
    /// A reserved address was sent for one this server does not reserve.
    pub const IP_NOT_RESERVED: Self = Self(19);
    /// The message digest does not verify.
    pub const DIGEST_MISMATCH: Self = Self(20);
    /// A message digest was expected and is missing.
    pub const MISSING_DIGEST: Self = Self(21);
    /// Unknown (ISC's catch-all).
    pub const UNKNOWN_254: Self = Self(254);

    /// A short lower-case name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self.0 {
            1 => "illegal_ip_address",
            2 => "fatal_conflict",
            3 => "missing_binding_information",
            4 => "connection_time_mismatch",
            5 => "invalid_mclt",
            7 => "duplicate_connection",
            8 => "invalid_partner",
            9 => "tls_not_supported",
            10 => "tls_not_configured",
            11 => "tls_required",
            12 => "digest_not_supported",
            13 => "digest_not_configured",
            14 => "version_mismatch",
            15 => "outdated_binding_information",
            16 => "less_critical_binding_information",
            17 => "no_traffic_within_timeout",
            18 => "hash_bucket_assignment_conflict",
            19 => "ip_not_reserved",
            20 => "digest_mismatch",
            21 => "missing_digest",
            _ => "unknown",
        }
    }
}

/// A client hardware address as failover carries it: the hardware type, then the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HardwareAddr<'a> {
    /// ARP hardware type (1 = Ethernet).
    pub htype: u8,
    /// The address, at most 16 bytes (BOOTP `chaddr`).
    pub addr: &'a [u8],
}

/// One binding transaction of a BNDUPD (D12 §7.1, table 7.1-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingUpdate<'a> {
    /// The address the transaction is about.
    pub address: Ipv4Addr,
    /// Its new status.
    pub status: BindingStatus,
    /// The client's option 61, if it sent one.
    pub client_id: Option<&'a [u8]>,
    /// The client's hardware address.
    pub hardware: Option<HardwareAddr<'a>>,
    /// Lease expiration time told to the client (Unix seconds).
    pub lease_expiration: Option<u32>,
    /// Potential expiration time: how far the sender may extend the lease without asking again.
    pub potential_expiration: Option<u32>,
    /// When the binding entered its status.
    pub start_time_of_state: Option<u32>,
    /// Client last transaction time.
    pub client_last_transaction: Option<u32>,
    /// IP flags: bit 0 RESERVED, bit 1 BOOTP. ISC sends the option only when non-zero.
    pub ip_flags: Option<u16>,
    /// DHCP options the client sent (D12 §7.1.1; ISC sends none).
    pub client_request_options: Option<&'a [u8]>,
    /// DHCP options the server sent the client (ISC sends none).
    pub client_reply_options: Option<&'a [u8]>,
    /// DDNS flags and name, as received.
    pub ddns: Option<&'a [u8]>,
}

impl<'a> BindingUpdate<'a> {
    /// An update with only the address and status; the other fields are set by the caller.
    pub const fn new(address: Ipv4Addr, status: BindingStatus) -> Self {
        BindingUpdate {
            address,
            status,
            client_id: None,
            hardware: None,
            lease_expiration: None,
            potential_expiration: None,
            start_time_of_state: None,
            client_last_transaction: None,
            ip_flags: None,
            client_request_options: None,
            client_reply_options: None,
            ddns: None,
        }
    }

    fn parse(transaction: &'a [u8]) -> Result<Self> {
        let mut address = None;
        let mut status = None;
        let mut update = BindingUpdate::new(Ipv4Addr::UNSPECIFIED, BindingStatus::Free);
        for opt in Options::new(transaction) {
            let opt = opt?;
            match opt.code {
                option::ASSIGNED_IP_ADDRESS => put(&mut address, &opt, ip_of(&opt)?)?,
                option::BINDING_STATUS => {
                    let value =
                        BindingStatus::from_u8(u8_of(&opt)?).ok_or(Error::BadValue(opt.code))?;
                    put(&mut status, &opt, value)?;
                }
                option::CLIENT_IDENTIFIER => put(&mut update.client_id, &opt, opt.data)?,
                option::CLIENT_HARDWARE_ADDRESS => {
                    let (&htype, addr) = opt
                        .data
                        .split_first()
                        .ok_or(Error::OptionLength(opt.code))?;
                    if addr.len() > 16 {
                        return Err(Error::OptionLength(opt.code));
                    }
                    put(&mut update.hardware, &opt, HardwareAddr { htype, addr })?;
                }
                option::LEASE_EXPIRATION_TIME => {
                    put(&mut update.lease_expiration, &opt, u32_of(&opt)?)?;
                }
                option::POTENTIAL_EXPIRATION_TIME => {
                    put(&mut update.potential_expiration, &opt, u32_of(&opt)?)?;
                }
                option::START_TIME_OF_STATE => {
                    put(&mut update.start_time_of_state, &opt, u32_of(&opt)?)?;
                }
                option::CLIENT_LAST_TRANSACTION_TIME => {
                    put(&mut update.client_last_transaction, &opt, u32_of(&opt)?)?;
                }
                option::IP_FLAGS => {
                    // ISC sends two bytes; D12 §12.12 says one. Either is read.
                    let flags = match *opt.data {
                        [a, b] => u16::from_be_bytes([a, b]),
                        [a] => u16::from(a),
                        _ => return Err(Error::OptionLength(opt.code)),
                    };
                    put(&mut update.ip_flags, &opt, flags)?;
                }
                option::CLIENT_REQUEST_OPTIONS => {
                    put(&mut update.client_request_options, &opt, opt.data)?;
                }
                option::CLIENT_REPLY_OPTIONS => {
                    put(&mut update.client_reply_options, &opt, opt.data)?;
                }
                option::DDNS => put(&mut update.ddns, &opt, opt.data)?,
                _ => {}
            }
        }
        update.address = address.ok_or(Error::MissingOption(option::ASSIGNED_IP_ADDRESS))?;
        update.status = status.ok_or(Error::MissingOption(option::BINDING_STATUS))?;
        Ok(update)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ip(option::ASSIGNED_IP_ADDRESS, self.address)?;
        w.u8(option::BINDING_STATUS, self.status as u8)?;
        if let Some(id) = self.client_id {
            w.bytes(option::CLIENT_IDENTIFIER, id)?;
        }
        if let Some(hw) = self.hardware {
            let mut value = [0u8; 17];
            let len = hw.addr.len().min(16);
            value[0] = hw.htype;
            value[1..=len].copy_from_slice(&hw.addr[..len]);
            w.bytes(option::CLIENT_HARDWARE_ADDRESS, &value[..=len])?;
        }
        let times = [
            (option::LEASE_EXPIRATION_TIME, self.lease_expiration),
            (option::POTENTIAL_EXPIRATION_TIME, self.potential_expiration),
            (option::START_TIME_OF_STATE, self.start_time_of_state),
            (
                option::CLIENT_LAST_TRANSACTION_TIME,
                self.client_last_transaction,
            ),
        ];
        for (code, time) in times {
            if let Some(t) = time {
                w.u32(code, t)?;
            }
        }
        if let Some(flags) = self.ip_flags {
            w.u16(option::IP_FLAGS, flags)?;
        }
        let blobs = [
            (option::CLIENT_REQUEST_OPTIONS, self.client_request_options),
            (option::CLIENT_REPLY_OPTIONS, self.client_reply_options),
            (option::DDNS, self.ddns),
        ];
        for (code, blob) in blobs {
            if let Some(b) = blob {
                w.bytes(code, b)?;
            }
        }
        Ok(())
    }

    /// Encodes a BNDUPD holding this one transaction (what ISC accepts: it refuses batches).
    pub fn encode(&self, header: Header, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf, MessageType::BndUpd, header.time, header.xid)?;
        self.write(&mut w)?;
        Ok(w.finish())
    }
}

/// One transaction of a BNDACK (D12 §7.2): accepted unless it carries a reject reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingAck<'a> {
    /// The address of the acknowledged update.
    pub address: Ipv4Addr,
    /// Why the update was refused; `None` if it was accepted.
    pub reject: Option<RejectReason>,
    /// A human-readable explanation of a refusal.
    pub message: Option<&'a [u8]>,
}

impl<'a> BindingAck<'a> {
    fn parse(transaction: &'a [u8]) -> Result<Self> {
        let mut address = None;
        let mut ack = BindingAck {
            address: Ipv4Addr::UNSPECIFIED,
            reject: None,
            message: None,
        };
        for opt in Options::new(transaction) {
            let opt = opt?;
            match opt.code {
                option::ASSIGNED_IP_ADDRESS => put(&mut address, &opt, ip_of(&opt)?)?,
                option::REJECT_REASON => put(&mut ack.reject, &opt, RejectReason(u8_of(&opt)?))?,
                option::MESSAGE => put(&mut ack.message, &opt, opt.data)?,
                _ => {}
            }
        }
        ack.address = address.ok_or(Error::MissingOption(option::ASSIGNED_IP_ADDRESS))?;
        Ok(ack)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ip(option::ASSIGNED_IP_ADDRESS, self.address)?;
        if let Some(reason) = self.reject {
            w.u8(option::REJECT_REASON, reason.0)?;
        }
        if let Some(message) = self.message {
            w.bytes(option::MESSAGE, message)?;
        }
        Ok(())
    }

    /// Encodes a BNDACK holding this one transaction; `header.xid` must be the BNDUPD's.
    pub fn encode(&self, header: Header, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf, MessageType::BndAck, header.time, header.xid)?;
        self.write(&mut w)?;
        Ok(w.finish())
    }
}

/// The transactions of a received BNDUPD or BNDACK, each starting at an assigned-IP-address
/// option. Every transaction was parsed once by [`decode`], so iterating cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    options: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The binding updates of a BNDUPD.
    pub fn updates(&self) -> impl Iterator<Item = BindingUpdate<'a>> + use<'a> {
        Transactions::new(self.options).map_while(|t| t.and_then(BindingUpdate::parse).ok())
    }

    /// The acknowledgements of a BNDACK.
    pub fn acks(&self) -> impl Iterator<Item = BindingAck<'a>> + use<'a> {
        Transactions::new(self.options).map_while(|t| t.and_then(BindingAck::parse).ok())
    }

    /// How many transactions the message holds.
    pub fn len(&self) -> usize {
        Transactions::new(self.options).count()
    }

    /// Whether the message holds no transaction (never, after [`decode`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded options, as received.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.options
    }
}

/// Splits an options area into transactions: from one assigned-IP-address option to the next.
/// Options before the first (a message digest) belong to the message, not to a transaction.
struct Transactions<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Transactions<'a> {
    fn new(area: &'a [u8]) -> Self {
        let mut options = Options::new(area);
        let rest = loop {
            let before = options.remaining();
            match options.next() {
                // An overrun is reported by the first `next`; nothing before it is a transaction.
                Some(Ok(o)) if o.code != option::ASSIGNED_IP_ADDRESS => {}
                Some(_) => break before,
                None => break &[][..],
            }
        };
        Transactions {
            rest,
            failed: false,
        }
    }
}

impl<'a> Iterator for Transactions<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let start = self.rest;
        let mut options = Options::new(start);
        if let Some(Err(e)) = options.next() {
            self.failed = true;
            return Some(Err(e));
        }
        loop {
            let before = options.remaining();
            match options.next() {
                Some(Ok(o)) if o.code == option::ASSIGNED_IP_ADDRESS => {
                    self.rest = before;
                    return Some(Ok(&start[..start.len() - before.len()]));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                None => {
                    self.rest = &[];
                    return Some(Ok(start));
                }
            }
        }
    }
}

/// CONNECT (D12 §7.8, table 7.8-1): the primary's first message on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connect<'a> {
    /// The relationship's name; must match the receiver's.
    pub relationship_name: &'a [u8],
    /// How many BNDUPDs the sender accepts unacknowledged.
    pub max_unacked_bndupd: u32,
    /// Seconds without traffic after which the sender drops the connection.
    pub receive_timer: u32,
    /// The sender's vendor class (`isc-4.4.3-P1`).
    pub vendor_class: Option<&'a [u8]>,
    /// Protocol version, 1.
    pub protocol_version: u8,
    /// TLS request: 0 none, 1 wanted, 2 required. ISC sends 0.
    pub tls_request: Option<u8>,
    /// Maximum client lead time, seconds.
    pub mclt: u32,
    /// The 256-bit load-balancing hash bucket assignment.
    pub hash_bucket_assignment: Option<&'a [u8; 32]>,
}

impl<'a> Connect<'a> {
    fn parse(area: &'a [u8]) -> Result<Self> {
        let (mut name, mut unacked, mut timer, mut version, mut mclt) =
            (None, None, None, None, None);
        let (mut vendor, mut tls, mut hba) = (None, None, None);
        for opt in Options::new(area) {
            let opt = opt?;
            match opt.code {
                option::RELATIONSHIP_NAME => put(&mut name, &opt, opt.data)?,
                option::MAX_UNACKED_BNDUPD => put(&mut unacked, &opt, u32_of(&opt)?)?,
                option::RECEIVE_TIMER => put(&mut timer, &opt, u32_of(&opt)?)?,
                option::VENDOR_CLASS_IDENTIFIER => put(&mut vendor, &opt, opt.data)?,
                option::PROTOCOL_VERSION => put(&mut version, &opt, u8_of(&opt)?)?,
                option::TLS_REQUEST => put(&mut tls, &opt, u8_of(&opt)?)?,
                option::MCLT => put(&mut mclt, &opt, u32_of(&opt)?)?,
                option::HASH_BUCKET_ASSIGNMENT => {
                    let value: &[u8; 32] = opt
                        .data
                        .try_into()
                        .map_err(|_| Error::OptionLength(opt.code))?;
                    put(&mut hba, &opt, value)?;
                }
                _ => {}
            }
        }
        Ok(Connect {
            relationship_name: required(name, option::RELATIONSHIP_NAME)?,
            max_unacked_bndupd: required(unacked, option::MAX_UNACKED_BNDUPD)?,
            receive_timer: required(timer, option::RECEIVE_TIMER)?,
            vendor_class: vendor,
            protocol_version: required(version, option::PROTOCOL_VERSION)?,
            tls_request: tls,
            mclt: required(mclt, option::MCLT)?,
            hash_bucket_assignment: hba,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.bytes(option::RELATIONSHIP_NAME, self.relationship_name)?;
        w.u32(option::MAX_UNACKED_BNDUPD, self.max_unacked_bndupd)?;
        w.u32(option::RECEIVE_TIMER, self.receive_timer)?;
        if let Some(vendor) = self.vendor_class {
            w.bytes(option::VENDOR_CLASS_IDENTIFIER, vendor)?;
        }
        w.u8(option::PROTOCOL_VERSION, self.protocol_version)?;
        if let Some(tls) = self.tls_request {
            w.u8(option::TLS_REQUEST, tls)?;
        }
        w.u32(option::MCLT, self.mclt)?;
        if let Some(hba) = self.hash_bucket_assignment {
            w.bytes(option::HASH_BUCKET_ASSIGNMENT, hba)?;
        }
        Ok(())
    }
}

/// CONNECTACK (D12 §7.9, table 7.9-1): the secondary's answer; a refusal carries a reject reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectAck<'a> {
    /// The relationship's name.
    pub relationship_name: Option<&'a [u8]>,
    /// How many BNDUPDs the sender accepts unacknowledged.
    pub max_unacked_bndupd: Option<u32>,
    /// Seconds without traffic after which the sender drops the connection.
    pub receive_timer: Option<u32>,
    /// The sender's vendor class.
    pub vendor_class: Option<&'a [u8]>,
    /// Protocol version, 1.
    pub protocol_version: Option<u8>,
    /// TLS reply; ISC sends 0.
    pub tls_reply: Option<u8>,
    /// Why the connection is refused; `None` if it is accepted.
    pub reject: Option<RejectReason>,
    /// A human-readable explanation of a refusal.
    pub message: Option<&'a [u8]>,
}

impl<'a> ConnectAck<'a> {
    fn parse(area: &'a [u8]) -> Result<Self> {
        let mut ack = ConnectAck {
            relationship_name: None,
            max_unacked_bndupd: None,
            receive_timer: None,
            vendor_class: None,
            protocol_version: None,
            tls_reply: None,
            reject: None,
            message: None,
        };
        for opt in Options::new(area) {
            let opt = opt?;
            match opt.code {
                option::RELATIONSHIP_NAME => put(&mut ack.relationship_name, &opt, opt.data)?,
                option::MAX_UNACKED_BNDUPD => {
                    put(&mut ack.max_unacked_bndupd, &opt, u32_of(&opt)?)?;
                }
                option::RECEIVE_TIMER => put(&mut ack.receive_timer, &opt, u32_of(&opt)?)?,
                option::VENDOR_CLASS_IDENTIFIER => put(&mut ack.vendor_class, &opt, opt.data)?,
                option::PROTOCOL_VERSION => put(&mut ack.protocol_version, &opt, u8_of(&opt)?)?,
                option::TLS_REPLY => put(&mut ack.tls_reply, &opt, u8_of(&opt)?)?,
                option::REJECT_REASON => put(&mut ack.reject, &opt, RejectReason(u8_of(&opt)?))?,
                option::MESSAGE => put(&mut ack.message, &opt, opt.data)?,
                _ => {}
            }
        }
        Ok(ack)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        if let Some(name) = self.relationship_name {
            w.bytes(option::RELATIONSHIP_NAME, name)?;
        }
        if let Some(n) = self.max_unacked_bndupd {
            w.u32(option::MAX_UNACKED_BNDUPD, n)?;
        }
        if let Some(t) = self.receive_timer {
            w.u32(option::RECEIVE_TIMER, t)?;
        }
        if let Some(vendor) = self.vendor_class {
            w.bytes(option::VENDOR_CLASS_IDENTIFIER, vendor)?;
        }
        if let Some(v) = self.protocol_version {
            w.u8(option::PROTOCOL_VERSION, v)?;
        }
        if let Some(tls) = self.tls_reply {
            w.u8(option::TLS_REPLY, tls)?;
        }
        if let Some(reason) = self.reject {
            w.u8(option::REJECT_REASON, reason.0)?;
        }
        if let Some(message) = self.message {
            w.bytes(option::MESSAGE, message)?;
        }
        Ok(())
    }
}

/// STATE (D12 §7.10): the sender's server state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    /// The sender's state.
    pub state: ServerState,
    /// Server flags; [`State::STARTUP`] while the sender is starting.
    pub flags: u8,
    /// When the sender entered `state`, Unix seconds.
    pub start_time: u32,
}

impl State {
    /// Server flag: the sender is in its startup phase and `state` is its previous state.
    pub const STARTUP: u8 = 1;

    /// Whether the STARTUP flag is set.
    pub const fn starting(&self) -> bool {
        self.flags & Self::STARTUP != 0
    }

    fn parse(area: &[u8]) -> Result<Self> {
        let (mut state, mut flags, mut start) = (None, None, None);
        for opt in Options::new(area) {
            let opt = opt?;
            match opt.code {
                option::SERVER_STATE => {
                    let value =
                        ServerState::from_u8(u8_of(&opt)?).ok_or(Error::BadValue(opt.code))?;
                    put(&mut state, &opt, value)?;
                }
                option::SERVER_FLAGS => put(&mut flags, &opt, u8_of(&opt)?)?,
                option::START_TIME_OF_STATE => put(&mut start, &opt, u32_of(&opt)?)?,
                _ => {}
            }
        }
        Ok(State {
            state: required(state, option::SERVER_STATE)?,
            flags: required(flags, option::SERVER_FLAGS)?,
            start_time: required(start, option::START_TIME_OF_STATE)?,
        })
    }

    fn write(self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(option::SERVER_STATE, self.state as u8)?;
        w.u8(option::SERVER_FLAGS, self.flags)?;
        w.u32(option::START_TIME_OF_STATE, self.start_time)?;
        Ok(())
    }
}

/// DISCONNECT (D12 §7.12): the last message before the sender closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Disconnect<'a> {
    /// Why.
    pub reason: RejectReason,
    /// A human-readable explanation.
    pub message: Option<&'a [u8]>,
}

impl<'a> Disconnect<'a> {
    fn parse(area: &'a [u8]) -> Result<Self> {
        let (mut reason, mut message) = (None, None);
        for opt in Options::new(area) {
            let opt = opt?;
            match opt.code {
                option::REJECT_REASON => put(&mut reason, &opt, RejectReason(u8_of(&opt)?))?,
                option::MESSAGE => put(&mut message, &opt, opt.data)?,
                _ => {}
            }
        }
        Ok(Disconnect {
            reason: required(reason, option::REJECT_REASON)?,
            message,
        })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(option::REJECT_REASON, self.reason.0)?;
        if let Some(message) = self.message {
            w.bytes(option::MESSAGE, message)?;
        }
        Ok(())
    }
}

/// One failover message, by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// POOLREQ: the secondary asks for BACKUP addresses.
    PoolReq,
    /// POOLRESP: how many addresses the primary moved to BACKUP.
    PoolResp {
        /// Addresses transferred.
        addresses_transferred: u32,
    },
    /// BNDUPD: binding transactions ([`Batch::updates`]).
    BndUpd(Batch<'a>),
    /// BNDACK: their acknowledgements ([`Batch::acks`]).
    BndAck(Batch<'a>),
    /// CONNECT.
    Connect(Connect<'a>),
    /// CONNECTACK.
    ConnectAck(ConnectAck<'a>),
    /// UPDREQALL: send every binding.
    UpdReqAll,
    /// UPDDONE: every requested binding was sent and acknowledged.
    UpdDone,
    /// UPDREQ: send the bindings not yet acknowledged.
    UpdReq,
    /// STATE.
    State(State),
    /// CONTACT: keepalive.
    Contact,
    /// DISCONNECT.
    Disconnect(Disconnect<'a>),
}

impl Message<'_> {
    /// The message's type.
    pub const fn message_type(&self) -> MessageType {
        match self {
            Message::PoolReq => MessageType::PoolReq,
            Message::PoolResp { .. } => MessageType::PoolResp,
            Message::BndUpd(_) => MessageType::BndUpd,
            Message::BndAck(_) => MessageType::BndAck,
            Message::Connect(_) => MessageType::Connect,
            Message::ConnectAck(_) => MessageType::ConnectAck,
            Message::UpdReqAll => MessageType::UpdReqAll,
            Message::UpdDone => MessageType::UpdDone,
            Message::UpdReq => MessageType::UpdReq,
            Message::State(_) => MessageType::State,
            Message::Contact => MessageType::Contact,
            Message::Disconnect(_) => MessageType::Disconnect,
        }
    }

    /// Encodes the message with `header` into `buf`; returns its length.
    pub fn encode(&self, header: Header, buf: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(buf, self.message_type(), header.time, header.xid)?;
        match self {
            Message::PoolReq
            | Message::UpdReqAll
            | Message::UpdDone
            | Message::UpdReq
            | Message::Contact => {}
            Message::PoolResp {
                addresses_transferred,
            } => {
                w.u32(option::ADDRESSES_TRANSFERRED, *addresses_transferred)?;
            }
            Message::BndUpd(batch) | Message::BndAck(batch) => {
                w.raw(batch.options)?;
            }
            Message::Connect(m) => m.write(&mut w)?,
            Message::ConnectAck(m) => m.write(&mut w)?,
            Message::State(m) => m.write(&mut w)?,
            Message::Disconnect(m) => m.write(&mut w)?,
        }
        Ok(w.finish())
    }
}

/// Decodes one message from `buf` (which may hold more bytes after it, as a stream does).
///
/// A type of 128 or more that this protocol does not define is [`Error::UnknownType`] like any
/// other; D12 §6.1 says a receiver ignores those and closes the connection on the others, so the
/// caller tells them apart by the value.
pub fn decode(buf: &[u8]) -> Result<(Header, Message<'_>)> {
    let packet = Packet::new_checked(buf)?;
    let header = Header {
        time: packet.time(),
        xid: packet.xid(),
    };
    let area = &buf[usize::from(packet.payload_offset())..usize::from(packet.length())];
    let kind = packet.message_type();
    let kind = MessageType::from_u8(kind).ok_or(Error::UnknownType(kind))?;
    let message = match kind {
        MessageType::PoolReq => no_options(area, Message::PoolReq)?,
        MessageType::UpdReqAll => no_options(area, Message::UpdReqAll)?,
        MessageType::UpdDone => no_options(area, Message::UpdDone)?,
        MessageType::UpdReq => no_options(area, Message::UpdReq)?,
        MessageType::Contact => no_options(area, Message::Contact)?,
        MessageType::PoolResp => {
            let mut transferred = None;
            for opt in Options::new(area) {
                let opt = opt?;
                if opt.code == option::ADDRESSES_TRANSFERRED {
                    put(&mut transferred, &opt, u32_of(&opt)?)?;
                }
            }
            Message::PoolResp {
                addresses_transferred: required(transferred, option::ADDRESSES_TRANSFERRED)?,
            }
        }
        MessageType::BndUpd => Message::BndUpd(batch(area, BindingUpdate::parse)?),
        MessageType::BndAck => Message::BndAck(batch(area, BindingAck::parse)?),
        MessageType::Connect => Message::Connect(Connect::parse(area)?),
        MessageType::ConnectAck => Message::ConnectAck(ConnectAck::parse(area)?),
        MessageType::State => Message::State(State::parse(area)?),
        MessageType::Disconnect => Message::Disconnect(Disconnect::parse(area)?),
    };
    Ok((header, message))
}

/// Checks the options of a message that needs none (skipping them, as unknown ones are).
fn no_options<'a>(area: &[u8], message: Message<'a>) -> Result<Message<'a>> {
    for opt in Options::new(area) {
        opt?;
    }
    Ok(message)
}

/// Checks every transaction of a BNDUPD or BNDACK, so that [`Batch`] iterates without failing.
fn batch<'a, T>(area: &'a [u8], parse: fn(&'a [u8]) -> Result<T>) -> Result<Batch<'a>> {
    for opt in Options::new(area) {
        opt?;
    }
    let mut count = 0usize;
    for transaction in Transactions::new(area) {
        parse(transaction?)?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::MissingOption(option::ASSIGNED_IP_ADDRESS));
    }
    Ok(Batch { options: area })
}

fn put<T>(slot: &mut Option<T>, opt: &RawOption<'_>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(Error::RepeatedOption(opt.code));
    }
    *slot = Some(value);
    Ok(())
}

fn required<T>(slot: Option<T>, code: u16) -> Result<T> {
    slot.ok_or(Error::MissingOption(code))
}

fn u8_of(opt: &RawOption<'_>) -> Result<u8> {
    match *opt.data {
        [v] => Ok(v),
        _ => Err(Error::OptionLength(opt.code)),
    }
}

fn u32_of(opt: &RawOption<'_>) -> Result<u32> {
    if opt.data.len() == 4 {
        Ok(be32(opt.data, 0))
    } else {
        Err(Error::OptionLength(opt.code))
    }
}

fn ip_of(opt: &RawOption<'_>) -> Result<Ipv4Addr> {
    let octets: [u8; 4] = opt
        .data
        .try_into()
        .map_err(|_| Error::OptionLength(opt.code))?;
    Ok(Ipv4Addr::from(octets))
}

/// Encodes a BNDACK answering every transaction of one BNDUPD, in the order given; `header.xid`
/// must be the BNDUPD's.
pub fn encode_bndack<'a>(
    header: Header,
    acks: impl IntoIterator<Item = BindingAck<'a>>,
    buf: &mut [u8],
) -> Result<usize> {
    let mut w = Writer::new(buf, MessageType::BndAck, header.time, header.xid)?;
    let mut any = false;
    for ack in acks {
        ack.write(&mut w)?;
        any = true;
    }
    if !any {
        return Err(Error::MissingOption(option::ASSIGNED_IP_ADDRESS));
    }
    Ok(w.finish())
}
