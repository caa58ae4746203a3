//! A TAP device (`/dev/net/tun` with `IFF_TAP | IFF_NO_PI`): what the kernel sends out of the
//! device is read here, and what is written here the kernel receives on it.
//!
//! Each queue is one file descriptor. A device opened with `IFF_MULTI_QUEUE` takes several,
//! and the kernel spreads its outgoing flows over them. The device lives while a queue is open
//! (unless it was made persistent beforehand); bringing it up and giving it addresses is the
//! caller's business.
// Attaching to a TAP device is an ioctl(2).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_short};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use crate::sys::{self, SendFailure};
use crate::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};

const BACKEND: &str = "TAP";

/// The longest frame a TAP device sends: the largest MTU (`ETH_MAX_MTU`) with an Ethernet
/// header and two VLAN tags.
const RX_BUFFER: usize = 65_535 + 14 + 8;

/// Queues and burst size for [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapConfig {
    /// Queues (file descriptors) to attach; more than one needs `multi_queue`.
    pub queues: usize,
    /// Open the device with `IFF_MULTI_QUEUE`. A persistent device must be opened the way it
    /// was created.
    pub multi_queue: bool,
    /// Frames per TX burst: how many buffers [`TxQueue::buffer`] lends before a flush.
    pub tx_burst: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        Self {
            queues: 1,
            multi_queue: false,
            tx_burst: 64,
        }
    }
}

/// An open TAP device.
#[derive(Debug)]
pub struct Tap {
    /// The device's name: the one asked for, or the kernel's choice if that was empty or a
    /// pattern such as `tap%d`.
    pub name: String,
    /// The device's interface index, as reported in every [`RxFrame`].
    pub ifindex: u32,
    /// The receive and transmit side of each queue.
    pub queues: Vec<(TapRx, TapTx)>,
}

/// The receive side of a TAP queue.
pub struct TapRx {
    file: Arc<File>,
    /// Holds one frame at a time, from read(2) to the callback's return.
    buffer: Box<[u8]>,
    ifindex: u32,
}

/// The transmit side of a TAP queue.
pub struct TapTx {
    file: Arc<File>,
    /// One [`FRAME_CAPACITY`] buffer per frame of a burst, back to back.
    buffers: Box<[u8]>,
    /// Length of each queued frame, in buffer order.
    queued: Vec<usize>,
    burst: usize,
}

/// Creates the TAP device `name` (or attaches to it if it exists) in the calling thread's
/// network namespace, with `config.queues` queues.
///
/// Errors name the device and the step that failed.
pub fn open(name: &str, config: &TapConfig) -> io::Result<Tap> {
    let ctx = |step: &'static str| move |e: io::Error| sys::context(&e, BACKEND, name, step);
    if config.queues == 0 || (config.queues > 1 && !config.multi_queue) {
        let why = if config.queues == 0 {
            "no queues"
        } else {
            "several queues need multi_queue"
        };
        return Err(ctx("config")(io::Error::new(
            io::ErrorKind::InvalidInput,
            why,
        )));
    }
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if config.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    let mut request = sys::interface_name(name).map_err(ctx("name"))?;
    let mut files = Vec::with_capacity(config.queues);
    for _ in 0..config.queues {
        let (file, actual) = attach(request, flags as c_short).map_err(ctx("TUNSETIFF"))?;
        // Later queues attach to the device the first one created, if its name was a pattern.
        request = actual;
        files.push(Arc::new(file));
    }
    let bytes = request.map(|c| c.to_ne_bytes()[0]);
    let name = CStr::from_bytes_until_nul(&bytes)
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ifindex = sys::interface_index(&name).map_err(ctx("if_nametoindex"))?;
    let burst = config.tx_burst.max(1);
    let queues = files
        .into_iter()
        .map(|file| {
            let rx = TapRx {
                file: file.clone(),
                buffer: vec![0; RX_BUFFER].into_boxed_slice(),
                ifindex,
            };
            let tx = TapTx {
                file,
                buffers: vec![0; burst * FRAME_CAPACITY].into_boxed_slice(),
                queued: Vec::with_capacity(burst),
                burst,
            };
            (rx, tx)
        })
        .collect();
    Ok(Tap {
        name,
        ifindex,
        queues,
    })
}

/// Opens one queue of the device `name` (non-blocking); returns it with the device's name.
fn attach(
    name: [c_char; libc::IFNAMSIZ],
    flags: c_short,
) -> io::Result<(File, [c_char; libc::IFNAMSIZ])> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?;
    // SAFETY: `ifreq` is plain C data, for which all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    request.ifr_name = name;
    request.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads the name and flags from, and writes the name into, `request`,
    // which is a live `ifreq`.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &raw mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((file, request.ifr_name))
}

// By hand: the buffers would print as tens of thousands of bytes.
impl fmt::Debug for TapRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapRx")
            .field("ifindex", &self.ifindex)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TapTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapTx")
            .field("burst", &self.burst)
            .field("pending", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl RxQueue for TapRx {
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            match (&*self.file).read(&mut self.buffer) {
                Ok(0) => break,
                Ok(len) => {
                    f(RxFrame {
                        data: &self.buffer[..len],
                        ifindex: self.ifindex,
                        checksum_pending: false,
                    });
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The frames handed up count; the error comes back with the next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        sys::wait_readable(self.file.as_fd(), timeout)
    }
}

impl TxQueue for TapTx {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let start = self.queued.len() * FRAME_CAPACITY;
        self.buffers.get_mut(start..start + FRAME_CAPACITY)
    }

    /// Queues the frame; ignored when the burst is full (no buffer was lent for it). A TAP
    /// queue has one interface, so `ifindex` is ignored.
    fn queue(&mut self, len: usize, _ifindex: u32) {
        if self.queued.len() < self.burst {
            self.queued.push(len.min(FRAME_CAPACITY));
        }
    }

    /// Writes each queued frame. A TAP device takes one frame per write(2) and has no
    /// batched form (writev(2) would join the buffers into one frame). An unsendable frame is
    /// dropped; a full or downed device drops the rest of the burst.
    fn flush(&mut self) -> io::Result<usize> {
        let mut sent = 0;
        let mut result = Ok(());
        let frames = self
            .queued
            .iter()
            .zip(self.buffers.chunks_exact(FRAME_CAPACITY));
        'frames: for (&len, buffer) in frames {
            loop {
                match (&*self.file).write(&buffer[..len]) {
                    Ok(_) => sent += 1,
                    Err(e) => match SendFailure::of(&e) {
                        SendFailure::Retry => continue,
                        SendFailure::Frame => {}
                        SendFailure::Burst => break 'frames,
                        SendFailure::Fatal => {
                            result = Err(e);
                            break 'frames;
                        }
                    },
                }
                break;
            }
        }
        self.queued.clear();
        result.map(|()| sent)
    }

    fn pending(&self) -> usize {
        self.queued.len()
    }
}
