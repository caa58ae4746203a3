//! Integration tests of peregrine-wire: golden frames, property roundtrips, a differential test
//! against dhcproto, the fuzz bodies over their corpus, an allocation count, and tshark's reading
//! of our output.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod differential;
mod fuzz_corpus;
mod golden;
mod no_alloc;
mod roundtrip;
mod samples;
mod tshark;

#[path = "../../../../fuzz/targets.rs"]
mod targets;
