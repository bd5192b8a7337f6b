//! The distributed stack end to end: server instances sharing Redis (bus, locks, ephemeral
//! state), PostgreSQL (storage, sequence numbers) and Kafka (the durable log), with real
//! STOMP clients on tokio-tungstenite.
//!
//! Runs only when `SHOOT_TEST_REDIS_URL`, `SHOOT_TEST_POSTGRES_URL` and
//! `SHOOT_TEST_KAFKA_BROKERS` are all set (otherwise each test prints `skipped: …` and
//! passes). Every test uses its own PostgreSQL schema, Redis namespace and Kafka topic, and
//! the tests of this module run one at a time (they share two cores with the rest).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shoot_core::engine::{NewSchedule, NewUser};
use shoot_core::messages::{HistoryQuery, MessageType};
use shoot_core::schedule::ScheduleStatus;
use shoot_core::{RoomId, UserId};
use shoot_server::config::{Config, LogKind, SharedKind, StorageKind};
use shoot_server::stomp::frame::{self, Command, Frame, FrameLimits};
use shoot_server::{ServerHandle, serve};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command as Process};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest wait for any one expected frame or condition.
const WAIT: Duration = Duration::from_secs(30);

/// The cluster tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VARS: [&str; 3] = [
    "SHOOT_TEST_REDIS_URL",
    "SHOOT_TEST_POSTGRES_URL",
    "SHOOT_TEST_KAFKA_BROKERS",
];

/// The services and the names unique to one test.
struct Env {
    redis: String,
    postgres: String,
    kafka: String,
    run: String,
}

impl Env {
    /// `None` (after printing why) when a service is not configured.
    fn get() -> Option<Env> {
        let value = |v: &str| std::env::var(v).ok().filter(|s| !s.trim().is_empty());
        let missing: Vec<&str> = VARS.into_iter().filter(|v| value(v).is_none()).collect();
        if !missing.is_empty() {
            println!("skipped: {} not set", missing.join(", "));
            return None;
        }
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).expect("randomness");
        let run: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Some(Env {
            redis: value(VARS[0])?,
            postgres: value(VARS[1])?,
            kafka: value(VARS[2])?,
            run,
        })
    }

    /// The distributed configuration of instance `name`, as `SHOOT_*` variables.
    fn vars(&self, name: &str) -> Vec<(&'static str, String)> {
        let run = &self.run;
        vec![
            ("SHOOT_STORAGE", "postgres".to_owned()),
            ("SHOOT_POSTGRES_URL", self.postgres.clone()),
            ("SHOOT_POSTGRES_SCHEMA", format!("shoot_cluster_{run}")),
            ("SHOOT_BUS", "redis".to_owned()),
            ("SHOOT_LOCKS", "redis".to_owned()),
            ("SHOOT_EPHEMERAL", "redis".to_owned()),
            ("SHOOT_REDIS_URL", self.redis.clone()),
            ("SHOOT_REDIS_NAMESPACE", format!("shoot-cluster-{run}")),
            ("SHOOT_LOG", "kafka".to_owned()),
            ("SHOOT_KAFKA_BROKERS", self.kafka.clone()),
            ("SHOOT_KAFKA_TOPIC", format!("shoot-cluster-{run}")),
            ("SHOOT_KAFKA_PARTITIONS", "4".to_owned()),
            ("SHOOT_INSTANCE_ID", format!("{name}-{run}")),
            (
                "SHOOT_JWT_SECRET",
                "cluster-secret-cluster-secret-32b!".to_owned(),
            ),
            ("SHOOT_LINK_PREVIEW_ENABLED", "false".to_owned()),
            ("SHOOT_PASSWORD_MEMORY_KIB", "8".to_owned()),
            ("SHOOT_PASSWORD_ITERATIONS", "1".to_owned()),
            ("SHOOT_LIMITS_MESSAGES_PER_SECOND", "0".to_owned()),
            ("SHOOT_LIMITS_SCHEDULE_POLL_INTERVAL", "200ms".to_owned()),
        ]
    }

    fn config(&self, name: &str) -> Config {
        let vars: HashMap<&str, String> = self.vars(name).into_iter().collect();
        let config = Config::load(None, |k| vars.get(k).cloned()).expect("cluster config");
        assert_eq!(
            (config.storage, config.log, config.bus),
            (StorageKind::Postgres, LogKind::Kafka, SharedKind::Redis)
        );
        config
    }

    async fn start(&self, name: &str) -> ServerHandle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        serve(self.config(name), listener)
            .await
            .unwrap_or_else(|e| panic!("instance {name} starts: {e:#}"))
    }
}

async fn user(server: &ServerHandle, name: &str) -> (UserId, String) {
    let user = server
        .state
        .engine
        .signup(NewUser {
            username: name.to_owned(),
            nickname: format!("{name} nick"),
            email: format!("{name}@example.com"),
            password: "Secret#123".to_owned(),
            bio: None,
        })
        .await
        .expect("signup");
    let token = server.state.auth.issue_access(user.id).expect("token");
    (user.id, token)
}

/// Polls `f` until it returns `Some`, failing after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not reached in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A STOMP 1.2 client. Frames read while waiting for another are kept for later waits.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buf: Vec<u8>,
    backlog: VecDeque<Frame>,
}

impl Client {
    async fn connect(addr: SocketAddr, token: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat"))
            .await
            .expect("websocket handshake");
        let mut c = Client {
            ws,
            buf: Vec::new(),
            backlog: VecDeque::new(),
        };
        c.send(
            Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("host", "localhost")
                .with_header("heart-beat", "0,0")
                .with_header("Authorization", format!("Bearer {token}")),
        )
        .await;
        let f = c.wait_for("CONNECTED", |_| true).await;
        assert_eq!(f.command, Command::Connected, "{f:?}");
        c
    }

    async fn send(&mut self, f: Frame) {
        let text = String::from_utf8(f.encode()).unwrap();
        self.ws
            .send(WsMessage::Text(text.into()))
            .await
            .expect("ws send");
    }

    async fn app(&mut self, dest: &str, body: Value, receipt: Option<&str>) {
        let mut f = Frame::new(Command::Send)
            .with_header("destination", dest)
            .with_header("content-type", "application/json");
        if let Some(r) = receipt {
            f = f.with_header("receipt", r);
        }
        self.send(f.with_body(body.to_string())).await;
    }

    async fn subscribe(&mut self, id: &str, dest: &str) {
        let receipt = format!("sub-{id}");
        self.send(
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", dest)
                .with_header("receipt", receipt.as_str()),
        )
        .await;
        let f = self
            .wait_for(dest, |f| {
                f.command == Command::Error || f.header("receipt-id") == Some(receipt.as_str())
            })
            .await;
        assert_eq!(f.command, Command::Receipt, "subscribe {dest}: {f:?}");
    }

    /// The next frame from the socket (heart-beats skipped); `None` once it closed.
    async fn read(&mut self, deadline: Instant) -> Option<Frame> {
        let limits = FrameLimits::default();
        loop {
            if let Some((f, used)) =
                frame::decode(&self.buf, &limits).expect("server frames are valid")
            {
                self.buf.drain(..used);
                return Some(f);
            }
            let skip = frame::heartbeat_prefix(&self.buf);
            self.buf.drain(..skip);
            let msg = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(WsMessage::Text(t))) => self.buf.extend_from_slice(t.as_bytes()),
                Some(Ok(WsMessage::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The first frame (backlog first) matching `pred`; panics after [`WAIT`].
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("present");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read(deadline).await {
                Some(f) if pred(&f) => return f,
                Some(f) => self.backlog.push_back(f),
                None => panic!(
                    "waiting for {what}: connection closed or {WAIT:?} passed; backlog: {:?}",
                    self.backlog
                ),
            }
        }
    }
}

fn body(f: &Frame) -> Value {
    serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("json body: {e}: {f:?}"))
}

fn is_event(f: &Frame, event_type: &str) -> bool {
    f.command == Command::Message && f.header("event-type") == Some(event_type)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_instance_sees_what_a_client_on_another_sends() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let b = env.start("b").await;
    let (alice, alice_token) = user(&a, "alice").await;
    let (bob, bob_token) = user(&b, "bobby").await;
    let room = a
        .state
        .engine
        .create_group_room(alice, "team", vec![bob])
        .await
        .expect("room")
        .room
        .id;

    // Alice is on B; Bob is on A.
    let mut alice_c = Client::connect(b.addr, &alice_token).await;
    alice_c
        .subscribe("st", &format!("/topic/message/status/{room}"))
        .await;
    alice_c
        .subscribe("msg", &format!("/topic/messages/{room}"))
        .await;
    alice_c
        .subscribe("act", &format!("/topic/active/{room}"))
        .await;

    // Presence: Bob connecting on A shows up in Alice's active users on B.
    let mut bob_c = Client::connect(a.addr, &bob_token).await;
    let bob_id = bob.to_string();
    alice_c
        .wait_for("Bob in ACTIVE_USERS", |f| {
            is_event(f, "ACTIVE_USERS")
                && body(f)["userIds"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| *id == bob_id.as_str()))
        })
        .await;
    bob_c
        .subscribe("msg", &format!("/topic/messages/{room}"))
        .await;
    bob_c
        .subscribe("typ", &format!("/topic/typing/{room}"))
        .await;
    bob_c.subscribe("upd", "/user/queue/room-updates").await;

    // Typing crosses instances.
    alice_c
        .app(
            "/app/typing",
            json!({"roomId": room.to_string(), "isTyping": true}),
            None,
        )
        .await;
    let alice_id = alice.to_string();
    let typing = bob_c.wait_for("TYPING", |f| is_event(f, "TYPING")).await;
    let t = body(&typing);
    assert_eq!(
        (t["userId"].as_str(), t["isTyping"].as_bool()),
        (Some(alice_id.as_str()), Some(true))
    );

    // A burst from Alice on B reaches Bob on A in order; Alice sees every status.
    const N: usize = 12;
    for i in 0..N {
        alice_c
            .app(
                "/app/chat",
                json!({"roomId": room.to_string(), "content": {"text": format!("m{i}"), "type": "TEXT"}, "tempId": format!("t{i}")}),
                Some(&format!("r{i}")),
            )
            .await;
    }
    let mut texts = Vec::new();
    let mut seqs = Vec::new();
    while texts.len() < N {
        let f = bob_c
            .wait_for("MESSAGE_CREATED", |f| is_event(f, "MESSAGE_CREATED"))
            .await;
        let m = body(&f);
        texts.push(m["content"]["text"].as_str().unwrap().to_owned());
        seqs.push(m["seq"].as_i64().unwrap());
    }
    let expected: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "per-room order on the other instance");
    assert_eq!(seqs, (1..=N as i64).collect::<Vec<_>>());

    let mut statuses: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..N {
        let receipt = alice_c
            .wait_for("send receipt", |f| {
                f.command == Command::Receipt && f.header("receipt-id") == Some(&format!("r{i}"))
            })
            .await;
        assert_eq!(
            receipt.header("status"),
            Some("SENT_TO_KAFKA"),
            "{receipt:?}"
        );
        let temp = format!("t{i}");
        while statuses
            .get(&temp)
            .and_then(|s| s.last())
            .map(String::as_str)
            != Some("SAVED")
        {
            let f = alice_c
                .wait_for("MESSAGE_STATUS", |f| {
                    is_event(f, "MESSAGE_STATUS") && body(f)["tempId"] == temp.as_str()
                })
                .await;
            let v = body(&f);
            let status = v["status"].as_str().unwrap().to_owned();
            assert_ne!(status, "FAILED", "{v}");
            statuses.entry(temp.clone()).or_default().push(status);
        }
    }
    // SENT_TO_KAFKA is published by B (after the append) and PROCESSING by whichever
    // instance's persistence consumer owns the room's partition: when that is A, nothing
    // orders the two publications, so only the set and the ends are asserted strictly.
    let mut swapped = 0;
    for (temp, seen) in &statuses {
        let mut sorted = seen.clone();
        sorted.sort_by_key(|s| {
            ["SENDING", "SENT_TO_KAFKA", "PROCESSING", "SAVED"]
                .iter()
                .position(|x| x == s)
        });
        assert_eq!(
            sorted,
            ["SENDING", "SENT_TO_KAFKA", "PROCESSING", "SAVED"],
            "statuses of {temp}: {seen:?}"
        );
        assert_eq!(
            (seen[0].as_str(), seen[3].as_str()),
            ("SENDING", "SAVED"),
            "{temp}: {seen:?}"
        );
        swapped += usize::from(seen[1] != "SENT_TO_KAFKA");
    }
    eprintln!("statuses: {swapped} of {N} had PROCESSING before SENT_TO_KAFKA");

    // Unread counts: Bob's room update on A counts what B accepted.
    bob_c
        .wait_for("ROOM_UPDATE with every message unread", |f| {
            is_event(f, "ROOM_UPDATE") && body(f)["unreadCount"] == N as u64
        })
        .await;
    let counts = b.state.engine.unread_counts(bob).await.expect("unread");
    assert_eq!(counts, vec![(room, N as u64)]);

    // Read receipts: Bob reads on A, Alice sees it on B, the count drops everywhere.
    bob_c
        .app(
            "/app/read",
            json!({"roomId": room.to_string(), "lastSeq": N}),
            None,
        )
        .await;
    let read = alice_c
        .wait_for("READ", |f| {
            is_event(f, "READ") && body(f)["userId"] == bob_id.as_str()
        })
        .await;
    assert_eq!(body(&read)["lastReadSeq"], N as u64);
    let counts = b.state.engine.unread_counts(bob).await.expect("unread");
    assert_eq!(counts, vec![(room, 0)]);

    drop((alice_c, bob_c));
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_is_delivered_once_by_a_cluster() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let b = env.start("b").await;
    let (alice, _) = user(&a, "alice").await;
    let (bob, bob_token) = user(&b, "bobby").await;
    let engine = &a.state.engine;
    let room = engine
        .create_group_room(alice, "team", vec![bob])
        .await
        .expect("room")
        .room
        .id;
    let mut bob_c = Client::connect(b.addr, &bob_token).await;
    bob_c
        .subscribe("msg", &format!("/topic/messages/{room}"))
        .await;

    let at = engine.ports().clock.now().plus(Duration::from_millis(800));
    let schedule = engine
        .schedule_message(
            alice,
            NewSchedule {
                room_id: room,
                text: "scheduled hello".to_owned(),
                message_type: MessageType::Text,
                scheduled_at: at,
                repeat: None,
            },
        )
        .await
        .expect("schedule");
    let f = bob_c
        .wait_for("the scheduled message", |f| is_event(f, "MESSAGE_CREATED"))
        .await;
    assert_eq!(body(&f)["content"]["text"], "scheduled hello");

    // Both schedulers are running: the schedule completes once and history holds one copy.
    eventually("schedule sent", || async {
        let all = b
            .state
            .engine
            .scheduled_messages(alice)
            .await
            .expect("list");
        let s = all.iter().find(|s| s.id == schedule.id)?;
        (s.status == ScheduleStatus::Sent).then_some(())
    })
    .await;
    let history = eventually("message saved", || async {
        let h = b
            .state
            .engine
            .history(
                bob,
                room,
                HistoryQuery {
                    before: None,
                    after: None,
                    limit: 50,
                },
            )
            .await
            .expect("history");
        (!h.is_empty()).then_some(h)
    })
    .await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].message.text, "scheduled hello");

    drop(bob_c);
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_direct_room_creation_on_two_instances_yields_one_room() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let b = env.start("b").await;
    for pair in 0..8 {
        let (x, _) = user(&a, &format!("userx{pair}")).await;
        let (y, _) = user(&b, &format!("usery{pair}")).await;
        let (ra, rb) = tokio::join!(
            a.state.engine.create_direct_room(x, y),
            b.state.engine.create_direct_room(y, x)
        );
        let (ra, created_a) = ra.expect("direct room on a");
        let (rb, created_b) = rb.expect("direct room on b");
        assert_eq!(ra.id, rb.id, "pair {pair}: one room");
        assert!(created_a ^ created_b, "pair {pair}: exactly one created it");
        let rooms = a.state.engine.rooms_of(x).await.expect("rooms");
        assert_eq!(rooms.len(), 1, "pair {pair}");
    }
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

/// The real binary as a child process; its address comes from its JSON log.
struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Instance {
    async fn spawn(env: &Env, name: &str) -> Instance {
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_shoot-server"));
        cmd.env_clear()
            .envs(env.vars(name))
            .env("SHOOT_HTTP_ADDR", "127.0.0.1:0")
            .env("SHOOT_LOG_FORMAT", "json")
            .env("SHOOT_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn shoot-server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("{name}: {line}");
                    continue;
                };
                if v["message"] == "listening" {
                    return v["addr"].as_str().and_then(|a| a.parse().ok());
                }
            }
            None
        })
        .await
        .expect("the child listens in time")
        .expect("the child exited before listening");
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Instance { child, addr }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill_exactly_once() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let (alice, alice_token) = user(&a, "alice").await;
    let (bob, _) = user(&a, "bobby").await;
    let room: RoomId = a
        .state
        .engine
        .create_group_room(alice, "team", vec![bob])
        .await
        .expect("room")
        .room
        .id;

    let mut child = Instance::spawn(&env, "b").await;
    let mut c = Client::connect(child.addr, &alice_token).await;
    const BURST: usize = 80;
    const KILL_AFTER: usize = 10;
    for i in 0..BURST {
        c.app(
            "/app/chat",
            json!({"roomId": room.to_string(), "content": {"text": format!("k{i}"), "type": "TEXT"}, "tempId": format!("k{i}")}),
            Some(&format!("k{i}")),
        )
        .await;
    }
    // Collect receipts; SIGKILL the instance after the first few, then drain what arrived.
    let mut acked: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut killed = false;
    while let Some(f) = c.read(deadline).await {
        if f.command == Command::Receipt && f.header("status") == Some("SENT_TO_KAFKA") {
            acked.push(f.header("temp-id").expect("temp-id").to_owned());
        }
        if !killed && acked.len() >= KILL_AFTER {
            child.child.kill().await.expect("SIGKILL");
            killed = true;
        }
    }
    assert!(killed, "only {} receipts before the deadline", acked.len());
    assert!(
        acked.len() < BURST,
        "the kill came after the whole burst was acknowledged; nothing was tested mid-burst"
    );

    // Restart it; every acknowledged message ends up in history exactly once.
    let restarted = Instance::spawn(&env, "b").await;
    let history = eventually("acknowledged messages saved", || async {
        let h = a
            .state
            .engine
            .history(
                alice,
                room,
                HistoryQuery {
                    before: None,
                    after: None,
                    limit: 100,
                },
            )
            .await
            .expect("history");
        let present = |t: &String| h.iter().any(|r| r.message.temp_id.as_ref() == Some(t));
        acked.iter().all(present).then_some(h)
    })
    .await;
    for t in &acked {
        let copies = history
            .iter()
            .filter(|r| r.message.temp_id.as_ref() == Some(t))
            .count();
        assert_eq!(copies, 1, "{t} stored {copies} times");
    }
    let mut seqs: Vec<i64> = history.iter().map(|r| r.message.seq.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), history.len(), "no seq given twice");
    eprintln!(
        "sigkill: {} of {BURST} acknowledged before the kill, {} stored",
        acked.len(),
        history.len()
    );

    drop(restarted);
    a.shutdown().await.expect("a stops");
}
