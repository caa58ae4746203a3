//! Compaction: folding the snapshot and the sealed journal segments into a new snapshot.
//!
//! It runs on its own thread and reads only files the writer has sealed, so it never holds up
//! the writer or a worker. The new snapshot is written under a temporary name, synced, and
//! renamed; only then are the files it covers deleted. A crash at any step leaves either the
//! old files or the new snapshot (with covered files that recovery deletes).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use peregrine_engine::BindingEvent;

use crate::dir::{sync_dir, unix_now};
use crate::disk::{Disk, Open};
use crate::error::{StoreError, io_at};
use crate::files::{Layout, snapshot_paths};
use crate::record::{
    FormatError, HEADER_LEN, RECORD_LEN, VERSION, decode_header, decode_version, encode,
    encode_header, record_len,
};

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compacted {
    /// The segment number the new snapshot covers up to.
    pub(crate) through: u64,
    /// Records in the new snapshot: one per address that ever changed.
    pub(crate) records: u64,
    /// Records read from the old snapshot and the segments.
    pub(crate) read: u64,
    /// Files deleted once the snapshot was durable.
    pub(crate) deleted: usize,
    pub(crate) took: Duration,
}

/// Folds the snapshot and every sealed segment numbered up to `through` into
/// `snapshot.<n>` (`n` the last such segment), keeping the newest version of each address.
/// Returns `None` if there was nothing to fold or `stop` was set meanwhile (the partial file
/// is removed). Damage in any input stops it with [`StoreError::Corrupt`] and leaves every
/// file as it was.
pub(crate) fn compact(
    disk: &dyn Disk,
    dir: &Path,
    through: u64,
    stop: &AtomicBool,
) -> Result<Option<Compacted>, StoreError> {
    let started = Instant::now();
    let layout = Layout::read(disk, dir)?;
    let inputs: Vec<(u64, PathBuf)> = layout
        .snapshot
        .iter()
        .cloned()
        .chain(layout.sealed.iter().filter(|(n, _)| *n <= through).cloned())
        .collect();
    let Some(&(last, _)) = layout.sealed.iter().rfind(|(n, _)| *n <= through) else {
        return Ok(None);
    };
    // Every input read whole, each record indexed by address and version once: the newest
    // version of each address is then found by sorting the index, and written from where it
    // was read, with no record copied but into the output.
    let mut gathered = Gathered::default();
    for (_, path) in &inputs {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        gathered.read(disk, path)?;
    }
    let read = gathered.index.len() as u64;
    let newest = gathered.newest();
    let (final_path, tmp) = snapshot_paths(dir, last);
    let records = newest.iter().map(|e| gathered.record(e));
    if !write_snapshot(disk, &tmp, records, stop)? {
        return Ok(None);
    }
    disk.rename(&tmp, &final_path).map_err(io_at(&final_path))?;
    sync_dir(disk, dir)?;
    // The snapshot is durable under its name: what it covers can go.
    let mut deleted = 0;
    for (_, path) in &inputs {
        if *path != final_path {
            disk.remove_file(path).map_err(io_at(path))?;
            deleted += 1;
        }
    }
    sync_dir(disk, dir)?;
    Ok(Some(Compacted {
        through: last,
        records: newest.len() as u64,
        read,
        deleted,
        took: started.elapsed(),
    }))
}

/// The bindings the server holds in memory, each handed to the callback: what a snapshot is
/// written from when a file compaction would fold turns out damaged
/// ([`crate::JournalOptions::memory`]).
pub type MemorySource = Arc<dyn Fn(&mut dyn FnMut(&BindingEvent)) + Send + Sync>;

/// What [`compact`] does when one of its inputs is damaged and the server runs: writes
/// `snapshot.<n>` from the bindings in `memory` (which hold everything the damaged file said:
/// it was read whole at start, or written from memory since) instead of from the files, moves
/// `damaged` aside as `<name>.corrupt-<unix time>` for the operator, and deletes the other
/// files it covers. Changes made in memory while the snapshot is read are in the journal as
/// well, and replay keeps each address's newest version.
pub(crate) fn compact_from_memory(
    disk: &dyn Disk,
    dir: &Path,
    through: u64,
    memory: &MemorySource,
    damaged: &Path,
    stop: &AtomicBool,
) -> Result<Option<(Compacted, PathBuf)>, StoreError> {
    let started = Instant::now();
    let layout = Layout::read(disk, dir)?;
    let inputs: Vec<PathBuf> = layout
        .snapshot
        .iter()
        .map(|(_, p)| p.clone())
        .chain(
            layout
                .sealed
                .iter()
                .filter(|(n, _)| *n <= through)
                .map(|(_, p)| p.clone()),
        )
        .collect();
    let Some(&(last, _)) = layout.sealed.iter().rfind(|(n, _)| *n <= through) else {
        return Ok(None);
    };
    let mut records: Vec<(u32, [u8; RECORD_LEN])> = Vec::new();
    memory(&mut |event| {
        let mut record = [0u8; RECORD_LEN];
        encode(event, &mut record);
        records.push((event.address.to_bits(), record));
    });
    records.sort_unstable_by_key(|(a, _)| *a);
    let (final_path, tmp) = snapshot_paths(dir, last);
    if !write_snapshot(disk, &tmp, records.iter().map(|(_, r)| &r[..]), stop)? {
        return Ok(None);
    }
    // Linked aside before the snapshot takes its name (which makes the damaged file history
    // to delete): a crash at any point keeps either the file in its place or the copy.
    let name = damaged
        .file_name()
        .map_or_else(|| "damaged".into(), |n| n.to_string_lossy().into_owned());
    let aside = dir.join(format!("{name}.corrupt-{}", unix_now()));
    disk.hard_link(damaged, &aside).map_err(io_at(&aside))?;
    sync_dir(disk, dir)?;
    disk.rename(&tmp, &final_path).map_err(io_at(&final_path))?;
    sync_dir(disk, dir)?;
    let mut deleted = 0;
    for path in inputs.iter().filter(|p| **p != final_path) {
        disk.remove_file(path).map_err(io_at(path))?;
        deleted += 1;
    }
    sync_dir(disk, dir)?;
    Ok(Some((
        Compacted {
            through: last,
            records: records.len() as u64,
            read: 0,
            deleted,
            took: started.elapsed(),
        },
        aside,
    )))
}

/// The records of a compaction's inputs, each file's in the format this build writes, and an
/// index of them.
#[derive(Default)]
struct Gathered {
    files: Vec<Vec<u8>>,
    index: Vec<Entry>,
}

/// Where one record lies, and what orders it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u32,
    version: u32,
    file: u32,
    record: usize,
}

impl Gathered {
    /// Reads every record of `path` and indexes it. The file must be intact to its last byte:
    /// it was synced before it took its name.
    fn read(&mut self, disk: &dyn Disk, path: &Path) -> Result<(), StoreError> {
        let mut file = disk.open(path, Open::Read).map_err(io_at(path))?;
        let len = file.len().map_err(io_at(path))?;
        let corrupt = |offset, reason| StoreError::Corrupt {
            file: path.to_path_buf(),
            offset,
            reason,
        };
        let mut header = [0u8; HEADER_LEN];
        let head = &mut header[..len.min(HEADER_LEN as u64) as usize];
        file.read_exact(head).map_err(io_at(path))?;
        let format = decode_header(head)
            .map_err(|reason| corrupt(0, reason))?
            .version;
        let record_len = record_len(format);
        let body_len = len.saturating_sub(HEADER_LEN as u64);
        let mut body = Vec::new();
        usize::try_from(body_len)
            .ok()
            .and_then(|n| body.try_reserve_exact(n).ok())
            .ok_or_else(|| {
                io_at(path)(std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    format!("{body_len} bytes of records do not fit in memory"),
                ))
            })?;
        file.take(body_len)
            .read_to_end(&mut body)
            .map_err(io_at(path))?;
        if body.len() as u64 != body_len {
            // Shorter than its length said: changed under us, which a sealed file never is.
            return Err(corrupt(
                HEADER_LEN as u64 + body.len() as u64,
                FormatError::Truncated,
            ));
        }
        let number = self.files.len() as u32;
        let mut current = Vec::new();
        for (k, bytes) in body.chunks_exact(record_len).enumerate() {
            let at = HEADER_LEN as u64 + (k * record_len) as u64;
            let event = decode_version(format, bytes).map_err(|reason| corrupt(at, reason))?;
            if format != VERSION {
                // An older format's record is kept as this build writes it: the snapshot is
                // current.
                let mut record = [0u8; RECORD_LEN];
                encode(&event, &mut record);
                current.extend_from_slice(&record);
            }
            self.index.push(Entry {
                address: event.address.to_bits(),
                version: event.binding.version,
                file: number,
                record: k,
            });
        }
        let whole = body.len() - body.len() % record_len;
        if whole != body.len() {
            return Err(corrupt(
                HEADER_LEN as u64 + whole as u64,
                FormatError::Truncated,
            ));
        }
        self.files
            .push(if format == VERSION { body } else { current });
        Ok(())
    }

    /// The newest record of each address, by address: the highest binding version, and of
    /// records with the same version the first read.
    fn newest(&mut self) -> Vec<Entry> {
        self.index.sort_unstable_by_key(|e| {
            (e.address, e.version, std::cmp::Reverse((e.file, e.record)))
        });
        let mut newest: Vec<Entry> = Vec::with_capacity(self.index.len());
        for e in &self.index {
            match newest.last_mut() {
                Some(last) if last.address == e.address => *last = *e,
                _ => newest.push(*e),
            }
        }
        newest
    }

    fn record(&self, e: &Entry) -> &[u8] {
        &self.files[e.file as usize][e.record * RECORD_LEN..][..RECORD_LEN]
    }
}

/// Writes `records` after a header to `tmp` and syncs it. `Ok(false)` if `stop` was set; the
/// partial file is removed then, and on an error.
fn write_snapshot<'r>(
    disk: &dyn Disk,
    tmp: &Path,
    records: impl Iterator<Item = &'r [u8]>,
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let written = write_records(disk, tmp, records, stop);
    if !matches!(written, Ok(true)) {
        let _ = disk.remove_file(tmp);
    }
    written
}

fn write_records<'r>(
    disk: &dyn Disk,
    tmp: &Path,
    records: impl Iterator<Item = &'r [u8]>,
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let file = disk.open(tmp, Open::Create).map_err(io_at(tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&encode_header(unix_now()))
        .map_err(io_at(tmp))?;
    for (k, record) in records.enumerate() {
        if k % 65_536 == 0 && stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        out.write_all(record).map_err(io_at(tmp))?;
    }
    let file = out.into_inner().map_err(|e| io_at(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_at(tmp))?;
    Ok(true)
}
