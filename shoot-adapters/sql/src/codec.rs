//! Column encodings shared by both dialects: enum names, JSON columns and LIKE patterns.

use shoot_core::PortError;
use shoot_core::messages::MessageStatus;
use shoot_core::notifications::NotificationType;
use shoot_core::rooms::{Role, RoomType};
use shoot_core::schedule::ScheduleStatus;
use shoot_core::social::FriendRequestStatus;

pub(crate) fn corrupt(backend: &'static str, what: &str, value: &str) -> PortError {
    PortError::backend(backend, format!("unexpected {what} in database: {value:?}"))
}

pub(crate) fn friend_request_status(s: &str) -> Option<FriendRequestStatus> {
    Some(match s {
        "PENDING" => FriendRequestStatus::Pending,
        "ACCEPTED" => FriendRequestStatus::Accepted,
        "REJECTED" => FriendRequestStatus::Rejected,
        "CANCELED" => FriendRequestStatus::Canceled,
        _ => return None,
    })
}

pub(crate) fn room_type(s: &str) -> Option<RoomType> {
    Some(match s {
        "DIRECT" => RoomType::Direct,
        "GROUP" => RoomType::Group,
        _ => return None,
    })
}

pub(crate) fn role(s: &str) -> Option<Role> {
    Some(match s {
        "OWNER" => Role::Owner,
        "ADMIN" => Role::Admin,
        "MEMBER" => Role::Member,
        _ => return None,
    })
}

pub(crate) fn message_status(s: &str) -> Option<MessageStatus> {
    Some(match s {
        "SENDING" => MessageStatus::Sending,
        "SENT_TO_KAFKA" => MessageStatus::SentToKafka,
        "PROCESSING" => MessageStatus::Processing,
        "SAVED" => MessageStatus::Saved,
        "FAILED" => MessageStatus::Failed,
        _ => return None,
    })
}

pub(crate) fn schedule_status(s: &str) -> Option<ScheduleStatus> {
    Some(match s {
        "PENDING" => ScheduleStatus::Pending,
        "SENT" => ScheduleStatus::Sent,
        "CANCELED" => ScheduleStatus::Canceled,
        "FAILED" => ScheduleStatus::Failed,
        _ => return None,
    })
}

pub(crate) fn notification_type(s: &str) -> Option<NotificationType> {
    Some(match s {
        "FRIEND_REQUEST" => NotificationType::FriendRequest,
        "FRIEND_ACCEPTED" => NotificationType::FriendAccepted,
        "MENTION" => NotificationType::Mention,
        "REPLY" => NotificationType::Reply,
        "REACTION" => NotificationType::Reaction,
        "ADDED_TO_ROOM" => NotificationType::AddedToRoom,
        "REMOVED_FROM_ROOM" => NotificationType::RemovedFromRoom,
        _ => return None,
    })
}

/// A `LIKE … ESCAPE '\'` pattern matching values that contain `query` (lower-cased).
pub(crate) fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `$start, $start+1, …` (`n` placeholders).
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 6);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('$');
        s.push_str(&(start + i).to_string());
    }
    s
}

/// `[1,2,3]`: a list of ids as one JSON parameter, read back by SQLite's `json_each`.
#[cfg(feature = "sqlite")]
pub(crate) fn json_ids(ids: &[i64]) -> String {
    let mut json = String::with_capacity(2 + ids.len() * 8);
    json.push('[');
    let mut buf = itoa::Buffer::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(buf.format(*id));
    }
    json.push(']');
    json
}

/// The unordered-pair key of a direct room.
pub(crate) fn direct_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards_and_lowercase() {
        assert_eq!(contains_pattern("Ab"), "%ab%");
        assert_eq!(contains_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(3, 3), "$3,$4,$5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn id_lists_as_json() {
        assert_eq!(json_ids(&[]), "[]");
        assert_eq!(json_ids(&[7, -3, i64::MAX]), "[7,-3,9223372036854775807]");
    }

    #[test]
    fn direct_keys_are_unordered() {
        assert_eq!(direct_key(7, 3), direct_key(3, 7));
        assert_eq!(direct_key(3, 7), "3:7");
    }
}
