//! Bulk leasequery (RFC 6926) over TCP: each message framed by its two-byte length, each
//! query answered by the engine, a connection's queries one after another.

use std::io::{self, BufWriter, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use peregrine_dataplane::{SharedEngine, unix_now};
use peregrine_engine::BulkStatus;

/// Connections served at once; more are closed as they come.
const MAX_CONNECTIONS: usize = 8;
/// A connection that sends no query for this long is closed (RFC 6926 §7.4 lets the server).
const IDLE: Duration = Duration::from_mins(1);
/// How often a blocked read or accept looks at the quit flag.
const POLL: Duration = Duration::from_millis(200);

/// Listens on `listen` until `quit`, answering bulk leasequeries from `engine`.
pub(crate) fn spawn(
    listen: SocketAddr,
    engine: Arc<SharedEngine>,
    quit: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("bulk leasequery: listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(%listen, "bulk leasequery listening");
    Ok(std::thread::Builder::new()
        .name("bulk-leasequery".into())
        .spawn(move || accept(&listener, &engine, &quit))?)
}

fn accept(listener: &TcpListener, engine: &Arc<SharedEngine>, quit: &Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !quit.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    tracing::warn!(%peer, "bulk leasequery: too many connections, closed");
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (engine, quit, active) = (engine.clone(), quit.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("bulk-leasequery-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve(&stream, peer, &engine, &quit) {
                            tracing::info!(%peer, "bulk leasequery connection ended: {e}");
                        }
                        active.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    tracing::warn!(%peer, "bulk leasequery: no thread for the connection: {e}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 4),
            Err(e) => {
                tracing::warn!("bulk leasequery: accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Answers the queries of one connection until it closes, idles, is refused, or `quit`.
fn serve(
    stream: &TcpStream,
    peer: SocketAddr,
    engine: &SharedEngine,
    quit: &AtomicBool,
) -> io::Result<()> {
    let (IpAddr::V4(requestor), IpAddr::V4(local_ip)) = (peer.ip(), stream.local_addr()?.ip())
    else {
        return Err(io::Error::other("not IPv4"));
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL))?;
    stream.set_nodelay(true)?;
    let mut reader = stream;
    let mut query = vec![0u8; usize::from(u16::MAX)];
    let mut answer = vec![0u8; 1500];
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut reader, &mut len, quit)? {
            return Ok(());
        }
        let len = usize::from(u16::from_be_bytes(len));
        if !read_full(&mut reader, &mut query[..len], quit)? {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed inside a message",
            ));
        }
        let mut out = BufWriter::with_capacity(64 * 1024, stream);
        let started = Instant::now();
        // The engine in use when the query arrived, though a reload replaces it meanwhile.
        let (status, sent) = engine.load().bulk_leasequery(
            unix_now(),
            local_ip,
            requestor,
            &query[..len],
            &mut answer,
            |m| {
                // Messages are at most 1500 bytes: the length fits its two bytes.
                out.write_all(&(m.len() as u16).to_be_bytes())?;
                out.write_all(m)
            },
        )?;
        out.flush()?;
        tracing::info!(%peer, ?status, sent, took = ?started.elapsed(), "bulk leasequery");
        if status == BulkStatus::NotAllowed {
            return Ok(());
        }
    }
}

/// Fills `buf` from `reader`, looking at `quit` between reads; `Ok(false)` if the peer closed
/// (or `quit`, or [`IDLE`] passed) before the first byte.
fn read_full(reader: &mut impl Read, buf: &mut [u8], quit: &AtomicBool) -> io::Result<bool> {
    let mut at = 0;
    let since = Instant::now();
    while at < buf.len() {
        if quit.load(Ordering::Relaxed) || (at == 0 && since.elapsed() > IDLE) {
            return Ok(false);
        }
        match reader.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_split_across_reads_is_read_whole_and_a_closed_peer_ends_it() {
        let quit = AtomicBool::new(false);
        let mut chunks = io::Cursor::new(vec![1u8, 2, 3, 4, 5]);
        let mut buf = [0u8; 3];
        assert!(read_full(&mut chunks, &mut buf, &quit).unwrap());
        assert_eq!(buf, [1, 2, 3]);
        // Two bytes left of a three-byte message: the peer closed inside it.
        assert_eq!(
            read_full(&mut chunks, &mut buf, &quit).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        // Closed before a message: the connection is over, no error.
        assert!(!read_full(&mut chunks, &mut buf, &quit).unwrap());
    }
}
