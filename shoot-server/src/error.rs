//! The REST envelope and the one table mapping engine error kinds to HTTP statuses.
//!
//! Every response is `{"success": bool, "data": …, "message": string|null, "errorCode":
//! string|null}`. Engine errors keep their stable code; backend causes are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shoot_core::{Error, ErrorCode, ErrorKind};
use utoipa::ToSchema;

/// The HTTP status of an error kind. The single source of truth for REST (STOMP reuses the
/// code string only).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        // `ErrorKind` is non-exhaustive: a kind added later is treated as a server bug
        // until it gets its own row here (the table test lists every known kind).
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A REST error: status, stable code and a client-safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable error code (`errorCode`).
    pub code: &'static str,
    /// Client-safe message.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `VALIDATION_FAILED`.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::from_code(ErrorCode::ValidationFailed, message)
    }

    /// An error from an engine code with a message.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::new(status_of(code.kind()), code.as_str(), message)
    }

    /// 401 `INVALID_TOKEN`.
    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::from_code(ErrorCode::InvalidToken, message)
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn payload_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "request body too large",
        )
    }

    /// 404 for an unknown route.
    pub fn route_not_found() -> ApiError {
        ApiError::from_code(ErrorCode::NotFound, "no such endpoint")
    }

    /// 500 with the cause logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::from_code(ErrorCode::InternalError, "internal error")
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = status_of(e.kind());
        if status.is_server_error() {
            // The cause chain may hold paths, SQL or hosts: log it, send only the safe message.
            let cause = std::error::Error::source(&e).map(|s| s.to_string());
            tracing::error!(code = %e.code(), message = e.message(), cause = cause.as_deref(), "request failed");
        }
        ApiError {
            status,
            code: e.code().as_str(),
            message: e.message().to_owned(),
        }
    }
}

/// The envelope, for OpenAPI documentation and for serialising.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// The payload (null on error).
    pub data: Option<T>,
    /// Human-readable message (errors, some confirmations).
    pub message: Option<String>,
    /// Stable error code on failure.
    pub error_code: Option<String>,
}

/// An error envelope (for OpenAPI).
pub type ErrorEnvelope = Envelope<()>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Envelope::<()> {
            success: false,
            data: None,
            message: Some(self.message),
            error_code: Some(self.code.to_owned()),
        };
        (self.status, Json(body)).into_response()
    }
}

/// A success envelope with its status (200 unless created).
#[derive(Debug)]
pub struct ApiResponse<T> {
    status: StatusCode,
    data: T,
    message: Option<String>,
}

impl<T: Serialize> ApiResponse<T> {
    /// 200 with `data`.
    pub fn ok(data: T) -> ApiResponse<T> {
        ApiResponse {
            status: StatusCode::OK,
            data,
            message: None,
        }
    }

    /// 201 with `data`.
    pub fn created(data: T) -> ApiResponse<T> {
        ApiResponse {
            status: StatusCode::CREATED,
            data,
            message: None,
        }
    }

    /// Adds a message.
    pub fn with_message(mut self, message: impl Into<String>) -> ApiResponse<T> {
        self.message = Some(message.into());
        self
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            success: true,
            data: Some(self.data),
            message: self.message,
            error_code: None,
        };
        (self.status, Json(body)).into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<ApiResponse<T>, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: ErrorKind, expect: u16) {
        assert_eq!(status_of(kind).as_u16(), expect, "{kind:?}");
    }

    #[test]
    fn every_kind_has_its_status() {
        check(ErrorKind::InvalidInput, 400);
        check(ErrorKind::Unauthenticated, 401);
        check(ErrorKind::Forbidden, 403);
        check(ErrorKind::NotFound, 404);
        check(ErrorKind::Conflict, 409);
        check(ErrorKind::RateLimited, 429);
        check(ErrorKind::Unavailable, 503);
        check(ErrorKind::Internal, 500);
    }

    #[test]
    fn every_code_maps_through_its_kind() {
        for code in ErrorCode::ALL {
            let e = ApiError::from(Error::new(*code, "x"));
            assert_eq!(e.status, status_of(code.kind()), "{code}");
            assert_eq!(e.code, code.as_str());
        }
        assert_eq!(
            ApiError::from(Error::new(ErrorCode::NotRoomParticipant, "x")).status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ApiError::from(Error::new(ErrorCode::UnknownReaction, "x")).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(Error::new(ErrorCode::AccountLocked, "x")).status,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            ApiError::from(Error::new(ErrorCode::TokenReused, "x")).status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn backend_causes_are_not_sent() {
        let e = ApiError::from(Error::backend("sqlite", "disk full at /var/secret".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!e.message.contains("secret"));
    }
}
