//! A running server's admin API as the command line reaches it: its control address, and the
//! bearer token from the file `--token-file` names (the one `[control] token-file` names).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// Requests to one server's admin API.
pub(crate) struct AdminClient {
    server: String,
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl AdminClient {
    /// The API at `server` (`127.0.0.1:9167`), with the token in `token_file` if given; a
    /// request gives up after `timeout`.
    pub(crate) fn new(
        server: &str,
        token_file: Option<&Path>,
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
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(AdminClient {
            server: server.to_owned(),
            authorization,
            agent,
        })
    }

    /// The URL of `path` (`/v1/failover`) on the server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server)
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
