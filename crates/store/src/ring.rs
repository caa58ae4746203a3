//! A bounded single-producer single-consumer ring: a worker's queue of records to the writer.
//!
//! Neither side ever waits for the other. A multi-producer queue (crossbeam's `ArrayQueue`,
//! used here before) claims a slot, then fills it, then marks it full; a consumer that finds a
//! slot claimed but not yet marked spins until it is. When a worker and the writer share a core
//! and the worker is preempted inside that window (the writer's own timer wake-up is enough),
//! the writer spins for the rest of its time slice, 4 ms at HZ=250, while the worker's
//! queue on the NIC overflows. Here the producer publishes a slot only by moving the tail past
//! it once it is written, so the consumer sees whole records or none.
//!
//! The single-producer and single-consumer rule is kept by ownership: [`ring`] returns one
//! [`Producer`] and one [`Consumer`], neither can be cloned, and both take `&mut self`.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// The memory both ends share. `head` and `tail` count records ever taken and ever published;
/// slot `n % capacity` holds record `n`.
struct Shared<T> {
    slots: Box<[UnsafeCell<T>]>,
    /// Records the consumer has finished reading: stored by the consumer only.
    head: CachePadded<AtomicU64>,
    /// Records the producer has finished writing: stored by the producer only.
    tail: CachePadded<AtomicU64>,
}

// SAFETY: a slot is written only by the producer while it is outside `head..tail` and read
// only by the consumer while it is inside; the Release stores and Acquire loads of `head` and
// `tail` order those accesses. `T: Send` because records cross threads.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn slot(&self, n: u64) -> *mut T {
        // The slot count is a power of two, so the mask is a cheap `n % len`.
        self.slots[(n as usize) & (self.slots.len() - 1)].get()
    }
}

/// The pushing end of a [`ring`].
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `tail`, so that a push does not load it back.
    tail: u64,
    /// The consumer's `head` when last loaded: the ring has room at least up to it.
    head: u64,
}

/// The taking end of a [`ring`].
pub(crate) struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `head`.
    head: u64,
}

/// A ring of at least `capacity` records (rounded up to a power of two), every slot filled with
/// `fill` once, here, so that pushing never touches a fresh page.
pub(crate) fn ring<T: Copy + Send>(capacity: usize, fill: T) -> (Producer<T>, Consumer<T>) {
    let len = capacity.max(1).next_power_of_two();
    let shared = Arc::new(Shared {
        slots: (0..len).map(|_| UnsafeCell::new(fill)).collect(),
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head: 0,
        },
        Consumer { shared, head: 0 },
    )
}

impl<T: Copy> Producer<T> {
    /// Appends `value`; `false` if the ring is full.
    pub(crate) fn push(&mut self, value: &T) -> bool {
        let capacity = self.shared.slots.len() as u64;
        if self.tail - self.head == capacity {
            // Acquire: the consumer's reads of the slots it has passed are done.
            self.head = self.shared.head.load(Ordering::Acquire);
            if self.tail - self.head == capacity {
                return false;
            }
        }
        // SAFETY: slot `tail` is outside `head..tail` (checked above): the consumer does not
        // read it until the store below publishes it, and only this producer writes slots.
        unsafe { self.shared.slot(self.tail).write(*value) };
        self.tail += 1;
        // Release: the record is written before the consumer can see it.
        self.shared.tail.store(self.tail, Ordering::Release);
        true
    }
}

impl<T: Copy> Consumer<T> {
    /// Hands each published record, oldest first and at most `max` of them, to `each`, then
    /// frees their slots; returns how many. Never waits: a record still being written is not
    /// published yet, and is left for the next call.
    pub(crate) fn drain(&mut self, max: usize, mut each: impl FnMut(&T)) -> usize {
        // Acquire: the records up to `tail` are written.
        let tail = self.shared.tail.load(Ordering::Acquire);
        let count = (tail - self.head).min(max as u64);
        for n in self.head..self.head + count {
            // SAFETY: `n` is inside `head..tail`: published, and not written again until the
            // store below frees it.
            each(unsafe { &*self.shared.slot(n) });
        }
        self.head += count;
        // Release: our reads of those slots are done before the producer may reuse them.
        self.shared.head.store(self.head, Ordering::Release);
        count as usize
    }

    /// Whether nothing is published that [`Consumer::drain`] has not taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.shared.tail.load(Ordering::Acquire) == self.head
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.shared.slots.len())
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.shared.slots.len())
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(consumer: &mut Consumer<u64>, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        consumer.drain(max, |v| out.push(*v));
        out
    }

    #[test]
    fn a_full_ring_refuses_and_takes_again_once_drained_in_order_across_the_wrap() {
        let (mut producer, mut consumer) = ring(3, 0u64);
        // Rounded up to 4.
        for v in 1..=4 {
            assert!(producer.push(&v));
        }
        assert!(!producer.push(&5));
        assert_eq!(taken(&mut consumer, 3), [1, 2, 3]);
        assert!(!consumer.is_empty());
        for v in 5..=7 {
            assert!(producer.push(&v), "{v}");
        }
        assert!(!producer.push(&8));
        assert_eq!(taken(&mut consumer, 100), [4, 5, 6, 7]);
        assert!(consumer.is_empty());
        assert_eq!(taken(&mut consumer, 100), Vec::<u64>::new());
    }

    /// Two threads, a ring much smaller than the stream: every record arrives once, in order.
    #[test]
    fn a_stream_through_a_small_ring_arrives_whole_and_in_order() {
        const RECORDS: u64 = 200_000;
        let (mut producer, mut consumer) = ring(64, [0u64; 4]);
        let pusher = std::thread::spawn(move || {
            let mut next = 0;
            while next < RECORDS {
                // Each record carries its number four times: a torn read would show.
                if producer.push(&[next; 4]) {
                    next += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        });
        let mut expected = 0;
        while expected < RECORDS {
            let got = consumer.drain(usize::MAX, |record| {
                assert_eq!(*record, [expected; 4]);
                expected += 1;
            });
            if got == 0 {
                std::thread::yield_now();
            }
        }
        pusher.join().unwrap();
        assert!(consumer.is_empty());
    }
}
