//! Message use cases besides sending: reading, history, edits, deletes, reactions, pins,
//! threads, forwarding and search.

use std::time::Duration;

use crate::engine::ChatEngine;
use crate::engine::lock::with_lock;
use crate::engine::pipeline::{SendMessage, SendReceipt};
use crate::error::{Error, ErrorCode, PortError, Result, fail};
use crate::events::{Event, MessageChange, Topic};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::limits::ReactionType;
use crate::messages::{ForwardedFrom, HistoryQuery, Message, Pin, rules};
use crate::notifications::NotificationType;
use crate::rooms::Participant;

/// Lease of the per-room pin lock.
const PIN_LOCK_TTL: Duration = Duration::from_secs(5);
/// Attempts to take the pin lock.
const PIN_LOCK_ATTEMPTS: u32 = 8;
/// Most replies read to summarise one thread (participants are counted over these).
const THREAD_SUMMARY_REPLIES: usize = 10_000;

/// A message with how many participants (other than the sender) have read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    /// The message.
    pub message: Message,
    /// Participants other than the sender whose read cursor reached it.
    pub read_count: u32,
}

/// A thread: its root and a page of replies, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadDetail {
    /// Root message.
    pub root: Message,
    /// Replies.
    pub replies: Vec<Message>,
}

/// A thread in a room's thread list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSummary {
    /// Root message.
    pub root: Message,
    /// Number of replies.
    pub reply_count: u32,
    /// Latest reply.
    pub last_reply: Option<Message>,
    /// Distinct repliers, in order of first reply.
    pub participants: Vec<UserId>,
}

fn not_found() -> Error {
    Error::new(ErrorCode::MessageNotFound, "message not found")
}

/// The records of `messages` with read counts from `participants`.
pub(crate) fn records(messages: Vec<Message>, participants: &[Participant]) -> Vec<MessageRecord> {
    messages
        .into_iter()
        .map(|m| MessageRecord {
            read_count: rules::read_count(&m, participants),
            message: m,
        })
        .collect()
}

impl ChatEngine {
    /// A message and the caller's participant row in its room; `MESSAGE_NOT_FOUND` when it
    /// does not exist or the caller is not in its room.
    pub(crate) async fn visible_message(
        &self,
        actor: UserId,
        id: MessageId,
    ) -> Result<(Message, Participant)> {
        let message = self
            .p()
            .messages
            .get_message(id)
            .await?
            .ok_or_else(not_found)?;
        let me = self
            .p()
            .rooms
            .participant(message.room_id, actor)
            .await?
            .ok_or_else(not_found)?;
        Ok((message, me))
    }

    /// One message with its read count.
    pub async fn message(&self, actor: UserId, id: MessageId) -> Result<MessageRecord> {
        let (message, _) = self.visible_message(actor, id).await?;
        let participants = self.p().rooms.participants(message.room_id).await?;
        Ok(MessageRecord {
            read_count: rules::read_count(&message, &participants),
            message,
        })
    }

    /// A page of a room's history, oldest → newest (limit clamped to the configured maximum;
    /// 0 means the default).
    pub async fn history(
        &self,
        actor: UserId,
        room: RoomId,
        query: HistoryQuery,
    ) -> Result<Vec<MessageRecord>> {
        self.require_participant(actor, room).await?;
        let limits = self.limits();
        let limit = match query.limit {
            0 => limits.history_default_limit,
            n => n.min(limits.history_max_limit),
        };
        let messages = self
            .p()
            .messages
            .history(room, HistoryQuery { limit, ..query })
            .await?;
        let participants = self.p().rooms.participants(room).await?;
        Ok(records(messages, &participants))
    }

    /// Edits the caller's own message within the edit window.
    pub async fn edit_message(&self, actor: UserId, id: MessageId, text: &str) -> Result<Message> {
        let (message, _) = self.visible_message(actor, id).await?;
        let now = self.now();
        rules::check_edit(&message, actor, now, self.limits().edit_window)?;
        let text = rules::validate_content(text, self.limits())?;
        let message = Message {
            text: text.into(),
            is_edited: true,
            updated_at: Some(now),
            ..message
        };
        self.store_update(&message).await?;
        self.publish_change(&message, MessageChange::Edited, actor)
            .await;
        Ok(message)
    }

    /// Deletes a message (sender, or room OWNER/ADMIN): it stays as a tombstone with empty text.
    /// Deleting a deleted message returns it unchanged.
    pub async fn delete_message(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let (message, me) = self.visible_message(actor, id).await?;
        rules::check_delete(&message, actor, me.role)?;
        if message.is_deleted {
            return Ok(message);
        }
        let now = self.now();
        if message.pin.is_some() {
            self.p().messages.set_pin(id, None, now).await?;
        }
        let message = Message {
            text: "".into(),
            is_deleted: true,
            url_preview: None,
            mentions: Vec::new(),
            pin: None,
            updated_at: Some(now),
            ..message
        };
        self.store_update(&message).await?;
        // A deleted message no longer counts as unread: recount the room's next updates.
        self.runtime().workers.unread.forget_room(message.room_id);
        self.publish_change(&message, MessageChange::Deleted, actor)
            .await;
        Ok(message)
    }

    async fn store_update(&self, message: &Message) -> Result<()> {
        match self.p().messages.update_message(message).await {
            Err(PortError::NotFound) => Err(not_found()),
            other => Ok(other?),
        }
    }

    async fn publish_change(&self, message: &Message, change: MessageChange, by: UserId) {
        let event = Event::MessageChanged {
            message: message.clone(),
            change,
            by,
        };
        self.publish(Topic::Room(message.room_id), event).await;
    }

    async fn reload(&self, id: MessageId) -> Result<Message> {
        self.p()
            .messages
            .get_message(id)
            .await?
            .ok_or_else(not_found)
    }

    /// The configured reactions.
    pub async fn reaction_types(&self) -> Result<Vec<ReactionType>> {
        Ok(self.limits().reactions.clone())
    }

    /// Adds the caller's reaction `code` (several different codes per user are allowed);
    /// notifies the author (not for their own reactions).
    pub async fn add_reaction(&self, actor: UserId, id: MessageId, code: &str) -> Result<Message> {
        rules::check_reaction(code, self.limits())?;
        let (message, _) = self.visible_message(actor, id).await?;
        if message.is_deleted {
            return fail(ErrorCode::MessageDeleted, "the message is deleted");
        }
        let added = match self
            .p()
            .messages
            .add_reaction(id, code, actor, self.now())
            .await
        {
            Err(PortError::NotFound) => return Err(not_found()),
            other => other?,
        };
        let message = self.reload(id).await?;
        if added {
            let change = MessageChange::Reaction {
                code: code.to_owned(),
                user_id: actor,
                added: true,
            };
            self.publish_change(&message, change, actor).await;
            if message.sender_id != actor {
                let n = self.new_notification(
                    message.sender_id,
                    NotificationType::Reaction,
                    Some(actor),
                    Some(message.room_id),
                    Some(id),
                    format!("reacted {code} to your message"),
                );
                self.notify(vec![n]).await;
            }
        }
        Ok(message)
    }

    /// Removes the caller's reaction `code` (a no-op if absent).
    pub async fn remove_reaction(
        &self,
        actor: UserId,
        id: MessageId,
        code: &str,
    ) -> Result<Message> {
        rules::check_reaction(code, self.limits())?;
        self.visible_message(actor, id).await?;
        let removed = match self
            .p()
            .messages
            .remove_reaction(id, code, actor, self.now())
            .await
        {
            Err(PortError::NotFound) => return Err(not_found()),
            other => other?,
        };
        let message = self.reload(id).await?;
        if removed {
            let change = MessageChange::Reaction {
                code: code.to_owned(),
                user_id: actor,
                added: false,
            };
            self.publish_change(&message, change, actor).await;
        }
        Ok(message)
    }

    async fn check_can_pin(&self, message: &Message, me: &Participant) -> Result<()> {
        let room = self
            .p()
            .rooms
            .get_room(message.room_id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::RoomNotFound, "room not found"))?;
        rules::check_pin_permission(room.room_type, me.role)
    }

    /// Pins a message (OWNER/ADMIN, anyone in a direct room; at most `pins_per_room`).
    /// Pinning a pinned message is a no-op.
    pub async fn pin_message(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let (message, me) = self.visible_message(actor, id).await?;
        self.check_can_pin(&message, &me).await?;
        if message.is_deleted {
            return fail(ErrorCode::MessageDeleted, "the message is deleted");
        }
        let room = message.room_id;
        let key = format!("lock:pins:{room}");
        let p = self.p();
        let changed = with_lock(
            &*p.locks,
            &*p.clock,
            &key,
            PIN_LOCK_TTL,
            PIN_LOCK_ATTEMPTS,
            || async {
                let current = self.reload(id).await?;
                if current.pin.is_some() {
                    return Ok(false);
                }
                let pinned = p.messages.pinned(room).await?;
                if pinned.len() >= self.limits().pins_per_room {
                    return fail(
                        ErrorCode::PinLimitExceeded,
                        format!(
                            "at most {} pinned messages per room",
                            self.limits().pins_per_room
                        ),
                    );
                }
                let now = self.now();
                p.messages
                    .set_pin(
                        id,
                        Some(Pin {
                            pinned_by: actor,
                            pinned_at: now,
                        }),
                        now,
                    )
                    .await?;
                Ok(true)
            },
        )
        .await?;
        let message = self.reload(id).await?;
        if changed {
            self.publish_change(&message, MessageChange::Pinned, actor)
                .await;
        }
        Ok(message)
    }

    /// Unpins a message (same permission as pinning); a no-op when not pinned.
    pub async fn unpin_message(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let (message, me) = self.visible_message(actor, id).await?;
        self.check_can_pin(&message, &me).await?;
        let key = format!("lock:pins:{}", message.room_id);
        let p = self.p();
        let changed = with_lock(
            &*p.locks,
            &*p.clock,
            &key,
            PIN_LOCK_TTL,
            PIN_LOCK_ATTEMPTS,
            || async {
                let current = self.reload(id).await?;
                if current.pin.is_none() {
                    return Ok(false);
                }
                p.messages.set_pin(id, None, self.now()).await?;
                Ok(true)
            },
        )
        .await?;
        let message = self.reload(id).await?;
        if changed {
            self.publish_change(&message, MessageChange::Unpinned, actor)
                .await;
        }
        Ok(message)
    }

    /// Pins an unpinned message or unpins a pinned one.
    pub async fn toggle_pin(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let (message, _) = self.visible_message(actor, id).await?;
        if message.pin.is_some() {
            self.unpin_message(actor, id).await
        } else {
            self.pin_message(actor, id).await
        }
    }

    /// Pinned messages of a room, most recently pinned first.
    pub async fn pinned_messages(&self, actor: UserId, room: RoomId) -> Result<Vec<Message>> {
        self.require_participant(actor, room).await?;
        Ok(self.p().messages.pinned(room).await?)
    }

    /// A thread: the root (a reply's id resolves to its root) and replies after `after`.
    pub async fn thread(
        &self,
        actor: UserId,
        root_id: MessageId,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<ThreadDetail> {
        let (mut root, _) = self.visible_message(actor, root_id).await?;
        if let Some(real_root) = root.thread_id {
            root = self.reload(real_root).await?;
        }
        let limits = self.limits();
        let limit = if limit == 0 {
            limits.history_default_limit
        } else {
            limit.min(limits.history_max_limit)
        };
        let replies = self
            .p()
            .messages
            .thread_replies(root.id, after, limit)
            .await?;
        Ok(ThreadDetail { root, replies })
    }

    /// Threads of a room, most recent reply first, with reply count, last reply and repliers.
    pub async fn threads(
        &self,
        actor: UserId,
        room: RoomId,
        limit: usize,
    ) -> Result<Vec<ThreadSummary>> {
        self.require_participant(actor, room).await?;
        let limits = self.limits();
        let limit = if limit == 0 {
            limits.history_default_limit
        } else {
            limit.min(limits.history_max_limit)
        };
        let roots = self.p().messages.threads(room, limit).await?;
        let mut out = Vec::with_capacity(roots.len());
        for root in roots {
            let replies = self
                .p()
                .messages
                .thread_replies(root.id, None, THREAD_SUMMARY_REPLIES)
                .await?;
            out.push(thread_summary(root, replies));
        }
        Ok(out)
    }

    /// Forwards a message the caller can see to rooms the caller is in; each copy keeps
    /// `forwarded_from` and goes through the send pipeline.
    pub async fn forward_message(
        &self,
        actor: UserId,
        message_id: MessageId,
        target_rooms: Vec<RoomId>,
        additional_text: Option<String>,
    ) -> Result<Vec<SendReceipt>> {
        let (source, _) = self.visible_message(actor, message_id).await?;
        if source.is_deleted {
            return fail(ErrorCode::MessageDeleted, "the message is deleted");
        }
        let mut targets: Vec<RoomId> = Vec::new();
        for t in target_rooms {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        if targets.is_empty() {
            return fail(ErrorCode::ValidationFailed, "no target room");
        }
        for t in &targets {
            self.require_participant(actor, *t).await?;
        }
        let origin = source.forwarded_from.unwrap_or(ForwardedFrom {
            message_id: source.id,
            room_id: source.room_id,
            sender_id: source.sender_id,
        });
        let text = rules::forward_text(&source.text, additional_text.as_deref());
        let now = self.now();
        let mut receipts = Vec::with_capacity(targets.len());
        for t in targets {
            let cmd = SendMessage {
                room_id: t,
                text: text.clone(),
                message_type: source.message_type,
                temp_id: format!("fwd:{}:{}:{}", source.id, t, now.as_millis()),
                thread_id: None,
                mentions: Vec::new(),
            };
            receipts.push(self.send_with_origin(actor, cmd, Some(origin)).await?);
        }
        Ok(receipts)
    }

    /// Non-deleted messages of a room containing `q`, newest first.
    pub async fn search_messages(
        &self,
        actor: UserId,
        room: RoomId,
        q: &str,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.require_participant(actor, room).await?;
        let q = q.trim();
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let limits = self.limits();
        let limit = if limit == 0 {
            limits.history_default_limit
        } else {
            limit.min(limits.history_max_limit)
        };
        Ok(self.p().messages.search(room, q, limit).await?)
    }
}

/// Summary of a thread from its root and all its replies (oldest first).
pub fn thread_summary(root: Message, replies: Vec<Message>) -> ThreadSummary {
    let mut participants: Vec<UserId> = Vec::new();
    for r in &replies {
        if !participants.contains(&r.sender_id) {
            participants.push(r.sender_id);
        }
    }
    ThreadSummary {
        reply_count: root.reply_count.max(replies.len() as u32),
        last_reply: replies.last().cloned(),
        participants,
        root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::MessageStatus;
    use crate::time::Timestamp;

    fn msg(id: i64, sender: i64) -> Message {
        Message {
            seq: Seq(id),
            status: MessageStatus::Saved,
            ..Message::new(MessageId(id), RoomId(1), UserId(sender), "x", Timestamp(0))
        }
    }

    fn check(
        replies: &[(i64, i64)],
        expect_count: u32,
        expect_last: Option<i64>,
        expect_people: &[i64],
    ) {
        let root = Message {
            reply_count: replies.len() as u32,
            ..msg(1, 9)
        };
        let rs: Vec<_> = replies
            .iter()
            .map(|&(id, s)| Message {
                thread_id: Some(MessageId(1)),
                ..msg(id, s)
            })
            .collect();
        let s = thread_summary(root, rs);
        assert_eq!(s.reply_count, expect_count);
        assert_eq!(s.last_reply.map(|m| m.id.0), expect_last);
        assert_eq!(
            s.participants,
            expect_people.iter().map(|&u| UserId(u)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn summaries() {
        check(&[], 0, None, &[]);
        check(&[(2, 3)], 1, Some(2), &[3]);
        check(&[(2, 3), (3, 4), (4, 3)], 3, Some(4), &[3, 4]);
    }

    #[test]
    fn records_count_reads() {
        let ps = vec![Participant {
            room_id: RoomId(1),
            user_id: UserId(2),
            role: crate::rooms::Role::Member,
            joined_at: Timestamp(0),
            last_read_seq: Seq(1),
            favorite: false,
            favorited_at: None,
        }];
        let r = records(vec![msg(1, 1), msg(2, 1)], &ps);
        assert_eq!(
            r.iter().map(|r| r.read_count).collect::<Vec<_>>(),
            vec![1, 0]
        );
    }
}
