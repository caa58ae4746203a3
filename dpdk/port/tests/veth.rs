//! A DPDK port on each end of a veth pair (the `net_af_packet` vdev) in a network namespace of
//! the test's: frames written into mbufs leave one port and arrive whole at the other; the
//! errors a server would meet name their call; one lcore's queue on both ports sends each frame
//! by the port it names and receives from both. A `net_af_xdp` port on a second pair passes
//! frames both ways until its pool has been handed out several times over. One test: an EAL
//! starts once per process.

#![allow(clippy::unwrap_used, unsafe_code)]

use std::time::{Duration, Instant};

use peregrine_dpdk::{Eal, Mempool, Port};
use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::netns::Netns;

/// A broadcast frame of 100 bytes whose payload carries `n`.
fn frame(n: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype: the kernel ignores it
    f.resize(100, n);
    f
}

#[test]
fn frames_cross_a_veth_pair_between_two_dpdk_ports() {
    let Some(ns) = Netns::new("dpdk_veth") else {
        return;
    };
    ns.veth("dp0", "dp1");
    ns.veth("xdp0", "xdp1");
    ns.enter(|| {
        let prefix = format!("--file-prefix=peregrine-dpdk-{}", std::process::id());
        let before = allowed_cpus();
        let eal = Eal::init(&[
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-m",
            "256",
            "-l",
            "0",
            "--log-level=lib.eal:error",
            "--vdev=net_af_packet0,iface=dp0",
            "--vdev=net_af_packet1,iface=dp1",
            "--vdev=net_af_xdp0,iface=xdp0",
            "--vdev=net_af_packet2,iface=xdp1",
            prefix.as_str(),
        ])
        .unwrap();
        // The EAL pinned this thread to lcore 0 (`-l 0`); it has its CPUs back.
        assert_eq!(allowed_cpus(), before);
        let again = Eal::init(&["--no-huge"]).unwrap_err();
        assert_eq!(again.call, "rte_eal_init");
        assert_eq!(eal.port_count(), 4);
        let missing = eal.port_by_name("net_af_packet7").unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("rte_eth_dev_get_port_by_name(net_af_packet7): ")
        );

        let pool = std::sync::Arc::new(Mempool::new(&eal, "test", 2047).unwrap());
        let (a, b) = (
            eal.port_by_name("net_af_packet0").unwrap(),
            eal.port_by_name("net_af_packet1").unwrap(),
        );
        let too_many = Port::start(&eal, a, 64, 256, &pool).unwrap_err();
        assert!(too_many.reason.contains("64 queues asked"), "{too_many}");
        let (pa, pb) = (
            Port::start(&eal, a, 1, 256, &pool).unwrap(),
            Port::start(&eal, b, 1, 256, &pool).unwrap(),
        );
        assert!(pa.queue(1, &pool).is_none());
        let (_, mut tx) = pa.queue(0, &pool).unwrap();
        let (mut rx, _) = pb.queue(0, &pool).unwrap();
        for n in 0..5u8 {
            let f = frame(n);
            tx.buffer().unwrap()[..f.len()].copy_from_slice(&f);
            tx.queue(f.len(), 0);
        }
        assert_eq!(tx.pending(), 5);
        assert_eq!(tx.flush().unwrap(), 5);
        assert_eq!(tx.pending(), 0);

        let mut got = Vec::new();
        let start = Instant::now();
        while got.len() < 5 && start.elapsed() < Duration::from_secs(5) {
            rx.rx_burst(32, &mut |f| {
                if f.data.get(12..14) == Some(&[0x88, 0xb5]) {
                    got.push(f.data.to_vec());
                }
            })
            .unwrap();
            rx.wait(Duration::from_millis(1)).unwrap();
        }
        let want: Vec<Vec<u8>> = (0..5).map(frame).collect();
        assert_eq!(got, want);
        assert_eq!(pa.stats().unwrap().opackets, 5);
        assert_ne!(pa.mac().unwrap(), [0; 6]);

        one_lcore_on_both_ports(&pa, &pb, &pool);
        af_xdp_round_trips(&eal, &pool);

        // A worker thread the server makes gets an lcore id (and so the pool's per-lcore
        // cache) from its queue, and gives it back with the queue.
        let (mut rx, _) = pb.queue(0, &pool).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                assert_eq!(peregrine_dpdk::current_lcore(), None);
                rx.attach_thread();
                assert!(peregrine_dpdk::current_lcore().is_some_and(|id| id != 0));
                drop(rx);
                assert_eq!(peregrine_dpdk::current_lcore(), None);
            });
        });
        assert_eq!(peregrine_dpdk::current_lcore(), Some(0));
    });
}

/// One lcore's queue on both ends of a veth pair: a frame queued for a port leaves by it, and
/// each arrives at the other end named by the port it came in on.
fn one_lcore_on_both_ports(pa: &Port, pb: &Port, pool: &std::sync::Arc<Mempool>) {
    let (a, b) = (pa.id(), pb.id());
    let (mut both_rx, mut both_tx) = peregrine_dpdk::lcore_queues(&[pa, pb], 0, pool).unwrap();
    for (n, port) in [(7u8, a), (8, b)] {
        let f = frame(n);
        both_tx.buffer().unwrap()[..f.len()].copy_from_slice(&f);
        both_tx.queue(f.len(), u32::from(port));
    }
    assert_eq!(both_tx.pending(), 2);
    assert_eq!(both_tx.flush().unwrap(), 2);
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < 2 && start.elapsed() < Duration::from_secs(5) {
        both_rx
            .rx_burst(32, &mut |f| {
                if f.data.get(12..14) == Some(&[0x88, 0xb5]) {
                    got.push((f.ifindex, f.data[50]));
                }
            })
            .unwrap();
        both_rx.wait(Duration::from_millis(1)).unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, [(u32::from(a), 8), (u32::from(b), 7)]);
}

/// `net_af_xdp0` and `net_af_packet2`, the two ends of a veth pair, pass frames both ways.
fn af_xdp_round_trips(eal: &Eal, pool: &std::sync::Arc<Mempool>) {
    // net_af_xdp hands the kernel the pool it receives into as one region; every mbuf of
    // the pool must lie inside it. That shows only once the pool has gone round, as it does
    // under load: here a thread without an lcore (none attached), so without a per-lcore
    // cache, takes its mbufs from the whole pool in turn rather than the few it just freed.
    let xdp_pool = std::sync::Arc::new(Mempool::new(eal, "xdp", 4095).unwrap());
    let x = eal.port_by_name("net_af_xdp0").unwrap();
    let x = Port::start(eal, x, 1, 256, &xdp_pool).unwrap();
    let p = eal.port_by_name("net_af_packet2").unwrap();
    let p = Port::start(eal, p, 1, 256, pool).unwrap();
    let (mut xrx, mut xtx) = x.queue(0, &xdp_pool).unwrap();
    let (mut prx, mut ptx) = p.queue(0, pool).unwrap();
    let rounds = 3 * 4095 / 16;
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut at_p, mut at_x) = (0, 0);
            for round in 0..rounds {
                let sent = frame(round as u8);
                for _ in 0..16 {
                    xtx.buffer().unwrap()[..sent.len()].copy_from_slice(&sent);
                    xtx.queue(sent.len(), 0);
                    ptx.buffer().unwrap()[..sent.len()].copy_from_slice(&sent);
                    ptx.queue(sent.len(), 0);
                }
                xtx.flush().unwrap();
                ptx.flush().unwrap();
                let want = 16 * (round + 1);
                let start = Instant::now();
                while (at_p < want || at_x < want) && start.elapsed() < Duration::from_secs(2) {
                    let same = |f: &[u8]| usize::from(f == sent.as_slice());
                    prx.rx_burst(32, &mut |f| at_p += same(f.data)).unwrap();
                    xrx.rx_burst(32, &mut |f| at_x += same(f.data)).unwrap();
                }
                assert_eq!(
                    (at_p, at_x),
                    (want, want),
                    "round {round} of {rounds}: frames lost on net_af_xdp ({} mbufs free)",
                    xdp_pool.available()
                );
            }
        });
    });
}

/// The CPUs the calling thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; the call fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
