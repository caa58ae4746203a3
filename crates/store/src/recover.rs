//! Reading the journal back at start, telling a crash's torn tail from damage, and the
//! operator's repair.
//!
//! The writer appends whole batches with `write` and syncs each before acknowledging any of
//! it, so a crash can only leave, after the last intact record, bytes of writes that were
//! never acknowledged: part of a record, or whole record slots whose bytes did not all land
//! (zeros of a file extended before its data, a failed checksum). Those are cut. A bad record
//! that intact records follow, a record that passes its checksum but cannot be understood, or
//! a bad header cannot come from a crash: recovery refuses them rather than guess which
//! leases are valid, and [`repair`] is the operator's explicit decision to cut there.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use peregrine_engine::BindingEvent;

use crate::dir::{self, JOURNAL, LeaseDir, sync_dir, truncate, unix_now, write_atomically};
use crate::error::{StoreError, io_at};
use crate::record::{FormatError, HEADER_LEN, RECORD_LEN, decode, decode_header, encode_header};

/// What [`LeaseDir::recover`] read.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every binding change in the journal, oldest first. One worker's changes keep the order
    /// it submitted them in.
    pub events: Vec<BindingEvent>,
    /// When the journal was started (seconds since the UNIX epoch, from its header).
    pub created: u64,
    /// Bytes of a torn tail cut from the end: 0 if the journal ended cleanly.
    pub truncated_bytes: u64,
    /// The journal's length after recovery, which is where a torn tail was cut.
    pub truncated_at: u64,
}

/// What [`repair`] did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Records kept: every intact record before the first bad byte.
    pub kept: u64,
    /// Intact records that followed the damage and were set aside with it (they are in the
    /// backup copy). Records of an unknown format version are not counted.
    pub dropped_records: u64,
    /// Bytes set aside from the first bad byte to the end.
    pub dropped_bytes: u64,
    /// Where the journal was cut (the header is rewritten when the damage is in it), if it was.
    pub dropped_at: Option<u64>,
    /// The copy of the journal as it was before the repair, if anything was set aside.
    pub backup: Option<PathBuf>,
}

impl LeaseDir {
    /// Reads the journal: every binding change in order. A torn tail left by a crash is cut
    /// (truncate, fsync) and reported in [`Recovered::truncated_bytes`] for the caller to log;
    /// any other damage is refused with [`StoreError::Corrupt`], whose message names the file,
    /// the offset and the command that repairs it.
    ///
    /// The journal writer ([`crate::Journal::start`]) may only start after this succeeded.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let path = self.journal_path();
        let scan = scan(&path)?;
        if let Some((offset, reason)) = scan.corruption() {
            return Err(StoreError::Corrupt {
                file: path,
                offset,
                reason,
            });
        }
        let torn = scan.file_len - scan.valid_len;
        if torn > 0 {
            truncate(&path, scan.valid_len)?;
        }
        self.set_recovered(scan.valid_len);
        Ok(Recovered {
            events: scan.events,
            created: scan.created,
            truncated_bytes: torn,
            truncated_at: scan.valid_len,
        })
    }
}

/// `peregrine leases recover --dir DIR`: keeps every intact record before the first damage
/// and sets the rest aside, after copying the journal as it was to
/// `journal.corrupt-<unix time>` in the same directory. A journal whose header is damaged is
/// replaced by an empty one. A journal with nothing to set aside is left untouched.
///
/// Refuses a directory without a journal (a mistyped path must not look repaired) and one that
/// a running server holds.
pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
    let journal = dir.join(JOURNAL);
    if !journal.try_exists().map_err(io_at(&journal))? {
        return Err(StoreError::Io {
            path: journal,
            source: io::Error::new(io::ErrorKind::NotFound, "no lease journal here"),
        });
    }
    let _lock = dir::lock(dir)?;
    let scan = scan(&journal)?;
    let mut report = RepairReport {
        kept: scan.events.len() as u64,
        dropped_records: scan.intact_after,
        dropped_bytes: scan.file_len - scan.valid_len,
        ..RepairReport::default()
    };
    if report.dropped_bytes == 0 {
        return Ok(report);
    }
    // The copy is durable before the original is cut: a crash in between loses nothing.
    report.backup = Some(backup(&journal, dir)?);
    if scan.valid_len < HEADER_LEN as u64 {
        write_atomically(&journal, &encode_header(unix_now()))?;
    } else {
        truncate(&journal, scan.valid_len)?;
    }
    report.dropped_at = Some(scan.valid_len);
    Ok(report)
}

/// Copies `journal` to a new `journal.corrupt-<unix time>[.n]` in `dir`, durably.
fn backup(journal: &Path, dir: &Path) -> Result<PathBuf, StoreError> {
    let stamp = unix_now();
    let mut n = 0u32;
    loop {
        let name = match n {
            0 => format!("{JOURNAL}.corrupt-{stamp}"),
            n => format!("{JOURNAL}.corrupt-{stamp}.{n}"),
        };
        let path = dir.join(name);
        // Never overwrite an earlier repair's copy.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut copy) => {
                let mut original = File::open(journal).map_err(io_at(journal))?;
                io::copy(&mut original, &mut copy).map_err(io_at(&path))?;
                copy.sync_all().map_err(io_at(&path))?;
                sync_dir(dir)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
}

/// One pass over a journal file.
struct Scan {
    /// Intact records before any damage, in order.
    events: Vec<BindingEvent>,
    /// The header's creation time (0 if the header is damaged).
    created: u64,
    file_len: u64,
    /// Bytes of the header and the intact records before any damage: what survives a cut.
    valid_len: u64,
    /// The first damage: where, and what.
    damage: Option<(u64, FormatError)>,
    /// Whole records after the damage: intact ones, or ones that pass their checksum but
    /// cannot be decoded. Any of them proves the damage is not a torn tail.
    intact_after: u64,
}

impl Scan {
    /// The damage, unless it is a torn tail that recovery may cut.
    fn corruption(&self) -> Option<(u64, FormatError)> {
        self.damage
            .filter(|(_, reason)| !reason.is_framing() || self.intact_after > 0)
    }
}

/// Reads `path` record by record (never the whole file at once: journals hold millions).
fn scan(path: &Path) -> Result<Scan, StoreError> {
    let file = File::open(path).map_err(io_at(path))?;
    let file_len = file.metadata().map_err(io_at(path))?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut s = Scan {
        events: Vec::new(),
        created: 0,
        file_len,
        valid_len: 0,
        damage: None,
        intact_after: 0,
    };
    let mut header = [0u8; HEADER_LEN];
    let head = &mut header[..file_len.min(HEADER_LEN as u64) as usize];
    input.read_exact(head).map_err(io_at(path))?;
    match decode_header(head) {
        Ok(h) => {
            s.created = h.created;
            s.valid_len = HEADER_LEN as u64;
        }
        Err(reason) => s.damage = Some((0, reason)),
    }
    let mut at = head.len() as u64;
    if at < HEADER_LEN as u64 {
        return Ok(s);
    }
    let mut record = [0u8; RECORD_LEN];
    while file_len - at >= RECORD_LEN as u64 {
        input.read_exact(&mut record).map_err(io_at(path))?;
        match (decode(&record), s.damage) {
            (Ok(event), None) => {
                s.events.push(event);
                s.valid_len = at + RECORD_LEN as u64;
            }
            (Err(reason), None) => s.damage = Some((at, reason)),
            (Ok(_), Some(_)) => s.intact_after += 1,
            (Err(reason), Some(_)) if !reason.is_framing() => s.intact_after += 1,
            (Err(_), Some(_)) => {}
        }
        at += RECORD_LEN as u64;
    }
    Ok(s)
}
