//! Engine tests: scenarios for each RFC 2131 branch with a fake clock, property tests over
//! random message sequences, concurrency, deterministic replay, and an allocation count.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod concurrency;
mod determinism;
mod failover;
mod hold_back;
mod leasequery;
mod no_alloc;
mod pair_sim;
mod properties;
mod reload;
mod scenarios;
mod support;
