//! `/messages/*`: history, detail, edit, delete, read, forward, pins, reactions, threads,
//! schedules, bookmarks and search.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use shoot_core::engine::{
    MessageRecord, NewSchedule, ReadTarget, SchedulePatch, SendMessage, SendReceipt,
};
use shoot_core::messages::{HistoryQuery, MessageType};
use shoot_core::schedule::Repeat;
use shoot_core::{MessageId, RoomId, ScheduleId, Seq, Timestamp};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResponse, ApiResult, Envelope, ErrorEnvelope};
use crate::rest::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{
    BookmarkRequest, BookmarkView, EditMessageRequest, ForwardRequest, MessageIdRequest,
    MessageView, ReactionRequest, ReactionTypeView, ScheduleRequest, ScheduleUpdateRequest,
    ScheduleView, SendReceiptView, ThreadReplyRequest, ThreadSummaryView, ThreadView,
};

fn record_view(r: &MessageRecord) -> MessageView {
    MessageView::new(&r.message, u64::from(r.read_count))
}

fn receipt_view(r: &SendReceipt) -> SendReceiptView {
    SendReceiptView {
        message_id: r.message_id.to_string(),
        room_id: r.room_id.to_string(),
        seq: r.seq.0,
        temp_id: Some(r.temp_id.clone()),
        duplicate: r.duplicate,
        status: shoot_core::messages::MessageStatus::SentToKafka
            .as_str()
            .to_owned(),
    }
}

fn message_type(t: Option<&str>) -> Result<MessageType, ApiError> {
    match t {
        None => Ok(MessageType::Text),
        Some(s) => MessageType::parse(s).ok_or_else(|| {
            ApiError::from_code(
                shoot_core::ErrorCode::InvalidMessageType,
                format!("unknown message type {s:?}"),
            )
        }),
    }
}

fn parse_repeat(s: &str) -> Result<Repeat, ApiError> {
    Repeat::parse(s).ok_or_else(|| ApiError::validation("repeat must be DAILY, WEEKLY or MONTHLY"))
}

fn parse_time(s: &str, field: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(s)
        .ok_or_else(|| ApiError::validation(format!("{field} must be an RFC 3339 date-time")))
}

/// `?before=&after=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Messages with a sequence lower than this.
    pub before: Option<i64>,
    /// Messages with a sequence higher than this.
    pub after: Option<i64>,
    /// Page size (default 50, max 100).
    pub limit: Option<usize>,
}

/// A page of a room's history by per-room sequence, always oldest → newest. Without `after`
/// the newest page (before `before`, if given); with `after` the page following it.
#[utoipa::path(get, path = "/api/v1/messages/{roomId}", tag = "messages", params(("roomId" = String, Path), HistoryParams),
    responses((status = 200, body = Envelope<Vec<MessageView>>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(room): ApiPath<RoomId>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> ApiResult<Vec<MessageView>> {
    let limits = state.engine.limits();
    let limit = match q.limit {
        None => limits.history_default_limit,
        Some(0) => return Err(ApiError::validation("limit must be at least 1")),
        Some(n) => n.min(limits.history_max_limit),
    };
    if q.before.is_some_and(|b| b < 0) || q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::validation(
            "before/after must be non-negative sequence numbers",
        ));
    }
    let query = HistoryQuery {
        before: q.before.map(Seq),
        after: q.after.map(Seq),
        limit,
    };
    let page = state.engine.history(actor, room, query).await?;
    Ok(ApiResponse::ok(page.iter().map(record_view).collect()))
}

/// One message.
#[utoipa::path(get, path = "/api/v1/messages/detail/{messageId}", tag = "messages", params(("messageId" = String, Path)),
    responses((status = 200, body = Envelope<MessageView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn detail(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<MessageView> {
    Ok(ApiResponse::ok(record_view(
        &state.engine.message(actor, id).await?,
    )))
}

/// Edit one's own message (within the edit window).
#[utoipa::path(put, path = "/api/v1/messages/{messageId}", tag = "messages", params(("messageId" = String, Path)),
    request_body = EditMessageRequest,
    responses((status = 200, body = Envelope<MessageView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<MessageId>,
    ApiJson(req): ApiJson<EditMessageRequest>,
) -> ApiResult<MessageView> {
    let m = state.engine.edit_message(actor, id, &req.content).await?;
    Ok(ApiResponse::ok(MessageView::from(&m)))
}

/// Delete a message (soft: a tombstone keeps its place).
#[utoipa::path(delete, path = "/api/v1/messages/{messageId}", tag = "messages", params(("messageId" = String, Path)),
    responses((status = 200, body = Envelope<MessageView>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<MessageView> {
    let m = state.engine.delete_message(actor, id).await?;
    Ok(ApiResponse::ok(MessageView::from(&m)))
}

/// `?roomId=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct RoomParam {
    /// Room.
    #[param(value_type = String)]
    pub room_id: RoomId,
}

/// The caller's read cursor after marking.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadCursorView {
    /// Room.
    pub room_id: String,
    /// Read cursor.
    pub last_read_seq: i64,
}

/// Mark everything in a room as read.
#[utoipa::path(post, path = "/api/v1/messages/mark-read", tag = "messages", params(RoomParam),
    responses((status = 200, body = Envelope<ReadCursorView>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn mark_read(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<RoomParam>,
) -> ApiResult<ReadCursorView> {
    let seq = state
        .engine
        .mark_read(actor, q.room_id, ReadTarget::All)
        .await?;
    Ok(ApiResponse::ok(ReadCursorView {
        room_id: q.room_id.to_string(),
        last_read_seq: seq.0,
    }))
}

/// Forward a message to rooms of the caller (each copy keeps `forwardedFrom`).
#[utoipa::path(post, path = "/api/v1/messages/forward", tag = "messages", request_body = ForwardRequest,
    responses((status = 201, body = Envelope<Vec<SendReceiptView>>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn forward(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<ForwardRequest>,
) -> ApiResult<Vec<SendReceiptView>> {
    if req.target_room_ids.is_empty() {
        return Err(ApiError::validation("targetRoomIds must not be empty"));
    }
    let receipts = state
        .engine
        .forward_message(
            actor,
            req.message_id,
            req.target_room_ids,
            req.additional_content,
        )
        .await?;
    state.metrics.messages_sent.add(receipts.len() as u64);
    Ok(ApiResponse::created(
        receipts.iter().map(receipt_view).collect(),
    ))
}

/// Pin a message.
#[utoipa::path(post, path = "/api/v1/messages/pin", tag = "messages", request_body = MessageIdRequest,
    responses((status = 200, body = Envelope<MessageView>), (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn pin(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<MessageIdRequest>,
) -> ApiResult<MessageView> {
    Ok(ApiResponse::ok(MessageView::from(
        &state.engine.pin_message(actor, req.message_id).await?,
    )))
}

/// Unpin a message.
#[utoipa::path(delete, path = "/api/v1/messages/pin/{messageId}", tag = "messages", params(("messageId" = String, Path)),
    responses((status = 200, body = Envelope<MessageView>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn unpin(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<MessageView> {
    Ok(ApiResponse::ok(MessageView::from(
        &state.engine.unpin_message(actor, id).await?,
    )))
}

/// Pinned messages of a room.
#[utoipa::path(get, path = "/api/v1/messages/pins/{roomId}", tag = "messages", params(("roomId" = String, Path)),
    responses((status = 200, body = Envelope<Vec<MessageView>>), (status = 403, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn pins(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(room): ApiPath<RoomId>,
) -> ApiResult<Vec<MessageView>> {
    let list = state.engine.pinned_messages(actor, room).await?;
    Ok(ApiResponse::ok(
        list.iter().map(MessageView::from).collect(),
    ))
}

/// Add a reaction.
#[utoipa::path(post, path = "/api/v1/messages/reaction", tag = "messages", request_body = ReactionRequest,
    responses((status = 200, body = Envelope<MessageView>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn add_reaction(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<ReactionRequest>,
) -> ApiResult<MessageView> {
    let m = state
        .engine
        .add_reaction(actor, req.message_id, &req.reaction)
        .await?;
    Ok(ApiResponse::ok(MessageView::from(&m)))
}

/// Remove a reaction.
#[utoipa::path(delete, path = "/api/v1/messages/reaction", tag = "messages", request_body = ReactionRequest,
    responses((status = 200, body = Envelope<MessageView>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn remove_reaction(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<ReactionRequest>,
) -> ApiResult<MessageView> {
    let m = state
        .engine
        .remove_reaction(actor, req.message_id, &req.reaction)
        .await?;
    Ok(ApiResponse::ok(MessageView::from(&m)))
}

/// The configured reaction types.
#[utoipa::path(get, path = "/api/v1/messages/reactions/types", tag = "messages",
    responses((status = 200, body = Envelope<Vec<ReactionTypeView>>)), security(("bearer" = [])))]
pub async fn reaction_types(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> ApiResult<Vec<ReactionTypeView>> {
    let types = state.engine.reaction_types().await?;
    Ok(ApiResponse::ok(
        types.iter().map(ReactionTypeView::from).collect(),
    ))
}

/// `?parentId=&after=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ThreadParams {
    /// Root (or any reply: its root is used).
    #[param(value_type = String)]
    pub parent_id: MessageId,
    /// Replies after this sequence.
    pub after: Option<i64>,
    /// Page size (default 50, max 100).
    pub limit: Option<usize>,
}

/// A thread: its root and replies, oldest first.
#[utoipa::path(get, path = "/api/v1/messages/thread", tag = "threads", params(ThreadParams),
    responses((status = 200, body = Envelope<ThreadView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn thread(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<ThreadParams>,
) -> ApiResult<ThreadView> {
    let limits = state.engine.limits();
    let limit = q
        .limit
        .unwrap_or(limits.history_default_limit)
        .clamp(1, limits.history_max_limit);
    let t = state
        .engine
        .thread(actor, q.parent_id, q.after.map(Seq), limit)
        .await?;
    Ok(ApiResponse::ok(ThreadView {
        root: MessageView::from(&t.root),
        replies: t.replies.iter().map(MessageView::from).collect(),
    }))
}

/// Reply in a thread.
#[utoipa::path(post, path = "/api/v1/messages/thread", tag = "threads", request_body = ThreadReplyRequest,
    responses((status = 201, body = Envelope<SendReceiptView>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn reply(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<ThreadReplyRequest>,
) -> ApiResult<SendReceiptView> {
    let message_type = message_type(req.message_type.as_deref())?;
    let parent = state.engine.message(actor, req.parent_message_id).await?;
    let cmd = SendMessage {
        room_id: parent.message.room_id,
        text: req.content,
        message_type,
        temp_id: req.temp_id,
        thread_id: Some(req.parent_message_id),
        mentions: req.mentions,
    };
    let receipt = state.engine.send_message(actor, cmd).await?;
    state.metrics.messages_sent.inc();
    Ok(ApiResponse::created(receipt_view(&receipt)))
}

/// `?roomId=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ThreadsParams {
    /// Room.
    #[param(value_type = String)]
    pub room_id: RoomId,
    /// At most this many (default 50, max 100).
    pub limit: Option<usize>,
}

/// Threads of a room.
#[utoipa::path(get, path = "/api/v1/messages/threads", tag = "threads", params(ThreadsParams),
    responses((status = 200, body = Envelope<Vec<ThreadSummaryView>>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn threads(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<ThreadsParams>,
) -> ApiResult<Vec<ThreadSummaryView>> {
    let list = state
        .engine
        .threads(actor, q.room_id, q.limit.unwrap_or(0))
        .await?;
    Ok(ApiResponse::ok(
        list.iter()
            .map(|t| ThreadSummaryView {
                root: MessageView::from(&t.root),
                reply_count: t.reply_count,
                last_reply: t.last_reply.as_ref().map(MessageView::from),
                participants: t.participants.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    ))
}

/// Schedule a message.
#[utoipa::path(post, path = "/api/v1/messages/schedule", tag = "schedules", request_body = ScheduleRequest,
    responses((status = 201, body = Envelope<ScheduleView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn schedule(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> ApiResult<ScheduleView> {
    let new = NewSchedule {
        room_id: req.room_id,
        text: req.content,
        message_type: message_type(req.message_type.as_deref())?,
        scheduled_at: parse_time(&req.scheduled_at, "scheduledAt")?,
        repeat: req.repeat.as_deref().map(parse_repeat).transpose()?,
    };
    let s = state.engine.schedule_message(actor, new).await?;
    Ok(ApiResponse::created(ScheduleView::from(&s)))
}

/// The caller's scheduled messages.
#[utoipa::path(get, path = "/api/v1/messages/schedule", tag = "schedules",
    responses((status = 200, body = Envelope<Vec<ScheduleView>>)), security(("bearer" = [])))]
pub async fn schedules(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> ApiResult<Vec<ScheduleView>> {
    let list = state.engine.scheduled_messages(actor).await?;
    Ok(ApiResponse::ok(
        list.iter().map(ScheduleView::from).collect(),
    ))
}

/// Edit a PENDING scheduled message.
#[utoipa::path(put, path = "/api/v1/messages/schedule/{scheduleId}", tag = "schedules", params(("scheduleId" = String, Path)),
    request_body = ScheduleUpdateRequest,
    responses((status = 200, body = Envelope<ScheduleView>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn update_schedule(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiJson(req): ApiJson<ScheduleUpdateRequest>,
) -> ApiResult<ScheduleView> {
    let patch = SchedulePatch {
        text: req.content,
        scheduled_at: req
            .scheduled_at
            .as_deref()
            .map(|s| parse_time(s, "scheduledAt"))
            .transpose()?,
        repeat: match req.repeat {
            None => None,
            Some(None) => Some(None),
            Some(Some(r)) => Some(Some(parse_repeat(&r)?)),
        },
    };
    let s = state.engine.update_schedule(actor, id, patch).await?;
    Ok(ApiResponse::ok(ScheduleView::from(&s)))
}

/// Cancel a PENDING scheduled message.
#[utoipa::path(delete, path = "/api/v1/messages/schedule/{scheduleId}", tag = "schedules", params(("scheduleId" = String, Path)),
    responses((status = 200, body = Envelope<ScheduleView>), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)),
    security(("bearer" = [])))]
pub async fn cancel_schedule(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<ScheduleId>,
) -> ApiResult<ScheduleView> {
    Ok(ApiResponse::ok(ScheduleView::from(
        &state.engine.cancel_schedule(actor, id).await?,
    )))
}

/// Bookmark a message (again: replaces the note).
#[utoipa::path(post, path = "/api/v1/messages/bookmark", tag = "bookmarks", request_body = BookmarkRequest,
    responses((status = 201, body = Envelope<BookmarkView>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn bookmark(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiJson(req): ApiJson<BookmarkRequest>,
) -> ApiResult<BookmarkView> {
    let b = state
        .engine
        .bookmark_message(actor, req.message_id, req.note)
        .await?;
    Ok(ApiResponse::created(BookmarkView::new(&b, None)))
}

/// Remove a bookmark.
#[utoipa::path(delete, path = "/api/v1/messages/bookmark/{messageId}", tag = "bookmarks", params(("messageId" = String, Path)),
    responses((status = 200, body = Envelope<bool>), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn remove_bookmark(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<bool> {
    state.engine.remove_bookmark(actor, id).await?;
    Ok(ApiResponse::ok(true))
}

/// `?roomId=&q=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct BookmarkParams {
    /// Only this room.
    #[param(value_type = Option<String>)]
    pub room_id: Option<RoomId>,
    /// Text in the note or the message.
    pub q: Option<String>,
}

/// The caller's bookmarks, newest first.
#[utoipa::path(get, path = "/api/v1/messages/bookmarks", tag = "bookmarks", params(BookmarkParams),
    responses((status = 200, body = Envelope<Vec<BookmarkView>>)), security(("bearer" = [])))]
pub async fn bookmarks(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<BookmarkParams>,
) -> ApiResult<Vec<BookmarkView>> {
    let list = state
        .engine
        .bookmarks(
            actor,
            q.room_id,
            q.q.as_deref().filter(|s| !s.trim().is_empty()),
        )
        .await?;
    Ok(ApiResponse::ok(
        list.iter()
            .map(|e| BookmarkView::new(&e.bookmark, Some(&e.message)))
            .collect(),
    ))
}

/// `?roomId=&q=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct MessageSearchParams {
    /// Room.
    #[param(value_type = String)]
    pub room_id: RoomId,
    /// Text to find.
    pub q: String,
    /// At most this many (default 50, max 100).
    pub limit: Option<usize>,
}

/// Search a room's messages, newest first.
#[utoipa::path(get, path = "/api/v1/messages/search", tag = "messages", params(MessageSearchParams),
    responses((status = 200, body = Envelope<Vec<MessageView>>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    ApiQuery(q): ApiQuery<MessageSearchParams>,
) -> ApiResult<Vec<MessageView>> {
    let list = state
        .engine
        .search_messages(actor, q.room_id, &q.q, q.limit.unwrap_or(0))
        .await?;
    Ok(ApiResponse::ok(
        list.iter().map(MessageView::from).collect(),
    ))
}
