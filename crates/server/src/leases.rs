//! `peregrine leases import` and `peregrine leases export`: leases in from Kea, ISC dhcpd or
//! Windows DHCP, and out to Kea or to scripts, through the lease directory while no server
//! runs (the directory's lock refuses either command while one does).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;
use peregrine_config::model::Config;
use peregrine_engine::{BindingEvent, Engine, EngineOptions, KeySecret};
use peregrine_migrate::report::{Format, ImportReport};
use peregrine_migrate::{LocalZone, bindings, export};
use peregrine_store::LeaseDir;

/// Exit status of an import that wrote what it could but skipped entries or met conflicts.
pub(crate) const EXIT_PARTIAL: u8 = 3;

/// Formats `leases import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportFormat {
    /// Kea memfile DHCPv4 lease file (kea-leases4.csv).
    KeaCsv,
    /// ISC dhcpd lease file (dhcpd.leases).
    Dhcpd,
    /// Windows DHCP Server `Export-DhcpServer` XML.
    WindowsXml,
}

/// Formats `leases export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Kea 2.2 memfile DHCPv4 lease file.
    KeaCsv,
    /// A JSON array of lease objects.
    Json,
}

/// The configuration and what the lease directory holds, in an engine built from both.
struct Loaded {
    config: Config,
    engine: Engine,
    /// `None` on a dry run when the directory does not exist yet.
    dir: Option<LeaseDir>,
}

/// Loads the configuration, opens and recovers its lease directory, and restores the journal
/// into an engine. With `create` false, a missing directory is not created (an engine with
/// no leases is returned).
fn load(config_path: &Path, create: bool) -> anyhow::Result<Loaded> {
    let config = peregrine_config::load(config_path)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let Some(leases) = &config.runtime.leases else {
        bail!(
            "{}: no [leases] directory configured: there is no lease state to import into or \
             export from",
            config_path.display()
        );
    };
    let dir = if create || leases.directory.try_exists().unwrap_or(true) {
        Some(LeaseDir::open(&leases.directory)?)
    } else {
        None
    };
    let key_secret = dir
        .as_ref()
        .map_or_else(KeySecret::random, LeaseDir::key_secret);
    let options = EngineOptions {
        key_secret,
        ..EngineOptions::default()
    };
    let engine = Engine::new(&config, options).context("building the engine")?;
    if let Some(dir) = &dir {
        let (_, refused) = crate::run::replay_history(&engine, dir)?;
        if refused > 0 {
            eprintln!(
                "note: {refused} journal records are outside the configured pools, as \
                 `peregrine run` would also find"
            );
        }
    }
    Ok(Loaded {
        config,
        engine,
        dir,
    })
}

/// `peregrine leases import`.
pub(crate) fn import(
    config_path: &Path,
    format: ImportFormat,
    zone: &LocalZone,
    dry_run: bool,
    input: &Path,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let parsed = Format::from(format)
        .parse(&bytes, zone)
        .with_context(|| input.display().to_string())?;
    let loaded = load(config_path, !dry_run)?;
    let bar = progress(parsed.records.len() as u64);
    let restored = bindings::restore(&loaded.engine, &loaded.config, &parsed.records, || {
        bar.inc(1);
    });
    bar.finish_and_clear();
    let report = ImportReport::new(&parsed, &restored);
    let events: Vec<BindingEvent> = restored.events();
    let target = loaded.dir.as_ref().map_or_else(
        || "(no lease directory yet)".into(),
        |d| d.path().display().to_string(),
    );
    if !dry_run && let Some(dir) = &loaded.dir {
        dir.append(&events)?;
    }
    let verb = if dry_run { "would import" } else { "imported" };
    let headline = format!(
        "{}: {verb} {} leases into {target}{}",
        input.display(),
        report.imported,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    report.write_text(&mut io::stdout().lock(), &headline)?;
    Ok(exit_code(&report))
}

/// `peregrine leases import --server`: the file posted to a running server's admin API.
pub(crate) fn import_live(
    server: &str,
    token_file: Option<&Path>,
    format: ImportFormat,
    zone: &LocalZone,
    input: &Path,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let format = Format::from(format);
    let path = format!(
        "/v1/leases/import/{}?timezone={}",
        format.as_str(),
        crate::admin_client::escape(zone.name())
    );
    // The server answers once every lease is durable; it gives up on the journal at 60 s.
    let api = crate::admin_client::AdminClient::new(
        server,
        token_file,
        None,
        std::time::Duration::from_mins(5),
    )?;
    let url = api.url(&path);
    let (status, body) = api.post(&path, &bytes)?;
    if !(200..300).contains(&status) {
        bail!("{url}: {status}: {}", crate::admin_client::why(&body));
    }
    let report: ImportReport =
        serde_json::from_str(&body).with_context(|| format!("{url}: not an import report"))?;
    let headline = format!(
        "{}: imported {} leases into the server at {server} (durable)",
        input.display(),
        report.imported
    );
    report.write_text(&mut io::stdout().lock(), &headline)?;
    Ok(exit_code(&report))
}

/// 0 when the whole file was imported, [`EXIT_PARTIAL`] when entries were skipped or in
/// conflict.
pub(crate) fn exit_code(report: &ImportReport) -> ExitCode {
    if report.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}

impl From<ImportFormat> for Format {
    fn from(f: ImportFormat) -> Format {
        match f {
            ImportFormat::KeaCsv => Format::KeaCsv,
            ImportFormat::Dhcpd => Format::Dhcpd,
            ImportFormat::WindowsXml => Format::WindowsXml,
        }
    }
}

/// A progress bar on stderr if it is a terminal; a hidden one otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if io::stderr().is_terminal() {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// `peregrine leases export`.
pub(crate) fn export(
    config_path: &Path,
    format: ExportFormat,
    output: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let loaded = load(config_path, false)?;
    if loaded.dir.is_none() {
        bail!("the lease directory does not exist: there are no leases to export");
    }
    let mut sink: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let names = &loaded.config.scopes;
    let format = match format {
        ExportFormat::KeaCsv => export::ExportFormat::KeaCsv,
        ExportFormat::Json => export::ExportFormat::Json,
    };
    let exported = export::write(
        &loaded.engine,
        |s| names.get(usize::from(s.0)).map_or("", |s| s.name.as_str()),
        format,
        &mut sink,
    )?;
    drop(sink);
    eprintln!("exported {} leases", exported.written);
    if exported.not_written > 0 {
        eprintln!(
            "note: {} backup or reset bindings have no Kea equivalent and were not written",
            exported.not_written
        );
    }
    if exported.without_client_id > 0 {
        eprintln!(
            "note: {} clients have a client identifier longer than 30 bytes, which \
             Peregrine keeps only as a digest: exported without client_id",
            exported.without_client_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `peregrine leases recover`: repairs the damaged files of the configuration's lease
/// directory one by one, in the order recovery reads them (each keeps every intact record),
/// says what each repair set aside, then holds back (journaled, as [`Engine::hold_back`]) every
/// address a lost record may have leased, until the longest configured lease granted by then
/// has run out.
pub(crate) fn recover(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = peregrine_config::load(config_path)
        .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    let Some(leases) = &config.runtime.leases else {
        bail!(
            "{}: no [leases] directory configured: there is nothing to recover",
            config_path.display()
        );
    };
    let dir = leases.directory.as_path();
    let mut holds = Vec::new();
    // Each pass repairs one file; a directory has a handful of history files.
    for pass in 0..64 {
        let report = peregrine_store::repair(dir)?;
        let Some(file) = report.file else {
            if pass == 0 {
                println!(
                    "{}: lease history intact ({} records); nothing to do",
                    dir.display(),
                    report.kept
                );
                return Ok(ExitCode::SUCCESS);
            }
            return hold_back(config_path, &config, dir, &holds);
        };
        println!(
            "{}: kept {} intact records, set aside {} damaged bytes; the file as it was is in {}",
            file.display(),
            report.kept,
            report.dropped_bytes,
            report
                .backup
                .map_or_else(|| "(no copy)".into(), |b| b.display().to_string())
        );
        for (offset, bytes) in report.damage {
            println!("  damaged: {bytes} bytes at offset {offset}");
        }
        holds.extend(report.hold);
    }
    bail!(
        "{}: still damaged after 64 repairs; restore it from a backup",
        dir.display()
    )
}

/// Holds back what the repairs' lost records may have leased, and lists it.
fn hold_back(
    config_path: &Path,
    config: &Config,
    dir: &Path,
    holds: &[peregrine_store::HoldBack],
) -> anyhow::Result<ExitCode> {
    let Some(written_by) = holds.iter().map(|h| h.written_by).max() else {
        // Only a torn tail was cut: nothing acknowledged was lost.
        return Ok(ExitCode::SUCCESS);
    };
    let longest = config
        .scopes
        .iter()
        .map(|s| s.lease.max)
        .chain([config.server.lease.max])
        .max()
        .unwrap_or(0);
    let until = written_by + u64::from(longest);
    let now = peregrine_dataplane::unix_now();
    if until <= now {
        println!(
            "no lease a lost record granted can still run (written by {}, longest lease {longest} s): nothing held back",
            timestamp(written_by)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if config.failover.is_some()
        && let Some(aside) = crate::partner::set_state_aside(dir)?
    {
        println!(
            "the failover state is set aside ({}): the server starts in RECOVER and learns \
                 every binding from its partner, the damaged records' included",
            aside.display()
        );
    }
    let loaded = load(config_path, false)?;
    let held = loaded.engine.hold_back(now, until, |scope, address| {
        holds.iter().any(|h| h.unsettled(scope, address))
    });
    if let Some(dir) = &loaded.dir {
        dir.append(&held)?;
    }
    println!(
        "held back {} addresses a lost record may have leased, until {} (the damaged file was \
         last written at {}, the longest lease is {longest} s); a client that asks for its \
         address by name (rebooting, renewing, rebinding) gets it back at once",
        held.len(),
        timestamp(until),
        timestamp(written_by)
    );
    let mut held: Vec<(String, u32)> = held
        .iter()
        .map(|e| {
            let scope = loaded.engine.scope_name(e.scope).unwrap_or("?").to_owned();
            (scope, e.address.to_bits())
        })
        .collect();
    held.sort_unstable();
    for (scope, first, last) in ranges(&held) {
        if first == last {
            println!("  {scope}: {first}");
        } else {
            println!("  {scope}: {first}-{last}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs of consecutive addresses of one scope, from a sorted list.
fn ranges(sorted: &[(String, u32)]) -> Vec<(&str, Ipv4Addr, Ipv4Addr)> {
    let mut out: Vec<(&str, Ipv4Addr, Ipv4Addr)> = Vec::new();
    for (scope, a) in sorted {
        let a = Ipv4Addr::from_bits(*a);
        match out.last_mut() {
            Some((s, _, last))
                if s == scope && last.to_bits().checked_add(1) == Some(a.to_bits()) =>
            {
                *last = a;
            }
            _ => out.push((scope, a, a)),
        }
    }
    out
}

/// `unix` seconds as an RFC 3339 UTC time.
fn timestamp(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| unix.to_string(), |t| t.to_string())
}
