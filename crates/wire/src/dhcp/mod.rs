//! DHCPv4 (RFC 2131, RFC 2132): the BOOTP header view, indexed options, relay agent
//! information (RFC 3046) and the reply writer.

mod codes;
mod message;
mod options;
mod packet;
pub mod relay;
mod writer;

pub use codes::{MessageType, opt};
pub use message::DhcpMessage;
pub use options::{Fragments, OptionIter, OptionValue, RawOption};
pub use packet::{
    BOOTREPLY, BOOTREQUEST, DEFAULT_MAX_MESSAGE_LEN, DhcpPacket, FLAG_BROADCAST, HTYPE_ETHERNET,
    MAGIC_COOKIE, MIN_MESSAGE_LEN, OPTIONS_OFFSET,
};
pub use relay::RelayAgentInfo;
pub use writer::{BootpHeader, DhcpWriter};

/// UDP port of DHCP servers and relays.
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
