//! Replays the ISC lab's conversations (`tests/data/*.messages.txt`, written from the captures by
//! `scripts/failover-captures.py`): our session, in the secondary role, is fed the ISC primary's
//! messages at the capture's times and must go through the states ISC's secondary went through,
//! and send the same kinds of message in the same order (CONTACTs, whose timing is free, aside).
//!
//! What ISC's secondary sent because of its own database (its BNDUPDs) is reproduced by the test's
//! caller: the updates that answered the primary's UPDREQALL are queued when our session asks for
//! them, the others at the time ISC sent them; the primary's BNDACKs are renumbered from ISC's
//! transaction ids to ours (the address tells which).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use peregrine_failover::binding::Binding;
use peregrine_failover::codec::MAX_MESSAGE_LEN;
use peregrine_failover::hash::HashBucketAssignment;
use peregrine_failover::message::{self, Message, State};
use peregrine_failover::{CloseReason, Event, Restored, Role, ServerState, Session, Time};

use crate::pair::config;
use crate::support::{data, unhex};

struct Line {
    time: Time,
    from_primary: bool,
    bytes: Vec<u8>,
}

fn capture(name: &str) -> Vec<Line> {
    data(&format!("{name}.messages.txt"))
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            // Whole seconds, as the session counts them.
            let time = f
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            Line {
                time,
                from_primary: f.next().unwrap() == "P->S",
                bytes: unhex(f.next().unwrap()),
            }
        })
        .collect()
}

/// What a secondary says, as compared: message kinds without CONTACT and with repeats folded
/// (ISC sends UPDREQALL twice), and its STATEs as (state, flags).
#[derive(Default, Debug, PartialEq, Eq)]
struct Said {
    kinds: Vec<&'static str>,
    states: Vec<(ServerState, u8)>,
}

impl Said {
    fn push(&mut self, bytes: &[u8]) {
        let (_, m) = message::decode(bytes).unwrap();
        if let Message::State(State { state, flags, .. }) = m {
            self.states.push((state, flags));
        }
        let kind = m.message_type().as_str();
        if kind != "CONTACT" && self.kinds.last() != Some(&kind) {
            self.kinds.push(kind);
        }
    }
}

/// What our secondary said, the transaction id of its last update for each address, and why
/// it closed the link, if it did.
#[derive(Default)]
struct Ours {
    said: Said,
    xids: HashMap<Ipv4Addr, u32>,
    closed: Vec<CloseReason>,
}

impl Ours {
    fn record(&mut self, (sent, closed): (Vec<Vec<u8>>, Vec<CloseReason>)) {
        for m in &sent {
            self.said.push(m);
            if let Some((xid, b)) = update_of(m) {
                self.xids.insert(b.address, xid);
            }
        }
        self.closed.extend(closed);
    }
}

fn update_of(bytes: &[u8]) -> Option<(u32, Binding)> {
    match message::decode(bytes).ok()? {
        (h, Message::BndUpd(batch)) => {
            let u = batch.updates().next()?;
            Some((h.xid, Binding::from_update(&u, 0)))
        }
        _ => None,
    }
}

/// Replays `name` against our secondary started from `restored` at the first message's time,
/// after `preamble` (messages from a primary that bring it where ISC's secondary was when the
/// capture began). Returns what ISC's secondary said and what ours said.
fn replay(name: &str, restored: Option<Restored>, preamble: &[Vec<u8>]) -> (Said, Said) {
    let lines = capture(name);
    let start = lines[0].time;
    let mut session = Session::new(config(Role::Secondary), restored, start - 100);
    if !preamble.is_empty() {
        session.connected(start - 100);
        for m in preamble {
            session.handle(start - 100, m);
        }
        serve(&mut session, start - 100, &mut None);
        session.disconnected(start - 60);
        serve(&mut session, start - 60, &mut None);
    }

    // ISC's secondary's own updates: those answering the primary's UPDREQALL, and the others.
    let first_request = lines.iter().position(|l| {
        l.from_primary && matches!(message::decode(&l.bytes), Ok((_, Message::UpdReqAll)))
    });
    let done = lines.iter().position(|l| {
        !l.from_primary && matches!(message::decode(&l.bytes), Ok((_, Message::UpdDone)))
    });
    let mut answer = Vec::new();
    let mut isc_xids: HashMap<u32, Ipv4Addr> = HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some((xid, b)) = update_of(&l.bytes).filter(|_| !l.from_primary) {
            isc_xids.insert(xid, b.address);
            if first_request.is_some_and(|f| i > f) && done.is_some_and(|d| i < d) {
                answer.push(b);
            }
        }
    }
    let mut answer = Some(answer);

    let mut isc = Said::default();
    let mut ours = Ours::default();
    let mut now = start;
    for (i, l) in lines.iter().enumerate() {
        while now < l.time {
            now += 1;
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
            ours.record(serve(&mut session, now, &mut answer));
        }
        if l.from_primary {
            let mut bytes = l.bytes.clone();
            match message::decode(&bytes) {
                Ok((_, Message::Connect(_))) => session.connected(now),
                Ok((h, Message::BndAck(_))) => {
                    let address = isc_xids[&h.xid];
                    bytes[8..12].copy_from_slice(&ours.xids[&address].to_be_bytes());
                }
                _ => {}
            }
            session.handle(now, &bytes);
        } else {
            isc.push(&l.bytes);
            let spontaneous =
                !(first_request.is_some_and(|f| i > f) && done.is_some_and(|d| i < d));
            if let Some((_, b)) = update_of(&l.bytes).filter(|_| spontaneous) {
                session.send_update(b);
            }
        }
        ours.record(serve(&mut session, now, &mut answer));
    }
    assert!(
        ours.closed.is_empty(),
        "{name}: our session closed the link: {:?}",
        ours.closed
    );
    (isc, ours.said)
}

/// Carries out the session's events as a server would (accepting every update) and returns
/// what it writes, and why it closed the link if it did.
fn serve(
    session: &mut Session,
    now: Time,
    answer: &mut Option<Vec<Binding>>,
) -> (Vec<Vec<u8>>, Vec<CloseReason>) {
    let mut closed = Vec::new();
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                Event::StateChanged { .. } => session.state_persisted(),
                Event::Update { xid, binding, .. } => {
                    session.ack_update(xid, binding.address, Ok(()));
                }
                Event::UpdateRequest { .. } => {
                    for b in answer.take().unwrap_or_default() {
                        session.send_update(b);
                    }
                    session.update_request_queued();
                }
                Event::Closed(reason) => closed.push(reason),
                _ => {}
            }
        }
        match session.poll_transmit(now, &mut buf) {
            Some(len) => out.push(buf[..len].to_vec()),
            None if session.poll_event().is_none() => return (out, closed),
            None => {}
        }
    }
}

#[test]
fn the_handshake_of_a_fresh_pair_as_iscs_secondary() {
    use ServerState::{Normal, Recover, RecoverDone};
    let (isc, ours) = replay("handshake", None, &[]);
    assert_eq!(
        isc.states,
        [(Recover, 1), (Recover, 0), (RecoverDone, 0), (Normal, 0)]
    );
    assert_eq!(ours.states, isc.states);
    assert_eq!(ours.kinds, isc.kinds);
}

#[test]
fn a_partition_healed_as_iscs_secondary() {
    use ServerState::{CommunicationsInterrupted, Normal};
    // Before the capture: a pair in NORMAL whose link was then cut (the capture starts as it
    // comes back).
    let start = capture("partition")[0].time - 100;
    let time = u32::try_from(start).unwrap();
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let connect = Message::Connect(message::Connect {
        relationship_name: b"fo-test",
        max_unacked_bndupd: 10,
        receive_timer: 30,
        vendor_class: Some(b"isc-4.4.3-P1"),
        protocol_version: 1,
        tls_request: Some(0),
        mclt: 30,
        hash_bucket_assignment: Some(&HashBucketAssignment::split(128).0),
    });
    let len = connect
        .encode(message::Header { time, xid: 0 }, &mut buf)
        .unwrap();
    let connect = buf[..len].to_vec();
    let normal = Message::State(State {
        state: ServerState::Normal,
        flags: 0,
        start_time: time,
    });
    let len = normal
        .encode(message::Header { time, xid: 1 }, &mut buf)
        .unwrap();
    let normal = buf[..len].to_vec();
    let restored = Restored {
        state: ServerState::Normal,
        start_time: start - 1000,
        mclt: Some(30),
    };
    let (isc, ours) = replay("partition", Some(restored), &[connect, normal]);
    assert_eq!(isc.states, [(CommunicationsInterrupted, 0), (Normal, 0)]);
    assert_eq!(ours.states, isc.states);
    // Which of the updates and acks leave first depends on timing (ISC held its BNDACKs for two
    // seconds); the kinds are the same.
    let kinds = |s: &Said| {
        s.kinds
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(kinds(&ours), kinds(&isc));
}

#[test]
fn a_lost_database_recovered_from_iscs_partner_down_primary() {
    use ServerState::{Normal, Recover, RecoverDone, RecoverWait};
    let (isc, ours) = replay("recover", None, &[]);
    assert_eq!(
        isc.states,
        [
            (Recover, 1),
            (Recover, 0),
            (RecoverWait, 0),
            (RecoverDone, 0),
            (Normal, 0)
        ]
    );
    assert_eq!(ours.states, isc.states);
    // Ours asks once more (UPDREQ) when ISC leaves PARTNER-DOWN for NORMAL: what ISC granted
    // in PARTNER-DOWN may still be queued behind that STATE, and our own addresses wait for it.
    // (Runs of one kind show once.)
    let (head, tail) = isc.kinds.split_at(4);
    assert_eq!(tail, ["STATE", "BNDACK"]);
    assert_eq!(ours.kinds[..4], *head);
    assert_eq!(ours.kinds[4..], ["STATE", "UPDREQ", "STATE", "BNDACK"]);
}

#[test]
fn a_secondary_advertises_twice_iscs_window_so_isc_acknowledges_without_waiting() {
    // ISC flushes its BNDACKs once half the window its partner advertised is pending (else
    // after two seconds): a window larger than twice ISC's own would make it wait every time.
    let connect = |vendor: &'static [u8], window: u32| {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let len = Message::Connect(message::Connect {
            relationship_name: b"fo-test",
            max_unacked_bndupd: window,
            receive_timer: 30,
            vendor_class: Some(vendor),
            protocol_version: 1,
            tls_request: Some(0),
            mclt: 30,
            hash_bucket_assignment: Some(&HashBucketAssignment::split(128).0),
        })
        .encode(
            message::Header {
                time: 1_000,
                xid: 0,
            },
            &mut buf,
        )
        .unwrap();
        buf[..len].to_vec()
    };
    for (vendor, theirs, ours, advertised) in [
        (&b"isc-4.4.3-P1"[..], 10, 1024, 20),
        (&b"isc-4.4.3-P1"[..], 1000, 1024, 1024),
        (&b"peregrine/0.1.0"[..], 10, 1024, 1024),
    ] {
        let mut config = config(Role::Secondary);
        config.max_unacked_bndupd = ours;
        let mut session = Session::new(config, None, 1_000);
        session.connected(1_000);
        session.handle(1_000, &connect(vendor, theirs));
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let mut said = None;
        while let Some(len) = session.poll_transmit(1_000, &mut buf) {
            if let Ok((_, Message::ConnectAck(ack))) = message::decode(&buf[..len]) {
                said = ack.max_unacked_bndupd;
            }
        }
        assert_eq!(said, Some(advertised), "{vendor:?} advertising {theirs}");
    }
}

#[test]
fn a_primary_connects_again_advertising_twice_iscs_window() {
    let mut config = config(Role::Primary);
    config.max_unacked_bndupd = 1024;
    let mut session = Session::new(config, None, 1_000);
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    // What the session writes on a new connection, and the window its CONNECT advertises.
    let mut connect = |session: &mut Session| {
        session.connected(1_000);
        let mut window = None;
        while let Some(len) = session.poll_transmit(1_000, &mut buf) {
            if let Ok((_, Message::Connect(c))) = message::decode(&buf[..len]) {
                window = Some(c.max_unacked_bndupd);
            }
        }
        window
    };
    let isc_ack = {
        let mut out = [0u8; MAX_MESSAGE_LEN];
        let len = Message::ConnectAck(message::ConnectAck {
            relationship_name: Some(b"fo-test"),
            max_unacked_bndupd: Some(10),
            receive_timer: Some(30),
            vendor_class: Some(b"isc-4.4.3-P1"),
            protocol_version: Some(1),
            tls_reply: Some(0),
            reject: None,
            message: None,
        })
        .encode(
            message::Header {
                time: 1_000,
                xid: 0,
            },
            &mut out,
        )
        .unwrap();
        out[..len].to_vec()
    };
    assert_eq!(connect(&mut session), Some(1024));
    session.handle(1_000, &isc_ack);
    let mut closed = Vec::new();
    while let Some(event) = session.poll_event() {
        if let Event::Closed(reason) = event {
            closed.push(reason);
        }
    }
    assert_eq!(closed, [CloseReason::Renegotiate]);
    // Connected again: twice ISC's window, and this time the handshake goes on (STATE).
    assert_eq!(connect(&mut session), Some(20));
    session.handle(1_000, &isc_ack);
    let mut kinds = Vec::new();
    while let Some(len) = session.poll_transmit(1_000, &mut buf) {
        if let Ok((_, m)) = message::decode(&buf[..len]) {
            kinds.push(matches!(m, Message::State(_)));
        }
    }
    assert!(kinds.contains(&true), "no STATE after the second handshake");
    while let Some(event) = session.poll_event() {
        assert!(!matches!(event, Event::Closed(_)), "{event:?}");
    }
}
