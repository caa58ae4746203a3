//! Installing bindings that were decided elsewhere: journal replay, lease import, and (with
//! failover) a partner's binding updates. The one door through which state that did not come
//! from a request enters the engine.

use std::net::Ipv4Addr;

use crate::binding::{Binding, BindingEvent, BindingState};
use crate::clients::Loc;
use crate::engine::Engine;

/// Why a binding could not be restored (journal replay, lease import).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// The address is in no pool of the scope named, nor of any scope.
    UnknownAddress(Ipv4Addr),
    /// Another client holds the address.
    Conflict(Ipv4Addr),
}

/// How [`Engine::install`] treats the binding already there.
#[derive(Clone, Copy)]
enum Install {
    /// Another server's lease: refused if another client holds the address.
    Import,
    /// A journal record: applied if its version is newer.
    Replay,
}

impl Engine {
    /// Installs an imported binding (another server's lease) as the address's next version,
    /// and returns it as stored (version included: what to journal). An address another
    /// client holds is reported as a conflict and left alone.
    pub fn restore(&self, event: &BindingEvent) -> Result<Binding, RestoreError> {
        self.install(event, Install::Import)
            .map(|stored| stored.unwrap_or(event.binding))
    }

    /// Replays a binding change from the journal: it replaces the address's binding if its
    /// version is newer, whoever holds the address now, and is ignored (`Ok(false)`) if not.
    /// The journal is the truth about what was acknowledged; versions put back the order
    /// that separate worker queues may have lost, so replay order does not matter.
    pub fn replay(&self, event: &BindingEvent) -> Result<bool, RestoreError> {
        self.install(event, Install::Replay)
            .map(|stored| stored.is_some())
    }

    /// Installs `event`'s binding; returns it as stored, or `None` for a stale replay.
    fn install(&self, event: &BindingEvent, how: Install) -> Result<Option<Binding>, RestoreError> {
        let addr = event.address;
        let (s, p, at) = self
            .scopes
            .get(usize::from(event.scope.0))
            .and_then(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            .or_else(|| {
                self.scopes
                    .iter()
                    .find_map(|s| s.locate(addr).map(|(p, at)| (s, p, at)))
            })
            .ok_or(RestoreError::UnknownAddress(addr))?;
        let loc = Loc::new(s.id, p, at);
        let mut b = event.binding;
        // Bindings written before client identifiers of the form 01+MAC were keyed by the MAC
        // (and imported ones that carry both) get the key a live request now derives.
        if b.mac != [0; 6] {
            b.client = b.client.map(|k| k.canonical(1, &b.mac));
        }
        let hashed = b.client.map(|k| self.clients.hashed(k));
        let mut guard = hashed.as_ref().map(|k| self.clients.lock(k));
        let mut shard = s.pools[p].lock(at.shard);
        let cur = *shard.binding(at.slot);
        let stored = match how {
            Install::Import => {
                if cur.client.is_some()
                    && cur.client != b.client
                    && matches!(cur.state, BindingState::Active | BindingState::Offered)
                {
                    return Err(RestoreError::Conflict(addr));
                }
                shard.set(at.slot, b)
            }
            Install::Replay => {
                if b.version <= cur.version {
                    return Ok(None);
                }
                shard.put(at.slot, b)
            }
        };
        match b.state {
            BindingState::Active | BindingState::Offered | BindingState::Abandoned => {
                shard.unlink(at.slot);
                shard.schedule(at.slot, b.expires);
            }
            BindingState::Reserved | BindingState::Backup => shard.unlink(at.slot),
            BindingState::Free
            | BindingState::Expired
            | BindingState::Released
            | BindingState::Reset => {
                shard.push_free(at.slot);
            }
        }
        if let (Some((_, clients)), Some(k)) = (guard.as_mut(), hashed) {
            // A client's live binding wins its index entry over addresses it only keeps
            // affinity to, whatever order the records come in (a snapshot is in address order).
            if matches!(
                b.state,
                BindingState::Active | BindingState::Offered | BindingState::Reserved
            ) {
                clients.insert(k, loc);
            } else {
                clients.entry(k).or_insert(loc);
            }
        }
        Ok(Some(stored))
    }
}
