//! Every message ISC dhcpd 4.4.3-P1 emitted in the lab (`tests/data/golden-messages.txt`, from
//! `shared/research/dhcpd-failover`) decodes to the fields the research's independent decoder
//! printed for it (`tests/data/*.decoded.txt`) and re-encodes to the same bytes.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use peregrine_failover::message::{self, BindingUpdate, Header, Message};

use crate::support::{data, unhex};

/// One golden message: the comment's type word and the bytes.
struct Golden {
    label: String,
    bytes: Vec<u8>,
}

fn golden() -> Vec<Golden> {
    let text = data("golden-messages.txt");
    let mut out = Vec::new();
    let mut label = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            label = Some(rest.to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push(Golden {
                label: label.take().expect("a comment before each message"),
                bytes: unhex(line),
            });
        }
    }
    out
}

/// The decoder's rendering of one message: its header line without the time and direction, and
/// one line per option, as `fo_decode.py` prints them.
fn blocks() -> Vec<String> {
    let mut out = Vec::new();
    for file in [
        "handshake.decoded.txt",
        "partition.decoded.txt",
        "recover.decoded.txt",
        "release.decoded.txt",
    ] {
        let mut current: Option<String> = None;
        for line in data(file).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 3 && (fields[1] == "P->S" || fields[1] == "S->P") {
                out.extend(current.take());
                current = Some(fields[2..].join(" ") + "\n");
            } else if let Some(block) = current.as_mut() {
                block.push_str(line.trim());
                block.push('\n');
            }
        }
        out.extend(current);
    }
    out
}

fn time(v: u32, header: Header) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v} (msg.time{:+}s)", i64::from(v) - i64::from(header.time))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn text(bytes: &[u8]) -> String {
    format!(
        "'{}'",
        bytes.iter().map(|&b| char::from(b)).collect::<String>()
    )
}

/// Renders what our decoder understood, field by field, in the independent decoder's format.
fn render(header: Header, message: &Message<'_>, len: usize) -> String {
    let mut s = format!(
        "{} len={len} payoff=12 xid=0x{:08x}\n",
        message.message_type().as_str(),
        header.xid
    );
    let mut opt = |code: u16, name: &str, value: String| {
        writeln!(s, "{code} {name} {value}").unwrap();
    };
    match message {
        Message::Connect(c) => {
            opt(22, "relationship-name", text(c.relationship_name));
            opt(14, "max-unacked-bndupd", c.max_unacked_bndupd.to_string());
            opt(19, "receive-timer", c.receive_timer.to_string());
            opt(28, "vendor-class-identifier", text(c.vendor_class.unwrap()));
            opt(20, "protocol-version", c.protocol_version.to_string());
            opt(27, "TLS-request", c.tls_request.unwrap().to_string());
            opt(15, "MCLT", c.mclt.to_string());
            opt(
                11,
                "hash-bucket-assignment",
                hex(c.hash_bucket_assignment.unwrap()),
            );
        }
        Message::ConnectAck(c) => {
            opt(22, "relationship-name", text(c.relationship_name.unwrap()));
            opt(
                14,
                "max-unacked-bndupd",
                c.max_unacked_bndupd.unwrap().to_string(),
            );
            opt(19, "receive-timer", c.receive_timer.unwrap().to_string());
            opt(28, "vendor-class-identifier", text(c.vendor_class.unwrap()));
            opt(
                20,
                "protocol-version",
                c.protocol_version.unwrap().to_string(),
            );
            opt(26, "TLS-reply", c.tls_reply.unwrap().to_string());
        }
        Message::State(st) => {
            let name = match st.state.as_str() {
                "RECOVER-WAIT" => "RECOVER-WAIT(ISC)",
                other => other,
            };
            opt(24, "server-state", name.into());
            opt(23, "server-flags", st.flags.to_string());
            opt(25, "start-time-of-state", time(st.start_time, header));
        }
        Message::BndUpd(batch) => {
            for u in batch.updates() {
                render_update(&mut opt, &u, header);
            }
        }
        Message::BndAck(batch) => {
            for a in batch.acks() {
                opt(2, "assigned-IP-address", a.address.to_string());
                if let Some(r) = a.reject {
                    opt(21, "reject-reason", r.0.to_string());
                }
                if let Some(m) = a.message {
                    opt(16, "message", text(m));
                }
            }
        }
        Message::PoolResp {
            addresses_transferred,
        } => opt(
            1,
            "addresses-transferred",
            addresses_transferred.to_string(),
        ),
        Message::Disconnect(d) => opt(21, "reject-reason", d.reason.0.to_string()),
        Message::PoolReq
        | Message::UpdReqAll
        | Message::UpdDone
        | Message::UpdReq
        | Message::Contact => {}
    }
    s
}

fn render_update(opt: &mut impl FnMut(u16, &str, String), u: &BindingUpdate<'_>, h: Header) {
    opt(2, "assigned-IP-address", u.address.to_string());
    opt(3, "binding-status", u.status.as_str().into());
    if let Some(id) = u.client_id {
        opt(4, "client-identifier", hex(id));
    }
    if let Some(hw) = u.hardware {
        let mut bytes = vec![hw.htype];
        bytes.extend_from_slice(hw.addr);
        opt(5, "client-hardware-address", hex(&bytes));
    }
    let times = [
        (13, "lease-expiration-time", u.lease_expiration),
        (18, "potential-expiration-time", u.potential_expiration),
        (25, "start-time-of-state", u.start_time_of_state),
        (6, "client-last-transaction-time", u.client_last_transaction),
    ];
    for (code, name, t) in times {
        if let Some(t) = t {
            opt(code, name, time(t, h));
        }
    }
    if let Some(flags) = u.ip_flags {
        opt(12, "IP-flags", format!("0x{flags:04x}"));
    }
}

/// Collapses runs of spaces, as the block parser does for the decoder's aligned columns.
fn normalise(block: &str) -> String {
    block
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_golden_message_decodes_to_the_independent_decoders_fields() {
    let blocks: Vec<String> = blocks().iter().map(|b| normalise(b)).collect();
    let golden = golden();
    assert_eq!(golden.len(), 27, "the golden file's messages");
    for g in &golden {
        let (header, message) =
            message::decode(&g.bytes).unwrap_or_else(|e| panic!("{}: {e}", g.label));
        let kind = g.label.split_whitespace().next().unwrap();
        assert_eq!(message.message_type().as_str(), kind, "{}", g.label);
        let ours = normalise(&render(header, &message, g.bytes.len()));
        assert!(
            blocks.contains(&ours),
            "{}: no message the independent decoder printed reads\n{ours}",
            g.label
        );
    }
}

#[test]
fn every_golden_message_reencodes_to_the_same_bytes() {
    for g in golden() {
        let (header, message) = message::decode(&g.bytes).unwrap();
        let mut buf = [0u8; 2048];
        // Through the typed fields: a BNDUPD or BNDACK of one transaction is rebuilt from its
        // parsed transaction, not copied.
        let len = match message {
            Message::BndUpd(batch) => {
                let updates: Vec<_> = batch.updates().collect();
                assert_eq!(updates.len(), 1, "{}: ISC never batches", g.label);
                updates[0].encode(header, &mut buf).unwrap()
            }
            Message::BndAck(batch) => {
                let acks: Vec<_> = batch.acks().collect();
                assert_eq!(acks.len(), 1, "{}", g.label);
                acks[0].encode(header, &mut buf).unwrap()
            }
            other => other.encode(header, &mut buf).unwrap(),
        };
        assert_eq!(hex(&buf[..len]), hex(&g.bytes), "{}", g.label);
    }
}

#[test]
fn an_isc_active_update_carries_what_the_lab_saw() {
    // Brief §7 A.8: the first ACK on an address gets MCLT (30 s) and a potential expiration of
    // t + MCLT/2 + the desired 300 s.
    let g = golden()
        .into_iter()
        .find(|g| g.label.starts_with("BNDUPD ACTIVE"))
        .unwrap();
    let (header, message) = message::decode(&g.bytes).unwrap();
    let Message::BndUpd(batch) = message else {
        panic!("not a BNDUPD")
    };
    let u = batch.updates().next().unwrap();
    assert_eq!(u.address, Ipv4Addr::new(10, 99, 0, 110));
    assert_eq!(u.client_id, Some(&[1, 2, 0, 0, 0, 0, 1][..]));
    let hw = u.hardware.unwrap();
    assert_eq!((hw.htype, hw.addr), (1, &[2, 0, 0, 0, 0, 1][..]));
    let t = u.client_last_transaction.unwrap();
    assert_eq!(t, header.time);
    assert_eq!(u.lease_expiration, Some(t + 30));
    assert_eq!(u.potential_expiration, Some(t + 15 + 300));
    assert_eq!(u.ip_flags, None, "ISC omits zero IP flags");
}
