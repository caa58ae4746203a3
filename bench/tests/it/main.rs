//! `peregrine-loadgen` end to end, in network namespaces of its own (needs root): a few
//! thousand relayed DORAs through the UDP backend against the real `peregrine` server binary,
//! and against the loadgen's own echo responder. Without root the tests say so and pass;
//! without the server binary they fail under CI (`CI` set) and say so and pass elsewhere.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use peregrine_testkit::netns::Netns;
use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_peregrine-loadgen");

/// Peregrine serving two relay subnets over a UDP socket, without a journal.
const SERVER_CONFIG: &str = r#"
[dataplane]
backend = "udp"

[[interface]]
name = "srv0"
address = "10.200.1.1"

[[scope]]
name = "relay-a"
subnet = "10.210.0.0/16"

[[scope.pool]]
range = "10.210.0.10 - 10.210.255.250"

[scope.options]
routers = ["10.210.0.1"]

[[scope]]
name = "relay-b"
subnet = "10.211.0.0/16"

[[scope.pool]]
range = "10.211.0.10 - 10.211.255.250"

[scope.options]
routers = ["10.211.0.1"]
"#;

/// The relays of [`topology`].
const TWO_RELAYS: &str = "10.210.0.1,10.211.0.1";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `peregrine` binary `cargo test --workspace` builds beside this test, or `PEREGRINE_BIN`.
fn server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PEREGRINE_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/it-<hash> -> target/<profile>/peregrine
            exe.parent().unwrap().parent().unwrap().join("peregrine")
        },
        PathBuf::from,
    );
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the peregrine binary is required in CI: {} is missing (cargo build -p peregrine)",
        path.display()
    );
    eprintln!(
        "skipping: {} not built (cargo build -p peregrine, or set PEREGRINE_BIN)",
        path.display()
    );
    None
}

/// A server namespace and a generator namespace joined by a veth pair: `srv0` 10.200.1.1/24,
/// `gen0` 10.200.1.2/24 with the relay addresses 10.210.0.1/16 and 10.211.0.1/16 on it.
fn topology(test: &str) -> Option<(Netns, Netns)> {
    let srv = Netns::new(test)?;
    let generator = Netns::new(test)?;
    srv.ip(&format!(
        "link add srv0 type veth peer name gen0 netns {}",
        generator.name()
    ));
    srv.ip("addr add 10.200.1.1/24 dev srv0");
    srv.ip("link set srv0 up");
    srv.ip("route add 10.210.0.0/15 via 10.200.1.2");
    generator.ip("addr add 10.200.1.2/24 dev gen0");
    generator.ip("addr add 10.210.0.1/16 dev gen0");
    generator.ip("addr add 10.211.0.1/16 dev gen0");
    generator.ip("link set gen0 up");
    Some((srv, generator))
}

/// Starts `bin run` in `ns` with `config` written into `dir`.
fn start_server(ns: &Netns, bin: &std::path::Path, dir: &std::path::Path, config: &str) -> Proc {
    let path = dir.join("server.toml");
    std::fs::write(&path, config).unwrap();
    Proc(
        ns.command(bin.to_str().unwrap())
            .args(["run", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits until something in `ns` listens on UDP port 67.
fn wait_for_udp67(ns: &Netns, server: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns
            .command("ss")
            .args(["-Huln", "sport = :67"])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            return;
        }
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "the server exited before listening"
        );
        assert!(
            Instant::now() < deadline,
            "nothing listens on UDP/67 after 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the generator in `ns` over a UDP socket and returns its JSON report.
fn loadgen(ns: &Netns, args: &[&str], dir: &std::path::Path) -> Value {
    loadgen_on(ns, &["--backend", "udp"], args, dir)
}

/// Runs the generator in `ns` on `backend` (its arguments) and returns its JSON report.
fn loadgen_on(ns: &Netns, backend: &[&str], args: &[&str], dir: &std::path::Path) -> Value {
    let json = dir.join("report.json");
    let out = ns
        .command(LOADGEN)
        .arg("run")
        .args(backend)
        .args(["--server", "10.200.1.1"])
        .args(["--quiet", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

fn phase<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name} in {report}"))
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peregrine-bench-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_client_gets_a_lease_from_peregrine_without_drops() {
    let Some(bin) = server_binary() else {
        return;
    };
    let Some((srv, generator)) = topology("loadgen_peregrine") else {
        return;
    };
    let dir = temp_dir("peregrine");
    let mut server = start_server(&srv, &bin, &dir, SERVER_CONFIG);
    wait_for_udp67(&srv, &mut server);
    let clients = 3000;
    let pid = server.0.id().to_string();
    let report = loadgen(
        &generator,
        &[
            "--giaddr",
            TWO_RELAYS,
            "--clients",
            &clients.to_string(),
            "--rate",
            "1500",
            "--timeout",
            "3",
            "--circuit-id",
            "olt{relay}/port{port}",
            "--remote-id",
            "sub-{client}",
            "--server-pid",
            &pid,
        ],
        &dir,
    );
    let dora = phase(&report, "dora");
    assert_eq!(dora["answered"], clients, "{report}");
    assert_eq!(dora["drops"], 0, "{report}");
    assert_eq!(dora["naks"], 0, "{report}");
    assert_eq!(phase(&report, "discover-offer")["answered"], clients);
    assert_eq!(report["leased_clients"], clients);
    assert_eq!(report["unexpected"], 0);
    assert!(report["server_cpu_pct"].as_f64().is_some(), "{report}");
    assert!(server.0.try_wait().unwrap().is_none(), "server died");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `POST path` on the control plane of the server in `ns`: the status and the body.
fn post(ns: &Netns, path: &str) -> (u16, String) {
    ns.enter(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut reply = agent
            .post(format!("http://127.0.0.1:9167{path}"))
            .send_empty()
            .unwrap();
        (
            reply.status().as_u16(),
            reply.body_mut().read_to_string().unwrap(),
        )
    })
}

/// Reloads amid load drop nothing and mis-answer nothing: two workers serve relay-a's clients
/// while the configuration is reloaded again and again (a scope added and removed, options
/// changed); every client is leased, none waited past its timeout, no NAK. The scope a reload
/// adds serves as soon as the reload has answered.
#[test]
fn reloads_under_load_drop_nothing_and_a_new_scope_serves_at_once() {
    let Some(bin) = server_binary() else {
        return;
    };
    let Some((srv, generator)) = topology("loadgen_reload") else {
        return;
    };
    let dir = temp_dir("reload");
    let base = SERVER_CONFIG.replace("backend = \"udp\"", "backend = \"af-packet\"\nworkers = 2");
    let without_b = base[..base.find("[[scope]]\nname = \"relay-b\"").unwrap()].to_owned();
    let mut server = start_server(&srv, &bin, &dir, &without_b);
    wait_for_udp67(&srv, &mut server);
    let config = dir.join("server.toml");
    let clients = 6000;
    let reloading = std::thread::scope(|s| {
        let load = s.spawn(|| {
            loadgen(
                &generator,
                &[
                    "--giaddr",
                    "10.210.0.1",
                    "--clients",
                    &clients.to_string(),
                    "--rate",
                    "1500",
                    "--timeout",
                    "3",
                ],
                &dir,
            )
        });
        let mut reloads = 0;
        std::thread::sleep(Duration::from_millis(500));
        while !load.is_finished() {
            reloads += 1;
            let next = if reloads % 2 == 1 {
                base.replace("10.210.0.1\"]", &format!("10.210.0.{}\"]", 1 + reloads % 5))
            } else {
                without_b.clone()
            };
            std::fs::write(&config, next).unwrap();
            let (status, body) = post(&srv, "/v1/config/reload");
            assert_eq!(status, 200, "reload {reloads}: {body}");
            std::thread::sleep(Duration::from_millis(250));
        }
        let report = load.join().unwrap();
        let dora = phase(&report, "dora");
        assert_eq!(dora["answered"], clients, "{report}");
        assert_eq!(
            (dora["drops"].as_u64(), dora["naks"].as_u64()),
            (Some(0), Some(0)),
            "{report}"
        );
        assert_eq!(report["leased_clients"], clients);
        assert_eq!(report["unexpected"], 0, "{report}");
        reloads
    });
    assert!(reloading >= 5, "only {reloading} reloads during the load");

    // relay-b's scope, added by a reload: its clients are served at once.
    std::fs::write(&config, &without_b).unwrap();
    assert_eq!(post(&srv, "/v1/config/reload").0, 200);
    std::fs::write(&config, &base).unwrap();
    let (status, body) = post(&srv, "/v1/config/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("relay-b"), "{body}");
    let report = loadgen(
        &generator,
        &[
            "--giaddr",
            "10.211.0.1",
            "--clients",
            "200",
            "--rate",
            "1000",
            "--timeout",
            "3",
        ],
        &dir,
    );
    assert_eq!(phase(&report, "dora")["answered"], 200, "{report}");
    assert!(server.0.try_wait().unwrap().is_none(), "server died");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `[limits]` under load: one relay flooding DISCOVERs and one client renewing in a loop are
/// held to their rates (counted by reason) while another relay's clients are all served.
#[test]
fn a_flooding_relay_and_a_flooding_client_do_not_stop_the_others() {
    let Some(bin) = server_binary() else {
        return;
    };
    let Some((srv, generator)) = topology("loadgen_limits") else {
        return;
    };
    // The flooding client's relay: in relay-b's subnet, beside the well-behaved relay.
    generator.ip("addr add 10.211.0.2/16 dev gen0");
    let dir = temp_dir("limits");
    let config = format!("{SERVER_CONFIG}\n[limits]\nclient-rate = 5\nrelay-rate = 1000\n");
    let mut server = start_server(&srv, &bin, &dir, &config);
    wait_for_udp67(&srv, &mut server);
    let in_dir = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (flood_dir, others_dir) = (in_dir("flood"), in_dir("others"));
    // Three generators at once: each on a packet socket, keeping the replies to its own xids.
    let on = |args: &[&str], dir: &std::path::Path| {
        let raw = ["--backend", "afpacket", "--interface", "gen0"];
        loadgen_on(&generator, &raw, args, dir)
    };
    let others = std::thread::scope(|s| {
        s.spawn(|| {
            let flood = "--giaddr 10.210.0.1 --clients 9000 --rate 3000 --timeout 1";
            on(&flood.split(' ').collect::<Vec<_>>(), &flood_dir)
        });
        let flooding_client = s.spawn(|| generator.enter(flood_from_one_client));
        let others = "--giaddr 10.211.0.1 --clients 600 --rate 200 --timeout 3";
        let report = on(&others.split(' ').collect::<Vec<_>>(), &others_dir);
        (report, flooding_client.join().unwrap())
    });
    let (others, flooder_answered) = others;
    // Its burst (10) and 5 a second over the 3 s.
    assert!(
        flooder_answered <= 30,
        "{flooder_answered} answers to one client"
    );
    let dora = phase(&others, "dora");
    assert_eq!(dora["answered"], 600, "{others}");
    assert_eq!(
        (dora["drops"].as_u64(), dora["naks"].as_u64()),
        (Some(0), Some(0))
    );
    let metrics = srv.enter(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut reply = agent.get("http://127.0.0.1:9167/metrics").call().unwrap();
        reply.body_mut().read_to_string().unwrap()
    });
    let dropped = |reason: &str| -> u64 {
        let series = format!("peregrine_drops_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(dropped("rate_limited_relay") > 1000, "{metrics}");
    assert!(dropped("rate_limited_client") > 1000, "{metrics}");
    assert!(server.0.try_wait().unwrap().is_none(), "server died");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One client's DISCOVERs, a thousand a second for 3 s, relayed by 10.211.0.2 (run inside the
/// generator's namespace); how many the server answered.
fn flood_from_one_client() -> usize {
    use peregrine_testkit::frames::ClientMessage;
    use peregrine_wire::dhcp::MessageType;
    let relay = std::net::Ipv4Addr::new(10, 211, 0, 2);
    let socket = std::net::UdpSocket::bind((relay, 67)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    for xid in 0..3000 {
        let m = ClientMessage::new(MessageType::Discover, [2, 0xf1, 0, 0, 0, 1], xid)
            .relayed(relay, b"storm");
        socket.send_to(&m.bytes(), ("10.200.1.1", 67)).unwrap();
        while socket.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
    while socket.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    answered
}

/// Peregrine on AF_PACKET with two workers, serving the eight relay subnets 10.210/16 to
/// 10.217/16 (the harness's perfdhcp layout), without a journal.
fn eight_relay_config() -> String {
    let mut scopes = String::new();
    for r in 210..218 {
        let _ = write!(
            scopes,
            "\n[[scope]]\nname = \"relay-{r}\"\nsubnet = \"10.{r}.0.0/16\"\n\n\
             [[scope.pool]]\nrange = \"10.{r}.0.10 - 10.{r}.255.250\"\n"
        );
    }
    format!(
        "[dataplane]\nbackend = \"af-packet\"\nworkers = 2\n\n\
         [[interface]]\nname = \"srv0\"\naddress = \"10.200.1.1\"\n{scopes}"
    )
}

/// What perfdhcp `-J` cannot check (it listens on one relay address only): clients behind
/// eight relays all get leases, each from the scope its relay's giaddr selects.
#[test]
fn eight_relays_lease_into_their_eight_scopes() {
    let Some(bin) = server_binary() else {
        return;
    };
    let Some((srv, generator)) = topology("loadgen_eight_relays") else {
        return;
    };
    srv.ip("route add 10.212.0.0/14 via 10.200.1.2");
    srv.ip("route add 10.216.0.0/15 via 10.200.1.2");
    let giaddrs: Vec<String> = (210..218).map(|r| format!("10.{r}.0.1")).collect();
    for g in &giaddrs[2..] {
        generator.ip(&format!("addr add {g}/16 dev gen0"));
    }
    let dir = temp_dir("eight-relays");
    let mut server = start_server(&srv, &bin, &dir, &eight_relay_config());
    // The AF_PACKET server binds UDP/67 (never read) once its sockets are open.
    wait_for_udp67(&srv, &mut server);
    let per_relay = 300;
    let clients = per_relay * giaddrs.len();
    let report = loadgen(
        &generator,
        &[
            "--giaddr",
            &giaddrs.join(","),
            "--clients",
            &clients.to_string(),
            "--rate",
            "1500",
            "--timeout",
            "3",
        ],
        &dir,
    );
    let dora = phase(&report, "dora");
    assert_eq!(dora["answered"], clients, "{report}");
    assert_eq!(
        (dora["drops"].as_u64(), dora["naks"].as_u64()),
        (Some(0), Some(0))
    );

    let pools: Value = srv.enter(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let body = agent
            .get("http://127.0.0.1:9167/v1/pools")
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    });
    let active: Vec<(String, u64)> = pools
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["scope"].as_str().unwrap().to_string(),
                p["active"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = (210..218)
        .map(|r| (format!("relay-{r}"), per_relay as u64))
        .collect();
    assert_eq!(active, want, "client i sits behind relay i mod 8");
    assert!(server.0.try_wait().unwrap().is_none(), "server died");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn echo_responder_answers_every_exchange() {
    let Some((srv, generator)) = topology("loadgen_echo") else {
        return;
    };
    let dir = temp_dir("echo");
    let mut echo = Proc(
        srv.command(LOADGEN)
            .args(["echo", "--backend", "udp", "--max-time", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_udp67(&srv, &mut echo);
    let report = loadgen(
        &generator,
        &[
            "--giaddr",
            TWO_RELAYS,
            "--clients",
            "2000",
            "--rate",
            "2000",
            "--scenario",
            "renew",
            "--timeout",
            "3",
        ],
        &dir,
    );
    for name in ["dora", "renew"] {
        let p = phase(&report, name);
        assert_eq!(
            (p["answered"].as_u64(), p["drops"].as_u64()),
            (Some(2000), Some(0)),
            "{report}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The generator on DPDK (`net_af_packet` on its end of the veth), built with `--features
/// dpdk`, drives Peregrine: every client leased, nothing dropped.
#[cfg(feature = "dpdk")]
#[test]
fn the_generator_on_a_dpdk_port_leases_every_client() {
    let Some(bin) = server_binary() else {
        return;
    };
    let Some((srv, generator)) = topology("loadgen_dpdk") else {
        return;
    };
    // The server answers through its kernel's UDP socket; on a veth the kernel leaves the UDP
    // checksum to an offload that never happens, which AF_PACKET reports and DPDK's
    // net_af_packet does not: have the kernel fill it in.
    let offload = srv
        .command("ethtool")
        .args(["-K", "srv0", "tx", "off"])
        .output();
    if !offload.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: ethtool cannot turn off TX checksum offload on the veth");
        return;
    }
    let dir = temp_dir("dpdk");
    let mut server = start_server(&srv, &bin, &dir, SERVER_CONFIG);
    wait_for_udp67(&srv, &mut server);
    let json = dir.join("report.json");
    let eal = format!(
        "--no-huge --no-pci --no-shconf --no-telemetry -m 512 -l 0 --log-level=lib.eal:error \
         --vdev=net_af_packet0,iface=gen0 --file-prefix=loadgen-it-{}",
        std::process::id()
    );
    let out = generator
        .command(LOADGEN)
        .args(["run", "--backend", "dpdk", "--dpdk-port", "net_af_packet0"])
        .arg("--eal-args")
        .arg(&eal)
        .args(["--server", "10.200.1.1", "--giaddr", TWO_RELAYS])
        .args(["--clients", "1000", "--rate", "1000", "--timeout", "3"])
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let dora = phase(&report, "dora");
    assert_eq!(
        (dora["answered"].as_u64(), dora["drops"].as_u64()),
        (Some(1000), Some(0)),
        "{report}"
    );
    assert_eq!(report["leased_clients"], 1000);
    assert!(server.0.try_wait().unwrap().is_none(), "server died");
    std::fs::remove_dir_all(&dir).unwrap();
}
