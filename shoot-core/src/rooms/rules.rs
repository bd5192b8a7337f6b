//! Pure room rules: titles, announcements, group membership, removal rights and ownership
//! hand-over.

use crate::error::{ErrorCode, Result, fail};
use crate::ids::UserId;
use crate::limits::Limits;
use crate::rooms::{Participant, Role};

/// A group title: trimmed, 1..=`room_title_max` characters (`INVALID_ROOM_TITLE`).
pub fn validate_title(title: &str, limits: &Limits) -> Result<String> {
    let t = title.trim();
    let n = t.chars().count();
    if n == 0 || n > limits.room_title_max {
        return fail(
            ErrorCode::InvalidRoomTitle,
            format!("room title must be 1-{} characters", limits.room_title_max),
        );
    }
    Ok(t.to_owned())
}

/// An announcement: trimmed, empty clears it, at most `announcement_max` characters.
pub fn validate_announcement(text: Option<&str>, limits: &Limits) -> Result<Option<String>> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().count() > limits.announcement_max {
        return fail(
            ErrorCode::AnnouncementTooLong,
            format!(
                "announcement is longer than {} characters",
                limits.announcement_max
            ),
        );
    }
    Ok(Some(t.to_owned()))
}

/// The members of a new group: the creator first, then the others deduplicated in order;
/// the count must be within `group_min_members..=group_max_members` (`ROOM_MEMBER_LIMIT`).
pub fn group_members(creator: UserId, members: &[UserId], limits: &Limits) -> Result<Vec<UserId>> {
    let mut out = vec![creator];
    for m in members {
        if !out.contains(m) {
            out.push(*m);
        }
    }
    check_member_count(out.len(), limits)?;
    Ok(out)
}

/// `count` members must be within the configured group bounds.
pub fn check_member_count(count: usize, limits: &Limits) -> Result<()> {
    if count < limits.group_min_members || count > limits.group_max_members {
        return fail(
            ErrorCode::RoomMemberLimit,
            format!(
                "a group has {}-{} members",
                limits.group_min_members, limits.group_max_members
            ),
        );
    }
    Ok(())
}

/// Whether `actor` (role `actor_role`) may remove `target` (role `target_role`): anyone may
/// remove themselves (except that is "leave"); otherwise only a role strictly above the
/// target's (the owner removes admins and members, admins remove members).
pub fn check_remove(
    actor: UserId,
    actor_role: Role,
    target: UserId,
    target_role: Role,
) -> Result<()> {
    if actor == target {
        return Ok(());
    }
    if target_role == Role::Owner {
        return fail(
            ErrorCode::RoomPermissionDenied,
            "the room owner cannot be removed",
        );
    }
    if actor_role.can_moderate() && actor_role < target_role {
        return Ok(());
    }
    fail(
        ErrorCode::RoomPermissionDenied,
        "not allowed to remove this participant",
    )
}

/// Who inherits ownership when `leaving` leaves: the longest member among the others
/// (earliest `joined_at`, then lowest id). `None` if nobody is left.
pub fn heir(participants: &[Participant], leaving: UserId) -> Option<UserId> {
    participants
        .iter()
        .filter(|p| p.user_id != leaving)
        .min_by_key(|p| (p.joined_at, p.user_id))
        .map(|p| p.user_id)
}

/// Title and announcement changes need OWNER or ADMIN.
pub fn check_moderator(role: Role) -> Result<()> {
    if role.can_moderate() {
        Ok(())
    } else {
        fail(
            ErrorCode::RoomPermissionDenied,
            "only the room owner or an admin can do this",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{RoomId, Seq};
    use crate::time::Timestamp;

    fn code<T>(r: Result<T>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn titles() {
        let limits = Limits {
            room_title_max: 5,
            ..Limits::default()
        };
        let check = |t: &str, expect: std::result::Result<&str, ErrorCode>| {
            let got = validate_title(t, &limits).map_err(|e| e.code());
            assert_eq!(got.as_deref().map_err(|c| *c), expect, "{t:?}");
        };
        check("team", Ok("team"));
        check("  team  ", Ok("team"));
        check("", Err(ErrorCode::InvalidRoomTitle));
        check("   ", Err(ErrorCode::InvalidRoomTitle));
        check("12345", Ok("12345"));
        check("123456", Err(ErrorCode::InvalidRoomTitle));
    }

    #[test]
    fn announcements() {
        let limits = Limits {
            announcement_max: 3,
            ..Limits::default()
        };
        let check = |t: Option<&str>, expect: std::result::Result<Option<&str>, ErrorCode>| {
            let got = validate_announcement(t, &limits).map_err(|e| e.code());
            assert_eq!(
                got.as_ref().map(|o| o.as_deref()).map_err(|c| *c),
                expect,
                "{t:?}"
            );
        };
        check(None, Ok(None));
        check(Some("  "), Ok(None));
        check(Some("abc"), Ok(Some("abc")));
        check(Some(" abc "), Ok(Some("abc")));
        check(Some("abcd"), Err(ErrorCode::AnnouncementTooLong));
    }

    #[test]
    fn members() {
        let limits = Limits {
            group_min_members: 2,
            group_max_members: 3,
            ..Limits::default()
        };
        let check = |creator: i64, ms: &[i64], expect: std::result::Result<Vec<i64>, ErrorCode>| {
            let ms: Vec<UserId> = ms.iter().map(|&m| UserId(m)).collect();
            let got = group_members(UserId(creator), &ms, &limits)
                .map(|v| v.into_iter().map(|u| u.0).collect::<Vec<_>>())
                .map_err(|e| e.code());
            assert_eq!(got, expect, "{creator} {ms:?}");
        };
        check(1, &[2], Ok(vec![1, 2]));
        check(1, &[2, 2, 1, 3], Ok(vec![1, 2, 3]));
        check(1, &[], Err(ErrorCode::RoomMemberLimit));
        check(1, &[1], Err(ErrorCode::RoomMemberLimit));
        check(1, &[2, 3, 4], Err(ErrorCode::RoomMemberLimit));
    }

    #[test]
    fn removal() {
        let check = |actor: i64, ar: Role, target: i64, tr: Role, expect: Option<ErrorCode>| {
            assert_eq!(
                code(check_remove(UserId(actor), ar, UserId(target), tr)),
                expect,
                "{ar:?} removes {tr:?}"
            );
        };
        let denied = Some(ErrorCode::RoomPermissionDenied);
        check(1, Role::Owner, 2, Role::Member, None);
        check(1, Role::Owner, 2, Role::Admin, None);
        check(1, Role::Admin, 2, Role::Member, None);
        check(1, Role::Admin, 2, Role::Admin, denied);
        check(1, Role::Admin, 2, Role::Owner, denied);
        check(1, Role::Member, 2, Role::Member, denied);
        check(1, Role::Member, 1, Role::Member, None);
        check(1, Role::Owner, 1, Role::Owner, None);
    }

    #[test]
    fn heirs() {
        let p = |u: i64, joined: i64| Participant {
            room_id: RoomId(1),
            user_id: UserId(u),
            role: Role::Member,
            joined_at: Timestamp(joined),
            last_read_seq: Seq(0),
            favorite: false,
            favorited_at: None,
        };
        let check = |ps: &[(i64, i64)], leaving: i64, expect: Option<i64>| {
            let ps: Vec<_> = ps.iter().map(|&(u, j)| p(u, j)).collect();
            assert_eq!(heir(&ps, UserId(leaving)).map(|u| u.0), expect, "{ps:?}");
        };
        check(&[(1, 0), (2, 5), (3, 3)], 1, Some(3));
        check(&[(1, 0), (2, 3), (3, 3)], 1, Some(2));
        check(&[(1, 0)], 1, None);
        check(&[(1, 0), (2, 1)], 2, Some(1));
    }

    #[test]
    fn moderators() {
        assert!(check_moderator(Role::Owner).is_ok());
        assert!(check_moderator(Role::Admin).is_ok());
        assert_eq!(
            code(check_moderator(Role::Member)),
            Some(ErrorCode::RoomPermissionDenied)
        );
    }
}
