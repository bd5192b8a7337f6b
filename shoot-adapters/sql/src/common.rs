// Store implementations shared by both dialects. This file is `include!`d by `sqlite.rs` and
// `postgres.rs`, which define before the include:
//   `Db` (the sqlx database), `Store` (the store struct with a `pool: sqlx::Pool<Db>` field),
//   `BACKEND` (the backend name for errors), `begin_write(&Pool)` (a write transaction),
//   `CLAIM_DUE_SQL` (the dialect's atomic claim) and `ANONYMOUS_PARAMS` (whether statements
//   whose parameters are bound in textual order use `?` instead of `$n`).
// Every statement uses `$n` placeholders, which both sqlx drivers accept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use async_trait::async_trait;
use shoot_core::bookmarks::{Bookmark, BookmarkStore};
use shoot_core::identity::{RefreshToken, RefreshTokenUse, User, UserStatus, UserStore};
use shoot_core::ids::{
    FriendGroupId, FriendRequestId, MessageId, NotificationId, RoomId, ScheduleId, Seq, UserId,
};
use shoot_core::messages::{
    ForwardedFrom, HistoryQuery, Message, MessageStore, MessageType, Pin, Reactions, UrlPreview,
};
use shoot_core::notifications::{Notification, NotificationStore};
use shoot_core::rooms::{Participant, Role, Room, RoomActivity, RoomStore};
use shoot_core::schedule::{
    Repeat, ScheduleOutcome, ScheduleStatus, ScheduleStore, ScheduledMessage,
};
use shoot_core::social::{FriendGroup, FriendRequest, FriendRequestStatus, SocialStore};
use shoot_core::time::Timestamp;
use shoot_core::{PortError, PortResult};
use sqlx::Row as _;

use crate::codec;

type DbRow = <Db as sqlx::Database>::Row;

/// Largest number of rows in one multi-row statement (20 columns × 1000 rows stays under
/// SQLite's 32 766 bound variables and PostgreSQL's 65 535).
const CHUNK: usize = 1000;
/// Pages per `histories` statement (SQLite allows at most 500 terms in a compound SELECT).
const HISTORY_CHUNK: usize = 200;

/// Largest number of `(sender_id, temp_id)` keys in one `find_by_temp_ids` statement (two
/// parameters each).
const TEMP_ID_CHUNK: usize = 500;

/// Largest number of rooms in one `record_activity` statement (four parameters each).
const ACTIVITY_CHUNK: usize = 250;

/// Placeholders `start..start+n` for a statement whose parameters are all bound in textual
/// order. SQLite gets anonymous `?`: it resolves numbered names by a linear scan per
/// parameter, which makes a 20 000-parameter insert quadratic.
fn sequential_placeholders(start: usize, n: usize) -> String {
    if ANONYMOUS_PARAMS {
        let mut s = "?,".repeat(n);
        s.pop();
        s
    } else {
        codec::placeholders(start, n)
    }
}

/// Statements built for a number of rows (multi-row inserts, `VALUES` tables, pairs, pages)
/// of up to this many rows stay in the connection's statement cache; a larger one is prepared
/// for its one execution. Each row count is a new statement text and its prepared program
/// grows with it, so caching every size seen fills each connection's cache with large
/// programs that are rarely run again. Small batches are the common ones (the persistence
/// worker's inserts at a few thousand messages a second): caching up to 32 rows keeps the
/// durable path's RECEIPT p50 at ≈ 3.7–4.0 ms where preparing every insert made it
/// 4.2–4.4 ms (BENCHMARKS.md).
const CACHED_ROWS: usize = 32;

/// `sqlx::query(sql)` for a statement built for `rows` rows: cached only when small
/// ([`CACHED_ROWS`]).
fn sized_query(
    sql: &str,
    rows: usize,
) -> sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments<'_>> {
    sqlx::query(sql).persistent(rows <= CACHED_ROWS)
}

/// Appends `(?,…,?),(?,…,?)…`: `rows` row values of `width` parameters each, numbered from 1
/// in textual order (a `VALUES` list of a multi-row insert or of a `WITH v (…) AS` table).
fn push_rows(sql: &mut String, rows: usize, width: usize) {
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        sql.push_str(&sequential_placeholders(i * width + 1, width));
        sql.push(')');
    }
}

/// `SELECT {cols} FROM {from} WHERE ({a} = ? AND {b} = ?) OR …` for `n` pairs, bound in
/// textual order: each pair is answered from an index on `(a, b)`.
fn select_pairs(cols: &str, from: &str, a: &str, b: &str, n: usize) -> String {
    let mut sql = String::with_capacity(32 + cols.len() + from.len() + n * 40);
    sql.push_str("SELECT ");
    sql.push_str(cols);
    sql.push_str(" FROM ");
    sql.push_str(from);
    sql.push_str(" WHERE ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push('(');
        sql.push_str(a);
        sql.push_str(" = ");
        sql.push_str(&sequential_placeholders(2 * i + 1, 1));
        sql.push_str(" AND ");
        sql.push_str(b);
        sql.push_str(" = ");
        sql.push_str(&sequential_placeholders(2 * i + 2, 1));
        sql.push(')');
    }
    sql
}

fn err(e: sqlx::Error) -> PortError {
    crate::error::classify(BACKEND, e)
}

fn col<'r, T>(row: &'r DbRow, name: &str) -> PortResult<T>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(name).map_err(err)
}

fn ts(v: i64) -> Timestamp {
    Timestamp(v)
}

fn json<T: serde::Serialize>(v: &T) -> PortResult<String> {
    serde_json::to_string(v).map_err(|e| PortError::backend(BACKEND, e))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> PortResult<T> {
    serde_json::from_str(s).map_err(|e| PortError::backend(BACKEND, e))
}

fn parse<T>(what: &str, value: &str, f: impl FnOnce(&str) -> Option<T>) -> PortResult<T> {
    f(value).ok_or_else(|| codec::corrupt(BACKEND, what, value))
}

// ---------------------------------------------------------------------------------------------
// Identity

const USER_COLS: &str = "id, username, nickname, email, password_hash, status, bio, \
    profile_image_url, user_code, last_seen_at, created_at, updated_at";

fn user_from_row(r: &DbRow) -> PortResult<User> {
    let status: String = col(r, "status")?;
    Ok(User {
        id: UserId(col(r, "id")?),
        username: col(r, "username")?,
        nickname: col(r, "nickname")?,
        email: col(r, "email")?,
        password_hash: col(r, "password_hash")?,
        status: parse("user status", &status, UserStatus::parse)?,
        bio: col(r, "bio")?,
        profile_image_url: col(r, "profile_image_url")?,
        user_code: col(r, "user_code")?,
        last_seen_at: col::<Option<i64>>(r, "last_seen_at")?.map(ts),
        created_at: ts(col(r, "created_at")?),
        updated_at: ts(col(r, "updated_at")?),
    })
}

const TOKEN_COLS: &str = "token_id, family_id, user_id, expires_at, created_at, used, revoked";

fn token_from_row(r: &DbRow) -> PortResult<RefreshToken> {
    Ok(RefreshToken {
        token_id: col(r, "token_id")?,
        family_id: col(r, "family_id")?,
        user_id: UserId(col(r, "user_id")?),
        expires_at: ts(col(r, "expires_at")?),
        created_at: ts(col(r, "created_at")?),
        used: col(r, "used")?,
        revoked: col(r, "revoked")?,
    })
}

impl Store {
    /// After a unique violation on `users`, names the clashing key in a fixed order
    /// (username, e-mail, user code) whichever index the database happened to check first.
    async fn user_clash(&self, user: &User, fallback: PortError) -> PortError {
        let checks = [
            ("username", "username_lower", user.username.to_lowercase()),
            ("email", "email_lower", user.email.to_lowercase()),
            ("user_code", "user_code", user.user_code.clone()),
        ];
        for (what, column, value) in checks {
            let sql = format!("SELECT 1 AS one FROM users WHERE {column} = $1 AND id <> $2");
            match sqlx::query(&sql)
                .bind(value)
                .bind(user.id.0)
                .fetch_optional(&self.pool)
                .await
            {
                Ok(Some(_)) => return PortError::AlreadyExists { what },
                Ok(None) => {}
                Err(e) => return err(e),
            }
        }
        fallback
    }

    async fn user_where(&self, clause: &str, value: &str) -> PortResult<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE {clause} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }
}

#[async_trait]
impl UserStore for Store {
    async fn create_user(&self, user: &User) -> PortResult<()> {
        let done = sqlx::query(
            "INSERT INTO users (id, username, username_lower, nickname, email, email_lower, \
             password_hash, status, bio, profile_image_url, user_code, last_seen_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(user.id.0)
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.nickname)
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(user.status.as_str())
        .bind(&user.bio)
        .bind(&user.profile_image_url)
        .bind(&user.user_code)
        .bind(user.last_seen_at.map(|t| t.0))
        .bind(user.created_at.0)
        .bind(user.updated_at.0)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) => match err(e) {
                clash @ PortError::AlreadyExists { .. } => Err(self.user_clash(user, clash).await),
                other => Err(other),
            },
        }
    }

    async fn get_user(&self, id: UserId) -> PortResult<Option<User>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_users(&self, ids: &[UserId]) -> PortResult<Vec<User>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {USER_COLS} FROM users WHERE id {IN_IDS}"
            );
            let ids: Vec<i64> = chunk.iter().map(|id| id.0).collect();
            let q = bind_ids(sqlx::query(&sql), &ids);
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                out.push(user_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn find_by_username(&self, username: &str) -> PortResult<Option<User>> {
        self.user_where("username_lower", &username.to_lowercase())
            .await
    }

    async fn find_by_email(&self, email: &str) -> PortResult<Option<User>> {
        self.user_where("email_lower", &email.to_lowercase()).await
    }

    async fn find_by_code(&self, code: &str) -> PortResult<Option<User>> {
        self.user_where("user_code", code).await
    }

    async fn update_user(&self, user: &User) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE users SET username = $2, username_lower = $3, nickname = $4, email = $5, \
             email_lower = $6, password_hash = $7, status = $8, bio = $9, profile_image_url = $10, \
             user_code = $11, last_seen_at = $12, created_at = $13, updated_at = $14 WHERE id = $1",
        )
        .bind(user.id.0)
        .bind(&user.username)
        .bind(user.username.to_lowercase())
        .bind(&user.nickname)
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.password_hash)
        .bind(user.status.as_str())
        .bind(&user.bio)
        .bind(&user.profile_image_url)
        .bind(&user.user_code)
        .bind(user.last_seen_at.map(|t| t.0))
        .bind(user.created_at.0)
        .bind(user.updated_at.0)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) if done.rows_affected() == 0 => Err(PortError::NotFound),
            Ok(_) => Ok(()),
            Err(e) => match err(e) {
                clash @ PortError::AlreadyExists { .. } => Err(self.user_clash(user, clash).await),
                other => Err(other),
            },
        }
    }

    async fn set_last_seen(&self, seen: &[(UserId, Timestamp)]) -> PortResult<()> {
        let mut latest: BTreeMap<i64, i64> = BTreeMap::new();
        for (id, at) in seen {
            let e = latest.entry(id.0).or_insert(at.0);
            *e = (*e).max(at.0);
        }
        let latest: Vec<(i64, i64)> = latest.into_iter().collect();
        for chunk in latest.chunks(CHUNK / 2) {
            let mut sql = String::with_capacity(200 + chunk.len() * 12);
            sql.push_str("WITH v (id, at) AS (VALUES ");
            push_rows(&mut sql, chunk.len(), 2);
            sql.push_str(
                ") UPDATE users SET last_seen_at = CASE WHEN users.last_seen_at > v.at \
                 THEN users.last_seen_at ELSE v.at END FROM v WHERE users.id = v.id",
            );
            let mut q = sized_query(&sql, chunk.len());
            for (id, at) in chunk {
                q = q.bind(*id).bind(*at);
            }
            q.execute(&self.pool).await.map_err(err)?;
        }
        Ok(())
    }

    async fn search_users(&self, query: &str, limit: usize) -> PortResult<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLS} FROM users WHERE username_lower LIKE $1 ESCAPE '\\' \
             OR lower(nickname) LIKE $1 ESCAPE '\\' ORDER BY username LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(codec::contains_pattern(query))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_id, family_id, user_id, expires_at, created_at, \
             used, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.token_id)
        .bind(&token.family_id)
        .bind(token.user_id.0)
        .bind(token.expires_at.0)
        .bind(token.created_at.0)
        .bind(token.used)
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_id: &str) -> PortResult<RefreshTokenUse> {
        // One conditional UPDATE: of concurrent callers exactly one changes the row.
        let sql = format!(
            "UPDATE refresh_tokens SET used = TRUE \
             WHERE token_id = $1 AND used = FALSE AND revoked = FALSE RETURNING {TOKEN_COLS}"
        );
        if let Some(row) = sqlx::query(&sql)
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
        {
            return Ok(RefreshTokenUse::Fresh(token_from_row(&row)?));
        }
        let sql = format!("SELECT {TOKEN_COLS} FROM refresh_tokens WHERE token_id = $1");
        match sqlx::query(&sql)
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
        {
            Some(row) => Ok(RefreshTokenUse::Reused(token_from_row(&row)?)),
            None => Ok(RefreshTokenUse::Unknown),
        }
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> PortResult<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked = TRUE WHERE family_id = $1")
            .bind(family_id)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Social

const REQUEST_COLS: &str = "id, from_id, to_id, status, created_at, updated_at";

fn request_from_row(r: &DbRow) -> PortResult<FriendRequest> {
    let status: String = col(r, "status")?;
    Ok(FriendRequest {
        id: FriendRequestId(col(r, "id")?),
        from: UserId(col(r, "from_id")?),
        to: UserId(col(r, "to_id")?),
        status: parse(
            "friend request status",
            &status,
            codec::friend_request_status,
        )?,
        created_at: ts(col(r, "created_at")?),
        updated_at: ts(col(r, "updated_at")?),
    })
}

impl Store {
    async fn requests(&self, sql: &str, user: UserId) -> PortResult<Vec<FriendRequest>> {
        let rows = sqlx::query(sql)
            .bind(user.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(request_from_row).collect()
    }

    async fn user_ids(&self, sql: &str, user: UserId) -> PortResult<Vec<UserId>> {
        let rows = sqlx::query(sql)
            .bind(user.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| col::<i64>(r, "id").map(UserId))
            .collect()
    }

    /// Loads groups (without members) from rows, then their members in one query.
    async fn groups_with_members(&self, rows: Vec<DbRow>) -> PortResult<Vec<FriendGroup>> {
        let mut groups = Vec::with_capacity(rows.len());
        for r in &rows {
            groups.push(FriendGroup {
                id: FriendGroupId(col(r, "id")?),
                owner: UserId(col(r, "owner_id")?),
                name: col(r, "name")?,
                description: col(r, "description")?,
                members: Vec::new(),
                created_at: ts(col(r, "created_at")?),
                updated_at: ts(col(r, "updated_at")?),
            });
        }
        if groups.is_empty() {
            return Ok(groups);
        }
        let mut members: HashMap<i64, Vec<UserId>> = HashMap::new();
        for chunk in groups.chunks(CHUNK) {
            let sql = format!(
                "SELECT group_id, member_id FROM friend_group_members WHERE group_id {IN_IDS} \
                 ORDER BY group_id, position"
            );
            let ids: Vec<i64> = chunk.iter().map(|g| g.id.0).collect();
            let q = bind_ids(sqlx::query(&sql), &ids);
            for r in q.fetch_all(&self.pool).await.map_err(err)? {
                members
                    .entry(col(&r, "group_id")?)
                    .or_default()
                    .push(UserId(col(&r, "member_id")?));
            }
        }
        for g in &mut groups {
            g.members = members.remove(&g.id.0).unwrap_or_default();
        }
        Ok(groups)
    }
}

async fn insert_group_members(
    tx: &mut sqlx::Transaction<'static, Db>,
    group: &FriendGroup,
) -> PortResult<()> {
    let mut seen = HashSet::new();
    for (position, member) in group.members.iter().enumerate() {
        if !seen.insert(member.0) {
            continue;
        }
        sqlx::query(
            "INSERT INTO friend_group_members (group_id, member_id, position) VALUES ($1, $2, $3)",
        )
        .bind(group.id.0)
        .bind(member.0)
        .bind(position as i64)
        .execute(&mut **tx)
        .await
        .map_err(err)?;
    }
    Ok(())
}

#[async_trait]
impl SocialStore for Store {
    async fn insert_friend_request(&self, request: &FriendRequest) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO friend_requests (id, from_id, to_id, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(request.id.0)
        .bind(request.from.0)
        .bind(request.to.0)
        .bind(request.status.as_str())
        .bind(request.created_at.0)
        .bind(request.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn get_friend_request(&self, id: FriendRequestId) -> PortResult<Option<FriendRequest>> {
        let sql = format!("SELECT {REQUEST_COLS} FROM friend_requests WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn pending_request(&self, from: UserId, to: UserId) -> PortResult<Option<FriendRequest>> {
        let sql = format!(
            "SELECT {REQUEST_COLS} FROM friend_requests \
             WHERE from_id = $1 AND to_id = $2 AND status = 'PENDING'"
        );
        let row = sqlx::query(&sql)
            .bind(from.0)
            .bind(to.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn pending_requests_of(
        &self,
        user: UserId,
    ) -> PortResult<(Vec<FriendRequest>, Vec<FriendRequest>)> {
        let incoming = format!(
            "SELECT {REQUEST_COLS} FROM friend_requests WHERE to_id = $1 AND status = 'PENDING' \
             ORDER BY created_at DESC, id DESC"
        );
        let outgoing = format!(
            "SELECT {REQUEST_COLS} FROM friend_requests WHERE from_id = $1 AND status = 'PENDING' \
             ORDER BY created_at DESC, id DESC"
        );
        Ok((
            self.requests(&incoming, user).await?,
            self.requests(&outgoing, user).await?,
        ))
    }

    async fn resolve_friend_request(
        &self,
        id: FriendRequestId,
        status: FriendRequestStatus,
        at: Timestamp,
    ) -> PortResult<FriendRequest> {
        let sql = format!(
            "UPDATE friend_requests SET status = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'PENDING' RETURNING {REQUEST_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(status.as_str())
            .bind(at.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        match row {
            Some(row) => request_from_row(&row),
            None => match self.get_friend_request(id).await? {
                Some(current) => Err(PortError::Conflict(format!(
                    "friend request {id} is {}",
                    current.status.as_str()
                ))),
                None => Err(PortError::NotFound),
            },
        }
    }

    async fn add_friendship(&self, a: UserId, b: UserId, at: Timestamp) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3), \
             ($2, $1, $3) ON CONFLICT DO NOTHING",
        )
        .bind(a.0)
        .bind(b.0)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn remove_friendship(&self, a: UserId, b: UserId) -> PortResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let done = sqlx::query(
            "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) \
             OR (user_id = $2 AND friend_id = $1)",
        )
        .bind(a.0)
        .bind(b.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "DELETE FROM friend_group_members WHERE \
             (member_id = $2 AND group_id IN (SELECT id FROM friend_groups WHERE owner_id = $1)) \
             OR (member_id = $1 AND group_id IN (SELECT id FROM friend_groups WHERE owner_id = $2))",
        )
        .bind(a.0)
        .bind(b.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn are_friends(&self, a: UserId, b: UserId) -> PortResult<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM friendships WHERE user_id = $1 AND friend_id = $2")
                .bind(a.0)
                .bind(b.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        Ok(row.is_some())
    }

    async fn friends_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.user_ids(
            "SELECT friend_id AS id FROM friendships WHERE user_id = $1 ORDER BY friend_id",
            user,
        )
        .await
    }

    async fn friends_of_many(&self, users: &[UserId]) -> PortResult<Vec<Vec<UserId>>> {
        let mut by_user: HashMap<i64, Vec<UserId>> = HashMap::new();
        let distinct: Vec<i64> = users
            .iter()
            .map(|u| u.0)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in distinct.chunks(CHUNK) {
            let sql = format!(
                "SELECT user_id, friend_id FROM friendships WHERE user_id {IN_IDS} \
                 ORDER BY user_id, friend_id"
            );
            let q = bind_ids(sqlx::query(&sql), chunk);
            for r in q.fetch_all(&self.pool).await.map_err(err)? {
                by_user
                    .entry(col(&r, "user_id")?)
                    .or_default()
                    .push(UserId(col(&r, "friend_id")?));
            }
        }
        Ok(users
            .iter()
            .map(|u| by_user.get(&u.0).cloned().unwrap_or_default())
            .collect())
    }

    async fn friend_count(&self, user: UserId) -> PortResult<usize> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM friendships WHERE user_id = $1")
            .bind(user.0)
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(col::<i64>(&row, "n")? as usize)
    }

    async fn block(&self, blocker: UserId, blocked: UserId, at: Timestamp) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(blocker.0)
        .bind(blocked.0)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> PortResult<bool> {
        let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn blocked_by(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.user_ids(
            "SELECT blocked_id AS id FROM blocks WHERE blocker_id = $1 ORDER BY blocked_id",
            user,
        )
        .await
    }

    async fn blockers_of(&self, user: UserId) -> PortResult<Vec<UserId>> {
        self.user_ids(
            "SELECT blocker_id AS id FROM blocks WHERE blocked_id = $1 ORDER BY blocker_id",
            user,
        )
        .await
    }

    async fn is_blocked_either(&self, a: UserId, b: UserId) -> PortResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
             OR (blocker_id = $2 AND blocked_id = $1) LIMIT 1",
        )
        .bind(a.0)
        .bind(b.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        Ok(row.is_some())
    }

    async fn insert_friend_group(&self, group: &FriendGroup) -> PortResult<()> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        sqlx::query(
            "INSERT INTO friend_groups (id, owner_id, name, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(group.id.0)
        .bind(group.owner.0)
        .bind(&group.name)
        .bind(&group.description)
        .bind(group.created_at.0)
        .bind(group.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        insert_group_members(&mut tx, group).await?;
        tx.commit().await.map_err(err)
    }

    async fn get_friend_group(&self, id: FriendGroupId) -> PortResult<Option<FriendGroup>> {
        let rows = sqlx::query("SELECT * FROM friend_groups WHERE id = $1")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        Ok(self.groups_with_members(rows).await?.into_iter().next())
    }

    async fn friend_groups_of(&self, owner: UserId) -> PortResult<Vec<FriendGroup>> {
        let rows =
            sqlx::query("SELECT * FROM friend_groups WHERE owner_id = $1 ORDER BY created_at, id")
                .bind(owner.0)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        self.groups_with_members(rows).await
    }

    async fn update_friend_group(&self, group: &FriendGroup) -> PortResult<()> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let done = sqlx::query(
            "UPDATE friend_groups SET name = $2, description = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(group.id.0)
        .bind(&group.name)
        .bind(&group.description)
        .bind(group.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        sqlx::query("DELETE FROM friend_group_members WHERE group_id = $1")
            .bind(group.id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        insert_group_members(&mut tx, group).await?;
        tx.commit().await.map_err(err)
    }

    async fn delete_friend_group(&self, id: FriendGroupId) -> PortResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        sqlx::query("DELETE FROM friend_group_members WHERE group_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let done = sqlx::query("DELETE FROM friend_groups WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected() > 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Rooms

const ROOM_COLS: &str = "r.id, r.room_type, r.title, r.announcement, r.created_by, r.created_at, \
    r.updated_at, r.last_seq, r.last_message_id, r.last_activity_at";
const PARTICIPANT_COLS: &str =
    "p.room_id, p.user_id, p.role, p.joined_at, p.last_read_seq, p.favorite, p.favorited_at";

fn room_from_row(r: &DbRow) -> PortResult<Room> {
    let room_type: String = col(r, "room_type")?;
    Ok(Room {
        id: RoomId(col(r, "id")?),
        room_type: parse("room type", &room_type, codec::room_type)?,
        title: col(r, "title")?,
        announcement: col(r, "announcement")?,
        created_by: UserId(col(r, "created_by")?),
        created_at: ts(col(r, "created_at")?),
        updated_at: ts(col(r, "updated_at")?),
        last_seq: Seq(col(r, "last_seq")?),
        last_message_id: col::<Option<i64>>(r, "last_message_id")?.map(MessageId),
        last_activity_at: ts(col(r, "last_activity_at")?),
    })
}

fn participant_from_row(r: &DbRow) -> PortResult<Participant> {
    let role: String = col(r, "role")?;
    Ok(Participant {
        room_id: RoomId(col(r, "room_id")?),
        user_id: UserId(col(r, "user_id")?),
        role: parse("role", &role, codec::role)?,
        joined_at: ts(col(r, "joined_at")?),
        last_read_seq: Seq(col(r, "last_read_seq")?),
        favorite: col(r, "favorite")?,
        favorited_at: col::<Option<i64>>(r, "favorited_at")?.map(ts),
    })
}

async fn insert_room(
    tx: &mut sqlx::Transaction<'static, Db>,
    room: &Room,
    direct_key: Option<String>,
) -> PortResult<u64> {
    let done = sqlx::query(
        "INSERT INTO rooms (id, room_type, title, announcement, created_by, created_at, \
         updated_at, last_seq, last_message_id, last_activity_at, direct_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (direct_key) DO NOTHING",
    )
    .bind(room.id.0)
    .bind(room.room_type.as_str())
    .bind(&room.title)
    .bind(&room.announcement)
    .bind(room.created_by.0)
    .bind(room.created_at.0)
    .bind(room.updated_at.0)
    .bind(room.last_seq.0)
    .bind(room.last_message_id.map(|m| m.0))
    .bind(room.last_activity_at.0)
    .bind(direct_key)
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(done.rows_affected())
}

/// Inserts a participant unless present; returns whether it was inserted.
async fn insert_participant(
    tx: &mut sqlx::Transaction<'static, Db>,
    room: RoomId,
    p: &Participant,
) -> PortResult<bool> {
    let done = sqlx::query(
        "INSERT INTO participants (room_id, user_id, role, joined_at, last_read_seq, favorite, \
         favorited_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(room.0)
    .bind(p.user_id.0)
    .bind(p.role.as_str())
    .bind(p.joined_at.0)
    .bind(p.last_read_seq.0)
    .bind(p.favorite)
    .bind(p.favorited_at.map(|t| t.0))
    .execute(&mut **tx)
    .await
    .map_err(err)?;
    Ok(done.rows_affected() > 0)
}

impl Store {
    async fn room_by_direct_key(&self, key: &str) -> PortResult<Option<Room>> {
        let sql = format!("SELECT {ROOM_COLS} FROM rooms r WHERE r.direct_key = $1");
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(room_from_row).transpose()
    }
}

#[async_trait]
impl RoomStore for Store {
    async fn create_room(&self, room: &Room, participants: &[Participant]) -> PortResult<()> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        insert_room(&mut tx, room, None).await?;
        for p in participants {
            insert_participant(&mut tx, room.id, p).await?;
        }
        tx.commit().await.map_err(err)
    }

    async fn create_direct_room(
        &self,
        room: &Room,
        participants: [&Participant; 2],
    ) -> PortResult<(Room, bool)> {
        let key = codec::direct_key(participants[0].user_id.0, participants[1].user_id.0);
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        // The unique direct_key makes the pair's room unique even across instances; a
        // concurrent insert of the same pair waits for ours and then does nothing.
        if insert_room(&mut tx, room, Some(key.clone())).await? == 1 {
            for p in participants {
                insert_participant(&mut tx, room.id, p).await?;
            }
            tx.commit().await.map_err(err)?;
            return Ok((room.clone(), true));
        }
        tx.rollback().await.map_err(err)?;
        match self.room_by_direct_key(&key).await? {
            Some(existing) => Ok((existing, false)),
            None => Err(PortError::Conflict(format!(
                "direct room {key} was created and deleted concurrently"
            ))),
        }
    }

    async fn find_direct_room(&self, a: UserId, b: UserId) -> PortResult<Option<Room>> {
        self.room_by_direct_key(&codec::direct_key(a.0, b.0)).await
    }

    async fn get_room(&self, id: RoomId) -> PortResult<Option<Room>> {
        let sql = format!("SELECT {ROOM_COLS} FROM rooms r WHERE r.id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(room_from_row).transpose()
    }

    async fn update_room(&self, room: &Room) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE rooms SET title = $2, announcement = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(room.id.0)
        .bind(&room.title)
        .bind(&room.announcement)
        .bind(room.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn delete_room(&self, id: RoomId) -> PortResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        sqlx::query("DELETE FROM participants WHERE room_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    /// One statement per `ACTIVITY_CHUNK` rooms: an `UPDATE … FROM` a `VALUES` list, with
    /// each room's highest seq picked here (a row of the target may join only one value row).
    async fn record_activity(&self, activity: &[RoomActivity]) -> PortResult<()> {
        let mut latest: BTreeMap<i64, &RoomActivity> = BTreeMap::new();
        for a in activity {
            let e = latest.entry(a.room.0).or_insert(a);
            if a.seq > e.seq {
                *e = a;
            }
        }
        let latest: Vec<&RoomActivity> = latest.into_values().collect();
        for chunk in latest.chunks(ACTIVITY_CHUNK) {
            let mut sql = String::with_capacity(300 + chunk.len() * 24);
            sql.push_str("WITH v (room_id, seq, message_id, at) AS (VALUES ");
            push_rows(&mut sql, chunk.len(), 4);
            sql.push_str(
                ") UPDATE rooms SET last_seq = v.seq, last_message_id = v.message_id, \
                 last_activity_at = CASE WHEN rooms.last_activity_at > v.at \
                 THEN rooms.last_activity_at ELSE v.at END \
                 FROM v WHERE rooms.id = v.room_id AND rooms.last_seq < v.seq",
            );
            let mut q = sized_query(&sql, chunk.len());
            for a in chunk {
                q = q.bind(a.room.0).bind(a.seq.0).bind(a.message.0).bind(a.at.0);
            }
            q.execute(&self.pool).await.map_err(err)?;
        }
        Ok(())
    }

    async fn participants(&self, room: RoomId) -> PortResult<Vec<Participant>> {
        let sql = format!(
            "SELECT {PARTICIPANT_COLS} FROM participants p WHERE p.room_id = $1 \
             ORDER BY p.joined_at, p.user_id"
        );
        let rows = sqlx::query(&sql)
            .bind(room.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(participant_from_row).collect()
    }

    async fn participants_of(&self, rooms: &[RoomId]) -> PortResult<Vec<Participant>> {
        let mut ids: Vec<i64> = Vec::with_capacity(rooms.len());
        for r in rooms {
            if !ids.contains(&r.0) {
                ids.push(r.0);
            }
        }
        let mut by_room: HashMap<i64, Vec<Participant>> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {PARTICIPANT_COLS} FROM participants p WHERE p.room_id {IN_IDS} \
                 ORDER BY p.room_id, p.joined_at, p.user_id"
            );
            let q = bind_ids(sqlx::query(&sql), chunk);
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                let p = participant_from_row(&row)?;
                by_room.entry(p.room_id.0).or_default().push(p);
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| by_room.remove(id))
            .flatten()
            .collect())
    }

    async fn participant(&self, room: RoomId, user: UserId) -> PortResult<Option<Participant>> {
        let sql = format!(
            "SELECT {PARTICIPANT_COLS} FROM participants p WHERE p.room_id = $1 AND p.user_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(participant_from_row).transpose()
    }

    /// One statement per `TEMP_ID_CHUNK` distinct pairs: an `OR` of `(room_id, user_id)`
    /// equalities, each answered from the primary key.
    async fn memberships(&self, pairs: &[(RoomId, UserId)]) -> PortResult<Vec<Participant>> {
        let mut distinct: Vec<(i64, i64)> = pairs.iter().map(|(r, u)| (r.0, u.0)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut out = Vec::with_capacity(distinct.len());
        for chunk in distinct.chunks(TEMP_ID_CHUNK) {
            let sql = select_pairs(
                PARTICIPANT_COLS,
                "participants p",
                "p.room_id",
                "p.user_id",
                chunk.len(),
            );
            let mut q = sized_query(&sql, chunk.len());
            for (room, user) in chunk {
                q = q.bind(*room).bind(*user);
            }
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                out.push(participant_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn add_participants(
        &self,
        room: RoomId,
        participants: &[Participant],
    ) -> PortResult<Vec<UserId>> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let mut added = Vec::new();
        for p in participants {
            if insert_participant(&mut tx, room, p).await? {
                added.push(p.user_id);
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(added)
    }

    async fn remove_participant(&self, room: RoomId, user: UserId) -> PortResult<bool> {
        let done = sqlx::query("DELETE FROM participants WHERE room_id = $1 AND user_id = $2")
            .bind(room.0)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> PortResult<()> {
        let done =
            sqlx::query("UPDATE participants SET role = $3 WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .bind(role.as_str())
                .execute(&self.pool)
                .await
                .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn rooms_of(&self, user: UserId) -> PortResult<Vec<(Room, Participant)>> {
        let sql = format!(
            "SELECT {ROOM_COLS}, {PARTICIPANT_COLS} FROM participants p \
             JOIN rooms r ON r.id = p.room_id WHERE p.user_id = $1"
        );
        let rows = sqlx::query(&sql)
            .bind(user.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| Ok((room_from_row(r)?, participant_from_row(r)?)))
            .collect()
    }

    async fn room_ids_of(&self, users: &[UserId]) -> PortResult<Vec<(UserId, RoomId)>> {
        let mut ids: Vec<i64> = users.iter().map(|u| u.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT p.user_id, p.room_id FROM participants p WHERE p.user_id {IN_IDS}"
            );
            let q = bind_ids(sqlx::query(&sql), chunk);
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                out.push((UserId(col(&row, "user_id")?), RoomId(col(&row, "room_id")?)));
            }
        }
        Ok(out)
    }

    async fn set_favorite(
        &self,
        room: RoomId,
        user: UserId,
        favorite: bool,
        at: Timestamp,
    ) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE participants SET favorite = $3, favorited_at = $4 \
             WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room.0)
        .bind(user.0)
        .bind(favorite)
        .bind(favorite.then_some(at.0))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn advance_read_cursor(&self, room: RoomId, user: UserId, seq: Seq) -> PortResult<Seq> {
        let row = sqlx::query(
            "UPDATE participants SET last_read_seq = \
             CASE WHEN last_read_seq < $3 THEN $3 ELSE last_read_seq END \
             WHERE room_id = $1 AND user_id = $2 RETURNING last_read_seq",
        )
        .bind(room.0)
        .bind(user.0)
        .bind(seq.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        match row {
            Some(row) => Ok(Seq(col(&row, "last_read_seq")?)),
            None => Err(PortError::NotFound),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

const MESSAGE_COLS: &str = "id, room_id, seq, sender_id, temp_id, message_type, text, is_edited, \
    is_deleted, url_preview, thread_id, reply_count, last_reply_at, forwarded_from, mentions, \
    pinned_by, pinned_at, created_at, updated_at, status";
const MESSAGE_COL_COUNT: usize = 20;

fn message_from_row(r: &DbRow) -> PortResult<Message> {
    let message_type: String = col(r, "message_type")?;
    let status: String = col(r, "status")?;
    let url_preview: Option<String> = col(r, "url_preview")?;
    let forwarded_from: Option<String> = col(r, "forwarded_from")?;
    let mentions: String = col(r, "mentions")?;
    let pinned_by: Option<i64> = col(r, "pinned_by")?;
    let pinned_at: Option<i64> = col(r, "pinned_at")?;
    Ok(Message {
        id: MessageId(col(r, "id")?),
        room_id: RoomId(col(r, "room_id")?),
        seq: Seq(col(r, "seq")?),
        sender_id: UserId(col(r, "sender_id")?),
        temp_id: col::<Option<String>>(r, "temp_id")?.map(Into::into),
        message_type: parse("message type", &message_type, MessageType::parse)?,
        text: col::<String>(r, "text")?.into(),
        is_edited: col(r, "is_edited")?,
        is_deleted: col(r, "is_deleted")?,
        url_preview: url_preview
            .as_deref()
            .map(from_json::<UrlPreview>)
            .transpose()?,
        thread_id: col::<Option<i64>>(r, "thread_id")?.map(MessageId),
        reply_count: col::<i64>(r, "reply_count")?.max(0) as u32,
        last_reply_at: col::<Option<i64>>(r, "last_reply_at")?.map(ts),
        forwarded_from: forwarded_from
            .as_deref()
            .map(from_json::<ForwardedFrom>)
            .transpose()?,
        mentions: from_json(&mentions)?,
        reactions: Reactions::new(),
        pin: match (pinned_by, pinned_at) {
            (Some(by), Some(at)) => Some(Pin {
                pinned_by: UserId(by),
                pinned_at: ts(at),
            }),
            _ => None,
        },
        created_at: ts(col(r, "created_at")?),
        updated_at: col::<Option<i64>>(r, "updated_at")?.map(ts),
        status: parse("message status", &status, codec::message_status)?,
    })
}

impl Store {
    /// Decodes message rows and attaches their reactions (one extra query per chunk).
    async fn messages_from_rows(&self, rows: Vec<DbRow>) -> PortResult<Vec<Message>> {
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<PortResult<Vec<_>>>()?;
        if messages.is_empty() {
            return Ok(messages);
        }
        let mut reactions: HashMap<i64, Reactions> = HashMap::new();
        for chunk in messages.chunks(CHUNK) {
            let sql = format!(
                "SELECT message_id, code, user_id FROM message_reactions \
                 WHERE message_id {IN_IDS} ORDER BY ord"
            );
            let ids: Vec<i64> = chunk.iter().map(|m| m.id.0).collect();
            let q = bind_ids(sqlx::query(&sql), &ids);
            for r in q.fetch_all(&self.pool).await.map_err(err)? {
                reactions
                    .entry(col(&r, "message_id")?)
                    .or_default()
                    .entry(col(&r, "code")?)
                    .or_default()
                    .push(UserId(col(&r, "user_id")?));
            }
        }
        for m in &mut messages {
            if let Some(r) = reactions.remove(&m.id.0) {
                m.reactions = r;
            }
        }
        Ok(messages)
    }

    async fn message_query(
        &self,
        sql: &str,
        binds: &[i64],
        text: Option<&str>,
    ) -> PortResult<Vec<Message>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        if let Some(t) = text {
            q = q.bind(t.to_owned());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(err)?;
        self.messages_from_rows(rows).await
    }
}

#[async_trait]
impl MessageStore for Store {
    async fn insert_messages(&self, messages: &[Message]) -> PortResult<Vec<MessageId>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // Encode JSON columns up front so the transaction is not held while failing.
        let mut encoded = Vec::with_capacity(messages.len());
        for m in messages {
            encoded.push((
                m.url_preview.as_ref().map(json).transpose()?,
                m.forwarded_from.as_ref().map(json).transpose()?,
                json(&m.mentions)?,
            ));
        }
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let mut inserted: HashSet<i64> = HashSet::with_capacity(messages.len());
        for (chunk, enc) in messages.chunks(CHUNK).zip(encoded.chunks(CHUNK)) {
            let mut sql = String::with_capacity(64 + chunk.len() * 120);
            sql.push_str("INSERT INTO messages (");
            sql.push_str(MESSAGE_COLS);
            sql.push_str(") VALUES ");
            push_rows(&mut sql, chunk.len(), MESSAGE_COL_COUNT);
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING id");
            let mut q = sized_query(&sql, chunk.len());
            for (m, (preview, forwarded, mentions)) in chunk.iter().zip(enc) {
                q = q
                    .bind(m.id.0)
                    .bind(m.room_id.0)
                    .bind(m.seq.0)
                    .bind(m.sender_id.0)
                    .bind(m.temp_id.as_deref())
                    .bind(m.message_type.as_str())
                    .bind(&*m.text)
                    .bind(m.is_edited)
                    .bind(m.is_deleted)
                    .bind(preview.as_deref())
                    .bind(m.thread_id.map(|t| t.0))
                    .bind(i64::from(m.reply_count))
                    .bind(m.last_reply_at.map(|t| t.0))
                    .bind(forwarded.as_deref())
                    .bind(mentions.as_str())
                    .bind(m.pin.map(|p| p.pinned_by.0))
                    .bind(m.pin.map(|p| p.pinned_at.0))
                    .bind(m.created_at.0)
                    .bind(m.updated_at.map(|t| t.0))
                    .bind(m.status.as_str());
            }
            for r in q.fetch_all(&mut *tx).await.map_err(err)? {
                inserted.insert(col(&r, "id")?);
            }
        }
        // Thread roots of newly inserted replies: count and latest reply time per root.
        let mut roots: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for m in messages {
            if let (Some(root), true) = (m.thread_id, inserted.contains(&m.id.0)) {
                let e = roots.entry(root.0).or_insert((0, i64::MIN));
                e.0 += 1;
                e.1 = e.1.max(m.created_at.0);
            }
        }
        for (root, (count, last)) in roots {
            sqlx::query(
                "UPDATE messages SET reply_count = reply_count + $2, last_reply_at = \
                 CASE WHEN last_reply_at IS NULL OR last_reply_at < $3 THEN $3 \
                 ELSE last_reply_at END WHERE id = $1",
            )
            .bind(root)
            .bind(count)
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        // In input order, each id once.
        Ok(messages
            .iter()
            .filter(|m| inserted.remove(&m.id.0))
            .map(|m| m.id)
            .collect())
    }

    async fn get_message(&self, id: MessageId) -> PortResult<Option<Message>> {
        let sql = format!("SELECT {MESSAGE_COLS} FROM messages WHERE id = $1");
        Ok(self
            .message_query(&sql, &[id.0], None)
            .await?
            .into_iter()
            .next())
    }

    async fn get_messages(&self, ids: &[MessageId]) -> PortResult<Vec<Message>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let sql = format!("SELECT {MESSAGE_COLS} FROM messages WHERE id {IN_IDS}");
            let ids: Vec<i64> = chunk.iter().map(|m| m.0).collect();
            let rows = bind_ids(sqlx::query(&sql), &ids)
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
            out.extend(self.messages_from_rows(rows).await?);
        }
        Ok(out)
    }

    async fn find_by_temp_id(&self, sender: UserId, temp_id: &str) -> PortResult<Option<Message>> {
        let sql =
            format!("SELECT {MESSAGE_COLS} FROM messages WHERE sender_id = $1 AND temp_id = $2");
        Ok(self
            .message_query(&sql, &[sender.0], Some(temp_id))
            .await?
            .into_iter()
            .next())
    }

    /// One statement per `TEMP_ID_CHUNK` distinct keys: an `OR` of `(sender_id, temp_id)`
    /// equalities, each answered from the unique `(sender_id, temp_id)` index.
    async fn find_by_temp_ids(&self, keys: &[(UserId, &str)]) -> PortResult<Vec<Message>> {
        let mut distinct: Vec<(i64, &str)> = keys.iter().map(|(s, t)| (s.0, *t)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut out = Vec::new();
        for chunk in distinct.chunks(TEMP_ID_CHUNK) {
            let sql = select_pairs(MESSAGE_COLS, "messages", "sender_id", "temp_id", chunk.len());
            let mut q = sized_query(&sql, chunk.len());
            for (sender, temp_id) in chunk {
                q = q.bind(*sender).bind(*temp_id);
            }
            let rows = q.fetch_all(&self.pool).await.map_err(err)?;
            out.extend(self.messages_from_rows(rows).await?);
        }
        Ok(out)
    }

    async fn history(&self, room: RoomId, query: HistoryQuery) -> PortResult<Vec<Message>> {
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let before = query.before.map_or(i64::MAX, |s| s.0);
        if let Some(after) = query.after {
            let sql = format!(
                "SELECT {MESSAGE_COLS} FROM messages WHERE room_id = $1 AND seq > $2 AND seq < $3 \
                 ORDER BY seq ASC LIMIT $4"
            );
            return self
                .message_query(&sql, &[room.0, after.0, before, limit], None)
                .await;
        }
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE room_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3"
        );
        let mut page = self
            .message_query(&sql, &[room.0, before, limit], None)
            .await?;
        page.reverse();
        Ok(page)
    }

    async fn histories(
        &self,
        queries: &[(RoomId, HistoryQuery)],
    ) -> PortResult<Vec<Vec<Message>>> {
        let mut pages: Vec<Vec<Message>> = vec![Vec::new(); queries.len()];
        for (c, chunk) in queries.chunks(HISTORY_CHUNK).enumerate() {
            // One page per subquery (each answered from the (room_id, seq) index like
            // `history`), tagged with its position; the reactions of all pages in one query.
            let mut sql = String::with_capacity(chunk.len() * (MESSAGE_COLS.len() + 160));
            let mut binds: Vec<i64> = Vec::with_capacity(chunk.len() * 4);
            for (i, (room, query)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(" UNION ALL ");
                }
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let before = query.before.map_or(i64::MAX, |s| s.0);
                let ph = |k: usize| sequential_placeholders(binds.len() + k, 1);
                let _ = write!(
                    sql,
                    "SELECT * FROM (SELECT CAST({i} AS BIGINT) AS q, {MESSAGE_COLS} FROM messages \
                     WHERE room_id = {}",
                    ph(1)
                );
                match query.after {
                    Some(after) => {
                        let _ = write!(
                            sql,
                            " AND seq > {} AND seq < {} ORDER BY seq ASC LIMIT {}) AS h{i}",
                            ph(2),
                            ph(3),
                            ph(4)
                        );
                        binds.extend([room.0, after.0, before, limit]);
                    }
                    None => {
                        let _ = write!(
                            sql,
                            " AND seq < {} ORDER BY seq DESC LIMIT {}) AS h{i}",
                            ph(2),
                            ph(3)
                        );
                        binds.extend([room.0, before, limit]);
                    }
                }
            }
            let mut q = sized_query(&sql, chunk.len());
            for b in &binds {
                q = q.bind(*b);
            }
            let rows = q.fetch_all(&self.pool).await.map_err(err)?;
            let positions = rows
                .iter()
                .map(|r| col::<i64>(r, "q").map(|i| c * HISTORY_CHUNK + i as usize))
                .collect::<PortResult<Vec<usize>>>()?;
            for (at, message) in positions.into_iter().zip(self.messages_from_rows(rows).await?) {
                if let Some(page) = pages.get_mut(at) {
                    page.push(message);
                }
            }
        }
        for page in &mut pages {
            page.sort_unstable_by_key(|m| m.seq);
        }
        Ok(pages)
    }

    async fn update_message(&self, message: &Message) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE messages SET text = $2, is_edited = $3, is_deleted = $4, url_preview = $5, \
             mentions = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(message.id.0)
        .bind(&*message.text)
        .bind(message.is_edited)
        .bind(message.is_deleted)
        .bind(message.url_preview.as_ref().map(json).transpose()?)
        .bind(json(&message.mentions)?)
        .bind(message.updated_at.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn add_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let touched = sqlx::query("UPDATE messages SET updated_at = $2 WHERE id = $1")
            .bind(message.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        if touched.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        let done = sqlx::query(
            "INSERT INTO message_reactions (message_id, code, user_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(message.0)
        .bind(code)
        .bind(user.0)
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            // Already there: leave `updated_at` as it was.
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn remove_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let done = sqlx::query(
            "DELETE FROM message_reactions WHERE message_id = $1 AND code = $2 AND user_id = $3",
        )
        .bind(message.0)
        .bind(code)
        .bind(user.0)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(err)?;
            return Ok(false);
        }
        sqlx::query("UPDATE messages SET updated_at = $2 WHERE id = $1")
            .bind(message.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn set_pin(&self, message: MessageId, pin: Option<Pin>, at: Timestamp) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE messages SET pinned_by = $2, pinned_at = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(message.0)
        .bind(pin.map(|p| p.pinned_by.0))
        .bind(pin.map(|p| p.pinned_at.0))
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn pinned(&self, room: RoomId) -> PortResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE room_id = $1 AND pinned_at IS NOT NULL \
             ORDER BY pinned_at DESC, seq DESC"
        );
        self.message_query(&sql, &[room.0], None).await
    }

    async fn thread_replies(
        &self,
        root: MessageId,
        after: Option<Seq>,
        limit: usize,
    ) -> PortResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE thread_id = $1 AND seq > $2 \
             ORDER BY seq ASC LIMIT $3"
        );
        let after = after.map_or(i64::MIN, |s| s.0);
        self.message_query(&sql, &[root.0, after, i64::try_from(limit).unwrap_or(i64::MAX)], None)
            .await
    }

    async fn threads(&self, room: RoomId, limit: usize) -> PortResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE room_id = $1 AND reply_count > 0 \
             ORDER BY last_reply_at DESC, seq DESC LIMIT $2"
        );
        self.message_query(&sql, &[room.0, i64::try_from(limit).unwrap_or(i64::MAX)], None)
            .await
    }

    async fn search(&self, room: RoomId, query: &str, limit: usize) -> PortResult<Vec<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE room_id = $1 AND is_deleted = FALSE \
             AND lower(text) LIKE $3 ESCAPE '\\' ORDER BY seq DESC LIMIT $2"
        );
        let pattern = codec::contains_pattern(query);
        self.message_query(&sql, &[room.0, i64::try_from(limit).unwrap_or(i64::MAX)], Some(&pattern))
            .await
    }

    async fn unread_counts(&self, user: UserId, cursors: &[(RoomId, Seq)]) -> PortResult<Vec<u64>> {
        let mut counts = vec![0u64; cursors.len()];
        // One statement per 1000 cursors (one round trip for any realistic room list): a
        // VALUES list joined to messages, each count an index range scan on (room_id, seq).
        for (chunk_no, chunk) in cursors.chunks(CHUNK).enumerate() {
            let mut sql = String::from("WITH c (idx, room_id, cur) AS (VALUES ");
            push_rows(&mut sql, chunk.len(), 3);
            let user_param = sequential_placeholders(1 + chunk.len() * 3, 1);
            sql.push_str(&format!(
                ") SELECT c.idx AS idx, (SELECT COUNT(*) FROM messages m WHERE m.room_id = c.room_id \
                 AND m.seq > c.cur AND m.sender_id <> {user_param} AND m.is_deleted = FALSE) AS n \
                 FROM c"
            ));
            let mut q = sized_query(&sql, chunk.len());
            for (i, (room, seq)) in chunk.iter().enumerate() {
                q = q
                    .bind((chunk_no * CHUNK + i) as i64)
                    .bind(room.0)
                    .bind(seq.0);
            }
            q = q.bind(user.0);
            for r in q.fetch_all(&self.pool).await.map_err(err)? {
                let idx = col::<i64>(&r, "idx")? as usize;
                let n = col::<i64>(&r, "n")?;
                if let Some(slot) = counts.get_mut(idx) {
                    *slot = n.max(0) as u64;
                }
            }
        }
        Ok(counts)
    }

    async fn unread_counts_of(&self, cursors: &[(UserId, RoomId, Seq)]) -> PortResult<Vec<u64>> {
        let mut counts = vec![0u64; cursors.len()];
        // Like `unread_counts`, with the user per row: one statement per 1000 cursors.
        for (chunk_no, chunk) in cursors.chunks(CHUNK).enumerate() {
            let mut sql = String::from("WITH c (idx, user_id, room_id, cur) AS (VALUES ");
            push_rows(&mut sql, chunk.len(), 4);
            sql.push_str(
                ") SELECT c.idx AS idx, (SELECT COUNT(*) FROM messages m WHERE m.room_id = \
                 c.room_id AND m.seq > c.cur AND m.sender_id <> c.user_id AND m.is_deleted = \
                 FALSE) AS n FROM c",
            );
            let mut q = sized_query(&sql, chunk.len());
            for (i, (user, room, seq)) in chunk.iter().enumerate() {
                q = q
                    .bind((chunk_no * CHUNK + i) as i64)
                    .bind(user.0)
                    .bind(room.0)
                    .bind(seq.0);
            }
            for r in q.fetch_all(&self.pool).await.map_err(err)? {
                let idx = col::<i64>(&r, "idx")? as usize;
                let n = col::<i64>(&r, "n")?;
                if let Some(slot) = counts.get_mut(idx) {
                    *slot = n.max(0) as u64;
                }
            }
        }
        Ok(counts)
    }

    async fn max_seq(&self, room: RoomId) -> PortResult<Seq> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM messages WHERE room_id = $1")
            .bind(room.0)
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(Seq(col(&row, "s")?))
    }

    async fn max_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        let mut ids: Vec<i64> = rooms.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            // One correlated MAX per room: each is answered from the (room_id, seq) index
            // (a GROUP BY over the rooms would read every message of every room).
            let mut sql = String::with_capacity(128 + chunk.len() * 8);
            sql.push_str(
                "SELECT r.column1 AS room_id, \
                 (SELECT MAX(m.seq) FROM messages m WHERE m.room_id = r.column1) AS s \
                 FROM (VALUES ",
            );
            push_rows(&mut sql, chunk.len(), 1);
            sql.push_str(") AS r");
            let mut q = sized_query(&sql, chunk.len());
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(&self.pool).await.map_err(err)? {
                if let Some(seq) = col::<Option<i64>>(&row, "s")? {
                    out.push((RoomId(col(&row, "room_id")?), Seq(seq)));
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Bookmarks

#[async_trait]
impl BookmarkStore for Store {
    async fn upsert_bookmark(&self, bookmark: &Bookmark) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO bookmarks (user_id, message_id, room_id, note, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, message_id) DO UPDATE SET \
             room_id = excluded.room_id, note = excluded.note, created_at = excluded.created_at",
        )
        .bind(bookmark.user_id.0)
        .bind(bookmark.message_id.0)
        .bind(bookmark.room_id.0)
        .bind(&bookmark.note)
        .bind(bookmark.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn delete_bookmark(&self, user: UserId, message: MessageId) -> PortResult<bool> {
        let done = sqlx::query("DELETE FROM bookmarks WHERE user_id = $1 AND message_id = $2")
            .bind(user.0)
            .bind(message.0)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn bookmarks_of(&self, user: UserId, room: Option<RoomId>) -> PortResult<Vec<Bookmark>> {
        let rows = sqlx::query(
            "SELECT user_id, message_id, room_id, note, created_at FROM bookmarks \
             WHERE user_id = $1 AND ($2 IS NULL OR room_id = $2) \
             ORDER BY created_at DESC, message_id DESC",
        )
        .bind(user.0)
        .bind(room.map(|r| r.0))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(Bookmark {
                    user_id: UserId(col(r, "user_id")?),
                    message_id: MessageId(col(r, "message_id")?),
                    room_id: RoomId(col(r, "room_id")?),
                    note: col(r, "note")?,
                    created_at: ts(col(r, "created_at")?),
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules

const SCHEDULE_COLS: &str = "id, room_id, sender_id, text, message_type, scheduled_at, repeat, \
    status, created_at, updated_at, sent_count, last_error, claimed_by, claim_expires_at";

fn schedule_from_row(r: &DbRow) -> PortResult<ScheduledMessage> {
    let message_type: String = col(r, "message_type")?;
    let status: String = col(r, "status")?;
    let repeat: Option<String> = col(r, "repeat")?;
    Ok(ScheduledMessage {
        id: ScheduleId(col(r, "id")?),
        room_id: RoomId(col(r, "room_id")?),
        sender_id: UserId(col(r, "sender_id")?),
        text: col(r, "text")?,
        message_type: parse("message type", &message_type, MessageType::parse)?,
        scheduled_at: ts(col(r, "scheduled_at")?),
        repeat: repeat
            .as_deref()
            .map(|s| parse("repeat", s, Repeat::parse))
            .transpose()?,
        status: parse("schedule status", &status, codec::schedule_status)?,
        created_at: ts(col(r, "created_at")?),
        updated_at: ts(col(r, "updated_at")?),
        sent_count: col::<i64>(r, "sent_count")?.max(0) as u32,
        last_error: col(r, "last_error")?,
        claimed_by: col(r, "claimed_by")?,
        claim_expires_at: col::<Option<i64>>(r, "claim_expires_at")?.map(ts),
    })
}

#[async_trait]
impl ScheduleStore for Store {
    async fn insert_schedule(&self, s: &ScheduledMessage) -> PortResult<()> {
        sqlx::query(
            "INSERT INTO scheduled_messages (id, room_id, sender_id, text, message_type, \
             scheduled_at, repeat, status, created_at, updated_at, sent_count, last_error, \
             claimed_by, claim_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(s.id.0)
        .bind(s.room_id.0)
        .bind(s.sender_id.0)
        .bind(&s.text)
        .bind(s.message_type.as_str())
        .bind(s.scheduled_at.0)
        .bind(s.repeat.map(Repeat::as_str))
        .bind(s.status.as_str())
        .bind(s.created_at.0)
        .bind(s.updated_at.0)
        .bind(i64::from(s.sent_count))
        .bind(&s.last_error)
        .bind(&s.claimed_by)
        .bind(s.claim_expires_at.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn get_schedule(&self, id: ScheduleId) -> PortResult<Option<ScheduledMessage>> {
        let sql = format!("SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    async fn schedules_of(&self, sender: UserId) -> PortResult<Vec<ScheduledMessage>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLS} FROM scheduled_messages WHERE sender_id = $1 \
             ORDER BY scheduled_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(sender.0)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn update_pending_schedule(&self, s: &ScheduledMessage) -> PortResult<()> {
        let done = sqlx::query(
            "UPDATE scheduled_messages SET text = $2, message_type = $3, scheduled_at = $4, \
             repeat = $5, status = $6, updated_at = $7 \
             WHERE id = $1 AND status = 'PENDING' AND claimed_by IS NULL",
        )
        .bind(s.id.0)
        .bind(&s.text)
        .bind(s.message_type.as_str())
        .bind(s.scheduled_at.0)
        .bind(s.repeat.map(Repeat::as_str))
        .bind(s.status.as_str())
        .bind(s.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.get_schedule(s.id).await? {
            None => Err(PortError::NotFound),
            Some(current) if current.status != ScheduleStatus::Pending => Err(PortError::Conflict(
                format!("schedule {} is {}", s.id, current.status.as_str()),
            )),
            Some(_) => Err(PortError::Conflict(format!(
                "schedule {} is being sent",
                s.id
            ))),
        }
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: usize,
    ) -> PortResult<Vec<ScheduledMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        let rows = sqlx::query(CLAIM_DUE_SQL)
            .bind(owner)
            .bind(lease_until.0)
            .bind(now.0)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        let mut claimed = rows
            .iter()
            .map(schedule_from_row)
            .collect::<PortResult<Vec<_>>>()?;
        claimed.sort_by_key(|s| (s.scheduled_at, s.id));
        Ok(claimed)
    }

    async fn complete_claim(
        &self,
        id: ScheduleId,
        owner: &str,
        outcome: ScheduleOutcome,
        at: Timestamp,
    ) -> PortResult<bool> {
        const RELEASE: &str = "claimed_by = NULL, claim_expires_at = NULL, updated_at = $3";
        const WHERE: &str = "WHERE id = $1 AND claimed_by = $2";
        let set = match &outcome {
            ScheduleOutcome::Sent => {
                format!(
                    "status = 'SENT', sent_count = sent_count + 1, last_error = NULL, {RELEASE}"
                )
            }
            ScheduleOutcome::SentAndRescheduled(_) => format!(
                "scheduled_at = $4, sent_count = sent_count + 1, last_error = NULL, {RELEASE}"
            ),
            ScheduleOutcome::Failed(_) => format!("status = 'FAILED', last_error = $4, {RELEASE}"),
            ScheduleOutcome::Released => RELEASE.to_owned(),
        };
        let sql = format!("UPDATE scheduled_messages SET {set} {WHERE}");
        let q = sqlx::query(&sql).bind(id.0).bind(owner).bind(at.0);
        let q = match outcome {
            ScheduleOutcome::SentAndRescheduled(next) => q.bind(next.0),
            ScheduleOutcome::Failed(reason) => q.bind(reason),
            ScheduleOutcome::Sent | ScheduleOutcome::Released => q,
        };
        let done = q.execute(&self.pool).await.map_err(err)?;
        Ok(done.rows_affected() > 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Notifications

fn notification_from_row(r: &DbRow) -> PortResult<Notification> {
    let kind: String = col(r, "kind")?;
    Ok(Notification {
        id: NotificationId(col(r, "id")?),
        user_id: UserId(col(r, "user_id")?),
        kind: parse("notification type", &kind, codec::notification_type)?,
        actor_id: col::<Option<i64>>(r, "actor_id")?.map(UserId),
        room_id: col::<Option<i64>>(r, "room_id")?.map(RoomId),
        message_id: col::<Option<i64>>(r, "message_id")?.map(MessageId),
        text: col(r, "text")?,
        is_read: col(r, "is_read")?,
        created_at: ts(col(r, "created_at")?),
    })
}

#[async_trait]
impl NotificationStore for Store {
    async fn insert_notifications(&self, notifications: &[Notification]) -> PortResult<()> {
        if notifications.is_empty() {
            return Ok(());
        }
        let mut tx = begin_write(&self.pool).await.map_err(err)?;
        for chunk in notifications.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO notifications (id, user_id, kind, actor_id, room_id, message_id, \
                 text, is_read, created_at) VALUES ",
            );
            push_rows(&mut sql, chunk.len(), 9);
            let mut q = sized_query(&sql, chunk.len());
            for n in chunk {
                q = q
                    .bind(n.id.0)
                    .bind(n.user_id.0)
                    .bind(n.kind.as_str())
                    .bind(n.actor_id.map(|u| u.0))
                    .bind(n.room_id.map(|r| r.0))
                    .bind(n.message_id.map(|m| m.0))
                    .bind(n.text.as_str())
                    .bind(n.is_read)
                    .bind(n.created_at.0);
            }
            q.execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn notifications_of(
        &self,
        user: UserId,
        limit: usize,
        offset: usize,
    ) -> PortResult<Vec<Notification>> {
        let rows = sqlx::query(
            "SELECT * FROM notifications WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(user.0)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter().map(notification_from_row).collect()
    }

    async fn unread_notification_count(&self, user: UserId) -> PortResult<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM notifications WHERE user_id = $1 AND is_read = FALSE",
        )
        .bind(user.0)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        Ok(col::<i64>(&row, "n")?.max(0) as u64)
    }

    async fn mark_notification_read(&self, user: UserId, id: NotificationId) -> PortResult<bool> {
        let done =
            sqlx::query("UPDATE notifications SET is_read = TRUE WHERE id = $1 AND user_id = $2")
                .bind(id.0)
                .bind(user.0)
                .execute(&self.pool)
                .await
                .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_all_notifications_read(&self, user: UserId) -> PortResult<u64> {
        let done = sqlx::query(
            "UPDATE notifications SET is_read = TRUE WHERE user_id = $1 AND is_read = FALSE",
        )
        .bind(user.0)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(done.rows_affected())
    }

    async fn delete_notification(&self, user: UserId, id: NotificationId) -> PortResult<bool> {
        let done = sqlx::query("DELETE FROM notifications WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }
}
