//! The TAP backend: a TAP device in a namespace, with an `AF_PACKET` socket on its kernel side
//! as the peer.

use peregrine_io::afpacket::{self, AfPacketConfig, AfPacketRx, AfPacketTx};
use peregrine_io::tap::{self, Tap, TapConfig};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::allocations_during;

use crate::{frame, receive, receive_any, send, seq};
use peregrine_testkit::netns::Netns;

/// A namespace with the TAP device `t0` up, and a peer socket on it; `None` when the test
/// must skip.
fn device(test: &str, config: &TapConfig) -> Option<(Netns, Tap, (AfPacketRx, AfPacketTx))> {
    let ns = Netns::new(test)?;
    let tap = ns.enter(|| tap::open("t0", config)).unwrap();
    ns.ip("link set t0 up");
    let peer = ns
        .enter(|| afpacket::open("t0", &AfPacketConfig::default()))
        .unwrap();
    Some((ns, tap, peer))
}

#[test]
fn frames_cross_a_tap_device_both_ways() {
    let Some((_ns, mut tap, (mut peer_rx, mut peer_tx))) =
        device("frames_cross_a_tap_device_both_ways", &TapConfig::default())
    else {
        return;
    };
    assert_eq!(tap.name, "t0");
    assert_eq!(tap.ifindex, peer_rx.ifindex());
    let (rx, tx) = &mut tap.queues[0];
    let out = frame(1, 342);
    assert_eq!(send(&mut peer_tx, std::slice::from_ref(&out)), 1);
    assert_eq!(receive(rx, 1), vec![(out, tap.ifindex)]);
    let back = frame(2, 1514);
    assert_eq!(send(tx, std::slice::from_ref(&back)), 1);
    assert_eq!(receive(&mut peer_rx, 1), vec![(back, tap.ifindex)]);
}

#[test]
fn a_multi_queue_tap_device_works_on_every_queue() {
    let config = TapConfig {
        queues: 2,
        multi_queue: true,
        ..TapConfig::default()
    };
    let Some((_ns, mut tap, (mut peer_rx, mut peer_tx))) =
        device("a_multi_queue_tap_device_works_on_every_queue", &config)
    else {
        return;
    };
    assert_eq!(tap.queues.len(), 2);
    let out: Vec<Vec<u8>> = (0..64).map(|i| frame(i, 200)).collect();
    assert_eq!(send(&mut peer_tx, &out), 64);
    let [(rx0, tx0), (rx1, tx1)] = &mut tap.queues[..] else {
        unreachable!()
    };
    let got = receive_any(&mut [rx0, rx1], 64);
    let mut seqs: Vec<u32> = got.iter().flatten().map(|(f, _)| seq(f).unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..64).collect::<Vec<_>>(), "each frame exactly once");
    println!(
        "64 flows over 2 TAP queues: {} + {}",
        got[0].len(),
        got[1].len()
    );
    assert_eq!(send(tx0, &[frame(100, 60)]), 1);
    assert_eq!(send(tx1, &[frame(101, 60)]), 1);
    let mut back: Vec<u32> = receive(&mut peer_rx, 2)
        .iter()
        .map(|(f, _)| seq(f).unwrap())
        .collect();
    back.sort_unstable();
    assert_eq!(back, [100, 101]);
}

#[test]
fn tap_rx_and_tx_allocate_nothing_after_open() {
    let Some((_ns, mut tap, (mut peer_rx, mut peer_tx))) = device(
        "tap_rx_and_tx_allocate_nothing_after_open",
        &TapConfig::default(),
    ) else {
        return;
    };
    let (rx, tx) = &mut tap.queues[0];
    let f = frame(1, 342);
    for _ in 0..64 {
        peer_tx.buffer().unwrap()[..f.len()].copy_from_slice(&f);
        peer_tx.queue(f.len(), 0);
    }
    assert_eq!(peer_tx.flush().unwrap(), 64);
    let (mut received, mut sent) = (0, 0);
    let allocations = allocations_during(|| {
        let start = std::time::Instant::now();
        while received < 64 && start.elapsed() < crate::PATIENCE {
            rx.rx_burst(64, &mut |f| received += usize::from(seq(f.data).is_some()))
                .unwrap();
            rx.wait(std::time::Duration::from_millis(2)).unwrap();
        }
        for _ in 0..64 {
            tx.buffer().unwrap()[..f.len()].copy_from_slice(&f);
            tx.queue(f.len(), 0);
        }
        sent = tx.flush().unwrap();
    });
    assert_eq!((received, sent), (64, 64));
    assert_eq!(allocations, 0);
    assert_eq!(receive(&mut peer_rx, 64).len(), 64);
}

#[test]
fn more_queues_than_one_need_multi_queue() {
    let config = TapConfig {
        queues: 2,
        ..TapConfig::default()
    };
    let e = tap::open("t0", &config).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("\"t0\""), "{e}");
}
