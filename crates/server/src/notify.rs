//! Telling systemd how the service is (`Type=notify`): `READY=1` once serving, `RELOADING=1`
//! and `READY=1` around a reload, `STOPPING=1` on the way out. One datagram to the socket
//! `NOTIFY_SOCKET` names, if it names one; nothing otherwise.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The service manager's notification socket, if the server runs under one.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace);
    /// `None` if it names none or it cannot be reached.
    pub(crate) fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let name = name.to_str()?;
        let to = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?,
            None => SocketAddr::from_pathname(name).ok()?,
        };
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, to })
    }

    /// Sends `state` (`READY=1`, ...); a manager that does not listen is no error of ours.
    pub(crate) fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            tracing::warn!("NOTIFY_SOCKET: {e}");
        }
    }
}
