//! The control plane over loopback HTTP: counters from real frames through real workers, pool
//! gauges, lease lookups, health, and shutdown.

#![allow(clippy::unwrap_used)]

mod auth;
mod import;
mod search;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peregrine_config::model::Config;
use peregrine_control::{Control, ControlSources, spawn};
use peregrine_dataplane::{Interface, NoSink, Worker, WorkerConfig};
use peregrine_engine::{Engine, EngineOptions};
use peregrine_io::mem;
use peregrine_stats::WorkerStats;
use peregrine_store::JournalStats;
use peregrine_testkit::config as fixture;
use peregrine_testkit::frames::{ClientMessage, udp_frame};
use peregrine_wire::MacAddr;
use peregrine_wire::dhcp::{DhcpMessage, MessageType};
use peregrine_wire::ethernet::VlanTags;
use peregrine_wire::frame::{Demuxed, UdpFrameHeaders, demux};
use serde_json::Value;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const SERVER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const RELAY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
const NOW: u64 = 1_800_000_000;
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// What a control plane over `engine` alone reports on: no workers, journal, importer, partner
/// or ports, and an open API.
fn bare(engine: Arc<Engine>) -> ControlSources {
    ControlSources {
        engine: peregrine_dataplane::SharedEngine::new(engine),
        workers: vec![],
        started: Instant::now(),
        journal: None,
        importer: None,
        failover: None,
        ports: None,
        scope_states: None,
        access: peregrine_control::AdminAccess::default(),
        reload: None,
        reloads: None,
        snapshot: None,
    }
}

/// An engine of [`config`].
fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(&config(), EngineOptions::default()).unwrap())
}

/// Two scopes: "direct" on eth0 (100 addresses) and "relayed" behind 10.201.0.1 (256).
fn config() -> Config {
    fixture::lab(true)
}

fn client_mac(n: u8) -> [u8; 6] {
    [2, 0xcc, 0, 0, 0, n]
}

/// A DHCP message from client `n` as the relay puts it on the wire.
fn relayed(kind: MessageType, n: u8, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let mut m = ClientMessage::new(kind, client_mac(n), u32::from(n)).relayed(RELAY, b"olt-1/1");
    m.requested = requested;
    m.server_id = requested.map(|_| SERVER);
    let headers = UdpFrameHeaders {
        dst_mac: SERVER_MAC,
        src_mac: RELAY_MAC,
        vlans: VlanTags::NONE,
        src_ip: RELAY,
        dst_ip: SERVER,
        src_port: 67,
        dst_port: 67,
        ttl: 63,
    };
    udp_frame(&headers, &m.bytes())
}

/// A worker on an in-memory port, as the server runs one per core.
struct Lab {
    peer: mem::MemPeer,
    worker: Worker<mem::MemRx, mem::MemTx, NoSink>,
    stats: Arc<WorkerStats>,
}

impl Lab {
    fn new(engine: &Arc<Engine>) -> Lab {
        let (peer, rx, tx) = mem::port(32);
        let stats = Arc::new(WorkerStats::default());
        let iface = Interface {
            ifindex: 7,
            mac: SERVER_MAC,
            addr: SERVER,
            engine_id: engine.interface("eth0"),
            trusted: false,
        };
        let worker = Worker::new(
            engine.clone(),
            (rx, tx),
            vec![iface],
            stats.clone(),
            WorkerConfig::default(),
            None::<NoSink>,
        );
        Lab {
            peer,
            worker,
            stats,
        }
    }

    /// Injects `frame`, runs the worker once, and returns the DHCP replies it sent.
    fn exchange(&mut self, frame: &[u8]) -> Vec<(MessageType, Ipv4Addr)> {
        self.peer.inject(frame, 7);
        self.worker.poll(NOW).unwrap();
        self.worker.flush().unwrap();
        self.worker.publish_latency();
        self.peer
            .sent()
            .iter()
            .map(|(f, _)| {
                let Demuxed::Udp { payload, .. } = demux(f).unwrap() else {
                    panic!("not a DHCP reply")
                };
                let m = DhcpMessage::parse(payload).unwrap();
                (m.message_type().unwrap(), m.packet().yiaddr())
            })
            .collect()
    }

    /// DISCOVER, then REQUEST of the address offered: returns the address acknowledged.
    fn lease(&mut self, n: u8) -> Ipv4Addr {
        let offer = self.exchange(&relayed(MessageType::Discover, n, None));
        assert_eq!(offer.len(), 1);
        assert_eq!(offer[0].0, MessageType::Offer);
        let ack = self.exchange(&relayed(MessageType::Request, n, Some(offer[0].1)));
        assert_eq!(ack, vec![(MessageType::Ack, offer[0].1)]);
        offer[0].1
    }
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

fn get(control: &Control, path: &str) -> Reply {
    call(control, "GET", path)
}

fn post(control: &Control, path: &str) -> Reply {
    call(control, "POST", path)
}

fn call(control: &Control, method: &str, path: &str) -> Reply {
    send(control, method, path, None)
}

/// `method` `path`, with `body` if given.
fn send(control: &Control, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let url = format!("http://{}{path}", control.local_addr());
    let mut r = match method {
        "POST" => match body {
            Some(b) => agent.post(url).send(b),
            None => agent.post(url).send_empty(),
        },
        "PUT" => agent.put(url).send(body.unwrap_or_default()),
        "DELETE" => agent.delete(url).call(),
        _ => agent.get(url).call(),
    }
    .unwrap();
    Reply {
        status: r.status().as_u16(),
        content_type: r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: r.body_mut().read_to_string().unwrap(),
    }
}

/// The status the server answers a `method` `path` with a `len`-byte body. Over raw TCP because
/// a server refusing a body too large answers and closes without reading the rest: an HTTP
/// client that writes the whole body before reading may see its write fail (EPIPE or a reset)
/// and never the answer, which the kernel keeps queued for a reader that keeps reading.
fn status_of_oversized(control: &Control, method: &str, path: &str, len: usize) -> u16 {
    let mut stream = TcpStream::connect(control.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: peregrine\r\nContent-Length: {len}\r\n\r\n");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 << 10];
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if writer.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

fn json(reply: &Reply) -> Value {
    assert_eq!(reply.content_type, "application/json");
    serde_json::from_str(&reply.body).unwrap()
}

/// A sample's identity: metric name and its labels, sorted by label name.
type Series = (String, BTreeMap<String, String>);

/// Parses the text exposition into samples, checking that every sample's family has HELP and
/// TYPE lines before it.
fn parse(text: &str) -> BTreeMap<Series, String> {
    let mut described = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap(), words.next().unwrap());
            assert!(!words.next().unwrap().is_empty(), "{line}");
            described.push((kind.to_owned(), name.to_owned()));
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap();
                        let v = v.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        // A histogram's samples carry suffixes; its HELP and TYPE name the family.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| described.contains(&("TYPE".to_owned(), (*base).to_owned())))
            .unwrap_or(name);
        for kind in ["HELP", "TYPE"] {
            assert!(
                described.contains(&(kind.to_owned(), family.to_owned())),
                "no {kind} for {name}"
            );
        }
        let previous = samples.insert((name.to_owned(), labels), value.to_owned());
        assert!(previous.is_none(), "duplicate sample {line}");
    }
    samples
}

/// The value of a sample, as written.
fn raw<'a>(samples: &'a BTreeMap<Series, String>, name: &str, labels: &[(&str, &str)]) -> &'a str {
    let key = (
        name.to_owned(),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    samples
        .get(&key)
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// The value of a sample whose value is a count (written as an integer).
fn sample(samples: &BTreeMap<Series, String>, name: &str, labels: &[(&str, &str)]) -> u64 {
    raw(samples, name, labels).parse().unwrap()
}

/// Every metric family `/metrics` exposed before the stats crate existed: dashboards and alerts
/// name these, so the set may grow but none may go or be renamed.
const FAMILIES: [&str; 27] = [
    "peregrine_arp_replies_total",
    "peregrine_dhcp_acks_deferred_total",
    "peregrine_dhcp_messages_received_total",
    "peregrine_dhcp_messages_sent_total",
    "peregrine_drops_total",
    "peregrine_frames_received_total",
    "peregrine_frames_sent_total",
    "peregrine_icmp_echo_replies_total",
    "peregrine_journal_batches_total",
    "peregrine_journal_bytes_total",
    "peregrine_journal_compaction_failures_total",
    "peregrine_journal_compactions_total",
    "peregrine_journal_failed",
    "peregrine_journal_fsyncs_total",
    "peregrine_journal_last_compaction_seconds",
    "peregrine_journal_last_fsync_seconds",
    "peregrine_journal_records_total",
    "peregrine_journal_segments_sealed_total",
    "peregrine_journal_snapshot_records",
    "peregrine_leases_expired_total",
    "peregrine_pool_addresses",
    "peregrine_reply_latency_seconds",
    "peregrine_uptime_seconds",
    "peregrine_worker_frames_received_total",
    "peregrine_worker_handoff_frames_total",
    "peregrine_worker_held_replies",
    "peregrine_worker_rx_burst_frames",
];

/// Every `reason` label of `peregrine_drops_total` as it was before the labels were derived
/// from the reason enums.
const DROP_REASONS: [&str; 24] = [
    "truncated",
    "malformed",
    "checksum",
    "fragment",
    "bad_magic",
    "unsupported",
    "no_space",
    "not_for_us",
    "dhcp_malformed",
    "not_request",
    "not_dhcp",
    "unexpected_type",
    "untrusted_relay_info",
    "no_scope",
    "scope_inactive",
    "pool_exhausted",
    "server_id_not_ours",
    "unknown_client",
    "no_binding",
    "reply_too_large",
    "tx_error",
    "tx_refused",
    "journal_full",
    "held_full",
];

/// Two workers that have seen traffic, and a control plane over them (and over `journal`).
fn serve(journal: Option<Arc<JournalStats>>) -> (Control, Vec<Ipv4Addr>, [Arc<WorkerStats>; 2]) {
    let engine = engine();
    let mut a = Lab::new(&engine);
    let mut b = Lab::new(&engine);
    // Worker 0: a full lease and a truncated frame. Worker 1: a full lease, and a DISCOVER
    // whose offer is never taken up.
    let leased = vec![a.lease(1), b.lease(2)];
    assert!(
        a.exchange(&relayed(MessageType::Discover, 9, None)[..20])
            .is_empty()
    );
    assert_eq!(
        b.exchange(&relayed(MessageType::Discover, 3, None)).len(),
        1
    );
    let control = spawn(
        LOOPBACK,
        ControlSources {
            workers: vec![a.stats.clone(), b.stats.clone()],
            started: Instant::now().checked_sub(Duration::from_mins(1)).unwrap(),
            journal,
            ..crate::bare(engine)
        },
    )
    .unwrap();
    (control, leased, [a.stats, b.stats])
}

#[test]
fn metrics_keep_every_family_name_and_drop_reason_they_had() {
    // A journaled server's families: with a journal's counters.
    let (control, _leased, _stats) = serve(Some(Arc::new(JournalStats::default())));
    let m = parse(&get(&control, "/metrics").body);
    // A histogram's samples carry suffixes; the family is the name without them.
    let families: BTreeSet<&str> = m
        .keys()
        .map(|(name, _)| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| f.ends_with("_seconds"))
                .unwrap_or(name)
        })
        .collect();
    let missing: Vec<&str> = FAMILIES
        .iter()
        .copied()
        .filter(|f| !families.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "families gone from /metrics: {missing:?}"
    );
    let reasons: BTreeSet<&str> = m
        .keys()
        .filter(|(name, _)| name == "peregrine_drops_total")
        .map(|(_, labels)| labels["reason"].as_str())
        .collect();
    // Reasons may be added (probe_full came with the ping check), never renamed or removed.
    let had = BTreeSet::from(DROP_REASONS);
    assert!(
        reasons.is_superset(&had),
        "reasons gone: {:?}",
        had.difference(&reasons).collect::<Vec<_>>()
    );
    assert!(reasons.contains("probe_full"));
}

#[test]
fn metrics_sum_the_workers_and_report_every_drop_reason_and_pool() {
    let (control, _leased, stats) = serve(None);
    let reply = get(&control, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "text/plain; version=0.0.4");
    let m = parse(&reply.body);

    // Worker 0 received 3 frames (DISCOVER, REQUEST, junk), worker 1 received 3 (DISCOVER,
    // REQUEST, DISCOVER).
    assert_eq!(sample(&m, "peregrine_frames_received_total", &[]), 6);
    assert_eq!(sample(&m, "peregrine_frames_sent_total", &[]), 5);
    for (worker, frames) in [("0", 3), ("1", 3)] {
        assert_eq!(
            sample(
                &m,
                "peregrine_worker_frames_received_total",
                &[("worker", worker)]
            ),
            frames
        );
    }
    let received = |t| sample(&m, "peregrine_dhcp_messages_received_total", &[("type", t)]);
    let sent = |t| sample(&m, "peregrine_dhcp_messages_sent_total", &[("type", t)]);
    assert_eq!((received("discover"), received("request")), (3, 2));
    assert_eq!((sent("offer"), sent("ack")), (3, 2));
    for t in [
        "other", "decline", "release", "inform", "offer", "ack", "nak",
    ] {
        assert_eq!(received(t), 0, "{t}");
    }
    for t in ["other", "discover", "request", "nak"] {
        assert_eq!(sent(t), 0, "{t}");
    }

    for reason in DROP_REASONS {
        let want = u64::from(reason == "truncated");
        assert_eq!(
            sample(&m, "peregrine_drops_total", &[("reason", reason)]),
            want,
            "{reason}"
        );
    }
    for name in [
        "peregrine_arp_replies_total",
        "peregrine_icmp_echo_replies_total",
        "peregrine_leases_expired_total",
    ] {
        assert_eq!(sample(&m, name, &[]), 0, "{name}");
    }
    // Both ACKs granted a lease, so both waited for durability (trivially, with no journal).
    assert_eq!(sample(&m, "peregrine_dhcp_acks_deferred_total", &[]), 2);

    let pool = |scope, state| {
        sample(
            &m,
            "peregrine_pool_addresses",
            &[("pool", "0"), ("scope", scope), ("state", state)],
        )
    };
    let states = [
        "total",
        "active",
        "offered",
        "abandoned",
        "held_back",
        "reserved",
        "free",
    ];
    assert_eq!(
        states.map(|s| pool("relayed", s)),
        [256, 2, 1, 0, 0, 0, 253]
    );
    assert_eq!(states.map(|s| pool("direct", s)), [100, 0, 0, 0, 0, 0, 100]);
    // Every reply sent has a latency, well under a second; the gauges are there per worker.
    assert_eq!(sample(&m, "peregrine_reply_latency_seconds_count", &[]), 5);
    assert_eq!(
        sample(&m, "peregrine_reply_latency_seconds_bucket", &[("le", "1")]),
        5
    );
    for worker in ["0", "1"] {
        let labels = [("worker", worker)];
        assert_eq!(sample(&m, "peregrine_worker_held_replies", &labels), 0);
        assert!(sample(&m, "peregrine_worker_rx_burst_frames", &labels) <= 32);
        // These workers share no hand-off mesh: every series is there, at zero.
        for direction in ["out", "in", "ring_full"] {
            let labels = [("direction", direction), ("worker", worker)];
            assert_eq!(
                sample(&m, "peregrine_worker_handoff_frames_total", &labels),
                0
            );
        }
    }
    // No journal here: no journal figures.
    assert!(
        !m.keys()
            .any(|(name, _)| name.starts_with("peregrine_journal_"))
    );
    // Started a minute before the control plane: the uptime counts from `started`.
    let uptime: f64 = raw(&m, "peregrine_uptime_seconds", &[]).parse().unwrap();
    assert!((60.0..600.0).contains(&uptime), "{uptime}");

    // Read at scrape time: a counter that moves shows on the next scrape.
    stats[1].arp_replies.add(4);
    stats[0].arp_replies.add(1);
    let m = parse(&get(&control, "/metrics").body);
    assert_eq!(sample(&m, "peregrine_arp_replies_total", &[]), 5);
    control.shutdown().unwrap();
}

#[test]
fn pools_and_leases_are_served_as_json() {
    let (control, leased, _stats) = serve(None);

    let pools = json(&get(&control, "/v1/pools"));
    let pools = pools.as_array().unwrap();
    assert_eq!(pools.len(), 2);
    let relayed = pools.iter().find(|p| p["scope"] == "relayed").unwrap();
    assert_eq!(
        *relayed,
        serde_json::json!({
            "scope": "relayed", "pool": 0, "total": 256, "active": 2, "offered": 1,
            "abandoned": 0, "held_back": 0, "reserved": 0, "free": 253,
        })
    );

    let reply = get(&control, &format!("/v1/leases/{}", leased[0]));
    assert_eq!(reply.status, 200);
    let lease = json(&reply);
    assert_eq!(
        lease,
        serde_json::json!({
            "address": leased[0].to_string(),
            "scope": "relayed",
            "state": "active",
            "mac": "02:cc:00:00:00:01",
            // No option 61: the key is htype 1 and the hardware address.
            "client": { "kind": "hardware", "key": "0102cc00000001" },
            "expires": NOW + 3600,
            "cltt": NOW,
            // The relay's option 82 of the granted request.
            "circuit_id": "olt-1/1",
        })
    );

    // In a pool but never leased: a free binding with no client.
    let free = json(&get(&control, "/v1/leases/10.200.0.150"));
    assert_eq!(
        (&free["state"], &free["client"]),
        (&"free".into(), &Value::Null)
    );
    assert_eq!(free["scope"], "direct");

    let unknown = get(&control, "/v1/leases/192.0.2.1");
    assert_eq!(unknown.status, 404);
    assert!(
        json(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("192.0.2.1")
    );
    for junk in ["junk", "10.201.1.300", "10.201.1", "%3A%3A1"] {
        let reply = get(&control, &format!("/v1/leases/{junk}"));
        assert_eq!(reply.status, 400, "{junk}");
        assert!(json(&reply)["error"].is_string(), "{junk}");
    }
    control.shutdown().unwrap();
}

/// The migration sequence per scope: deactivated, the scope's clients get no answer (the old
/// server still serves them); activated, they are served again, without a restart.
#[test]
fn a_scope_is_deactivated_and_activated_through_the_api() {
    let engine = engine();
    let mut lab = Lab::new(&engine);
    let control = spawn(
        LOOPBACK,
        ControlSources {
            workers: vec![lab.stats.clone()],
            ..crate::bare(engine)
        },
    )
    .unwrap();
    let states = |control: &Control| json(&get(control, "/v1/scopes"));
    assert_eq!(
        states(&control),
        serde_json::json!([
            { "scope": "direct", "state": "active" },
            { "scope": "relayed", "state": "active" },
        ])
    );

    let off = post(&control, "/v1/scopes/relayed/deactivate");
    assert_eq!(off.status, 200);
    assert_eq!(
        json(&off),
        serde_json::json!({ "scope": "relayed", "state": "inactive" })
    );
    assert_eq!(states(&control)[1]["state"], "inactive");
    assert!(
        lab.exchange(&relayed(MessageType::Discover, 5, None))
            .is_empty(),
        "an inactive scope is silent"
    );

    assert_eq!(post(&control, "/v1/scopes/relayed/activate").status, 200);
    assert_eq!(
        lab.exchange(&relayed(MessageType::Discover, 6, None)).len(),
        1
    );

    let unknown = post(&control, "/v1/scopes/nowhere/deactivate");
    assert_eq!(unknown.status, 404);
    assert!(
        json(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("nowhere")
    );
    // Changing state takes a POST: a crawler's GET changes nothing.
    assert_eq!(get(&control, "/v1/scopes/relayed/deactivate").status, 405);
    assert_eq!(states(&control)[1]["state"], "active");
    control.shutdown().unwrap();
}

#[test]
fn health_is_ok_and_shutdown_joins_and_closes_the_port() {
    let (control, _leased, _stats) = serve(None);
    let reply = get(&control, "/healthz");
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok"));
    assert_eq!(get(&control, "/nowhere").status, 404);

    // A kept-alive connection whose second request never ends must not hold shutdown up. The
    // first request, answered, proves the server holds the connection when it stops.
    let addr = control.local_addr();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\nok") {
        let mut buf = [0u8; 512];
        let n = stalled.read(&mut buf).unwrap();
        assert_ne!(n, 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 "));
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (done, joined) = mpsc::channel();
    std::thread::spawn(move || done.send(control.shutdown()).unwrap());
    joined
        .recv_timeout(Duration::from_secs(5))
        .expect("shutdown did not join in time")
        .unwrap();
    // The connection was closed, not left hanging, and nothing listens any more.
    assert!(matches!(stalled.read(&mut [0u8; 64]), Ok(0) | Err(_)));
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let (control, _leased, _stats) = serve(None);
    let addr = control.local_addr();
    drop(control);
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn a_taken_address_is_refused_with_its_name() {
    let taken = TcpListener::bind(LOOPBACK).unwrap();
    let addr = taken.local_addr().unwrap();
    let err = spawn(
        addr,
        ControlSources {
            ..crate::bare(engine())
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn the_dashboard_and_alert_rules_name_only_metrics_that_exist() {
    // A server with everything a dashboard shows: a journal, a partner, reloads.
    let engine = engine();
    let lab = Lab::new(&engine);
    let control = spawn(
        LOOPBACK,
        ControlSources {
            workers: vec![lab.stats.clone()],
            journal: Some(Arc::new(JournalStats::default())),
            failover: Some(Arc::new(peregrine_stats::FailoverStatus::default())),
            reloads: Some(Arc::new(peregrine_stats::ReloadStats::default())),
            ..crate::bare(engine)
        },
    )
    .unwrap();
    let exposition = get(&control, "/metrics").body;
    // Every family /metrics declares, histograms under their own name.
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let packaging = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    for file in ["grafana/peregrine.json", "prometheus/peregrine-rules.yml"] {
        let text = std::fs::read_to_string(packaging.join(file)).unwrap();
        let mut named = BTreeSet::new();
        for (at, _) in text.match_indices("peregrine_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            named.insert(name);
        }
        let unknown: Vec<&String> = named
            .iter()
            .filter(|n| {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s).filter(|f| families.contains(f)))
                    .unwrap_or(n);
                !families.contains(family)
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} names {unknown:?}, which /metrics lacks"
        );
        assert!(named.len() >= 10, "{file}: {named:?}");
    }
    // The dashboard is JSON Grafana reads: every panel but rows queries something.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(packaging.join("grafana/peregrine.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                targets
                    .iter()
                    .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
                "{panel}"
            );
        }
    }
    control.shutdown().unwrap();
}
