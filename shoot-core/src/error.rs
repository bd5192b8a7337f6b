//! Errors: one engine error type carrying a stable [`ErrorCode`], and the [`PortError`]
//! every port returns.
//!
//! Codes cross bounded contexts (a send can fail on membership, blocking, content or rate
//! limiting), so instead of one enum per context the engine has one table of codes, each
//! with its [`ErrorKind`]. The server maps kinds to HTTP statuses and STOMP ERROR frames in
//! one place and sends the code string unchanged.

use std::borrow::Cow;
use std::fmt;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The class of an error, which decides the HTTP status and whether a retry can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (HTTP 400).
    InvalidInput,
    /// No or bad credentials (HTTP 401).
    Unauthenticated,
    /// Authenticated but not allowed (HTTP 403).
    Forbidden,
    /// The addressed thing does not exist or is not visible to the caller (HTTP 404).
    NotFound,
    /// The request conflicts with the current state (HTTP 409).
    Conflict,
    /// Too many requests (HTTP 429).
    RateLimited,
    /// A backend is unreachable or failed; retrying later may help (HTTP 503).
    Unavailable,
    /// A bug or an unexpected state (HTTP 500).
    Internal,
}

macro_rules! error_codes {
    ($($(#[$meta:meta])* $variant:ident = $code:literal => $kind:ident,)*) => {
        /// Stable, client-visible error codes. The string form never changes once published.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$meta])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and exhaustive tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire string, e.g. `"ROOM_NOT_FOUND"`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The class of this code.
            pub fn kind(self) -> ErrorKind {
                match self { $(ErrorCode::$variant => ErrorKind::$kind,)* }
            }
        }
    };
}

error_codes! {
    /// Generic validation failure.
    ValidationFailed = "VALIDATION_FAILED" => InvalidInput,
    /// Username not 3–20 of `[a-zA-Z0-9_.]`.
    InvalidUsername = "INVALID_USERNAME" => InvalidInput,
    /// Nickname not 2–30 characters.
    InvalidNickname = "INVALID_NICKNAME" => InvalidInput,
    /// Malformed e-mail address.
    InvalidEmail = "INVALID_EMAIL" => InvalidInput,
    /// Password breaks the password policy.
    WeakPassword = "WEAK_PASSWORD" => InvalidInput,
    /// Bio too long.
    BioTooLong = "BIO_TOO_LONG" => InvalidInput,
    /// Username already registered.
    UsernameTaken = "USERNAME_TAKEN" => Conflict,
    /// E-mail already registered.
    EmailTaken = "EMAIL_TAKEN" => Conflict,
    /// Wrong username/e-mail or password.
    InvalidCredentials = "INVALID_CREDENTIALS" => Unauthenticated,
    /// Too many failed logins for this account or address.
    AccountLocked = "ACCOUNT_LOCKED" => RateLimited,
    /// Missing, malformed, wrongly signed or wrong-type token.
    InvalidToken = "INVALID_TOKEN" => Unauthenticated,
    /// Token past its expiry.
    TokenExpired = "TOKEN_EXPIRED" => Unauthenticated,
    /// A rotated refresh token was presented again; its family is revoked.
    TokenReused = "TOKEN_REUSED" => Unauthenticated,
    /// No such user.
    UserNotFound = "USER_NOT_FOUND" => NotFound,
    /// Friend request to oneself.
    FriendRequestToSelf = "FRIEND_REQUEST_TO_SELF" => InvalidInput,
    /// A pending request already exists.
    FriendRequestDuplicate = "FRIEND_REQUEST_DUPLICATE" => Conflict,
    /// No such friend request (or not addressed to the caller).
    FriendRequestNotFound = "FRIEND_REQUEST_NOT_FOUND" => NotFound,
    /// The request is no longer pending.
    FriendRequestNotPending = "FRIEND_REQUEST_NOT_PENDING" => Conflict,
    /// Already friends.
    AlreadyFriends = "ALREADY_FRIENDS" => Conflict,
    /// Not friends.
    NotFriends = "NOT_FRIENDS" => NotFound,
    /// Friend limit reached (either side).
    FriendLimitExceeded = "FRIEND_LIMIT_EXCEEDED" => Conflict,
    /// One side blocks the other.
    UserBlocked = "USER_BLOCKED" => Forbidden,
    /// Blocking oneself.
    BlockSelf = "BLOCK_SELF" => InvalidInput,
    /// Not blocked.
    NotBlocked = "NOT_BLOCKED" => NotFound,
    /// No such friend group owned by the caller.
    FriendGroupNotFound = "FRIEND_GROUP_NOT_FOUND" => NotFound,
    /// Invalid friend group name.
    InvalidFriendGroup = "INVALID_FRIEND_GROUP" => InvalidInput,
    /// No such room, or the caller cannot see it.
    RoomNotFound = "ROOM_NOT_FOUND" => NotFound,
    /// The caller is not a participant of the room.
    NotRoomParticipant = "NOT_ROOM_PARTICIPANT" => Forbidden,
    /// The caller's role does not allow this.
    RoomPermissionDenied = "ROOM_PERMISSION_DENIED" => Forbidden,
    /// Direct room with oneself.
    DirectRoomWithSelf = "DIRECT_ROOM_WITH_SELF" => InvalidInput,
    /// Direct rooms have exactly two participants.
    DirectRoomMembership = "DIRECT_ROOM_MEMBERSHIP" => InvalidInput,
    /// Invalid room title.
    InvalidRoomTitle = "INVALID_ROOM_TITLE" => InvalidInput,
    /// Group size outside the configured bounds.
    RoomMemberLimit = "ROOM_MEMBER_LIMIT" => InvalidInput,
    /// Already a participant.
    AlreadyParticipant = "ALREADY_PARTICIPANT" => Conflict,
    /// Announcement too long.
    AnnouncementTooLong = "ANNOUNCEMENT_TOO_LONG" => InvalidInput,
    /// Favourite limit reached.
    FavoriteLimitExceeded = "FAVORITE_LIMIT_EXCEEDED" => Conflict,
    /// No such message, or not visible to the caller.
    MessageNotFound = "MESSAGE_NOT_FOUND" => NotFound,
    /// Empty content after trimming.
    MessageEmpty = "MESSAGE_EMPTY" => InvalidInput,
    /// Content longer than the limit.
    MessageTooLong = "MESSAGE_TOO_LONG" => InvalidInput,
    /// Unknown or client-forbidden message type.
    InvalidMessageType = "INVALID_MESSAGE_TYPE" => InvalidInput,
    /// Missing or malformed `tempId`.
    InvalidTempId = "INVALID_TEMP_ID" => InvalidInput,
    /// Only the sender may do this.
    NotMessageSender = "NOT_MESSAGE_SENDER" => Forbidden,
    /// Edit window has passed.
    EditWindowExpired = "EDIT_WINDOW_EXPIRED" => Forbidden,
    /// The message is deleted.
    MessageDeleted = "MESSAGE_DELETED" => Conflict,
    /// Pin limit of the room reached.
    PinLimitExceeded = "PIN_LIMIT_EXCEEDED" => Conflict,
    /// Reaction code not in the configured set.
    UnknownReaction = "UNKNOWN_REACTION" => InvalidInput,
    /// Mentioned user is not a participant, or mention list too long.
    InvalidMention = "INVALID_MENTION" => InvalidInput,
    /// No such scheduled message owned by the caller.
    ScheduleNotFound = "SCHEDULE_NOT_FOUND" => NotFound,
    /// Scheduled time not in the future.
    ScheduleInPast = "SCHEDULE_IN_PAST" => InvalidInput,
    /// The schedule is no longer PENDING.
    ScheduleNotPending = "SCHEDULE_NOT_PENDING" => Conflict,
    /// No such bookmark.
    BookmarkNotFound = "BOOKMARK_NOT_FOUND" => NotFound,
    /// No such notification owned by the caller.
    NotificationNotFound = "NOTIFICATION_NOT_FOUND" => NotFound,
    /// Rate limit exceeded.
    RateLimited = "RATE_LIMITED" => RateLimited,
    /// Generic not found.
    NotFound = "NOT_FOUND" => NotFound,
    /// Generic conflict.
    Conflict = "CONFLICT" => Conflict,
    /// A backend (database, bus, log) is unavailable.
    BackendUnavailable = "BACKEND_UNAVAILABLE" => Unavailable,
    /// Unexpected internal error.
    InternalError = "INTERNAL_ERROR" => Internal,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine error: a stable code, a human-readable message safe to show to the client,
/// and (for backend failures) the underlying cause, which is logged but never sent.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    code: ErrorCode,
    message: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A client error with a message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// A backend failure; the message shown to clients does not include `source`.
    pub fn backend(backend: &'static str, source: BoxError) -> Error {
        Error {
            code: ErrorCode::BackendUnavailable,
            message: Cow::Owned(format!("{backend} is unavailable")),
            source: Some(source),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Shorthand: `Err(Error::new(code, message))`.
pub fn fail<T>(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Result<T> {
    Err(Error::new(code, message))
}

/// What every port returns on failure. Adapters classify driver errors at the boundary:
/// a unique-key violation becomes [`PortError::AlreadyExists`], a lost connection
/// [`PortError::Backend`]; no driver error type crosses into the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The addressed record does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint would be violated; `what` names it (e.g. `"username"`).
    #[error("already exists: {what}")]
    AlreadyExists {
        /// Which unique key.
        what: &'static str,
    },
    /// A precondition of a conditional write did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend failed or could not be reached.
    #[error("{backend} failed: {source}")]
    Backend {
        /// Short backend name, e.g. `"sqlite"`, `"redis"`.
        backend: &'static str,
        /// Driver error.
        #[source]
        source: BoxError,
    },
}

impl PortError {
    /// Wraps a driver error.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> PortError {
        PortError::Backend {
            backend,
            source: source.into(),
        }
    }
}

impl From<PortError> for Error {
    fn from(e: PortError) -> Error {
        match e {
            PortError::NotFound => Error::new(ErrorCode::NotFound, "not found"),
            PortError::AlreadyExists { what } => {
                Error::new(ErrorCode::Conflict, format!("{what} already exists"))
            }
            PortError::Conflict(m) => Error::new(ErrorCode::Conflict, m),
            PortError::Backend { backend, source } => Error::backend(backend, source),
        }
    }
}

/// Result of a port call.
pub type PortResult<T> = std::result::Result<T, PortError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_screaming_snake_case() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn backend_errors_hide_the_cause() {
        let e = Error::backend("sqlite", "disk I/O error at /secret/path".into());
        assert_eq!(e.code(), ErrorCode::BackendUnavailable);
        assert!(!e.message().contains("secret"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
