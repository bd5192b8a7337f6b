//! Business limits. Every number of the domain rules is a setting with the SPEC default.

use std::time::Duration;

/// A reaction the room members can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionType {
    /// Stable code, e.g. `like`.
    pub code: String,
    /// Emoji shown for it.
    pub emoji: String,
    /// Human-readable name.
    pub description: String,
}

/// All business limits of the engine.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Shortest username.
    pub username_min: usize,
    /// Longest username.
    pub username_max: usize,
    /// Shortest nickname.
    pub nickname_min: usize,
    /// Longest nickname.
    pub nickname_max: usize,
    /// Longest bio.
    pub bio_max: usize,
    /// Shortest password.
    pub password_min: usize,
    /// Length of generated user codes (4–12).
    pub user_code_len: usize,
    /// Longest message, in characters after trimming.
    pub message_max_chars: usize,
    /// How long after sending a message can be edited.
    pub edit_window: Duration,
    /// Most users mentioned in one message.
    pub mentions_max: usize,
    /// Smallest group (creator included).
    pub group_min_members: usize,
    /// Largest group.
    pub group_max_members: usize,
    /// Longest room title.
    pub room_title_max: usize,
    /// Longest announcement.
    pub announcement_max: usize,
    /// Most favourite rooms per user.
    pub favorites_max: usize,
    /// Most pinned messages per room.
    pub pins_per_room: usize,
    /// Allowed reactions.
    pub reactions: Vec<ReactionType>,
    /// Most friends per user.
    pub friends_max: usize,
    /// Longest friend group name.
    pub friend_group_name_max: usize,
    /// Default recommendation depth.
    pub recommendation_default_depth: u8,
    /// Deepest recommendation search.
    pub recommendation_max_depth: u8,
    /// How long computed recommendations are cached.
    pub recommendation_cache_ttl: Duration,
    /// Minimum interval between two typing broadcasts of one user in one room.
    pub typing_throttle: Duration,
    /// Typing stops automatically after this long without a refresh.
    pub typing_timeout: Duration,
    /// How long a presence heartbeat keeps a session online.
    pub presence_ttl: Duration,
    /// Shortest interval between two active-user lists of one room: changes within it are
    /// coalesced into one list sent at its end.
    pub active_users_interval: Duration,
    /// Rooms with more participants get no active-user broadcasts (a list per change to every
    /// member grows with the square of the room); their members ask for the list instead.
    pub active_users_max_room: usize,
    /// Sustained messages per second per user (0 disables rate limiting).
    pub messages_per_second: f64,
    /// Burst of messages per user.
    pub message_burst: u32,
    /// Failed logins before lock-out (per account and per address).
    pub login_max_failures: u32,
    /// Lock-out duration.
    pub login_lockout: Duration,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Default history page.
    pub history_default_limit: usize,
    /// Largest history page.
    pub history_max_limit: usize,
    /// Messages returned by an INITIAL sync.
    pub sync_initial_limit: usize,
    /// Messages per BEFORE/AFTER sync page.
    pub sync_page_limit: usize,
    /// How often the scheduler looks for due messages.
    pub schedule_poll_interval: Duration,
    /// How long a scheduler claim lasts before another instance may take over.
    pub schedule_claim_lease: Duration,
    /// How long `(sender, tempId)` claims are remembered in ephemeral state. A claim only has
    /// to outlive the time from the send until the message is stored: every fresh claim is
    /// also checked against the store, which keeps `(sender, tempId)` unique forever. Longer
    /// values cost memory (≈ 200 bytes per message sent within the TTL).
    pub idempotency_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        let reaction = |code: &str, emoji: &str, description: &str| ReactionType {
            code: code.to_owned(),
            emoji: emoji.to_owned(),
            description: description.to_owned(),
        };
        Limits {
            username_min: 3,
            username_max: 20,
            nickname_min: 2,
            nickname_max: 30,
            bio_max: 200,
            password_min: 8,
            user_code_len: 8,
            message_max_chars: 4000,
            edit_window: Duration::from_secs(24 * 3600),
            mentions_max: 50,
            group_min_members: 2,
            group_max_members: 100,
            room_title_max: 50,
            announcement_max: 200,
            favorites_max: 20,
            pins_per_room: 3,
            reactions: vec![
                reaction("like", "👍", "Like"),
                reaction("love", "❤️", "Love"),
                reaction("haha", "😂", "Haha"),
                reaction("wow", "😮", "Wow"),
                reaction("sad", "😢", "Sad"),
                reaction("angry", "😡", "Angry"),
            ],
            friends_max: 1000,
            friend_group_name_max: 30,
            recommendation_default_depth: 2,
            recommendation_max_depth: 3,
            recommendation_cache_ttl: Duration::from_secs(600),
            typing_throttle: Duration::from_secs(1),
            typing_timeout: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(60),
            active_users_interval: Duration::from_millis(500),
            active_users_max_room: 1000,
            messages_per_second: 20.0,
            message_burst: 100,
            login_max_failures: 5,
            login_lockout: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            history_default_limit: 50,
            history_max_limit: 100,
            sync_initial_limit: 50,
            sync_page_limit: 30,
            schedule_poll_interval: Duration::from_millis(200),
            schedule_claim_lease: Duration::from_secs(30),
            idempotency_ttl: Duration::from_secs(600),
        }
    }
}
