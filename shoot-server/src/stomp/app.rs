//! `SEND /app/...`: client requests mapped to engine calls.
//!
//! | destination | body | effect / reply |
//! |---|---|---|
//! | `/app/chat` | `{roomId, content: string \| {text, type}, type?, tempId, threadId?, mentions?}` | `send_message`; statuses arrive on the status topics; the RECEIPT (if asked) is sent once the message is durable and carries `persisted-id`, `seq`, `temp-id`, `duplicate`, `status` |
//! | `/app/thread` | `{parentMessageId \| threadId \| parentId, content, tempId, type?, mentions?}` | a reply in the parent's room, as `/app/chat` |
//! | `/app/edit` | `{messageId, content \| newContent \| text}` | `edit_message` (event on `/topic/messages`) |
//! | `/app/delete` | `{messageId}` | `delete_message` |
//! | `/app/reaction` | `{messageId, reaction \| reactionType \| code, action?: ADD\|REMOVE\|TOGGLE}` | add/remove; TOGGLE (default) flips the caller's reaction |
//! | `/app/pin/toggle` | `{messageId}` | `toggle_pin` |
//! | `/app/typing` | `{roomId, isTyping \| typing (default true)}` | `typing` (throttled by the engine) |
//! | `/app/read` | `{messageId}` or `{roomId, lastSeq?}` | `mark_read` up to the message / seq (all without `lastSeq`) |
//! | `/app/read-all` | `{roomId}` | `mark_read(All)` |
//! | `/app/sync` | `{roomId, lastSeq? \| lastMessageId?, direction?: INITIAL\|BEFORE\|AFTER}` | reply `SYNC` on `/user/queue/sync`: `{roomId, direction, messages: [MessageView], hasMore, latestSeq}` (direction defaults to AFTER with a cursor, INITIAL without) |
//! | `/app/rooms` | anything | reply `ROOM_LIST` on `/user/queue/rooms`: `[RoomView]` |
//! | `/app/active` | `{roomId}` | reply `ACTIVE_USERS` `{roomId, userIds}` on the session's `/topic/active/{roomId}` and `/user/queue/active` |
//! | `/app/group-chat` | `{action: CREATE\|ADD_PARTICIPANT\|REMOVE_PARTICIPANT\|UPDATE_TITLE\|LEAVE, roomId?, title?, participantIds? \| userIds?, userId?}` | the room call; changes arrive on `/user/queue/rooms`; CREATE also replies `ROOM_CREATED` with the `RoomView` on `/user/queue/rooms` |
//! | `/app/thread/messages` | `{threadId \| parentId \| rootId, after?, limit?}` | reply `THREAD_MESSAGES` on `/user/queue/thread`: `{threadId, messages: [MessageView]}` |
//! | `/app/thread/detail` | `{threadId \| parentId \| messageId, limit?}` | reply `THREAD_DETAIL` on `/user/queue/thread`: `{root, replies}` |
//! | `/app/threads` | `{roomId, limit?}` | reply `THREAD_LIST` on `/user/queue/thread`: `[ThreadSummaryView]` |
//!
//! Every failure is answered: the engine reports rejected sends itself (FAILED status on
//! `/user/queue/message-status` and `/user/queue/errors`); malformed sends get the same
//! from here; any other failure puts `{errorCode, message, destination}` on
//! `/user/queue/errors`. The connection stays open.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use shoot_core::engine::{ReadTarget, SendMessage, SyncDirection, SyncRequest};
use shoot_core::events::Topic;
use shoot_core::ids::Seq;
use shoot_core::messages::MessageType;
use shoot_core::{ChatEngine, Error, ErrorCode, MessageId, RoomId, UserId};

use super::hub::Payload;
use super::routing::{ActiveUsersView, Filter, UserQueue, to_json};
use crate::views::{MessageView, RoomView, ThreadSummaryView, ThreadView, de_ids, de_opt_id};

/// A reply for the requesting session only.
pub(crate) struct Reply {
    /// The topic whose subscriptions of this session receive it.
    pub(crate) topic: Topic,
    /// The destination kind.
    pub(crate) filter: Filter,
    /// The rendered body.
    pub(crate) payload: Payload,
}

/// What a handled request produced.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Replies for this session.
    pub(crate) replies: Vec<Reply>,
    /// Extra RECEIPT headers.
    pub(crate) receipt: Vec<(&'static str, String)>,
}

/// A failed request.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Why.
    pub(crate) error: Error,
    /// The client's tempId (sends).
    pub(crate) temp_id: Option<String>,
    /// The room, when known.
    pub(crate) room_id: Option<RoomId>,
    /// Whether the engine already published a FAILED status for it.
    pub(crate) reported: bool,
    /// Whether it was a send (answered with a FAILED status too).
    pub(crate) is_send: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            temp_id: None,
            room_id: None,
            reported: false,
            is_send: false,
        }
    }
}

type Handled = Result<Outcome, Failure>;

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ValidationFailed, message.into())
}

/// Parses a `SEND` body as `T` (a blank body is `{}`); public so it can be fuzzed.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| invalid(format!("invalid payload: {e}")))
}

/// Message content: a string or `{text, type}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ContentIn {
    Text(String),
    Object {
        text: String,
        #[serde(rename = "type", default)]
        content_type: Option<String>,
    },
}

impl ContentIn {
    fn into_parts(self) -> (String, Option<String>) {
        match self {
            ContentIn::Text(t) => (t, None),
            ContentIn::Object { text, content_type } => (text, content_type),
        }
    }
}

/// The message type from the `type` field or the content object (TEXT by default).
pub fn message_type(
    explicit: Option<String>,
    from_content: Option<String>,
) -> Result<MessageType, Error> {
    match explicit.or(from_content) {
        None => Ok(MessageType::Text),
        Some(t) => MessageType::parse(&t).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidMessageType,
                format!("unknown message type {t:?}"),
            )
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    room_id: RoomId,
    content: ContentIn,
    #[serde(rename = "type", default)]
    message_type: Option<String>,
    #[serde(default)]
    temp_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    thread_id: Option<MessageId>,
    #[serde(default, deserialize_with = "de_ids")]
    mentions: Vec<UserId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadIn {
    #[serde(
        alias = "threadId",
        alias = "parentId",
        deserialize_with = "crate::views::de_id"
    )]
    parent_message_id: MessageId,
    content: ContentIn,
    #[serde(rename = "type", default)]
    message_type: Option<String>,
    #[serde(default)]
    temp_id: Option<String>,
    #[serde(default, deserialize_with = "de_ids")]
    mentions: Vec<UserId>,
}

/// `tempId` and `roomId` of a body that failed to parse, for the FAILED status.
pub fn loose_ids(body: &[u8]) -> (Option<String>, Option<RoomId>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let temp_id = v.get("tempId").and_then(|t| t.as_str()).map(str::to_owned);
    let room_id = v.get("roomId").and_then(|r| match r {
        serde_json::Value::String(s) => s.trim().parse().ok().map(RoomId),
        serde_json::Value::Number(n) => n.as_i64().map(RoomId),
        _ => None,
    });
    (temp_id, room_id)
}

fn send_failure(error: Error, body: &[u8]) -> Failure {
    let (temp_id, room_id) = loose_ids(body);
    Failure {
        error,
        temp_id,
        room_id,
        reported: false,
        is_send: true,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIdIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    message_id: MessageId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomIdIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    room_id: RoomId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    message_id: MessageId,
    #[serde(alias = "newContent", alias = "text")]
    content: ContentIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    message_id: MessageId,
    #[serde(alias = "reactionType", alias = "code")]
    reaction: String,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    room_id: RoomId,
    #[serde(alias = "typing", default = "yes")]
    is_typing: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadIn {
    #[serde(default, deserialize_with = "de_opt_id")]
    message_id: Option<MessageId>,
    #[serde(default, deserialize_with = "de_opt_id")]
    room_id: Option<RoomId>,
    #[serde(default)]
    last_seq: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    room_id: RoomId,
    #[serde(default)]
    last_seq: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_id")]
    last_message_id: Option<MessageId>,
    #[serde(default)]
    direction: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncView {
    room_id: String,
    direction: &'static str,
    messages: Vec<MessageView>,
    has_more: bool,
    latest_seq: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChatIn {
    action: String,
    #[serde(default, deserialize_with = "de_opt_id")]
    room_id: Option<RoomId>,
    #[serde(default)]
    title: Option<String>,
    #[serde(
        default,
        alias = "userIds",
        alias = "members",
        deserialize_with = "de_ids"
    )]
    participant_ids: Vec<UserId>,
    #[serde(default, deserialize_with = "de_opt_id")]
    user_id: Option<UserId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadQueryIn {
    #[serde(
        alias = "parentId",
        alias = "rootId",
        alias = "messageId",
        alias = "parentMessageId"
    )]
    #[serde(deserialize_with = "crate::views::de_id")]
    thread_id: MessageId,
    #[serde(default, alias = "lastSeq")]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadsIn {
    #[serde(deserialize_with = "crate::views::de_id")]
    room_id: RoomId,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThreadMessagesView {
    thread_id: String,
    messages: Vec<MessageView>,
}

fn user_reply(actor: UserId, queue: UserQueue, event_type: &str, body: String) -> Reply {
    Reply {
        topic: Topic::User(actor),
        filter: Filter::User(queue),
        payload: Payload::json(event_type, &body, false),
    }
}

/// Handles `SEND` to `destination` with `body` for `actor`.
pub(crate) async fn handle(
    engine: &ChatEngine,
    actor: UserId,
    destination: &str,
    body: &[u8],
) -> Handled {
    match destination {
        "/app/chat" => chat(engine, actor, body).await,
        "/app/thread" => thread_reply(engine, actor, body).await,
        "/app/edit" => {
            let req: EditIn = parse(body)?;
            engine
                .edit_message(actor, req.message_id, &req.content.into_parts().0)
                .await?;
            Ok(Outcome::default())
        }
        "/app/delete" => {
            let req: MessageIdIn = parse(body)?;
            engine.delete_message(actor, req.message_id).await?;
            Ok(Outcome::default())
        }
        "/app/reaction" => reaction(engine, actor, body).await,
        "/app/pin/toggle" | "/app/pin" => {
            let req: MessageIdIn = parse(body)?;
            let m = engine.toggle_pin(actor, req.message_id).await?;
            Ok(Outcome {
                receipt: vec![("pinned", m.pin.is_some().to_string())],
                ..Outcome::default()
            })
        }
        "/app/typing" => {
            let req: TypingIn = parse(body)?;
            engine.typing(actor, req.room_id, req.is_typing).await?;
            Ok(Outcome::default())
        }
        "/app/read" => {
            let req: ReadIn = parse(body)?;
            let (room, target) = match (req.message_id, req.room_id) {
                (Some(id), room) => {
                    let room = match room {
                        Some(r) => r,
                        None => engine.message(actor, id).await?.message.room_id,
                    };
                    (room, ReadTarget::Message(id))
                }
                (None, Some(room)) => (
                    room,
                    req.last_seq
                        .map_or(ReadTarget::All, |s| ReadTarget::Seq(Seq(s))),
                ),
                (None, None) => return Err(invalid("messageId or roomId is required").into()),
            };
            let seq = engine.mark_read(actor, room, target).await?;
            Ok(Outcome {
                receipt: vec![("last-read-seq", seq.0.to_string())],
                ..Outcome::default()
            })
        }
        "/app/read-all" => {
            let req: RoomIdIn = parse(body)?;
            let seq = engine
                .mark_read(actor, req.room_id, ReadTarget::All)
                .await?;
            Ok(Outcome {
                receipt: vec![("last-read-seq", seq.0.to_string())],
                ..Outcome::default()
            })
        }
        "/app/sync" => sync(engine, actor, body).await,
        "/app/rooms" => rooms(engine, actor).await,
        "/app/active" => {
            let req: RoomIdIn = parse(body)?;
            let users = engine.active_users(actor, req.room_id).await?;
            let view = ActiveUsersView {
                room_id: req.room_id.to_string(),
                user_ids: users.iter().map(ToString::to_string).collect(),
            };
            let body = to_json(&view);
            Ok(Outcome {
                replies: vec![
                    Reply {
                        topic: Topic::Room(req.room_id),
                        filter: Filter::RoomActive,
                        payload: Payload::json("ACTIVE_USERS", &body, false),
                    },
                    user_reply(actor, UserQueue::Active, "ACTIVE_USERS", body),
                ],
                receipt: Vec::new(),
            })
        }
        "/app/group-chat" => group_chat(engine, actor, body).await,
        "/app/thread/messages" => {
            let req: ThreadQueryIn = parse(body)?;
            let detail = engine
                .thread(
                    actor,
                    req.thread_id,
                    req.after.map(Seq),
                    req.limit.unwrap_or(0),
                )
                .await?;
            let view = ThreadMessagesView {
                thread_id: detail.root.id.to_string(),
                messages: detail.replies.iter().map(MessageView::from).collect(),
            };
            Ok(Outcome {
                replies: vec![user_reply(
                    actor,
                    UserQueue::Thread,
                    "THREAD_MESSAGES",
                    to_json(&view),
                )],
                receipt: Vec::new(),
            })
        }
        "/app/thread/detail" => {
            let req: ThreadQueryIn = parse(body)?;
            let detail = engine
                .thread(
                    actor,
                    req.thread_id,
                    req.after.map(Seq),
                    req.limit.unwrap_or(0),
                )
                .await?;
            let view = ThreadView {
                root: MessageView::from(&detail.root),
                replies: detail.replies.iter().map(MessageView::from).collect(),
            };
            Ok(Outcome {
                replies: vec![user_reply(
                    actor,
                    UserQueue::Thread,
                    "THREAD_DETAIL",
                    to_json(&view),
                )],
                receipt: Vec::new(),
            })
        }
        "/app/threads" => {
            let req: ThreadsIn = parse(body)?;
            let list = engine
                .threads(actor, req.room_id, req.limit.unwrap_or(0))
                .await?;
            let views: Vec<ThreadSummaryView> = list
                .iter()
                .map(|t| ThreadSummaryView {
                    root: MessageView::from(&t.root),
                    reply_count: t.reply_count,
                    last_reply: t.last_reply.as_ref().map(MessageView::from),
                    participants: t.participants.iter().map(ToString::to_string).collect(),
                })
                .collect();
            Ok(Outcome {
                replies: vec![user_reply(
                    actor,
                    UserQueue::Thread,
                    "THREAD_LIST",
                    to_json(&views),
                )],
                receipt: Vec::new(),
            })
        }
        _ => Err(Error::new(
            ErrorCode::NotFound,
            format!("unknown destination {destination:?}"),
        )
        .into()),
    }
}

async fn send(engine: &ChatEngine, actor: UserId, cmd: SendMessage) -> Handled {
    let temp_id = cmd.temp_id.clone();
    let room_id = cmd.room_id;
    match engine.send_message(actor, cmd).await {
        Ok(r) => Ok(Outcome {
            replies: Vec::new(),
            receipt: vec![
                ("status", "SENT_TO_KAFKA".to_owned()),
                ("persisted-id", r.message_id.to_string()),
                ("seq", r.seq.0.to_string()),
                ("temp-id", r.temp_id),
                ("duplicate", r.duplicate.to_string()),
            ],
        }),
        Err(error) => Err(Failure {
            error,
            temp_id: Some(temp_id),
            room_id: Some(room_id),
            reported: true,
            is_send: true,
        }),
    }
}

async fn chat(engine: &ChatEngine, actor: UserId, body: &[u8]) -> Handled {
    let req: ChatIn = parse(body).map_err(|e| send_failure(e, body))?;
    let (text, content_type) = req.content.into_parts();
    let message_type = message_type(req.message_type, content_type).map_err(|e| Failure {
        temp_id: req.temp_id.clone(),
        room_id: Some(req.room_id),
        ..send_failure(e, body)
    })?;
    let cmd = SendMessage {
        room_id: req.room_id,
        text,
        message_type,
        temp_id: req.temp_id.unwrap_or_default(),
        thread_id: req.thread_id,
        mentions: req.mentions,
    };
    send(engine, actor, cmd).await
}

async fn thread_reply(engine: &ChatEngine, actor: UserId, body: &[u8]) -> Handled {
    let req: ThreadIn = parse(body).map_err(|e| send_failure(e, body))?;
    let temp_id = req.temp_id.clone();
    let fail = |error: Error, room_id: Option<RoomId>| Failure {
        error,
        temp_id: temp_id.clone(),
        room_id,
        reported: false,
        is_send: true,
    };
    let parent = engine
        .message(actor, req.parent_message_id)
        .await
        .map_err(|e| fail(e, None))?;
    let room_id = parent.message.room_id;
    let (text, content_type) = req.content.into_parts();
    let message_type =
        message_type(req.message_type, content_type).map_err(|e| fail(e, Some(room_id)))?;
    let cmd = SendMessage {
        room_id,
        text,
        message_type,
        temp_id: req.temp_id.unwrap_or_default(),
        thread_id: Some(req.parent_message_id),
        mentions: req.mentions,
    };
    send(engine, actor, cmd).await
}

async fn reaction(engine: &ChatEngine, actor: UserId, body: &[u8]) -> Handled {
    let req: ReactionIn = parse(body)?;
    let code = req.reaction.trim().to_ascii_lowercase();
    let action = req.action.as_deref().map(str::to_ascii_uppercase);
    let add = match action.as_deref() {
        Some("ADD") => true,
        Some("REMOVE") => false,
        None | Some("TOGGLE") => {
            let record = engine.message(actor, req.message_id).await?;
            !record
                .message
                .reactions
                .get(&code)
                .is_some_and(|users| users.contains(&actor))
        }
        Some(other) => return Err(invalid(format!("unknown action {other:?}")).into()),
    };
    if add {
        engine.add_reaction(actor, req.message_id, &code).await?;
    } else {
        engine.remove_reaction(actor, req.message_id, &code).await?;
    }
    Ok(Outcome {
        receipt: vec![("reaction", if add { "ADDED" } else { "REMOVED" }.to_owned())],
        ..Outcome::default()
    })
}

async fn sync(engine: &ChatEngine, actor: UserId, body: &[u8]) -> Handled {
    let req: SyncIn = parse(body)?;
    let has_cursor = req.last_seq.is_some() || req.last_message_id.is_some();
    let direction = match req
        .direction
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        Some("INITIAL") => SyncDirection::Initial,
        Some("BEFORE") => SyncDirection::Before,
        Some("AFTER") => SyncDirection::After,
        None if has_cursor => SyncDirection::After,
        None => SyncDirection::Initial,
        Some(other) => return Err(invalid(format!("unknown direction {other:?}")).into()),
    };
    let page = engine
        .sync(
            actor,
            SyncRequest {
                room_id: req.room_id,
                last_seq: req.last_seq.map(Seq),
                last_message_id: req.last_message_id,
                direction,
            },
        )
        .await?;
    let view = SyncView {
        room_id: page.room_id.to_string(),
        direction: match direction {
            SyncDirection::Initial => "INITIAL",
            SyncDirection::Before => "BEFORE",
            SyncDirection::After => "AFTER",
        },
        messages: page
            .messages
            .iter()
            .map(|r| MessageView::new(&r.message, u64::from(r.read_count)))
            .collect(),
        has_more: page.has_more,
        latest_seq: page.latest_seq.0,
    };
    Ok(Outcome {
        replies: vec![user_reply(actor, UserQueue::Sync, "SYNC", to_json(&view))],
        receipt: Vec::new(),
    })
}

async fn rooms(engine: &ChatEngine, actor: UserId) -> Handled {
    let list = engine.rooms_of(actor).await?;
    let mut ids: Vec<UserId> = Vec::new();
    let mut seen = HashSet::new();
    for s in &list {
        for p in &s.participants {
            if seen.insert(p.user_id) {
                ids.push(p.user_id);
            }
        }
    }
    let users = engine.users(&ids).await?;
    let views: Vec<RoomView> = list
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
        .collect();
    Ok(Outcome {
        replies: vec![user_reply(
            actor,
            UserQueue::Rooms,
            "ROOM_LIST",
            to_json(&views),
        )],
        receipt: Vec::new(),
    })
}

async fn group_chat(engine: &ChatEngine, actor: UserId, body: &[u8]) -> Handled {
    let req: GroupChatIn = parse(body)?;
    let room = || req.room_id.ok_or_else(|| invalid("roomId is required"));
    match req.action.to_ascii_uppercase().as_str() {
        "CREATE" => {
            let title = req.title.as_deref().unwrap_or_default();
            let details = engine
                .create_group_room(actor, title, req.participant_ids.clone())
                .await?;
            let users = engine
                .users(
                    &details
                        .participants
                        .iter()
                        .map(|p| p.user_id)
                        .collect::<Vec<_>>(),
                )
                .await?;
            let view = RoomView::new(&details.room, actor, &details.participants, &users, None, 0);
            Ok(Outcome {
                replies: vec![user_reply(
                    actor,
                    UserQueue::Rooms,
                    "ROOM_CREATED",
                    to_json(&view),
                )],
                receipt: vec![("room-id", details.room.id.to_string())],
            })
        }
        "ADD_PARTICIPANT" | "ADD_PARTICIPANTS" => {
            let mut users = req.participant_ids.clone();
            users.extend(req.user_id);
            if users.is_empty() {
                return Err(invalid("participantIds or userId is required").into());
            }
            engine.add_participants(actor, room()?, users).await?;
            Ok(Outcome::default())
        }
        "REMOVE_PARTICIPANT" => {
            let user = req.user_id.or(req.participant_ids.first().copied());
            let user = user.ok_or_else(|| invalid("userId is required"))?;
            engine.remove_participant(actor, room()?, user).await?;
            Ok(Outcome::default())
        }
        "UPDATE_TITLE" => {
            let title = req
                .title
                .as_deref()
                .ok_or_else(|| invalid("title is required"))?;
            engine.update_room_title(actor, room()?, title).await?;
            Ok(Outcome::default())
        }
        "LEAVE" => {
            engine.leave_room(actor, room()?).await?;
            Ok(Outcome::default())
        }
        other => Err(invalid(format!("unknown action {other:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_payload_accepts_both_content_shapes() {
        let a: ChatIn =
            parse(br#"{"roomId":"5","content":"hi","tempId":"t1","mentions":["2",3]}"#).unwrap();
        assert_eq!(a.room_id, RoomId(5));
        assert_eq!(a.mentions, vec![UserId(2), UserId(3)]);
        let (text, ty) = a.content.into_parts();
        assert_eq!((text.as_str(), ty), ("hi", None));
        let b: ChatIn = parse(
            br#"{"roomId":5,"content":{"text":"yo","type":"URL"},"tempId":"t2","threadId":"9"}"#,
        )
        .unwrap();
        assert_eq!(b.thread_id, Some(MessageId(9)));
        let (text, ty) = b.content.into_parts();
        assert_eq!(message_type(None, ty).unwrap(), MessageType::Url);
        assert_eq!(text, "yo");
        assert!(parse::<ChatIn>(br#"{"content":"x"}"#).is_err());
        assert!(parse::<ChatIn>(b"not json").is_err());
        assert_eq!(
            message_type(Some("weird".into()), None).unwrap_err().code(),
            ErrorCode::InvalidMessageType
        );
    }

    #[test]
    fn loose_ids_recover_what_they_can() {
        assert_eq!(
            loose_ids(br#"{"tempId":"t","roomId":"7"}"#),
            (Some("t".into()), Some(RoomId(7)))
        );
        assert_eq!(
            loose_ids(br#"{"tempId":"t","roomId":7,"content":5}"#),
            (Some("t".into()), Some(RoomId(7)))
        );
        assert_eq!(loose_ids(b"{"), (None, None));
    }

    #[test]
    fn other_payloads() {
        let t: TypingIn = parse(br#"{"roomId":"1"}"#).unwrap();
        assert!(t.is_typing);
        let t: TypingIn = parse(br#"{"roomId":"1","typing":false}"#).unwrap();
        assert!(!t.is_typing);
        let r: ReadIn = parse(br#"{"roomId":"1","lastSeq":4}"#).unwrap();
        assert_eq!(
            (r.room_id, r.last_seq, r.message_id),
            (Some(RoomId(1)), Some(4), None)
        );
        let e: EditIn = parse(br#"{"messageId":"3","newContent":"x"}"#).unwrap();
        assert_eq!(e.content.into_parts().0, "x");
        let g: GroupChatIn =
            parse(br#"{"action":"CREATE","title":"t","userIds":["2","3"]}"#).unwrap();
        assert_eq!(g.participant_ids, vec![UserId(2), UserId(3)]);
        let q: ThreadQueryIn = parse(br#"{"parentId":"8"}"#).unwrap();
        assert_eq!(q.thread_id, MessageId(8));
        let rx: ReactionIn = parse(br#"{"messageId":"1","reactionType":"LIKE"}"#).unwrap();
        assert_eq!(rx.reaction, "LIKE");
        // An empty body is an empty object.
        assert!(parse::<RoomIdIn>(b"  ").is_err());
    }
}
