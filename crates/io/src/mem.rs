//! An in-process queue pair standing in for a NIC: the test side injects frames and collects
//! what the dataplane sent.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::{FRAME_CAPACITY, RxFrame, RxQueue, TxQueue};

#[derive(Debug, Default)]
struct Shared {
    to_dataplane: Mutex<VecDeque<(Vec<u8>, u32)>>,
    ready: Condvar,
    from_dataplane: Mutex<Vec<(Vec<u8>, u32)>>,
}

/// The test side of an in-memory port.
#[derive(Debug, Clone)]
pub struct MemPeer {
    shared: Arc<Shared>,
}

/// The receive side handed to the dataplane.
#[derive(Debug)]
pub struct MemRx {
    shared: Arc<Shared>,
    scratch: Vec<(Vec<u8>, u32)>,
}

/// The transmit side handed to the dataplane.
#[derive(Debug)]
pub struct MemTx {
    shared: Arc<Shared>,
    buffers: Vec<Vec<u8>>,
    queued: Vec<(usize, u32)>,
    burst: usize,
}

/// A port whose TX bursts hold at most `burst` frames.
pub fn port(burst: usize) -> (MemPeer, MemRx, MemTx) {
    let shared = Arc::new(Shared::default());
    (
        MemPeer {
            shared: shared.clone(),
        },
        MemRx {
            shared: shared.clone(),
            scratch: Vec::new(),
        },
        MemTx {
            shared,
            buffers: vec![vec![0; FRAME_CAPACITY]; burst.max(1)],
            queued: Vec::new(),
            burst: burst.max(1),
        },
    )
}

impl MemPeer {
    /// Delivers a frame to the dataplane as if it arrived on `ifindex`.
    pub fn inject(&self, frame: &[u8], ifindex: u32) {
        self.shared
            .to_dataplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((frame.to_vec(), ifindex));
        self.shared.ready.notify_all();
    }

    /// Takes every frame the dataplane has sent so far, with its interface index.
    pub fn sent(&self) -> Vec<(Vec<u8>, u32)> {
        std::mem::take(
            &mut *self
                .shared
                .from_dataplane
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl RxQueue for MemRx {
    fn rx_burst(&mut self, max: usize, f: &mut dyn FnMut(RxFrame<'_>)) -> io::Result<usize> {
        {
            let mut q = self
                .shared
                .to_dataplane
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = q.len().min(max);
            self.scratch.extend(q.drain(..n));
        }
        let n = self.scratch.len();
        for (data, ifindex) in self.scratch.drain(..) {
            f(RxFrame {
                data: &data,
                ifindex,
                checksum_pending: false,
            });
        }
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        let q = self
            .shared
            .to_dataplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if q.is_empty() {
            let _unused = self
                .shared
                .ready
                .wait_timeout(q, timeout)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }
}

impl TxQueue for MemTx {
    fn buffer(&mut self) -> Option<&mut [u8]> {
        let i = self.queued.len();
        if i == self.burst {
            None
        } else {
            Some(&mut self.buffers[i])
        }
    }

    fn queue(&mut self, len: usize, ifindex: u32) {
        self.queued.push((len.min(FRAME_CAPACITY), ifindex));
    }

    fn flush(&mut self) -> io::Result<usize> {
        let mut out = self
            .shared
            .from_dataplane
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = self.queued.len();
        for (i, (len, ifindex)) in self.queued.drain(..).enumerate() {
            out.push((self.buffers[i][..len].to_vec(), ifindex));
        }
        Ok(n)
    }

    fn pending(&self) -> usize {
        self.queued.len()
    }
}
