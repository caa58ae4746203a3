//! Integration tests of peregrine-failover: ISC's golden messages, property round trips and
//! arbitrary bytes.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod fuzz_corpus;
mod golden;
mod pair;
mod replay;
mod roundtrip;
mod rules;
mod support;
mod tshark;

#[path = "../../../../fuzz/failover_targets.rs"]
mod failover_targets;
