//! Compaction: folding the snapshot and the sealed journal segments into a new snapshot.
//!
//! It runs on its own thread and reads only files the writer has sealed, so it never holds up
//! the writer or a worker. The new snapshot is written under a temporary name, synced, and
//! renamed; only then are the files it covers deleted. A crash at any step leaves either the
//! old files or the new snapshot (with covered files that recovery deletes).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
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
    // Address -> newest record, kept encoded (RECORD_LEN bytes per address), nothing decoded twice.
    let mut newest: HashMap<u32, (u32, [u8; RECORD_LEN])> = HashMap::new();
    let mut read = 0u64;
    for (_, path) in &inputs {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        read += fold(disk, path, &mut newest)?;
    }
    let (final_path, tmp) = snapshot_paths(dir, last);
    let mut records: Vec<(u32, [u8; RECORD_LEN])> =
        newest.into_iter().map(|(a, (_, r))| (a, r)).collect();
    records.sort_unstable_by_key(|(a, _)| *a);
    if !write_snapshot(disk, &tmp, &records, stop)? {
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
        records: records.len() as u64,
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
    if !write_snapshot(disk, &tmp, &records, stop)? {
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

/// Reads every record of `path` into `newest` (newer binding versions win). The file must be
/// intact to its last byte: it was synced before it took its name.
fn fold(
    disk: &dyn Disk,
    path: &Path,
    newest: &mut HashMap<u32, (u32, [u8; RECORD_LEN])>,
) -> Result<u64, StoreError> {
    let file = disk.open(path, Open::Read).map_err(io_at(path))?;
    let len = file.len().map_err(io_at(path))?;
    let corrupt = |offset, reason| StoreError::Corrupt {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN];
    let head = &mut header[..len.min(HEADER_LEN as u64) as usize];
    input.read_exact(head).map_err(io_at(path))?;
    let format = decode_header(head)
        .map_err(|reason| corrupt(0, reason))?
        .version;
    let record_len = record_len(format);
    let mut at = HEADER_LEN as u64;
    let mut buffer = [0u8; RECORD_LEN];
    let mut count = 0;
    while at < len {
        if len - at < record_len as u64 {
            return Err(corrupt(at, FormatError::Truncated));
        }
        input
            .read_exact(&mut buffer[..record_len])
            .map_err(io_at(path))?;
        let event =
            decode_version(format, &buffer[..record_len]).map_err(|reason| corrupt(at, reason))?;
        // An older format's record is kept as this build writes it: the snapshot is current.
        let mut record = buffer;
        if format != VERSION {
            encode(&event, &mut record);
        }
        let version = event.binding.version;
        newest
            .entry(event.address.to_bits())
            .and_modify(|kept| {
                if version > kept.0 {
                    *kept = (version, record);
                }
            })
            .or_insert((version, record));
        count += 1;
        at += record_len as u64;
    }
    Ok(count)
}

/// Writes `records` after a header to `tmp` and syncs it. `Ok(false)` if `stop` was set; the
/// partial file is removed then, and on an error.
fn write_snapshot(
    disk: &dyn Disk,
    tmp: &Path,
    records: &[(u32, [u8; RECORD_LEN])],
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let written = write_records(disk, tmp, records, stop);
    if !matches!(written, Ok(true)) {
        let _ = disk.remove_file(tmp);
    }
    written
}

fn write_records(
    disk: &dyn Disk,
    tmp: &Path,
    records: &[(u32, [u8; RECORD_LEN])],
    stop: &AtomicBool,
) -> Result<bool, StoreError> {
    let file = disk.open(tmp, Open::Create).map_err(io_at(tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&encode_header(unix_now()))
        .map_err(io_at(tmp))?;
    for (k, (_, record)) in records.iter().enumerate() {
        if k % 65_536 == 0 && stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        out.write_all(record).map_err(io_at(tmp))?;
    }
    let file = out.into_inner().map_err(|e| io_at(tmp)(e.into_error()))?;
    file.sync_all().map_err(io_at(tmp))?;
    Ok(true)
}
