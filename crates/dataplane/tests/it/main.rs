//! Dataplane tests over the in-memory port: real frames in, real frames out.

#![allow(clippy::unwrap_used)]

mod admission;
mod shared;

use std::net::Ipv4Addr;
use std::sync::Arc;

use peregrine_dataplane::{
    Admission, Fanout, Interface, NoSink, Outcome, Reply, Worker, WorkerConfig, process,
};
use peregrine_engine::{BindingSink, Engine, EngineOptions};
use peregrine_io::mem;
use peregrine_stats::{FrameDrop, WorkerStats};
use peregrine_testkit::config as fixture;
use peregrine_testkit::frames::{ClientMessage, udp_frame};
use peregrine_testkit::{CountingAllocator, allocations_during};
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux};

/// A frame as a backend hands it over, with a verifiable checksum.
fn rx(data: &[u8]) -> peregrine_io::RxFrame<'_> {
    peregrine_io::RxFrame {
        data,
        ifindex: 7,
        checksum_pending: false,
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const RELAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);

/// An engine of testkit's lab: "direct" on eth0 and "relayed" behind [`RELAY`].
fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(&fixture::lab(true), EngineOptions::default()).unwrap())
}

fn iface(engine: &Engine) -> Interface {
    Interface {
        ifindex: 7,
        mac: SERVER_MAC,
        addr: SERVER,
        engine_id: engine.interface("eth0"),
        trusted: false,
    }
}

/// A worker without a journal on a fresh in-memory port of `burst` frames, with its peer and
/// counters.
fn mem_worker(
    engine: &Arc<Engine>,
    burst: usize,
) -> (
    mem::MemPeer,
    Worker<mem::MemRx, mem::MemTx, NoSink>,
    Arc<WorkerStats>,
) {
    let (peer, rx, tx) = mem::port(burst);
    let stats = Arc::new(WorkerStats::default());
    let worker = Worker::new(
        engine.clone(),
        (rx, tx),
        vec![iface(engine)],
        stats.clone(),
        WorkerConfig::default(),
        None::<NoSink>,
    );
    (peer, worker, stats)
}

/// The frame the relay sends for client `n`'s message `m`, with `vlans`.
fn from_relay(m: &ClientMessage<'_>, vlans: VlanTags) -> Vec<u8> {
    let headers = UdpFrameHeaders {
        dst_mac: SERVER_MAC,
        src_mac: RELAY_MAC,
        vlans,
        src_ip: RELAY,
        dst_ip: SERVER,
        src_port: 67,
        dst_port: 67,
        ttl: 63,
    };
    udp_frame(&headers, &m.bytes())
}

/// A relayed DISCOVER as the relay puts it on the wire, with `vlans`.
fn relayed_discover(vlans: VlanTags, n: u8) -> Vec<u8> {
    let m = ClientMessage::new(MessageType::Discover, [2, 0xcc, 0, 0, 0, n], u32::from(n));
    from_relay(&m.relayed(RELAY, b"olt-1/1"), vlans)
}

#[test]
fn a_relayed_discover_gets_an_offer_to_the_relay_with_the_same_tags() {
    let engine = engine();
    let (peer, mut worker, stats) = mem_worker(&engine, 32);
    let qinq = VlanTags::double(
        VlanTag::new(ethertype::QINQ, 300, 0),
        VlanTag::new(ethertype::VLAN, 42, 0),
    );
    for (i, vlans) in [
        VlanTags::NONE,
        VlanTags::single(VlanTag::new(ethertype::VLAN, 42, 0)),
        qinq,
    ]
    .into_iter()
    .enumerate()
    {
        peer.inject(&relayed_discover(vlans, i as u8), 7);
    }
    assert_eq!(worker.poll(1_800_000_000).unwrap(), 3);
    worker.flush().unwrap();
    let sent = peer.sent();
    assert_eq!(sent.len(), 3);
    for (i, (frame, ifindex)) in sent.iter().enumerate() {
        assert_eq!(*ifindex, 7);
        let Demuxed::Udp {
            l2,
            l3,
            src_port,
            dst_port,
            payload,
        } = demux(frame).unwrap()
        else {
            panic!()
        };
        assert_eq!(l2.vlans.len(), i, "reply keeps the request's tags");
        assert_eq!((l2.dst, l2.src), (RELAY_MAC, SERVER_MAC));
        assert_eq!(
            (l3.src, l3.dst, src_port, dst_port),
            (SERVER, RELAY, 67, 67)
        );
        let offer = DhcpMessage::parse(payload).unwrap();
        assert_eq!(offer.message_type(), Some(MessageType::Offer));
        assert!(offer.relay_agent_info_raw().is_some());
    }
    assert_eq!(stats.messages_in[MessageType::Discover as usize].get(), 3);
    assert_eq!(stats.messages_out[MessageType::Offer as usize].get(), 3);
    assert_eq!(stats.tx_frames.get(), 3);
}

#[test]
fn arp_for_our_address_is_answered_and_junk_is_counted() {
    let engine = engine();
    let stats = WorkerStats::default();
    let i = iface(&engine);
    let mut tx = vec![0u8; 1522];
    // ARP who-has SERVER from the relay, tagged.
    let vlans = VlanTags::single(VlanTag::new(ethertype::VLAN, 42, 0));
    let mut frame = vec![0u8; 64];
    let n = peregrine_wire::frame::write_ethernet(
        &mut frame,
        MacAddr::BROADCAST,
        RELAY_MAC,
        &vlans,
        ethertype::ARP,
    )
    .unwrap();
    peregrine_wire::arp::write(
        &mut frame[n..],
        1,
        (RELAY_MAC, RELAY),
        (MacAddr::ZERO, SERVER),
    )
    .unwrap();
    let Outcome::Send(Reply { len, .. }) = process(
        &engine,
        &i,
        0,
        &rx(&frame),
        &mut tx,
        &stats,
        &mut Admission::default(),
    ) else {
        panic!()
    };
    let Demuxed::Arp { l2, arp } = demux(&tx[..len]).unwrap() else {
        panic!()
    };
    assert_eq!((l2.dst, l2.vlans), (RELAY_MAC, vlans));
    assert_eq!(
        (
            arp.operation(),
            arp.sender_mac(),
            arp.sender_ip(),
            arp.target_ip()
        ),
        (2, SERVER_MAC, SERVER, RELAY)
    );
    // ARP for someone else: not ours.
    peregrine_wire::arp::write(
        &mut frame[n..],
        1,
        (RELAY_MAC, RELAY),
        (MacAddr::ZERO, Ipv4Addr::new(10, 200, 0, 9)),
    )
    .unwrap();
    assert_eq!(
        process(
            &engine,
            &i,
            0,
            &rx(&frame),
            &mut tx,
            &stats,
            &mut Admission::default()
        ),
        Outcome::Nothing
    );
    // A truncated frame and a bad checksum are counted by reason.
    let good = relayed_discover(VlanTags::NONE, 1);
    assert_eq!(
        process(
            &engine,
            &i,
            0,
            &rx(&good[..20]),
            &mut tx,
            &stats,
            &mut Admission::default()
        ),
        Outcome::Nothing
    );
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 0xff;
    assert_eq!(
        process(
            &engine,
            &i,
            0,
            &rx(&bad),
            &mut tx,
            &stats,
            &mut Admission::default()
        ),
        Outcome::Nothing
    );
    let count = |label: &str| stats.dropped(FrameDrop::from_label(label).unwrap());
    assert_eq!(
        (count("truncated"), count("checksum"), count("not_for_us")),
        (1, 1, 1)
    );
    assert_eq!(stats.arp_replies.get(), 1);
}

#[test]
fn handling_a_frame_allocates_nothing() {
    let engine = engine();
    let stats = WorkerStats::default();
    let i = iface(&engine);
    let frames: Vec<Vec<u8>> = (0..50)
        .map(|n| relayed_discover(VlanTags::NONE, n))
        .collect();
    let mut tx = vec![0u8; 1522];
    let n = allocations_during(|| {
        for f in &frames {
            assert!(matches!(
                process(
                    &engine,
                    &i,
                    1_800_000_000,
                    &rx(f),
                    &mut tx,
                    &stats,
                    &mut Admission::default()
                ),
                Outcome::Send(_)
            ));
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn ping_to_our_address_gets_an_echo_reply() {
    let engine = engine();
    let stats = WorkerStats::default();
    let i = iface(&engine);
    let mut tx = vec![0u8; 1522];
    // Ping to our address, untagged: an echo reply with a valid ICMP checksum and the same data.
    let mut ping = vec![0u8; 14 + 20 + 16];
    let n = peregrine_wire::frame::write_ethernet(
        &mut ping,
        SERVER_MAC,
        RELAY_MAC,
        &VlanTags::NONE,
        ethertype::IPV4,
    )
    .unwrap();
    let ip = peregrine_wire::ipv4::Ipv4Header {
        src: RELAY,
        dst: SERVER,
        protocol: 1,
        ttl: 64,
    };
    ip.write(&mut ping[n..], 16).unwrap();
    let icmp = &mut ping[n + 20..];
    icmp[..8].copy_from_slice(&[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
    icmp[8..].copy_from_slice(b"peregrin");
    let sum = peregrine_wire::checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let Outcome::Send(Reply { len, .. }) = process(
        &engine,
        &i,
        0,
        &rx(&ping),
        &mut tx,
        &stats,
        &mut Admission::default(),
    ) else {
        panic!()
    };
    let Demuxed::Icmp { l3, message, .. } = demux(&tx[..len]).unwrap() else {
        panic!()
    };
    assert_eq!((l3.src, l3.dst, message[0]), (SERVER, RELAY, 0));
    assert_eq!(
        &message[4..16],
        &[
            0x12, 0x34, 0, 1, b'p', b'e', b'r', b'e', b'g', b'r', b'i', b'n'
        ]
    );
    assert_eq!(peregrine_wire::checksum::checksum(&message[..16]), 0);
    assert_eq!(stats.icmp_replies.get(), 1);
}

#[test]
fn a_checksum_still_to_be_computed_is_not_held_against_the_frame() {
    let engine = engine();
    let stats = WorkerStats::default();
    let i = iface(&engine);
    let mut tx = vec![0u8; 1522];
    let mut frame = relayed_discover(VlanTags::NONE, 9);
    // What a veth peer with checksum offload delivers: the UDP checksum field not filled in.
    let udp_checksum = 14 + 20 + 6;
    frame[udp_checksum..udp_checksum + 2].copy_from_slice(&[0x12, 0x34]);
    assert_eq!(
        process(
            &engine,
            &i,
            0,
            &rx(&frame),
            &mut tx,
            &stats,
            &mut Admission::default()
        ),
        Outcome::Nothing
    );
    let pending = peregrine_io::RxFrame {
        data: &frame,
        ifindex: 7,
        checksum_pending: true,
    };
    assert!(matches!(
        process(
            &engine,
            &i,
            0,
            &pending,
            &mut tx,
            &stats,
            &mut Admission::default()
        ),
        Outcome::Send(_)
    ));
}

/// A journal the test commits by hand, and that can refuse.
#[derive(Default)]
struct ScriptedJournal {
    next: u64,
    committed: Arc<std::sync::atomic::AtomicU64>,
    refuse: Arc<std::sync::atomic::AtomicBool>,
    events: Arc<std::sync::Mutex<Vec<peregrine_engine::BindingEvent>>>,
}

impl BindingSink for ScriptedJournal {
    fn submit(&mut self, event: &peregrine_engine::BindingEvent) -> Option<u64> {
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.events.lock().unwrap().push(*event);
        self.next += 1;
        Some(self.next)
    }

    fn confirmed(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The REQUEST of client `n` for `addr`, relayed, untagged.
fn relayed_request(n: u8, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = ClientMessage::new(MessageType::Request, [2, 0xcc, 0, 0, 0, n], u32::from(n))
        .relayed(RELAY, b"olt-1/1");
    m.requested = Some(addr);
    m.server_id = Some(SERVER);
    from_relay(&m, VlanTags::NONE)
}

#[test]
fn an_ack_waits_for_its_binding_to_be_durable_and_offers_do_not() {
    let engine = engine();
    let (peer, rx, tx) = mem::port(32);
    let stats = Arc::new(WorkerStats::default());
    let journal = ScriptedJournal::default();
    let (committed, refuse, events) = (
        journal.committed.clone(),
        journal.refuse.clone(),
        journal.events.clone(),
    );
    let mut worker = Worker::new(
        engine.clone(),
        (rx, tx),
        vec![iface(&engine)],
        stats.clone(),
        WorkerConfig::default(),
        Some(journal),
    );
    let now = 1_800_000_000;
    peer.inject(&relayed_discover(VlanTags::NONE, 1), 7);
    worker.poll(now).unwrap();
    worker.release_committed().unwrap();
    worker.flush().unwrap();
    let sent = peer.sent();
    assert_eq!(
        sent.len(),
        1,
        "the OFFER goes at once: offers are not journaled"
    );
    let Demuxed::Udp { payload, .. } = demux(&sent[0].0).unwrap() else {
        panic!()
    };
    let offered = DhcpMessage::parse(payload).unwrap().packet().yiaddr();

    peer.inject(&relayed_request(1, offered), 7);
    worker.poll(now).unwrap();
    worker.release_committed().unwrap();
    worker.flush().unwrap();
    assert!(peer.sent().is_empty(), "the ACK waits for the journal");
    let acks_sent = || stats.messages_out[MessageType::Ack as usize].get();
    assert_eq!(acks_sent(), 0, "a held ACK is not counted as sent");
    assert_eq!(events.lock().unwrap().len(), 1);
    assert_eq!(events.lock().unwrap()[0].address, offered);

    committed.store(1, std::sync::atomic::Ordering::Relaxed);
    worker.release_committed().unwrap();
    worker.flush().unwrap();
    let sent = peer.sent();
    assert_eq!(sent.len(), 1, "released once durable");
    assert_eq!(acks_sent(), 1);
    let Demuxed::Udp { payload, .. } = demux(&sent[0].0).unwrap() else {
        panic!()
    };
    assert_eq!(
        DhcpMessage::parse(payload).unwrap().message_type(),
        Some(MessageType::Ack)
    );

    // A journal that cannot take the change: no ACK leaves, and the drop is counted.
    refuse.store(true, std::sync::atomic::Ordering::Relaxed);
    peer.inject(&relayed_request(1, offered), 7);
    worker.poll(now + 2000).unwrap();
    worker.release_committed().unwrap();
    worker.flush().unwrap();
    assert!(peer.sent().is_empty());
    let full = FrameDrop::from_label("journal_full").unwrap();
    assert_eq!(stats.dropped(full), 1);
    assert_eq!(
        acks_sent(),
        1,
        "the ACK dropped for the journal was not sent"
    );
}

/// A sink that counts what it is given and confirms it at once, allocating nothing.
#[derive(Default, Clone)]
struct CountingSink(Arc<std::sync::atomic::AtomicU64>);

impl BindingSink for CountingSink {
    fn submit(&mut self, _: &peregrine_engine::BindingEvent) -> Option<u64> {
        Some(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    fn confirmed(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn a_change_fanned_out_to_two_sinks_allocates_nothing_and_reaches_both() {
    let engine = engine();
    let (peer, rx, tx) = mem::port(64);
    let stats = Arc::new(WorkerStats::default());
    let (journal, partner) = (CountingSink::default(), CountingSink::default());
    let (journaled, told) = (journal.0.clone(), partner.0.clone());
    let mut worker = Worker::new(
        engine.clone(),
        (rx, tx),
        vec![iface(&engine)],
        stats.clone(),
        WorkerConfig::default(),
        Some(Fanout {
            confirming: journal,
            lazy: partner,
        }),
    );
    let now = 1_800_000_000;
    let clients = 0..32u8;
    for n in clients.clone() {
        peer.inject(&relayed_discover(VlanTags::NONE, n), 7);
    }
    while worker.poll(now).unwrap() > 0 {}
    worker.flush().unwrap();
    let offers: Vec<Ipv4Addr> = peer.sent().iter().map(|(f, _)| offered(f).2).collect();
    assert_eq!(offers.len(), 32);
    for (n, addr) in clients.zip(&offers) {
        peer.inject(&relayed_request(n, *addr), 7);
    }
    // Handling the REQUESTs, fanning their changes out and releasing the held ACKs allocates
    // nothing (sending is the mem port's).
    let allocated = allocations_during(|| {
        while worker.poll(now).unwrap() > 0 {}
        worker.release_committed().unwrap();
    });
    assert_eq!(allocated, 0);
    worker.flush().unwrap();
    let acks = peer.sent();
    assert_eq!(acks.len(), 32);
    assert!(acks.iter().all(|(f, _)| offered(f).0 == MessageType::Ack));
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((count(&journaled), count(&told)), (32, 32));
}

/// The client's yiaddr in a reply frame sent to the relay.
fn offered(frame: &[u8]) -> (MessageType, [u8; 6], Ipv4Addr) {
    let Demuxed::Udp { payload, .. } = demux(frame).unwrap() else {
        panic!("not a UDP frame")
    };
    let m = DhcpMessage::parse(payload).unwrap();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&m.packet().chaddr()[..6]);
    (m.message_type().unwrap(), mac, m.packet().yiaddr())
}

/// Two workers share an interface; the kernel gives one of them every frame of a relay (one
/// flow). Each request is handed to the worker its client hashes to, which answers from its
/// own queue: both workers serve, and a client's OFFER and ACK come from the same one.
#[test]
fn one_relays_flow_is_spread_over_both_workers_by_client() {
    let engine = engine();
    let mut peers = Vec::new();
    let mut workers = Vec::new();
    let mut stats = Vec::new();
    for handoff in peregrine_dataplane::Handoff::mesh(2, 16) {
        let (peer, w, s) = mem_worker(&engine, 64);
        let w = w.with_handoff(handoff);
        peers.push(peer);
        workers.push(w);
        stats.push(s);
    }
    let now = 1_800_000_000;
    // Runs both workers until neither has anything left; returns who sent what.
    let mut exchange = |frames: &[Vec<u8>]| {
        for f in frames {
            peers[0].inject(f, 7);
        }
        while workers
            .iter_mut()
            .map(|w| w.poll(now).unwrap())
            .sum::<usize>()
            > 0
        {}
        let mut by_worker = Vec::new();
        for (w, peer) in workers.iter_mut().zip(&peers) {
            w.flush().unwrap();
            by_worker.push(
                peer.sent()
                    .iter()
                    .map(|(f, _)| offered(f))
                    .collect::<Vec<_>>(),
            );
        }
        by_worker
    };
    let clients = 32u8;
    let discovers: Vec<Vec<u8>> = (0..clients)
        .map(|n| relayed_discover(VlanTags::NONE, n))
        .collect();
    let offers = exchange(&discovers);
    assert_eq!(offers[0].len() + offers[1].len(), usize::from(clients));
    assert!(
        !offers[0].is_empty() && !offers[1].is_empty(),
        "both workers serve: {} and {}",
        offers[0].len(),
        offers[1].len()
    );
    assert_eq!(stats[0].handed_off.get(), offers[1].len() as u64);
    assert_eq!(stats[1].handed_in.get(), offers[1].len() as u64);
    assert_eq!(
        stats[1].rx_frames.get(),
        0,
        "worker 1 received nothing itself"
    );

    // The REQUESTs arrive on worker 0 again: each client's ACK comes from its OFFER's worker.
    let requests: Vec<Vec<u8>> = offers
        .iter()
        .flatten()
        .map(|(_, mac, addr)| {
            let mut m = ClientMessage::new(MessageType::Request, *mac, u32::from(mac[5]));
            m.requested = Some(*addr);
            m.server_id = Some(SERVER);
            from_relay(&m.relayed(RELAY, b"olt-1/1"), VlanTags::NONE)
        })
        .collect();
    let acks = exchange(&requests);
    for (w, (offers, acks)) in offers.iter().zip(&acks).enumerate() {
        assert_eq!(acks.len(), offers.len(), "worker {w}");
        for ((_, mac, addr), ack) in offers.iter().zip(acks) {
            assert_eq!(*ack, (MessageType::Ack, *mac, *addr), "worker {w}");
        }
    }
    assert_eq!(stats[0].handoff_full.get(), 0);

    // Handing off and handling handed frames allocates nothing (sending is the mem port's).
    for n in 100..132 {
        peers[0].inject(&relayed_discover(VlanTags::NONE, n), 7);
    }
    let handed = stats[0].handed_off.get();
    let allocated = allocations_during(|| {
        while workers
            .iter_mut()
            .map(|w| w.poll(now).unwrap())
            .sum::<usize>()
            > 0
        {}
    });
    assert!(stats[0].handed_off.get() > handed);
    assert_eq!(allocated, 0);
}

/// A full ring does not lose a frame: the receiving worker handles it itself and counts it.
#[test]
fn a_full_handoff_ring_keeps_the_frame_here() {
    let engine = engine();
    let mut mesh = peregrine_dataplane::Handoff::mesh(2, 1).into_iter();
    let (peer, worker, stats) = mem_worker(&engine, 64);
    let mut worker = worker.with_handoff(mesh.next().unwrap());
    // The other end exists but never polls: its ring (one frame deep) fills at once.
    let _idle = mesh.next().unwrap();
    for n in 0..32 {
        peer.inject(&relayed_discover(VlanTags::NONE, n), 7);
    }
    assert_eq!(worker.poll(1_800_000_000).unwrap(), 32);
    worker.flush().unwrap();
    let handed = stats.handed_off.get();
    let full = stats.handoff_full.get();
    assert_eq!(handed, 1, "one frame fits the ring");
    assert!(full > 0);
    assert_eq!(
        peer.sent().len() as u64,
        32 - handed,
        "every other frame got its OFFER here"
    );
}

/// A worker whose engine runs a ping check of `ms` on every scope.
fn probing_worker(
    ms: u32,
) -> (
    mem::MemPeer,
    Worker<mem::MemRx, mem::MemTx, NoSink>,
    Arc<WorkerStats>,
) {
    let mut config = fixture::lab(true);
    for s in &mut config.scopes {
        s.ping_check_ms = ms;
    }
    let engine = Arc::new(Engine::new(&config, EngineOptions::default()).unwrap());
    let (peer, rx, tx) = mem::port(32);
    let stats = Arc::new(WorkerStats::default());
    let worker = Worker::new(
        engine.clone(),
        (rx, tx),
        vec![iface(&engine)],
        stats.clone(),
        WorkerConfig {
            probe_slots: 8,
            ..WorkerConfig::default()
        },
        None::<NoSink>,
    );
    (peer, worker, stats)
}

/// What one sent frame is: an ARP request for an address, an ICMP echo request to one (with
/// the MAC it went to), or a DHCP message and its yiaddr.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    ArpFor(Ipv4Addr),
    EchoTo(Ipv4Addr, MacAddr),
    Dhcp(MessageType, Ipv4Addr),
}

fn sent(peer: &mem::MemPeer) -> Vec<Sent> {
    sent_of(&peer.sent())
}

fn sent_of(frames: &[(Vec<u8>, u32)]) -> Vec<Sent> {
    frames
        .iter()
        .map(|(f, _)| match demux(f).unwrap() {
            Demuxed::Arp { arp, .. } => Sent::ArpFor(arp.target_ip()),
            Demuxed::Icmp { l2, l3, message } => {
                assert_eq!(message[0], 8, "an echo request");
                Sent::EchoTo(l3.dst, l2.dst)
            }
            Demuxed::Udp { payload, .. } => {
                let m = DhcpMessage::parse(payload).unwrap();
                Sent::Dhcp(m.message_type().unwrap(), m.packet().yiaddr())
            }
            other => panic!("unexpected frame {other:?}"),
        })
        .collect()
}

fn direct_discover(n: u8) -> Vec<u8> {
    let m = ClientMessage::new(MessageType::Discover, [2, 0xdd, 0, 0, 0, n], u32::from(n));
    let headers = UdpFrameHeaders {
        dst_mac: MacAddr::BROADCAST,
        src_mac: MacAddr([2, 0xdd, 0, 0, 0, n]),
        vlans: VlanTags::NONE,
        src_ip: Ipv4Addr::UNSPECIFIED,
        dst_ip: Ipv4Addr::BROADCAST,
        src_port: 68,
        dst_port: 67,
        ttl: 64,
    };
    udp_frame(&headers, &m.bytes())
}

/// An ARP reply to the server from the host that uses `ip`.
fn arp_reply_from(ip: Ipv4Addr) -> Vec<u8> {
    let host = MacAddr([2, 0xee, 0, 0, 0, 1]);
    let mut f = vec![0u8; 60];
    let n = peregrine_wire::frame::write_ethernet(
        &mut f,
        SERVER_MAC,
        host,
        &VlanTags::NONE,
        ethertype::ARP,
    )
    .unwrap();
    peregrine_wire::arp::write(
        &mut f[n..],
        peregrine_wire::arp::op::REPLY,
        (host, ip),
        (SERVER_MAC, SERVER),
    )
    .unwrap();
    f
}

#[test]
fn an_address_that_answers_its_arp_probe_is_not_offered() {
    let (peer, mut worker, stats) = probing_worker(30);
    let now = 1_800_000_000;
    peer.inject(&direct_discover(1), 7);
    worker.poll(now).unwrap();
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    // On the directly attached link, an ARP request for the address first, and no OFFER yet.
    let [Sent::ArpFor(first)] = sent(&peer)[..] else {
        panic!("{:?}", sent(&peer))
    };
    // A host answers for it; the wait ends: the address is in use, and another is probed.
    peer.inject(&arp_reply_from(first), 7);
    worker.poll(now).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(40));
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    let [Sent::ArpFor(second)] = sent(&peer)[..] else {
        panic!("{:?}", sent(&peer))
    };
    assert_ne!(second, first);
    // Nothing answers for the second: its OFFER leaves when the wait ends, not before.
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    assert!(peer.sent().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(40));
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    assert_eq!(sent(&peer), [Sent::Dhcp(MessageType::Offer, second)]);
    assert_eq!(
        (stats.probes_sent.get(), stats.probes_answered.get()),
        (2, 1)
    );
    assert_eq!(stats.messages_out[MessageType::Offer as usize].get(), 1);
    assert_eq!(stats.probes_waiting.get(), 0);
}

#[test]
fn a_relayed_offer_waits_for_an_icmp_probe_through_the_relay() {
    let (peer, mut worker, stats) = probing_worker(30);
    let now = 1_800_000_000;
    peer.inject(&relayed_discover(VlanTags::NONE, 9), 7);
    worker.poll(now).unwrap();
    worker.flush().unwrap();
    let [Sent::EchoTo(addr, via)] = sent(&peer)[..] else {
        panic!("{:?}", sent(&peer))
    };
    assert_eq!(via, RELAY_MAC, "the echo request goes through the relay");
    std::thread::sleep(std::time::Duration::from_millis(40));
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    assert_eq!(sent(&peer), [Sent::Dhcp(MessageType::Offer, addr)]);
    assert_eq!(stats.probes_answered.get(), 0);
    // A client that already holds its address is not probed again.
    let offered = addr;
    peer.inject(&relayed_request(9, offered), 7);
    worker.poll(now).unwrap();
    worker.flush().unwrap();
    assert_eq!(sent(&peer), [Sent::Dhcp(MessageType::Ack, offered)]);
    peer.inject(&relayed_discover(VlanTags::NONE, 9), 7);
    worker.poll(now).unwrap();
    worker.flush().unwrap();
    assert_eq!(sent(&peer), [Sent::Dhcp(MessageType::Offer, offered)]);
    assert_eq!(stats.probes_sent.get(), 1);
}

#[test]
fn discovers_past_the_probe_slots_are_counted_drops() {
    let (peer, mut worker, stats) = probing_worker(1000);
    for n in 0..12 {
        peer.inject(&relayed_discover(VlanTags::NONE, n), 7);
    }
    worker.poll(1_800_000_000).unwrap();
    worker.flush().unwrap();
    assert_eq!(sent(&peer).len(), 8, "one probe per slot");
    assert_eq!(
        stats.dropped(FrameDrop::from_label("probe_full").unwrap()),
        4
    );
    assert_eq!(stats.probes_waiting.get(), 0, "published by release_probes");
    worker.release_probes(1_800_000_000).unwrap();
    assert_eq!(stats.probes_waiting.get(), 8);
}

/// The echo reply a host using `ip` behind the relay sends to our probe `probe`.
fn echo_reply_to(probe: &[u8], ip: Ipv4Addr) -> Vec<u8> {
    let Demuxed::Icmp { message, .. } = demux(probe).unwrap() else {
        panic!("not an ICMP probe")
    };
    let mut reply = message.to_vec();
    reply[0] = 0;
    reply[2..4].fill(0);
    let sum = peregrine_wire::checksum::checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0u8; 14 + 20 + reply.len()];
    let n = peregrine_wire::frame::write_ethernet(
        &mut f,
        SERVER_MAC,
        RELAY_MAC,
        &VlanTags::NONE,
        ethertype::IPV4,
    )
    .unwrap();
    let ip_header = peregrine_wire::ipv4::Ipv4Header {
        src: ip,
        dst: SERVER,
        protocol: peregrine_wire::ipv4::protocol::ICMP,
        ttl: 63,
    };
    let h = ip_header.write(&mut f[n..], reply.len()).unwrap();
    f[n + h..].copy_from_slice(&reply);
    f
}

#[test]
fn an_echo_reply_through_the_relay_moves_the_offer_to_another_address() {
    let (peer, mut worker, stats) = probing_worker(30);
    let now = 1_800_000_000;
    peer.inject(&relayed_discover(VlanTags::NONE, 3), 7);
    worker.poll(now).unwrap();
    worker.flush().unwrap();
    let probes = peer.sent();
    let [Sent::EchoTo(first, _)] = sent_of(&probes)[..] else {
        panic!("{probes:?}")
    };
    peer.inject(&echo_reply_to(&probes[0].0, first), 7);
    worker.poll(now).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(40));
    worker.release_probes(now).unwrap();
    worker.flush().unwrap();
    let [Sent::EchoTo(second, _)] = sent(&peer)[..] else {
        panic!("the DISCOVER is probed again for another address")
    };
    assert_ne!(second, first);
    assert_eq!(stats.probes_answered.get(), 1);
}
