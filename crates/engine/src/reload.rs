//! A new configuration for a running server: the engine it describes, with every binding of
//! the engine it replaces carried over.
//!
//! In two steps, so that the workers wait only for the second: [`Engine::successor`] builds the
//! new engine's tables (while the old one serves), [`Engine::hand_over`] moves the state into
//! it (while nothing changes the old one). A pool the new configuration keeps as it was (same
//! scope, place, addresses and reservations) changes hands whole, its lock shards swapped, and
//! the client index with it: the wait is a few microseconds per shard whatever the number of
//! leases. Only the bindings of pools that changed are copied one by one.

use std::sync::atomic::Ordering;

use peregrine_config::model::Config;

use crate::binding::{BindingEvent, BindingState, ScopeId, Time};
use crate::engine::{BuildError, Engine, NO_SCOPE};
use crate::install::RestoreError;

/// What a reload did with the bindings of the engine it replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// Bindings (leases, offers, addresses that remember a client or are out of service) in
    /// the new configuration's pools, as they were (versions included: the journal's order
    /// continues).
    pub bindings: u64,
    /// Of `bindings`, those copied one by one because their pool changed; the others changed
    /// hands with their pool.
    pub copied: u64,
    /// Bindings of addresses in no pool of the new configuration whose client may still hold
    /// them (an unexpired lease or offer, or a lease the failover partner may have granted):
    /// kept aside, neither served nor renewed, and put back if a later reload brings their
    /// address back into a pool before they run out.
    pub retired: u64,
    /// Bindings of addresses in no pool that no client holds any more: forgotten.
    pub forgotten: u64,
}

impl Engine {
    /// [`Engine::successor`] and [`Engine::hand_over`] in one: the engine `config` describes,
    /// holding this engine's state, which this engine gives up.
    pub fn reconfigured(
        &self,
        config: &Config,
        now: Time,
    ) -> Result<(Engine, Carried), BuildError> {
        let mut next = self.successor(config)?;
        let carried = self.hand_over(&mut next, now);
        Ok((next, carried))
    }

    /// The engine `config` describes, built as this one was (shards, key secret), with no
    /// state yet: [`Engine::hand_over`] gives it this one's. A scope this engine has (by name)
    /// keeps its id; a new one takes an id no scope ever had, so an id in flight (a queued
    /// change, a journal record) never names another scope. Reads only what the configuration
    /// fixed: this engine may serve meanwhile.
    pub fn successor(&self, config: &Config) -> Result<Engine, BuildError> {
        let mut next = Engine::build(config, self.options, &self.ids_for(config)?)?;
        // Ids of scopes gone stay unused.
        let issued = next.by_id.len().max(self.by_id.len());
        next.by_id.resize(issued, NO_SCOPE);
        Ok(next)
    }

    /// Moves this engine's state into `next` (its [`Engine::successor`]): the failover
    /// policy and state; each scope's run-time state where its configured state did not
    /// change (an operator's deactivation survives; a changed `state` in the file wins); and
    /// every binding whose address is in one of `next`'s pools, wherever that pool now is,
    /// with the classes it was granted matched by name. Reservations are `next`'s: an address
    /// no longer reserved is free unless a client holds a lease on it.
    ///
    /// Nothing may change this engine meanwhile (a change could be missed), and it is left
    /// without its state: replace it by `next`.
    pub fn hand_over(&self, next: &mut Engine, now: Time) -> Carried {
        next.partnering = self
            .partnering
            .as_ref()
            .map(crate::partner::Partnering::carried);
        next.info_left_out.store(
            self.info_left_out.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        for s in &next.scopes {
            if let Some(old) = self.scope_of(s.id)
                && old.configured_active == s.configured_active
            {
                s.set_active(old.is_active());
            }
        }
        let classes = ClassMap::new(self, next);
        let mut carried = Carried::default();
        let moved = self.move_kept_pools(next, &classes, &mut carried);
        let mut retired = Vec::new();
        let mut carry = |mut event: BindingEvent| {
            // The new configuration decides what is reserved.
            if event.binding.state == BindingState::Reserved {
                return;
            }
            event.binding.classes = classes.map(event.binding.classes);
            match next.carry(&event) {
                Ok(()) => {
                    if counts(event.binding.state) {
                        carried.bindings += 1;
                        carried.copied += 1;
                    }
                }
                Err(RestoreError::UnknownAddress(_)) => {
                    if event.binding.held_at(now) || event.binding.partner_sent > now {
                        carried.retired += 1;
                        retired.push(event);
                    } else {
                        carried.forgotten += 1;
                    }
                }
                // Carrying replaces whatever is there.
                Err(RestoreError::Conflict(_) | RestoreError::ClientHoldsNewer(_)) => {}
            }
        };
        for s in &self.scopes {
            for (p, pool) in s.pools.iter().enumerate() {
                if !moved.contains(s.id, p) {
                    pool.for_each_binding(|at, binding| {
                        carry(BindingEvent {
                            scope: s.id,
                            address: pool.address(at),
                            binding: *binding,
                        });
                    });
                }
            }
        }
        for event in &self.retired {
            // Retired from an engine before this one: the address finds its scope.
            carry(BindingEvent {
                scope: ScopeId(NO_SCOPE),
                ..*event
            });
        }
        next.retired = retired;
        carried
    }

    /// Hands every pool `next` keeps as it was to `next` whole, the client index with it;
    /// returns which pools moved.
    fn move_kept_pools(&self, next: &Engine, classes: &ClassMap, carried: &mut Carried) -> Moved {
        let mut moved = Moved(vec![Vec::new(); self.by_id.len()]);
        // Bindings record their classes as bits: unless every class kept its bit, each
        // binding is copied to be renumbered.
        if !classes.is_identity() {
            return moved;
        }
        for s in &next.scopes {
            let Some(old) = self.scope_of(s.id) else {
                continue;
            };
            // Reservations and sharing set bindings' states when a pool is built.
            if old.reservations.list != s.reservations.list || old.shared != s.shared {
                continue;
            }
            for (p, (pool, was)) in s.pools.iter().zip(&old.pools).enumerate() {
                if pool.same_slots(was) {
                    carried.bindings += u64::from(was.take_into(pool, counts));
                    moved.insert(s.id, p);
                }
            }
        }
        // Every index entry that points into a pool that moved is right as it is; the others
        // are made again as their bindings are copied.
        let all = self
            .scopes
            .iter()
            .all(|s| (0..s.pools.len()).all(|p| moved.contains(s.id, p)));
        let keep = |loc: &crate::clients::Loc| moved.contains(loc.scope, usize::from(loc.pool));
        next.clients
            .take_from(&self.clients, (!all).then_some(&keep));
        moved
    }

    /// The ids of `config`'s scopes: a scope this engine has (by name) keeps its id, a new
    /// one takes an id no scope ever had.
    fn ids_for(&self, config: &Config) -> Result<Vec<ScopeId>, BuildError> {
        let mut next = self.by_id.len();
        config
            .scopes
            .iter()
            .map(|s| {
                if let Some(id) = self.scope_id(&s.name) {
                    return Ok(id);
                }
                let id = u16::try_from(next)
                    .ok()
                    .filter(|id| *id != NO_SCOPE)
                    .ok_or(BuildError::TooManyScopes(next + 1))?;
                next += 1;
                Ok(ScopeId(id))
            })
            .collect()
    }
}

/// The pools of the engine replaced that changed hands whole: by scope id, by pool index.
struct Moved(Vec<Vec<bool>>);

impl Moved {
    fn insert(&mut self, scope: ScopeId, pool: usize) {
        let pools = &mut self.0[usize::from(scope.0)];
        if pools.len() <= pool {
            pools.resize(pool + 1, false);
        }
        pools[pool] = true;
    }

    fn contains(&self, scope: ScopeId, pool: usize) -> bool {
        self.0
            .get(usize::from(scope.0))
            .and_then(|pools| pools.get(pool))
            .copied()
            .unwrap_or(false)
    }
}

/// Whether a binding in `state` counts in [`Carried::bindings`]: not an address merely
/// available, or reserved by the configuration.
fn counts(state: BindingState) -> bool {
    !matches!(
        state,
        BindingState::Free | BindingState::Backup | BindingState::Reserved
    )
}

/// Class bits of one engine to those of another, by class name.
struct ClassMap(Vec<u32>);

impl ClassMap {
    fn new(from: &Engine, to: &Engine) -> ClassMap {
        ClassMap(
            from.classes
                .iter()
                .map(|c| {
                    to.classes
                        .iter()
                        .position(|n| n.name == c.name)
                        .map_or(0, |i| 1 << i)
                })
                .collect(),
        )
    }

    /// Whether every bit stays where it is.
    fn is_identity(&self) -> bool {
        self.0.iter().enumerate().all(|(i, to)| *to == 1 << i)
    }

    fn map(&self, bits: u32) -> u32 {
        self.0
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .fold(0, |m, (_, to)| m | to)
    }
}
