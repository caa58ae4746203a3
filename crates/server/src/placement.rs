//! Where threads run: pinning to a core and the idle scheduling class, applied by the thread
//! itself when it starts. The server makes (or is handed) every thread, so it places them;
//! the crates whose threads these are (the journal's, the workers') know nothing of cores.

use std::io;
use std::sync::Arc;

use peregrine_store::{JournalThread, ThreadSetup};

/// The CPUs the calling thread may run on.
fn affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) } == 0 {
        Ok(set)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Restricts the calling thread to the CPUs of `set`.
fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs of `set`, in order.
fn cpus(set: &libc::cpu_set_t) -> Vec<usize> {
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, set) })
        .collect()
}

/// Restricts the calling thread to CPU `core` (a worker pinned to its core, as DPDK pins its
/// lcores). Errors say which core could not be had.
pub(crate) fn pin_current_thread(core: usize) -> io::Result<()> {
    let pinned = if core >= libc::CPU_SETSIZE as usize {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "beyond CPU_SETSIZE",
        ))
    } else {
        // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `core` is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(core, &mut set) };
        set_affinity(&set)
    };
    pinned.map_err(|e| io::Error::new(e.kind(), format!("pinning a thread to CPU {core}: {e}")))
}

/// Keeps the calling thread, and with it every thread it starts from now on, off the workers'
/// `cores`: the journal writer, compaction, the control plane and the failover link then never
/// take a worker's core from it (a polling DPDK worker has no idle time to lend them; an
/// AF_PACKET worker would be held up mid-burst). A worker pins itself to its core when it
/// starts, whatever it inherits. Returns the CPUs left to the other threads, or `None` when the
/// workers' cores are every CPU this thread may use (then all share them, unchanged).
pub(crate) fn keep_off_worker_cores(cores: &[usize]) -> io::Result<Option<Vec<usize>>> {
    let mut set = affinity()?;
    for &core in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `core` is below CPU_SETSIZE.
        unsafe { libc::CPU_CLR(core, &mut set) };
    }
    let left = cpus(&set);
    if left.is_empty() {
        return Ok(None);
    }
    set_affinity(&set)?;
    Ok(Some(left))
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only when nothing else on its core wants
/// to, so background work (compaction) never delays a worker that shares the core.
pub(crate) fn idle_priority_current_thread() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How the journal's threads are placed: both on `core` if one is configured (away from the
/// workers), and compaction, never urgent, in the idle class so that on a core it shares with
/// a worker it runs only when the worker idles (without the privilege it runs as is).
pub(crate) fn journal_setup(core: Option<usize>) -> ThreadSetup {
    Arc::new(move |thread| {
        if let Some(core) = core {
            pin_current_thread(core)?;
        }
        if thread == JournalThread::Compactor
            && let Err(e) = idle_priority_current_thread()
        {
            tracing::debug!("lease compaction keeps its priority: {e}");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_moved_to_idle_priority_runs_as_sched_idle() {
        let policy = std::thread::spawn(|| {
            idle_priority_current_thread().unwrap();
            // SAFETY: sched_getscheduler(2) on the calling thread reads its policy.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        // SAFETY: as above; the test thread itself kept its policy.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    /// The CPUs of the calling thread, in order.
    fn current() -> Vec<usize> {
        cpus(&affinity().unwrap())
    }

    /// With a worker on the first CPU, the thread and those it starts later run on the others;
    /// with workers on every CPU nothing moves.
    #[test]
    fn the_other_threads_leave_the_workers_cores() {
        let all = current();
        if all.len() < 2 {
            eprintln!("one CPU here: nothing to leave it for");
            return;
        }
        let (left, child) = std::thread::spawn(|| {
            let left = keep_off_worker_cores(&[current()[0]]).unwrap();
            let child = std::thread::spawn(current).join().unwrap();
            (left, child)
        })
        .join()
        .unwrap();
        assert_eq!(left.as_deref(), Some(&all[1..]));
        assert_eq!(child, all[1..]);
        let (left, after) = std::thread::spawn(move || {
            let left = keep_off_worker_cores(&current()).unwrap();
            (left, current())
        })
        .join()
        .unwrap();
        assert_eq!(left, None);
        assert_eq!(after, all);
    }

    /// A thread pinned to core 0 runs there; a core the machine lacks is refused by name, and
    /// the journal refuses to start with that error.
    #[test]
    fn pinning_takes_a_real_core_and_names_a_missing_one() {
        std::thread::spawn(|| pin_current_thread(0).unwrap())
            .join()
            .unwrap();
        let e = std::thread::spawn(|| pin_current_thread(1023).unwrap_err())
            .join()
            .unwrap();
        assert!(e.to_string().contains("CPU 1023"), "{e}");
        let e = std::thread::spawn(|| journal_setup(Some(1023))(JournalThread::Writer))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("CPU 1023"), "{e}");
    }
}
