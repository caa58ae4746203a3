//! Defaults, derived timers, and what scopes inherit from `[server]`.

use std::net::{Ipv4Addr, SocketAddr};

use peregrine_config::model::{
    AdminState, Backend, InterfaceConfig, LeaseStore, LeaseTimes, ReservationKey, Runtime,
};

use super::valid;

/// A scope `s` on 10.0.0.0/24 with the given extra lines, after `server`.
fn scope(server: &str, lines: &str) -> String {
    format!("[server]\n{server}\n[[scope]]\nname = \"s\"\nsubnet = \"10.0.0.0/24\"\n{lines}\n")
}

#[test]
fn empty_file() {
    let config = valid("");
    let s = config.server;
    assert!(!s.authoritative);
    assert!(s.match_client_id);
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 3600,
            renew: 1800,
            rebind: 3150,
            min: 3600,
            max: 3600,
        }
    );
    assert_eq!((s.offer_hold, s.decline_probation), (10, 86400));
    assert!((s.cache_threshold - 0.25).abs() < f32::EPSILON);
    assert!(s.stash_agent_options);
    assert!(s.options.options.is_empty());
    assert!(config.classes.is_empty() && config.scopes.is_empty());
    let r = config.runtime;
    assert_eq!(r.backend, Backend::AfPacket);
    assert_eq!(r.workers, 1);
    assert!(r.interfaces.is_empty());
    assert_eq!(r.control_listen, SocketAddr::from(([127, 0, 0, 1], 9167)));
    assert_eq!(r, Runtime::default());
}

#[test]
fn empty_runtime_tables() {
    let config = valid("[dataplane]\n[control]\n");
    assert_eq!(config.runtime, Runtime::default());
}

#[test]
fn runtime_keys_not_given_take_their_defaults() {
    let text = "[dataplane]\nbackend = \"udp\"\n\
                [[interface]]\nname = \"eth1\"\naddress = \"10.0.0.1\"\n\
                [[interface]]\nname = \"eth2\"\naddress = \"10.0.1.1\"\ntrusted = true\n";
    let r = valid(text).runtime;
    assert_eq!((r.backend, r.workers), (Backend::Udp, 1));
    assert_eq!(
        r.interfaces,
        [
            InterfaceConfig {
                name: "eth1".into(),
                address: Ipv4Addr::new(10, 0, 0, 1),
                trusted: false,
                dpdk_port: None,
            },
            InterfaceConfig {
                name: "eth2".into(),
                address: Ipv4Addr::new(10, 0, 1, 1),
                trusted: true,
                dpdk_port: None,
            },
        ]
    );
    assert_eq!(r.control_listen, Runtime::default().control_listen);

    let r = valid("[dataplane]\nworkers = 64\n[control]\nlisten = \"[::1]:8080\"\n").runtime;
    assert_eq!((r.backend, r.workers), (Backend::AfPacket, 64));
    assert_eq!(
        r.control_listen,
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 8080))
    );
    assert!(r.interfaces.is_empty());

    let r = valid("[dataplane]\nbackend = \"tap\"\nworkers = 1\n").runtime;
    assert_eq!((r.backend, r.workers), (Backend::Tap, 1));
    assert!(r.cores.is_empty() && r.handoff);

    let r = valid("[dataplane]\ncores = [1, 0]\nhandoff = false\n").runtime;
    assert_eq!((r.cores.as_slice(), r.handoff), ([1, 0].as_slice(), false));
    let r = valid("[leases]\ndirectory = \"/tmp/x\"\nwriter-core = 1\n").runtime;
    let leases = r.leases.unwrap();
    assert_eq!(
        (leases.writer_core, leases.commit_interval_us),
        (Some(1), LeaseStore::DEFAULT_COMMIT_INTERVAL_US)
    );
    let r = valid("[leases]\ndirectory = \"/tmp/x\"\ncommit-interval-us = 0\n").runtime;
    assert_eq!(r.leases.unwrap().commit_interval_us, 0);
}

#[test]
fn timers_derive_from_the_lease_time() {
    let lease = |server: &str| valid(&format!("[server]\n{server}\n")).server.lease;
    assert_eq!(
        lease("lease-time = 1000"),
        LeaseTimes {
            valid: 1000,
            renew: 500,
            rebind: 875,
            min: 1000,
            max: 1000,
        }
    );
    assert_eq!(
        lease("lease-time = 7"),
        LeaseTimes {
            valid: 7,
            renew: 3,
            rebind: 6,
            min: 7,
            max: 7,
        }
    );
    assert_eq!(
        lease("lease-time = 4294967295"),
        LeaseTimes {
            valid: u32::MAX,
            renew: u32::MAX / 2,
            rebind: 3_758_096_383,
            min: u32::MAX,
            max: u32::MAX,
        }
    );
    // One timer given, the other derived.
    assert_eq!(
        lease("renew-timer = 600"),
        LeaseTimes {
            valid: 3600,
            renew: 600,
            rebind: 3150,
            min: 3600,
            max: 3600,
        }
    );
    assert_eq!(
        lease("rebind-timer = 3000"),
        LeaseTimes {
            valid: 3600,
            renew: 1800,
            rebind: 3000,
            min: 3600,
            max: 3600,
        }
    );
}

#[test]
fn scopes_inherit_server_values() {
    let server = "authoritative = true\nmatch-client-id = false\nlease-time = 1000\n\
                  renew-timer = 100\nrapid-commit = true";
    let s = &valid(&scope(server, "")).scopes[0];
    assert!(s.rapid_commit);
    assert!(s.authoritative);
    assert!(!s.match_client_id);
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 1000,
            renew: 100,
            rebind: 875,
            min: 1000,
            max: 1000,
        }
    );
    assert_eq!(s.state, AdminState::Active);
    assert_eq!((s.shared_network.as_deref(), s.server_id), (None, None));
}

#[test]
fn scopes_override_server_values() {
    let server = "authoritative = true\nmatch-client-id = false\nrapid-commit = true";
    let lines = "authoritative = false\nmatch-client-id = true\nstate = \"inactive\"\n\
                 rapid-commit = false";
    let s = &valid(&scope(server, lines)).scopes[0];
    assert!(!s.rapid_commit);
    assert!(!s.authoritative);
    assert!(s.match_client_id);
    assert_eq!(s.state, AdminState::Inactive);
}

#[test]
fn a_scope_lease_time_brings_its_own_timers() {
    // The server's timers would not fit a 600 s lease; the scope derives its own.
    let server = "lease-time = 86400\nrenew-timer = 43200\nrebind-timer = 75600";
    let s = &valid(&scope(server, "lease-time = 600")).scopes[0];
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 600,
            renew: 300,
            rebind: 525,
            min: 600,
            max: 600,
        }
    );
    let s = &valid(&scope(server, "lease-time = 600\nrenew-timer = 100")).scopes[0];
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 600,
            renew: 100,
            rebind: 525,
            min: 600,
            max: 600,
        }
    );
}

#[test]
fn lease_bounds_are_inherited_on_their_own() {
    let server = "lease-time = 3600\nmin-lease-time = 600\nmax-lease-time = 86400";
    let s = &valid(&scope(server, "lease-time = 1200")).scopes[0];
    assert_eq!(
        (s.lease.valid, s.lease.min, s.lease.max),
        (1200, 600, 86400)
    );
    let s = &valid(&scope(server, "max-lease-time = 7200")).scopes[0];
    assert_eq!((s.lease.valid, s.lease.min, s.lease.max), (3600, 600, 7200));
    // Without bounds anywhere, a scope's own lease time is both: what a client asks is ignored.
    let s = &valid(&scope("lease-time = 3600", "lease-time = 1200")).scopes[0];
    assert_eq!(
        (s.lease.valid, s.lease.min, s.lease.max),
        (1200, 1200, 1200)
    );
}

#[test]
fn a_scope_timer_alone_keeps_the_rest_from_the_server() {
    let server = "lease-time = 1000\nrebind-timer = 900";
    let s = &valid(&scope(server, "renew-timer = 200")).scopes[0];
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 1000,
            renew: 200,
            rebind: 900,
            min: 1000,
            max: 1000,
        }
    );
}

#[test]
fn pool_forms() {
    let lines = "[[scope.pool]]\nrange = \"10.0.0.0/24\"\n\
                 [[scope.pool]]\nrange = \"10.1.0.0/24\"\n";
    // A block outside the subnet fails, whole, before the scope subnet's rule could apply.
    assert!(super::parse(&scope("", lines)).is_err());

    let text = "[[scope]]\nname = \"s\"\nsubnet = \"10.0.0.0/16\"\n\
                pool = [{ range = \"10.0.0.0/16\" }, ]\n\
                [[scope]]\nname = \"t\"\nsubnet = \"10.1.0.0/16\"\n\
                pool = [{ range = \"10.1.1.0/24\" }, { range = \"10.1.2.1-10.1.2.9\" }]\n\
                [[scope]]\nname = \"p2p\"\nsubnet = \"192.0.2.0/31\"\n\
                pool = [{ range = \"192.0.2.0/31\" }]\n";
    let config = valid(text);
    let bounds = |s: usize, p: usize| {
        let pool = &config.scopes[s].pools[p];
        (pool.first, pool.last)
    };
    // The scope's own subnet: its host addresses.
    assert_eq!(
        bounds(0, 0),
        (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 255, 254))
    );
    // Another block: all of it.
    assert_eq!(
        bounds(1, 0),
        (Ipv4Addr::new(10, 1, 1, 0), Ipv4Addr::new(10, 1, 1, 255))
    );
    assert_eq!(
        bounds(1, 1),
        (Ipv4Addr::new(10, 1, 2, 1), Ipv4Addr::new(10, 1, 2, 9))
    );
    // A /31 has no network or broadcast address (RFC 3021).
    assert_eq!(
        bounds(2, 0),
        (Ipv4Addr::new(192, 0, 2, 0), Ipv4Addr::new(192, 0, 2, 1))
    );
}

#[test]
fn byte_strings_are_text_or_hex() {
    let lines = "reservation = [\n\
                 { circuit-id = \"eth1/1:100\", address = \"10.0.0.5\" },\n\
                 { circuit-id = \"0x657468\", address = \"10.0.0.6\" },\n\
                 { remote-id = \"0x0A0b\", address = \"10.0.0.7\" },\n\
                 { client-id = \"host-7\", address = \"10.0.0.8\" },\n\
                 ]";
    let s = &valid(&scope("", lines)).scopes[0];
    let keys: Vec<_> = s.reservations.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        [
            ReservationKey::CircuitId(b"eth1/1:100".to_vec()),
            ReservationKey::CircuitId(b"eth".to_vec()),
            ReservationKey::RemoteId(vec![0x0a, 0x0b]),
            ReservationKey::ClientId(b"host-7".to_vec()),
        ]
    );
}
