//! Every JSON request body of the REST API and of STOMP `SEND /app/...`, on arbitrary bytes.
//!
//! The first byte picks the request type, the rest is the body. Each body goes through
//! `serde_json::from_slice` (what `ApiJson` / `axum::Json` do) or `stomp::app::parse` (what
//! the STOMP handlers do), and a body that parses is run through the pure validation rules
//! the engine applies to it, with the default limits. Checked: nothing panics or overflows the
//! stack (serde_json's recursion limit), and the rules' outputs respect their own bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::from_slice;
use shoot_core::Limits;
use shoot_core::Timestamp;
use shoot_core::identity::rules as identity;
use shoot_core::messages::MessageType;
use shoot_core::messages::mentions::parse_mentions;
use shoot_core::messages::rules as messages;
use shoot_core::rooms::rules as rooms;
use shoot_core::schedule::Repeat;
use shoot_core::social::rules as social;
use shoot_core::{UserId, identity::UserStatus};
use shoot_server::stomp::app;
use shoot_server::views;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    match selector % 32 {
        0 => signup(body, &limits),
        1 => {
            if let Ok(r) = from_slice::<views::LoginRequest>(body) {
                let _ = r.username.as_deref().map(identity::normalize_email);
            }
        }
        2 => {
            let _ = from_slice::<views::RefreshRequest>(body);
        }
        3 => profile(body, &limits),
        4 => {
            if let Ok(r) = from_slice::<views::StatusRequest>(body) {
                let _ = UserStatus::parse(&r.status);
            }
        }
        5 => {
            let _ = from_slice::<views::TargetUserRequest>(body);
        }
        6 => friend_group(body, &limits),
        7 => {
            if let Ok(r) = from_slice::<views::CreateRoomRequest>(body) {
                create_room(&r, &limits);
            }
        }
        8 => {
            if let Ok(r) = from_slice::<views::CreateRoomsRequest>(body) {
                r.rooms.iter().for_each(|room| create_room(room, &limits));
            }
        }
        9 => {
            if let Ok(r) = from_slice::<views::UpdateRoomRequest>(body) {
                check_title(r.title.as_deref(), &limits);
                check_announcement(r.announcement.flatten().as_deref(), &limits);
            }
        }
        10 => {
            if let Ok(r) = from_slice::<views::AddParticipantsRequest>(body) {
                let _ = rooms::check_member_count(r.participant_ids.len(), &limits);
            }
        }
        11 => {
            if let Ok(r) = from_slice::<views::NoticeRequest>(body) {
                check_announcement(r.announcement.as_deref(), &limits);
            }
        }
        12 => {
            if let Ok(r) = from_slice::<views::EditMessageRequest>(body) {
                check_content(&r.content, &limits);
            }
        }
        13 => {
            if let Ok(r) = from_slice::<views::ForwardRequest>(body) {
                let text = messages::forward_text("original", r.additional_content.as_deref());
                check_content(&text, &limits);
            }
        }
        14 => {
            let _ = from_slice::<views::MessageIdRequest>(body);
        }
        15 => {
            if let Ok(r) = from_slice::<views::ReactionRequest>(body) {
                let _ = messages::check_reaction(&r.reaction, &limits);
            }
        }
        16 => {
            if let Ok(r) = from_slice::<views::ThreadReplyRequest>(body) {
                check_content(&r.content, &limits);
                let _ = messages::validate_temp_id(&r.temp_id);
                check_type(r.message_type.as_deref());
            }
        }
        17 => {
            if let Ok(r) = from_slice::<views::ScheduleRequest>(body) {
                check_content(&r.content, &limits);
                let _ = Timestamp::parse_rfc3339(&r.scheduled_at);
                let _ = r.repeat.as_deref().map(Repeat::parse);
                check_type(r.message_type.as_deref());
            }
        }
        18 => {
            if let Ok(r) = from_slice::<views::ScheduleUpdateRequest>(body) {
                let _ = r.content.as_deref().map(|c| check_content(c, &limits));
                let _ = r.scheduled_at.as_deref().map(Timestamp::parse_rfc3339);
                let _ = r.repeat.flatten().as_deref().map(Repeat::parse);
            }
        }
        19 => {
            let _ = from_slice::<views::BookmarkRequest>(body);
        }
        20 => stomp_chat(body),
        21 => {
            let _ = app::parse::<app::ThreadIn>(body);
        }
        22 => {
            let _ = app::parse::<app::EditIn>(body);
        }
        23 => {
            let _ = app::parse::<app::MessageIdIn>(body);
        }
        24 => {
            let _ = app::parse::<app::RoomIdIn>(body);
        }
        25 => {
            let _ = app::parse::<app::ReactionIn>(body);
        }
        26 => {
            let _ = app::parse::<app::TypingIn>(body);
        }
        27 => {
            let _ = app::parse::<app::ReadIn>(body);
        }
        28 => {
            let _ = app::parse::<app::SyncIn>(body);
        }
        29 => {
            let _ = app::parse::<app::GroupChatIn>(body);
        }
        30 => {
            let _ = app::parse::<app::ThreadQueryIn>(body);
        }
        _ => {
            let _ = app::parse::<app::ThreadsIn>(body);
        }
    }
});

fn signup(body: &[u8], limits: &Limits) {
    let Ok(r) = from_slice::<views::SignupRequest>(body) else {
        return;
    };
    let _ = identity::validate_username(&r.username, limits);
    if let Ok(n) = identity::normalize_nickname(&r.nickname, limits) {
        assert!(!n.is_empty());
    }
    let _ = identity::normalize_email(&r.email);
    let _ = identity::validate_password(&r.password, limits);
    let _ = identity::normalize_bio(r.bio.as_deref(), limits);
}

fn profile(body: &[u8], limits: &Limits) {
    let Ok(r) = from_slice::<views::UpdateProfileRequest>(body) else {
        return;
    };
    let _ = r
        .nickname
        .as_deref()
        .map(|n| identity::normalize_nickname(n, limits));
    let _ = r
        .bio
        .as_ref()
        .map(|b| identity::normalize_bio(b.as_deref(), limits));
    let _ = r
        .profile_image_url
        .as_ref()
        .map(|u| identity::normalize_image_url(u.as_deref()));
}

fn friend_group(body: &[u8], limits: &Limits) {
    let Ok(r) = from_slice::<views::FriendGroupRequest>(body) else {
        return;
    };
    if let Some(Ok(name)) = r
        .name
        .as_deref()
        .map(|n| social::normalize_group_name(n, limits))
    {
        let n = name.chars().count();
        assert!(n >= 1 && n <= limits.friend_group_name_max);
    }
    let _ = r
        .description
        .as_ref()
        .map(|d| social::normalize_group_description(d.as_deref()));
}

fn create_room(r: &views::CreateRoomRequest, limits: &Limits) {
    check_title(r.title.as_deref(), limits);
    if let Ok(members) = rooms::group_members(UserId(1), &r.participant_ids, limits) {
        assert_eq!(members[0], UserId(1));
        assert!(members.len() <= limits.group_max_members);
    }
}

fn check_title(title: Option<&str>, limits: &Limits) {
    if let Some(Ok(t)) = title.map(|t| rooms::validate_title(t, limits)) {
        let n = t.chars().count();
        assert!(n >= 1 && n <= limits.room_title_max);
        assert_eq!(t.trim(), t);
    }
}

fn check_announcement(text: Option<&str>, limits: &Limits) {
    if let Ok(Some(a)) = rooms::validate_announcement(text, limits) {
        assert!(!a.is_empty() && a.chars().count() <= limits.announcement_max);
    }
}

fn check_content(text: &str, limits: &Limits) {
    if let Ok(t) = messages::validate_content(text, limits) {
        assert!(!t.is_empty() && t.chars().count() <= limits.message_max_chars);
        let _ = parse_mentions(&t);
    }
}

fn check_type(t: Option<&str>) {
    if let Some(Some(ty)) = t.map(MessageType::parse) {
        let _ = messages::validate_client_type(ty);
    }
}

/// `/app/chat`: parse, then the type resolution the handler does; a body that fails to parse
/// goes through `loose_ids` (the FAILED status's best-effort ids), as in the handler.
fn stomp_chat(body: &[u8]) {
    if app::parse::<app::ChatIn>(body).is_err() {
        let _ = app::loose_ids(body);
    }
    let explicit = from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type")?.as_str().map(str::to_owned));
    let _ = app::message_type(explicit, None);
}
