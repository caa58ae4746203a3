//! Who may use the admin API: a bearer token for every write, and for reads too where the
//! listener is reachable from beyond the host. Refusals are counted and logged, never with the
//! token that was offered.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The admin API's access rule.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// The bearer token requests must carry; `None`: the API is open (a loopback listener the
    /// operator chose to leave so).
    pub token: Option<String>,
    /// Whether reads need the token too (a listener not on loopback); `/healthz` never does.
    pub reads_need_token: bool,
    /// The TLS identity the API is served with; `None`: plain HTTP.
    pub tls: Option<crate::AdminTls>,
}

impl fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("reads_need_token", &self.reads_need_token)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not the server's.
    Wrong,
}

impl Refusal {
    /// Every reason, in the order of [`AuthFailures`]'s counters.
    pub(crate) const ALL: [Refusal; 2] = [Refusal::Missing, Refusal::Wrong];

    /// The reason's label in `/metrics` and in the log.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }
}

/// Refused requests, by [`Refusal`].
#[derive(Debug, Default)]
pub(crate) struct AuthFailures([AtomicU64; 2]);

impl AuthFailures {
    /// How many requests were refused for `reason`.
    pub(crate) fn get(&self, reason: Refusal) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }

    fn count(&self, reason: Refusal) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// What the access check reads.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) access: AdminAccess,
    pub(crate) failures: Arc<AuthFailures>,
}

/// Lets a request through if the access rule allows it; otherwise answers 401.
pub(crate) async fn check(
    State(gate): State<Arc<Gate>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = gate.access.token.as_deref() else {
        return next.run(request).await;
    };
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if request.uri().path() == "/healthz" || (read && !gate.access.reads_need_token) {
        return next.run(request).await;
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let refusal = match offered {
        None => Refusal::Missing,
        Some(offered) if same(offered.as_bytes(), token.as_bytes()) => {
            return next.run(request).await;
        }
        Some(_) => Refusal::Wrong,
    };
    gate.failures.count(refusal);
    tracing::warn!(
        %peer,
        method = %request.method(),
        path = request.uri().path(),
        reason = refusal.name(),
        "admin API request refused"
    );
    let message = match refusal {
        Refusal::Missing => "this request needs the admin token: Authorization: Bearer <token>",
        Refusal::Wrong => "the admin token is not the server's",
    };
    let mut response = crate::api::error(StatusCode::UNAUTHORIZED, message.to_owned());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"peregrine\""),
    );
    response
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `a` and `b` are equal, in time that depends on their length only: a guess that
/// shares a prefix with the token is refused as fast as one that does not.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_gives_its_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn tokens_match_only_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same(b"", b"x"));
    }
}
