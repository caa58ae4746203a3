//! Lease import and export: moving a network's leases from Kea, ISC dhcpd or Windows DHCP
//! to Peregrine, and out of Peregrine to Kea or to scripts.
//!
//! Each format module reads a file into an [`Import`]: neutral [`Lease`] records, each with
//! its source line, and every entry that gave no lease with its line and the reason (nothing
//! is dropped silently). Parsers take any bytes without panicking. [`kea_csv`] reads and
//! writes Kea's memfile; [`dhcpd`] reads `dhcpd.leases`; [`windows_xml`] reads
//! `Export-DhcpServer` files; [`json`] writes JSON for scripts.
//!
//! [`bindings`] maps leases to the engine's bindings (scope from the address, client key as
//! a live client would get it) and back; [`report`] runs a whole import and reports on every
//! entry. This crate touches no files and no lease
//! directory: the `peregrine leases import` and `export` commands do, with the store.

pub mod bindings;
pub mod dhcpd;
pub mod export;
pub mod json;
pub mod kea_csv;
mod lease;
pub mod report;
pub mod windows_xml;

pub use lease::{HwAddr, Import, Lease, LeaseState, LocalZone, Record, Skipped, Superseded, Time};
