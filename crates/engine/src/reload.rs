//! A new configuration for a running server: the engine it describes, with every binding of
//! the engine it replaces carried over.
//!
//! The caller stops every thread that changes bindings while [`Engine::reconfigured`] runs and
//! publishes the result before they resume; the engine itself neither waits nor swaps.

use std::sync::atomic::Ordering;

use peregrine_config::model::Config;

use crate::binding::{BindingEvent, BindingState, ScopeId, Time};
use crate::engine::{BuildError, Engine, NO_SCOPE};
use crate::install::RestoreError;

/// What a reload did with the bindings of the engine it replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// Bindings carried into the new configuration's pools, as they were (versions included:
    /// the journal's order continues).
    pub bindings: u64,
    /// Bindings of addresses in no pool of the new configuration whose client may still hold
    /// them (an unexpired lease or offer, or a lease the failover partner may have granted):
    /// kept aside, neither served nor renewed, and put back if a later reload brings their
    /// address back into a pool before they run out.
    pub retired: u64,
    /// Bindings of addresses in no pool that no client holds any more: forgotten.
    pub forgotten: u64,
}

impl Engine {
    /// The engine `config` describes, built as this one was (shards, key secret, failover
    /// policy and state), holding this engine's bindings: each address in a pool of `config`
    /// keeps its binding wherever its pool now is; classes granted are matched by name; a
    /// scope whose configured state did not change keeps the state it has now (an operator's
    /// deactivation survives), one whose state changed takes the configuration's.
    /// Reservations are the new configuration's: an address no longer reserved is free
    /// unless a client holds a lease on it.
    ///
    /// Nothing may change this engine's bindings meanwhile: a change made during the copy
    /// could be missed.
    pub fn reconfigured(
        &self,
        config: &Config,
        now: Time,
    ) -> Result<(Engine, Carried), BuildError> {
        let mut next = Engine::build(config, self.options, &self.ids_for(config)?)?;
        // Ids of scopes gone stay unused.
        let issued = next.by_id.len().max(self.by_id.len());
        next.by_id.resize(issued, NO_SCOPE);
        next.partnering = self
            .partnering
            .as_ref()
            .map(crate::partner::Partnering::carried);
        next.info_left_out.store(
            self.info_left_out.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        for s in &next.scopes {
            if let Some(old) = self.scopes.iter().find(|o| o.name == s.name)
                && old.configured_active == s.configured_active
            {
                s.set_active(old.is_active());
            }
        }
        let classes = ClassMap::new(self, &next);
        let mut carried = Carried::default();
        let mut retired = Vec::new();
        // `scope`: the binding's scope, if it is one of this engine's.
        let mut carry = |mut event: BindingEvent, scope: Option<ScopeId>| {
            // The new configuration decides what is reserved.
            if event.binding.state == BindingState::Reserved {
                return;
            }
            event.binding.classes = classes.map(event.binding.classes);
            if scope.is_none() {
                // Retired from an engine before this one: the address finds its scope.
                event.scope = ScopeId(NO_SCOPE);
            }
            match next.carry(&event) {
                Ok(()) => carried.bindings += 1,
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
        self.for_each_binding(|scope, address, binding| {
            let event = BindingEvent {
                scope,
                address,
                binding: *binding,
            };
            carry(event, Some(scope));
        });
        for event in &self.retired {
            carry(*event, None);
        }
        next.retired = retired;
        Ok((next, carried))
    }

    /// The ids of `config`'s scopes: a scope this engine has (by name) keeps its id, a new
    /// one takes an id no scope ever had, so that an id in flight never names another scope.
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

    fn map(&self, bits: u32) -> u32 {
        self.0
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .fold(0, |m, (_, to)| m | to)
    }
}
