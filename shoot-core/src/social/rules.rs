//! Pure rules of the social graph (SPEC §5 "Friends", "Blocking", "Recommendations").
//! The engine gathers the facts from the store; these functions decide, each failure with
//! its precise [`ErrorCode`].

use crate::error::{ErrorCode, Result, fail};
use crate::ids::UserId;
use crate::limits::Limits;
use crate::social::{FriendRequest, FriendRequestStatus};

/// What the store says about a prospective friend request from `actor` to `target`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The target user exists.
    pub target_exists: bool,
    /// Either blocks the other.
    pub blocked_either: bool,
    /// They are already friends.
    pub already_friends: bool,
    /// A pending request from actor to target exists.
    pub pending_same_way: bool,
    /// A pending request from target to actor exists.
    pub pending_reverse: bool,
    /// Number of friends of the actor.
    pub actor_friends: usize,
    /// Number of friends of the target.
    pub target_friends: usize,
}

/// What sending a friend request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Store a new PENDING request.
    Create,
    /// The target already asked: accept their request instead.
    AcceptReverse,
}

/// Decides a friend request. Checks in order: self (`FRIEND_REQUEST_TO_SELF`), target exists
/// (`USER_NOT_FOUND`), blocking either way (`USER_BLOCKED`), friendship (`ALREADY_FRIENDS`),
/// duplicate (`FRIEND_REQUEST_DUPLICATE`), then the friend limit on both sides
/// (`FRIEND_LIMIT_EXCEEDED`), which also guards the reverse-accept.
pub fn decide_request(
    actor: UserId,
    target: UserId,
    facts: &RequestFacts,
    limits: &Limits,
) -> Result<RequestOutcome> {
    if actor == target {
        return fail(
            ErrorCode::FriendRequestToSelf,
            "cannot send a friend request to yourself",
        );
    }
    if !facts.target_exists {
        return fail(ErrorCode::UserNotFound, "user not found");
    }
    if facts.blocked_either {
        return fail(ErrorCode::UserBlocked, "this user cannot be added");
    }
    if facts.already_friends {
        return fail(ErrorCode::AlreadyFriends, "already friends");
    }
    if facts.pending_same_way {
        return fail(
            ErrorCode::FriendRequestDuplicate,
            "a friend request is already pending",
        );
    }
    check_friend_limit(facts.actor_friends, facts.target_friends, limits)?;
    Ok(if facts.pending_reverse {
        RequestOutcome::AcceptReverse
    } else {
        RequestOutcome::Create
    })
}

/// `FRIEND_LIMIT_EXCEEDED` when either side already has `limits.friends_max` friends.
pub fn check_friend_limit(a_friends: usize, b_friends: usize, limits: &Limits) -> Result<()> {
    if a_friends >= limits.friends_max || b_friends >= limits.friends_max {
        return fail(
            ErrorCode::FriendLimitExceeded,
            format!("at most {} friends", limits.friends_max),
        );
    }
    Ok(())
}

/// An answer to a friend request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// By the recipient.
    Accept,
    /// By the recipient.
    Reject,
    /// By the sender.
    Cancel,
}

impl Answer {
    /// The status the request moves to.
    pub fn status(self) -> FriendRequestStatus {
        match self {
            Answer::Accept => FriendRequestStatus::Accepted,
            Answer::Reject => FriendRequestStatus::Rejected,
            Answer::Cancel => FriendRequestStatus::Canceled,
        }
    }
}

/// Whether `actor` may give `answer` to `request`: accept and reject by the recipient,
/// cancel by the sender; anyone else (or a missing request) gets `FRIEND_REQUEST_NOT_FOUND`
/// so requests of others are not revealed. A request that is no longer pending gets
/// `FRIEND_REQUEST_NOT_PENDING`.
pub fn check_answer(request: Option<&FriendRequest>, actor: UserId, answer: Answer) -> Result<()> {
    let allowed = request.is_some_and(|r| match answer {
        Answer::Accept | Answer::Reject => r.to == actor,
        Answer::Cancel => r.from == actor,
    });
    let Some(request) = request.filter(|_| allowed) else {
        return fail(ErrorCode::FriendRequestNotFound, "friend request not found");
    };
    if request.status != FriendRequestStatus::Pending {
        return fail(
            ErrorCode::FriendRequestNotPending,
            format!("friend request is {}", request.status.as_str()),
        );
    }
    Ok(())
}

/// `BLOCK_SELF` when blocking oneself.
pub fn check_block(actor: UserId, target: UserId) -> Result<()> {
    if actor == target {
        return fail(ErrorCode::BlockSelf, "cannot block yourself");
    }
    Ok(())
}

/// The recommendation depth: `None` is `limits.recommendation_default_depth`; it must be
/// `1..=limits.recommendation_max_depth`, else `VALIDATION_FAILED`.
pub fn recommendation_depth(requested: Option<u8>, limits: &Limits) -> Result<u8> {
    let depth = requested.unwrap_or(limits.recommendation_default_depth);
    if depth == 0 || depth > limits.recommendation_max_depth {
        return fail(
            ErrorCode::ValidationFailed,
            format!("maxDepth must be 1-{}", limits.recommendation_max_depth),
        );
    }
    Ok(depth)
}

/// Longest friend group description.
pub const FRIEND_GROUP_DESCRIPTION_MAX: usize = 200;

/// Trims a friend group name: 1..=`limits.friend_group_name_max` characters, else
/// `INVALID_FRIEND_GROUP`.
pub fn normalize_group_name(name: &str, limits: &Limits) -> Result<String> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 || len > limits.friend_group_name_max {
        return fail(
            ErrorCode::InvalidFriendGroup,
            format!(
                "group name must be 1-{} characters",
                limits.friend_group_name_max
            ),
        );
    }
    Ok(name.to_owned())
}

/// Trims a friend group description (empty becomes `None`); longer than 200 characters is
/// `INVALID_FRIEND_GROUP`.
pub fn normalize_group_description(description: Option<&str>) -> Result<Option<String>> {
    let Some(d) = description.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > FRIEND_GROUP_DESCRIPTION_MAX {
        return fail(
            ErrorCode::InvalidFriendGroup,
            format!("group description must be at most {FRIEND_GROUP_DESCRIPTION_MAX} characters"),
        );
    }
    Ok(Some(d.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FriendRequestId;
    use crate::time::Timestamp;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    fn ok_facts() -> RequestFacts {
        RequestFacts {
            target_exists: true,
            ..RequestFacts::default()
        }
    }

    #[test]
    fn friend_requests() {
        let limits = Limits::default();
        let check = |target: UserId,
                     facts: RequestFacts,
                     expect: std::result::Result<RequestOutcome, ErrorCode>| {
            let got = decide_request(A, target, &facts, &limits).map_err(|e| e.code());
            assert_eq!(got, expect, "{facts:?}");
        };
        check(B, ok_facts(), Ok(RequestOutcome::Create));
        check(
            B,
            RequestFacts {
                pending_reverse: true,
                ..ok_facts()
            },
            Ok(RequestOutcome::AcceptReverse),
        );
        check(A, ok_facts(), Err(ErrorCode::FriendRequestToSelf));
        check(B, RequestFacts::default(), Err(ErrorCode::UserNotFound));
        check(
            B,
            RequestFacts {
                blocked_either: true,
                ..ok_facts()
            },
            Err(ErrorCode::UserBlocked),
        );
        check(
            B,
            RequestFacts {
                blocked_either: true,
                pending_reverse: true,
                ..ok_facts()
            },
            Err(ErrorCode::UserBlocked),
        );
        check(
            B,
            RequestFacts {
                already_friends: true,
                ..ok_facts()
            },
            Err(ErrorCode::AlreadyFriends),
        );
        check(
            B,
            RequestFacts {
                pending_same_way: true,
                ..ok_facts()
            },
            Err(ErrorCode::FriendRequestDuplicate),
        );
        check(
            B,
            RequestFacts {
                actor_friends: 999,
                target_friends: 999,
                ..ok_facts()
            },
            Ok(RequestOutcome::Create),
        );
        check(
            B,
            RequestFacts {
                actor_friends: 1000,
                ..ok_facts()
            },
            Err(ErrorCode::FriendLimitExceeded),
        );
        check(
            B,
            RequestFacts {
                target_friends: 1000,
                ..ok_facts()
            },
            Err(ErrorCode::FriendLimitExceeded),
        );
        check(
            B,
            RequestFacts {
                target_friends: 1000,
                pending_reverse: true,
                ..ok_facts()
            },
            Err(ErrorCode::FriendLimitExceeded),
        );
    }

    #[test]
    fn friend_limit_follows_limits() {
        let limits = Limits {
            friends_max: 2,
            ..Limits::default()
        };
        assert!(check_friend_limit(1, 1, &limits).is_ok());
        assert_eq!(
            check_friend_limit(2, 0, &limits).unwrap_err().code(),
            ErrorCode::FriendLimitExceeded
        );
    }

    #[test]
    fn answers() {
        let request = |status| FriendRequest {
            id: FriendRequestId(9),
            from: A,
            to: B,
            status,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let pending = request(FriendRequestStatus::Pending);
        let check = |r: Option<&FriendRequest>,
                     actor: UserId,
                     answer: Answer,
                     expect: Option<ErrorCode>| {
            assert_eq!(
                check_answer(r, actor, answer).err().map(|e| e.code()),
                expect,
                "{actor:?} {answer:?}"
            );
        };
        check(Some(&pending), B, Answer::Accept, None);
        check(Some(&pending), B, Answer::Reject, None);
        check(Some(&pending), A, Answer::Cancel, None);
        check(
            Some(&pending),
            A,
            Answer::Accept,
            Some(ErrorCode::FriendRequestNotFound),
        );
        check(
            Some(&pending),
            A,
            Answer::Reject,
            Some(ErrorCode::FriendRequestNotFound),
        );
        check(
            Some(&pending),
            B,
            Answer::Cancel,
            Some(ErrorCode::FriendRequestNotFound),
        );
        check(
            Some(&pending),
            C,
            Answer::Accept,
            Some(ErrorCode::FriendRequestNotFound),
        );
        check(
            Some(&pending),
            C,
            Answer::Cancel,
            Some(ErrorCode::FriendRequestNotFound),
        );
        check(
            None,
            B,
            Answer::Accept,
            Some(ErrorCode::FriendRequestNotFound),
        );
        for status in [
            FriendRequestStatus::Accepted,
            FriendRequestStatus::Rejected,
            FriendRequestStatus::Canceled,
        ] {
            let r = request(status);
            check(
                Some(&r),
                B,
                Answer::Accept,
                Some(ErrorCode::FriendRequestNotPending),
            );
            check(
                Some(&r),
                A,
                Answer::Cancel,
                Some(ErrorCode::FriendRequestNotPending),
            );
            check(
                Some(&r),
                C,
                Answer::Reject,
                Some(ErrorCode::FriendRequestNotFound),
            );
        }
        assert_eq!(Answer::Accept.status(), FriendRequestStatus::Accepted);
        assert_eq!(Answer::Reject.status(), FriendRequestStatus::Rejected);
        assert_eq!(Answer::Cancel.status(), FriendRequestStatus::Canceled);
    }

    #[test]
    fn blocks() {
        assert_eq!(check_block(A, A).unwrap_err().code(), ErrorCode::BlockSelf);
        assert!(check_block(A, B).is_ok());
    }

    #[test]
    fn depths() {
        let limits = Limits::default();
        let check = |input: Option<u8>, expect: std::result::Result<u8, ErrorCode>| {
            assert_eq!(
                recommendation_depth(input, &limits).map_err(|e| e.code()),
                expect,
                "{input:?}"
            );
        };
        check(None, Ok(2));
        check(Some(1), Ok(1));
        check(Some(2), Ok(2));
        check(Some(3), Ok(3));
        check(Some(0), Err(ErrorCode::ValidationFailed));
        check(Some(4), Err(ErrorCode::ValidationFailed));
        check(Some(255), Err(ErrorCode::ValidationFailed));
    }

    #[test]
    fn group_names_and_descriptions() {
        let limits = Limits::default();
        let check = |input: &str, expect: std::result::Result<&str, ErrorCode>| {
            let got = normalize_group_name(input, &limits).map_err(|e| e.code());
            assert_eq!(got.as_deref().map_err(|e| *e), expect, "{input:?}");
        };
        check("Work", Ok("Work"));
        check("  Family  ", Ok("Family"));
        check("x", Ok("x"));
        check(&"g".repeat(30), Ok(&"g".repeat(30)));
        check("", Err(ErrorCode::InvalidFriendGroup));
        check("   ", Err(ErrorCode::InvalidFriendGroup));
        check(&"g".repeat(31), Err(ErrorCode::InvalidFriendGroup));
        assert_eq!(normalize_group_description(None).unwrap(), None);
        assert_eq!(normalize_group_description(Some("  ")).unwrap(), None);
        assert_eq!(
            normalize_group_description(Some(" hi "))
                .unwrap()
                .as_deref(),
            Some("hi")
        );
        assert_eq!(
            normalize_group_description(Some(&"d".repeat(201)))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidFriendGroup
        );
    }
}
