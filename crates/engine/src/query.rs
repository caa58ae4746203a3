//! What the control plane reads: interfaces and scopes by name, scope state, bindings and pool
//! utilisation. Nothing here is on the packet path.

use std::net::Ipv4Addr;

use crate::binding::{Binding, BindingState, ScopeId};
use crate::engine::Engine;
use crate::verdict::InterfaceId;

/// Utilisation of one pool, for gauges and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Scope of the pool.
    pub scope: ScopeId,
    /// Scope name.
    pub scope_name: String,
    /// Index of the pool in its scope.
    pub pool: usize,
    /// Addresses in the pool.
    pub total: u64,
    /// Leased.
    pub active: u64,
    /// Held by an outstanding OFFER.
    pub offered: u64,
    /// Out of use after a DECLINE.
    pub abandoned: u64,
    /// Out of use until the hold-back after journal damage ends (or its holder asks for it).
    pub held_back: u64,
    /// Reserved for a client that holds no lease now.
    pub reserved: u64,
    /// Available to new clients (including expired and released addresses).
    pub free: u64,
    /// Of `free`, those a failover secondary allocates (BACKUP).
    pub backup: u64,
}

impl Engine {
    /// The id of a configured interface name, for [`RxMeta::interface`].
    pub fn interface(&self, name: &str) -> Option<InterfaceId> {
        self.selector
            .interfaces
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| InterfaceId(i as u16))
    }

    /// The id of the scope called `name`.
    pub fn scope_id(&self, name: &str) -> Option<ScopeId> {
        self.scopes.iter().find(|s| s.name == name).map(|s| s.id)
    }

    /// `[limits]` as configured: what the workers apply before a request reaches the engine.
    pub fn limits(&self) -> &peregrine_config::model::Limits {
        &self.limits
    }

    /// The name of scope `id`, if it is one of this engine's.
    pub fn scope_name(&self, id: ScopeId) -> Option<&str> {
        self.scope_of(id).map(|s| s.name.as_str())
    }

    /// Whether scope `id` is shared with the failover partner: a server without one, and a
    /// scope configured with `failover = false`, share nothing.
    pub fn is_shared(&self, id: ScopeId) -> bool {
        self.partnering.is_some() && self.scope_of(id).is_some_and(|s| s.shared)
    }

    /// Grants so far whose client options did not all fit the room a lease keeps for them
    /// ([`crate::CLIENT_INFO_ROOM`]): the options left out are not kept or replicated.
    pub fn client_options_left_out(&self) -> u64 {
        self.info_left_out
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every scope's name and whether it is active (serving), in configuration order.
    pub fn scope_states(&self) -> Vec<(&str, bool)> {
        self.scopes
            .iter()
            .map(|s| (s.name.as_str(), s.is_active()))
            .collect()
    }

    /// Every scope whose state differs from what the configuration says, with its state: what
    /// the admin API's changes amount to, for the next start to put back over the file.
    pub fn scope_overrides(&self) -> Vec<(&str, bool)> {
        self.scopes
            .iter()
            .filter(|s| s.is_active() != s.configured_active)
            .map(|s| (s.name.as_str(), s.is_active()))
            .collect()
    }

    /// Activates or deactivates a scope at run time. Returns false if there is no such scope.
    pub fn set_scope_active(&self, name: &str, active: bool) -> bool {
        self.scopes
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.set_active(active))
            .is_some()
    }

    /// The binding of `addr`, if it is in a pool.
    pub fn binding(&self, addr: Ipv4Addr) -> Option<(ScopeId, Binding)> {
        self.scopes.iter().find_map(|s| {
            let (p, at) = s.locate(addr)?;
            Some((s.id, *s.pools[p].lock(at.shard).binding(at.slot)))
        })
    }

    /// Calls `f` with every binding that is not free, or free but remembering a failover
    /// promise (what a recovering partner must learn): its scope, address and binding (for
    /// lease export and a partner's UPDREQALL). Takes each shard lock only to copy that shard's bindings out, and
    /// calls `f` with no lock held, so `f` may call back into the engine. Bindings change
    /// meanwhile on a serving engine: each is as it was when its shard was read.
    pub fn for_each_binding(&self, mut f: impl FnMut(ScopeId, Ipv4Addr, &Binding)) {
        let mut copied = Vec::new();
        for s in &self.scopes {
            for pool in &s.pools {
                for k in 0..pool.shard_count() {
                    {
                        let shard = pool.lock(k);
                        for slot in 0..shard.slot_count() {
                            let b = shard.binding(slot);
                            if b.says_anything() {
                                copied.push((crate::pool::SlotRef { shard: k, slot }, *b));
                            }
                        }
                    }
                    for (at, b) in copied.drain(..) {
                        f(s.id, pool.address(at), &b);
                    }
                }
            }
        }
    }

    /// Utilisation of every pool (takes each shard lock briefly; for the control plane).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut out = Vec::new();
        for s in &self.scopes {
            for (i, pool) in s.pools.iter().enumerate() {
                let mut st = PoolStats {
                    scope: s.id,
                    scope_name: s.name.clone(),
                    pool: i,
                    total: u64::from(pool.addresses.len()),
                    active: 0,
                    offered: 0,
                    abandoned: 0,
                    held_back: 0,
                    reserved: 0,
                    free: 0,
                    backup: 0,
                };
                for k in 0..pool.shard_count() {
                    let shard = pool.lock(k);
                    st.active += u64::from(shard.count(BindingState::Active));
                    st.offered += u64::from(shard.count(BindingState::Offered));
                    st.abandoned += u64::from(shard.count(BindingState::Abandoned));
                    st.held_back += u64::from(shard.count(BindingState::HeldBack));
                    st.reserved += u64::from(shard.count(BindingState::Reserved));
                    st.backup += u64::from(shard.count(BindingState::Backup));
                }
                st.free =
                    st.total - st.active - st.offered - st.abandoned - st.held_back - st.reserved;
                out.push(st);
            }
        }
        out
    }

    /// Number of clients in the client index.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
}
