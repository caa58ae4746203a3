//! Finds DPDK with pkg-config, binds what Peregrine uses with bindgen, and compiles C wrappers
//! for DPDK's static inline functions (the burst calls among them) with `cc`.

use std::env;
use std::path::PathBuf;

/// The oldest DPDK whose API this crate is written against (Debian 12's).
const MIN_VERSION: &str = "22.11";

/// Set to a comma-separated list of DPDK drivers (`bus_vdev,mempool_ring,net_af_xdp`), DPDK is
/// linked statically with those drivers in whole (their constructors register them), instead of
/// dynamically with every driver loaded from DPDK's driver directory at EAL start.
const STATIC_DRIVERS: &str = "PEREGRINE_DPDK_STATIC";

/// The system libraries a static DPDK of the common drivers needs (DPDK's own list, from
/// `pkg-config --static`, also names the libraries of every vendor's driver).
const STATIC_SYSTEM_LIBS: [&str; 11] = [
    "numa", "bsd", "bpf", "xdp", "elf", "z", "atomic", "m", "dl", "pthread", "rt",
];

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed={STATIC_DRIVERS}");
    let drivers = env::var(STATIC_DRIVERS).ok().filter(|d| !d.is_empty());
    let dpdk = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(drivers.is_none())
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            // One clear line: what is missing and how to get it.
            panic!(
                "peregrine-dpdk-sys needs DPDK >= {MIN_VERSION} (pkg-config libdpdk) and libclang: \
                 apt install libdpdk-dev libclang-dev clang pkg-config ({e})"
            );
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    // rte_memcpy.h uses SSSE3 intrinsics in always-inline functions: without this the wrappers
    // do not compile. x86-64 machines that run DPDK all have it.
    let march = "-march=corei7";
    let includes: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    let wrappers = out.join("static_wrappers");
    bindgen::Builder::default()
        .header(manifest.join("wrapper.h").display().to_string())
        .clang_args(&includes)
        .clang_arg(march)
        // Without an allowlist the bindings are tens of thousands of lines, and the wrappers
        // pull in clang-only intrinsics gcc cannot compile.
        .allowlist_function("rte_eal_(init|cleanup)")
        .allowlist_function("rte_(socket_id|lcore_id|lcore_count|strerror|thread_register|thread_unregister)")
        .allowlist_function(
            "rte_eth_(dev_count_avail|dev_configure|rx_queue_setup|tx_queue_setup|dev_start|\
             dev_stop|dev_close|promiscuous_enable|macaddr_get|stats_get|dev_socket_id|\
             dev_info_get|rx_burst|tx_burst|dev_get_port_by_name|link_get_nowait|\
             xstats_get|xstats_get_names)",
        )
        .allowlist_function("rte_pktmbuf_(pool_create|alloc|free|append|trim|prepend|adj)")
        .allowlist_function("peregrine_dpdk_errno")
        .allowlist_function(
            "rte_mempool_(avail_count|create_empty|set_ops_byname|populate_default|obj_iter)",
        )
        .allowlist_function("rte_pktmbuf_(pool_init|init)|rte_mbuf_best_mempool_ops|rte_eal_iova_mode")
        .allowlist_type(
            "rte_eth_conf|rte_mbuf|rte_ether_addr|rte_eth_stats|rte_eth_dev_info|rte_eth_link|\
             rte_pktmbuf_pool_private|rte_eth_xstat|rte_eth_xstat_name",
        )
        .allowlist_var(
            "RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RTE_MAX_ETHPORTS|RTE_MEMPOOL_F_NO_IOVA_CONTIG",
        )
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen on wrapper.h: {e}"))
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| panic!("writing the bindings: {e}"));
    let mut cc = cc::Build::new();
    cc.file(wrappers.with_extension("c"))
        .file(manifest.join("shim.c"))
        .include(&manifest)
        .includes(&dpdk.include_paths)
        .flag(march)
        .flag("-include")
        .flag("rte_config.h")
        .opt_level(3)
        .warnings(false);
    cc.compile("peregrine_dpdk_wrappers");
    if let Some(drivers) = drivers {
        link_statically(&drivers);
    }
}

/// Links DPDK's static archives: `drivers` in whole, the libraries from DPDK's core that they
/// and we use as needed, the system libraries dynamically.
fn link_statically(drivers: &str) {
    let libdir = pkg_config::get_variable("libdpdk", "libdir")
        .unwrap_or_else(|e| panic!("pkg-config --variable=libdir libdpdk: {e}"));
    println!("cargo:rustc-link-search=native={libdir}");
    for driver in drivers.split(',').map(str::trim) {
        println!("cargo:rustc-link-lib=static:+whole-archive,-bundle=rte_{driver}");
    }
    let out = std::process::Command::new("pkg-config")
        .args(["--static", "--libs-only-l", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("pkg-config --static --libs-only-l libdpdk: {e}"));
    let libs = String::from_utf8_lossy(&out.stdout);
    // The core libraries, in DPDK's order (each needs those after it).
    for lib in libs
        .split_whitespace()
        .filter_map(|l| l.strip_prefix("-lrte_"))
    {
        println!("cargo:rustc-link-lib=static:-bundle=rte_{lib}");
    }
    for lib in STATIC_SYSTEM_LIBS {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
}
