//! The bindings against the real library: an EAL without hugepages or PCI, one `net_null`
//! port, a mempool, one queue each way, and packets through the static-inline burst calls
//! (the C wrappers); linked statically, no DPDK library loaded. One test: an EAL starts once
//! per process.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::ffi::CString;
use std::ptr;

use peregrine_dpdk_sys as sys;

#[test]
fn an_eal_on_a_virtual_port_sends_and_receives_bursts() {
    // A unique prefix, no shared config: other EALs on the machine (parallel CI jobs) are left
    // alone.
    let prefix = format!("--file-prefix=peregrine-sys-{}", std::process::id());
    let args = [
        "peregrine-dpdk-sys-test",
        "--no-huge",
        "--no-pci",
        "--no-shconf",
        "-m",
        "128",
        "-l",
        "0",
        "--log-level=lib.eal:error",
        "--no-telemetry",
        "--vdev=net_null0",
        prefix.as_str(),
    ];
    let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut std::os::raw::c_char> =
        owned.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let argc = i32::try_from(argv.len()).unwrap();
    // SAFETY: argv holds argc valid C strings that outlive the call (DPDK may permute them).
    let n = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    assert!(n >= 0, "rte_eal_init: errno {}", sys::errno());
    // Built with PEREGRINE_DPDK_STATIC, DPDK is inside this binary (net_null0 was found: its
    // driver's constructor was kept), and no DPDK library is loaded.
    if option_env!("PEREGRINE_DPDK_STATIC").is_some_and(|d| !d.is_empty()) {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            !maps.contains("librte_"),
            "a DPDK library is loaded:\n{maps}"
        );
    }

    // SAFETY: the EAL is initialised; every pointer below comes from DPDK and is checked.
    unsafe {
        assert_eq!(sys::rte_eth_dev_count_avail(), 1);
        let name = CString::new("peregrine-sys-test").unwrap();
        let pool = sys::rte_pktmbuf_pool_create(
            name.as_ptr(),
            1023,
            32,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id().cast_signed(),
        );
        assert!(!pool.is_null(), "mempool: errno {}", sys::errno());
        let conf = sys::rte_eth_conf::default();
        assert_eq!(sys::rte_eth_dev_configure(0, 1, 1, &raw const conf), 0);
        assert_eq!(
            sys::rte_eth_rx_queue_setup(0, 0, 128, 0, ptr::null(), pool),
            0
        );
        assert_eq!(sys::rte_eth_tx_queue_setup(0, 0, 128, 0, ptr::null()), 0);
        assert_eq!(sys::rte_eth_dev_start(0), 0);

        // TX: four frames of 60 bytes, written through the mbuf's data pointer.
        let mut out: Vec<*mut sys::rte_mbuf> = (0..4)
            .map(|i| {
                let m = sys::rte_pktmbuf_alloc(pool);
                assert!(!m.is_null());
                let data = sys::rte_pktmbuf_append(m, 60).cast::<u8>();
                assert!(!data.is_null());
                ptr::write_bytes(data, i, 60);
                m
            })
            .collect();
        let sent = sys::rte_eth_tx_burst(0, 0, out.as_mut_ptr(), 4);
        assert_eq!(sent, 4, "net_null takes every frame");

        // RX: net_null makes up frames; a burst returns some, whose length is what it says.
        let mut got = [ptr::null_mut::<sys::rte_mbuf>(); 32];
        let n = sys::rte_eth_rx_burst(0, 0, got.as_mut_ptr(), 32);
        assert!(n > 0, "net_null gave no frames");
        for m in &got[..usize::from(n)] {
            assert!((**m).pkt_len > 0);
            sys::rte_pktmbuf_free(*m);
        }
        let mut stats = sys::rte_eth_stats::default();
        assert_eq!(sys::rte_eth_stats_get(0, &raw mut stats), 0);
        assert_eq!(stats.opackets, 4);
        assert!(stats.ipackets >= u64::from(n));
        assert_eq!(sys::rte_eth_dev_stop(0), 0);
        assert_eq!(sys::rte_eth_dev_close(0), 0);
        assert_eq!(sys::rte_eal_cleanup(), 0);
    }
}
