//! Bounded single-producer single-consumer rings between the threads of one server: a worker's
//! records to the journal writer, its binding changes to the failover link, frames between the
//! workers of one interface.
//!
//! Neither end ever waits for the other. A multi-producer queue (crossbeam's `ArrayQueue`, used
//! for all three before) claims a slot, then fills it, then marks it full; a consumer that
//! finds a slot claimed but not yet marked spins until it is. When producer and consumer share a
//! core and the producer is preempted inside that window (the consumer's own timer wake-up is
//! enough), the consumer spins for the rest of its time slice, 4 ms at HZ=250, while the
//! producer's NIC queue overflows: measured on the journal writer (BENCHMARKS.md, "A writer
//! that spun on a preempted worker"). Here the producer publishes a slot only by moving the tail
//! past it once it is written, so the consumer sees whole values or none.
//!
//! The one-producer one-consumer rule is kept by ownership: [`ring`] returns one [`Producer`]
//! and one [`Consumer`], neither can be cloned, and both take `&mut self`.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// The memory both ends share. `head` and `tail` count values ever taken and ever published;
/// slot `n % len` holds value `n` while `head <= n < tail`.
struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// Values the consumer has moved out: stored by the consumer only.
    head: CachePadded<AtomicU64>,
    /// Values the producer has finished writing: stored by the producer only.
    tail: CachePadded<AtomicU64>,
}

// SAFETY: a slot is written only by the producer while it is outside `head..tail` and read only
// by the consumer while it is inside; the Release stores and Acquire loads of `head` and `tail`
// order those accesses. Values move between threads, hence `T: Send`. (`Send` follows from the
// fields; the last owner drops what is left with exclusive access.)
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn slot(&self, n: u64) -> *mut MaybeUninit<T> {
        // The slot count is a power of two: the mask is `n % len`.
        self.slots[(n as usize) & (self.slots.len() - 1)].get()
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone (the consumer stored its head when it dropped): what is published
        // and not taken is still ours to drop.
        let head = *self.head.get_mut();
        let tail = *self.tail.get_mut();
        for n in head..tail {
            // SAFETY: values in `head..tail` are initialised and taken by no one.
            unsafe { (*self.slot(n)).assume_init_drop() };
        }
    }
}

/// The pushing end of a [`ring`].
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `tail`, so that a push need not load it back.
    tail: u64,
    /// The consumer's `head` when last loaded: there is room at least up to it.
    head: u64,
}

/// The taking end of a [`ring`].
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// Our own `head`.
    head: u64,
}

/// A ring of at least `capacity` values (rounded up to a power of two). Its memory is written
/// once here, so that no push faults a fresh page in on a worker's path.
pub fn ring<T: Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let len = capacity.max(1).next_power_of_two();
    let mut slots: Box<[UnsafeCell<MaybeUninit<T>>]> = (0..len)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let bytes = len * size_of::<T>();
    let base = slots.as_mut_ptr().cast::<u8>();
    for offset in (0..bytes).step_by(4096).chain(bytes.checked_sub(1)) {
        // SAFETY: `offset` is inside the slots' allocation, which nothing else references yet;
        // a byte of uninitialised storage may hold anything. Volatile, so that the write is
        // not folded into a zeroed allocation that leaves the pages untouched.
        unsafe { base.add(offset).write_volatile(0) };
    }
    let shared = Arc::new(Shared {
        slots,
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

impl<T> Producer<T> {
    /// Appends `value`, or gives it back if the ring is full.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        let len = self.shared.slots.len() as u64;
        if self.tail - self.head == len {
            // Acquire: the consumer has finished with the slots it has passed.
            self.head = self.shared.head.load(Ordering::Acquire);
            if self.tail - self.head == len {
                return Err(value);
            }
        }
        // SAFETY: slot `tail` is outside `head..tail` (checked above): the consumer does not
        // read it until the store below publishes it, and only this producer writes slots.
        unsafe { (*self.shared.slot(self.tail)).write(value) };
        self.tail += 1;
        // Release: the value is written before the consumer can see it.
        self.shared.tail.store(self.tail, Ordering::Release);
        Ok(())
    }
}

impl<T> Consumer<T> {
    /// Moves the oldest published value out, if there is one. Never waits: a value still being
    /// written is not published yet.
    pub fn pop(&mut self) -> Option<T> {
        let mut value = None;
        self.drain(1, |v| value = Some(v));
        value
    }

    /// Moves published values out to `each`, oldest first and at most `max` of them; returns
    /// how many. Never waits: a value still being written is left for the next call.
    pub fn drain(&mut self, max: usize, mut each: impl FnMut(T)) -> usize {
        // Acquire: the values up to `tail` are written.
        let tail = self.shared.tail.load(Ordering::Acquire);
        let count = (tail - self.head).min(max as u64);
        let end = self.head + count;
        while self.head < end {
            // SAFETY: `head` is inside `head..tail`: published, initialised, and not written
            // again until the head passes it; advancing our head at once means a panic in
            // `each` cannot leave the value to be dropped twice (our drop publishes the head).
            let value = unsafe { (*self.shared.slot(self.head)).assume_init_read() };
            self.head += 1;
            each(value);
        }
        // Release: our reads of those slots are done before the producer may reuse them.
        self.shared.head.store(self.head, Ordering::Release);
        count as usize
    }

    /// Whether nothing is published that has not been taken.
    pub fn is_empty(&self) -> bool {
        self.shared.tail.load(Ordering::Acquire) == self.head
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // What was moved out is not the ring's to drop any more (also after a panic in
        // `drain`'s `each`).
        self.shared.head.store(self.head, Ordering::Release);
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
        consumer.drain(max, |v| out.push(v));
        out
    }

    #[test]
    fn a_full_ring_refuses_and_takes_again_once_drained_in_order_across_the_wrap() {
        // Rounded up to 4.
        let (mut producer, mut consumer) = ring(3);
        for v in 1..=4 {
            assert_eq!(producer.push(v), Ok(()));
        }
        assert_eq!(producer.push(5), Err(5));
        assert_eq!(taken(&mut consumer, 3), [1, 2, 3]);
        assert!(!consumer.is_empty());
        for v in 5..=7 {
            assert_eq!(producer.push(v), Ok(()), "{v}");
        }
        assert_eq!(producer.push(8), Err(8));
        assert_eq!(consumer.pop(), Some(4));
        assert_eq!(taken(&mut consumer, 100), [5, 6, 7]);
        assert!(consumer.is_empty());
        assert_eq!(consumer.pop(), None);
    }

    /// Two threads, a ring much smaller than the stream: every value arrives once, in order.
    #[test]
    fn a_stream_through_a_small_ring_arrives_whole_and_in_order() {
        const VALUES: u64 = 200_000;
        let (mut producer, mut consumer) = ring(64);
        let pusher = std::thread::spawn(move || {
            let mut next = 0;
            while next < VALUES {
                // Each value carries its number four times: a torn read would show.
                match producer.push([next; 4]) {
                    Ok(()) => next += 1,
                    Err(_) => std::thread::yield_now(),
                }
            }
        });
        let mut expected = 0;
        while expected < VALUES {
            let got = consumer.drain(usize::MAX, |value| {
                assert_eq!(value, [expected; 4]);
                expected += 1;
            });
            if got == 0 {
                std::thread::yield_now();
            }
        }
        pusher.join().unwrap();
        assert!(consumer.is_empty());
    }

    /// Every value pushed is dropped exactly once: taken ones by whoever took them, the rest
    /// with the ring, also after a panic in the middle of a drain.
    #[test]
    fn values_left_in_the_ring_are_dropped_once() {
        let token = Arc::new(());
        let (mut producer, mut consumer) = ring(8);
        for _ in 0..6 {
            producer.push(token.clone()).unwrap();
        }
        assert_eq!(Arc::strong_count(&token), 7);
        drop(consumer.pop());
        let mut calls = 0;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            consumer.drain(usize::MAX, |_value| {
                calls += 1;
                assert!(calls < 2, "the second value panics");
            });
        }));
        assert!(panicked.is_err());
        // Three taken and dropped (the last while unwinding); three left in the ring.
        assert_eq!(Arc::strong_count(&token), 4);
        drop(consumer);
        drop(producer);
        assert_eq!(Arc::strong_count(&token), 1);
    }
}
