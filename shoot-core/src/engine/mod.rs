//! The [`ChatEngine`] facade: every use case of every bounded context, over `Arc<dyn Port>`s.
//!
//! Use cases live in one file per context (`impl ChatEngine` blocks); this module holds the
//! engine's state, its builder and the helpers they share.

use std::sync::Arc;

use tracing::warn;

use crate::bookmarks::BookmarkStore;
use crate::error::{Error, ErrorCode, Result};
use crate::events::{Event, Topic};
use crate::identity::UserStore;
use crate::ids::{RoomId, UserId};
use crate::limits::Limits;
use crate::messages::MessageStore;
use crate::notifications::NotificationStore;
use crate::ports::{
    Clock, EphemeralStore, EventBus, IdGenerator, LinkFetcher, LockManager, MessageLog, Spawner,
};
use crate::rooms::{Participant, RoomStore};
use crate::schedule::ScheduleStore;
use crate::social::SocialStore;
use crate::time::Timestamp;

// ENG-A
mod bookmarks;
mod identity;
mod notify;
mod recommend;
mod social;
pub use bookmarks::{BOOKMARK_NOTE_MAX, BookmarkEntry};
pub use identity::{NewUser, ProfilePatch};
pub use recommend::Recommendation;
pub use social::FriendRequests;
// end ENG-A

// ENG-B
mod group_read;
mod lock;
mod messages;
mod pipeline;
mod presence;
mod read;
mod room_cache;
mod rooms;
mod schedule;
mod sync;
mod unread;
mod workers;

pub use lock::{backoff, with_lock};
pub use messages::{MessageRecord, ThreadDetail, ThreadSummary, thread_summary};
pub use pipeline::{SendMessage, SendReceipt};
pub use read::ReadTarget;
pub use rooms::{RoomDetails, RoomSummary, sort_room_list};
pub use schedule::{NewSchedule, SchedulePatch, next_occurrence};
pub use sync::{SyncDirection, SyncPage, SyncRequest};
pub use workers::PERSISTENCE_GROUP;
// end ENG-B

/// Every port the engine needs.
#[derive(Clone)]
pub struct Ports {
    /// Users and refresh tokens.
    pub users: Arc<dyn UserStore>,
    /// Social graph.
    pub social: Arc<dyn SocialStore>,
    /// Rooms and participants.
    pub rooms: Arc<dyn RoomStore>,
    /// Messages.
    pub messages: Arc<dyn MessageStore>,
    /// Bookmarks.
    pub bookmarks: Arc<dyn BookmarkStore>,
    /// Scheduled messages.
    pub schedules: Arc<dyn ScheduleStore>,
    /// Notifications.
    pub notifications: Arc<dyn NotificationStore>,
    /// Event bus.
    pub bus: Arc<dyn EventBus>,
    /// Durable message log.
    pub log: Arc<dyn MessageLog>,
    /// Locks.
    pub locks: Arc<dyn LockManager>,
    /// Ephemeral state.
    pub ephemeral: Arc<dyn EphemeralStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Background tasks.
    pub spawner: Arc<dyn Spawner>,
    /// Link previews (none: previews are off).
    pub link_fetcher: Option<Arc<dyn LinkFetcher>>,
}

/// Engine settings besides the ports.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Business limits.
    pub limits: Limits,
    /// This instance's name (consumer groups, lock and claim owners).
    pub instance_id: String,
    /// Argon2id cost parameters for password hashing.
    pub password: crate::identity::password::PasswordHasherConfig,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            limits: Limits::default(),
            instance_id: "local".to_owned(),
            password: crate::identity::password::PasswordHasherConfig::default(),
        }
    }
}

/// The chat engine. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ChatEngine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) ports: Ports,
    pub(crate) config: EngineConfig,
    /// ENG-B: lanes, in-flight sends, typing timers, workers.
    pub(crate) runtime: pipeline::Runtime,
}

impl ChatEngine {
    /// An engine over `ports` with `config`.
    pub fn new(ports: Ports, config: EngineConfig) -> ChatEngine {
        let runtime = pipeline::Runtime::new();
        ChatEngine {
            inner: Arc::new(Inner {
                ports,
                config,
                runtime,
            }),
        }
    }

    /// The business limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// The ports, for adapters and servers that need direct access (health checks).
    pub fn ports(&self) -> &Ports {
        &self.inner.ports
    }

    /// This instance's name.
    pub fn instance_id(&self) -> &str {
        &self.inner.config.instance_id
    }

    pub(crate) fn p(&self) -> &Ports {
        &self.inner.ports
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.ports.clock.now()
    }

    pub(crate) fn next_id(&self) -> i64 {
        self.inner.ports.ids.next_id()
    }

    /// The caller's participant row, or `ROOM_NOT_FOUND` / `NOT_ROOM_PARTICIPANT`.
    pub(crate) async fn require_participant(
        &self,
        actor: UserId,
        room: RoomId,
    ) -> Result<Participant> {
        let found = self
            .runtime()
            .memberships
            .read(
                vec![(room, actor)],
                |pairs: Vec<(RoomId, UserId)>| async move {
                    Ok(self.p().rooms.memberships(&pairs).await?)
                },
                |p: &Participant| (p.room_id, p.user_id),
            )
            .await?;
        if let Some(p) = found.into_iter().next() {
            return Ok(p);
        }
        if self.p().rooms.get_room(room).await?.is_none() {
            return Err(Error::new(ErrorCode::RoomNotFound, "room not found"));
        }
        Err(Error::new(
            ErrorCode::NotRoomParticipant,
            "not a participant of this room",
        ))
    }

    /// Publishes an event; a bus failure is logged, never returned: real-time delivery is
    /// best-effort and clients recover with sync.
    pub(crate) async fn publish(&self, topic: Topic, event: Event) {
        self.publish_shared(topic, Arc::new(event)).await;
    }

    /// [`publish`](Self::publish) of an event the caller also publishes to another topic (a
    /// status goes to the room and to the sender): one allocation shared by both.
    pub(crate) async fn publish_shared(&self, topic: Topic, event: Arc<Event>) {
        if let (Topic::Room(room), Event::RoomChanged { .. }) = (topic, &*event) {
            // Membership or the room itself changed: the send path must re-read it.
            self.runtime().rooms.forget(room);
        }
        if let Err(e) = self.p().bus.publish_shared(topic, event).await {
            warn!(?topic, error = %e, "event bus publish failed");
        }
    }

    /// Publishes `events` in order with one bus call (what one batch of messages produces);
    /// failures are logged like [`publish`](Self::publish)'s.
    pub(crate) async fn publish_all(&self, events: Vec<(Topic, Arc<Event>)>) {
        match events.len() {
            0 => return,
            1 => {
                if let Some((topic, event)) = events.into_iter().next() {
                    self.publish_shared(topic, event).await;
                }
                return;
            }
            _ => {}
        }
        for (topic, event) in &events {
            if let (Topic::Room(room), Event::RoomChanged { .. }) = (topic, &**event) {
                self.runtime().rooms.forget(*room);
            }
        }
        let count = events.len();
        if let Err(e) = self.p().bus.publish_all(events).await {
            warn!(count, error = %e, "event bus publish failed");
        }
    }
}
