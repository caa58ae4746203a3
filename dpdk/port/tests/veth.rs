//! A DPDK port on each end of a veth pair (the `net_af_packet` vdev) in a network namespace of
//! the test's: frames written into mbufs leave one port and arrive whole at the other; the
//! errors a server would meet name their call. One test: an EAL starts once per process.

#![allow(clippy::unwrap_used)]

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
    ns.enter(|| {
        let prefix = format!("--file-prefix=peregrine-dpdk-{}", std::process::id());
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
            prefix.as_str(),
        ])
        .unwrap();
        let again = Eal::init(&["--no-huge"]).unwrap_err();
        assert_eq!(again.call, "rte_eal_init");
        assert_eq!(eal.port_count(), 2);
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
    });
}
