//! What the engine is told about a request, and what it answers.

use std::net::Ipv4Addr;

use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::VlanTags;

use crate::binding::BindingEvent;

/// An interface known to the engine (its index in the engine's interface table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceId(pub u16);

/// Facts about a received request that are not in the DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// Receiving interface, if the engine knows it ([`crate::Engine::interface`]).
    pub interface: Option<InterfaceId>,
    /// VLAN tags the request arrived with.
    pub vlans: VlanTags,
    /// Source MAC of the frame (the relay, a router, or the client).
    pub src_mac: MacAddr,
    /// Source IP address.
    pub src_ip: Ipv4Addr,
    /// Source UDP port.
    pub src_port: u16,
    /// Destination IP address (broadcast, or one of ours).
    pub dst_ip: Ipv4Addr,
    /// The server's own address on the receiving link: the server identifier by default.
    pub local_ip: Ipv4Addr,
    /// Whether option 82 may arrive from a client directly (giaddr 0): set only for
    /// interfaces facing a trusted relay that does not set giaddr (RFC 3046 section 2.1).
    pub trusted: bool,
}

/// Where a reply goes at layer 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Back to the frame's source MAC: the relay or router that sent the request, or a client
    /// that can already receive unicast.
    Sender,
    /// To the client's hardware address, which has no IP address yet (RFC 2131 section 4.1).
    Client(MacAddr),
    /// To the broadcast address.
    Broadcast,
}

/// The reply's IP and UDP destination, and how to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// Destination IP address.
    pub ip: Ipv4Addr,
    /// Destination UDP port.
    pub port: u16,
    /// Layer-2 next hop.
    pub next_hop: NextHop,
    /// Source IP to send from: the server identifier of the reply.
    pub src_ip: Ipv4Addr,
}

/// Why a request got no reply. Each reason is a counter label ([`DropReason::as_str`]);
/// fieldless, so `reason as usize` indexes a counter array of [`strum::EnumCount::COUNT`]
/// entries and [`strum::IntoEnumIterator::iter`] lists every label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumCount, strum::EnumIter)]
#[repr(u8)]
pub enum DropReason {
    /// The DHCP message did not parse (how is not counted: the frame around it did).
    Malformed,
    /// `op` was not BOOTREQUEST.
    NotRequest,
    /// No option 53 (BOOTP) or an undefined message type.
    NotDhcp,
    /// A server-to-client message type sent to the server.
    UnexpectedType,
    /// Option 82 without giaddr from an untrusted interface (RFC 3046 section 2.1).
    UntrustedRelayInfo,
    /// No scope serves this client's link.
    NoScope,
    /// The client's scope is administratively inactive.
    ScopeInactive,
    /// No address is free for this client.
    PoolExhausted,
    /// The REQUEST names another server, or a DECLINE or RELEASE is not for us.
    ServerIdNotOurs,
    /// We hold no binding for the client and are not authoritative: stay silent (RFC 2131
    /// section 4.3.2, coexistence of servers on one link).
    UnknownClient,
    /// The request was consistent but asks for nothing we act on (a RELEASE of an address
    /// the client does not hold, a DECLINE of an address not offered to it).
    NoBinding,
    /// The reply did not fit the client's maximum message size.
    ReplyTooLarge,
    /// The failover state answers no such request now (RECOVER, POTENTIAL-CONFLICT, ...; only
    /// renewals in RECOVER-DONE).
    FailoverSilent,
    /// In NORMAL, load balancing gives this client to the failover partner.
    PartnerClient,
    /// A DHCPINFORM without `ciaddr`: the ACK goes to that address (RFC 2131 §4.3.5), and a
    /// client that informs must have one (§4.4.3).
    InformWithoutCiaddr,
    /// A leasequery from a `giaddr` that `leasequery-requesters` does not list (or none).
    LeasequeryNotAllowed,
    /// A leasequery naming no address, client identifier or hardware address (RFC 4388 §6.1).
    LeasequeryWithoutSubject,
}

impl DropReason {
    /// A short, stable label, unique among every drop counter's (hence `dhcp_malformed`
    /// beside the frame's `malformed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "dhcp_malformed",
            DropReason::NotRequest => "not_request",
            DropReason::NotDhcp => "not_dhcp",
            DropReason::UnexpectedType => "unexpected_type",
            DropReason::UntrustedRelayInfo => "untrusted_relay_info",
            DropReason::NoScope => "no_scope",
            DropReason::ScopeInactive => "scope_inactive",
            DropReason::PoolExhausted => "pool_exhausted",
            DropReason::ServerIdNotOurs => "server_id_not_ours",
            DropReason::UnknownClient => "unknown_client",
            DropReason::NoBinding => "no_binding",
            DropReason::ReplyTooLarge => "reply_too_large",
            DropReason::FailoverSilent => "failover_silent",
            DropReason::InformWithoutCiaddr => "inform_without_ciaddr",
            DropReason::PartnerClient => "partner_client",
            DropReason::LeasequeryNotAllowed => "leasequery_not_allowed",
            DropReason::LeasequeryWithoutSubject => "leasequery_without_subject",
        }
    }
}

/// The engine's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the `len` bytes written to `tx` now: nothing durable changed (OFFER, NAK, INFORM's
    /// ACK, an ACK from the lease cache).
    Reply {
        /// Message type of the reply.
        kind: MessageType,
        /// Bytes written into `tx`.
        len: usize,
        /// Where it goes.
        dst: Destination,
    },
    /// Send the reply only once `event` is on stable storage (an ACK that grants or extends a
    /// lease). The caller journals the event and holds the reply until its batch commits.
    Defer {
        /// Message type of the reply.
        kind: MessageType,
        /// Bytes written into `tx`.
        len: usize,
        /// Where it goes.
        dst: Destination,
        /// The binding change to make durable first.
        event: BindingEvent,
    },
    /// An OFFER of an address no client holds, in a scope with a ping check: probe `address`
    /// first (ICMP echo through the relay, ARP on a directly attached link) and send the OFFER
    /// only if nothing answers within `wait_ms`. If something does, the address is in use:
    /// tell the engine ([`crate::Engine::address_in_use`]) and handle the DISCOVER again, which
    /// finds another.
    Probe {
        /// Bytes of the OFFER written into `tx`.
        len: usize,
        /// Where the OFFER goes.
        dst: Destination,
        /// The address offered, to probe.
        address: Ipv4Addr,
        /// How long to wait for an answer, milliseconds.
        wait_ms: u32,
    },
    /// No reply, but a binding changed and must be recorded (RELEASE, DECLINE).
    Record {
        /// The change.
        event: BindingEvent,
    },
    /// No reply; count the reason.
    Drop(DropReason),
}
