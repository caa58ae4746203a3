//! A disk that loses at a power cut what a real one may lose (tests only): file data written
//! since the file's last `fsync`/`fdatasync`, and directory entries (files created, renamed,
//! linked, removed) since the directory's last `fsync`. What it keeps of the unsynced data is
//! a prefix of the writes since the last sync, the last of them possibly torn part-way.
//!
//! [`SimDisk`] records, after every operation that changes something, what a power cut at that
//! moment would leave ([`SimDisk::images`]); [`Image::cut`] makes a disk of it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::disk::{Disk, DiskFile, Open};

/// A change to a file's bytes not yet made durable.
#[derive(Debug, Clone)]
enum Change {
    Write { at: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl Change {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Change::Write { at, bytes } => {
                let at = usize::try_from(*at).unwrap_or(usize::MAX);
                if data.len() < at + bytes.len() {
                    data.resize(at + bytes.len(), 0);
                }
                data[at..at + bytes.len()].copy_from_slice(bytes);
            }
            Change::SetLen(len) => data.resize(usize::try_from(*len).unwrap_or(0), 0),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a power cut for certain.
    durable: Arc<Vec<u8>>,
    /// Changes since the last sync, in order.
    pending: Vec<Change>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    /// File names as the running system sees them.
    names: BTreeMap<PathBuf, usize>,
    /// File names as each directory's last sync left them.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Directories (made durable at once: the tests create them before anything else).
    dirs: BTreeSet<PathBuf>,
    /// Operations that changed something so far.
    ops: u64,
    /// What a power cut after each operation would leave, if recorded.
    images: Option<Vec<Image>>,
}

impl State {
    /// Counts an operation, and records what a power cut right after it would leave.
    fn changed(&mut self) {
        self.ops += 1;
        if self.images.is_some() {
            let image = self.image();
            if let Some(images) = &mut self.images {
                images.push(image);
            }
        }
    }

    fn image(&self) -> Image {
        Image {
            after: self.ops,
            names: self.durable_names.clone(),
            dirs: self.dirs.clone(),
            inodes: self
                .inodes
                .iter()
                .map(|i| (i.durable.clone(), i.pending.clone()))
                .collect(),
        }
    }

    fn inode(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }

    fn create(&mut self, path: &Path) -> usize {
        self.inodes.push(Inode::default());
        let inode = self.inodes.len() - 1;
        self.names.insert(path.to_path_buf(), inode);
        inode
    }
}

/// What a power cut leaves at one moment: the durable names and, per file, its durable bytes
/// and the changes since its last sync.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    /// The operations done before the cut.
    pub(crate) after: u64,
    names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    inodes: Vec<(Arc<Vec<u8>>, Vec<Change>)>,
}

impl Image {
    /// The disk after the cut: each file its durable bytes and, of the changes since, the
    /// first few that `pick(n)` (a number in `0..n`) chooses, the last of them torn at a byte
    /// it chooses, with the file's size possibly already grown to the torn write's end.
    pub(crate) fn cut(&self, mut pick: impl FnMut(u64) -> u64) -> SimDisk {
        let mut state = State {
            dirs: self.dirs.clone(),
            ..State::default()
        };
        let mut kept: BTreeMap<usize, usize> = BTreeMap::new();
        for (name, &inode) in &self.names {
            let fresh = *kept.entry(inode).or_insert_with(|| {
                let (durable, pending) = &self.inodes[inode];
                let mut data = durable.as_ref().clone();
                let applied = pick(pending.len() as u64 + 1) as usize;
                for change in &pending[..applied] {
                    change.apply(&mut data);
                }
                if let Some(Change::Write { at, bytes }) = pending.get(applied) {
                    let torn = pick(bytes.len() as u64 + 1) as usize;
                    let grown = pick(2) == 1;
                    let mut partial = bytes[..torn].to_vec();
                    if grown {
                        partial.resize(bytes.len(), 0);
                    }
                    Change::Write {
                        at: *at,
                        bytes: partial,
                    }
                    .apply(&mut data);
                }
                state.inodes.push(Inode {
                    durable: Arc::new(data.clone()),
                    data,
                    pending: Vec::new(),
                });
                state.inodes.len() - 1
            });
            state.names.insert(name.clone(), fresh);
        }
        state.durable_names = state.names.clone();
        SimDisk(Arc::new(Mutex::new(state)))
    }
}

/// The simulated disk (cheap to clone: clones share it).
#[derive(Debug, Clone, Default)]
pub(crate) struct SimDisk(Arc<Mutex<State>>);

impl SimDisk {
    /// An empty disk that records an [`Image`] after every operation that changes something.
    pub(crate) fn recording() -> SimDisk {
        let disk = SimDisk::default();
        disk.record();
        disk
    }

    /// Records an [`Image`] after every operation that changes something from now on.
    pub(crate) fn record(&self) {
        self.lock().images = Some(Vec::new());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Operations that changed something so far.
    pub(crate) fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The images recorded so far, taken.
    pub(crate) fn images(&self) -> Vec<Image> {
        self.lock().images.replace(Vec::new()).unwrap_or_default()
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

impl Disk for SimDisk {
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        Ok(s.names.contains_key(path) || s.dirs.contains(path))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        for dir in path.ancestors() {
            s.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        Ok(s.names
            .keys()
            .filter(|p| parent(p) == dir)
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut s = self.lock();
        let found = s.names.get(path).copied();
        let inode = match (how, found) {
            (Open::Read | Open::Append | Open::Write, _) => s.inode(path)?,
            (Open::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    path.display().to_string(),
                ));
            }
            (Open::Keep, Some(inode)) => inode,
            (Open::Create, Some(inode)) => {
                let file = &mut s.inodes[inode];
                file.data.clear();
                file.pending.push(Change::SetLen(0));
                s.changed();
                inode
            }
            (Open::CreateNew | Open::Create | Open::Keep, None) => {
                let inode = s.create(path);
                s.changed();
                inode
            }
        };
        Ok(Box::new(SimFile {
            disk: self.clone(),
            inode,
            at: 0,
            append: how == Open::Append,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let inode = s.inode(from)?;
        s.names.remove(from);
        s.names.insert(to.to_path_buf(), inode);
        s.changed();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.inode(path)?;
        s.names.remove(path);
        s.changed();
        Ok(())
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let inode = s.inode(from)?;
        if s.names.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                to.display().to_string(),
            ));
        }
        s.names.insert(to.to_path_buf(), inode);
        s.changed();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.durable_names.retain(|p, _| parent(p) != dir);
        let now: Vec<(PathBuf, usize)> = s
            .names
            .iter()
            .filter(|(p, _)| parent(p) == dir)
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable_names.extend(now);
        s.changed();
        Ok(())
    }

    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        let s = self.lock();
        s.inode(path)?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s.ops))
    }
}

/// An open file of a [`SimDisk`].
#[derive(Debug)]
struct SimFile {
    disk: SimDisk,
    inode: usize,
    at: u64,
    append: bool,
}

impl Read for SimFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.disk.lock();
        let data = &s.inodes[self.inode].data;
        let at = usize::try_from(self.at)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        self.at += n as u64;
        Ok(n)
    }
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.disk.lock();
        let file = &mut s.inodes[self.inode];
        if self.append {
            self.at = file.data.len() as u64;
        }
        let change = Change::Write {
            at: self.at,
            bytes: buf.to_vec(),
        };
        change.apply(&mut file.data);
        file.pending.push(change);
        self.at += buf.len() as u64;
        s.changed();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SimFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.disk.lock().inodes[self.inode].data.len() as u64;
        self.at = match to {
            SeekFrom::Start(at) => at,
            SeekFrom::End(off) => len.saturating_add_signed(off),
            SeekFrom::Current(off) => self.at.saturating_add_signed(off),
        };
        Ok(self.at)
    }
}

impl DiskFile for SimFile {
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.disk.lock();
        let file = &mut s.inodes[self.inode];
        file.durable = Arc::new(file.data.clone());
        file.pending.clear();
        s.changed();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.disk.lock();
        let file = &mut s.inodes[self.inode];
        let change = Change::SetLen(len);
        change.apply(&mut file.data);
        file.pending.push(change);
        s.changed();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.disk.lock().inodes[self.inode].data.len() as u64)
    }

    fn try_lock(&self) -> io::Result<bool> {
        Ok(true)
    }
}
