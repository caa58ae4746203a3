//! `peregrine leases import --server`: a Kea lease file into a running server through its
//! admin API. The imported client is offered its address at once, and again after a
//! `kill -9` and restart: the import was durable when the command returned.

use std::net::Ipv4Addr;

use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::VlanTags;

use crate::{ask, discover, journaled_lab, start, stop};

use peregrine_migrate::kea_csv::HEADER;

#[test]
fn a_lease_imported_into_the_running_server_is_served_and_survives_kill_9() {
    let Some(ns) = Netns::new("server_live_import") else {
        return;
    };
    let dir = TempDir::new("peregrine-live-import");
    let (config, _) = journaled_lab(&ns, dir.path(), "live.toml", "");
    let imported = Ipv4Addr::new(10, 77, 0, 150);
    let mac = [2, 0, 0, 0x77, 9, 1];
    let file = dir.path().join("kea-leases4.csv");
    std::fs::write(
        &file,
        format!(
            "{HEADER}\n{imported},02:00:00:77:09:01,,3600,4000000000,1,0,0,,0,\n\
             10.99.0.1,02:00:00:77:09:02,,3600,4000000000,1,0,0,,0,\n"
        ),
    )
    .unwrap();
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();

    let mut server = start(&ns, &config);
    // Serving (and so listening) before the import.
    let other = ask(
        &mut tx,
        &mut rx,
        &discover([2, 0, 0, 0x77, 9, 9], 1, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_ne!(other, imported);
    let out = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args([
            "leases",
            "import",
            "--server",
            "127.0.0.1:9167",
            "--format",
            "kea-csv",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "one line skipped: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("imported 1 leases into the server at 127.0.0.1:9167"),
        "{text}"
    );
    assert!(
        text.contains("line 3: 10.99.0.1: in no configured pool"),
        "{text}"
    );
    let offered = ask(
        &mut tx,
        &mut rx,
        &discover(mac, 2, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_eq!(
        offered, imported,
        "the imported client is offered its address"
    );

    let mut child = server.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut server = start(&ns, &config);
    let again = ask(
        &mut tx,
        &mut rx,
        &discover(mac, 3, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_eq!(
        again, imported,
        "the import was durable before the command returned"
    );
    assert!(stop(&mut server).success());
}
