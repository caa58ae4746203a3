//! Raw bindings to the part of DPDK that Peregrine uses (EAL, ethdev, mbuf, mempool), generated
//! by bindgen against the system's DPDK (22.11 or later, found with pkg-config), and C wrappers
//! for its static inline functions (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...), which keep
//! their names here.
//!
//! Everything is `unsafe` and follows DPDK's own documentation; the safe layer is
//! `peregrine-dpdk`.

#![allow(
    unsafe_code,
    missing_docs,
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    unreachable_pub,
    clippy::pedantic,
    clippy::all,
    rust_2018_idioms
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The calling thread's `rte_errno`: the reason the last failed DPDK call gave.
pub fn errno() -> i32 {
    // SAFETY: reads a thread-local integer of DPDK's; no precondition.
    unsafe { peregrine_dpdk_errno() }
}
