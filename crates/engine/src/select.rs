//! What a request comes to before any address is chosen: its scope (RFC order), its classes,
//! the client key it is known by, and the reservation it matches.

use std::net::Ipv4Addr;

use peregrine_config::model::ClassMatch;
use peregrine_wire::dhcp::{DhcpMessage, RelayAgentInfo};

use crate::engine::{Engine, Request};
use crate::key::ClientKey;
use crate::scope::{ReservationProbe, Scope};
use crate::verdict::RxMeta;

impl Engine {
    /// The key `handle` derives for a client with this hardware address and, when the scope
    /// matches on it, client identifier: for lease import and the admin API.
    pub fn client_key_for(&self, htype: u8, chaddr: &[u8], client_id: Option<&[u8]>) -> ClientKey {
        match client_id.filter(|id| !id.is_empty()) {
            Some(id) => ClientKey::client_id(id, &self.key_seed).canonical(htype, chaddr),
            None => ClientKey::hardware(htype, chaddr, &self.key_seed),
        }
    }

    pub(crate) fn client_key(&self, msg: &DhcpMessage<'_>, match_client_id: bool) -> ClientKey {
        if match_client_id && let Some(v) = msg.client_id() {
            let mut scratch;
            let id = if let Some(id) = v.as_slice() {
                Some(id)
            } else {
                scratch = [0u8; 512];
                v.contiguous(&mut scratch).ok()
            };
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                let p = msg.packet();
                return ClientKey::client_id(id, &self.key_seed).canonical(p.htype(), p.chaddr());
            }
        }
        let p = msg.packet();
        ClientKey::hardware(p.htype(), p.chaddr(), &self.key_seed)
    }

    /// Scope selection, in RFC order: link-selection (82/5), subnet-selection (118), giaddr,
    /// ciaddr (if it fits a subnet), then the receiving interface.
    pub(crate) fn select(
        &self,
        meta: &RxMeta,
        msg: &DhcpMessage<'_>,
        rai: Option<&RelayAgentInfo<'_>>,
    ) -> Option<&Scope> {
        let p = msg.packet();
        let sel = &self.selector;
        let arrival = || match meta.interface {
            Some(i) => sel.on_interface(i, &meta.vlans),
            None => sel.by_address(meta.local_ip),
        };
        let id = if let Some(a) = rai.and_then(RelayAgentInfo::link_selection) {
            sel.by_address(a)
        } else if let Some(a) = msg.subnet_selection() {
            sel.by_address(a)
        } else if !p.giaddr().is_unspecified() {
            sel.by_relay(p.giaddr())
        } else if !p.ciaddr().is_unspecified() {
            // An unrelayed client whose ciaddr fits no subnet is on the arrival link: its
            // answer (an OFFER, a NAK) comes from there.
            sel.by_address(p.ciaddr()).or_else(arrival)
        } else {
            arrival()
        };
        id.map(|id| self.scope(id))
    }

    pub(crate) fn classify(
        &self,
        meta: &RxMeta,
        msg: &DhcpMessage<'_>,
        rai: Option<&RelayAgentInfo<'_>>,
    ) -> u32 {
        let mut vlan_ids = [0u16; 2];
        let tags = meta.vlans.as_slice();
        for (id, tag) in vlan_ids.iter_mut().zip(tags) {
            *id = tag.vid();
        }
        let vlan_ids = &vlan_ids[..tags.len().min(2)];
        let mut bits = 0;
        for (i, class) in self.classes.iter().enumerate() {
            let all = class.conditions.iter().all(|c| match c {
                ClassMatch::VendorClassPrefix(p) => msg
                    .vendor_class()
                    .is_some_and(|v| v.len() >= p.len() && v.bytes().zip(p).all(|(a, b)| a == *b)),
                ClassMatch::CircuitIdPrefix(p) => rai
                    .and_then(RelayAgentInfo::circuit_id)
                    .is_some_and(|c| c.starts_with(p)),
                ClassMatch::RemoteIdPrefix(p) => rai
                    .and_then(RelayAgentInfo::remote_id)
                    .is_some_and(|c| c.starts_with(p)),
                ClassMatch::MacPrefix(p) => msg.packet().chaddr().starts_with(p),
                ClassMatch::Giaddr(net) => {
                    let g = msg.packet().giaddr();
                    !g.is_unspecified() && net.contains(g)
                }
                ClassMatch::Vlan(v) => v.matches(vlan_ids),
            });
            if all {
                bits |= 1 << i;
            }
        }
        bits
    }
}

/// The reservation of `yiaddr`, if it is this client's.
pub(crate) fn reservation_for(
    r: &Request<'_, '_>,
    scope: &Scope,
    yiaddr: Ipv4Addr,
) -> Option<usize> {
    let i = scope.reservations.of_address(yiaddr)?;
    let mut scratch = [0u8; 512];
    (scope.reservations.find(&probe(r, &mut scratch)) == Some(i)).then_some(i)
}

/// What a request offers to match reservations against.
pub(crate) fn probe<'a>(
    r: &'a Request<'_, '_>,
    scratch: &'a mut [u8; 512],
) -> ReservationProbe<'a> {
    ReservationProbe {
        mac: r.msg.packet().client_mac().map(|m| m.octets()),
        client_id: r.msg.client_id().and_then(|v| v.contiguous(scratch).ok()),
        circuit_id: r.rai.as_ref().and_then(RelayAgentInfo::circuit_id),
        remote_id: r.rai.as_ref().and_then(RelayAgentInfo::remote_id),
    }
}

/// Whether a client with `classes` may use a pool restricted to `pool_classes`.
pub(crate) fn allows(pool_classes: u32, classes: u32) -> bool {
    pool_classes == 0 || pool_classes & classes != 0
}
