//! `/notifications/*`.

use axum::extract::State;
use serde::Deserialize;
use shoot_core::NotificationId;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{ApiResponse, ApiResult, Envelope, ErrorEnvelope};
use crate::rest::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{CountView, NotificationView};

/// `?limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size (default 20, max 100).
    pub limit: Option<usize>,
    /// Entries to skip.
    pub offset: Option<usize>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(PageParams),
    responses((status = 200, body = Envelope<Vec<NotificationView>>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Vec<NotificationView>> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let list = state
        .engine
        .notifications(actor, limit, q.offset.unwrap_or(0))
        .await?;
    Ok(ApiResponse::ok(
        list.iter().map(NotificationView::from).collect(),
    ))
}

/// Number of unread notifications.
#[utoipa::path(get, path = "/api/v1/notifications/unread/count", tag = "notifications",
    responses((status = 200, body = Envelope<CountView>)), security(("bearer" = [])))]
pub async fn unread_count(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<CountView> {
    Ok(ApiResponse::ok(CountView {
        count: state.engine.unread_notification_count(actor).await?,
    }))
}

/// Mark one notification read.
#[utoipa::path(put, path = "/api/v1/notifications/{id}/read", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<NotificationId>,
) -> ApiResult<bool> {
    state.engine.mark_notification_read(actor, id).await?;
    Ok(ApiResponse::ok(true))
}

/// Mark every notification read; returns how many changed.
#[utoipa::path(put, path = "/api/v1/notifications/read/all", tag = "notifications",
    responses((status = 200, body = Envelope<CountView>)), security(("bearer" = [])))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<CountView> {
    Ok(ApiResponse::ok(CountView {
        count: state.engine.mark_all_notifications_read(actor).await?,
    }))
}

/// Delete a notification.
#[utoipa::path(delete, path = "/api/v1/notifications/{id}", tag = "notifications", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<NotificationId>,
) -> ApiResult<bool> {
    state.engine.delete_notification(actor, id).await?;
    Ok(ApiResponse::ok(true))
}
