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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use shoot_core::engine::NewSchedule;
use shoot_core::messages::{HistoryQuery, MessageType};
use shoot_core::schedule::ScheduleStatus;
use shoot_server::ServerHandle;
use shoot_server::config::{Config, LogKind, SharedKind, StorageKind};
use shoot_server::stomp::frame::Command;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command as Process};

use crate::crash;
use crate::support::{ServerExt, StompClient, is_event, json_body, poll, try_start_server};

/// Longest wait for any one expected frame or condition.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// The cluster tests run one at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const VARS: [&str; 3] = [
    "SHOOT_TEST_REDIS_URL",
    "SHOOT_TEST_POSTGRES_URL",
    "SHOOT_TEST_KAFKA_BROKERS",
];

/// The services and the names unique to one test.
pub(crate) struct Env {
    pub(crate) redis: String,
    pub(crate) postgres: String,
    pub(crate) kafka: String,
    pub(crate) run: String,
}

impl Env {
    /// `None` (after printing why) when a service is not configured.
    pub(crate) fn get() -> Option<Env> {
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
    pub(crate) fn vars(&self, name: &str) -> Vec<(&'static str, String)> {
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

    pub(crate) fn config(&self, name: &str) -> Config {
        let vars: HashMap<&str, String> = self.vars(name).into_iter().collect();
        let config = Config::load(None, |k| vars.get(k).cloned()).expect("cluster config");
        assert_eq!(
            (config.storage, config.log, config.bus),
            (StorageKind::Postgres, LogKind::Kafka, SharedKind::Redis)
        );
        config
    }

    pub(crate) async fn start(&self, name: &str) -> ServerHandle {
        try_start_server(self.config(name))
            .await
            .unwrap_or_else(|e| panic!("instance {name} starts: {e:#}"))
    }
}

/// Polls `f` until it returns `Some`, failing after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, WAIT, Duration::from_millis(50), f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_instance_sees_what_a_client_on_another_sends() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let b = env.start("b").await;
    let (alice, alice_token) = a.user("alice").await;
    let (bob, bob_token) = b.user("bobby").await;
    let room = a.group(alice, "team", vec![bob]).await;

    // Alice is on B; Bob is on A.
    let mut alice_c = StompClient::connect_within(b.addr, &alice_token, WAIT).await;
    alice_c
        .must_subscribe("st", &format!("/topic/message/status/{room}"))
        .await;
    alice_c
        .must_subscribe("msg", &format!("/topic/messages/{room}"))
        .await;
    alice_c
        .must_subscribe("act", &format!("/topic/active/{room}"))
        .await;

    // Presence: Bob connecting on A shows up in Alice's active users on B.
    let mut bob_c = StompClient::connect_within(a.addr, &bob_token, WAIT).await;
    let bob_id = bob.to_string();
    alice_c
        .wait_for("Bob in ACTIVE_USERS", |f| {
            is_event(f, "ACTIVE_USERS")
                && json_body(f)["userIds"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| *id == bob_id.as_str()))
        })
        .await;
    bob_c
        .must_subscribe("msg", &format!("/topic/messages/{room}"))
        .await;
    bob_c
        .must_subscribe("typ", &format!("/topic/typing/{room}"))
        .await;
    bob_c
        .must_subscribe("upd", "/user/queue/room-updates")
        .await;

    // Typing crosses instances.
    alice_c
        .app(
            "/app/typing",
            &json!({"roomId": room.to_string(), "isTyping": true}),
            None,
        )
        .await;
    let alice_id = alice.to_string();
    let typing = bob_c.wait_for("TYPING", |f| is_event(f, "TYPING")).await;
    let t = json_body(&typing);
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
                &json!({"roomId": room.to_string(), "content": {"text": format!("m{i}"), "type": "TEXT"}, "tempId": format!("t{i}")}),
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
        let m = json_body(&f);
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
                    is_event(f, "MESSAGE_STATUS") && json_body(f)["tempId"] == temp.as_str()
                })
                .await;
            let v = json_body(&f);
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
            is_event(f, "ROOM_UPDATE") && json_body(f)["unreadCount"] == N as u64
        })
        .await;
    let counts = b.state.engine.unread_counts(bob).await.expect("unread");
    assert_eq!(counts, vec![(room, N as u64)]);

    // Read receipts: Bob reads on A, Alice sees it on B, the count drops everywhere.
    bob_c
        .app(
            "/app/read",
            &json!({"roomId": room.to_string(), "lastSeq": N}),
            None,
        )
        .await;
    let read = alice_c
        .wait_for("READ", |f| {
            is_event(f, "READ") && json_body(f)["userId"] == bob_id.as_str()
        })
        .await;
    assert_eq!(json_body(&read)["lastReadSeq"], N as u64);
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
    let (alice, _) = a.user("alice").await;
    let (bob, bob_token) = b.user("bobby").await;
    let engine = &a.state.engine;
    let room = a.group(alice, "team", vec![bob]).await;
    let mut bob_c = StompClient::connect_within(b.addr, &bob_token, WAIT).await;
    bob_c
        .must_subscribe("msg", &format!("/topic/messages/{room}"))
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
    assert_eq!(json_body(&f)["content"]["text"], "scheduled hello");

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
    assert_eq!(&*history[0].message.text, "scheduled hello");

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
        let (x, _) = a.user(&format!("userx{pair}")).await;
        let (y, _) = b.user(&format!("usery{pair}")).await;
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

/// How many of a child's last log lines are kept for failure messages.
const LOG_TAIL: usize = 400;

/// The real binary as a child process; its address comes from its JSON log, and the tail of
/// its log is kept for failure messages.
pub(crate) struct Instance {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    name: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Instance {
    /// Instance `name` of the distributed stack of `env`.
    pub(crate) async fn spawn(env: &Env, name: &str) -> Instance {
        Instance::spawn_with(name, env.vars(name)).await
    }

    /// The binary with exactly `vars` as its environment (plus an ephemeral port and JSON
    /// logs).
    pub(crate) async fn spawn_with(name: &str, vars: Vec<(&'static str, String)>) -> Instance {
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_shoot-server"));
        cmd.env_clear()
            .envs(vars)
            .env("SHOOT_HTTP_ADDR", "127.0.0.1:0")
            .env("SHOOT_LOG_FORMAT", "json")
            .env("SHOOT_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn shoot-server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let keep = |log: &Mutex<VecDeque<String>>, line: &str| {
            let mut log = log.lock().unwrap();
            if log.len() == LOG_TAIL {
                log.pop_front();
            }
            log.push_back(line.to_owned());
        };
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                keep(&log, &line);
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
        .unwrap_or_else(|_| panic!("{name} listens in time; log: {:?}", log.lock().unwrap()))
        .unwrap_or_else(|| {
            panic!(
                "{name} exited before listening; log: {:?}",
                log.lock().unwrap()
            )
        });
        // Keep draining the log so the child never blocks on a full pipe.
        let tail = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&tail, &line);
            }
        });
        Instance {
            child,
            addr,
            name: name.to_owned(),
            log,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// SIGTERM (a graceful shutdown); the exit status, or `None` if it did not exit in time.
    pub(crate) async fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .ok()
            .map(|s| s.expect("wait"))
    }

    /// Panics (with the log tail) if the process exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(40).join("\n")
            );
        }
    }

    /// The last `n` lines of its log.
    pub(crate) fn log_tail(&self, n: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .skip(log.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// How many kept log lines contain `needle`.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// A cluster instance SIGKILLed at random moments of a burst, several rounds: every
/// acknowledged message is stored exactly once, per-room seqs have no gaps, retries of the
/// unacknowledged ones never create a second copy, and a reader that reconnects and syncs
/// sees exactly what it missed. Bounded at about 120 s (rounds of a few seconds, plus the
/// 30 s after which a dead instance's in-flight send claims may be taken over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkills_at_random_moments() {
    let Some(env) = Env::get() else { return };
    let _serial = SERIAL.lock().await;
    let a = env.start("a").await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for name in ["sendera", "senderb", "senderc", "reader"] {
        let (id, token) = a.user(name).await;
        ids.push(id);
        tokens.push(token);
    }
    let mut rooms = Vec::new();
    for title in ["north", "south"] {
        let room = a.group(ids[0], title, ids[1..].to_vec()).await;
        rooms.push(room.to_string());
    }
    let reader = tokens.pop().expect("reader");
    let cast = crash::Cast {
        senders: tokens,
        reader,
        rooms,
    };
    let plan = crash::Plan {
        label: "distributed",
        gaps_allowed: true,
        settle: Duration::from_secs(90),
        rounds: 6,
        burst: 25,
    };
    let vars = env.vars("b");
    let spawn = move || -> crash::Spawned {
        let vars = vars.clone();
        Box::pin(async move { Instance::spawn_with("b", vars).await })
    };
    let figures = crash::run(&plan, &cast, &spawn).await;
    figures.print(&plan);
    a.shutdown().await.expect("a stops");
}
