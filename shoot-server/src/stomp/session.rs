//! One STOMP session over one WebSocket, run by one task.
//!
//! The task reads and decodes frames, authenticates, authorises subscriptions, runs `SEND`s
//! against the engine one at a time (so a connection's requests are processed in order) and
//! queues replies; meanwhile — also while an engine call is in progress — it drains the
//! session's [`Outbox`] into the socket in batches (one flush per batch) and sends
//! heart-beats. No other per-connection task exists; an idle session holds the socket, one
//! small task state, an empty queue and its subscriptions.
//!
//! Errors: a malformed or oversized frame, a missing/invalid token, a frame before CONNECT,
//! a missing required header, or a client that stops heart-beating ends the session (ERROR
//! then close, as STOMP requires). Refused SUBSCRIBEs (unknown destination, not allowed,
//! duplicate id, too many subscriptions), unknown ACK ids and transactions get an ERROR
//! frame but the session stays open, like the reference server: a client that lost access
//! to one room keeps its other subscriptions. Failed `SEND`s never produce ERROR frames (see
//! [`app`](super::app)).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use shoot_core::events::Topic;
use shoot_core::{Error, ErrorCode, UserId};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::StompSettings;
use super::app::{self, Failure, Outcome};
use super::frame::{self, Command, Frame};
use super::hub::{AckMode, Hub, Payload, Subscriber, Subscription};
use super::outbox::{Closed, Out, Outbox, Pushed};
use super::routing::{self, Access, ErrorView, Filter, UserQueue, to_json};
use crate::state::AppState;
use crate::views::StatusView;

/// State shared by a session's frame handling ([`Session`]) and its [`Writer`].
pub(crate) struct Shared {
    /// The outbound queue (also held by every subscriber of the session).
    outbox: Arc<Outbox>,
    /// Server → client heart-beat interval in ms (0: none), set on CONNECT.
    heartbeat_ms: AtomicU64,
    /// Messages of client-ack subscriptions not acknowledged yet.
    acks: Mutex<VecDeque<(u64, Arc<Subscriber>)>>,
    /// Most unacknowledged messages remembered (older ones count as acknowledged).
    max_pending_acks: usize,
}

/// Why the writing side of a session stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteEnd {
    /// Everything up to a queued `Close` was written and the socket closed.
    Closed,
    /// The socket failed.
    Failed,
    /// The outbox overflowed (the client stopped reading).
    SlowConsumer,
}

/// The writing side of a session: drains the outbox into the socket in batches (one flush per
/// batch) and keeps the heart-beat. Driven by the session's own task
/// ([`poll_write`](Self::poll_write)), alongside the reads and the engine calls, so that a
/// session is one task and an unsplit socket.
struct Writer {
    shared: Arc<Shared>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Taken from the outbox, not yet fed to the socket.
    batch: VecDeque<Out>,
    next_id: u64,
    last_write: Instant,
    /// Something was fed since the last flush.
    unflushed: bool,
    /// Frames (heart-beats aside) fed since the last flush.
    frames: u64,
    /// A heart-beat is due.
    heartbeat: bool,
    /// A `Close` was reached: close the socket once the rest is flushed.
    closing: bool,
}

impl Writer {
    fn new(shared: Arc<Shared>, metrics: Arc<crate::metrics::Metrics>) -> Writer {
        Writer {
            shared,
            metrics,
            batch: VecDeque::new(),
            next_id: 0,
            last_write: Instant::now(),
            unflushed: false,
            frames: 0,
            heartbeat: false,
            closing: false,
        }
    }

    /// When the next heart-beat is due, if the session sends them.
    fn heartbeat_at(&self) -> Option<Instant> {
        let hb = self.shared.heartbeat_ms.load(Ordering::Relaxed);
        (hb > 0 && !self.heartbeat).then(|| self.last_write + Duration::from_millis(hb))
    }

    /// Notes that the heart-beat timer fired; sends one if nothing was written meanwhile.
    fn on_timer(&mut self, now: Instant) {
        if self.heartbeat_at().is_some_and(|at| now >= at) {
            self.heartbeat = true;
        }
    }

    /// Writes whatever is queued. Pending while there is nothing to write or the socket is
    /// busy; ready only when the writing is over.
    fn poll_write(&mut self, ws: &mut WebSocket, cx: &mut Context<'_>) -> Poll<WriteEnd> {
        loop {
            while !self.closing && (!self.batch.is_empty() || self.heartbeat) {
                match ws.poll_ready_unpin(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(WriteEnd::Failed),
                    Poll::Pending => return self.blocked(cx),
                }
                let msg = match self.batch.pop_front() {
                    Some(out) => match self.encode(out) {
                        Some(msg) => {
                            self.frames += 1;
                            msg
                        }
                        None => {
                            self.closing = true;
                            break;
                        }
                    },
                    // Any write would do as a heart-beat; nothing else is queued.
                    None => Message::Text("\n".into()),
                };
                self.heartbeat = false;
                if ws.start_send_unpin(msg).is_err() {
                    return Poll::Ready(WriteEnd::Failed);
                }
                self.unflushed = true;
            }
            if self.unflushed {
                match ws.poll_flush_unpin(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(WriteEnd::Failed),
                    Poll::Pending => return self.blocked(cx),
                }
                self.metrics.stomp_frames_out.add(self.frames);
                self.frames = 0;
                self.unflushed = false;
                self.last_write = Instant::now();
                if self.batch.capacity() > 256 {
                    self.batch = VecDeque::new();
                }
            }
            if self.closing {
                self.batch.clear();
                return match ws.poll_close_unpin(cx) {
                    Poll::Ready(_) => Poll::Ready(WriteEnd::Closed),
                    Poll::Pending => self.blocked(cx),
                };
            }
            let outbox = &self.shared.outbox;
            outbox.register(cx.waker());
            let closed = outbox.take(&mut self.batch);
            if self.batch.is_empty() {
                return match closed {
                    Some(Closed::SlowConsumer) => Poll::Ready(WriteEnd::SlowConsumer),
                    // The `Close` item was written already.
                    Some(Closed::Normal) => {
                        self.closing = true;
                        continue;
                    }
                    None => Poll::Pending,
                };
            }
        }
    }

    /// The socket cannot take more now: pending, unless the outbox overflowed meanwhile (a
    /// client that stopped reading blocks writes forever, and only the overflow ends that).
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<WriteEnd> {
        let outbox = &self.shared.outbox;
        outbox.register(cx.waker());
        if outbox.is_overflowed() {
            return Poll::Ready(WriteEnd::SlowConsumer);
        }
        Poll::Pending
    }

    /// The WebSocket message of one queued item; `None` for `Close`.
    fn encode(&mut self, out: Out) -> Option<Message> {
        Some(match out {
            Out::Message { sub, payload } => {
                self.next_id += 1;
                if sub.ack != AckMode::Auto {
                    let shared = &self.shared;
                    let mut acks = shared.acks.lock().unwrap_or_else(|e| e.into_inner());
                    if acks.len() >= shared.max_pending_acks {
                        acks.pop_front();
                    }
                    acks.push_back((self.next_id, sub.clone()));
                }
                Message::Text(message_frame(&sub, self.next_id, &payload).into())
            }
            Out::Frame(text) => Message::Text(text.into()),
            Out::Close => return None,
        })
    }
}

/// The slow-consumer ending: an ERROR frame and a close, given at most `grace` (a dead
/// client never takes them; the caller then drops the socket).
async fn slow_consumer(ws: &mut WebSocket, metrics: &crate::metrics::Metrics, grace: Duration) {
    metrics.stomp_errors.inc();
    let error = error_frame(
        "slow consumer",
        "the client does not read fast enough",
        None,
    );
    let _ = tokio::time::timeout(grace, async {
        if ws.send(Message::Text(error.into())).await.is_ok() {
            let _ = ws.close().await;
        }
    })
    .await;
}

/// `MESSAGE` + per-subscriber headers + the shared tail.
fn message_frame(sub: &Subscriber, id: u64, payload: &Payload) -> String {
    let mut ids = itoa::Buffer::new();
    let id = ids.format(id);
    let mut s = String::with_capacity(8 + sub.head.len() + 2 * id.len() + 18 + payload.tail.len());
    s.push_str("MESSAGE\n");
    s.push_str(&sub.head);
    s.push_str("message-id:");
    s.push_str(id);
    s.push('\n');
    if sub.ack != AckMode::Auto {
        s.push_str("ack:");
        s.push_str(id);
        s.push('\n');
    }
    s.push_str(&payload.tail);
    s
}

fn encode_text(frame: &Frame) -> String {
    let bytes = frame.encode();
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// An ERROR frame: `message` header, plain-text body, `receipt-id` when the offending frame
/// asked for a receipt.
fn error_frame(message: &str, detail: &str, receipt: Option<&str>) -> String {
    let mut f = Frame::new(Command::Error).with_header("message", message);
    if let Some(r) = receipt {
        f = f.with_header("receipt-id", r);
    }
    f = f
        .with_header("content-type", "text/plain")
        .with_body(Bytes::copy_from_slice(detail.as_bytes()));
    encode_text(&f)
}

struct SubEntry {
    id: Box<str>,
    subscription: Subscription,
    topic: Topic,
}

/// The frame-handling side of one session (its writing side is the [`Writer`]).
struct Session {
    state: AppState,
    hub: Hub,
    settings: Arc<StompSettings>,
    shared: Arc<Shared>,
    /// Result of `?token=` / `Authorization` on the handshake, if one was given.
    handshake_auth: Option<Result<UserId, Error>>,
    user: Option<UserId>,
    /// Subscriptions, few per session: a vector takes less room than a map.
    subs: Vec<SubEntry>,
    buf: BytesMut,
    /// Close if nothing arrives for this long (2× the client's heart-beat), once connected.
    read_timeout: Option<Duration>,
    last_read: Instant,
    next_presence: Instant,
    closing: bool,
}

/// Runs one session to its end.
///
/// Not `async` itself: the session is set up before the returned future exists, so the
/// future (which lives as long as the connection) holds only what the session loop uses, not
/// the set-up's temporaries.
pub(crate) fn run(
    socket: WebSocket,
    state: AppState,
    hub: Hub,
    settings: Arc<StompSettings>,
    handshake_auth: Option<Result<UserId, Error>>,
) -> impl Future<Output = ()> + Send + 'static {
    let shared = Arc::new(Shared {
        outbox: Arc::new(Outbox::new(settings.outbox_capacity)),
        heartbeat_ms: AtomicU64::new(0),
        acks: Mutex::new(VecDeque::new()),
        max_pending_acks: settings.outbox_capacity.max(64),
    });
    state.metrics.stomp_connections.inc();
    let writer = Writer::new(shared.clone(), state.metrics.clone());
    let now = Instant::now();
    let connect_deadline = now + settings.connect_timeout;
    let session = Session {
        state,
        hub,
        next_presence: now + settings.presence_refresh,
        settings,
        shared,
        handshake_auth,
        user: None,
        subs: Vec::new(),
        buf: BytesMut::new(),
        read_timeout: None,
        last_read: now,
        closing: false,
    };
    drive(session, socket, writer, connect_deadline)
}

/// What woke the session loop.
enum Step {
    Shutdown,
    Wrote(WriteEnd),
    Read(Option<Result<Message, axum::Error>>),
    Timer,
}

/// The session loop: frames in, queued frames out, timers, shutdown; then the teardown.
///
/// An `async` block rather than an `async fn`: a future keeps an `async fn`'s arguments apart
/// from its locals, so the session, socket and writer would take their room twice for the
/// whole connection.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would store its arguments twice"
)]
fn drive(
    mut session: Session,
    mut ws: WebSocket,
    mut writer: Writer,
    connect_deadline: Instant,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let mut ended: Option<WriteEnd> = None;
        let timer = tokio::time::sleep_until(connect_deadline);
        tokio::pin!(timer);
        let shutdown = session.state.shutdown.clone();
        while !session.closing {
            let session_deadline = session.deadline(connect_deadline);
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => Step::Shutdown,
                step = std::future::poll_fn(|cx| {
                    if let Poll::Ready(end) = writer.poll_write(&mut ws, cx) {
                        return Poll::Ready(Step::Wrote(end));
                    }
                    if let Poll::Ready(msg) = ws.poll_next_unpin(cx) {
                        return Poll::Ready(Step::Read(msg));
                    }
                    // After the writes: each one moves the next heart-beat.
                    let deadline = match writer.heartbeat_at() {
                        Some(at) => at.min(session_deadline),
                        None => session_deadline,
                    };
                    poll_deadline(timer.as_mut(), deadline, cx).map(|()| Step::Timer)
                }) => step,
            };
            match step {
                Step::Shutdown => {
                    session.fail("server shutting down", "the server is shutting down", None);
                }
                Step::Wrote(end) => {
                    ended = Some(end);
                    break;
                }
                Step::Read(Some(Ok(msg))) => {
                    session.last_read = Instant::now();
                    let data = match msg {
                        Message::Text(t) => Bytes::from(t),
                        Message::Binary(b) => b,
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Close(_) => break,
                    };
                    // Boxed, like every engine call below: the loop's future lives as long as
                    // the connection, and would otherwise reserve room for the largest of them
                    // while idle.
                    let work = Box::pin(session.on_data(data));
                    alongside(work, &mut writer, &mut ws, timer.as_mut(), &mut ended).await;
                    if ended.is_some() {
                        break;
                    }
                    // Time spent in engine calls does not count against the client.
                    session.last_read = Instant::now();
                }
                Step::Read(Some(Err(e))) => {
                    debug!(error = %e, "websocket read failed");
                    if peer_gone(&e) {
                        break;
                    }
                    // A WebSocket-level violation (message over the size limit, text that is not
                    // UTF-8, bad framing): the socket still writes, so say why.
                    session.fail("malformed frame", &format!("websocket: {e}"), None);
                }
                Step::Read(None) => break,
                Step::Timer => {
                    let now = Instant::now();
                    writer.on_timer(now);
                    if now < session_deadline {
                        // Only the heart-beat was due.
                        continue;
                    }
                    let work = Box::pin(session.on_timer(connect_deadline));
                    alongside(work, &mut writer, &mut ws, timer.as_mut(), &mut ended).await;
                    if ended.is_some() {
                        break;
                    }
                }
            }
        }

        // Boxed: the teardown's futures need no room in the loop's future.
        Box::pin(teardown(session, ws, writer, ended)).await;
    }
}

/// Subscriptions first (no more fan-out), then what is queued is flushed and the socket
/// closed (an ERROR frame first for a slow consumer), then presence hears of the disconnect.
async fn teardown(
    mut session: Session,
    mut ws: WebSocket,
    mut writer: Writer,
    mut ended: Option<WriteEnd>,
) {
    session.subs.clear();
    session.shared.outbox.close();
    let metrics = session.state.metrics.clone();
    if ended.is_none() {
        let flush = std::future::poll_fn(|cx| writer.poll_write(&mut ws, cx));
        ended = tokio::time::timeout(Duration::from_secs(5), flush)
            .await
            .ok();
    }
    if ended == Some(WriteEnd::SlowConsumer) {
        slow_consumer(&mut ws, &metrics, session.settings.slow_consumer_grace).await;
    }
    drop(ws);
    let state = session.state;
    if let Some(user) = session.user {
        if let Err(e) = state.engine.session_disconnected(user).await {
            warn!(user_id = %user, error = %e, "presence disconnect failed");
        }
    }
    state.metrics.stomp_connections.dec();
}

/// Runs `work` (frame handling, engine calls) to its end while writing what it and the
/// fan-out queue, heart-beats included: replies go out before a slow request finishes. When
/// the writing ends meanwhile, `ended` says why and `work` still runs to its end.
async fn alongside<F: Future<Output = ()>>(
    mut work: Pin<Box<F>>,
    writer: &mut Writer,
    ws: &mut WebSocket,
    mut timer: Pin<&mut tokio::time::Sleep>,
    ended: &mut Option<WriteEnd>,
) {
    std::future::poll_fn(|cx| {
        if work.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if ended.is_some() {
            return Poll::Pending;
        }
        if let Some(at) = writer.heartbeat_at() {
            if poll_deadline(timer.as_mut(), at, cx).is_ready() {
                writer.on_timer(Instant::now());
            }
        }
        if let Poll::Ready(end) = writer.poll_write(ws, cx) {
            *ended = Some(end);
        }
        Poll::Pending
    })
    .await;
}

/// Polls `timer` set to `deadline` (moved there first if it was set elsewhere).
fn poll_deadline(
    mut timer: Pin<&mut tokio::time::Sleep>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if timer.deadline() != deadline {
        timer.as_mut().reset(deadline);
    }
    timer.poll(cx)
}

impl Session {
    fn deadline(&self, connect_deadline: Instant) -> Instant {
        if self.user.is_none() {
            return connect_deadline;
        }
        let mut d = self.next_presence;
        if let Some(t) = self.read_timeout {
            d = d.min(self.last_read + t);
        }
        d
    }

    async fn on_timer(&mut self, connect_deadline: Instant) {
        let now = Instant::now();
        let Some(user) = self.user else {
            if now >= connect_deadline {
                self.fail("connect timeout", "no CONNECT frame received in time", None);
            }
            return;
        };
        if let Some(t) = self.read_timeout {
            if now >= self.last_read + t {
                debug!(user_id = %user, "client heart-beat missed");
                self.fail(
                    "heart-beat timeout",
                    "no data received within twice the heart-beat interval",
                    None,
                );
                return;
            }
        }
        if now >= self.next_presence {
            self.next_presence = now + self.settings.presence_refresh;
            let engine = self.state.engine.clone();
            if let Err(e) = Box::pin(engine.session_heartbeat(user)).await {
                debug!(user_id = %user, error = %e, "presence heartbeat failed");
            }
        }
    }

    fn push(&self, out: Out) {
        if self.shared.outbox.push(out) == Pushed::Overflow {
            // Replies overflowing the queue end the session like fan-out does (counted there
            // by the hub).
            self.state.metrics.stomp_slow_consumers.inc();
        }
    }

    /// Sends an ERROR frame and ends the session.
    fn fail(&mut self, message: &str, detail: &str, receipt: Option<&str>) {
        self.state.metrics.stomp_errors.inc();
        self.push(Out::Frame(error_frame(message, detail, receipt)));
        self.push(Out::Close);
        self.closing = true;
    }

    /// Sends an ERROR frame; the session goes on.
    fn refuse(&self, message: &str, detail: &str, frame: &Frame) {
        self.state.metrics.stomp_errors.inc();
        self.push(Out::Frame(error_frame(
            message,
            detail,
            frame.header("receipt"),
        )));
    }

    fn receipt(&self, frame: &Frame, extra: &[(&'static str, String)]) {
        let Some(id) = frame.header("receipt") else {
            return;
        };
        let mut r = Frame::new(Command::Receipt).with_header("receipt-id", id);
        for (k, v) in extra {
            r = r.with_header(*k, v.clone());
        }
        self.push(Out::Frame(encode_text(&r)));
    }

    async fn on_data(&mut self, data: Bytes) {
        let mut input = if self.buf.is_empty() {
            data
        } else {
            self.buf.extend_from_slice(&data);
            std::mem::take(&mut self.buf).freeze()
        };
        while !self.closing {
            match frame::decode(&input, &self.settings.frame_limits) {
                Ok(Some((frame, used))) => {
                    input.advance(used);
                    self.state.metrics.stomp_frames_in.inc();
                    self.on_frame(frame).await;
                }
                Ok(None) => {
                    let beats = frame::heartbeat_prefix(&input);
                    input.advance(beats);
                    break;
                }
                Err(e) => {
                    debug!(error = %e, "malformed frame");
                    self.fail("malformed frame", &e.to_string(), None);
                    return;
                }
            }
        }
        if !input.is_empty() && !self.closing {
            // A partial frame: keep only its bytes.
            self.buf = BytesMut::from(&input[..]);
        }
    }

    async fn on_frame(&mut self, frame: Frame) {
        let Some(user) = self.user else {
            match frame.command {
                Command::Connect | Command::Stomp => Box::pin(self.connect(frame)).await,
                Command::Disconnect => {
                    self.receipt(&frame, &[]);
                    self.push(Out::Close);
                    self.closing = true;
                }
                other => self.fail("not connected", &format!("{other} before CONNECT"), None),
            }
            return;
        };
        match frame.command {
            Command::Send => Box::pin(self.send(user, frame)).await,
            Command::Subscribe => Box::pin(self.subscribe(user, frame)).await,
            Command::Unsubscribe => self.unsubscribe(frame),
            Command::Ack | Command::Nack => self.ack(frame),
            Command::Disconnect => {
                self.receipt(&frame, &[]);
                self.push(Out::Close);
                self.closing = true;
            }
            Command::Begin | Command::Commit | Command::Abort => {
                self.refuse(
                    "transactions are not supported",
                    "BEGIN/COMMIT/ABORT are not supported",
                    &frame,
                );
            }
            Command::Connect | Command::Stomp => {
                self.fail(
                    "already connected",
                    "CONNECT on a connected session",
                    frame.header("receipt"),
                );
            }
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                self.fail(
                    "invalid command",
                    &format!("{} is a server frame", frame.command),
                    None,
                );
            }
        }
    }

    async fn connect(&mut self, frame: Frame) {
        let version = match negotiate_version(frame.header("accept-version")) {
            Some(v) => v,
            None => {
                let error = Frame::new(Command::Error)
                    .with_header("version", "1.0,1.1,1.2")
                    .with_header("message", "unsupported protocol version")
                    .with_header("content-type", "text/plain")
                    .with_body("supported versions are 1.0, 1.1, 1.2");
                self.state.metrics.stomp_errors.inc();
                self.push(Out::Frame(encode_text(&error)));
                self.push(Out::Close);
                self.closing = true;
                return;
            }
        };
        let user = match connect_token(&frame) {
            Some(token) => self.state.auth.verify_access(token),
            None => match self.handshake_auth.take() {
                Some(result) => result,
                None => Err(Error::new(
                    ErrorCode::InvalidToken,
                    "an access token is required",
                )),
            },
        };
        let user = match user {
            Ok(user) => self.state.require_known_user(user).await,
            Err(e) => Err(e),
        };
        let user = match user {
            Ok(user) => user,
            Err(e) => {
                self.fail(
                    "unauthenticated",
                    &format!("{}: {}", e.code(), e.message()),
                    None,
                );
                return;
            }
        };
        let (client_cx, client_cy) = parse_heartbeat(frame.header("heart-beat"));
        let (server_cx, server_cy) = (
            self.settings.heartbeat_send_ms,
            self.settings.heartbeat_receive_ms,
        );
        let outgoing = if server_cx == 0 || client_cy == 0 {
            0
        } else {
            server_cx.max(client_cy)
        };
        let incoming = if client_cx == 0 || server_cy == 0 {
            0
        } else {
            client_cx.max(server_cy)
        };
        self.shared.heartbeat_ms.store(outgoing, Ordering::Relaxed);
        self.read_timeout =
            (incoming > 0).then(|| Duration::from_millis(incoming.saturating_mul(2)));
        self.user = Some(user);
        self.handshake_auth = None;
        let now = Instant::now();
        self.last_read = now;
        self.next_presence = now + self.settings.presence_refresh;
        let engine = self.state.engine.clone();
        if let Err(e) = Box::pin(engine.session_connected(user)).await {
            warn!(user_id = %user, error = %e, "presence connect failed");
        }
        let session_id = format!(
            "{}-{}",
            self.state.engine.instance_id(),
            next_session_number()
        );
        let connected = Frame::new(Command::Connected)
            .with_header("version", version)
            .with_header("heart-beat", format!("{server_cx},{server_cy}"))
            .with_header("server", concat!("shoot/", env!("CARGO_PKG_VERSION")))
            .with_header("session", session_id)
            .with_header("user-name", user.to_string());
        self.push(Out::Frame(encode_text(&connected)));
        debug!(user_id = %user, version, "stomp session connected");
    }

    async fn send(&mut self, user: UserId, frame: Frame) {
        let Some(destination) = frame.header("destination") else {
            self.fail(
                "missing header",
                "SEND requires a destination header",
                frame.header("receipt"),
            );
            return;
        };
        let destination = destination.to_owned();
        let engine = self.state.engine.clone();
        let result = app::handle(&engine, user, &destination, &frame.body).await;
        match result {
            Ok(Outcome { replies, receipt }) => {
                if destination == "/app/chat" || destination == "/app/thread" {
                    self.state.metrics.messages_sent.inc();
                }
                for reply in replies {
                    self.reply(reply.topic, reply.filter, Arc::new(reply.payload));
                }
                self.receipt(&frame, &receipt);
            }
            Err(failure) => {
                self.report_failure(user, &destination, &failure);
                let mut extra = vec![
                    ("status", "FAILED".to_owned()),
                    ("error-code", failure.error.code().as_str().to_owned()),
                ];
                if let Some(t) = &failure.temp_id {
                    extra.push(("temp-id", t.clone()));
                }
                self.receipt(&frame, &extra);
            }
        }
    }

    /// Puts a failed request on this session's error (and status) queues, unless the engine
    /// already published it.
    fn report_failure(&self, user: UserId, destination: &str, failure: &Failure) {
        debug!(user_id = %user, destination, code = %failure.error.code(), "request failed");
        if failure.reported {
            return;
        }
        let me = Topic::User(user);
        if failure.is_send {
            let status = StatusView {
                temp_id: failure.temp_id.clone(),
                status: "FAILED".to_owned(),
                persisted_id: None,
                error_message: Some(failure.error.message().to_owned()),
                error_code: Some(failure.error.code().as_str().to_owned()),
                created_at: self.state.engine.ports().clock.now().to_rfc3339(),
                room_id: failure.room_id.map(|r| r.to_string()).unwrap_or_default(),
                seq: None,
            };
            let payload = Payload::json("MESSAGE_STATUS", &to_json(&status), false);
            self.reply(
                me,
                Filter::User(UserQueue::MessageStatus),
                Arc::new(payload),
            );
        }
        let view = ErrorView {
            error_code: failure.error.code().as_str().to_owned(),
            message: failure.error.message().to_owned(),
            destination: destination.to_owned(),
            temp_id: failure.temp_id.clone(),
            room_id: failure.room_id.map(|r| r.to_string()),
        };
        let event_type = if failure.is_send {
            "MESSAGE_FAILED"
        } else {
            "ERROR"
        };
        let payload = Payload::json(event_type, &to_json(&view), false);
        self.reply(me, Filter::User(UserQueue::Errors), Arc::new(payload));
    }

    /// Delivers a reply to this session's subscriptions of `filter` on `topic` (and, for user
    /// queues, to its `/queue/user/{me}` alias subscription).
    fn reply(&self, topic: Topic, filter: Filter, payload: Arc<Payload>) {
        for entry in &self.subs {
            let sub = entry.subscription.subscriber();
            let wanted = sub.filter == filter
                || (sub.filter == Filter::UserAll && matches!(filter, Filter::User(_)));
            if entry.topic == topic && wanted {
                self.push(Out::Message {
                    sub: sub.clone(),
                    payload: payload.clone(),
                });
            }
        }
    }

    async fn subscribe(&mut self, user: UserId, frame: Frame) {
        let (Some(id), Some(destination)) = (frame.header("id"), frame.header("destination"))
        else {
            self.fail(
                "missing header",
                "SUBSCRIBE requires id and destination headers",
                frame.header("receipt"),
            );
            return;
        };
        if self.subs.iter().any(|s| &*s.id == id) {
            self.refuse(
                "duplicate subscription",
                &format!("subscription id {id:?} is already in use"),
                &frame,
            );
            return;
        }
        if self.subs.len() >= self.settings.max_subscriptions {
            self.refuse(
                "too many subscriptions",
                &format!(
                    "at most {} subscriptions per connection",
                    self.settings.max_subscriptions
                ),
                &frame,
            );
            return;
        }
        let ack = match frame.header("ack").unwrap_or("auto") {
            "auto" => AckMode::Auto,
            "client" => AckMode::Client,
            "client-individual" => AckMode::ClientIndividual,
            other => {
                self.refuse(
                    "invalid ack mode",
                    &format!("unknown ack mode {other:?}"),
                    &frame,
                );
                return;
            }
        };
        let Some(dest) = routing::parse_destination(destination) else {
            self.refuse(
                "unknown destination",
                &format!("cannot subscribe to {destination:?}"),
                &frame,
            );
            return;
        };
        let target = match resolve(&self.state.engine, user, dest).await {
            Ok(t) => t,
            Err(e) => {
                debug!(user_id = %user, destination, code = %e.code(), "subscribe refused");
                self.refuse(
                    "forbidden",
                    &format!("{}: {} ({destination})", e.code(), e.message()),
                    &frame,
                );
                return;
            }
        };
        let (topic, filter) = target;
        let subscriber = Arc::new(Subscriber::new(
            id,
            destination,
            filter,
            ack,
            self.shared.outbox.clone(),
        ));
        match self.hub.subscribe(topic, subscriber).await {
            Ok(subscription) => {
                // Exactly the room needed: most sessions hold two or three subscriptions.
                self.subs.reserve_exact(1);
                self.subs.push(SubEntry {
                    id: id.into(),
                    subscription,
                    topic,
                });
                self.receipt(&frame, &[]);
            }
            Err(e) => {
                self.refuse(
                    "subscribe failed",
                    &format!("{}: {}", e.code(), e.message()),
                    &frame,
                );
            }
        }
    }

    fn unsubscribe(&mut self, frame: Frame) {
        let Some(id) = frame.header("id") else {
            self.fail(
                "missing header",
                "UNSUBSCRIBE requires an id header",
                frame.header("receipt"),
            );
            return;
        };
        if let Some(i) = self.subs.iter().position(|s| &*s.id == id) {
            let entry = self.subs.swap_remove(i);
            let sub = entry.subscription.subscriber().clone();
            self.shared
                .acks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(_, s)| !Arc::ptr_eq(s, &sub));
        }
        self.receipt(&frame, &[]);
    }

    fn ack(&mut self, frame: Frame) {
        let Some(raw) = frame.header("id").or_else(|| frame.header("message-id")) else {
            self.fail(
                "missing header",
                "ACK/NACK requires an id header",
                frame.header("receipt"),
            );
            return;
        };
        let found = raw.parse::<u64>().ok().is_some_and(|id| {
            let mut acks = self.shared.acks.lock().unwrap_or_else(|e| e.into_inner());
            let Some(pos) = acks.iter().position(|(i, _)| *i == id) else {
                return false;
            };
            let sub = acks[pos].1.clone();
            match sub.ack {
                // Cumulative: everything of this subscription up to the id.
                AckMode::Client => acks.retain(|(i, s)| !(Arc::ptr_eq(s, &sub) && *i <= id)),
                _ => {
                    acks.remove(pos);
                }
            }
            true
        });
        if found {
            self.receipt(&frame, &[]);
        } else {
            self.refuse(
                "unknown ack id",
                &format!("no pending message with id {raw:?}"),
                &frame,
            );
        }
    }
}

/// Runs the engine checks [`routing::access`] asks for and returns the topic and filter.
async fn resolve(
    engine: &shoot_core::ChatEngine,
    user: UserId,
    dest: routing::Destination,
) -> shoot_core::Result<(Topic, Filter)> {
    match routing::access(user, dest)? {
        Access::Granted(topic, filter) => Ok((topic, filter)),
        Access::Room(room, filter) => {
            Box::pin(engine.authorize_room(user, room)).await?;
            Ok((Topic::Room(room), filter))
        }
        Access::Message(id) => {
            let record = Box::pin(engine.message(user, id)).await?;
            let root = record.message.thread_id.unwrap_or(record.message.id);
            Ok((Topic::Room(record.message.room_id), Filter::Thread(root)))
        }
    }
}

/// Whether a WebSocket read error is the transport failing (as opposed to the client
/// breaking the protocol).
/// Whether a WebSocket read error means the peer is gone — an I/O failure, or a connection
/// closed or reset without the closing handshake (a client killed, a network drop) — rather
/// than a frame it got wrong: the session then ends quietly, without an ERROR frame nobody
/// would read and without counting a STOMP error.
fn peer_gone(e: &axum::Error) -> bool {
    use tungstenite::error::{Error as WsError, ProtocolError};
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        if let Some(ws) = s.downcast_ref::<WsError>() {
            return matches!(
                ws,
                WsError::Io(_)
                    | WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            );
        }
        source = s.source();
    }
    false
}

fn next_session_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The highest version both sides speak: `accept-version` absent means 1.0.
pub(crate) fn negotiate_version(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept else {
        return Some("1.0");
    };
    let offered: Vec<&str> = accept.split(',').map(str::trim).collect();
    ["1.2", "1.1", "1.0"]
        .into_iter()
        .find(|v| offered.contains(v))
}

/// `heart-beat: cx,cy` (absent or malformed: `0,0`).
pub(crate) fn parse_heartbeat(value: Option<&str>) -> (u64, u64) {
    let Some((a, b)) = value.and_then(|v| v.split_once(',')) else {
        return (0, 0);
    };
    match (a.trim().parse(), b.trim().parse()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => (0, 0),
    }
}

/// The access token of a CONNECT frame: `Authorization: Bearer …` (any case), else
/// `passcode` or `login` (raw or `Bearer …`), else `token`.
pub(crate) fn connect_token(frame: &Frame) -> Option<&str> {
    fn strip(v: &str) -> Option<&str> {
        let v = v.trim();
        let v = match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ if v.eq_ignore_ascii_case("bearer") => "",
            _ => v,
        };
        (!v.is_empty()).then_some(v)
    }
    frame
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| strip(v))
        .or_else(|| frame.header("passcode").and_then(strip))
        .or_else(|| frame.header("login").and_then(strip))
        .or_else(|| frame.header("token").and_then(strip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate_version(Some("1.0,1.1,1.2")), Some("1.2"));
        assert_eq!(negotiate_version(Some("1.1, 1.0")), Some("1.1"));
        assert_eq!(negotiate_version(None), Some("1.0"));
        assert_eq!(negotiate_version(Some("2.0")), None);
    }

    #[test]
    fn a_reset_or_closed_peer_is_gone_a_bad_frame_is_not() {
        use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
        let gone = |e: WsError| peer_gone(&axum::Error::new(e));
        assert!(gone(WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake
        )));
        assert!(gone(WsError::ConnectionClosed));
        assert!(gone(WsError::AlreadyClosed));
        assert!(gone(WsError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(peer_gone(&axum::Error::new(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe
        ))));
        assert!(!gone(WsError::Protocol(
            ProtocolError::UnmaskedFrameFromClient
        )));
        assert!(!gone(WsError::Capacity(CapacityError::MessageTooLong {
            size: 2,
            max_size: 1
        })));
        assert!(!gone(WsError::Utf8("bad".into())));
    }

    #[test]
    fn heartbeat_parsing() {
        assert_eq!(parse_heartbeat(Some("10000,10000")), (10000, 10000));
        assert_eq!(parse_heartbeat(Some(" 0 , 500")), (0, 500));
        assert_eq!(parse_heartbeat(Some("x,1")), (0, 0));
        assert_eq!(parse_heartbeat(None), (0, 0));
    }

    #[test]
    fn token_sources() {
        let f = |h: &[(&str, &str)]| {
            let mut f = Frame::new(Command::Connect);
            for (k, v) in h {
                f = f.with_header(*k, *v);
            }
            f
        };
        assert_eq!(
            connect_token(&f(&[("Authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            connect_token(&f(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            connect_token(&f(&[("passcode", "xyz"), ("login", "u")])),
            Some("xyz")
        );
        assert_eq!(connect_token(&f(&[("login", "Bearer t")])), Some("t"));
        assert_eq!(connect_token(&f(&[("Authorization", "Bearer ")])), None);
        assert_eq!(connect_token(&f(&[("host", "x")])), None);
    }

    #[test]
    fn message_frames_prefix_the_shared_tail() {
        let outbox = Arc::new(Outbox::new(4));
        let sub = Subscriber::new(
            "s:1",
            "/topic/messages/5",
            Filter::RoomMessages,
            AckMode::Auto,
            outbox.clone(),
        );
        let payload = Payload::json("MESSAGE_CREATED", "{\"a\":1}", false);
        let text = message_frame(&sub, 7, &payload);
        let (frame, used) = frame::decode(text.as_bytes(), &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, text.len());
        assert_eq!(frame.command, Command::Message);
        assert_eq!(frame.header("subscription"), Some("s:1"));
        assert_eq!(frame.header("destination"), Some("/topic/messages/5"));
        assert_eq!(frame.header("message-id"), Some("7"));
        assert_eq!(frame.header("event-type"), Some("MESSAGE_CREATED"));
        assert_eq!(frame.header("content-type"), Some("application/json"));
        assert_eq!(frame.header("ack"), None);
        assert_eq!(&frame.body[..], b"{\"a\":1}");
        let acked = Subscriber::new(
            "2",
            "/user/queue/errors",
            Filter::User(UserQueue::Errors),
            AckMode::Client,
            outbox,
        );
        let text = message_frame(&acked, 9, &payload);
        let (frame, _) = frame::decode(text.as_bytes(), &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(frame.header("ack"), Some("9"));
    }
}
