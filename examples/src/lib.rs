//! Bodies of the runnable examples, as library functions so that the example binaries and
//! the integration test (`tests/it.rs`) run exactly the same code.
//!
//! - [`embedded_chat`]: the whole engine in-process on the memory ports — sign-up, a direct
//!   room, messages with their status lifecycle, a reaction, a pin, a thread reply and read
//!   receipts. Run it with `cargo run -p shoot-examples --example embedded_chat`.
//! - [`custom_port`]: implementing ports yourself — a [`LinkFetcher`] serving canned previews
//!   and an [`EventBus`] decorator counting what the engine publishes — and plugging them into
//!   [`Ports`]. Run it with `cargo run -p shoot-examples --example custom_port`.
//!
//! Both need a tokio runtime (they use [`TokioClock`] and [`TokioSpawner::current`]) and
//! finish on their own: every wait for an asynchronous outcome polls an event stream with a
//! deadline ([`WAIT`]), never a fixed sleep.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use shoot_core::engine::{NewUser, ReadTarget, SendMessage, SendReceipt};
use shoot_core::events::{Event, MessageChange, Topic};
use shoot_core::identity::User;
use shoot_core::identity::password::PasswordHasherConfig;
use shoot_core::memory::memory_ports;
use shoot_core::messages::{HistoryQuery, MessageStatus, MessageType, UrlPreview};
use shoot_core::ports::{EventBus, EventStream, LinkFetcher};
use shoot_core::{ChatEngine, EngineConfig, MessageId, PortResult, Ports, RoomId, UserId};
use shoot_tokio::{TokioClock, TokioSpawner};

/// Longest wait for any asynchronous outcome (a status, an event) before giving up.
pub const WAIT: Duration = Duration::from_secs(10);

/// Memory ports on the current tokio runtime.
fn tokio_memory_ports() -> Ports {
    memory_ports(Arc::new(TokioClock), Arc::new(TokioSpawner::current()))
}

/// Engine settings for the examples: defaults, but with cheap Argon2 parameters so sign-up
/// is instant. A real deployment keeps `PasswordHasherConfig::PRODUCTION`.
fn example_config() -> EngineConfig {
    EngineConfig {
        password: PasswordHasherConfig::fast(),
        ..EngineConfig::default()
    }
}

async fn sign_up(engine: &ChatEngine, username: &str, nickname: &str) -> anyhow::Result<User> {
    let user = engine
        .signup(NewUser {
            username: username.to_owned(),
            nickname: nickname.to_owned(),
            email: format!("{username}@example.org"),
            password: "Correct-Horse-9".to_owned(),
            bio: None,
        })
        .await
        .with_context(|| format!("signing up {username}"))?;
    Ok(user)
}

fn text(
    room_id: RoomId,
    temp_id: &str,
    content: &str,
    thread_id: Option<MessageId>,
) -> SendMessage {
    SendMessage {
        room_id,
        text: content.to_owned(),
        message_type: MessageType::Text,
        temp_id: temp_id.to_owned(),
        thread_id,
        mentions: Vec::new(),
    }
}

/// Follows the status updates on one user's topic, remembering every transition per tempId.
pub struct StatusWatcher {
    stream: EventStream,
    seen: HashMap<String, Vec<MessageStatus>>,
}

impl StatusWatcher {
    /// Watches the statuses of `user`'s messages (subscribe before sending).
    pub async fn new(engine: &ChatEngine, user: UserId) -> anyhow::Result<StatusWatcher> {
        Ok(StatusWatcher {
            stream: engine.subscribe_user(user).await?,
            seen: HashMap::new(),
        })
    }

    /// Waits (at most [`WAIT`]) until `temp_id` reaches a final status (SAVED or FAILED) and
    /// returns every status it went through, in order.
    pub async fn until_final(&mut self, temp_id: &str) -> anyhow::Result<Vec<MessageStatus>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(list) = self.seen.get(temp_id) {
                if list
                    .iter()
                    .any(|s| matches!(s, MessageStatus::Saved | MessageStatus::Failed))
                {
                    return Ok(list.clone());
                }
            }
            let event = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| {
                    anyhow!(
                        "no final status for {temp_id} within {WAIT:?}: {:?}",
                        self.seen.get(temp_id)
                    )
                })?
                .ok_or_else(|| anyhow!("event stream closed"))?;
            if let Event::Status(update) = &*event {
                if let Some(t) = &update.temp_id {
                    self.seen
                        .entry(t.to_string())
                        .or_default()
                        .push(update.status);
                }
            }
        }
    }
}

fn arrows(statuses: &[MessageStatus]) -> String {
    statuses
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Sends, prints the receipt, then waits for and prints the status transitions.
async fn send_and_follow(
    engine: &ChatEngine,
    watcher: &mut StatusWatcher,
    out: &mut impl Write,
    (sender, name): (UserId, &str),
    cmd: SendMessage,
) -> anyhow::Result<SendReceipt> {
    let temp_id = cmd.temp_id.clone();
    let content = cmd.text.clone();
    let receipt = engine.send_message(sender, cmd).await?;
    writeln!(
        out,
        "{name} → \"{content}\" (tempId {temp_id}, seq {})",
        receipt.seq
    )?;
    let statuses = watcher.until_final(&temp_id).await?;
    writeln!(
        out,
        "    status: {}  (persistedId {})",
        arrows(&statuses),
        receipt.message_id
    )?;
    if statuses.last() != Some(&MessageStatus::Saved) {
        bail!("{temp_id} ended {:?}", statuses.last());
    }
    Ok(receipt)
}

/// Takes every event already delivered to `stream` without waiting.
fn drain_ready(stream: &mut EventStream) -> Vec<Arc<Event>> {
    let mut out = Vec::new();
    while let Some(Some(e)) = stream.next().now_or_never() {
        out.push(e);
    }
    out
}

fn event_kind(e: &Event) -> String {
    match e {
        Event::MessageCreated(_) => "MessageCreated".into(),
        Event::MessageChanged { change, .. } => match change {
            MessageChange::Reaction { .. } => "MessageChanged(Reaction)".into(),
            other => format!("MessageChanged({other:?})"),
        },
        Event::Status(s) => format!("Status({})", s.status.as_str()),
        Event::Typing { .. } => "Typing".into(),
        Event::ReadReceipt { .. } => "ReadReceipt".into(),
        Event::ActiveUsers { .. } => "ActiveUsers".into(),
        Event::RoomChanged { .. } => "RoomChanged".into(),
        Event::RoomUpdate { .. } => "RoomUpdate".into(),
        Event::Notification(_) => "Notification".into(),
        Event::UserStatusChanged { .. } => "UserStatusChanged".into(),
    }
}

/// The embedded-chat walkthrough; writes its narration to `out`.
pub async fn embedded_chat(out: &mut impl Write) -> anyhow::Result<()> {
    let engine = ChatEngine::new(tokio_memory_ports(), example_config());
    engine.start().await?;
    writeln!(
        out,
        "== Shoot, embedded: the whole engine in this process, on the memory ports =="
    )?;

    let alice = sign_up(&engine, "alice", "Alice").await?;
    let bob = sign_up(&engine, "bob", "Bob").await?;
    writeln!(
        out,
        "signed up: {} (id {}, code {})",
        alice.nickname, alice.id, alice.user_code
    )?;
    writeln!(
        out,
        "signed up: {} (id {}, code {})",
        bob.nickname, bob.id, bob.user_code
    )?;
    let names: HashMap<UserId, &str> = HashMap::from([(alice.id, "Alice"), (bob.id, "Bob")]);

    let (room, created) = engine.create_direct_room(alice.id, bob.id).await?;
    writeln!(out, "direct room {} opened (created: {created})", room.id)?;

    // Subscribe before sending: a bus delivers what is published after subscribing.
    let mut alice_statuses = StatusWatcher::new(&engine, alice.id).await?;
    let mut bob_statuses = StatusWatcher::new(&engine, bob.id).await?;
    let mut bob_room_events = engine.subscribe_room(bob.id, room.id).await?;

    writeln!(
        out,
        "\n-- conversation (each send returns once durable; SAVED follows from the worker) --"
    )?;
    let a = (alice.id, "Alice");
    let b = (bob.id, "Bob");
    let lunch = send_and_follow(
        &engine,
        &mut alice_statuses,
        out,
        a,
        text(room.id, "a-1", "Hi Bob! Lunch tomorrow?", None),
    )
    .await?;
    let place = send_and_follow(
        &engine,
        &mut bob_statuses,
        out,
        b,
        text(room.id, "b-1", "Sure: 12:30 at the noodle bar on 5th", None),
    )
    .await?;
    send_and_follow(
        &engine,
        &mut alice_statuses,
        out,
        a,
        text(room.id, "a-2", "Perfect, see you there", None),
    )
    .await?;

    // Re-sending the same tempId never creates a second message.
    let again = engine
        .send_message(
            alice.id,
            text(room.id, "a-2", "Perfect, see you there", None),
        )
        .await?;
    writeln!(
        out,
        "Alice retries tempId a-2 → duplicate: {} (same id: {})",
        again.duplicate, again.message_id
    )?;

    writeln!(out, "\n-- reaction, pin, thread --")?;
    let reacted = engine
        .add_reaction(bob.id, lunch.message_id, "like")
        .await?;
    let by: Vec<&str> = reacted
        .reactions
        .get("like")
        .into_iter()
        .flatten()
        .map(|u| names.get(u).copied().unwrap_or("?"))
        .collect();
    writeln!(
        out,
        "Bob reacted 'like' to seq {}: like by {by:?}",
        reacted.seq
    )?;
    let pinned = engine.pin_message(alice.id, place.message_id).await?;
    let pin = pinned.pin.context("pin missing")?;
    writeln!(
        out,
        "Alice pinned seq {} (pinned by {}); pinned in room: {}",
        pinned.seq,
        names.get(&pin.pinned_by).copied().unwrap_or("?"),
        engine.pinned_messages(alice.id, room.id).await?.len()
    )?;
    send_and_follow(
        &engine,
        &mut bob_statuses,
        out,
        b,
        text(room.id, "b-2", "Can Carol join us?", Some(lunch.message_id)),
    )
    .await?;
    let thread = engine.thread(alice.id, lunch.message_id, None, 10).await?;
    writeln!(
        out,
        "thread on \"{}\": {} repl{} — {}",
        thread.root.text,
        thread.replies.len(),
        if thread.replies.len() == 1 {
            "y"
        } else {
            "ies"
        },
        thread
            .replies
            .iter()
            .map(|m| format!("\"{}\"", m.text))
            .collect::<Vec<_>>()
            .join(", ")
    )?;

    writeln!(out, "\n-- read receipts --")?;
    let unread_before = unread_in(&engine, bob.id, room.id).await?;
    let cursor = engine.mark_read(bob.id, room.id, ReadTarget::All).await?;
    let unread_after = unread_in(&engine, bob.id, room.id).await?;
    writeln!(
        out,
        "Bob had {unread_before} unread; marks all read (cursor seq {cursor}); now {unread_after} unread"
    )?;

    writeln!(out, "\n-- history as Alice sees it --")?;
    let history = engine
        .history(
            alice.id,
            room.id,
            HistoryQuery {
                before: None,
                after: None,
                limit: 50,
            },
        )
        .await?;
    for record in &history {
        let m = &record.message;
        let mut tags = Vec::new();
        if !m.reactions.is_empty() {
            let r: BTreeMap<&str, usize> = m
                .reactions
                .iter()
                .map(|(k, v)| (k.as_str(), v.len()))
                .collect();
            tags.push(format!("reactions {r:?}"));
        }
        if m.pin.is_some() {
            tags.push("pinned".to_owned());
        }
        if let Some(root) = m.thread_id {
            tags.push(format!("reply in thread {root}"));
        }
        if m.reply_count > 0 {
            tags.push(format!("{} thread reply", m.reply_count));
        }
        tags.push(format!("read by {}", record.read_count));
        writeln!(
            out,
            "  [{}] {}: {}  ({}, {})",
            m.seq,
            names.get(&m.sender_id).copied().unwrap_or("?"),
            m.text,
            m.status.as_str(),
            tags.join(", ")
        )?;
    }

    writeln!(out, "\n-- what Bob's room subscription received --")?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in drain_ready(&mut bob_room_events) {
        *counts.entry(event_kind(&e)).or_default() += 1;
    }
    for (kind, n) in &counts {
        writeln!(out, "  {kind}: {n}")?;
    }

    engine.shutdown().await?;
    writeln!(out, "\nengine shut down cleanly")?;
    Ok(())
}

async fn unread_in(engine: &ChatEngine, user: UserId, room: RoomId) -> anyhow::Result<u64> {
    Ok(engine
        .unread_counts(user)
        .await?
        .into_iter()
        .find(|(r, _)| *r == room)
        .map_or(0, |(_, n)| n))
}

/// A [`LinkFetcher`] that never touches the network: previews come from a fixed table.
/// Useful in tests, demos and air-gapped deployments.
pub struct CannedPreviews {
    pages: HashMap<String, UrlPreview>,
}

impl CannedPreviews {
    /// A fetcher answering for the given `(url, title, description)` pages.
    pub fn new(pages: &[(&str, &str, &str)]) -> CannedPreviews {
        let pages = pages
            .iter()
            .map(|(url, title, description)| {
                let preview = UrlPreview {
                    url: (*url).to_owned(),
                    title: Some((*title).to_owned()),
                    description: Some((*description).to_owned()),
                    image_url: None,
                    site_name: Some("canned".to_owned()),
                };
                ((*url).to_owned(), preview)
            })
            .collect();
        CannedPreviews { pages }
    }
}

#[async_trait]
impl LinkFetcher for CannedPreviews {
    async fn fetch_preview(&self, url: &str) -> PortResult<Option<UrlPreview>> {
        // `None` = "this page has no preview": the engine simply leaves the message as is.
        Ok(self.pages.get(url).cloned())
    }
}

/// An [`EventBus`] decorator: counts publishes per topic kind, then delegates.
pub struct CountingBus {
    inner: Arc<dyn EventBus>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl CountingBus {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn EventBus>) -> CountingBus {
        CountingBus {
            inner,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes so far, by topic kind (`room`, `user`).
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl EventBus for CountingBus {
    async fn publish(&self, topic: Topic, event: Event) -> PortResult<()> {
        let kind = match topic {
            Topic::Room(_) => "room",
            Topic::User(_) => "user",
        };
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
        self.inner.publish(topic, event).await
    }

    async fn subscribe(&self, topic: Topic) -> PortResult<EventStream> {
        self.inner.subscribe(topic).await
    }
}

/// The custom-port walkthrough; writes its narration to `out`.
pub async fn custom_port(out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "== Shoot with custom ports ==")?;
    // Start from the memory ports and replace the ones you want: any `Arc<dyn Port>` works.
    let mut ports = tokio_memory_ports();
    let fetcher = CannedPreviews::new(&[(
        "https://example.org/rust",
        "Rust Programming Language",
        "A language empowering everyone to build reliable and efficient software.",
    )]);
    ports.link_fetcher = Some(Arc::new(fetcher));
    let bus = Arc::new(CountingBus::new(ports.bus.clone()));
    ports.bus = bus.clone();
    writeln!(
        out,
        "ports: memory stores + CannedPreviews link fetcher + CountingBus(MemoryBus)"
    )?;

    let engine = ChatEngine::new(ports, example_config());
    engine.start().await?;
    let carol = sign_up(&engine, "carol", "Carol").await?;
    let dave = sign_up(&engine, "dave", "Dave").await?;
    let (room, _) = engine.create_direct_room(carol.id, dave.id).await?;
    let mut room_events = engine.subscribe_room(dave.id, room.id).await?;
    let mut statuses = StatusWatcher::new(&engine, carol.id).await?;

    let sent = send_and_follow(
        &engine,
        &mut statuses,
        out,
        (carol.id, "Carol"),
        text(
            room.id,
            "c-1",
            "Have you seen https://example.org/rust ?",
            None,
        ),
    )
    .await?;

    // The preview is fetched in the background and announced as a MessageChanged event.
    let deadline = tokio::time::Instant::now() + WAIT;
    let preview = loop {
        let event = tokio::time::timeout_at(deadline, room_events.next())
            .await
            .map_err(|_| anyhow!("no link preview within {WAIT:?}"))?
            .ok_or_else(|| anyhow!("event stream closed"))?;
        if let Event::MessageChanged {
            message,
            change: MessageChange::PreviewAdded,
            ..
        } = &*event
        {
            if message.id == sent.message_id {
                break message
                    .url_preview
                    .clone()
                    .context("PreviewAdded without a preview")?;
            }
        }
    };
    writeln!(
        out,
        "link preview of {}: \"{}\" — {}",
        preview.url,
        preview.title.as_deref().unwrap_or(""),
        preview.description.as_deref().unwrap_or("")
    )?;
    let stored = engine.message(dave.id, sent.message_id).await?;
    writeln!(
        out,
        "stored message has preview: {}",
        stored.message.url_preview.is_some()
    )?;

    // A link the table does not know: no preview, nothing breaks.
    send_and_follow(
        &engine,
        &mut statuses,
        out,
        (carol.id, "Carol"),
        text(room.id, "c-2", "and https://unknown.example/ ?", None),
    )
    .await?;

    engine.shutdown().await?;
    let counts = bus.counts();
    writeln!(out, "events published through CountingBus: {counts:?}")?;
    writeln!(out, "engine shut down cleanly")?;
    Ok(())
}
