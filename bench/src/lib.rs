//! `peregrine-bench`: the `peregrine-loadgen` DHCPv4 load generator.
//!
//! It emulates subscribers behind relays: N clients (millions if wanted) spread over M relay
//! addresses (giaddrs), each with its own MAC, option 82 circuit-id and remote-id from
//! templates, and optional VLAN or QinQ tags. It runs DORA, renew, release, INIT-REBOOT, mixed
//! and avalanche scenarios at an open-loop paced rate (or as fast as it can), and reports
//! latency percentiles per phase, goodput, drops and NAKs as a table, JSON and CSV.
//!
//! Layout: [`clients`] (the flat client table and the xid ↔ client mapping), [`template`]
//! (option 82 templates), [`request`] (the relayed messages), [`pacing`] (the token bucket),
//! [`generator`] (the polling loop), [`stats`] (histograms and reports), [`backend`]
//! (AF_PACKET and UDP set-up), [`echo`] (the stateless responder for I/O ceilings), [`plot`]
//! (the comparison chart), [`cpu`] (process CPU from `/proc`).
//!
//! It must not depend on the server's crates beyond `peregrine-wire` and `peregrine-io`: it
//! measures Kea and ISC dhcpd with the same code it measures Peregrine with.

// Counts and nanoseconds become rates and percentages for reports; they stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

pub mod backend;
pub mod clients;
pub mod cpu;
pub mod echo;
pub mod generator;
pub mod pacing;
pub mod plot;
pub mod request;
pub mod stats;
pub mod template;
