//! `config/example.toml` parses and means what its comments say.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use peregrine_config::model::{
    AdminState, Backend, ClassMatch, InterfaceConfig, LeaseTimes, ReservationKey, VlanMatch,
};

fn load() -> peregrine_config::model::Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
    peregrine_config::load(&path).unwrap_or_else(|errors| panic!("{errors}"))
}

#[test]
fn server_settings() {
    let s = load().server;
    assert!(s.authoritative);
    assert!(s.match_client_id);
    assert_eq!(
        s.lease,
        LeaseTimes {
            valid: 14400,
            renew: 7200,
            rebind: 12600,
            min: 14400,
            max: 14400,
        }
    );
    assert_eq!((s.offer_hold, s.decline_probation), (10, 86400));
    assert!((s.cache_threshold - 0.25).abs() < f32::EPSILON);
    assert!(s.stash_agent_options);
    assert!(!s.rapid_commit);
    let requesters: Vec<String> = s
        .leasequery_requesters
        .iter()
        .map(|n| format!("{}/{}", n.addr, n.prefix))
        .collect();
    assert_eq!(requesters, ["192.0.2.1/32", "10.201.0.0/16"]);
    assert_eq!(
        s.options.get(6),
        Some(&[192, 0, 2, 53, 198, 51, 100, 53][..])
    );
    assert_eq!(s.options.get(15), Some(&b"access.example.net"[..]));
    assert_eq!(s.options.get(42), Some(&[192, 0, 2, 123][..]));
    let codes: Vec<u8> = s.options.options.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, [6, 15, 42, 119]);
}

#[test]
fn classes() {
    let classes = load().classes;
    let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["docsis-cm", "olt-07", "lab-cpe", "lab-phones"]);

    let docsis = &classes[0];
    assert_eq!(
        docsis.conditions,
        [
            ClassMatch::VendorClassPrefix(b"docsis3".to_vec()),
            ClassMatch::Giaddr(peregrine_config::model::Ipv4Net {
                addr: Ipv4Addr::new(10, 201, 0, 0),
                prefix: 16
            }),
        ]
    );
    assert_eq!(docsis.options.get(4), Some(&[10, 200, 0, 20][..]));
    assert_eq!(docsis.options.get(43), Some(&[2, 3, b'E', b'C', b'M'][..]));
    assert_eq!(docsis.options.get(66), Some(&b"10.200.0.20"[..]));
    assert_eq!(docsis.options.get(67), Some(&b"docsis/cm-default.cfg"[..]));

    assert_eq!(
        classes[1].conditions,
        [
            ClassMatch::CircuitIdPrefix(b"olt-07/".to_vec()),
            ClassMatch::RemoteIdPrefix(vec![0x00, 0xd0, 0xf8]),
        ]
    );
    assert_eq!(
        classes[2].conditions,
        [ClassMatch::MacPrefix(vec![0x02, 0x00, 0x5e])]
    );
    assert_eq!(
        classes[3].conditions,
        [ClassMatch::Vlan(VlanMatch {
            outer: 20,
            inner: None
        })]
    );
}

#[test]
fn scopes() {
    let scopes = load().scopes;
    let names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cmts-1-cm",
            "cmts-1-cpe",
            "bng-2",
            "lab",
            "pop-old",
            "lab-iptv"
        ]
    );

    let cm = &scopes[0];
    assert_eq!(cm.shared_network.as_deref(), Some("cmts-1"));
    assert!(cm.relay_addresses.is_empty());
    // Its own lease time; timers derived from it, not inherited from [server].
    assert_eq!(
        cm.lease,
        LeaseTimes {
            valid: 604_800,
            renew: 302_400,
            rebind: 529_200,
            min: 604_800,
            max: 604_800,
        }
    );
    assert_eq!(cm.pools[0].first, Ipv4Addr::new(10, 201, 1, 0));
    assert_eq!(cm.pools[0].last, Ipv4Addr::new(10, 201, 255, 254));
    assert_eq!(cm.pools[0].classes, ["docsis-cm"]);

    let cpe = &scopes[1];
    assert_eq!(cpe.shared_network.as_deref(), Some("cmts-1"));
    assert_eq!(
        cpe.lease,
        LeaseTimes {
            valid: 14400,
            renew: 7200,
            rebind: 12600,
            min: 14400,
            max: 14400,
        }
    );
    assert_eq!(
        (cpe.pools[1].first, cpe.pools[1].last),
        (
            Ipv4Addr::new(100, 64, 64, 0),
            Ipv4Addr::new(100, 64, 127, 255)
        )
    );
    assert!(cpe.pools[1].classes.is_empty());
    assert_eq!(cpe.options.get(26), Some(&[0x05, 0xdc][..]));

    let bng = &scopes[2];
    assert!(!bng.match_client_id);
    assert!(bng.authoritative);
    assert_eq!(bng.relay_addresses, [Ipv4Addr::new(192, 0, 2, 1)]);
    assert_eq!(bng.server_id, Some(Ipv4Addr::new(192, 0, 2, 10)));
    assert_eq!(bng.options.get(28), Some(&[198, 51, 100, 255][..]));
    assert_eq!(bng.options.get(224), Some(&[1, 2][..]));
    assert_eq!(bng.options.get(225), Some(&b"bng-2"[..]));
    let keys: Vec<&ReservationKey> = bng.reservations.iter().map(|r| &r.key).collect();
    assert_eq!(
        keys,
        [
            &ReservationKey::CircuitId(b"olt-07/1/1/3:101".to_vec()),
            &ReservationKey::RemoteId(vec![0x00, 0xd0, 0xf8, 0xa1, 0xb2, 0xc3]),
            &ReservationKey::ClientId(vec![0x01, 0x02, 0x00, 0x5e, 0x00, 0x53, 0x03]),
            &ReservationKey::Mac([0x02, 0x00, 0x5e, 0x00, 0x53, 0x04]),
        ]
    );
    let acme = &bng.reservations[0];
    assert_eq!(acme.address, Ipv4Addr::new(198, 51, 100, 201));
    assert_eq!(acme.hostname.as_deref(), Some("biz-acme"));
    assert_eq!(acme.options.get(6), Some(&[198, 51, 100, 53][..]));

    let lab = &scopes[3];
    assert_eq!(lab.interfaces, ["eth1"]);
    assert!(!lab.failover, "served alone");
    assert!(
        scopes
            .iter()
            .filter(|s| s.name != "lab")
            .all(|s| s.failover)
    );
    assert!(lab.relay_addresses.is_empty());
    assert_eq!(
        lab.lease,
        LeaseTimes {
            valid: 600,
            renew: 200,
            rebind: 500,
            min: 300,
            max: 3600,
        }
    );

    let old = &scopes[4];
    assert_eq!(old.state, AdminState::Inactive);
    assert!(!old.authoritative);
    assert!(scopes[..4].iter().all(|s| s.state == AdminState::Active));
}

#[test]
fn scopes_on_vlans() {
    let scopes = load().scopes;
    let (lab, iptv) = (&scopes[3], &scopes[5]);
    // One interface: the lab's untagged frames, the set-top boxes' VLANs.
    assert_eq!(lab.interfaces, ["eth1"]);
    assert_eq!(iptv.interfaces, ["eth1"]);
    assert!(lab.vlans.is_empty());
    let vlans: Vec<String> = iptv.vlans.iter().map(ToString::to_string).collect();
    assert_eq!(vlans, ["30", "40.7"]);
}

#[test]
fn runtime() {
    let config = load();
    let r = &config.runtime;
    assert_eq!((r.backend, r.workers), (Backend::AfPacket, 4));
    assert_eq!(
        r.interfaces,
        [
            // Relay-facing: in no scope's subnet, and the server identifier of scope bng-2.
            InterfaceConfig {
                name: "eth0".into(),
                address: Ipv4Addr::new(192, 0, 2, 10),
                trusted: false,
                dpdk_port: None,
            },
            InterfaceConfig {
                name: "eth1".into(),
                address: Ipv4Addr::new(10, 200, 0, 1),
                trusted: false,
                dpdk_port: None,
            },
        ]
    );
    assert!(
        config
            .scopes
            .iter()
            .all(|s| !s.subnet.contains(r.interfaces[0].address))
    );
    assert_eq!(config.scopes[2].server_id, Some(r.interfaces[0].address));
    // The lab LAN's interface lies in the lab scope, which lists it.
    let lab = &config.scopes[3];
    assert!(lab.subnet.contains(r.interfaces[1].address));
    assert_eq!(lab.interfaces, [r.interfaces[1].name.as_str()]);
    assert_eq!(r.control_listen, SocketAddr::from(([10, 255, 0, 10], 9167)));
    assert_eq!(
        r.control_token_file.as_deref(),
        Some(Path::new("/etc/peregrine/admin.token"))
    );
    let tls = r.control_tls.as_ref().unwrap();
    assert_eq!(
        (tls.cert.as_path(), tls.key.as_path()),
        (
            Path::new("/etc/peregrine/admin.crt"),
            Path::new("/etc/peregrine/admin.key")
        )
    );
}

#[test]
fn limits() {
    let l = load().limits;
    assert_eq!(
        (l.client_rate, l.client_burst, l.relay_rate, l.relay_burst),
        (10, 20, 20_000, 40_000)
    );
    assert_eq!(l.relay_key, peregrine_config::model::RelayKey::Giaddr);
    assert!(l.overload_priority);
}

/// Every key of the file's schema.
const SCHEMA: &[&str] = &[
    "backend",
    "workers",
    "cores",
    "handoff",
    "writer-core",
    "commit-interval-us",
    "trusted",
    "listen",
    "token-file",
    "tls-cert",
    "tls-key",
    "directory",
    "durability",
    "compact-after",
    "authoritative",
    "match-client-id",
    "lease-time",
    "renew-timer",
    "rebind-timer",
    "min-lease-time",
    "max-lease-time",
    "rapid-commit",
    "offer-hold",
    "decline-probation",
    "cache-threshold",
    "stash-agent-options",
    "leasequery-requesters",
    "bulk-leasequery-listen",
    "vendor-class-prefix",
    "circuit-id-prefix",
    "remote-id-prefix",
    "mac-prefix",
    "giaddr",
    "name",
    "subnet",
    "relay-addresses",
    "interfaces",
    "shared-network",
    "server-id",
    "state",
    "range",
    "classes",
    "mac",
    "client-id",
    "circuit-id",
    "remote-id",
    "address",
    "hostname",
    "routers",
    "domain-name-servers",
    "domain-name",
    "ntp-servers",
    "broadcast-address",
    "interface-mtu",
    "domain-search",
    "tftp-server",
    "bootfile-name",
    "vendor-specific",
    "classless-static-routes",
    "v6-only-wait",
    "custom",
    "vlan",
    "vlans",
    "code",
    "hex",
    "text",
    "ips",
    "role",
    "local",
    "peer",
    "relationship",
    "mclt",
    "split",
    "max-response-delay",
    "max-unacked-updates",
    "load-balance-max-seconds",
    "auto-partner-down",
    "secret",
    "client-rate",
    "client-burst",
    "relay-rate",
    "relay-burst",
    "relay-key",
    "overload-priority",
];

/// Every key of the schema appears in the example, so that it documents them all.
#[test]
fn every_key_is_shown() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml"),
    )
    .unwrap();
    for key in SCHEMA {
        let pattern = format!("{key} = ");
        // Set on a line that is no comment, not as the tail of a longer key.
        let set = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .any(|line| {
                line.match_indices(&pattern).any(|(i, _)| {
                    !line[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
                })
            });
        assert!(set, "example.toml does not set `{key}`");
    }
}
