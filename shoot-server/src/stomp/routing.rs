//! Destinations: parsing what clients subscribe to, routing bus events to destination kinds
//! and rendering their JSON bodies.
//!
//! # Subscribable destinations
//!
//! | destination | bus topic | authorisation |
//! |---|---|---|
//! | `/topic/messages/{roomId}` | `Room(roomId)` | participant of the room |
//! | `/topic/message/status/{roomId}` | `Room(roomId)` | participant |
//! | `/topic/typing/{roomId}` | `Room(roomId)` | participant |
//! | `/topic/active/{roomId}` | `Room(roomId)` | participant |
//! | `/topic/thread/{parentMessageId}` | `Room(room of the parent)` | can see the parent message |
//! | `/user/queue/{name}` | `User(caller)` | always the caller's own |
//! | `/queue/user/{userId}` | `User(userId)` | only `userId` = caller; receives every user-queue event |
//!
//! User queue names: `rooms`, `room-updates`, `notifications`, `sync`, `errors`,
//! `message-status`, `presence`, `read`, `thread`, `active`.
//!
//! # Event bodies
//!
//! Every MESSAGE frame carries an `event-type` header naming what it is, and a JSON body:
//!
//! | destination | event-type | body |
//! |---|---|---|
//! | `/topic/messages/{roomId}`, `/topic/thread/{rootId}` | `MESSAGE_CREATED`, `MESSAGE_EDITED` | the `MessageView` itself |
//! | same | `MESSAGE_DELETED`, `REACTION_ADDED`, `REACTION_REMOVED`, `MESSAGE_PINNED`, `MESSAGE_UNPINNED`, `URL_PREVIEW_ADDED`, `THREAD_UPDATED` | `{type, message: MessageView, by, reaction?, userId?}` (`type` = the event type) |
//! | `/topic/messages/{roomId}` | `READ` | `{type: "READ", roomId, userId, lastReadSeq, timestamp}` |
//! | `/topic/messages/{roomId}` | `ROOM_CHANGED` | `{type: "ROOM_CHANGED", room: RoomChangeView}` |
//! | `/topic/message/status/{roomId}`, `/user/queue/message-status` | `MESSAGE_STATUS` | `StatusView` `{tempId, status, persistedId, errorMessage, errorCode, createdAt, roomId, seq}` |
//! | `/user/queue/errors` | `MESSAGE_FAILED` (a FAILED status), `ERROR` (a rejected request) | `{errorCode, message, destination, tempId?, roomId?}` |
//! | `/topic/typing/{roomId}` | `TYPING` | `{roomId, userId, isTyping, timestamp}` |
//! | `/topic/active/{roomId}` | `ACTIVE_USERS` | `{roomId, userIds}` |
//! | `/user/queue/room-updates` | `ROOM_UPDATE` | `RoomUpdateView` `{roomId, unreadCount, lastMessage, timestamp}` |
//! | `/user/queue/notifications` | `NOTIFICATION` | `NotificationView` |
//! | `/user/queue/rooms` | `ROOM_CHANGED` / `ROOM_LIST` (reply to `/app/rooms`) | `RoomChangeView` / `[RoomView]` |
//! | `/user/queue/presence` | `USER_STATUS` | `{userId, status, lastSeenAt}` |
//! | `/user/queue/read` | `READ` | as on `/topic/messages` |
//!
//! The message-shaped bodies keep the reference clients working (they read a `MessageView`
//! from `/topic/messages`); the `event-type` header is authoritative for everything else
//! (the wrapper's `type` holds the event type, a `MessageView`'s `type` its content type).
//! Typing, active-user and presence frames are droppable under back-pressure.

use serde::Serialize;
use shoot_core::events::{Event, MessageChange, Topic};
use shoot_core::messages::MessageStatus;
use shoot_core::{Error, ErrorCode, MessageId, RoomId, UserId};

use super::hub::Payload;
use crate::views::{
    MessageView, NotificationView, ReadView, RoomChangeView, RoomUpdateView, StatusView,
};

/// A queue of the caller's user topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserQueue {
    /// `/user/queue/rooms`: room changes and room-list replies.
    Rooms,
    /// `/user/queue/room-updates`: unread counts and last messages.
    RoomUpdates,
    /// `/user/queue/notifications`.
    Notifications,
    /// `/user/queue/sync`: sync replies.
    Sync,
    /// `/user/queue/errors`: failures of the caller's requests and sends.
    Errors,
    /// `/user/queue/message-status`: status of the caller's messages.
    MessageStatus,
    /// `/user/queue/presence`: friends' status changes.
    Presence,
    /// `/user/queue/read`: the caller's read-cursor moves (other sessions).
    Read,
    /// `/user/queue/thread`: thread replies to `/app/thread/*` requests.
    Thread,
    /// `/user/queue/active`: replies to `/app/active`.
    Active,
}

impl UserQueue {
    /// Every queue.
    pub const ALL: [UserQueue; 10] = [
        UserQueue::Rooms,
        UserQueue::RoomUpdates,
        UserQueue::Notifications,
        UserQueue::Sync,
        UserQueue::Errors,
        UserQueue::MessageStatus,
        UserQueue::Presence,
        UserQueue::Read,
        UserQueue::Thread,
        UserQueue::Active,
    ];

    /// The queue's name in `/user/queue/{name}`.
    pub fn name(self) -> &'static str {
        match self {
            UserQueue::Rooms => "rooms",
            UserQueue::RoomUpdates => "room-updates",
            UserQueue::Notifications => "notifications",
            UserQueue::Sync => "sync",
            UserQueue::Errors => "errors",
            UserQueue::MessageStatus => "message-status",
            UserQueue::Presence => "presence",
            UserQueue::Read => "read",
            UserQueue::Thread => "thread",
            UserQueue::Active => "active",
        }
    }

    /// The queue named `name`.
    pub fn parse(name: &str) -> Option<UserQueue> {
        UserQueue::ALL.into_iter().find(|q| q.name() == name)
    }
}

/// Which events of a bus topic a subscription receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `/topic/messages/{roomId}`.
    RoomMessages,
    /// `/topic/message/status/{roomId}`.
    RoomStatus,
    /// `/topic/typing/{roomId}`.
    RoomTyping,
    /// `/topic/active/{roomId}`.
    RoomActive,
    /// `/topic/thread/{rootId}`.
    Thread(MessageId),
    /// One user queue.
    User(UserQueue),
    /// `/queue/user/{me}`: every user-queue event.
    UserAll,
}

/// A destination a client may subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A room destination (`filter` is one of the `Room*` filters).
    Room(RoomId, Filter),
    /// `/topic/thread/{parentMessageId}`.
    Thread(MessageId),
    /// `/user/queue/{name}`.
    UserQueue(UserQueue),
    /// `/queue/user/{userId}`.
    UserAlias(UserId),
}

/// Parses a SUBSCRIBE destination; `None` when unknown.
pub fn parse_destination(dest: &str) -> Option<Destination> {
    fn id(s: &str) -> Option<i64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    let room = |rest: &str, f: Filter| id(rest).map(|r| Destination::Room(RoomId(r), f));
    if let Some(rest) = dest.strip_prefix("/topic/messages/") {
        room(rest, Filter::RoomMessages)
    } else if let Some(rest) = dest.strip_prefix("/topic/message/status/") {
        room(rest, Filter::RoomStatus)
    } else if let Some(rest) = dest.strip_prefix("/topic/typing/") {
        room(rest, Filter::RoomTyping)
    } else if let Some(rest) = dest.strip_prefix("/topic/active/") {
        room(rest, Filter::RoomActive)
    } else if let Some(rest) = dest.strip_prefix("/topic/thread/") {
        id(rest).map(|m| Destination::Thread(MessageId(m)))
    } else if let Some(rest) = dest.strip_prefix("/user/queue/") {
        UserQueue::parse(rest).map(Destination::UserQueue)
    } else if let Some(rest) = dest.strip_prefix("/queue/user/") {
        id(rest).map(|u| Destination::UserAlias(UserId(u)))
    } else {
        None
    }
}

/// What must be checked before subscribing `actor` to a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Subscribe to `Room(room)` with `filter` once `actor` is a participant.
    Room(RoomId, Filter),
    /// Subscribe to the room of this message, filter `Thread(root)`, once `actor` can see it.
    Message(MessageId),
    /// Subscribe to this topic with this filter, no check needed.
    Granted(Topic, Filter),
}

/// The access check for `actor` subscribing to `dest` (pure; the session runs the engine
/// checks it names).
pub fn access(actor: UserId, dest: Destination) -> Result<Access, Error> {
    match dest {
        Destination::Room(room, filter) => Ok(Access::Room(room, filter)),
        Destination::Thread(parent) => Ok(Access::Message(parent)),
        Destination::UserQueue(q) => Ok(Access::Granted(Topic::User(actor), Filter::User(q))),
        Destination::UserAlias(user) if user == actor => {
            Ok(Access::Granted(Topic::User(actor), Filter::UserAll))
        }
        Destination::UserAlias(_) => Err(Error::new(
            ErrorCode::RoomPermissionDenied,
            "only your own user queue can be subscribed",
        )),
    }
}

/// Appends to `out` the destination kinds `event` on `topic` is delivered to, in order.
pub fn routes(topic: Topic, event: &Event, out: &mut Vec<Filter>) {
    match topic {
        Topic::Room(_) => match event {
            Event::MessageCreated(m) => {
                out.push(Filter::RoomMessages);
                if let Some(root) = m.thread_id {
                    out.push(Filter::Thread(root));
                }
            }
            Event::MessageChanged {
                message, change, ..
            } => {
                out.push(Filter::RoomMessages);
                if let Some(root) = message.thread_id {
                    out.push(Filter::Thread(root));
                } else if *change == MessageChange::ThreadUpdated {
                    out.push(Filter::Thread(message.id));
                }
            }
            Event::ReadReceipt { .. } | Event::RoomChanged { .. } => {
                out.push(Filter::RoomMessages);
            }
            Event::Status(_) => out.push(Filter::RoomStatus),
            Event::Typing { .. } => out.push(Filter::RoomTyping),
            Event::ActiveUsers { .. } => out.push(Filter::RoomActive),
            // Presence is delivered on the user topics of friends; room topics show it
            // through ActiveUsers.
            Event::UserStatusChanged { .. } | Event::RoomUpdate { .. } | Event::Notification(_) => {
            }
        },
        Topic::User(_) => match event {
            Event::RoomUpdate { .. } => out.push(Filter::User(UserQueue::RoomUpdates)),
            Event::Notification(_) => out.push(Filter::User(UserQueue::Notifications)),
            Event::RoomChanged { .. } => out.push(Filter::User(UserQueue::Rooms)),
            Event::Status(s) => {
                out.push(Filter::User(UserQueue::MessageStatus));
                if s.status == MessageStatus::Failed {
                    out.push(Filter::User(UserQueue::Errors));
                }
            }
            Event::UserStatusChanged { .. } => out.push(Filter::User(UserQueue::Presence)),
            Event::ReadReceipt { .. } => out.push(Filter::User(UserQueue::Read)),
            Event::MessageCreated(_)
            | Event::MessageChanged { .. }
            | Event::Typing { .. }
            | Event::ActiveUsers { .. } => {}
        },
    }
}

/// `{type, message, by, reaction?, userId?}`: a change of an existing message.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageEventView<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    message: MessageView,
    by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

/// `{type: "READ", roomId, userId, lastReadSeq, timestamp}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadEventView {
    #[serde(rename = "type")]
    event_type: &'static str,
    #[serde(flatten)]
    read: ReadView,
    timestamp: String,
}

/// `{type: "ROOM_CHANGED", room}`.
#[derive(Serialize)]
struct RoomEventView {
    #[serde(rename = "type")]
    event_type: &'static str,
    room: RoomChangeView,
}

/// `{roomId, userId, isTyping, timestamp}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypingView {
    pub(crate) room_id: String,
    pub(crate) user_id: String,
    pub(crate) is_typing: bool,
    pub(crate) timestamp: String,
}

/// `{roomId, userIds}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActiveUsersView {
    pub(crate) room_id: String,
    pub(crate) user_ids: Vec<String>,
}

/// `{userId, status, lastSeenAt}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PresenceView {
    user_id: String,
    status: &'static str,
    last_seen_at: Option<String>,
}

/// `{errorCode, message, destination, tempId?, roomId?}`: what `/user/queue/errors` carries.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorView {
    /// Stable error code.
    pub error_code: String,
    /// Human-readable reason.
    pub message: String,
    /// The destination of the failed request.
    pub destination: String,
    /// The client's tempId, for sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_id: Option<String>,
    /// The room concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

/// Serialises a view (these views cannot fail to serialise; `null` if one ever did).
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Renders `event` for destination kind `filter` (one of the kinds [`routes`] gave for it).
pub fn render(filter: Filter, event: &Event) -> Payload {
    let (event_type, body, droppable) = render_parts(filter, event);
    Payload::json(event_type, &body, droppable)
}

fn render_parts(filter: Filter, event: &Event) -> (&'static str, String, bool) {
    match (filter, event) {
        (Filter::User(UserQueue::Errors), Event::Status(s)) => {
            let view = ErrorView {
                error_code: s
                    .error_code
                    .clone()
                    .unwrap_or_else(|| "SEND_FAILED".to_owned()),
                message: s
                    .error_message
                    .clone()
                    .unwrap_or_else(|| "message failed".to_owned()),
                destination: "/app/chat".to_owned(),
                temp_id: s.temp_id.as_deref().map(str::to_owned),
                room_id: Some(s.room_id.to_string()),
            };
            ("MESSAGE_FAILED", to_json(&view), false)
        }
        (_, Event::MessageCreated(m)) => ("MESSAGE_CREATED", to_json(&MessageView::from(m)), false),
        (
            _,
            Event::MessageChanged {
                message,
                change: MessageChange::Edited,
                ..
            },
        ) => (
            "MESSAGE_EDITED",
            to_json(&MessageView::from(message)),
            false,
        ),
        (
            _,
            Event::MessageChanged {
                message,
                change,
                by,
            },
        ) => {
            let (event_type, reaction, user_id) = match change {
                MessageChange::Deleted => ("MESSAGE_DELETED", None, None),
                MessageChange::Reaction {
                    code,
                    user_id,
                    added,
                } => (
                    if *added {
                        "REACTION_ADDED"
                    } else {
                        "REACTION_REMOVED"
                    },
                    Some(code.as_str()),
                    Some(user_id.to_string()),
                ),
                MessageChange::Pinned => ("MESSAGE_PINNED", None, None),
                MessageChange::Unpinned => ("MESSAGE_UNPINNED", None, None),
                MessageChange::PreviewAdded => ("URL_PREVIEW_ADDED", None, None),
                MessageChange::ThreadUpdated => ("THREAD_UPDATED", None, None),
                MessageChange::Edited => ("MESSAGE_EDITED", None, None),
            };
            let view = MessageEventView {
                event_type,
                message: MessageView::from(message),
                by: by.to_string(),
                reaction,
                user_id,
            };
            (event_type, to_json(&view), false)
        }
        (_, Event::Status(s)) => ("MESSAGE_STATUS", to_json(&StatusView::from(s)), false),
        (
            _,
            Event::Typing {
                room_id,
                user_id,
                typing,
                at,
            },
        ) => {
            let view = TypingView {
                room_id: room_id.to_string(),
                user_id: user_id.to_string(),
                is_typing: *typing,
                timestamp: at.to_rfc3339(),
            };
            ("TYPING", to_json(&view), true)
        }
        (
            _,
            Event::ReadReceipt {
                room_id,
                user_id,
                last_read_seq,
                at,
            },
        ) => {
            let view = ReadEventView {
                event_type: "READ",
                read: ReadView {
                    room_id: room_id.to_string(),
                    user_id: user_id.to_string(),
                    last_read_seq: last_read_seq.0,
                },
                timestamp: at.to_rfc3339(),
            };
            ("READ", to_json(&view), false)
        }
        (_, Event::ActiveUsers { room_id, user_ids }) => {
            let view = ActiveUsersView {
                room_id: room_id.to_string(),
                user_ids: user_ids.iter().map(ToString::to_string).collect(),
            };
            ("ACTIVE_USERS", to_json(&view), true)
        }
        (Filter::RoomMessages, Event::RoomChanged { room, change, by }) => {
            let view = RoomEventView {
                event_type: "ROOM_CHANGED",
                room: RoomChangeView::new(room, change, *by),
            };
            ("ROOM_CHANGED", to_json(&view), false)
        }
        (_, Event::RoomChanged { room, change, by }) => (
            "ROOM_CHANGED",
            to_json(&RoomChangeView::new(room, change, *by)),
            false,
        ),
        (
            _,
            Event::RoomUpdate {
                room_id,
                unread_count,
                last_message,
                at,
            },
        ) => {
            let view = RoomUpdateView::new(*room_id, *unread_count, last_message.as_deref(), *at);
            ("ROOM_UPDATE", to_json(&view), false)
        }
        (_, Event::Notification(n)) => ("NOTIFICATION", to_json(&NotificationView::from(n)), false),
        (
            _,
            Event::UserStatusChanged {
                user_id,
                status,
                last_seen_at,
            },
        ) => {
            let view = PresenceView {
                user_id: user_id.to_string(),
                status: status.as_str(),
                last_seen_at: last_seen_at.map(|t| t.to_rfc3339()),
            };
            ("USER_STATUS", to_json(&view), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoot_core::Timestamp;
    use shoot_core::events::StatusUpdate;
    use shoot_core::ids::Seq;
    use shoot_core::messages::Message;

    fn check_parse(dest: &str, expect: Option<Destination>) {
        assert_eq!(parse_destination(dest), expect, "{dest}");
    }

    #[test]
    fn parses_destinations() {
        use Destination as D;
        check_parse(
            "/topic/messages/12",
            Some(D::Room(RoomId(12), Filter::RoomMessages)),
        );
        check_parse(
            "/topic/message/status/12",
            Some(D::Room(RoomId(12), Filter::RoomStatus)),
        );
        check_parse(
            "/topic/typing/3",
            Some(D::Room(RoomId(3), Filter::RoomTyping)),
        );
        check_parse(
            "/topic/active/3",
            Some(D::Room(RoomId(3), Filter::RoomActive)),
        );
        check_parse("/topic/thread/99", Some(D::Thread(MessageId(99))));
        check_parse("/user/queue/rooms", Some(D::UserQueue(UserQueue::Rooms)));
        check_parse(
            "/user/queue/room-updates",
            Some(D::UserQueue(UserQueue::RoomUpdates)),
        );
        check_parse("/user/queue/errors", Some(D::UserQueue(UserQueue::Errors)));
        check_parse("/user/queue/sync", Some(D::UserQueue(UserQueue::Sync)));
        check_parse("/queue/user/5", Some(D::UserAlias(UserId(5))));
        for q in UserQueue::ALL {
            check_parse(&format!("/user/queue/{}", q.name()), Some(D::UserQueue(q)));
        }
        for bad in [
            "",
            "/topic/messages/",
            "/topic/messages/abc",
            "/topic/messages/-1",
            "/topic/messages/1/2",
            "/topic/messages/99999999999999999999",
            "/topic/other/1",
            "/user/queue/secret",
            "/user/queue/",
            "/queue/user/x",
            "/app/chat",
            "topic/messages/1",
        ] {
            check_parse(bad, None);
        }
    }

    #[test]
    fn access_rules() {
        let me = UserId(5);
        let check = |dest: &str, expect: Result<Access, ErrorCode>| {
            let got = access(me, parse_destination(dest).unwrap()).map_err(|e| e.code());
            assert_eq!(got, expect, "{dest}");
        };
        check(
            "/topic/messages/1",
            Ok(Access::Room(RoomId(1), Filter::RoomMessages)),
        );
        check(
            "/topic/typing/1",
            Ok(Access::Room(RoomId(1), Filter::RoomTyping)),
        );
        check("/topic/thread/8", Ok(Access::Message(MessageId(8))));
        check(
            "/user/queue/notifications",
            Ok(Access::Granted(
                Topic::User(me),
                Filter::User(UserQueue::Notifications),
            )),
        );
        check(
            "/queue/user/5",
            Ok(Access::Granted(Topic::User(me), Filter::UserAll)),
        );
        check("/queue/user/6", Err(ErrorCode::RoomPermissionDenied));
    }

    fn message(thread: Option<i64>) -> Message {
        Message {
            seq: Seq(3),
            temp_id: Some("t1".into()),
            thread_id: thread.map(MessageId),
            status: MessageStatus::SentToKafka,
            ..Message::new(
                MessageId(10),
                RoomId(1),
                UserId(2),
                "hi",
                Timestamp(1_700_000_000_000),
            )
        }
    }

    fn status(s: MessageStatus) -> Event {
        Event::Status(StatusUpdate {
            room_id: RoomId(1),
            sender_id: UserId(2),
            temp_id: Some("t1".into()),
            message_id: None,
            seq: None,
            status: s,
            error_code: Some("ROOM_NOT_FOUND".into()),
            error_message: Some("room not found".into()),
            at: Timestamp(1_700_000_000_000),
        })
    }

    fn check_routes(topic: Topic, event: Event, expect: &[Filter]) {
        let mut out = Vec::new();
        routes(topic, &event, &mut out);
        assert_eq!(out, expect, "{event:?}");
    }

    #[test]
    fn routes_events() {
        let room = Topic::Room(RoomId(1));
        let user = Topic::User(UserId(2));
        let t = Timestamp(0);
        check_routes(
            room,
            Event::MessageCreated(message(None)),
            &[Filter::RoomMessages],
        );
        check_routes(
            room,
            Event::MessageCreated(message(Some(4))),
            &[Filter::RoomMessages, Filter::Thread(MessageId(4))],
        );
        check_routes(
            room,
            Event::MessageChanged {
                message: message(None),
                change: MessageChange::ThreadUpdated,
                by: UserId(2),
            },
            &[Filter::RoomMessages, Filter::Thread(MessageId(10))],
        );
        check_routes(
            room,
            Event::MessageChanged {
                message: message(None),
                change: MessageChange::Pinned,
                by: UserId(2),
            },
            &[Filter::RoomMessages],
        );
        check_routes(room, status(MessageStatus::Sending), &[Filter::RoomStatus]);
        check_routes(
            room,
            Event::Typing {
                room_id: RoomId(1),
                user_id: UserId(2),
                typing: true,
                at: t,
            },
            &[Filter::RoomTyping],
        );
        check_routes(
            room,
            Event::ActiveUsers {
                room_id: RoomId(1),
                user_ids: vec![],
            },
            &[Filter::RoomActive],
        );
        check_routes(
            room,
            Event::ReadReceipt {
                room_id: RoomId(1),
                user_id: UserId(2),
                last_read_seq: Seq(1),
                at: t,
            },
            &[Filter::RoomMessages],
        );
        check_routes(
            user,
            status(MessageStatus::Saved),
            &[Filter::User(UserQueue::MessageStatus)],
        );
        check_routes(
            user,
            status(MessageStatus::Failed),
            &[
                Filter::User(UserQueue::MessageStatus),
                Filter::User(UserQueue::Errors),
            ],
        );
        check_routes(
            user,
            Event::RoomUpdate {
                room_id: RoomId(1),
                unread_count: 2,
                last_message: None,
                at: t,
            },
            &[Filter::User(UserQueue::RoomUpdates)],
        );
        check_routes(
            user,
            Event::UserStatusChanged {
                user_id: UserId(3),
                status: shoot_core::identity::UserStatus::Online,
                last_seen_at: None,
            },
            &[Filter::User(UserQueue::Presence)],
        );
        check_routes(user, Event::MessageCreated(message(None)), &[]);
    }

    fn body(p: &Payload) -> serde_json::Value {
        let json = p.tail.split_once("\n\n").unwrap().1.trim_end_matches('\0');
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn renders_bodies() {
        let created = render(Filter::RoomMessages, &Event::MessageCreated(message(None)));
        assert!(
            created
                .tail
                .starts_with("event-type:MESSAGE_CREATED\ncontent-type:application/json\n")
        );
        let v = body(&created);
        assert_eq!(v["id"], "10");
        assert_eq!(v["content"]["text"], "hi");
        assert_eq!(v["type"], "TEXT");
        assert!(!created.droppable);
        let len: usize = created
            .tail
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, created.tail.split_once("\n\n").unwrap().1.len() - 1);

        let reacted = render(
            Filter::RoomMessages,
            &Event::MessageChanged {
                message: message(None),
                change: MessageChange::Reaction {
                    code: "like".into(),
                    user_id: UserId(3),
                    added: true,
                },
                by: UserId(3),
            },
        );
        let v = body(&reacted);
        assert_eq!(v["type"], "REACTION_ADDED");
        assert_eq!(v["reaction"], "like");
        assert_eq!(v["userId"], "3");
        assert_eq!(v["message"]["id"], "10");

        let failed = render(
            Filter::User(UserQueue::Errors),
            &status(MessageStatus::Failed),
        );
        let v = body(&failed);
        assert_eq!(v["errorCode"], "ROOM_NOT_FOUND");
        assert_eq!(v["tempId"], "t1");
        assert_eq!(v["destination"], "/app/chat");
        let st = body(&render(Filter::RoomStatus, &status(MessageStatus::Sending)));
        assert_eq!(st["status"], "SENDING");
        assert_eq!(st["tempId"], "t1");

        let typing = render(
            Filter::RoomTyping,
            &Event::Typing {
                room_id: RoomId(1),
                user_id: UserId(2),
                typing: true,
                at: Timestamp(0),
            },
        );
        assert!(typing.droppable);
        let v = body(&typing);
        assert_eq!(v["isTyping"], true);
        assert_eq!(v["roomId"], "1");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");

        let read = body(&render(
            Filter::RoomMessages,
            &Event::ReadReceipt {
                room_id: RoomId(1),
                user_id: UserId(2),
                last_read_seq: Seq(7),
                at: Timestamp(0),
            },
        ));
        assert_eq!(read["type"], "READ");
        assert_eq!(read["lastReadSeq"], 7);
    }
}
