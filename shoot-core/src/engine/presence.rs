//! Typing indicators, presence (online sessions, active users) and event subscriptions.
//!
//! Presence state lives in the [`EphemeralStore`](crate::ports::EphemeralStore) so that every
//! instance sees it: `presence:online:{user}` (refreshed by heartbeats, expires after
//! `presence_ttl`) is the truth for "online"; `presence:sessions:{user}` counts connected
//! sessions so that only the last disconnect takes a user offline.
//!
//! Active-user lists (`ActiveUsers`) are coalesced per room to one per
//! `active_users_interval` and not broadcast at all in rooms above `active_users_max_room`:
//! a list per connect sent to every member costs O(members²) per room otherwise.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use crate::engine::ChatEngine;
use crate::engine::pipeline::lock;
use crate::error::Result;
use crate::events::{Event, Topic};
use crate::identity::UserStatus;
use crate::ids::{RoomId, UserId};
use crate::ports::{EventStream, UserFeed};
use crate::rooms::Participant;
use crate::time::Timestamp;

static TYPING_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Rooms remembered for active-user coalescing before quiet ones are swept.
const ACTIVE_USERS_SWEEP: usize = 10_000;

/// When a room's active-user list last went out, and whether one is due.
pub(crate) struct ActiveUsersState {
    last: Timestamp,
    scheduled: bool,
}

fn typing_key(room: RoomId, user: UserId) -> String {
    format!("typing:{room}:{user}")
}

fn typing_broadcast_key(room: RoomId, user: UserId) -> String {
    format!("typing:bc:{room}:{user}")
}

fn online_key(user: UserId) -> String {
    format!("presence:online:{user}")
}

fn sessions_key(user: UserId) -> String {
    format!("presence:sessions:{user}")
}

impl ChatEngine {
    /// The caller started or stopped typing in `room`. Broadcast at most once per
    /// `typing_throttle` per (user, room) unless the state changes; typing stops
    /// automatically after `typing_timeout` without a refresh.
    pub async fn typing(&self, actor: UserId, room: RoomId, is_typing: bool) -> Result<()> {
        self.require_participant(actor, room).await?;
        let limits = self.limits();
        let generation = TYPING_GENERATION.fetch_add(1, Ordering::Relaxed);
        {
            let mut map = lock(&self.runtime().typing);
            if is_typing {
                map.insert((actor, room), generation);
            } else {
                map.remove(&(actor, room));
            }
        }
        let eph = &self.p().ephemeral;
        let key = typing_key(room, actor);
        if is_typing {
            eph.set(&key, "1", Some(limits.typing_timeout)).await?;
        } else {
            eph.delete(&key).await?;
        }
        if self.typing_should_broadcast(actor, room, is_typing).await? {
            self.publish_typing(actor, room, is_typing).await;
        }
        if is_typing {
            let engine = self.clone();
            // The timer starts now, not when the spawned task first runs.
            let timer = self.p().clock.sleep(limits.typing_timeout);
            self.p().spawner.spawn(Box::pin(async move {
                timer.await;
                engine.typing_expired(actor, room, generation).await;
            }));
        }
        Ok(())
    }

    async fn typing_should_broadcast(
        &self,
        actor: UserId,
        room: RoomId,
        state: bool,
    ) -> Result<bool> {
        let eph = &self.p().ephemeral;
        let key = typing_broadcast_key(room, actor);
        let value = if state { "1" } else { "0" };
        let ttl = Some(self.limits().typing_throttle);
        match eph.set_if_absent(&key, value, ttl).await? {
            None => Ok(true),
            Some(prev) if prev == value => Ok(false),
            Some(_) => {
                eph.set(&key, value, ttl).await?;
                Ok(true)
            }
        }
    }

    async fn publish_typing(&self, actor: UserId, room: RoomId, typing: bool) {
        let event = Event::Typing {
            room_id: room,
            user_id: actor,
            typing,
            at: self.now(),
        };
        self.publish(Topic::Room(room), event).await;
    }

    /// The auto-stop timer of one `typing(true)`: does nothing if typing was refreshed or
    /// stopped since (locally: a newer generation; elsewhere: the key was extended).
    async fn typing_expired(&self, actor: UserId, room: RoomId, generation: u64) {
        {
            let mut map = lock(&self.runtime().typing);
            if map.get(&(actor, room)) != Some(&generation) {
                return;
            }
            map.remove(&(actor, room));
        }
        let eph = &self.p().ephemeral;
        match eph.get(&typing_key(room, actor)).await {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => warn!(error = %e, "typing state lookup failed"),
        }
        let ttl = Some(self.limits().typing_throttle);
        if let Err(e) = eph.set(&typing_broadcast_key(room, actor), "0", ttl).await {
            warn!(error = %e, "typing throttle update failed");
        }
        self.publish_typing(actor, room, false).await;
    }

    /// A session of `actor` connected: they are online; the first session announces it to
    /// their rooms.
    pub async fn session_connected(&self, actor: UserId) -> Result<()> {
        let eph = &self.p().ephemeral;
        let sessions = eph.incr(&sessions_key(actor), 1, None).await?;
        eph.set(&online_key(actor), "1", Some(self.limits().presence_ttl))
            .await?;
        if sessions == 1 {
            self.announce_presence(actor).await?;
        }
        Ok(())
    }

    /// A heart-beat of a session of `actor`: keeps them online for `presence_ttl`.
    pub async fn session_heartbeat(&self, actor: UserId) -> Result<()> {
        self.p()
            .ephemeral
            .set(&online_key(actor), "1", Some(self.limits().presence_ttl))
            .await?;
        Ok(())
    }

    /// A session of `actor` disconnected; the last one takes them offline, records last-seen
    /// and announces it to their rooms.
    pub async fn session_disconnected(&self, actor: UserId) -> Result<()> {
        let eph = &self.p().ephemeral;
        let sessions = eph.incr(&sessions_key(actor), -1, None).await?;
        if sessions > 0 {
            return Ok(());
        }
        eph.delete(&sessions_key(actor)).await?;
        eph.delete(&online_key(actor)).await?;
        let now = self.now();
        // Combined with the other disconnects meanwhile: one write for a burst.
        self.runtime()
            .last_seen
            .write(
                vec![(actor, now)],
                |seen: Vec<(UserId, Timestamp)>| async move {
                    Ok(self.p().users.set_last_seen(&seen).await?)
                },
            )
            .await?;
        let rooms = self.room_ids_of(actor).await?;
        for room in &rooms {
            let event = Event::UserStatusChanged {
                user_id: actor,
                status: UserStatus::Offline,
                last_seen_at: Some(now),
            };
            self.publish(Topic::Room(*room), event).await;
        }
        for room in rooms {
            self.announce_active_users(room).await;
        }
        Ok(())
    }

    async fn announce_presence(&self, actor: UserId) -> Result<()> {
        for room in self.room_ids_of(actor).await? {
            self.announce_active_users(room).await;
        }
        Ok(())
    }

    /// The rooms of `actor`, looked up together with those of the other sessions connecting
    /// or disconnecting meanwhile (one [`RoomStore::room_ids_of`] for a burst).
    ///
    /// [`RoomStore::room_ids_of`]: crate::rooms::RoomStore::room_ids_of
    async fn room_ids_of(&self, actor: UserId) -> Result<Vec<RoomId>> {
        let pairs = self
            .runtime()
            .room_ids
            .read(
                vec![actor],
                |users: Vec<UserId>| async move { Ok(self.p().rooms.room_ids_of(&users).await?) },
                |(member, _): &(UserId, RoomId)| *member,
            )
            .await?;
        Ok(pairs.into_iter().map(|(_, room)| room).collect())
    }

    /// Sends the room's active-user list now if none went out within
    /// `active_users_interval`, or once at the end of it otherwise: a burst of connects to a
    /// room costs one list per interval, not one per connect.
    async fn announce_active_users(&self, room: RoomId) {
        let interval = self.limits().active_users_interval;
        let now = self.now();
        let wait = {
            let mut rooms = lock(&self.runtime().active_users);
            if rooms.len() > ACTIVE_USERS_SWEEP {
                rooms.retain(|_, s| s.scheduled || now.since(s.last) < interval);
            }
            let state = rooms.entry(room).or_insert(ActiveUsersState {
                last: Timestamp(i64::MIN / 2),
                scheduled: false,
            });
            if state.scheduled {
                return;
            }
            let elapsed = now.since(state.last);
            if elapsed >= interval {
                state.last = now;
                None
            } else {
                state.scheduled = true;
                Some(interval - elapsed)
            }
        };
        match wait {
            None => self.publish_active_users(room).await,
            Some(wait) => {
                let engine = self.clone();
                // Registered now, so that a manual clock advanced right after this call wakes it.
                let sleep = self.p().clock.sleep(wait);
                self.p().spawner.spawn(Box::pin(async move {
                    sleep.await;
                    let now = engine.now();
                    if let Some(s) = lock(&engine.runtime().active_users).get_mut(&room) {
                        s.scheduled = false;
                        s.last = now;
                    }
                    engine.publish_active_users(room).await;
                }));
            }
        }
    }

    /// Publishes the room's online participants (skipped above `active_users_max_room`).
    /// The participants are read together with other rooms' (a burst of connects announces
    /// many rooms at once, and their delayed lists fall due together).
    async fn publish_active_users(&self, room: RoomId) {
        let participants = match self.participants_combined(room).await {
            Ok(p) => p,
            Err(e) => {
                warn!(room_id = %room, error = %e, "loading participants for presence failed");
                return;
            }
        };
        if participants.len() > self.limits().active_users_max_room {
            return;
        }
        match self.online_among(&participants).await {
            Ok(user_ids) => {
                self.publish(
                    Topic::Room(room),
                    Event::ActiveUsers {
                        room_id: room,
                        user_ids,
                    },
                )
                .await
            }
            Err(e) => warn!(room_id = %room, error = %e, "reading presence failed"),
        }
    }

    async fn online_participants(&self, room: RoomId) -> Result<Vec<UserId>> {
        let participants = self.p().rooms.participants(room).await?;
        self.online_among(&participants).await
    }

    /// Which of `participants` are online, ascending.
    async fn online_among(&self, participants: &[Participant]) -> Result<Vec<UserId>> {
        let keys: Vec<String> = participants.iter().map(|p| online_key(p.user_id)).collect();
        let values = self.p().ephemeral.get_many(&keys).await?;
        let mut online: Vec<UserId> = participants
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_some())
            .map(|(p, _)| p.user_id)
            .collect();
        online.sort();
        Ok(online)
    }

    /// Online participants of a room the caller is in, ascending.
    pub async fn active_users(&self, actor: UserId, room: RoomId) -> Result<Vec<UserId>> {
        self.require_participant(actor, room).await?;
        self.online_participants(room).await
    }

    /// Events of a room the caller participates in.
    pub async fn subscribe_room(&self, actor: UserId, room: RoomId) -> Result<EventStream> {
        self.require_participant(actor, room).await?;
        Ok(self.p().bus.subscribe(Topic::Room(room)).await?)
    }

    /// Events for the caller (statuses, room updates, notifications).
    pub async fn subscribe_user(&self, actor: UserId) -> Result<EventStream> {
        Ok(self.p().bus.subscribe(Topic::User(actor)).await?)
    }

    /// Any topic, unchecked: for a server's internal hub that authorises by itself.
    pub async fn subscribe_topic(&self, topic: Topic) -> Result<EventStream> {
        Ok(self.p().bus.subscribe(topic).await?)
    }

    /// Every user topic's events with their user, unchecked: for a server's internal hub
    /// serving its connected users' personal topics from one subscription. `None` when the
    /// bus does not offer it ([`EventBus::subscribe_user_feed`](crate::ports::EventBus::subscribe_user_feed)).
    pub async fn subscribe_user_feed(&self) -> Result<Option<UserFeed>> {
        Ok(self.p().bus.subscribe_user_feed().await?)
    }
}
