-- Shoot schema for SQLite. Times are milliseconds since the Unix epoch (INTEGER),
-- booleans are 0/1, JSON values are TEXT.

CREATE TABLE users (
    id                INTEGER PRIMARY KEY,
    username          TEXT NOT NULL,
    username_lower    TEXT NOT NULL,
    nickname          TEXT NOT NULL,
    email             TEXT NOT NULL,
    email_lower       TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    status            TEXT NOT NULL,
    bio               TEXT,
    profile_image_url TEXT,
    user_code         TEXT NOT NULL,
    last_seen_at      INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_users_username ON users (username_lower);
CREATE UNIQUE INDEX ux_users_email ON users (email_lower);
CREATE UNIQUE INDEX ux_users_user_code ON users (user_code);

CREATE TABLE refresh_tokens (
    token_id   TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    revoked    INTEGER NOT NULL
);
CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE friend_requests (
    id         INTEGER PRIMARY KEY,
    from_id    INTEGER NOT NULL,
    to_id      INTEGER NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_friend_requests_pending ON friend_requests (from_id, to_id)
    WHERE status = 'PENDING';
CREATE INDEX ix_friend_requests_to ON friend_requests (to_id, status);

CREATE TABLE friendships (
    user_id    INTEGER NOT NULL,
    friend_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL,
    blocked_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX ix_blocks_blocked ON blocks (blocked_id);

CREATE TABLE friend_groups (
    id          INTEGER PRIMARY KEY,
    owner_id    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX ix_friend_groups_owner ON friend_groups (owner_id, created_at);

CREATE TABLE friend_group_members (
    group_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX ix_friend_group_members_member ON friend_group_members (member_id);

CREATE TABLE rooms (
    id               INTEGER PRIMARY KEY,
    room_type        TEXT NOT NULL,
    title            TEXT,
    announcement     TEXT,
    created_by       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_seq         INTEGER NOT NULL,
    last_message_id  INTEGER,
    last_activity_at INTEGER NOT NULL,
    direct_key       TEXT
);
CREATE UNIQUE INDEX ux_rooms_direct_key ON rooms (direct_key);

CREATE TABLE participants (
    room_id       INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    role          TEXT NOT NULL,
    joined_at     INTEGER NOT NULL,
    last_read_seq INTEGER NOT NULL,
    favorite      INTEGER NOT NULL,
    favorited_at  INTEGER,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX ix_participants_user ON participants (user_id);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    room_id        INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    sender_id      INTEGER NOT NULL,
    temp_id        TEXT,
    message_type   TEXT NOT NULL,
    text           TEXT NOT NULL,
    is_edited      INTEGER NOT NULL,
    is_deleted     INTEGER NOT NULL,
    url_preview    TEXT,
    thread_id      INTEGER,
    reply_count    INTEGER NOT NULL,
    last_reply_at  INTEGER,
    forwarded_from TEXT,
    mentions       TEXT NOT NULL,
    pinned_by      INTEGER,
    pinned_at      INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER,
    status         TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_messages_room_seq ON messages (room_id, seq);
CREATE UNIQUE INDEX ux_messages_sender_temp ON messages (sender_id, temp_id);
CREATE INDEX ix_messages_thread ON messages (thread_id, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX ix_messages_threads ON messages (room_id, last_reply_at) WHERE reply_count > 0;
CREATE INDEX ix_messages_pinned ON messages (room_id, pinned_at) WHERE pinned_at IS NOT NULL;

-- ord keeps reaction order (users per code listed in the order they reacted).
CREATE TABLE message_reactions (
    ord        INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    code       TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_message_reactions ON message_reactions (message_id, code, user_id);

CREATE TABLE scheduled_messages (
    id               INTEGER PRIMARY KEY,
    room_id          INTEGER NOT NULL,
    sender_id        INTEGER NOT NULL,
    text             TEXT NOT NULL,
    message_type     TEXT NOT NULL,
    scheduled_at     INTEGER NOT NULL,
    repeat           TEXT,
    status           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    sent_count       INTEGER NOT NULL,
    last_error       TEXT,
    claimed_by       TEXT,
    claim_expires_at INTEGER
);
CREATE INDEX ix_scheduled_messages_due ON scheduled_messages (status, scheduled_at);
CREATE INDEX ix_scheduled_messages_sender ON scheduled_messages (sender_id, scheduled_at);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   INTEGER,
    room_id    INTEGER,
    message_id INTEGER,
    text       TEXT NOT NULL,
    is_read    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ix_notifications_user ON notifications (user_id, created_at);

CREATE TABLE bookmarks (
    user_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    room_id    INTEGER NOT NULL,
    note       TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
