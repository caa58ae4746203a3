//! Tests of the Linux backends against the kernel: each test builds a network namespace of its
//! own (a veth pair or a TAP device inside), removed when the test ends, and sends frames only
//! there. They need root and skip with a message without it.
#![cfg(target_os = "linux")]
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod afpacket;
mod tap;

use std::time::{Duration, Instant};

use peregrine_io::{RxQueue, TxQueue};
use peregrine_testkit::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// How long a test waits for frames before it gives up.
const PATIENCE: Duration = Duration::from_secs(5);

/// Marks the frames a test sent, so that anything else on the link is ignored.
const MARK: &[u8; 8] = b"PGIOTEST";

/// An Ethernet/IPv4/UDP frame of `len` bytes (at least 60) to a MAC no one has, so the
/// kernel's IP stack ignores it. `seq` is in the payload after [`MARK`] and in the UDP source
/// port, so frames differ in flow and can be told apart.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = u16::try_from(f.len() - 14).unwrap();
    f[14..34].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[34..36].copy_from_slice(&(1024 + (seq % 60_000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&67u16.to_be_bytes());
    f[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f[42..50].copy_from_slice(MARK);
    f[50..54].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

/// `f` with VLAN tags `(tpid, tci)` inserted after the MAC addresses, outermost first.
fn tagged(f: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    for (tpid, tci) in tags {
        out.extend(tpid.to_be_bytes());
        out.extend(tci.to_be_bytes());
    }
    out.extend(&f[12..]);
    out
}

/// The sequence number of a frame a test sent, or `None` for anything else.
fn seq(f: &[u8]) -> Option<u32> {
    let at = f.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    Some(u32::from_be_bytes(f.get(at..at + 4)?.try_into().unwrap()))
}

/// Sends `frames` in bursts as large as `tx` lends; returns how many the kernel took.
fn send(tx: &mut dyn TxQueue, frames: &[Vec<u8>]) -> usize {
    let mut sent = 0;
    for f in frames {
        if tx.buffer().is_none() {
            sent += tx.flush().unwrap();
        }
        tx.buffer().unwrap()[..f.len()].copy_from_slice(f);
        tx.queue(f.len(), 0);
    }
    sent + tx.flush().unwrap()
}

/// The marked frames received on `rx` until `want` have come or [`PATIENCE`] runs out, with
/// the interface index each came with.
fn receive(rx: &mut dyn RxQueue, want: usize) -> Vec<(Vec<u8>, u32)> {
    receive_any(&mut [rx], want).remove(0)
}

/// How many marked frames arrive on `rx` within 100 ms: for frames that must not come.
fn stray(rx: &mut dyn RxQueue) -> usize {
    let deadline = Instant::now() + Duration::from_millis(100);
    let mut n = 0;
    while Instant::now() < deadline {
        rx.rx_burst(64, &mut |f| n += usize::from(seq(f.data).is_some()))
            .unwrap();
        rx.wait(Duration::from_millis(2)).unwrap();
    }
    n
}

/// Like [`receive`] over several queues, `want` in total; then a short while longer, so that a
/// frame delivered twice would show.
fn receive_any(queues: &mut [&mut dyn RxQueue], want: usize) -> Vec<Vec<(Vec<u8>, u32)>> {
    let mut got = vec![Vec::new(); queues.len()];
    let deadline = Instant::now() + PATIENCE;
    let mut total = 0;
    let mut settle = None;
    loop {
        for (rx, got) in queues.iter_mut().zip(&mut got) {
            rx.rx_burst(64, &mut |f| {
                if seq(f.data).is_some() {
                    got.push((f.data.to_vec(), f.ifindex));
                    total += 1;
                }
            })
            .unwrap();
        }
        if total >= want && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_millis(20));
        }
        if settle.is_some_and(|s| Instant::now() >= s) || Instant::now() >= deadline {
            return got;
        }
        queues[0].wait(Duration::from_millis(2)).unwrap();
    }
}
