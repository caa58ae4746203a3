//! Counters, gauges and latency histograms, and the labels they are exposed under.
//!
//! `peregrine-stats` owns what the workers count and how the control plane reads it: one
//! [`WorkerStats`] per worker, written by that worker only (plain loads and stores, no locked
//! read-modify-write), read from any thread at scrape time. Drop reasons are one enum,
//! [`FrameDrop`], made of the wire's, the engine's and the worker's own reason enums; its
//! counter index and label are derived from those enums, never numbered by hand. It does no
//! I/O and knows no exposition format (that is `peregrine-control`).

mod counters;
mod drops;
mod failover;
mod latency;
mod reloads;

pub use counters::{Counter, Gauge, WorkerStats};
pub use drops::{FrameDrop, WorkerDrop};
pub use failover::{FailoverStatus, FailoverView, Tally};
pub use latency::Latency;
pub use reloads::{ReloadOutcome, ReloadStats};
