//! Test support shared by Peregrine's crates; never a dependency of shipped code.
//!
//! [`CountingAllocator`] proves hot paths allocate nothing: a test binary installs it as its
//! global allocator and wraps the code under test in [`allocations_during`]. [`netns::Netns`]
//! gives a test its own network namespace, removed when the test ends. [`frames`] writes the
//! client messages and frames tests send. [`process`] finds the third-party tools tests drive
//! and stops the processes they start. [`config`] builds validated configurations by hand.
//! [`rng::Rng`] is the seeded generator of tests that replay from a printed seed.
// A global allocator can only be written with `unsafe impl GlobalAlloc`.
#![allow(unsafe_code)]

pub mod config;
pub mod frames;
pub mod netns;
pub mod process;
pub mod rng;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting allocations and reallocations per thread, so tests that run
/// in parallel do not disturb each other's counts.
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: peregrine_testkit::CountingAllocator = peregrine_testkit::CountingAllocator;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local with a `const` initialiser, so counting itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// How many allocations (and reallocations) `f` made on this thread. Meaningful only in a
/// binary whose global allocator is [`CountingAllocator`].
pub fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}
