//! The lease directory: its lock, its key secret, and the file operations that keep it
//! consistent across crashes.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use peregrine_engine::KeySecret;

use crate::disk::{Disk, DiskFile, Open, OsDisk};
use crate::error::{StoreError, io_at};
use crate::record::encode_header;

/// The journal file's name in the directory.
pub(crate) const JOURNAL: &str = "journal";
/// The key secret's file name.
const SECRET: &str = "secret";
/// The lock file's name.
pub(crate) const LOCK: &str = "lock";
/// The file of scope states set through the admin API.
const SCOPE_STATES: &str = "scope-states";
/// How often, and how long apart, a held directory lock is tried again before giving up.
const LOCK_RETRIES: u32 = 25;
const LOCK_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// `recovered_len` before a recovery, and after the writer has taken it.
const NOT_RECOVERED: u64 = u64::MAX;

/// An open lease directory, locked for this process until the value is dropped.
///
/// It holds `secret` (the engine's [`KeySecret`], hexadecimal), `journal` (the append-only
/// journal, see [`crate::record`]) and `lock`. Everything the server knows about leases lives
/// here, so the directory can be backed up, moved or wiped as a whole.
#[derive(Debug)]
pub struct LeaseDir {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    secret: KeySecret,
    /// The journal's length as the last [`LeaseDir::recover`] left it, until the writer starts.
    recovered_len: AtomicU64,
    /// The number the writer gives the next segment it seals, as that recovery found.
    next_segment: AtomicU64,
    /// Holds the `flock`, which is released when the last holder (this, or a running journal
    /// writer) closes it.
    lock: Arc<Box<dyn DiskFile>>,
}

impl LeaseDir {
    /// Opens the lease directory at `path`, creating it (and its secret and an empty journal)
    /// on first use, and locks it so that no other server can use it while this value lives.
    pub fn open(path: &Path) -> Result<LeaseDir, StoreError> {
        LeaseDir::open_on(Arc::new(OsDisk), path)
    }

    /// [`LeaseDir::open`] on `disk`.
    pub(crate) fn open_on(disk: Arc<dyn Disk>, path: &Path) -> Result<LeaseDir, StoreError> {
        let d = &*disk;
        let existed = d.exists(path).map_err(io_at(path))?;
        d.create_dir_all(path).map_err(io_at(path))?;
        if !existed {
            // The directory entry itself must survive a power loss, or everything in it goes.
            sync_dir(d, parent(path))?;
        }
        let lock = lock(d, path)?;
        let secret = secret(d, path)?;
        let journal = path.join(JOURNAL);
        if !d.exists(&journal).map_err(io_at(&journal))? {
            write_atomically(d, &journal, &encode_header(unix_now()))?;
        }
        Ok(LeaseDir {
            disk,
            path: path.to_path_buf(),
            secret,
            recovered_len: AtomicU64::new(NOT_RECOVERED),
            next_segment: AtomicU64::new(1),
            lock: Arc::new(lock),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The filesystem it is on.
    pub(crate) fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// The journal file.
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL)
    }

    /// The secret that keys digests of long client identities. The engine must be built with
    /// it, or a restarted server no longer recognises those clients.
    pub fn key_secret(&self) -> KeySecret {
        self.secret
    }

    /// The scopes' states as the admin API last left them where they differ from the
    /// configuration (`name`, active), in the order written; none before the first change. A scope the configuration no longer has may be
    /// among them: the caller decides.
    pub fn scope_states(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let path = self.path.join(SCOPE_STATES);
        let text = match read_text(&*self.disk, &path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&path)(e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .map(|(i, line)| match line.rsplit_once('\t') {
                Some((name, "active")) => Ok((name.to_owned(), true)),
                Some((name, "inactive")) => Ok((name.to_owned(), false)),
                _ => Err(io_at(&path)(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: not `scope<TAB>active|inactive`; delete the file to take \
                         the configuration's states",
                        i + 1
                    ),
                ))),
            })
            .collect()
    }

    /// What writes the scopes' states for [`LeaseDir::scope_states`] to read at the next start.
    pub fn scope_state_file(&self) -> ScopeStateFile {
        ScopeStateFile {
            disk: self.disk.clone(),
            path: self.path.join(SCOPE_STATES),
        }
    }

    /// The lock, for a writer that must keep the directory to itself until it stops.
    pub(crate) fn lock_handle(&self) -> Arc<Box<dyn DiskFile>> {
        self.lock.clone()
    }

    /// Notes that the journal was just recovered and is `len` bytes long, and which number
    /// the next sealed segment takes.
    pub(crate) fn set_recovered(&self, len: u64, next_segment: u64) {
        self.next_segment.store(next_segment, Ordering::Relaxed);
        self.recovered_len.store(len, Ordering::Release);
    }

    /// The journal length and next segment number the last recovery left, once: a second
    /// writer needs a second recovery.
    pub(crate) fn take_recovered(&self) -> Option<(u64, u64)> {
        let len = self.recovered_len.swap(NOT_RECOVERED, Ordering::AcqRel);
        (len != NOT_RECOVERED).then(|| (len, self.next_segment.load(Ordering::Relaxed)))
    }
}

/// Writes the scopes' administrative states durably, as the admin API changes them, so that a
/// restart keeps them.
#[derive(Debug)]
pub struct ScopeStateFile {
    disk: Arc<dyn Disk>,
    path: PathBuf,
}

impl ScopeStateFile {
    /// Replaces the file with `states` (`name`, active), durably: on return a crash keeps them.
    pub fn write(&self, states: &[(&str, bool)]) -> Result<(), StoreError> {
        let mut text = String::new();
        for (name, active) in states {
            text.push_str(name);
            text.push_str(if *active {
                "\tactive\n"
            } else {
                "\tinactive\n"
            });
        }
        write_atomically(&*self.disk, &self.path, text.as_bytes())
    }
}

/// Takes the exclusive `flock` on `dir/lock`, writing our pid into it for whoever finds it
/// taken.
pub(crate) fn lock(disk: &dyn Disk, dir: &Path) -> Result<Box<dyn DiskFile>, StoreError> {
    let path = dir.join(LOCK);
    let mut file = disk.open(&path, Open::Keep).map_err(io_at(&path))?;
    // A lock released a moment ago can still look held: a child process forked by this one
    // (any `Command::spawn`) holds a copy of the descriptor until its `exec` closes it. So a
    // held lock is retried briefly before it counts as another server's.
    let mut attempts = 0;
    let taken = loop {
        match file.try_lock() {
            Ok(false) if attempts < LOCK_RETRIES => {
                attempts += 1;
                std::thread::sleep(LOCK_RETRY_WAIT);
            }
            other => break other,
        }
    };
    match taken {
        Ok(true) => {}
        Ok(false) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        Err(e) => return Err(io_at(&path)(e)),
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(io_at(&path))?;
    Ok(file)
}

/// Reads the key secret, or creates it on first use.
fn secret(disk: &dyn Disk, dir: &Path) -> Result<KeySecret, StoreError> {
    let path = dir.join(SECRET);
    match read_text(disk, &path) {
        Ok(text) => parse_secret(text.trim()).ok_or_else(|| StoreError::Io {
            path: path.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "expected 32 hexadecimal digits: restore this file from a backup of the \
                 directory (a new secret would make clients with long client identifiers \
                 unrecognisable)",
            ),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secret = KeySecret::random();
            let hex = format!("{:032x}\n", u128::from_be_bytes(secret.0));
            write_atomically(disk, &path, hex.as_bytes())?;
            Ok(secret)
        }
        Err(e) => Err(io_at(&path)(e)),
    }
}

fn parse_secret(hex: &str) -> Option<KeySecret> {
    // `from_str_radix` alone would also take a sign.
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let value = u128::from_str_radix(hex, 16).ok()?;
    Some(KeySecret(value.to_be_bytes()))
}

/// The journal of the lease directory `dir`, which must exist: a mistyped path given to an
/// offline tool must not look like an empty, intact directory.
pub(crate) fn existing_journal(disk: &dyn Disk, dir: &Path) -> Result<PathBuf, StoreError> {
    let journal = dir.join(JOURNAL);
    if !disk.exists(&journal).map_err(io_at(&journal))? {
        return Err(StoreError::Io {
            path: journal,
            source: io::Error::new(io::ErrorKind::NotFound, "no lease journal here"),
        });
    }
    Ok(journal)
}

/// The whole of the text file `path`.
fn read_text(disk: &dyn Disk, path: &Path) -> io::Result<String> {
    let mut text = String::new();
    disk.open(path, Open::Read)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old file or the whole new
/// one: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(
    disk: &dyn Disk,
    path: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let dir = parent(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    // A crash may have left one behind; `CreateNew` below must not reuse its mode or bytes.
    match disk.remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&tmp)(e)),
        _ => {}
    }
    let mut f = disk.open(&tmp, Open::CreateNew).map_err(io_at(&tmp))?;
    f.write_all(bytes).map_err(io_at(&tmp))?;
    f.sync_all().map_err(io_at(&tmp))?;
    disk.rename(&tmp, path).map_err(io_at(path))?;
    sync_dir(disk, dir)
}

/// Cuts `path` to `len` bytes and makes that durable.
pub(crate) fn truncate(disk: &dyn Disk, path: &Path, len: u64) -> Result<(), StoreError> {
    let f = disk.open(path, Open::Write).map_err(io_at(path))?;
    f.set_len(len).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

/// Makes the directory's entries (created, renamed files) durable.
pub(crate) fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<(), StoreError> {
    disk.sync_dir(dir).map_err(io_at(dir))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Seconds since the UNIX epoch (0 if the clock is set before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
