//! The leases an engine holds, written out as Kea's CSV or as JSON: what `peregrine leases
//! export` writes from a lease directory and `GET /v1/leases/export/{format}` from a running
//! server.

use std::io::{self, Write};

use peregrine_engine::{Engine, ScopeId};

use crate::{Lease, bindings, json, kea_csv};

/// A format leases are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Kea's memfile, `kea-leases4.csv` (Kea 2.2's columns).
    KeaCsv,
    /// A JSON array, a lease per element with its scope's name.
    Json,
}

impl ExportFormat {
    /// The format's name on the command line and in the API (`kea-csv`, `json`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::KeaCsv => "kea-csv",
            ExportFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kea-csv" => Ok(ExportFormat::KeaCsv),
            "json" => Ok(ExportFormat::Json),
            other => Err(format!("{other:?} is no export format: kea-csv or json")),
        }
    }
}

/// What an export wrote, and what it could not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    /// Leases written.
    pub written: usize,
    /// Bindings with no equivalent in the format (backup or reset, in Kea's CSV).
    pub not_written: usize,
    /// Leases written without their client identifier, which Peregrine keeps only as a
    /// digest when it is longer than 30 bytes.
    pub without_client_id: usize,
}

/// Writes every lease `engine` holds to `out` in `format`, by address; `scope_name` names a
/// scope (JSON carries it).
pub fn write<'n>(
    engine: &Engine,
    scope_name: impl Fn(ScopeId) -> &'n str,
    format: ExportFormat,
    out: &mut impl Write,
) -> io::Result<Exported> {
    let mut leases: Vec<(ScopeId, Lease)> = Vec::new();
    let mut without_client_id = 0;
    engine.for_each_binding(|scope, addr, b| {
        if let Some(l) = bindings::lease_of(scope, addr, b) {
            if b.client.is_some_and(|k| k.is_client_id()) && l.client_id.is_none() {
                without_client_id += 1;
            }
            leases.push((scope, l));
        }
    });
    leases.sort_by_key(|(_, l)| l.address);
    let not_written = match format {
        ExportFormat::KeaCsv => kea_csv::write(out, leases.iter().map(|(_, l)| l))?.len(),
        ExportFormat::Json => {
            json::write(out, leases.iter().map(|(s, l)| (scope_name(*s), l)))?;
            0
        }
    };
    out.flush()?;
    Ok(Exported {
        written: leases.len() - not_written,
        not_written,
        without_client_id,
    })
}
