//! The DHCPv4 server logic: scope selection, lock-sharded pools, bindings, the RFC 2131 state
//! machine, reservations, classes, options and expiry.
//!
//! `peregrine-engine` decides; it does not do I/O. [`Engine::handle`] takes the time, facts
//! about the received frame ([`RxMeta`]), the DHCP message, and a buffer for the reply, and
//! returns a [`Verdict`]: send now, send once a binding change is durable, record a change, or
//! drop for a counted reason. It reads no clock, opens no socket, starts no thread, and is
//! `Send + Sync`: every worker calls one shared engine.
//!
//! # Concurrency
//!
//! State is split into lock shards: each pool's addresses are dealt round-robin to shards that
//! each hold the bindings, the free list and the timers of their addresses; the client index
//! (client → binding location) has shards of its own. Every operation takes at most one client
//! shard and then at most one pool shard, always in that order. Holding the client's entry
//! while it allocates is what stops two workers that see the same client at once from giving
//! it two addresses. When an address is taken from a previous owner (lease affinity lapsed),
//! that owner's index entry is removed with a `try_lock`, never a wait, so the order cannot
//! invert.
//!
//! # Lease affinity
//!
//! Expired and released addresses keep their last client and go to the back of a FIFO free
//! list; allocation takes the front. A returning client finds its old address unless the pool
//! has cycled through every other free address since.

mod binding;
mod clients;
mod discover;
mod driver;
mod engine;
mod expiry;
mod hold;
mod info;
mod install;
mod key;
mod leasequery;
mod partner;
mod pool;
mod query;
mod release;
mod reload;
mod reply;
mod request;
mod scope;
mod select;
mod sink;
mod verdict;

pub use binding::{Binding, BindingEvent, BindingState, ScopeId, Time};
pub use driver::{FailoverDriver, Notice, POOL_REQUEST_EVERY};
pub use engine::{BuildError, Engine, EngineOptions};
pub use info::{CLIENT_INFO_ROOM, ClientInfo};
pub use install::{Imported, RestoreError};
pub use key::{ClientKey, KeySecret};
pub use leasequery::BulkStatus;
pub use partner::{Broken, FailoverPolicy, Service};
pub use query::PoolStats;
pub use reload::Carried;
pub use sink::BindingSink;
pub use verdict::{Destination, DropReason, InterfaceId, NextHop, RxMeta, Verdict};
