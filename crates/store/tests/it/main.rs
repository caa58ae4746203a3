//! The lease store: record encoding, the journal through its writer, torn tails, corruption
//! and repair, crash safety under `kill -9`, the key secret and the directory lock.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod compaction;
mod crash;
mod damage;
mod dir;
mod journal;
mod record;
mod recovery;
mod support;
mod upgrade;

#[global_allocator]
static GLOBAL: peregrine_testkit::CountingAllocator = peregrine_testkit::CountingAllocator;
