//! Test harness shared by every module of the test binary:
//!
//! - [`TestApp`]: the real router over memory ports, called with `tower::ServiceExt::oneshot`,
//!   with REST shortcuts (sign-up and login, group rooms, stored messages, token refresh);
//! - [`start_server`] and [`ServerExt`]: the real server on an ephemeral port, with engine
//!   shortcuts (users with access tokens, group rooms, text messages);
//! - [`StompClient`]: a minimal STOMP-over-WebSocket client on tokio-tungstenite;
//! - [`eventually`] and [`poll`]: bounded waits for a condition.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shoot_core::engine::{NewUser, SendMessage};
use shoot_core::messages::MessageType;
use shoot_core::{RoomId, UserId};
use shoot_server::config::Config;
use shoot_server::metrics::Metrics;
use shoot_server::stomp::frame::{self, Command, Frame, FrameLimits};
use shoot_server::{AppState, ServerHandle, app, build_engine, serve};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

/// The password of every user the helpers sign up.
pub(crate) const PASSWORD: &str = "Secret#123";

// ---------------------------------------------------------------------------------------
// REST over the router
// ---------------------------------------------------------------------------------------

pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) router: Router,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub(crate) fn code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or("")
    }

    /// The string `data[key]` (panics if it is not a string).
    #[track_caller]
    pub(crate) fn data_str(&self, key: &str) -> String {
        str_of(self.data(), key)
    }

    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.body
        );
        if status < 300 {
            assert_eq!(self.body["success"], json!(true), "{}", self.body);
        } else {
            assert_eq!(self.body["success"], json!(false), "{}", self.body);
            assert!(self.body["data"].is_null(), "{}", self.body);
            assert!(self.body["message"].is_string(), "{}", self.body);
        }
        self
    }

    #[track_caller]
    pub(crate) fn expect_err(self, status: u16, code: &str) -> Reply {
        let r = self.expect(status);
        assert_eq!(r.code(), code, "{}", r.body);
        r
    }
}

/// The string `v[key]` (panics if it is not a string).
#[track_caller]
pub(crate) fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_owned()
}

pub(crate) struct Session {
    pub(crate) user_id: String,
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl Session {
    pub(crate) fn id(&self) -> UserId {
        UserId(self.user_id.parse().unwrap())
    }
}

impl TestApp {
    pub(crate) async fn new() -> TestApp {
        TestApp::with_config(Config::for_tests()).await
    }

    pub(crate) async fn with_config(config: Config) -> TestApp {
        let metrics = Arc::new(Metrics::default());
        let engine = build_engine(&config, metrics.clone())
            .await
            .expect("engine");
        engine.start().await.expect("start");
        let state = AppState::with_metrics(engine, config, metrics);
        let router = app(state.clone());
        TestApp { state, router }
    }

    pub(crate) async fn raw(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    /// Sends `body` as is, with the given `content-type` (none when `None`).
    pub(crate) async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Body,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self.raw(req.body(body).unwrap()).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply { status, body }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        match body {
            Some(b) => {
                let body = Body::from(b.to_string());
                self.request(method, uri, token, Some("application/json"), body)
                    .await
            }
            None => self.request(method, uri, token, None, Body::empty()).await,
        }
    }

    pub(crate) async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub(crate) async fn post(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    pub(crate) async fn put(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, uri, Some(token), Some(body)).await
    }

    pub(crate) async fn delete(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::DELETE, uri, Some(token), None).await
    }

    pub(crate) async fn signup(&self, username: &str) -> Value {
        let body = json!({
            "username": username, "nickname": format!("{username} nick"),
            "email": format!("{username}@example.com"), "password": PASSWORD,
        });
        self.call(Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await
            .expect(201)
            .data()
            .clone()
    }

    pub(crate) async fn login(&self, username: &str) -> Session {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await
            .expect(200);
        Session {
            user_id: r.data_str("userId"),
            access: r.data_str("accessToken"),
            refresh: r.data_str("refreshToken"),
        }
    }

    pub(crate) async fn user(&self, username: &str) -> Session {
        self.signup(username).await;
        self.login(username).await
    }

    /// POST /auth/refresh with `token` in the body.
    pub(crate) async fn refresh(&self, token: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": token})),
        )
        .await
    }

    /// POST /auth/logout of `session` (its access token, and its refresh token in the body).
    pub(crate) async fn logout(&self, session: &Session) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(&session.access),
            Some(json!({"refreshToken": session.refresh})),
        )
        .await
    }

    /// A group room of `owner` with `members` (201): its id.
    pub(crate) async fn group(&self, owner: &Session, title: &str, members: &[&Session]) -> String {
        let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        self.post(
            "/api/v1/chatrooms",
            &owner.access,
            json!({"type": "GROUP", "title": title, "participantIds": ids}),
        )
        .await
        .expect(201)
        .data_str("id")
    }

    /// `from` asks `target` (a user id) to be friends.
    pub(crate) async fn friend_request(&self, from: &Session, target: &str) -> Reply {
        self.post(
            "/api/v1/users/friends/requests",
            &from.access,
            json!({"targetUserId": target}),
        )
        .await
    }

    /// Sends a text message through the engine and waits until it is stored (SAVED): its
    /// detail as the REST API shows it to `who`.
    pub(crate) async fn send_saved(
        &self,
        who: &Session,
        room: &str,
        text: &str,
        temp: &str,
    ) -> Value {
        let room = RoomId(room.parse().unwrap());
        let receipt = self
            .state
            .engine
            .send_message(who.id(), text_message(room, text, temp))
            .await
            .expect("send");
        let uri = format!("/api/v1/messages/detail/{}", receipt.message_id);
        eventually(10, || async {
            let r = self.get(&uri, &who.access).await;
            (r.status == 200 && r.data()["status"] == "SAVED").then(|| r.data().clone())
        })
        .await
    }
}

/// A plain text message of `room` (no thread, no mentions).
pub(crate) fn text_message(room: RoomId, text: &str, temp: &str) -> SendMessage {
    SendMessage {
        room_id: room,
        text: text.to_owned(),
        message_type: MessageType::Text,
        temp_id: temp.to_owned(),
        thread_id: None,
        mentions: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The real server
// ---------------------------------------------------------------------------------------

/// The server on an ephemeral port of 127.0.0.1.
pub(crate) async fn try_start_server(config: Config) -> anyhow::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(config, listener).await
}

/// The server on an ephemeral port of 127.0.0.1 (panics if it does not start).
pub(crate) async fn start_server(config: Config) -> ServerHandle {
    try_start_server(config).await.expect("server starts")
}

/// Engine shortcuts on a running server.
pub(crate) trait ServerExt {
    /// Signs `name` up through the engine: its id and an access token.
    async fn user(&self, name: &str) -> (UserId, String);

    /// A group room of `owner` with `members`, created through the engine.
    async fn group(&self, owner: UserId, title: &str, members: Vec<UserId>) -> RoomId;
}

impl ServerExt for ServerHandle {
    async fn user(&self, name: &str) -> (UserId, String) {
        let user = self
            .state
            .engine
            .signup(NewUser {
                username: name.to_owned(),
                nickname: format!("{name} nick"),
                email: format!("{name}@example.com"),
                password: PASSWORD.to_owned(),
                bio: None,
            })
            .await
            .expect("signup");
        let token = self.state.auth.issue_access(user.id).expect("token");
        (user.id, token)
    }

    async fn group(&self, owner: UserId, title: &str, members: Vec<UserId>) -> RoomId {
        self.state
            .engine
            .create_group_room(owner, title, members)
            .await
            .expect("room")
            .room
            .id
    }
}

// ---------------------------------------------------------------------------------------
// STOMP over WebSocket
// ---------------------------------------------------------------------------------------

/// Longest wait for the next WebSocket message unless a client is given another.
pub(crate) const FRAME_WAIT: Duration = Duration::from_secs(10);

/// CONNECT (STOMP 1.2) with `heart_beat` and, if given, `Authorization: Bearer {token}`.
pub(crate) fn connect_frame(token: Option<&str>, heart_beat: &str) -> Frame {
    let f = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "localhost")
        .with_header("heart-beat", heart_beat);
    match token {
        Some(t) => f.with_header("Authorization", format!("Bearer {t}")),
        None => f,
    }
}

/// SUBSCRIBE `id` to `dest`, asking for receipt `sub-{id}`.
pub(crate) fn subscribe_frame(id: &str, dest: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", id)
        .with_header("destination", dest)
        .with_header("receipt", format!("sub-{id}"))
}

/// SEND of a JSON `body` to `dest`, with a receipt request if given.
pub(crate) fn send_frame(
    dest: &str,
    body: impl Into<bytes::Bytes>,
    receipt: Option<&str>,
) -> Frame {
    let f = Frame::new(Command::Send)
        .with_header("destination", dest)
        .with_header("content-type", "application/json");
    match receipt {
        Some(r) => f.with_header("receipt", r),
        None => f,
    }
    .with_body(body)
}

/// The JSON body of a frame.
#[track_caller]
pub(crate) fn json_body(f: &Frame) -> Value {
    serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("json body: {e}: {f:?}"))
}

/// Whether `f` is a MESSAGE with header `event-type: {event_type}`.
pub(crate) fn is_event(f: &Frame, event_type: &str) -> bool {
    f.command == Command::Message && f.header("event-type") == Some(event_type)
}

/// A STOMP 1.2 client. Frames read while waiting for others are kept in a backlog.
pub(crate) struct StompClient {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: Vec<u8>,
    /// What the client accepts from the server.
    pub(crate) limits: FrameLimits,
    /// Longest wait for each WebSocket message of [`Self::try_next`], and for the whole of
    /// [`Self::wait_for`].
    pub(crate) wait: Duration,
    /// Whether frames go out as binary WebSocket messages (text otherwise).
    pub(crate) binary: bool,
    backlog: VecDeque<Frame>,
    closed: bool,
}

impl StompClient {
    /// Opens `ws://{addr}/ws/chat{query}`; `v12` offers the `v12.stomp` subprotocol, and
    /// `rcvbuf` shrinks the client's socket receive buffer.
    pub(crate) async fn try_open(
        addr: SocketAddr,
        query: &str,
        v12: bool,
        rcvbuf: Option<u32>,
    ) -> Result<(StompClient, Response), String> {
        let handshake = |e: &dyn std::fmt::Display| format!("websocket handshake: {e}");
        let mut req = format!("ws://{addr}/ws/chat{query}")
            .into_client_request()
            .map_err(|e| handshake(&e))?;
        if v12 {
            req.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("v12.stomp"),
            );
        }
        let stream = match rcvbuf {
            None => TcpStream::connect(addr).await,
            Some(size) => {
                let socket = TcpSocket::new_v4().unwrap();
                socket.set_recv_buffer_size(size).unwrap();
                socket.connect(addr).await
            }
        }
        .map_err(|e| handshake(&e))?;
        let (ws, resp) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream))
            .await
            .map_err(|e| handshake(&e))?;
        let client = StompClient {
            ws,
            buf: Vec::new(),
            limits: FrameLimits::default(),
            wait: FRAME_WAIT,
            binary: false,
            backlog: VecDeque::new(),
            closed: false,
        };
        Ok((client, resp))
    }

    /// Opens `ws://{addr}/ws/chat{query}` (no subprotocol offered).
    pub(crate) async fn open(addr: SocketAddr, query: &str) -> StompClient {
        match StompClient::try_open(addr, query, false, None).await {
            Ok((c, _)) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// Opens and CONNECTs without heart-beats, waiting at most `wait` (also the client's
    /// [`Self::wait`]) for CONNECTED; or says why not (the server is gone, or it answered
    /// with an ERROR).
    pub(crate) async fn try_connect(
        addr: SocketAddr,
        token: &str,
        wait: Duration,
    ) -> Result<StompClient, String> {
        let (mut c, _) = StompClient::try_open(addr, "", false, None).await?;
        c.wait = wait;
        if !c.try_send(connect_frame(Some(token), "0,0")).await {
            return Err("the connection closed before CONNECT".to_owned());
        }
        match c.read(Instant::now() + wait).await {
            Some(f) if f.command == Command::Connected => Ok(c),
            Some(f) => Err(format!("answered {f:?}")),
            None => Err("no CONNECTED".to_owned()),
        }
    }

    /// Opens and CONNECTs without heart-beats; panics unless CONNECTED.
    pub(crate) async fn connect(addr: SocketAddr, token: &str) -> StompClient {
        StompClient::connect_within(addr, token, FRAME_WAIT).await
    }

    /// [`Self::connect`], waiting at most `wait` for CONNECTED.
    pub(crate) async fn connect_within(
        addr: SocketAddr,
        token: &str,
        wait: Duration,
    ) -> StompClient {
        StompClient::try_connect(addr, token, wait)
            .await
            .unwrap_or_else(|e| panic!("STOMP connect to {addr}: {e}"))
    }

    /// Sends CONNECT without heart-beats (with `token` if given); the answer, or `None` if
    /// the connection closed.
    pub(crate) async fn send_connect(&mut self, token: Option<&str>) -> Option<Frame> {
        self.send(connect_frame(token, "0,0")).await;
        self.try_next().await
    }

    /// Whether the server closed the connection (a read returned `None` for that reason).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) async fn send(&mut self, f: Frame) {
        assert!(self.try_send(f).await, "ws send");
    }

    /// Sends a frame; `false` if the connection is gone.
    pub(crate) async fn try_send(&mut self, f: Frame) -> bool {
        let msg = if self.binary {
            Message::Binary(f.encode().into())
        } else {
            Message::Text(String::from_utf8(f.encode()).unwrap().into())
        };
        self.ws.send(msg).await.is_ok()
    }

    /// Sends `raw` as one text WebSocket message.
    pub(crate) async fn send_raw(&mut self, raw: &str) {
        self.ws
            .send(Message::Text(raw.to_owned().into()))
            .await
            .expect("ws send");
    }

    /// Sends one binary WebSocket message (STOMP bytes that need not be UTF-8).
    pub(crate) async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("ws send");
    }

    /// SUBSCRIBE with a receipt; the next frame (RECEIPT or ERROR).
    pub(crate) async fn subscribe(&mut self, id: &str, dest: &str) -> Frame {
        self.send(subscribe_frame(id, dest)).await;
        self.next().await
    }

    /// SUBSCRIBE with a receipt; the answer (RECEIPT or ERROR), the MESSAGE frames before it
    /// going to the backlog.
    pub(crate) async fn subscribe_answer(&mut self, id: &str, dest: &str) -> Frame {
        self.send(subscribe_frame(id, dest)).await;
        self.next_non_message().await
    }

    /// SUBSCRIBE, and asserts the RECEIPT comes (waiting as [`Self::wait_for`] does).
    pub(crate) async fn must_subscribe(&mut self, id: &str, dest: &str) {
        let receipt = format!("sub-{id}");
        self.send(subscribe_frame(id, dest)).await;
        let f = self
            .wait_for(dest, |f| {
                f.command == Command::Error || f.header("receipt-id") == Some(receipt.as_str())
            })
            .await;
        assert_eq!(f.command, Command::Receipt, "subscribe {dest}: {f:?}");
    }

    /// SEND of a JSON `body` to an `/app` destination.
    pub(crate) async fn app(&mut self, dest: &str, body: &Value, receipt: Option<&str>) {
        self.send(send_frame(dest, body.to_string(), receipt)).await;
    }

    /// SEND of `body` as is to `dest`, with a receipt request.
    pub(crate) async fn app_bytes(&mut self, dest: &str, body: &[u8], receipt: &str) {
        self.send(send_frame(dest, body.to_vec(), Some(receipt)))
            .await;
    }

    /// SEND with a receipt; the answer (RECEIPT or ERROR), the MESSAGE frames before it going
    /// to the backlog.
    pub(crate) async fn request(&mut self, dest: &str, body: &Value, receipt: &str) -> Frame {
        self.app(dest, body, Some(receipt)).await;
        self.next_non_message().await
    }

    /// The next frame from the socket (heart-beats skipped); `Ok(None)` once it closed, `Err`
    /// when no WebSocket message came by `deadline` (or within [`Self::wait`] of each read).
    async fn read_frame(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Frame>, tokio::time::error::Elapsed> {
        loop {
            if let Some((f, used)) =
                frame::decode(&self.buf, &self.limits).expect("server frames are valid")
            {
                self.buf.drain(..used);
                return Ok(Some(f));
            }
            let skip = frame::heartbeat_prefix(&self.buf);
            self.buf.drain(..skip);
            let until = deadline.unwrap_or_else(|| Instant::now() + self.wait);
            match tokio::time::timeout_at(until.into(), self.ws.next()).await? {
                Some(Ok(Message::Text(t))) => self.buf.extend_from_slice(t.as_bytes()),
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.closed = true;
                    return Ok(None);
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next frame from the socket (heart-beats skipped); `None` once it closed or when
    /// `deadline` passed.
    pub(crate) async fn read(&mut self, deadline: Instant) -> Option<Frame> {
        self.read_frame(Some(deadline)).await.ok().flatten()
    }

    /// The next frame (heart-beats skipped), or `None` once the socket closed; panics when no
    /// WebSocket message comes within [`Self::wait`].
    pub(crate) async fn try_next(&mut self) -> Option<Frame> {
        self.read_frame(None).await.expect("no frame in time")
    }

    pub(crate) async fn next(&mut self) -> Frame {
        self.try_next().await.expect("connection closed")
    }

    /// The next frame that is not a MESSAGE; the MESSAGE frames before it go to the backlog.
    pub(crate) async fn next_non_message(&mut self) -> Frame {
        loop {
            let f = self.next().await;
            if f.command != Command::Message {
                return f;
            }
            self.backlog.push_back(f);
        }
    }

    /// The frames set aside while waiting for others, oldest first (and forgets them).
    pub(crate) fn take_backlog(&mut self) -> Vec<Frame> {
        self.backlog.drain(..).collect()
    }

    /// The first frame (backlog first) matching `pred`; panics after [`Self::wait`].
    pub(crate) async fn wait_for(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("present");
        }
        let wait = self.wait;
        let deadline = Instant::now() + wait;
        loop {
            match self.read(deadline).await {
                Some(f) if pred(&f) => return f,
                Some(f) => self.backlog.push_back(f),
                None => panic!(
                    "waiting for {what}: connection closed or {wait:?} passed; backlog: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// The next RECEIPT `id` and the MESSAGE frames before it (any other frame panics).
    pub(crate) async fn until_receipt(&mut self, id: &str) -> (Frame, Vec<Frame>) {
        let mut messages = Vec::new();
        loop {
            let f = self.next().await;
            match f.command {
                Command::Receipt if f.header("receipt-id") == Some(id) => {
                    return (f, messages);
                }
                Command::Message => messages.push(f),
                _ => panic!("unexpected frame waiting for receipt {id}: {f:?}"),
            }
        }
    }

    /// The next frame must be an ERROR with header `message`; returns its body.
    pub(crate) async fn expect_error(&mut self, message: &str) -> String {
        let f = self.next().await;
        assert_eq!(f.command, Command::Error, "{f:?}");
        assert_eq!(f.header("message"), Some(message), "{f:?}");
        String::from_utf8_lossy(&f.body).into_owned()
    }

    /// Asserts the server closes the connection, with no MESSAGE before the close.
    pub(crate) async fn expect_closed(&mut self) {
        while let Some(f) = self.try_next().await {
            assert_ne!(f.command, Command::Message, "data after the end: {f:?}");
        }
    }

    /// Asserts the server ends the session: nothing but ERROR frames, then the close.
    pub(crate) async fn expect_closed_after_errors(&mut self) {
        while let Some(f) = self.try_next().await {
            assert_eq!(
                f.command,
                Command::Error,
                "unexpected frame before close: {f:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------

/// Polls `f` every `every` until it returns `Some`, failing after `within`.
pub(crate) async fn poll<T, F, Fut>(what: &str, within: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {within:?}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Polls `f` (every 10 ms) until it returns `Some`, failing after `secs`.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(
        "condition",
        Duration::from_secs(secs),
        Duration::from_millis(10),
        f,
    )
    .await
}
