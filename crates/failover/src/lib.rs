//! DHCPv4 failover between two servers, as draft-ietf-dhc-failover-12 defines it and ISC dhcpd
//! 4.4 speaks it.
//!
//! `peregrine-failover` owns the protocol: the byte layout of its messages ([`codec`],
//! [`message`]), the binding and server states. It opens no socket, starts no thread and reads
//! no clock: the daemon's link thread feeds it bytes and the time, and carries out what it asks.
//! It knows nothing of the engine's pools; the engine asks it questions, and a partner's binding
//! updates reach the engine through the caller.
//!
//! # Decoding and encoding
//!
//! [`codec::Packet`] is a checked view in the style of `peregrine-wire`: after
//! [`codec::Packet::new_checked`] no accessor panics, on any input. [`message::decode`] turns a
//! message into a typed [`message::Message`] that borrows the received bytes (no allocation);
//! `encode` writes one into a caller's buffer with the options in the order ISC emits them, so a
//! message ISC sent re-encodes to the same bytes (the golden tests hold the crate to this).
//!
//! ```
//! use peregrine_failover::message::{self, Header, Message, State};
//! use peregrine_failover::ServerState;
//!
//! let mut buf = [0u8; 64];
//! let state = State { state: ServerState::Normal, flags: 0, start_time: 1_795_390_176 };
//! let len = Message::State(state)
//!     .encode(Header { time: 1_795_390_176, xid: 7 }, &mut buf)
//!     .unwrap();
//! let (header, decoded) = message::decode(&buf[..len]).unwrap();
//! assert_eq!(header.xid, 7);
//! assert_eq!(decoded, Message::State(state));
//! ```

pub mod binding;
pub mod codec;
pub mod hash;
pub mod message;
pub mod session;
pub mod state;

mod error;

pub use binding::{BindingStatus, Role};
pub use error::{Error, Result};
pub use session::{CloseReason, Config, Event, Restored, Session};
pub use state::{ServerState, Service};

/// Seconds since the Unix epoch: the crate's only notion of time, passed in by the caller (the
/// engine's `Time`; the wire carries it as `u32`).
pub type Time = u64;
