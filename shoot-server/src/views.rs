//! JSON views (responses) and request bodies of the REST API, shared with STOMP and SSE.
//!
//! Wire rules: camelCase fields, ids as strings, times as RFC 3339 UTC with milliseconds.
//! Request bodies accept ids as strings or numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use shoot_core::bookmarks::Bookmark;
use shoot_core::events::{RoomChange, StatusUpdate};
use shoot_core::identity::User;
use shoot_core::limits::ReactionType;
use shoot_core::messages::{ForwardedFrom, Message, UrlPreview};
use shoot_core::notifications::Notification;
use shoot_core::rooms::{Participant, Room};
use shoot_core::schedule::ScheduledMessage;
use shoot_core::social::{FriendGroup, FriendRequest};
use shoot_core::{Timestamp, UserId};
use utoipa::ToSchema;

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn opt_time(t: Option<Timestamp>) -> Option<String> {
    t.map(time)
}

// ---------------------------------------------------------------------------------------------
// Ids in request bodies: strings or numbers.

/// Deserialises an id given as a JSON string or number.
pub fn de_id<'de, D: Deserializer<'de>, T: From<i64>>(d: D) -> Result<T, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(i64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::Num(n) => Ok(T::from(n)),
        Raw::Str(s) => s
            .trim()
            .parse::<i64>()
            .map(T::from)
            .map_err(|_| serde::de::Error::custom(format!("invalid id {s:?}"))),
    }
}

/// Deserialises an optional id given as a JSON string or number.
pub fn de_opt_id<'de, D: Deserializer<'de>, T: From<i64>>(d: D) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap<T: From<i64>>(#[serde(deserialize_with = "de_id")] T);
    Ok(Option::<Wrap<T>>::deserialize(d)?.map(|w| w.0))
}

/// Deserialises a list of ids given as JSON strings or numbers.
pub fn de_ids<'de, D: Deserializer<'de>, T: From<i64>>(d: D) -> Result<Vec<T>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap<T: From<i64>>(#[serde(deserialize_with = "de_id")] T);
    Ok(Vec::<Wrap<T>>::deserialize(d)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Users

/// A user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// E-mail (only in the caller's own view; null for other users).
    pub email: Option<String>,
    /// ONLINE, AWAY, BUSY or OFFLINE.
    pub status: String,
    /// Bio.
    pub bio: Option<String>,
    /// Avatar URL.
    pub profile_image_url: Option<String>,
    /// Code to find the user by.
    pub user_code: String,
    /// Last disconnect.
    pub last_seen_at: Option<String>,
}

impl UserView {
    /// The caller's own view (with e-mail).
    pub fn me(u: &User) -> UserView {
        UserView {
            email: Some(u.email.clone()),
            ..UserView::other(u)
        }
    }

    /// Another user's view (e-mail withheld).
    pub fn other(u: &User) -> UserView {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            nickname: u.nickname.clone(),
            email: None,
            status: u.status.as_str().to_owned(),
            bio: u.bio.clone(),
            profile_image_url: u.profile_image_url.clone(),
            user_code: u.user_code.clone(),
            last_seen_at: opt_time(u.last_seen_at),
        }
    }

    /// The view of `u` as seen by `viewer`.
    pub fn seen_by(u: &User, viewer: UserId) -> UserView {
        if u.id == viewer {
            UserView::me(u)
        } else {
            UserView::other(u)
        }
    }
}

/// Login / refresh answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// The user.
    pub user_id: String,
    /// Access token (Bearer).
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
}

impl From<crate::auth::TokenPair> for TokenView {
    fn from(p: crate::auth::TokenPair) -> TokenView {
        TokenView {
            user_id: p.user_id.to_string(),
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            expires_in: p.expires_in,
        }
    }
}

/// A friend request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FriendRequestView {
    /// Id.
    pub request_id: String,
    /// Sender.
    pub from_user: Option<UserView>,
    /// Recipient.
    pub to_user: Option<UserView>,
    /// PENDING, ACCEPTED, REJECTED or CANCELED.
    pub status: String,
    /// Creation time.
    pub created_at: String,
}

impl FriendRequestView {
    /// The view of `r` with the users looked up in `users`.
    pub fn new(r: &FriendRequest, users: &[User], viewer: UserId) -> FriendRequestView {
        let find = |id: UserId| {
            users
                .iter()
                .find(|u| u.id == id)
                .map(|u| UserView::seen_by(u, viewer))
        };
        FriendRequestView {
            request_id: r.id.to_string(),
            from_user: find(r.from),
            to_user: find(r.to),
            status: r.status.as_str().to_owned(),
            created_at: time(r.created_at),
        }
    }
}

/// Incoming and outgoing pending requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FriendRequestsView {
    /// Addressed to the caller.
    pub incoming: Vec<FriendRequestView>,
    /// Sent by the caller.
    pub outgoing: Vec<FriendRequestView>,
}

/// A friend group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FriendGroupView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Member user ids.
    pub member_ids: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&FriendGroup> for FriendGroupView {
    fn from(g: &FriendGroup) -> FriendGroupView {
        FriendGroupView {
            id: g.id.to_string(),
            name: g.name.clone(),
            description: g.description.clone(),
            member_ids: g.members.iter().map(ToString::to_string).collect(),
            created_at: time(g.created_at),
            updated_at: time(g.updated_at),
        }
    }
}

/// A friend recommendation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationView {
    /// The recommended user.
    pub user: UserView,
    /// Friends in common.
    pub mutual_friends: u32,
    /// Distance in the friendship graph.
    pub depth: u8,
}

// ---------------------------------------------------------------------------------------------
// Messages

/// Link preview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UrlPreviewView {
    /// URL.
    pub url: String,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Image.
    pub image_url: Option<String>,
    /// Site name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
}

impl From<&UrlPreview> for UrlPreviewView {
    fn from(p: &UrlPreview) -> UrlPreviewView {
        UrlPreviewView {
            url: p.url.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            image_url: p.image_url.clone(),
            site_name: p.site_name.clone(),
        }
    }
}

/// Message content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContentView {
    /// Text (empty once deleted).
    pub text: String,
    /// TEXT, FILE, IMAGE, URL or SYSTEM.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Edited at least once.
    pub is_edited: bool,
    /// Soft-deleted (tombstone).
    pub is_deleted: bool,
    /// Link preview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_preview: Option<UrlPreviewView>,
}

/// Where a forwarded message came from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ForwardedFromView {
    /// Original message.
    pub message_id: String,
    /// Its room.
    pub room_id: String,
    /// Its sender.
    pub sender_id: String,
}

impl From<&ForwardedFrom> for ForwardedFromView {
    fn from(f: &ForwardedFrom) -> ForwardedFromView {
        ForwardedFromView {
            message_id: f.message_id.to_string(),
            room_id: f.room_id.to_string(),
            sender_id: f.sender_id.to_string(),
        }
    }
}

/// A message (REST and STOMP alike).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Id (also the `persistedId`).
    pub id: String,
    /// Room.
    pub room_id: String,
    /// Per-room sequence number.
    pub seq: i64,
    /// Sender.
    pub sender_id: String,
    /// The sender's idempotency key.
    pub temp_id: Option<String>,
    /// TEXT, FILE, IMAGE, URL or SYSTEM.
    #[serde(rename = "type")]
    pub message_type: String,
    /// Content.
    pub content: ContentView,
    /// Thread root, for replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Replies (thread roots).
    pub reply_count: u32,
    /// Origin of a forwarded copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<ForwardedFromView>,
    /// Mentioned user ids.
    pub mentions: Vec<String>,
    /// Reaction code → user ids.
    pub reactions: BTreeMap<String, Vec<String>>,
    /// Pinned in its room.
    pub pinned: bool,
    /// Participants (other than the sender) who have read it.
    pub read_count: u64,
    /// Creation time.
    pub created_at: String,
    /// Last edit/delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Status (SENDING … SAVED, FAILED).
    pub status: String,
}

impl MessageView {
    /// The view of `m` with its read count.
    pub fn new(m: &Message, read_count: u64) -> MessageView {
        MessageView {
            id: m.id.to_string(),
            room_id: m.room_id.to_string(),
            seq: m.seq.0,
            sender_id: m.sender_id.to_string(),
            temp_id: m.temp_id.as_deref().map(str::to_owned),
            message_type: m.message_type.as_str().to_owned(),
            content: ContentView {
                text: m.text.to_string(),
                content_type: m.message_type.as_str().to_owned(),
                is_edited: m.is_edited,
                is_deleted: m.is_deleted,
                url_preview: m.url_preview.as_ref().map(UrlPreviewView::from),
            },
            thread_id: m.thread_id.map(|t| t.to_string()),
            reply_count: m.reply_count,
            forwarded_from: m.forwarded_from.as_ref().map(ForwardedFromView::from),
            mentions: m.mentions.iter().map(ToString::to_string).collect(),
            reactions: m
                .reactions
                .iter()
                .map(|(code, users)| {
                    (
                        code.clone(),
                        users.iter().map(ToString::to_string).collect(),
                    )
                })
                .collect(),
            pinned: m.pin.is_some(),
            read_count,
            created_at: time(m.created_at),
            updated_at: opt_time(m.updated_at),
            status: m.status.as_str().to_owned(),
        }
    }
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> MessageView {
        MessageView::new(m, 0)
    }
}

/// A message status transition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// The sender's idempotency key.
    pub temp_id: Option<String>,
    /// SENDING, SENT_TO_KAFKA, PROCESSING, SAVED or FAILED.
    pub status: String,
    /// Message id once known.
    pub persisted_id: Option<String>,
    /// Reason when FAILED.
    pub error_message: Option<String>,
    /// Stable code when FAILED.
    pub error_code: Option<String>,
    /// When the transition happened.
    pub created_at: String,
    /// Room.
    pub room_id: String,
    /// Sequence once assigned.
    pub seq: Option<i64>,
}

impl From<&StatusUpdate> for StatusView {
    fn from(s: &StatusUpdate) -> StatusView {
        StatusView {
            temp_id: s.temp_id.as_deref().map(str::to_owned),
            status: s.status.as_str().to_owned(),
            persisted_id: s.message_id.map(|m| m.to_string()),
            error_message: s.error_message.clone(),
            error_code: s.error_code.clone(),
            created_at: time(s.at),
            room_id: s.room_id.to_string(),
            seq: s.seq.map(|q| q.0),
        }
    }
}

/// Answer to a REST send (thread reply): accepted by the durable log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendReceiptView {
    /// Message id.
    pub message_id: String,
    /// Room.
    pub room_id: String,
    /// Sequence.
    pub seq: i64,
    /// The idempotency key.
    pub temp_id: Option<String>,
    /// Whether this `(sender, tempId)` had already been sent (no new message).
    pub duplicate: bool,
    /// SENT_TO_KAFKA.
    pub status: String,
}

/// A reaction type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReactionTypeView {
    /// Code.
    pub code: String,
    /// Emoji.
    pub emoji: String,
    /// Name.
    pub description: String,
}

impl From<&ReactionType> for ReactionTypeView {
    fn from(r: &ReactionType) -> ReactionTypeView {
        ReactionTypeView {
            code: r.code.clone(),
            emoji: r.emoji.clone(),
            description: r.description.clone(),
        }
    }
}

/// A thread: root and replies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ThreadView {
    /// Root message.
    pub root: MessageView,
    /// Replies, oldest first.
    pub replies: Vec<MessageView>,
}

/// A thread summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSummaryView {
    /// Root message.
    pub root: MessageView,
    /// Number of replies.
    pub reply_count: u32,
    /// Latest reply.
    pub last_reply: Option<MessageView>,
    /// Users who replied.
    pub participants: Vec<String>,
}

/// A bookmark.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookmarkView {
    /// Bookmarked message.
    pub message_id: String,
    /// Its room.
    pub room_id: String,
    /// Note.
    pub note: Option<String>,
    /// When bookmarked.
    pub created_at: String,
    /// The message, when still visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageView>,
}

impl BookmarkView {
    /// The view of `b`, with its message if known.
    pub fn new(b: &Bookmark, message: Option<&Message>) -> BookmarkView {
        BookmarkView {
            message_id: b.message_id.to_string(),
            room_id: b.room_id.to_string(),
            note: b.note.clone(),
            created_at: time(b.created_at),
            message: message.map(MessageView::from),
        }
    }
}

/// A scheduled message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Id.
    pub id: String,
    /// Room.
    pub room_id: String,
    /// Text.
    pub content: String,
    /// Message type.
    #[serde(rename = "type")]
    pub message_type: String,
    /// Next due time.
    pub scheduled_at: String,
    /// DAILY, WEEKLY, MONTHLY or null.
    pub repeat: Option<String>,
    /// PENDING, SENT, CANCELED or FAILED.
    pub status: String,
    /// Occurrences sent.
    pub sent_count: u32,
    /// Last failure.
    pub last_error: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&ScheduledMessage> for ScheduleView {
    fn from(s: &ScheduledMessage) -> ScheduleView {
        ScheduleView {
            id: s.id.to_string(),
            room_id: s.room_id.to_string(),
            content: s.text.clone(),
            message_type: s.message_type.as_str().to_owned(),
            scheduled_at: time(s.scheduled_at),
            repeat: s.repeat.map(|r| r.as_str().to_owned()),
            status: s.status.as_str().to_owned(),
            sent_count: s.sent_count,
            last_error: s.last_error.clone(),
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rooms

/// A room participant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    /// User id.
    pub user_id: String,
    /// Username, when known.
    pub username: Option<String>,
    /// Nickname, when known.
    pub nickname: Option<String>,
    /// Avatar, when known.
    pub profile_image_url: Option<String>,
    /// OWNER, ADMIN or MEMBER.
    pub role: String,
    /// Join time.
    pub joined_at: String,
    /// Read cursor.
    pub last_read_seq: i64,
}

impl ParticipantView {
    /// The view of `p` with its user looked up in `users`.
    pub fn new(p: &Participant, users: &[User]) -> ParticipantView {
        let user = users.iter().find(|u| u.id == p.user_id);
        ParticipantView {
            user_id: p.user_id.to_string(),
            username: user.map(|u| u.username.clone()),
            nickname: user.map(|u| u.nickname.clone()),
            profile_image_url: user.and_then(|u| u.profile_image_url.clone()),
            role: p.role.as_str().to_owned(),
            joined_at: time(p.joined_at),
            last_read_seq: p.last_read_seq.0,
        }
    }
}

/// A room as seen by one participant (room list entry and room detail).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView {
    /// Id.
    pub id: String,
    /// Same as `id` (compatibility with the reference clients).
    pub room_id: String,
    /// DIRECT or GROUP.
    #[serde(rename = "type")]
    pub room_type: String,
    /// Title (groups; for direct rooms the other participant's nickname).
    pub title: Option<String>,
    /// Announcement.
    pub announcement: Option<String>,
    /// Participants.
    pub participants: Vec<ParticipantView>,
    /// Latest message.
    pub last_message: Option<MessageView>,
    /// Unread messages for the caller.
    pub unread_count: u64,
    /// Favourite for the caller.
    pub favorite: bool,
    /// Highest sequence number.
    pub last_seq: i64,
    /// Last activity.
    pub last_activity_at: String,
    /// Creation time.
    pub created_at: String,
}

impl RoomView {
    /// The view of `room` for `viewer`.
    pub fn new(
        room: &Room,
        viewer: UserId,
        participants: &[Participant],
        users: &[User],
        last_message: Option<&Message>,
        unread_count: u64,
    ) -> RoomView {
        let me = participants.iter().find(|p| p.user_id == viewer);
        let title = room.title.clone().or_else(|| {
            participants
                .iter()
                .filter(|p| p.user_id != viewer)
                .filter_map(|p| users.iter().find(|u| u.id == p.user_id))
                .map(|u| u.nickname.clone())
                .next()
        });
        RoomView {
            id: room.id.to_string(),
            room_id: room.id.to_string(),
            room_type: room.room_type.as_str().to_owned(),
            title,
            announcement: room.announcement.clone(),
            participants: participants
                .iter()
                .map(|p| ParticipantView::new(p, users))
                .collect(),
            last_message: last_message.map(MessageView::from),
            unread_count,
            favorite: me.is_some_and(|p| p.favorite),
            last_seq: room.last_seq.0,
            last_activity_at: time(room.last_activity_at),
            created_at: time(room.created_at),
        }
    }
}

/// A room-list entry change (`/user/queue/room-updates`, SSE `room-update`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomUpdateView {
    /// Room.
    pub room_id: String,
    /// Unread count for the user.
    pub unread_count: u64,
    /// Latest message.
    pub last_message: Option<MessageView>,
    /// When.
    pub timestamp: String,
}

impl RoomUpdateView {
    /// From the fields of `Event::RoomUpdate`.
    pub fn new(
        room_id: shoot_core::RoomId,
        unread_count: u64,
        last_message: Option<&Message>,
        at: Timestamp,
    ) -> RoomUpdateView {
        RoomUpdateView {
            room_id: room_id.to_string(),
            unread_count,
            last_message: last_message.map(MessageView::from),
            timestamp: time(at),
        }
    }
}

/// A change of a room (created, updated, membership, favourite, deleted).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomChangeView {
    /// Room.
    pub room_id: String,
    /// CREATED, UPDATED, PARTICIPANTS_ADDED, PARTICIPANT_REMOVED, ROLE_CHANGED,
    /// FAVORITE_CHANGED or DELETED.
    pub change: String,
    /// DIRECT or GROUP.
    #[serde(rename = "type")]
    pub room_type: String,
    /// Title.
    pub title: Option<String>,
    /// Announcement.
    pub announcement: Option<String>,
    /// Affected users (membership and role changes).
    pub user_ids: Vec<String>,
    /// New role (ROLE_CHANGED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New favourite flag (FAVORITE_CHANGED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favorite: Option<bool>,
    /// Who did it.
    pub by: Option<String>,
    /// When the room last changed.
    pub timestamp: String,
}

impl RoomChangeView {
    /// From the fields of `Event::RoomChanged`.
    pub fn new(room: &Room, change: &RoomChange, by: Option<UserId>) -> RoomChangeView {
        let (name, user_ids, role, favorite) = match change {
            RoomChange::Created => ("CREATED", vec![], None, None),
            RoomChange::Updated => ("UPDATED", vec![], None, None),
            RoomChange::ParticipantsAdded(users) => {
                ("PARTICIPANTS_ADDED", users.clone(), None, None)
            }
            RoomChange::ParticipantRemoved(u) => ("PARTICIPANT_REMOVED", vec![*u], None, None),
            RoomChange::RoleChanged(u, r) => {
                ("ROLE_CHANGED", vec![*u], Some(r.as_str().to_owned()), None)
            }
            RoomChange::FavoriteChanged(f) => ("FAVORITE_CHANGED", vec![], None, Some(*f)),
            RoomChange::Deleted => ("DELETED", vec![], None, None),
        };
        RoomChangeView {
            room_id: room.id.to_string(),
            change: name.to_owned(),
            room_type: room.room_type.as_str().to_owned(),
            title: room.title.clone(),
            announcement: room.announcement.clone(),
            user_ids: user_ids.iter().map(ToString::to_string).collect(),
            role,
            favorite,
            by: by.map(|b| b.to_string()),
            timestamp: time(room.updated_at),
        }
    }
}

/// A room announcement.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoticeView {
    /// Room.
    pub room_id: String,
    /// Announcement (null when none).
    pub announcement: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// A notification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    /// Id.
    pub id: String,
    /// FRIEND_REQUEST, FRIEND_ACCEPTED, MENTION, REPLY, REACTION, ADDED_TO_ROOM, REMOVED_FROM_ROOM.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it.
    pub actor_id: Option<String>,
    /// Room concerned.
    pub room_id: Option<String>,
    /// Message concerned.
    pub message_id: Option<String>,
    /// Text.
    pub message: String,
    /// Read.
    pub is_read: bool,
    /// Creation time.
    pub created_at: String,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> NotificationView {
        NotificationView {
            id: n.id.to_string(),
            kind: n.kind.as_str().to_owned(),
            actor_id: n.actor_id.map(|a| a.to_string()),
            room_id: n.room_id.map(|r| r.to_string()),
            message_id: n.message_id.map(|m| m.to_string()),
            message: n.text.clone(),
            is_read: n.is_read,
            created_at: time(n.created_at),
        }
    }
}

/// A count.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CountView {
    /// The number.
    pub count: u64,
}

/// Unread count of one room (SSE `unread-counts`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnreadCountView {
    /// Room.
    pub room_id: String,
    /// Unread messages.
    pub unread_count: u64,
}

/// A read cursor move.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadView {
    /// Room.
    pub room_id: String,
    /// Reader.
    pub user_id: String,
    /// New cursor.
    pub last_read_seq: i64,
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/// `POST /auth/signup`, `POST /users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupRequest {
    /// 3–20 of `[a-zA-Z0-9_.]`.
    pub username: String,
    /// 2–30 characters.
    pub nickname: String,
    /// E-mail.
    pub email: String,
    /// ≥ 8 with upper, lower, digit and symbol.
    pub password: String,
    /// ≤ 200 characters.
    #[serde(default)]
    pub bio: Option<String>,
}

/// `POST /auth/login`: `username` or `email`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// Username (or e-mail).
    #[serde(default)]
    pub username: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Password.
    pub password: String,
}

/// `POST /auth/refresh`, `POST /auth/logout`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The refresh token (or send it as Bearer).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `PUT /users/me`: absent fields are unchanged; `null` clears bio/avatar.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileRequest {
    /// New nickname.
    #[serde(default)]
    pub nickname: Option<String>,
    /// New bio (null clears).
    #[serde(default, deserialize_with = "de_double_opt")]
    #[schema(value_type = Option<String>)]
    pub bio: Option<Option<String>>,
    /// New avatar URL (null clears).
    #[serde(default, deserialize_with = "de_double_opt")]
    #[schema(value_type = Option<String>)]
    pub profile_image_url: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
pub fn de_double_opt<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /users/status`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct StatusRequest {
    /// ONLINE, AWAY, BUSY or OFFLINE.
    pub status: String,
}

/// `{targetUserId}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetUserRequest {
    /// The other user.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub target_user_id: UserId,
}

/// `POST /users/friends/groups`, `PUT /users/friends/groups/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FriendGroupRequest {
    /// Name (required on create).
    #[serde(default)]
    pub name: Option<String>,
    /// Description (null clears on update).
    #[serde(default, deserialize_with = "de_double_opt")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Initial members (create only).
    #[serde(default, deserialize_with = "de_ids")]
    #[schema(value_type = Vec<String>)]
    pub member_ids: Vec<UserId>,
}

/// `POST /chatrooms`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRoomRequest {
    /// DIRECT or GROUP (default: DIRECT with one participant, GROUP otherwise).
    #[serde(default, rename = "type")]
    pub room_type: Option<String>,
    /// Title (groups).
    #[serde(default)]
    pub title: Option<String>,
    /// The other participants (the caller is added).
    #[serde(deserialize_with = "de_ids")]
    #[schema(value_type = Vec<String>)]
    pub participant_ids: Vec<UserId>,
}

/// `POST /chatrooms/multiple`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateRoomsRequest {
    /// Rooms to create.
    pub rooms: Vec<CreateRoomRequest>,
}

/// `PUT /chatrooms/{roomId}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRoomRequest {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New announcement (null clears).
    #[serde(default, deserialize_with = "de_double_opt")]
    #[schema(value_type = Option<String>)]
    pub announcement: Option<Option<String>>,
}

/// `POST /chatrooms/{roomId}/participants`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipantsRequest {
    /// Users to add.
    #[serde(deserialize_with = "de_ids")]
    #[schema(value_type = Vec<String>)]
    pub participant_ids: Vec<UserId>,
}

/// `POST /chatrooms/{roomId}/notice`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct NoticeRequest {
    /// Announcement (null or empty clears).
    #[serde(default)]
    pub announcement: Option<String>,
}

/// `PUT /messages/{messageId}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EditMessageRequest {
    /// New text.
    pub content: String,
}

/// `POST /messages/forward`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardRequest {
    /// Message to forward.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub message_id: shoot_core::MessageId,
    /// Target rooms.
    #[serde(deserialize_with = "de_ids")]
    #[schema(value_type = Vec<String>)]
    pub target_room_ids: Vec<shoot_core::RoomId>,
    /// Extra text.
    #[serde(default)]
    pub additional_content: Option<String>,
}

/// `POST /messages/pin`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageIdRequest {
    /// Message.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub message_id: shoot_core::MessageId,
}

/// `POST|DELETE /messages/reaction`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionRequest {
    /// Message.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub message_id: shoot_core::MessageId,
    /// Reaction code.
    pub reaction: String,
}

/// `POST /messages/thread`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadReplyRequest {
    /// Parent message (a reply's parent attaches to the root).
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub parent_message_id: shoot_core::MessageId,
    /// Text.
    pub content: String,
    /// Idempotency key.
    pub temp_id: String,
    /// Message type (default TEXT).
    #[serde(default, rename = "type")]
    pub message_type: Option<String>,
    /// Mentioned users.
    #[serde(default, deserialize_with = "de_ids")]
    #[schema(value_type = Vec<String>)]
    pub mentions: Vec<UserId>,
}

/// `POST /messages/schedule`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    /// Room.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub room_id: shoot_core::RoomId,
    /// Text.
    pub content: String,
    /// RFC 3339 due time (future).
    pub scheduled_at: String,
    /// DAILY, WEEKLY or MONTHLY.
    #[serde(default)]
    pub repeat: Option<String>,
    /// Message type (default TEXT).
    #[serde(default, rename = "type")]
    pub message_type: Option<String>,
}

/// `PUT /messages/schedule/{scheduleId}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleUpdateRequest {
    /// New text.
    #[serde(default)]
    pub content: Option<String>,
    /// New due time.
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// New repeat (null clears).
    #[serde(default, deserialize_with = "de_double_opt")]
    #[schema(value_type = Option<String>)]
    pub repeat: Option<Option<String>>,
}

/// `POST /messages/bookmark`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookmarkRequest {
    /// Message.
    #[serde(deserialize_with = "de_id")]
    #[schema(value_type = String)]
    pub message_id: shoot_core::MessageId,
    /// Note.
    #[serde(default)]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use shoot_core::messages::{MessageStatus, MessageType, Pin};
    use shoot_core::{MessageId, RoomId, Seq};

    use super::*;

    fn message() -> Message {
        let mut reactions = BTreeMap::new();
        reactions.insert("like".to_owned(), vec![UserId(2), UserId(3)]);
        Message {
            id: MessageId(10),
            room_id: RoomId(5),
            seq: Seq(3),
            sender_id: UserId(1),
            temp_id: Some("t-1".into()),
            message_type: MessageType::Text,
            text: "hello".into(),
            is_edited: false,
            is_deleted: false,
            url_preview: None,
            thread_id: None,
            reply_count: 0,
            last_reply_at: None,
            forwarded_from: None,
            mentions: vec![UserId(2)],
            reactions,
            pin: Some(Pin {
                pinned_by: UserId(1),
                pinned_at: Timestamp(0),
            }),
            created_at: Timestamp(1_700_000_000_123),
            updated_at: None,
            status: MessageStatus::Saved,
        }
    }

    #[test]
    fn message_view_shape() {
        let v = serde_json::to_value(MessageView::new(&message(), 2)).unwrap();
        let expect = serde_json::json!({
            "id": "10", "roomId": "5", "seq": 3, "senderId": "1", "tempId": "t-1", "type": "TEXT",
            "content": {"text": "hello", "type": "TEXT", "isEdited": false, "isDeleted": false},
            "replyCount": 0, "mentions": ["2"], "reactions": {"like": ["2", "3"]}, "pinned": true,
            "readCount": 2, "createdAt": "2023-11-14T22:13:20.123Z", "status": "SAVED"
        });
        assert_eq!(v, expect);
    }

    #[test]
    fn ids_accept_strings_and_numbers() {
        let a: TargetUserRequest = serde_json::from_str(r#"{"targetUserId":"12"}"#).unwrap();
        let b: TargetUserRequest = serde_json::from_str(r#"{"targetUserId":12}"#).unwrap();
        assert_eq!(a.target_user_id, b.target_user_id);
        assert!(serde_json::from_str::<TargetUserRequest>(r#"{"targetUserId":"x"}"#).is_err());
        let r: CreateRoomRequest =
            serde_json::from_str(r#"{"type":"GROUP","participantIds":["1",2]}"#).unwrap();
        assert_eq!(r.participant_ids, vec![UserId(1), UserId(2)]);
    }

    #[test]
    fn double_option_distinguishes_null_from_absent() {
        let p: UpdateProfileRequest = serde_json::from_str(r#"{"bio":null}"#).unwrap();
        assert_eq!(p.bio, Some(None));
        assert_eq!(p.profile_image_url, None);
    }
}
