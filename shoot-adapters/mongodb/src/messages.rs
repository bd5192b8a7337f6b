//! [`MessageStore`] for [`MongoStore`].

use std::collections::HashSet;

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::UpdateModifications;
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{HistoryQuery, Message, MessageStore, Pin};
use shoot_core::time::Timestamp;
use shoot_core::{PortError, PortResult};

use crate::codec::{self, message_from_doc, message_to_doc, reaction_path, unread_plan};
use crate::error::{all_docs, classify, skipped_duplicates};
use crate::{IX_MESSAGES_ROOM_SEQ, MongoStore};

/// A page size as the driver's limit; `None` for 0 (the driver reads 0 as "no limit", so
/// callers return an empty page without querying).
fn limit(n: usize) -> Option<i64> {
    (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX))
}

impl MongoStore {
    async fn find_messages(
        &self,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> PortResult<Vec<Message>> {
        let mut find = self.messages.find(filter).sort(sort);
        if let Some(n) = limit {
            find = find.limit(n);
        }
        let docs = all_docs(find).await?;
        docs.iter().map(message_from_doc).collect()
    }

    async fn message_exists(&self, id: MessageId) -> PortResult<bool> {
        let found = self
            .messages
            .find_one(doc! { "_id": id.0 })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(classify)?;
        Ok(found.is_some())
    }

    /// Updates the message `id`; `NotFound` if it does not exist.
    async fn update_existing(
        &self,
        id: MessageId,
        update: impl Into<UpdateModifications>,
    ) -> PortResult<()> {
        let done = self
            .messages
            .update_one(doc! { "_id": id.0 }, update)
            .await
            .map_err(classify)?;
        if done.matched_count == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    /// Brings `reply_count` and `last_reply_at` of the thread roots up to date from the
    /// replies actually stored: one aggregation counting the replies of every root, then
    /// one `$max` update per root. `$max` makes concurrent and repeated runs converge on the
    /// true count (replies are never removed, so the count only grows), and recounting —
    /// rather than `$inc` per new reply — means a batch interrupted after its insert is
    /// repaired by the retry even though its replies are then duplicates.
    async fn refresh_reply_counts(&self, roots: &[MessageId]) -> PortResult<()> {
        if roots.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = roots.iter().map(|r| Bson::Int64(r.0)).collect();
        let groups = all_docs(self.messages.aggregate([
            doc! { "$match": { "thread_id": { "$in": ids } } },
            // Only indexed fields: the recount is served by `ix_messages_thread` alone.
            doc! { "$project": { "_id": 0, "thread_id": 1, "created_at": 1 } },
            doc! { "$group": {
                "_id": "$thread_id",
                "n": { "$sum": 1 },
                "last": { "$max": "$created_at" },
            } },
        ]))
        .await?;
        for g in &groups {
            let root = codec::int(g, "_id")?;
            let n = codec::int(g, "n")?;
            let last = codec::int(g, "last")?;
            self.messages
                .update_one(
                    doc! { "_id": root },
                    doc! { "$max": { "reply_count": n, "last_reply_at": last } },
                )
                .await
                .map_err(classify)?;
        }
        Ok(())
    }
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn insert_messages(&self, messages: &[Message]) -> PortResult<Vec<MessageId>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<Document> = messages.iter().map(message_to_doc).collect();
        // Unordered: every document is attempted; the unique indexes on `_id` and
        // `(sender_id, temp_id)` reject the ones already stored (also under concurrent
        // inserts of the same message from several instances).
        let skipped = match self.messages.insert_many(docs).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(e) => skipped_duplicates(e)?,
        };
        for (i, message) in &skipped {
            if message.contains(IX_MESSAGES_ROOM_SEQ) {
                if let Some(m) = messages.get(*i) {
                    tracing::warn!(
                        message_id = m.id.0,
                        room_id = m.room_id.0,
                        seq = m.seq.0,
                        "message skipped: its seq is already taken by another message"
                    );
                }
            }
        }
        let skipped: HashSet<usize> = skipped.into_iter().map(|(i, _)| i).collect();
        let inserted: Vec<MessageId> = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.contains(i))
            .map(|(_, m)| m.id)
            .collect();
        let mut roots: Vec<MessageId> = messages.iter().filter_map(|m| m.thread_id).collect();
        roots.sort();
        roots.dedup();
        self.refresh_reply_counts(&roots).await?;
        Ok(inserted)
    }

    async fn get_message(&self, id: MessageId) -> PortResult<Option<Message>> {
        let found = self
            .messages
            .find_one(doc! { "_id": id.0 })
            .await
            .map_err(classify)?;
        found.as_ref().map(message_from_doc).transpose()
    }

    async fn get_messages(&self, ids: &[MessageId]) -> PortResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = ids.iter().map(|i| Bson::Int64(i.0)).collect();
        self.find_messages(doc! { "_id": { "$in": ids } }, doc! { "_id": 1 }, None)
            .await
    }

    async fn find_by_temp_id(&self, sender: UserId, temp_id: &str) -> PortResult<Option<Message>> {
        let found = self
            .messages
            .find_one(doc! {
                "sender_id": sender.0,
                "temp_id": { "$eq": temp_id, "$type": "string" },
            })
            .await
            .map_err(classify)?;
        found.as_ref().map(message_from_doc).transpose()
    }

    /// One `find` (per 1 000 distinct keys) with an `$or` of `(sender_id, temp_id)` equalities (each served by the
    /// unique `(sender_id, temp_id)` index).
    async fn find_by_temp_ids(&self, keys: &[(UserId, &str)]) -> PortResult<Vec<Message>> {
        let mut distinct: Vec<(i64, &str)> = keys.iter().map(|(s, t)| (s.0, *t)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut out = Vec::new();
        // Chunked only to keep the filter document small for huge batches.
        for chunk in distinct.chunks(1000) {
            let any: Vec<Document> = chunk
                .iter()
                .map(|(sender, temp_id)| {
                    doc! {
                        "sender_id": *sender,
                        "temp_id": { "$eq": *temp_id, "$type": "string" },
                    }
                })
                .collect();
            out.extend(
                self.find_messages(doc! { "$or": any }, doc! { "_id": 1 }, None)
                    .await?,
            );
        }
        Ok(out)
    }

    async fn history(&self, room: RoomId, query: HistoryQuery) -> PortResult<Vec<Message>> {
        let Some(n) = limit(query.limit) else {
            return Ok(Vec::new());
        };
        let mut seq = Document::new();
        if let Some(b) = query.before {
            seq.insert("$lt", b.0);
        }
        if let Some(a) = query.after {
            seq.insert("$gt", a.0);
        }
        let mut filter = doc! { "room_id": room.0 };
        if !seq.is_empty() {
            filter.insert("seq", seq);
        }
        if query.after.is_some() {
            // The oldest page after the cursor.
            self.find_messages(filter, doc! { "seq": 1 }, Some(n)).await
        } else {
            // The newest page (before the cursor), returned oldest first.
            let mut page = self
                .find_messages(filter, doc! { "seq": -1 }, Some(n))
                .await?;
            page.reverse();
            Ok(page)
        }
    }

    async fn update_message(&self, message: &Message) -> PortResult<()> {
        let mentions: Vec<Bson> = message.mentions.iter().map(|u| Bson::Int64(u.0)).collect();
        let mut set = doc! {
            "text": &*message.text,
            "is_edited": message.is_edited,
            "is_deleted": message.is_deleted,
            "mentions": mentions,
        };
        let mut unset = Document::new();
        match &message.url_preview {
            Some(p) => set.insert("url_preview", codec::url_preview_to_doc(p)),
            None => unset.insert("url_preview", ""),
        };
        match message.updated_at {
            Some(t) => set.insert("updated_at", t.0),
            None => unset.insert("updated_at", ""),
        };
        let mut update = doc! { "$set": set };
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        self.update_existing(message.id, update).await
    }

    async fn add_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let path = reaction_path(code);
        // Atomic per document: the filter admits the update only while `user` is not in the
        // code's list, so of concurrent identical calls exactly one matches.
        let done = self
            .messages
            .update_one(
                doc! { "_id": message.0, path.as_str(): { "$ne": user.0 } },
                doc! {
                    "$addToSet": { path.as_str(): user.0 },
                    "$set": { "updated_at": at.0 },
                },
            )
            .await
            .map_err(classify)?;
        if done.matched_count > 0 {
            return Ok(true);
        }
        if self.message_exists(message).await? {
            Ok(false)
        } else {
            Err(PortError::NotFound)
        }
    }

    async fn remove_reaction(
        &self,
        message: MessageId,
        code: &str,
        user: UserId,
        at: Timestamp,
    ) -> PortResult<bool> {
        let path = reaction_path(code);
        let done = self
            .messages
            .update_one(
                doc! { "_id": message.0, path.as_str(): user.0 },
                doc! {
                    "$pull": { path.as_str(): user.0 },
                    "$set": { "updated_at": at.0 },
                },
            )
            .await
            .map_err(classify)?;
        if done.matched_count == 0 {
            return if self.message_exists(message).await? {
                Ok(false)
            } else {
                Err(PortError::NotFound)
            };
        }
        // Drop the code if its list is now empty. Conditional, so a reaction added in
        // between keeps the code; readers skip empty lists meanwhile.
        self.messages
            .update_one(
                doc! { "_id": message.0, path.as_str(): { "$size": 0 } },
                doc! { "$unset": { path.as_str(): "" } },
            )
            .await
            .map_err(classify)?;
        Ok(true)
    }

    async fn set_pin(&self, message: MessageId, pin: Option<Pin>, at: Timestamp) -> PortResult<()> {
        let update = match pin {
            Some(p) => doc! { "$set": { "pin": codec::pin_to_doc(&p), "updated_at": at.0 } },
            None => doc! { "$unset": { "pin": "" }, "$set": { "updated_at": at.0 } },
        };
        self.update_existing(message, update).await
    }

    async fn pinned(&self, room: RoomId) -> PortResult<Vec<Message>> {
        self.find_messages(
            doc! { "room_id": room.0, "pin": { "$exists": true } },
            doc! { "pin.pinned_at": -1, "seq": -1 },
            None,
        )
        .await
    }

    async fn thread_replies(
        &self,
        root: MessageId,
        after: Option<Seq>,
        limit_n: usize,
    ) -> PortResult<Vec<Message>> {
        let Some(n) = limit(limit_n) else {
            return Ok(Vec::new());
        };
        let mut filter = doc! { "thread_id": root.0 };
        if let Some(a) = after {
            filter.insert("seq", doc! { "$gt": a.0 });
        }
        self.find_messages(filter, doc! { "seq": 1 }, Some(n)).await
    }

    async fn threads(&self, room: RoomId, limit_n: usize) -> PortResult<Vec<Message>> {
        let Some(n) = limit(limit_n) else {
            return Ok(Vec::new());
        };
        self.find_messages(
            doc! { "room_id": room.0, "reply_count": { "$gt": 0 } },
            doc! { "last_reply_at": -1, "seq": -1 },
            Some(n),
        )
        .await
    }

    async fn search(&self, room: RoomId, query: &str, limit_n: usize) -> PortResult<Vec<Message>> {
        let Some(n) = limit(limit_n) else {
            return Ok(Vec::new());
        };
        self.find_messages(
            doc! {
                "room_id": room.0,
                "is_deleted": false,
                "text": { "$regex": codec::escape_regex(query), "$options": "i" },
            },
            doc! { "seq": -1 },
            Some(n),
        )
        .await
    }

    async fn unread_counts(&self, user: UserId, cursors: &[(RoomId, Seq)]) -> PortResult<Vec<u64>> {
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let plan = unread_plan(user, cursors);
        let groups = all_docs(self.messages.aggregate(plan.pipeline.clone())).await?;
        plan.counts(&groups)
    }

    async fn max_seq(&self, room: RoomId) -> PortResult<Seq> {
        let found = self
            .messages
            .find_one(doc! { "room_id": room.0 })
            .sort(doc! { "seq": -1 })
            .projection(doc! { "seq": 1 })
            .await
            .map_err(classify)?;
        match found {
            Some(d) => Ok(Seq(codec::int(&d, "seq")?)),
            None => Ok(Seq::ZERO),
        }
    }

    async fn max_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<i64> = rooms.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let ids: Vec<Bson> = ids.into_iter().map(Bson::Int64).collect();
        // Sorted along `ix_messages_room_seq` (backwards) and grouped with `$first`: the
        // server can answer it with one index entry per room (a DISTINCT_SCAN) instead of
        // reading every message of every room, as `$max` would.
        let groups = all_docs(self.messages.aggregate([
            doc! { "$match": { "room_id": { "$in": ids } } },
            doc! { "$sort": { "room_id": -1, "seq": -1 } },
            doc! { "$group": { "_id": "$room_id", "seq": { "$first": "$seq" } } },
        ]))
        .await?;
        groups
            .iter()
            .map(|g| Ok((RoomId(codec::int(g, "_id")?), Seq(codec::int(g, "seq")?))))
            .collect()
    }
}
