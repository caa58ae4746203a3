//! `peregrine ctl`: the admin API from the shell. Each command is one request (or, for
//! `leases --all`, one per page); the answer's JSON is printed as it came, and an answer
//! that is not a success is an error with the server's reason.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::admin_client::{AdminClient, escape, why};

/// Where the API is and how to be let in.
#[derive(Args)]
pub(crate) struct Target {
    /// The server's control address (its `[control] listen`).
    #[arg(long, default_value = "127.0.0.1:9167")]
    server: String,
    /// The file holding the admin API's token (the server's `[control] token-file`).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Speak TLS, trusting the certificate (PEM) in this file: the server's own (its
    /// `[control] tls-cert`) or the CA's that signed it. The name in --server must be one the
    /// certificate names.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

/// What to ask.
#[derive(Subcommand)]
pub(crate) enum CtlCommand {
    /// Every pool's addresses by state.
    Pools,
    /// Every scope's administrative state.
    Scopes,
    /// Serve a scope (kept through restarts with a lease directory).
    Activate {
        /// The scope's name.
        scope: String,
    },
    /// Stop serving a scope (its leases are kept).
    Deactivate {
        /// The scope's name.
        scope: String,
    },
    /// The binding of one address.
    Lease {
        /// The address.
        address: String,
    },
    /// Lease an address to a client from now (add, or update its lease); journaled first.
    LeasePut {
        /// The address.
        address: String,
        /// The client's hardware address, aa:bb:cc:dd:ee:ff.
        #[arg(long)]
        mac: String,
        /// Its client identifier (option 61, type byte included) in hex.
        #[arg(long)]
        client_id: Option<String>,
        /// Its host name.
        #[arg(long)]
        hostname: Option<String>,
        /// Seconds the lease runs from now.
        #[arg(long)]
        lifetime: u32,
    },
    /// End an address's lease now, as its client's RELEASE would; journaled first.
    LeaseDelete {
        /// The address.
        address: String,
    },
    /// Leases matching every field given, by address.
    Leases {
        /// Only this scope's.
        #[arg(long)]
        scope: Option<String>,
        /// aa:bb:cc:dd:ee:ff
        #[arg(long)]
        mac: Option<String>,
        /// Option 61 in hex.
        #[arg(long)]
        client_id: Option<String>,
        /// The host name the client gave.
        #[arg(long)]
        hostname: Option<String>,
        /// The relay's option 82 circuit id.
        #[arg(long)]
        circuit_id: Option<String>,
        /// The relay's option 82 remote id.
        #[arg(long)]
        remote_id: Option<String>,
        /// Leases per request (1 to 10 000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow the pages to the last, printing one JSON document per page.
        #[arg(long)]
        all: bool,
    },
    /// The failover relationship.
    Failover,
    /// Declare the partner down (safe only if it is stopped: docs/failover.md).
    PartnerDown,
    /// Read the configuration file again and put it in force (as SIGHUP does).
    Reload,
    /// Fold the lease journal into a snapshot now.
    Snapshot,
    /// Any GET of the API (`/v1/openapi.json` lists them).
    Get {
        /// The path, with its query (`/v1/leases?mac=...`).
        path: String,
    },
    /// Any POST of the API, with a file as the body (none: empty).
    Post {
        /// The path.
        path: String,
        /// The body.
        body: Option<PathBuf>,
    },
}

/// Runs `command` against `target`.
pub(crate) fn run(target: &Target, command: CtlCommand) -> anyhow::Result<std::process::ExitCode> {
    let api = AdminClient::new(
        &target.server,
        target.token_file.as_deref(),
        target.tls_ca.as_deref(),
        Duration::from_mins(5),
    )?;
    let body = match command {
        CtlCommand::Pools => get(&api, "/v1/pools")?,
        CtlCommand::Scopes => get(&api, "/v1/scopes")?,
        CtlCommand::Activate { scope } => post(
            &api,
            &format!("/v1/scopes/{}/activate", escape(&scope)),
            &[],
        )?,
        CtlCommand::Deactivate { scope } => post(
            &api,
            &format!("/v1/scopes/{}/deactivate", escape(&scope)),
            &[],
        )?,
        CtlCommand::Lease { address } => get(&api, &format!("/v1/leases/{}", escape(&address)))?,
        CtlCommand::LeasePut {
            address,
            mac,
            client_id,
            hostname,
            lifetime,
        } => {
            let path = format!("/v1/leases/{}", escape(&address));
            let body = lease_body(&mac, client_id.as_deref(), hostname.as_deref(), lifetime);
            success(&api, &path, api.put(&path, body.as_bytes())?)?
        }
        CtlCommand::LeaseDelete { address } => {
            let path = format!("/v1/leases/{}", escape(&address));
            success(&api, &path, api.delete(&path)?)?
        }
        CtlCommand::Leases {
            scope,
            mac,
            client_id,
            hostname,
            circuit_id,
            remote_id,
            limit,
            all,
        } => {
            let mut query = format!("limit={limit}");
            for (key, value) in [
                ("scope", scope),
                ("mac", mac),
                ("client-id", client_id),
                ("hostname", hostname),
                ("circuit-id", circuit_id),
                ("remote-id", remote_id),
            ] {
                if let Some(v) = value {
                    let _ = write!(query, "&{key}={}", escape(&v));
                }
            }
            let mut after = String::new();
            loop {
                let body = get(&api, &format!("/v1/leases?{query}{after}"))?;
                println!("{}", body.trim_end());
                let page: serde_json::Value = serde_json::from_str(&body)?;
                match page["next"].as_str() {
                    Some(next) if all => after = format!("&after={next}"),
                    _ => return Ok(std::process::ExitCode::SUCCESS),
                }
            }
        }
        CtlCommand::Failover => get(&api, "/v1/failover")?,
        CtlCommand::PartnerDown => post(&api, "/v1/failover/partner-down", &[])?,
        CtlCommand::Reload => post(&api, "/v1/config/reload", &[])?,
        CtlCommand::Snapshot => post(&api, "/v1/journal/snapshot", &[])?,
        CtlCommand::Get { path } => get(&api, &path)?,
        CtlCommand::Post { path, body } => {
            let bytes = body.map(std::fs::read).transpose()?.unwrap_or_default();
            post(&api, &path, &bytes)?
        }
    };
    println!("{}", body.trim_end());
    Ok(std::process::ExitCode::SUCCESS)
}

/// The JSON body of `PUT /v1/leases/{ip}`.
fn lease_body(mac: &str, client_id: Option<&str>, hostname: Option<&str>, lifetime: u32) -> String {
    let mut body = serde_json::json!({ "mac": mac, "valid_lifetime": lifetime });
    if let Some(c) = client_id {
        body["client_id"] = c.into();
    }
    if let Some(h) = hostname {
        body["hostname"] = h.into();
    }
    body.to_string()
}

/// The body of `GET path`, if the answer is a success.
fn get(api: &AdminClient, path: &str) -> anyhow::Result<String> {
    success(api, path, api.get(path)?)
}

/// The body of `POST path` with `body`, if the answer is a success.
fn post(api: &AdminClient, path: &str, body: &[u8]) -> anyhow::Result<String> {
    success(api, path, api.post(path, body)?)
}

fn success(api: &AdminClient, path: &str, (status, body): (u16, String)) -> anyhow::Result<String> {
    if !(200..300).contains(&status) {
        bail!("{}: {status}: {}", api.url(path), why(&body));
    }
    Ok(body)
}
