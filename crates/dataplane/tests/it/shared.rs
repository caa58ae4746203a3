//! The shared engine: reloads while members change bindings lose none of their changes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use peregrine_config::model::Config;
use peregrine_dataplane::{ReplaceError, SharedEngine};
use peregrine_engine::{BindingState, BuildError, Engine, EngineOptions, RxMeta, Verdict};
use peregrine_testkit::config as fixture;
use peregrine_testkit::frames::ClientMessage;
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::VlanTags;

const RELAY: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
const NOW: u64 = 1_800_000_000;

/// One scope of 8 000 addresses behind [`RELAY`]; with `extra`, a second scope before it.
/// Small, so that a reload's copy is about as quick as a member's burst: a member still
/// changing the engine while it is copied would lose changes often enough to be seen.
fn config(extra: bool) -> Config {
    let server = fixture::server(true);
    let mut scopes = vec![fixture::scope(
        "subscribers",
        fixture::net([10, 202, 0, 0], 16),
        [10, 202, 0, 10],
        [10, 202, 31, 250],
        &server,
    )];
    if extra {
        scopes.insert(
            0,
            fixture::scope(
                "extra",
                fixture::net([10, 203, 0, 0], 16),
                [10, 203, 0, 10],
                [10, 203, 0, 250],
                &server,
            ),
        );
    }
    fixture::config(server, scopes)
}

fn meta() -> RxMeta {
    RxMeta {
        interface: None,
        vlans: VlanTags::NONE,
        src_mac: MacAddr([2, 0, 0, 0, 0, 0xfe]),
        src_ip: RELAY,
        src_port: 67,
        dst_ip: Ipv4Addr::new(10, 202, 0, 2),
        local_ip: Ipv4Addr::new(10, 202, 0, 2),
        trusted: false,
    }
}

/// DISCOVER and REQUEST for the client `mac` on `engine`; the address if it was acknowledged.
fn dora(engine: &Engine, mac: [u8; 6], tx: &mut [u8]) -> Option<Ipv4Addr> {
    let discover = ClientMessage::new(MessageType::Discover, mac, 1).relayed(RELAY, b"olt");
    let Verdict::Reply { len, .. } = engine.handle(NOW, &meta(), &discover.bytes(), tx) else {
        return None;
    };
    let offer = DhcpMessage::parse(&tx[..len]).ok()?;
    let (addr, server) = (offer.packet().yiaddr(), offer.server_id()?);
    let mut request = ClientMessage::new(MessageType::Request, mac, 2).relayed(RELAY, b"olt");
    request.requested = Some(addr);
    request.server_id = Some(server);
    match engine.handle(NOW, &meta(), &request.bytes(), tx) {
        Verdict::Defer {
            kind: MessageType::Ack,
            ..
        } => Some(addr),
        _ => None,
    }
}

/// Replaces `shared`'s engine by `config`'s as the server's reload does.
fn reload(
    shared: &SharedEngine,
    config: &Config,
    patience: Duration,
) -> Result<(Arc<Engine>, Duration), ReplaceError<BuildError>> {
    shared.replace(
        patience,
        |old| old.successor(config),
        |old, new| {
            old.hand_over(new, NOW);
        },
    )
}

/// Fails within a run or two if a reload copies without waiting for the members (checked by
/// making `SharedEngine::replace` skip its wait).
#[test]
fn reloads_amid_changes_keep_every_lease_the_members_acked() {
    let shared = SharedEngine::new(Arc::new(
        Engine::new(&config(false), EngineOptions::default()).unwrap(),
    ));
    let threads: Vec<_> = (0..2u8)
        .map(|t| {
            let mut member = shared.member();
            std::thread::spawn(move || {
                let mut tx = vec![0u8; 1500];
                let (mut acked, mut swaps) = (Vec::new(), 0);
                for i in 0..3000u16 {
                    // Between bursts, as a worker does.
                    if i % 32 == 0 {
                        swaps += usize::from(member.checkpoint());
                    }
                    let [hi, lo] = i.to_be_bytes();
                    let mac = [2, 0xcc, t, 0, hi, lo];
                    if let Some(addr) = dora(member.engine(), mac, &mut tx) {
                        acked.push((mac, addr));
                    }
                }
                (acked, swaps)
            })
        })
        .collect();
    let mut reloads = 0;
    for k in 0..20 {
        let next = config(k % 2 == 0);
        let replaced = reload(&shared, &next, Duration::from_secs(5));
        assert!(replaced.is_ok(), "{replaced:?}");
        reloads += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let engine = shared.load();
    let mut leases = 0;
    for thread in threads {
        let (acked, swaps) = thread.join().unwrap();
        assert!(swaps > 0, "no reload reached the member");
        assert_eq!(acked.len(), 3000);
        for (mac, addr) in acked {
            let (_, b) = engine.binding(addr).unwrap();
            assert_eq!((b.state, b.mac), (BindingState::Active, mac), "{addr}");
            leases += 1;
        }
    }
    assert_eq!(reloads, 20);
    let active: u64 = engine.pool_stats().iter().map(|p| p.active).sum();
    assert_eq!(active, leases);
}

#[test]
fn a_member_that_does_not_stop_leaves_the_engine_in_use() {
    let shared = SharedEngine::new(Arc::new(
        Engine::new(&config(false), EngineOptions::default()).unwrap(),
    ));
    let before = shared.load();
    let member = shared.member();
    let replaced = reload(&shared, &config(true), Duration::from_millis(20));
    assert!(
        matches!(
            replaced,
            Err(ReplaceError::Busy {
                parked: 0,
                members: 1
            })
        ),
        "{replaced:?}"
    );
    assert!(Arc::ptr_eq(&before, &shared.load()));
    // Once it is gone, nothing waits for it.
    drop(member);
    assert!(reload(&shared, &config(true), Duration::from_millis(20)).is_ok());
    assert_eq!(shared.load().scope_states().len(), 2);
}
