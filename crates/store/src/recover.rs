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

use std::collections::{HashMap, HashSet};
use std::io::{self, BufReader, Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use peregrine_engine::{BindingEvent, ScopeId};

use crate::dir::{self, JOURNAL, LeaseDir, sync_dir, truncate, unix_now, write_atomically};
use crate::disk::{Disk, Open, OsDisk};
use crate::error::{StoreError, io_at};
use crate::files::Layout;
use crate::files::sealed_path;
use crate::record::{
    FormatError, HEADER_LEN, RECORD_LEN, VERSION_2, decode_header, decode_version, encode_header,
    record_len,
};

/// What [`LeaseDir::recover`] read.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every binding change in the snapshot, the sealed segments and the journal, in that
    /// order (empty from [`LeaseDir::recover_with`], which hands them over one by one). One
    /// worker's changes keep the order it submitted them in; across workers, the binding
    /// versions tell which change of an address is the newest.
    pub events: Vec<BindingEvent>,
    /// How many binding changes were read.
    pub records: u64,
    /// Files read before the journal: a snapshot and sealed segments.
    pub history_files: usize,
    /// Files left by a crash during sealing or compaction that were deleted.
    pub tidied: usize,
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
    /// The file that was cut, if one was damaged: the first in reading order (snapshot,
    /// sealed segments, journal). Run [`repair`] again for damage in a later file.
    pub file: Option<PathBuf>,
    /// Records kept: every intact record of that file, before and after its damage, or of
    /// all files when none is damaged.
    pub kept: u64,
    /// Damaged bytes set aside (they are in the backup copy), a torn tail included.
    pub dropped_bytes: u64,
    /// Where the first damage was (or the torn tail), if there was any.
    pub dropped_at: Option<u64>,
    /// Every damaged span of the file: (offset, bytes) in the file as it was.
    pub damage: Vec<(u64, u64)>,
    /// The copy of the file as it was before the repair, if anything was set aside.
    pub backup: Option<PathBuf>,
    /// What the damaged bytes may have held, if there were any (a torn tail alone never held
    /// an acknowledged change).
    pub hold: Option<HoldBack>,
}

/// The addresses whose records a repair may have lost, and since when their clients may
/// have held them: what must not go to another client until their longest lease has run out.
#[derive(Debug, Default)]
pub struct HoldBack {
    /// When the damaged file was last written (seconds since the UNIX epoch): no lost record
    /// is younger, so no lease it granted runs past this plus the longest lease time.
    pub written_by: u64,
    /// Addresses the intact records settle: each has an intact record written after the
    /// damage (later in the file, or in a later file) with a binding version above every
    /// earlier one of the address, or, in a damaged snapshot (one record per address), a
    /// record anywhere. Lost records may have touched every other address.
    pub settled: HashSet<(ScopeId, Ipv4Addr)>,
}

impl HoldBack {
    /// Whether a lost record may have leased `address` of `scope`.
    pub fn unsettled(&self, scope: ScopeId, address: Ipv4Addr) -> bool {
        !self.settled.contains(&(scope, address))
    }
}

impl LeaseDir {
    /// Reads the lease history: the snapshot, the sealed segments, then the journal, every
    /// binding change in order. See [`LeaseDir::recover_with`], which this collects.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let mut events = Vec::new();
        let mut recovered = self.recover_with(|e| events.push(*e))?;
        recovered.events = events;
        Ok(recovered)
    }

    /// Reads the lease history and hands each binding change to `apply`, without holding
    /// them all in memory. Files a crash during sealing or compaction left are deleted first.
    /// A torn tail of the journal left by a crash is cut (truncate, fsync) and reported in
    /// [`Recovered::truncated_bytes`] for the caller to log; any other damage, and any damage
    /// at all in a snapshot or sealed segment (written whole and synced before they took their
    /// names), is refused with [`StoreError::Corrupt`], whose message names the file, the
    /// offset and the command that repairs it. Changes read before the damage have been
    /// applied by then: the caller must not serve from them.
    ///
    /// The journal writer ([`crate::Journal::start`]) may only start after this succeeded.
    pub fn recover_with(
        &self,
        mut apply: impl FnMut(&BindingEvent),
    ) -> Result<Recovered, StoreError> {
        let disk = &**self.disk();
        let mut layout = Layout::read(disk, self.path())?;
        let tidied = layout.tidy(disk, self.path())?;
        let mut records = 0;
        for file in layout.history() {
            let scan = scan(disk, file, &mut apply)?;
            let cut = (scan.valid_len < scan.file_len)
                .then_some((scan.valid_len, FormatError::Truncated));
            if let Some((offset, reason)) = scan.damage.or(cut) {
                return Err(StoreError::Corrupt {
                    file: file.to_path_buf(),
                    offset,
                    reason,
                });
            }
            records += scan.records;
        }
        let path = self.journal_path();
        let scan = scan(disk, &path, &mut apply)?;
        if let Some((offset, reason)) = scan.corruption() {
            return Err(StoreError::Corrupt {
                file: path,
                offset,
                reason,
            });
        }
        let torn = scan.file_len - scan.valid_len;
        if torn > 0 {
            truncate(disk, &path, scan.valid_len)?;
        }
        let mut next_segment = layout.next_segment();
        let mut journal_len = scan.valid_len;
        if scan.version == VERSION_2 {
            // New records are version 3: the old journal becomes a sealed segment (read as
            // version 2, folded into the next snapshot) and a new journal starts. A crash in
            // between leaves no journal, and opening the directory starts one.
            disk.rename(&path, &sealed_path(self.path(), next_segment))
                .map_err(io_at(&path))?;
            sync_dir(disk, self.path())?;
            write_atomically(disk, &path, &encode_header(unix_now()))?;
            next_segment += 1;
            journal_len = HEADER_LEN as u64;
        }
        self.set_recovered(journal_len, next_segment);
        Ok(Recovered {
            events: Vec::new(),
            records: records + scan.records,
            history_files: layout.history().count(),
            tidied,
            created: scan.created,
            truncated_bytes: torn,
            truncated_at: scan.valid_len,
        })
    }
}

impl LeaseDir {
    /// [`LeaseDir::recover_with`], with `apply` called from `threads` threads at once (this one
    /// included) on batches of changes: reading and decoding stay on this thread, which also
    /// applies a batch whenever the others are busy. `apply` therefore sees changes in no
    /// particular order, which is right only if it keeps the newest version of each address
    /// whatever the order ([`peregrine_engine::Engine::replay`] does).
    pub fn recover_parallel(
        &self,
        threads: usize,
        apply: impl Fn(&BindingEvent) + Sync,
    ) -> Result<Recovered, StoreError> {
        const BATCH: usize = 8192;
        let apply = &apply;
        let (tx, rx) = mpsc::sync_channel::<Vec<BindingEvent>>(threads);
        let rx = &Mutex::new(rx);
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(move || {
                    loop {
                        // The lock is held only to take a batch off the channel.
                        let next = rx.lock().map_or(Err(mpsc::RecvError), |r| r.recv());
                        let Ok(batch) = next else { break };
                        batch.iter().for_each(apply);
                    }
                });
            }
            let mut batch = Vec::with_capacity(BATCH);
            let recovered = self.recover_with(|e| {
                batch.push(*e);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if let Err(mpsc::TrySendError::Full(full)) = tx.try_send(full) {
                        full.iter().for_each(apply);
                    }
                }
            });
            batch.iter().for_each(apply);
            drop(tx);
            recovered
        })
    }
}

/// `peregrine leases recover`: in the first damaged file (snapshot, sealed segments, journal,
/// in reading order) keeps every intact record, before and after the damage (records have a
/// fixed length and a checksum each, so the walk finds them again past it: [`crate::verify`]),
/// and sets the damaged bytes aside, after copying the file as it was to
/// `<name>.corrupt-<unix time>` in the same directory. A file whose header is damaged gets a
/// new one. With nothing to set aside, nothing is touched. The report says which addresses
/// the lost records may have leased ([`RepairReport::hold`]), for the caller to hold back.
///
/// Refuses a directory without a journal (a mistyped path must not look repaired) and one that
/// a running server holds.
pub fn repair(dir: &Path) -> Result<RepairReport, StoreError> {
    let disk: &dyn Disk = &OsDisk;
    let journal = crate::dir::existing_journal(disk, dir)?;
    let _lock = dir::lock(disk, dir)?;
    let layout = Layout::read(disk, dir)?;
    let snapshot = layout.snapshot.as_ref().map(|(_, p)| p.clone());
    let files: Vec<(PathBuf, bool)> = layout
        .history()
        .map(|f| (f.to_path_buf(), false))
        .chain([(journal, true)])
        .collect();
    let mut kept = 0;
    for (i, (file, is_journal)) in files.iter().enumerate() {
        let (found, _) = crate::verify::check(disk, file, *is_journal, &mut |_, _, _| Ok(()))?;
        if found.damage.is_empty() && found.torn_tail == 0 {
            kept += found.records;
            continue;
        }
        let written_by = modified(disk, file)?;
        // The copy is durable before the original is replaced: a crash in between loses nothing.
        let backup = backup(disk, file, dir)?;
        let snapshot_damaged = snapshot.as_ref() == Some(file);
        let (found, hold) = rewrite_and_settle(disk, &files, i, snapshot_damaged, written_by)?;
        return Ok(RepairReport {
            file: Some(file.clone()),
            kept: found.records,
            dropped_bytes: found.damage.iter().map(|(_, n)| n).sum::<u64>() + found.torn_tail,
            dropped_at: found.damage.first().map(|(at, _)| *at).or(Some(
                disk.open(&backup, Open::Read)
                    .and_then(|b| b.len())
                    .map_err(io_at(&backup))?
                    - found.torn_tail,
            )),
            damage: found.damage,
            backup: Some(backup),
            hold,
        });
    }
    Ok(RepairReport {
        kept,
        ..RepairReport::default()
    })
}

/// Rewrites damaged file `files[i]` (see [`rewrite`]) and, if it lost records, says which
/// addresses the intact ones settle. An address is settled by a record that tells something
/// newer than any record of it before: a higher binding version than every one read so far
/// (a block duplicated from earlier in the history repeats old versions, and settles
/// nothing), after the file's last damaged span, or in a later file. In a damaged snapshot
/// (`snapshot`: one record per address) every record settles its address.
fn rewrite_and_settle(
    disk: &dyn Disk,
    files: &[(PathBuf, bool)],
    i: usize,
    snapshot: bool,
    written_by: u64,
) -> Result<(crate::verify::FileCheck, Option<HoldBack>), StoreError> {
    type Key = (ScopeId, Ipv4Addr);
    let mut newest: HashMap<Key, u32> = HashMap::new();
    // Whether `event` is newer than every record of its address read so far.
    let mut raises = move |event: &BindingEvent| {
        let key = (event.scope, event.address);
        let v = event.binding.version;
        let newer = newest.get(&key).is_none_or(|seen| v > *seen);
        if newer {
            newest.insert(key, v);
        }
        newer
    };
    for (earlier, is_journal) in &files[..i] {
        crate::verify::check(disk, earlier, *is_journal, &mut |_, _, event| {
            raises(event);
            Ok(())
        })?;
    }
    let (file, is_journal) = &files[i];
    // Where each address's newest record so far is in the damaged file.
    let mut rose: HashMap<Key, u64> = HashMap::new();
    let found = rewrite(disk, file, *is_journal, &mut |at, event| {
        if raises(event) {
            rose.insert((event.scope, event.address), at);
        }
    })?;
    let Some((at, bytes)) = found.damage.last() else {
        return Ok((found, None));
    };
    let after = if snapshot { 0 } else { at + bytes };
    let mut settled: HashSet<Key> = rose
        .into_iter()
        .filter(|(_, at)| *at >= after)
        .map(|(key, _)| key)
        .collect();
    for (later, is_journal) in &files[i + 1..] {
        crate::verify::check(disk, later, *is_journal, &mut |_, _, event| {
            if raises(event) {
                settled.insert((event.scope, event.address));
            }
            Ok(())
        })?;
    }
    let hold = HoldBack {
        written_by,
        settled,
    };
    Ok((found, Some(hold)))
}

/// When `file` was last written, in seconds since the UNIX epoch: no record in it is younger.
fn modified(disk: &dyn Disk, file: &Path) -> Result<u64, StoreError> {
    let written = disk.modified(file).map_err(io_at(file))?;
    // A time before the epoch (a clock set back): now is a later bound.
    Ok(written
        .duration_since(std::time::UNIX_EPOCH)
        .map_or_else(|_| unix_now(), |d| d.as_secs()))
}

/// Replaces `file` by its header (a new one if it is damaged) and its intact records, through
/// a temporary file renamed over it once durable; tells `note` where each record was and what
/// it says, and returns what the walk found.
fn rewrite(
    disk: &dyn Disk,
    file: &Path,
    is_journal: bool,
    note: &mut dyn FnMut(u64, &BindingEvent),
) -> Result<crate::verify::FileCheck, StoreError> {
    // A name no reader takes for lease history: a crash leaves it aside, the next repair
    // starts it again.
    let name = file
        .file_name()
        .map_or_else(|| JOURNAL.into(), |n| n.to_string_lossy().into_owned());
    let temp = file.with_file_name(format!(".{name}.repairing"));
    let mut out = io::BufWriter::new(disk.open(&temp, Open::Create).map_err(io_at(&temp))?);
    // A placeholder header, overwritten below once the walk has read the file's own.
    out.write_all(&encode_header(unix_now()))
        .map_err(io_at(&temp))?;
    let (found, header) =
        crate::verify::check(disk, file, is_journal, &mut |at, record, event| {
            note(at, event);
            out.write_all(record)
        })?;
    let mut out = out.into_inner().map_err(|e| io_at(&temp)(e.into_error()))?;
    if let Some(header) = header {
        out.seek(io::SeekFrom::Start(0)).map_err(io_at(&temp))?;
        out.write_all(&header).map_err(io_at(&temp))?;
    }
    out.sync_all().map_err(io_at(&temp))?;
    drop(out);
    disk.rename(&temp, file).map_err(io_at(file))?;
    sync_dir(disk, file.parent().unwrap_or(Path::new(".")))?;
    Ok(found)
}

/// Copies `file` to a new `<name>.corrupt-<unix time>[.n]` in `dir`, durably.
fn backup(disk: &dyn Disk, file: &Path, dir: &Path) -> Result<PathBuf, StoreError> {
    let base = file
        .file_name()
        .map_or_else(|| JOURNAL.into(), |n| n.to_string_lossy().into_owned());
    let stamp = unix_now();
    let mut n = 0u32;
    loop {
        let name = match n {
            0 => format!("{base}.corrupt-{stamp}"),
            n => format!("{base}.corrupt-{stamp}.{n}"),
        };
        let path = dir.join(name);
        // Never overwrite an earlier repair's copy.
        match disk.open(&path, Open::CreateNew) {
            Ok(mut copy) => {
                let mut original = disk.open(file, Open::Read).map_err(io_at(file))?;
                io::copy(&mut original, &mut copy).map_err(io_at(&path))?;
                copy.sync_all().map_err(io_at(&path))?;
                sync_dir(disk, dir)?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
}

/// One pass over a journal file.
struct Scan {
    /// Intact records before any damage, each handed to the caller.
    records: u64,
    /// The header's creation time (0 if the header is damaged).
    created: u64,
    /// The header's format version (0 if the header is damaged).
    version: u16,
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

/// Reads `path` record by record (never the whole file at once: journals hold millions) and
/// hands each intact record before any damage to `apply`.
fn scan(
    disk: &dyn Disk,
    path: &Path,
    apply: &mut dyn FnMut(&BindingEvent),
) -> Result<Scan, StoreError> {
    let file = disk.open(path, Open::Read).map_err(io_at(path))?;
    let file_len = file.len().map_err(io_at(path))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut s = Scan {
        records: 0,
        created: 0,
        version: 0,
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
            s.version = h.version;
            s.valid_len = HEADER_LEN as u64;
        }
        Err(reason) => s.damage = Some((0, reason)),
    }
    let mut at = head.len() as u64;
    if at < HEADER_LEN as u64 {
        return Ok(s);
    }
    // Records of a version 2 file are shorter; a damaged header leaves the version unknown,
    // and the walk only counts what follows (at this build's length).
    let len = record_len(s.version);
    let mut buffer = [0u8; RECORD_LEN];
    let record = &mut buffer[..len];
    while file_len - at >= len as u64 {
        input.read_exact(record).map_err(io_at(path))?;
        match (decode_version(s.version, record), s.damage) {
            (Ok(event), None) => {
                apply(&event);
                s.records += 1;
                s.valid_len = at + len as u64;
            }
            (Err(reason), None) => s.damage = Some((at, reason)),
            (Ok(_), Some(_)) => s.intact_after += 1,
            (Err(reason), Some(_)) if !reason.is_framing() => s.intact_after += 1,
            (Err(_), Some(_)) => {}
        }
        at += len as u64;
    }
    Ok(s)
}
