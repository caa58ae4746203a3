//! Lease files written by the real servers: Kea 2.2 (`kea-dhcp4`) and ISC dhcpd 4.4 serve
//! about 50 perfdhcp DORA exchanges in a network namespace of their own; the file each wrote
//! is imported, and every address and MAC must match what a plain reading of that file
//! finds, and map to a binding of a Peregrine engine configured with the same pool.
//!
//! Needs root (namespaces) and the Debian packages kea-dhcp4-server, isc-dhcp-server and
//! kea-admin (perfdhcp), which scripts/test.sh installs. Without a tool the test says so and
//! passes, except in CI (`CI` set), where it fails.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use peregrine_config::model::Config;
use peregrine_engine::{Engine, EngineOptions};
use peregrine_migrate::bindings::{lease_of, restore};
use peregrine_migrate::{HwAddr, Import, LeaseState, dhcpd, kea_csv};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

/// The tools, or `None` after saying which is missing (a failure in CI).
fn tools<const N: usize>(test: &str, names: [&str; N]) -> Option<[PathBuf; N]> {
    require_tools(test, names, "kea-dhcp4-server, isc-dhcp-server, kea-admin")
}

/// SIGTERM, then up to 10 s for the server to write its lease file and exit.
fn stop(server: &mut Running) {
    assert!(
        server.terminate(Duration::from_secs(10)).is_some(),
        "server did not stop within 10 s of SIGTERM"
    );
}

/// Waits up to 10 s for `path` to contain `needle` (a server's "started" log line).
fn wait_for(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} has no {needle:?} within 10 s:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's namespace (`srv0`, 10.NET.0.1/24) and the clients' (`cli0`, 10.NET.0.2/24),
/// joined by a veth pair: perfdhcp and the server both use port 67, so they need two.
fn namespaces(test: &str, net: u8) -> Option<(Netns, Netns)> {
    let server = Netns::new(test)?;
    let clients = Netns::new(test)?;
    server.veth("srv0", "cli0");
    server.ip(&format!("link set cli0 netns {}", clients.name()));
    server.ip(&format!("addr add 10.{net}.0.1/24 dev srv0"));
    clients.ip("link set cli0 up");
    clients.ip(&format!("addr add 10.{net}.0.2/24 dev cli0"));
    Some((server, clients))
}

/// About 50 DORA exchanges from 50 simulated clients on `cli0`, bounded by time.
fn perfdhcp(ns: &Netns, perfdhcp: &Path, dir: &Path) {
    let out = ns
        .command("timeout")
        .arg("60")
        .arg(perfdhcp)
        .args([
            "-4", "-l", "cli0", "-r", "50", "-R", "50", "-n", "60", "-p", "20", "-W", "1",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    // perfdhcp exits 3 when some exchanges drew no answer; only a failure to run matters.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "perfdhcp: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Peregrine configuration with the servers' pool.
fn peregrine_config(net: u8) -> Config {
    let text = format!(
        "[[scope]]\nname = \"lan\"\nsubnet = \"10.{net}.0.0/24\"\n\n[[scope.pool]]\n\
         range = \"10.{net}.0.10 - 10.{net}.0.250\"\n"
    );
    peregrine_config::parse(&text, "peregrine.toml").unwrap()
}

/// The import must hold exactly `expected` (address → MAC), all active, and map to
/// bindings of a Peregrine engine with the same pool.
fn check(import: &Import, expected: &BTreeMap<Ipv4Addr, [u8; 6]>, net: u8) -> Engine {
    assert!(import.skipped.is_empty(), "{:#?}", import.skipped);
    assert!(
        expected.len() >= 10,
        "only {} leases in the server's file",
        expected.len()
    );
    let got: BTreeMap<Ipv4Addr, [u8; 6]> = import
        .records
        .iter()
        .map(|r| {
            assert_eq!(r.lease.state, LeaseState::Active, "line {}", r.line);
            let HwAddr { htype: 1, bytes } = r.lease.hardware.clone().unwrap() else {
                panic!("line {}: not Ethernet", r.line)
            };
            (r.lease.address, bytes.try_into().unwrap())
        })
        .collect();
    assert_eq!(&got, expected);
    let config = peregrine_config(net);
    let engine = Engine::new(&config, EngineOptions::default()).unwrap();
    let r = restore(&engine, &config, &import.records, || {});
    assert_eq!(r.accepted.len(), expected.len(), "{:#?}", r.skipped);
    for r in &import.records {
        let mac = expected[&r.lease.address];
        let (_, b) = engine.binding(r.lease.address).unwrap();
        assert_eq!(b.mac, mac);
        // What the client sends again (perfdhcp sends a client identifier) keys it again.
        let id = r.lease.client_id.as_deref();
        assert_eq!(b.client, Some(engine.client_key_for(1, &mac, id)));
    }
    eprintln!("{} leases imported and mapped to bindings", expected.len());
    engine
}

fn mac(text: &str) -> [u8; 6] {
    let v: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// Starts Kea on `srv0` with the lease file `leases`, a control socket `dir/kea.sock` (with
/// the lease commands hook) and the log `dir/NAME.log`; returns once it has started.
fn start_kea(ns: &Netns, kea: &Path, dir: &Path, leases: &Path, name: &str) -> Running {
    let log = dir.join(format!("{name}.log"));
    let config = format!(
        r#"{{"Dhcp4": {{
  "interfaces-config": {{"interfaces": ["srv0"], "dhcp-socket-type": "raw"}},
  "lease-database": {{"type": "memfile", "persist": true, "name": "{}", "lfc-interval": 0}},
  "control-socket": {{"socket-type": "unix", "socket-name": "{}"}},
  "hooks-libraries": [{{"library": "{}"}}],
  "valid-lifetime": 3600,
  "subnet4": [{{"id": 1, "subnet": "10.78.0.0/24", "pools": [{{"pool": "10.78.0.10 - 10.78.0.250"}}]}}],
  "loggers": [{{"name": "kea-dhcp4", "output_options": [{{"output": "{}"}}], "severity": "INFO"}}]
}}}}"#,
        leases.display(),
        dir.join("kea.sock").display(),
        lease_cmds_hook().display(),
        log.display()
    );
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, config).unwrap();
    let child = ns
        .command(kea.to_str().unwrap())
        .arg("-c")
        .arg(&file)
        .env("KEA_PIDFILE_DIR", dir)
        .env("KEA_LOCKFILE_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Running::new(child);
    wait_for(&log, "DHCP4_STARTED");
    server
}

/// Kea's lease commands hook (package kea-common), which Kea 2.2 loads by full path only.
fn lease_cmds_hook() -> PathBuf {
    let name = "kea/hooks/libdhcp_lease_cmds.so";
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join(name))
        .chain([Path::new("/usr/lib").join(name)])
        .find(|p| p.is_file())
        .expect("libdhcp_lease_cmds.so (Debian package kea-common, with kea-dhcp4-server)")
}

/// Sends one command to Kea's control socket and returns its JSON answer.
fn kea_command(socket: &Path, command: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(command.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    // Kea answers with one JSON document; read until it parses (or the peer closes).
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if serde_json::from_slice::<serde_json::Value>(&reply).is_ok() {
                    break;
                }
            }
            Err(e) => panic!("reading Kea's answer: {e}"),
        }
    }
    serde_json::from_slice(&reply).unwrap()
}

#[test]
fn a_kea_2_2_memfile_imports_and_kea_loads_the_export() {
    let Some([kea, perf]) = tools("kea import", ["kea-dhcp4", "perfdhcp"]) else {
        return;
    };
    let Some((ns, clients)) = namespaces("kea_import", 78) else {
        return;
    };
    let tmp = TempDir::new("migrate-kea");
    let dir = tmp.path();
    let leases = dir.join("kea-leases4.csv");
    let mut server = start_kea(&ns, &kea, dir, &leases, "kea");
    perfdhcp(&clients, &perf, dir);
    stop(&mut server);

    let text = std::fs::read_to_string(&leases).unwrap();
    // A plain reading: the last row of an address, unless it deletes it.
    let mut expected = BTreeMap::new();
    for row in text.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        let addr: Ipv4Addr = f[0].parse().unwrap();
        if f[3] == "0" {
            expected.remove(&addr);
        } else {
            expected.insert(addr, mac(f[1]));
        }
    }
    let import = kea_csv::import(&text);
    let engine = check(&import, &expected, 78);
    for r in &import.records {
        let row = text
            .lines()
            .rfind(|l| l.starts_with(&format!("{},", r.lease.address)))
            .unwrap();
        let id = row.split(',').nth(2).unwrap();
        let ours = r.lease.client_id.as_deref().map(|b| {
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        });
        assert_eq!(ours.as_deref().unwrap_or(""), id);
    }

    // And back: Kea 2.2 loads what Peregrine exports, and reports the same leases.
    let mut leases_out = Vec::new();
    engine.for_each_binding(|scope, addr, b| leases_out.extend(lease_of(scope, addr, b)));
    let exported = dir.join("exported-leases4.csv");
    let mut file = std::fs::File::create(&exported).unwrap();
    assert!(kea_csv::write(&mut file, &leases_out).unwrap().is_empty());
    drop(file);
    let mut server = start_kea(&ns, &kea, dir, &exported, "kea-again");
    let reply = kea_command(&dir.join("kea.sock"), r#"{"command": "lease4-get-all"}"#);
    stop(&mut server);
    let log = std::fs::read_to_string(dir.join("kea-again.log")).unwrap();
    assert!(
        !log.contains("ROW_ERROR"),
        "Kea refused rows of the export:\n{log}"
    );
    let loaded: BTreeMap<Ipv4Addr, [u8; 6]> = reply["arguments"]["leases"]
        .as_array()
        .unwrap_or_else(|| panic!("lease4-get-all: {reply}"))
        .iter()
        .map(|l| {
            (
                l["ip-address"].as_str().unwrap().parse().unwrap(),
                mac(l["hw-address"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(loaded, expected, "what Kea loaded from the export");
}

#[test]
fn an_isc_dhcpd_4_4_lease_file_imports() {
    let Some([dhcpd_bin, perf]) = tools("dhcpd import", ["dhcpd", "perfdhcp"]) else {
        return;
    };
    let Some((ns, clients)) = namespaces("dhcpd_import", 79) else {
        return;
    };
    let tmp = TempDir::new("migrate-dhcpd");
    let dir = tmp.path();
    let leases = dir.join("dhcpd.leases");
    let log = dir.join("dhcpd.log");
    std::fs::write(&leases, "").unwrap();
    std::fs::write(
        dir.join("dhcpd.conf"),
        "default-lease-time 3600;\nmax-lease-time 7200;\nauthoritative;\nping-check false;\n\
         subnet 10.79.0.0 netmask 255.255.255.0 {\n  range 10.79.0.10 10.79.0.250;\n}\n",
    )
    .unwrap();
    let child = ns
        .command(dhcpd_bin.to_str().unwrap())
        .arg("-4")
        .arg("-f")
        .arg("-d")
        .arg("-cf")
        .arg(dir.join("dhcpd.conf"))
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(dir.join("dhcpd.pid"))
        .arg("srv0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Running::new(child);
    wait_for(&log, "Sending on");
    perfdhcp(&clients, &perf, dir);
    stop(&mut server);

    let bytes = std::fs::read(&leases).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    // A plain reading: the hardware line of each lease block; the last block wins.
    let mut expected = BTreeMap::new();
    let mut current: Option<Ipv4Addr> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("lease ") {
            current = Some(rest.trim_end_matches(" {").parse().unwrap());
        } else if let (Some(a), Some(hw)) = (current, line.strip_prefix("hardware ethernet ")) {
            expected.insert(a, mac(hw.trim_end_matches(';')));
        } else if line == "}" {
            current = None;
        }
    }
    check(&dhcpd::import(&bytes), &expected, 79);
}
