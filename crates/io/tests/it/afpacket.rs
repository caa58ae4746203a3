//! The `AF_PACKET` backend on a veth pair `va`–`vb`: the queue under test on `va`, a peer on `vb`.

use std::time::Instant;

use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketRxStats, AfPacketTx};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::allocations_during;

use crate::{frame, receive, receive_any, send, seq, stray, tagged};
use peregrine_testkit::netns::Netns;

/// A namespace with a veth pair; `None` when the test must skip.
fn link(test: &str) -> Option<Netns> {
    let ns = Netns::new(test)?;
    ns.veth("va", "vb");
    Some(ns)
}

fn open(ns: &Netns, interface: &str, config: AfPacketConfig) -> (AfPacketRx, AfPacketTx) {
    ns.enter(|| afpacket::open(interface, &config)).unwrap()
}

#[test]
fn frames_arrive_byte_exact_with_their_vlan_tags() {
    let Some(ns) = link("frames_arrive_byte_exact_with_their_vlan_tags") else {
        return;
    };
    let (mut rx, _) = open(&ns, "va", AfPacketConfig::default());
    let (_, mut peer) = open(&ns, "vb", AfPacketConfig::default());
    assert_eq!(rx.mac(), ns.mac("va"));
    assert_eq!(peer.mac(), ns.mac("vb"));
    let sent = vec![
        frame(0, 60),
        frame(1, 1514),
        tagged(&frame(2, 60), &[(0x8100, 0xa064)]),
        tagged(&frame(3, 200), &[(0x88a8, 100), (0x8100, 200)]),
        tagged(&frame(4, 200), &[(0x8100, 300), (0x8100, 400)]),
        tagged(&frame(5, 1514), &[(0x8100, 4094)]),
    ];
    assert_eq!(send(&mut peer, &sent), sent.len());
    let mut got = receive(&mut rx, sent.len());
    got.sort_by_key(|(f, _)| seq(f));
    let frames: Vec<Vec<u8>> = got.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(frames, sent);
    assert!(got.iter().all(|&(_, ifindex)| ifindex == rx.ifindex()));
    assert_eq!(rx.stats(), AfPacketRxStats::default());
}

#[test]
fn a_burst_of_1000_frames_is_received_and_counted() {
    let Some(ns) = link("a_burst_of_1000_frames_is_received_and_counted") else {
        return;
    };
    let (mut rx, _) = open(&ns, "va", AfPacketConfig::default());
    let (_, mut peer) = open(&ns, "vb", AfPacketConfig::default());
    let sent: Vec<Vec<u8>> = (0..1000).map(|i| frame(i, 342)).collect();
    let start = Instant::now();
    assert_eq!(send(&mut peer, &sent), 1000);
    let sending = start.elapsed();
    let start = Instant::now();
    let mut count = 0;
    while count < 1000 && start.elapsed() < crate::PATIENCE {
        count += rx
            .rx_burst(64, &mut |f| assert!(seq(f.data).is_some()))
            .unwrap();
        rx.wait(std::time::Duration::from_millis(2)).unwrap();
    }
    let receiving = start.elapsed();
    assert_eq!(count, 1000);
    let kernel = rx.take_kernel_stats().unwrap();
    assert_eq!((kernel.packets, kernel.drops), (1000, 0));
    println!(
        "1000 frames of 342 bytes: sent at {:.0} frames/s, drained at {:.0} frames/s \
         (with up to one block timeout of waiting)",
        1000.0 / sending.as_secs_f64(),
        1000.0 / receiving.as_secs_f64()
    );
}

#[test]
fn one_flush_sends_64_frames_and_they_are_not_received_back() {
    let Some(ns) = link("one_flush_sends_64_frames_and_they_are_not_received_back") else {
        return;
    };
    let (mut own_rx, mut tx) = open(&ns, "va", AfPacketConfig::default());
    let (mut peer, _) = open(&ns, "vb", AfPacketConfig::default());
    let sent: Vec<Vec<u8>> = (0..64).map(|i| frame(i, 100 + i as usize)).collect();
    for f in &sent {
        tx.buffer().unwrap()[..f.len()].copy_from_slice(f);
        tx.queue(f.len(), 0);
    }
    assert!(tx.buffer().is_none(), "the default burst is 64 frames");
    assert_eq!(tx.pending(), 64);
    assert_eq!(tx.flush().unwrap(), 64);
    assert_eq!(tx.pending(), 0);
    let mut got: Vec<Vec<u8>> = receive(&mut peer, 64).into_iter().map(|(f, _)| f).collect();
    got.sort_by_key(|f| seq(f));
    assert_eq!(got, sent);
    assert_eq!(stray(&mut own_rx), 0, "our own transmissions came back");
}

#[test]
fn a_frame_queued_for_another_interface_leaves_there() {
    let Some(ns) = link("a_frame_queued_for_another_interface_leaves_there") else {
        return;
    };
    let (mut rx, mut tx) = open(&ns, "va", AfPacketConfig::default());
    let (peer_rx, _) = open(&ns, "vb", AfPacketConfig::default());
    // Leaving on vb, the frame arrives on va, where this very socket receives it.
    let f = frame(7, 80);
    tx.buffer().unwrap()[..f.len()].copy_from_slice(&f);
    tx.queue(f.len(), peer_rx.ifindex());
    assert_eq!(tx.flush().unwrap(), 1);
    assert_eq!(receive(&mut rx, 1), vec![(f, rx.ifindex())]);
}

#[test]
fn a_fanout_group_hands_each_frame_to_one_member() {
    let Some(ns) = link("a_fanout_group_hands_each_frame_to_one_member") else {
        return;
    };
    let config = AfPacketConfig {
        fanout_group: Some(7),
        ..AfPacketConfig::default()
    };
    let (mut one, mut one_tx) = open(&ns, "va", config);
    let (mut two, _) = open(&ns, "va", config);
    let (_, mut peer) = open(&ns, "vb", AfPacketConfig::default());
    let sent: Vec<Vec<u8>> = (0..256).map(|i| frame(i, 120)).collect();
    assert_eq!(send(&mut peer, &sent), sent.len());
    let got = receive_any(&mut [&mut one, &mut two], sent.len());
    let mut seqs: Vec<u32> = got.iter().flatten().map(|(f, _)| seq(f).unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..256).collect::<Vec<_>>(),
        "each frame exactly once"
    );
    println!(
        "fanout of 256 flows over 2 sockets: {} + {}",
        got[0].len(),
        got[1].len()
    );
    assert!(
        !got[0].is_empty() && !got[1].is_empty(),
        "256 flows all hashed to one member"
    );
    // The group's own transmissions reach no member.
    let out: Vec<Vec<u8>> = (1000..1064).map(|i| frame(i, 120)).collect();
    assert_eq!(send(&mut one_tx, &out), 64);
    assert_eq!(
        stray(&mut one) + stray(&mut two),
        0,
        "our own transmissions came back"
    );
}

#[test]
fn rx_and_tx_allocate_nothing_after_open() {
    let Some(ns) = link("rx_and_tx_allocate_nothing_after_open") else {
        return;
    };
    let (mut rx, _) = open(&ns, "va", AfPacketConfig::default());
    let (_, mut peer) = open(&ns, "vb", AfPacketConfig::default());
    let plain = frame(1, 342);
    let vlan = tagged(&frame(2, 342), &[(0x8100, 5)]);
    let mut received = 0;
    let allocations = allocations_during(|| {
        for _ in 0..10 {
            for f in [&plain, &vlan].into_iter().cycle().take(64) {
                peer.buffer().unwrap()[..f.len()].copy_from_slice(f);
                peer.queue(f.len(), 0);
            }
            assert_eq!(peer.flush().unwrap(), 64);
        }
        let start = Instant::now();
        while received < 640 && start.elapsed() < crate::PATIENCE {
            received += rx
                .rx_burst(32, &mut |f| assert!(seq(f.data).is_some()))
                .unwrap();
            rx.wait(std::time::Duration::from_millis(2)).unwrap();
        }
    });
    assert_eq!(received, 640);
    assert_eq!(allocations, 0);
}

/// What a full ring drops is counted, and the count is read once: the figure the load
/// generator reports as the replies it lost itself.
#[test]
fn a_full_ring_counts_its_drops() {
    let Some(ns) = link("a_full_ring_counts_its_drops") else {
        return;
    };
    // Two 4 KiB blocks of 2 KiB frames: room for a handful of frames, nothing read meanwhile.
    let small = AfPacketConfig {
        block_size: 4096,
        block_count: 2,
        frame_size: 2048,
        ..AfPacketConfig::default()
    };
    let (mut rx, _) = open(&ns, "va", small);
    let (_, mut peer) = open(&ns, "vb", AfPacketConfig::default());
    let sent: Vec<Vec<u8>> = (0..200).map(|i| frame(i, 342)).collect();
    assert_eq!(send(&mut peer, &sent), 200);
    // Whatever the ring kept, read until it has been quiet a while (bounded in time).
    let (mut got, start, mut last) = (0u64, Instant::now(), Instant::now());
    while last.elapsed() < std::time::Duration::from_millis(100)
        && start.elapsed() < crate::PATIENCE
    {
        let n = rx
            .rx_burst(64, &mut |f| assert!(seq(f.data).is_some()))
            .unwrap();
        if n > 0 {
            got += n as u64;
            last = Instant::now();
        }
        rx.wait(std::time::Duration::from_millis(2)).unwrap();
    }
    let kernel = rx.take_kernel_stats().unwrap();
    assert!(kernel.drops > 0, "{kernel:?}");
    assert_eq!(kernel.packets, 200, "{kernel:?}");
    assert_eq!(got + kernel.drops, 200, "{got} read, {kernel:?}");
    assert_eq!(rx.take_kernel_stats().unwrap().drops, 0, "read once");
}

#[test]
fn open_names_the_interface_in_its_errors() {
    let Some(ns) = Netns::new("open_names_the_interface_in_its_errors") else {
        return;
    };
    let e = ns
        .enter(|| afpacket::open("nonexistent0", &AfPacketConfig::default()))
        .unwrap_err();
    assert!(e.to_string().contains("\"nonexistent0\""), "{e}");
    ns.veth("va", "vb");
    let bad = AfPacketConfig {
        frame_size: 0,
        ..AfPacketConfig::default()
    };
    let e = ns.enter(|| afpacket::open("va", &bad)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    let odd = AfPacketConfig {
        block_size: 5000,
        frame_size: 1024,
        ..AfPacketConfig::default()
    };
    let e = ns.enter(|| afpacket::open("va", &odd)).unwrap_err();
    assert!(e.to_string().contains("PACKET_RX_RING"), "{e}");
}
