//! `/chatrooms/*`: room list, creation (direct, group, several), detail, update, leave,
//! search, participants, announcement and favourites.

use axum::extract::State;
use serde::Deserialize;
use shoot_core::engine::{RoomDetails, RoomSummary};
use shoot_core::identity::User;
use shoot_core::rooms::Participant;
use shoot_core::{RoomId, UserId};
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResponse, ApiResult, Envelope, ErrorEnvelope};
use crate::rest::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    AddParticipantsRequest, CreateRoomRequest, CreateRoomsRequest, NoticeRequest, NoticeView,
    ParticipantView, RoomView, UpdateRoomRequest,
};

async fn users_of(state: &AppState, participants: &[&Participant]) -> Result<Vec<User>, ApiError> {
    let mut ids: Vec<UserId> = participants.iter().map(|p| p.user_id).collect();
    ids.sort();
    ids.dedup();
    Ok(state.engine.users(&ids).await?)
}

async fn summary_views(
    state: &AppState,
    actor: UserId,
    list: &[RoomSummary],
) -> Result<Vec<RoomView>, ApiError> {
    let all: Vec<&Participant> = list.iter().flat_map(|s| s.participants.iter()).collect();
    let users = users_of(state, &all).await?;
    Ok(list
        .iter()
        .map(|s| {
            RoomView::new(
                &s.room,
                actor,
                &s.participants,
                &users,
                s.last_message.as_ref(),
                s.unread_count,
            )
        })
        .collect())
}

/// The view of one room for `actor` (its entry in the room list when present, so that the
/// last message and unread count are filled in).
async fn room_view(
    state: &AppState,
    actor: UserId,
    details: &RoomDetails,
) -> Result<RoomView, ApiError> {
    let users = users_of(state, &details.participants.iter().collect::<Vec<_>>()).await?;
    let summary = state
        .engine
        .rooms_of(actor)
        .await?
        .into_iter()
        .find(|s| s.room.id == details.room.id);
    let (last, unread) = match &summary {
        Some(s) => (s.last_message.as_ref(), s.unread_count),
        None => (None, 0),
    };
    Ok(RoomView::new(
        &details.room,
        actor,
        &details.participants,
        &users,
        last,
        unread,
    ))
}

/// The caller's rooms: favourites first, then by last activity.
#[utoipa::path(get, path = "/api/v1/chatrooms", tag = "chatrooms",
    responses((status = 200, body = Envelope<Vec<RoomView>>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<RoomView>> {
    let rooms = state.engine.rooms_of(actor).await?;
    Ok(ApiResponse::ok(summary_views(&state, actor, &rooms).await?))
}

/// The caller's favourite rooms.
#[utoipa::path(get, path = "/api/v1/chatrooms/favorites", tag = "chatrooms",
    responses((status = 200, body = Envelope<Vec<RoomView>>)), security(("bearer" = [])))]
pub async fn favorites(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<RoomView>> {
    let rooms: Vec<RoomSummary> = state
        .engine
        .rooms_of(actor)
        .await?
        .into_iter()
        .filter(|s| s.me.favorite)
        .collect();
    Ok(ApiResponse::ok(summary_views(&state, actor, &rooms).await?))
}

/// Creates one room; returns its details and whether it is new.
async fn create_one(
    state: &AppState,
    actor: UserId,
    req: CreateRoomRequest,
) -> Result<(RoomDetails, bool), ApiError> {
    let kind = req.room_type.as_deref().map(str::to_ascii_uppercase);
    let direct = match kind.as_deref() {
        Some("DIRECT") => true,
        Some("GROUP") => false,
        None => req.participant_ids.len() == 1 && req.title.is_none(),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "unknown room type {other:?}: expected DIRECT or GROUP"
            )));
        }
    };
    if direct {
        let others: Vec<UserId> = req
            .participant_ids
            .iter()
            .copied()
            .filter(|u| *u != actor)
            .collect();
        let [other] = others.as_slice() else {
            if req.participant_ids.iter().all(|u| *u == actor) && !req.participant_ids.is_empty() {
                return Err(ApiError::from_code(
                    shoot_core::ErrorCode::DirectRoomWithSelf,
                    "cannot open a direct room with yourself",
                ));
            }
            return Err(ApiError::from_code(
                shoot_core::ErrorCode::DirectRoomMembership,
                "a direct room needs exactly one other participant",
            ));
        };
        let (room, created) = state.engine.create_direct_room(actor, *other).await?;
        let details = state.engine.room(actor, room.id).await?;
        Ok((details, created))
    } else {
        let title = req.title.unwrap_or_default();
        let details = state
            .engine
            .create_group_room(actor, &title, req.participant_ids)
            .await?;
        Ok((details, true))
    }
}

/// Create a room: `{type: "DIRECT", participantIds: [other]}` (returns the existing direct
/// room, 200, if there is one) or `{type: "GROUP", title, participantIds}`.
#[utoipa::path(post, path = "/api/v1/chatrooms", tag = "chatrooms", request_body = CreateRoomRequest,
    responses((status = 201, body = Envelope<RoomView>), (status = 200, description = "existing direct room", body = Envelope<RoomView>),
        (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<CreateRoomRequest>,
) -> ApiResult<RoomView> {
    let (details, created) = create_one(&state, actor, req).await?;
    let view = room_view(&state, actor, &details).await?;
    Ok(if created {
        ApiResponse::created(view)
    } else {
        ApiResponse::ok(view)
    })
}

/// Create several rooms in one call (each as `POST /chatrooms`); stops at the first error.
#[utoipa::path(post, path = "/api/v1/chatrooms/multiple", tag = "chatrooms", request_body = CreateRoomsRequest,
    responses((status = 201, body = Envelope<Vec<RoomView>>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn create_multiple(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<CreateRoomsRequest>,
) -> ApiResult<Vec<RoomView>> {
    if req.rooms.is_empty() || req.rooms.len() > 20 {
        return Err(ApiError::validation("rooms must hold 1 to 20 entries"));
    }
    let mut out = Vec::with_capacity(req.rooms.len());
    for r in req.rooms {
        let (details, _) = create_one(&state, actor, r).await?;
        out.push(room_view(&state, actor, &details).await?);
    }
    Ok(ApiResponse::created(out))
}

/// One room.
#[utoipa::path(get, path = "/api/v1/chatrooms/{roomId}", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<RoomView>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<RoomView> {
    let details = state.engine.room(actor, id).await?;
    Ok(ApiResponse::ok(room_view(&state, actor, &details).await?))
}

/// Update title and/or announcement (owner/admin).
#[utoipa::path(put, path = "/api/v1/chatrooms/{roomId}", tag = "chatrooms", params(("roomId" = String, Path)),
    request_body = UpdateRoomRequest,
    responses((status = 200, body = Envelope<RoomView>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
    ApiJson(req): ApiJson<UpdateRoomRequest>,
) -> ApiResult<RoomView> {
    if req.title.is_none() && req.announcement.is_none() {
        return Err(ApiError::validation(
            "nothing to update: give title and/or announcement",
        ));
    }
    // The two fields are applied by two engine calls: validate both first, so a request
    // rejected for one of them changes nothing.
    let limits = state.engine.limits();
    if let Some(title) = &req.title {
        shoot_core::rooms::rules::validate_title(title, limits)?;
    }
    if let Some(announcement) = &req.announcement {
        shoot_core::rooms::rules::validate_announcement(announcement.as_deref(), limits)?;
    }
    if let Some(title) = &req.title {
        state.engine.update_room_title(actor, id, title).await?;
    }
    if let Some(announcement) = req.announcement {
        state
            .engine
            .set_announcement(actor, id, announcement)
            .await?;
    }
    let details = state.engine.room(actor, id).await?;
    Ok(ApiResponse::ok(room_view(&state, actor, &details).await?))
}

/// Leave a room (the last participant leaving deletes it).
#[utoipa::path(delete, path = "/api/v1/chatrooms/{roomId}", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn leave(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<bool> {
    state.engine.leave_room(actor, id).await?;
    Ok(ApiResponse::ok(true))
}

/// `?q=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomSearchQuery {
    /// Text to find in titles and participant names.
    pub q: String,
}

/// Search the caller's rooms.
#[utoipa::path(get, path = "/api/v1/chatrooms/search", tag = "chatrooms", params(RoomSearchQuery),
    responses((status = 200, body = Envelope<Vec<RoomView>>)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<RoomSearchQuery>,
) -> ApiResult<Vec<RoomView>> {
    let rooms = state.engine.search_rooms(actor, &q.q).await?;
    Ok(ApiResponse::ok(summary_views(&state, actor, &rooms).await?))
}

/// Participants of a room.
#[utoipa::path(get, path = "/api/v1/chatrooms/{roomId}/participants", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<Vec<ParticipantView>>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn participants(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<Vec<ParticipantView>> {
    let ps = state.engine.participants(actor, id).await?;
    let users = users_of(&state, &ps.iter().collect::<Vec<_>>()).await?;
    Ok(ApiResponse::ok(
        ps.iter().map(|p| ParticipantView::new(p, &users)).collect(),
    ))
}

/// Add participants to a group room.
#[utoipa::path(post, path = "/api/v1/chatrooms/{roomId}/participants", tag = "chatrooms", params(("roomId" = String, Path)),
    request_body = AddParticipantsRequest,
    responses((status = 200, body = Envelope<RoomView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn add_participants(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
    ApiJson(req): ApiJson<AddParticipantsRequest>,
) -> ApiResult<RoomView> {
    let details = state
        .engine
        .add_participants(actor, id, req.participant_ids)
        .await?;
    Ok(ApiResponse::ok(room_view(&state, actor, &details).await?))
}

/// Remove a participant (owner/admin), or leave when it is the caller.
#[utoipa::path(delete, path = "/api/v1/chatrooms/{roomId}/participants/{userId}", tag = "chatrooms",
    params(("roomId" = String, Path), ("userId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn remove_participant(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath((id, user)): ApiPath<(RoomId, UserId)>,
) -> ApiResult<bool> {
    if user == actor {
        state.engine.leave_room(actor, id).await?;
    } else {
        state.engine.remove_participant(actor, id, user).await?;
    }
    Ok(ApiResponse::ok(true))
}

/// The room announcement.
#[utoipa::path(get, path = "/api/v1/chatrooms/{roomId}/notice", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<NoticeView>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn get_notice(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<NoticeView> {
    let details = state.engine.room(actor, id).await?;
    Ok(ApiResponse::ok(NoticeView {
        room_id: id.to_string(),
        announcement: details.room.announcement,
    }))
}

/// Set (or clear with null/empty) the room announcement.
#[utoipa::path(post, path = "/api/v1/chatrooms/{roomId}/notice", tag = "chatrooms", params(("roomId" = String, Path)),
    request_body = NoticeRequest,
    responses((status = 200, body = Envelope<NoticeView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn set_notice(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
    ApiJson(req): ApiJson<NoticeRequest>,
) -> ApiResult<NoticeView> {
    let announcement = req.announcement.filter(|a| !a.trim().is_empty());
    let room = state
        .engine
        .set_announcement(actor, id, announcement)
        .await?;
    Ok(ApiResponse::ok(NoticeView {
        room_id: id.to_string(),
        announcement: room.announcement,
    }))
}

/// Mark a room as favourite.
#[utoipa::path(post, path = "/api/v1/chatrooms/{roomId}/favorite", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 409, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn add_favorite(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<bool> {
    state.engine.set_favorite(actor, id, true).await?;
    Ok(ApiResponse::ok(true))
}

/// Unmark a favourite room.
#[utoipa::path(delete, path = "/api/v1/chatrooms/{roomId}/favorite", tag = "chatrooms", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<bool>)), security(("bearer" = [])))]
pub async fn remove_favorite(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<RoomId>,
) -> ApiResult<bool> {
    state.engine.set_favorite(actor, id, false).await?;
    Ok(ApiResponse::ok(false))
}
