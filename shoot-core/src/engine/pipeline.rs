//! The send pipeline: validation, rate limiting, idempotency and per-room ordered appends to
//! the durable log.
//!
//! # Ordering
//!
//! Every room has at most one *lane* at a time: a queue of accepted messages and one drain task
//! (spawned through the [`Spawner`](crate::ports::Spawner) port, so a caller that goes away
//! never stalls the lane). The drain repeatedly takes **all** queued messages of the room,
//! publishes their `SENDING` with one bus call (a sender that finds the drain busy with a batch
//! publishes its own at once instead: its message waits for that batch's append), appends
//! them with one `log.append` call (the log assigns the seqs), then publishes, in seq order,
//! `SENT_TO_KAFKA` and [`Event::MessageCreated`] and wakes the waiting senders. Per-room
//! publish order therefore equals seq order, and appends batch up under load. An idle lane is
//! removed from the map.
//!
//! # Idempotency
//!
//! `(sender, tempId)` is claimed with `EphemeralStore::set_if_absent("idem:{sender}:{tempId}")`
//! (value `p:{id}:{claimed_ms}:{room}` while in flight, `d:{id}:{seq}:{room}` once durable).
//! A fresh claim (the key was absent: never sent, or its claim expired while the message is
//! stored) is checked against the store before anything is appended: the lane drain looks up
//! its whole batch with one `MessageStore::find_by_temp_ids` and answers the keys found stored
//! as duplicates (their claim becomes `d:` of the stored message) instead of appending them; if
//! that look-up fails, the batch fails and its claims are released (nothing was appended). A
//! duplicate returns the first message's receipt with `duplicate = true` and re-emits its
//! latest known status.
//!
//! A `p:` claim older than [`STALE_CLAIM`] is abandoned (its instance died, or its append
//! failed with a possibly unknown outcome, so its record may still reach the log). A retry
//! takes it over: if the store does not hold the key yet, it appends its own record, marks the
//! claim `a:{id}:{seq}:{room}` and answers only once the store holds one record of the key
//! (the persistence worker keeps the first and retracts later ones), with that record's id.
//! A retry that finds `a:` waits for the store too and never appends again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrayvec::ArrayString;
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tokio::sync::{Notify, oneshot, watch};
use tracing::{debug, warn};

use crate::engine::ChatEngine;
use crate::engine::group_read::{GroupRead, YieldOnce};
use crate::engine::presence::ActiveUsersState;
use crate::engine::room_cache::{RoomCache, SMALL_ROOM, SendRoom};
use crate::engine::workers::WorkerState;
use crate::error::{Error, ErrorCode, Result, fail};
use crate::events::{Event, StatusUpdate, Topic};
use crate::identity::User;
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::mentions::parse_mentions;
use crate::messages::status::{self, StatusEvent};
use crate::messages::{
    ForwardedFrom, HistoryQuery, Message, MessageStatus, MessageType, UrlPreview, rules,
};
use crate::rooms::{Participant, RoomType};
use crate::time::Timestamp;

/// A history page read for sync: its request and its messages (shared by the syncs that
/// asked for the same page).
pub(crate) type HistoryPage = ((RoomId, HistoryQuery), Arc<Vec<Message>>);

/// A claim left `p:` (in flight) for this long is considered abandoned (its instance died
/// before the append, or the append failed with a possibly unknown outcome) and may be
/// taken over by a retry, which checks the store first.
const STALE_CLAIM: Duration = Duration::from_secs(30);

/// How long a send that took over an abandoned claim waits for the store to say which record
/// of its `(sender, tempId)` was kept, before asking the client to retry.
const TAKEOVER_CONFIRM: Duration = Duration::from_secs(15);

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// Target room.
    pub room_id: RoomId,
    /// Content (trimmed by the engine).
    pub text: String,
    /// Content type (not SYSTEM).
    pub message_type: MessageType,
    /// The client's idempotency key, 1–64 printable characters.
    pub temp_id: String,
    /// Thread parent (a reply to a reply attaches to the root).
    pub thread_id: Option<MessageId>,
    /// Explicitly mentioned participants (`@username` in the text are added).
    pub mentions: Vec<UserId>,
}

/// What a successful send returns: the message is durable (`SENT_TO_KAFKA`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id (the `persistedId` once saved).
    pub message_id: MessageId,
    /// Its per-room sequence number.
    pub seq: Seq,
    /// Room.
    pub room_id: RoomId,
    /// The client's key.
    pub temp_id: String,
    /// Whether this `(sender, tempId)` had been sent before (nothing new was created).
    pub duplicate: bool,
}

/// A send's outcome inside the pipeline: a [`SendReceipt`] but for the `tempId`, which the
/// receipt takes from the command at the end (one copy less per message).
struct Sent {
    message_id: MessageId,
    seq: Seq,
    room_id: RoomId,
    duplicate: bool,
}

type Outcome = std::result::Result<(MessageId, Seq, RoomId), (ErrorCode, String)>;

/// A send in flight on this instance: its message id, and the channel its concurrent
/// retries wait on (made when the first one arrives).
struct Inflight {
    id: MessageId,
    waiters: Option<watch::Sender<Option<Outcome>>>,
}

/// In-flight sends by claim key (`idem:{sender}:{tempId}`).
type InflightMap = HashMap<Arc<str>, Inflight>;

/// The events of one batch, published with one bus call.
type Events = Vec<(Topic, Arc<Event>)>;

/// What the lane drain answers a queued send.
enum Drained {
    /// Appended to the log: `(id, seq, room)` of the new message.
    Appended(MessageId, Seq, RoomId),
    /// The store already holds this `(sender, tempId)`: nothing was appended; the stored
    /// message.
    Stored(Box<Message>),
}

type Reply = oneshot::Sender<Result<Drained>>;

/// One accepted message waiting in a lane.
struct Pending {
    message: Message,
    key: IdemKey,
    reply: Reply,
    /// Whether its sender published SENDING already (the lane was busy when it was queued).
    announced: bool,
}

/// A room's lane: the messages queued for the next take, and whether the drain is working on
/// a batch (from its take until its append and publishes are done).
struct LaneQueue {
    pending: Vec<Pending>,
    busy: bool,
}

/// Runtime state of one engine instance: lanes, in-flight sends, typing timers, link
/// previews waiting for their message to be saved, and the background workers.
pub(crate) struct Runtime {
    lanes: Mutex<HashMap<RoomId, LaneQueue>>,
    lanes_idle: Notify,
    shutting_down: AtomicBool,
    inflight: Mutex<InflightMap>,
    /// Ids appended but whose SENT_TO_KAFKA is not yet published by this instance.
    unpublished: Mutex<HashSet<MessageId>>,
    /// Ids of sends that took over an abandoned claim: once appended, their claim is `a:`
    /// (not `d:`) and their receipt waits for the store (`confirm_stored`).
    takeovers: Mutex<HashSet<MessageId>>,
    published: Notify,
    /// Typing generation per (user, room): a newer `typing` call cancels older auto-stops.
    pub(crate) typing: Mutex<HashMap<(UserId, RoomId), u64>>,
    /// Fetched previews of messages not yet saved.
    pub(crate) previews: Mutex<HashMap<MessageId, UrlPreview>>,
    /// Highest seq this instance made durable per room, so that sync can wait for the store
    /// to catch up instead of silently missing a message between SENT_TO_KAFKA and SAVED.
    durable_seqs: Mutex<HashMap<RoomId, Seq>>,
    /// Rooms as the send path sees them, cached briefly.
    pub(crate) rooms: RoomCache,
    /// The lane drains' store look-ups of tempIds, combined.
    stored_check: GroupRead<(UserId, Arc<str>), Message>,
    /// Membership checks of room-scoped calls, combined.
    pub(crate) memberships: GroupRead<(RoomId, UserId), Participant>,
    /// Look-ups of a room's participants by sync and presence, combined.
    pub(crate) participants: GroupRead<RoomId, Participant>,
    /// User look-ups by id, combined.
    pub(crate) users: GroupRead<UserId, User>,
    /// Disconnects' last-seen writes, combined ([`GroupRead::write`]: one `set_last_seen`
    /// for everyone who disconnected while the previous one ran).
    pub(crate) last_seen: GroupRead<(UserId, Timestamp), ()>,
    /// Presence's look-ups of a user's rooms, combined.
    pub(crate) room_ids: GroupRead<UserId, (UserId, RoomId)>,
    /// Sync's look-ups of the store's highest seq of a room, combined.
    pub(crate) store_seqs: GroupRead<RoomId, (RoomId, Seq)>,
    /// Sync's look-ups of the log's durable seq of a room, combined.
    pub(crate) log_seqs: GroupRead<RoomId, (RoomId, Seq)>,
    /// Sync's history pages, combined.
    pub(crate) pages: GroupRead<(RoomId, HistoryQuery), HistoryPage>,
    /// Active-user list coalescing per room.
    pub(crate) active_users: Mutex<HashMap<RoomId, ActiveUsersState>>,
    pub(crate) workers: WorkerState,
}

impl Runtime {
    pub(crate) fn new() -> Runtime {
        Runtime {
            lanes: Mutex::new(HashMap::new()),
            lanes_idle: Notify::new(),
            shutting_down: AtomicBool::new(false),
            inflight: Mutex::new(HashMap::new()),
            unpublished: Mutex::new(HashSet::new()),
            takeovers: Mutex::new(HashSet::new()),
            published: Notify::new(),
            typing: Mutex::new(HashMap::new()),
            previews: Mutex::new(HashMap::new()),
            durable_seqs: Mutex::new(HashMap::new()),
            rooms: RoomCache::default(),
            stored_check: GroupRead::default(),
            memberships: GroupRead::default(),
            participants: GroupRead::default(),
            users: GroupRead::default(),
            room_ids: GroupRead::default(),
            store_seqs: GroupRead::default(),
            log_seqs: GroupRead::default(),
            pages: GroupRead::default(),
            last_seen: GroupRead::default(),
            active_users: Mutex::new(HashMap::new()),
            workers: WorkerState::new(),
        }
    }

    /// The highest seq this instance appended to the log in `room`, if any.
    pub(crate) fn durable_seq(&self, room: RoomId) -> Option<Seq> {
        lock(&self.durable_seqs).get(&room).copied()
    }

    /// Whether `room`'s lane drain is working on a batch (a message queued now waits for it).
    fn lane_busy(&self, room: RoomId) -> bool {
        lock(&self.lanes).get(&room).is_some_and(|lane| lane.busy)
    }

    /// Whether `shutdown` has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Stops accepting sends and waits until every lane has drained.
    pub(crate) async fn close_lanes(&self) {
        {
            let _lanes = lock(&self.lanes);
            self.shutting_down.store(true, Ordering::SeqCst);
        }
        loop {
            let idle = self.lanes_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if lock(&self.lanes).is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// Waits until this instance has published `SENT_TO_KAFKA` for each of `ids` it appended
    /// (ids appended elsewhere are never in the set), so that a client never sees PROCESSING
    /// before SENT_TO_KAFKA from one instance.
    pub(crate) async fn wait_published(&self, ids: &[MessageId]) {
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            {
                let set = lock(&self.unpublished);
                if !ids.iter().any(|id| set.contains(id)) {
                    return;
                }
            }
            published.await;
        }
    }
}

/// Locks a std mutex, recovering from poisoning (the protected maps stay consistent because
/// no critical section can panic half-way).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The claim key of a send, `idem:{sender}:{tempId}`, built once per send and shared by the
/// in-flight map, the claim and the lane.
#[derive(Clone, Debug)]
struct IdemKey(Arc<str>);

impl IdemKey {
    fn new(sender: UserId, temp_id: &str) -> IdemKey {
        // Formatted on the stack and copied once into the shared key (a tempId is at most
        // 64 characters, so a longer one only passes here on its way to being refused).
        let mut key = ArrayString::<160>::new();
        let mut digits = itoa::Buffer::new();
        let parts = ["idem:", digits.format(sender.0), ":", temp_id];
        if parts.iter().all(|part| key.try_push_str(part).is_ok()) {
            return IdemKey(key.as_str().into());
        }
        IdemKey(format!("idem:{}:{temp_id}", sender.0).into())
    }

    fn as_str(&self) -> &str {
        &self.0
    }

    /// The `tempId` part (the sender is a number, so the second `:` ends it).
    fn temp_id(&self) -> &str {
        self.0.splitn(3, ':').nth(2).unwrap_or_default()
    }
}

/// A claim value: `{kind}:{id}:{n}:{room}` (`n` is the claim time for `p`, the seq for `d`
/// and `a`), formatted on the stack: at most 1 + 3 × 21 characters.
fn claim_value(kind: char, id: MessageId, n: i64, room: RoomId) -> ArrayString<64> {
    let mut value = ArrayString::new();
    let mut digits = itoa::Buffer::new();
    // `kind` is one of `p`, `d`, `a`; an i64 takes at most 20 characters: it always fits.
    value.push(kind);
    value.push(':');
    value.push_str(digits.format(id.0));
    value.push(':');
    value.push_str(digits.format(n));
    value.push(':');
    value.push_str(digits.format(room.0));
    value
}

enum Claim {
    /// Nobody sent this key yet: ours now.
    Fresh,
    /// Durable already (id, seq, room).
    Done(MessageId, Seq, RoomId),
    /// In flight.
    Pending(MessageId, Timestamp),
    /// A takeover's record is durable in the log (id, seq, room), but which record of the
    /// key the store keeps is not known yet: nothing more may be appended for the key, and
    /// no receipt may name an id before the store holds it.
    Appended(MessageId),
}

fn parse_claim(value: &str) -> Option<Claim> {
    let mut parts = value.splitn(4, ':');
    let kind = parts.next()?;
    let id = MessageId(parts.next()?.parse().ok()?);
    let n: i64 = parts.next()?.parse().ok()?;
    let room = RoomId(parts.next()?.parse().ok()?);
    match kind {
        "d" => Some(Claim::Done(id, Seq(n), room)),
        "p" => Some(Claim::Pending(id, Timestamp(n))),
        "a" => Some(Claim::Appended(id)),
        _ => None,
    }
}

/// Everything a validated send needs.
pub(crate) struct Validated {
    pub(crate) text: Arc<str>,
    pub(crate) thread_root: Option<MessageId>,
    pub(crate) mentions: Vec<UserId>,
}

impl ChatEngine {
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Sends a message and returns once it is durable (`SENT_TO_KAFKA`).
    ///
    /// Emits every status on [`Topic::Room`] and [`Topic::User`] of the sender; a rejected
    /// send emits `FAILED` with the error code to the sender's user topic and returns the
    /// error. Re-sending the same `(sender, tempId)` returns the first message's receipt with
    /// `duplicate = true`.
    pub async fn send_message(&self, actor: UserId, cmd: SendMessage) -> Result<SendReceipt> {
        self.send_with_origin(actor, cmd, None).await
    }

    pub(crate) async fn send_with_origin(
        &self,
        actor: UserId,
        cmd: SendMessage,
        forwarded_from: Option<ForwardedFrom>,
    ) -> Result<SendReceipt> {
        match self.try_send(actor, &cmd, forwarded_from).await {
            Ok(sent) => Ok(SendReceipt {
                message_id: sent.message_id,
                seq: sent.seq,
                room_id: sent.room_id,
                temp_id: cmd.temp_id,
                duplicate: sent.duplicate,
            }),
            Err(Rejection { error, reported }) => {
                if !reported {
                    let update = StatusUpdate {
                        room_id: cmd.room_id,
                        sender_id: actor,
                        temp_id: Some(cmd.temp_id.as_str().into()),
                        message_id: None,
                        seq: None,
                        status: MessageStatus::Failed,
                        error_code: Some(error.code().as_str().to_owned()),
                        error_message: Some(error.message().to_owned()),
                        at: self.now(),
                    };
                    self.publish(Topic::User(actor), Event::Status(update))
                        .await;
                }
                debug!(user_id = %actor, room_id = %cmd.room_id, code = %error.code(), "send rejected");
                Err(error)
            }
        }
    }

    async fn try_send(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        forwarded_from: Option<ForwardedFrom>,
    ) -> std::result::Result<Sent, Rejection> {
        if self.runtime().is_shutting_down() {
            return Err(Error::new(ErrorCode::BackendUnavailable, "shutting down").into());
        }
        rules::validate_temp_id(&cmd.temp_id)?;
        rules::validate_client_type(cmd.message_type)?;
        let limits = self.limits();
        let text: Arc<str> = rules::checked_content(&cmd.text, limits)?.into();
        let needs_list = !cmd.mentions.is_empty() || text.contains('@');
        let room = self.room_for_send(actor, cmd.room_id, needs_list).await?;
        let validated = self.validate_send(actor, cmd, text, &room).await?;

        // Single flight per (sender, tempId) on this instance: a concurrent retry waits for
        // the attempt in progress instead of racing it.
        let id = MessageId(self.next_id());
        let key = IdemKey::new(actor, &cmd.temp_id);
        let waiting = {
            let mut map = lock(&self.runtime().inflight);
            match map.get_mut(key.as_str()) {
                Some(entry) => Some(
                    entry
                        .waiters
                        .get_or_insert_with(|| watch::channel(None).0)
                        .subscribe(),
                ),
                None => {
                    map.insert(key.0.clone(), Inflight { id, waiters: None });
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            return self.await_inflight(actor, cmd, rx).await;
        }
        // If the caller goes away mid-send, the guard still wakes the waiting retries.
        let mut guard = InflightGuard {
            engine: self,
            key: key.as_str(),
            id,
            armed: true,
        };
        let result = self
            .claim_and_send(actor, cmd, &key, validated, id, forwarded_from)
            .await;
        let outcome = match &result {
            Ok(r) => Ok((r.message_id, r.seq, r.room_id)),
            Err(rej) => Err((rej.error.code(), rej.error.message().to_owned())),
        };
        guard.armed = false;
        self.complete_inflight(key.as_str(), id, outcome);
        result
    }

    /// Claims `(actor, tempId)` across instances, answering duplicates, then sends.
    async fn claim_and_send(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        key: &IdemKey,
        validated: Validated,
        id: MessageId,
        forwarded_from: Option<ForwardedFrom>,
    ) -> std::result::Result<Sent, Rejection> {
        let limits = self.limits();
        // Duplicates holding a claim are answered before rate limiting: a retry must be cheap
        // and safe. (One whose claim expired is found stored by the lane drain, after the
        // rate limit.)
        let now = self.now();
        let claim_value = claim_value('p', id, now.as_millis(), cmd.room_id);
        let eph = &self.p().ephemeral;
        let claim = match eph
            .set_if_absent(key.as_str(), &claim_value, Some(limits.idempotency_ttl))
            .await
        {
            Ok(None) => Claim::Fresh,
            Ok(Some(v)) => parse_claim(&v).unwrap_or(Claim::Fresh),
            Err(e) => return Err(Error::from(e).into()),
        };
        match claim {
            Claim::Fresh => {}
            Claim::Done(existing, seq, room) => {
                return self
                    .answer_duplicate(actor, cmd, existing, seq, room)
                    .await
                    .map_err(Into::into);
            }
            Claim::Pending(existing, since) => {
                if now.since(since) < STALE_CLAIM {
                    // In flight on another instance: the first attempt reports its own
                    // statuses, so no FAILED for this tempId here.
                    return Err(Rejection {
                        error: Error::new(
                            ErrorCode::Conflict,
                            "a message with this tempId is still being sent; retry shortly",
                        ),
                        reported: true,
                    });
                }
                // Abandoned claim (its instance died before the append): take it over,
                // unless the message did reach the store after all.
                if let Some(found) = self.find_sent(actor, &cmd.temp_id).await? {
                    return Ok(self.answer_found(&found).await);
                }
                warn!(user_id = %actor, message_id = %existing, "taking over an abandoned send claim");
                eph.set(key.as_str(), &claim_value, Some(limits.idempotency_ttl))
                    .await
                    .map_err(Error::from)?;
            }
            Claim::Appended(appended) => {
                // A takeover's record is in the log: wait for the store to keep one.
                let found = self.confirm_stored(actor, cmd, key.as_str()).await?;
                if found.id != appended {
                    debug!(user_id = %actor, appended = %appended, stored = %found.id, "taken-over send stored from another record");
                }
                return Ok(self.answer_found(&found).await);
            }
        }
        let takeover = matches!(claim, Claim::Pending(..));
        if !takeover {
            return self
                .send_claimed(actor, cmd, key, validated, id, now, forwarded_from)
                .await;
        }
        lock(&self.runtime().takeovers).insert(id);
        let sent = self
            .send_claimed(actor, cmd, key, validated, id, now, forwarded_from)
            .await;
        lock(&self.runtime().takeovers).remove(&id);
        let receipt = sent?;
        // A duplicate receipt names the message the store holds: nothing to confirm.
        if receipt.duplicate {
            return Ok(receipt);
        }
        let found = self.confirm_stored(actor, cmd, key.as_str()).await?;
        if found.id != receipt.message_id {
            warn!(
                user_id = %actor,
                appended = %receipt.message_id,
                stored = %found.id,
                "a taken-over send was stored from the abandoned attempt's record"
            );
        }
        Ok(Sent {
            message_id: found.id,
            seq: found.seq,
            room_id: found.room_id,
            duplicate: found.id != receipt.message_id,
        })
    }

    /// The message the store kept for `(actor, tempId)` after a takeover appended a record
    /// of it (claim `a:`), recording it as the key's durable message (`d:`).
    ///
    /// The abandoned attempt's append had an unknown outcome: its record may still be in the
    /// log, ahead of or behind the takeover's. The persistence worker keeps the first record of
    /// a `(sender, tempId)` it stores and retracts any later one, so a receipt may only name a
    /// message once the store holds it; otherwise a client could be told an id that is then
    /// retracted. If the store does not have it within [`TAKEOVER_CONFIRM`], the claim stays
    /// `a:` and the client is asked to retry (`CONFLICT`); a retry waits for the store again
    /// and never appends another record.
    async fn confirm_stored(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        key: &str,
    ) -> std::result::Result<Message, Rejection> {
        let limits = self.limits();
        let eph = &self.p().ephemeral;
        let clock = &self.p().clock;
        let started = self.now();
        let mut wait = Duration::from_millis(5);
        loop {
            match self.find_sent(actor, &cmd.temp_id).await {
                Ok(Some(found)) => {
                    let done = claim_value('d', found.id, found.seq.0, found.room_id);
                    if let Err(e) = eph.set(key, &done, Some(limits.idempotency_ttl)).await {
                        warn!(error = %e, "recording a send claim failed");
                    }
                    return Ok(found);
                }
                Ok(None) => {}
                Err(e) => debug!(error = %e, "confirming a taken-over send"),
            }
            if self.now().since(started) >= TAKEOVER_CONFIRM {
                break;
            }
            clock.sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        Err(Rejection {
            error: Error::new(
                ErrorCode::Conflict,
                "a message with this tempId is still being confirmed; retry shortly",
            ),
            reported: true,
        })
    }

    /// The rest of a send once `(actor, tempId)` is claimed (at `key`) for message `id`:
    /// releases the claim on every rejection that happens before the append. The lane drain
    /// checks the store for the key (the claim may have expired while the message is stored:
    /// the store is the truth) and answers a stored one as a duplicate.
    #[allow(clippy::too_many_arguments)]
    async fn send_claimed(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        key: &IdemKey,
        validated: Validated,
        id: MessageId,
        now: Timestamp,
        forwarded_from: Option<ForwardedFrom>,
    ) -> std::result::Result<Sent, Rejection> {
        let limits = self.limits();
        let eph = &self.p().ephemeral;
        let key_str = key.as_str();
        if limits.messages_per_second > 0.0 {
            let allowed = eph
                .take_token(
                    &format!("rl:msg:{actor}"),
                    limits.message_burst,
                    limits.messages_per_second,
                    now,
                )
                .await;
            match allowed {
                Ok(true) => {}
                Ok(false) => {
                    let _ = eph.delete(key_str).await;
                    return Err(Error::new(ErrorCode::RateLimited, "too many messages").into());
                }
                Err(e) => {
                    let _ = eph.delete(key_str).await;
                    return Err(Error::from(e).into());
                }
            }
        }

        let message = Message {
            temp_id: Some(cmd.temp_id.as_str().into()),
            message_type: cmd.message_type,
            thread_id: validated.thread_root,
            forwarded_from,
            mentions: validated.mentions,
            // What the durable log records: once the append returns, it is SENT_TO_KAFKA.
            status: MessageStatus::SentToKafka,
            ..Message::new(id, cmd.room_id, actor, validated.text, now)
        };
        // SENDING: published here if the room's lane is busy with a batch (this message waits
        // for that batch's append, which may take a while), otherwise by the drain for its
        // whole batch with one bus call. Either way before the message can be appended.
        let announced = self.runtime().lane_busy(cmd.room_id);
        if announced {
            self.emit_status(&message, status::INITIAL, None, true)
                .await;
        }
        let rx = match self.enqueue(message, key.clone(), announced) {
            Ok(rx) => rx,
            Err(message) => {
                let e = Error::new(ErrorCode::BackendUnavailable, "shutting down");
                let _ = eph.delete(key_str).await;
                self.emit_status(&message, MessageStatus::Failed, Some(&e), true)
                    .await;
                return Err(Rejection {
                    error: e,
                    reported: true,
                });
            }
        };
        match rx.await {
            Ok(Ok(Drained::Appended(id, seq, room))) => Ok(Sent {
                message_id: id,
                seq,
                room_id: room,
                duplicate: false,
            }),
            // The drain answered it (claim and status) already.
            Ok(Ok(Drained::Stored(found))) => Ok(Sent {
                message_id: found.id,
                seq: found.seq,
                room_id: found.room_id,
                duplicate: true,
            }),
            // The drain task reported FAILED already.
            Ok(Err(e)) => Err(Rejection {
                error: e,
                reported: true,
            }),
            Err(_) => Err(Rejection {
                error: Error::new(ErrorCode::InternalError, "send pipeline stopped"),
                reported: false,
            }),
        }
    }

    /// The room's type and participants (cached for [`SEND_ROOM_TTL`](super::room_cache)),
    /// after checking the room exists and `actor` is one of them. A cached room without
    /// `actor` is re-read: they may have been added on another instance.
    ///
    /// Past the TTL, a big room whose participant list this message does not need
    /// (`needs_list`: mentions) keeps its cached entry and checks only `actor`'s membership,
    /// one row instead of the whole list on every message of a room that sends less than once
    /// per TTL.
    async fn room_for_send(
        &self,
        actor: UserId,
        room_id: RoomId,
        needs_list: bool,
    ) -> Result<Arc<SendRoom>> {
        let now = self.now();
        let cache = &self.runtime().rooms;
        if let Some((room, fresh)) = cache.get(room_id, now) {
            if fresh && room.has(actor) {
                return Ok(room);
            }
            if !fresh && !needs_list && room.participants.len() > SMALL_ROOM {
                if self.p().rooms.participant(room_id, actor).await?.is_some() {
                    return Ok(room);
                }
                return self.refuse_sender(actor, room_id).await;
            }
        }
        let participants = self.p().rooms.participants(room_id).await?;
        if participants.iter().any(|p| p.user_id == actor) {
            let room = self
                .p()
                .rooms
                .get_room(room_id)
                .await?
                .ok_or_else(|| Error::new(ErrorCode::RoomNotFound, "room not found"))?;
            let room = Arc::new(SendRoom {
                room_type: room.room_type,
                participants,
            });
            cache.put(room_id, room.clone(), now);
            return Ok(room);
        }
        self.refuse_sender(actor, room_id).await
    }

    /// `actor` is not (or no longer) in `room_id`: forgets the cached room and fails with
    /// the error a room-scoped call gives (room not found, or not a participant).
    async fn refuse_sender(&self, actor: UserId, room_id: RoomId) -> Result<Arc<SendRoom>> {
        self.runtime().rooms.forget(room_id);
        self.require_participant(actor, room_id).await?;
        fail(
            ErrorCode::NotRoomParticipant,
            "not a participant of this room",
        )
    }

    /// Blocking (direct rooms), thread parent and mentions.
    pub(crate) async fn validate_send(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        text: Arc<str>,
        room: &SendRoom,
    ) -> Result<Validated> {
        let participants = &room.participants;
        if room.room_type == RoomType::Direct {
            if let Some(other) = participants.iter().find(|p| p.user_id != actor) {
                if self
                    .p()
                    .social
                    .is_blocked_either(actor, other.user_id)
                    .await?
                {
                    return fail(ErrorCode::UserBlocked, "you cannot write to this user");
                }
            }
        }
        let thread_root = match cmd.thread_id {
            None => None,
            Some(parent_id) => {
                let parent = self
                    .p()
                    .messages
                    .get_message(parent_id)
                    .await?
                    .filter(|m| m.room_id == cmd.room_id)
                    .ok_or_else(|| {
                        Error::new(ErrorCode::MessageNotFound, "thread parent not found")
                    })?;
                Some(parent.thread_id.unwrap_or(parent.id))
            }
        };
        let mentions = self
            .resolve_mentions(&text, &cmd.mentions, participants)
            .await?;
        Ok(Validated {
            text,
            thread_root,
            mentions,
        })
    }

    /// Explicit mentions (must be participants) plus `@username`s of participants in `text`.
    async fn resolve_mentions(
        &self,
        text: &str,
        explicit: &[UserId],
        participants: &[Participant],
    ) -> Result<Vec<UserId>> {
        let mut out: Vec<UserId> = Vec::new();
        for m in explicit {
            if !participants.iter().any(|p| p.user_id == *m) {
                return fail(
                    ErrorCode::InvalidMention,
                    format!("user {m} is not in this room"),
                );
            }
            if !out.contains(m) {
                out.push(*m);
            }
        }
        let names = parse_mentions(text);
        if !names.is_empty() {
            let ids: Vec<UserId> = participants.iter().map(|p| p.user_id).collect();
            let users = self.p().users.get_users(&ids).await?;
            for name in &names {
                if let Some(u) = users.iter().find(|u| u.username.eq_ignore_ascii_case(name)) {
                    if !out.contains(&u.id) {
                        out.push(u.id);
                    }
                }
            }
        }
        if out.len() > self.limits().mentions_max {
            return fail(
                ErrorCode::InvalidMention,
                format!(
                    "at most {} mentions per message",
                    self.limits().mentions_max
                ),
            );
        }
        Ok(out)
    }

    async fn find_sent(&self, actor: UserId, temp_id: &str) -> Result<Option<Message>> {
        Ok(self.p().messages.find_by_temp_id(actor, temp_id).await?)
    }

    async fn await_inflight(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        mut rx: watch::Receiver<Option<Outcome>>,
    ) -> std::result::Result<Sent, Rejection> {
        let outcome = loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                break Some(o);
            }
            if rx.changed().await.is_err() {
                break rx.borrow().clone();
            }
        };
        match outcome {
            Some(Ok((id, seq, room))) => self
                .answer_duplicate(actor, cmd, id, seq, room)
                .await
                .map_err(Into::into),
            Some(Err((code, message))) => Err(Error::new(code, message).into()),
            None => Err(Error::new(ErrorCode::InternalError, "send pipeline stopped").into()),
        }
    }

    /// The receipt of a stored message sent with the same key, re-emitting its status.
    async fn answer_found(&self, found: &Message) -> Sent {
        self.emit_status(found, found.status, None, true).await;
        Sent {
            message_id: found.id,
            seq: found.seq,
            room_id: found.room_id,
            duplicate: true,
        }
    }

    /// The receipt of an already-sent message (in its own room, whatever room the retry
    /// names), re-emitting its latest known status.
    async fn answer_duplicate(
        &self,
        actor: UserId,
        cmd: &SendMessage,
        id: MessageId,
        seq: Seq,
        room: RoomId,
    ) -> Result<Sent> {
        let status = match self.p().messages.get_message(id).await? {
            Some(m) => m.status,
            None => MessageStatus::SentToKafka,
        };
        let update = StatusUpdate {
            room_id: room,
            sender_id: actor,
            temp_id: Some(cmd.temp_id.as_str().into()),
            message_id: Some(id),
            seq: Some(seq),
            status,
            error_code: None,
            error_message: None,
            at: self.now(),
        };
        let event = Arc::new(Event::Status(update));
        self.publish_shared(Topic::Room(room), event.clone()).await;
        self.publish_shared(Topic::User(actor), event).await;
        Ok(Sent {
            message_id: id,
            seq,
            room_id: room,
            duplicate: true,
        })
    }

    /// Publishes a status of `message` to the sender's user topic and (if `to_room`) the room.
    pub(crate) async fn emit_status(
        &self,
        message: &Message,
        status: MessageStatus,
        error: Option<&Error>,
        to_room: bool,
    ) {
        let mut events = Vec::with_capacity(2);
        push_status(&mut events, message, status, error, to_room, self.now());
        self.publish_all(events).await;
    }

    /// Queues `message` on its room's lane, spawning the drain task if the lane was idle.
    /// Gives the message back if the engine is shutting down.
    fn enqueue(
        &self,
        message: Message,
        key: IdemKey,
        announced: bool,
    ) -> std::result::Result<oneshot::Receiver<Result<Drained>>, Box<Message>> {
        let rt = self.runtime();
        let (tx, rx) = oneshot::channel();
        let room = message.room_id;
        let pending = Pending {
            message,
            key,
            reply: tx,
            announced,
        };
        let spawn = {
            let mut lanes = lock(&rt.lanes);
            if rt.is_shutting_down() {
                return Err(Box::new(pending.message));
            }
            match lanes.get_mut(&room) {
                Some(lane) => {
                    lane.pending.push(pending);
                    false
                }
                None => {
                    let lane = LaneQueue {
                        pending: vec![pending],
                        busy: false,
                    };
                    lanes.insert(room, lane);
                    true
                }
            }
        };
        if spawn {
            let engine = self.clone();
            self.p()
                .spawner
                .spawn(Box::pin(async move { engine.drain_lane(room).await }));
        }
        Ok(rx)
    }

    /// The lane's drain task: append everything queued, publish in order, repeat until empty.
    ///
    /// Before each take it lets the other runnable tasks go first ([`YieldOnce`]): senders
    /// woken by the previous batch's receipts then queue their next messages, and the batch
    /// grows with the load instead of being one message whenever the drain task happens to
    /// be scheduled right after the sender that spawned it.
    async fn drain_lane(self, room: RoomId) {
        let rt = self.runtime();
        loop {
            YieldOnce(false).await;
            let batch = {
                let mut lanes = lock(&rt.lanes);
                match lanes.get_mut(&room) {
                    Some(lane) if !lane.pending.is_empty() => {
                        lane.busy = true;
                        std::mem::take(&mut lane.pending)
                    }
                    _ => {
                        lanes.remove(&room);
                        drop(lanes);
                        rt.lanes_idle.notify_waiters();
                        return;
                    }
                }
            };
            self.append_batch(batch).await;
            if let Some(lane) = lock(&rt.lanes).get_mut(&room) {
                lane.busy = false;
            }
        }
    }

    async fn append_batch(&self, batch: Vec<Pending>) {
        let rt = self.runtime();
        // SENDING of the messages whose sender did not publish it (the lane was not busy when
        // they were queued), with one bus call, before the store check and the append.
        let at = self.now();
        let mut sending: Events = Vec::new();
        for p in batch.iter().filter(|p| !p.announced) {
            push_status(&mut sending, &p.message, status::INITIAL, None, true, at);
        }
        self.publish_all(sending).await;
        let mut lane = Lane::with_capacity(batch.len());
        for p in batch {
            lane.messages.push(p.message);
            lane.keys.push(p.key);
            lane.replies.push(p.reply);
        }
        // Every queued message holds a fresh claim: one store look-up for the whole batch
        // (shared with the other lanes draining now) finds the keys whose earlier message is
        // stored (their claim had expired).
        let stored = {
            let keys: Vec<(UserId, Arc<str>)> = lane
                .messages
                .iter()
                .filter_map(|m| m.temp_id.clone().map(|t| (m.sender_id, t)))
                .collect();
            self.find_stored(keys).await
        };
        match stored {
            Ok(found) if found.is_empty() => {}
            Ok(found) => {
                lane = self.answer_stored(lane, found).await;
                if lane.messages.is_empty() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, count = lane.messages.len(), "checking sent tempIds failed");
                self.reject_batch(lane, e).await;
                return;
            }
        }

        let Lane {
            messages,
            keys,
            replies,
        } = lane;
        // What a failed append needs to report (the tempIds are in the keys); the messages
        // themselves move into the log.
        let sent: Vec<(MessageId, RoomId, UserId)> = messages
            .iter()
            .map(|m| (m.id, m.room_id, m.sender_id))
            .collect();
        lock(&rt.unpublished).extend(sent.iter().map(|s| s.0));
        let count = messages.len();
        let appended = match self.p().log.append(messages).await {
            Ok(appended) if appended.len() == count => appended,
            Ok(appended) => {
                warn!(
                    expected = count,
                    got = appended.len(),
                    "log returned a short batch"
                );
                let e = Error::new(ErrorCode::BackendUnavailable, "message log failed");
                self.fail_batch(sent, &keys, replies, e).await;
                return;
            }
            Err(e) => {
                warn!(error = %e, count, "log append failed");
                let e = Error::new(ErrorCode::BackendUnavailable, "message log is unavailable");
                self.fail_batch(sent, &keys, replies, e).await;
                return;
            }
        };
        if let Some(last) = appended.last() {
            let mut seqs = lock(&rt.durable_seqs);
            let entry = seqs.entry(last.room_id).or_insert(last.seq);
            *entry = (*entry).max(last.seq);
        }
        self.record_claims(&appended, &keys).await;

        let at = self.now();
        let status = status::next(status::INITIAL, StatusEvent::Appended)
            .unwrap_or(MessageStatus::SentToKafka);
        let mut events: Events = Vec::with_capacity(appended.len() * 3);
        let mut receipts = Vec::with_capacity(appended.len());
        for message in appended {
            push_status(&mut events, &message, status, None, true, at);
            self.start_link_preview(&message);
            receipts.push((message.id, message.seq, message.room_id));
            events.push((
                Topic::Room(message.room_id),
                Arc::new(Event::MessageCreated(message)),
            ));
        }
        self.publish_all(events).await;
        for (reply, (id, seq, room)) in replies.into_iter().zip(&receipts) {
            let _ = reply.send(Ok(Drained::Appended(*id, *seq, *room)));
        }
        {
            let mut set = lock(&rt.unpublished);
            for (id, _, _) in &receipts {
                set.remove(id);
            }
        }
        rt.published.notify_waiters();
    }

    /// The stored messages of `keys` (`(sender, tempId)`), found together with what the other
    /// lanes ask meanwhile: one [`MessageStore::find_by_temp_ids`] serves every drain that
    /// asked while the previous one ran, like a group commit, so under load the store sees a
    /// few large look-ups instead of one per lane drain.
    ///
    /// [`MessageStore::find_by_temp_ids`]: crate::messages::MessageStore::find_by_temp_ids
    async fn find_stored(&self, keys: Vec<(UserId, Arc<str>)>) -> Result<Vec<Message>> {
        self.runtime()
            .stored_check
            .read(
                keys,
                |all: Vec<(UserId, Arc<str>)>| async move {
                    let all: Vec<(UserId, &str)> = all.iter().map(|(u, t)| (*u, &**t)).collect();
                    Ok(self.p().messages.find_by_temp_ids(&all).await?)
                },
                |m: &Message| (m.sender_id, m.temp_id.clone().unwrap_or_default()),
            )
            .await
    }

    /// Marks the claims of `appended` (keys in the same order) durable: `d:{id}:{seq}:{room}`,
    /// or `a:` for a send that took over an abandoned claim (its receipt waits for the store).
    async fn record_claims(&self, appended: &[Message], keys: &[IdemKey]) {
        let takeovers: HashSet<MessageId> = {
            let set = lock(&self.runtime().takeovers);
            if set.is_empty() {
                HashSet::new()
            } else {
                appended
                    .iter()
                    .map(|m| m.id)
                    .filter(|id| set.contains(id))
                    .collect()
            }
        };
        let values: Vec<ArrayString<64>> = appended
            .iter()
            .map(|m| {
                let kind = if takeovers.contains(&m.id) { 'a' } else { 'd' };
                claim_value(kind, m.id, m.seq.0, m.room_id)
            })
            .collect();
        let entries: Vec<(&str, &str)> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ttl = Some(self.limits().idempotency_ttl);
        if let Err(e) = self.p().ephemeral.set_many(&entries, ttl).await {
            warn!(error = %e, count = entries.len(), "recording send claims failed");
        }
    }

    /// Answers the queued messages whose `(sender, tempId)` the store holds (`found`) as
    /// duplicates of the stored message: its claim becomes `d:`, its status is re-emitted and
    /// the waiting send gets it. Returns the rest, to append.
    async fn answer_stored(&self, lane: Lane, found: Vec<Message>) -> Lane {
        let limits = self.limits();
        let eph = &self.p().ephemeral;
        let mut found: HashMap<(UserId, Arc<str>), Message> = found
            .into_iter()
            .filter_map(|m| Some(((m.sender_id, m.temp_id.clone()?), m)))
            .collect();
        let mut rest = Lane::with_capacity(lane.messages.len());
        for ((message, key), reply) in lane.messages.into_iter().zip(lane.keys).zip(lane.replies) {
            let temp_id = message.temp_id.clone().unwrap_or_default();
            let Some(stored) = found.remove(&(message.sender_id, temp_id)) else {
                rest.messages.push(message);
                rest.keys.push(key);
                rest.replies.push(reply);
                continue;
            };
            let done = claim_value('d', stored.id, stored.seq.0, stored.room_id);
            if let Err(e) = eph
                .set(key.as_str(), &done, Some(limits.idempotency_ttl))
                .await
            {
                warn!(error = %e, "recording a send claim failed");
            }
            self.emit_status(&stored, stored.status, None, true).await;
            let _ = reply.send(Ok(Drained::Stored(Box::new(stored))));
        }
        rest
    }

    /// Fails a batch that was not appended (the store check failed): its claims are released,
    /// so a retry sends afresh.
    async fn reject_batch(&self, lane: Lane, error: Error) {
        let eph = &self.p().ephemeral;
        for ((m, key), reply) in lane.messages.into_iter().zip(lane.keys).zip(lane.replies) {
            let _ = eph.delete(key.as_str()).await;
            let e = Error::new(error.code(), error.message().to_owned());
            self.emit_status(&m, MessageStatus::Failed, Some(&e), true)
                .await;
            let _ = reply.send(Err(e));
        }
    }

    /// Fails a batch whose append failed: `sent` are its `(id, room, sender)`, `keys` their
    /// claim keys.
    async fn fail_batch(
        &self,
        sent: Vec<(MessageId, RoomId, UserId)>,
        keys: &[IdemKey],
        replies: Vec<Reply>,
        error: Error,
    ) {
        let rt = self.runtime();
        {
            let mut set = lock(&rt.unpublished);
            for s in &sent {
                set.remove(&s.0);
            }
        }
        rt.published.notify_waiters();
        let at = self.now();
        let mut events: Events = Vec::with_capacity(sent.len() * 2);
        for ((id, room_id, sender_id), key) in sent.into_iter().zip(keys) {
            // The claim stays: the append's outcome may be unknown (a broker that timed out
            // can still write the record), so a retry with the same tempId waits until the
            // claim is stale (`STALE_CLAIM`) and then looks in the store before sending again.
            let update = StatusUpdate {
                room_id,
                sender_id,
                temp_id: Some(key.temp_id().into()),
                message_id: Some(id),
                seq: None,
                status: MessageStatus::Failed,
                error_code: Some(error.code().as_str().to_owned()),
                error_message: Some(error.message().to_owned()),
                at,
            };
            let event = Arc::new(Event::Status(update));
            events.push((Topic::Room(room_id), event.clone()));
            events.push((Topic::User(sender_id), event));
        }
        self.publish_all(events).await;
        for reply in replies {
            let _ = reply.send(Err(Error::new(error.code(), error.message().to_owned())));
        }
    }

    /// Wakes the retries waiting on message `id` (and forgets it); an entry of a later
    /// attempt with the same key is left alone.
    fn complete_inflight(&self, key: &str, id: MessageId, outcome: Outcome) {
        let mut map = lock(&self.runtime().inflight);
        if map.get(key).is_some_and(|entry| entry.id == id) {
            if let Some(Inflight {
                waiters: Some(tx), ..
            }) = map.remove(key)
            {
                tx.send_replace(Some(outcome));
            }
        }
    }
}

/// A drained batch: messages with their claim keys and the senders waiting for them, in
/// the same order.
struct Lane {
    messages: Vec<Message>,
    keys: Vec<IdemKey>,
    replies: Vec<Reply>,
}

impl Lane {
    fn with_capacity(n: usize) -> Lane {
        Lane {
            messages: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
            replies: Vec::with_capacity(n),
        }
    }
}

/// Adds a status of `message` for the sender's user topic and (if `to_room`) the room: one
/// event shared by both.
pub(crate) fn push_status(
    events: &mut Vec<(Topic, Arc<Event>)>,
    message: &Message,
    status: MessageStatus,
    error: Option<&Error>,
    to_room: bool,
    at: Timestamp,
) {
    let update = StatusUpdate {
        room_id: message.room_id,
        sender_id: message.sender_id,
        temp_id: message.temp_id.clone(),
        message_id: Some(message.id),
        seq: (message.seq > Seq::ZERO).then_some(message.seq),
        status,
        error_code: error.map(|e| e.code().as_str().to_owned()),
        error_message: error.map(|e| e.message().to_owned()),
        at,
    };
    let event = Arc::new(Event::Status(update));
    if to_room {
        events.push((Topic::Room(message.room_id), event.clone()));
    }
    events.push((Topic::User(message.sender_id), event));
}

/// Completes an in-flight entry whose attempt was dropped before finishing.
struct InflightGuard<'a> {
    engine: &'a ChatEngine,
    key: &'a str,
    id: MessageId,
    armed: bool,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let outcome = Err((ErrorCode::InternalError, "send abandoned".to_owned()));
            self.engine.complete_inflight(self.key, self.id, outcome);
        }
    }
}

/// A rejected send: the error, and whether FAILED was already published.
struct Rejection {
    error: Error,
    reported: bool,
}

impl From<Error> for Rejection {
    fn from(error: Error) -> Rejection {
        Rejection {
            error,
            reported: false,
        }
    }
}
