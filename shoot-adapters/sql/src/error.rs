//! Classification of driver errors at the adapter boundary.

use shoot_core::PortError;

/// Maps a sqlx error to a [`PortError`]: a unique-key violation becomes
/// [`PortError::AlreadyExists`] naming the key, anything else [`PortError::Backend`].
pub(crate) fn classify(backend: &'static str, e: sqlx::Error) -> PortError {
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            // PostgreSQL reports the index name; SQLite only a message such as
            // "UNIQUE constraint failed: users.username_lower".
            let name = db.constraint().unwrap_or_else(|| db.message());
            return PortError::AlreadyExists {
                what: unique_key_name(name),
            };
        }
    }
    PortError::backend(backend, e)
}

/// The name of the unique key an index name or SQLite message refers to.
pub(crate) fn unique_key_name(index_or_message: &str) -> &'static str {
    const KEYS: &[(&str, &str)] = &[
        ("username", "username"),
        ("email", "email"),
        ("user_code", "user_code"),
        ("friend_request", "friend_request"),
        ("refresh_token", "refresh_token"),
        ("direct_key", "direct_room"),
        ("temp_id", "temp_id"),
        ("sender_temp", "temp_id"),
        ("room_seq", "seq"),
        ("messages.room_id", "seq"),
        ("message_reactions", "reaction"),
        ("bookmarks", "bookmark"),
        ("participants", "participant"),
        ("friendships", "friendship"),
        ("blocks", "block"),
        ("friend_group", "friend_group"),
        ("scheduled_messages", "schedule"),
        ("notifications", "notification"),
        ("rooms", "room"),
        ("messages", "message"),
        ("users", "user"),
    ];
    let lower = index_or_message.to_ascii_lowercase();
    KEYS.iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or("record", |(_, what)| what)
}

#[cfg(test)]
mod tests {
    use super::unique_key_name;

    #[test]
    fn sqlite_messages_and_postgres_index_names_map_to_keys() {
        let cases = [
            ("UNIQUE constraint failed: users.username_lower", "username"),
            ("ux_users_username", "username"),
            ("UNIQUE constraint failed: users.email_lower", "email"),
            ("ux_users_email", "email"),
            ("UNIQUE constraint failed: users.user_code", "user_code"),
            ("ux_users_user_code", "user_code"),
            ("UNIQUE constraint failed: users.id", "user"),
            ("users_pkey", "user"),
            (
                "UNIQUE constraint failed: friend_requests.from_id, friend_requests.to_id",
                "friend_request",
            ),
            ("ux_friend_requests_pending", "friend_request"),
            (
                "UNIQUE constraint failed: refresh_tokens.token_id",
                "refresh_token",
            ),
            ("refresh_tokens_pkey", "refresh_token"),
            (
                "UNIQUE constraint failed: messages.sender_id, messages.temp_id",
                "temp_id",
            ),
            ("ux_messages_room_seq", "seq"),
            ("something else", "record"),
        ];
        for (input, want) in cases {
            assert_eq!(unique_key_name(input), want, "{input}");
        }
    }
}
