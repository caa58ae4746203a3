//! The migration scenario end to end (issue 6): ISC dhcpd leases addresses to real `dhclient`
//! clients, dhcpd is stopped, its lease file is imported with `peregrine leases import`, and
//! Peregrine starts on a NEW server address; each client, started again with its lease file,
//! asks for its old address (INIT-REBOOT, broadcast: the old server identifier no longer
//! answers) and gets it from Peregrine.
//!
//! Needs root (namespaces) and the Debian packages isc-dhcp-server and isc-dhcp-client.
//! Without a tool the test says so and passes, except in CI (`CI` set), where it fails.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

const CLIENTS: usize = 3;
/// How long a stopped process may take to exit after SIGTERM before it is killed.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// Waits up to `secs` for `f` to return something.
pub(crate) fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `command` with its standard error in `log`; returns once the log shows `ready` (the
/// program serves).
pub(crate) fn spawn_logged(command: &mut Command, log: &Path, ready: &str) -> Running {
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let running = Running::new(child);
    wait_until(10, &format!("{} in {}", ready, log.display()), || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(ready)
            .then_some(())
    });
    running
}

/// What the dhclient script recorded last in `text` for client `i`: (reason, address, server id).
pub(crate) fn bound(text: &str, i: usize) -> Option<(String, Ipv4Addr, Ipv4Addr)> {
    text.lines().rev().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() == 4
            && w[1] == format!("c{i}")
            && matches!(w[0], "BOUND" | "REBOOT" | "RENEW" | "REBIND"))
        .then(|| (w[0].to_string(), w[2].parse().ok(), w[3].parse().ok()))
        .and_then(|(r, a, s)| Some((r, a?, s?)))
    })
}

/// Runs dhclient on `c{i}` until it is bound (then stops it), returning what it bound to.
pub(crate) fn lease(
    clients: &Netns,
    dhclient: &Path,
    dir: &Path,
    i: usize,
    since: usize,
) -> (String, Ipv4Addr, Ipv4Addr) {
    let events = dir.join("events");
    let child = clients
        .command("timeout")
        .arg("60")
        .arg(dhclient)
        .args(["-4", "-1", "-d", "-v", "-cf"])
        .arg(dir.join("dhclient.conf"))
        .arg("-lf")
        .arg(dir.join(format!("c{i}.leases")))
        .arg("-pf")
        .arg(dir.join(format!("c{i}.pid")))
        .arg("-sf")
        .arg(dir.join("script"))
        .arg(format!("c{i}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("c{i}-{since}.log"))).unwrap())
        .spawn()
        .unwrap();
    let mut p = Running::new(child);
    let got = wait_until(45, &format!("dhclient on c{i} bound"), || {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let fresh: Vec<&str> = text.lines().skip(since).collect();
        bound(&fresh.join("\n"), i)
    });
    p.terminate(GRACE);
    got
}

pub(crate) fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn clients_of_dhcpd_get_their_old_addresses_from_peregrine_on_a_new_server_address() {
    let test = "migration_from_dhcpd";
    let Some([dhcpd, dhclient]) = require_tools(
        test,
        ["dhcpd", "dhclient"],
        "isc-dhcp-server, isc-dhcp-client",
    ) else {
        return;
    };
    let Some((server, clients)) = network(test) else {
        return;
    };

    let tmp = TempDir::new("migration");
    let dir = tmp.path().to_path_buf();
    let events = dir.join("events");
    client_files(&dir, &events);

    // 1. ISC dhcpd on 10.79.0.1 leases an address to each client.
    let leases = dir.join("dhcpd.leases");
    std::fs::write(&leases, "").unwrap();
    let mut dhcpd_proc = start_dhcpd(&server, &dhcpd, &dir, &leases);
    let old_server = Ipv4Addr::new(10, 79, 0, 1);
    let mut old = Vec::new();
    for i in 0..CLIENTS {
        let (reason, addr, sid) = lease(&clients, &dhclient, &dir, i, lines(&events));
        eprintln!("dhcpd: c{i} {reason} {addr} from {sid}");
        assert_eq!(sid, old_server);
        old.push(addr);
    }
    let mut distinct = old.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), CLIENTS, "distinct addresses: {old:?}");

    // 2. dhcpd stops; the server moves to a new address.
    dhcpd_proc.terminate(GRACE);
    server.ip("addr del 10.79.0.1/24 dev srv0");
    server.ip("addr add 10.79.0.2/24 dev srv0");

    // 3. The leases are imported.
    let config = import(&dir, &leases);

    // 4. Peregrine on 10.79.0.2: each client, started again with its lease file, gets its old
    // address from the new server.
    let plog = dir.join("peregrine.log");
    let mut peregrine = spawn_logged(
        server
            .command(env!("CARGO_BIN_EXE_peregrine"))
            .args(["run", "--config"])
            .arg(&config),
        &plog,
        "listening",
    );
    let new_server = Ipv4Addr::new(10, 79, 0, 2);
    // A server without the imported leases stays silent on INIT-REBOOT; the client then
    // falls back to DISCOVER, asks for the same address and may well get it (reason BOUND), so
    // the REBOOT is what shows the import. In reverse order, so a plain allocation order
    // cannot match by chance.
    for (i, want) in old.iter().enumerate().rev() {
        let (reason, addr, sid) = lease(&clients, &dhclient, &dir, i, lines(&events));
        eprintln!("peregrine: c{i} {reason} {addr} from {sid}");
        assert_eq!(
            (addr, sid),
            (*want, new_server),
            "c{i} ({reason}): its old address from the new server"
        );
        assert_eq!(
            reason, "REBOOT",
            "c{i}: the INIT-REBOOT request was acknowledged"
        );
    }
    assert!(peregrine.is_running(), "peregrine still running");
    peregrine.terminate(GRACE);
}

/// The server's namespace with a bridge `srv0` (10.79.0.1/24) and one veth port per client;
/// the other ends (`c0`, `c1`, ...) in the clients' namespace, each with a MAC of its own.
fn network(test: &str) -> Option<(Netns, Netns)> {
    let server = Netns::new(test)?;
    let clients = Netns::new(test)?;
    server.ip("link add srv0 type bridge");
    server.ip("link set srv0 up");
    for i in 0..CLIENTS {
        server.ip(&format!("link add p{i} type veth peer name c{i}"));
        server.ip(&format!("link set p{i} master srv0"));
        server.ip(&format!("link set p{i} up"));
        server.ip(&format!("link set c{i} address 02:00:00:79:00:0{i}"));
        server.ip(&format!("link set c{i} netns {}", clients.name()));
        clients.ip(&format!("link set c{i} up"));
    }
    server.ip("addr add 10.79.0.1/24 dev srv0");
    Some((server, clients))
}

/// The dhclient configuration and a script that records what the client bound to in `events`.
pub(crate) fn client_files(dir: &Path, events: &Path) {
    // It configures nothing: the clients' namespace needs no addresses.
    let script = dir.join("script");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$reason $interface $new_ip_address $new_dhcp_server_identifier\" >> {}\nexit 0\n",
            events.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // No client identifier, the system configuration left out; INIT-REBOOT tried for 20 s.
    std::fs::write(dir.join("dhclient.conf"), "timeout 40;\nreboot 20;\n").unwrap();
}

/// ISC dhcpd on `srv0` with the lease file `leases`; returns once it serves.
fn start_dhcpd(ns: &Netns, dhcpd: &Path, dir: &Path, leases: &Path) -> Running {
    std::fs::write(
        dir.join("dhcpd.conf"),
        "default-lease-time 3600;\nmax-lease-time 7200;\nauthoritative;\nping-check false;\n\
         subnet 10.79.0.0 netmask 255.255.255.0 {\n  range 10.79.0.10 10.79.0.250;\n}\n",
    )
    .unwrap();
    let log = dir.join("dhcpd.log");
    spawn_logged(
        ns.command(dhcpd.to_str().unwrap())
            .args(["-4", "-f", "-d", "-cf"])
            .arg(dir.join("dhcpd.conf"))
            .arg("-lf")
            .arg(leases)
            .arg("-pf")
            .arg(dir.join("dhcpd.pid"))
            .arg("srv0"),
        &log,
        "Sending on",
    )
}

/// Writes Peregrine's configuration (10.79.0.2, the same pool) and imports `leases` into its
/// lease directory; returns the configuration's path.
fn import(dir: &Path, leases: &Path) -> PathBuf {
    let config = dir.join("peregrine.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[dataplane]
backend = "af-packet"

[[interface]]
name = "srv0"
address = "10.79.0.2"

[[scope]]
name = "lan"
subnet = "10.79.0.0/24"
interfaces = ["srv0"]

[[scope.pool]]
range = "10.79.0.10 - 10.79.0.250"

[leases]
directory = {:?}
"#,
            dir.join("leases").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["leases", "import", "--config"])
        .arg(&config)
        .args(["--format", "dhcpd"])
        .arg(leases)
        .output()
        .unwrap();
    let said = crate::leases::text(&out);
    assert!(out.status.success(), "import: {}\n{said}", out.status);
    assert!(
        said.contains(&format!("imported {CLIENTS} leases")),
        "{said}"
    );
    assert!(said.contains("skipped 0"), "{said}");
    assert!(said.contains("conflicts 0"), "{said}");

    config
}

/// GET `path` from the admin API (on its default address) in `ns`, as JSON; `None` until it
/// answers.
pub(crate) fn get_json(ns: &Netns, path: &str) -> Option<serde_json::Value> {
    let body = ns.enter(|| {
        ureq::get(&format!("http://127.0.0.1:9167{path}"))
            .call()
            .ok()?
            .into_body()
            .read_to_string()
            .ok()
    })?;
    serde_json::from_str(&body).ok()
}
