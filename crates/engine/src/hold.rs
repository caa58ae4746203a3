//! Holding addresses back after journal damage: a lost record may have leased any address
//! whose fate the intact records do not settle, and its client may still use it.

use std::net::Ipv4Addr;

use crate::binding::{Binding, BindingEvent, BindingState, ScopeId, Time};
use crate::engine::Engine;
use crate::pool::SlotRef;

impl Engine {
    /// Puts out of service, until `until`, every address that a new client could be given
    /// (free, expired, released, reset) and that `unsettled` names: the addresses a damaged
    /// span of the journal may have leased. Leases, reservations, a partner's addresses and
    /// probations are left as they are: none of them goes to a new client anyway. An address
    /// held back keeps what it remembers of its last client, which may have it back at once,
    /// as may any client that asks for it by name ([`BindingState::HeldBack`]). Returns the
    /// changes to journal. For a lease directory just repaired, before serving: takes each
    /// shard lock in turn.
    pub fn hold_back(
        &self,
        now: Time,
        until: Time,
        mut unsettled: impl FnMut(ScopeId, Ipv4Addr) -> bool,
    ) -> Vec<BindingEvent> {
        let mut held = Vec::new();
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    let mut shard = pool.lock(k);
                    for slot in 0..shard.slot_count() {
                        let b = *shard.binding(slot);
                        let address = pool.address(SlotRef { shard: k, slot });
                        if !b.state.is_available()
                            || s.reservations.of_address(address).is_some()
                            || !unsettled(s.id, address)
                        {
                            continue;
                        }
                        shard.unlink(slot);
                        let after = shard.set(
                            slot,
                            Binding {
                                state: BindingState::HeldBack,
                                expires: until,
                                cltt: now,
                                ..b
                            },
                        );
                        shard.schedule(slot, until);
                        held.push(BindingEvent {
                            scope: s.id,
                            address,
                            binding: after,
                        });
                    }
                }
            }
        }
        held
    }
}
