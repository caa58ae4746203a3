//! `peregrine`: the DHCPv4 server process.
//!
//! Reads and validates the configuration, builds the engine, opens the packet I/O backend on
//! each configured interface, runs the workers, and stops cleanly on SIGTERM or SIGINT. The
//! DHCP logic lives in `peregrine-engine`, the per-frame work in `peregrine-dataplane`, the
//! packet I/O in `peregrine-io`; this crate only wires them together.

mod admin_client;
mod backend;
mod bulk;
mod ctl;
#[cfg(feature = "dpdk")]
mod dpdk;
mod leases;
mod notify;
mod partner;
// The one module that makes scheduling syscalls (sched_setaffinity, sched_setscheduler).
#[allow(unsafe_code)]
mod placement;
mod reload;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use peregrine_migrate::LocalZone;

/// Peregrine: a DHCPv4 server for carrier networks.
#[derive(Parser)]
#[command(name = "peregrine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Run {
        /// Configuration file (TOML; see config/example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Lease state tools.
    Leases {
        #[command(subcommand)]
        command: LeasesCommand,
    },
    /// A running server's admin API from the shell: pools, scopes, leases, failover, or any
    /// route (`get`, `post`), with the token of `--token-file`.
    Ctl {
        #[command(flatten)]
        target: ctl::Target,
        #[command(subcommand)]
        command: ctl::CtlCommand,
    },
    /// A running server's failover relationship, through its admin API.
    Failover {
        #[command(subcommand)]
        command: FailoverCommand,
    },
    /// Check a configuration file and report every error with its file, line, column and key.
    CheckConfig {
        /// Configuration file to check.
        file: PathBuf,
    },
    /// Write the manual pages (section 8) of every command into a directory: what the Debian
    /// package installs.
    #[command(hide = true)]
    Manual {
        /// Where the pages go (created if missing).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum FailoverCommand {
    /// Prints our state and the partner's, the link and each pool's FREE/BACKUP split, one
    /// `key: value` per line (for scripts; `GET /v1/failover` is the same as JSON).
    Status {
        /// The server's control address (its `[control] listen`, e.g. 127.0.0.1:9167).
        #[arg(long)]
        server: String,
        /// The file holding the admin API's token (the server's `[control] token-file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Tells the server its partner is down (D12: only the operator knows): it then serves the
    /// partner's clients too, and after the MCLT its addresses. Refused while the partner is in
    /// contact. Safe only if the partner is stopped: see docs/failover.md.
    PartnerDown {
        /// The server's control address.
        #[arg(long)]
        server: String,
        /// The file holding the admin API's token (the server's `[control] token-file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LeasesCommand {
    /// Repair the lease directory of a configuration that the server refused as corrupt: in
    /// each damaged file keeps every intact record, before and after the damage, copies the
    /// file as it was to <file>.corrupt-<time>, and sets the damaged bytes aside. Then holds
    /// back every address a lost record may have leased (any address no intact record written
    /// after the damage settles), until the longest configured lease granted before the damaged
    /// file was last written has run out, and lists them; a client asking for its address by
    /// name gets it back at once.
    Recover {
        /// Configuration file (the server's): its `[leases] directory` is repaired, its pools
        /// and lease times bound what is held back.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read every file of a lease directory and report its damage (each damaged span: file,
    /// offset, bytes; and the intact records before and after it), changing nothing. Exit
    /// status: 0 if intact (a record torn at the journal's end by a crash is not damage), 3
    /// if damaged, 1 if it cannot be read.
    Verify {
        /// The lease directory (`[leases] directory` of the configuration).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Import leases from another DHCP server: into the lease directory of a configuration
    /// before Peregrine starts (`--config`; the directory is locked while a server runs), or
    /// into a running server through its admin API (`--server`), which answers once the
    /// leases are durable. Each lease becomes the binding its client would get from Peregrine;
    /// leases outside the configured pools are skipped and leases for addresses another client
    /// holds are not overwritten, each reported with its line. Exit status: 0 if every entry
    /// was imported, 3 if some were skipped or in conflict (the others are imported), 1 on an
    /// error.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["config", "server"])))]
    Import {
        /// Configuration file; its `[leases] directory` receives the leases.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A running server's control address (its `[control] listen`, e.g. 127.0.0.1:9167).
        #[arg(long, conflicts_with = "dry_run")]
        server: Option<String>,
        /// With --server: the file holding the admin API's token (its `[control] token-file`).
        #[arg(long, requires = "server")]
        token_file: Option<PathBuf>,
        /// The input's format.
        #[arg(long, value_enum)]
        format: leases::ImportFormat,
        /// Read, check and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The zone of times the file gives without one (a Windows export's expiry times are
        /// the old server's local time): an IANA name (Europe/Berlin), UTC or an offset (+02:00).
        #[arg(long, default_value = "UTC")]
        timezone: LocalZone,
        /// The lease file to import.
        input: PathBuf,
    },
    /// Export the leases in the lease directory of a configuration (no server may be running).
    Export {
        /// Configuration file; its `[leases] directory` is read.
        #[arg(long, short)]
        config: PathBuf,
        /// The output's format.
        #[arg(long, value_enum)]
        format: leases::ExportFormat,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match peregrine_config::load(&file) {
            Ok(config) => {
                // The token file is read as the server would read it at start.
                if let Err(e) = run::admin_access(&file, &config) {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
                println!(
                    "{}: ok ({} scopes, {} classes, {} interfaces)",
                    file.display(),
                    config.scopes.len(),
                    config.classes.len(),
                    config.runtime.interfaces.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Manual { dir } => report(manual(&dir).map(|()| ExitCode::SUCCESS)),
        Command::Leases {
            command: LeasesCommand::Recover { config },
        } => report(leases::recover(&config)),
        Command::Leases {
            command: LeasesCommand::Verify { dir },
        } => verify(&dir),
        Command::Leases {
            command:
                LeasesCommand::Import {
                    config,
                    server,
                    token_file,
                    format,
                    dry_run,
                    timezone,
                    input,
                },
        } => report(match (config, server) {
            (Some(config), _) => leases::import(&config, format, &timezone, dry_run, &input),
            (None, Some(server)) => {
                leases::import_live(&server, token_file.as_deref(), format, &timezone, &input)
            }
            (None, None) => unreachable!("clap requires one of --config and --server"),
        }),
        Command::Leases {
            command:
                LeasesCommand::Export {
                    config,
                    format,
                    output,
                },
        } => report(leases::export(&config, format, output.as_ref())),
        Command::Ctl { target, command } => report(ctl::run(&target, command)),
        Command::Failover { command } => report(match command {
            FailoverCommand::Status { server, token_file } => {
                failover_call(&server, token_file.as_deref(), false)
            }
            FailoverCommand::PartnerDown { server, token_file } => {
                failover_call(&server, token_file.as_deref(), true)
            }
        }),
        Command::Run { config } => {
            init_logging();
            match run::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `peregrine failover status|partner-down`: the relationship as `key: value` lines.
fn failover_call(
    server: &str,
    token_file: Option<&std::path::Path>,
    partner_down: bool,
) -> anyhow::Result<ExitCode> {
    let api = admin_client::AdminClient::new(
        server,
        token_file,
        None,
        std::time::Duration::from_secs(10),
    )?;
    let path = if partner_down {
        "/v1/failover/partner-down"
    } else {
        "/v1/failover"
    };
    let url = api.url(path);
    let (status, body) = if partner_down {
        api.post(path, &[])?
    } else {
        api.get(path)?
    };
    if !(200..300).contains(&status) {
        anyhow::bail!("{url}: {status}: {}", admin_client::why(&body));
    }
    let value: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| anyhow::anyhow!("{url}: {status}: {body}"))?;
    let Some(fields) = value.as_object() else {
        anyhow::bail!("{url}: not a failover status: {body}");
    };
    for (key, v) in fields {
        match v {
            serde_json::Value::Array(pools) => {
                for p in pools {
                    println!(
                        "pool {}/{}: free {} backup {} active {}",
                        p["scope"].as_str().unwrap_or("?"),
                        p["pool"],
                        p["free"],
                        p["backup"],
                        p["active"]
                    );
                }
            }
            serde_json::Value::String(text) => println!("{key}: {text}"),
            serde_json::Value::Null => println!("{key}: -"),
            other => println!("{key}: {other}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `peregrine leases verify`: what is intact and what is damaged in each file of a lease
/// directory.
fn verify(dir: &std::path::Path) -> ExitCode {
    let report = match peregrine_store::verify(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for f in &report.files {
        println!("{}: {} records intact", f.file.display(), f.records);
        for (offset, bytes) in &f.damage {
            println!("  damaged: {bytes} bytes at offset {offset}");
        }
        if f.torn_tail > 0 {
            println!(
                "  a record torn at the end by a crash ({} bytes; never acknowledged, the next start cuts it)",
                f.torn_tail
            );
        }
    }
    if report.damaged() {
        println!(
            "{}: damaged; the server refuses it: `peregrine leases recover --config <its configuration>` repairs it",
            dir.display()
        );
        ExitCode::from(3)
    } else {
        println!("{}: intact", dir.display());
        ExitCode::SUCCESS
    }
}

/// `peregrine manual DIR`: a page per command, generated from the CLI's own definition, so the
/// pages say what the binary does.
fn manual(dir: &std::path::Path) -> anyhow::Result<()> {
    fn write(cmd: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            write(sub, dir)?;
        }
        clap_mangen::Man::new(cmd)
            .section("8")
            .generate_to(dir)
            .map(drop)
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    std::fs::create_dir_all(dir)?;
    write(cmd, dir)?;
    Ok(())
}

/// The exit status of a command, with its error (if any) on stderr.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("{e:#}");
        ExitCode::FAILURE
    })
}

/// Logs to stderr; but when stderr is systemd's journal (`JOURNAL_STREAM` names it, as
/// systemd sets it for a service), natively to journald instead: the level as PRIORITY, the
/// message as MESSAGE, and each field of the event as a journal field of its own
/// (`PEREGRINE_RECORDS=...`), which `journalctl -o verbose` shows and filters on. Without a
/// terminal there are no colour codes either way.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_env("PEREGRINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_journal()
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        .map(|layer| {
            layer
                .with_field_prefix(Some("PEREGRINE".into()))
                .with_syslog_identifier("peregrine".into())
        });
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .init();
}

/// Whether standard error is the stream `JOURNAL_STREAM` ("device:inode") names.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    named.to_str() == Some(&format!("{}:{}", stderr.dev(), stderr.ino()))
}
