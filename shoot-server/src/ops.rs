//! Operations endpoints: `/health` (liveness), `/ready` (every backend answers), `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use shoot_core::{MessageId, RoomId, UserId};
use utoipa::ToSchema;

use crate::error::Envelope;
use crate::stack::Readiness;
use crate::state::AppState;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness / readiness report.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `UP` or `DOWN`.
    pub status: String,
    /// Per-backend result (`UP` or a short reason), readiness only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
}

/// One backend check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// Backend name.
    pub name: String,
    /// `UP` or `DOWN`.
    pub status: String,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Envelope<HealthView>)))]
pub async fn health() -> Response {
    let body = Envelope {
        success: true,
        data: Some(HealthView {
            status: "UP".into(),
            checks: vec![],
        }),
        message: None,
        error_code: None,
    };
    Json(body).into_response()
}

async fn check<F, T>(name: &str, fut: F) -> CheckView
where
    F: Future<Output = shoot_core::PortResult<T>>,
{
    let (status, error) = match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(Ok(_)) => ("UP", None),
        Ok(Err(e)) => {
            tracing::warn!(backend = name, error = %e, "readiness check failed");
            ("DOWN", Some("backend error".to_owned()))
        }
        Err(_) => ("DOWN", Some("timed out".to_owned())),
    };
    CheckView {
        name: name.to_owned(),
        status: status.to_owned(),
        error,
    }
}

/// Readiness: each configured backend (`sqlite`, `postgres`, `mongodb`, `log`, `kafka`,
/// `redis`) answers a cheap query within 2 s. A router built without the probes of
/// [`serve`](crate::serve) checks the stores through the engine's ports instead.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = Envelope<HealthView>), (status = 503, body = Envelope<HealthView>)))]
pub async fn ready(
    State(state): State<AppState>,
    readiness: Option<Extension<Arc<Readiness>>>,
) -> Response {
    let checks = match readiness {
        Some(Extension(r)) => r
            .check(PROBE_TIMEOUT)
            .await
            .into_iter()
            .map(|(name, result)| {
                let error = result.err().map(|e| {
                    tracing::warn!(backend = name, error = %e, "readiness check failed");
                    if e == "timed out" {
                        e
                    } else {
                        "backend error".to_owned()
                    }
                });
                CheckView {
                    name: name.to_owned(),
                    status: if error.is_none() { "UP" } else { "DOWN" }.to_owned(),
                    error,
                }
            })
            .collect(),
        None => {
            let p = state.engine.ports();
            vec![
                check("users", p.users.get_user(UserId(0))).await,
                check("rooms", p.rooms.get_room(RoomId(0))).await,
                check("messages", p.messages.get_message(MessageId(0))).await,
                check("ephemeral", p.ephemeral.get("shoot:ready-probe")).await,
            ]
        }
    };
    let up = checks.iter().all(|c| c.status == "UP") && !state.shutdown.is_cancelled();
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Envelope {
        success: up,
        data: Some(HealthView {
            status: if up { "UP" } else { "DOWN" }.into(),
            checks,
        }),
        message: (!up).then(|| "not ready".to_owned()),
        error_code: (!up).then(|| {
            shoot_core::ErrorCode::BackendUnavailable
                .as_str()
                .to_owned()
        }),
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
