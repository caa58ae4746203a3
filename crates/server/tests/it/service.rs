//! The systemd unit (`packaging/peregrine.service`) as systemd reads it, and the server's
//! `Type=notify` notifications: READY once serving, RELOADING then READY around a SIGHUP
//! reload, STOPPING on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

use crate::{CONFIG, stop};

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let Some([analyze]) = require_tools("unit file", ["systemd-analyze"], "systemd") else {
        return;
    };
    let dir = TempDir::new("peregrine-unit");
    let config = dir.path().join("peregrine.toml");
    std::fs::write(&config, CONFIG).unwrap();
    // The unit as installed, its binary and configuration where this build has them.
    let unit = include_str!("../../../../packaging/peregrine.service")
        .replace("/usr/bin/peregrine", env!("CARGO_BIN_EXE_peregrine"))
        .replace("/etc/peregrine/peregrine.toml", &config.to_string_lossy());
    let path = dir.path().join("peregrine.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    // Anything it says about this unit is a finding (it may talk of other units on the host).
    assert!(!said.contains("peregrine.service"), "{said}");
}

#[test]
fn the_server_tells_systemd_it_serves_reloads_and_stops() {
    let Some(ns) = Netns::new("notify") else {
        return;
    };
    ns.veth("srv0", "cli0");
    let dir = TempDir::new("peregrine-notify");
    let config = dir.path().join("notify.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let child = ns
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running::new(child);
    let next = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().starts_with("READY=1"));
    let pid = server.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(hup.unwrap().success());
    assert!(next().starts_with("RELOADING=1"));
    assert!(next().starts_with("READY=1"));
    assert!(stop(&mut server).success());
    assert!(next().starts_with("STOPPING=1"));
}

/// The capabilities the unit grants (its `AmbientCapabilities=`), as setpriv names them:
/// `+net_raw,+net_admin,...`.
fn unit_capabilities() -> String {
    let unit = include_str!("../../../../packaging/peregrine.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap();
    line.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn the_server_serves_as_an_unprivileged_user_with_the_units_capabilities_only() {
    let Some([setpriv]) = require_tools("unprivileged", ["setpriv"], "util-linux") else {
        return;
    };
    let Some(ns) = Netns::new("caps") else {
        return;
    };
    let dir = TempDir::new("peregrine-caps");
    let (config, leases) = crate::journaled_lab(&ns, dir.path(), "caps.toml", "");
    std::fs::create_dir(&leases).unwrap();
    // nobody's, as the unit's StateDirectory= is the peregrine user's.
    let chown = std::process::Command::new("chown")
        .arg("nobody")
        .arg(&leases)
        .status();
    assert!(chown.unwrap().success());
    let caps = unit_capabilities();
    assert_eq!(caps, "+net_raw,+net_admin,+net_bind_service");
    let child = ns
        .command(&setpriv.to_string_lossy())
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(format!("--inh-caps=-all,{caps}"))
        .arg(format!("--ambient-caps=-all,{caps}"))
        .arg(format!("--bounding-set=-all,{caps}"))
        .args([
            "--no-new-privs",
            "--",
            env!("CARGO_BIN_EXE_peregrine"),
            "run",
            "--config",
        ])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Running::new(child);
    let (mut rx, mut tx) = ns
        .enter(|| {
            peregrine_io::afpacket::open("cli0", &peregrine_io::afpacket::AfPacketConfig::default())
        })
        .unwrap();
    let mac = [2, 0, 0, 0x7c, 0, 1];
    let offered = crate::ask(
        &mut tx,
        &mut rx,
        &crate::discover(mac, 1, peregrine_wire::ethernet::VlanTags::NONE),
        peregrine_wire::dhcp::MessageType::Offer,
    );
    let request = crate::message(
        mac,
        2,
        peregrine_wire::ethernet::VlanTags::NONE,
        peregrine_wire::dhcp::MessageType::Request,
        Some((offered, std::net::Ipv4Addr::new(10, 77, 0, 1))),
    );
    let acked = crate::ask(
        &mut tx,
        &mut rx,
        &request,
        peregrine_wire::dhcp::MessageType::Ack,
    );
    assert_eq!(acked, offered);
    // The serving process: nobody, with exactly the three capabilities in effect.
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(field("Uid:"), "65534", "{status}");
    // CAP_NET_BIND_SERVICE 10, CAP_NET_ADMIN 12, CAP_NET_RAW 13.
    let effective = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    assert_eq!(effective, (1 << 10) | (1 << 12) | (1 << 13), "{status}");
    // The journal it wrote is its own.
    let owner = std::process::Command::new("stat")
        .args(["-c", "%U"])
        .arg(leases.join("journal"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), "nobody");
    assert!(stop(&mut server).success());
}

#[test]
fn under_systemd_the_server_logs_to_journald_with_fields() {
    let Some([unshare]) = require_tools("journald logging", ["unshare"], "util-linux") else {
        return;
    };
    let Some(ns) = Netns::new("journald") else {
        return;
    };
    ns.veth("srv0", "cli0");
    ns.ip("addr add 10.77.0.1/24 dev srv0");
    let dir = TempDir::new("peregrine-journald");
    let config = dir.path().join("journald.toml");
    std::fs::write(&config, CONFIG).unwrap();
    // journald's socket is at a fixed path: the server runs in a mount namespace of its own in
    // which /run/systemd/journal is this directory, where the test listens.
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let socket = UnixDatagram::bind(journal.join("socket")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Its stderr is a file that JOURNAL_STREAM names, as systemd names the stream it connects.
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let stream = {
        use std::os::unix::fs::MetadataExt;
        let m = stderr.metadata().unwrap();
        format!("{}:{}", m.dev(), m.ino())
    };
    let child = ns
        .command(&unshare.to_string_lossy())
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "mkdir -p /run/systemd/journal && mount --bind \"$0\" /run/systemd/journal && \
             exec \"$@\"",
        )
        .arg(&journal)
        .args([env!("CARGO_BIN_EXE_peregrine"), "run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", stream)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut server = Running::new(child);
    // The interface it listens on: an entry of its own, the field a journal field.
    let entry = loop {
        let mut buf = vec![0u8; 65536];
        let n = socket.recv(&mut buf).expect("a journal entry within 10 s");
        let entry = journal_fields(&buf[..n]);
        if entry.get("MESSAGE").map(String::as_str) == Some("listening") {
            break entry;
        }
    };
    for (field, value) in [
        ("PRIORITY", "5"),
        ("SYSLOG_IDENTIFIER", "peregrine"),
        ("PEREGRINE_INTERFACE", "srv0"),
        ("PEREGRINE_ADDRESS", "10.77.0.1"),
    ] {
        assert_eq!(
            entry.get(field).map(String::as_str),
            Some(value),
            "{entry:?}"
        );
    }
    assert!(
        entry.values().all(|v| !v.contains('\u{1b}')),
        "escape codes in {entry:?}"
    );
    assert!(stop(&mut server).success());
    // Everything went to the journal, nothing to the stream.
    assert_eq!(std::fs::read_to_string(&stderr_path).unwrap(), "");
}

/// The fields of one entry in journald's native protocol: `NAME=value` lines, or `NAME`, a
/// newline, the value's length (64-bit little-endian), the value and a newline.
fn journal_fields(mut bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut fields = std::collections::BTreeMap::new();
    while let Some(end) = bytes.iter().position(|b| *b == b'=' || *b == b'\n') {
        let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let value;
        if bytes[end] == b'=' {
            let rest = &bytes[end + 1..];
            let stop = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            value = &rest[..stop];
            bytes = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &bytes[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            value = &rest[8..8 + len];
            bytes = rest.get(8 + len + 1..).unwrap_or_default();
        }
        fields.insert(name, String::from_utf8_lossy(value).into_owned());
    }
    fields
}
