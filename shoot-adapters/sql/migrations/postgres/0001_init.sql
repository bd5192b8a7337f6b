-- Shoot schema for PostgreSQL. Times are milliseconds since the Unix epoch (BIGINT),
-- JSON values are TEXT. Ordered text columns use the "C" collation so that ORDER BY
-- matches byte order (as on SQLite and in the in-memory stores).

CREATE TABLE users (
    id                BIGINT PRIMARY KEY,
    username          TEXT COLLATE "C" NOT NULL,
    username_lower    TEXT NOT NULL,
    nickname          TEXT NOT NULL,
    email             TEXT NOT NULL,
    email_lower       TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    status            TEXT NOT NULL,
    bio               TEXT,
    profile_image_url TEXT,
    user_code         TEXT NOT NULL,
    last_seen_at      BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_users_username ON users (username_lower);
CREATE UNIQUE INDEX ux_users_email ON users (email_lower);
CREATE UNIQUE INDEX ux_users_user_code ON users (user_code);

CREATE TABLE refresh_tokens (
    token_id   TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used       BOOLEAN NOT NULL,
    revoked    BOOLEAN NOT NULL
);
CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE friend_requests (
    id         BIGINT PRIMARY KEY,
    from_id    BIGINT NOT NULL,
    to_id      BIGINT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_friend_requests_pending ON friend_requests (from_id, to_id)
    WHERE status = 'PENDING';
CREATE INDEX ix_friend_requests_to ON friend_requests (to_id, status);

CREATE TABLE friendships (
    user_id    BIGINT NOT NULL,
    friend_id  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE blocks (
    blocker_id BIGINT NOT NULL,
    blocked_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX ix_blocks_blocked ON blocks (blocked_id);

CREATE TABLE friend_groups (
    id          BIGINT PRIMARY KEY,
    owner_id    BIGINT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX ix_friend_groups_owner ON friend_groups (owner_id, created_at);

CREATE TABLE friend_group_members (
    group_id  BIGINT NOT NULL,
    member_id BIGINT NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX ix_friend_group_members_member ON friend_group_members (member_id);

CREATE TABLE rooms (
    id               BIGINT PRIMARY KEY,
    room_type        TEXT NOT NULL,
    title            TEXT,
    announcement     TEXT,
    created_by       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_seq         BIGINT NOT NULL,
    last_message_id  BIGINT,
    last_activity_at BIGINT NOT NULL,
    direct_key       TEXT
);
CREATE UNIQUE INDEX ux_rooms_direct_key ON rooms (direct_key);

CREATE TABLE participants (
    room_id       BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    role          TEXT NOT NULL,
    joined_at     BIGINT NOT NULL,
    last_read_seq BIGINT NOT NULL,
    favorite      BOOLEAN NOT NULL,
    favorited_at  BIGINT,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX ix_participants_user ON participants (user_id);

CREATE TABLE messages (
    id             BIGINT PRIMARY KEY,
    room_id        BIGINT NOT NULL,
    seq            BIGINT NOT NULL,
    sender_id      BIGINT NOT NULL,
    temp_id        TEXT,
    message_type   TEXT NOT NULL,
    text           TEXT NOT NULL,
    is_edited      BOOLEAN NOT NULL,
    is_deleted     BOOLEAN NOT NULL,
    url_preview    TEXT,
    thread_id      BIGINT,
    reply_count    BIGINT NOT NULL,
    last_reply_at  BIGINT,
    forwarded_from TEXT,
    mentions       TEXT NOT NULL,
    pinned_by      BIGINT,
    pinned_at      BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT,
    status         TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_messages_room_seq ON messages (room_id, seq);
CREATE UNIQUE INDEX ux_messages_sender_temp ON messages (sender_id, temp_id);
CREATE INDEX ix_messages_thread ON messages (thread_id, seq) WHERE thread_id IS NOT NULL;
CREATE INDEX ix_messages_threads ON messages (room_id, last_reply_at) WHERE reply_count > 0;
CREATE INDEX ix_messages_pinned ON messages (room_id, pinned_at) WHERE pinned_at IS NOT NULL;

-- ord keeps reaction order (users per code listed in the order they reacted).
CREATE TABLE message_reactions (
    ord        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id BIGINT NOT NULL,
    code       TEXT NOT NULL,
    user_id    BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ux_message_reactions ON message_reactions (message_id, code, user_id);

CREATE TABLE scheduled_messages (
    id               BIGINT PRIMARY KEY,
    room_id          BIGINT NOT NULL,
    sender_id        BIGINT NOT NULL,
    text             TEXT NOT NULL,
    message_type     TEXT NOT NULL,
    scheduled_at     BIGINT NOT NULL,
    repeat           TEXT,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    sent_count       BIGINT NOT NULL,
    last_error       TEXT,
    claimed_by       TEXT,
    claim_expires_at BIGINT
);
CREATE INDEX ix_scheduled_messages_due ON scheduled_messages (status, scheduled_at);
CREATE INDEX ix_scheduled_messages_sender ON scheduled_messages (sender_id, scheduled_at);

CREATE TABLE notifications (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   BIGINT,
    room_id    BIGINT,
    message_id BIGINT,
    text       TEXT NOT NULL,
    is_read    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_notifications_user ON notifications (user_id, created_at);

CREATE TABLE bookmarks (
    user_id    BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    room_id    BIGINT NOT NULL,
    note       TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
