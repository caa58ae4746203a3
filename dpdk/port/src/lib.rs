//! DPDK for Peregrine: the EAL (once per process), mempools, and ports whose queues are
//! `peregrine-io` RX and TX queues, so that the dataplane runs on a DPDK port as it does on
//! `AF_PACKET`.
//!
//! Every DPDK failure is a [`DpdkError`] naming the call and DPDK's reason; nothing here panics.
//! A received frame is handed up where it lies in its mbuf, and the mbuf freed after; a frame
//! to send is written straight into an mbuf from the port's pool.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use peregrine_dpdk_sys as sys;
use peregrine_io::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};

mod idle;

use idle::{Idle, IdleAction};

/// Frames moved per burst call.
pub const BURST: usize = 32;

/// A DPDK call that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    /// The call, with what it was called on (`rte_eth_dev_configure(port 0)`).
    pub call: String,
    /// DPDK's reason (`rte_strerror`), or ours where DPDK gives none.
    pub reason: String,
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.reason)
    }
}

impl std::error::Error for DpdkError {}

impl DpdkError {
    fn new(call: impl Into<String>, reason: impl Into<String>) -> DpdkError {
        DpdkError {
            call: call.into(),
            reason: reason.into(),
        }
    }

    /// `call` failed with DPDK error number `errno` (positive, or negated as some calls return).
    fn errno(call: impl Into<String>, errno: i32) -> DpdkError {
        // SAFETY: rte_strerror returns a pointer to a NUL-terminated string DPDK keeps.
        let reason = unsafe { CStr::from_ptr(sys::rte_strerror(errno.abs())) };
        DpdkError::new(
            call,
            format!("{} (errno {})", reason.to_string_lossy(), errno.abs()),
        )
    }

    /// A call that returns a negative errno on failure.
    fn check(call: impl FnOnce() -> String, ret: i32) -> Result<(), DpdkError> {
        if ret < 0 {
            Err(DpdkError::errno(call(), ret))
        } else {
            Ok(())
        }
    }
}

/// Whether this process started an EAL: DPDK allows one, for the life of the process.
static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised DPDK environment (EAL) of this process.
#[derive(Debug)]
pub struct Eal(());

impl Eal {
    /// Starts the EAL with these arguments (as after a program name: `-l 0-1`, `--vdev=...`,
    /// `--file-prefix=...`). Once per process: a second call is an error, as is any argument
    /// the EAL refuses (it says which on stderr, and this error names the call).
    ///
    /// The EAL pins the calling thread to the first lcore of `-l`; the thread gets back the CPUs
    /// it had, so that the threads it starts later (a server's control plane, its journal
    /// writer, workers not pinned by their own configuration) do not all share that one core.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new(
                "rte_eal_init",
                "the EAL of this process is started already",
            ));
        }
        let owned: Vec<CString> = std::iter::once("peregrine")
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| {
                CString::new(a)
                    .map_err(|_| DpdkError::new("rte_eal_init", format!("{a:?} holds a NUL")))
            })
            .collect::<Result<_, _>>()?;
        let mut argv: Vec<*mut c_char> = owned.iter().map(|a| a.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len())
            .map_err(|_| DpdkError::new("rte_eal_init", "too many arguments"))?;
        // SAFETY: a zeroed cpu_set_t is a valid empty set, filled by the call if it succeeds.
        let mut cpus: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpus is a cpu_set_t of `size` bytes; pid 0 is this thread.
        let had = unsafe { libc::sched_getaffinity(0, size, &raw mut cpus) } == 0;
        // SAFETY: argv holds argc C strings that outlive the call; DPDK may reorder the array.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::errno("rte_eal_init", sys::errno()));
        }
        if had {
            // SAFETY: as above; the set is the one this thread had.
            let ret = unsafe { libc::sched_setaffinity(0, size, &raw const cpus) };
            if ret != 0 {
                return Err(DpdkError::new(
                    "sched_setaffinity",
                    format!(
                        "giving the EAL's thread its CPUs back: {}",
                        io::Error::last_os_error()
                    ),
                ));
            }
        }
        Ok(Eal(()))
    }

    /// Ports the EAL found (its vdevs, and the NICs bound to DPDK).
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The id of the port called `name` (`net_af_packet0`, a PCI address).
    pub fn port_by_name(&self, name: &str) -> Result<u16, DpdkError> {
        let call = || format!("rte_eth_dev_get_port_by_name({name})");
        let c = CString::new(name).map_err(|_| DpdkError::new(call(), "the name holds a NUL"))?;
        let mut id = 0u16;
        // SAFETY: c is a C string, id a valid place for the answer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &raw mut id) };
        DpdkError::check(call, ret)?;
        Ok(id)
    }
}

/// Whether these EAL arguments put a vdev on a kernel interface (`net_af_packet`'s or
/// `net_af_xdp`'s `iface=`, `net_tap`'s `iface=` or `remote=`): the kernel then keeps that
/// interface too, and may answer what arrives on it (`net_af_packet` lets it see every frame).
pub fn on_kernel_interfaces<S: AsRef<str>>(eal_args: &[S]) -> bool {
    eal_args.iter().any(|a| {
        let a = a.as_ref();
        a.contains(",iface=") || a.contains(",remote=")
    })
}

/// The calling thread's lcore id: `None` for a thread DPDK neither started nor registered
/// (see [`RxQueue::attach_thread`] on [`DpdkRx`]).
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads this thread's own DPDK thread-local.
    let id = unsafe { sys::rte_lcore_id() };
    (id != u32::MAX).then_some(id)
}

/// A pool of packet buffers (mbufs) on one NUMA socket.
#[derive(Debug)]
pub struct Mempool {
    raw: *mut sys::rte_mempool,
}

// SAFETY: a DPDK mempool is safe to use from any thread (per-lcore caches aside, which DPDK
// handles for non-EAL threads).
unsafe impl Send for Mempool {}
// SAFETY: as above; the pool is only passed to DPDK calls.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `count` mbufs of DPDK's default size (2 KiB of data room), named `name`, on
    /// the socket of the calling thread.
    ///
    /// Where the EAL addresses devices by virtual address, the mbufs lie back to back in one
    /// stretch of memory rather than each kept within a page: `net_af_xdp` registers the pool
    /// with the kernel as one region of `count` objects, and without hugepages a pool laid
    /// out page by page reaches past that region, whose last mbufs the kernel then refuses
    /// (the port stops sending and receiving once the pool first hands them out).
    pub fn new(_eal: &Eal, name: &str, count: u32) -> Result<Mempool, DpdkError> {
        let call = |what: &str| format!("{what}({name}, {count})");
        let c = CString::new(name).map_err(|_| {
            DpdkError::new(call("rte_mempool_create_empty"), "the name holds a NUL")
        })?;
        let room = u16::try_from(sys::RTE_MBUF_DEFAULT_BUF_SIZE).map_err(|_| {
            DpdkError::new(
                call("rte_mempool_create_empty"),
                "DPDK's default buffer size exceeds 64 KiB",
            )
        })?;
        let elt_size = std::mem::size_of::<sys::rte_mbuf>() as u32 + u32::from(room);
        let private = std::mem::size_of::<sys::rte_pktmbuf_pool_private>() as u32;
        // SAFETY: the EAL is initialised (an &Eal exists).
        let by_va = unsafe { sys::rte_eal_iova_mode() } == sys::rte_iova_mode_RTE_IOVA_VA;
        let flags = if by_va {
            sys::RTE_MEMPOOL_F_NO_IOVA_CONTIG
        } else {
            0
        };
        // SAFETY: as above; c is a C string. The steps are rte_pktmbuf_pool_create's, with the
        // pool's flags ours; on failure the half-made pool is freed.
        unsafe {
            let socket = sys::rte_socket_id().cast_signed();
            let raw = sys::rte_mempool_create_empty(
                c.as_ptr(),
                count,
                elt_size,
                256,
                private,
                socket,
                flags,
            );
            if raw.is_null() {
                return Err(DpdkError::errno(
                    call("rte_mempool_create_empty"),
                    sys::errno(),
                ));
            }
            let pool = Mempool { raw };
            let ret = sys::rte_mempool_set_ops_byname(
                raw,
                sys::rte_mbuf_best_mempool_ops(),
                std::ptr::null_mut(),
            );
            DpdkError::check(|| call("rte_mempool_set_ops_byname"), ret)?;
            let mut conf = sys::rte_pktmbuf_pool_private {
                mbuf_data_room_size: room,
                mbuf_priv_size: 0,
                flags: 0,
            };
            sys::rte_pktmbuf_pool_init(raw, (&raw mut conf).cast());
            let ret = sys::rte_mempool_populate_default(raw);
            DpdkError::check(|| call("rte_mempool_populate_default"), ret)?;
            sys::rte_mempool_obj_iter(raw, Some(sys::rte_pktmbuf_init), std::ptr::null_mut());
            Ok(pool)
        }
    }

    /// Mbufs in the pool, not lent out (what the ports' rings and the workers hold is the
    /// rest).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is live.
        unsafe { sys::rte_mempool_avail_count(self.raw) }
    }
}

/// A started port with `queues` RX and TX queues (RSS spreads received flows over them).
#[derive(Debug)]
pub struct Port {
    id: u16,
    queues: u16,
}

impl Port {
    /// Configures and starts port `id` with `queues` queues each way, `ring` descriptors per
    /// queue, receiving into `pool`, promiscuous (a DHCP server hears broadcasts and frames for
    /// the addresses it answers for).
    pub fn start(
        _eal: &Eal,
        id: u16,
        queues: u16,
        ring: u16,
        pool: &Mempool,
    ) -> Result<Port, DpdkError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid place for the answer.
        let ret = unsafe { sys::rte_eth_dev_info_get(id, &raw mut info) };
        DpdkError::check(|| format!("rte_eth_dev_info_get(port {id})"), ret)?;
        if queues == 0 || queues > info.max_rx_queues || queues > info.max_tx_queues {
            return Err(DpdkError::new(
                format!("rte_eth_dev_configure(port {id})"),
                format!(
                    "{queues} queues asked, the port has {} RX and {} TX",
                    info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        if queues > 1 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            // Whatever the port hashes on: addresses and ports spread relays' flows.
            conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads;
        }
        // SAFETY: the port id came from the EAL.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) }
            .max(0)
            .cast_unsigned();
        // SAFETY: conf outlives the calls; the queues are set up before the port starts, as
        // DPDK requires, from a live pool.
        unsafe {
            let ret = sys::rte_eth_dev_configure(id, queues, queues, &raw const conf);
            DpdkError::check(|| format!("rte_eth_dev_configure(port {id})"), ret)?;
            for q in 0..queues {
                let ret =
                    sys::rte_eth_rx_queue_setup(id, q, ring, socket, std::ptr::null(), pool.raw);
                DpdkError::check(
                    || format!("rte_eth_rx_queue_setup(port {id}, queue {q})"),
                    ret,
                )?;
                let ret = sys::rte_eth_tx_queue_setup(id, q, ring, socket, std::ptr::null());
                DpdkError::check(
                    || format!("rte_eth_tx_queue_setup(port {id}, queue {q})"),
                    ret,
                )?;
            }
            let ret = sys::rte_eth_dev_start(id);
            DpdkError::check(|| format!("rte_eth_dev_start(port {id})"), ret)?;
            // Not every PMD can; those that cannot pass everything anyway.
            let _ = sys::rte_eth_promiscuous_enable(id);
        }
        Ok(Port { id, queues })
    }

    /// The port's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's hardware address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: addr is a valid place for the answer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id, &raw mut addr) };
        DpdkError::check(|| format!("rte_eth_macaddr_get(port {})", self.id), ret)?;
        Ok(addr.addr_bytes)
    }

    /// Whether the port's link is up (without waiting for it to settle).
    pub fn link_up(&self) -> Result<bool, DpdkError> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: link is a valid place for the answer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &raw mut link) };
        DpdkError::check(|| format!("rte_eth_link_get_nowait(port {})", self.id), ret)?;
        Ok(link.link_status() != 0)
    }

    /// Frames and errors counted by the port (the PMD's basic statistics).
    pub fn stats(&self) -> Result<sys::rte_eth_stats, DpdkError> {
        let mut stats = sys::rte_eth_stats::default();
        // SAFETY: stats is a valid place for the answer.
        let ret = unsafe { sys::rte_eth_stats_get(self.id, &raw mut stats) };
        DpdkError::check(|| format!("rte_eth_stats_get(port {})", self.id), ret)?;
        Ok(stats)
    }

    /// How many queues it was started with, each way.
    pub fn queues(&self) -> u16 {
        self.queues
    }

    /// The driver's extended statistics (`rte_eth_xstats_get`), by DPDK's name for each
    /// (`rx_good_packets`, `rx_q0_packets`, a PMD's own).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let call = |what: &str| format!("{what}(port {})", self.id);
        // SAFETY: a null array of size 0 asks only for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        DpdkError::check(|| call("rte_eth_xstats_get_names"), n)?;
        let n = n.cast_unsigned();
        let mut names = vec![sys::rte_eth_xstat_name::default(); n as usize];
        let mut values = vec![sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: both arrays hold n entries.
        let (got_names, got_values) = unsafe {
            (
                sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n),
                sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n),
            )
        };
        DpdkError::check(|| call("rte_eth_xstats_get_names"), got_names)?;
        DpdkError::check(|| call("rte_eth_xstats_get"), got_values)?;
        // A port whose count changed between the calls returns more than asked: read only
        // what both calls filled.
        let filled = got_values.cast_unsigned().min(n) as usize;
        Ok(values[..filled]
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                // SAFETY: DPDK writes NUL-terminated names into the fixed array.
                let name = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((name.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// Queue `q`'s two sides, sending from `pool`; each belongs to one thread at a time (DPDK's
    /// queues take no locks). The one-port case of [`lcore_queues`].
    pub fn queue(&self, q: u16, pool: &Arc<Mempool>) -> Option<(DpdkRx, DpdkTx)> {
        lcore_queues(&[self], q, pool)
    }
}

/// Queue `q` of every one of `ports`, for one worker on one lcore, as DPDK's l3fwd gives an
/// lcore a list of (port, queue) to poll: its RX takes a burst from each port in turn (a frame's
/// `ifindex` is its port's id), its TX sends each frame out of the port its `ifindex` names.
/// One polling thread per core, however many ports: a second one on the core would take turns
/// with the first, each polling while the other's frames wait. `None` if a port lacks queue
/// `q`, or there is no port.
pub fn lcore_queues(ports: &[&Port], q: u16, pool: &Arc<Mempool>) -> Option<(DpdkRx, DpdkTx)> {
    if ports.is_empty() || ports.iter().any(|p| q >= p.queues) {
        return None;
    }
    let queues: Vec<(u16, u16)> = ports.iter().map(|p| (p.id, q)).collect();
    Some((
        DpdkRx {
            queues: queues.clone(),
            first: 0,
            registered: None,
            idle: Idle::default(),
        },
        DpdkTx {
            pending: queues.iter().map(|_| Vec::with_capacity(BURST)).collect(),
            queues,
            pool: pool.clone(),
            current: std::ptr::null_mut(),
        },
    ))
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: the port was started by this value; stopping and closing it ends its use.
        unsafe {
            let _ = sys::rte_eth_dev_stop(self.id);
            let _ = sys::rte_eth_dev_close(self.id);
        }
    }
}

/// The receive side of a queue on each of an lcore's ports ([`lcore_queues`]).
#[derive(Debug)]
pub struct DpdkRx {
    /// (port, queue) to poll.
    queues: Vec<(u16, u16)>,
    /// The one polled first in the next burst: each goes first in turn, so that none waits
    /// behind the others' bursts every time.
    first: usize,
    /// The thread [`RxQueue::attach_thread`] registered with the EAL, if it did.
    registered: Option<std::thread::ThreadId>,
    /// Whether its worker yields or naps when the queue gives nothing.
    idle: Idle,
}

impl Drop for DpdkRx {
    fn drop(&mut self) {
        if self.registered == Some(std::thread::current().id()) {
            // SAFETY: this thread was registered by this queue and is done polling it.
            unsafe { sys::rte_thread_unregister() };
        }
    }
}

// SAFETY: a queue may move between threads; it is used by one at a time (&mut self).
unsafe impl Send for DpdkRx {}

/// The frame an mbuf holds (single-segment: every mbuf of these pools holds a whole frame).
///
/// # Safety
/// `m` is a valid mbuf, not freed while the slice lives.
unsafe fn frame<'m>(m: *mut sys::rte_mbuf) -> &'m [u8] {
    unsafe {
        let data = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
        std::slice::from_raw_parts(data, usize::from((*m).data_len))
    }
}

/// Frames of a burst whose data is asked into the cache ahead of their turn: l3fwd's
/// `PREFETCH_OFFSET`.
const PREFETCH_AHEAD: usize = 3;

/// Asks the CPU to bring the received frame in `m` into its cache. The frame was written by
/// another agent (the NIC's DMA, or on a vdev the kernel on the sender's core), so the worker's
/// first reads of it miss: its Ethernet header and its UDP checksum were 6.5 % of the worker's
/// samples on `net_af_xdp` (BENCHMARKS.md, "Prefetching a burst's frames").
///
/// # Safety
/// `m` is an mbuf DPDK handed us and has not been freed.
#[inline]
unsafe fn prefetch(m: *mut sys::rte_mbuf) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: the caller's: `m` is a live mbuf, whose header `frame` reads.
        let data = unsafe { frame(m) };
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let mut line = start & !63;
        while line < end {
            // SAFETY: the address lies in the frame; a prefetch has no effect but on the cache.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = m;
}

impl RxQueue for DpdkRx {
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        let mut got = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        let k = self.queues.len();
        let mut total = 0;
        for i in 0..k {
            let want = max.saturating_sub(total).min(BURST) as u16;
            if want == 0 {
                break;
            }
            let (port, queue) = self.queues[(self.first + i) % k];
            // SAFETY: got has room for `want` mbuf pointers.
            let n =
                usize::from(unsafe { sys::rte_eth_rx_burst(port, queue, got.as_mut_ptr(), want) });
            for m in &got[..n.min(PREFETCH_AHEAD)] {
                // SAFETY: DPDK handed us these mbufs and none is freed yet.
                unsafe { prefetch(*m) };
            }
            for (j, m) in got[..n].iter().enumerate() {
                if let Some(ahead) = got[..n].get(j + PREFETCH_AHEAD) {
                    // SAFETY: as above: a later mbuf of this burst, not freed yet.
                    unsafe { prefetch(*ahead) };
                }
                // SAFETY: DPDK handed us these mbufs; each is freed right after its callback.
                unsafe {
                    f(RxFrame {
                        data: frame(*m),
                        ifindex: u32::from(port),
                        checksum_pending: false,
                    });
                    sys::rte_pktmbuf_free(*m);
                }
            }
            total += n;
        }
        self.first = (self.first + 1) % k;
        if total > 0 {
            self.idle.frames();
        }
        Ok(total)
    }

    /// Registers the calling thread with the EAL (gives it an lcore id) if DPDK did not start
    /// it, so that its mbufs come from and go back to a per-lcore cache of the pool rather than
    /// the pool's shared ring; dropping the queue on that thread unregisters it. Should every
    /// lcore id be taken, the queue works on, without a cache.
    fn attach_thread(&mut self) {
        // SAFETY: the EAL is initialised (the port exists); both calls concern this thread.
        unsafe {
            if sys::rte_lcore_id() == u32::MAX && sys::rte_thread_register() == 0 {
                self.registered = Some(std::thread::current().id());
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // A poll-mode driver has nothing to wait on: see `Idle`.
        match self.idle.empty(std::time::Instant::now, timeout) {
            IdleAction::Yield => std::thread::yield_now(),
            IdleAction::Nap(nap) => std::thread::sleep(nap),
        }
        Ok(())
    }
}

/// The transmit side of a queue on each of an lcore's ports ([`lcore_queues`]): frames are
/// written straight into mbufs of its pool, and leave by the port their `ifindex` names.
#[derive(Debug)]
pub struct DpdkTx {
    /// (port, queue) to send on.
    queues: Vec<(u16, u16)>,
    /// The frames queued for each of `queues`, together at most a burst.
    pending: Vec<Vec<*mut sys::rte_mbuf>>,
    pool: Arc<Mempool>,
    /// The mbuf lent by the last [`TxQueue::buffer`], not queued yet.
    current: *mut sys::rte_mbuf,
}

// SAFETY: as for DpdkRx; the mbufs it holds are its own until sent or freed.
unsafe impl Send for DpdkTx {}

impl TxQueue for DpdkTx {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        if self.pending() >= BURST {
            return None;
        }
        if self.current.is_null() {
            // SAFETY: the pool is a live DPDK mempool.
            self.current = unsafe { sys::rte_pktmbuf_alloc(self.pool.raw) };
            if self.current.is_null() {
                return None;
            }
        }
        let m = self.current;
        // SAFETY: m is ours; its data room from data_off on is writable and holds at least a
        // full frame (checked).
        unsafe {
            let room = usize::from((*m).buf_len).saturating_sub(usize::from((*m).data_off));
            if room < FRAME_CAPACITY {
                return None;
            }
            let data = (*m).buf_addr.cast::<u8>().add(usize::from((*m).data_off));
            Some(std::slice::from_raw_parts_mut(data, room))
        }
    }

    /// `ifindex` is a port id; one this queue does not send on (0 with a single port that is
    /// not port 0: "the queue's own") goes out of its first port.
    fn queue(&mut self, len: usize, ifindex: u32) {
        let m = std::mem::replace(&mut self.current, std::ptr::null_mut());
        if m.is_null() {
            return;
        }
        // SAFETY: m is ours, and `len` fits the room `buffer` lent (at most FRAME_CAPACITY is
        // asked of it, and a frame is never longer than 64 KiB).
        unsafe {
            let len = len.min(usize::from((*m).buf_len)) as u16;
            (*m).data_len = len;
            (*m).pkt_len = u32::from(len);
        }
        let at = self
            .queues
            .iter()
            .position(|&(port, _)| u32::from(port) == ifindex)
            .unwrap_or(0);
        self.pending[at].push(m);
    }

    fn flush(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        for (&(port, queue), pending) in self.queues.iter().zip(&mut self.pending) {
            if pending.is_empty() {
                continue;
            }
            let n = pending.len() as u16;
            // SAFETY: pending holds n mbufs of ours; DPDK takes those it sends.
            let took =
                usize::from(unsafe { sys::rte_eth_tx_burst(port, queue, pending.as_mut_ptr(), n) });
            for m in pending.drain(..).skip(took) {
                // SAFETY: the mbufs DPDK did not take are still ours.
                unsafe { sys::rte_pktmbuf_free(m) };
            }
            sent += took;
        }
        Ok(sent)
    }

    fn pending(&self) -> usize {
        self.pending.iter().map(Vec::len).sum()
    }
}

impl Drop for DpdkTx {
    fn drop(&mut self) {
        // SAFETY: every mbuf held is ours and unsent.
        unsafe {
            sys::rte_pktmbuf_free(self.current);
            for m in self.pending.iter_mut().flat_map(|p| p.drain(..)) {
                sys::rte_pktmbuf_free(m);
            }
        }
    }
}
