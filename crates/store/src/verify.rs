//! `peregrine leases verify --dir DIR`: reads every file of a lease directory and reports its
//! damage without changing anything.
//!
//! Unlike recovery, which stops at the first bad record of a file, verification looks past
//! it: records have a fixed length and a checksum each, so after damage the walk moves one byte
//! at a time until a record checks again, and reports every damaged span (where, how long) and
//! every intact record, before and after.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use peregrine_engine::BindingEvent;

use crate::disk::{Disk, Open, OsDisk};
use crate::error::{StoreError, io_at};
use crate::files::Layout;
use crate::record::{HEADER_LEN, VERSION, decode_header, decode_version, record_len};

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// What [`verify`] found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The file.
    pub file: PathBuf,
    /// Intact records, wherever they are.
    pub records: u64,
    /// Damaged spans: (offset, bytes), in file order.
    pub damage: Vec<(u64, u64)>,
    /// Bytes of a record torn at the journal's end by a crash (its ACK was never sent):
    /// recovery cuts them, and they are not damage.
    pub torn_tail: u64,
}

/// What [`verify`] found in a lease directory, file by file in reading order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Every file read: the snapshot, the sealed segments, the journal.
    pub files: Vec<FileCheck>,
}

impl VerifyReport {
    /// Whether any file is damaged (a torn tail is not damage).
    pub fn damaged(&self) -> bool {
        self.files.iter().any(|f| !f.damage.is_empty())
    }
}

/// Reads every file of the lease directory `dir` (which need not be locked: a copy, or a
/// stopped server's) and reports what is intact and what is damaged. Changes nothing.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    let disk: &dyn Disk = &OsDisk;
    let journal = crate::dir::existing_journal(disk, dir)?;
    let layout = Layout::read(disk, dir)?;
    let history: Vec<PathBuf> = layout.history().map(Path::to_path_buf).collect();
    let mut report = VerifyReport::default();
    for file in history {
        report
            .files
            .push(check(disk, &file, false, &mut |_, _, _| Ok(()))?.0);
    }
    report
        .files
        .push(check(disk, &journal, true, &mut |_, _, _| Ok(()))?.0);
    Ok(report)
}

/// Each intact record a walk finds: its offset in the file, its bytes and what they say.
pub(crate) type Keep<'a> = &'a mut dyn FnMut(u64, &[u8], &BindingEvent) -> io::Result<()>;

/// Walks `path` record by record, moving a byte at a time through damage until a record checks
/// again, and hands each intact record to `keep`. In the journal (`journal`), damage that
/// nothing intact follows is a torn tail. Also returns the file's header, if intact.
pub(crate) fn check(
    disk: &dyn Disk,
    path: &Path,
    journal: bool,
    keep: Keep<'_>,
) -> Result<(FileCheck, Option<[u8; HEADER_LEN]>), StoreError> {
    let mut file = disk.open(path, Open::Read).map_err(io_at(path))?;
    let mut out = FileCheck {
        file: path.to_path_buf(),
        records: 0,
        damage: Vec::new(),
        torn_tail: 0,
    };
    let mut buf = Vec::with_capacity(CHUNK + HEADER_LEN);
    fill(&mut file, &mut buf, HEADER_LEN).map_err(io_at(path))?;
    // A damaged header leaves the format unknown: this build's is assumed for the records.
    let head = buf.len().min(HEADER_LEN);
    let mut header = None;
    let version = if let Ok(h) = decode_header(&buf[..head]) {
        header = buf[..HEADER_LEN].try_into().ok();
        h.version
    } else {
        out.damage.push((0, head as u64));
        VERSION
    };
    let len = record_len(version);
    // The file offset of `buf[0]`, and where the walk is in `buf`.
    let (mut base, mut at) = (0u64, buf.len().min(HEADER_LEN));
    let mut open: Option<u64> = None;
    loop {
        if buf.len() - at < len {
            buf.drain(..at);
            base += at as u64;
            at = 0;
            fill(&mut file, &mut buf, CHUNK).map_err(io_at(path))?;
            if buf.len() < len {
                break;
            }
        }
        let offset = base + at as u64;
        if let Ok(event) = decode_version(version, &buf[at..at + len]) {
            if let Some(start) = open.take() {
                out.damage.push((start, offset - start));
            }
            keep(offset, &buf[at..at + len], &event).map_err(io_at(path))?;
            out.records += 1;
            at += len;
        } else {
            open.get_or_insert(offset);
            at += 1;
        }
    }
    let end = base + buf.len() as u64;
    let rest = end - open.unwrap_or(base + at as u64);
    if rest > 0 {
        let start = end - rest;
        // At most one record at the journal's end, with nothing intact after it: the write a
        // crash interrupted.
        if journal && rest <= len as u64 {
            out.torn_tail = rest;
        } else {
            out.damage.push((start, rest));
        }
    }
    Ok((out, header))
}

/// Appends up to `max` more bytes of `file` to `buf`.
fn fill(file: &mut dyn Read, buf: &mut Vec<u8>, max: usize) -> io::Result<()> {
    let start = buf.len();
    buf.resize(start + max, 0);
    let mut got = 0;
    while got < max {
        match file.read(&mut buf[start + got..])? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(start + got);
    Ok(())
}
