//! Two `peregrine run` processes as a failover pair (issue 28), each in its own network
//! namespace, joined by a veth pair that carries both the failover link and DHCP.

use std::path::Path;
use std::process::Command;

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;

use super::migration::{spawn_logged, wait_until};

/// One server of the pair: its `[failover]` role, its address and the partner's.
fn config(primary: bool, iface: &str, local: &str, peer: &str, leases: &Path) -> String {
    format!(
        r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "{iface}"
address = "{local}"

[[scope]]
name = "lan"
subnet = "10.79.9.0/24"
interfaces = ["{iface}"]

[[scope.pool]]
range = "10.79.9.100 - 10.79.9.199"

[leases]
directory = {leases:?}

[failover]
role = "{role}"
local = "{local}"
peer = "{peer}"
relationship = "test-pair"
mclt = 60
"#,
        role = if primary { "primary" } else { "secondary" },
        leases = leases.display().to_string(),
    )
}

/// Two namespaces joined by `fo0` (10.79.9.1, the primary's) and `fo1` (10.79.9.2).
fn namespaces() -> Option<(Netns, Netns)> {
    let a = Netns::new("pair")?;
    let b = Netns::new("pair")?;
    a.ip("link add fo0 type veth peer name fo1");
    a.ip(&format!("link set fo1 netns {}", b.name()));
    a.ip("addr add 10.79.9.1/24 dev fo0");
    a.ip("link set fo0 up");
    b.ip("addr add 10.79.9.2/24 dev fo1");
    b.ip("link set fo1 up");
    Some((a, b))
}

fn start(ns: &Netns, config: &Path, log: &Path) -> peregrine_testkit::process::Running {
    let mut cmd: Command = ns.command(env!("CARGO_BIN_EXE_peregrine"));
    cmd.args(["run", "--config"]).arg(config);
    spawn_logged(&mut cmd, log, "peregrine serving")
}

fn says(log: &Path, what: &str) -> Option<()> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
        .then_some(())
}

#[test]
fn two_servers_connect_and_reach_normal() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair");
    let path = |name: &str| dir.path().join(name);
    std::fs::write(
        path("primary.toml"),
        config(
            true,
            "fo0",
            "10.79.9.1",
            "10.79.9.2",
            &path("primary-leases"),
        ),
    )
    .unwrap();
    std::fs::write(
        path("secondary.toml"),
        config(
            false,
            "fo1",
            "10.79.9.2",
            "10.79.9.1",
            &path("secondary-leases"),
        ),
    )
    .unwrap();
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let _primary = start(&a, &path("primary.toml"), &path("primary.log"));
    for who in ["primary", "secondary"] {
        let log = path(&format!("{who}.log"));
        wait_until(30, &format!("NORMAL in {}", log.display()), || {
            says(&log, "failover: state NORMAL")
        });
    }
    // Both came through recovery from nothing, as a new pair does, and kept the state on disk.
    for who in ["primary", "secondary"] {
        let log = std::fs::read_to_string(path(&format!("{who}.log"))).unwrap();
        assert!(log.contains("failover: connected"), "{log}");
        let state = std::fs::read_to_string(path(&format!("{who}-leases/failover.state"))).unwrap();
        assert!(state.starts_with("2 "), "NORMAL on disk: {state}");
    }
    // The secondary asked for its share of the pool and the primary gave it half.
    wait_until(10, "pool balanced", || {
        says(
            &path("primary.log"),
            "failover: pool balanced for the secondary",
        )
    });
}
