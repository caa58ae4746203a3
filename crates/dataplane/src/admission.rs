//! Storm and flood control (`[limits]`): token buckets per client and per relay, and what gives
//! way when a worker falls behind.
//!
//! Each worker keeps its own tables (no lock, no cache line shared with another worker) and
//! applies its share of the configured rates: with hand-off a client's requests all reach one
//! worker, and a relay's spread over the workers by client. The tables have a fixed size, made
//! when the limits are set: a client or relay not in its table takes the place of whichever of
//! two candidates was seen longer ago, so a flood of made-up addresses cannot grow them (it
//! only ever meets full buckets, which the relay's limit is there for).
//!
//! A worker falls behind when its receive bursts keep coming full for longer than
//! [`BEHIND_FOR`]: the queue holds more than it takes in that time. (A few full bursts in a row
//! are no sign of it: an AF_PACKET ring hands over up to a millisecond of frames at once, which a
//! worker that keeps up takes in less.) Then what keeps or completes a lease goes first: a DISCOVER its client
//! already sent while the worker was behind (the same transaction id: a retransmission) is
//! dropped, and at most a quarter of each burst may be new DISCOVERs. Dropping one costs a parse, handling one costs the
//! engine's work and a reply, so the queue drains and requests in it are not lost to its
//! overflow.

use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use peregrine_config::model::{Limits, RelayKey};
use peregrine_stats::WorkerDrop;
use peregrine_wire::dhcp::{DhcpMessage, MessageType, RelayAgentInfo};

/// Slots of the client table (a power of two): the clients a worker tells apart at once.
const CLIENT_SLOTS: usize = 1 << 14;
/// Slots of the relay table (a power of two).
const RELAY_SLOTS: usize = 1 << 10;
/// A token, in the buckets' unit: a millionth of a request, so that rates below one request
/// per second per worker still count.
const TOKEN: u64 = 1_000_000;
/// How long receive bursts must keep coming full before the worker counts as behind.
pub const BEHIND_FOR: Duration = Duration::from_millis(2);
/// Bursts after the last renewal seen during which new DISCOVERs give way to renewals.
const RENEWALS_REMEMBERED: u32 = 64;

/// One worker's admission control; see the module documentation.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    /// The workers sharing the configured rates.
    workers: u32,
    clients: Buckets,
    relays: Buckets,
    hasher: std::hash::RandomState,
    /// The start of the worker's clock, for bucket times in microseconds.
    epoch: Instant,
    /// Now, at the current burst.
    now_us: u64,
    /// When the bursts started coming full, if the last one was.
    full_since: Option<Instant>,
    /// Whether the worker counts as behind (worked out once per burst).
    behind: bool,
    /// A random key mixed into client keys, so that no one can pick addresses that meet in
    /// the table.
    seed: u64,
    /// New DISCOVERs the current burst may still take while the worker is behind.
    discovers_left: u32,
    /// Bursts left during which renewals count as competing with new DISCOVERs (0: none was
    /// seen lately, and DISCOVERs are taken as they come).
    renewals_seen: u32,
    /// The burst size.
    burst: u32,
}

/// A fixed-size table of token buckets.
#[derive(Debug, Default)]
struct Buckets {
    slots: Box<[Bucket]>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The key's hash; 0: free.
    key: u64,
    /// Tokens, in [`TOKEN`] units.
    tokens: u64,
    /// When the bucket was last filled up to now, microseconds.
    at_us: u64,
    /// The transaction id of the client's last DISCOVER (client table only).
    xid: u32,
}

impl Buckets {
    /// A table of `slots` buckets, or none if `wanted` is false.
    fn new(wanted: bool, slots: usize) -> Buckets {
        Buckets {
            slots: if wanted {
                vec![Bucket::default(); slots].into_boxed_slice()
            } else {
                Box::default()
            },
        }
    }

    /// The bucket of `key` (a hash), refilled to `now_us` at `rate` per second up to `burst`
    /// (both the worker's share, in [`TOKEN`] units per second and in tokens); a key met for
    /// the first time starts full.
    fn get(&mut self, key: u64, now_us: u64, (rate, burst): (u64, u64)) -> &mut Bucket {
        let key = key | 1;
        let mask = self.slots.len() - 1;
        let a = key as usize & mask;
        let b = a ^ 1;
        let at = if self.slots[a].key == key {
            a
        } else if self.slots[b].key == key {
            b
        } else {
            let older = if self.slots[a].at_us <= self.slots[b].at_us {
                a
            } else {
                b
            };
            self.slots[older] = Bucket {
                key,
                tokens: burst,
                at_us: now_us,
                xid: 0,
            };
            older
        };
        let bucket = &mut self.slots[at];
        let elapsed = now_us.saturating_sub(bucket.at_us);
        bucket.tokens = bucket
            .tokens
            .saturating_add(elapsed.saturating_mul(rate) / 1_000_000)
            .min(burst);
        bucket.at_us = now_us;
        bucket
    }
}

impl Default for Admission {
    /// No limits, and nothing gives way when the worker falls behind.
    fn default() -> Admission {
        Admission::new(
            Limits {
                overload_priority: false,
                ..Limits::default()
            },
            1,
            32,
        )
    }
}

impl Admission {
    /// Admission by `limits` for one of `workers` workers taking bursts of `burst` frames.
    pub fn new(limits: Limits, workers: u32, burst: usize) -> Admission {
        let mut a = Admission {
            limits,
            workers: workers.max(1),
            clients: Buckets::default(),
            relays: Buckets::default(),
            hasher: std::hash::RandomState::new(),
            epoch: Instant::now(),
            now_us: 0,
            full_since: None,
            behind: false,
            seed: std::hash::RandomState::new().hash_one(0x5eed_u64),
            discovers_left: 0,
            renewals_seen: 0,
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        };
        a.set_limits(limits);
        a
    }

    /// Applies `limits` from now on (a reload): tables are made as the limits need them, kept
    /// otherwise.
    pub fn set_limits(&mut self, limits: Limits) {
        let clients = limits.client_rate > 0 || limits.overload_priority;
        // A table is made where the limits need one and there is none, dropped where they
        // need none.
        if clients == self.clients.slots.is_empty() {
            self.clients = Buckets::new(clients, CLIENT_SLOTS);
        }
        let relays = limits.relay_rate > 0;
        if relays == self.relays.slots.is_empty() {
            self.relays = Buckets::new(relays, RELAY_SLOTS);
        }
        self.limits = limits;
    }

    /// A receive burst starts at `now`; the previous one brought `last` frames.
    pub fn start_burst(&mut self, now: Instant, last: usize) {
        self.now_us = u64::try_from(now.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        self.full_since = if last >= self.burst as usize {
            Some(self.full_since.unwrap_or(now))
        } else {
            None
        };
        self.behind = self
            .full_since
            .is_some_and(|since| now.saturating_duration_since(since) >= BEHIND_FOR);
        self.discovers_left = (self.burst / 4).max(1);
        self.renewals_seen = self.renewals_seen.saturating_sub(1);
    }

    /// Whether the worker counts as behind (its bursts keep coming full).
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// Whether the DHCP message `msg` may go to the engine, or why not.
    pub fn admit(&mut self, msg: &DhcpMessage<'_>) -> Result<(), WorkerDrop> {
        let behind = self.limits.overload_priority && self.behind;
        // What a worker that keeps up without limits set looks at: nothing.
        if !behind && self.limits.client_rate == 0 && self.limits.relay_rate == 0 {
            return Ok(());
        }
        let packet = msg.packet();
        let giaddr = packet.giaddr();
        let client = mix(self.seed, packet.chaddr(), giaddr);
        let kind = msg.message_type();
        let discover = kind == Some(MessageType::Discover);
        // A client keeping its lease: renewing or rebinding (ciaddr), or rebooting (option 50
        // without a server id).
        if behind
            && kind == Some(MessageType::Request)
            && (!packet.ciaddr().is_unspecified()
                || (msg.requested_ip().is_some() && msg.server_id().is_none()))
        {
            self.renewals_seen = RENEWALS_REMEMBERED;
        }
        if !self.clients.slots.is_empty() {
            let share = share(
                self.limits.client_rate,
                self.limits.client_burst,
                self.workers,
            );
            let bucket = self.clients.get(client, self.now_us, share);
            let again = discover && bucket.xid == packet.xid();
            if discover {
                bucket.xid = packet.xid();
            }
            if behind && again {
                return Err(WorkerDrop::OverloadRetransmission);
            }
            if self.limits.client_rate > 0 {
                if bucket.tokens < TOKEN {
                    return Err(WorkerDrop::RateLimitedClient);
                }
                bucket.tokens -= TOKEN;
            }
        }
        if self.limits.relay_rate > 0 && !giaddr.is_unspecified() {
            let key = self.relay_key(msg, giaddr);
            let share = share(
                self.limits.relay_rate,
                self.limits.relay_burst,
                self.workers,
            );
            let bucket = self.relays.get(key, self.now_us, share);
            if bucket.tokens < TOKEN {
                return Err(WorkerDrop::RateLimitedRelay);
            }
            bucket.tokens -= TOKEN;
        }
        if behind && discover && self.renewals_seen > 0 {
            if self.discovers_left == 0 {
                return Err(WorkerDrop::OverloadDiscover);
            }
            self.discovers_left -= 1;
        }
        Ok(())
    }

    /// The relay's key: its circuit id where `[limits] relay-key` says so and the relay sent
    /// one, else its address.
    fn relay_key(&self, msg: &DhcpMessage<'_>, giaddr: Ipv4Addr) -> u64 {
        if self.limits.relay_key == RelayKey::CircuitId
            && let Some(circuit) = msg
                .relay_agent_info_raw()
                .and_then(|v| v.as_slice())
                .and_then(|data| RelayAgentInfo::new_checked(data).ok())
                .and_then(|rai| rai.circuit_id())
        {
            return self.hasher.hash_one((giaddr, circuit));
        }
        self.hasher.hash_one(giaddr)
    }
}

/// A client's key: its hardware address (the 16 bytes of `chaddr`) and its relay, mixed with
/// `seed`. Cheaper than a keyed SipHash by an order of magnitude; a table slot is all it picks.
fn mix(seed: u64, chaddr: &[u8], giaddr: Ipv4Addr) -> u64 {
    let mut bytes = [0u8; 16];
    let n = chaddr.len().min(16);
    bytes[..n].copy_from_slice(&chaddr[..n]);
    let (lo, hi) = bytes.split_at(8);
    let word = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
    // A multiply folded to 64 bits (as wyhash does): every input bit reaches every output bit.
    let fold = |x: u64, y: u64| {
        let p = u128::from(x) * u128::from(y);
        (p as u64) ^ ((p >> 64) as u64)
    };
    let h = fold(word(lo) ^ seed, word(hi) ^ 0x9e37_79b9_7f4a_7c15);
    fold(
        h ^ u64::from(giaddr.to_bits()),
        seed ^ 0xbf58_476d_1ce4_e5b9,
    )
}

/// One worker's share of `rate` per second and `burst`, in [`TOKEN`] units.
fn share(rate: u32, burst: u32, workers: u32) -> (u64, u64) {
    let workers = u64::from(workers);
    (
        u64::from(rate) * TOKEN / workers,
        (u64::from(burst) * TOKEN / workers).max(TOKEN),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_differ_by_address_and_relay_and_follow_the_seed() {
        let relay = Ipv4Addr::new(10, 201, 0, 1);
        let keys: std::collections::HashSet<u64> = (0..20_000u32)
            .flat_map(|n| {
                let b = n.to_be_bytes();
                let chaddr = [
                    2, 0xdd, b[0], b[1], b[2], b[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ];
                [
                    mix(7, &chaddr, relay),
                    mix(7, &chaddr, Ipv4Addr::new(10, 202, 0, 1)),
                ]
            })
            .collect();
        assert_eq!(keys.len(), 40_000);
        let chaddr = [2, 0xdd, 0, 0, 0, 1];
        assert_eq!(mix(7, &chaddr, relay), mix(7, &chaddr, relay));
        assert_ne!(mix(7, &chaddr, relay), mix(8, &chaddr, relay));
    }
}
