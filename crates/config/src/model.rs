//! The validated configuration: what the engine and the runtime consume.
//!
//! Every value here has passed validation: subnets are canonical, pools lie inside their subnet
//! and do not overlap, relay addresses are unique across scopes, T1 < T2 < lease time, options
//! are encoded on the wire format already. Nothing here refers back to the file.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Server-wide DHCP behaviour and defaults.
    pub server: ServerSettings,
    /// Client classes, in the order the file lists them (the order they are evaluated).
    pub classes: Vec<Class>,
    /// Scopes (subnets with pools), in file order.
    pub scopes: Vec<Scope>,
    /// How the server process runs: packet I/O, interfaces, workers, control plane.
    pub runtime: Runtime,
    /// The failover partner every scope is shared with; `None`: this server is alone.
    pub failover: Option<Failover>,
    /// Storm and flood control.
    pub limits: Limits,
}

/// `[limits]`: how much one client or one relay may ask, and what gives way when a worker
/// falls behind. Rates are requests per second for the whole server (each worker applies its
/// share); a rate of 0 sets no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second one client (a hardware address behind one relay) may send.
    pub client_rate: u32,
    /// Requests one client may send at once after a quiet spell.
    pub client_burst: u32,
    /// Requests per second one relay may send, every client behind it together.
    pub relay_rate: u32,
    /// Requests one relay may send at once after a quiet spell.
    pub relay_burst: u32,
    /// What tells relays apart.
    pub relay_key: RelayKey,
    /// When a worker falls behind (its receive queue fills), a retransmitted DISCOVER is
    /// dropped, and while clients renew, rebind or reboot, only a share of new DISCOVERs is
    /// taken, so that their requests are not lost to the queue's overflow.
    pub overload_priority: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            client_rate: 0,
            client_burst: 0,
            relay_rate: 0,
            relay_burst: 0,
            relay_key: RelayKey::Giaddr,
            overload_priority: true,
        }
    }
}

/// What tells relays apart for `[limits] relay-rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKey {
    /// The relay's address (giaddr).
    Giaddr,
    /// The access port: option 82's circuit id (a relay without one counts by giaddr).
    CircuitId,
}

/// A failover relationship (draft-ietf-dhc-failover-12, as ISC dhcpd 4.4 speaks it): this
/// server's side of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Whether this server is the primary (it connects; it owns the FREE addresses).
    pub primary: bool,
    /// Our address on the failover link: the secondary listens on it, the primary connects
    /// from its IP.
    pub local: SocketAddr,
    /// The partner's: the only one whose connections are accepted.
    pub peer: SocketAddr,
    /// The relationship's name, the same on both sides (ISC: the `failover peer` name).
    pub relationship: String,
    /// Maximum client lead time, seconds (the primary's; the secondary learns it).
    pub mclt: u32,
    /// Hash buckets, of 256, whose clients the primary answers in NORMAL (ISC's `split`).
    pub split: u16,
    /// Seconds without a message before the connection is given up (ISC's
    /// `max-response-delay`).
    pub max_response_delay: u32,
    /// Binding updates sent before their acknowledgements (ISC's `max-unacked-updates`).
    pub max_unacked_updates: u32,
    /// A client whose `secs` passes this is answered by either server (ISC's
    /// `load balance max seconds`); 0 never.
    pub load_balance_max_seconds: u16,
    /// Seconds in COMMUNICATIONS-INTERRUPTED after which this server goes to PARTNER-DOWN on
    /// its own (ISC's `auto-partner-down`); `None`: only the operator says so.
    pub auto_partner_down: Option<u32>,
    /// A secret both servers share: every message between them carries an HMAC-SHA256 of it,
    /// and a peer without it is refused. `None`: messages are not authenticated (as with ISC
    /// dhcpd, which knows no such thing).
    pub secret: Option<String>,
}

impl Failover {
    /// Port 647, the failover port ISC uses.
    pub const DEFAULT_PORT: u16 = 647;
    /// One hour, ISC's usual MCLT.
    pub const DEFAULT_MCLT: u32 = 3600;
    /// Half the buckets each.
    pub const DEFAULT_SPLIT: u16 = 128;
    /// ISC's default.
    pub const DEFAULT_MAX_RESPONSE_DELAY: u32 = 30;
    /// Enough for replication to keep up with tens of thousands of leases a second (each
    /// acknowledgement waits for the partner's journal); ISC's usual 10 caps it near 5 000 a
    /// second (bench/pair-lag.sh).
    pub const DEFAULT_MAX_UNACKED_UPDATES: u32 = 1024;
    /// ISC's usual value.
    pub const DEFAULT_LOAD_BALANCE_MAX_SECONDS: u16 = 3;
}

/// How frames reach the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `AF_PACKET` sockets with `TPACKET_V3` rings, one per worker per interface, fanned out.
    #[default]
    AfPacket,
    /// A UDP socket on port 67 (no raw frames; broadcasts replace unicast to address-less clients).
    Udp,
    /// TAP devices the server creates (labs and load tests).
    Tap,
    /// DPDK ports (a NIC bound to DPDK, or a virtual device), polled without the kernel; needs
    /// a server built with the `dpdk` feature.
    Dpdk,
}

/// An interface the server listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// OS interface name (with `backend = "dpdk"`, the name scopes use for the port).
    pub name: String,
    /// The server's address on it: answered for ARP and ICMP, the default server identifier,
    /// and the source of replies.
    pub address: Ipv4Addr,
    /// Whether option 82 may arrive here with giaddr 0 (a trusted relay agent in front,
    /// RFC 3046 section 2.1). Default false.
    pub trusted: bool,
    /// With `backend = "dpdk"`, the DPDK port serving it: a device name (a vdev's, as
    /// `net_af_packet0`) or a PCI address.
    pub dpdk_port: Option<String>,
}

/// `[dpdk]`: the EAL's arguments and the ports' buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkSettings {
    /// Arguments of `rte_eal_init`, as after a program name (`-l 0-1`, `--vdev=...`).
    pub eal_args: Vec<String>,
    /// Packet buffers in the pool every port receives into and sends from.
    pub mbufs: u32,
    /// Descriptors per RX and per TX queue.
    pub ring: u16,
}

impl Default for DpdkSettings {
    fn default() -> DpdkSettings {
        DpdkSettings {
            eal_args: Vec::new(),
            mbufs: 16_383,
            ring: 1024,
        }
    }
}

/// Process-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Packet I/O backend.
    pub backend: Backend,
    /// Worker threads (each polls every interface's queue for it).
    pub workers: u32,
    /// CPU cores the workers are pinned to, worker `i` on `cores[i % len]`; empty: not pinned.
    pub cores: Vec<usize>,
    /// Whether a worker hands each DHCP request to the worker its client hashes to, so that
    /// one relay's flow (which the kernel's flow hash gives to one worker) uses every worker.
    pub handoff: bool,
    /// Interfaces to serve.
    pub interfaces: Vec<InterfaceConfig>,
    /// Where the control plane (metrics, health, API) listens.
    pub control_listen: SocketAddr,
    /// The file holding the admin API's bearer token (`[control] token-file`, read with
    /// [`AdminToken::read`] when the server starts); `None`: the API is open, which only a
    /// loopback `control_listen` may be.
    pub control_token_file: Option<PathBuf>,
    /// The PEM files of the admin API's TLS certificate chain and key (`[control] tls-cert`
    /// and `tls-key`, read when the server starts); `None`: plain HTTP.
    pub control_tls: Option<TlsFiles>,
    /// Where bulk leasequery (RFC 6926, TCP) listens; `None`: nowhere.
    pub bulk_leasequery_listen: Option<SocketAddr>,
    /// The EAL and ports of `backend = "dpdk"`.
    pub dpdk: DpdkSettings,
    /// Where leases are kept durably; `None` keeps them in memory only (lost on restart).
    pub leases: Option<LeaseStore>,
}

/// When an ACK may leave relative to the journal write of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the batch holding its binding change is on stable storage (one fdatasync per batch).
    #[default]
    Fsync,
    /// After the change is written to the kernel, without waiting for the disk: a power loss
    /// or kernel crash can lose leases already acknowledged. For benchmarks.
    NoneUnsafe,
}

/// The durable lease store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStore {
    /// The directory holding every piece of lease state (journal, key secret, lock).
    pub directory: std::path::PathBuf,
    /// See [`Durability`].
    pub durability: Durability,
    /// Seal the journal and compact it into a snapshot once it passes this many bytes.
    pub compact_after: u64,
    /// The CPU core the journal writer and its compaction are pinned to; `None`: not pinned.
    pub writer_core: Option<usize>,
    /// With fsync durability, the least microseconds from one journal sync to the next.
    pub commit_interval_us: u32,
}

impl LeaseStore {
    /// The default [`LeaseStore::compact_after`]: 64 MiB (about 297 000 lease changes of 226
    /// bytes).
    pub const DEFAULT_COMPACT_AFTER: u64 = 64 << 20;
    /// The least [`LeaseStore::compact_after`] accepted: below it the server would spend its
    /// disk bandwidth rewriting snapshots.
    pub const MIN_COMPACT_AFTER: u64 = 64 << 10;
    /// The highest CPU core number accepted (Linux's `CPU_SETSIZE` less one).
    pub const MAX_CORE: usize = 1023;
    /// The default [`LeaseStore::commit_interval_us`]: 2 ms.
    pub const DEFAULT_COMMIT_INTERVAL_US: u32 = 2000;
    /// The largest [`LeaseStore::commit_interval_us`]: 100 ms (an ACK waits up to this long).
    pub const MAX_COMMIT_INTERVAL_US: u32 = 100_000;
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            backend: Backend::default(),
            workers: 1,
            cores: Vec::new(),
            handoff: true,
            interfaces: Vec::new(),
            control_listen: SocketAddr::from(([127, 0, 0, 1], 9167)),
            control_token_file: None,
            control_tls: None,
            bulk_leasequery_listen: None,
            dpdk: DpdkSettings::default(),
            leases: None,
        }
    }
}

/// An IPv4 network: an address with its prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// Network address (host bits zero).
    pub addr: Ipv4Addr,
    /// Prefix length, 0 to 32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// The netmask of this prefix.
    pub const fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask_bits())
    }

    /// The netmask as a `u32`.
    pub const fn mask_bits(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        }
    }

    /// Whether `a` is inside this network.
    pub const fn contains(&self, a: Ipv4Addr) -> bool {
        a.to_bits() & self.mask_bits() == self.addr.to_bits()
    }

    /// The directed broadcast address.
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask_bits())
    }
}

/// Lease time and its renewal (T1) and rebinding (T2) timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// Lease time (option 51).
    pub valid: u32,
    /// T1 (option 58); less than `rebind`.
    pub renew: u32,
    /// T2 (option 59); less than `valid`.
    pub rebind: u32,
    /// The shortest lease a client may ask for (option 51 in its request); at most `valid`.
    pub min: u32,
    /// The longest lease a client may ask for; at least `valid`. With `min` equal to `max`
    /// (both default to `valid`) what the client asks is not read.
    pub max: u32,
}

/// Server-wide behaviour, and the defaults every scope inherits unless it overrides them.
// Independent switches, one per key of the file.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// NAK requests for addresses we do not know (INIT-REBOOT), instead of staying silent.
    pub authoritative: bool,
    /// Identify clients by option 61 when present (true), or by hardware address only (false).
    pub match_client_id: bool,
    /// Answer a DISCOVER that carries rapid commit (RFC 4039, option 80) with an ACK, binding
    /// the lease at once, instead of an OFFER.
    pub rapid_commit: bool,
    /// Default lease times.
    pub lease: LeaseTimes,
    /// Seconds an offered address is held for its client before it may go to another.
    pub offer_hold: u32,
    /// Seconds a declined address stays out of use.
    pub decline_probation: u32,
    /// Fraction of the lease (0.0 to 1.0) within which an early renewal gets the unchanged
    /// lease back without a new journal write (Kea's cache-threshold); 0 disables.
    pub cache_threshold: f32,
    /// Remember option 82 from the REQUEST that bound a lease and use it for later unicast
    /// renewals that arrive without it (Kea's stash-agent-options).
    pub stash_agent_options: bool,
    /// Before offering an address no client holds, probe it (ICMP echo through the relay, ARP
    /// on a directly attached link) and wait this many milliseconds for an answer; an address
    /// that answers is in use and not offered. 0 (the default) offers without probing.
    pub ping_check_ms: u32,
    /// Who may ask leasequeries (RFC 4388): a query's `giaddr` must lie in one of these; empty
    /// (the default) answers none.
    pub leasequery_requesters: Vec<Ipv4Net>,
    /// Options every reply may carry, unless a scope, class or reservation sets the same code.
    pub options: OptionSet,
}

/// Whether a scope answers clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Serves clients.
    Active,
    /// Answers nothing (a scope being migrated to or from another server).
    Inactive,
}

/// A subnet with its pools, relays, options and reservations.
// Independent switches, one per key of the file.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Unique name, used in metrics labels and the admin API.
    pub name: String,
    /// The subnet clients of this scope live in.
    pub subnet: Ipv4Net,
    /// Dynamic address ranges, inside `subnet`, not overlapping any other pool.
    pub pools: Vec<Pool>,
    /// Extra relay addresses (giaddr) that select this scope although they lie outside
    /// `subnet` (Kea's `relay.ip-addresses`). A giaddr inside `subnet` selects it anyway.
    pub relay_addresses: Vec<Ipv4Addr>,
    /// Interfaces on which directly attached (unrelayed) clients of this scope arrive.
    pub interfaces: Vec<String>,
    /// VLANs that select this scope for a tagged unrelayed frame on one of `interfaces`; empty:
    /// every frame on them that no other scope's VLAN claims.
    pub vlans: Vec<VlanMatch>,
    /// Name of the shared network (several subnets on one link) this scope belongs to.
    pub shared_network: Option<String>,
    /// Server identifier to use in this scope; `None` uses the address of the receiving interface.
    pub server_id: Option<Ipv4Addr>,
    /// Lease times.
    pub lease: LeaseTimes,
    /// See [`ServerSettings::authoritative`].
    pub authoritative: bool,
    /// See [`ServerSettings::match_client_id`].
    pub match_client_id: bool,
    /// See [`ServerSettings::rapid_commit`].
    pub rapid_commit: bool,
    /// See [`ServerSettings::ping_check_ms`].
    pub ping_check_ms: u32,
    /// Whether the scope is shared with the failover partner, when there is one; `false`: this
    /// server serves it alone, and the partner neither hears of its bindings nor serves it.
    pub failover: bool,
    /// Whether the scope answers.
    pub state: AdminState,
    /// Options for this scope (option 1, the subnet mask, is added from `subnet`).
    pub options: OptionSet,
    /// Fixed addresses for known clients.
    pub reservations: Vec<Reservation>,
}

/// A dynamic range of addresses, both ends included.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address (>= `first`).
    pub last: Ipv4Addr,
    /// Client classes allowed to draw from this pool; empty allows every client.
    pub classes: Vec<String>,
}

/// How a reservation recognises its client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    /// Ethernet hardware address (`chaddr`).
    Mac([u8; 6]),
    /// Option 61 contents.
    ClientId(Vec<u8>),
    /// Option 82 sub-option 1.
    CircuitId(Vec<u8>),
    /// Option 82 sub-option 2.
    RemoteId(Vec<u8>),
}

/// A fixed address for one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// Who gets it.
    pub key: ReservationKey,
    /// The address, inside the scope's subnet (in or out of a pool).
    pub address: Ipv4Addr,
    /// Host name to hand out (option 12).
    pub hostname: Option<String>,
    /// Options for this client only.
    pub options: OptionSet,
}

/// One condition of a class; a class matches when all its conditions do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassMatch {
    /// Option 60 starts with these bytes.
    VendorClassPrefix(Vec<u8>),
    /// Option 82 circuit-id starts with these bytes.
    CircuitIdPrefix(Vec<u8>),
    /// Option 82 remote-id starts with these bytes.
    RemoteIdPrefix(Vec<u8>),
    /// `chaddr` starts with these bytes (an OUI, say).
    MacPrefix(Vec<u8>),
    /// `giaddr` lies in this network.
    Giaddr(Ipv4Net),
    /// The frame arrived on this VLAN (its tags as the server saw them).
    Vlan(VlanMatch),
}

/// A VLAN a tagged frame may arrive on: its outer tag's id, and for a QinQ frame its inner
/// tag's id too; without `inner`, any frame whose outer tag is `outer` (QinQ or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanMatch {
    /// Outer (service, or only) VLAN id, 1 to 4094.
    pub outer: u16,
    /// Inner (customer) VLAN id of a QinQ frame, 1 to 4094.
    pub inner: Option<u16>,
}

impl fmt::Display for VlanMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner {
            Some(inner) => write!(f, "{}.{inner}", self.outer),
            None => write!(f, "{}", self.outer),
        }
    }
}

impl VlanMatch {
    /// Whether a frame tagged with these VLAN ids, outermost first, matches.
    pub fn matches(&self, ids: &[u16]) -> bool {
        match (ids, self.inner) {
            ([outer, ..], None) => *outer == self.outer,
            ([outer, inner], Some(want)) => *outer == self.outer && *inner == want,
            _ => false,
        }
    }
}

/// A client class: conditions, and options for the clients that match.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// Unique name; pools refer to it.
    pub name: String,
    /// All must hold.
    pub conditions: Vec<ClassMatch>,
    /// Options for members, over the scope's and under a reservation's.
    pub options: OptionSet,
}

/// DHCP options ready to write: code and encoded data, sorted by code, one entry per code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionSet {
    /// `(code, data)`, sorted by code, codes unique; data may exceed 255 bytes (RFC 3396).
    pub options: Vec<(u8, Vec<u8>)>,
}

impl OptionSet {
    /// The data of option `code`, if set.
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.options
            .binary_search_by_key(&code, |(c, _)| *c)
            .ok()
            .map(|i| self.options[i].1.as_slice())
    }

    /// Sets option `code`, replacing any previous value.
    pub fn set(&mut self, code: u8, data: Vec<u8>) {
        match self.options.binary_search_by_key(&code, |(c, _)| *c) {
            Ok(i) => self.options[i].1 = data,
            Err(i) => self.options.insert(i, (code, data)),
        }
    }
}

/// The contents of a file that neither group nor others may read or write (as ssh asks of a
/// private key): a secret of the configuration's (the admin token, the TLS key). The error
/// names the file and says what to do.
pub fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let name = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{name}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{name}: readable or writable by group or others (mode {mode:03o}): chmod 600 {name}"
        ));
    }
    std::fs::read(path).map_err(|e| format!("{name}: {e}"))
}

/// The admin API's bearer token, as read from its file. Never printed: its `Debug` says only
/// that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// The fewest characters a token may have.
    pub const MIN_LEN: usize = 16;

    /// The token in the file at `path`: at least [`AdminToken::MIN_LEN`] characters once
    /// trimmed, in a file that neither group nor others may read or write (as ssh asks of a
    /// private key). The error names the file and says what to do.
    pub fn read(path: &Path) -> Result<AdminToken, String> {
        let name = path.display();
        let bytes = read_private(path)?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))?;
        let token = text.trim();
        if token.chars().count() < AdminToken::MIN_LEN {
            return Err(format!(
                "{name}: a token must have at least {} characters (openssl rand -hex 32 > {name})",
                AdminToken::MIN_LEN
            ));
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// The token itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// A TLS certificate chain and its private key, each a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of that certificate.
    pub key: PathBuf,
}
