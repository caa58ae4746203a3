//! Expiry: lapsed offers, leases and probations, from each shard's timer heap.

use crate::binding::{Binding, BindingEvent, BindingState, Time};
use crate::engine::Engine;
use crate::info::ClientInfo;

impl Engine {
    /// Expires what is due at `now`: lapsed offers return to the pool, leases that ran out and
    /// probations that ended are reported to `sink`. Handles at most `budget` bindings per call,
    /// so a worker or the control thread can interleave it with packets; returns how many it
    /// handled. Uses each shard's timer heap: no scan of all bindings.
    pub fn tick(&self, now: Time, budget: usize, mut sink: impl FnMut(BindingEvent)) -> usize {
        let mut done = 0;
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    let mut shard = pool.lock(k);
                    while done < budget {
                        let Some(slot) = shard.due(now) else { break };
                        done += 1;
                        let b = *shard.binding(slot);
                        let at = crate::pool::SlotRef { shard: k, slot };
                        let addr = pool.address(at);
                        let reserved = s.reservations.of_address(addr).is_some();
                        let after = match b.state {
                            BindingState::Offered => Binding {
                                state: self.available_state(s),
                                expires: now,
                                ..b
                            },
                            BindingState::Active => Binding {
                                state: BindingState::Expired,
                                expires: b.expires,
                                ..b
                            },
                            // The hold-back's end: available again, remembering its last
                            // client as before.
                            BindingState::HeldBack => Binding {
                                state: if b.client.is_some() {
                                    BindingState::Expired
                                } else {
                                    BindingState::Free
                                },
                                expires: now,
                                ..b
                            },
                            // A probation's end: free from now, which is what a partner
                            // judges the report by (pair simulation with DECLINE, seed 4465:
                            // dated by the decline, each side refused the other's view).
                            _ => Binding {
                                state: BindingState::Free,
                                client: None,
                                info: ClientInfo::EMPTY,
                                expires: now,
                                cltt: now,
                                ..b
                            },
                        };
                        let after = if reserved {
                            Binding {
                                state: BindingState::Reserved,
                                ..after
                            }
                        } else {
                            after
                        };
                        let after = shard.set(slot, after);
                        // With a partner, an expired lease waits for the partner to
                        // acknowledge the expiry before another client may have it (S5).
                        let waits =
                            self.partnering_of(s).is_some() && after.state == BindingState::Expired;
                        if !reserved && !waits {
                            shard.push_free(slot);
                        }
                        if b.state != BindingState::Offered {
                            sink(BindingEvent {
                                scope: s.id,
                                address: addr,
                                binding: after,
                            });
                        }
                    }
                    if done >= budget {
                        return done;
                    }
                }
            }
        }
        done
    }
}
