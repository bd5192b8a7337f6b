//! `/users/*`: profile, status, search, friends, friend requests, blocking, friend groups and
//! recommendations.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shoot_core::engine::ProfilePatch;
use shoot_core::identity::{User, UserStatus};
use shoot_core::social::FriendRequest;
use shoot_core::{FriendGroupId, FriendRequestId, UserId};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResponse, ApiResult, Envelope, ErrorEnvelope};
use crate::rest::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    FriendGroupRequest, FriendGroupView, FriendRequestView, FriendRequestsView, RecommendationView,
    StatusRequest, TargetUserRequest, UpdateProfileRequest, UserView,
};

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = Envelope<UserView>), (status = 401, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn get_me(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<UserView> {
    Ok(ApiResponse::ok(UserView::me(
        &state.engine.user(actor).await?,
    )))
}

/// Update the caller's profile.
#[utoipa::path(put, path = "/api/v1/users/me", tag = "users", request_body = UpdateProfileRequest,
    responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<UpdateProfileRequest>,
) -> ApiResult<UserView> {
    let patch = ProfilePatch {
        nickname: req.nickname,
        bio: req.bio,
        profile_image_url: req.profile_image_url,
    };
    Ok(ApiResponse::ok(UserView::me(
        &state.engine.update_profile(actor, patch).await?,
    )))
}

/// Set the caller's status.
#[utoipa::path(put, path = "/api/v1/users/status", tag = "users", request_body = StatusRequest,
    responses((status = 200, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<UserView> {
    let status = UserStatus::parse(&req.status)
        .ok_or_else(|| ApiError::validation("status must be ONLINE, AWAY, BUSY or OFFLINE"))?;
    Ok(ApiResponse::ok(UserView::me(
        &state.engine.set_status(actor, status).await?,
    )))
}

/// `?q=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text to look for.
    pub q: String,
    /// At most this many (default 20).
    pub limit: Option<usize>,
}

/// Search users by username or nickname.
#[utoipa::path(get, path = "/api/v1/users/search", tag = "users", params(SearchQuery),
    responses((status = 200, body = Envelope<Vec<UserView>>)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Vec<UserView>> {
    let users = state
        .engine
        .search_users(actor, &q.q, q.limit.unwrap_or(20))
        .await?;
    Ok(ApiResponse::ok(
        users.iter().map(|u| UserView::seen_by(u, actor)).collect(),
    ))
}

/// `?code=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CodeQuery {
    /// User code.
    pub code: String,
}

/// Find a user by user code.
#[utoipa::path(get, path = "/api/v1/users/find-by-code", tag = "users", params(CodeQuery),
    responses((status = 200, body = Envelope<UserView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn find_by_code(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<CodeQuery>,
) -> ApiResult<UserView> {
    let user = state.engine.find_user_by_code(q.code.trim()).await?;
    Ok(ApiResponse::ok(UserView::seen_by(&user, actor)))
}

/// A user.
#[utoipa::path(get, path = "/api/v1/users/{userId}", tag = "users", params(("userId" = String, Path)),
    responses((status = 200, body = Envelope<UserView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<UserView> {
    Ok(ApiResponse::ok(UserView::seen_by(
        &state.engine.user(id).await?,
        actor,
    )))
}

// ---- friends ----

/// The caller's friends.
#[utoipa::path(get, path = "/api/v1/users/friends", tag = "friends",
    responses((status = 200, body = Envelope<Vec<UserView>>)), security(("bearer" = [])))]
pub async fn friends(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<UserView>> {
    let users = state.engine.friends(actor).await?;
    Ok(ApiResponse::ok(users.iter().map(UserView::other).collect()))
}

async fn request_views(
    state: &AppState,
    actor: UserId,
    requests: &[&FriendRequest],
) -> Result<Vec<FriendRequestView>, ApiError> {
    let mut ids: Vec<UserId> = requests.iter().flat_map(|r| [r.from, r.to]).collect();
    ids.sort();
    ids.dedup();
    let users: Vec<User> = state.engine.users(&ids).await?;
    Ok(requests
        .iter()
        .map(|r| FriendRequestView::new(r, &users, actor))
        .collect())
}

/// Pending friend requests.
#[utoipa::path(get, path = "/api/v1/users/friends/requests", tag = "friends",
    responses((status = 200, body = Envelope<FriendRequestsView>)), security(("bearer" = [])))]
pub async fn friend_requests(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<FriendRequestsView> {
    let r = state.engine.friend_requests(actor).await?;
    let incoming = request_views(&state, actor, &r.incoming.iter().collect::<Vec<_>>()).await?;
    let outgoing = request_views(&state, actor, &r.outgoing.iter().collect::<Vec<_>>()).await?;
    Ok(ApiResponse::ok(FriendRequestsView { incoming, outgoing }))
}

/// Send a friend request (a reverse pending request is accepted instead).
#[utoipa::path(post, path = "/api/v1/users/friends/requests", tag = "friends", request_body = TargetUserRequest,
    responses((status = 201, body = Envelope<FriendRequestView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn send_friend_request(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<TargetUserRequest>,
) -> ApiResult<FriendRequestView> {
    let r = state
        .engine
        .send_friend_request(actor, req.target_user_id)
        .await?;
    let view = request_views(&state, actor, &[&r]).await?.remove(0);
    Ok(ApiResponse::created(view))
}

/// An accepted friend request and the direct room it opened.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedView {
    /// The request (ACCEPTED).
    #[serde(flatten)]
    pub request: FriendRequestView,
    /// The direct room of the two friends.
    pub room_id: String,
}

/// Accept a friend request addressed to the caller.
#[utoipa::path(post, path = "/api/v1/users/friends/requests/{requestId}/accept", tag = "friends", params(("requestId" = String, Path)),
    responses((status = 200, body = Envelope<AcceptedView>), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn accept_friend_request(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<FriendRequestId>,
) -> ApiResult<AcceptedView> {
    let (r, room) = state.engine.accept_friend_request(actor, id).await?;
    let request = request_views(&state, actor, &[&r]).await?.remove(0);
    Ok(ApiResponse::ok(AcceptedView {
        request,
        room_id: room.id.to_string(),
    }))
}

/// Reject a friend request addressed to the caller.
#[utoipa::path(post, path = "/api/v1/users/friends/requests/{requestId}/reject", tag = "friends", params(("requestId" = String, Path)),
    responses((status = 200, body = Envelope<FriendRequestView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn reject_friend_request(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<FriendRequestId>,
) -> ApiResult<FriendRequestView> {
    let r = state.engine.reject_friend_request(actor, id).await?;
    Ok(ApiResponse::ok(
        request_views(&state, actor, &[&r]).await?.remove(0),
    ))
}

/// Cancel a friend request sent by the caller.
#[utoipa::path(delete, path = "/api/v1/users/friends/requests/{requestId}", tag = "friends", params(("requestId" = String, Path)),
    responses((status = 200, body = Envelope<FriendRequestView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn cancel_friend_request(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<FriendRequestId>,
) -> ApiResult<FriendRequestView> {
    let r = state.engine.cancel_friend_request(actor, id).await?;
    Ok(ApiResponse::ok(
        request_views(&state, actor, &[&r]).await?.remove(0),
    ))
}

/// Remove a friend (mutual).
#[utoipa::path(delete, path = "/api/v1/users/friends/{friendId}", tag = "friends", params(("friendId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn remove_friend(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(friend): ApiPath<UserId>,
) -> ApiResult<bool> {
    state.engine.remove_friend(actor, friend).await?;
    Ok(ApiResponse::ok(true))
}

/// `?maxDepth=&limit=&skip=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct RecommendationQuery {
    /// BFS depth (default 2, max 3).
    pub max_depth: Option<u8>,
    /// Page size (default 20, max 100).
    pub limit: Option<usize>,
    /// Entries to skip.
    pub skip: Option<usize>,
}

/// Friend recommendations (friends of friends), ranked by mutual friends then depth.
#[utoipa::path(get, path = "/api/v1/users/recommendations", tag = "friends", params(RecommendationQuery),
    responses((status = 200, body = Envelope<Vec<RecommendationView>>), (status = 400, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn recommendations(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<RecommendationQuery>,
) -> ApiResult<Vec<RecommendationView>> {
    let recs = state
        .engine
        .recommendations(
            actor,
            q.max_depth,
            q.limit.unwrap_or(20),
            q.skip.unwrap_or(0),
        )
        .await?;
    Ok(ApiResponse::ok(
        recs.iter()
            .map(|r| RecommendationView {
                user: UserView::other(&r.user),
                mutual_friends: r.mutual_friends,
                depth: r.depth,
            })
            .collect(),
    ))
}

// ---- blocking ----

/// Block a user.
#[utoipa::path(post, path = "/api/v1/users/block", tag = "blocking", request_body = TargetUserRequest,
    responses((status = 200, body = Envelope<bool>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn block(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<TargetUserRequest>,
) -> ApiResult<bool> {
    state.engine.block_user(actor, req.target_user_id).await?;
    Ok(ApiResponse::ok(true))
}

/// Unblock a user.
#[utoipa::path(delete, path = "/api/v1/users/block/{userId}", tag = "blocking", params(("userId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn unblock(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(target): ApiPath<UserId>,
) -> ApiResult<bool> {
    state.engine.unblock_user(actor, target).await?;
    Ok(ApiResponse::ok(true))
}

/// Users the caller blocks.
#[utoipa::path(get, path = "/api/v1/users/blocked", tag = "blocking",
    responses((status = 200, body = Envelope<Vec<UserView>>)), security(("bearer" = [])))]
pub async fn blocked(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<UserView>> {
    let users = state.engine.blocked_users(actor).await?;
    Ok(ApiResponse::ok(users.iter().map(UserView::other).collect()))
}

// ---- friend groups ----

/// The caller's friend groups.
#[utoipa::path(get, path = "/api/v1/users/friends/groups", tag = "friends",
    responses((status = 200, body = Envelope<Vec<FriendGroupView>>)), security(("bearer" = [])))]
pub async fn friend_groups(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<FriendGroupView>> {
    let groups = state.engine.friend_groups(actor).await?;
    Ok(ApiResponse::ok(
        groups.iter().map(FriendGroupView::from).collect(),
    ))
}

/// Create a friend group.
#[utoipa::path(post, path = "/api/v1/users/friends/groups", tag = "friends", request_body = FriendGroupRequest,
    responses((status = 201, body = Envelope<FriendGroupView>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn create_friend_group(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<FriendGroupRequest>,
) -> ApiResult<FriendGroupView> {
    let name = req
        .name
        .ok_or_else(|| ApiError::validation("name is required"))?;
    let g = state
        .engine
        .create_friend_group(actor, name, req.description.flatten(), req.member_ids)
        .await?;
    Ok(ApiResponse::created(FriendGroupView::from(&g)))
}

/// Rename or re-describe a friend group.
#[utoipa::path(put, path = "/api/v1/users/friends/groups/{groupId}", tag = "friends", params(("groupId" = String, Path)),
    request_body = FriendGroupRequest,
    responses((status = 200, body = Envelope<FriendGroupView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn update_friend_group(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<FriendGroupId>,
    ApiJson(req): ApiJson<FriendGroupRequest>,
) -> ApiResult<FriendGroupView> {
    let g = state
        .engine
        .update_friend_group(actor, id, req.name, req.description)
        .await?;
    Ok(ApiResponse::ok(FriendGroupView::from(&g)))
}

/// Delete a friend group.
#[utoipa::path(delete, path = "/api/v1/users/friends/groups/{groupId}", tag = "friends", params(("groupId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn delete_friend_group(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<FriendGroupId>,
) -> ApiResult<bool> {
    state.engine.delete_friend_group(actor, id).await?;
    Ok(ApiResponse::ok(true))
}

/// Add a friend to a group.
#[utoipa::path(post, path = "/api/v1/users/friends/groups/{groupId}/members/{friendId}", tag = "friends",
    params(("groupId" = String, Path), ("friendId" = String, Path)),
    responses((status = 200, body = Envelope<FriendGroupView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn add_group_member(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath((id, friend)): ApiPath<(FriendGroupId, UserId)>,
) -> ApiResult<FriendGroupView> {
    let g = state
        .engine
        .add_friend_group_member(actor, id, friend)
        .await?;
    Ok(ApiResponse::ok(FriendGroupView::from(&g)))
}

/// Remove a friend from a group.
#[utoipa::path(delete, path = "/api/v1/users/friends/groups/{groupId}/members/{friendId}", tag = "friends",
    params(("groupId" = String, Path), ("friendId" = String, Path)),
    responses((status = 200, body = Envelope<FriendGroupView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn remove_group_member(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath((id, friend)): ApiPath<(FriendGroupId, UserId)>,
) -> ApiResult<FriendGroupView> {
    let g = state
        .engine
        .remove_friend_group_member(actor, id, friend)
        .await?;
    Ok(ApiResponse::ok(FriendGroupView::from(&g)))
}
