//! Identity: user accounts, profiles, status, user codes and refresh-token sessions.

pub mod password;
pub mod rules;

use async_trait::async_trait;

use crate::error::{PortError, PortResult};
use crate::ids::UserId;
use crate::time::Timestamp;

/// A user's self-declared availability. `Online`/`Offline` also follow connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "SCREAMING_SNAKE_CASE")
)]
pub enum UserStatus {
    /// Connected and available.
    Online,
    /// Away.
    Away,
    /// Do not disturb.
    Busy,
    /// Not connected (or invisible).
    Offline,
}

impl UserStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Online => "ONLINE",
            UserStatus::Away => "AWAY",
            UserStatus::Busy => "BUSY",
            UserStatus::Offline => "OFFLINE",
        }
    }

    /// Parses a wire name (case-insensitive).
    pub fn parse(s: &str) -> Option<UserStatus> {
        match s.to_ascii_uppercase().as_str() {
            "ONLINE" => Some(UserStatus::Online),
            "AWAY" => Some(UserStatus::Away),
            "BUSY" => Some(UserStatus::Busy),
            "OFFLINE" => Some(UserStatus::Offline),
            _ => None,
        }
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique (case-insensitive) login name, 3–20 of `[a-zA-Z0-9_.]`.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// Unique (case-insensitive) e-mail address.
    pub email: String,
    /// PHC-format password hash (Argon2id). Never leaves the engine in a view.
    pub password_hash: String,
    /// Declared status.
    pub status: UserStatus,
    /// Free-text bio.
    pub bio: Option<String>,
    /// Avatar URL.
    pub profile_image_url: Option<String>,
    /// Unique `[A-Z0-9]{4,12}` code to find the user by.
    pub user_code: String,
    /// When the user's last session disconnected.
    pub last_seen_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last profile change.
    pub updated_at: Timestamp,
}

/// A refresh token record. Tokens rotate: each use marks the record used and issues a new
/// one in the same family; presenting a used token again revokes the whole family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// Unique token id (the JWT `jti`).
    pub token_id: String,
    /// Family: all tokens descending from one login.
    pub family_id: String,
    /// Owner.
    pub user_id: UserId,
    /// Expiry.
    pub expires_at: Timestamp,
    /// Issue time.
    pub created_at: Timestamp,
    /// Whether it was already exchanged.
    pub used: bool,
    /// Whether its family was revoked (logout or reuse).
    pub revoked: bool,
}

/// Outcome of [`UserStore::use_refresh_token`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshTokenUse {
    /// The token was valid and unused; it is now marked used.
    Fresh(RefreshToken),
    /// The token had already been used or revoked (returned as stored, before this call).
    Reused(RefreshToken),
    /// No such token.
    Unknown,
}

/// Storage of users and refresh tokens.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Inserts a user.
    ///
    /// MUST fail with `AlreadyExists { what: "username" }`, `"email"` or `"user_code"` when
    /// another user has the same username or e-mail (compared case-insensitively) or user code,
    /// also under concurrent calls.
    async fn create_user(&self, user: &User) -> PortResult<()>;

    /// The user with this id.
    async fn get_user(&self, id: UserId) -> PortResult<Option<User>>;

    /// The users with these ids that exist, in any order.
    async fn get_users(&self, ids: &[UserId]) -> PortResult<Vec<User>>;

    /// The user with this username, compared case-insensitively.
    async fn find_by_username(&self, username: &str) -> PortResult<Option<User>>;

    /// The user with this e-mail, compared case-insensitively.
    async fn find_by_email(&self, email: &str) -> PortResult<Option<User>>;

    /// The user with this user code (exact).
    async fn find_by_code(&self, code: &str) -> PortResult<Option<User>>;

    /// Replaces the stored user with the same id. MUST fail with `NotFound` if absent and
    /// with `AlreadyExists` like [`create_user`](Self::create_user) on a unique-key clash.
    async fn update_user(&self, user: &User) -> PortResult<()>;

    /// Records when each user was last seen: sets `last_seen_at` to the given time unless it
    /// is already later (of several entries for one user the latest wins). Nothing else of
    /// the user changes; unknown users are skipped.
    ///
    /// Disconnects call this for a burst at once, so an adapter SHOULD write all of them in
    /// one statement per chunk. The default reads and updates each user.
    async fn set_last_seen(&self, seen: &[(UserId, Timestamp)]) -> PortResult<()> {
        for (id, at) in seen {
            if let Some(mut user) = self.get_user(*id).await? {
                if user.last_seen_at.is_none_or(|t| t < *at) {
                    user.last_seen_at = Some(*at);
                    match self.update_user(&user).await {
                        Ok(()) | Err(PortError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Users whose username or nickname contains `query` (case-insensitive), ordered by
    /// username, at most `limit`.
    async fn search_users(&self, query: &str, limit: usize) -> PortResult<Vec<User>>;

    /// Stores a new refresh token. MUST fail with `AlreadyExists` on a duplicate `token_id`.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> PortResult<()>;

    /// Atomically marks the token used and says whether it was fresh. Of concurrent calls with
    /// the same token, exactly one MUST see `Fresh`.
    async fn use_refresh_token(&self, token_id: &str) -> PortResult<RefreshTokenUse>;

    /// Marks every token of the family revoked. Idempotent.
    async fn revoke_refresh_family(&self, family_id: &str) -> PortResult<()>;
}
