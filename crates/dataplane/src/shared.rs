//! The engine a running server's threads share, replaced whole by a reload.
//!
//! The threads that change bindings on their own (workers, the failover link) are *members*:
//! each calls [`Member::checkpoint`] between bursts, which costs one relaxed load while no
//! reload runs. A reload ([`SharedEngine::replace`]) asks every member to stop at its next
//! checkpoint and waits until all have (bounded); then no one changes the engine, its state
//! is handed to a successor built beforehand, which is published, and the members go on with
//! it.
//! Frames that arrive meanwhile wait in the queues' rings. Writers that are not members (an
//! import through the admin API) change the engine inside [`SharedEngine::write`], which a
//! reload waits for; readers take [`SharedEngine::load`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use peregrine_engine::Engine;

/// The engine every thread of a server uses; see the module documentation.
#[derive(Debug)]
pub struct SharedEngine {
    current: Mutex<Arc<Engine>>,
    /// Bumped when `current` is replaced (under its lock).
    generation: AtomicU64,
    /// Members stop at their next checkpoint while it is set.
    pause: AtomicBool,
    members: AtomicUsize,
    parked: AtomicUsize,
    /// Held by a replacement and by writers that are not members.
    writers: Mutex<()>,
}

/// Why [`SharedEngine::replace`] replaced nothing.
#[derive(Debug)]
pub enum ReplaceError<E> {
    /// Not every member reached a checkpoint in time (`parked` of `members`).
    Busy {
        /// Members stopped when the wait ended.
        parked: usize,
        /// Members registered.
        members: usize,
    },
    /// The successor could not be built: the engine in use stays.
    Build(E),
}

impl SharedEngine {
    /// Shares `engine`.
    pub fn new(engine: Arc<Engine>) -> Arc<SharedEngine> {
        Arc::new(SharedEngine {
            current: Mutex::new(engine),
            generation: AtomicU64::new(0),
            pause: AtomicBool::new(false),
            members: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            writers: Mutex::new(()),
        })
    }

    /// The engine in use now, for reading (a binding's lookup, pool gauges).
    pub fn load(&self) -> Arc<Engine> {
        lock(&self.current).clone()
    }

    /// Registers the calling thread's user of the engine as a member (a worker, the failover
    /// link): from now on a reload waits for it at its [`Member::checkpoint`]s.
    pub fn member(self: &Arc<SharedEngine>) -> Member {
        self.members.fetch_add(1, Ordering::SeqCst);
        let (engine, generation) = {
            let current = lock(&self.current);
            (current.clone(), self.generation.load(Ordering::SeqCst))
        };
        Member {
            shared: self.clone(),
            engine,
            generation,
        }
    }

    /// The engine in use, for a change made by a thread that is not a member: no reload
    /// starts while the guard is held.
    pub fn write(&self) -> WriteGuard<'_> {
        let guard = lock(&self.writers);
        WriteGuard {
            engine: self.load(),
            _guard: guard,
        }
    }

    /// Replaces the engine in use by what `prepare` builds from it (while it serves on) and
    /// `hand_over` then moves its state into, with every member stopped and no writer inside
    /// [`SharedEngine::write`]; waits at most `patience` for the members. Returns the new
    /// engine, and how long the members were stopped. If `prepare` fails, or the members do not all stop in time, the engine in use
    /// stays and the members go on with it.
    pub fn replace<E>(
        &self,
        patience: Duration,
        prepare: impl FnOnce(&Engine) -> Result<Engine, E>,
        hand_over: impl FnOnce(&Engine, &mut Engine),
    ) -> Result<(Arc<Engine>, Duration), ReplaceError<E>> {
        let _writers = lock(&self.writers);
        let old = self.load();
        let mut next = prepare(&old).map_err(ReplaceError::Build)?;
        let paused = Instant::now();
        self.pause.store(true, Ordering::SeqCst);
        let resume = Resume(&self.pause);
        let deadline = Instant::now() + patience;
        loop {
            let (parked, members) = (
                self.parked.load(Ordering::SeqCst),
                self.members.load(Ordering::SeqCst),
            );
            if parked >= members {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ReplaceError::Busy { parked, members });
            }
            std::thread::sleep(PARK_POLL);
        }
        hand_over(&old, &mut next);
        let next = Arc::new(next);
        {
            let mut current = lock(&self.current);
            *current = next.clone();
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        drop(resume);
        let paused = paused.elapsed();
        // The old engine (every pool of the old configuration) is freed here rather than by
        // whichever worker lets go of it last, in its packet loop: members let go as they
        // leave their checkpoint; a reader may keep it a moment longer.
        let deadline = Instant::now() + RELEASE_PATIENCE;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(PARK_POLL);
        }
        drop(old);
        Ok((next, paused))
    }
}

/// How long a replacement waits for the others to let go of the engine it replaced.
const RELEASE_PATIENCE: Duration = Duration::from_secs(1);

/// How often a parked member, and a reload waiting for members, look again.
const PARK_POLL: Duration = Duration::from_micros(50);

/// Lets the members go, however the replacement ends.
struct Resume<'a>(&'a AtomicBool);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A thread's registration as a member of a [`SharedEngine`], with the engine it uses.
#[derive(Debug)]
pub struct Member {
    shared: Arc<SharedEngine>,
    engine: Arc<Engine>,
    generation: u64,
}

impl Member {
    /// Between bursts: stops here while a reload runs. Returns whether the engine changed
    /// (then [`Member::engine`] is the new one).
    #[inline]
    pub fn checkpoint(&mut self) -> bool {
        if self.shared.pause.load(Ordering::Relaxed) {
            self.park()
        } else {
            false
        }
    }

    /// The engine this member uses until its next checkpoint.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    #[cold]
    fn park(&mut self) -> bool {
        let shared = &*self.shared;
        shared.parked.fetch_add(1, Ordering::SeqCst);
        while shared.pause.load(Ordering::SeqCst) {
            std::thread::sleep(PARK_POLL);
        }
        shared.parked.fetch_sub(1, Ordering::SeqCst);
        let generation = shared.generation.load(Ordering::SeqCst);
        if generation == self.generation {
            return false;
        }
        self.engine = shared.load();
        self.generation = generation;
        true
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.shared.members.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The engine in use, held for a change by a thread that is not a member.
#[derive(Debug)]
pub struct WriteGuard<'a> {
    engine: Arc<Engine>,
    _guard: MutexGuard<'a, ()>,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// A poisoned lock here guards only an `Arc` or nothing: what it holds is whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
