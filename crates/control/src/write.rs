//! `PUT` and `DELETE /v1/leases/{ip}`: an operator's writes of one lease. Each goes through the
//! journal (and to the failover partner) before it is answered; an address another client
//! holds is refused with 409.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peregrine_dataplane::unix_now;
use peregrine_migrate::{HwAddr, Lease, LeaseState};
use serde::Deserialize;

use crate::api::{ApiState, error, lease_view};
use crate::import::WriteError;

/// The body of `PUT /v1/leases/{ip}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    /// The client's hardware address, `aa:bb:cc:dd:ee:ff`.
    mac: String,
    /// Its client identifier (option 61, type byte included), in hex.
    client_id: Option<String>,
    /// The host name it goes by.
    hostname: Option<String>,
    /// Seconds from now the lease runs; or
    valid_lifetime: Option<u32>,
    /// when it ends (UNIX seconds).
    expires: Option<u64>,
}

/// `PUT /v1/leases/{ip}`: the address leased to the client the body names, from now.
pub(crate) async fn put(
    State(state): State<Arc<ApiState>>,
    Path(ip): Path<String>,
    body: Bytes,
) -> Response {
    let lease = match lease(&ip, &body, unix_now()) {
        Ok(l) => l,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    write(&state, move |importer, engine| importer.put(engine, lease)).await
}

/// `DELETE /v1/leases/{ip}`: the lease of the address ended now, as if its client released it.
pub(crate) async fn delete(State(state): State<Arc<ApiState>>, Path(ip): Path<String>) -> Response {
    let Ok(address) = ip.parse::<Ipv4Addr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{ip:?} is not an IPv4 address"),
        );
    };
    write(&state, move |importer, engine| {
        importer.revoke(engine, unix_now(), address)
    })
    .await
}

/// Makes the change `change` with the engine in use (no reload meanwhile), off the event loop;
/// answers the lease as stored.
async fn write(
    state: &Arc<ApiState>,
    change: impl FnOnce(
        &crate::Importer,
        &peregrine_engine::Engine,
    ) -> Result<peregrine_engine::BindingEvent, WriteError>
    + Send
    + 'static,
) -> Response {
    let Some(importer) = state.importer.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this server keeps no [leases] directory: a lease written would not survive a \
             restart"
                .into(),
        );
    };
    let shared = state.engine.clone();
    let written = tokio::task::spawn_blocking(move || {
        let engine = shared.write();
        change(&importer, &engine).map(|e| lease_view(&engine, e.scope, e.address, &e.binding))
    });
    match written.await {
        Ok(Ok(view)) => Json(view).into_response(),
        Ok(Err(WriteError::Conflict(why))) => error(StatusCode::CONFLICT, why),
        Ok(Err(WriteError::Invalid(why))) => error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Ok(Err(WriteError::NotFound(why))) => error(StatusCode::NOT_FOUND, why),
        Ok(Err(WriteError::NotDurable(why))) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("lease write failed: {e}"),
        ),
    }
}

/// The lease `PUT /v1/leases/{ip}` asks for, at `now`; or what is wrong with the request.
fn lease(ip: &str, body: &[u8], now: u64) -> Result<Lease, String> {
    let address = ip
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    let b: LeaseBody = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let mac = hex_bytes(&crate::search::mac(&b.mac)?);
    let client_id = b
        .client_id
        .as_deref()
        .map(|c| crate::search::client_id(c).map(|h| hex_bytes(&h)))
        .transpose()?;
    let lifetime = match (b.valid_lifetime, b.expires) {
        (Some(v), None) => u64::from(v),
        (None, Some(e)) => e.saturating_sub(now),
        _ => return Err("body: one of valid_lifetime or expires".into()),
    };
    if lifetime == 0 {
        return Err("the lease ends before it begins".into());
    }
    Ok(Lease {
        hardware: Some(HwAddr {
            htype: 1,
            bytes: mac,
        }),
        client_id,
        cltt: Some(now),
        expires: Some(now + lifetime),
        valid_lifetime: u32::try_from(lifetime).ok(),
        hostname: b.hostname,
        ..Lease::new(address, LeaseState::Active)
    })
}

/// Bytes of `hex` (an even number of hex digits, as `search::mac` and `search::client_id`
/// give).
fn hex_bytes(hex: &str) -> Vec<u8> {
    let digits: Vec<u8> = hex
        .bytes()
        .filter_map(|c| (c as char).to_digit(16).map(|d| d as u8))
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}
