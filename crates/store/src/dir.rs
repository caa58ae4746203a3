//! The lease directory: lock, key secret, journal file, recovery and repair.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use peregrine_engine::{BindingEvent, KeySecret};

use crate::record::{self, HEADER, PAYLOAD_LEN, RECORD_LEN};

const JOURNAL: &str = "journal";
const SECRET: &str = "secret";
const LOCK: &str = "lock";

/// Why lease state could not be used.
#[derive(Debug)]
pub enum StoreError {
    /// An operating-system error on `path`.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Another process holds the directory.
    Locked(PathBuf),
    /// The journal is damaged somewhere other than a torn last record.
    Corrupt {
        /// The journal file.
        file: PathBuf,
        /// Byte offset of the first bad record (or 0 for a bad header).
        offset: u64,
        /// What is wrong there.
        reason: &'static str,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            StoreError::Locked(p) => write!(
                f,
                "{}: lease directory in use by another process",
                p.display()
            ),
            StoreError::Corrupt {
                file,
                offset,
                reason,
            } => {
                let dir = file.parent().unwrap_or(Path::new("."));
                write!(
                    f,
                    "{}: corrupt at byte {offset}: {reason}. Peregrine will not guess which leases are \
                     valid. To keep every record before the damage and set the rest aside, run \
                     `peregrine leases recover --dir {}` (it copies the journal to journal.corrupt-<time> first)",
                    file.display(),
                    dir.display()
                )
            }
        }
    }
}

impl std::error::Error for StoreError {}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open, locked lease directory.
#[derive(Debug)]
pub struct LeaseDir {
    path: PathBuf,
    secret: KeySecret,
    /// Held for the life of the value: the lock is released when the file closes.
    _lock: File,
}

/// What [`LeaseDir::recover`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every binding change in the journal, oldest first.
    pub events: Vec<BindingEvent>,
    /// Bytes of a torn last record removed from the end (0 if the journal ended cleanly).
    pub truncated_bytes: u64,
    /// Where the torn record began.
    pub truncated_at: u64,
}

/// What [`repair`] did.
#[derive(Debug)]
pub struct RepairReport {
    /// Records kept.
    pub kept: u64,
    /// Bytes set aside after the first bad record.
    pub dropped_bytes: u64,
    /// The copy of the journal as it was.
    pub backup: Option<PathBuf>,
}

impl LeaseDir {
    /// Opens (creating if needed) and locks the directory, and reads or creates its secret.
    pub fn open(path: &Path) -> Result<LeaseDir, StoreError> {
        fs::create_dir_all(path).map_err(io_at(path))?;
        let lock_path = path.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(path.to_path_buf()));
        }
        let secret = secret(path)?;
        Ok(LeaseDir {
            path: path.to_path_buf(),
            secret,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret that keys long client identities; the engine must use it.
    pub fn key_secret(&self) -> KeySecret {
        self.secret
    }

    pub(crate) fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL)
    }

    /// Reads the journal (creating an empty one if there is none), truncating a torn last record.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let path = self.journal_path();
        let bytes = read_or_create(&path)?;
        let scan = scan(&bytes);
        if let Some((offset, reason)) = scan.corrupt {
            return Err(StoreError::Corrupt {
                file: path,
                offset,
                reason,
            });
        }
        let mut out = Recovered {
            events: scan.events,
            ..Recovered::default()
        };
        if scan.valid_len < bytes.len() as u64 {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_at(&path))?;
            f.set_len(scan.valid_len).map_err(io_at(&path))?;
            f.sync_all().map_err(io_at(&path))?;
            out.truncated_bytes = bytes.len() as u64 - scan.valid_len;
            out.truncated_at = scan.valid_len;
        }
        Ok(out)
    }
}

/// Result of walking a journal image.
struct Scan {
    events: Vec<BindingEvent>,
    /// Length of the prefix made of the header and whole, valid records.
    valid_len: u64,
    /// First damage that is not a torn tail.
    corrupt: Option<(u64, &'static str)>,
}

fn scan(bytes: &[u8]) -> Scan {
    let mut s = Scan {
        events: Vec::new(),
        valid_len: HEADER.len() as u64,
        corrupt: None,
    };
    if bytes.len() < HEADER.len() || bytes[..4] != HEADER[..4] {
        s.corrupt = Some((0, "not a Peregrine journal (bad header)"));
        return s;
    }
    if bytes[4..HEADER.len()] != HEADER[4..] {
        s.corrupt = Some((0, "journal format version not supported by this build"));
        return s;
    }
    // Records have one size, so a crash can only leave: a partial last record, a file extended
    // with zeros that never received its data, or a last record whose bytes did not all land.
    // Anything else is damage the server must not paper over.
    let mut at = HEADER.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < RECORD_LEN || rest.iter().all(|b| *b == 0) {
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len != PAYLOAD_LEN {
            s.corrupt = Some((at as u64, "record length impossible for this format"));
            return s;
        }
        if crc32fast::hash(&rest[8..RECORD_LEN]) != crc {
            if rest.len() == RECORD_LEN {
                break;
            }
            s.corrupt = Some((
                at as u64,
                "record checksum does not match, and records follow",
            ));
            return s;
        }
        match record::decode(&rest[8..RECORD_LEN]) {
            Ok(e) => s.events.push(e),
            Err(reason) => {
                s.corrupt = Some((at as u64, reason));
                return s;
            }
        }
        at += RECORD_LEN;
        s.valid_len = at as u64;
    }
    s
}

fn read_or_create(path: &Path) -> Result<Vec<u8>, StoreError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(io_at(path))?;
            Ok(bytes)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            write_atomically(path, &HEADER)?;
            Ok(HEADER.to_vec())
        }
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    // Owner-only: the secret must not be readable by other users, and nothing here needs to be.
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    f.write_all(bytes).map_err(io_at(&tmp))?;
    f.sync_all().map_err(io_at(&tmp))?;
    fs::rename(&tmp, path).map_err(io_at(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn secret(dir: &Path) -> Result<KeySecret, StoreError> {
    let path = dir.join(SECRET);
    match fs::read_to_string(&path) {
        Ok(text) => parse_secret(text.trim()).ok_or_else(|| StoreError::Io {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "expected 32 hexadecimal digits"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let s = KeySecret::random();
            let hex = s.0.iter().fold(String::with_capacity(33), |mut h, b| {
                use std::fmt::Write as _;
                let _ = write!(h, "{b:02x}");
                h
            });
            write_atomically(&path, format!("{hex}\n").as_bytes())?;
            Ok(s)
        }
        Err(e) => Err(io_at(&path)(e)),
    }
}

fn parse_secret(hex: &str) -> Option<KeySecret> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeySecret(out))
}

/// `peregrine leases recover`: keeps every valid record before the first damage, sets the rest
/// aside (the whole journal is first copied to `journal.corrupt-<unix time>`), and reports.
pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
    let _held = LeaseDir::open(dir)?;
    let path = dir.join(JOURNAL);
    let bytes = read_or_create(&path)?;
    let s = scan(&bytes);
    let keep = match s.corrupt {
        Some((0, _)) => HEADER.len() as u64,
        _ => s.valid_len,
    };
    let dropped = bytes.len() as u64 - keep.min(bytes.len() as u64);
    let mut backup = None;
    if dropped > 0 || s.corrupt.is_some() {
        let when = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let copy = dir.join(format!("{JOURNAL}.corrupt-{when}"));
        fs::copy(&path, &copy).map_err(io_at(&copy))?;
        let mut image = if s.corrupt.is_some_and(|(o, _)| o == 0) {
            HEADER.to_vec()
        } else {
            bytes[..keep as usize].to_vec()
        };
        if image.len() < HEADER.len() {
            image = HEADER.to_vec();
        }
        write_atomically(&path, &image)?;
        backup = Some(copy);
    }
    Ok(RepairReport {
        kept: s.events.len() as u64,
        dropped_bytes: dropped,
        backup,
    })
}
