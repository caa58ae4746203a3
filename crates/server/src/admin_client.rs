//! A running server's admin API as the command line reaches it: its control address, and the
//! bearer token from the file `--token-file` names (the one `[control] token-file` names).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Requests to one server's admin API.
pub(crate) struct AdminClient {
    /// `http://` or `https://`, and the server's address.
    base: String,
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    /// The API at `server` (`127.0.0.1:9167`), with the token in `token_file` if given, over
    /// TLS if `tls_ca` names the certificate (PEM) that signed the server's, or is it; a
    /// request gives up after `timeout`.
    pub(crate) fn new(
        server: &str,
        token_file: Option<&Path>,
        tls_ca: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<AdminClient> {
        // The server's own token file, read as the server reads it.
        let authorization = token_file
            .map(|path| {
                peregrine_config::model::AdminToken::read(path)
                    .map(|t| format!("Bearer {}", t.expose()))
                    .map_err(|e| anyhow::anyhow!("the admin token: {e}"))
            })
            .transpose()?;
        let mut agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout));
        let scheme = if let Some(ca) = tls_ca {
            agent = agent.tls_config(tls(ca)?);
            "https"
        } else {
            "http"
        };
        Ok(AdminClient {
            base: format!("{scheme}://{server}"),
            authorization,
            agent: agent.build().into(),
        })
    }

    /// The URL of `path` (`/v1/failover`) on the server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`: the status and the whole body.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let reply = request.call().with_context(|| url.clone())?;
        read(&url, reply)
    }

    /// `POST path` with `body`: the status and the whole body.
    pub(crate) fn post(&self, path: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let mut request = self.agent.post(&url);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let reply = request
            .send(body)
            .with_context(|| format!("posting to {url}"))?;
        read(&url, reply)
    }

    /// `PUT path` with `body`: the status and the whole body.
    pub(crate) fn put(&self, path: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let mut request = self.agent.put(&url);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let reply = request.send(body).with_context(|| url.clone())?;
        read(&url, reply)
    }

    /// `DELETE path`: the status and the whole body.
    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = self.url(path);
        let mut request = self.agent.delete(&url);
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let reply = request.call().with_context(|| url.clone())?;
        read(&url, reply)
    }
}

/// TLS trusting only the certificates of the PEM file `ca` (rustls, ring), as the server's own
/// TLS is.
fn tls(ca: &Path) -> anyhow::Result<ureq::tls::TlsConfig> {
    let pem = std::fs::read(ca).with_context(|| format!("{}: the CA certificate", ca.display()))?;
    let certs = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM", ca.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: no certificate in it", ca.display());
    // The server's own provider (crates/control/src/tls.rs says why ring).
    #[expect(
        deprecated,
        reason = "ring's provider, chosen over a C build of AWS-LC"
    )]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
        .unversioned_rustls_crypto_provider(provider)
        .build())
}

fn read(url: &str, mut reply: ureq::http::Response<ureq::Body>) -> anyhow::Result<(u16, String)> {
    let status = reply.status().as_u16();
    let body = reply
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .with_context(|| format!("reading the reply of {url}"))?;
    Ok((status, body))
}

/// The `error` of a JSON error body, or the body itself.
pub(crate) fn why(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

/// `text` with all but unreserved characters (and `:`) percent-encoded: for a path segment
/// (a scope's name) or a query value (a time zone, a circuit id).
pub(crate) fn escape(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}
