//! How the server runs its workers: on a TAP device it creates, pinned to the configured
//! cores, its other threads off those cores, and with one flow's requests handed between two
//! workers by client.

use std::process::Stdio;
use std::time::{Duration, Instant};

use peregrine_io::TxQueue;
use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, find_tool};
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::VlanTags;

use crate::{discover, metric, replies, scrape, start, stop, udhcpc_once};

const SCOPE: &str = r#"
[[scope]]
name = "lan"
subnet = "10.78.0.0/24"
interfaces = ["{if}"]

[[scope.pool]]
range = "10.78.0.100 - 10.78.0.199"
"#;

/// A configuration serving 10.78.0.0/24 on `interface` with `dataplane`'s settings.
fn config(dir: &TempDir, interface: &str, dataplane: &str) -> std::path::PathBuf {
    let text = format!(
        "[dataplane]\n{dataplane}\n\n[[interface]]\nname = \"{interface}\"\naddress = \"10.78.0.1\"\n{}",
        SCOPE.replace("{if}", interface)
    );
    let path = dir.path().join("workers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The CPUs each thread of `pid` named `name` may run on (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32, name: &str) -> Option<String> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?.path();
        let comm = std::fs::read_to_string(task.join("comm")).ok()?;
        if comm.trim() == name {
            let status = std::fs::read_to_string(task.join("status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string());
        }
    }
    None
}

/// Waits (up to 10 s) until `server` has a thread named `name`.
fn wait_for_thread(server: &mut Running, name: &str) {
    let start = Instant::now();
    while allowed_cpus(server.id(), name).is_none() {
        assert!(server.is_running(), "peregrine exited");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no thread {name}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `backend = "tap"`: the server creates the TAP device, and a real client on the kernel's
/// side of it (udhcpc) leases an address; its two workers run on the cores configured.
#[test]
fn udhcpc_leases_through_a_tap_device_the_server_creates_with_pinned_workers() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let Some(ns) = Netns::new("server_tap") else {
        return;
    };
    let dir = TempDir::new("peregrine-tap");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let last = cpus - 1;
    let config = config(
        &dir,
        "pgtap0",
        &format!("backend = \"tap\"\nworkers = 2\ncores = [{last}, 0]"),
    );
    let mut server = start(&ns, &config);
    let pid = server.id();
    wait_for_thread(&mut server, "pg-pgtap0-1");
    assert_eq!(allowed_cpus(pid, "pg-pgtap0-0").unwrap(), last.to_string());
    assert_eq!(allowed_cpus(pid, "pg-pgtap0-1").unwrap(), "0");
    ns.ip("link set pgtap0 up");

    let text = udhcpc_once(&ns, &udhcpc, "pgtap0", 5, &[]);
    assert!(
        text.contains("lease of 10.78.0.1") && text.contains("obtained from 10.78.0.1"),
        "{text}"
    );
    let metrics = scrape(&ns, "127.0.0.1:9167");
    assert_eq!(
        metric(&metrics, "peregrine_dhcp_messages_sent_total{type=\"ack\"}"),
        1
    );
    assert!(stop(&mut server).success());
}

/// With its worker pinned to CPU 0, the journal's threads run on the other CPUs, never on the
/// worker's: a polling worker has no idle time to lend them.
#[test]
fn the_journal_runs_off_the_workers_core() {
    let last = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    if last == 0 || !own.contains(&format!("Cpus_allowed_list:\t0-{last}\n")) {
        eprintln!("skipped: needs CPUs 0 and another, all of them this test's");
        return;
    }
    let Some(ns) = Netns::new("server_off_core") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-off-core");
    let config = config(&dir, "srv0", "workers = 1\ncores = [0]");
    let leases = format!("\n[leases]\ndirectory = {:?}\n", dir.path().join("leases"));
    let text = std::fs::read_to_string(&config).unwrap() + &leases;
    std::fs::write(&config, text).unwrap();
    let mut server = start(&ns, &config);
    let pid = server.id();
    wait_for_thread(&mut server, "pg-srv0-0");
    let others = if last == 1 {
        "1".to_string()
    } else {
        format!("1-{last}")
    };
    assert_eq!(allowed_cpus(pid, "pg-srv0-0").unwrap(), "0");
    assert_eq!(allowed_cpus(pid, "peregrine-journ").unwrap(), others);
    assert!(stop(&mut server).success());
}

/// A core the machine does not have stops the server with an error that names it.
#[test]
fn a_core_the_machine_lacks_is_refused() {
    let Some(ns) = Netns::new("server_bad_core") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-bad-core");
    let config = config(&dir, "srv0", "cores = [1023]");
    let out = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("CPU 1023"), "{stderr}");
}

/// Every DISCOVER of one flow (broadcasts from 0.0.0.0:68, which the kernel's fanout hash
/// gives to one worker) is answered, and both workers served: the one that received them
/// handed about half to the other.
#[test]
fn one_flow_is_served_by_both_workers() {
    let Some(ns) = Netns::new("server_handoff") else {
        return;
    };
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.78.0.1/24 dev srv0");
    let dir = TempDir::new("peregrine-handoff");
    let config = config(&dir, "srv0", "workers = 2");
    let mut server = start(&ns, &config);
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let mut send = |frame: &[u8]| {
        let buf = tx.buffer().unwrap();
        buf[..frame.len()].copy_from_slice(frame);
        tx.queue(frame.len(), 0);
        tx.flush().unwrap();
    };
    // Wait until the server answers, then send the rest.
    let start = Instant::now();
    while replies(&mut rx, 1, MessageType::Offer).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no OFFER within 10 s"
        );
        send(&discover([2, 0, 0, 0x78, 0, 0], 0, VlanTags::NONE));
    }
    let clients = 40u8;
    for n in 1..=clients {
        send(&discover(
            [2, 0, 0, 0x78, 1, n],
            u32::from(n),
            VlanTags::NONE,
        ));
    }
    let mut got: Vec<u32> = replies(&mut rx, usize::from(clients), MessageType::Offer)
        .iter()
        .map(|r| r.0)
        .filter(|&xid| xid > 0)
        .collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), usize::from(clients), "every client got an OFFER");

    let metrics = scrape(&ns, "127.0.0.1:9167");
    let handoff = |worker: &str, direction: &str| {
        metric(
            &metrics,
            &format!(
                "peregrine_worker_handoff_frames_total{{worker=\"{worker}\",direction=\"{direction}\"}}"
            ),
        )
    };
    let (out, into) = (
        [handoff("0", "out"), handoff("1", "out")],
        [handoff("0", "in"), handoff("1", "in")],
    );
    // One worker received the flow and handed some over; the other handed back nothing.
    let (sender, receiver) = if out[0] > 0 { (0, 1) } else { (1, 0) };
    assert!(out[sender] >= 5, "{metrics}");
    assert_eq!(out[receiver], 0, "{metrics}");
    assert_eq!(into[receiver], out[sender]);
    assert!(stop(&mut server).success());
}
