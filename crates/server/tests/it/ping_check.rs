//! Ping check with real hosts (issue 30): a host in the clients' namespace uses the first
//! address of the pool without a lease (the kernel answers ARP for it); Peregrine, with a ping
//! check on the scope, probes that address before offering it, hears the answer, and gives a
//! real udhcpc client the next address; /metrics counts the probe answered, and the lease API
//! shows the address out of service.
//!
//! Needs root (namespaces) and busybox udhcpc. Without it the test says so and passes, except
//! in CI.

use std::net::Ipv4Addr;
use std::path::Path;

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, require_tools};

use crate::migration::spawn_logged;
use crate::{metric, scrape};

const CONTROL: &str = "127.0.0.1:9168";

#[test]
fn an_address_a_host_answers_for_is_not_offered_and_is_counted() {
    let test = "ping_check";
    let Some([udhcpc]) = require_tools(test, ["udhcpc"], "udhcpc") else {
        return;
    };
    let Some(server) = Netns::new(test) else {
        return;
    };
    let Some(clients) = Netns::new(test) else {
        return;
    };
    server.ip("link add srv0 type bridge");
    server.ip("link set srv0 up");
    server.ip("addr add 10.81.0.1/24 dev srv0");
    for i in 0..2 {
        server.ip(&format!("link add p{i} type veth peer name c{i}"));
        server.ip(&format!("link set p{i} master srv0"));
        server.ip(&format!("link set p{i} up"));
        server.ip(&format!("link set c{i} address 02:00:00:81:00:0{i}"));
        server.ip(&format!("link set c{i} netns {}", clients.name()));
        clients.ip(&format!("link set c{i} up"));
    }
    // A host that took 10.81.0.10 by hand: no lease, but it answers ARP for it.
    clients.ip("addr add 10.81.0.10/24 dev c0");

    let dir = TempDir::new("ping-check");
    let config = dir.path().join("peregrine.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.81.0.1"

[control]
listen = "{CONTROL}"

[[scope]]
name = "lan"
subnet = "10.81.0.0/24"
interfaces = ["srv0"]
# A small pool is one lock shard: its addresses are offered in order, .10 first.
ping-check-ms = 300

[[scope.pool]]
range = "10.81.0.10 - 10.81.0.13"
"#
        ),
    )
    .unwrap();
    let log = dir.path().join("peregrine.log");
    let mut peregrine = spawn_logged(
        server
            .command(env!("CARGO_BIN_EXE_peregrine"))
            .args(["run", "--config"])
            .arg(&config),
        &log,
        "listening",
    );

    let got = udhcpc_lease(&clients, &udhcpc, dir.path());
    assert_eq!(
        got,
        Some(Ipv4Addr::new(10, 81, 0, 11)),
        "peregrine: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let m = scrape(&server, CONTROL);
    assert_eq!(
        metric(&m, "peregrine_ping_checks_total{result=\"answered\"}"),
        1
    );
    assert!(metric(&m, "peregrine_ping_checks_total{result=\"sent\"}") >= 2);
    let lease = server.enter(|| {
        ureq::get(&format!("http://{CONTROL}/v1/leases/10.81.0.10"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    });
    assert!(lease.contains("\"abandoned\""), "{lease}");
    assert!(peregrine.is_running());
    crate::stop(&mut peregrine);
}

/// Runs udhcpc on `c1` until it has a lease (or gives up); the address it bound.
fn udhcpc_lease(clients: &Netns, udhcpc: &Path, dir: &Path) -> Option<Ipv4Addr> {
    let script = dir.join("script");
    let events = dir.join("events");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $serverid\" >> {}\nexit 0\n",
            events.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = clients
        .command("timeout")
        .arg("30")
        .arg(udhcpc)
        .args(["-f", "-q", "-n", "-t", "5", "-T", "2", "-i", "c1", "-s"])
        .arg(&script)
        .output()
        .unwrap();
    let bound = std::fs::read_to_string(&events).unwrap_or_default();
    let got: Option<Ipv4Addr> = bound.split_whitespace().next().and_then(|a| a.parse().ok());
    if got.is_none() {
        eprintln!("udhcpc: {}", String::from_utf8_lossy(&out.stderr));
    }
    got
}
