//! The per-core worker: frames in, replies out.
//!
//! `peregrine-dataplane` owns the loop each worker thread runs (DPDK l3fwd's shape: receive a
//! burst, handle each frame, queue replies, flush the TX burst when it fills or a short drain
//! timer fires, check a quit flag) and what happens to one frame: demultiplex Ethernet, 802.1Q
//! and QinQ; answer ARP and ICMP echo for the server's own addresses; hand DHCP (UDP port 67)
//! to the engine; write the reply frame with the request's VLAN tags; pass binding changes
//! through the commit gate (a [`peregrine_engine::BindingSink`] chosen at start-up, which may
//! fan out: [`Fanout`]) and release the replies that wait for them; hold an OFFER while a
//! ping check probes its address ([`ProbeAnswers`]); stop between bursts while a reload
//! replaces the engine ([`SharedEngine`]). It decides nothing about
//! DHCP (that is `peregrine-engine`) and knows no NIC (that is `peregrine-io`). Drops are
//! counted by reason in [`peregrine_stats::WorkerStats`]; nothing is logged per packet.

mod admission;
mod commit;
mod frame;
mod handoff;
mod probe;
mod shared;
mod worker;

pub use admission::{Admission, BEHIND_FOR};
pub use commit::{Fanout, NoSink};
pub use frame::{Interface, Outcome, ProbeSpec, Reply, process};
pub use handoff::Handoff;
pub use probe::ProbeAnswers;
pub use shared::{Member, ReplaceError, SharedEngine, WriteGuard};
pub use worker::{Worker, WorkerConfig, unix_now};
