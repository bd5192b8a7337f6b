//! [`MemoryBus`]: an [`EventBus`] within one process over [`broadcast`] channels.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use foldhash::{HashMap, HashMapExt};
use futures::StreamExt;
use tracing::debug;

use super::broadcast;
use super::lock;
use crate::error::PortResult;
use crate::events::{Event, Topic};
use crate::ids::UserId;
use crate::ports::{EventBus, EventStream, UserFeed};

/// Default buffer of a room topic: a subscriber this many events behind starts missing events.
/// Buffers hold only what some subscriber has not read yet (see [`broadcast`]): an idle topic
/// costs nothing, whatever its capacity.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;

/// Default buffer of a user topic.
pub const DEFAULT_USER_TOPIC_CAPACITY: usize = 1024;

/// Default buffer of the user feed ([`EventBus::subscribe_user_feed`]), which carries every
/// user topic's events: a big room's message alone makes one room-list update per member.
pub const DEFAULT_USER_FEED_CAPACITY: usize = 1 << 18;

/// In-process [`EventBus`]: one broadcast channel per topic with subscribers.
///
/// Topics without subscribers hold no channel: publishing to them is free, and channels
/// whose last subscriber went away are dropped lazily (on publish to them, and by a sweep
/// when the topic map has doubled since the last sweep).
pub struct MemoryBus {
    capacity: usize,
    user_capacity: usize,
    feed_capacity: usize,
    state: Mutex<BusState>,
}

struct BusState {
    topics: HashMap<Topic, broadcast::Sender<Arc<Event>>>,
    /// Every user topic's events, while the user feed has subscribers.
    users: Option<broadcast::Sender<(UserId, Arc<Event>)>>,
    sweep_at: usize,
}

const MIN_SWEEP: usize = 64;

impl BusState {
    fn send(&mut self, topic: Topic, event: Arc<Event>) {
        if let Topic::User(user) = topic {
            let gone = self
                .users
                .as_ref()
                .is_some_and(|feed| feed.send((user, event.clone())).is_err());
            if gone {
                // Every subscriber of the feed is gone.
                self.users = None;
            }
        }
        if let Some(tx) = self.topics.get(&topic) {
            if tx.send(event).is_err() {
                // Every subscriber is gone.
                self.topics.remove(&topic);
            }
        }
    }
}

impl MemoryBus {
    /// A bus with [`DEFAULT_BUS_CAPACITY`] per room topic and
    /// [`DEFAULT_USER_TOPIC_CAPACITY`] per user topic.
    pub fn new() -> MemoryBus {
        MemoryBus {
            user_capacity: DEFAULT_USER_TOPIC_CAPACITY,
            feed_capacity: DEFAULT_USER_FEED_CAPACITY,
            ..MemoryBus::with_capacity(DEFAULT_BUS_CAPACITY)
        }
    }

    /// A bus buffering up to `capacity` events per topic and in the user feed (at least 1).
    pub fn with_capacity(capacity: usize) -> MemoryBus {
        MemoryBus {
            capacity: capacity.max(1),
            user_capacity: capacity.max(1),
            feed_capacity: capacity.max(1),
            state: Mutex::new(BusState {
                topics: HashMap::new(),
                users: None,
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// Number of live subscriptions to `topic`.
    pub fn subscriber_count(&self, topic: Topic) -> usize {
        lock(&self.state)
            .topics
            .get(&topic)
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Number of topics currently holding a channel (for leak tests).
    pub fn topic_count(&self) -> usize {
        lock(&self.state).topics.len()
    }
}

impl Default for MemoryBus {
    fn default() -> MemoryBus {
        MemoryBus::new()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, topic: Topic, event: Event) -> PortResult<()> {
        self.publish_shared(topic, Arc::new(event)).await
    }

    async fn publish_shared(&self, topic: Topic, event: Arc<Event>) -> PortResult<()> {
        lock(&self.state).send(topic, event);
        Ok(())
    }

    async fn publish_all(&self, events: Vec<(Topic, Arc<Event>)>) -> PortResult<()> {
        let mut st = lock(&self.state);
        for (topic, event) in events {
            st.send(topic, event);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: Topic) -> PortResult<EventStream> {
        let mut st = lock(&self.state);
        if st.topics.len() >= st.sweep_at {
            st.topics.retain(|_, tx| tx.receiver_count() > 0);
            st.sweep_at = (st.topics.len() * 2).max(MIN_SWEEP);
        }
        let rx = st
            .topics
            .entry(topic)
            .or_insert_with(|| {
                let capacity = match topic {
                    Topic::Room(_) => self.capacity,
                    Topic::User(_) => self.user_capacity,
                };
                broadcast::channel(capacity)
            })
            .subscribe();
        drop(st);
        let stream = rx.into_stream(move |missed| {
            debug!(?topic, missed, "bus subscriber lagged; events dropped");
        });
        Ok(stream.boxed())
    }

    async fn subscribe_user_feed(&self) -> PortResult<Option<UserFeed>> {
        let rx = {
            let mut st = lock(&self.state);
            let capacity = self.feed_capacity;
            st.users
                .get_or_insert_with(|| broadcast::channel(capacity))
                .subscribe()
        };
        let stream = rx.into_stream(|missed| {
            debug!(missed, "user feed subscriber lagged; events dropped");
        });
        Ok(Some(stream.boxed()))
    }
}
