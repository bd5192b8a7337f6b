//! Hostile STOMP input and slow consumers against the real server on an ephemeral port
//! (memory ports). Every abuse must be refused with a clear ERROR frame (or, for SENDs, a
//! FAILED receipt and a `/user/queue/errors` message: SEND failures never end a session) at a
//! bounded cost, and the server must go on serving a bystander connection afterwards. The
//! bystander check and the return of the connection gauge and the runtime's task count to
//! their baseline end every test.
//!
//! Runtime: about 10 s in total for the nine tests on an idle machine (the slow-consumer
//! tests push large messages until TCP buffers and the small outbox are full).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shoot_core::engine::{SyncDirection, SyncRequest};
use shoot_core::{RoomId, UserId};
use shoot_server::ServerHandle;
use shoot_server::config::Config;
use shoot_server::stomp::frame::{Command, Frame, FrameLimits};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::{
    ServerExt, StompClient, connect_frame, eventually, json_body, start_server, text_message,
};

/// Bound on any single wait for a frame.
const WAIT: Duration = Duration::from_secs(15);

/// What the test client accepts from the server (server frames may exceed the client limits
/// the server enforces, e.g. a 60 KB message plus its JSON view).
fn client_limits() -> FrameLimits {
    FrameLimits {
        max_frame_bytes: 1 << 20,
        max_headers: 64,
        max_header_line: 64 * 1024,
        max_body: 1 << 20,
    }
}

/// Sends `text` as `sender` through the engine; returns the room sequence number.
async fn post(server: &ServerHandle, sender: UserId, room: RoomId, text: &str, temp: &str) -> i64 {
    let sent = server
        .state
        .engine
        .send_message(sender, text_message(room, text, temp))
        .await
        .expect("send");
    sent.seq.0
}

fn connections(server: &ServerHandle) -> i64 {
    server.state.metrics.stomp_connections.get()
}

fn slow_consumers(server: &ServerHandle) -> u64 {
    server.state.metrics.stomp_slow_consumers.get()
}

/// Alice (with her token) and Bobby, in a room of Alice's.
async fn alice_and_bob(server: &ServerHandle) -> (UserId, String, RoomId) {
    let (alice, token) = server.user("alice").await;
    let (bob, _) = server.user("bobby").await;
    let room = server.group(alice, "team", vec![bob]).await;
    (alice, token, room)
}

/// Alive tasks of the test's runtime (the server runs on it).
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Opens the WebSocket (offering `v12.stomp`); `rcvbuf` shrinks the client's socket receive
/// buffer. The client sends its frames as binary WebSocket messages.
async fn open_with(server: &ServerHandle, rcvbuf: Option<u32>) -> StompClient {
    let (mut c, _) = StompClient::try_open(server.addr, "", true, rcvbuf)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.limits = client_limits();
    c.wait = WAIT;
    c.binary = true;
    c
}

async fn open(server: &ServerHandle) -> StompClient {
    open_with(server, None).await
}

/// Opens and CONNECTs without heart-beats.
async fn connect(server: &ServerHandle, token: &str) -> StompClient {
    let mut c = open(server).await;
    c.send(connect_frame(Some(token), "0,0")).await;
    let f = c.next().await;
    assert_eq!(f.command, Command::Connected, "{f:?}");
    c
}

/// Subscribes to the caller's error queue, which must be granted.
async fn subscribe_errors(c: &mut StompClient) {
    assert_eq!(
        c.subscribe("e", "/user/queue/errors").await.command,
        Command::Receipt
    );
}

/// Waits for RECEIPT `receipt` of a SEND that must fail with `code`, and for the report of
/// the failure on the error queue (before or after the RECEIPT); returns the report.
async fn failed_send(c: &mut StompClient, receipt: &str, code: &str) -> Value {
    let (r, mut errors) = c.until_receipt(receipt).await;
    assert_eq!(r.header("status"), Some("FAILED"), "{r:?}");
    assert_eq!(r.header("error-code"), Some(code), "{r:?}");
    if errors.is_empty() {
        errors.push(c.next().await);
    }
    let v = json_body(&errors[0]);
    assert_eq!(v["errorCode"], code, "{v}");
    v
}

/// A connection that must keep working whatever the other connections do: a room with a
/// sender (through the engine) and a subscribed STOMP receiver.
struct Bystander {
    sender: UserId,
    room: RoomId,
    receiver: StompClient,
    sent: u64,
    /// Connections and runtime tasks once the bystander is up.
    baseline: (i64, usize),
}

impl Bystander {
    async fn start(server: &ServerHandle) -> Bystander {
        let (sender, _) = server.user("bysend").await;
        let (receiver_id, token) = server.user("byrecv").await;
        let room = server.group(sender, "team", vec![receiver_id]).await;
        let mut receiver = connect(server, &token).await;
        let r = receiver
            .subscribe("room", &format!("/topic/messages/{room}"))
            .await;
        assert_eq!(r.command, Command::Receipt, "{r:?}");
        let mut b = Bystander {
            sender,
            room,
            receiver,
            sent: 0,
            baseline: (0, 0),
        };
        // One message first, so that lazily started engine tasks are in the baseline.
        b.still_served(server).await;
        b.baseline = (connections(server), alive_tasks());
        b
    }

    /// A message sent now reaches the receiver.
    async fn still_served(&mut self, server: &ServerHandle) {
        self.sent += 1;
        let text = format!("still here {}", self.sent);
        post(
            server,
            self.sender,
            self.room,
            &text,
            &format!("by-{}", self.sent),
        )
        .await;
        loop {
            let f = self.receiver.next().await;
            if f.command == Command::Message && json_body(&f)["content"]["text"] == text {
                return;
            }
        }
    }

    /// The server still serves the bystander, and every other connection (and its tasks)
    /// is gone.
    async fn check(&mut self, server: &ServerHandle) {
        self.still_served(server).await;
        let (conns, tasks) = self.baseline;
        eventually(30, || async {
            (connections(server) == conns && alive_tasks() <= tasks).then_some(())
        })
        .await;
    }
}

/// Opens, CONNECTs, sends `raw` as one binary message, expects ERROR `message` whose body
/// contains `detail`, then the close.
async fn refused(server: &ServerHandle, token: &str, raw: &[u8], message: &str, detail: &str) {
    let mut c = connect(server, token).await;
    c.send_bytes(raw.to_vec()).await;
    let body = c.expect_error(message).await;
    assert!(body.contains(detail), "{detail:?} not in {body:?}");
    c.expect_closed().await;
}

#[tokio::test]
async fn oversized_frames_and_headers_are_refused_with_an_error() {
    let server = start_server(Config::for_tests()).await;
    let mut bystander = Bystander::start(&server).await;
    let (_, token) = server.user("alice").await;
    let limits = FrameLimits::default();

    // A content-length far beyond the body limit is refused before any body arrives; so are
    // a header line over the limit, and more header lines than allowed.
    let long = format!(
        "SEND\ndestination:/app/chat\nx-long:{}\n\n\0",
        "h".repeat(limits.max_header_line + 1)
    );
    let mut many = String::from("SEND\ndestination:/app/chat\n");
    for i in 0..=limits.max_headers {
        many.push_str(&format!("x-{i}:v\n"));
    }
    many.push_str("\n\0");
    for (raw, detail) in [
        (
            &b"SEND\ndestination:/app/chat\ncontent-length:999999999999\n\n"[..],
            "body too large",
        ),
        (long.as_bytes(), "header line too long"),
        (many.as_bytes(), "too many headers"),
    ] {
        refused(&server, &token, raw, "malformed frame", detail).await;
    }
    // The same limits hold before authentication.
    let mut c = open(&server).await;
    c.send_raw(&format!(
        "CONNECT\naccept-version:1.2\nx:{}\n\n\0",
        "c".repeat(limits.max_header_line + 1)
    ))
    .await;
    c.expect_error("malformed frame").await;
    c.expect_closed().await;

    // A frame without NUL growing over many WebSocket messages: the partial frame the
    // server keeps is bounded by the frame limit.
    let mut c = connect(&server, &token).await;
    c.send_raw("SEND\ndestination:/app/chat\n\n").await;
    let chunk = "x".repeat(1024);
    let mut chunks = 0;
    while chunks * chunk.len() <= limits.max_body + 1024 {
        // The server may close while chunks are still being sent.
        if c.ws
            .send(Message::Text(chunk.clone().into()))
            .await
            .is_err()
        {
            break;
        }
        chunks += 1;
    }
    let body = c.expect_error("malformed frame").await;
    assert!(body.contains("too large"), "{body}");
    c.expect_closed().await;

    // A WebSocket message over the WebSocket limit (frame limit + 1 KiB) is refused by the
    // WebSocket layer, still with an ERROR frame.
    let mut c = connect(&server, &token).await;
    let huge = format!(
        "SEND\ndestination:/app/chat\n\n{}\0",
        "y".repeat(limits.max_frame_bytes + 4096)
    );
    let _ = c.ws.send(Message::Text(huge.into())).await;
    let body = c.expect_error("malformed frame").await;
    assert!(body.contains("websocket"), "{body}");
    c.expect_closed().await;

    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_utf8_is_refused() {
    let server = start_server(Config::for_tests()).await;
    let mut bystander = Bystander::start(&server).await;
    let (_, token, room) = alice_and_bob(&server).await;

    // Invalid UTF-8 in a header value, in a header name, and in the command.
    for (raw, detail) in [
        (
            &b"SUBSCRIBE\nid:\xff\xfe\ndestination:/user/queue/errors\n\n\0"[..],
            "UTF-8",
        ),
        (
            &b"SUBSCRIBE\n\xc3\x28:1\nid:1\ndestination:/user/queue/errors\n\n\0"[..],
            "UTF-8",
        ),
        (
            &b"SEN\xffD\ndestination:/app/chat\n\n\0"[..],
            "unknown command",
        ),
    ] {
        refused(&server, &token, raw, "malformed frame", detail).await;
    }
    // Before authentication too (CONNECT headers are not escaped but must be UTF-8).
    let mut c = open(&server).await;
    c.send_bytes(b"CONNECT\naccept-version:1.2\nlogin:\xff\n\n\0".to_vec())
        .await;
    let body = c.expect_error("malformed frame").await;
    assert!(body.contains("UTF-8"), "{body}");
    c.expect_closed().await;

    // A WebSocket text message that is not UTF-8 (a raw frame: the client library refuses
    // to build one) is refused by the WebSocket layer with an ERROR frame.
    let mut c = connect(&server, &token).await;
    let bad = WsFrame::message(
        b"SEND\ndestination:/app/chat\n\n\xff\0".to_vec(),
        OpCode::Data(Data::Text),
        true,
    );
    c.ws.send(Message::Frame(bad)).await.expect("ws send");
    let body = c.expect_error("malformed frame").await;
    assert!(body.contains("websocket"), "{body}");
    c.expect_closed().await;

    // Invalid UTF-8 inside a JSON body: the SEND fails (FAILED receipt, error queue) and the
    // session goes on.
    let mut c = connect(&server, &token).await;
    subscribe_errors(&mut c).await;
    let mut body = format!("{{\"roomId\":\"{room}\",\"tempId\":\"u8\",\"content\":\"").into_bytes();
    body.extend_from_slice(b"\xff\xfe\xfd\"}");
    c.app_bytes("/app/chat", &body, "bad-utf8").await;
    failed_send(&mut c, "bad-utf8", "VALIDATION_FAILED").await;
    // Still connected: a valid send goes through.
    c.app_bytes(
        "/app/chat",
        json!({"roomId": room.to_string(), "content": "fine", "tempId": "ok-1"})
            .to_string()
            .as_bytes(),
        "good",
    )
    .await;
    let (receipt, _) = c.until_receipt("good").await;
    assert_eq!(
        receipt.header("status"),
        Some("SENT_TO_KAFKA"),
        "{receipt:?}"
    );
    drop(c);

    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn deeply_nested_json_fails_the_send_cheaply() {
    let server = start_server(Config::for_tests()).await;
    let mut bystander = Bystander::start(&server).await;
    let (_, token, room) = alice_and_bob(&server).await;
    let mut c = connect(&server, &token).await;
    subscribe_errors(&mut c).await;

    // 30 000 levels of nesting in just under 60 KB: the JSON parser's recursion limit
    // refuses it (no stack overflow), for a send and for another request.
    let depth = 30_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let chat = format!(r#"{{"roomId":"{room}","tempId":"deep","content":{nested}}}"#);
    let group = format!(r#"{{"action":"CREATE","title":"t","participantIds":{nested}}}"#);
    for (dest, body, receipt) in [
        ("/app/chat", chat, "deep-chat"),
        ("/app/group-chat", group, "deep-group"),
    ] {
        c.app_bytes(dest, body.as_bytes(), receipt).await;
        let v = failed_send(&mut c, receipt, "VALIDATION_FAILED").await;
        assert_eq!(v["destination"], dest, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("recursion limit"),
            "{v}"
        );
    }
    drop(c);
    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_destinations_are_refused_and_the_session_goes_on() {
    let server = start_server(Config::for_tests()).await;
    let mut bystander = Bystander::start(&server).await;
    let (alice, token, room) = alice_and_bob(&server).await;
    let mut c = connect(&server, &token).await;

    let long = format!("/topic/{}", "z".repeat(4000));
    for dest in [
        "/topic/nowhere",
        "/app/chat",
        "/queue/../user/queue/errors",
        "/topic/messages/not-a-number",
        "",
        long.as_str(),
    ] {
        let f = c.subscribe("x", dest).await;
        assert_eq!(f.command, Command::Error, "{dest}: {f:?}");
        assert_eq!(f.header("message"), Some("unknown destination"), "{f:?}");
        assert_eq!(f.header("receipt-id"), Some("sub-x"));
    }
    // Still connected: the own error queue can be subscribed.
    subscribe_errors(&mut c).await;

    // SEND to destinations that are not request handlers: FAILED receipt and an error
    // message naming the destination; topics cannot be published to directly.
    let topic = format!("/topic/messages/{room}");
    for (i, dest) in ["/app/nope", topic.as_str(), "/app/", "/app/chat/extra"]
        .into_iter()
        .enumerate()
    {
        let receipt = format!("s{i}");
        c.app_bytes(dest, b"{}", &receipt).await;
        let v = failed_send(&mut c, &receipt, "NOT_FOUND").await;
        assert_eq!(v["destination"], dest, "{v}");
    }
    // Nothing was published to the room by the attempt on its topic.
    let page = server
        .state
        .engine
        .sync(
            alice,
            SyncRequest {
                room_id: room,
                last_seq: None,
                last_message_id: None,
                direction: SyncDirection::Initial,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.latest_seq.0, 0);
    assert!(page.messages.is_empty());

    // A SEND without a destination is a protocol error: ERROR and close.
    c.send(Frame::new(Command::Send).with_body("{}")).await;
    c.expect_error("missing header").await;
    c.expect_closed().await;

    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn heart_beat_abuse_is_clamped_and_silence_is_disconnected() {
    let mut config = Config::for_tests();
    config.stomp.heartbeat_send_ms = 200;
    config.stomp.heartbeat_receive_ms = 200;
    let server = start_server(config).await;
    let mut bystander = Bystander::start(&server).await;
    let (_, token) = server.user("alice").await;

    // The client asks for a beat every millisecond and promises one: the server beats at
    // its own pace (200 ms), not 1000 times a second. The client keeps its promise.
    let mut c = open(&server).await;
    c.send(connect_frame(Some(&token), "1,1")).await;
    let f = c.next().await;
    assert_eq!(f.command, Command::Connected, "{f:?}");
    assert_eq!(f.header("heart-beat"), Some("200,200"));
    let window = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut beats = 0;
    while tokio::time::Instant::now() < window {
        c.send_raw("\n").await;
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(50), c.ws.next()).await {
            match msg {
                Some(Ok(Message::Text(t))) if t.as_str() == "\n" => beats += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // About 10 expected; a server honouring 1 ms would have sent about 2000.
    assert!((1..=40).contains(&beats), "{beats} heart-beats in 2 s");
    subscribe_errors(&mut c).await;
    drop(c);

    // Absurdly large and malformed values: no overflow, the session works (and is not
    // timed out for lack of beats it never promised in a usable form).
    for hb in [
        "18446744073709551615,18446744073709551615",
        "-5,abc",
        "99999999999999999999999,1",
    ] {
        let mut c = open(&server).await;
        c.send(connect_frame(Some(&token), hb)).await;
        assert_eq!(c.next().await.command, Command::Connected, "{hb}");
        assert_eq!(
            c.subscribe("e", "/user/queue/errors").await.command,
            Command::Receipt,
            "{hb}"
        );
    }

    // A client that promised beats every 100 ms and goes silent — also in the middle of a
    // frame (slowloris) — is disconnected with an ERROR (after 2 × 200 ms).
    for partial in ["", "SEND\ndestination:/app/chat\n\n{\"roomId\":"] {
        let mut c = open(&server).await;
        c.send(connect_frame(Some(&token), "100,0")).await;
        assert_eq!(c.next().await.command, Command::Connected);
        if !partial.is_empty() {
            c.send_raw(partial).await;
        }
        c.expect_error("heart-beat timeout").await;
        c.expect_closed().await;
    }

    // The bystander promised nothing and is left alone.
    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn thousands_of_subscriptions_stop_at_the_cap() {
    let config = Config::for_tests();
    let cap = config.stomp.max_subscriptions;
    assert_eq!(cap, 1000, "the default cap this test exercises");
    let server = start_server(config).await;
    let mut bystander = Bystander::start(&server).await;
    let (alice, token, room) = alice_and_bob(&server).await;
    let mut c = connect(&server, &token).await;

    // `cap` subscriptions over two topics, 100 frames per WebSocket message.
    let dests = [
        "/user/queue/errors".to_owned(),
        format!("/topic/messages/{room}"),
    ];
    for batch in 0..cap / 100 {
        let mut bytes = Vec::new();
        for i in batch * 100..(batch + 1) * 100 {
            let mut f = Frame::new(Command::Subscribe)
                .with_header("id", format!("s{i}"))
                .with_header("destination", dests[i % 2].clone());
            if i + 1 == cap {
                f = f.with_header("receipt", "all");
            }
            f.encode_into(&mut bytes);
        }
        c.send_bytes(bytes).await;
    }
    let (_, messages) = c.until_receipt("all").await;
    assert!(messages.is_empty());

    // A thousand more are each refused with a stable error, the session going on.
    for batch in 0..10 {
        let mut bytes = Vec::new();
        for i in 0..100 {
            Frame::new(Command::Subscribe)
                .with_header("id", format!("extra-{batch}-{i}"))
                .with_header("destination", "/user/queue/errors")
                .with_header("receipt", format!("x{batch}-{i}"))
                .encode_into(&mut bytes);
        }
        c.send_bytes(bytes).await;
        for i in 0..100 {
            let f = c.next().await;
            assert_eq!(f.command, Command::Error, "{f:?}");
            assert_eq!(f.header("message"), Some("too many subscriptions"));
            let receipt = format!("x{batch}-{i}");
            assert_eq!(f.header("receipt-id"), Some(receipt.as_str()));
            assert_eq!(
                String::from_utf8_lossy(&f.body),
                format!("at most {cap} subscriptions per connection")
            );
        }
    }
    // Every accepted subscription is live: one room message arrives once per room
    // subscription (half of them).
    post(&server, alice, room, "to all subs", "t-subs").await;
    let mut seen = 0;
    while seen < cap / 2 {
        let f = c.next().await;
        assert_eq!(f.command, Command::Message, "{f:?}");
        seen += 1;
    }
    // Unsubscribing frees a slot.
    c.send(
        Frame::new(Command::Unsubscribe)
            .with_header("id", "s0")
            .with_header("receipt", "un"),
    )
    .await;
    c.until_receipt("un").await;
    assert_eq!(
        c.subscribe("again", "/user/queue/errors").await.command,
        Command::Receipt
    );
    drop(c);

    // Closing the connection releases every subscription and its tasks.
    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn frames_before_connect_and_a_second_connect_are_refused() {
    let mut config = Config::for_tests();
    config.stomp.connect_timeout = Duration::from_millis(300);
    let server = start_server(config).await;
    let mut bystander = Bystander::start(&server).await;
    let (_, token) = server.user("alice").await;

    for raw in [
        "SUBSCRIBE\nid:1\ndestination:/user/queue/errors\n\n\0",
        "ACK\nid:1\n\n\0",
        "BEGIN\ntransaction:t\n\n\0",
    ] {
        let mut c = open(&server).await;
        c.send_raw(raw).await;
        let body = c.expect_error("not connected").await;
        assert!(body.ends_with("before CONNECT"), "{body}");
        c.expect_closed().await;
    }
    let mut c = open(&server).await;
    c.send_raw("HELLO\n\n\0").await;
    c.expect_error("malformed frame").await;
    c.expect_closed().await;

    // Saying nothing at all: ERROR once the connect timeout passes.
    let mut c = open(&server).await;
    c.expect_error("connect timeout").await;
    c.expect_closed().await;

    // A version the server does not speak.
    let mut c = open(&server).await;
    c.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "9.9")
            .with_header("Authorization", format!("Bearer {token}")),
    )
    .await;
    let f = c.next().await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.header("message"), Some("unsupported protocol version"));
    assert_eq!(f.header("version"), Some("1.0,1.1,1.2"));
    c.expect_closed().await;

    // A second CONNECT (or STOMP) on a connected session.
    for command in [Command::Connect, Command::Stomp] {
        let mut c = connect(&server, &token).await;
        c.send(
            Frame::new(command)
                .with_header("accept-version", "1.2")
                .with_header("receipt", "again")
                .with_header("Authorization", format!("Bearer {token}")),
        )
        .await;
        let f = c.next().await;
        assert_eq!(f.command, Command::Error, "{f:?}");
        assert_eq!(f.header("message"), Some("already connected"));
        c.expect_closed().await;
    }

    // Server frames from a client; transactions (refused, the session goes on).
    let mut c = connect(&server, &token).await;
    c.send(Frame::new(Command::Begin).with_header("transaction", "t1"))
        .await;
    c.expect_error("transactions are not supported").await;
    subscribe_errors(&mut c).await;
    c.send(Frame::new(Command::Message).with_header("destination", "/x"))
        .await;
    c.expect_error("invalid command").await;
    c.expect_closed().await;

    bystander.check(&server).await;
    server.shutdown().await.unwrap();
}

/// Configuration for the slow-consumer tests: a small outbox, big messages, no rate limit.
fn slow_consumer_config(grace: Duration) -> Config {
    let mut config = Config::for_tests();
    config.stomp.outbox_capacity = 16;
    config.stomp.ws_write_buffer = 1024;
    config.stomp.slow_consumer_grace = grace;
    config.limits.messages_per_second = 0.0;
    config.limits.message_max_chars = 15_000;
    config
}

/// Alice's room with Bob and Carol, each connected and subscribed to it: Bob's client, then
/// Carol's, whose socket takes little (she stops reading after subscribing).
async fn slow_consumer_scene(server: &ServerHandle) -> (UserId, RoomId, StompClient, StompClient) {
    let (alice, _) = server.user("alice").await;
    let (bob, bob_token) = server.user("bobby").await;
    let (carol, carol_token) = server.user("carol").await;
    let room = server.group(alice, "team", vec![bob, carol]).await;
    let dest = format!("/topic/messages/{room}");

    let mut fast = connect(server, &bob_token).await;
    assert_eq!(fast.subscribe("m", &dest).await.command, Command::Receipt);
    let mut slow = open_with(server, Some(4096)).await;
    slow.send(connect_frame(Some(&carol_token), "0,0")).await;
    assert_eq!(slow.next().await.command, Command::Connected);
    assert_eq!(slow.subscribe("m", &dest).await.command, Command::Receipt);
    (alice, room, fast, slow)
}

/// A big message: 15 000 four-byte characters (60 KB of UTF-8), tagged with `n`.
fn big_text(n: u64) -> String {
    format!("{n}:{}", "\u{1F600}".repeat(14_990))
}

/// Reads `client`'s room messages in a task, recording their seqs; `count` follows along.
fn reader(mut client: StompClient, count: Arc<AtomicU64>) -> tokio::task::JoinHandle<Vec<i64>> {
    // Idle stretches are expected (the test waits on the slow one); the test's own bounded
    // waits end it.
    client.wait = Duration::from_secs(3600);
    tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Some(f) = client.try_next().await {
            if f.command == Command::Message {
                seqs.push(json_body(&f)["seq"].as_i64().unwrap());
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
        seqs
    })
}

/// Sends big messages until the server reports a slow consumer, then `extra` more, each
/// once the fast reader has it (the fast reader never lags). Returns the last seq.
async fn flood_until_slow(
    server: &ServerHandle,
    sender: UserId,
    room: RoomId,
    fast_count: &AtomicU64,
    extra: u64,
) -> i64 {
    let mut after = None;
    for n in 1..=3000u64 {
        let last = post(server, sender, room, &big_text(n), &format!("big-{n}")).await;
        eventually(30, || async {
            (fast_count.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await;
        if after.is_none() && slow_consumers(server) > 0 {
            after = Some(n);
        }
        if after.is_some_and(|a| n >= a + extra) {
            return last;
        }
    }
    panic!("no slow consumer after 3000 messages of 60 KB");
}

#[tokio::test]
async fn slow_consumer_is_cut_off_while_others_get_everything_in_order() {
    let server = start_server(slow_consumer_config(Duration::from_secs(60))).await;
    let (alice, room, fast, mut slow) = slow_consumer_scene(&server).await;
    assert_eq!(connections(&server), 2);

    let fast_count = Arc::new(AtomicU64::new(0));
    let fast_task = reader(fast, fast_count.clone());
    let last = flood_until_slow(&server, alice, room, &fast_count, 20).await;
    assert_eq!(slow_consumers(&server), 1, "only carol is slow");

    // Carol reads again: a gap-free prefix of the room, then the ERROR, then the close.
    let mut seqs = Vec::new();
    let error = loop {
        let f = slow.try_next().await.expect("an ERROR before the close");
        match f.command {
            Command::Message => seqs.push(json_body(&f)["seq"].as_i64().unwrap()),
            Command::Error => break f,
            other => panic!("unexpected {other}: {f:?}"),
        }
    };
    assert_eq!(error.header("message"), Some("slow consumer"));
    slow.expect_closed().await;
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "carol's messages are a prefix of the room");
    assert!((seqs.len() as i64) < last, "carol did not get everything");
    eventually(30, || async {
        (connections(&server) == 1 && !fast_task.is_finished()).then_some(())
    })
    .await;

    // Bob got every message, in order, and is still connected.
    assert_eq!(connections(&server), 1);
    assert_eq!(slow_consumers(&server), 1);
    server.shutdown().await.unwrap();
    let bob_seqs = fast_task.await.unwrap();
    assert_eq!(bob_seqs, (1..=last).collect::<Vec<i64>>());
}

#[tokio::test]
async fn dead_consumer_is_dropped_after_the_grace() {
    // Carol never reads again: the socket write that blocks for good must not keep her
    // session (and its socket) alive; it is dropped 200 ms after the overflow.
    let server = start_server(slow_consumer_config(Duration::from_millis(200))).await;
    let (alice, room, fast, mut dead) = slow_consumer_scene(&server).await;
    let baseline_tasks = alive_tasks();

    let fast_count = Arc::new(AtomicU64::new(0));
    let fast_task = reader(fast, fast_count.clone());
    let last = flood_until_slow(&server, alice, room, &fast_count, 5).await;
    // The server ends carol's session while she still does not read (bob's stays).
    eventually(30, || async {
        (connections(&server) == 1 && !fast_task.is_finished()).then_some(())
    })
    .await;
    // Her session's task is gone (the fast reader task was added since).
    eventually(30, || async {
        (alive_tasks() < baseline_tasks).then_some(())
    })
    .await;
    // What she can still read ends with the close; never more than the room had.
    let mut got = 0;
    while let Some(f) = dead.try_next().await {
        if f.command == Command::Message {
            got += 1;
        }
    }
    assert!(got < last, "{got} of {last}");

    server.shutdown().await.unwrap();
    let bob_seqs = fast_task.await.unwrap();
    assert_eq!(bob_seqs, (1..=last).collect::<Vec<i64>>());
}
