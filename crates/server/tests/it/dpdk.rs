//! `backend = "dpdk"` end to end (built with `--features dpdk`): the server's EAL drives a
//! `net_af_packet` port on one end of a veth pair, and udhcpc on the other end gets a lease, the
//! port's counters and link in `/metrics`; a port that does not exist stops the server with one
//! line naming it.

use std::process::Stdio;

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, find_tool};

use crate::{metric, scrape, start, stop, udhcpc_once};

fn config(port: &str) -> String {
    format!(
        r#"
[dataplane]
backend = "dpdk"

[dpdk]
eal-args = ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-m", "256", "-l", "0",
            "--log-level=lib.eal:error", "--vdev=net_af_packet0,iface=srv0",
            "--file-prefix=peregrine-dpdk-it-{pid}"]
mbufs = 2047
ring = 256

[[interface]]
name = "srv0"
address = "10.86.0.1"
dpdk-port = "{port}"

[[scope]]
name = "lan"
subnet = "10.86.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.86.0.100 - 10.86.0.199"
"#,
        pid = std::process::id()
    )
}

#[test]
fn udhcpc_gets_a_lease_from_a_server_on_a_dpdk_port() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(cli)) = (Netns::new("dpdk_server"), Netns::new("dpdk_client")) else {
        return;
    };
    srv.ip(&format!(
        "link add srv0 type veth peer name c0 netns {}",
        cli.name()
    ));
    srv.ip("link set srv0 up");
    cli.ip("link set c0 up");
    let dir = TempDir::new("peregrine-dpdk");

    // A port the EAL does not have: the server stops, saying which.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, config("net_af_packet7")).unwrap();
    let out = srv
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(&bad)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        said.contains("interface srv0: DPDK port net_af_packet7")
            && said.contains("rte_eth_dev_get_port_by_name(net_af_packet7)"),
        "{said}"
    );

    // A control plane that cannot listen stops the server before any worker polls the port:
    // nothing polls a port the server has closed on its way out.
    let no_control = dir.path().join("no-control.toml");
    let text = config("net_af_packet0") + "\n[control]\nlisten = \"192.0.2.1:9167\"\n";
    std::fs::write(&no_control, text).unwrap();
    let out = srv
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(&no_control)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("192.0.2.1:9167"), "{said}");
    assert!(
        !said.contains("not ready port"),
        "a worker polled a closed port:\n{said}"
    );

    let good = dir.path().join("dpdk.toml");
    std::fs::write(&good, config("net_af_packet0")).unwrap();
    let mut server = start(&srv, &good);
    let said = udhcpc_once(&cli, &udhcpc, "c0", 10, &[]);
    assert!(said.contains("lease of 10.86.0.1"), "{said}");
    assert!(said.contains("obtained from 10.86.0.1"), "{said}");
    let metrics = scrape(&srv, "127.0.0.1:9167");
    assert_eq!(
        metric(&metrics, "peregrine_dhcp_messages_sent_total{type=\"ack\"}"),
        1
    );
    // The port's own view: its link, and at least the DISCOVER and REQUEST in, OFFER and ACK out.
    let port = "{interface=\"srv0\",port=\"net_af_packet0\"}";
    assert_eq!(
        metric(&metrics, &format!("peregrine_port_link_up{port}")),
        1
    );
    assert!(metric(&metrics, &format!("peregrine_port_rx_packets_total{port}")) >= 2);
    assert!(metric(&metrics, &format!("peregrine_port_tx_packets_total{port}")) >= 2);
    assert!(stop(&mut server).success());
}
