//! The libc plumbing the Linux backends share: interface names and indexes, poll(2), and what
//! a failed send means for the rest of a burst.
// Every item here is a thin wrapper over one libc call.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// `name` as the kernel's `ifr_name`: shorter than `IFNAMSIZ`, without NUL bytes.
pub(crate) fn interface_name(name: &str) -> io::Result<[c_char; libc::IFNAMSIZ]> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name (at most 15 bytes, no NUL)"),
        ));
    }
    let mut out = [0; libc::IFNAMSIZ];
    for (o, b) in out.iter_mut().zip(name.bytes()) {
        *o = c_char::from_ne_bytes([b]);
    }
    Ok(out)
}

/// The interface's index in the calling thread's network namespace.
pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    interface_name(name)?;
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// Waits until `fd` is readable or `timeout` passes. A signal ends the wait early, which the
/// queue contract allows ("may be ready").
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up: a sub-millisecond wait must not become a busy poll.
    let ms =
        libc::c_int::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one valid `pollfd`, and the count says one.
    if unsafe { libc::poll(&raw mut p, 1, ms) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// What a failed send of one frame means for the frames queued behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFailure {
    /// A signal: try the same frame again.
    Retry,
    /// This frame is unsendable (too long, too short, no such interface): drop it, go on.
    Frame,
    /// The device is full or down: drop the rest of the burst rather than spin on it.
    Burst,
    /// The queue itself is broken: report it.
    Fatal,
}

impl SendFailure {
    pub(crate) fn of(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EINTR) => Self::Retry,
            Some(libc::EMSGSIZE | libc::EINVAL | libc::ENXIO | libc::ENODEV) => Self::Frame,
            Some(libc::EAGAIN | libc::ENOBUFS | libc::ENETDOWN | libc::EIO) => Self::Burst,
            _ => Self::Fatal,
        }
    }
}

/// `e` with the backend, interface and step in its message, keeping its kind.
pub(crate) fn context(e: &io::Error, backend: &str, interface: &str, step: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{backend} on {interface:?}: {step}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_before_the_kernel_sees_them() {
        assert_eq!(interface_name("eth0").unwrap()[..5], [101, 116, 104, 48, 0]);
        assert!(interface_name("fifteen-chars-x").is_ok());
        assert!(interface_name("sixteen-chars-xx").is_err());
        assert!(interface_name("a\0b").is_err());
        assert!(interface_index("a\0b").is_err());
    }

    #[test]
    fn send_failures_are_classified() {
        let f = |n| SendFailure::of(&io::Error::from_raw_os_error(n));
        assert_eq!(f(libc::EINTR), SendFailure::Retry);
        assert_eq!(f(libc::EMSGSIZE), SendFailure::Frame);
        assert_eq!(f(libc::ENOBUFS), SendFailure::Burst);
        assert_eq!(f(libc::EBADF), SendFailure::Fatal);
    }
}
