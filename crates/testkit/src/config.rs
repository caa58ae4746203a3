//! Validated configurations built by hand, for tests that drive the engine without a file.
//!
//! [`server`] gives the server settings, [`scope`] a scope with one pool that inherits them, and
//! [`config`] puts them together with the default [`Runtime`]. [`lab`] is the two-scope setup
//! most tests share: one scope on the server's link, one behind a relay.

use std::net::Ipv4Addr;

use peregrine_config::model::{
    AdminState, Config, Ipv4Net, LeaseTimes, OptionSet, Pool, Runtime, Scope, ServerSettings,
};

/// The lease times of every fixture: one hour, T1 at 50 % and T2 at 87.5 %, as validation
/// derives them.
pub const LEASE: LeaseTimes = LeaseTimes {
    valid: 3600,
    renew: 1800,
    rebind: 3150,
    min: 3600,
    max: 3600,
};

/// The interface of the [`lab`]'s directly attached scope.
pub const LAB_INTERFACE: &str = "eth0";

/// An IPv4 network from its address and prefix length (host bits must be zero).
pub fn net(addr: impl Into<Ipv4Addr>, prefix: u8) -> Ipv4Net {
    Ipv4Net {
        addr: addr.into(),
        prefix,
    }
}

/// Server settings with [`LEASE`], an offer hold of 10 s, a decline probation of 600 s, client
/// identification by option 61, the default cache threshold (0.25), agent options stashed and
/// no options, no rapid commit, no leasequery; `authoritative` as given.
pub fn server(authoritative: bool) -> ServerSettings {
    ServerSettings {
        authoritative,
        match_client_id: true,
        rapid_commit: false,
        ping_check_ms: 0,
        lease: LEASE,
        offer_hold: 10,
        decline_probation: 600,
        cache_threshold: 0.25,
        stash_agent_options: true,
        leasequery_requesters: vec![],
        options: OptionSet::default(),
    }
}

/// An active scope `name` on `subnet` with one pool, `first` to `last` (any class), that
/// inherits its lease times, `authoritative`, `match_client_id` and `rapid_commit` from `server`.
///
/// It has no interfaces, relay addresses, options or reservations: only a relay's giaddr inside
/// `subnet` selects it. Set [`Scope::interfaces`] for a directly attached scope.
pub fn scope(
    name: &str,
    subnet: Ipv4Net,
    first: impl Into<Ipv4Addr>,
    last: impl Into<Ipv4Addr>,
    server: &ServerSettings,
) -> Scope {
    Scope {
        name: name.into(),
        subnet,
        pools: vec![Pool {
            first: first.into(),
            last: last.into(),
            classes: vec![],
        }],
        relay_addresses: vec![],
        interfaces: vec![],
        vlans: vec![],
        shared_network: None,
        server_id: None,
        lease: server.lease,
        authoritative: server.authoritative,
        match_client_id: server.match_client_id,
        rapid_commit: server.rapid_commit,
        ping_check_ms: server.ping_check_ms,
        failover: true,
        state: AdminState::Active,
        options: OptionSet::default(),
        reservations: vec![],
    }
}

/// `server` and `scopes`, no classes, and the default [`Runtime`].
pub fn config(server: ServerSettings, scopes: Vec<Scope>) -> Config {
    Config {
        server,
        classes: vec![],
        scopes,
        runtime: Runtime::default(),
        failover: None,
        limits: peregrine_config::model::Limits::default(),
    }
}

/// Two scopes of [`server`]`(authoritative)`: "direct" on [`LAB_INTERFACE`] (10.200.0.0/24,
/// pool 10.200.0.100 to 10.200.0.199) and "relayed" (10.201.0.0/16, pool 10.201.1.0 to
/// 10.201.1.255), which a relay at 10.201.0.1 reaches.
pub fn lab(authoritative: bool) -> Config {
    let server = server(authoritative);
    let mut direct = scope(
        "direct",
        net([10, 200, 0, 0], 24),
        [10, 200, 0, 100],
        [10, 200, 0, 199],
        &server,
    );
    direct.interfaces = vec![LAB_INTERFACE.into()];
    let relayed = scope(
        "relayed",
        net([10, 201, 0, 0], 16),
        [10, 201, 1, 0],
        [10, 201, 1, 255],
        &server,
    );
    config(server, vec![direct, relayed])
}
