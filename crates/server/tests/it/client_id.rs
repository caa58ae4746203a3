//! RFC 6842 with a real client: the client identifier udhcpc sends comes back, unaltered, in
//! the OFFER and the ACK it receives (watched on the client's own interface).

use std::fmt::Write as _;
use std::time::Duration;

use peregrine_io::RxQueue;
use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{TempDir, find_tool};
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::frame::{Demuxed, demux};

use crate::{start, stop, udhcpc_once};

const CONFIG: &str = r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.83.0.1"

[[scope]]
name = "lan"
subnet = "10.83.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.83.0.100 - 10.83.0.199"
"#;

/// udhcpc's client identifier, as it sends it: `-x 0x3d:` with a type byte of 0 and a name.
const CLIENT_ID: &[u8] = b"\x00cpe-rfc6842";

#[test]
fn udhcpc_hears_its_client_identifier_in_the_offer_and_the_ack() {
    let Some(udhcpc) = find_tool("udhcpc") else {
        return;
    };
    let (Some(srv), Some(cli)) = (Netns::new("cid_server"), Netns::new("cid_client")) else {
        return;
    };
    srv.ip(&format!(
        "link add srv0 type veth peer name c0 netns {}",
        cli.name()
    ));
    srv.ip("addr add 10.83.0.1/24 dev srv0");
    srv.ip("link set srv0 up");
    cli.ip("link set c0 up");
    let dir = TempDir::new("peregrine-client-id");
    let config = dir.path().join("peregrine.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut server = start(&srv, &config);
    // Watch what reaches the client, from before it asks.
    let (mut rx, _tx) = cli
        .enter(|| afpacket::open("c0", &AfPacketConfig::default()))
        .unwrap();
    let hex = CLIENT_ID.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let id = format!("0x3d:{hex}");
    let said = udhcpc_once(&cli, &udhcpc, "c0", 8, &["-x", &id]);
    assert!(said.contains("obtained from 10.83.0.1"), "{said}");

    let mut echoed = Vec::new();
    for _ in 0..10 {
        rx.rx_burst(64, &mut |f| {
            if let Ok(Demuxed::Udp {
                dst_port: 68,
                payload,
                ..
            }) = demux(f.data)
                && let Ok(m) = DhcpMessage::parse(payload)
                && let Some(kind @ (MessageType::Offer | MessageType::Ack)) = m.message_type()
            {
                let id = m.client_id().map(|v| v.bytes().collect::<Vec<u8>>());
                echoed.push((kind, id));
            }
        })
        .unwrap();
        rx.wait(Duration::from_millis(20)).unwrap();
    }
    assert!(stop(&mut server).success());
    for kind in [MessageType::Offer, MessageType::Ack] {
        let replies: Vec<_> = echoed.iter().filter(|(k, _)| *k == kind).collect();
        assert!(!replies.is_empty(), "no {kind:?} seen: {echoed:?}");
        for (_, id) in replies {
            assert_eq!(
                id.as_deref(),
                Some(CLIENT_ID),
                "{kind:?} without the client's identifier"
            );
        }
    }
}
