//! DHCP message types (option 53) and option codes (RFC 2132 and later).

/// The DHCP message type carried in option 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageType {
    /// Client broadcast to locate servers.
    Discover = 1,
    /// Server offer of parameters.
    Offer = 2,
    /// Client request for offered parameters, or to confirm or extend a lease.
    Request = 3,
    /// Client says the address is already in use.
    Decline = 4,
    /// Server acknowledgement with committed parameters.
    Ack = 5,
    /// Server refusal: the client's notion of its address is wrong.
    Nak = 6,
    /// Client gives the address back.
    Release = 7,
    /// Client asks for local parameters only, having an address already.
    Inform = 8,
    /// A relay or access concentrator asks what the server knows of an address or a client
    /// (RFC 4388).
    LeaseQuery = 10,
    /// Leasequery answer: the address is the server's to give, and nobody holds it.
    LeaseUnassigned = 11,
    /// Leasequery answer: the server knows nothing of the address or the client.
    LeaseUnknown = 12,
    /// Leasequery answer: the address is leased, to the client described.
    LeaseActive = 13,
    /// A leasequery over TCP for many bindings at once (RFC 6926).
    BulkLeaseQuery = 14,
    /// The end of a bulk leasequery's answers, with its status (RFC 6926).
    LeaseQueryDone = 15,
}

impl MessageType {
    /// All message types, in code order.
    pub const ALL: [MessageType; 14] = [
        MessageType::Discover,
        MessageType::Offer,
        MessageType::Request,
        MessageType::Decline,
        MessageType::Ack,
        MessageType::Nak,
        MessageType::Release,
        MessageType::Inform,
        MessageType::LeaseQuery,
        MessageType::LeaseUnassigned,
        MessageType::LeaseUnknown,
        MessageType::LeaseActive,
        MessageType::BulkLeaseQuery,
        MessageType::LeaseQueryDone,
    ];

    /// The type with the highest code: tables indexed by code have `LAST as usize + 1` rows.
    pub const LAST: MessageType = MessageType::LeaseQueryDone;

    /// The message type with code `v`, if DHCPv4 defines it for a client/server exchange or a
    /// leasequery (RFC 4388).
    pub const fn from_u8(v: u8) -> Option<MessageType> {
        match v {
            1 => Some(MessageType::Discover),
            2 => Some(MessageType::Offer),
            3 => Some(MessageType::Request),
            4 => Some(MessageType::Decline),
            5 => Some(MessageType::Ack),
            6 => Some(MessageType::Nak),
            7 => Some(MessageType::Release),
            8 => Some(MessageType::Inform),
            10 => Some(MessageType::LeaseQuery),
            11 => Some(MessageType::LeaseUnassigned),
            12 => Some(MessageType::LeaseUnknown),
            13 => Some(MessageType::LeaseActive),
            14 => Some(MessageType::BulkLeaseQuery),
            15 => Some(MessageType::LeaseQueryDone),
            _ => None,
        }
    }

    /// A short lower-case name, used as a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::Discover => "discover",
            MessageType::Offer => "offer",
            MessageType::Request => "request",
            MessageType::Decline => "decline",
            MessageType::Ack => "ack",
            MessageType::Nak => "nak",
            MessageType::Release => "release",
            MessageType::Inform => "inform",
            MessageType::LeaseQuery => "leasequery",
            MessageType::LeaseUnassigned => "leaseunassigned",
            MessageType::LeaseUnknown => "leaseunknown",
            MessageType::LeaseActive => "leaseactive",
            MessageType::BulkLeaseQuery => "bulkleasequery",
            MessageType::LeaseQueryDone => "leasequerydone",
        }
    }
}

/// Option codes.
pub mod opt {
    /// Pad (no length byte).
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers.
    pub const ROUTER: u8 = 3;
    /// Domain name servers.
    pub const DNS_SERVERS: u8 = 6;
    /// Client host name.
    pub const HOSTNAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU.
    pub const INTERFACE_MTU: u8 = 26;
    /// Broadcast address.
    pub const BROADCAST_ADDRESS: u8 = 28;
    /// NTP servers.
    pub const NTP_SERVERS: u8 = 42;
    /// Vendor-specific information.
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Option overload: `file` (1), `sname` (2) or both (3) carry options.
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (error text).
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time.
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time.
    pub const REBINDING_TIME: u8 = 59;
    /// Vendor class identifier.
    pub const VENDOR_CLASS: u8 = 60;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// TFTP server name.
    pub const TFTP_SERVER: u8 = 66;
    /// Boot file name.
    pub const BOOTFILE_NAME: u8 = 67;
    /// Seconds since the client's last transaction with the server (RFC 4388).
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    /// The addresses a client holds, in a leasequery answer (RFC 4388).
    pub const ASSOCIATED_IP: u8 = 92;
    /// Rapid commit (RFC 4039): a two-message exchange, DISCOVER answered by ACK.
    pub const RAPID_COMMIT: u8 = 80;
    /// Client FQDN (RFC 4702).
    pub const CLIENT_FQDN: u8 = 81;
    /// Relay agent information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    /// IPv6-only preferred (RFC 8925): seconds an IPv6-capable client may go without IPv4.
    pub const IPV6_ONLY_PREFERRED: u8 = 108;
    /// Subnet selection (RFC 3011).
    pub const SUBNET_SELECTION: u8 = 118;
    /// Classless static routes (RFC 3442).
    pub const CLASSLESS_ROUTES: u8 = 121;
    /// Status of a bulk leasequery (RFC 6926): a code, then text.
    pub const STATUS_CODE: u8 = 151;
    /// The server's clock when it answered, seconds since 1970 (RFC 6926).
    pub const BASE_TIME: u8 = 152;
    /// Seconds before `BASE_TIME` that the binding entered its state (RFC 6926).
    pub const START_TIME_OF_STATE: u8 = 153;
    /// A bulk leasequery's lower bound on when bindings last changed (RFC 6926).
    pub const QUERY_START_TIME: u8 = 154;
    /// A bulk leasequery's upper bound on when bindings last changed (RFC 6926).
    pub const QUERY_END_TIME: u8 = 155;
    /// The binding's state (RFC 6926): 1 available, 2 active, 3 expired, 4 released,
    /// 5 abandoned, 6 reset, 7 remote, 8 transitioning.
    pub const DHCP_STATE: u8 = 156;
    /// End of options (no length byte).
    pub const END: u8 = 255;
}
