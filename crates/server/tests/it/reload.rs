//! Reloading the configuration of a running server: a bad file and one that changes what
//! only a restart can are refused and the server serves on; a good one (SIGHUP, or the admin
//! API) puts a new scope in force at once and keeps the leases already granted.

use std::net::Ipv4Addr;

use peregrine_io::afpacket::{self, AfPacketConfig};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::TempDir;
use peregrine_wire::dhcp::MessageType;
use peregrine_wire::ethernet::{VlanTag, VlanTags, ethertype};

use crate::scope_state::call;
use crate::{CONFIG, ask, discover, message, metric, scrape, start, stop};

/// [`CONFIG`] with a scope on VLAN 100 of srv0.
const WITH_VOICE: &str = r#"
[[scope]]
name = "voice"
subnet = "10.79.0.0/24"
interfaces = ["srv0"]
vlans = [100]

[[scope.pool]]
range = "10.79.0.100 - 10.79.0.199"
"#;

#[test]
fn a_reload_puts_a_new_scope_in_force_and_keeps_the_leases() {
    let Some(ns) = Netns::new("reload") else {
        return;
    };
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.77.0.1/24 dev srv0");
    let dir = TempDir::new("peregrine-reload");
    let config = dir.path().join("reload.toml");
    let leases = format!("\n[leases]\ndirectory = {:?}\n", dir.path().join("leases"));
    let write = |text: &str| std::fs::write(&config, format!("{text}{leases}")).unwrap();
    write(CONFIG);
    let (mut rx, mut tx) = ns
        .enter(|| afpacket::open("cli0", &AfPacketConfig::default()))
        .unwrap();
    let server_id = Ipv4Addr::new(10, 77, 0, 1);
    let a = [2, 0, 0, 0x79, 1, 1];
    let mut server = start(&ns, &config);
    let offered = ask(
        &mut tx,
        &mut rx,
        &discover(a, 1, VlanTags::NONE),
        MessageType::Offer,
    );
    let request = message(
        a,
        2,
        VlanTags::NONE,
        MessageType::Request,
        Some((offered, server_id)),
    );
    assert_eq!(ask(&mut tx, &mut rx, &request, MessageType::Ack), offered);

    // A file that does not validate: its errors, with line numbers; the old one serves on.
    write(&CONFIG.replace("10.77.0.199", "10.99.0.199"));
    let (status, body) = call(&ns, "POST", "/v1/config/reload");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("reload.toml:"), "{body}");
    // One that changes what only a restart can: refused, naming it.
    write(&CONFIG.replace("address = \"10.77.0.1\"", "address = \"10.77.0.2\""));
    let (status, body) = call(&ns, "POST", "/v1/config/reload");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("[[interface]]"), "{body}");
    let b = [2, 0, 0, 0x79, 1, 2];
    ask(
        &mut tx,
        &mut rx,
        &discover(b, 3, VlanTags::NONE),
        MessageType::Offer,
    );

    // A new scope, by SIGHUP: it serves as soon as the scopes list it.
    write(&format!("{CONFIG}{WITH_VOICE}"));
    let pid = server.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(hup.unwrap().success());
    let listed = std::time::Instant::now();
    while !call(&ns, "GET", "/v1/scopes").1.contains("voice") {
        assert!(listed.elapsed().as_secs() < 10, "SIGHUP did not reload");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let voice = VlanTags::single(VlanTag::new(ethertype::VLAN, 100, 0));
    let phone = [2, 0, 0, 0x79, 1, 3];
    let got = ask(
        &mut tx,
        &mut rx,
        &discover(phone, 4, voice),
        MessageType::Offer,
    );
    assert_eq!(got.octets()[..3], [10, 79, 0], "{got}");
    // The lease granted before is still its client's.
    let again = ask(
        &mut tx,
        &mut rx,
        &discover(a, 5, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_eq!(again, offered);

    // The same through the API: what it carried.
    let (status, body) = call(&ns, "POST", "/v1/config/reload");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""scopes":2"#) && body.contains(r#""added":[]"#),
        "{body}"
    );
    // Each outcome counted, however asked for.
    assert_reloads_counted(&ns, [2, 1, 1, 0]);
    assert!(stop(&mut server).success());

    // A restart reads the same file: the scope is there, the lease too.
    let mut server = start(&ns, &config);
    let again = ask(
        &mut tx,
        &mut rx,
        &discover(a, 6, VlanTags::NONE),
        MessageType::Offer,
    );
    assert_eq!(again, offered);
    assert!(call(&ns, "GET", "/v1/scopes").1.contains("voice"));
    assert!(stop(&mut server).success());
}

/// The reloads `/metrics` counts in `ns`: `ok`, `invalid`, `needs_restart`, `busy`; and that one was put
/// in force.
fn assert_reloads_counted(ns: &Netns, want: [u64; 4]) {
    let metrics = scrape(ns, "127.0.0.1:9167");
    let reloads = ["ok", "invalid", "needs_restart", "busy"].map(|outcome| {
        metric(
            &metrics,
            &format!("peregrine_config_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    });
    assert_eq!(reloads, want);
    assert!(
        metric(
            &metrics,
            "peregrine_config_last_reload_success_timestamp_seconds"
        ) > 0
    );
}
