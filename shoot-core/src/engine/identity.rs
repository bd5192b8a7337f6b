//! Identity use cases: sign-up, login with lock-out, refresh-token rotation, profiles,
//! user look-up and status.
//!
//! `signup` and `authenticate` hash or verify a password with Argon2id synchronously
//! (see [`crate::identity::password`]): a server on an async runtime may run them on a
//! blocking-capable thread.

use std::collections::HashSet;
use std::fmt::Write as _;

use tracing::{info, warn};

use crate::engine::ChatEngine;
use crate::error::{Error, ErrorCode, PortError, Result, fail};
use crate::events::{Event, Topic};
use crate::identity::rules;
use crate::identity::{RefreshToken, RefreshTokenUse, User, UserStatus};
use crate::ids::UserId;

/// A sign-up request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// Login name, 3–20 of `[a-zA-Z0-9_.]`.
    pub username: String,
    /// Display name, 2–30 characters (trimmed).
    pub nickname: String,
    /// E-mail address.
    pub email: String,
    /// Plain password, checked against the policy and hashed.
    pub password: String,
    /// Optional bio, at most 200 characters.
    pub bio: Option<String>,
}

/// A partial profile update: `None` leaves a field unchanged; for the optional fields
/// `Some(None)` (or an empty string) clears them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    /// New nickname.
    pub nickname: Option<String>,
    /// New bio.
    pub bio: Option<Option<String>>,
    /// New avatar URL.
    pub profile_image_url: Option<Option<String>>,
}

/// How many fresh user codes signup tries before giving up.
const USER_CODE_ATTEMPTS: usize = 8;
/// Largest page of user search.
const SEARCH_MAX: usize = 50;

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| Error::new(ErrorCode::InternalError, format!("no OS randomness: {e}")))?;
    let mut s = String::with_capacity(bytes * 2);
    for b in buf {
        let _ = write!(s, "{b:02x}");
    }
    Ok(s)
}

fn user_not_found() -> Error {
    Error::new(ErrorCode::UserNotFound, "user not found")
}

fn invalid_credentials() -> Error {
    Error::new(
        ErrorCode::InvalidCredentials,
        "invalid username/e-mail or password",
    )
}

impl ChatEngine {
    /// Registers a user: validates every field (`INVALID_USERNAME`, `INVALID_NICKNAME`,
    /// `INVALID_EMAIL`, `BIO_TOO_LONG`, `WEAK_PASSWORD`), refuses taken usernames and e-mails
    /// (`USERNAME_TAKEN`, `EMAIL_TAKEN`, case-insensitive), hashes the password and assigns a
    /// unique user code. The new user is OFFLINE until a session connects.
    pub async fn signup(&self, new: NewUser) -> Result<User> {
        let limits = self.limits();
        rules::validate_username(&new.username, limits)?;
        let nickname = rules::normalize_nickname(&new.nickname, limits)?;
        let email = rules::normalize_email(&new.email)?;
        let bio = rules::normalize_bio(new.bio.as_deref(), limits)?;
        rules::validate_password(&new.password, limits)?;
        // Cheap checks before the expensive hash; the store's unique keys stay authoritative.
        if self
            .p()
            .users
            .find_by_username(&new.username)
            .await?
            .is_some()
        {
            return fail(ErrorCode::UsernameTaken, "username is already taken");
        }
        if self.p().users.find_by_email(&email).await?.is_some() {
            return fail(ErrorCode::EmailTaken, "e-mail is already registered");
        }
        let password_hash = self.inner.config.password.hash(&new.password)?;
        let now = self.now();
        let mut user = User {
            id: UserId(self.next_id()),
            username: new.username,
            nickname,
            email,
            password_hash,
            status: UserStatus::Offline,
            bio,
            profile_image_url: None,
            user_code: String::new(),
            last_seen_at: None,
            created_at: now,
            updated_at: now,
        };
        for _ in 0..USER_CODE_ATTEMPTS {
            let seed = (self.next_id() as u64) ^ (now.as_millis() as u64).rotate_left(29);
            user.user_code = rules::user_code(seed, limits.user_code_len);
            match self.p().users.create_user(&user).await {
                Ok(()) => {
                    info!(user_id = %user.id, username = %user.username, "user signed up");
                    return Ok(user);
                }
                Err(PortError::AlreadyExists { what: "user_code" }) => continue,
                Err(e) => return Err(map_unique(e)),
            }
        }
        fail(
            ErrorCode::InternalError,
            "could not allocate a unique user code",
        )
    }

    /// Checks a login (username, or e-mail when it contains `@`) and password.
    ///
    /// Failures are counted per account and per client address (when given) for
    /// `limits.login_lockout`; once either count reaches `limits.login_max_failures` every
    /// attempt is refused with `ACCOUNT_LOCKED`, even with the right password, until the
    /// lock-out ends. A success resets the account's count (not the address's: one valid
    /// account must not let an address keep guessing others). Unknown users and wrong
    /// passwords both give `INVALID_CREDENTIALS` and cost the same hashing work.
    pub async fn authenticate(
        &self,
        login: &str,
        password: &str,
        client_addr: Option<&str>,
    ) -> Result<User> {
        let login = login.trim();
        let limits = self.limits();
        let user = if login.contains('@') {
            self.p().users.find_by_email(login).await?
        } else {
            self.p().users.find_by_username(login).await?
        };
        let account_key = match &user {
            Some(u) => format!("login:fail:user:{}", u.id),
            None => format!("login:fail:login:{}", login.to_lowercase()),
        };
        let mut keys = vec![account_key.clone()];
        if let Some(addr) = client_addr {
            keys.push(format!("login:fail:addr:{addr}"));
        }
        let counts = self.p().ephemeral.get_many(&keys).await?;
        let max = i64::from(limits.login_max_failures);
        if counts
            .iter()
            .flatten()
            .any(|c| c.parse::<i64>().is_ok_and(|c| c >= max))
        {
            return fail(
                ErrorCode::AccountLocked,
                "too many failed logins; try again later",
            );
        }
        let verified = match &user {
            Some(u) => self
                .inner
                .config
                .password
                .verify(password, &u.password_hash),
            None => {
                // Same work as a verification, so timing does not reveal unknown logins.
                let _ = self.inner.config.password.hash(password);
                false
            }
        };
        match user {
            Some(user) if verified => {
                self.p().ephemeral.delete(&account_key).await?;
                Ok(user)
            }
            _ => {
                for key in &keys {
                    let n = self
                        .p()
                        .ephemeral
                        .incr(key, 1, Some(limits.login_lockout))
                        .await?;
                    if n == max {
                        // Restart the window so the lock-out lasts its full length from
                        // the locking failure.
                        self.p()
                            .ephemeral
                            .set(key, &n.to_string(), Some(limits.login_lockout))
                            .await?;
                        warn!(key = %key, "login locked out");
                    }
                }
                Err(invalid_credentials())
            }
        }
    }

    /// Issues a refresh token for `user`, in `family` (a rotation) or a new family (a login).
    pub async fn issue_refresh_token(
        &self,
        user: UserId,
        family: Option<String>,
    ) -> Result<RefreshToken> {
        if self.p().users.get_user(user).await?.is_none() {
            return Err(user_not_found());
        }
        let now = self.now();
        let family_id = match family {
            Some(f) => f,
            None => random_hex(16)?,
        };
        let token = RefreshToken {
            token_id: random_hex(16)?,
            family_id,
            user_id: user,
            expires_at: now.plus(self.limits().refresh_token_ttl),
            created_at: now,
            used: false,
            revoked: false,
        };
        self.p().users.insert_refresh_token(&token).await?;
        Ok(token)
    }

    /// Exchanges a refresh token for a new one of the same family (rotation). A token that
    /// was already exchanged revokes its whole family (`TOKEN_REUSED`: it was stolen, or the
    /// legitimate client is replaying); any token of an already revoked family (logout or
    /// earlier reuse) is `INVALID_TOKEN`, an unknown one `INVALID_TOKEN`, an expired one
    /// `TOKEN_EXPIRED`.
    pub async fn rotate_refresh_token(&self, token_id: &str) -> Result<RefreshToken> {
        match self.p().users.use_refresh_token(token_id).await? {
            RefreshTokenUse::Unknown => fail(ErrorCode::InvalidToken, "unknown refresh token"),
            RefreshTokenUse::Reused(t) if t.revoked => {
                fail(ErrorCode::InvalidToken, "refresh token was revoked")
            }
            RefreshTokenUse::Reused(t) => {
                self.p().users.revoke_refresh_family(&t.family_id).await?;
                warn!(user_id = %t.user_id, family = %t.family_id, "refresh token reused; family revoked");
                fail(
                    ErrorCode::TokenReused,
                    "refresh token was already used; please log in again",
                )
            }
            RefreshTokenUse::Fresh(t) if t.expires_at <= self.now() => {
                fail(ErrorCode::TokenExpired, "refresh token expired")
            }
            RefreshTokenUse::Fresh(t) => {
                self.issue_refresh_token(t.user_id, Some(t.family_id)).await
            }
        }
    }

    /// Logs out: revokes the family of the token (idempotent for known tokens;
    /// `INVALID_TOKEN` for unknown ones).
    pub async fn revoke_refresh_token_family(&self, token_id: &str) -> Result<()> {
        // The store has no plain look-up: `use_refresh_token` returns the record (marking it
        // used is harmless as the whole family is revoked next).
        let token = match self.p().users.use_refresh_token(token_id).await? {
            RefreshTokenUse::Fresh(t) | RefreshTokenUse::Reused(t) => t,
            RefreshTokenUse::Unknown => {
                return fail(ErrorCode::InvalidToken, "unknown refresh token");
            }
        };
        self.p()
            .users
            .revoke_refresh_family(&token.family_id)
            .await?;
        Ok(())
    }

    /// One user, or `USER_NOT_FOUND`.
    ///
    /// Concurrent look-ups (a burst of connecting sessions checking their token's user) are
    /// answered by one [`UserStore::get_users`](crate::identity::UserStore::get_users).
    pub async fn user(&self, id: UserId) -> Result<User> {
        self.runtime()
            .users
            .read(
                vec![id],
                |ids: Vec<UserId>| async move { Ok(self.p().users.get_users(&ids).await?) },
                |user: &User| user.id,
            )
            .await?
            .pop()
            .ok_or_else(user_not_found)
    }

    /// The users with these ids that exist, in input order, without duplicates.
    pub async fn users(&self, ids: &[UserId]) -> Result<Vec<User>> {
        let mut seen = HashSet::new();
        let unique: Vec<UserId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self.p().users.get_users(&unique).await?;
        let pos: std::collections::HashMap<UserId, usize> =
            unique.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        found.sort_by_key(|u| pos.get(&u.id).copied().unwrap_or(usize::MAX));
        Ok(found)
    }

    /// The user with this code (trimmed, case-insensitive), or `USER_NOT_FOUND`.
    pub async fn find_user_by_code(&self, code: &str) -> Result<User> {
        let code = code.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Err(user_not_found());
        }
        self.p()
            .users
            .find_by_code(&code)
            .await?
            .ok_or_else(user_not_found)
    }

    /// Users whose username or nickname contains `q` (case-insensitive), ordered by
    /// username, at most `limit` (1–50), leaving out the caller and users who block the
    /// caller or whom the caller blocks. An empty query finds nobody.
    pub async fn search_users(&self, actor: UserId, q: &str, limit: usize) -> Result<Vec<User>> {
        let q = q.trim();
        let limit = limit.clamp(1, SEARCH_MAX);
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let mut hidden: HashSet<UserId> = self
            .p()
            .social
            .blocked_by(actor)
            .await?
            .into_iter()
            .collect();
        hidden.extend(self.p().social.blockers_of(actor).await?);
        hidden.insert(actor);
        // Ask for enough to fill the page after filtering.
        let found = self.p().users.search_users(q, limit + hidden.len()).await?;
        Ok(found
            .into_iter()
            .filter(|u| !hidden.contains(&u.id))
            .take(limit)
            .collect())
    }

    /// Applies a profile patch (same validation as sign-up) and returns the updated user.
    pub async fn update_profile(&self, actor: UserId, patch: ProfilePatch) -> Result<User> {
        let limits = self.limits();
        let mut user = self.user(actor).await?;
        if let Some(nickname) = &patch.nickname {
            user.nickname = rules::normalize_nickname(nickname, limits)?;
        }
        if let Some(bio) = &patch.bio {
            user.bio = rules::normalize_bio(bio.as_deref(), limits)?;
        }
        if let Some(url) = &patch.profile_image_url {
            user.profile_image_url = rules::normalize_image_url(url.as_deref())?;
        }
        user.updated_at = self.now();
        self.p()
            .users
            .update_user(&user)
            .await
            .map_err(map_unique)?;
        Ok(user)
    }

    /// Sets the caller's declared status and publishes `UserStatusChanged` to the caller's
    /// and each friend's user topic. Going OFFLINE records `last_seen_at`.
    pub async fn set_status(&self, actor: UserId, status: UserStatus) -> Result<User> {
        let mut user = self.user(actor).await?;
        let now = self.now();
        user.status = status;
        if status == UserStatus::Offline {
            user.last_seen_at = Some(now);
        }
        user.updated_at = now;
        self.p()
            .users
            .update_user(&user)
            .await
            .map_err(map_unique)?;
        let event = Event::UserStatusChanged {
            user_id: actor,
            status,
            last_seen_at: user.last_seen_at.filter(|_| status == UserStatus::Offline),
        };
        let friends = self.p().social.friends_of(actor).await?;
        for u in std::iter::once(actor).chain(friends) {
            self.publish(Topic::User(u), event.clone()).await;
        }
        Ok(user)
    }
}

/// Maps unique-key clashes of the user store to their codes.
fn map_unique(e: PortError) -> Error {
    match e {
        PortError::AlreadyExists { what: "username" } => {
            Error::new(ErrorCode::UsernameTaken, "username is already taken")
        }
        PortError::AlreadyExists { what: "email" } => {
            Error::new(ErrorCode::EmailTaken, "e-mail is already registered")
        }
        PortError::NotFound => user_not_found(),
        other => other.into(),
    }
}
