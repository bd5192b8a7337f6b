//! Pure message rules: content, temp ids, types, permissions, read counts and forwarding text.
//! The engine calls these with data it loaded; nothing here touches a port.

use std::time::Duration;

use crate::error::{ErrorCode, Result, fail};
use crate::ids::UserId;
use crate::limits::Limits;
use crate::messages::{Message, MessageType};
use crate::rooms::{Participant, Role, RoomType};
use crate::time::Timestamp;

/// Longest client idempotency key.
pub const TEMP_ID_MAX: usize = 64;

/// Trims `text` and checks its length: `MESSAGE_EMPTY` / `MESSAGE_TOO_LONG`.
pub fn validate_content(text: &str, limits: &Limits) -> Result<String> {
    checked_content(text, limits).map(str::to_owned)
}

/// [`validate_content`] without the copy: the trimmed text, borrowed.
pub fn checked_content<'a>(text: &'a str, limits: &Limits) -> Result<&'a str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return fail(ErrorCode::MessageEmpty, "message content is empty");
    }
    if trimmed.chars().count() > limits.message_max_chars {
        return fail(
            ErrorCode::MessageTooLong,
            format!(
                "message is longer than {} characters",
                limits.message_max_chars
            ),
        );
    }
    Ok(trimmed)
}

/// A client-sent `tempId`: 1..=64 printable (non-control, non-whitespace) characters.
pub fn validate_temp_id(temp_id: &str) -> Result<()> {
    let n = temp_id.chars().count();
    if n == 0 || n > TEMP_ID_MAX || temp_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return fail(
            ErrorCode::InvalidTempId,
            "tempId must be 1-64 printable characters",
        );
    }
    Ok(())
}

/// Clients may send every type but SYSTEM.
pub fn validate_client_type(message_type: MessageType) -> Result<()> {
    if message_type == MessageType::System {
        return fail(
            ErrorCode::InvalidMessageType,
            "SYSTEM messages cannot be sent by clients",
        );
    }
    Ok(())
}

/// Whether `actor` may edit `message` at `now`.
pub fn check_edit(
    message: &Message,
    actor: UserId,
    now: Timestamp,
    window: Duration,
) -> Result<()> {
    if message.sender_id != actor {
        return fail(
            ErrorCode::NotMessageSender,
            "only the sender can edit a message",
        );
    }
    if message.is_deleted {
        return fail(ErrorCode::MessageDeleted, "the message is deleted");
    }
    if now.since(message.created_at) > window {
        return fail(ErrorCode::EditWindowExpired, "the edit window has passed");
    }
    Ok(())
}

/// Whether `actor` (with role `role` in the message's room) may delete `message`.
pub fn check_delete(message: &Message, actor: UserId, role: Role) -> Result<()> {
    if message.sender_id == actor || role.can_moderate() {
        Ok(())
    } else {
        fail(
            ErrorCode::NotMessageSender,
            "only the sender or a room admin can delete a message",
        )
    }
}

/// Whether a participant with `role` may pin in a room of `room_type`.
pub fn check_pin_permission(room_type: RoomType, role: Role) -> Result<()> {
    if room_type == RoomType::Direct || role.can_moderate() {
        Ok(())
    } else {
        fail(
            ErrorCode::RoomPermissionDenied,
            "only the room owner or an admin can pin messages",
        )
    }
}

/// `code` must be one of the configured reactions.
pub fn check_reaction(code: &str, limits: &Limits) -> Result<()> {
    if limits.reactions.iter().any(|r| r.code == code) {
        Ok(())
    } else {
        fail(
            ErrorCode::UnknownReaction,
            format!("unknown reaction {code:?}"),
        )
    }
}

/// Participants other than the sender whose read cursor reached the message.
pub fn read_count(message: &Message, participants: &[Participant]) -> u32 {
    participants
        .iter()
        .filter(|p| p.user_id != message.sender_id && p.last_read_seq >= message.seq)
        .count() as u32
}

/// Text of a forwarded copy: the extra text (if any, trimmed and non-empty), a newline, then
/// the original text.
pub fn forward_text(original: &str, additional: Option<&str>) -> String {
    match additional.map(str::trim).filter(|s| !s.is_empty()) {
        Some(extra) => format!("{extra}\n{original}"),
        None => original.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MessageId, RoomId, Seq};
    use crate::messages::MessageStatus;

    fn msg(sender: i64, seq: i64) -> Message {
        Message {
            seq: Seq(seq),
            status: MessageStatus::Saved,
            ..Message::new(
                MessageId(1),
                RoomId(1),
                UserId(sender),
                "hi",
                Timestamp(1_000),
            )
        }
    }

    fn code<T>(r: Result<T>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn content() {
        let limits = Limits {
            message_max_chars: 5,
            ..Limits::default()
        };
        let check = |text: &str, expect: std::result::Result<&str, ErrorCode>| {
            let got = validate_content(text, &limits).map_err(|e| e.code());
            assert_eq!(got.as_deref().map_err(|c| *c), expect, "{text:?}");
        };
        check("hi", Ok("hi"));
        check("  hi \n", Ok("hi"));
        check("", Err(ErrorCode::MessageEmpty));
        check(" \t\n ", Err(ErrorCode::MessageEmpty));
        check("12345", Ok("12345"));
        check("123456", Err(ErrorCode::MessageTooLong));
        check("안녕하세요", Ok("안녕하세요"));
        check("  12345  ", Ok("12345"));
    }

    #[test]
    fn temp_ids() {
        let check = |t: &str, ok: bool| assert_eq!(validate_temp_id(t).is_ok(), ok, "{t:?}");
        check("abc-123", true);
        check("", false);
        check(&"x".repeat(64), true);
        check(&"x".repeat(65), false);
        check("a b", false);
        check("a\u{7}", false);
        check("임시-1", true);
    }

    #[test]
    fn types() {
        assert!(validate_client_type(MessageType::Text).is_ok());
        assert!(validate_client_type(MessageType::Url).is_ok());
        assert_eq!(
            code(validate_client_type(MessageType::System)),
            Some(ErrorCode::InvalidMessageType)
        );
    }

    #[test]
    fn edit() {
        let window = Duration::from_secs(10);
        let check = |m: &Message, actor: i64, now: i64, expect: Option<ErrorCode>| {
            assert_eq!(
                code(check_edit(m, UserId(actor), Timestamp(now), window)),
                expect
            );
        };
        let m = msg(1, 1);
        check(&m, 1, 1_000, None);
        check(&m, 1, 11_000, None);
        check(&m, 1, 11_001, Some(ErrorCode::EditWindowExpired));
        check(&m, 2, 1_000, Some(ErrorCode::NotMessageSender));
        let deleted = Message {
            is_deleted: true,
            ..msg(1, 1)
        };
        check(&deleted, 1, 1_000, Some(ErrorCode::MessageDeleted));
    }

    #[test]
    fn delete() {
        let check = |actor: i64, role: Role, expect: Option<ErrorCode>| {
            assert_eq!(code(check_delete(&msg(1, 1), UserId(actor), role)), expect);
        };
        check(1, Role::Member, None);
        check(2, Role::Member, Some(ErrorCode::NotMessageSender));
        check(2, Role::Admin, None);
        check(2, Role::Owner, None);
    }

    #[test]
    fn pins() {
        let check = |t: RoomType, r: Role, ok: bool| {
            assert_eq!(check_pin_permission(t, r).is_ok(), ok, "{t:?} {r:?}");
        };
        check(RoomType::Direct, Role::Member, true);
        check(RoomType::Group, Role::Member, false);
        check(RoomType::Group, Role::Admin, true);
        check(RoomType::Group, Role::Owner, true);
    }

    #[test]
    fn reactions() {
        let limits = Limits::default();
        for ok in ["like", "love", "haha", "wow", "sad", "angry"] {
            assert!(check_reaction(ok, &limits).is_ok(), "{ok}");
        }
        assert_eq!(
            code(check_reaction("LIKE", &limits)),
            Some(ErrorCode::UnknownReaction)
        );
        assert_eq!(
            code(check_reaction("", &limits)),
            Some(ErrorCode::UnknownReaction)
        );
    }

    #[test]
    fn read_counts() {
        let part = |user: i64, read: i64| Participant {
            room_id: RoomId(1),
            user_id: UserId(user),
            role: Role::Member,
            joined_at: Timestamp(0),
            last_read_seq: Seq(read),
            favorite: false,
            favorited_at: None,
        };
        let check = |seq: i64, reads: &[(i64, i64)], expect: u32| {
            let ps: Vec<_> = reads.iter().map(|&(u, r)| part(u, r)).collect();
            assert_eq!(read_count(&msg(1, seq), &ps), expect, "seq {seq} {reads:?}");
        };
        check(3, &[(1, 0), (2, 3), (3, 2)], 1);
        check(3, &[(1, 5), (2, 0)], 0);
        check(1, &[(1, 0), (2, 1), (3, 9)], 2);
        check(1, &[], 0);
    }

    #[test]
    fn forwarding() {
        assert_eq!(forward_text("orig", None), "orig");
        assert_eq!(forward_text("orig", Some("  ")), "orig");
        assert_eq!(forward_text("orig", Some(" look ")), "look\norig");
    }
}
