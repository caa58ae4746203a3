//! Storm and flood control: a flooding client or relay is held to its rate while the others
//! are served, and a worker that falls behind serves requests before new DISCOVERs.

use std::net::Ipv4Addr;
use std::time::Instant;

use peregrine_config::model::Limits;
use peregrine_dataplane::{Admission, Outcome, Reply, process};
use peregrine_stats::{WorkerDrop, WorkerStats};
use peregrine_testkit::allocations_during;
use peregrine_testkit::frames::ClientMessage;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::VlanTags;
use peregrine_wire::frame::{Demuxed, demux};

use crate::{RELAY, SERVER, engine, from_relay, iface, rx};

/// A relayed DISCOVER of client `mac` with `xid`, from the relay at `giaddr`.
fn discover(mac: [u8; 6], xid: u32, giaddr: Ipv4Addr) -> Vec<u8> {
    let m = ClientMessage::new(MessageType::Discover, mac, xid).relayed(giaddr, b"olt-1/1");
    from_relay(&m, VlanTags::NONE)
}

/// A relayed REQUEST of client `mac` for `addr` (a rebooting client's: no server id).
fn request(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let mut m = ClientMessage::new(MessageType::Request, mac, 7).relayed(RELAY, b"olt-1/1");
    m.requested = Some(addr);
    from_relay(&m, VlanTags::NONE)
}

/// The start of the next receive burst: a millisecond after the last one (of this test's
/// thread), so that bursts that keep coming full add up to [`peregrine_dataplane::BEHIND_FOR`].
fn tick() -> Instant {
    thread_local! {
        static NEXT: std::cell::Cell<(Option<Instant>, u32)> = const { std::cell::Cell::new((None, 0)) };
    }
    NEXT.with(|next| {
        let (start, n) = next.get();
        let start = start.unwrap_or_else(Instant::now);
        next.set((Some(start), n + 1));
        start + std::time::Duration::from_millis(u64::from(n))
    })
}

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [2, 0xdd, b[0], b[1], b[2], b[3]]
}

/// Runs `frames` through one worker's processing with `admission`; the type and `yiaddr` of
/// each reply, in order.
struct Lab {
    engine: std::sync::Arc<peregrine_engine::Engine>,
    stats: WorkerStats,
    tx: Vec<u8>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            engine: engine(),
            stats: WorkerStats::default(),
            tx: vec![0u8; 1522],
        }
    }

    /// The reply to `frame`, if it was answered.
    fn send(&mut self, frame: &[u8], admission: &mut Admission) -> Option<(MessageType, Ipv4Addr)> {
        let i = iface(&self.engine);
        let out = process(
            &self.engine,
            &i,
            1_800_000_000,
            &rx(frame),
            &mut self.tx,
            &self.stats,
            admission,
        );
        let (Outcome::Send(Reply { len, .. })
        | Outcome::Commit {
            reply: Some(Reply { len, .. }),
            ..
        }) = out
        else {
            return None;
        };
        let Ok(Demuxed::Udp { payload, .. }) = demux(&self.tx[..len]) else {
            return None;
        };
        let m = DhcpMessage::parse(payload).ok()?;
        Some((m.message_type()?, m.packet().yiaddr()))
    }

    fn dropped(&self, reason: WorkerDrop) -> u64 {
        self.stats.dropped(reason)
    }
}

#[test]
fn a_flooding_client_is_held_to_its_rate_and_the_others_are_served() {
    let mut lab = Lab::new();
    let limits = Limits {
        client_rate: 10,
        client_burst: 20,
        ..Limits::default()
    };
    let mut admission = Admission::new(limits, 1, 32);
    admission.start_burst(tick(), 1);
    let (mut flooder, mut others) = (0, 0);
    for n in 0..200 {
        flooder += usize::from(
            lab.send(&discover(mac(0), n, RELAY), &mut admission)
                .is_some(),
        );
        if n % 4 == 0 {
            let answered = lab.send(&discover(mac(1 + n), 1, RELAY), &mut admission);
            others += usize::from(answered.is_some());
        }
    }
    // Its burst, then nothing until its bucket refills.
    assert_eq!(flooder, 20);
    assert_eq!(others, 50);
    assert_eq!(lab.dropped(WorkerDrop::RateLimitedClient), 180);
}

#[test]
fn a_flooding_relay_is_held_to_its_rate_and_the_others_are_served() {
    let mut lab = Lab::new();
    let limits = Limits {
        relay_rate: 100,
        relay_burst: 100,
        ..Limits::default()
    };
    let mut admission = Admission::new(limits, 1, 32);
    admission.start_burst(tick(), 1);
    let other_relay = Ipv4Addr::new(10, 201, 0, 2);
    let (mut flooding, mut other) = (0, 0);
    for n in 0..250 {
        let from_flood = lab.send(&discover(mac(n), 1, RELAY), &mut admission);
        flooding += usize::from(from_flood.is_some());
        if n % 5 == 0 {
            let answered = lab.send(&discover(mac(10_000 + n), 1, other_relay), &mut admission);
            other += usize::from(answered.is_some());
        }
    }
    assert_eq!(flooding, 100);
    assert_eq!(other, 50);
    assert_eq!(lab.dropped(WorkerDrop::RateLimitedRelay), 150);
}

#[test]
fn a_worker_behind_serves_requests_before_new_discovers_and_drops_retransmissions() {
    let mut lab = Lab::new();
    let mut admission = Admission::new(Limits::default(), 1, 32);
    // Ten clients hold leases, taken while the worker kept up.
    admission.start_burst(tick(), 1);
    let leased: Vec<([u8; 6], Ipv4Addr)> = (0..10)
        .map(|n| {
            let (_, offered) = lab
                .send(&discover(mac(n), 1, RELAY), &mut admission)
                .unwrap();
            let mut select =
                ClientMessage::new(MessageType::Request, mac(n), 1).relayed(RELAY, b"olt-1/1");
            select.requested = Some(offered);
            select.server_id = Some(SERVER);
            let ack = lab.send(&from_relay(&select, VlanTags::NONE), &mut admission);
            assert_eq!(ack, Some((MessageType::Ack, offered)));
            (mac(n), offered)
        })
        .collect();
    // A DISCOVER flood: every burst comes full. A burst a millisecond: from the third, they
    // have come full for BEHIND_FOR, and the worker is behind.
    admission.start_burst(tick(), 32);
    admission.start_burst(tick(), 32);
    assert!(!admission.behind());
    admission.start_burst(tick(), 32);
    assert!(admission.behind());
    let mut discovers = 0;
    for (k, (client, addr)) in leased.iter().enumerate() {
        // Each burst: a client keeping its lease, and 22 new DISCOVERs.
        admission.start_burst(tick(), 32);
        let ack = lab.send(&request(*client, *addr), &mut admission);
        assert_eq!(ack, Some((MessageType::Ack, *addr)), "client {k}");
        for n in 0..22 {
            let flood = discover(mac(1000 + 100 * k as u32 + n), 1, RELAY);
            discovers += usize::from(lab.send(&flood, &mut admission).is_some());
        }
    }
    // A quarter of each burst (8 of 32) for new DISCOVERs, the rest dropped.
    assert_eq!(discovers, 10 * 8);
    assert_eq!(lab.dropped(WorkerDrop::OverloadDiscover), 10 * 14);
    // A DISCOVER sent again (same client, same xid) while the worker is behind is dropped
    // before new ones.
    admission.start_burst(tick(), 32);
    let again = discover(mac(1000), 1, RELAY);
    assert!(lab.send(&again, &mut admission).is_none());
    assert_eq!(lab.dropped(WorkerDrop::OverloadRetransmission), 1);
    // Caught up: DISCOVERs are all taken again.
    admission.start_burst(tick(), 3);
    assert!(lab.send(&again, &mut admission).is_some());
}

#[test]
fn admission_with_every_limit_allocates_nothing() {
    let mut lab = Lab::new();
    let limits = Limits {
        client_rate: 1000,
        relay_rate: 100_000,
        relay_key: peregrine_config::model::RelayKey::CircuitId,
        ..Limits::default()
    };
    let mut admission = Admission::new(limits, 2, 32);
    let frames: Vec<Vec<u8>> = (0..64).map(|n| discover(mac(n), n, RELAY)).collect();
    admission.start_burst(tick(), 32);
    admission.start_burst(tick(), 32);
    let n = allocations_during(|| {
        admission.start_burst(tick(), 32);
        for f in &frames {
            let i = iface(&lab.engine);
            let _ = process(
                &lab.engine,
                &i,
                1_800_000_000,
                &rx(f),
                &mut lab.tx,
                &lab.stats,
                &mut admission,
            );
        }
    });
    assert_eq!(n, 0);
    assert!(admission.behind());
}

#[test]
fn a_storm_of_new_clients_alone_is_taken_as_fast_as_it_comes() {
    let mut lab = Lab::new();
    let mut admission = Admission::new(Limits::default(), 1, 32);
    for _ in 0..3 {
        admission.start_burst(tick(), 32);
    }
    assert!(admission.behind());
    // No client is keeping a lease: nothing to give way to.
    let answered = (0..64)
        .filter(|n| {
            let d = discover(mac(5000 + n), 9, RELAY);
            lab.send(&d, &mut admission).is_some()
        })
        .count();
    assert_eq!(answered, 64);
    assert_eq!(lab.dropped(WorkerDrop::OverloadDiscover), 0);
    // Its retransmissions still give way.
    assert!(
        lab.send(&discover(mac(5000), 9, RELAY), &mut admission)
            .is_none()
    );
    assert_eq!(lab.dropped(WorkerDrop::OverloadRetransmission), 1);
}
