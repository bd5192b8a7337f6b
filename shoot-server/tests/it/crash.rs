//! Crash recovery of the real `shoot-server` binary: SIGKILLed at random moments of a burst
//! from several STOMP clients, restarted on the same data, round after round.
//!
//! After every restart: every message the server acknowledged (a `RECEIPT` with status
//! `SENT_TO_KAFKA`, sent only once the message is in the durable log) is in the history exactly
//! once with the id and seq of its receipt; per-room seqs are `1..=n` without gaps; re-sending
//! an unacknowledged message (same `tempId`, as a client does after a reconnect) never creates a
//! second copy; and a reader that reconnects and syncs (`/app/sync` AFTER its last contiguous
//! seq) ends up with exactly the history, no message missing, none with another id.
//!
//! The kill points come from a seeded RNG: the seed is printed, and
//! `SHOOT_TEST_CRASH_SEED=<seed>` replays the same kill points (the receipt count and the delay
//! after it; the interleaving inside the server still varies from run to run).
//!
//! The embedded test here runs always (SQLite in a temporary directory, no service needed);
//! the same rounds run on the distributed stack in `cluster.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shoot_server::stomp::frame::{Command, Frame};
use tokio::sync::watch;

use crate::cluster::{Instance, SERIAL, WAIT};
use crate::support::{StompClient, is_event, json_body, send_frame};

/// A (re)started instance of the binary.
pub(crate) type Spawned = Pin<Box<dyn Future<Output = Instance> + Send>>;

/// Longest time the final round keeps retrying sends the cluster answers with `CONFLICT`
/// (a dead instance's in-flight claim, taken over after 30 s).
const RESOLVE: Duration = Duration::from_secs(75);

/// splitmix64: small, seedable, good enough to pick kill points.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from `SHOOT_TEST_CRASH_SEED` if set, randomly otherwise; the seed is printed.
    pub(crate) fn from_env(label: &str) -> (Rng, u64) {
        let seed = std::env::var("SHOOT_TEST_CRASH_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).expect("randomness");
                u64::from_le_bytes(b)
            });
        eprintln!("{label}: seed {seed} (SHOOT_TEST_CRASH_SEED={seed} replays the kill points)");
        (Rng(seed), seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Who takes part: senders and one reader, all participants of every room.
pub(crate) struct Cast {
    pub(crate) senders: Vec<String>,
    pub(crate) reader: String,
    pub(crate) rooms: Vec<String>,
}

/// How many kill rounds, and how many messages each sender pipelines per round.
pub(crate) struct Plan {
    pub(crate) label: &'static str,
    /// Whether per-room seqs may have gaps where no message was acknowledged. The
    /// distributed stack allocates seqs in PostgreSQL before the Kafka append, so a crash
    /// (or a failed append) between the two burns them (see `crash.rs` notes and the report).
    pub(crate) gaps_allowed: bool,
    /// Longest wait after a restart until every acknowledged message is stored (on Kafka the
    /// dead instance's partitions move only after the consumer session timeout).
    pub(crate) settle: Duration,
    pub(crate) rounds: usize,
    pub(crate) burst: usize,
}

/// One kill: after `target` receipts (of `total` sent) plus `jitter_us`.
#[derive(Debug)]
pub(crate) struct KillPoint {
    target: usize,
    jitter_us: u64,
    acked: usize,
    total: usize,
}

/// What a run measured.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    seed: u64,
    kills: Vec<KillPoint>,
    restarts_ms: Vec<u128>,
    /// Messages compared with the ledger, summed over every check.
    checked: usize,
    /// Messages in the history at the end.
    stored: usize,
    /// Unacknowledged messages re-sent after a restart.
    retried: usize,
    /// Of those, how many the server answered as duplicates (durable, receipt lost).
    in_doubt: usize,
    /// Re-sends answered `CONFLICT` (a dead instance's claim, not yet stale).
    conflicts: usize,
    /// Messages the reader got from sync replies.
    synced: usize,
    /// Messages the reader got live a second time on one connection.
    live_repeats: usize,
    /// Messages the first sync after a restart missed (see [`Reader::resynced`]).
    resynced: usize,
    /// Seqs missing from the histories (burned by a crash; only where allowed).
    gaps: usize,
}

impl Figures {
    pub(crate) fn print(&self, plan: &Plan) {
        let mid = self.kills.iter().filter(|k| k.acked < k.total).count();
        let points: Vec<String> = self
            .kills
            .iter()
            .map(|k| format!("{}/{}(+{}us→{})", k.target, k.total, k.jitter_us, k.acked))
            .collect();
        eprintln!(
            "{}: seed {}, {} rounds, bursts of {} per sender; kill points (receipts target/sent(+delay→acked at kill)): {}; \
             {mid} kills mid-burst; restart to listening (ms): {:?}; {} messages checked over all rounds, \
             {} stored at the end, {} seqs missing; {} unacknowledged re-sent, {} of them already durable (duplicate), \
             {} CONFLICT answers; reader: {} messages from sync ({} only from a second sync), {} live repeats",
            plan.label,
            self.seed,
            plan.rounds,
            plan.burst,
            points.join(" "),
            self.restarts_ms,
            self.checked,
            self.stored,
            self.gaps,
            self.retried,
            self.in_doubt,
            self.conflicts,
            self.synced,
            self.resynced,
            self.live_repeats,
        );
    }
}

/// The server's answer to one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ack {
    id: String,
    seq: i64,
}

#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) sender: usize,
    pub(crate) room: String,
    pub(crate) ack: Option<Ack>,
}

/// Every message ever sent, by tempId.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) sent: BTreeMap<String, Sent>,
    /// Accept gaps in per-room seqs (see [`Plan::gaps_allowed`]).
    pub(crate) gaps_allowed: bool,
}

/// What a receipt says.
pub(crate) enum Answer {
    Acked {
        temp: String,
        ack: Ack,
        duplicate: bool,
    },
    Failed {
        temp: String,
        code: String,
    },
}

pub(crate) fn answer(f: &Frame) -> Answer {
    let temp = f
        .header("receipt-id")
        .unwrap_or_else(|| panic!("receipt without id: {f:?}"))
        .to_owned();
    match f.header("status") {
        Some("SENT_TO_KAFKA") => Answer::Acked {
            ack: Ack {
                id: f.header("persisted-id").expect("persisted-id").to_owned(),
                seq: f.header("seq").and_then(|s| s.parse().ok()).expect("seq"),
            },
            duplicate: f.header("duplicate") == Some("true"),
            temp,
        },
        Some("FAILED") => Answer::Failed {
            code: f.header("error-code").unwrap_or("").to_owned(),
            temp,
        },
        other => panic!("receipt with status {other:?}: {f:?}"),
    }
}

impl Ledger {
    /// Records an acknowledgement; a second one for a tempId must name the same message.
    pub(crate) fn ack(&mut self, temp: &str, ack: Ack) {
        let sent = self
            .sent
            .get_mut(temp)
            .unwrap_or_else(|| panic!("receipt for unknown {temp}"));
        if let Some(first) = &sent.ack {
            assert_eq!(
                first, &ack,
                "{temp} acknowledged twice as different messages"
            );
        }
        sent.ack = Some(ack);
    }

    fn unacked(&self, sender: usize) -> Vec<(String, String)> {
        self.sent
            .iter()
            .filter(|(_, s)| s.sender == sender && s.ack.is_none())
            .map(|(t, s)| (t.clone(), s.room.clone()))
            .collect()
    }

    /// Per room, the highest acknowledged seq.
    fn bounds(&self) -> HashMap<String, i64> {
        let mut out: HashMap<String, i64> = HashMap::new();
        for s in self.sent.values() {
            if let Some(a) = &s.ack {
                let e = out.entry(s.room.clone()).or_default();
                *e = (*e).max(a.seq);
            }
        }
        out
    }

    /// Everything wrong with `history` (per room, oldest first); empty when it is right.
    pub(crate) fn problems(&self, history: &HashMap<String, Vec<Value>>) -> Vec<String> {
        let mut out = Vec::new();
        let mut copies: HashMap<&str, usize> = HashMap::new();
        for (room, messages) in history {
            let mut previous = 0;
            for (i, m) in messages.iter().enumerate() {
                let seq = m["seq"].as_i64().unwrap_or(-1);
                let fine = if self.gaps_allowed {
                    seq > previous
                } else {
                    seq == i as i64 + 1
                };
                if !fine {
                    out.push(format!("room {room}: position {i} holds seq {seq} (a gap)"));
                    break;
                }
                previous = seq;
            }
            for m in messages {
                let temp = m["tempId"].as_str().unwrap_or("");
                let Some(sent) = self.sent.get(temp) else {
                    out.push(format!("room {room}: unknown message {m}"));
                    continue;
                };
                *copies.entry(temp).or_default() += 1;
                if sent.room != *room {
                    out.push(format!(
                        "{temp} stored in room {room}, sent to {}",
                        sent.room
                    ));
                }
                if let Some(a) = &sent.ack {
                    let stored = (m["id"].as_str().unwrap_or(""), m["seq"].as_i64());
                    if stored != (a.id.as_str(), Some(a.seq)) {
                        out.push(format!("{temp}: receipt said {a:?}, stored {stored:?}"));
                    }
                }
            }
        }
        for (temp, n) in &copies {
            if *n > 1 {
                out.push(format!("{temp} stored {n} times"));
            }
        }
        for (temp, s) in &self.sent {
            if s.ack.is_some() && !copies.contains_key(temp.as_str()) {
                out.push(format!("{temp} acknowledged but not stored"));
            }
        }
        out
    }
}

pub(crate) fn chat(room: &str, temp: &str) -> Frame {
    let body = json!({"roomId": room, "content": {"text": format!("text of {temp}"), "type": "TEXT"}, "tempId": temp});
    send_frame("/app/chat", body.to_string(), Some(temp))
}

/// Pipelines `messages` on one connection and collects their receipts until all arrived
/// or the connection closes (the server was killed); `receipts` counts them as they come.
async fn exchange(
    addr: SocketAddr,
    token: String,
    messages: Vec<(String, String)>,
    receipts: watch::Sender<usize>,
) -> Vec<Frame> {
    // The server may be killed before this client even connects.
    let Ok(mut c) = StompClient::try_connect(addr, &token, WAIT).await else {
        return Vec::new();
    };
    for (temp, room) in &messages {
        if !c.try_send(chat(room, temp)).await {
            break;
        }
    }
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    while out.len() < messages.len() {
        match c.read(deadline).await {
            Some(f) if f.command == Command::Receipt => {
                out.push(f);
                receipts.send_modify(|n| *n += 1);
            }
            Some(f) if f.command == Command::Error => panic!("ERROR frame: {f:?}"),
            Some(_) => {}
            None => break,
        }
    }
    out
}

/// A client that reads every room and catches up with `/app/sync` after each reconnect.
#[derive(Default)]
pub(crate) struct Reader {
    /// Accept gaps in per-room seqs (see [`Plan::gaps_allowed`]).
    pub(crate) gaps_allowed: bool,
    /// Per room: seq → message id.
    seen: HashMap<String, BTreeMap<i64, String>>,
    pub(crate) synced: usize,
    /// Messages only a second sync brought: the first one, right after a restart (or on
    /// an instance that did not append them), answered `hasMore: false` before the store
    /// held every durable message, because the engine only knows the durable seqs of its
    /// own appends (`shoot-core/src/engine/sync.rs`, `latest_seq`).
    pub(crate) resynced: usize,
    pub(crate) live_repeats: usize,
    /// Sync requests sent (receipt ids).
    sync_requests: u64,
}

impl Reader {
    pub(crate) fn new(gaps_allowed: bool) -> Reader {
        Reader {
            gaps_allowed,
            ..Reader::default()
        }
    }

    fn note(&mut self, room: &str, seq: i64, id: &str) -> bool {
        let known = self.seen.entry(room.to_owned()).or_default();
        match known.insert(seq, id.to_owned()) {
            Some(old) => {
                assert_eq!(old, id, "room {room} seq {seq} is two messages");
                false
            }
            None => true,
        }
    }

    /// A live MESSAGE_CREATED (anything else is ignored).
    pub(crate) fn live(&mut self, f: &Frame) {
        if !is_event(f, "MESSAGE_CREATED") {
            return;
        }
        let m = json_body(f);
        let room = m["roomId"].as_str().expect("roomId").to_owned();
        let (seq, id) = (
            m["seq"].as_i64().expect("seq"),
            m["id"].as_str().expect("id"),
        );
        if !self.note(&room, seq, id) {
            self.live_repeats += 1;
        }
    }

    /// The highest `n` such that seqs `1..=n` of `room` were all seen.
    fn contiguous(&self, room: &str) -> i64 {
        let mut n = 0;
        for &s in self.seen.get(room).into_iter().flat_map(|m| m.keys()) {
            if s != n + 1 {
                break;
            }
            n = s;
        }
        n
    }

    pub(crate) async fn connect(addr: SocketAddr, token: &str, rooms: &[String]) -> StompClient {
        let mut c = StompClient::connect_within(addr, token, WAIT).await;
        for (i, room) in rooms.iter().enumerate() {
            c.must_subscribe(&format!("m{i}"), &format!("/topic/messages/{room}"))
                .await;
        }
        c.must_subscribe("sync", "/user/queue/sync").await;
        c
    }

    /// Syncs every room AFTER its last contiguous seq until the server says there is no
    /// more; each page must continue exactly where the previous one ended.
    pub(crate) async fn sync(&mut self, c: &mut StompClient, rooms: &[String]) {
        for room in rooms {
            let mut cursor = self.contiguous(room);
            let deadline = Instant::now() + WAIT;
            loop {
                // A sync refused while a backend is away (FAILED receipt) is sent again, as a
                // client does.
                self.sync_requests += 1;
                let receipt = format!("sync-{}", self.sync_requests);
                c.app(
                    "/app/sync",
                    &json!({"roomId": room, "lastSeq": cursor, "direction": "AFTER"}),
                    Some(&receipt),
                )
                .await;
                let f = c
                    .wait_for("SYNC or a failed sync", |f| {
                        (is_event(f, "SYNC") && json_body(f)["roomId"] == room.as_str())
                            || (f.command == Command::Receipt
                                && f.header("receipt-id") == Some(receipt.as_str())
                                && f.header("status") == Some("FAILED"))
                    })
                    .await;
                if f.command == Command::Receipt {
                    assert!(
                        Instant::now() < deadline,
                        "sync of {room} refused until {WAIT:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let page = json_body(&f);
                let messages = page["messages"].as_array().expect("messages");
                for m in messages {
                    let seq = m["seq"].as_i64().expect("seq");
                    if self.gaps_allowed {
                        assert!(seq > cursor, "sync of room {room} went back: {page}");
                    } else {
                        assert_eq!(seq, cursor + 1, "sync of room {room} skipped: {page}");
                    }
                    self.note(room, seq, m["id"].as_str().expect("id"));
                    self.synced += 1;
                    cursor = seq;
                }
                if page["hasMore"] != true {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "sync of {room} never ends: {page}"
                );
                if messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        for f in c.take_backlog() {
            self.live(&f);
        }
    }

    /// Reads live messages until every message of `history` up to `bounds` was seen, then
    /// checks that nothing seen up to the bounds differs from the history.
    pub(crate) async fn catch_up(
        &mut self,
        c: &mut StompClient,
        history: &HashMap<String, Vec<Value>>,
        bounds: &HashMap<String, i64>,
    ) {
        let expected: HashMap<&String, BTreeMap<i64, String>> = history
            .iter()
            .map(|(room, messages)| {
                let bound = bounds.get(room).copied().unwrap_or(0);
                let m = messages
                    .iter()
                    .map(|m| {
                        (
                            m["seq"].as_i64().unwrap(),
                            m["id"].as_str().unwrap().to_owned(),
                        )
                    })
                    .filter(|(s, _)| *s <= bound)
                    .collect();
                (room, m)
            })
            .collect();
        let missing = |r: &Reader| -> Vec<(String, i64)> {
            let mut out = Vec::new();
            for (room, m) in &expected {
                for s in m.keys() {
                    if !r.seen.get(*room).is_some_and(|k| k.contains_key(s)) {
                        out.push(((*room).clone(), *s));
                    }
                }
            }
            out
        };
        // Messages sent after the first sync arrive live; give them a moment.
        let live_first = Instant::now() + Duration::from_secs(2);
        while !missing(self).is_empty() {
            match c.read(live_first).await {
                Some(f) => self.live(&f),
                None => break,
            }
        }
        // The first sync after a restart may stop short (see `resynced`): once the store
        // has caught up, a second sync must bring exactly the rest.
        if !missing(self).is_empty() {
            let rooms: Vec<String> = history.keys().cloned().collect();
            let before = self.synced;
            self.sync(c, &rooms).await;
            self.resynced += self.synced - before;
        }
        let deadline = Instant::now() + WAIT;
        while !missing(self).is_empty() {
            match c.read(deadline).await {
                Some(f) => self.live(&f),
                None => panic!(
                    "the reader never got {:?} (neither live nor from sync)",
                    missing(self)
                ),
            }
        }
        for (room, m) in &expected {
            let seen: BTreeMap<i64, String> = self
                .seen
                .get(*room)
                .into_iter()
                .flat_map(|k| k.range(..=bounds.get(*room).copied().unwrap_or(0)))
                .map(|(s, id)| (*s, id.clone()))
                .collect();
            assert_eq!(&seen, m, "what the reader saw of room {room}");
        }
    }
}

/// Every room's history, oldest first, through REST.
pub(crate) async fn history(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    rooms: &[String],
) -> HashMap<String, Vec<Value>> {
    let mut out = HashMap::new();
    for room in rooms {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let after = all.last().map_or(0, |m| m["seq"].as_i64().unwrap_or(0));
            let (status, v) = rest(
                http,
                addr,
                reqwest::Method::GET,
                &format!("/api/v1/messages/{room}?after={after}&limit=100"),
                Some(token),
                None,
            )
            .await;
            assert_eq!(status, 200, "history of {room}: {v}");
            let page = v["data"].as_array().expect("page").clone();
            let done = page.len() < 100;
            all.extend(page);
            if done {
                break;
            }
        }
        out.insert(room.clone(), all);
    }
    out
}

/// An HTTP client whose requests give up after [`WAIT`].
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

/// One REST call: status and JSON body.
pub(crate) async fn rest(
    http: &reqwest::Client,
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    payload: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = payload {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Signs `name` up and logs in: (user id, access token).
pub(crate) async fn signup(
    http: &reqwest::Client,
    addr: SocketAddr,
    name: &str,
) -> (String, String) {
    let password = "Secret#123";
    let (status, v) = rest(
        http,
        addr,
        reqwest::Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({"username": name, "nickname": format!("{name} nick"), "email": format!("{name}@example.com"), "password": password})),
    )
    .await;
    assert_eq!(status, 201, "signup {name}: {v}");
    let (status, v) = rest(
        http,
        addr,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": name, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "login {name}: {v}");
    let data = &v["data"];
    (
        data["userId"].as_str().expect("userId").to_owned(),
        data["accessToken"].as_str().expect("token").to_owned(),
    )
}

/// Creates a group room: its id.
pub(crate) async fn group(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: &str,
    title: &str,
    others: &[String],
) -> String {
    let (status, v) = rest(
        http,
        addr,
        reqwest::Method::POST,
        "/api/v1/chatrooms",
        Some(token),
        Some(json!({"type": "GROUP", "title": title, "participantIds": others})),
    )
    .await;
    assert_eq!(status, 201, "room {title}: {v}");
    v["data"]["id"].as_str().expect("room id").to_owned()
}

/// Signs up the senders and the reader and creates `rooms` group rooms with all of them.
pub(crate) async fn cast(addr: SocketAddr, senders: usize, rooms: usize) -> Cast {
    let http = http_client();
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..=senders {
        let name = if i == senders {
            "reader".to_owned()
        } else {
            format!("sender{i}")
        };
        let (id, token) = signup(&http, addr, &name).await;
        ids.push(id);
        tokens.push(token);
    }
    let mut room_ids = Vec::new();
    for r in 0..rooms {
        room_ids.push(group(&http, addr, &tokens[0], &format!("room {r}"), &ids[1..]).await);
    }
    let reader = tokens.pop().expect("reader");
    Cast {
        senders: tokens,
        reader,
        rooms: room_ids,
    }
}

async fn spawn_timed(spawn: &dyn Fn() -> Spawned, figures: &mut Figures) -> Instance {
    let started = Instant::now();
    let instance = spawn().await;
    figures.restarts_ms.push(started.elapsed().as_millis());
    instance
}

/// Re-sends what was not acknowledged (and one acknowledged message per sender, which must
/// come back as a duplicate of itself); records the answers. `CONFLICT` answers stay
/// unacknowledged for a later attempt. Returns how many were answered `CONFLICT`.
async fn resend(
    addr: SocketAddr,
    cast: &Cast,
    ledger: &mut Ledger,
    rng: &mut Rng,
    figures: &mut Figures,
) -> usize {
    let mut conflicts = 0;
    let mut tasks = Vec::new();
    for (i, token) in cast.senders.iter().enumerate() {
        let mut messages = ledger.unacked(i);
        figures.retried += messages.len();
        let acked: Vec<(&String, &Sent)> = ledger
            .sent
            .iter()
            .filter(|(_, s)| s.sender == i && s.ack.is_some())
            .collect();
        if !acked.is_empty() {
            let (t, s) = acked[rng.below(acked.len() as u64) as usize];
            messages.push((t.clone(), s.room.clone()));
        }
        let expected = messages.len();
        let (tx, _) = watch::channel(0);
        tasks.push((
            expected,
            tokio::spawn(exchange(addr, token.clone(), messages, tx)),
        ));
    }
    for (expected, task) in tasks {
        let receipts = task.await.expect("resend task");
        assert_eq!(receipts.len(), expected, "every re-send is answered");
        for f in receipts {
            match answer(&f) {
                Answer::Acked {
                    temp,
                    ack,
                    duplicate,
                } => {
                    let was_acked = ledger.sent[&temp].ack.is_some();
                    assert!(duplicate || !was_acked, "{temp} sent twice: {f:?}");
                    if duplicate && !was_acked {
                        figures.in_doubt += 1;
                    }
                    ledger.ack(&temp, ack);
                }
                Answer::Failed { code, .. } if code == "CONFLICT" => conflicts += 1,
                Answer::Failed { temp, code } => panic!("re-send of {temp} failed: {code}"),
            }
        }
    }
    figures.conflicts += conflicts;
    conflicts
}

/// Polls the history until the ledger finds nothing wrong with it; panics with the problems
/// after [`WAIT`].
pub(crate) async fn settled(
    http: &reqwest::Client,
    addr: SocketAddr,
    cast: &Cast,
    ledger: &Ledger,
    within: Duration,
) -> HashMap<String, Vec<Value>> {
    let deadline = Instant::now() + within;
    loop {
        let h = history(http, addr, &cast.reader, &cast.rooms).await;
        let problems = ledger.problems(&h);
        if problems.is_empty() {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "the history stays wrong after {within:?}: {problems:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `plan`: bursts, random SIGKILLs, restarts and the checks after each (see the module
/// documentation). The instance `spawn` makes must use the same data every time.
pub(crate) async fn run(plan: &Plan, cast: &Cast, spawn: &dyn Fn() -> Spawned) -> Figures {
    let (mut rng, seed) = Rng::from_env(plan.label);
    let mut figures = Figures {
        seed,
        ..Figures::default()
    };
    let http = http_client();
    let mut ledger = Ledger {
        gaps_allowed: plan.gaps_allowed,
        ..Ledger::default()
    };
    let mut reader = Reader::new(plan.gaps_allowed);
    let mut instance = spawn_timed(spawn, &mut figures).await;
    for round in 0..=plan.rounds {
        let addr = instance.addr;
        eprintln!("{}: round {round}: recovering on {addr}", plan.label);
        // Reconnect and catch up at once, while the restarted server may still be replaying.
        let mut rc = Reader::connect(addr, &cast.reader, &cast.rooms).await;
        reader.sync(&mut rc, &cast.rooms).await;
        if round > 0 {
            let mut conflicts = resend(addr, cast, &mut ledger, &mut rng, &mut figures).await;
            if round == plan.rounds {
                let deadline = Instant::now() + RESOLVE;
                while conflicts > 0 {
                    assert!(
                        Instant::now() < deadline,
                        "{conflicts} sends still CONFLICT after {RESOLVE:?}"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    conflicts = resend(addr, cast, &mut ledger, &mut rng, &mut figures).await;
                }
            }
        }
        eprintln!(
            "{}: round {round}: re-sent, checking the history",
            plan.label
        );
        let h = settled(&http, addr, cast, &ledger, plan.settle).await;
        figures.checked += h.values().map(Vec::len).sum::<usize>();
        figures.gaps = h
            .values()
            .map(|m| m.last().map_or(0, |l| l["seq"].as_i64().unwrap_or(0)) as usize - m.len())
            .sum();
        let bounds = if round == plan.rounds {
            h.iter().map(|(r, m)| (r.clone(), m.len() as i64)).collect()
        } else {
            ledger.bounds()
        };
        reader.catch_up(&mut rc, &h, &bounds).await;
        instance.assert_running();
        if round == plan.rounds {
            figures.stored = h.values().map(Vec::len).sum();
            drop(rc);
            let status = instance.terminate().await;
            assert!(
                status.is_some_and(|s| s.success()),
                "a graceful stop after the crashes: {status:?}; log: {:#?}",
                instance.log_tail(30)
            );
            break;
        }

        // A burst from every sender, with the reader listening; SIGKILL at a random point.
        let total = cast.senders.len() * plan.burst;
        let target = rng.below(total as u64 * 3 / 4) as usize;
        let jitter_us = rng.below(3000);
        eprintln!(
            "{}: round {round}: burst of {total}, kill after {target} receipts + {jitter_us} us",
            plan.label
        );
        let (tx, mut rx) = watch::channel(0usize);
        let mut tasks = Vec::new();
        for (i, token) in cast.senders.iter().enumerate() {
            let messages: Vec<(String, String)> = (0..plan.burst)
                .map(|j| {
                    let temp = format!("r{round}-s{i}-{j}");
                    let room = cast.rooms[(i + j) % cast.rooms.len()].clone();
                    ledger.sent.insert(
                        temp.clone(),
                        Sent {
                            sender: i,
                            room: room.clone(),
                            ack: None,
                        },
                    );
                    (temp, room)
                })
                .collect();
            tasks.push(tokio::spawn(exchange(
                addr,
                token.clone(),
                messages,
                tx.clone(),
            )));
        }
        let listening = tokio::spawn(async move {
            let deadline = Instant::now() + WAIT;
            while let Some(f) = rc.read(deadline).await {
                reader.live(&f);
            }
            reader
        });
        // The guard `wait_for` returns blocks the senders' updates: drop it at once.
        let reached = tokio::time::timeout(WAIT, async {
            rx.wait_for(|n| *n >= target).await.map(|_| ())
        })
        .await;
        assert!(
            matches!(reached, Ok(Ok(()))),
            "round {round}: fewer than {target} receipts in {WAIT:?}; log: {:#?}",
            instance.log_tail(30)
        );
        tokio::time::sleep(Duration::from_micros(jitter_us)).await;
        instance.assert_running();
        instance.kill().await;
        let mut acked = 0;
        for task in tasks {
            for f in task.await.expect("sender task") {
                match answer(&f) {
                    Answer::Acked { temp, ack, .. } => {
                        acked += 1;
                        ledger.ack(&temp, ack);
                    }
                    Answer::Failed { temp, code } => panic!("{temp} failed during a burst: {code}"),
                }
            }
        }
        reader = listening.await.expect("reader task");
        figures.kills.push(KillPoint {
            target,
            jitter_us,
            acked,
            total,
        });
        instance = spawn_timed(spawn, &mut figures).await;
    }
    figures.synced = reader.synced;
    figures.live_repeats = reader.live_repeats;
    figures.resynced = reader.resynced;
    let mid = figures.kills.iter().filter(|k| k.acked < k.total).count();
    assert!(
        mid * 2 >= plan.rounds,
        "only {mid} of {} kills landed mid-burst: {:?}",
        plan.rounds,
        figures.kills
    );
    figures
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).expect("randomness");
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let path = std::env::temp_dir().join(format!("{prefix}-{name}"));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The embedded stack (SQLite store and log in `dir`) as `SHOOT_*` variables.
fn embedded(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("SHOOT_STORAGE", "sqlite".to_owned()),
        ("SHOOT_DATA_DIR", dir.display().to_string()),
        (
            "SHOOT_JWT_SECRET",
            "crash-secret-crash-secret-crash-32b!".to_owned(),
        ),
        ("SHOOT_LINK_PREVIEW_ENABLED", "false".to_owned()),
        ("SHOOT_PASSWORD_MEMORY_KIB", "8".to_owned()),
        ("SHOOT_PASSWORD_ITERATIONS", "1".to_owned()),
        ("SHOOT_LIMITS_MESSAGES_PER_SECOND", "0".to_owned()),
    ]
}

/// The embedded server SIGKILLed at 10 random moments of bursts from 4 clients into 2 rooms,
/// restarted on the same SQLite files each time. About 5 s, bounded at about 60 s (rounds of a burst
/// and a restart; every wait is bounded by [`WAIT`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_server_keeps_every_acknowledged_message_across_sigkills() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("shoot-crash");
    let vars = embedded(&dir.0);
    let mut setup = Instance::spawn_with("setup", vars.clone()).await;
    let cast = cast(setup.addr, 4, 2).await;
    let status = setup.terminate().await;
    assert!(
        status.is_some_and(|s| s.success()),
        "setup stops: {status:?}"
    );
    let plan = Plan {
        label: "embedded",
        gaps_allowed: false,
        settle: WAIT,
        rounds: 10,
        burst: 40,
    };
    let spawn = move || -> Spawned {
        let vars = vars.clone();
        Box::pin(async move { Instance::spawn_with("embedded", vars).await })
    };
    let figures = run(&plan, &cast, &spawn).await;
    figures.print(&plan);
}
