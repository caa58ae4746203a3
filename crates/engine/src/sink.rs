//! Where binding changes go once the engine has made them: the seam between its decisions and
//! what makes them last (the lease journal) or known (a failover partner).

use crate::binding::BindingEvent;

/// A consumer of binding changes, as one worker (or the control plane's importer) sees it.
///
/// Submission never blocks: a sink that cannot take a change now says so and the caller counts
/// it. Sequence numbers increase with each accepted change, so "confirmed up to N" releases
/// every reply whose change was accepted as N or before.
pub trait BindingSink {
    /// Takes `event`; returns its sequence number, or `None` when the sink cannot take it now
    /// (its queue is full, or it failed).
    fn submit(&mut self, event: &BindingEvent) -> Option<u64>;

    /// A burst of changes was submitted: have them processed now. Called once per burst in
    /// which anything was submitted, so that a sink whose thread must be woken wakes it once
    /// per burst rather than once per change.
    fn flush(&mut self) {}

    /// The highest sequence number whose change is confirmed (on stable storage, for the
    /// journal): replies waiting for it or an earlier one may leave.
    fn confirmed(&self) -> u64;
}
