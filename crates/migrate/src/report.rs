//! One import from start to report: a file in any supported format parsed, its leases
//! installed in an engine, and what happened to every entry, as text for the operator or as
//! JSON for the admin API (`POST /v1/leases/import`) and its client.

use std::io::{self, Write};
use std::str::FromStr;

use peregrine_config::model::Config;
use peregrine_engine::{Binding, BindingEvent, Engine};
use serde::{Deserialize, Serialize};

use crate::bindings::{self, Conflict, Restored};
use crate::{Import, LocalZone, dhcpd, kea_csv, windows_xml};

/// A lease file format Peregrine imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Kea memfile DHCPv4 lease file (`kea-leases4.csv`).
    KeaCsv,
    /// ISC dhcpd lease file (`dhcpd.leases`).
    Dhcpd,
    /// Windows DHCP Server `Export-DhcpServer` XML.
    WindowsXml,
}

impl Format {
    /// The name the command line and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::KeaCsv => "kea-csv",
            Format::Dhcpd => "dhcpd",
            Format::WindowsXml => "windows-xml",
        }
    }

    /// Reads `bytes` as this format. Entries that cannot be read are in [`Import::skipped`];
    /// a file of which nothing could be read (not this format, not well-formed, the wrong
    /// encoding, no entry readable) is [`Unreadable`], so that nothing is imported from a file
    /// mistaken for another and the operator's script stops.
    ///
    /// Times that name no zone (Windows exports) are read in `zone`.
    pub fn parse(self, bytes: &[u8], zone: &LocalZone) -> Result<Import, Unreadable> {
        let parsed = match self {
            Format::KeaCsv => kea_csv::import(&String::from_utf8_lossy(bytes)),
            Format::Dhcpd => dhcpd::import(bytes),
            Format::WindowsXml => windows_xml::import_bytes(bytes, zone),
        };
        if parsed.records.is_empty() && !parsed.skipped.is_empty() {
            return Err(Unreadable {
                format: self,
                entries: parsed.skipped.iter().map(Entry::from).collect(),
            });
        }
        Ok(parsed)
    }
}

/// A file nothing could be read from as the format it was given as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The format it was read as.
    pub format: Format,
    /// Why each entry (or the whole file, at line 1) could not be read.
    pub entries: Vec<Entry>,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nothing could be read as {}", self.format.as_str())?;
        if let Some(first) = self.entries.first() {
            write!(f, ": line {}: {}", first.line, first.reason)?;
        }
        if self.entries.len() > 1 {
            write!(f, " (and {} more entries like it)", self.entries.len() - 1)?;
        }
        f.write_str("; nothing was imported")
    }
}

impl std::error::Error for Unreadable {}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        [Format::KeaCsv, Format::Dhcpd, Format::WindowsXml]
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown format `{s}`; the formats are kea-csv, dhcpd and windows-xml")
            })
    }
}

/// An entry of the source file that was not imported as it stood, or a note about one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Line of the source file, 1-based.
    pub line: usize,
    /// What happened to it, for the operator.
    pub reason: String,
}

impl From<&crate::Skipped> for Entry {
    fn from(s: &crate::Skipped) -> Entry {
        Entry {
            line: s.line,
            reason: s.reason.clone(),
        }
    }
}

/// What an import did with every entry of its file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// Leases installed (and, by whoever journals them, made durable).
    pub imported: usize,
    /// Entries that gave no lease, in line order, each with its reason.
    pub skipped: Vec<Entry>,
    /// Leases for addresses another client holds, left to that client.
    pub conflicts: Vec<Entry>,
    /// Merging: leases not imported because their client holds a newer one in the scope, and
    /// leases that replaced their client's older one (given up), each by line.
    #[serde(default)]
    pub merged: Vec<Entry>,
    /// Things to know that are not errors.
    pub notes: Vec<Entry>,
    /// Earlier entries replaced by a later one for the same address.
    pub superseded: usize,
}

impl ImportReport {
    /// Parses `bytes` as `format`, installs its leases in `engine` (built from `config`), and
    /// returns the report with the binding changes the journal must record. An unreadable
    /// file installs nothing.
    pub fn run(
        engine: &Engine,
        config: &Config,
        format: Format,
        zone: &LocalZone,
        bytes: &[u8],
        progress: impl FnMut(),
    ) -> Result<(ImportReport, Vec<BindingEvent>), Unreadable> {
        let parsed = format.parse(bytes, zone)?;
        let restored = bindings::restore(engine, config, &parsed.records, progress);
        Ok((ImportReport::new(&parsed, &restored), restored.events()))
    }

    /// The report of `parsed` once restored as `restored`.
    pub fn new(parsed: &Import, restored: &Restored) -> ImportReport {
        let entry = Entry::from;
        let mut skipped: Vec<Entry> = parsed
            .skipped
            .iter()
            .chain(&restored.skipped)
            .map(entry)
            .collect();
        skipped.sort_by_key(|s| s.line);
        ImportReport {
            imported: restored.accepted.len(),
            skipped,
            conflicts: restored
                .conflicts
                .iter()
                .map(|c| Entry {
                    line: c.line,
                    reason: conflict(c),
                })
                .collect(),
            merged: merged(restored),
            notes: parsed.notes.iter().map(entry).collect(),
            superseded: parsed.superseded.len(),
        }
    }

    /// Whether every lease of the file was imported: nothing skipped, no conflict.
    pub fn complete(&self) -> bool {
        self.skipped.is_empty() && self.conflicts.is_empty()
    }

    /// The report for the operator: `headline`, then the counts with every skipped entry,
    /// conflict and note by line.
    pub fn write_text(&self, out: &mut dyn Write, headline: &str) -> io::Result<()> {
        writeln!(out, "{headline}")?;
        writeln!(out, "skipped {}", self.skipped.len())?;
        for s in &self.skipped {
            writeln!(out, "  line {}: {}", s.line, s.reason)?;
        }
        writeln!(out, "conflicts {}", self.conflicts.len())?;
        for c in &self.conflicts {
            writeln!(out, "  line {}: {}", c.line, c.reason)?;
        }
        if !self.merged.is_empty() {
            writeln!(
                out,
                "merged {} (one lease per client and scope: the later by last transaction)",
                self.merged.len()
            )?;
        }
        for m in &self.merged {
            writeln!(out, "  line {}: {}", m.line, m.reason)?;
        }
        for n in &self.notes {
            writeln!(out, "note: line {}: {}", n.line, n.reason)?;
        }
        if self.superseded > 0 {
            writeln!(
                out,
                "note: {} earlier entries were replaced by later entries for the same address \
                 (the last entry of an address is its lease)",
                self.superseded
            )?;
        }
        Ok(())
    }
}

/// The merge's outcomes by line: leases left out for a newer one, older leases given up.
fn merged(restored: &Restored) -> Vec<Entry> {
    let mut out: Vec<Entry> = restored
        .older
        .iter()
        .map(|o| Entry {
            line: o.line,
            reason: format!(
                "{}: not imported, its client holds {} with a later last transaction",
                o.address, o.kept
            ),
        })
        .chain(restored.displaced.iter().map(|d| Entry {
            line: d.line,
            reason: format!(
                "its client's older lease on {} was given up for this one",
                d.event.address
            ),
        }))
        .collect();
    out.sort_by_key(|e| e.line);
    out
}

fn conflict(c: &Conflict) -> String {
    format!(
        "{} is held by another client ({}, {}, mac {}, expires {}); left as it is",
        c.address,
        client(&c.holder),
        c.holder.state.as_str(),
        mac(c.holder.mac),
        c.holder.expires
    )
}

fn client(b: &Binding) -> String {
    b.client
        .map_or_else(|| "no client".into(), |k| format!("{k:?}"))
}

fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}
