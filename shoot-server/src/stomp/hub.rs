//! The per-instance fan-out hub.
//!
//! For every room [`Topic`] with at least one local subscriber the hub holds exactly one
//! engine subscription (one task reading one [`EventStream`]); it is dropped when the last
//! local subscriber leaves. User topics are served the same way when the bus has no user
//! feed (below). Each event is routed to the destination kinds it belongs to
//! ([`routing`]) and rendered to its JSON body ONCE per destination kind,
//! lazily (only if some subscriber wants it); the shared [`Payload`] is then pushed to each
//! matching subscriber's bounded `Outbox`. Per-subscriber headers (`subscription`,
//! `destination`, `message-id`, `ack`) are prefixed by the session's writer.
//!
//! User topics (one per connected user) are served, where the bus offers it, by one
//! subscription to every user topic at once ([`shoot_core::ports::UserFeed`]) and one task
//! routing each event to its topic's entry, instead of a subscription and a task per user.
//!
//! Locks on the delivery path: a read lock on the topic's subscriber list for the duration
//! of one event's fan-out, and each outbox's short mutex. The topic map's mutex is taken on
//! subscribe and unsubscribe, and by the user feed's task to find an event's entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use shoot_core::events::{Event, Topic};
use shoot_core::ports::{EventStream, UserFeed};
use shoot_core::{Error, ErrorCode};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use super::outbox::{Out, Outbox, Pushed};
use super::routing::{self, Filter};
use crate::metrics::Metrics;

/// Opens a bus subscription for a topic (the engine's `subscribe_topic` in production).
pub type TopicSource =
    Arc<dyn Fn(Topic) -> BoxFuture<'static, shoot_core::Result<EventStream>> + Send + Sync>;

/// Opens the bus's feed of every user topic, `None` if the bus has none (the engine's
/// `subscribe_user_feed` in production).
pub type UserFeedSource =
    Arc<dyn Fn() -> BoxFuture<'static, shoot_core::Result<Option<UserFeed>>> + Send + Sync>;

/// A rendered event for one destination kind, shared by every recipient.
#[derive(Debug)]
pub struct Payload {
    /// Whether the slow-consumer policy may drop it (typing, active users, presence).
    pub droppable: bool,
    /// `event-type`, `content-type` and `content-length` headers, the blank line, the JSON
    /// body and the terminating NUL.
    pub tail: Box<str>,
}

impl Payload {
    /// A JSON payload with an `event-type` header.
    pub fn json(event_type: &str, body: &str, droppable: bool) -> Payload {
        let mut tail = String::with_capacity(body.len() + event_type.len() + 80);
        tail.push_str("event-type:");
        tail.push_str(event_type);
        tail.push_str("\ncontent-type:application/json\ncontent-length:");
        tail.push_str(itoa::Buffer::new().format(body.len()));
        tail.push_str("\n\n");
        tail.push_str(body);
        tail.push('\0');
        Payload {
            droppable,
            tail: tail.into_boxed_str(),
        }
    }
}

/// How a subscription acknowledges messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// No acknowledgement.
    Auto,
    /// Cumulative acknowledgement.
    Client,
    /// Per-message acknowledgement.
    ClientIndividual,
}

/// One subscription of one session.
pub struct Subscriber {
    /// `subscription:{id}\ndestination:{destination}\n`, escaped.
    pub(crate) head: Box<str>,
    /// Which events of the topic it receives.
    pub(crate) filter: Filter,
    /// Acknowledgement mode.
    pub(crate) ack: AckMode,
    /// Where its messages go.
    pub(crate) outbox: Arc<Outbox>,
}

impl Subscriber {
    /// A subscriber for subscription `id` on `destination`.
    pub(crate) fn new(
        id: &str,
        destination: &str,
        filter: Filter,
        ack: AckMode,
        outbox: Arc<Outbox>,
    ) -> Subscriber {
        let id_esc = super::frame::escape_header(id);
        let dest_esc = super::frame::escape_header(destination);
        let mut head = String::with_capacity(id_esc.len() + dest_esc.len() + 27);
        head.push_str("subscription:");
        head.push_str(&id_esc);
        head.push_str("\ndestination:");
        head.push_str(&dest_esc);
        head.push('\n');
        Subscriber {
            head: head.into_boxed_str(),
            filter,
            ack,
            outbox,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ready {
    Pending,
    Ok,
    Failed(ErrorCode, String),
}

/// Whether a topic's bus subscription is open, and a wake-up for those waiting on it.
///
/// One per topic, so kept small: a `tokio::sync::watch` channel costs several hundred bytes,
/// which an idle connection's personal topic would pay in full.
struct ReadyCell {
    state: Mutex<Ready>,
    changed: Notify,
}

impl ReadyCell {
    fn new() -> ReadyCell {
        ReadyCell {
            state: Mutex::new(Ready::Pending),
            changed: Notify::new(),
        }
    }

    fn get(&self) -> Ready {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, ready: Ready) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = ready;
        self.changed.notify_waiters();
    }

    /// The state once it is no longer pending.
    async fn settled(&self) -> Ready {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let ready = self.get();
            if ready != Ready::Pending {
                return ready;
            }
            changed.await;
        }
    }
}

struct TopicEntry {
    topic: Topic,
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    ready: ReadyCell,
    task: Mutex<Option<AbortHandle>>,
}

impl TopicEntry {
    /// Fans one event out to every matching subscriber.
    fn deliver(&self, event: &Event, routes: &mut Vec<Filter>) -> Delivery {
        routes.clear();
        routing::routes(self.topic, event, routes);
        let mut stats = Delivery::default();
        if routes.is_empty() {
            return stats;
        }
        let subscribers = self.subscribers.read().unwrap_or_else(|e| e.into_inner());
        let first_user = routes.iter().position(|r| matches!(r, Filter::User(_)));
        for (i, route) in routes.iter().enumerate() {
            let mut payload: Option<Arc<Payload>> = None;
            for sub in subscribers.iter() {
                let wanted = sub.filter == *route
                    || (sub.filter == Filter::UserAll && first_user == Some(i));
                if !wanted {
                    continue;
                }
                let payload = payload
                    .get_or_insert_with(|| Arc::new(routing::render(*route, event)))
                    .clone();
                match sub.outbox.push(Out::Message {
                    sub: sub.clone(),
                    payload,
                }) {
                    Pushed::Queued => stats.delivered += 1,
                    Pushed::Dropped => stats.dropped += 1,
                    Pushed::Overflow => stats.overflowed += 1,
                    Pushed::Closed => {}
                }
            }
        }
        stats
    }
}

/// Counts of one fan-out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Frames queued.
    pub delivered: u64,
    /// Droppable frames dropped because a queue was full.
    pub dropped: u64,
    /// Sessions closed as slow consumers.
    pub overflowed: u64,
}

struct HubInner {
    source: TopicSource,
    topics: Mutex<HashMap<Topic, Arc<TopicEntry>>>,
    metrics: Arc<Metrics>,
    /// The user feed, if the hub was given a source for it: `Ok` once it is open (user
    /// topics are then served by it), `Failed` if the bus has none (a task per topic then).
    feed: Option<Feed>,
}

struct Feed {
    ready: ReadyCell,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        if let Some(feed) = &self.feed {
            if let Some(task) = feed.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
                task.abort();
            }
        }
    }
}

/// The fan-out hub of one server instance. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

/// A live subscription; dropping it unsubscribes (and closes the bus subscription of the
/// topic when it was the last local subscriber).
pub struct Subscription {
    hub: Weak<HubInner>,
    entry: Arc<TopicEntry>,
    subscriber: Arc<Subscriber>,
}

impl Subscription {
    /// The subscriber (for direct replies and acknowledgements).
    pub(crate) fn subscriber(&self) -> &Arc<Subscriber> {
        &self.subscriber
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unsubscribe(&self.entry, &self.subscriber);
        }
    }
}

impl Hub {
    /// A hub opening a bus subscription per topic with `source`, counting deliveries in
    /// `metrics`.
    pub fn new(source: TopicSource, metrics: Arc<Metrics>) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                source,
                topics: Mutex::new(HashMap::new()),
                metrics,
                feed: None,
            }),
        }
    }

    /// A hub serving every user topic from the one feed `users` opens (when the bus has
    /// one; a subscription per topic otherwise), and other topics as [`Hub::new`].
    pub fn with_user_feed(
        source: TopicSource,
        users: UserFeedSource,
        metrics: Arc<Metrics>,
    ) -> Hub {
        let hub = Hub {
            inner: Arc::new(HubInner {
                source,
                topics: Mutex::new(HashMap::new()),
                metrics,
                feed: Some(Feed {
                    ready: ReadyCell::new(),
                    task: Mutex::new(None),
                }),
            }),
        };
        let task = tokio::spawn(serve_user_feed(Arc::downgrade(&hub.inner), users));
        if let Some(feed) = &hub.inner.feed {
            *feed.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
        }
        hub
    }

    /// A hub over the engine's unchecked `subscribe_topic` and `subscribe_user_feed`.
    pub fn for_engine(engine: shoot_core::ChatEngine, metrics: Arc<Metrics>) -> Hub {
        let topics = engine.clone();
        let source: TopicSource = Arc::new(move |topic| {
            let engine = topics.clone();
            Box::pin(async move { engine.subscribe_topic(topic).await })
        });
        let users: UserFeedSource = Arc::new(move || {
            let engine = engine.clone();
            Box::pin(async move { engine.subscribe_user_feed().await })
        });
        Hub::with_user_feed(source, users, metrics)
    }

    /// Number of topics with a bus subscription.
    pub fn topic_count(&self) -> usize {
        self.inner.lock_topics().len()
    }

    /// Adds `subscriber` to `topic`, opening the topic's bus subscription if it is the first
    /// local one, and returns once events published from now on will be delivered.
    pub async fn subscribe(
        &self,
        topic: Topic,
        subscriber: Arc<Subscriber>,
    ) -> shoot_core::Result<Subscription> {
        // Whether the user feed serves this topic (waiting for the feed to open, once).
        let by_feed = match (&self.inner.feed, topic) {
            (Some(feed), Topic::User(_)) => feed.ready.settled().await == Ready::Ok,
            _ => false,
        };
        let entry = {
            let mut topics = self.inner.lock_topics();
            let entry = match topics.get(&topic) {
                Some(e) => e.clone(),
                None => {
                    let entry = Arc::new(TopicEntry {
                        topic,
                        subscribers: RwLock::new(Vec::new()),
                        ready: ReadyCell::new(),
                        task: Mutex::new(None),
                    });
                    if by_feed {
                        // The feed is open: what is published from now on reaches the entry.
                        entry.ready.set(Ready::Ok);
                    } else {
                        let task = tokio::spawn(forward(
                            Arc::downgrade(&self.inner),
                            entry.clone(),
                            self.inner.source.clone(),
                        ));
                        *entry.task.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(task.abort_handle());
                    }
                    topics.insert(topic, entry.clone());
                    entry
                }
            };
            entry
                .subscribers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(subscriber.clone());
            entry
        };
        let subscription = Subscription {
            hub: Arc::downgrade(&self.inner),
            entry: entry.clone(),
            subscriber,
        };
        let state = entry.ready.settled().await;
        match state {
            Ready::Failed(code, message) => Err(Error::new(code, message)),
            _ => Ok(subscription),
        }
    }
}

impl HubInner {
    fn lock_topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, Arc<TopicEntry>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unsubscribe(&self, entry: &Arc<TopicEntry>, subscriber: &Arc<Subscriber>) {
        let mut topics = self.lock_topics();
        let mut subs = entry.subscribers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = subs.iter().position(|s| Arc::ptr_eq(s, subscriber)) {
            subs.swap_remove(i);
        }
        if subs.is_empty() {
            if subs.capacity() > 0 {
                *subs = Vec::new();
            }
            drop(subs);
            self.remove_entry(&mut topics, entry);
        } else if subs.capacity() > 64 && subs.len() < subs.capacity() / 4 {
            let keep = subs.len() * 2;
            subs.shrink_to(keep);
        }
    }

    /// Removes `entry` from the map (if it is still the current entry of its topic) and
    /// stops its task, which drops the bus subscription.
    fn remove_entry(&self, topics: &mut HashMap<Topic, Arc<TopicEntry>>, entry: &Arc<TopicEntry>) {
        if topics
            .get(&entry.topic)
            .is_some_and(|e| Arc::ptr_eq(e, entry))
        {
            topics.remove(&entry.topic);
        }
        if let Some(task) = entry.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    fn record(&self, d: Delivery) {
        if d.delivered > 0 {
            self.metrics.stomp_deliveries.add(d.delivered);
        }
        if d.dropped > 0 {
            self.metrics.stomp_dropped_frames.add(d.dropped);
        }
        if d.overflowed > 0 {
            self.metrics.stomp_slow_consumers.add(d.overflowed);
        }
    }
}

/// The task of one topic: opens the bus subscription and fans out its events; reopens it
/// with backoff if the stream ends while local subscribers remain.
///
/// An `async` block rather than an `async fn` (which would keep its arguments apart from its
/// locals), and the backoff's timer boxed: on a bus without a user feed every connected user
/// has such a task for their personal topic, so its idle size counts per connection.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice"
)]
fn forward(
    hub: Weak<HubInner>,
    entry: Arc<TopicEntry>,
    source: TopicSource,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let topic = entry.topic;
        let mut routes = Vec::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            match source(topic).await {
                Ok(mut stream) => {
                    entry.ready.set(Ready::Ok);
                    backoff = Duration::from_millis(100);
                    while let Some(event) = stream.next().await {
                        let delivery = entry.deliver(&event, &mut routes);
                        if let Some(hub) = hub.upgrade() {
                            hub.record(delivery);
                        }
                    }
                    warn!(?topic, "bus subscription ended; reopening");
                }
                Err(e) => {
                    if entry.ready.get() == Ready::Pending {
                        // Nobody received anything yet: fail the waiting subscribers and
                        // forget the entry so that a later subscribe tries again.
                        debug!(?topic, error = %e, "bus subscribe failed");
                        entry
                            .ready
                            .set(Ready::Failed(e.code(), e.message().to_owned()));
                        if let Some(hub) = hub.upgrade() {
                            let mut topics = hub.lock_topics();
                            if topics.get(&topic).is_some_and(|x| Arc::ptr_eq(x, &entry)) {
                                topics.remove(&topic);
                            }
                        }
                        return;
                    }
                    warn!(?topic, error = %e, "bus resubscribe failed");
                }
            }
            Box::pin(tokio::time::sleep(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The user feed's task: opens the feed, then routes each event to its user topic's entry
/// (if a local session subscribed to it); reopens the feed with backoff if it ends. If the
/// bus has no feed, marks it failed so that user topics get a subscription each.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice"
)]
fn serve_user_feed(
    hub: Weak<HubInner>,
    users: UserFeedSource,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let mut routes = Vec::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            let opened = users().await;
            let Some(inner) = hub.upgrade() else { return };
            let Some(feed_state) = &inner.feed else {
                return;
            };
            match opened {
                Ok(Some(mut stream)) => {
                    feed_state.ready.set(Ready::Ok);
                    backoff = Duration::from_millis(100);
                    drop(inner);
                    while let Some((user, event)) = stream.next().await {
                        let Some(inner) = hub.upgrade() else { return };
                        let entry = inner.lock_topics().get(&Topic::User(user)).cloned();
                        if let Some(entry) = entry {
                            inner.record(entry.deliver(&event, &mut routes));
                        }
                    }
                    warn!("user feed ended; reopening");
                }
                Ok(None) => {
                    feed_state.ready.set(Ready::Failed(
                        ErrorCode::BackendUnavailable,
                        "no user feed".into(),
                    ));
                    return;
                }
                Err(e) => {
                    if feed_state.ready.get() == Ready::Pending {
                        // Never opened: serve user topics one subscription each instead.
                        debug!(error = %e, "user feed unavailable");
                        feed_state
                            .ready
                            .set(Ready::Failed(e.code(), e.message().to_owned()));
                        return;
                    }
                    warn!(error = %e, "user feed reopen failed");
                }
            }
            Box::pin(tokio::time::sleep(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::routing::UserQueue;
    use futures::stream;
    use shoot_core::RoomId;
    use shoot_core::ids::UserId;
    use shoot_core::time::Timestamp;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::broadcast;

    /// A bus: one broadcast channel per topic, counting open subscriptions.
    #[derive(Clone, Default)]
    struct TestBus {
        channels: Arc<Mutex<HashMap<Topic, broadcast::Sender<Arc<Event>>>>>,
        opened: Arc<AtomicUsize>,
        fail: Arc<std::sync::atomic::AtomicBool>,
        /// Every user topic's events (the user feed).
        users: Arc<Mutex<Option<FeedSender>>>,
    }

    type FeedSender = broadcast::Sender<(UserId, Arc<Event>)>;

    struct Guarded {
        opened: Arc<AtomicUsize>,
    }
    impl Drop for Guarded {
        fn drop(&mut self) {
            self.opened.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl TestBus {
        fn sender(&self, topic: Topic) -> broadcast::Sender<Arc<Event>> {
            self.channels
                .lock()
                .unwrap()
                .entry(topic)
                .or_insert_with(|| broadcast::channel(1024).0)
                .clone()
        }
        fn publish(&self, topic: Topic, event: Event) {
            let event = Arc::new(event);
            if let (Topic::User(user), Some(feed)) = (topic, &*self.users.lock().unwrap()) {
                let _ = feed.send((user, event.clone()));
            }
            let _ = self.sender(topic).send(event);
        }
        /// A user feed source; `offered: false` is a bus without one.
        fn user_feed(&self, offered: bool) -> UserFeedSource {
            let users = self.users.clone();
            Arc::new(move || {
                let users = users.clone();
                Box::pin(async move {
                    if !offered {
                        return Ok(None);
                    }
                    let rx = users
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| broadcast::channel(1024).0)
                        .subscribe();
                    let s = stream::unfold(rx, |mut rx| async move {
                        loop {
                            match rx.recv().await {
                                Ok(item) => return Some((item, rx)),
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => return None,
                            }
                        }
                    });
                    Ok(Some(s.boxed()))
                })
            })
        }
        fn source(&self) -> TopicSource {
            let bus = self.clone();
            Arc::new(move |topic| {
                let bus = bus.clone();
                Box::pin(async move {
                    if bus.fail.load(Ordering::SeqCst) {
                        return Err(Error::new(ErrorCode::BackendUnavailable, "bus down"));
                    }
                    let rx = bus.sender(topic).subscribe();
                    bus.opened.fetch_add(1, Ordering::SeqCst);
                    let guard = Guarded {
                        opened: bus.opened.clone(),
                    };
                    let s = stream::unfold((rx, guard), |(mut rx, guard)| async move {
                        loop {
                            match rx.recv().await {
                                Ok(ev) => return Some((ev, (rx, guard))),
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => return None,
                            }
                        }
                    });
                    Ok(s.boxed())
                })
            })
        }
    }

    fn typing(room: i64, user: i64) -> Event {
        Event::Typing {
            room_id: RoomId(room),
            user_id: UserId(user),
            typing: true,
            at: Timestamp(1_700_000_000_000),
        }
    }

    fn active(room: i64) -> Event {
        Event::ActiveUsers {
            room_id: RoomId(room),
            user_ids: vec![UserId(1)],
        }
    }

    fn sub(outbox: &Arc<Outbox>, id: &str, dest: &str, filter: Filter) -> Arc<Subscriber> {
        Arc::new(Subscriber::new(
            id,
            dest,
            filter,
            AckMode::Auto,
            outbox.clone(),
        ))
    }

    async fn wait_until(mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not met in time"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn drain(outbox: &Outbox) -> Vec<(String, Arc<Payload>)> {
        let mut q = VecDeque::new();
        outbox.take(&mut q);
        q.into_iter()
            .filter_map(|o| match o {
                Out::Message { sub, payload } => {
                    let id = sub.head.strip_prefix("subscription:")?.split('\n').next()?;
                    Some((id.to_owned(), payload))
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn one_bus_subscription_per_topic_refcounted() {
        let bus = TestBus::default();
        let hub = Hub::new(bus.source(), Arc::new(Metrics::default()));
        let room = Topic::Room(RoomId(7));
        let a = Arc::new(Outbox::new(16));
        let b = Arc::new(Outbox::new(16));
        let s1 = hub
            .subscribe(room, sub(&a, "1", "/topic/typing/7", Filter::RoomTyping))
            .await
            .unwrap();
        let s2 = hub
            .subscribe(room, sub(&b, "x", "/topic/typing/7", Filter::RoomTyping))
            .await
            .unwrap();
        let s3 = hub
            .subscribe(room, sub(&b, "y", "/topic/active/7", Filter::RoomActive))
            .await
            .unwrap();
        assert_eq!(bus.opened.load(Ordering::SeqCst), 1);
        assert_eq!(hub.topic_count(), 1);

        bus.publish(room, typing(7, 3));
        bus.publish(room, active(7));
        wait_until(|| a.len() == 1 && b.len() == 2).await;
        let got_a = drain(&a);
        let got_b = drain(&b);
        // Rendered once, shared by both recipients.
        assert!(Arc::ptr_eq(&got_a[0].1, &got_b[0].1));
        assert_eq!(got_b[1].0, "y");
        assert!(got_a[0].1.tail.starts_with("event-type:TYPING\n"));

        drop(s1);
        drop(s2);
        assert_eq!(hub.topic_count(), 1);
        drop(s3);
        assert_eq!(hub.topic_count(), 0);
        wait_until(|| bus.opened.load(Ordering::SeqCst) == 0).await;

        // Re-subscribing opens a fresh bus subscription.
        let _s = hub
            .subscribe(room, sub(&a, "1", "/topic/typing/7", Filter::RoomTyping))
            .await
            .unwrap();
        assert_eq!(bus.opened.load(Ordering::SeqCst), 1);
    }

    fn presence(user: i64) -> Event {
        Event::UserStatusChanged {
            user_id: UserId(user),
            status: shoot_core::identity::UserStatus::Away,
            last_seen_at: None,
        }
    }

    #[tokio::test]
    async fn user_topics_share_the_user_feed_or_subscribe_each_without_one() {
        for offered in [true, false] {
            let bus = TestBus::default();
            let hub = Hub::with_user_feed(
                bus.source(),
                bus.user_feed(offered),
                Arc::new(Metrics::default()),
            );
            let a = Arc::new(Outbox::new(16));
            let b = Arc::new(Outbox::new(16));
            let (u1, u2) = (Topic::User(UserId(1)), Topic::User(UserId(2)));
            let s1 = hub
                .subscribe(u1, sub(&a, "1", "/user/queue/x", Filter::UserAll))
                .await
                .unwrap();
            let _s2 = hub
                .subscribe(u2, sub(&b, "2", "/user/queue/x", Filter::UserAll))
                .await
                .unwrap();
            let per_topic = if offered { 0 } else { 2 };
            assert_eq!(
                bus.opened.load(Ordering::SeqCst),
                per_topic,
                "offered: {offered}"
            );
            assert_eq!(hub.topic_count(), 2);

            bus.publish(u1, presence(10));
            bus.publish(Topic::User(UserId(3)), presence(11));
            bus.publish(u2, presence(12));
            wait_until(|| a.len() == 1 && b.len() == 1).await;

            drop(s1);
            assert_eq!(hub.topic_count(), 1);
            bus.publish(u1, presence(13));
            bus.publish(u2, presence(14));
            wait_until(|| b.len() == 2).await;
            assert_eq!(
                a.len(),
                1,
                "unsubscribed: nothing more (offered: {offered})"
            );
            let got = drain(&b);
            assert!(got[1].1.tail.starts_with("event-type:"), "{:?}", got[1].1);
        }
    }

    #[tokio::test]
    async fn failed_bus_subscribe_is_reported_and_retried() {
        let bus = TestBus::default();
        let hub = Hub::new(bus.source(), Arc::new(Metrics::default()));
        let a = Arc::new(Outbox::new(16));
        bus.fail.store(true, Ordering::SeqCst);
        let topic = Topic::User(UserId(1));
        let err = hub
            .subscribe(
                topic,
                sub(&a, "1", "/user/queue/x", Filter::User(UserQueue::Presence)),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), ErrorCode::BackendUnavailable);
        assert_eq!(hub.topic_count(), 0);
        bus.fail.store(false, Ordering::SeqCst);
        let _s = hub
            .subscribe(
                topic,
                sub(&a, "1", "/user/queue/x", Filter::User(UserQueue::Presence)),
            )
            .await
            .unwrap();
        assert_eq!(hub.topic_count(), 1);
    }

    #[tokio::test]
    async fn slow_consumer_drops_droppable_then_overflows() {
        let bus = TestBus::default();
        let hub = Hub::new(bus.source(), Arc::new(Metrics::default()));
        let room = Topic::Room(RoomId(1));
        let slow = Arc::new(Outbox::new(2));
        let fast = Arc::new(Outbox::new(100));
        let _s1 = hub
            .subscribe(room, sub(&slow, "t", "/topic/typing/1", Filter::RoomTyping))
            .await
            .unwrap();
        let _s2 = hub
            .subscribe(room, sub(&slow, "a", "/topic/active/1", Filter::RoomActive))
            .await
            .unwrap();
        let _s3 = hub
            .subscribe(room, sub(&fast, "t", "/topic/typing/1", Filter::RoomTyping))
            .await
            .unwrap();
        for u in 0..5 {
            bus.publish(room, typing(1, u));
        }
        wait_until(|| fast.len() == 5).await;
        assert_eq!(slow.len(), 2);
        wait_until(|| hub.inner.metrics.stomp_dropped_frames.get() == 3).await;
        assert!(!slow.is_closed());
    }
}
