#![no_main]

#[path = "../failover_targets.rs"]
mod failover_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| failover_targets::failover_decode(data));
