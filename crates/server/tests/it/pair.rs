//! Two `peregrine run` processes as a failover pair (issue 28), each in its own network
//! namespace, joined by a veth pair that carries both the failover link and DHCP.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use peregrine_failover::hash::{BitOrder, HashBucketAssignment, bucket};
use peregrine_testkit::netns::Netns;
use peregrine_testkit::process::{Running, TempDir, require_tools};

use super::migration::{client_files, get_json, lease, lines, spawn_logged, wait_until};

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

/// `primary.toml` and `secondary.toml` in `dir` (lease directories beside them), each passed
/// through `edit`.
fn write_pair(dir: &Path, edit: impl Fn(String) -> String) {
    let path = |name: &str| dir.join(name);
    let primary = config(
        true,
        "fo0",
        "10.79.9.1",
        "10.79.9.2",
        &path("primary-leases"),
    );
    let secondary = config(
        false,
        "fo1",
        "10.79.9.2",
        "10.79.9.1",
        &path("secondary-leases"),
    );
    std::fs::write(path("primary.toml"), edit(primary)).unwrap();
    std::fs::write(path("secondary.toml"), edit(secondary)).unwrap();
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

fn start(ns: &Netns, config: &Path, log: &Path) -> Running {
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

/// `/v1/failover` on the server in `ns`, and the HTTP status.
fn failover(ns: &Netns, post: bool) -> (u16, serde_json::Value) {
    let (status, body) = ns.enter(|| {
        let url = if post {
            "http://127.0.0.1:9167/v1/failover/partner-down"
        } else {
            "http://127.0.0.1:9167/v1/failover"
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut r = if post {
            agent.post(url).send_empty().unwrap()
        } else {
            agent.get(url).call().unwrap()
        };
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    });
    (status, serde_json::from_str(&body).unwrap())
}

/// Both servers report `states` (ours, the partner's) through `/v1/failover`.
fn wait_states(servers: [(&Netns, &str); 2], states: [(&str, &str); 2]) {
    for ((ns, who), (ours, theirs)) in servers.into_iter().zip(states) {
        wait_until(
            30,
            &format!("the {who} in {ours}, its partner in {theirs}"),
            || {
                let (_, v) = failover(ns, false);
                (v["state"] == ours && v["partner_state"] == theirs).then_some(())
            },
        );
    }
}

/// A new pair of [`write_pair`]'s configurations in `dir`, started (the secondary first) and
/// waited for until both are in NORMAL: [primary, secondary].
fn normal_pair(a: &Netns, b: &Netns, dir: &Path) -> [Running; 2] {
    let path = |name: &str| dir.join(name);
    write_pair(dir, |c| c);
    let secondary = start(b, &path("secondary.toml"), &path("secondary.log"));
    let primary = start(a, &path("primary.toml"), &path("primary.log"));
    let pair = [(a, "primary"), (b, "secondary")];
    wait_states(pair, [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")]);
    [primary, secondary]
}

#[test]
fn two_servers_connect_reach_normal_and_survive_one_stopping() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair");
    let path = |name: &str| dir.path().join(name);
    let [_primary, mut secondary] = normal_pair(&a, &b, dir.path());
    let pair = [(&a, "primary"), (&b, "secondary")];
    // Both came through recovery from nothing, as a new pair does, and keep the state on disk.
    for who in ["primary", "secondary"] {
        let state = std::fs::read_to_string(path(&format!("{who}-leases/failover.state"))).unwrap();
        assert!(state.starts_with("2 "), "NORMAL on disk: {state}");
    }
    // The secondary asked for its share of the pool: half of it is BACKUP, at both.
    for (ns, who) in pair {
        wait_until(10, &format!("half the pool BACKUP at the {who}"), || {
            let (_, v) = failover(ns, false);
            (v["pools"][0]["backup"] == 50).then_some(())
        });
    }
    let (_, v) = failover(&a, false);
    assert_eq!(v["role"], "primary");
    assert_eq!(v["connected"], true);
    assert!(v["updates_sent"].as_u64().unwrap() >= 50, "{v}");
    let metrics = a.enter(|| {
        ureq::get("http://127.0.0.1:9167/metrics")
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    });
    assert!(
        metrics.contains("peregrine_failover_state{server=\"local\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("peregrine_failover_replication_lag_seconds{quantile=\"0.99\"}"),
        "{metrics}"
    );
    // The same for scripts: `peregrine failover status`.
    let out = a
        .command(env!("CARGO_BIN_EXE_peregrine"))
        .args(["failover", "status", "--server", "127.0.0.1:9167"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("state: NORMAL\n"), "{text}");
    assert!(text.contains("partner_state: NORMAL\n"), "{text}");
    assert!(text.contains("pool lan/0: free 50 backup 50"), "{text}");
    // PARTNER-DOWN is refused while the partner is in contact.
    let (status, v) = failover(&a, true);
    assert_eq!(status, 409, "{v}");
    // The secondary stops: the primary serves on in COMMUNICATIONS-INTERRUPTED; the operator
    // then declares the partner down.
    secondary.terminate(std::time::Duration::from_secs(10));
    wait_until(30, "the primary in COMMUNICATIONS-INTERRUPTED", || {
        let (_, v) = failover(&a, false);
        (v["state"] == "COMMUNICATIONS-INTERRUPTED").then_some(())
    });
    let (status, v) = failover(&a, true);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "PARTNER-DOWN");
    // The secondary comes back with its lease directory and the pair catches up to NORMAL.
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary-2.log"));
    wait_states(pair, [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")]);
}

/// A switch (a bridge in its own namespace) with the primary (`fo0`, 10.79.9.1), the secondary
/// (`fo1`, 10.79.9.2) and `CLIENTS` client ports (`c0`, ... in the clients' namespace): the
/// failover link and every client's broadcast cross it, as on a relay-less access network.
fn switched(macs: &[[u8; 6]]) -> Option<[Netns; 4]> {
    let sw = Netns::new("pair")?;
    let a = Netns::new("pair")?;
    let b = Netns::new("pair")?;
    let clients = Netns::new("pair")?;
    sw.ip("link add br0 type bridge");
    sw.ip("link set br0 up");
    for (ns, name, addr) in [(&a, "fo0", "10.79.9.1/24"), (&b, "fo1", "10.79.9.2/24")] {
        sw.ip(&format!("link add p-{name} type veth peer name {name}"));
        sw.ip(&format!("link set p-{name} master br0"));
        sw.ip(&format!("link set p-{name} up"));
        sw.ip(&format!("link set {name} netns {}", ns.name()));
        ns.ip(&format!("addr add {addr} dev {name}"));
        ns.ip(&format!("link set {name} up"));
    }
    for (i, mac) in macs.iter().enumerate() {
        sw.ip(&format!("link add p{i} type veth peer name c{i}"));
        sw.ip(&format!("link set p{i} master br0"));
        sw.ip(&format!("link set p{i} up"));
        sw.ip(&format!("link set c{i} address {}", mac_text(*mac)));
        sw.ip(&format!("link set c{i} netns {}", clients.name()));
        clients.ip(&format!("link set c{i} up"));
    }
    Some([sw, a, b, clients])
}

/// Clients on the switch.
const CLIENTS: usize = 4;

/// Client MACs, two whose hash bucket (RFC 3074, on chaddr: dhclient sends no client
/// identifier) the primary answers in NORMAL, then two the secondary does, with `split = 128`.
fn client_macs() -> Vec<[u8; 6]> {
    let buckets = HashBucketAssignment::split(128);
    let mut primary = Vec::new();
    let mut secondary = Vec::new();
    for n in 0u8..=255 {
        let mac = [2, 0, 0, 0x79, 9, n];
        let side = if buckets.primary_answers(bucket(&mac), BitOrder::Draft) {
            &mut primary
        } else {
            &mut secondary
        };
        if side.len() < CLIENTS / 2 {
            side.push(mac);
        }
    }
    primary.into_iter().chain(secondary).collect()
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// `/v1/leases/IP` on the server in `ns`.
fn lease_view(ns: &Netns, addr: Ipv4Addr) -> Option<serde_json::Value> {
    get_json(ns, &format!("/v1/leases/{addr}"))
}

/// The binding `/v1/leases/IP` shows on the server in `ns`: (state, mac).
fn binding(ns: &Netns, addr: Ipv4Addr) -> Option<(String, String)> {
    let v = lease_view(ns, addr)?;
    Some((
        v["state"].as_str()?.to_owned(),
        v["mac"].as_str()?.to_owned(),
    ))
}

/// What the server in `ns` shows the client of `addr` said of itself: (host name, vendor
/// class).
fn said(ns: &Netns, addr: Ipv4Addr) -> Option<(String, String)> {
    let v = lease_view(ns, addr)?;
    Some((
        v["hostname"].as_str()?.to_owned(),
        v["vendor_class"].as_str()?.to_owned(),
    ))
}

/// What every dhclient of the pair tests says of itself.
const SAID: (&str, &str) = ("pair-client", "peregrine-test-cpe");

/// Makes the dhclients of `dir` (see `client_files`) send [`SAID`].
fn name_clients(dir: &Path) {
    let conf = dir.join("dhclient.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        format!(
            "{text}send host-name \"{}\";\nsend vendor-class-identifier \"{}\";\n",
            SAID.0, SAID.1
        ),
    )
    .unwrap();
}

#[test]
fn clients_lease_from_the_pair_and_each_server_knows_every_lease() {
    let test = "pair_replication";
    let Some([dhclient]) = require_tools(test, ["dhclient"], "isc-dhcp-client") else {
        return;
    };
    let macs = client_macs();
    let Some([_sw, a, b, clients]) = switched(&macs) else {
        return;
    };
    let tmp = TempDir::new("peregrine-pair-clients");
    let dir = tmp.path();
    let path = |name: &str| dir.join(name);
    // A short MCLT: the recovery below waits it.
    write_pair(dir, |c| c.replace("mclt = 60", "mclt = 15"));
    let mut secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let _primary = start(&a, &path("primary.toml"), &path("primary.log"));
    for who in ["primary", "secondary"] {
        let log = path(&format!("{who}.log"));
        wait_until(30, &format!("NORMAL in {}", log.display()), || {
            says(&log, "failover: state NORMAL")
        });
    }
    let events = path("events");
    client_files(dir, &events);
    // Each client names itself and its vendor class: both servers must show them.
    name_clients(dir);
    let said_by_client = Some((SAID.0.to_owned(), SAID.1.to_owned()));
    let mut servers = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        let (_, addr, server) = lease(&clients, &dhclient, dir, i, lines(&events));
        servers.push(server);
        // The lease is on both servers: the one that granted it told the other.
        let mac = mac_text(*mac);
        for (ns, who) in [(&a, "primary"), (&b, "secondary")] {
            let seen = wait_until(10, &format!("c{i}'s {addr} at the {who}"), || {
                binding(ns, addr).filter(|(state, m)| state == "active" && *m == mac)
            });
            assert_eq!(seen.1, mac);
            assert_eq!(said(ns, addr), said_by_client, "c{i}'s {addr} at the {who}");
        }
    }
    // Every lease was replicated and acknowledged: the replication lag is measured.
    let measured: u64 = [&a, &b]
        .iter()
        .map(|ns| {
            failover(ns, false).1["replication_lag"]["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(measured >= CLIENTS as u64, "{measured}");
    // Each client was answered by the server its hash bucket names (NORMAL's load balancing).
    let primary = Ipv4Addr::new(10, 79, 9, 1);
    let secondary_ip = Ipv4Addr::new(10, 79, 9, 2);
    assert_eq!(servers, [primary, primary, secondary_ip, secondary_ip]);
    let leased: Vec<Ipv4Addr> = (0..CLIENTS)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("c{i}.leases"))).unwrap();
            text.lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("fixed-address "))
                .and_then(|a| a.trim_end_matches(';').parse().ok())
                .unwrap()
        })
        .collect();
    // Each client asks again (INIT-REBOOT): its first lease ran only the MCLT past nothing
    // acknowledged; now that the partner has acknowledged the binding it gets the whole lease.
    for (i, addr) in leased.iter().enumerate() {
        let (_, again, _) = lease(&clients, &dhclient, dir, i, lines(&events));
        assert_eq!(again, *addr, "c{i} confirmed");
    }
    // The secondary dies (SIGKILL) and loses its disk; it comes back empty, learns every
    // binding from the primary (RECOVER, UPDREQALL), waits the MCLT, and the pair is NORMAL.
    let mut child = secondary.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(path("secondary-leases")).unwrap();
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary-2.log"));
    wait_until(60, "the secondary back in NORMAL", || {
        says(&path("secondary-2.log"), "failover: state NORMAL")
    });
    assert!(says(&path("secondary-2.log"), "failover: state RECOVER-WAIT").is_some());
    for (i, (addr, mac)) in leased.iter().zip(&macs).enumerate() {
        assert_eq!(
            binding(&b, *addr),
            Some(("active".to_owned(), mac_text(*mac))),
            "c{i}'s {addr} recovered by the secondary"
        );
        assert_eq!(said(&b, *addr), said_by_client, "c{i}'s {addr} recovered");
    }
    // Every client rebooting asks for its address again (INIT-REBOOT): the pair confirms it.
    for (i, addr) in leased.iter().enumerate() {
        let (_, again, _) = lease(&clients, &dhclient, dir, i, lines(&events));
        assert_eq!(again, *addr, "c{i} kept its address");
    }
}

/// Sends `bytes` to the failover port of 10.79.9.2 from a socket in `ns`; whether the server
/// closed the connection within 40 s (its receive timer is 30 s).
fn closes(ns: &Netns, bytes: &[u8]) -> bool {
    use std::io::{Read, Write};
    ns.enter(|| {
        let mut s = std::net::TcpStream::connect("10.79.9.2:647").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(40)))
            .unwrap();
        let _ = s.write_all(bytes);
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                // A refusal (CONNECTACK with a reject reason) may come first.
                Ok(_) => {}
            }
        }
    })
}

/// A CONNECT as a primary named `relationship` sends it.
fn connect(relationship: &[u8]) -> Vec<u8> {
    use peregrine_failover::message::{Connect, Header, Message};
    let hba = [0xffu8; 32];
    let mut buf = vec![0u8; 2048];
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let len = Message::Connect(Connect {
        relationship_name: relationship,
        max_unacked_bndupd: 10,
        receive_timer: 30,
        vendor_class: None,
        protocol_version: 1,
        tls_request: Some(0),
        mclt: 60,
        hash_bucket_assignment: Some(&hba),
    })
    .encode(Header { time, xid: 1 }, &mut buf)
    .unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn bad_input_on_the_link_is_refused_and_the_server_serves_on() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-bad");
    let path = |name: &str| dir.path().join(name);
    write_pair(dir.path(), |c| c);
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    // From the configured peer's address: garbage, an unknown type, a truncated CONNECT, a
    // message longer than any, and a CONNECT for another relationship.
    let mut truncated = connect(b"test-pair");
    truncated.truncate(20);
    truncated[..2].copy_from_slice(&20u16.to_be_bytes());
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "garbage",
            vec![0x00, 0x05, 0x01, 0x99, 0x42, 2, 3, 4, 5, 6, 7, 8],
        ),
        ("unknown type", {
            let mut m = connect(b"test-pair");
            m[2] = 77;
            m
        }),
        ("truncated", truncated),
        ("oversized", vec![0xff, 0xff, 5, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("another relationship", connect(b"someone-else")),
    ];
    for (what, bytes) in &cases {
        assert!(closes(&a, bytes), "{what}: not closed");
    }
    // From an address that is not the peer's (the secondary's own, from inside its namespace).
    assert!(closes(&b, &connect(b"test-pair")), "unconfigured address");
    let (_, v) = failover(&b, false);
    assert!(
        v["connections_refused"].as_u64().unwrap() >= 6,
        "every refusal counted: {v}"
    );
    // Each by its reason.
    let reasons = &v["connections_refused_by_reason"];
    for reason in ["malformed", "oversized_message", "unconfigured_address"] {
        assert!(reasons[reason].as_u64().unwrap_or(0) >= 1, "{reason}: {v}");
    }
    let metrics = b.enter(|| {
        ureq::get("http://127.0.0.1:9167/metrics")
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    });
    assert!(
        metrics.contains(
            "peregrine_failover_connections_refused_total{reason=\"unconfigured_address\"} 1"
        ),
        "{metrics}"
    );
    // Nothing was installed, the secondary still answers, and the real primary pairs with it.
    assert_eq!(v["updates_accepted"], 0, "{v}");
    let _primary = start(&a, &path("primary.toml"), &path("primary.log"));
    wait_states(
        [(&a, "primary"), (&b, "secondary")],
        [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")],
    );
}

#[test]
fn with_a_shared_secret_only_a_partner_that_knows_it_pairs() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-secret");
    let path = |name: &str| dir.path().join(name);
    let secret = "secret = \"a-long-shared-secret-for-the-lab\"\n";
    let primary = config(
        true,
        "fo0",
        "10.79.9.1",
        "10.79.9.2",
        &path("primary-leases"),
    );
    std::fs::write(path("primary.toml"), format!("{primary}{secret}")).unwrap();
    std::fs::write(path("primary-plain.toml"), &primary).unwrap();
    std::fs::write(
        path("secondary.toml"),
        format!(
            "{}{secret}",
            config(
                false,
                "fo1",
                "10.79.9.2",
                "10.79.9.1",
                &path("secondary-leases")
            )
        ),
    )
    .unwrap();
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let mut with_secret = start(&a, &path("primary.toml"), &path("primary.log"));
    let pair = [(&a, "primary"), (&b, "secondary")];
    wait_states(pair, [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")]);
    // The primary comes back without the secret: its messages carry no MAC, and the
    // secondary refuses them, and it, every time it connects.
    with_secret.terminate(std::time::Duration::from_secs(10));
    let _plain = start(&a, &path("primary-plain.toml"), &path("primary-plain.log"));
    wait_until(20, "the unauthenticated primary refused twice", || {
        let (_, v) = failover(&b, false);
        (v["connections_refused"].as_u64().unwrap() >= 2).then_some(())
    });
    assert!(says(&path("secondary.log"), "unauthenticated").is_some());
    let (_, v) = failover(&b, false);
    assert!(
        v["connections_refused_by_reason"]["unauthenticated"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{v}"
    );
    assert_ne!(v["state"], "NORMAL", "{v}");
}

/// nft rules that drop the failover port both ways (`delete table inet partition` heals).
const PARTITION: &str = "table inet partition {\n chain input {\n type filter hook input \
                         priority 0;\n tcp dport 647 drop\n tcp sport 647 drop\n }\n}\n";

/// Loads `rules` with `nft` in `ns`.
fn nft_in(ns: &Netns, nft: &Path, rules: &str) {
    let out = fed(ns, nft, &["-f", "-"], rules);
    assert!(out.status.success(), "nft {rules}");
}

/// Runs `tool` with `args` in `ns`, `input` on its standard input; its output.
fn fed(ns: &Netns, tool: &Path, args: &[&str], input: &str) -> std::process::Output {
    ns.command(tool.to_str().unwrap())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(input.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap()
}

/// A Peregrine primary (in `a`) and an ISC dhcpd secondary (in `b`) on the switched segment of
/// the `client_macs` clients, with quick timers (MCLT 10 s, receive timer 5 s), once the first
/// pool balancing is in ISC's lease file. The servers stop before the files and namespaces go.
struct IscPair {
    isc: Running,
    ours: Running,
    tmp: TempDir,
    a: Netns,
    b: Netns,
    clients: Netns,
    _sw: Netns,
}

impl IscPair {
    fn start(dhcpd: &Path, name: &str) -> Option<IscPair> {
        let [sw, a, b, clients] = switched(&client_macs())?;
        let tmp = TempDir::new(name);
        let [isc, ours] = start_with_isc(dhcpd, [&a, &b], tmp.path(), true, true);
        let leases = tmp.path().join("dhcpd.leases");
        // ISC writes each update to its lease file before acknowledging it: the pool
        // balancing's fifty first.
        wait_until(60, "ISC's lease file: half the pool BACKUP", || {
            (isc_count(&leases, "backup") == 50).then_some(())
        });
        Some(IscPair {
            isc,
            ours,
            tmp,
            a,
            b,
            clients,
            _sw: sw,
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.tmp.path().join(name)
    }

    /// Waits up to `secs` until Peregrine is in `state` and, if given, its partner in `partner`.
    fn peregrine_in(&self, secs: u64, state: &str, partner: Option<&str>) {
        wait_until(secs, &format!("Peregrine in {state}"), || {
            let (_, v) = failover(&self.a, false);
            let theirs = partner.is_none_or(|p| v["partner_state"] == p);
            (v["state"] == state && theirs).then_some(())
        });
    }
}

/// Stops `p` with SIGKILL, as a crash does.
fn kill(p: &mut Running) {
    let mut child = p.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_partition_interrupts_both_and_healing_restores_normal() {
    let test = "pair_partition";
    let Some([nft]) = require_tools(test, ["nft"], "nftables") else {
        return;
    };
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-partition");
    let path = |name: &str| dir.path().join(name);
    // A short receive timer, so that a silent link is noticed in seconds.
    let quick = |c: String| format!("{c}max-response-delay = 3\n");
    write_pair(dir.path(), quick);
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let _primary = start(&a, &path("primary.toml"), &path("primary.log"));
    let pair = [(&a, "primary"), (&b, "secondary")];
    let normal = [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")];
    wait_states(pair, normal);
    let interrupted = |ns: &Netns, who: &str| {
        wait_until(
            30,
            &format!("the {who} in COMMUNICATIONS-INTERRUPTED"),
            || {
                let (_, v) = failover(ns, false);
                (v["state"] == "COMMUNICATIONS-INTERRUPTED").then_some(())
            },
        );
    };
    // The failover port filtered (nft drops it at the secondary): both stop hearing each
    // other, go to COMMUNICATIONS-INTERRUPTED, and come back to NORMAL once it passes again.
    nft_in(&b, &nft, PARTITION);
    interrupted(&a, "primary");
    interrupted(&b, "secondary");
    nft_in(&b, &nft, "delete table inet partition\n");
    wait_states(pair, normal);
    // The link itself down, then up again.
    a.ip("link set fo0 down");
    interrupted(&a, "primary");
    interrupted(&b, "secondary");
    a.ip("link set fo0 up");
    wait_states(pair, normal);
}

#[test]
fn partners_whose_pools_differ_say_so_and_count_it() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-pools");
    let path = |name: &str| dir.path().join(name);
    write_pair(dir.path(), |c| c);
    // The secondary knows only half of the primary's pool.
    let secondary = std::fs::read_to_string(path("secondary.toml")).unwrap();
    std::fs::write(
        path("secondary.toml"),
        secondary.replace("10.79.9.100 - 10.79.9.199", "10.79.9.100 - 10.79.9.149"),
    )
    .unwrap();
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let _primary = start(&a, &path("primary.toml"), &path("primary.log"));
    // Pool balancing offers the secondary addresses it has no pool for: refused, each counted
    // by its reason on both sides, and said once in each log.
    wait_until(
        30,
        "the secondary refuses addresses outside its pools",
        || {
            let (_, v) = failover(&b, false);
            v["rejected_by_reason"]["illegal_ip_address"]
                .as_u64()
                .is_some_and(|n| n > 0)
                .then_some(())
        },
    );
    wait_until(10, "the primary hears the refusals", || {
        let (_, v) = failover(&a, false);
        v["refused_by_partner"]["illegal_ip_address"]
            .as_u64()
            .is_some_and(|n| n > 0)
            .then_some(())
    });
    assert!(says(&path("secondary.log"), "in none of this server's pools").is_some());
    assert!(says(&path("primary.log"), "in none of the partner's pools").is_some());
}

#[test]
fn a_server_killed_under_load_catches_up_and_no_address_has_two_clients() {
    let test = "pair_kill_under_load";
    let Some([perfdhcp]) = require_tools(test, ["perfdhcp"], "kea-admin") else {
        return;
    };
    let Some([_sw, a, b, clients]) = switched(&[[2, 0, 0, 0x79, 8, 1]]) else {
        return;
    };
    // perfdhcp relays (giaddr) from an address of its own on the switch.
    clients.ip("addr add 10.79.9.50/24 dev c0");
    let tmp = TempDir::new("peregrine-pair-kill");
    let path = |name: &str| tmp.path().join(name);
    write_pair(tmp.path(), |c| c.replace("mclt = 60", "mclt = 15"));
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary.log"));
    let mut primary = start(&a, &path("primary.toml"), &path("primary.log"));
    let pair = [(&a, "primary"), (&b, "secondary")];
    wait_states(pair, [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")]);
    // Sixty clients (perfdhcp walks its MACs and starts over) broadcast DORA on the switch for
    // 16 s, both servers answering their halves; 5 s in, the primary dies (SIGKILL) and comes
    // back with its leases.
    let load = clients
        .command(perfdhcp.to_str().unwrap())
        .args(["-4", "-l", "c0", "-r", "30", "-R", "60", "-p", "16"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let mut child = primary.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let _primary = start(&a, &path("primary.toml"), &path("primary-2.log"));
    let out = load.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    // Both answered before, and the pair after (the restarted primary from NORMAL again).
    wait_states(pair, [("NORMAL", "NORMAL"), ("NORMAL", "NORMAL")]);
    let acks = report
        .lines()
        .skip_while(|l| !l.contains("Statistics for: REQUEST-ACK"))
        .find_map(|l| l.trim().strip_prefix("received packets: "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        acks >= 100,
        "perfdhcp: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No address is held by two clients: whatever both servers hold active, they hold for the
    // same client, and every lease either granted is known to the other.
    let mut active = 0;
    for last in 100u8..=199 {
        let addr = Ipv4Addr::new(10, 79, 9, last);
        let held = |ns| binding(ns, addr).filter(|(state, _)| state == "active");
        let (at_a, at_b) = (held(&a), held(&b));
        if let (Some((_, ma)), Some((_, mb))) = (&at_a, &at_b) {
            assert_eq!(ma, mb, "{addr} held for two clients");
        }
        assert_eq!(
            at_a.is_some(),
            at_b.is_some(),
            "{addr}: {at_a:?} at the primary, {at_b:?} at the secondary"
        );
        active += usize::from(at_a.is_some());
    }
    assert!(active >= 30, "{active} leases");
}

/// ISC dhcpd's side of the relationship in `conf`: `primary` (with the MCLT and split only
/// the primary gives) or secondary, at 10.79.9.2, its partner at 10.79.9.1.
fn isc_config(primary: bool, quick: bool) -> String {
    let (mclt, delay) = if quick { (10, 5) } else { (60, 30) };
    let role = if primary {
        format!("primary;\n  mclt {mclt};\n  split 128;")
    } else {
        "secondary;".to_owned()
    };
    format!(
        "authoritative;\nddns-update-style none;\nping-check false;\nomapi-port 7911;\n\
         default-lease-time 300;\nmax-lease-time 600;\n\
         failover peer \"test-pair\" {{\n  {role}\n  address 10.79.9.2;\n  port 647;\n  \
         peer address 10.79.9.1;\n  peer port 647;\n  max-response-delay {delay};\n  \
         max-unacked-updates 10;\n  load balance max seconds 3;\n}}\n\
         subnet 10.79.9.0 netmask 255.255.255.0 {{\n  pool {{\n    failover peer \"test-pair\";\n    \
         range 10.79.9.100 10.79.9.199;\n  }}\n}}\n"
    )
}

fn isc_count(leases: &Path, state: &str) -> usize {
    let text = std::fs::read_to_string(leases).unwrap_or_default();
    let mut last = std::collections::BTreeMap::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("lease ") {
            current = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(s) = line.strip_prefix("binding state ")
            && let Some(addr) = &current
        {
            last.insert(addr.clone(), s.trim_end_matches(';').to_owned());
        }
    }
    last.values().filter(|s| *s == state).count()
}

/// Peregrine in `ns[0]` (10.79.9.1) and ISC dhcpd in `ns[1]` (10.79.9.2) as a new pair,
/// Peregrine the primary if `peregrine_primary`; their files in `dir`. Returns once Peregrine
/// sees both in NORMAL.
fn start_with_isc(
    dhcpd: &Path,
    [a, b]: [&Netns; 2],
    dir: &Path,
    peregrine_primary: bool,
    quick: bool,
) -> [Running; 2] {
    let path = |name: &str| dir.join(name);
    let mut ours = config(
        peregrine_primary,
        "fo0",
        "10.79.9.1",
        "10.79.9.2",
        &path("leases"),
    );
    if quick {
        // A short MCLT (a recovery waits it) and receive timer (a partition shows in seconds).
        ours = ours.replace("mclt = 60", "mclt = 10") + "max-response-delay = 5\n";
    }
    std::fs::write(path("peregrine.toml"), ours).unwrap();
    std::fs::write(path("dhcpd.conf"), isc_config(!peregrine_primary, quick)).unwrap();
    std::fs::write(path("dhcpd.leases"), "").unwrap();
    let isc = spawn_isc(dhcpd, b, dir, "dhcpd.log");
    let ours = start(a, &path("peregrine.toml"), &path("peregrine.log"));
    // The handshake, from two new servers, to NORMAL on both sides.
    wait_until(30, "Peregrine and ISC in NORMAL", || {
        let (_, v) = failover(a, false);
        (v["state"] == "NORMAL" && v["partner_state"] == "NORMAL").then_some(())
    });
    [isc, ours]
}

/// ISC dhcpd in `ns` with `dir`'s `dhcpd.conf` and `dhcpd.leases`, logging to `log`.
fn spawn_isc(dhcpd: &Path, ns: &Netns, dir: &Path, log: &str) -> Running {
    let path = |name: &str| dir.join(name);
    let mut isc = ns.command(dhcpd.to_str().unwrap());
    isc.args(["-4", "-f", "-d", "-cf"])
        .arg(path("dhcpd.conf"))
        .arg("-lf")
        .arg(path("dhcpd.leases"))
        .arg("-pf")
        .arg(path("dhcpd.pid"))
        .arg("fo1");
    spawn_logged(&mut isc, &path(log), "Sending on")
}

#[test]
fn peregrine_and_isc_dhcpd_pair_in_either_role() {
    let test = "isc_pair";
    let Some([dhcpd]) = require_tools(test, ["dhcpd"], "isc-dhcp-server") else {
        return;
    };
    for peregrine_primary in [true, false] {
        let Some((a, b)) = namespaces() else {
            return;
        };
        let tmp = TempDir::new("peregrine-isc-pair");
        let path = |name: &str| tmp.path().join(name);
        let _servers = start_with_isc(&dhcpd, [&a, &b], tmp.path(), peregrine_primary, false);
        let role = if peregrine_primary {
            "primary"
        } else {
            "secondary"
        };
        wait_until(10, "ISC: both servers normal", || {
            says(&path("dhcpd.log"), "Both servers normal")
        });
        // The primary balances the pool, whichever of the two it is: half of it is the
        // secondary's (BACKUP) on both sides.
        wait_until(30, &format!("a balanced pool (Peregrine {role})"), || {
            let (_, v) = failover(&a, false);
            let pool = &v["pools"][0];
            (pool["free"] == 50 && pool["backup"] == 50).then_some(())
        });
        // ISC writes each update to its lease file as it acknowledges it.
        wait_until(40, "ISC's lease file: half the pool BACKUP", || {
            (isc_count(&path("dhcpd.leases"), "backup") == 50).then_some(())
        });
        let (_, v) = failover(&a, false);
        assert_eq!(v["updates_rejected"], 0, "{v}");
        assert_eq!(v["refused_by_partner"], serde_json::json!({}), "{v}");
    }
}

/// The address ISC's lease file last shows active for `mac` (`02:00:...` text), if any.
fn isc_active(leases: &Path, addr: Ipv4Addr, mac: &str) -> Option<()> {
    let text = std::fs::read_to_string(leases).unwrap_or_default();
    let block = text
        .split("lease ")
        .filter(|b| b.starts_with(&format!("{addr} ")))
        .last()?;
    (block.contains("binding state active;")
        && block.contains(&format!("hardware ethernet {mac};")))
    .then_some(())
}

#[test]
fn clients_of_a_peregrine_and_isc_pair_are_known_to_both() {
    let test = "isc_pair_clients";
    let Some([dhcpd, dhclient]) = require_tools(
        test,
        ["dhcpd", "dhclient"],
        "isc-dhcp-server, isc-dhcp-client",
    ) else {
        return;
    };
    let macs = client_macs();
    for peregrine_primary in [true, false] {
        let Some([_sw, a, b, clients]) = switched(&macs) else {
            return;
        };
        let tmp = TempDir::new("peregrine-isc-clients");
        let dir = tmp.path();
        let path = |name: &str| dir.join(name);
        let _servers = start_with_isc(&dhcpd, [&a, &b], dir, peregrine_primary, false);
        wait_until(30, "a balanced pool", || {
            let (_, v) = failover(&a, false);
            (v["pools"][0]["backup"] == 50).then_some(())
        });
        let events = path("events");
        client_files(dir, &events);
        // Our updates then carry client-request-options, which ISC takes and ignores.
        name_clients(dir);
        let mut answered = Vec::new();
        for (i, mac) in macs.iter().enumerate() {
            let (_, addr, server) = lease(&clients, &dhclient, dir, i, lines(&events));
            answered.push(server);
            // Whichever granted it, the other knows it.
            let mac = mac_text(*mac);
            wait_until(10, &format!("c{i}'s {addr} at Peregrine"), || {
                binding(&a, addr).filter(|(state, m)| state == "active" && *m == mac)
            });
            // ISC writes updates in the order they come: the lease may wait behind the pool
            // balancing's fifty.
            let leases = path("dhcpd.leases");
            for _ in 0..400 {
                if isc_active(&leases, addr, &mac).is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert!(
                isc_active(&leases, addr, &mac).is_some(),
                "c{i}'s {addr} ({mac}) not active in ISC's lease file: {}\n{}\n{}",
                failover(&a, false).1,
                std::fs::read_to_string(&leases).unwrap_or_default(),
                std::fs::read_to_string(path("dhcpd.log")).unwrap_or_default()
            );
        }
        // Each server answered the clients its hash buckets name: two each (ISC answers a
        // client load-balanced to us only if we stay silent past its `secs` limit).
        let ours_ip = Ipv4Addr::new(10, 79, 9, 1);
        let isc_ip = Ipv4Addr::new(10, 79, 9, 2);
        let (first, second) = if peregrine_primary {
            (ours_ip, isc_ip)
        } else {
            (isc_ip, ours_ip)
        };
        assert_eq!(
            answered,
            [first, first, second, second],
            "Peregrine primary: {peregrine_primary}"
        );
        let (_, v) = failover(&a, false);
        assert_eq!(v["updates_rejected"], 0, "{v}");
        assert_eq!(v["refused_by_partner"], serde_json::json!({}), "{v}");
    }
}

/// Client `i` (see `switched`) asks for `addr` again (INIT-REBOOT) until Peregrine in `ns`
/// shows its lease running past the next 150 s: a first lease runs only the MCLT past what the
/// partner acknowledged (and so does one the other server answers for a client whose own
/// server is slow); once the partner has acknowledged it, the next grant is the whole lease.
fn renew_for_long(
    clients: &Netns,
    dhclient: &Path,
    dir: &Path,
    ns: &Netns,
    (i, addr): (usize, Ipv4Addr),
) {
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let mut expires = 0;
    for _ in 0..4 {
        let (_, again, _) = lease(clients, dhclient, dir, i, lines(&dir.join("events")));
        assert_eq!(again, addr, "c{i} confirmed");
        expires = lease_view(ns, addr)
            .and_then(|v| v["expires"].as_u64())
            .unwrap_or(0);
        if expires > unix_now() + 150 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    panic!("c{i}'s {addr} runs only until {expires}");
}

/// Waits until ISC's lease file `leases` holds `addr` active for `mac`; the failure shows
/// what each side holds.
fn isc_recovered(a: &Netns, dir: &Path, leases: &Path, (addr, mac): (Ipv4Addr, &str)) {
    for _ in 0..300 {
        if isc_active(leases, addr, mac).is_some() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "{addr} ({mac}) not recovered by ISC: {:?} {}\n{}\n{}",
        lease_view(a, addr),
        failover(a, false).1,
        std::fs::read_to_string(leases).unwrap_or_default(),
        std::fs::read_to_string(dir.join("dhcpd-2.log")).unwrap_or_default()
    );
}

/// The pair of Peregrine (primary) and ISC dhcpd through faults, its clients' leases kept: the
/// failover port filtered (both in COMMUNICATIONS-INTERRUPTED, then NORMAL again); ISC
/// restarted with an empty lease file (it recovers every binding from Peregrine: RECOVER,
/// UPDREQALL, and NORMAL after the MCLT); Peregrine restarted with an empty lease directory (it
/// recovers them from ISC).
#[test]
fn a_peregrine_and_isc_pair_recovers_from_a_partition_and_from_lost_leases() {
    let test = "isc_pair_faults";
    let Some([dhcpd, dhclient, nft]) = require_tools(
        test,
        ["dhcpd", "dhclient", "nft"],
        "isc-dhcp-server, isc-dhcp-client, nftables",
    ) else {
        return;
    };
    let Some(mut pair) = IscPair::start(&dhcpd, "peregrine-isc-faults") else {
        return;
    };
    let (macs, dir) = (client_macs(), pair.tmp.path().to_owned());
    let (a, b, clients) = (&pair.a, &pair.b, &pair.clients);
    let path = |name: &str| dir.join(name);
    let leases = path("dhcpd.leases");
    let events = path("events");
    client_files(&dir, &events);
    let mut leased = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        let (_, addr, _) = lease(clients, &dhclient, &dir, i, lines(&events));
        let mac = mac_text(*mac);
        wait_until(60, &format!("c{i}'s {addr} in ISC's lease file"), || {
            isc_active(&leases, addr, &mac)
        });
        leased.push((addr, mac));
    }
    // A first lease runs only the MCLT past what the partner acknowledged: each client asks
    // again until its lease outlasts what follows.
    for (i, (addr, _)) in leased.iter().enumerate() {
        renew_for_long(clients, &dhclient, &dir, a, (i, *addr));
    }
    // A partition: the failover port filtered at ISC's side.
    nft_in(b, &nft, PARTITION);
    pair.peregrine_in(30, "COMMUNICATIONS-INTERRUPTED", None);
    wait_until(30, "ISC in COMMUNICATIONS-INTERRUPTED", || {
        says(&path("dhcpd.log"), "to communications-interrupted")
    });
    nft_in(b, &nft, "delete table inet partition\n");
    pair.peregrine_in(60, "NORMAL", Some("NORMAL"));

    // ISC loses its lease file: it learns every binding from Peregrine.
    kill(&mut pair.isc);
    std::fs::write(&leases, "").unwrap();
    let _isc = spawn_isc(&dhcpd, b, &dir, "dhcpd-2.log");
    pair.peregrine_in(60, "NORMAL", Some("NORMAL"));
    assert!(
        says(&path("dhcpd-2.log"), "recover").is_some(),
        "{}",
        std::fs::read_to_string(path("dhcpd-2.log")).unwrap_or_default()
    );
    for (addr, mac) in &leased {
        isc_recovered(a, &dir, &leases, (*addr, mac));
    }

    // Peregrine loses its lease directory: it learns every binding from ISC.
    kill(&mut pair.ours);
    std::fs::remove_dir_all(path("leases")).unwrap();
    let _ours = start(a, &path("peregrine.toml"), &path("peregrine-2.log"));
    pair.peregrine_in(60, "NORMAL", Some("NORMAL"));
    assert!(says(&path("peregrine-2.log"), "failover: state RECOVER").is_some());
    for (addr, mac) in &leased {
        assert_eq!(
            binding(a, *addr),
            Some(("active".to_owned(), mac.clone())),
            "{addr} recovered by Peregrine"
        );
    }
    // Every client rebooting asks for its address again: the pair confirms it.
    for (i, (addr, _)) in leased.iter().enumerate() {
        let (_, again, _) = lease(clients, &dhclient, &dir, i, lines(&events));
        assert_eq!(again, *addr, "c{i} kept its address");
    }
}

/// PARTNER-DOWN forced on our side: ISC dhcpd (secondary) stops; the operator tells Peregrine
/// it is down; Peregrine serves every client, those of ISC's hash buckets too, with leases no
/// longer than the MCLT; ISC comes back with its lease file, learns every one of them, and the
/// pair is NORMAL again; the clients asking again hold an address each, none shared.
#[test]
fn peregrine_in_partner_down_serves_everyone_and_isc_catches_up() {
    let test = "isc_partner_down";
    let Some([dhcpd, dhclient]) = require_tools(
        test,
        ["dhcpd", "dhclient"],
        "isc-dhcp-server, isc-dhcp-client",
    ) else {
        return;
    };
    let Some(mut pair) = IscPair::start(&dhcpd, "peregrine-isc-partner-down") else {
        return;
    };
    let (macs, leases) = (client_macs(), pair.path("dhcpd.leases"));
    kill(&mut pair.isc);
    pair.peregrine_in(30, "COMMUNICATIONS-INTERRUPTED", None);
    let (a, b, clients, dir) = (&pair.a, &pair.b, &pair.clients, pair.tmp.path());
    let (status, v) = failover(a, true);
    assert_eq!(status, 200, "{v}");
    pair.peregrine_in(10, "PARTNER-DOWN", None);
    // Every client, whichever server its hash bucket names, leases from Peregrine.
    let events = dir.join("events");
    client_files(dir, &events);
    let peregrine = Ipv4Addr::new(10, 79, 9, 1);
    let mut leased = Vec::new();
    for (i, mac) in macs.iter().enumerate() {
        let (_, addr, server) = lease(clients, &dhclient, dir, i, lines(&events));
        assert_eq!(server, peregrine, "c{i}");
        // Nobody acknowledges what a server in PARTNER-DOWN promises: no lease runs past the
        // MCLT (10 s).
        let v = lease_view(a, addr).unwrap();
        let (cltt, expires) = (v["cltt"].as_u64().unwrap(), v["expires"].as_u64().unwrap());
        assert!(expires <= cltt + 10, "c{i}'s {addr}: {v}");
        leased.push((addr, mac_text(*mac)));
    }
    // ISC comes back with its lease file: it recovers what it missed, and both are NORMAL.
    let _isc = spawn_isc(&dhcpd, b, dir, "dhcpd-2.log");
    pair.peregrine_in(90, "NORMAL", Some("NORMAL"));
    // ISC learned every lease Peregrine granted while it was down (each has run out by now).
    for (addr, mac) in &leased {
        wait_until(30, &format!("ISC knows {addr} was {mac}'s"), || {
            isc_knows(&leases, *addr, mac)
        });
    }
    // The clients ask again: each holds an address, none shared. (Their leases ran out: one
    // granted in PARTNER-DOWN runs the MCLT, and its address is given to nobody, its client
    // included, until the MCLT past the potential expiration sent with it.)
    let mut held = std::collections::HashSet::new();
    for i in 0..leased.len() {
        let (_, again, _) = lease(clients, &dhclient, dir, i, lines(&events));
        assert!(held.insert(again), "{again} twice");
    }
}

/// Whether ISC's lease file `leases` has `addr` last as `mac`'s, in any state.
fn isc_knows(leases: &Path, addr: Ipv4Addr, mac: &str) -> Option<()> {
    let text = std::fs::read_to_string(leases).unwrap_or_default();
    let block = text
        .split("lease ")
        .filter(|b| b.starts_with(&format!("{addr} ")))
        .last()?;
    block
        .contains(&format!("hardware ethernet {mac};"))
        .then_some(())
}

/// PARTNER-DOWN forced on ISC's side, with omshell (ISC's documented control): Peregrine stops;
/// the operator puts ISC dhcpd in PARTNER-DOWN, and ISC answers a client of Peregrine's hash
/// buckets; Peregrine comes back with its lease directory, learns that lease (POTENTIAL-CONFLICT,
/// resolved), and the pair is NORMAL again.
#[test]
fn isc_in_partner_down_serves_and_peregrine_catches_up() {
    let test = "isc_partner_down_isc";
    let Some([dhcpd, dhclient, omshell]) = require_tools(
        test,
        ["dhcpd", "dhclient", "omshell"],
        "isc-dhcp-server, isc-dhcp-client",
    ) else {
        return;
    };
    let Some(mut pair) = IscPair::start(&dhcpd, "peregrine-isc-partner-down-isc") else {
        return;
    };
    kill(&mut pair.ours);
    let (a, b, clients, dir) = (&pair.a, &pair.b, &pair.clients, pair.tmp.path());
    let path = |name: &str| dir.join(name);
    wait_until(30, "ISC in COMMUNICATIONS-INTERRUPTED", || {
        says(&path("dhcpd.log"), "to communications-interrupted")
    });
    // The operator tells ISC its partner is down (failover state 4, PARTNER-DOWN, in ISC's
    // OMAPI numbering).
    let script = "server 127.0.0.1\nport 7911\nconnect\nnew failover-state\n\
                  set name = \"test-pair\"\nopen\nset local-state = 4\nupdate\n";
    let out = fed(b, &omshell, &[], script);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "omshell: {said}");
    for _ in 0..300 {
        if says(&path("dhcpd.log"), "to partner-down").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        says(&path("dhcpd.log"), "to partner-down").is_some(),
        "ISC not in PARTNER-DOWN; omshell said: {said}\n{}",
        std::fs::read_to_string(path("dhcpd.log")).unwrap_or_default()
    );
    // A client of Peregrine's hash buckets: ISC answers it.
    let events = path("events");
    client_files(dir, &events);
    let (_, addr, server) = lease(clients, &dhclient, dir, 0, lines(&events));
    assert_eq!(server, Ipv4Addr::new(10, 79, 9, 2), "ISC answered");
    // Peregrine comes back with its lease directory: it learns ISC's lease, and both are
    // NORMAL.
    let _ours = start(a, &path("peregrine.toml"), &path("peregrine-2.log"));
    pair.peregrine_in(90, "NORMAL", Some("NORMAL"));
    // It cannot tell whether it served after ISC took over: conflict resolution, not RECOVER.
    assert!(
        says(
            &path("peregrine-2.log"),
            "failover: state POTENTIAL-CONFLICT"
        )
        .is_some()
    );
    let mac = mac_text(client_macs()[0]);
    let view = lease_view(a, addr).unwrap();
    assert_eq!(view["mac"], mac.as_str(), "{view}");
}

/// Leases imported into one server of a pair (a scope moved onto the pair) reach the other:
/// the admin API's import is journaled, then sent to the partner like any lease.
#[test]
fn leases_imported_into_one_server_reach_its_partner() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-import");
    let _pair = normal_pair(&a, &b, dir.path());
    let expire = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3000;
    let csv = format!(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,\
         state,user_context\n10.79.9.150,02:00:00:00:77:01,,3600,{expire},1,0,0,moved-1,0,\n"
    );
    import_live(&a, &csv);
    let addr = Ipv4Addr::new(10, 79, 9, 150);
    wait_until(20, "the imported lease at the secondary", || {
        binding(&b, addr).filter(|(state, mac)| state == "active" && mac == "02:00:00:00:77:01")
    });
    assert_eq!(lease_view(&b, addr).unwrap()["hostname"], "moved-1");
}

/// Imports `csv` into the running server in `ns` through its admin API.
fn import_live(ns: &Netns, csv: &str) {
    let (status, report) = ns.enter(|| {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut r = agent
            .post("http://127.0.0.1:9167/v1/leases/import/kea-csv")
            .send(csv.as_bytes())
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    });
    assert_eq!(status, 200, "{report}");
}

#[test]
fn a_repaired_member_learns_the_lost_lease_from_its_partner() {
    let Some((a, b)) = namespaces() else {
        return;
    };
    let dir = TempDir::new("peregrine-pair-repair");
    let path = |name: &str| dir.path().join(name);
    let [_primary, mut secondary] = normal_pair(&a, &b, dir.path());
    let expire = peregrine_dataplane::unix_now() + 3000;
    let leases: Vec<(Ipv4Addr, &str)> = vec![
        (Ipv4Addr::new(10, 79, 9, 150), "02:00:00:00:7a:01"),
        (Ipv4Addr::new(10, 79, 9, 151), "02:00:00:00:7a:02"),
    ];
    let rows = leases.iter().fold(String::new(), |mut rows, (addr, mac)| {
        let _ = writeln!(rows, "{addr},{mac},,3600,{expire},1,0,0,,0,");
        rows
    });
    let csv = format!(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,\
         state,user_context\n{rows}"
    );
    import_live(&a, &csv);
    for (addr, mac) in &leases {
        wait_until(20, "the imported lease at the secondary", || {
            binding(&b, *addr).filter(|(state, m)| state == "active" && m == mac)
        });
    }
    kill(&mut secondary);

    // The first of the two records in the secondary's journal is damaged (one follows it, so
    // it is damage, not a torn tail): the secondary refuses to start until repaired.
    let journal = path("secondary-leases/journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let (at, lost) = (peregrine_store::record::HEADER_LEN..bytes.len())
        .step_by(peregrine_store::record::RECORD_LEN)
        .find_map(|at| {
            let record = bytes[at..at + peregrine_store::record::RECORD_LEN]
                .try_into()
                .ok()?;
            let e = peregrine_store::record::decode(record).ok()?;
            leases.iter().find(|l| l.0 == e.address).map(|l| (at, *l))
        })
        .unwrap();
    bytes[at + 40] ^= 0x10;
    std::fs::write(&journal, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_peregrine"))
        .args(["leases", "recover", "--config"])
        .arg(path("secondary.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("starts in RECOVER"), "{said}");

    // Restarted, it recovers from the primary: the lost lease is its client's again there.
    let _secondary = start(&b, &path("secondary.toml"), &path("secondary-2.log"));
    wait_until(30, "the lost lease learned again from the partner", || {
        binding(&b, lost.0).filter(|(state, m)| state == "active" && m == lost.1)
    });
    // By RECOVER, as a server that lost its database: it asked the primary for everything.
    wait_until(10, "the secondary in RECOVER after the repair", || {
        says(&path("secondary-2.log"), "failover: state RECOVER")
    });
}
