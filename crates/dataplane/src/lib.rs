//! The per-core worker: frames in, replies out.
//!
//! `peregrine-dataplane` owns the loop each worker thread runs (DPDK l3fwd's shape: receive a
//! burst, handle each frame, queue replies, flush the TX burst when it fills or a short drain
//! timer fires, check a quit flag) and what happens to one frame: demultiplex Ethernet, 802.1Q
//! and QinQ; answer ARP and ICMP echo for the server's own addresses; hand DHCP (UDP port 67)
//! to the engine; write the reply frame with the request's VLAN tags. It decides nothing about
//! DHCP (that is `peregrine-engine`) and knows no NIC (that is `peregrine-io`). Drops are
//! counted by reason in [`WorkerStats`]; nothing is logged per packet.

mod frame;
mod handoff;
mod stats;
mod worker;

pub use frame::{Interface, Processed, process};
pub use handoff::Handoff;
pub use stats::{Counter, DROP_LABELS, Drop, Gauge, Latency, TX_REFUSED, WorkerStats};
pub use worker::{Journal, NoJournal, Worker, WorkerConfig};
