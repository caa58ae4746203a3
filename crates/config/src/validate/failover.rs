//! `[failover]`: the partner, its addresses, and the relationship's parameters.

use std::net::{IpAddr, SocketAddr};

use toml::Spanned;

use super::Reported;
use crate::error::Diagnostics;
use crate::file;
use crate::model::Failover;

/// Checks `[failover]`; `leases`: whether `[leases]` is configured (the failover state must
/// survive a restart, and it is kept beside the leases).
pub(super) fn failover(
    f: &file::Failover,
    leases: bool,
    d: &mut Diagnostics<'_>,
) -> Option<Failover> {
    let primary = match f.role.get_ref().as_str() {
        "primary" => Some(true),
        "secondary" => Some(false),
        other => {
            let message = format!("`{other}` is not a role: `primary` or `secondary`");
            d.at(&f.role, "failover.role", message);
            None
        }
    };
    if !leases {
        d.at(
            &f.role,
            "failover.role",
            "a failover server needs [leases]: its failover state and bindings must survive a \
             restart",
        );
    }
    let local = d.parse(&f.local, "failover.local", link_address);
    let peer = d.parse(&f.peer, "failover.peer", link_address);
    if let (Some(l), Some(p)) = (local, peer)
        && l.ip() == p.ip()
        && l.port() == p.port()
    {
        d.at(&f.peer, "failover.peer", "is this server's own address");
    }
    let relationship = relationship(f.relationship.as_ref(), d);
    let mut ranged = |value: &Option<Spanned<i64>>, key: &str, range, default| {
        ranged(value.as_ref(), key, range, default, d)
    };
    let mclt = ranged(
        &f.mclt,
        "failover.mclt",
        (1, 604_800),
        Failover::DEFAULT_MCLT,
    );
    let split = ranged(
        &f.split,
        "failover.split",
        (0, 256),
        u32::from(Failover::DEFAULT_SPLIT),
    );
    let max_response_delay = ranged(
        &f.max_response_delay,
        "failover.max-response-delay",
        (3, 3600),
        Failover::DEFAULT_MAX_RESPONSE_DELAY,
    );
    let max_unacked_updates = ranged(
        &f.max_unacked_updates,
        "failover.max-unacked-updates",
        (1, 65_535),
        Failover::DEFAULT_MAX_UNACKED_UPDATES,
    );
    let load_balance_max_seconds = ranged(
        &f.load_balance_max_seconds,
        "failover.load-balance-max-seconds",
        (0, 65_535),
        u32::from(Failover::DEFAULT_LOAD_BALANCE_MAX_SECONDS),
    );
    let auto_partner_down = ranged(
        &f.auto_partner_down,
        "failover.auto-partner-down",
        (0, u32::MAX),
        0,
    );
    let secret = secret(f.secret.as_ref(), d);
    if !leases {
        return None;
    }
    Some(Failover {
        primary: primary?,
        local: local?,
        peer: peer?,
        relationship: relationship?,
        mclt: mclt?,
        split: u16::try_from(split?).ok()?,
        max_response_delay: max_response_delay?,
        max_unacked_updates: max_unacked_updates?,
        load_balance_max_seconds: u16::try_from(load_balance_max_seconds?).ok()?,
        auto_partner_down: auto_partner_down.map(|s| (s > 0).then_some(s))?,
        secret: secret.ok()?,
    })
}

/// `failover.relationship`: 1 to 255 ASCII characters, "peregrine" if not given.
fn relationship(value: Option<&Spanned<String>>, d: &mut Diagnostics<'_>) -> Option<String> {
    let Some(v) = value else {
        return Some("peregrine".to_owned());
    };
    let name = v.get_ref();
    let ok = !name.is_empty() && name.len() <= 255 && name.is_ascii();
    if !ok {
        d.at(
            v,
            "failover.relationship",
            "must be 1 to 255 ASCII characters",
        );
    }
    ok.then(|| name.clone())
}

/// `failover.secret`: at least 16 characters; `Ok(None)` when not given.
fn secret(
    value: Option<&Spanned<String>>,
    d: &mut Diagnostics<'_>,
) -> Result<Option<String>, Reported> {
    let Some(v) = value else {
        return Ok(None);
    };
    if v.get_ref().len() < 16 {
        d.at(v, "failover.secret", "must be at least 16 characters");
        return Err(Reported);
    }
    Ok(Some(v.get_ref().clone()))
}

/// An address on the failover link: IPv4 (the protocol carries IPv4 addresses), unicast, with
/// port 647 if none is given.
fn link_address(s: &str) -> Result<SocketAddr, String> {
    let addr = s
        .parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, Failover::DEFAULT_PORT))
        })
        .map_err(|_| format!("`{s}` is not an address (IP or IP:port, as in 10.0.0.1:647)"))?;
    match addr.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast() => {}
        _ => return Err(format!("`{s}` is not a unicast IPv4 address")),
    }
    if addr.port() == 0 {
        return Err(format!("`{s}` has port 0"));
    }
    Ok(addr)
}

/// An optional integer within `min..=max`, `default` when absent; `None` after reporting it
/// out of range.
fn ranged(
    value: Option<&Spanned<i64>>,
    key: &str,
    (min, max): (u32, u32),
    default: u32,
    d: &mut Diagnostics<'_>,
) -> Option<u32> {
    let Some(v) = value else {
        return Some(default);
    };
    let n = u32::try_from(*v.get_ref())
        .ok()
        .filter(|n| (min..=max).contains(n));
    if n.is_none() {
        d.at(v, key, format_args!("must be between {min} and {max}"));
    }
    n
}
