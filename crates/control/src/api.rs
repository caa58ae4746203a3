//! The HTTP routes: metrics exposition, health check, the JSON API for pools and leases, and
//! the scopes' administrative state.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use peregrine_dataplane::SharedEngine;
use peregrine_engine::{ClientInfo, Engine, ScopeId};
use peregrine_migrate::LocalZone;
use peregrine_migrate::report::Format;
use peregrine_wire::dhcp::RelayAgentInfo;

use crate::import::{ImportError, Importer};
use peregrine_stats::FailoverStatus;
use prometheus::{Registry, TEXT_FORMAT, TextEncoder};
use serde::Serialize;

/// What the handlers read.
#[derive(Debug)]
pub(crate) struct ApiState {
    /// Holds the collector that reads the workers and the engine.
    pub(crate) registry: Registry,
    /// The engine in use: loaded per request, as a reload may replace it.
    pub(crate) engine: Arc<SharedEngine>,
    /// Lease imports into the running server; `None` without a lease journal.
    pub(crate) importer: Option<Arc<Importer>>,
    /// The failover link; `None` without a partner.
    pub(crate) failover: Option<Arc<FailoverStatus>>,
    /// Where scope states are kept across restarts; `None` without a lease directory.
    pub(crate) scope_states: Option<Arc<peregrine_store::ScopeStateFile>>,
    /// Reloads the configuration file.
    pub(crate) reload: Option<Arc<dyn crate::Reload>>,
    /// Asks the lease journal for a snapshot.
    pub(crate) snapshot: Option<peregrine_store::SnapshotTrigger>,
}

pub(crate) fn router(state: Arc<ApiState>, gate: Arc<crate::auth::Gate>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/pools", get(pools))
        .route("/v1/leases", get(crate::search::leases))
        .route("/v1/leases/export/{format}", get(export))
        .route(
            "/v1/leases/{ip}",
            get(lease)
                .put(crate::write::put)
                .delete(crate::write::delete),
        )
        .route(
            "/v1/leases/import/{format}",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/v1/scopes", get(scopes))
        .route("/v1/scopes/{name}/activate", post(activate))
        .route("/v1/scopes/{name}/deactivate", post(deactivate))
        .route("/v1/failover", get(failover))
        .route("/v1/failover/partner-down", post(partner_down))
        .route("/v1/config/reload", post(crate::reload::reload))
        .route("/v1/journal/snapshot", post(snapshot))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            crate::auth::check,
        ))
}

async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    match TextEncoder::new().encode_to_string(&state.registry.gather()) {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// The API's `OpenAPI` document, `docs/openapi.json`, as built in.
const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Utilisation of one pool, as `/v1/pools` lists it.
#[derive(Debug, Serialize)]
struct PoolView {
    scope: String,
    pool: usize,
    total: u64,
    active: u64,
    offered: u64,
    abandoned: u64,
    held_back: u64,
    reserved: u64,
    free: u64,
}

async fn pools(State(state): State<Arc<ApiState>>) -> Json<Vec<PoolView>> {
    Json(
        state
            .engine
            .load()
            .pool_stats()
            .into_iter()
            .map(|p| PoolView {
                scope: p.scope_name,
                pool: p.pool,
                total: p.total,
                active: p.active,
                offered: p.offered,
                abandoned: p.abandoned,
                held_back: p.held_back,
                reserved: p.reserved,
                free: p.free,
            })
            .collect(),
    )
}

/// `GET /v1/leases/export/{format}`: every lease the running server holds, as Kea's CSV or
/// JSON, by address (as `peregrine leases export` writes from a stopped server's directory).
/// Built in memory (about 150 bytes a lease) on the control plane's thread.
async fn export(State(state): State<Arc<ApiState>>, Path(format): Path<String>) -> Response {
    use peregrine_migrate::export::{self, ExportFormat};
    let format = match format.parse::<ExportFormat>() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::NOT_FOUND, e),
    };
    let mut body = Vec::new();
    let engine = state.engine.load();
    let names = |s: ScopeId| engine.scope_name(s).unwrap_or("");
    let exported = match export::write(&engine, names, format, &mut body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    tracing::info!(
        format = format.as_str(),
        written = exported.written,
        not_written = exported.not_written,
        "leases exported through the admin API"
    );
    let content_type = match format {
        ExportFormat::KeaCsv => "text/csv",
        ExportFormat::Json => "application/json",
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The largest lease file `POST /v1/leases/import` takes: about 5 M Kea CSV lines.
const MAX_IMPORT_BYTES: usize = 1 << 30;

/// `POST /v1/leases/import/{format}` with the lease file as the body: the import's report
/// once every imported lease is durable.
async fn import(
    State(state): State<Arc<ApiState>>,
    Path(format): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let format = match format.parse::<Format>() {
        Ok(f) => f,
        Err(e) => return error(StatusCode::NOT_FOUND, e),
    };
    // `?timezone=ZONE`: the zone of times the file gives without one (UTC by default).
    let zone = query
        .iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timezone="))
        .map_or_else(|| Ok(LocalZone::default()), |z| percent_decode(z)?.parse());
    let zone = match zone {
        Ok(z) => z,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(importer) = state.importer.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this server keeps no [leases] directory: imported leases would not survive a \
             restart"
                .into(),
        );
    };
    let shared = state.engine.clone();
    // Parsing, installing and waiting for the journal block: off the event loop, so that
    // /metrics keeps answering during a large import. No reload starts meanwhile.
    let imported = tokio::task::spawn_blocking(move || {
        let engine = shared.write();
        importer.import(&engine, format, &zone, &body)
    });
    match imported.await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(ImportError::NotDurable(why))) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        Ok(Err(ImportError::Unreadable(why))) => error(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("import failed: {e}"),
        ),
    }
}

/// The longest `POST /v1/journal/snapshot` waits for the compaction it asked for.
const SNAPSHOT_PATIENCE: std::time::Duration = std::time::Duration::from_mins(5);

/// `POST /v1/journal/snapshot`: the journal sealed and folded into a snapshot now (as it is
/// when it reaches `[leases] compact-after`), answered once the snapshot is written.
async fn snapshot(State(state): State<Arc<ApiState>>) -> Response {
    let Some(trigger) = state.snapshot.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this server keeps no [leases] directory".into(),
        );
    };
    match tokio::task::spawn_blocking(move || trigger.snapshot(SNAPSHOT_PATIENCE)).await {
        Ok(Ok(peregrine_store::Snapshot::Written { records, took })) => {
            tracing::info!(records, "snapshot written through the admin API");
            Json(SnapshotView {
                snapshot: "written",
                records: Some(records),
                ms: Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
            })
            .into_response()
        }
        Ok(Ok(peregrine_store::Snapshot::NothingNew)) => Json(SnapshotView {
            snapshot: "nothing new since the last",
            records: None,
            ms: None,
        })
        .into_response(),
        Ok(Err(why)) => error(StatusCode::SERVICE_UNAVAILABLE, why),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("snapshot failed: {e}"),
        ),
    }
}

/// What `POST /v1/journal/snapshot` did.
#[derive(Debug, Serialize)]
struct SnapshotView {
    snapshot: &'static str,
    /// Leases in the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<u64>,
    /// How long the compaction took.
    #[serde(skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
}

/// A query value with its `%XX` escapes (and `+` for a space) decoded.
pub(crate) fn percent_decode(text: &str) -> Result<String, String> {
    let bad = || format!("query value {text:?} is not percent-encoded UTF-8");
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'%' => {
                let hex = [bytes.next().ok_or_else(bad)?, bytes.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                u8::from_str_radix(hex, 16).map_err(|_| bad())?
            }
            b'+' => b' ',
            b => b,
        });
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// A scope's administrative state, as `/v1/scopes` lists it.
#[derive(Debug, Serialize)]
struct ScopeView {
    scope: String,
    /// `active` (serving) or `inactive` (silent: its clients are left to another server).
    state: &'static str,
}

fn scope_view(name: &str, active: bool) -> ScopeView {
    ScopeView {
        scope: name.to_owned(),
        state: if active { "active" } else { "inactive" },
    }
}

async fn scopes(State(state): State<Arc<ApiState>>) -> Json<Vec<ScopeView>> {
    Json(
        state
            .engine
            .load()
            .scope_states()
            .into_iter()
            .map(|(name, active)| scope_view(name, active))
            .collect(),
    )
}

async fn activate(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    set_scope(&state, &name, true)
}

async fn deactivate(State(state): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    set_scope(&state, &name, false)
}

/// Switches a scope on or off at run time, for migrations: deactivate on the old server,
/// import, activate on the new one. With a lease directory the change is durable before the
/// answer, and a restart keeps it over the configuration's `state`; a change that cannot be
/// kept is undone and answered 500.
fn set_scope(state: &ApiState, name: &str, active: bool) -> Response {
    // Held until the change is kept: a reload meanwhile would carry the state half made.
    let engine = state.engine.write();
    let Some(was) = engine
        .scope_states()
        .into_iter()
        .find_map(|(n, a)| (n == name).then_some(a))
    else {
        return error(StatusCode::NOT_FOUND, format!("no scope named {name:?}"));
    };
    engine.set_scope_active(name, active);
    if let Some(file) = &state.scope_states
        && let Err(e) = file.write(&engine.scope_overrides())
    {
        engine.set_scope_active(name, was);
        tracing::error!(scope = name, error = %e, "scope state not kept: change undone");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the change could not be kept, and is undone: {e}"),
        );
    }
    tracing::info!(
        scope = name,
        active,
        "scope state changed through the admin API"
    );
    Json(scope_view(name, active)).into_response()
}

/// The failover relationship, as `/v1/failover` shows it.
#[derive(Debug, Serialize)]
struct FailoverJson {
    role: &'static str,
    state: &'static str,
    /// UNIX seconds.
    since: u64,
    partner_state: Option<&'static str>,
    connected: bool,
    /// UNIX seconds.
    last_contact: Option<u64>,
    /// The partner's clock minus ours, seconds.
    clock_skew: Option<i64>,
    unacked_updates: usize,
    mclt: Option<u32>,
    updates_sent: u64,
    updates_accepted: u64,
    updates_rejected: u64,
    /// The partner's updates refused here, by reason.
    rejected_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// Ours the partner refused, by reason.
    refused_by_partner: std::collections::BTreeMap<&'static str, u64>,
    connections: u64,
    connections_refused: u64,
    /// Connections closed or refused by this server, by reason.
    connections_refused_by_reason: std::collections::BTreeMap<&'static str, u64>,
    queue_dropped: u64,
    /// The last PARTNER-DOWN request's outcome.
    partner_down: Option<String>,
    /// From a lease's change reaching the link to the partner's acknowledgement.
    replication_lag: LagJson,
    pools: Vec<FailoverPoolJson>,
}

/// A latency distribution, milliseconds.
#[derive(Debug, Serialize)]
struct LagJson {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// A pool's addresses by owner.
#[derive(Debug, Serialize)]
struct FailoverPoolJson {
    scope: String,
    pool: usize,
    /// Available to the primary.
    free: u64,
    /// Available to the secondary.
    backup: u64,
    active: u64,
}

fn failover_json(state: &ApiState, status: &FailoverStatus) -> FailoverJson {
    use std::sync::atomic::Ordering::Relaxed;
    let v = status.view();
    let engine = state.engine.load();
    FailoverJson {
        role: v.role,
        state: v.state,
        since: v.since,
        partner_state: v.partner_state,
        connected: v.connected,
        last_contact: v.last_contact,
        clock_skew: v.clock_skew,
        unacked_updates: v.unacked,
        mclt: v.mclt,
        updates_sent: status.updates_sent.load(Relaxed),
        updates_accepted: status.updates_accepted.load(Relaxed),
        updates_rejected: status.updates_rejected.load(Relaxed),
        rejected_by_reason: status.rejected.read(),
        refused_by_partner: status.refused_by_partner.read(),
        connections: status.connections.load(Relaxed),
        connections_refused: status.connections_refused.load(Relaxed),
        connections_refused_by_reason: status.connections_closed.read(),
        queue_dropped: status.queue_dropped.load(Relaxed),
        partner_down: v.partner_down,
        replication_lag: {
            let h = status.lag.read();
            // Nanoseconds to milliseconds, for people.
            #[allow(clippy::cast_precision_loss)]
            let ms = |ns: u64| ns as f64 / 1e6;
            LagJson {
                count: h.len(),
                p50_ms: ms(h.value_at_quantile(0.5)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                max_ms: ms(h.max()),
            }
        },
        pools: engine
            .pool_stats()
            .into_iter()
            .filter(|p| engine.is_shared(p.scope))
            .map(|p| FailoverPoolJson {
                scope: p.scope_name,
                pool: p.pool,
                free: p.free - p.backup,
                backup: p.backup,
                active: p.active,
            })
            .collect(),
    }
}

/// `GET /v1/failover`: our state and the partner's, the link, the updates, each pool's split.
async fn failover(State(state): State<Arc<ApiState>>) -> Response {
    match &state.failover {
        Some(status) => Json(failover_json(&state, status)).into_response(),
        None => error(StatusCode::NOT_FOUND, "no [failover] configured".into()),
    }
}

/// `POST /v1/failover/partner-down`: the operator says the partner is down (D12 §9.4: only by
/// fiat). Refused while the partner is in contact. Answers once the link thread has acted,
/// with the relationship as `/v1/failover` shows it.
async fn partner_down(State(state): State<Arc<ApiState>>) -> Response {
    let Some(status) = state.failover.clone() else {
        return error(StatusCode::NOT_FOUND, "no [failover] configured".into());
    };
    status.request_partner_down();
    // The link thread acts within milliseconds; a loaded machine gets five seconds.
    for _ in 0..500 {
        if !status.partner_down_pending() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let view = failover_json(&state, &status);
    tracing::warn!(outcome = ?view.partner_down, "PARTNER-DOWN requested through the admin API");
    if view.state == "PARTNER-DOWN" {
        Json(view).into_response()
    } else {
        error(
            StatusCode::CONFLICT,
            format!(
                "not in PARTNER-DOWN ({}): {}",
                view.state,
                view.partner_down.unwrap_or_default()
            ),
        )
    }
}

/// The binding of one address, as `/v1/leases/{ip}` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseView {
    pub(crate) address: Ipv4Addr,
    pub(crate) scope: String,
    pub(crate) state: &'static str,
    /// `aa:bb:cc:dd:ee:ff`.
    pub(crate) mac: String,
    /// The client that holds or last held the address; absent if none.
    pub(crate) client: Option<ClientView>,
    /// Seconds since the UNIX epoch: end of the lease, offer hold or probation.
    pub(crate) expires: u64,
    /// Seconds since the UNIX epoch: the client's last transaction.
    pub(crate) cltt: u64,
    /// What the client said of itself when it was last granted the address, and the relay's
    /// option 82 then (text, or `0x` and hex if not printable); each absent if not sent.
    #[serde(flatten)]
    pub(crate) said: ClientSaid,
}

/// The kept client options of a lease, as `/v1/leases/{ip}` shows them.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ClientSaid {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) vendor_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) remote_id: Option<String>,
}

impl ClientSaid {
    fn of(info: &ClientInfo) -> ClientSaid {
        let rai = info
            .relay_agent_info()
            .and_then(|r| RelayAgentInfo::new_checked(r).ok());
        ClientSaid {
            hostname: info.host_name().map(text_or_hex),
            vendor_class: info.vendor_class().map(text_or_hex),
            circuit_id: rai
                .as_ref()
                .and_then(RelayAgentInfo::circuit_id)
                .map(text_or_hex),
            remote_id: rai
                .as_ref()
                .and_then(RelayAgentInfo::remote_id)
                .map(text_or_hex),
        }
    }
}

/// `bytes` as text if printable ASCII, else `0x` and hex (as the config writes such values).
fn text_or_hex(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!("0x{}", hex(bytes, ""))
    }
}

/// A client key: how the engine identifies the client.
#[derive(Debug, Serialize)]
pub(crate) struct ClientView {
    /// `client_id` (option 61) or `hardware` (htype then chaddr).
    pub(crate) kind: &'static str,
    /// The key's bytes in lower-case hex (a digest for identities over 30 bytes).
    pub(crate) key: String,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    error: String,
}

pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorView { error: message })).into_response()
}

fn hex(bytes: &[u8], separator: &str) -> String {
    let mut out = String::with_capacity(bytes.len() * (2 + separator.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

async fn lease(State(state): State<Arc<ApiState>>, Path(ip): Path<String>) -> Response {
    let Ok(address) = ip.parse::<Ipv4Addr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{ip:?} is not an IPv4 address"),
        );
    };
    let engine = state.engine.load();
    let Some((scope, binding)) = engine.binding(address) else {
        return error(StatusCode::NOT_FOUND, format!("{address} is in no pool"));
    };
    Json(lease_view(&engine, scope, address, &binding)).into_response()
}

/// What `/v1/leases` shows of the binding of `address` in `scope`.
pub(crate) fn lease_view(
    engine: &Engine,
    scope: ScopeId,
    address: Ipv4Addr,
    binding: &peregrine_engine::Binding,
) -> LeaseView {
    LeaseView {
        address,
        // A binding the engine reports is always in one of its scopes; the fallback only
        // keeps a lookup from failing if that ever changes.
        scope: engine
            .scope_name(scope)
            .map_or_else(|| format!("#{}", scope.0), str::to_owned),
        state: binding.state.as_str(),
        mac: hex(&binding.mac, ":"),
        client: binding.client.map(|k| ClientView {
            kind: if k.is_client_id() {
                "client_id"
            } else {
                "hardware"
            },
            key: hex(k.as_bytes(), ""),
        }),
        expires: binding.expires,
        cltt: binding.cltt,
        said: if binding.client.is_some() {
            ClientSaid::of(&binding.info)
        } else {
            ClientSaid::default()
        },
    }
}
