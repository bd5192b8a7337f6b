//! [`RoomStore`] for [`MongoStore`].

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;
use shoot_core::ids::{RoomId, Seq, UserId};
use shoot_core::rooms::{Participant, Role, Room, RoomActivity, RoomStore};
use shoot_core::time::Timestamp;
use shoot_core::{PortError, PortResult};

use crate::MongoStore;
use crate::codec::{self, direct_key, participant_from_doc, participant_to_doc, room_from_doc};
use crate::error::{all_docs, classify, skipped_duplicates};

/// How often `create_direct_room` retries when the pair's room vanished between the
/// duplicate-key error and the read (deleted concurrently).
const DIRECT_ROOM_ATTEMPTS: usize = 5;

impl MongoStore {
    /// The participants matching `filter`, in `sort` order if one is given.
    async fn find_participants(
        &self,
        filter: Document,
        sort: Option<Document>,
    ) -> PortResult<Vec<Participant>> {
        let mut find = self.participants.find(filter);
        if let Some(sort) = sort {
            find = find.sort(sort);
        }
        let docs = all_docs(find).await?;
        docs.iter().map(participant_from_doc).collect()
    }

    /// Inserts the participants of `room`, skipping those already present (duplicate key on
    /// `(room_id, user_id)`); returns the user ids actually inserted, in input order.
    async fn insert_participants(
        &self,
        room: RoomId,
        participants: &[&Participant],
    ) -> PortResult<Vec<UserId>> {
        if participants.is_empty() {
            return Ok(Vec::new());
        }
        let docs: Vec<Document> = participants
            .iter()
            .map(|p| participant_to_doc(room, p))
            .collect();
        let skipped = match self.participants.insert_many(docs).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(e) => skipped_duplicates(e)?,
        };
        Ok(participants
            .iter()
            .enumerate()
            .filter(|(i, _)| !skipped.iter().any(|(s, _)| s == i))
            .map(|(_, p)| p.user_id)
            .collect())
    }

    async fn room_by_direct_key(&self, key: &str) -> PortResult<Option<Room>> {
        let found = self
            .rooms
            .find_one(doc! { "direct_key": { "$eq": key, "$type": "string" } })
            .await
            .map_err(classify)?;
        found.as_ref().map(room_from_doc).transpose()
    }

    async fn participant_filter_update(
        &self,
        room: RoomId,
        user: UserId,
        update: impl Into<mongodb::options::UpdateModifications>,
    ) -> PortResult<()> {
        let done = self
            .participants
            .update_one(doc! { "room_id": room.0, "user_id": user.0 }, update)
            .await
            .map_err(classify)?;
        if done.matched_count == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }
}

#[async_trait]
impl RoomStore for MongoStore {
    async fn create_room(&self, room: &Room, participants: &[Participant]) -> PortResult<()> {
        // The room first: if the process dies before its participants are written, the room
        // is unreachable (every look-up of a user's rooms goes through participants) rather
        // than participants pointing at a room that does not exist.
        self.rooms
            .insert_one(codec::room_to_doc(room, None))
            .await
            .map_err(classify)?;
        let refs: Vec<&Participant> = participants.iter().collect();
        self.insert_participants(room.id, &refs).await?;
        Ok(())
    }

    async fn create_direct_room(
        &self,
        room: &Room,
        participants: [&Participant; 2],
    ) -> PortResult<(Room, bool)> {
        let key = direct_key(participants[0].user_id, participants[1].user_id);
        for _ in 0..DIRECT_ROOM_ATTEMPTS {
            // The unique partial index on direct_key lets exactly one insert per pair win,
            // whichever instance it comes from.
            match self
                .rooms
                .insert_one(codec::room_to_doc(room, Some(&key)))
                .await
                .map_err(classify)
            {
                Ok(_) => {
                    self.insert_participants(room.id, &participants).await?;
                    return Ok((room.clone(), true));
                }
                Err(PortError::AlreadyExists {
                    what: "direct_room",
                }) => {
                    if let Some(existing) = self.room_by_direct_key(&key).await? {
                        // Direct rooms cannot be left, so both people are always members:
                        // (re-)insert them, which completes a creation whose writer died (or
                        // is still running) between the room and its participants.
                        self.insert_participants(existing.id, &participants).await?;
                        return Ok((existing, false));
                    }
                    tracing::debug!(key, "direct room deleted concurrently; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(PortError::Conflict(format!(
            "direct room {key} was repeatedly created and deleted concurrently"
        )))
    }

    async fn find_direct_room(&self, a: UserId, b: UserId) -> PortResult<Option<Room>> {
        self.room_by_direct_key(&direct_key(a, b)).await
    }

    async fn get_room(&self, id: RoomId) -> PortResult<Option<Room>> {
        let found = self
            .rooms
            .find_one(doc! { "_id": id.0 })
            .await
            .map_err(classify)?;
        found.as_ref().map(room_from_doc).transpose()
    }

    async fn update_room(&self, room: &Room) -> PortResult<()> {
        let mut set = doc! { "updated_at": room.updated_at.0 };
        let mut unset = Document::new();
        for (field, value) in [("title", &room.title), ("announcement", &room.announcement)] {
            match value {
                Some(v) => set.insert(field, v.clone()),
                None => unset.insert(field, ""),
            };
        }
        let mut update = doc! { "$set": set };
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        let done = self
            .rooms
            .update_one(doc! { "_id": room.id.0 }, update)
            .await
            .map_err(classify)?;
        if done.matched_count == 0 {
            return Err(PortError::NotFound);
        }
        Ok(())
    }

    async fn delete_room(&self, id: RoomId) -> PortResult<bool> {
        // Participants first: an interrupted deletion leaves a room nobody can reach (and
        // that a retry deletes), never participants of a vanished room.
        self.participants
            .delete_many(doc! { "room_id": id.0 })
            .await
            .map_err(classify)?;
        let done = self
            .rooms
            .delete_one(doc! { "_id": id.0 })
            .await
            .map_err(classify)?;
        Ok(done.deleted_count > 0)
    }

    async fn record_activity(&self, activity: &[RoomActivity]) -> PortResult<()> {
        // One conditional single-document update per room: moves forward only, in any order,
        // and a replay is a no-op. A missing (deleted) room is not an error.
        for a in activity {
            self.rooms
                .update_one(
                    doc! { "_id": a.room.0, "last_seq": { "$lt": a.seq.0 } },
                    doc! {
                        "$set": { "last_seq": a.seq.0, "last_message_id": a.message.0 },
                        "$max": { "last_activity_at": a.at.0 },
                    },
                )
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn participants(&self, room: RoomId) -> PortResult<Vec<Participant>> {
        self.find_participants(
            doc! { "room_id": room.0 },
            Some(doc! { "joined_at": 1, "user_id": 1 }),
        )
        .await
    }

    async fn participants_of(&self, rooms: &[RoomId]) -> PortResult<Vec<Participant>> {
        let mut ids: Vec<i64> = Vec::with_capacity(rooms.len());
        for r in rooms {
            if !ids.contains(&r.0) {
                ids.push(r.0);
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .find_participants(
                doc! { "room_id": { "$in": &ids } },
                Some(doc! { "room_id": 1, "joined_at": 1, "user_id": 1 }),
            )
            .await?;
        let mut by_room: std::collections::HashMap<i64, Vec<Participant>> =
            std::collections::HashMap::with_capacity(ids.len());
        for p in found {
            by_room.entry(p.room_id.0).or_default().push(p);
        }
        Ok(ids
            .iter()
            .filter_map(|id| by_room.remove(id))
            .flatten()
            .collect())
    }

    async fn participant(&self, room: RoomId, user: UserId) -> PortResult<Option<Participant>> {
        let found = self
            .participants
            .find_one(doc! { "room_id": room.0, "user_id": user.0 })
            .await
            .map_err(classify)?;
        found.as_ref().map(participant_from_doc).transpose()
    }

    async fn memberships(&self, pairs: &[(RoomId, UserId)]) -> PortResult<Vec<Participant>> {
        let mut distinct: Vec<(i64, i64)> = pairs.iter().map(|(r, u)| (r.0, u.0)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return Ok(Vec::new());
        }
        let any: Vec<Document> = distinct
            .iter()
            .map(|(room, user)| doc! { "room_id": room, "user_id": user })
            .collect();
        self.find_participants(doc! { "$or": any }, None).await
    }

    async fn add_participants(
        &self,
        room: RoomId,
        participants: &[Participant],
    ) -> PortResult<Vec<UserId>> {
        let exists = self
            .rooms
            .find_one(doc! { "_id": room.0 })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(classify)?;
        if exists.is_none() {
            return Err(PortError::NotFound);
        }
        let refs: Vec<&Participant> = participants.iter().collect();
        self.insert_participants(room, &refs).await
    }

    async fn remove_participant(&self, room: RoomId, user: UserId) -> PortResult<bool> {
        let done = self
            .participants
            .delete_one(doc! { "room_id": room.0, "user_id": user.0 })
            .await
            .map_err(classify)?;
        Ok(done.deleted_count > 0)
    }

    async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> PortResult<()> {
        self.participant_filter_update(room, user, doc! { "$set": { "role": role.as_str() } })
            .await
    }

    async fn rooms_of(&self, user: UserId) -> PortResult<Vec<(Room, Participant)>> {
        // One round trip: the user's participant rows joined with their rooms on `_id`.
        let pipeline = [
            doc! { "$match": { "user_id": user.0 } },
            doc! { "$lookup": {
                "from": "rooms",
                "localField": "room_id",
                "foreignField": "_id",
                "as": "room",
            } },
            doc! { "$unwind": "$room" },
        ];
        let docs = all_docs(self.participants.aggregate(pipeline)).await?;
        docs.iter()
            .map(|d| {
                let room = match d.get("room") {
                    Some(Bson::Document(r)) => room_from_doc(r)?,
                    _ => return Err(PortError::backend("mongodb", "rooms_of: missing room")),
                };
                Ok((room, participant_from_doc(d)?))
            })
            .collect()
    }

    async fn room_ids_of(&self, users: &[UserId]) -> PortResult<Vec<(UserId, RoomId)>> {
        let mut ids: Vec<i64> = users.iter().map(|u| u.0).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .find_participants(doc! { "user_id": { "$in": &ids } }, None)
            .await?;
        Ok(found.into_iter().map(|p| (p.user_id, p.room_id)).collect())
    }

    async fn set_favorite(
        &self,
        room: RoomId,
        user: UserId,
        favorite: bool,
        at: Timestamp,
    ) -> PortResult<()> {
        if favorite {
            // Pipeline update: keeps the original time when already a favourite.
            let update = vec![doc! { "$set": {
                "favorited_at": { "$cond": [
                    { "$eq": ["$favorite", true] },
                    "$favorited_at",
                    at.0,
                ] },
                "favorite": true,
            } }];
            self.participant_filter_update(room, user, update).await
        } else {
            let update = doc! { "$set": { "favorite": false }, "$unset": { "favorited_at": "" } };
            self.participant_filter_update(room, user, update).await
        }
    }

    async fn advance_read_cursor(&self, room: RoomId, user: UserId, seq: Seq) -> PortResult<Seq> {
        let after = self
            .participants
            .find_one_and_update(
                doc! { "room_id": room.0, "user_id": user.0 },
                doc! { "$max": { "last_read_seq": seq.0 } },
            )
            .return_document(ReturnDocument::After)
            .projection(doc! { "last_read_seq": 1 })
            .await
            .map_err(classify)?
            .ok_or(PortError::NotFound)?;
        Ok(Seq(codec::int(&after, "last_read_seq")?))
    }
}
