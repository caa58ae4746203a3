//! `GET /v1/leases`: the leases that match what the operator knows of a subscriber (hardware
//! address, client id, host name, the relay's circuit or remote id, the scope), in address
//! order, a page at a time.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::{ApiState, LeaseView, error, lease_view, percent_decode};

/// Leases a page holds unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// What a search asks: every field given must match.
#[derive(Debug, Default)]
struct Filter {
    scope: Option<String>,
    mac: Option<String>,
    client_id: Option<String>,
    hostname: Option<String>,
    circuit_id: Option<String>,
    remote_id: Option<String>,
    after: Option<Ipv4Addr>,
    limit: usize,
}

impl Filter {
    /// The query string's fields; an unknown field, or a value that is not one, is an error
    /// naming it.
    fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut f = Filter {
            limit: DEFAULT_LIMIT,
            ..Filter::default()
        };
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match key {
                "scope" => f.scope = Some(value),
                "mac" => f.mac = Some(mac(&value)?),
                "client-id" => f.client_id = Some(client_id(&value)?),
                "hostname" => f.hostname = Some(value),
                "circuit-id" => f.circuit_id = Some(value),
                "remote-id" => f.remote_id = Some(value),
                "after" => {
                    f.after = Some(
                        value
                            .parse()
                            .map_err(|_| format!("after: {value:?} is not an IPv4 address"))?,
                    );
                }
                "limit" => {
                    f.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            format!("limit: {value:?} is not a number from 1 to {MAX_LIMIT}")
                        })?;
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?}: scope, mac, client-id, hostname, circuit-id, \
                         remote-id, after, limit"
                    ));
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, lease: &LeaseView) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        same(&self.scope, Some(&lease.scope))
            && same(&self.mac, Some(&lease.mac))
            && same(
                &self.client_id,
                lease
                    .client
                    .as_ref()
                    .filter(|c| c.kind == "client_id")
                    .map(|c| c.key.as_str()),
            )
            && same(&self.hostname, lease.said.hostname.as_deref())
            && same(&self.circuit_id, lease.said.circuit_id.as_deref())
            && same(&self.remote_id, lease.said.remote_id.as_deref())
    }
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), in lower case as leases show it.
pub(crate) fn mac(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(parts.join(":").to_ascii_lowercase())
    } else {
        Err(format!(
            "mac: {text:?} is not a hardware address (aa:bb:cc:dd:ee:ff)"
        ))
    }
}

/// A client id in hex, as leases show it (`01aabbccddeeff`, colons allowed).
pub(crate) fn client_id(text: &str) -> Result<String, String> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if !hex.is_empty() && hex.len().is_multiple_of(2) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(format!("client-id: {text:?} is not hexadecimal bytes"))
    }
}

/// A page of leases, and where the next one starts.
#[derive(Debug, Serialize)]
struct Page {
    leases: Vec<LeaseView>,
    /// The `after` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Ipv4Addr>,
}

/// `GET /v1/leases?…`: the matching leases after `after`, at most `limit`, by address. Every
/// lease is looked at (each pool shard locked briefly in turn): a query on millions of leases
/// takes a moment of the control plane's thread, none of the workers'.
pub(crate) async fn leases(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = match Filter::parse(query.as_deref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let engine = state.engine.load();
    if let Some(scope) = &filter.scope
        && engine.scope_id(scope).is_none()
    {
        return error(
            StatusCode::NOT_FOUND,
            format!("scope: no scope named {scope:?}"),
        );
    }
    let after = filter.after.map_or(0, |a| u64::from(u32::from(a)) + 1);
    // The lowest `limit + 1` matches, whatever the order the pools are walked in: one more
    // than a page says whether another page follows. Memory stays a page's.
    let mut lowest = std::collections::BinaryHeap::new();
    engine.for_each_binding(|scope, address, binding| {
        let beyond = lowest.len() > filter.limit
            && lowest
                .peek()
                .is_some_and(|top: &ByAddress| address > top.0.address);
        if u64::from(u32::from(address)) < after || binding.client.is_none() || beyond {
            return;
        }
        let view = lease_view(&engine, scope, address, binding);
        if filter.matches(&view) {
            lowest.push(ByAddress(view));
            if lowest.len() > filter.limit + 1 {
                lowest.pop();
            }
        }
    });
    let mut found: Vec<LeaseView> = lowest.into_sorted_vec().into_iter().map(|l| l.0).collect();
    let next = (found.len() > filter.limit).then(|| found[filter.limit - 1].address);
    found.truncate(filter.limit);
    Json(Page {
        leases: found,
        next,
    })
    .into_response()
}

/// A lease ordered by its address alone.
struct ByAddress(LeaseView);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        self.0.address == other.0.address
    }
}

impl Eq for ByAddress {}

impl PartialOrd for ByAddress {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByAddress {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.address.cmp(&other.0.address)
    }
}
