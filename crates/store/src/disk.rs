//! The filesystem under a lease directory. Every file operation of the store goes through
//! [`Disk`], so that a test can run the store on a disk that keeps only what was made durable
//! and cut the power between any two operations (`crate::sim`).

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

/// Lease state is private to the server: client identities and the key secret.
const MODE: u32 = 0o600;

/// Where a lease directory's files live.
pub(crate) trait Disk: Debug + Send + Sync {
    /// Whether `path` names a file or directory.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Creates `path` and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens `path` as `how` says.
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the name `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Gives the file `from` the second name `to`.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (files created, renamed, removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// When `path` was last written.
    fn modified(&self, path: &Path) -> io::Result<SystemTime>;
}

/// How [`Disk::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Reading.
    Read,
    /// Appending to a file that exists.
    Append,
    /// Writing a file that exists, in place.
    Write,
    /// Creating a file that must not exist yet (mode 0600).
    CreateNew,
    /// Creating a file, or emptying the one there (mode 0600).
    Create,
    /// Reading and writing, created if missing (mode 0600) and left as it is otherwise.
    Keep,
}

/// An open file of a [`Disk`].
pub(crate) trait DiskFile: Read + Write + Seek + Debug + Send + Sync {
    /// Makes the file's data (and the size needed to read it) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable: `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Takes the exclusive advisory lock (`flock`) if free: `false` if another holds it.
    fn try_lock(&self) -> io::Result<bool>;
}

/// The operating system's filesystem.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OsDisk;

impl Disk for OsDisk {
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut o = OpenOptions::new();
        match how {
            Open::Read => o.read(true),
            Open::Append => o.append(true),
            Open::Write => o.write(true),
            Open::CreateNew => o.write(true).create_new(true).mode(MODE),
            Open::Create => o.write(true).create(true).truncate(true).mode(MODE),
            Open::Keep => o
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(MODE),
        };
        Ok(Box::new(o.open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn modified(&self, path: &Path) -> io::Result<SystemTime> {
        fs::metadata(path)?.modified()
    }
}

impl DiskFile for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn try_lock(&self) -> io::Result<bool> {
        match File::try_lock(self) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}
