//! Between neutral leases and Peregrine bindings: what an import restores into an engine,
//! and what an export reads out of one.

use std::net::Ipv4Addr;

use peregrine_config::model::Config;
use peregrine_engine::{
    Binding, BindingEvent, BindingState, ClientInfo, Engine, RestoreError, ScopeId,
};

use crate::lease::{HwAddr, Lease, LeaseState, Record, Skipped};

/// Option 12, host name (RFC 2132 §3.14).
const HOST_NAME: u8 = 12;

/// Client key kinds as [`peregrine_engine::ClientKey::to_raw`] reports them (the journal's
/// codes).
const KEY_HARDWARE: u8 = 0;
const KEY_CLIENT_ID: u8 = 1;

/// An imported lease as the binding change that installs it, with its source line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Line of the source file.
    pub line: usize,
    /// The binding, in the scope whose pool holds the address.
    pub event: BindingEvent,
}

/// A lease for an address another client holds in the engine: not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// Line of the source file.
    pub line: usize,
    /// The address.
    pub address: Ipv4Addr,
    /// The binding that holds it.
    pub holder: Binding,
}

/// A lease not imported because its client holds a newer one on another address of the
/// scope (by last transaction time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Older {
    /// Line of the source file.
    pub line: usize,
    /// The lease's address.
    pub address: Ipv4Addr,
    /// The address of the client's newer lease, kept.
    pub kept: Ipv4Addr,
}

/// What [`restore`] did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Installed in the engine, in source order: what the journal must record.
    pub accepted: Vec<Mapped>,
    /// The clients' older leases on other addresses of a scope, given up for a newer lease
    /// of this file (its line): journaled with it (see [`Restored::events`]).
    pub displaced: Vec<Mapped>,
    /// Leases whose address another client holds.
    pub conflicts: Vec<Conflict>,
    /// Leases whose client holds a newer lease in the scope.
    pub older: Vec<Older>,
    /// Leases that could not be mapped to a binding, each with the reason.
    pub skipped: Vec<Skipped>,
}

impl Restored {
    /// Every binding change the journal must record, in the order they were made.
    pub fn events(&self) -> Vec<BindingEvent> {
        // Both lists are in line order; a displaced lease goes before the lease of its line.
        let mut out = Vec::with_capacity(self.accepted.len() + self.displaced.len());
        let mut displaced = self.displaced.iter().peekable();
        for a in &self.accepted {
            while let Some(d) = displaced.next_if(|d| d.line <= a.line) {
                out.push(d.event);
            }
            out.push(a.event);
        }
        out.extend(displaced.map(|d| d.event));
        out
    }
}

/// The binding change that installs `lease` in `engine` (built from `config`), or why there
/// is none.
///
/// The scope is the one whose pool holds the address. The client key is the one a live
/// client gets ([`Engine::client_key_for`]): its client identifier if the scope matches on
/// client identifiers and one is known, else its hardware address, so that the client's
/// next REQUEST finds the binding. A lease that never ends is given the largest time.
pub fn binding_event(
    engine: &Engine,
    config: &Config,
    lease: &Lease,
) -> Result<BindingEvent, String> {
    let state = match lease.state {
        LeaseState::Active => BindingState::Active,
        LeaseState::Expired => BindingState::Expired,
        LeaseState::Released => BindingState::Released,
        LeaseState::Abandoned => BindingState::Abandoned,
        LeaseState::Reserved => BindingState::Reserved,
        LeaseState::Free | LeaseState::Reset => {
            return Err(format!(
                "{}: state {}, nothing is bound to import",
                lease.address,
                lease.state.as_str()
            ));
        }
        LeaseState::Backup => {
            return Err(format!(
                "{}: state backup (owned by the failover partner), not a lease",
                lease.address
            ));
        }
    };
    let Some((scope, _)) = engine.binding(lease.address) else {
        return Err(format!("{}: in no configured pool", lease.address));
    };
    let match_client_id = config
        .scopes
        .get(usize::from(scope.0))
        .is_some_and(|s| s.match_client_id);
    let client_id = lease
        .client_id
        .as_deref()
        .filter(|id| match_client_id && !id.is_empty());
    let hw = lease.hardware.as_ref();
    if client_id.is_none() && hw.is_none_or(|h| h.bytes.is_empty()) {
        return Err(format!(
            "{}: no hardware address{}",
            lease.address,
            if lease.client_id.is_some() {
                " (and the scope does not match on client identifiers)"
            } else {
                " or client identifier"
            }
        ));
    }
    let (htype, chaddr) = hw.map_or((0, &[][..]), |h| (h.htype, h.bytes.as_slice()));
    let key = engine.client_key_for(htype, chaddr, client_id);
    let mac = match hw {
        Some(HwAddr { htype: 1, bytes }) => <[u8; 6]>::try_from(bytes.as_slice()).unwrap_or([0; 6]),
        _ => [0; 6],
    };
    let expires = lease.expires.unwrap_or(u64::MAX);
    let cltt = lease
        .cltt
        .or_else(|| {
            let v = lease.valid_lifetime?;
            lease.expires.map(|e| e.saturating_sub(u64::from(v)))
        })
        .unwrap_or(0);
    let granted = lease
        .valid_lifetime
        .or_else(|| u32::try_from(lease.expires?.saturating_sub(cltt)).ok())
        .unwrap_or(0);
    Ok(BindingEvent {
        scope,
        address: lease.address,
        binding: Binding {
            client: Some(key),
            mac,
            state,
            expires,
            cltt,
            granted,
            partner_sent: lease.partner_sent.unwrap_or(0),
            partner_acked: lease.partner_acked.unwrap_or(0),
            classes: lease.classes.unwrap_or(0),
            // The engine stamps the address's next version when it installs the lease.
            version: 0,
            info: hostname_info(lease.hostname.as_deref()),
        },
    })
}

/// The client options a lease file's host name gives a binding: option 12, if it is a name a
/// client could have sent (1 to 255 bytes; one longer than the binding's room is left out).
fn hostname_info(hostname: Option<&str>) -> ClientInfo {
    let Some(name) = hostname.filter(|n| !n.is_empty() && n.len() <= 255) else {
        return ClientInfo::EMPTY;
    };
    let mut option = vec![HOST_NAME, name.len() as u8];
    option.extend_from_slice(name.as_bytes());
    ClientInfo::from_options(&option).unwrap_or(ClientInfo::EMPTY)
}

/// Maps every record and installs it in `engine` with [`Engine::restore`]: a lease for an
/// address another client holds is reported in [`Restored::conflicts`] and left alone.
/// `progress` is called once per record.
pub fn restore(
    engine: &Engine,
    config: &Config,
    records: &[Record],
    mut progress: impl FnMut(),
) -> Restored {
    let mut out = Restored::default();
    for r in records {
        progress();
        let event = match binding_event(engine, config, &r.lease) {
            Ok(e) => e,
            Err(reason) => {
                out.skipped.push(Skipped {
                    line: r.line,
                    reason,
                });
                continue;
            }
        };
        match engine.restore(&event) {
            // Journaled as stored: with the version the engine gave it, which is what replay
            // compares.
            Ok(imported) => {
                if let Some(displaced) = imported.displaced {
                    out.displaced.push(Mapped {
                        line: r.line,
                        event: displaced,
                    });
                }
                out.accepted.push(Mapped {
                    line: r.line,
                    event: BindingEvent {
                        binding: imported.binding,
                        ..event
                    },
                });
            }
            Err(RestoreError::ClientHoldsNewer(kept)) => out.older.push(Older {
                line: r.line,
                address: event.address,
                kept,
            }),
            Err(RestoreError::Conflict(address)) => out.conflicts.push(Conflict {
                line: r.line,
                address,
                holder: engine.binding(address).map_or(event.binding, |(_, b)| b),
            }),
            Err(RestoreError::UnknownAddress(a)) => out.skipped.push(Skipped {
                line: r.line,
                reason: format!("{a}: in no configured pool"),
            }),
        }
    }
    out
}

/// The lease a binding is, for export; `None` for free addresses and outstanding offers,
/// which are not leases.
///
/// Kept: address, state, hardware address (from the client key when the client is keyed
/// by it, else the binding's MAC), client identifier (only when the key holds its bytes:
/// an identifier longer than 30 bytes is kept as a digest and is lost here), times,
/// failover times, classes, the host name the client sent. The subnet id is the scope's
/// position in the configuration, from 1.
pub fn lease_of(scope: ScopeId, address: Ipv4Addr, b: &Binding) -> Option<Lease> {
    let state = match b.state {
        BindingState::Free | BindingState::Offered => return None,
        BindingState::Active => LeaseState::Active,
        BindingState::Expired => LeaseState::Expired,
        BindingState::Released => LeaseState::Released,
        // Out of service either way: Kea and ISC have no word for why.
        BindingState::Abandoned | BindingState::HeldBack => LeaseState::Abandoned,
        BindingState::Reserved => LeaseState::Reserved,
        BindingState::Reset => LeaseState::Reset,
        BindingState::Backup => LeaseState::Backup,
    };
    let mut l = Lease::new(address, state);
    let raw = b.client.as_ref().map(peregrine_engine::ClientKey::to_raw);
    l.hardware = match raw {
        Some((KEY_HARDWARE, [htype, chaddr @ ..])) if !chaddr.is_empty() => Some(HwAddr {
            htype: *htype,
            bytes: chaddr.to_vec(),
        }),
        _ => (b.mac != [0; 6]).then(|| HwAddr::ethernet(b.mac)),
    };
    l.client_id = match raw {
        Some((KEY_CLIENT_ID, id)) => Some(id.to_vec()),
        _ => None,
    };
    l.expires = (b.expires != u64::MAX).then_some(b.expires);
    l.cltt = Some(b.cltt);
    l.valid_lifetime = Some(b.granted);
    l.subnet_id = Some(u32::from(scope.0) + 1);
    l.partner_sent = Some(b.partner_sent);
    l.partner_acked = Some(b.partner_acked);
    l.classes = Some(b.classes);
    l.hostname = b
        .info
        .host_name()
        .map(|n| String::from_utf8_lossy(n).into_owned());
    Some(l)
}
