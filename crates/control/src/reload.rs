//! `POST /v1/config/reload`: the server reads its configuration file again.
//!
//! The control plane only asks; the server ([`Reload`]) validates the file, refuses what only a
//! restart can change, and replaces the engine between the workers' bursts.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::{ApiState, error};

/// Reloads the server's configuration file (the admin API's `POST /v1/config/reload`, and
/// SIGHUP).
pub trait Reload: std::fmt::Debug + Send + Sync {
    /// Reads the file again and puts it in force, or says why not (the configuration in
    /// force stays).
    fn reload(&self) -> Result<Reloaded, ReloadError>;
}

/// What a reload put in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The file read.
    pub file: String,
    /// Scopes configured now.
    pub scopes: usize,
    /// Scopes added, by name.
    pub added: Vec<String>,
    /// Scopes removed, by name.
    pub removed: Vec<String>,
    /// Bindings carried into the new configuration's pools.
    pub bindings: u64,
    /// Bindings of addresses in no pool any more, kept aside while their client may hold them.
    pub retired: u64,
    /// How long the workers were stopped, microseconds.
    pub paused_us: u64,
}

/// Why a reload put nothing in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// The file is not a valid configuration: every error, as `check-config` prints them.
    Invalid(String),
    /// It changes what only a restart can (interfaces, backend, workers...): what, and why.
    NeedsRestart(String),
    /// The workers did not all stop in time; nothing changed, try again.
    Busy(String),
    /// Another reason (the engine could not be built).
    Failed(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Invalid(why)
            | ReloadError::NeedsRestart(why)
            | ReloadError::Busy(why)
            | ReloadError::Failed(why) => f.write_str(why),
        }
    }
}

pub(crate) async fn reload(State(state): State<Arc<ApiState>>) -> Response {
    let Some(reload) = state.reload.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "this server was not started from a configuration file".into(),
        );
    };
    // Reading the file and waiting for the workers block: off the event loop.
    match tokio::task::spawn_blocking(move || reload.reload()).await {
        Ok(Ok(reloaded)) => Json(reloaded).into_response(),
        Ok(Err(e)) => {
            let status = match e {
                ReloadError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReloadError::NeedsRestart(_) => StatusCode::CONFLICT,
                ReloadError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
                ReloadError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}"),
        ),
    }
}
