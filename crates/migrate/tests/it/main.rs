//! Lease import and export: each format's fixture, bad input reported line by line, the Kea
//! CSV round trip through an engine, arbitrary bytes into every parser, and files written by
//! the real Kea 2.2 and ISC dhcpd 4.4.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod dhcpd;
mod kea;
mod merge;
mod real_servers;
mod robust;
mod support;
mod windows;
