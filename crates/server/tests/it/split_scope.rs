//! A split scope moved off two old servers onto Peregrine, as an operator does it (issue 30):
//! two ISC dhcpd servers each serve half of one relayed /24 through dhcrelay; clients lease from
//! them (ISC dhclient sending no client identifier, busybox udhcpc sending 01 + MAC); then the
//! old servers stop serving the scope, Peregrine (the scope configured inactive) takes the
//! first server's `dhcpd.leases` and the second's leases as a Windows `Export-DhcpServer` file
//! (UTF-16 with a byte order mark, client ids as bare MACs, local times without a zone) through
//! its admin API, the scope is activated and the relay pointed at Peregrine. Every client's
//! next broadcast (dhclient's INIT-REBOOT for its address; udhcpc's DISCOVER, which names no
//! address) gets its old address from Peregrine, and no address is held by two clients. The
//! same move onto a Peregrine pair: both files imported into the primary reach the secondary,
//! the relay forwards to both, and every client keeps its address.
//!
//! Needs root (namespaces) and the Debian packages isc-dhcp-server, isc-dhcp-client,
//! isc-dhcp-relay and udhcpc. Without a tool the test says so and passes, except in CI.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use peregrine_migrate::dhcpd;
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

use crate::migration::{
    GRACE, bound, client_files, get_json, lease, lines, spawn_logged, wait_until,
};

const OLD_A: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
const OLD_B: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);
const PEREGRINE: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 3);
/// The second Peregrine server of the pair the scope moves onto.
const PEREGRINE_B: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 4);
const CONTROL: &str = "127.0.0.1:9167";

/// How each client is run: ISC dhclient without a client identifier, or busybox udhcpc, which
/// sends 01 + its MAC.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Dhclient,
    Udhcpc,
}

/// Clients 0 and 1 lease from server A, 2 and 3 from server B.
const CLIENTS: [Client; 4] = [
    Client::Dhclient,
    Client::Udhcpc,
    Client::Dhclient,
    Client::Udhcpc,
];

struct Lab {
    relay: Netns,
    servers: [Netns; 4],
    clients: Netns,
    dir: PathBuf,
    dhclient: PathBuf,
    udhcpc: PathBuf,
    dhcrelay: PathBuf,
}

impl Lab {
    /// `relay` holds two bridges: `lan0` (the clients' segment, 10.80.1.1/24) and `up0` (the
    /// servers' segment, 10.80.0.254/24); each server namespace hangs off `up0`, each client
    /// interface off `lan0`.
    fn new(test: &str, tools: [PathBuf; 4], dir: PathBuf) -> Option<Lab> {
        let [dhclient, udhcpc, dhcrelay, _] = tools;
        let relay = Netns::new(test)?;
        let servers = [
            Netns::new(test)?,
            Netns::new(test)?,
            Netns::new(test)?,
            Netns::new(test)?,
        ];
        let clients = Netns::new(test)?;
        for (bridge, addr) in [("lan0", "10.80.1.1/24"), ("up0", "10.80.0.254/24")] {
            relay.ip(&format!("link add {bridge} type bridge"));
            relay.ip(&format!("link set {bridge} up"));
            relay.ip(&format!("addr add {addr} dev {bridge}"));
        }
        let addrs = [OLD_A, OLD_B, PEREGRINE, PEREGRINE_B];
        for (i, (ns, addr)) in servers.iter().zip(addrs).enumerate() {
            relay.ip(&format!("link add u{i} type veth peer name srv{i}"));
            relay.ip(&format!("link set u{i} master up0"));
            relay.ip(&format!("link set u{i} up"));
            relay.ip(&format!("link set srv{i} netns {}", ns.name()));
            ns.ip(&format!("link set srv{i} up"));
            ns.ip(&format!("addr add {addr}/24 dev srv{i}"));
            ns.ip("route add 10.80.1.0/24 via 10.80.0.254");
        }
        for i in 0..CLIENTS.len() {
            relay.ip(&format!("link add l{i} type veth peer name c{i}"));
            relay.ip(&format!("link set l{i} master lan0"));
            relay.ip(&format!("link set l{i} up"));
            relay.ip(&format!("link set c{i} address 02:00:00:80:00:0{i}"));
            relay.ip(&format!("link set c{i} netns {}", clients.name()));
            clients.ip(&format!("link set c{i} up"));
        }
        Some(Lab {
            relay,
            servers,
            clients,
            dir,
            dhclient,
            udhcpc,
            dhcrelay,
        })
    }

    /// dhcrelay between the clients' segment and the servers', towards `server`.
    fn relay_to(&self, server: Ipv4Addr) -> Running {
        self.relay_to_all(&[server])
    }

    /// dhcrelay between the clients' segment and the servers', towards every one of `servers`.
    fn relay_to_all(&self, servers: &[Ipv4Addr]) -> Running {
        let log = self.dir.join(format!("dhcrelay-{}.log", servers[0]));
        spawn_logged(
            self.relay
                .command(self.dhcrelay.to_str().unwrap())
                .args(["-4", "-d", "-id", "lan0", "-iu", "up0", "-pf"])
                .arg(self.dir.join(format!("dhcrelay-{}.pid", servers[0])))
                .args(servers.iter().map(ToString::to_string)),
            &log,
            "Sending on",
        )
    }

    /// ISC dhcpd in server namespace `i`, serving `range` of the clients' subnet.
    fn dhcpd(&self, dhcpd: &Path, i: usize, range: &str) -> (Running, PathBuf) {
        let conf = self.dir.join(format!("dhcpd{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "default-lease-time 600;\nmax-lease-time 600;\nping-check false;\n\
                 subnet 10.80.0.0 netmask 255.255.255.0 {{}}\n\
                 subnet 10.80.1.0 netmask 255.255.255.0 {{\n  range {range};\n  \
                 option routers 10.80.1.1;\n}}\n"
            ),
        )
        .unwrap();
        let leases = self.dir.join(format!("dhcpd{i}.leases"));
        std::fs::write(&leases, "").unwrap();
        let log = self.dir.join(format!("dhcpd{i}.log"));
        let mut command = self.servers[i].command(dhcpd.to_str().unwrap());
        command
            .args(["-4", "-f", "-d", "-cf"])
            .arg(&conf)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(self.dir.join(format!("dhcpd{i}.pid")))
            .arg(format!("srv{i}"));
        (spawn_logged(&mut command, &log, "Sending on"), leases)
    }

    /// Two old ISC servers, each with half the range, and the clients leasing through the relay:
    /// clients 0-1 from A, 2-3 from B. Returns each client's address, the servers and their
    /// lease files.
    fn old_servers_serve(&self, dhcpd: &Path) -> (Vec<Ipv4Addr>, [Running; 2], [PathBuf; 2]) {
        let events = self.dir.join("events");
        client_files(&self.dir, &events);
        udhcpc_script(&self.dir, &events);
        let (a, a_leases) = self.dhcpd(dhcpd, 0, "10.80.1.10 10.80.1.127");
        let (b, b_leases) = self.dhcpd(dhcpd, 1, "10.80.1.128 10.80.1.250");
        let mut old = Vec::new();
        for (server, clients) in [(OLD_A, 0..2), (OLD_B, 2..4)] {
            let mut relay = self.relay_to(server);
            for i in clients {
                let (reason, addr, sid) = self.lease(i);
                eprintln!("old: c{i} ({:?}) {reason} {addr} from {sid}", CLIENTS[i]);
                assert_eq!(sid, server, "c{i}");
                old.push(addr);
            }
            relay.terminate(GRACE);
        }
        (old, [a, b], [a_leases, b_leases])
    }

    /// Runs client `i` until it is bound; what it bound to. dhclient starts from its lease file
    /// (INIT-REBOOT for its address); udhcpc from nothing (a DISCOVER that asks for no address,
    /// so only the server's binding can give it its old one).
    fn lease(&self, i: usize) -> (String, Ipv4Addr, Ipv4Addr) {
        let events = self.dir.join("events");
        let since = lines(&events);
        match CLIENTS[i] {
            Client::Dhclient => lease(&self.clients, &self.dhclient, &self.dir, i, since),
            Client::Udhcpc => {
                let mut cmd = self.clients.command("timeout");
                cmd.arg("40")
                    .arg(&self.udhcpc)
                    .args(["-f", "-q", "-n", "-t", "6", "-T", "2", "-i"])
                    .arg(format!("c{i}"))
                    .arg("-s")
                    .arg(self.dir.join("udhcpc-script"));
                let out = cmd.output().unwrap();
                let text = std::fs::read_to_string(&events).unwrap_or_default();
                let fresh: Vec<&str> = text.lines().skip(since).collect();
                bound(&fresh.join("\n"), i).unwrap_or_else(|| {
                    panic!(
                        "udhcpc on c{i}: no lease\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
            }
        }
    }
}

#[test]
fn a_split_scope_moves_off_two_old_servers_and_every_client_keeps_its_address() {
    let test = "split_scope";
    let Some(tools) = require_tools(
        test,
        ["dhclient", "udhcpc", "dhcrelay", "dhcpd"],
        "isc-dhcp-client, udhcpc, isc-dhcp-relay, isc-dhcp-server",
    ) else {
        return;
    };
    let dhcpd = tools[3].clone();
    let tmp = TempDir::new("split-scope");
    let dir = tmp.path().to_path_buf();
    let Some(lab) = Lab::new(test, tools, dir.clone()) else {
        return;
    };

    // 1. Two old servers, each with half the range; clients 0-1 lease from A, 2-3 from B.
    let (old, [mut a, mut b], [a_leases, b_leases]) = lab.old_servers_serve(&dhcpd);

    // 2. Peregrine serves the scope, inactive; the old servers stop serving it.
    let config = peregrine_config(&dir);
    let plog = dir.join("peregrine.log");
    let mut peregrine = spawn_logged(
        lab.servers[2]
            .command(env!("CARGO_BIN_EXE_peregrine"))
            .args(["run", "--config"])
            .arg(&config),
        &plog,
        "listening",
    );
    a.terminate(GRACE);
    b.terminate(GRACE);

    // 3. Both lease files into the running server: A's as dhcpd wrote it, B's as a Windows
    // export (UTF-16 LE with a byte order mark; local times, read in the zone named).
    let export = dir.join("b-export.xml");
    std::fs::write(&export, windows_export(&std::fs::read(&b_leases).unwrap())).unwrap();
    import(&lab, "dhcpd", &a_leases, &[]);
    import(&lab, "windows-xml", &export, &["--timezone", "UTC"]);

    // 4. Activate, and point the relay at Peregrine.
    let activated = lab.servers[2].enter(|| {
        ureq::post(&format!("http://{CONTROL}/v1/scopes/lan/activate"))
            .send_empty()
            .map(|r| r.status().as_u16())
    });
    assert_eq!(activated.ok(), Some(200));
    let mut relay = lab.relay_to(PEREGRINE);

    // 5. Every client's next broadcast gets its old address from Peregrine; in reverse order,
    // so that allocation order cannot match by chance.
    let mut now = Vec::new();
    for i in (0..CLIENTS.len()).rev() {
        let (reason, addr, sid) = lab.lease(i);
        eprintln!("new: c{i} ({:?}) {reason} {addr} from {sid}", CLIENTS[i]);
        assert_eq!((addr, sid), (old[i], PEREGRINE), "c{i} ({reason})");
        if CLIENTS[i] == Client::Dhclient {
            assert_eq!(
                reason,
                "REBOOT",
                "c{i}: its INIT-REBOOT was acknowledged\n{}",
                tails(&dir, &format!("c{i}-"))
            );
        }
        now.push(addr);
    }
    now.sort();
    now.dedup();
    assert_eq!(now.len(), CLIENTS.len(), "no address held by two clients");
    assert!(peregrine.is_running(), "peregrine still running");
    relay.terminate(GRACE);
    peregrine.terminate(GRACE);
}

/// The same split scope moved onto a Peregrine pair (issue 15): both lease files imported into
/// the primary reach the secondary; the scope is activated on both and the relay forwards to
/// both; every client's next broadcast gets its old address from whichever server its hash
/// bucket names, and the secondary knows every imported lease.
#[test]
fn a_split_scope_moves_onto_a_peregrine_pair_and_every_client_keeps_its_address() {
    let test = "split_pair";
    let Some(tools) = require_tools(
        test,
        ["dhclient", "udhcpc", "dhcrelay", "dhcpd"],
        "isc-dhcp-client, udhcpc, isc-dhcp-relay, isc-dhcp-server",
    ) else {
        return;
    };
    let dhcpd = tools[3].clone();
    let tmp = TempDir::new("split-pair");
    let dir = tmp.path().to_path_buf();
    let Some(lab) = Lab::new(test, tools, dir.clone()) else {
        return;
    };
    let (old, [mut a, mut b], [a_leases, b_leases]) = lab.old_servers_serve(&dhcpd);
    // The pair, the scope inactive on both, over the servers' segment.
    let failover = |role: &str, peer: Ipv4Addr, local: Ipv4Addr| {
        format!(
            "\n[failover]\nrole = \"{role}\"\nlocal = \"{local}\"\npeer = \"{peer}\"\n\
             relationship = \"split-pair\"\nmclt = 30\n"
        )
    };
    let primary = peregrine_config_as(
        &dir,
        "primary",
        PEREGRINE,
        &failover("primary", PEREGRINE_B, PEREGRINE),
    );
    let secondary = peregrine_config_as(
        &dir,
        "secondary",
        PEREGRINE_B,
        &failover("secondary", PEREGRINE, PEREGRINE_B),
    );
    let mut pair = Vec::new();
    for (k, config) in [(2, &primary), (3, &secondary)] {
        pair.push(spawn_logged(
            lab.servers[k]
                .command(env!("CARGO_BIN_EXE_peregrine"))
                .args(["run", "--config"])
                .arg(config),
            &dir.join(format!("peregrine-{k}.log")),
            "listening",
        ));
    }
    for k in [2, 3] {
        wait_until(30, &format!("server {k} in NORMAL"), || {
            let v = get_json(&lab.servers[k], "/v1/failover")?;
            (v["state"] == "NORMAL" && v["partner_state"] == "NORMAL").then_some(())
        });
    }
    a.terminate(GRACE);
    b.terminate(GRACE);
    // Both files into the primary; the secondary learns them from it.
    let export = dir.join("b-export.xml");
    std::fs::write(&export, windows_export(&std::fs::read(&b_leases).unwrap())).unwrap();
    import(&lab, "dhcpd", &a_leases, &[]);
    import(&lab, "windows-xml", &export, &["--timezone", "UTC"]);
    for (i, addr) in old.iter().enumerate() {
        wait_until(20, &format!("c{i}'s {addr} at the secondary"), || {
            let v = get_json(&lab.servers[3], &format!("/v1/leases/{addr}"))?;
            (v["state"] == "active" && v["mac"] == format!("02:00:00:80:00:0{i}")).then_some(())
        });
    }
    for k in [2, 3] {
        let activated = lab.servers[k].enter(|| {
            ureq::post(&format!("http://{CONTROL}/v1/scopes/lan/activate"))
                .send_empty()
                .map(|r| r.status().as_u16())
        });
        assert_eq!(activated.ok(), Some(200), "server {k}");
    }
    let mut relay = lab.relay_to_all(&[PEREGRINE, PEREGRINE_B]);
    let mut now = Vec::new();
    for i in (0..CLIENTS.len()).rev() {
        let (reason, addr, sid) = lab.lease(i);
        assert_eq!(addr, old[i], "c{i} ({reason} from {sid})");
        assert!(sid == PEREGRINE || sid == PEREGRINE_B, "c{i}: {sid}");
        now.push(addr);
    }
    now.sort();
    now.dedup();
    assert_eq!(now.len(), CLIENTS.len(), "no address held by two clients");
    relay.terminate(GRACE);
    for mut p in pair {
        assert!(p.is_running(), "a Peregrine server stopped");
        p.terminate(GRACE);
    }
}

/// `peregrine leases import --server` of `file` as `format` inside Peregrine's namespace (once
/// its admin API answers); every lease must be imported (exit status 0).
fn import(lab: &Lab, format: &str, file: &Path, extra: &[&str]) {
    let out = wait_until(10, "the admin API answers", || {
        let out = lab.servers[2]
            .command(env!("CARGO_BIN_EXE_peregrine"))
            .args(["leases", "import", "--server", CONTROL, "--format", format])
            .args(extra)
            .arg(file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        (!said.contains("Connection refused")).then_some(out)
    });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{format}: {said}");
    assert!(said.contains("imported 2 leases"), "{format}: {said}");
}

/// A udhcpc script that records a lease in `events` as the dhclient script does.
fn udhcpc_script(dir: &Path, events: &Path) {
    let script = dir.join("udhcpc-script");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"BOUND $interface $ip $serverid\" >> {}\nexit 0\n",
            events.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Peregrine on 10.80.0.3 with the relayed scope configured inactive.
fn peregrine_config(dir: &Path) -> PathBuf {
    peregrine_config_as(dir, "peregrine", PEREGRINE, "")
}

/// Peregrine `name` on `addr` (interface `srv2` or `srv3`) with the relayed scope configured
/// inactive, and `extra` (a `[failover]` table) after the rest.
fn peregrine_config_as(dir: &Path, name: &str, addr: Ipv4Addr, extra: &str) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    let iface = if addr == PEREGRINE { "srv2" } else { "srv3" };
    std::fs::write(
        &config,
        format!(
            r#"
[server]
authoritative = false

[dataplane]
backend = "af-packet"

[[interface]]
name = "{iface}"
address = "{addr}"

[control]
listen = "{CONTROL}"

[[scope]]
name = "lan"
subnet = "10.80.1.0/24"
state = "inactive"

[[scope.pool]]
range = "10.80.1.10 - 10.80.1.250"

[leases]
directory = {:?}
{extra}"#,
            dir.join(format!("{name}-leases")).display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["check-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    config
}

/// The leases of a `dhcpd.leases` file as `Export-DhcpServer` writes them: UTF-16 LE with a
/// byte order mark, `ClientId` the MAC as Windows shows it, `LeaseExpiryTime` local (here UTC)
/// without a zone.
fn windows_export(dhcpd_leases: &[u8]) -> Vec<u8> {
    let parsed = dhcpd::import(dhcpd_leases);
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-16\"?>\r\n<DHCPServer>\r\n  <IPv4>\r\n    \
         <Scopes>\r\n      <Scope>\r\n        <ScopeId>10.80.1.0</ScopeId>\r\n        <Leases>\r\n",
    );
    for r in &parsed.records {
        let l = &r.lease;
        let mac = l.hardware.as_ref().expect("dhcpd records the MAC");
        let id: Vec<String> = mac.bytes.iter().map(|b| format!("{b:02x}")).collect();
        let _ = write!(
            xml,
            "          <Lease>\r\n            <IPAddress>{}</IPAddress>\r\n            \
             <ScopeId>10.80.1.0</ScopeId>\r\n            <ClientId>{}</ClientId>\r\n            \
             <AddressState>Active</AddressState>\r\n            \
             <LeaseExpiryTime>{}</LeaseExpiryTime>\r\n          </Lease>\r\n",
            l.address,
            id.join("-"),
            civil(l.expires.expect("dhcpd records the end"))
        );
    }
    xml.push_str(
        "        </Leases>\r\n      </Scope>\r\n    </Scopes>\r\n  </IPv4>\r\n</DHCPServer>\r\n",
    );
    [0xff, 0xfe]
        .into_iter()
        .chain(xml.encode_utf16().flat_map(u16::to_le_bytes))
        .collect()
}

/// UNIX time as `YYYY-MM-DDTHH:MM:SS` (UTC, no zone), by the civil-from-days algorithm.
fn civil(t: u64) -> String {
    let days = i64::try_from(t / 86_400).unwrap();
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[test]
fn civil_times() {
    assert_eq!(civil(0), "1970-01-01T00:00:00");
    assert_eq!(civil(1_795_082_400), "2026-11-19T10:00:00");
    assert_eq!(civil(951_782_400), "2000-02-29T00:00:00");
}

/// The last lines of the logs in `dir` whose names start with `prefix`, and of Peregrine's and
/// the relays' logs: what a failed check shows of what the client and the servers did.
fn tails(dir: &Path, prefix: &str) -> String {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        p.extension().is_some_and(|e| e == "log")
            && (name.starts_with(prefix)
                || name.starts_with("peregrine")
                || name.starts_with("dhcrelay"))
    });
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            format!("--- {}\n{tail}", p.display())
        })
        .collect::<Vec<_>>()
        .join("\n")
}
