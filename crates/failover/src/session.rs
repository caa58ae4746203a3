//! The failover partner session: one server's side of a relationship, as a deterministic state
//! machine in the quinn-proto style. It owns the server state of D12 §9, the connection
//! handshake, liveness, flow control and the bookkeeping of binding updates both ways. It does
//! no I/O and reads no clock: the caller feeds it messages and the time, and carries out what
//! it asks.
//!
//! ```text
//!   connected(now) / handle(now, msg) / disconnected(now) / handle_timeout(now)
//!        |                                                        ^
//!        v                                                        |
//!   poll_transmit(now, buf) -> bytes to write     poll_timeout() -> when to call handle_timeout
//!   poll_event() -> state changes to persist, partner's updates to install, requests to serve
//! ```
//!
//! A state change comes out as [`Event::StateChanged`]; the caller makes it durable and calls
//! [`Session::state_persisted`], and only then does the STATE message leave (S12). A partner's
//! binding update comes out as [`Event::Update`]; the caller decides with
//! [`crate::binding::accept_update`], makes the outcome durable and answers with
//! [`Session::ack_update`], and only then does the BNDACK leave (S4).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use crate::binding::{Binding, Role, check_update};
use crate::codec::MessageType;
use crate::hash::{BitOrder, HashBucketAssignment};
use crate::message::{
    self, Batch, BindingAck, Connect, ConnectAck, Disconnect, Header, Message, RejectReason, State,
};
use crate::queue::UpdateQueue;
use crate::state::ServerState;
use crate::{Error, Time};

/// The MCLT a primary offers when none is configured: one hour, as ISC's example and Windows.
pub const DEFAULT_MCLT: u32 = 3600;

/// A relationship as one side configures it (ISC's `failover peer` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This server's role.
    pub role: Role,
    /// The relationship's name; both sides must use the same.
    pub relationship_name: Box<[u8]>,
    /// Primary: the MCLT it offers in CONNECT ([`DEFAULT_MCLT`] if `None`). Secondary: `None`
    /// takes the primary's, as ISC's secondary does; a value refuses a CONNECT that differs.
    pub mclt: Option<u32>,
    /// Primary: the buckets it answers in NORMAL (ISC `split 128` is
    /// [`HashBucketAssignment::split`]`(128)`). The secondary takes the primary's from CONNECT.
    pub hash_bucket_assignment: HashBucketAssignment,
    /// How many of the partner's BNDUPDs this side accepts unacknowledged (ISC
    /// `max-unacked-updates`).
    pub max_unacked_bndupd: u32,
    /// Seconds without a message after which this side drops the connection (ISC
    /// `max-response-delay`); the partner sends CONTACT often enough to prevent it.
    pub receive_timer: u32,
    /// The largest clock difference accepted at CONNECT, seconds (ISC: 60).
    pub max_clock_skew: u32,
    /// This server's vendor class, sent in CONNECT and CONNECTACK.
    pub vendor_class: Box<[u8]>,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which to enter PARTNER-DOWN on its own (ISC
    /// `auto-partner-down`); `None` (the default) waits for the operator.
    pub safe_period: Option<u32>,
}

/// What a server keeps on disk about its relationship, and starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Restored {
    /// The state it was in.
    pub state: ServerState,
    /// When it entered it.
    pub start_time: Time,
    /// The MCLT in force (the secondary learns it from CONNECT and must remember it).
    pub mclt: Option<u32>,
}

/// Why the session closed a connection. Each is counted by the caller under [`Self::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// A message could not be decoded.
    Malformed(Error),
    /// A message type below 128 that the protocol does not define.
    UnknownType(u8),
    /// A message not allowed here (a CONNECT to the primary, a BNDUPD before the handshake,
    /// two CONNECTs).
    Unexpected(MessageType),
    /// The partner's CONNECT was refused, for this reason.
    Refused(RejectReason),
    /// The partner refused our CONNECT, for this reason.
    RefusedByPartner(RejectReason),
    /// The partner sent DISCONNECT, for this reason.
    DisconnectedByPartner(RejectReason),
    /// Nothing arrived for the receive timer.
    ReceiveTimeout,
    /// A BNDACK or UPDDONE for no outstanding request.
    UnexpectedAnswer,
    /// The partner sent more BNDUPDs than this side accepts unacknowledged.
    FlowControl,
    /// The transport was lost (reported by the caller).
    Transport,
    /// Closed by us right after the handshake, to connect again advertising a smaller window
    /// that the partner (ISC) needs to acknowledge without waiting (see the session's CONNECT).
    Renegotiate,
}

impl CloseReason {
    /// A short, stable, lower-case name, used as a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Malformed(_) => "malformed",
            CloseReason::UnknownType(_) => "unknown_type",
            CloseReason::Unexpected(_) => "unexpected_message",
            CloseReason::Refused(_) => "refused",
            CloseReason::RefusedByPartner(_) => "refused_by_partner",
            CloseReason::DisconnectedByPartner(_) => "disconnected_by_partner",
            CloseReason::ReceiveTimeout => "receive_timeout",
            CloseReason::UnexpectedAnswer => "unexpected_answer",
            CloseReason::FlowControl => "flow_control",
            CloseReason::Transport => "transport",
            CloseReason::Renegotiate => "renegotiate_window",
        }
    }
}

/// Whether a partner's update crossed one of ours ([`Session::crossing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// It did not.
    None,
    /// At the primary: refuse the partner's with reason 16; ours stands.
    OursWins,
    /// At the secondary: take the primary's, however old it looks here (unless the draft's
    /// table refuses it): the primary refuses ours.
    TheirsWins,
}

/// What the session asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server state changed: make it durable, then call [`Session::state_persisted`]. The
    /// STATE message waits for that; the caller publishes the new state to the workers.
    StateChanged {
        /// The new state.
        state: ServerState,
        /// When it was entered.
        since: Time,
    },
    /// The secondary learned the MCLT from CONNECT: keep it with the state.
    McltLearned(u32),
    /// The partner sent a binding: decide (see [`crate::binding::accept_update`]), make the
    /// outcome durable, then call [`Session::ack_update`] with `xid`. Times are on our clock.
    Update {
        /// The BNDUPD's transaction id, to pass back.
        xid: u32,
        /// The binding.
        binding: Binding,
        /// Whether it crossed one of ours as it arrived ([`Session::crossing`]; at the primary,
        /// ask again as it is carried out).
        crossing: Crossing,
    },
    /// The partner acknowledged (or refused) one of our updates.
    Acked {
        /// The address.
        address: Ipv4Addr,
        /// The status the update carried.
        status: crate::BindingStatus,
        /// The potential expiration time the update carried: now acknowledged, if accepted.
        potential_expiration: Time,
        /// `Ok` if accepted.
        result: Result<(), RejectReason>,
    },
    /// The partner asked for bindings (UPDREQALL: every one; UPDREQ: those it has not
    /// acknowledged): queue them with [`Session::send_update`], then call
    /// [`Session::update_request_queued`]; UPDDONE leaves once they are all acknowledged.
    UpdateRequest {
        /// Whether every binding is asked for.
        all: bool,
    },
    /// The secondary asked for addresses (POOLREQ `xid`): move some to BACKUP, queue their
    /// updates, and answer with [`Session::pool_response`].
    PoolRequest {
        /// The request's transaction id, for the answer.
        xid: u32,
    },
    /// The primary answered our POOLREQ.
    PoolResponse(u32),
    /// Close the connection once what [`Session::poll_transmit`] still gives is written.
    Closed(CloseReason),
}

/// Where the connection is in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    /// Secondary: connected, waiting for CONNECT.
    AwaitConnect,
    /// Primary: CONNECT sent, waiting for CONNECTACK.
    AwaitConnectAck,
    /// Handshake done, waiting for the partner's first STATE.
    AwaitState,
    /// Communications OK (D12 §8.3): TCP, CONNECT/CONNECTACK and a STATE from the partner.
    Up,
}

/// What the partner told us about itself on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partner {
    /// Its state and when it entered it (on our clock), once it sent a STATE.
    state: Option<(ServerState, Time)>,
    max_unacked: u32,
    receive_timer: u32,
    /// Its clock minus ours, seconds.
    skew: i64,
    isc: bool,
}

/// Whether a partner's vendor class names ISC dhcpd.
fn is_isc(vendor_class: Option<&[u8]>) -> bool {
    vendor_class.is_some_and(|v| v.starts_with(b"isc-"))
}

/// The window to advertise to an ISC partner whose own is `theirs`: ISC holds its
/// acknowledgements until half the window its partner advertised is pending (or two seconds
/// have passed) and sends at most its own window unacknowledged, so with a window above twice
/// its own every acknowledgement would wait; twice its own lets it answer each full window.
fn window_for_isc(theirs: u32) -> u32 {
    theirs.saturating_mul(2).max(2)
}

/// A message waiting to be written. BNDUPDs wait in their own queue, behind flow control.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outgoing {
    Connect,
    ConnectAck(Option<RejectReason>),
    State {
        state: ServerState,
        since: Time,
        flags: u8,
        /// Our updates up to this sequence number leave first: the partner learns what we did
        /// in a state before it learns we left it (pair simulation, seed 4522: grants made in
        /// PARTNER-DOWN arriving after the state that ended it).
        after: u64,
    },
    UpdReqAll,
    UpdReq,
    UpdDone(u32),
    BndAck(u32, Vec<(Ipv4Addr, Option<RejectReason>)>),
    Contact,
    PoolReq,
    PoolResp(u32, u32),
    Disconnect(RejectReason),
}

/// A received BNDUPD whose transactions the caller has not all answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inbound {
    xid: u32,
    expected: usize,
    acks: Vec<(Ipv4Addr, Option<RejectReason>)>,
}

/// One of our updates, sent and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    xid: u32,
    seq: u64,
    binding: Binding,
}

/// The partner's UPDREQ or UPDREQALL being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Serving {
    xid: u32,
    /// Updates queued up to this sequence number answer it; `None` until the caller has queued
    /// them all.
    through: Option<u64>,
}

/// One server's side of a failover relationship. See the module docs for the caller's loop.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: ServerState,
    since: Time,
    /// State changes the caller has not confirmed durable yet, oldest first: each one's STATE
    /// leaves when it is confirmed.
    unpersisted: VecDeque<(ServerState, Time)>,
    /// The state and its start before the oldest unconfirmed change: what the partner may be
    /// told while changes wait.
    persisted_state: ServerState,
    persisted_since: Time,
    /// Set at start until the partner's first STATE: ours carry the STARTUP flag till then.
    startup: bool,
    /// A server restarted from its saved state is in STARTUP, answering no client, until it
    /// hears its partner's state or this time passes (D12 §9.3): what it may serve depends on
    /// what the partner did meanwhile (a survivor in PARTNER-DOWN may hold its addresses).
    starting_until: Option<Time>,
    mclt: Option<u32>,
    hba: HashBucketAssignment,
    link: Link,
    partner: Option<Partner>,
    /// The window we advertise (CONNECT, CONNECTACK): `max_unacked_bndupd`, or twice an ISC
    /// partner's own (see [`Session::on_connect`] and [`Session::on_connect_ack`]).
    advertised_unacked: u32,
    last_received: Time,
    last_sent: Time,
    next_xid: u32,
    control: VecDeque<Outgoing>,
    /// The last messages of a connection the session closed (a refusal, a DISCONNECT).
    farewell: VecDeque<Outgoing>,
    /// Our updates waiting for room under the partner's max-unacked-bndupd.
    queued: UpdateQueue,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    inbound: VecDeque<Inbound>,
    serving: Option<Serving>,
    /// Our UPDREQ(ALL) waiting for the partner's UPDDONE.
    requested: Option<Requested>,
    recover_wait_until: Option<Time>,
    events: VecDeque<Event>,
    partner_last_state: Option<ServerState>,
    /// The partner's last PARTNER-DOWN as this session saw it: while it lasts the partner may
    /// allocate this server's addresses.
    partner_down: PartnerDownSeen,
    /// When a session started without a saved state (a lost or new lease database): leases
    /// it granted before and forgot run at most the MCLT past this.
    started_empty: Option<Time>,
    /// Whether this server knows every binding its partner knows: it kept its database, or it
    /// has had the answer to an UPDREQALL since it started without.
    whole: bool,
    /// Until when what a partner that lost its database granted and forgot may run: the
    /// MCLT after this session heard it in RECOVER.
    partner_forgot_until: Time,
    /// At the secondary: addresses whose update the primary refused for its own (reason 16),
    /// until the primary's arrives (see [`Session::crossing`]).
    yielded: std::collections::HashSet<Ipv4Addr>,
}

/// What our outstanding UPDREQ(ALL) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    /// The partner's unacknowledged updates (UPDREQ).
    Unacked,
    /// Everything (UPDREQALL).
    All,
}

/// Whether, and until when, this session saw its partner in PARTNER-DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartnerDownSeen {
    Never,
    /// Last heard in PARTNER-DOWN.
    Ongoing,
    /// Heard in another state since, but what it granted in PARTNER-DOWN may still be on its
    /// way, queued behind that STATE: asked for (UPDREQ), until its UPDDONE.
    Ending,
    /// Heard in another state at this time, after PARTNER-DOWN.
    Ended(Time),
}

impl Session {
    /// A session starting at `now` from what was kept on disk (`None`: never ran failover, or
    /// lost its database: it starts in RECOVER and asks the partner for everything).
    pub fn new(config: Config, restored: Option<Restored>, now: Time) -> Session {
        // The saved state stays until the startup decision; no record means RECOVER.
        let (state, since, mclt) = match restored {
            Some(r) => (r.state, r.start_time, r.mclt),
            None => (ServerState::Recover, now, None),
        };
        let mclt = match config.role {
            Role::Primary => Some(config.mclt.unwrap_or(DEFAULT_MCLT)),
            Role::Secondary => config.mclt.or(mclt),
        };
        let starting_until = restored.map(|_| now + u64::from(config.receive_timer));
        let window = config.max_unacked_bndupd;
        let mut session = Session {
            hba: config.hash_bucket_assignment,
            config,
            state,
            since,
            unpersisted: VecDeque::new(),
            persisted_state: state,
            persisted_since: since,
            startup: true,
            starting_until,
            mclt,
            link: Link::Down,
            partner: None,
            advertised_unacked: window,
            last_received: now,
            last_sent: now,
            next_xid: 0,
            control: VecDeque::new(),
            farewell: VecDeque::new(),
            queued: UpdateQueue::default(),
            in_flight: VecDeque::new(),
            next_seq: 0,
            inbound: VecDeque::new(),
            serving: None,
            requested: None,
            recover_wait_until: None,
            events: VecDeque::new(),
            partner_last_state: None,
            partner_down: PartnerDownSeen::Never,
            started_empty: restored.is_none().then_some(now),
            whole: restored.is_some(),
            partner_forgot_until: 0,
            yielded: std::collections::HashSet::new(),
        };
        if restored.is_none() {
            session.enter(state, now);
        }
        session
    }

    /// This server's role in the relationship.
    pub const fn role(&self) -> Role {
        self.config.role
    }

    /// The server state: STARTUP until the startup decision.
    pub const fn state(&self) -> ServerState {
        if self.starting_until.is_some() {
            ServerState::Startup
        } else {
            self.state
        }
    }

    /// The startup decision's first half: the saved state, through the communication-failed
    /// transition (D12 §9.3.2), becomes the state, and the caller learns it (the service).
    /// The partner's state, if heard, then moves it on like any state it reports.
    fn end_startup(&mut self, now: Time) {
        if self.starting_until.take().is_none() {
            return;
        }
        let next = self.state.after_restart();
        if next == self.state {
            self.events.push_back(Event::StateChanged {
                state: self.state,
                since: self.since,
            });
        } else {
            // A state the restart moved through is a change like any other: kept before told.
            self.enter(next, now);
        }
    }

    /// When the server entered its state.
    pub const fn since(&self) -> Time {
        self.since
    }

    /// The state the partner last reported, on this connection or an earlier one since this
    /// session started (`None`: never heard). A partner last seen in PARTNER-DOWN may have
    /// allocated this server's addresses too.
    pub const fn partner_last_state(&self) -> Option<ServerState> {
        self.partner_last_state
    }

    /// The partner's last reported state, while communications are OK.
    pub fn partner_state(&self) -> Option<ServerState> {
        self.partner.and_then(|p| p.state).map(|(s, _)| s)
    }

    /// The MCLT in force, once known (the secondary learns it from the first CONNECT).
    pub const fn mclt(&self) -> Option<u32> {
        self.mclt
    }

    /// The partner's clock minus ours, measured at the handshake.
    pub fn clock_skew(&self) -> Option<i64> {
        self.partner.map(|p| p.skew)
    }

    /// Whether communications are OK (D12 §8.3).
    pub fn communicating(&self) -> bool {
        self.link == Link::Up
    }

    /// Whether this server answers a client whose RFC 3074 bucket is `bucket` in NORMAL.
    pub fn answers_bucket(&self, bucket: u8) -> bool {
        let order = if self.partner.is_some_and(|p| p.isc) {
            BitOrder::Isc
        } else {
            BitOrder::Draft
        };
        let primary = self.hba.primary_answers(bucket, order);
        match self.config.role {
            Role::Primary => primary,
            Role::Secondary => !primary,
        }
    }

    /// From when this server may allocate its own available addresses. A partner seen in
    /// PARTNER-DOWN may have allocated them until it left it, and renews what it granted for
    /// as long as its clients ask: this server learns of those grants from the updates the
    /// partner sends before the state that ends PARTNER-DOWN, and may allocate from when it
    /// hears that state. While the partner is last known in PARTNER-DOWN, never
    /// (`Time::MAX`), unless this server is in PARTNER-DOWN itself: then the MCLT after it
    /// entered it (pair simulation, seeds 15, 688, 820, 867, 4522: a survivor's grants not yet
    /// heard of by a server recovering, resolving a conflict, or cut off again). A server
    /// that started without its database waits the MCLT after it started, too.
    pub fn own_addresses_from(&self) -> Time {
        let mclt = Time::from(self.mclt.unwrap_or(DEFAULT_MCLT));
        let in_partner_down = self.state() == ServerState::PartnerDown;
        // What a server that lost its database granted and forgot may still run: RECOVER-WAIT
        // waits for it, and so must the way through POTENTIAL-CONFLICT (seed 16940).
        // Until it has heard everything the partner knows it cannot tell how far its forgotten
        // leases were promised (seed 697: a recovering primary resolving a conflict asked only
        // for the partner's unacknowledged updates, and reused an address it had leased).
        let forgotten = match self.started_empty {
            Some(_) if !self.whole => Time::MAX,
            Some(t) => t + mclt,
            None => 0,
        };
        let partner = match self.partner_down {
            PartnerDownSeen::Ended(at) => at,
            // Never heard since this server started: the partner may be anywhere.
            PartnerDownSeen::Never if in_partner_down && self.partner_last_state.is_none() => {
                self.since + mclt
            }
            PartnerDownSeen::Never => 0,
            PartnerDownSeen::Ongoing if in_partner_down => self.since + mclt,
            PartnerDownSeen::Ongoing | PartnerDownSeen::Ending => Time::MAX,
        };
        partner.max(forgotten).max(self.partner_forgot_until)
    }

    /// How many of our updates wait for room or for their acknowledgement.
    pub fn pending_updates(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    /// A connection to the partner is up (either side opened it). The primary sends CONNECT on
    /// it, whichever side opened it (ISC does the same).
    pub fn connected(&mut self, now: Time) {
        if self.link != Link::Down {
            self.lost(now);
        }
        self.last_received = now;
        self.last_sent = now;
        self.next_xid = 0;
        self.farewell.clear();
        // Nothing said for an earlier connection goes out on this one (seed 8934: a POOLRESP
        // queued after the link fell reached a partner still waiting for CONNECT).
        self.control.clear();
        match self.config.role {
            Role::Primary => {
                self.link = Link::AwaitConnectAck;
                self.control.push_back(Outgoing::Connect);
            }
            Role::Secondary => self.link = Link::AwaitConnect,
        }
    }

    /// The connection was lost (reset, closed, or closed by the caller after [`Event::Closed`]).
    pub fn disconnected(&mut self, now: Time) {
        if self.link != Link::Down {
            self.lost(now);
        }
    }

    /// One message from the partner (framed with [`crate::codec::frame_len`]).
    pub fn handle(&mut self, now: Time, bytes: &[u8]) {
        if self.link == Link::Down {
            return;
        }
        self.last_received = now;
        let (header, message) = match message::decode(bytes) {
            Ok(decoded) => decoded,
            // D12 §6.1: types 128-255 are optional and ignored if unknown.
            Err(Error::UnknownType(t)) if t >= 128 => return,
            Err(Error::UnknownType(t)) => return self.close(now, CloseReason::UnknownType(t)),
            Err(e) => return self.close(now, CloseReason::Malformed(e)),
        };
        match (self.link, message) {
            (Link::AwaitConnect, Message::Connect(c)) => self.on_connect(now, header, &c),
            (Link::AwaitConnectAck, Message::ConnectAck(a)) => {
                self.on_connect_ack(now, header, &a);
            }
            (_, Message::Disconnect(d)) => {
                self.close(now, CloseReason::DisconnectedByPartner(d.reason));
            }
            (Link::AwaitState | Link::Up, m) => self.on_message(now, header, m),
            (_, m) => self.close(now, CloseReason::Unexpected(m.message_type())),
        }
    }

    /// Time has reached what [`Session::poll_timeout`] said.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.link != Link::Down {
            if now >= self.last_received + u64::from(self.config.receive_timer) {
                let last = Outgoing::Disconnect(RejectReason::NO_TRAFFIC_WITHIN_TIMEOUT);
                return self.close_with(now, CloseReason::ReceiveTimeout, Some(last));
            }
            if matches!(self.link, Link::AwaitState | Link::Up)
                && self.control.is_empty()
                && now >= self.last_sent + self.contact_interval()
            {
                self.control.push_back(Outgoing::Contact);
            }
        }
        if self.starting_until.is_some_and(|t| now >= t) {
            // STARTUP is over: the STARTUP flag with it, or a partner that meets us later
            // would ignore our state as a starter's (seed 3708: two servers in PARTNER-DOWN
            // each ignored the other's and both served).
            self.startup = false;
            self.end_startup(now);
        }
        if let Some(until) = self.recover_wait_until
            && self.state == ServerState::RecoverWait
            && now >= until
        {
            self.recover_wait_until = None;
            self.enter(ServerState::RecoverDone, now);
        }
        if let Some(period) = self.config.safe_period
            && self.state == ServerState::CommunicationsInterrupted
            && now >= self.since + u64::from(period)
        {
            self.enter(ServerState::PartnerDown, now);
        }
    }

    /// When [`Session::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut at = |t: Time| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = self.starting_until {
            at(t);
        }
        if self.link != Link::Down {
            at(self.last_received + u64::from(self.config.receive_timer));
            if matches!(self.link, Link::AwaitState | Link::Up) {
                at(self.last_sent + self.contact_interval());
            }
        }
        if self.state == ServerState::RecoverWait
            && let Some(until) = self.recover_wait_until
        {
            at(until);
        }
        if self.state == ServerState::CommunicationsInterrupted
            && let Some(period) = self.config.safe_period
        {
            at(self.since + u64::from(period));
        }
        next
    }

    /// The next message to write, encoded into `buf` (2048 bytes always suffice); its length.
    pub fn poll_transmit(&mut self, now: Time, buf: &mut [u8]) -> Option<usize> {
        let time = u32::try_from(now).unwrap_or(u32::MAX);
        if let Some(out) = self.farewell.pop_front() {
            return self.encode(&out, time, buf);
        }
        if self.link == Link::Down {
            return None;
        }
        // A STATE waiting for our earlier updates holds back the control messages behind it,
        // but for acknowledgements and keepalives, which the partner needs to make room for
        // those updates (else each side waits on the other).
        let first = self.queued.first_seq();
        let waiting = self.link == Link::Up
            && matches!(self.control.front(), Some(Outgoing::State { after, .. })
                if first.is_some_and(|s| s <= *after));
        let next = if waiting {
            self.control
                .iter()
                .position(|o| matches!(o, Outgoing::BndAck(..) | Outgoing::Contact))
        } else {
            (!self.control.is_empty()).then_some(0)
        };
        if let Some(out) = next.and_then(|i| self.control.remove(i)) {
            let len = self.encode(&out, time, buf);
            self.last_sent = now;
            return len;
        }
        if self.link != Link::Up {
            return None;
        }
        let room = self.partner.map_or(0, |p| p.max_unacked) as usize;
        if self.in_flight.len() >= room {
            return None;
        }
        let (seq, binding) = self.queued.pop()?;
        let xid = self.xid();
        let len = binding.to_update().encode(Header { time, xid }, buf).ok();
        self.in_flight.push_back(InFlight { xid, seq, binding });
        self.last_sent = now;
        len
    }

    /// The next thing the caller must do, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The oldest unconfirmed [`Event::StateChanged`] is on disk: its STATE message may leave.
    pub fn state_persisted(&mut self) {
        // Before the startup decision the partner has been told only where we were; the
        // decision says where we are.
        if let Some((state, since)) = self.unpersisted.pop_front()
            && !self.startup
            && matches!(self.link, Link::AwaitState | Link::Up)
        {
            self.control.push_back(Outgoing::State {
                state,
                since,
                flags: 0,
                after: self.next_seq,
            });
        }
    }

    /// The partner's update of `address` was installed here: our updates of it that have not
    /// left yet say what no longer holds, and are dropped (pair simulation, seed 4181: a
    /// secondary's FREE, queued as its probation ended, left after it had taken the primary's
    /// BACKUP, and the primary took it: both leased the address). In flight, they stand.
    pub fn superseded(&mut self, address: Ipv4Addr) {
        self.queued.remove(address);
        self.maybe_update_done();
    }

    /// Queues every binding this server holds, `all`, in place of the updates that have not
    /// left yet (an UPDREQALL's answer): they are not sent twice (a restarted server re-offers
    /// every binding it kept, and a partner that lost its database then asks for them all). A
    /// STATE waiting for updates queued before it waits for these.
    pub fn requeue_all(&mut self, all: impl IntoIterator<Item = Binding>) {
        self.queued.clear();
        for binding in all {
            self.send_update(binding);
        }
        let through = self.next_seq;
        for out in &mut self.control {
            if let Outgoing::State { after, .. } = out
                && *after != 0
            {
                *after = through;
            }
        }
    }

    /// Queues one of our bindings for the partner; it leaves when the partner has room, in
    /// place of an update of its address still waiting.
    pub fn send_update(&mut self, binding: Binding) {
        // A change made since yielded to the primary is judged on its own.
        self.yielded.remove(&binding.address);
        self.next_seq += 1;
        self.queued.push(self.next_seq, binding);
    }

    /// Answers one transaction of the partner's BNDUPD `xid` (from [`Event::Update`]), once its
    /// outcome is durable. The BNDACK leaves when every transaction of that BNDUPD is answered.
    pub fn ack_update(&mut self, xid: u32, address: Ipv4Addr, result: Result<(), RejectReason>) {
        let Some(i) = self.inbound.iter().position(|p| p.xid == xid) else {
            return;
        };
        let pending = &mut self.inbound[i];
        pending.acks.push((address, result.err()));
        if pending.acks.len() >= pending.expected
            && let Some(done) = self.inbound.remove(i)
        {
            self.control
                .push_back(Outgoing::BndAck(done.xid, done.acks));
        }
    }

    /// Every binding the partner's request asked for is queued (see [`Event::UpdateRequest`]).
    pub fn update_request_queued(&mut self) {
        if let Some(serving) = self.serving.as_mut() {
            serving.through = Some(self.next_seq);
        }
        self.maybe_update_done();
    }

    /// Answers the partner's POOLREQ: `moved` addresses went to BACKUP (their updates queued).
    pub fn pool_response(&mut self, xid: u32, moved: u32) {
        self.control.push_back(Outgoing::PoolResp(xid, moved));
    }

    /// Asks the primary for BACKUP addresses (secondary).
    pub fn request_pool(&mut self) {
        if self.config.role == Role::Secondary && self.link == Link::Up {
            self.control.push_back(Outgoing::PoolReq);
        }
    }

    /// The operator says the partner is down (D12 §9.4: only by fiat, S8). Refused while the
    /// partner is in contact, which would put both servers in PARTNER-DOWN.
    pub fn partner_down(&mut self, now: Time) -> Result<(), ServerState> {
        if self.starting_until.is_some() {
            self.startup = false;
            self.end_startup(now);
        }
        match self.state {
            ServerState::PartnerDown => Ok(()),
            _ if self.link == Link::Up => Err(self.state),
            ServerState::CommunicationsInterrupted
            | ServerState::ResolutionInterrupted
            | ServerState::PotentialConflict
            | ServerState::ConflictDone
            | ServerState::Normal
            | ServerState::RecoverDone => {
                self.enter(ServerState::PartnerDown, now);
                Ok(())
            }
            other => Err(other),
        }
    }

    fn contact_interval(&self) -> Time {
        // D12 §8.3: send well within the partner's receive timer (ISC: every ~10 s of 30).
        let timer = self
            .partner
            .map_or(self.config.receive_timer, |p| p.receive_timer);
        u64::from((timer / 3).max(1))
    }

    fn xid(&mut self) -> u32 {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        xid
    }

    fn encode(&mut self, out: &Outgoing, time: u32, buf: &mut [u8]) -> Option<usize> {
        let header = |xid| Header { time, xid };
        let name = &self.config.relationship_name;
        let vendor = Some(&*self.config.vendor_class);
        let result = match out {
            Outgoing::Connect => {
                let xid = self.xid();
                let connect = Connect {
                    relationship_name: &self.config.relationship_name,
                    max_unacked_bndupd: self.advertised_unacked,
                    receive_timer: self.config.receive_timer,
                    vendor_class: Some(&self.config.vendor_class),
                    protocol_version: 1,
                    tls_request: Some(0),
                    mclt: self.mclt.unwrap_or(DEFAULT_MCLT),
                    hash_bucket_assignment: Some(&self.hba.0),
                };
                Message::Connect(connect).encode(header(xid), buf)
            }
            Outgoing::ConnectAck(reject) => {
                let ack = ConnectAck {
                    relationship_name: Some(name),
                    max_unacked_bndupd: Some(self.advertised_unacked),
                    receive_timer: Some(self.config.receive_timer),
                    vendor_class: vendor,
                    protocol_version: Some(1),
                    tls_reply: Some(0),
                    reject: *reject,
                    message: reject.map(|r| r.as_str().as_bytes()),
                };
                // CONNECTACK copies CONNECT's xid, which is the partner's first: 0 (ISC).
                Message::ConnectAck(ack).encode(header(0), buf)
            }
            Outgoing::State {
                state,
                since,
                flags,
                ..
            } => {
                let xid = self.xid();
                let state = State {
                    state: *state,
                    flags: *flags,
                    start_time: u32::try_from(*since).unwrap_or(u32::MAX),
                };
                Message::State(state).encode(header(xid), buf)
            }
            Outgoing::UpdReqAll => {
                let xid = self.xid();
                Message::UpdReqAll.encode(header(xid), buf)
            }
            Outgoing::UpdReq => {
                let xid = self.xid();
                Message::UpdReq.encode(header(xid), buf)
            }
            Outgoing::UpdDone(xid) => Message::UpdDone.encode(header(*xid), buf),
            Outgoing::BndAck(xid, acks) => message::encode_bndack(
                header(*xid),
                acks.iter().map(|&(address, reject)| BindingAck {
                    address,
                    reject,
                    message: reject.map(|r| r.as_str().as_bytes()),
                }),
                buf,
            ),
            Outgoing::Contact => {
                let xid = self.xid();
                Message::Contact.encode(header(xid), buf)
            }
            Outgoing::PoolReq => {
                let xid = self.xid();
                Message::PoolReq.encode(header(xid), buf)
            }
            Outgoing::PoolResp(xid, moved) => Message::PoolResp {
                addresses_transferred: *moved,
            }
            .encode(header(*xid), buf),
            Outgoing::Disconnect(reason) => {
                let xid = self.xid();
                Message::Disconnect(Disconnect {
                    reason: *reason,
                    message: Some(reason.as_str().as_bytes()),
                })
                .encode(header(xid), buf)
            }
        };
        result.ok()
    }

    fn on_connect(&mut self, now: Time, header: Header, c: &Connect<'_>) {
        if self.config.role == Role::Primary {
            return self.close(now, CloseReason::Unexpected(MessageType::Connect));
        }
        let isc = is_isc(c.vendor_class);
        self.advertised_unacked = if isc {
            self.config
                .max_unacked_bndupd
                .min(window_for_isc(c.max_unacked_bndupd))
        } else {
            self.config.max_unacked_bndupd
        };
        let skew = i64::from(header.time) - i64::try_from(now).unwrap_or(i64::MAX);
        let reject = if *c.relationship_name != *self.config.relationship_name {
            Some(RejectReason::INVALID_PARTNER)
        } else if c.protocol_version != 1 {
            Some(RejectReason::VERSION_MISMATCH)
        } else if c.tls_request == Some(2) {
            Some(RejectReason::TLS_NOT_SUPPORTED)
        } else if skew.unsigned_abs() > u64::from(self.config.max_clock_skew) {
            Some(RejectReason::CONNECTION_TIME_MISMATCH)
        } else if self.config.mclt.is_some_and(|m| m != c.mclt) {
            Some(RejectReason::INVALID_MCLT)
        } else if c.hash_bucket_assignment.is_none() {
            Some(RejectReason::HASH_BUCKET_ASSIGNMENT_CONFLICT)
        } else {
            None
        };
        if let Some(reason) = reject {
            let last = Some(Outgoing::ConnectAck(Some(reason)));
            return self.close_with(now, CloseReason::Refused(reason), last);
        }
        self.control.push_back(Outgoing::ConnectAck(None));
        if let Some(hba) = c.hash_bucket_assignment {
            self.hba = HashBucketAssignment(*hba);
        }
        if self.mclt != Some(c.mclt) {
            self.mclt = Some(c.mclt);
            self.events.push_back(Event::McltLearned(c.mclt));
        }
        self.partner = Some(Partner {
            state: None,
            max_unacked: c.max_unacked_bndupd,
            receive_timer: c.receive_timer,
            skew,
            isc,
        });
        self.handshake_done();
    }

    fn on_connect_ack(&mut self, now: Time, header: Header, a: &ConnectAck<'_>) {
        if let Some(reason) = a.reject {
            return self.close(now, CloseReason::RefusedByPartner(reason));
        }
        if a.relationship_name
            .is_some_and(|n| *n != *self.config.relationship_name)
        {
            return self.close(now, CloseReason::Refused(RejectReason::INVALID_PARTNER));
        }
        let isc = is_isc(a.vendor_class);
        let window = a.max_unacked_bndupd.unwrap_or(1);
        // The primary speaks first, so it learns only now that its partner is ISC and what
        // window suits it: it connects again at once, advertising that (a handshake not
        // finished changes no failover state).
        let fit = window_for_isc(window);
        if isc && self.advertised_unacked > fit {
            self.advertised_unacked = fit;
            return self.close(now, CloseReason::Renegotiate);
        }
        let skew = i64::from(header.time) - i64::try_from(now).unwrap_or(i64::MAX);
        self.partner = Some(Partner {
            state: None,
            max_unacked: window,
            receive_timer: a.receive_timer.unwrap_or(self.config.receive_timer),
            skew,
            isc,
        });
        self.handshake_done();
    }

    /// CONNECT/CONNECTACK done: both sides send STATE (D12 §7.9). A starting server sends its
    /// state with the STARTUP flag and then without, as ISC does.
    fn handshake_done(&mut self) {
        self.link = Link::AwaitState;
        // The state last made durable; changes not yet durable follow as they are confirmed.
        let (state, since) = match self.unpersisted.front() {
            Some(_) => (self.persisted_state, self.persisted_since),
            None => (self.state, self.since),
        };
        // A starting server says where it was, with the STARTUP flag, and says where it is
        // only once it has heard where the partner is (D12 §9.3.2); ISC does the same.
        let flags = if self.startup { State::STARTUP } else { 0 };
        // Said at once: the partner waits for it before anything else.
        self.control.push_back(Outgoing::State {
            state,
            since,
            flags,
            after: 0,
        });
    }

    fn on_message(&mut self, now: Time, header: Header, message: Message<'_>) {
        match message {
            Message::State(st) => self.on_state(now, st),
            Message::BndUpd(batch) => {
                let skew = self.partner.map_or(0, |p| p.skew);
                let expected = batch.len();
                let outstanding: usize = self.inbound.iter().map(|p| p.expected).sum();
                if outstanding + expected > self.config.max_unacked_bndupd as usize {
                    return self.close(now, CloseReason::FlowControl);
                }
                let mut pending = Inbound {
                    xid: header.xid,
                    expected,
                    acks: Vec::new(),
                };
                for update in batch.updates() {
                    match check_update(&update) {
                        Ok(()) => {
                            let binding = Binding::from_update(&update, skew);
                            let crossing = self.crossing(&binding);
                            self.yielded.remove(&binding.address);
                            self.events.push_back(Event::Update {
                                xid: header.xid,
                                crossing,
                                binding,
                            });
                        }
                        Err(reason) => pending.acks.push((update.address, Some(reason))),
                    }
                }
                if pending.acks.len() == expected {
                    self.control
                        .push_back(Outgoing::BndAck(pending.xid, pending.acks));
                } else {
                    self.inbound.push_back(pending);
                }
            }
            Message::BndAck(batch) => self.on_bnd_ack(now, header, &batch),
            Message::UpdReqAll | Message::UpdReq => {
                let all = matches!(message, Message::UpdReqAll);
                // ISC sends a second request while the first is served; the answer goes to the
                // latest, and the bindings are not queued twice.
                if let Some(serving) = self.serving.as_mut() {
                    serving.xid = header.xid;
                } else {
                    self.serving = Some(Serving {
                        xid: header.xid,
                        through: None,
                    });
                    self.events.push_back(Event::UpdateRequest { all });
                }
            }
            Message::UpdDone => self.on_update_done(now),
            Message::PoolReq => {
                if self.config.role == Role::Primary {
                    self.events
                        .push_back(Event::PoolRequest { xid: header.xid });
                } else {
                    self.control.push_back(Outgoing::PoolResp(header.xid, 0));
                }
            }
            Message::PoolResp {
                addresses_transferred,
            } => self
                .events
                .push_back(Event::PoolResponse(addresses_transferred)),
            Message::Contact => {}
            Message::Connect(_) | Message::ConnectAck(_) | Message::Disconnect(_) => {
                self.close(now, CloseReason::Unexpected(message.message_type()));
            }
        }
    }

    /// Whether an update of ours for `address` is queued or awaits its acknowledgement.
    /// A BNDACK: the acknowledgement (or refusal) of one of our updates in flight.
    fn on_bnd_ack(&mut self, now: Time, header: Header, batch: &Batch<'_>) {
        let Some(i) = self.in_flight.iter().position(|f| f.xid == header.xid) else {
            return self.close(now, CloseReason::UnexpectedAnswer);
        };
        let Some(sent) = self.in_flight.remove(i) else {
            return;
        };
        let result = batch
            .acks()
            .find(|a| a.address == sent.binding.address)
            .and_then(|a| a.reject)
            .map_or(Ok(()), Err);
        // The primary refused our change of availability for its own (reason 16): its own
        // follows, and wins here ([`Session::crossing`]). Not a lease, which is never refused
        // as a crossing (its 16 is the draft's ABANDONED row), nor when a change made since is
        // on its way, which is judged on its own (seed 54: a lease made after the refused
        // report was undone by an old ABANDONED).
        let address = sent.binding.address;
        let newer = self.queued.contains(address)
            || self.in_flight.iter().any(|f| f.binding.address == address);
        if self.config.role == Role::Secondary
            && result == Err(RejectReason::LESS_CRITICAL_BINDING_INFORMATION)
            && sent.binding.status != crate::BindingStatus::Active
            && !newer
        {
            self.yielded.insert(address);
        }
        self.events.push_back(Event::Acked {
            address: sent.binding.address,
            status: sent.binding.status,
            potential_expiration: sent.binding.potential_expiration,
            result,
        });
        if self
            .serving
            .is_some_and(|s| s.through.is_some_and(|t| sent.seq <= t))
        {
            self.maybe_update_done();
        }
    }

    /// Whether the partner's `update`, carried out now, crossed one of our own updates of its
    /// address (D12 §7.1.2): at the primary, its own (queued or in flight) wins over the
    /// secondary's change of availability, so that both end with the primary's (as ISC,
    /// reason 16; a lease is never refused this way); at the secondary, the primary's wins
    /// over its change in flight, which the primary refuses.
    ///
    /// Judged as the update arrives ([`Event::Update`] carries it): an acknowledgement of ours
    /// read in the same batch ends the crossing before the update is carried out (pair
    /// simulation, seed 3008). The primary asks again as it carries the update out: a POOLREQ
    /// read before it makes the primary's BACKUP update only then (seed 84: the primary took
    /// the secondary's FREE over the BACKUP it had just assigned, the secondary took the
    /// BACKUP, and both leased the address).
    pub fn crossing(&self, update: &Binding) -> Crossing {
        let address = update.address;
        match self.config.role {
            Role::Primary => {
                let ours = self.queued.contains(address)
                    || self.in_flight.iter().any(|f| f.binding.address == address);
                if ours && update.status != crate::BindingStatus::Active {
                    Crossing::OursWins
                } else {
                    Crossing::None
                }
            }
            // The primary refused ours already; its own follows (seed 2569: the primary's were
            // queued behind its flow control, and arrived after its refusal).
            Role::Secondary if self.yielded.contains(&address) => Crossing::TheirsWins,
            Role::Secondary => {
                let queued = self.queued.contains(address);
                let in_flight = self
                    .in_flight
                    .iter()
                    .rev()
                    .find(|f| f.binding.address == address);
                match in_flight {
                    Some(f) if !queued && f.binding.status != crate::BindingStatus::Active => {
                        Crossing::TheirsWins
                    }
                    _ => Crossing::None,
                }
            }
        }
    }

    /// Every binding queued for the partner's request is acknowledged: UPDDONE.
    fn maybe_update_done(&mut self) {
        let Some(Serving {
            xid,
            through: Some(through),
        }) = self.serving
        else {
            return;
        };
        let waiting = self.queued.first_seq().is_some_and(|seq| seq <= through)
            || self.in_flight.iter().any(|f| f.seq <= through);
        if !waiting {
            self.serving = None;
            self.control.push_back(Outgoing::UpdDone(xid));
        }
    }

    fn on_state(&mut self, now: Time, st: State) {
        use ServerState as S;
        let skew = self.partner.map_or(0, |p| p.skew);
        let their_since = u64::try_from(i64::from(st.start_time) - skew).unwrap_or(0);
        if let Some(p) = self.partner.as_mut() {
            p.state = Some((st.state, their_since));
        }
        self.partner_last_state = Some(st.state);
        self.partner_down = match (st.state, self.partner_down) {
            (ServerState::PartnerDown, _) => PartnerDownSeen::Ongoing,
            // The STATE that ends it can pass the updates of the grants made in it (a STATE
            // opening a connection goes first): they are asked for, and this server's own
            // addresses wait for them (pair simulation with DECLINE, seed 2844: a survivor's
            // last grant of the primary's address, queued when the link fell, reached it only
            // after the primary, back in NORMAL, had leased the address again).
            (_, PartnerDownSeen::Ongoing | PartnerDownSeen::Ending) => {
                if self.requested.is_none() {
                    self.request_updates();
                }
                PartnerDownSeen::Ending
            }
            (_, seen) => seen,
        };
        // A partner that comes back without its database cannot tell what it granted or
        // renewed (in PARTNER-DOWN, or renewing in COMMUNICATIONS-INTERRUPTED), and it
        // acknowledges expiries it knows nothing of: all that runs at most the MCLT from now
        // (seeds 1099, 4370).
        // (A server that started without its own database has nothing to protect from it: with
        // both lost, nobody remembers a lease; a new pair starts so.)
        if st.state == ServerState::Recover && self.started_empty.is_none() {
            let mclt = Time::from(self.mclt.unwrap_or(DEFAULT_MCLT));
            self.partner_forgot_until = self.partner_forgot_until.max(now + mclt);
        }
        self.end_startup(now);
        let first = self.link == Link::AwaitState;
        self.link = Link::Up;
        let them = st.state;
        let next = match self.state {
            // D12 §9.4.3: a partner still starting says nothing yet.
            S::PartnerDown if st.starting() => None,
            S::PartnerDown => match them {
                S::Recover | S::RecoverWait | S::Shutdown | S::Paused => None,
                S::RecoverDone => Some(S::Normal),
                _ => Some(S::PotentialConflict),
            },
            S::Normal | S::CommunicationsInterrupted => match them {
                S::Normal | S::CommunicationsInterrupted | S::RecoverDone => Some(S::Normal),
                S::Shutdown => Some(S::PartnerDown),
                // Both may have served the partner's clients: resolve (D12 §9.9.3). Knowing we
                // stopped before the partner took over would allow RECOVER instead; without a
                // record of when we last served, conflict is the safe reading.
                S::PartnerDown
                | S::PotentialConflict
                | S::ConflictDone
                | S::ResolutionInterrupted => Some(S::PotentialConflict),
                _ => Some(S::CommunicationsInterrupted),
            },
            S::Recover => match them {
                S::PotentialConflict | S::ResolutionInterrupted | S::ConflictDone => {
                    Some(S::PotentialConflict)
                }
                _ => None,
            },
            S::RecoverDone => match them {
                S::Normal | S::RecoverDone => Some(S::Normal),
                _ => None,
            },
            S::ResolutionInterrupted => Some(S::PotentialConflict),
            S::ConflictDone => match them {
                S::Normal => Some(S::Normal),
                _ => None,
            },
            S::PotentialConflict => match (self.config.role, them) {
                // The secondary resolves its side once the primary has resolved its own.
                (Role::Secondary, S::ConflictDone) if self.requested.is_none() => {
                    self.request_updates();
                    None
                }
                _ => None,
            },
            S::RecoverWait | S::Startup | S::Paused | S::Shutdown => None,
        };
        let next = next.filter(|&n| n != self.state);
        if first && std::mem::take(&mut self.startup) && next.is_none() {
            // The startup decision is to stay: say so without the flag (a change still being
            // persisted is said when it is).
            if self.unpersisted.is_empty() {
                self.control.push_back(Outgoing::State {
                    state: self.state,
                    since: self.since,
                    flags: 0,
                    after: self.next_seq,
                });
            }
        }
        if let Some(n) = next {
            self.enter(n, now);
        } else if first {
            self.on_communications_ok();
        }
    }

    /// Requests what the state asks for once the partner is heard (D12 §9.5.2, §9.10.2).
    fn on_communications_ok(&mut self) {
        match self.state {
            ServerState::Recover if self.requested.is_none() => {
                // ISC always asks for everything from RECOVER, never UPDREQ.
                self.requested = Some(Requested::All);
                self.control.push_back(Outgoing::UpdReqAll);
            }
            ServerState::PotentialConflict
                if self.config.role == Role::Primary && self.requested.is_none() =>
            {
                self.request_updates();
            }
            _ => {}
        }
    }

    /// Asks the partner for what we lack: its unacknowledged updates (UPDREQ), or everything
    /// (UPDREQALL) while this server lacks the database it started without.
    fn request_updates(&mut self) {
        let (asked, out) = if self.whole {
            (Requested::Unacked, Outgoing::UpdReq)
        } else {
            (Requested::All, Outgoing::UpdReqAll)
        };
        self.requested = Some(asked);
        self.control.push_back(out);
    }

    /// UPDDONE: the partner sent all we asked for.
    fn on_update_done(&mut self, now: Time) {
        let Some(asked) = self.requested.take() else {
            return self.close(now, CloseReason::UnexpectedAnswer);
        };
        self.whole |= asked == Requested::All;
        // Whatever the partner queued before the STATE that ended its PARTNER-DOWN is here.
        if self.partner_down == PartnerDownSeen::Ending {
            self.partner_down = PartnerDownSeen::Ended(now);
        }
        match self.state {
            // RECOVER waits for everything (an answer asked for before it was entered is not).
            ServerState::Recover if asked == Requested::Unacked => self.on_communications_ok(),
            ServerState::Recover => {
                // ISC skips the wait when the partner is recovering too (a fresh pair): neither
                // has served a client the other does not know of.
                let fresh = matches!(
                    self.partner_state(),
                    Some(ServerState::Recover | ServerState::RecoverDone)
                );
                let until = self.since + u64::from(self.mclt.unwrap_or(DEFAULT_MCLT));
                if fresh {
                    // Nothing was granted before: nothing forgotten to wait for either.
                    self.started_empty = None;
                    self.enter(ServerState::RecoverDone, now);
                } else {
                    self.recover_wait_until = Some(until);
                    self.enter(ServerState::RecoverWait, now);
                    if now >= until {
                        self.recover_wait_until = None;
                        self.enter(ServerState::RecoverDone, now);
                    }
                }
            }
            ServerState::PotentialConflict => match self.config.role {
                Role::Primary => self.enter(ServerState::ConflictDone, now),
                // Only the answer to what it asked once the primary had resolved its side.
                Role::Secondary if self.partner_state() == Some(ServerState::ConflictDone) => {
                    self.enter(ServerState::Normal, now);
                }
                Role::Secondary => {}
            },
            _ => {}
        }
    }

    /// Moves to `state`: the caller persists it before the STATE message leaves.
    fn enter(&mut self, state: ServerState, now: Time) {
        if self.unpersisted.is_empty() {
            self.persisted_state = self.state;
            self.persisted_since = self.since;
        }
        self.state = state;
        self.since = now;
        self.unpersisted.push_back((state, now));
        self.events
            .push_back(Event::StateChanged { state, since: now });
        if self.link == Link::Up {
            self.on_communications_ok();
            if state == ServerState::RecoverDone
                && self.partner_state() == Some(ServerState::RecoverDone)
            {
                // Both done: NORMAL (D12 §9.7); the partner follows on our STATE.
                self.enter(ServerState::Normal, now);
            }
        }
    }

    fn close(&mut self, now: Time, reason: CloseReason) {
        self.close_with(now, reason, None);
    }

    /// Closes the connection after `last` (a refusal or a DISCONNECT) is written.
    fn close_with(&mut self, now: Time, reason: CloseReason, last: Option<Outgoing>) {
        self.events.push_back(Event::Closed(reason));
        self.lost(now);
        self.farewell.extend(last);
    }

    /// The connection is gone: what was in flight is sent again on the next one, the partner's
    /// unanswered updates are forgotten (it sends them again), and the state falls back.
    fn lost(&mut self, now: Time) {
        let was_up = self.link == Link::Up;
        self.link = Link::Down;
        self.partner = None;
        self.control.clear();
        while let Some(f) = self.in_flight.pop_back() {
            self.queued.push_front(f.seq, f.binding);
        }
        self.inbound.clear();
        self.serving = None;
        self.requested = None;
        if was_up {
            let next = self.state.on_communications_failure();
            if next != self.state {
                self.enter(next, now);
            }
        }
    }
}
