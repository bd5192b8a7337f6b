//! The pure helpers and the document ↔ model mapping (no server needed).

use shoot_core::PortError;
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{
    ForwardedFrom, Message, MessageStatus, MessageType, Pin, Reactions, UrlPreview,
};
use shoot_core::rooms::{Participant, Role, Room, RoomType};
use shoot_core::time::Timestamp;
use shoot_mongodb::codec::{
    direct_key, duplicate_key_name, escape_regex, message_from_doc, message_to_doc, parse_role,
    parse_room_type, parse_status, participant_from_doc, participant_to_doc, reaction_code,
    reaction_field, reaction_path, reactions_from_doc, room_from_doc, room_to_doc, unread_plan,
};
use shoot_mongodb::mongodb::bson::{Bson, Document, doc};

fn full_message() -> Message {
    let mut reactions = Reactions::new();
    reactions.insert("like".to_owned(), vec![UserId(3), UserId(1), UserId(2)]);
    reactions.insert("a.b".to_owned(), vec![UserId(9)]);
    reactions.insert("$set".to_owned(), vec![UserId(8)]);
    reactions.insert("50%".to_owned(), vec![UserId(7)]);
    reactions.insert("😂".to_owned(), vec![UserId(6)]);
    Message {
        id: MessageId(i64::MAX - 1),
        room_id: RoomId(42),
        seq: Seq(17),
        sender_id: UserId(5),
        temp_id: Some("tmp-1".into()),
        message_type: MessageType::Url,
        text: "see https://example.com — ünïcode".into(),
        is_edited: true,
        is_deleted: false,
        url_preview: Some(UrlPreview {
            url: "https://example.com".to_owned(),
            title: Some("Example".to_owned()),
            description: Some("An example".to_owned()),
            image_url: Some("https://example.com/i.png".to_owned()),
            site_name: Some("Ex".to_owned()),
        }),
        thread_id: Some(MessageId(11)),
        reply_count: 4_000_000_000,
        last_reply_at: Some(Timestamp(1_700_000_000_123)),
        forwarded_from: Some(ForwardedFrom {
            message_id: MessageId(100),
            room_id: RoomId(200),
            sender_id: UserId(300),
        }),
        mentions: vec![UserId(2), UserId(1)],
        reactions,
        pin: Some(Pin {
            pinned_by: UserId(1),
            pinned_at: Timestamp(1_700_000_000_456),
        }),
        created_at: Timestamp(1_700_000_000_000),
        updated_at: Some(Timestamp(1_700_000_000_789)),
        status: MessageStatus::Saved,
    }
}

fn bare_message() -> Message {
    Message {
        is_deleted: true,
        status: MessageStatus::SentToKafka,
        ..Message::new(MessageId(1), RoomId(2), UserId(3), "", Timestamp(0))
    }
}

#[test]
fn message_round_trips_with_every_field_set() {
    let m = full_message();
    let d = message_to_doc(&m);
    assert_eq!(message_from_doc(&d).expect("decode"), m);
    // Ids and numbers are Int64, timestamps milliseconds.
    assert_eq!(d.get("_id"), Some(&Bson::Int64(m.id.0)));
    assert_eq!(d.get("reply_count"), Some(&Bson::Int64(4_000_000_000)));
    assert_eq!(d.get("created_at"), Some(&Bson::Int64(1_700_000_000_000)));
    assert_eq!(d.get_str("status").ok(), Some("SAVED"));
    assert_eq!(d.get_str("message_type").ok(), Some("URL"));
    let reactions = d.get_document("reactions").expect("reactions");
    assert!(
        reactions
            .keys()
            .all(|k| !k.contains('.') && !k.starts_with('$')),
        "reaction field names are valid: {reactions:?}"
    );
}

#[test]
fn message_round_trips_with_every_optional_field_absent_and_omits_them() {
    let m = bare_message();
    let d = message_to_doc(&m);
    assert_eq!(message_from_doc(&d).expect("decode"), m);
    for absent in [
        "temp_id",
        "url_preview",
        "thread_id",
        "last_reply_at",
        "forwarded_from",
        "pin",
        "updated_at",
    ] {
        assert!(
            !d.contains_key(absent),
            "{absent} is omitted, not null (partial indexes rely on it)"
        );
    }
    assert!(
        d.values().all(|v| *v != Bson::Null),
        "no nulls stored: {d:?}"
    );
}

#[test]
fn every_message_type_and_status_round_trips() {
    for ty in [
        MessageType::Text,
        MessageType::File,
        MessageType::Image,
        MessageType::Url,
        MessageType::System,
    ] {
        for status in [
            MessageStatus::Sending,
            MessageStatus::SentToKafka,
            MessageStatus::Processing,
            MessageStatus::Saved,
            MessageStatus::Failed,
        ] {
            let mut m = bare_message();
            m.message_type = ty;
            m.status = status;
            assert_eq!(message_from_doc(&message_to_doc(&m)).expect("decode"), m);
            assert_eq!(parse_status(status.as_str()), Some(status));
        }
    }
    assert_eq!(parse_status("saved"), None);
}

#[test]
fn room_round_trips_and_direct_key_is_stored_only_when_given() {
    let group = Room {
        id: RoomId(10),
        room_type: RoomType::Group,
        title: Some("Team".to_owned()),
        announcement: Some("Notice".to_owned()),
        created_by: UserId(1),
        created_at: Timestamp(100),
        updated_at: Timestamp(200),
        last_seq: Seq(7),
        last_message_id: Some(MessageId(70)),
        last_activity_at: Timestamp(300),
    };
    let d = room_to_doc(&group, None);
    assert_eq!(room_from_doc(&d).expect("decode"), group);
    assert!(!d.contains_key("direct_key"));
    let direct = Room {
        room_type: RoomType::Direct,
        title: None,
        announcement: None,
        last_seq: Seq::ZERO,
        last_message_id: None,
        ..group
    };
    let key = direct_key(UserId(9), UserId(2));
    let d = room_to_doc(&direct, Some(&key));
    assert_eq!(room_from_doc(&d).expect("decode"), direct);
    assert_eq!(d.get_str("direct_key").ok(), Some("2:9"));
    for absent in ["title", "announcement", "last_message_id"] {
        assert!(!d.contains_key(absent), "{absent} omitted");
    }
    for t in [RoomType::Direct, RoomType::Group] {
        assert_eq!(parse_room_type(t.as_str()), Some(t));
    }
}

#[test]
fn participant_round_trips_under_the_given_room() {
    for (role, favorited_at) in [
        (Role::Owner, Some(Timestamp(55))),
        (Role::Admin, None),
        (Role::Member, None),
    ] {
        let p = Participant {
            room_id: RoomId(999), // ignored: stored under the room passed in
            user_id: UserId(4),
            role,
            joined_at: Timestamp(12),
            last_read_seq: Seq(3),
            favorite: favorited_at.is_some(),
            favorited_at,
        };
        let d = participant_to_doc(RoomId(8), &p);
        let back = participant_from_doc(&d).expect("decode");
        assert_eq!(
            back,
            Participant {
                room_id: RoomId(8),
                ..p
            }
        );
        assert_eq!(d.contains_key("favorited_at"), favorited_at.is_some());
        assert_eq!(parse_role(role.as_str()), Some(role));
    }
}

#[test]
fn direct_keys_are_unordered() {
    assert_eq!(
        direct_key(UserId(7), UserId(3)),
        direct_key(UserId(3), UserId(7))
    );
    assert_eq!(direct_key(UserId(3), UserId(7)), "3:7");
    assert_ne!(
        direct_key(UserId(1), UserId(23)),
        direct_key(UserId(12), UserId(3))
    );
}

#[test]
fn regex_escaping_makes_every_metacharacter_literal() {
    assert_eq!(escape_regex("hello number"), "hello number");
    assert_eq!(escape_regex("a.c"), "a\\.c");
    assert_eq!(escape_regex("hello%number"), "hello\\%number");
    assert_eq!(escape_regex("(x)[y]{2}"), "\\(x\\)\\[y\\]\\{2\\}");
    assert_eq!(escape_regex("^a$|b*c+?"), "\\^a\\$\\|b\\*c\\+\\?");
    assert_eq!(escape_regex("back\\slash"), "back\\\\slash");
    assert_eq!(escape_regex("tab\there"), "tab\\x09here");
    assert_eq!(escape_regex("ünï 😂"), "ünï 😂", "non-ASCII kept");
    // Every ASCII punctuation character comes out preceded by a backslash.
    for c in (0u8..128)
        .map(char::from)
        .filter(char::is_ascii_punctuation)
    {
        let e = escape_regex(&c.to_string());
        if c == '_' {
            assert_eq!(e, "_");
        } else {
            assert_eq!(e, format!("\\{c}"), "{c:?}");
        }
    }
}

#[test]
fn reaction_field_names_are_valid_distinct_and_decode_back() {
    let codes = [
        "like", "a.b", "$x", "x$", "%", "%25", "%2E", "%24", "100%", "..", "", "\0", "👍",
        "a%b.c$d",
    ];
    let fields: Vec<String> = codes.iter().map(|c| reaction_field(c)).collect();
    for (code, field) in codes.iter().zip(&fields) {
        assert!(!field.is_empty() && !field.contains('.') && !field.starts_with('$'));
        assert!(!field.contains('\0'));
        assert_eq!(reaction_code(field), *code, "round trip of {code:?}");
    }
    let mut unique = fields.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        fields.len(),
        "distinct codes, distinct fields"
    );
    assert_eq!(reaction_path("a.b"), "reactions.a%2Eb");
}

#[test]
fn empty_reaction_lists_read_as_removed() {
    let d = doc! { "like": [1i64, 2i64], "gone": [] };
    let r = reactions_from_doc(&d).expect("decode");
    assert_eq!(r.len(), 1);
    assert_eq!(r.get("like"), Some(&vec![UserId(1), UserId(2)]));
}

#[test]
fn integers_stored_as_int32_or_double_are_accepted() {
    let mut d = message_to_doc(&bare_message());
    d.insert("seq", Bson::Int32(5));
    d.insert("reply_count", Bson::Double(2.0));
    let m = message_from_doc(&d).expect("decode");
    assert_eq!((m.seq, m.reply_count), (Seq(5), 2));
}

#[test]
fn malformed_documents_are_backend_errors() {
    let good = message_to_doc(&bare_message());
    for (field, value) in [
        ("room_id", None),
        ("seq", Some(Bson::String("x".into()))),
        ("status", Some(Bson::String("LOST".into()))),
        ("message_type", Some(Bson::String("VIDEO".into()))),
        ("reply_count", Some(Bson::Int64(-1))),
        ("mentions", Some(Bson::String("1".into()))),
    ] {
        let mut d = good.clone();
        match value {
            Some(v) => d.insert(field, v),
            None => d.remove(field),
        };
        match message_from_doc(&d) {
            Err(PortError::Backend { backend, .. }) => assert_eq!(backend, "mongodb"),
            other => panic!("{field}: expected a backend error, got {other:?}"),
        }
    }
}

#[test]
fn duplicate_key_messages_name_the_key() {
    let cases = [
        (
            "E11000 duplicate key error collection: shoot.rooms index: ux_rooms_direct_key dup key: { direct_key: \"1:2\" }",
            "direct_room",
        ),
        (
            "E11000 duplicate key error collection: shoot.rooms index: _id_ dup key: { _id: 5 }",
            "room",
        ),
        (
            "E11000 duplicate key error collection: shoot.messages index: _id_ dup key: { _id: 5 }",
            "message",
        ),
        (
            "E11000 duplicate key error collection: a.b.messages index: ux_messages_sender_temp dup key: { sender_id: 1, temp_id: \"t\" }",
            "temp_id",
        ),
        (
            "E11000 duplicate key error collection: shoot.messages index: ux_messages_room_seq dup key: { room_id: 1, seq: 2 }",
            "seq",
        ),
        (
            "E11000 duplicate key error collection: shoot.participants index: ux_participants_room_user dup key: { room_id: 1, user_id: 2 }",
            "participant",
        ),
        ("something else entirely", "record"),
    ];
    for (message, want) in cases {
        assert_eq!(duplicate_key_name(message), want, "{message}");
    }
}

#[test]
fn unread_plan_is_one_aggregation_mapping_every_input() {
    let (r1, r2, r3) = (RoomId(1), RoomId(2), RoomId(3));
    let cursors = [
        (r1, Seq(5)),
        (r2, Seq(0)),
        (r1, Seq(2)),
        (r1, Seq(9)),
        (r3, Seq(4)),
        (r1, Seq(5)),
        (r1, Seq(9)),
    ];
    let plan = unread_plan(UserId(77), &cursors);
    assert_eq!(plan.pipeline.len(), 2, "$match + $group");
    let m = plan.pipeline[0].get_document("$match").expect("$match");
    assert_eq!(
        m.get("sender_id"),
        Some(&Bson::Document(doc! { "$ne": 77i64 }))
    );
    assert_eq!(m.get("is_deleted"), Some(&Bson::Boolean(false)));
    let or = m.get_array("$or").expect("$or");
    assert_eq!(
        or,
        &vec![
            Bson::Document(doc! { "room_id": 1i64, "seq": { "$gt": 2i64 } }),
            Bson::Document(doc! { "room_id": 2i64, "seq": { "$gt": 0i64 } }),
            Bson::Document(doc! { "room_id": 3i64, "seq": { "$gt": 4i64 } }),
        ],
        "one clause per distinct room, at its lowest cursor"
    );
    let g = plan.pipeline[1].get_document("$group").expect("$group");
    assert_eq!(g.get_str("_id").ok(), Some("$room_id"));
    assert!(g.contains_key("x0") && g.contains_key("x1") && !g.contains_key("x2"));
    // Synthetic server answer: room 1 has 6 unread after 2, 4 after 5, 1 after 9; room 2
    // has none (no group document); room 3 has 3 (Int32, as $sum returns small counts).
    let groups: Vec<Document> = vec![
        doc! { "_id": 1i64, "n": 6i32, "x0": 4i32, "x1": 1i32 },
        doc! { "_id": 3i64, "n": 3i32 },
    ];
    assert_eq!(
        plan.counts(&groups).expect("counts"),
        vec![4, 0, 6, 1, 3, 4, 1]
    );
    assert!(unread_plan(UserId(1), &[]).fields.is_empty());
}
