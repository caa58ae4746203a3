//! Which files of a lease directory hold its history, and in what order they are read.
//!
//! ```text
//! snapshot.<s>   the newest record of every address in journal.1 ..= journal.<s>, by address
//! journal.<n>    a sealed journal segment (s < n): the writer moved on to a new journal
//! journal        the journal the writer appends to
//! ```
//!
//! The writer seals `journal` as `journal.<n>` once it passes the configured size and starts
//! a new one; compaction folds the snapshot and the sealed segments into `snapshot.<n>`, and
//! only after that is durable deletes what it covers. A crash at any step leaves a set of
//! files that [`Layout::read`] orders and [`Layout::tidy`] cleans: a missing `journal` is
//! recreated (sealed, not yet replaced), files a newer snapshot covers are deleted (compacted,
//! not yet deleted), and half-written snapshots are removed (compaction cut short).

use std::io;
use std::path::{Path, PathBuf};

use crate::dir::{JOURNAL, sync_dir};
use crate::disk::Disk;
use crate::error::{StoreError, io_at};

/// The snapshot files' name prefix.
pub(crate) const SNAPSHOT: &str = "snapshot";

/// A lease directory's history files, in the order recovery reads them.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// The newest snapshot and the segment number it covers up to.
    pub(crate) snapshot: Option<(u64, PathBuf)>,
    /// Sealed segments the snapshot does not cover, oldest first.
    pub(crate) sealed: Vec<(u64, PathBuf)>,
    /// Files a crash left behind that nothing needs: covered segments, older snapshots,
    /// snapshots never finished.
    pub(crate) obsolete: Vec<PathBuf>,
}

impl Layout {
    /// Lists `dir`.
    pub(crate) fn read(disk: &dyn Disk, dir: &Path) -> Result<Layout, StoreError> {
        let mut snapshots = Vec::new();
        let mut segments = Vec::new();
        let mut obsolete = Vec::new();
        for name in disk.list(dir).map_err(io_at(dir))? {
            let name = name.as_str();
            let path = dir.join(name);
            // Only compaction writes these names, always in lower case.
            let partial = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .is_some_and(|n| numbered(n, SNAPSHOT).is_some());
            if partial {
                obsolete.push(path);
            } else if let Some(n) = numbered(name, SNAPSHOT) {
                snapshots.push((n, path));
            } else if let Some(n) = numbered(name, JOURNAL) {
                segments.push((n, path));
            }
        }
        snapshots.sort_unstable();
        segments.sort_unstable();
        let snapshot = snapshots.pop();
        obsolete.extend(snapshots.into_iter().map(|(_, p)| p));
        let covered = snapshot.as_ref().map_or(0, |(n, _)| *n);
        let (old, sealed): (Vec<_>, Vec<_>) =
            segments.into_iter().partition(|(n, _)| *n <= covered);
        obsolete.extend(old.into_iter().map(|(_, p)| p));
        Ok(Layout {
            snapshot,
            sealed,
            obsolete,
        })
    }

    /// Deletes the obsolete files (durably). Returns how many there were.
    pub(crate) fn tidy(&mut self, disk: &dyn Disk, dir: &Path) -> Result<usize, StoreError> {
        let n = self.obsolete.len();
        for path in self.obsolete.drain(..) {
            match disk.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&path)(e)),
                _ => {}
            }
        }
        if n > 0 {
            sync_dir(disk, dir)?;
        }
        Ok(n)
    }

    /// The files to read before `journal`: the snapshot, then the sealed segments.
    pub(crate) fn history(&self) -> impl Iterator<Item = &Path> {
        self.snapshot
            .iter()
            .chain(&self.sealed)
            .map(|(_, p)| p.as_path())
    }

    /// The number the next sealed segment takes.
    pub(crate) fn next_segment(&self) -> u64 {
        let last_sealed = self.sealed.last().map(|(n, _)| *n);
        let covered = self.snapshot.as_ref().map(|(n, _)| *n);
        last_sealed.max(covered).unwrap_or(0) + 1
    }
}

/// `<prefix>.<n>` with `n` a decimal number from 1, else `None`.
fn numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// The path of sealed segment `n`.
pub(crate) fn sealed_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{JOURNAL}.{n}"))
}

/// The path of the snapshot covering segments up to `n`, and of its file while written.
pub(crate) fn snapshot_paths(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{SNAPSHOT}.{n}")),
        dir.join(format!(".{SNAPSHOT}.{n}.tmp")),
    )
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn only_plain_positive_numbers_name_history_files() {
        assert_eq!(numbered("journal.7", "journal"), Some(7));
        assert_eq!(numbered("snapshot.12", "snapshot"), Some(12));
        for name in [
            "journal",
            "journal.",
            "journal.0",
            "journal.-1",
            "journal.+1",
            "journal.1x",
            "journal.corrupt-1800000000",
            "journalx.1",
        ] {
            assert_eq!(numbered(name, "journal"), None, "{name}");
        }
    }
}
