//! `/auth/*`: signup, login, refresh (rotation with reuse detection), logout, me.

use axum::extract::State;
use axum::http::HeaderMap;
use shoot_core::engine::NewUser;
use shoot_core::{ErrorCode, UserId};

use crate::auth::{AuthUser, bearer};
use crate::error::{ApiError, ApiResponse, ApiResult, Envelope, ErrorEnvelope};
use crate::rest::extract::{ApiJson, ClientAddr, OptionalJson};
use crate::state::AppState;
use crate::views::{LoginRequest, RefreshRequest, SignupRequest, TokenView, UserView};

/// Runs a CPU-heavy engine call (Argon2 hashing) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    fut: impl Future<Output = shoot_core::Result<T>> + Send + 'static,
) -> Result<T, ApiError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(fut))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// Sign up.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn signup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<UserView> {
    let new = NewUser {
        username: req.username,
        nickname: req.nickname,
        email: req.email,
        password: req.password,
        bio: req.bio,
    };
    let engine = state.engine.clone();
    let user = blocking(async move { engine.signup(new).await }).await?;
    Ok(ApiResponse::created(UserView::me(&user)))
}

/// Sign up (alias of `POST /auth/signup`).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = SignupRequest,
    responses((status = 201, body = Envelope<UserView>), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn signup_alias(
    state: State<AppState>,
    body: ApiJson<SignupRequest>,
) -> ApiResult<UserView> {
    signup(state, body).await
}

async fn new_pair(
    state: &AppState,
    user: UserId,
    family: Option<String>,
) -> Result<TokenView, ApiError> {
    let refresh = state.engine.issue_refresh_token(user, family).await?;
    Ok(state.auth.issue_pair(user, &refresh)?.into())
}

/// Log in with username or e-mail.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Envelope<TokenView>), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<TokenView> {
    let login = req
        .username
        .filter(|s| !s.trim().is_empty())
        .or(req.email.filter(|s| !s.trim().is_empty()))
        .ok_or_else(|| ApiError::validation("username or email is required"))?;
    let password = req.password;
    let engine = state.engine.clone();
    let result = blocking(async move {
        engine
            .authenticate(&login, &password, addr.as_deref())
            .await
    })
    .await;
    let user = match result {
        Ok(u) => u,
        Err(e) => {
            if e.code == ErrorCode::InvalidCredentials.as_str()
                || e.code == ErrorCode::AccountLocked.as_str()
            {
                state.metrics.login_failures.inc();
            }
            return Err(e);
        }
    };
    Ok(ApiResponse::ok(new_pair(&state, user.id, None).await?))
}

fn refresh_token_of(headers: &HeaderMap, body: Option<RefreshRequest>) -> Option<String> {
    body.and_then(|b| b.refresh_token)
        .filter(|t| !t.trim().is_empty())
        .or_else(|| bearer(headers).map(str::to_owned))
}

/// Exchange a refresh token for a new pair (the old one becomes unusable; reusing it
/// revokes the whole family).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Envelope<TokenView>), (status = 401, body = ErrorEnvelope)))]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> ApiResult<TokenView> {
    let token = refresh_token_of(&headers, body)
        .ok_or_else(|| ApiError::unauthenticated("missing refresh token"))?;
    let verified = state.auth.verify_refresh(&token)?;
    let next = state
        .engine
        .rotate_refresh_token(&verified.token_id)
        .await?;
    if next.user_id != verified.user_id {
        return Err(ApiError::unauthenticated("invalid token"));
    }
    Ok(ApiResponse::ok(
        state.auth.issue_pair(next.user_id, &next)?.into(),
    ))
}

/// Alias of `POST /auth/refresh`.
#[utoipa::path(post, path = "/api/v1/auth/refresh-token", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Envelope<TokenView>), (status = 401, body = ErrorEnvelope)))]
pub async fn refresh_alias(
    state: State<AppState>,
    headers: HeaderMap,
    body: OptionalJson<RefreshRequest>,
) -> ApiResult<TokenView> {
    refresh(state, headers, body).await
}

/// Log out: revokes the refresh-token family of the given refresh token (body or Bearer).
/// Without a refresh token a valid access token is required and nothing is revoked
/// (access tokens are stateless and expire on their own).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Envelope<bool>), (status = 401, body = ErrorEnvelope)))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> ApiResult<bool> {
    let explicit = body
        .and_then(|b| b.refresh_token)
        .filter(|t| !t.trim().is_empty());
    if let Some(token) = explicit {
        let verified = state.auth.verify_refresh(&token)?;
        state
            .engine
            .revoke_refresh_token_family(&verified.token_id)
            .await?;
        return Ok(ApiResponse::ok(true).with_message("logged out"));
    }
    let bearer_token =
        bearer(&headers).ok_or_else(|| ApiError::unauthenticated("missing token"))?;
    if let Ok(verified) = state.auth.verify_refresh(bearer_token) {
        state
            .engine
            .revoke_refresh_token_family(&verified.token_id)
            .await?;
        return Ok(ApiResponse::ok(true).with_message("logged out"));
    }
    state.auth.verify_access(bearer_token)?;
    Ok(ApiResponse::ok(false).with_message("no refresh token given; nothing revoked"))
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Envelope<UserView>), (status = 401, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, AuthUser(actor): AuthUser) -> ApiResult<UserView> {
    let user = state.engine.user(actor).await?;
    Ok(ApiResponse::ok(UserView::me(&user)))
}
