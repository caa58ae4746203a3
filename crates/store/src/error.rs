//! The store's one error type, worded for the operator who reads it in the log.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::record::FormatError;

/// Why lease state could not be opened, read or written.
#[derive(Debug)]
pub enum StoreError {
    /// An operating-system error on `path`.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Another process holds the lease directory's lock.
    Locked {
        /// The lease directory.
        dir: PathBuf,
        /// The process id the holder wrote into the lock file, if it could be read.
        holder: Option<u32>,
    },
    /// The journal is damaged somewhere other than a torn last write, so the server refuses
    /// to guess which leases are valid.
    Corrupt {
        /// The journal file.
        file: PathBuf,
        /// Byte offset of the damage: 0 for the header, else the start of the first bad record.
        offset: u64,
        /// What is wrong there.
        reason: FormatError,
    },
    /// The writer was started on a journal that [`crate::LeaseDir::recover`] has not just
    /// checked; appending after an untruncated torn tail would turn it into mid-file damage.
    NotRecovered(PathBuf),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Locked { dir, holder } => {
                write!(
                    f,
                    "{}: lease directory in use by another process",
                    dir.display()
                )?;
                if let Some(pid) = holder {
                    write!(f, " (pid {pid})")?;
                }
                write!(
                    f,
                    ", which holds the lock on {}; stop it, or give each server its own directory",
                    dir.join(crate::dir::LOCK).display()
                )
            }
            StoreError::Corrupt {
                file,
                offset,
                reason,
            } => {
                write!(f, "{}: corrupt at byte {offset}: {reason}", file.display())?;
                if reason.is_framing() {
                    f.write_str(
                        ", and intact records follow it, so it is not a write cut short by a crash",
                    )?;
                }
                write!(
                    f,
                    ". Peregrine will not guess which leases are valid. `peregrine leases verify \
                     --dir {dir}` shows every damaged span; `peregrine leases recover --config \
                     <the server's configuration>` repairs {dir}: it keeps every intact record, \
                     before and after the damage (after copying each damaged file to \
                     <name>.corrupt-<unix time>), and holds back the addresses the damaged \
                     records may have leased",
                    dir = crate::dir::parent(file).display()
                )
            }
            StoreError::NotRecovered(file) => write!(
                f,
                "{}: the journal writer must start right after a recovery of the journal \
                 (a torn tail must be cut before anything is appended)",
                file.display()
            ),
        }
    }
}

// No `source()`: the Display text already includes the cause, and error chains would
// print it twice.
impl std::error::Error for StoreError {}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
