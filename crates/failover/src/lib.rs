//! DHCPv4 failover between two servers, as draft-ietf-dhc-failover-12 defines it and ISC dhcpd
//! 4.4 speaks it.
//!
//! `peregrine-failover` owns the protocol: the byte layout of its messages ([`codec`],
//! [`message`]), the binding rules ([`binding`]: which transitions a server makes on its own,
//! which of a partner's updates it accepts, the MCLT rule), RFC 3074 load balancing ([`hash`])
//! and the partner [`Session`] with the server states of D12 §9 ([`state`]). It opens no socket,
//! starts no thread and reads no clock: the daemon's link thread feeds it bytes and the time,
//! and carries out what it asks. It knows nothing of the engine's pools: the engine asks the
//! binding rules its questions, and a partner's updates reach the engine through the caller.
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
//!
//! # A caller's loop
//!
//! The link thread owns the TCP connection and the lease store; the session owns the protocol.
//! Bytes and time go in; bytes, timers and events come out:
//!
//! ```
//! use peregrine_failover::codec::{MAX_MESSAGE_LEN, frame_len};
//! use peregrine_failover::hash::HashBucketAssignment;
//! use peregrine_failover::{Config, Event, Role, Session};
//!
//! let config = Config {
//!     role: Role::Primary,
//!     relationship_name: (*b"dhcp-pair").into(),
//!     mclt: Some(3600),
//!     hash_bucket_assignment: HashBucketAssignment::split(128),
//!     max_unacked_bndupd: 10,
//!     receive_timer: 30,
//!     max_clock_skew: 60,
//!     vendor_class: (*b"peregrine").into(),
//!     safe_period: None,
//! };
//! let now = 1_795_390_176;
//! // Restored from disk: `None` for a server that never ran failover or lost its leases.
//! let mut session = Session::new(config, None, now);
//! session.connected(now); // a TCP connection to the partner came up
//!
//! let mut out = [0u8; MAX_MESSAGE_LEN];
//! let mut received: Vec<u8> = Vec::new(); // filled from the socket
//! loop {
//!     // Frame what arrived and feed it in.
//!     while let Some(len) = frame_len(&received).filter(|&l| l <= received.len()) {
//!         session.handle(now, &received[..len]);
//!         received.drain(..len);
//!     }
//!     // Carry out what the session asks.
//!     while let Some(event) = session.poll_event() {
//!         match event {
//!             // Make the state durable (and publish it to the workers), then confirm.
//!             Event::StateChanged { .. } => session.state_persisted(),
//!             // Decide with binding::accept_update, make it durable, then acknowledge.
//!             Event::Update { xid, binding, .. } => session.ack_update(xid, binding.address, Ok(())),
//!             Event::Closed(reason) => eprintln!("closing: {}", reason.as_str()),
//!             _ => {}
//!         }
//!     }
//!     // Write what it has to say.
//!     while let Some(len) = session.poll_transmit(now, &mut out) {
//!         let _bytes = &out[..len]; // to the socket
//!     }
//!     // Sleep until poll_timeout() or the socket is readable; then handle_timeout(now).
//!     if let Some(deadline) = session.poll_timeout() {
//!         assert!(deadline > now);
//!     }
//!     break;
//! }
//! ```

pub mod binding;
pub mod codec;
pub mod hash;
pub mod message;
pub mod session;
pub mod state;

mod error;
mod queue;

pub use binding::{BindingStatus, Role};
pub use error::{Error, Result};
pub use session::{CloseReason, Config, Crossing, Event, Restored, Session};
pub use state::{ServerState, Service};

/// Seconds since the Unix epoch: the crate's only notion of time, passed in by the caller (the
/// engine's `Time`; the wire carries it as `u32`).
pub type Time = u64;
