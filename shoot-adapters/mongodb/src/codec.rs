//! Mapping between the domain models and BSON documents, plus the pure helpers the store
//! builds its queries with. Public so that tests (and tools inspecting a database) can use
//! the exact same mapping as the store.
//!
//! Conventions:
//! - ids, sequences, counters and timestamps (milliseconds since the epoch) are BSON `Int64`;
//! - an absent optional field is omitted from the document (never stored as `null`), so the
//!   partial indexes on `temp_id`, `direct_key` and `pin` only contain documents that have one;
//! - enums are stored by their wire names (`"GROUP"`, `"OWNER"`, `"TEXT"`, `"SAVED"`);
//! - reactions are an embedded document `{ <encoded code>: [user ids in reaction order] }`
//!   (see [`reaction_field`]).

use mongodb::bson::{Bson, Document, doc};
use shoot_core::PortError;
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{
    ForwardedFrom, Message, MessageStatus, MessageType, Pin, Reactions, UrlPreview,
};
use shoot_core::rooms::{Participant, Role, Room, RoomType};
use shoot_core::time::Timestamp;

/// A decoding failure: the stored document does not have the expected shape.
fn malformed(what: impl std::fmt::Display) -> PortError {
    PortError::backend("mongodb", format!("malformed document: {what}"))
}

/// The key of the unordered pair `(a, b)`: `"min:max"`, the same for `(a, b)` and `(b, a)`.
pub fn direct_key(a: UserId, b: UserId) -> String {
    format!("{}:{}", a.0.min(b.0), a.0.max(b.0))
}

/// `query` as a regular expression that matches it literally: every ASCII character other
/// than a letter, a digit, `_` or a space is escaped with a backslash (PCRE treats an escaped
/// non-alphanumeric character as itself). Non-ASCII characters are kept as they are.
pub fn escape_regex(query: &str) -> String {
    let mut out = String::with_capacity(query.len() * 2);
    for c in query.chars() {
        if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' && c != ' ' {
            if c.is_ascii_control() {
                // Control characters cannot be escaped by a backslash; use their hex form.
                out.push_str(&format!("\\x{:02x}", c as u32));
                continue;
            }
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The field name a reaction code is stored under inside `reactions`: `%`, `.`, `$` and
/// NUL are percent-encoded (a field name may not contain `.` nor start with `$`), so any code
/// maps to a valid, distinct field name.
pub fn reaction_field(code: &str) -> String {
    if code.is_empty() {
        // An empty field name is not addressable by a path; a lone `%` is never produced
        // for a non-empty code.
        return "%".to_owned();
    }
    let mut out = String::with_capacity(code.len());
    for c in code.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' => out.push_str("%24"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

/// The reaction code stored under the field name `field` (inverse of [`reaction_field`]).
pub fn reaction_code(field: &str) -> String {
    if field == "%" {
        return String::new();
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = match tail.get(..3) {
            Some("%25") => Some('%'),
            Some("%2E") => Some('.'),
            Some("%24") => Some('$'),
            Some("%00") => Some('\0'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[3..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The path of a reaction code's user list: `reactions.<encoded code>`.
pub fn reaction_path(code: &str) -> String {
    format!("reactions.{}", reaction_field(code))
}

/// The unique key a duplicate-key (E11000) error message refers to, from the index name
/// (`index: <name>`) and, for `_id_`, the collection (`collection: <db>.<name>`).
pub fn duplicate_key_name(message: &str) -> &'static str {
    let index = message
        .split("index: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("");
    let collection = message
        .split("collection: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ns| ns.rsplit('.').next())
        .unwrap_or("");
    match index {
        crate::IX_ROOMS_DIRECT_KEY => "direct_room",
        crate::IX_MESSAGES_ROOM_SEQ => "seq",
        crate::IX_MESSAGES_SENDER_TEMP => "temp_id",
        crate::IX_PARTICIPANTS_ROOM_USER => "participant",
        "_id_" => match collection {
            "rooms" => "room",
            "messages" => "message",
            "participants" => "participant",
            _ => "record",
        },
        _ => "record",
    }
}

// ---- field access -------------------------------------------------------------------------

/// An integer field (stored as Int64; Int32 and integral doubles are accepted too).
pub(crate) fn int(d: &Document, key: &str) -> Result<i64, PortError> {
    opt_int(d, key)?.ok_or_else(|| malformed(format!("missing integer field {key:?}")))
}

/// An optional integer field (absent or `null` → `None`).
pub(crate) fn opt_int(d: &Document, key: &str) -> Result<Option<i64>, PortError> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(b) => bson_int(b)
            .map(Some)
            .ok_or_else(|| malformed(format!("field {key:?} is not an integer: {b}"))),
    }
}

/// A BSON number as an i64, if it is integral.
pub(crate) fn bson_int(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e18 => Some(*v as i64),
        _ => None,
    }
}

fn string(d: &Document, key: &str) -> Result<String, PortError> {
    opt_string(d, key)?.ok_or_else(|| malformed(format!("missing string field {key:?}")))
}

fn opt_string(d: &Document, key: &str) -> Result<Option<String>, PortError> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(b) => Err(malformed(format!("field {key:?} is not a string: {b}"))),
    }
}

fn boolean(d: &Document, key: &str) -> Result<bool, PortError> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(false),
        Some(Bson::Boolean(v)) => Ok(*v),
        Some(b) => Err(malformed(format!("field {key:?} is not a boolean: {b}"))),
    }
}

fn opt_doc<'a>(d: &'a Document, key: &str) -> Result<Option<&'a Document>, PortError> {
    match d.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(v)) => Ok(Some(v)),
        Some(b) => Err(malformed(format!("field {key:?} is not a document: {b}"))),
    }
}

fn ints(b: &Bson, key: &str) -> Result<Vec<i64>, PortError> {
    match b {
        Bson::Null => Ok(Vec::new()),
        Bson::Array(items) => items
            .iter()
            .map(|i| bson_int(i).ok_or_else(|| malformed(format!("{key:?} holds {i}"))))
            .collect(),
        other => Err(malformed(format!("field {key:?} is not an array: {other}"))),
    }
}

fn ids_array<T>(items: &[T], f: impl Fn(&T) -> i64) -> Bson {
    Bson::Array(items.iter().map(|i| Bson::Int64(f(i))).collect())
}

fn put_opt_string(d: &mut Document, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        d.insert(key, v.clone());
    }
}

fn put_opt_int(d: &mut Document, key: &str, v: Option<i64>) {
    if let Some(v) = v {
        d.insert(key, v);
    }
}

// ---- enums --------------------------------------------------------------------------------

/// Parses a stored room type.
pub fn parse_room_type(s: &str) -> Option<RoomType> {
    match s {
        "DIRECT" => Some(RoomType::Direct),
        "GROUP" => Some(RoomType::Group),
        _ => None,
    }
}

/// Parses a stored role.
pub fn parse_role(s: &str) -> Option<Role> {
    match s {
        "OWNER" => Some(Role::Owner),
        "ADMIN" => Some(Role::Admin),
        "MEMBER" => Some(Role::Member),
        _ => None,
    }
}

/// Parses a stored message status.
pub fn parse_status(s: &str) -> Option<MessageStatus> {
    [
        MessageStatus::Sending,
        MessageStatus::SentToKafka,
        MessageStatus::Processing,
        MessageStatus::Saved,
        MessageStatus::Failed,
    ]
    .into_iter()
    .find(|st| st.as_str() == s)
}

fn parsed<T>(d: &Document, key: &str, f: impl Fn(&str) -> Option<T>) -> Result<T, PortError> {
    let s = string(d, key)?;
    f(&s).ok_or_else(|| malformed(format!("field {key:?} has an unknown value {s:?}")))
}

// ---- rooms --------------------------------------------------------------------------------

/// The document of a room. `direct_key` is set for direct rooms created through
/// `create_direct_room` (it makes the pair unique).
pub fn room_to_doc(room: &Room, direct_key: Option<&str>) -> Document {
    let mut d = doc! {
        "_id": room.id.0,
        "room_type": room.room_type.as_str(),
        "created_by": room.created_by.0,
        "created_at": room.created_at.0,
        "updated_at": room.updated_at.0,
        "last_seq": room.last_seq.0,
        "last_activity_at": room.last_activity_at.0,
    };
    put_opt_string(&mut d, "title", &room.title);
    put_opt_string(&mut d, "announcement", &room.announcement);
    put_opt_int(&mut d, "last_message_id", room.last_message_id.map(|m| m.0));
    if let Some(key) = direct_key {
        d.insert("direct_key", key);
    }
    d
}

/// The room stored in `d`.
pub fn room_from_doc(d: &Document) -> Result<Room, PortError> {
    Ok(Room {
        id: RoomId(int(d, "_id")?),
        room_type: parsed(d, "room_type", parse_room_type)?,
        title: opt_string(d, "title")?,
        announcement: opt_string(d, "announcement")?,
        created_by: UserId(int(d, "created_by")?),
        created_at: Timestamp(int(d, "created_at")?),
        updated_at: Timestamp(int(d, "updated_at")?),
        last_seq: Seq(int(d, "last_seq")?),
        last_message_id: opt_int(d, "last_message_id")?.map(MessageId),
        last_activity_at: Timestamp(int(d, "last_activity_at")?),
    })
}

/// The document of a participant of `room` (the participant's own `room_id` is ignored).
pub fn participant_to_doc(room: RoomId, p: &Participant) -> Document {
    let mut d = doc! {
        "room_id": room.0,
        "user_id": p.user_id.0,
        "role": p.role.as_str(),
        "joined_at": p.joined_at.0,
        "last_read_seq": p.last_read_seq.0,
        "favorite": p.favorite,
    };
    put_opt_int(&mut d, "favorited_at", p.favorited_at.map(|t| t.0));
    d
}

/// The participant stored in `d`.
pub fn participant_from_doc(d: &Document) -> Result<Participant, PortError> {
    Ok(Participant {
        room_id: RoomId(int(d, "room_id")?),
        user_id: UserId(int(d, "user_id")?),
        role: parsed(d, "role", parse_role)?,
        joined_at: Timestamp(int(d, "joined_at")?),
        last_read_seq: Seq(int(d, "last_read_seq")?),
        favorite: boolean(d, "favorite")?,
        favorited_at: opt_int(d, "favorited_at")?.map(Timestamp),
    })
}

// ---- messages -----------------------------------------------------------------------------

/// The embedded document of a link preview.
pub fn url_preview_to_doc(p: &UrlPreview) -> Document {
    let mut d = doc! { "url": p.url.clone() };
    put_opt_string(&mut d, "title", &p.title);
    put_opt_string(&mut d, "description", &p.description);
    put_opt_string(&mut d, "image_url", &p.image_url);
    put_opt_string(&mut d, "site_name", &p.site_name);
    d
}

fn url_preview_from_doc(d: &Document) -> Result<UrlPreview, PortError> {
    Ok(UrlPreview {
        url: string(d, "url")?,
        title: opt_string(d, "title")?,
        description: opt_string(d, "description")?,
        image_url: opt_string(d, "image_url")?,
        site_name: opt_string(d, "site_name")?,
    })
}

/// The embedded document of a pin.
pub fn pin_to_doc(p: &Pin) -> Document {
    doc! { "pinned_by": p.pinned_by.0, "pinned_at": p.pinned_at.0 }
}

/// The embedded reactions document (codes encoded by [`reaction_field`]; empty lists
/// omitted).
pub fn reactions_to_doc(r: &Reactions) -> Document {
    let mut d = Document::new();
    for (code, users) in r.iter().filter(|(_, users)| !users.is_empty()) {
        d.insert(reaction_field(code), ids_array(users, |u| u.0));
    }
    d
}

/// The reactions stored in `d`. A code whose list is empty (transiently, between a
/// `$pull` and the clean-up `$unset`) is left out, as if already removed.
pub fn reactions_from_doc(d: &Document) -> Result<Reactions, PortError> {
    let mut out = Reactions::new();
    for (field, users) in d {
        let users: Vec<UserId> = ints(users, field)?.into_iter().map(UserId).collect();
        if !users.is_empty() {
            out.insert(reaction_code(field), users);
        }
    }
    Ok(out)
}

/// The document of a message.
pub fn message_to_doc(m: &Message) -> Document {
    let mut d = doc! {
        "_id": m.id.0,
        "room_id": m.room_id.0,
        "seq": m.seq.0,
        "sender_id": m.sender_id.0,
        "message_type": m.message_type.as_str(),
        "text": &*m.text,
        "is_edited": m.is_edited,
        "is_deleted": m.is_deleted,
        "reply_count": i64::from(m.reply_count),
        "mentions": ids_array(&m.mentions, |u| u.0),
        "reactions": reactions_to_doc(&m.reactions),
        "created_at": m.created_at.0,
        "status": m.status.as_str(),
    };
    if let Some(t) = &m.temp_id {
        d.insert("temp_id", &**t);
    }
    if let Some(p) = &m.url_preview {
        d.insert("url_preview", url_preview_to_doc(p));
    }
    put_opt_int(&mut d, "thread_id", m.thread_id.map(|t| t.0));
    put_opt_int(&mut d, "last_reply_at", m.last_reply_at.map(|t| t.0));
    if let Some(f) = &m.forwarded_from {
        d.insert(
            "forwarded_from",
            doc! {
                "message_id": f.message_id.0,
                "room_id": f.room_id.0,
                "sender_id": f.sender_id.0,
            },
        );
    }
    if let Some(p) = &m.pin {
        d.insert("pin", pin_to_doc(p));
    }
    put_opt_int(&mut d, "updated_at", m.updated_at.map(|t| t.0));
    d
}

/// The message stored in `d`.
pub fn message_from_doc(d: &Document) -> Result<Message, PortError> {
    let reply_count = int(d, "reply_count")?;
    Ok(Message {
        id: MessageId(int(d, "_id")?),
        room_id: RoomId(int(d, "room_id")?),
        seq: Seq(int(d, "seq")?),
        sender_id: UserId(int(d, "sender_id")?),
        temp_id: opt_string(d, "temp_id")?.map(Into::into),
        message_type: parsed(d, "message_type", MessageType::parse)?,
        text: string(d, "text")?.into(),
        is_edited: boolean(d, "is_edited")?,
        is_deleted: boolean(d, "is_deleted")?,
        url_preview: opt_doc(d, "url_preview")?
            .map(url_preview_from_doc)
            .transpose()?,
        thread_id: opt_int(d, "thread_id")?.map(MessageId),
        reply_count: u32::try_from(reply_count)
            .map_err(|_| malformed(format!("reply_count out of range: {reply_count}")))?,
        last_reply_at: opt_int(d, "last_reply_at")?.map(Timestamp),
        forwarded_from: opt_doc(d, "forwarded_from")?
            .map(|f| -> Result<ForwardedFrom, PortError> {
                Ok(ForwardedFrom {
                    message_id: MessageId(int(f, "message_id")?),
                    room_id: RoomId(int(f, "room_id")?),
                    sender_id: UserId(int(f, "sender_id")?),
                })
            })
            .transpose()?,
        mentions: match d.get("mentions") {
            None => Vec::new(),
            Some(b) => ints(b, "mentions")?.into_iter().map(UserId).collect(),
        },
        reactions: opt_doc(d, "reactions")?
            .map(reactions_from_doc)
            .transpose()?
            .unwrap_or_default(),
        pin: opt_doc(d, "pin")?
            .map(|p| -> Result<Pin, PortError> {
                Ok(Pin {
                    pinned_by: UserId(int(p, "pinned_by")?),
                    pinned_at: Timestamp(int(p, "pinned_at")?),
                })
            })
            .transpose()?,
        created_at: Timestamp(int(d, "created_at")?),
        updated_at: opt_int(d, "updated_at")?.map(Timestamp),
        status: parsed(d, "status", parse_status)?,
    })
}

// ---- unread counts ------------------------------------------------------------------------

/// How the answer of the single unread-count aggregation maps back to the inputs.
///
/// The aggregation matches, per distinct room, the messages after the room's LOWEST cursor
/// (an `$or` of `{room_id, seq > cursor}` clauses, each served by the `(room_id, seq)`
/// index) that are not deleted and not sent by the user, then groups by room: `n` counts
/// them all, and an extra accumulator `x<j>` counts those after each higher cursor `j` of
/// the same room (only when a room is asked for with several cursors).
#[derive(Clone, Debug, PartialEq)]
pub struct UnreadPlan {
    /// The aggregation pipeline (run on `messages`).
    pub pipeline: Vec<Document>,
    /// For each input, in input order: its room and the field of that room's group
    /// document holding its count (`"n"` or `"x<j>"`).
    pub fields: Vec<(RoomId, String)>,
}

/// Builds the single aggregation counting unread messages for every `(room, cursor)`.
pub fn unread_plan(user: UserId, cursors: &[(RoomId, Seq)]) -> UnreadPlan {
    let mut min: Vec<(RoomId, Seq)> = Vec::new();
    for (room, cursor) in cursors {
        match min.iter_mut().find(|(r, _)| r == room) {
            Some((_, c)) => *c = (*c).min(*cursor),
            None => min.push((*room, *cursor)),
        }
    }
    let mut extra: Vec<(RoomId, Seq)> = Vec::new();
    let mut fields = Vec::with_capacity(cursors.len());
    for (room, cursor) in cursors {
        let lowest = min.iter().find(|(r, _)| r == room).map(|(_, c)| *c);
        if lowest == Some(*cursor) {
            fields.push((*room, "n".to_owned()));
            continue;
        }
        let j = match extra.iter().position(|e| e == &(*room, *cursor)) {
            Some(j) => j,
            None => {
                extra.push((*room, *cursor));
                extra.len() - 1
            }
        };
        fields.push((*room, format!("x{j}")));
    }
    let or: Vec<Bson> = min
        .iter()
        .map(|(room, cursor)| {
            Bson::Document(doc! { "room_id": room.0, "seq": { "$gt": cursor.0 } })
        })
        .collect();
    let mut group = doc! { "_id": "$room_id", "n": { "$sum": 1 } };
    for (j, (room, cursor)) in extra.iter().enumerate() {
        group.insert(
            format!("x{j}"),
            doc! { "$sum": { "$cond": [
                { "$and": [
                    { "$eq": ["$room_id", room.0] },
                    { "$gt": ["$seq", cursor.0] },
                ] },
                1,
                0,
            ] } },
        );
    }
    UnreadPlan {
        pipeline: vec![
            doc! { "$match": {
                "$or": or,
                "is_deleted": false,
                "sender_id": { "$ne": user.0 },
            } },
            doc! { "$group": group },
        ],
        fields,
    }
}

impl UnreadPlan {
    /// The count of each input, in input order, from the aggregation's group documents
    /// (a room without any unread message has no group document: 0).
    pub fn counts(&self, groups: &[Document]) -> Result<Vec<u64>, PortError> {
        self.fields
            .iter()
            .map(|(room, field)| {
                let Some(g) = groups
                    .iter()
                    .find(|g| g.get("_id").and_then(bson_int) == Some(room.0))
                else {
                    return Ok(0);
                };
                let n = opt_int(g, field)?.unwrap_or(0);
                u64::try_from(n).map_err(|_| malformed(format!("negative count {n}")))
            })
            .collect()
    }
}
