//! # shoot-tests
//!
//! End-to-end harness: the real `shoot-server` started in-process on `127.0.0.1:0` over a
//! temporary SQLite data directory, with real clients: HTTP through `reqwest` and STOMP 1.2
//! over WebSocket through `tokio-tungstenite` and the small [`Stomp`] client below.
//!
//! Synchronisation is always "poll until a deadline" ([`Stomp::next_on`], [`eventually`]),
//! never a fixed sleep.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use shoot_server::ServerHandle;
use shoot_server::config::{Config, StorageKind};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use shoot_server::config;

/// The password every test user signs up with (meets the password rules).
pub const PASSWORD: &str = "Secret#123";

/// How long a test waits for something that should happen "soon".
pub const WAIT: Duration = Duration::from_secs(5);

/// A deadline `d` from now.
pub fn deadline(d: Duration) -> Instant {
    Instant::now() + d
}

/// A running server over its own temporary data directory.
pub struct TestServer {
    handle: Option<ServerHandle>,
    config: Config,
    // Kept alive for the server's lifetime (deleted on drop).
    _dir: TempDir,
    /// Bound address (changes on [`restart`](Self::restart)).
    pub addr: SocketAddr,
    http: reqwest::Client,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.shutdown_token().cancel();
        }
    }
}

/// The configuration every e2e server starts from: SQLite in `dir`, cheap Argon2, no link
/// previews, a fixed JWT key (so tokens survive a restart).
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::for_tests();
    c.storage = StorageKind::Sqlite;
    c.data_dir = dir.to_path_buf();
    c
}

impl TestServer {
    /// A server with the default test configuration.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server with the test configuration adjusted by `tweak` (limits and so on).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let handle = launch(config.clone()).await.expect("server starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client");
        TestServer {
            addr: handle.addr,
            handle: Some(handle),
            config,
            _dir: dir,
            http,
        }
    }

    /// Stops the server gracefully (drains the engine) and starts a new one on the same data
    /// directory. The address changes; tokens stay valid (same key).
    pub async fn restart(&mut self) {
        self.stop_inner().await;
        let handle = launch(self.config.clone()).await.expect("server restarts");
        self.addr = handle.addr;
        self.handle = Some(handle);
    }

    async fn stop_inner(&mut self) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h.shutdown())
                .await
                .expect("server shutdown finishes within 15 s")
                .expect("server shuts down cleanly");
        }
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `http://addr/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}/api/v1{}", self.addr, path)
    }

    /// `ws://addr/ws/chat`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// A REST call with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.api(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await, &method, path).await
    }

    /// A REST call with a raw body and content type (for malformed input).
    pub async fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.clone(), self.api(path))
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Resp::from(req.send().await, &method, path).await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// POST with a token and body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    /// PUT with a token and body.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(reqwest::Method::PUT, path, Some(token), Some(body))
            .await
    }

    /// DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// DELETE with a token and body.
    pub async fn delete_with(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(reqwest::Method::DELETE, path, Some(token), Some(body))
            .await
    }

    /// Signs `username` up (201) and logs in.
    pub async fn user(&self, username: &str) -> User {
        let body = json!({
            "username": username,
            "nickname": format!("{username} nick"),
            "email": format!("{username}@example.com"),
            "password": PASSWORD,
        });
        let created = self
            .call(reqwest::Method::POST, "/auth/signup", None, Some(body))
            .await
            .expect(201);
        let id = created.data()["id"]
            .as_str()
            .expect("user id is a string")
            .to_owned();
        self.login(username, &id).await
    }

    /// Logs `username` in.
    pub async fn login(&self, username: &str, id: &str) -> User {
        let body = json!({"username": username, "password": PASSWORD});
        let r = self
            .call(reqwest::Method::POST, "/auth/login", None, Some(body))
            .await
            .expect(200);
        let d = r.data();
        assert_eq!(
            d["userId"].as_str(),
            Some(id),
            "login answers the user id: {}",
            r.body
        );
        User {
            id: id.to_owned(),
            username: username.to_owned(),
            token: d["accessToken"].as_str().expect("accessToken").to_owned(),
            refresh: d["refreshToken"].as_str().expect("refreshToken").to_owned(),
        }
    }

    /// `from` sends a friend request to `to`; returns the request id.
    pub async fn friend_request(&self, from: &User, to: &User) -> String {
        let r = self
            .post(
                "/users/friends/requests",
                &from.token,
                json!({"targetUserId": to.id}),
            )
            .await
            .expect(201);
        r.data()["requestId"]
            .as_str()
            .expect("requestId")
            .to_owned()
    }

    /// Makes `a` and `b` friends (request + accept); returns their direct room id.
    pub async fn befriend(&self, a: &User, b: &User) -> String {
        let request = self.friend_request(a, b).await;
        let r = self
            .post(
                &format!("/users/friends/requests/{request}/accept"),
                &b.token,
                json!({}),
            )
            .await
            .expect(200);
        r.data()["roomId"]
            .as_str()
            .expect("roomId of the direct room")
            .to_owned()
    }

    /// `owner` creates a group room with `members`; returns its id.
    pub async fn group(&self, owner: &User, title: &str, members: &[&User]) -> String {
        let ids: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
        let r = self
            .post(
                "/chatrooms",
                &owner.token,
                json!({"type": "GROUP", "title": title, "participantIds": ids}),
            )
            .await
            .expect(201);
        r.data()["id"].as_str().expect("room id").to_owned()
    }

    /// A connected STOMP client for `user`.
    pub async fn stomp(&self, user: &User) -> Stomp {
        Stomp::connect(&self.ws_url(), Some(&user.token))
            .await
            .expect("STOMP CONNECT accepted")
    }

    /// History of a room (newest page, oldest → newest).
    pub async fn history(&self, user: &User, room: &str) -> Vec<Value> {
        let r = self
            .get(&format!("/messages/{room}?limit=100"), &user.token)
            .await
            .expect(200);
        r.data().as_array().expect("history is a list").clone()
    }
}

async fn launch(config: Config) -> anyhow::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind 127.0.0.1:0")?;
    shoot_server::serve(config, listener).await
}

/// A signed-up, logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    /// Id (string, as on the wire).
    pub id: String,
    /// Username.
    pub username: String,
    /// Access token.
    pub token: String,
    /// Refresh token.
    pub refresh: String,
}

/// A REST answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// JSON body (a string value when the body is not JSON).
    pub body: Value,
    /// `METHOD path`, for messages.
    pub what: String,
}

impl Resp {
    async fn from(
        r: reqwest::Result<reqwest::Response>,
        method: &reqwest::Method,
        path: &str,
    ) -> Resp {
        let what = format!("{method} {path}");
        let r = r.unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .unwrap_or_else(|e| panic!("{what}: body unreadable: {e}"));
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp { status, body, what }
    }

    /// `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `errorCode` (empty when absent).
    pub fn code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or("")
    }

    /// Checks the envelope `{success, data, message, errorCode}` of this answer.
    #[track_caller]
    pub fn check_envelope(&self) {
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("{}: body is not a JSON object: {}", self.what, self.body));
        for key in ["success", "data", "message", "errorCode"] {
            assert!(
                obj.contains_key(key),
                "{}: envelope lacks {key:?}: {}",
                self.what,
                self.body
            );
        }
        assert!(
            obj.len() == 4,
            "{}: envelope has extra keys: {}",
            self.what,
            self.body
        );
        assert!(
            self.body["message"].is_null() || self.body["message"].is_string(),
            "{}: {}",
            self.what,
            self.body
        );
        if (200..300).contains(&self.status) {
            assert_eq!(
                self.body["success"],
                json!(true),
                "{}: {}",
                self.what,
                self.body
            );
            assert!(
                self.body["errorCode"].is_null(),
                "{}: {}",
                self.what,
                self.body
            );
        } else {
            assert_eq!(
                self.body["success"],
                json!(false),
                "{}: {}",
                self.what,
                self.body
            );
            assert!(self.body["data"].is_null(), "{}: {}", self.what, self.body);
            assert!(
                self.body["message"].is_string(),
                "{}: error without message: {}",
                self.what,
                self.body
            );
            assert!(
                self.body["errorCode"].is_string(),
                "{}: error without errorCode: {}",
                self.what,
                self.body
            );
        }
    }

    /// Asserts the status (and the envelope shape).
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "{}: unexpected status; body {}",
            self.what, self.body
        );
        self.check_envelope();
        self
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn expect_err(self, status: u16, code: &str) -> Resp {
        let r = self.expect(status);
        assert_eq!(r.code(), code, "{}: body {}", r.what, r.body);
        r
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = deadline(within);
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() >= end {
            panic!("timed out after {within:?} waiting for {what}");
        }
        // A back-off between polls, not a synchronisation point: the deadline decides.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// STOMP

/// A STOMP frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Command (`MESSAGE`, `RECEIPT`, `ERROR`, `CONNECTED`, …).
    pub command: String,
    /// Headers in order (decoded).
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Frame {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the frame when it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("frame body is not JSON ({e}): {self:?}"))
    }

    /// Encodes a client frame (header values escaped per STOMP 1.2).
    pub fn encode(command: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut s = String::with_capacity(64 + body.len());
        s.push_str(command);
        s.push('\n');
        for (k, v) in headers {
            s.push_str(&escape(k));
            s.push(':');
            s.push_str(&escape(v));
            s.push('\n');
        }
        if !body.is_empty() {
            s.push_str(&format!("content-length:{}\n", body.len()));
        }
        s.push('\n');
        s.push_str(body);
        s.push('\0');
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace(':', "\\c")
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Decodes every complete frame at the start of `buf`, leaving any partial frame in it.
/// Heart-beat EOLs between frames are skipped.
pub fn decode_frames(buf: &mut Vec<u8>) -> anyhow::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    loop {
        let start = buf
            .iter()
            .position(|&b| b != b'\n' && b != b'\r')
            .unwrap_or(buf.len());
        buf.drain(..start);
        if buf.is_empty() {
            return Ok(frames);
        }
        let Some(head_end) = find(buf, b"\n\n")
            .map(|i| (i, 2))
            .or_else(|| find(buf, b"\r\n\r\n").map(|i| (i, 4)))
        else {
            return Ok(frames);
        };
        let head = std::str::from_utf8(&buf[..head_end.0]).context("frame head is not UTF-8")?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let command = lines.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| anyhow!("malformed header line {line:?}"))?;
            headers.push((unescape(k), unescape(v)));
        }
        let body_start = head_end.0 + head_end.1;
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.trim().parse::<usize>());
        let body_end = match length {
            Some(Ok(n)) => {
                if buf.len() < body_start + n + 1 {
                    return Ok(frames);
                }
                if buf[body_start + n] != 0 {
                    bail!("frame body not NUL-terminated after content-length {n}");
                }
                body_start + n
            }
            Some(Err(e)) => bail!("bad content-length: {e}"),
            None => match buf[body_start..].iter().position(|&b| b == 0) {
                Some(i) => body_start + i,
                None => return Ok(frames),
            },
        };
        let body = String::from_utf8_lossy(&buf[body_start..body_end]).into_owned();
        buf.drain(..=body_end);
        frames.push(Frame {
            command,
            headers,
            body,
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A minimal STOMP 1.2 client over WebSocket. Frames not yet asked for are kept in order in
/// a buffer, so that waiting on one destination never loses frames of another.
pub struct Stomp {
    ws: Ws,
    raw: Vec<u8>,
    pending: VecDeque<Frame>,
    next_id: u64,
    subs: Vec<(String, String)>,
    /// The CONNECTED frame.
    pub connected: Frame,
    closed: bool,
}

impl std::fmt::Debug for Stomp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stomp")
            .field("pending", &self.pending.len())
            .field("subs", &self.subs)
            .finish()
    }
}

impl Stomp {
    /// Opens the WebSocket (sub-protocol `v12.stomp`) and sends CONNECT with
    /// `Authorization: Bearer <token>` when a token is given. An ERROR answer is returned as
    /// `Err` with the frame in the message.
    pub async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Stomp> {
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "v12.stomp".parse()?);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .context("WebSocket handshake timed out")??;
        let mut client = Stomp {
            ws,
            raw: Vec::new(),
            pending: VecDeque::new(),
            next_id: 0,
            subs: Vec::new(),
            connected: empty(),
            closed: false,
        };
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("accept-version", "1.2"),
            ("host", "localhost"),
            ("heart-beat", "0,0"),
        ];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        client
            .send_raw(&Frame::encode("CONNECT", &headers, ""))
            .await?;
        let frame = client
            .next_frame(deadline(WAIT))
            .await
            .ok_or_else(|| anyhow!("no answer to CONNECT"))?;
        match frame.command.as_str() {
            "CONNECTED" => {
                client.connected = frame;
                Ok(client)
            }
            _ => Err(anyhow!("CONNECT refused: {frame:?}")),
        }
    }

    async fn send_raw(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws
            .send(WsMessage::text(text.to_owned()))
            .await
            .context("WebSocket send")
    }

    fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Reads one WebSocket message (until `end`) and appends its frames to the buffer.
    /// `false` on timeout or once the server has closed the connection.
    async fn fill(&mut self, end: Instant) -> bool {
        if self.closed {
            return false;
        }
        let msg = match tokio::time::timeout_at(end, self.ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => {
                self.closed = true;
                return false;
            }
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            WsMessage::Text(t) => self.raw.extend_from_slice(t.as_bytes()),
            WsMessage::Binary(b) => self.raw.extend_from_slice(&b),
            WsMessage::Close(_) => {
                self.closed = true;
                return false;
            }
            _ => return true,
        }
        let frames = decode_frames(&mut self.raw).expect("server frames decode");
        self.pending.extend(frames);
        true
    }

    /// The next frame, buffered first, until `end`.
    pub async fn next_frame(&mut self, end: Instant) -> Option<Frame> {
        self.next_where(end, |_| true).await
    }

    /// The first frame (buffered or new) satisfying `pred`, until `end`; other frames stay
    /// buffered in order.
    pub async fn next_where(
        &mut self,
        end: Instant,
        mut pred: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        let mut from = 0;
        loop {
            if let Some(i) = self.pending.iter().skip(from).position(&mut pred) {
                return self.pending.remove(from + i);
            }
            from = self.pending.len();
            if !self.fill(end).await {
                return None;
            }
        }
    }

    /// The next MESSAGE on `destination` before `end`.
    pub async fn next_on(&mut self, destination: &str, end: Instant) -> Option<Frame> {
        self.next_where(end, |f| {
            f.command == "MESSAGE" && f.header("destination") == Some(destination)
        })
        .await
    }

    /// The next MESSAGE on `destination` whose JSON body satisfies `pred`, before `end`
    /// (earlier non-matching messages on it are dropped).
    pub async fn next_json_on(
        &mut self,
        destination: &str,
        end: Instant,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        self.next_where(end, |f| {
            f.command == "MESSAGE"
                && f.header("destination") == Some(destination)
                && serde_json::from_str::<Value>(&f.body).is_ok_and(|v| pred(&v))
        })
        .await
        .map(|f| f.json())
    }

    /// Every MESSAGE on `destination` already received or arriving before `end`.
    pub async fn drain_on(&mut self, destination: &str, end: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = self.next_on(destination, end).await {
            out.push(f);
        }
        out
    }

    /// Waits for the RECEIPT (`Ok`) or ERROR (`Err`) answering receipt `id`.
    async fn await_receipt(&mut self, id: &str) -> Result<Frame, Frame> {
        let f = self
            .next_where(deadline(WAIT), |f| {
                (f.command == "RECEIPT" || f.command == "ERROR")
                    && f.header("receipt-id") == Some(id)
            })
            .await;
        match f {
            Some(f) if f.command == "RECEIPT" => Ok(f),
            Some(f) => Err(f),
            None => panic!(
                "no RECEIPT/ERROR for receipt {id} within {WAIT:?}; buffered: {:?}",
                self.pending
            ),
        }
    }

    /// SUBSCRIBE with a receipt; `Err(ERROR frame)` when refused.
    pub async fn subscribe(&mut self, destination: &str) -> Result<(), Frame> {
        let id = format!("sub-{}", self.fresh_id());
        let receipt = format!("r-{}", self.fresh_id());
        let text = Frame::encode(
            "SUBSCRIBE",
            &[
                ("id", &id),
                ("destination", destination),
                ("receipt", &receipt),
            ],
            "",
        );
        self.send_raw(&text).await.expect("SUBSCRIBE written");
        self.await_receipt(&receipt).await?;
        self.subs.push((destination.to_owned(), id));
        Ok(())
    }

    /// SUBSCRIBE that must succeed.
    pub async fn must_subscribe(&mut self, destination: &str) {
        if let Err(e) = self.subscribe(destination).await {
            panic!("SUBSCRIBE {destination} refused: {e:?}");
        }
    }

    /// SEND `body` (JSON) to `destination` with a receipt; returns the RECEIPT, or the ERROR
    /// frame as `Err`.
    pub async fn send(&mut self, destination: &str, body: &Value) -> Result<Frame, Frame> {
        let receipt = format!("r-{}", self.fresh_id());
        let body = body.to_string();
        let text = Frame::encode(
            "SEND",
            &[
                ("destination", destination),
                ("content-type", "application/json"),
                ("receipt", &receipt),
            ],
            &body,
        );
        self.send_raw(&text).await.expect("SEND written");
        self.await_receipt(&receipt).await
    }

    /// SEND that must be answered with a RECEIPT.
    pub async fn must_send(&mut self, destination: &str, body: &Value) -> Frame {
        match self.send(destination, body).await {
            Ok(r) => r,
            Err(e) => panic!("SEND {destination} {body} answered with ERROR: {e:?}"),
        }
    }

    /// SEND `/app/chat` with a receipt; returns the receipt (its `status` header is
    /// `SENT_TO_KAFKA` or `FAILED`).
    pub async fn chat(&mut self, room: &str, text: &str, temp_id: &str) -> Frame {
        self.must_send(
            "/app/chat",
            &json!({"roomId": room, "content": text, "tempId": temp_id}),
        )
        .await
    }

    /// Like [`chat`](Self::chat) but asserts the message became durable; returns
    /// `(message id, seq)`.
    pub async fn chat_ok(&mut self, room: &str, text: &str, temp_id: &str) -> (String, i64) {
        let r = self.chat(room, text, temp_id).await;
        assert_eq!(
            r.header("status"),
            Some("SENT_TO_KAFKA"),
            "send of {temp_id:?} not durable: {r:?}"
        );
        let id = r
            .header("persisted-id")
            .expect("persisted-id header")
            .to_owned();
        let seq = r
            .header("seq")
            .and_then(|s| s.parse().ok())
            .expect("seq header");
        (id, seq)
    }

    /// Sends DISCONNECT (with a receipt) and closes the socket.
    pub async fn disconnect(mut self) {
        let receipt = format!("r-{}", self.fresh_id());
        if self
            .send_raw(&Frame::encode("DISCONNECT", &[("receipt", &receipt)], ""))
            .await
            .is_ok()
        {
            let _ = self
                .next_where(deadline(WAIT), |f| {
                    f.header("receipt-id") == Some(receipt.as_str())
                })
                .await;
        }
        let _ = self.ws.close(None).await;
    }

    /// Whether the server has closed the connection (reads until `end` to find out).
    pub async fn closed_by_server(&mut self, end: Instant) -> bool {
        while self.fill(end).await {}
        self.closed
    }
}

fn empty() -> Frame {
    Frame {
        command: String::new(),
        headers: Vec::new(),
        body: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let a = Frame::encode(
            "MESSAGE",
            &[("destination", "/topic/x"), ("k", "a:b\nc")],
            "{\"a\":1}",
        );
        let b = Frame::encode("RECEIPT", &[("receipt-id", "7")], "");
        let mut buf = format!("\n{a}\n\n{b}").into_bytes();
        let partial = Frame::encode("ERROR", &[("message", "x")], "body");
        buf.extend_from_slice(&partial.as_bytes()[..10]);
        let frames = decode_frames(&mut buf).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].command, "MESSAGE");
        assert_eq!(frames[0].header("k"), Some("a:b\nc"));
        assert_eq!(frames[0].json(), json!({"a": 1}));
        assert_eq!(frames[1].header("receipt-id"), Some("7"));
        assert_eq!(buf, partial.as_bytes()[..10].to_vec());
        buf.extend_from_slice(&partial.as_bytes()[10..]);
        let rest = decode_frames(&mut buf).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].body, "body");
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_without_content_length_end_at_nul() {
        let mut buf = b"MESSAGE\ndestination:/d\n\nhello\0".to_vec();
        let f = decode_frames(&mut buf).unwrap();
        assert_eq!(f[0].body, "hello");
    }
}
