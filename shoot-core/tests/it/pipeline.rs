//! The send pipeline and the persistence worker over the memory ports, plus the harness the
//! other ENG-B test modules share (`Harness`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use shoot_core::engine::{SendMessage, SendReceipt};
use shoot_core::error::PortResult;
use shoot_core::events::{Event, MessageChange, StatusUpdate, Topic};
use shoot_core::identity::{User, UserStatus};
use shoot_core::ids::{MessageId, RoomId, Seq};
use shoot_core::memory::{ManualClock, MemoryBus, MemoryStores};
use shoot_core::messages::{Message, MessageStatus, MessageStore, MessageType, UrlPreview};
use shoot_core::notifications::NotificationType;
use shoot_core::ports::{Clock, EventStream, LinkFetcher, Spawner};
use shoot_core::{ChatEngine, EngineConfig, ErrorCode, Limits, Ports, UserId};

use crate::support::{SpyMessages, newest, text_message};

/// Runs engine tasks on the test's tokio runtime.
pub(crate) struct TestSpawner;

impl Spawner for TestSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(tokio::spawn(task));
    }
}

/// An engine over memory ports with a manual clock.
pub(crate) struct Harness {
    pub(crate) engine: ChatEngine,
    pub(crate) stores: MemoryStores,
    pub(crate) clock: ManualClock,
    temp: AtomicUsize,
}

/// Real-time bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(10);

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness::custom(|_| {}, |_| {})
    }

    pub(crate) fn with_limits(edit: impl FnOnce(&mut Limits)) -> Harness {
        Harness::custom(edit, |_| {})
    }

    pub(crate) fn custom(
        limits: impl FnOnce(&mut Limits),
        ports: impl FnOnce(&mut Ports),
    ) -> Harness {
        let clock = ManualClock::at_2024();
        let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let stores = MemoryStores::new(dyn_clock.clone());
        let mut p = stores.ports(dyn_clock, Arc::new(TestSpawner));
        // Tests read their subscriptions lazily, after bursts of hundreds of events: a bus
        // buffer larger than a server's keeps them from lagging (lag is not what they test).
        p.bus = Arc::new(MemoryBus::with_capacity(1 << 16));
        ports(&mut p);
        let mut l = Limits::default();
        l.messages_per_second = 0.0;
        limits(&mut l);
        let config = EngineConfig {
            limits: l,
            instance_id: "test".to_owned(),
            ..EngineConfig::default()
        };
        Harness {
            engine: ChatEngine::new(p, config),
            stores,
            clock,
            temp: AtomicUsize::new(0),
        }
    }

    /// Another engine instance over the same ports (a second server of the cluster).
    pub(crate) fn sibling(&self, instance_id: &str) -> ChatEngine {
        let config = EngineConfig {
            limits: self.engine.limits().clone(),
            instance_id: instance_id.to_owned(),
            ..EngineConfig::default()
        };
        ChatEngine::new(self.engine.ports().clone(), config)
    }

    pub(crate) async fn started() -> Harness {
        let h = Harness::new();
        h.engine.start().await.expect("start");
        h
    }

    pub(crate) async fn user(&self, name: &str) -> UserId {
        let id = UserId(shoot_core::ports::IdGenerator::next_id(&*self.stores.ids));
        let now = self.clock.now();
        let user = User {
            id,
            username: name.to_owned(),
            nickname: name.to_uppercase(),
            email: format!("{name}@example.com"),
            password_hash: "x".to_owned(),
            status: UserStatus::Online,
            bio: None,
            profile_image_url: None,
            user_code: format!("C{}", id.0 % 100_000_000),
            last_seen_at: None,
            created_at: now,
            updated_at: now,
        };
        shoot_core::identity::UserStore::create_user(&*self.stores.users, &user)
            .await
            .expect("create user");
        id
    }

    pub(crate) async fn users<const N: usize>(&self, names: [&str; N]) -> [UserId; N] {
        let mut out = [UserId(0); N];
        for (i, n) in names.iter().enumerate() {
            out[i] = self.user(n).await;
        }
        out
    }

    pub(crate) async fn group(&self, owner: UserId, members: &[UserId]) -> RoomId {
        self.engine
            .create_group_room(owner, "team", members.to_vec())
            .await
            .expect("group")
            .room
            .id
    }

    pub(crate) fn cmd(&self, room: RoomId, text: &str) -> SendMessage {
        let n = self.temp.fetch_add(1, Ordering::SeqCst);
        SendMessage {
            room_id: room,
            text: text.to_owned(),
            message_type: MessageType::Text,
            temp_id: format!("t-{n}"),
            thread_id: None,
            mentions: Vec::new(),
        }
    }

    pub(crate) async fn send(&self, actor: UserId, room: RoomId, text: &str) -> SendReceipt {
        self.engine
            .send_message(actor, self.cmd(room, text))
            .await
            .expect("send")
    }

    /// Sends and waits until the persistence worker stored it (the engine must be started).
    pub(crate) async fn send_saved(&self, actor: UserId, room: RoomId, text: &str) -> Message {
        let r = self.send(actor, room, text).await;
        self.saved(r.message_id).await
    }

    /// Polls the store (with a deadline) until `id` is stored.
    pub(crate) async fn saved(&self, id: MessageId) -> Message {
        self.until(|| async move { self.stores.messages.get_message(id).await.expect("get") })
            .await
    }

    /// Polls `f` until it returns `Some`, yielding to background tasks; panics after the deadline.
    pub(crate) async fn until<T, F, Fut>(&self, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "condition not reached in time"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs `f` to completion while advancing the manual clock 5 ms every real
    /// millisecond, for code paths that wait on the clock.
    pub(crate) async fn ticking<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(f);
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            tokio::select! {
                out = &mut f => return out,
                () = tokio::time::sleep(Duration::from_millis(1)) => {
                    assert!(std::time::Instant::now() < deadline, "not done in time");
                    self.clock.advance(Duration::from_millis(5));
                }
            }
        }
    }

    pub(crate) async fn subscribe(&self, topic: Topic) -> EventStream {
        self.engine.subscribe_topic(topic).await.expect("subscribe")
    }
}

/// The next event of `stream`, failing after the deadline.
pub(crate) async fn next_event(stream: &mut EventStream) -> Arc<Event> {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("no event in time")
        .expect("stream ended")
}

/// Events until one matches `pick`, returning what it picked.
pub(crate) async fn wait_for<T>(
    stream: &mut EventStream,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    loop {
        let e = next_event(stream).await;
        if let Some(v) = pick(&e) {
            return v;
        }
    }
}

/// Status updates of `stream` until one for `temp_id` is final, in order.
pub(crate) async fn statuses_until_final(
    stream: &mut EventStream,
    temp_id: &str,
) -> Vec<StatusUpdate> {
    let mut out = Vec::new();
    loop {
        if let Event::Status(s) = &*next_event(stream).await {
            if s.temp_id.as_deref() == Some(temp_id) {
                out.push(s.clone());
                if s.status.is_final() {
                    return out;
                }
            }
        }
    }
}

pub(crate) fn code<T: std::fmt::Debug>(r: shoot_core::Result<T>) -> ErrorCode {
    r.expect_err("expected an error").code()
}

fn kinds(updates: &[StatusUpdate]) -> Vec<MessageStatus> {
    updates.iter().map(|s| s.status).collect()
}

#[tokio::test]
async fn a_send_goes_through_every_status_in_order() {
    let h = Harness::started().await;
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut mine = h.subscribe(Topic::User(alice)).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let cmd = h.cmd(room, "  hello  ");
    let temp = cmd.temp_id.clone();
    let receipt = h.engine.send_message(alice, cmd).await.unwrap();
    assert_eq!(
        (receipt.seq, receipt.room_id, receipt.duplicate),
        (Seq(1), room, false)
    );
    let expect = vec![
        MessageStatus::Sending,
        MessageStatus::SentToKafka,
        MessageStatus::Processing,
        MessageStatus::Saved,
    ];
    let user_updates = statuses_until_final(&mut mine, &temp).await;
    assert_eq!(kinds(&user_updates), expect);
    assert_eq!(
        user_updates.last().unwrap().message_id,
        Some(receipt.message_id)
    );
    let room_updates = statuses_until_final(&mut in_room, &temp).await;
    assert_eq!(kinds(&room_updates), expect);
    let stored = h.saved(receipt.message_id).await;
    assert_eq!(
        (&*stored.text, stored.seq, stored.status),
        ("hello", Seq(1), MessageStatus::Saved)
    );
    let room_row = h.engine.room(alice, room).await.unwrap().room;
    assert_eq!(
        (room_row.last_seq, room_row.last_message_id),
        (Seq(1), Some(receipt.message_id))
    );
}

/// A change to a valid send command.
type Edit<'a> = Box<dyn FnOnce(&mut SendMessage) + 'a>;

#[tokio::test]
async fn rejected_sends_fail_with_the_precise_code_and_a_failed_status() {
    let h = Harness::started().await;
    let [alice, bob, carol, dave] = h.users(["alice", "bob", "carol", "dave"]).await;
    let room = h.group(alice, &[bob]).await;
    let other_room = h.group(carol, &[dave]).await;
    let foreign = h.send_saved(carol, other_room, "elsewhere").await;
    let (direct, _) = h.engine.create_direct_room(alice, dave).await.unwrap();
    shoot_core::social::SocialStore::block(&*h.stores.social, dave, alice, h.clock.now())
        .await
        .unwrap();
    let mut mine = h.subscribe(Topic::User(alice)).await;

    let cases: Vec<(Edit, ErrorCode)> = vec![
        (Box::new(|c| c.text = "   ".into()), ErrorCode::MessageEmpty),
        (
            Box::new(|c| c.text = "x".repeat(4001)),
            ErrorCode::MessageTooLong,
        ),
        (
            Box::new(|c| c.message_type = MessageType::System),
            ErrorCode::InvalidMessageType,
        ),
        (
            Box::new(|c| c.temp_id = String::new()),
            ErrorCode::InvalidTempId,
        ),
        (
            Box::new(|c| c.temp_id = "x".repeat(65)),
            ErrorCode::InvalidTempId,
        ),
        (
            Box::new(|c| c.room_id = other_room),
            ErrorCode::NotRoomParticipant,
        ),
        (
            Box::new(|c| c.room_id = RoomId(404)),
            ErrorCode::RoomNotFound,
        ),
        (
            Box::new(move |c| c.room_id = direct.id),
            ErrorCode::UserBlocked,
        ),
        (
            Box::new(move |c| c.mentions = vec![carol]),
            ErrorCode::InvalidMention,
        ),
        (
            Box::new(move |c| c.thread_id = Some(foreign.id)),
            ErrorCode::MessageNotFound,
        ),
        (
            Box::new(|c| c.thread_id = Some(MessageId(404))),
            ErrorCode::MessageNotFound,
        ),
    ];
    for (edit, expect) in cases {
        let mut cmd = h.cmd(room, "hi");
        edit(&mut cmd);
        let temp = cmd.temp_id.clone();
        assert_eq!(code(h.engine.send_message(alice, cmd).await), expect);
        let failed = wait_for(&mut mine, |e| match e {
            Event::Status(s) if s.temp_id.as_deref() == Some(temp.as_str()) => Some(s.clone()),
            _ => None,
        })
        .await;
        assert_eq!(failed.status, MessageStatus::Failed, "{expect}");
        assert_eq!(failed.error_code.as_deref(), Some(expect.as_str()));
    }
    assert_eq!(
        h.stores.log.len(),
        1,
        "only the foreign message reached the log"
    );
}

#[tokio::test]
async fn the_rate_limit_rejects_bursts_beyond_the_bucket() {
    let h = Harness::with_limits(|l| {
        l.messages_per_second = 1.0;
        l.message_burst = 3;
    });
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    for _ in 0..3 {
        h.send(alice, room, "hi").await;
    }
    assert_eq!(
        code(h.engine.send_message(alice, h.cmd(room, "hi")).await),
        ErrorCode::RateLimited
    );
    // Bob has his own bucket.
    h.send(bob, room, "hi").await;
    h.clock.advance(Duration::from_secs(1));
    h.send(alice, room, "hi").await;
}

#[tokio::test]
async fn a_retried_temp_id_returns_the_first_message() {
    let h = Harness::started().await;
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let cmd = h.cmd(room, "once");
    let first = h.engine.send_message(alice, cmd.clone()).await.unwrap();
    let again = h.engine.send_message(alice, cmd.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!((again.message_id, again.seq), (first.message_id, first.seq));
    h.saved(first.message_id).await;
    let mut mine = h.subscribe(Topic::User(alice)).await;
    let third = h.engine.send_message(alice, cmd.clone()).await.unwrap();
    assert_eq!(
        (third.message_id, third.duplicate),
        (first.message_id, true)
    );
    let re_emitted = wait_for(&mut mine, |e| match e {
        Event::Status(s) => Some(s.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (re_emitted.status, re_emitted.message_id),
        (MessageStatus::Saved, Some(first.message_id))
    );
    // Same tempId from another sender is another message.
    let bobs = h.engine.send_message(bob, cmd).await.unwrap();
    assert!(!bobs.duplicate);
    assert_eq!(h.stores.log.len(), 2);
    // An expired claim still finds the stored message.
    h.clock.advance(Duration::from_secs(25 * 3600));
    let late = h
        .engine
        .send_message(alice, h.cmd(room, "x"))
        .await
        .unwrap();
    assert!(!late.duplicate);
    let mut replay = h.cmd(room, "once");
    replay.temp_id = h
        .stores
        .messages
        .get_message(first.message_id)
        .await
        .unwrap()
        .unwrap()
        .temp_id
        .unwrap()
        .to_string();
    let replayed = h.engine.send_message(alice, replay).await.unwrap();
    assert_eq!(
        (replayed.message_id, replayed.duplicate),
        (first.message_id, true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_to_one_room_publish_in_seq_order_without_gaps() {
    let h = Arc::new(Harness::new());
    let users = h.users(["a", "b", "c", "d"]).await;
    let room = h.group(users[0], &users[1..]).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    // Drain the room topic while sending, as a server's hub does: the bus buffers only a
    // bounded number of events per topic.
    let collector = tokio::spawn(async move {
        let mut created = Vec::new();
        while created.len() < 100 {
            if let Event::MessageCreated(m) = &*next_event(&mut in_room).await {
                created.push(m.seq.0);
            }
        }
        created
    });
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        for n in 0..25 {
            let h = h.clone();
            let u = *u;
            tasks.push(tokio::spawn(async move {
                let mut cmd = h.cmd(room, &format!("{i}-{n}"));
                cmd.temp_id = format!("{i}-{n}");
                let r = h.engine.send_message(u, cmd.clone()).await.unwrap();
                // Retrying the same tempId concurrently never creates a second message.
                let again = h.engine.send_message(u, cmd).await.unwrap();
                assert_eq!((again.message_id, again.duplicate), (r.message_id, true));
                r
            }));
        }
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap().seq.0);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let created = collector.await.unwrap();
    assert_eq!(created, (1..=100).collect::<Vec<_>>());
    assert_eq!(h.stores.log.len(), 100);
}

#[tokio::test]
async fn an_append_failure_fails_the_send_and_holds_the_temp_id_until_the_claim_is_stale() {
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut mine = h.subscribe(Topic::User(alice)).await;
    h.stores.log.set_failing(true);
    let cmd = h.cmd(room, "hi");
    assert_eq!(
        code(h.engine.send_message(alice, cmd.clone()).await),
        ErrorCode::BackendUnavailable
    );
    let updates = statuses_until_final(&mut mine, &cmd.temp_id).await;
    assert_eq!(
        kinds(&updates),
        vec![MessageStatus::Sending, MessageStatus::Failed]
    );
    assert_eq!(
        updates[1].error_code.as_deref(),
        Some("BACKEND_UNAVAILABLE")
    );
    h.stores.log.set_failing(false);
    // A failed append may still have reached the log (a broker that times out may write the
    // record later): a retry waits until the claim is stale, then checks the store first.
    assert_eq!(
        code(h.engine.send_message(alice, cmd.clone()).await),
        ErrorCode::Conflict
    );
    h.clock.advance(Duration::from_secs(31));
    // The retry takes the claim over, appends, and answers once the store holds the record.
    h.engine.start().await.expect("start");
    let r = h.ticking(h.engine.send_message(alice, cmd)).await.unwrap();
    assert_eq!((r.seq, r.duplicate), (Seq(1), false));
    assert_eq!(h.saved(r.message_id).await.seq, Seq(1));
}

#[tokio::test]
async fn a_taken_over_send_names_the_record_the_store_kept() {
    // The first attempt's append timed out, yet its record reached the log: the retry that
    // takes the claim over appends a second record, which the persistence worker retracts.
    // The retry's receipt must name the stored message, never the retracted one.
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let cmd = h.cmd(room, "late");
    h.stores.log.set_failing(true);
    assert_eq!(
        code(h.engine.send_message(alice, cmd.clone()).await),
        ErrorCode::BackendUnavailable
    );
    h.stores.log.set_failing(false);
    let mut first = Message {
        created_at: h.clock.now(),
        status: MessageStatus::SentToKafka,
        ..text_message(7_000_001, room, 0, alice, Some(&cmd.temp_id), "late")
    };
    // The "timed-out" record, written late by the log.
    first = shoot_core::ports::MessageLog::append(&*h.stores.log, vec![first])
        .await
        .unwrap()
        .remove(0);
    h.clock.advance(Duration::from_secs(31));
    let mut room_events = h.subscribe(Topic::Room(room)).await;
    let retry = h.engine.send_message(alice, cmd.clone());
    let start = async {
        // The persistence worker starts only after the retry appended its own record, so
        // the store sees the late record first.
        h.until(|| async { (h.stores.log.len() == 2).then_some(()) })
            .await;
        h.engine.start().await.expect("start");
    };
    // Another instance's retry meanwhile finds the claim `a:` (appended, not confirmed): it
    // waits for the store as well and appends nothing.
    let other = h.sibling("other");
    let concurrent = async {
        h.until(|| async { (h.stores.log.len() == 2).then_some(()) })
            .await;
        // Until the takeover marked its claim `a:`, the claim is fresh `p:`: CONFLICT.
        h.until(|| async {
            match other.send_message(alice, cmd.clone()).await {
                Err(e) if e.code() == ErrorCode::Conflict => None,
                r => Some(r),
            }
        })
        .await
    };
    let (r, (), c) = futures::join!(h.ticking(retry), start, h.ticking(concurrent));
    let r = r.unwrap();
    let c = c.unwrap();
    assert_eq!(
        (c.message_id, c.seq, c.duplicate),
        (first.id, first.seq, true)
    );
    assert_eq!(h.stores.log.len(), 2);
    assert_eq!(
        (r.message_id, r.seq, r.duplicate),
        (first.id, first.seq, true)
    );
    let stored = h.saved(first.id).await;
    assert_eq!(&*stored.text, "late");
    let retracted = wait_for(&mut room_events, |e| match e {
        Event::MessageChanged {
            message,
            change: MessageChange::Deleted,
            ..
        } => Some(message.id),
        _ => None,
    })
    .await;
    assert_ne!(retracted, first.id);
    let history = h.stores.messages.history(room, newest(50)).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    // A later retry is answered from the claim, with the same message.
    let again = h.engine.send_message(alice, cmd).await.unwrap();
    assert_eq!((again.message_id, again.duplicate), (first.id, true));
}

#[tokio::test]
async fn shutdown_drains_and_then_refuses_sends() {
    let h = Harness::started().await;
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let r = h.send(alice, room, "before").await;
    h.saved(r.message_id).await;
    h.engine.shutdown().await.unwrap();
    let err = h
        .engine
        .send_message(alice, h.cmd(room, "after"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (ErrorCode::BackendUnavailable, "shutting down")
    );
    assert_eq!(
        h.stores.log.lag("persistence"),
        0,
        "the saved batch was committed"
    );
}

#[tokio::test]
async fn the_worker_pushes_room_updates_and_notifications() {
    let h = Harness::started().await;
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob, carol]).await;
    let mut bobs = h.subscribe(Topic::User(bob)).await;
    let mut carols = h.subscribe(Topic::User(carol)).await;
    let root = h.send_saved(alice, room, "hey @bob").await;
    assert_eq!(root.mentions, vec![bob]);
    let (unread, last) = wait_for(&mut bobs, |e| match e {
        Event::RoomUpdate {
            room_id,
            unread_count,
            last_message,
            ..
        } if *room_id == room => Some((*unread_count, last_message.as_ref().map(|m| m.id))),
        _ => None,
    })
    .await;
    assert_eq!((unread, last), (1, Some(root.id)));
    let mention = wait_for(&mut bobs, |e| match e {
        Event::Notification(n) => Some(n.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (mention.kind, mention.message_id, mention.actor_id),
        (NotificationType::Mention, Some(root.id), Some(alice))
    );

    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let mut reply_cmd = h.cmd(room, "a reply");
    reply_cmd.thread_id = Some(root.id);
    let reply = h.engine.send_message(carol, reply_cmd).await.unwrap();
    let reply = h.saved(reply.message_id).await;
    let mut nested = h.cmd(room, "reply to the reply");
    nested.thread_id = Some(reply.id);
    let nested = h.engine.send_message(bob, nested).await.unwrap();
    let nested = h.saved(nested.message_id).await;
    assert_eq!(
        (reply.thread_id, nested.thread_id),
        (Some(root.id), Some(root.id))
    );
    let updated = wait_for(&mut in_room, |e| match e {
        Event::MessageChanged {
            message,
            change: MessageChange::ThreadUpdated,
            ..
        } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(updated.id, root.id);
    let alices = h
        .until(|| async {
            let n = h.engine.notifications(alice, 10, 0).await.unwrap();
            (n.iter()
                .filter(|n| n.kind == NotificationType::Reply)
                .count()
                == 2)
                .then_some(n)
        })
        .await;
    assert!(alices.iter().all(|n| n.kind == NotificationType::Reply));
    let thread = h.engine.thread(alice, root.id, None, 10).await.unwrap();
    assert_eq!(thread.root.reply_count, 2);
    assert_eq!(
        thread.replies.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![reply.id, nested.id]
    );
    // Carol's unread count counts everything but her own messages.
    let carol_unread = wait_for(&mut carols, |e| match e {
        Event::RoomUpdate {
            unread_count,
            last_message: Some(m),
            ..
        } if m.id == nested.id => Some(*unread_count),
        _ => None,
    })
    .await;
    assert_eq!(carol_unread, 2);
}

#[tokio::test]
async fn backend_failures_are_retried_and_poison_goes_to_the_dead_letter_log() {
    // Inserts fail with a backend error twice, and reject messages whose text is "poison".
    let flaky = Arc::new(SpyMessages {
        insert_failures_left: AtomicUsize::new(2),
        poison_text: Some("poison"),
        ..SpyMessages::default()
    });
    let store = flaky.clone();
    let h = Harness::custom(|_| {}, move |p| p.messages = store);
    h.engine.start().await.unwrap();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut mine = h.subscribe(Topic::User(alice)).await;
    let ok = h.send(alice, room, "fine").await;
    // The worker backs off on the manual clock: advance it until the insert went through.
    h.until(|| async {
        h.clock.advance(Duration::from_secs(1));
        flaky.inner.get_message(ok.message_id).await.unwrap()
    })
    .await;
    assert!(flaky.inserts.lock().unwrap().len() >= 3);
    let poison_cmd = h.cmd(room, "poison");
    let poison_temp = poison_cmd.temp_id.clone();
    let poison = h.engine.send_message(alice, poison_cmd).await.unwrap();
    let updates = statuses_until_final(&mut mine, &poison_temp).await;
    assert_eq!(updates.last().unwrap().status, MessageStatus::Failed);
    let dead = h
        .until(|| async { Some(h.stores.log.dead_letters()).filter(|d| !d.is_empty()) })
        .await;
    assert_eq!(dead[0].0.message.id, poison.message_id);
    assert!(dead[0].1.contains("poison"));
    let after = h.send(alice, room, "still flowing").await;
    h.until(|| async { flaky.inner.get_message(after.message_id).await.unwrap() })
        .await;
    h.until(|| async { (h.stores.log.lag("persistence") == 0).then_some(()) })
        .await;
}

struct FakeFetcher;

#[async_trait]
impl LinkFetcher for FakeFetcher {
    async fn fetch_preview(&self, url: &str) -> PortResult<Option<UrlPreview>> {
        Ok(Some(UrlPreview {
            url: url.to_owned(),
            title: Some("Example".into()),
            ..UrlPreview::default()
        }))
    }
}

#[tokio::test]
async fn link_previews_are_stored_after_saving_and_broadcast() {
    let h = Harness::custom(|_| {}, |p| p.link_fetcher = Some(Arc::new(FakeFetcher)));
    h.engine.start().await.unwrap();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let r = h.send(alice, room, "look https://example.com/page.").await;
    let changed = wait_for(&mut in_room, |e| match e {
        Event::MessageChanged {
            message,
            change: MessageChange::PreviewAdded,
            ..
        } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(changed.id, r.message_id);
    let preview = changed.url_preview.expect("preview");
    assert_eq!(
        (preview.url.as_str(), preview.title.as_deref()),
        ("https://example.com/page", Some("Example"))
    );
    let stored = h.saved(r.message_id).await;
    assert_eq!(
        stored.url_preview.map(|p| p.url),
        Some("https://example.com/page".to_owned())
    );
    let plain = h.send_saved(alice, room, "no link").await;
    assert_eq!(plain.url_preview, None);
}

#[tokio::test]
async fn typing_is_throttled_and_stops_by_itself() {
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let typing = |e: &Event| match e {
        Event::Typing {
            user_id, typing, ..
        } => Some((*user_id, *typing)),
        _ => None,
    };
    h.engine.typing(alice, room, true).await.unwrap();
    h.engine.typing(alice, room, true).await.unwrap();
    h.engine.typing(alice, room, false).await.unwrap();
    h.engine.typing(bob, room, true).await.unwrap();
    assert_eq!(wait_for(&mut in_room, typing).await, (alice, true));
    assert_eq!(wait_for(&mut in_room, typing).await, (alice, false));
    assert_eq!(wait_for(&mut in_room, typing).await, (bob, true));
    // Refreshing keeps Alice typing past the first timeout.
    h.clock.advance(Duration::from_secs(2));
    h.engine.typing(alice, room, true).await.unwrap();
    assert_eq!(wait_for(&mut in_room, typing).await, (alice, true));
    h.clock.advance(Duration::from_secs(3));
    // Bob's 5 s passed: he stops automatically; Alice (refreshed 3 s ago) does not.
    assert_eq!(wait_for(&mut in_room, typing).await, (bob, false));
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(wait_for(&mut in_room, typing).await, (alice, false));
    assert_eq!(
        code(h.engine.typing(UserId(404), room, true).await),
        ErrorCode::NotRoomParticipant
    );
}

#[tokio::test]
async fn presence_tracks_sessions_and_active_users() {
    let h = Harness::new();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    h.engine.session_connected(alice).await.unwrap();
    h.engine.session_connected(alice).await.unwrap();
    h.engine.session_connected(bob).await.unwrap();
    assert_eq!(h.engine.active_users(bob, room).await.unwrap(), {
        let mut v = vec![alice, bob];
        v.sort();
        v
    });
    h.engine.session_disconnected(alice).await.unwrap();
    assert_eq!(
        h.engine.active_users(bob, room).await.unwrap().len(),
        2,
        "one session left"
    );
    h.engine.session_disconnected(alice).await.unwrap();
    assert_eq!(h.engine.active_users(bob, room).await.unwrap(), vec![bob]);
    let user = shoot_core::identity::UserStore::get_user(&*h.stores.users, alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.last_seen_at, Some(h.clock.now()));
    // Changes within `active_users_interval` of the first list are coalesced into one list
    // sent at its end.
    h.clock.advance(h.engine.limits().active_users_interval);
    let last = wait_for(&mut in_room, |e| match e {
        Event::ActiveUsers { user_ids, .. } if user_ids == &vec![bob] => Some(user_ids.clone()),
        _ => None,
    })
    .await;
    assert_eq!(last, vec![bob]);
    // Without heart-beats Bob's presence lapses.
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(
        h.engine.active_users(alice, room).await.unwrap(),
        Vec::<UserId>::new()
    );
}

#[tokio::test]
async fn active_user_lists_are_coalesced_and_not_broadcast_in_big_rooms() {
    let h = Harness::with_limits(|l| l.active_users_max_room = 4);
    let [a, b, c, d, e] = h.users(["a", "b", "c", "d", "e"]).await;
    let small = h.group(a, &[b, c]).await;
    let mut in_small = h.subscribe(Topic::Room(small)).await;
    let lists = |stream: &mut EventStream| {
        let mut out = Vec::new();
        while let Some(Some(event)) = stream.next().now_or_never() {
            if let Event::ActiveUsers { user_ids, .. } = &*event {
                out.push(user_ids.clone());
            }
        }
        out
    };
    // The first connect is announced at once; the next two within the interval are coalesced
    // into one list at its end.
    for u in [a, b, c] {
        h.engine.session_connected(u).await.unwrap();
    }
    tokio::task::yield_now().await;
    assert_eq!(lists(&mut in_small), vec![vec![a]]);
    h.clock.advance(h.engine.limits().active_users_interval);
    let mut all = vec![a, b, c];
    all.sort();
    assert_eq!(
        wait_for(&mut in_small, |e| match e {
            Event::ActiveUsers { user_ids, .. } => Some(user_ids.clone()),
            _ => None,
        })
        .await,
        all
    );
    assert!(lists(&mut in_small).is_empty(), "one list per interval");

    // Above `active_users_max_room` members no list is broadcast; asking still works.
    let big = h.group(a, &[b, c, d, e]).await;
    let mut in_big = h.subscribe(Topic::Room(big)).await;
    h.clock.advance(h.engine.limits().active_users_interval);
    h.engine.session_connected(d).await.unwrap();
    h.clock.advance(h.engine.limits().active_users_interval);
    h.engine.session_connected(e).await.unwrap();
    tokio::task::yield_now().await;
    assert!(lists(&mut in_big).is_empty());
    assert_eq!(h.engine.active_users(a, big).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_removed_participant_cannot_send_right_after_sending() {
    // The send path caches the room briefly; a membership change must take effect at once.
    let h = Harness::started().await;
    let [alice, bob, carol] = h.users(["alice", "bob", "carol"]).await;
    let room = h.group(alice, &[bob, carol]).await;
    h.engine
        .send_message(bob, h.cmd(room, "one"))
        .await
        .unwrap();
    h.engine.remove_participant(alice, room, bob).await.unwrap();
    assert_eq!(
        code(h.engine.send_message(bob, h.cmd(room, "two")).await),
        ErrorCode::NotRoomParticipant
    );
    h.engine
        .send_message(carol, h.cmd(room, "three"))
        .await
        .unwrap();
    h.engine.leave_room(carol, room).await.unwrap();
    assert_eq!(
        code(h.engine.send_message(carol, h.cmd(room, "four")).await),
        ErrorCode::NotRoomParticipant
    );
    h.engine
        .add_participants(alice, room, vec![bob])
        .await
        .unwrap();
    h.engine
        .send_message(bob, h.cmd(room, "five"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_big_rooms_cached_entry_past_its_ttl_still_sees_membership_changed_elsewhere() {
    // Past the TTL the send path keeps a big room's cached list and checks the sender alone;
    // removals and additions made by another instance must still take effect.
    let h = Harness::started().await;
    let [alice, bob, dan] = h.users(["alice", "bob", "dan"]).await;
    let mut members = vec![bob];
    for i in 0..70 {
        members.push(h.user(&format!("member{i}")).await);
    }
    let room = h.group(alice, &members).await;
    h.send(bob, room, "cached").await;
    let other = h.sibling("other");
    other.remove_participant(alice, room, bob).await.unwrap();
    other
        .add_participants(alice, room, vec![dan])
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(
        code(h.engine.send_message(bob, h.cmd(room, "gone")).await),
        ErrorCode::NotRoomParticipant
    );
    h.send(alice, room, "still here").await;
    h.send(dan, room, "new here").await;
    // A message that needs the list (a mention) reads it again: dan is in it.
    let mut cmd = h.cmd(room, "hi @dan");
    cmd.mentions = vec![dan];
    h.clock.advance(Duration::from_secs(2));
    h.engine.send_message(alice, cmd).await.unwrap();
}

#[tokio::test]
async fn a_duplicate_temp_id_that_reaches_the_log_is_retracted_for_the_stored_message() {
    // A send reported FAILED whose record reached the log anyway, then retried: two log
    // records for one (sender, tempId). The store keeps the first; the second is retracted
    // and its sender is pointed at the stored message.
    let h = Harness::started().await;
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let first = h.send_saved(alice, room, "once").await;
    let mut alices = h.subscribe(Topic::User(alice)).await;
    let mut in_room = h.subscribe(Topic::Room(room)).await;
    let ghost = Message {
        id: MessageId(first.id.0 + 1_000_000),
        seq: Seq::ZERO,
        ..first.clone()
    };
    let appended = shoot_core::ports::MessageLog::append(&*h.stores.log, vec![ghost.clone()])
        .await
        .unwrap();
    assert_eq!(appended[0].seq, Seq(first.seq.0 + 1));
    let retracted = wait_for(&mut in_room, |e| match e {
        Event::MessageChanged {
            message,
            change: MessageChange::Deleted,
            ..
        } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!((retracted.id, retracted.is_deleted), (ghost.id, true));
    let status = wait_for(&mut alices, |e| match e {
        Event::Status(u) if u.temp_id == first.temp_id && u.status == MessageStatus::Saved => {
            Some(u.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        (status.message_id, status.seq, status.status),
        (Some(first.id), Some(first.seq), MessageStatus::Saved)
    );
    let history = h.engine.history(alice, room, newest(10)).await.unwrap();
    let ids: Vec<MessageId> = history.iter().map(|r| r.message.id).collect();
    assert_eq!(ids, vec![first.id]);
}

#[tokio::test]
async fn subscriptions_are_authorised() {
    let h = Harness::new();
    let [alice, bob, eve] = h.users(["alice", "bob", "eve"]).await;
    let room = h.group(alice, &[bob]).await;
    assert_eq!(
        code(h.engine.subscribe_room(eve, room).await.map(|_| ())),
        ErrorCode::NotRoomParticipant
    );
    let mut s = h.engine.subscribe_room(bob, room).await.unwrap();
    let r = h.send(alice, room, "hi").await;
    let created = wait_for(&mut s, |e| match e {
        Event::MessageCreated(m) => Some(m.id),
        _ => None,
    })
    .await;
    assert_eq!(created, r.message_id);
}

/// A log that records the size of every append and holds the first one until released, so
/// that sends queue up behind it.
struct GatedLog {
    inner: Arc<shoot_core::memory::MemoryLog>,
    sizes: Mutex<Vec<usize>>,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl shoot_core::ports::MessageLog for GatedLog {
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>> {
        self.sizes.lock().unwrap().push(batch.len());
        let permit = self.gate.acquire().await.expect("gate");
        permit.forget();
        self.gate.add_permits(1);
        self.inner.append(batch).await
    }
    async fn consumer(&self, group: &str) -> PortResult<Box<dyn shoot_core::ports::LogConsumer>> {
        self.inner.consumer(group).await
    }
    async fn dead_letter(
        &self,
        entry: &shoot_core::ports::LogEntry,
        reason: &str,
    ) -> PortResult<()> {
        self.inner.dead_letter(entry, reason).await
    }
}

/// A harness whose log holds every append until `gate` gets a permit, with alice and bob in a
/// group room.
async fn gated_room() -> (Arc<GatedLog>, Arc<Harness>, [UserId; 2], RoomId) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_2024());
    let log = Arc::new(GatedLog {
        inner: Arc::new(shoot_core::memory::MemoryLog::new(clock)),
        sizes: Mutex::new(Vec::new()),
        gate: tokio::sync::Semaphore::new(0),
    });
    let gated = log.clone();
    let h = Arc::new(Harness::custom(|_| {}, move |p| p.log = gated));
    let users = h.users(["alice", "bob"]).await;
    let room = h.group(users[0], &[users[1]]).await;
    (log, h, users, room)
}

#[tokio::test]
async fn appends_batch_up_behind_a_slow_log() {
    let (log, h, [alice, bob], room) = gated_room().await;
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.send(alice, room, "first").await })
    };
    h.until(|| async { (log.sizes.lock().unwrap().len() == 1).then_some(()) })
        .await;
    let mut bobs = h.subscribe(Topic::User(bob)).await;
    let mut rest = Vec::new();
    for i in 0..10 {
        let h = h.clone();
        rest.push(tokio::spawn(async move {
            h.send(bob, room, &format!("queued {i}")).await
        }));
    }
    // A send queued behind a batch being appended emits SENDING at once, before it joins the
    // lane (it does not wait for that append).
    for _ in 0..10 {
        let sending = wait_for(&mut bobs, |e| match e {
            Event::Status(s) => Some(s.status),
            _ => None,
        })
        .await;
        assert_eq!(sending, MessageStatus::Sending);
    }
    tokio::task::yield_now().await;
    log.gate.add_permits(1);
    assert_eq!(first.await.unwrap().seq, Seq(1));
    let mut seqs = Vec::new();
    for t in rest {
        seqs.push(t.await.unwrap().seq.0);
    }
    seqs.sort();
    assert_eq!(seqs, (2..=11).collect::<Vec<_>>());
    assert_eq!(
        *log.sizes.lock().unwrap(),
        vec![1, 10],
        "one append for everything queued"
    );
}

/// Every message reports SENDING exactly once, before its SENT_TO_KAFKA, whether the lane
/// drain published it with its batch (the lane was idle) or the sender did (the lane was busy
/// appending an earlier batch).
#[tokio::test]
async fn sending_is_reported_once_and_first_on_idle_and_busy_lanes() {
    let (log, h, [alice, _], room) = gated_room().await;
    let mut alices = h.subscribe(Topic::User(alice)).await;
    let spawn_send = |text: String| {
        let h = h.clone();
        tokio::spawn(async move { h.send(alice, room, &text).await })
    };
    // An idle lane: the drain reports SENDING, then blocks in the append.
    let mut sends = vec![spawn_send("first".to_owned())];
    h.until(|| async { (log.sizes.lock().unwrap().len() == 1).then_some(()) })
        .await;
    // A busy lane: each sender reports its own SENDING.
    for i in 0..4 {
        sends.push(spawn_send(format!("queued {i}")));
    }
    let mut statuses: Vec<(Arc<str>, MessageStatus)> = Vec::new();
    let record = |statuses: &mut Vec<(Arc<str>, MessageStatus)>, s: &StatusUpdate| {
        statuses.push((s.temp_id.clone().expect("tempId"), s.status));
    };
    while statuses.len() < 5 {
        let event = next_event(&mut alices).await;
        if let Event::Status(s) = &*event {
            record(&mut statuses, s);
        }
    }
    assert!(
        statuses.iter().all(|(_, st)| *st == MessageStatus::Sending),
        "nothing is appended while the gate is closed: {statuses:?}"
    );
    log.gate.add_permits(1);
    let mut receipts = Vec::new();
    for t in sends {
        receipts.push(t.await.unwrap());
    }
    // Then an idle lane again.
    receipts.push(h.send(alice, room, "last").await);
    let sent = |statuses: &[(Arc<str>, MessageStatus)]| {
        statuses
            .iter()
            .filter(|(_, st)| *st == MessageStatus::SentToKafka)
            .count()
    };
    while sent(&statuses) < receipts.len() {
        let event = next_event(&mut alices).await;
        if let Event::Status(s) = &*event {
            record(&mut statuses, s);
        }
    }
    for r in &receipts {
        let mine: Vec<MessageStatus> = statuses
            .iter()
            .filter(|(t, _)| **t == *r.temp_id)
            .map(|(_, st)| *st)
            .collect();
        // (PROCESSING and SAVED may follow, from the persistence worker.)
        let sending = mine
            .iter()
            .filter(|st| **st == MessageStatus::Sending)
            .count();
        assert_eq!(sending, 1, "{}: {statuses:?}", r.temp_id);
        assert_eq!(mine.first(), Some(&MessageStatus::Sending), "{}", r.temp_id);
        assert!(
            mine.contains(&MessageStatus::SentToKafka),
            "{}: {statuses:?}",
            r.temp_id
        );
    }
}
