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
