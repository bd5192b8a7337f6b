//! The load scenarios `idle`, `fanout`, `durable` and `reconnect` (`bigroom` is in
//! [`crate::bigroom`]).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::client::{self, Auth, Conn, Kind, Out, Target};
use crate::frame::{Frame, FrameBuilder};
use crate::payload::Marker;
use crate::seq::{Seen, SeqTracker};
use crate::setup::Rest;
use crate::stats::{Hist, Progress, ResultLine, Stats};
use crate::sys;

/// Everything a scenario needs.
pub struct Env {
    /// The server.
    pub target: Target,
    /// Shared counters.
    pub stats: Arc<Stats>,
    /// Server processes for RSS / CPU figures (summed).
    pub server_pids: Vec<u32>,
    /// Length of the measured phase.
    pub duration: Duration,
    /// Concurrent connects / REST calls.
    pub concurrency: usize,
    /// Username prefix (deterministic prefix + run id).
    pub prefix: String,
    /// REST client (Shoot).
    pub rest: Option<Rest>,
    /// Shoot personal queue name (`/user/queue/{name}`).
    pub personal_queue: String,
}

/// Who connects and which room each client is in.
pub struct Population {
    /// Authentication of each client.
    pub auth: Vec<Auth>,
    /// Server room ids (RabbitMQ: room numbers).
    pub rooms: Vec<String>,
    /// Members per room (client `i` is in room `i / room_size`).
    pub room_size: usize,
}

impl Population {
    /// The room index of client `i`.
    pub fn room_of(&self, i: usize) -> usize {
        i / self.room_size
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl Env {
    pub(crate) fn pid_figures(&self) -> (Option<u64>, Option<f64>) {
        (
            sys::rss_total(&self.server_pids),
            sys::cpu_total(&self.server_pids),
        )
    }

    /// `clients` users in rooms of `room_size` (Shoot: over REST).
    pub async fn populate(&self, clients: usize, room_size: usize) -> Result<Population> {
        let room_size = room_size.clamp(1, clients.max(1));
        if clients % room_size != 0 {
            bail!("--clients ({clients}) must be a multiple of the room size ({room_size})");
        }
        match (&self.rest, self.target.kind) {
            (Some(rest), Kind::Shoot) => {
                println!(
                    "setting up {clients} users and {} rooms over REST…",
                    clients / room_size
                );
                let users = rest.users(&self.prefix, clients, self.concurrency).await?;
                let rooms = rest.rooms_of(&users, room_size, self.concurrency).await?;
                Ok(Population {
                    auth: users.into_iter().map(|u| Auth::Bearer(u.token)).collect(),
                    rooms,
                    room_size,
                })
            }
            _ => {
                let (l, p) = self.target.login.clone();
                let run = self.prefix.trim_end_matches('_').to_owned();
                Ok(Population {
                    auth: vec![Auth::Login(l, p); clients],
                    rooms: (0..clients / room_size)
                        .map(|r| format!("{run}.{r}"))
                        .collect(),
                    room_size,
                })
            }
        }
    }

    /// Opens and spawns connections for `ids`, `concurrency` at a time; returns them by id
    /// (`None` for failures) and the time it took.
    pub(crate) async fn connect_all<S, F, H>(
        &self,
        ids: Vec<usize>,
        auth: &[Auth],
        subs: S,
        handler: F,
    ) -> (Vec<(usize, Conn)>, f64)
    where
        S: Fn(usize) -> Vec<String>,
        F: Fn(usize) -> H,
        H: FnMut(&Frame<'_>, &mpsc::UnboundedSender<Out>) + Send + 'static,
    {
        let t0 = sys::now_ns();
        let target = &self.target;
        let stats = &self.stats;
        let mut s = futures::stream::iter(ids)
            .map(|i| {
                let subscriptions = subs(i);
                async move {
                    let started = sys::now_ns();
                    let r = tokio::time::timeout(
                        Duration::from_secs(30),
                        client::open(target, i, &auth[i], &subscriptions),
                    )
                    .await;
                    (i, started, r)
                }
            })
            .buffer_unordered(self.concurrency.max(1));
        let mut conns = Vec::new();
        while let Some((i, started, r)) = s.next().await {
            match r {
                Ok(Ok(ws)) => {
                    stats.record(Hist::C, sys::now_ns() - started);
                    stats.connected.fetch_add(1, Relaxed);
                    conns.push((
                        i,
                        client::spawn(ws, target.heartbeat_ms, stats.clone(), handler(i)),
                    ));
                }
                Ok(Err(e)) => {
                    stats.connect_failed.fetch_add(1, Relaxed);
                    stats.error(|| format!("connect {i}: {e:#}"));
                }
                Err(_) => {
                    stats.connect_failed.fetch_add(1, Relaxed);
                    stats.error(|| format!("connect {i}: timed out"));
                }
            }
        }
        (conns, (sys::now_ns() - t0) as f64 / 1e9)
    }

    fn print_errors(&self) {
        let e = self.stats.errors.load(Relaxed);
        if e > 0 {
            println!(
                "errors: {e} (first: {})",
                self.stats.first_error().unwrap_or_default()
            );
        }
    }
}

/// Waits until `done()` or the deadline; returns whether `done()` held.
pub(crate) async fn wait_for(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// `idle`: N authenticated connections with 2 subscriptions each and heart-beats; connect
/// rate, server RSS and socket memory per connection.
pub async fn idle(env: &Env, clients: usize, room_size: usize) -> Result<()> {
    let pop = env.populate(clients, room_size).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, _) = env.pid_figures();
    let anon0 = sys::rss_anon_total(&env.server_pids);
    let sock0 = sys::tcp_sockstat();
    let progress = Progress::start("idle", env.stats.clone(), env.server_pids.clone());
    let stats = env.stats.clone();
    let (conns, secs) = env
        .connect_all(
            (0..clients).collect(),
            &pop.auth,
            |i| {
                vec![
                    env.target.room_topic(&pop.rooms[pop.room_of(i)]),
                    env.target.personal_queue(i, &env.personal_queue),
                ]
            },
            |_| {
                let stats = stats.clone();
                move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| {
                    if f.command == "ERROR" {
                        stats.error(|| client::error_text(f));
                    }
                }
            },
        )
        .await;
    let n = conns.len() as u64;
    println!(
        "connected {n}/{clients} in {secs:.2}s: {:.0} connections/s",
        n as f64 / secs
    );
    if n == 0 {
        bail!(
            "no client connected ({})",
            env.stats.first_error().unwrap_or_default()
        );
    }
    tokio::time::sleep(env.duration).await;
    let (rss1, _) = env.pid_figures();
    let anon1 = sys::rss_anon_total(&env.server_pids);
    let sock1 = sys::tcp_sockstat();
    drop(progress);
    let alive = conns.iter().filter(|(_, c)| !c.is_closed()).count();
    println!(
        "== idle: {clients} clients (2 subscriptions each, heart-beat {} ms) ==",
        env.target.heartbeat_ms
    );
    println!(
        "connected: {n}, failed: {}, still open after {}s: {alive}",
        env.stats.connect_failed.load(Relaxed),
        env.duration.as_secs()
    );
    println!(
        "connect rate: {:.0}/s ({} concurrent connectors)",
        n as f64 / secs,
        env.concurrency
    );
    if let Some(s) = env.stats.summary(Hist::C) {
        println!("connect+CONNECT+SUBSCRIBE time: {s}");
    }
    if let (Some(a), Some(b)) = (rss0, rss1) {
        let per = (b as f64 - a as f64) / n.max(1) as f64;
        println!(
            "server RSS: {:.1} MiB → {:.1} MiB: {:.1} KiB per connection",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0,
            per / 1024.0
        );
    }
    if let (Some(a), Some(b)) = (anon0, anon1) {
        println!(
            "of which anonymous (heap, not mapped files): {:.1} KiB per connection",
            (b as f64 - a as f64) / n.max(1) as f64 / 1024.0
        );
    }
    if let (Some((a, _)), Some((b, inuse))) = (sock0, sock1) {
        println!(
            "TCP socket memory (machine-wide, both ends): {:.1} MiB → {:.1} MiB: {:.2} KiB per connection ({inuse} TCP sockets in use)",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0,
            (b as f64 - a as f64) / n.max(1) as f64 / 1024.0
        );
    }
    env.print_errors();
    let mut r = ResultLine::new();
    r.put("clients", clients)
        .put("connected", n)
        .put("open", alive)
        .num("connect_per_s", n as f64 / secs, 0)
        .latency("connect", env.stats.summary(Hist::C));
    if let (Some(a), Some(b)) = (rss0, rss1) {
        r.num("rss0_mib", a as f64 / 1048576.0, 1)
            .num("rss1_mib", b as f64 / 1048576.0, 1)
            .num(
                "rss_kib_per_conn",
                (b as f64 - a as f64) / n.max(1) as f64 / 1024.0,
                1,
            );
    }
    if let (Some(a), Some(b)) = (anon0, anon1) {
        r.num(
            "anon_kib_per_conn",
            (b as f64 - a as f64) / n.max(1) as f64 / 1024.0,
            1,
        );
    }
    if let (Some((a, _)), Some((b, _))) = (sock0, sock1) {
        r.num(
            "sock_kib_per_conn",
            (b as f64 - a as f64) / n.max(1) as f64 / 1024.0,
            2,
        );
    }
    println!("{}", r.render("idle"));
    drop(conns);
    Ok(())
}

/// Options of the traffic scenarios (`fanout`, `durable`).
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    /// Connected clients.
    pub clients: usize,
    /// Members per room.
    pub room_size: usize,
    /// Messages per second, all rooms together.
    pub rate: f64,
    /// Ask a RECEIPT for every SEND (SEND→RECEIPT latency).
    pub receipts: bool,
    /// Subscribe to `/user/queue/message-status` (SEND→SAVED latency; Shoot only).
    pub status: bool,
}

fn temp_id_ts(temp: &str) -> Option<u64> {
    temp.rsplit('.').next()?.parse().ok()
}

/// `fanout` / `durable`: rooms of `room_size`, every member subscribed, messages at a fixed
/// rate from rotating members; deliveries/s, latencies, losses, server CPU per delivery.
pub async fn traffic(env: &Env, name: &'static str, t: Traffic) -> Result<()> {
    let pop = env.populate(t.clients, t.room_size).await?;
    let status = t.status && env.target.kind == Kind::Shoot;
    let stats = env.stats.clone();
    let room_prefix = env.target.room_topic("");
    let progress = Progress::start(name, stats.clone(), env.server_pids.clone());
    let (conns, secs) = env
        .connect_all(
            (0..t.clients).collect(),
            &pop.auth,
            |i| {
                let mut subs = vec![
                    env.target.room_topic(&pop.rooms[pop.room_of(i)]),
                    env.target.personal_queue(i, &env.personal_queue),
                ];
                if status {
                    subs.push("/user/queue/message-status".to_owned());
                }
                subs
            },
            |_| {
                let stats = stats.clone();
                let room_prefix = room_prefix.clone();
                let mut trackers: HashMap<u32, SeqTracker> = HashMap::new();
                move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| match f.command {
                    "MESSAGE" => {
                        let dest = f.header("destination").unwrap_or_default();
                        if dest.starts_with(&room_prefix) {
                            let Some(m) = Marker::find(f.body) else {
                                return;
                            };
                            let now = sys::now_ns();
                            stats.delivered.fetch_add(1, Relaxed);
                            stats.last_delivery_ns.fetch_max(now, Relaxed);
                            stats.record(Hist::A, now.saturating_sub(m.sent_ns));
                            match trackers
                                .entry(m.sender)
                                .or_insert_with(|| SeqTracker::new(1))
                                .observe(m.seq)
                            {
                                Seen::InOrder => {}
                                Seen::Gap(n) => {
                                    stats.gaps.fetch_add(n, Relaxed);
                                }
                                Seen::Late => {
                                    stats.late.fetch_add(1, Relaxed);
                                    stats.gaps.fetch_sub(1, Relaxed);
                                }
                                Seen::Duplicate => {
                                    stats.duplicates.fetch_add(1, Relaxed);
                                }
                            }
                        } else if dest.ends_with("/message-status") {
                            let Ok(v) = serde_json::from_slice::<Value>(f.body) else {
                                return;
                            };
                            match v.get("status").and_then(Value::as_str) {
                                Some("SAVED") => {
                                    stats.saved.fetch_add(1, Relaxed);
                                    if let Some(ts) =
                                        v.get("tempId").and_then(Value::as_str).and_then(temp_id_ts)
                                    {
                                        stats.record(Hist::B, sys::now_ns().saturating_sub(ts));
                                    }
                                }
                                Some("FAILED") => stats.error(|| format!("FAILED status: {v}")),
                                _ => {}
                            }
                        } else {
                            stats.error(|| {
                                format!("MESSAGE on {dest}: {}", String::from_utf8_lossy(f.body))
                            });
                        }
                    }
                    "RECEIPT" => {
                        if let Some(ts) = f
                            .header("receipt-id")
                            .and_then(|r| r.strip_prefix('r').and_then(|s| s.parse::<u64>().ok()))
                        {
                            stats.accepted.fetch_add(1, Relaxed);
                            stats.record(Hist::C, sys::now_ns().saturating_sub(ts));
                        }
                    }
                    "ERROR" => stats.error(|| client::error_text(f)),
                    _ => {}
                }
            },
        )
        .await;
    println!("connected {}/{} in {secs:.2}s", conns.len(), t.clients);
    if conns.is_empty() {
        bail!(
            "no client connected ({})",
            stats.first_error().unwrap_or_default()
        );
    }
    // Connect times went to histogram C; it now holds SEND→RECEIPT.
    stats.reset(Hist::C);
    let mut tx: Vec<Option<mpsc::UnboundedSender<Out>>> = vec![None; t.clients];
    for (i, c) in &conns {
        tx[*i] = Some(c.tx.clone());
    }
    let rooms = pop.rooms.len();
    let members_up: Vec<u64> = (0..rooms)
        .map(|r| {
            (r * pop.room_size..(r + 1) * pop.room_size)
                .filter(|i| tx[*i].is_some())
                .count() as u64
        })
        .collect();

    let (_, cpu0) = env.pid_figures();
    let t0 = sys::now_ns();
    let duration_ns = env.duration.as_nanos() as u64;
    let mut seqs = vec![0u64; t.clients];
    let (mut k, mut expected) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let elapsed = sys::now_ns() - t0;
        if elapsed >= duration_ns {
            break;
        }
        let due = (elapsed as f64 / 1e9 * t.rate) as u64;
        while k < due {
            let r = (k % rooms as u64) as usize;
            let member = r * pop.room_size + ((k / rooms as u64) % pop.room_size as u64) as usize;
            k += 1;
            let Some(sender) = &tx[member] else { continue };
            seqs[member] += 1;
            let now = sys::now_ns();
            let m = Marker {
                room: r as u32,
                sender: member as u32,
                seq: seqs[member],
                sent_ns: now,
            };
            let temp = format!("t{member}.{}.{now}", seqs[member]);
            let receipt = format!("r{now}");
            let frame = env.target.send_frame(
                &pop.rooms[r],
                &m.encode(),
                &temp,
                t.receipts.then_some(receipt.as_str()),
            );
            if sender.send(Out::Frame(frame)).is_ok() {
                stats.sent.fetch_add(1, Relaxed);
                expected += members_up[r];
            }
        }
    }
    let send_secs = (sys::now_ns() - t0) as f64 / 1e9;
    let sent = stats.sent.load(Relaxed);
    let drained = wait_for(Duration::from_secs(10), || {
        stats.delivered.load(Relaxed) >= expected
            && (!t.receipts || stats.accepted.load(Relaxed) >= sent)
            && (!status || stats.saved.load(Relaxed) >= sent)
    })
    .await;
    let (rss1, cpu1) = env.pid_figures();
    let end = sys::now_ns();
    drop(progress);

    let delivered = stats.delivered.load(Relaxed);
    let dups = stats.duplicates.load(Relaxed);
    let accepted = stats.accepted.load(Relaxed);
    let last = stats.last_delivery_ns.load(Relaxed).max(t0 + 1);
    println!(
        "== {name}: {} clients in {rooms} rooms of {}, {} msg/s for {:.1}s ({}) ==",
        conns.len(),
        pop.room_size,
        t.rate,
        send_secs,
        if drained {
            "all drained"
        } else {
            "NOT fully drained after 10 s"
        }
    );
    println!("sent: {sent} ({:.0}/s)", sent as f64 / send_secs);
    if t.receipts {
        println!(
            "accepted (RECEIPT): {accepted} ({:.0}/s)",
            accepted as f64 / send_secs
        );
    }
    if status {
        println!("SAVED: {}", stats.saved.load(Relaxed));
    }
    println!(
        "delivered: {delivered} of {expected} expected, {:.0} deliveries/s (first send → last delivery {:.2}s)",
        delivered as f64 / ((last - t0) as f64 / 1e9),
        (last - t0) as f64 / 1e9
    );
    let undelivered = expected.saturating_sub(delivered - dups);
    if drained {
        println!("lost: {undelivered}");
    } else {
        println!(
            "undelivered when the tool stopped waiting (server backlog; not proof of loss): {undelivered}"
        );
    }
    println!(
        "duplicates: {dups} late (reordered): {} open holes: {}",
        stats.late.load(Relaxed),
        stats.gaps.load(Relaxed)
    );
    if let Some(s) = stats.summary(Hist::A) {
        println!("SEND→delivery: {s}");
    }
    if let Some(s) = stats.summary(Hist::C) {
        println!("SEND→RECEIPT:  {s}");
    }
    if let Some(s) = stats.summary(Hist::B) {
        println!("SEND→SAVED:    {s}");
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let wall = (end - t0) as f64 / 1e9;
        println!(
            "server CPU: {:.2}s over {wall:.1}s ({:.0}% of a core): {:.2} µs per delivery, {:.1} µs per message",
            b - a,
            (b - a) / wall * 100.0,
            (b - a) * 1e6 / delivered.max(1) as f64,
            (b - a) * 1e6 / sent.max(1) as f64
        );
    }
    if let Some(r) = rss1 {
        println!("server RSS at end: {:.1} MiB", r as f64 / 1048576.0);
    }
    env.print_errors();
    let mut r = ResultLine::new();
    r.put("clients", conns.len())
        .put("rate", t.rate)
        .put("drained", u8::from(drained))
        .put("sent", sent)
        .num("sent_per_s", sent as f64 / send_secs, 0)
        .put("accepted", accepted)
        .put("saved", stats.saved.load(Relaxed))
        .put("delivered", delivered)
        .put("expected", expected)
        .num(
            "deliveries_per_s",
            delivered as f64 / ((last - t0) as f64 / 1e9),
            0,
        )
        .put("undelivered", undelivered)
        .put("duplicates", dups)
        .put("late", stats.late.load(Relaxed))
        .put("errors", stats.errors.load(Relaxed))
        .latency("delivery", stats.summary(Hist::A))
        .latency("receipt", stats.summary(Hist::C))
        .latency("saved", stats.summary(Hist::B));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let wall = (end - t0) as f64 / 1e9;
        r.num("cpu_s", b - a, 2)
            .num("cpu_pct", (b - a) / wall * 100.0, 0)
            .num(
                "cpu_us_per_delivery",
                (b - a) * 1e6 / delivered.max(1) as f64,
                2,
            )
            .num("cpu_us_per_message", (b - a) * 1e6 / sent.max(1) as f64, 1);
    }
    if let Some(b) = rss1 {
        r.num("rss_mib", b as f64 / 1048576.0, 1);
    }
    println!("{}", r.render(name));
    Ok(())
}

/// One reconnecting client's view of its room.
#[derive(Default)]
struct Resync {
    tracker: Option<SeqTracker>,
    /// The room's last sequence the client must reach (set before reconnecting).
    need: u64,
    done_ns: Option<u64>,
}

fn seq_of(v: &Value) -> Option<u64> {
    match v.get("seq")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn sync_frame(room: &str, last_seq: u64) -> String {
    FrameBuilder::new("SEND")
        .header("destination", "/app/sync")
        .header("content-type", "application/json")
        .body(&json!({"roomId": room, "lastSeq": last_seq, "direction": "AFTER"}).to_string())
}

/// `reconnect` (Shoot): everyone drops, misses `missed` messages per room, reconnects at once
/// and resyncs with `/app/sync`; time to resync everyone, gaps and duplicates.
pub async fn reconnect(
    env: &Env,
    clients: usize,
    room_size: usize,
    before: u64,
    missed: u64,
) -> Result<()> {
    if env.target.kind != Kind::Shoot {
        bail!("reconnect needs /app/sync: Shoot only");
    }
    let pop = env.populate(clients, room_size).await?;
    let stats = env.stats.clone();
    let states: Vec<Arc<Mutex<Resync>>> = (0..clients)
        .map(|_| Arc::new(Mutex::new(Resync::default())))
        .collect();
    let resynced = Arc::new(AtomicUsize::new(0));
    let room_prefix = env.target.room_topic("");
    let handler = |i: usize| {
        let stats = stats.clone();
        let st = states[i].clone();
        let resynced = resynced.clone();
        let room_prefix = room_prefix.clone();
        let room = pop.rooms[pop.room_of(i)].clone();
        move |f: &Frame<'_>, tx: &mpsc::UnboundedSender<Out>| {
            if f.command == "ERROR" {
                stats.error(|| client::error_text(f));
                return;
            }
            if f.command != "MESSAGE" {
                return;
            }
            let dest = f.header("destination").unwrap_or_default();
            let Ok(v) = serde_json::from_slice::<Value>(f.body) else {
                return;
            };
            let mut g = st.lock().unwrap_or_else(|e| e.into_inner());
            let observe = |g: &mut Resync, seq: u64| {
                stats.delivered.fetch_add(1, Relaxed);
                if g.tracker
                    .get_or_insert_with(|| SeqTracker::new(seq))
                    .observe(seq)
                    == Seen::Duplicate
                {
                    stats.duplicates.fetch_add(1, Relaxed);
                }
            };
            if dest.starts_with(&room_prefix) {
                if f.header("event-type")
                    .as_deref()
                    .is_some_and(|t| t != "MESSAGE_CREATED")
                {
                    return;
                }
                if let Some(seq) = seq_of(&v) {
                    observe(&mut g, seq);
                }
            } else if dest.ends_with("/sync") {
                for m in v
                    .get("messages")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(seq) = seq_of(m) {
                        observe(&mut g, seq);
                    }
                }
                if v.get("hasMore").and_then(Value::as_bool) == Some(true) {
                    let last = g.tracker.as_ref().map_or(0, SeqTracker::contiguous);
                    let _ = tx.send(Out::Frame(sync_frame(&room, last)));
                }
            }
            if g.need > 0
                && g.done_ns.is_none()
                && g.tracker
                    .as_ref()
                    .is_some_and(|t| t.missing_up_to(g.need) == 0)
            {
                g.done_ns = Some(sys::now_ns());
                resynced.fetch_add(1, Relaxed);
            }
        }
    };
    let subs = |i: usize| {
        vec![
            env.target.room_topic(&pop.rooms[pop.room_of(i)]),
            "/user/queue/sync".to_owned(),
        ]
    };
    let progress = Progress::start("reconnect", stats.clone(), env.server_pids.clone());
    let (conns, secs) = env
        .connect_all((0..clients).collect(), &pop.auth, subs, handler)
        .await;
    println!("phase 1: connected {}/{clients} in {secs:.2}s", conns.len());
    if conns.is_empty() {
        bail!(
            "no client connected ({})",
            stats.first_error().unwrap_or_default()
        );
    }

    // One publisher session per room (a second session of the room's first member).
    let room_last: Arc<Vec<AtomicU64>> =
        Arc::new((0..pop.rooms.len()).map(|_| AtomicU64::new(0)).collect());
    let pub_ids: Vec<usize> = (0..pop.rooms.len()).map(|r| r * pop.room_size).collect();
    let pub_stats = stats.clone();
    let (pubs, _) = env
        .connect_all(
            pub_ids,
            &pop.auth,
            |_| Vec::new(),
            |i| {
                let room_last = room_last.clone();
                let stats = pub_stats.clone();
                let r = i / pop.room_size;
                move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| match f.command {
                    "RECEIPT" => {
                        stats.accepted.fetch_add(1, Relaxed);
                        if let Some(seq) = f.header("seq").and_then(|s| s.parse::<u64>().ok()) {
                            room_last[r].fetch_max(seq, Relaxed);
                        }
                    }
                    "ERROR" => stats.error(|| client::error_text(f)),
                    _ => {}
                }
            },
        )
        .await;
    if pubs.len() != pop.rooms.len() {
        bail!(
            "only {}/{} publisher sessions connected",
            pubs.len(),
            pop.rooms.len()
        );
    }
    let publish = |round: u64| {
        for (i, c) in &pubs {
            let r = i / pop.room_size;
            let now = sys::now_ns();
            let m = Marker {
                room: r as u32,
                sender: *i as u32,
                seq: round,
                sent_ns: now,
            };
            let f = env.target.send_frame(
                &pop.rooms[r],
                &m.encode(),
                &format!("p{round}.{now}"),
                Some(&format!("r{now}")),
            );
            if c.tx.send(Out::Frame(f)).is_ok() {
                stats.sent.fetch_add(1, Relaxed);
            }
        }
    };
    for round in 1..=before {
        publish(round);
    }
    let expect_live = before * conns.len() as u64;
    if !wait_for(Duration::from_secs(15), || {
        stats.delivered.load(Relaxed) >= expect_live
    })
    .await
    {
        println!(
            "warning: only {}/{expect_live} live deliveries before the drop",
            stats.delivered.load(Relaxed)
        );
    }

    // Phase 2: everyone drops; the rooms move on.
    for (_, c) in &conns {
        c.kill();
    }
    drop(conns);
    for round in before + 1..=before + missed {
        publish(round);
    }
    let total = stats.sent.load(Relaxed);
    if !wait_for(Duration::from_secs(15), || {
        stats.accepted.load(Relaxed) >= total
    })
    .await
    {
        println!(
            "warning: only {}/{total} sends accepted",
            stats.accepted.load(Relaxed)
        );
    }
    for (i, st) in states.iter().enumerate() {
        st.lock().unwrap_or_else(|e| e.into_inner()).need = room_last[pop.room_of(i)].load(Relaxed);
    }

    // Phase 3: the storm.
    stats.reset(Hist::C);
    let t0 = sys::now_ns();
    let (conns, secs) = env
        .connect_all((0..clients).collect(), &pop.auth, subs, handler)
        .await;
    for (i, c) in &conns {
        // From the last message seen without a hole before it: a live event that arrives
        // between the reconnect and this request (the new subscription may even receive
        // the tail of what was published just before it) must not hide the missed ones.
        let last = states[*i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tracker
            .as_ref()
            .map_or(0, SeqTracker::contiguous);
        let _ =
            c.tx.send(Out::Frame(sync_frame(&pop.rooms[pop.room_of(*i)], last)));
    }
    let all = wait_for(env.duration, || resynced.load(Relaxed) >= conns.len()).await;
    drop(progress);
    let (mut gaps, mut dups, mut last_done) = (0, 0, t0);
    for st in &states {
        let g = st.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = &g.tracker {
            gaps += t.missing_up_to(g.need);
            dups += t.duplicates;
        } else {
            gaps += g.need;
        }
        if let Some(d) = g.done_ns {
            last_done = last_done.max(d);
        }
    }
    println!(
        "== reconnect: {clients} clients in {} rooms, {before} seen + {missed} missed messages per room ==",
        pop.rooms.len()
    );
    println!(
        "reconnected {}/{clients} in {secs:.2}s ({:.0}/s)",
        conns.len(),
        conns.len() as f64 / secs
    );
    println!(
        "resynced: {}/{clients} {} in {:.2}s from the start of the storm",
        resynced.load(Relaxed),
        if all { "(everyone)" } else { "(NOT everyone)" },
        ms(last_done - t0) / 1000.0
    );
    println!("gaps (messages never received): {gaps}, duplicates received: {dups}");
    if let Some(s) = env.stats.summary(Hist::C) {
        println!("reconnect (TCP+WS+CONNECT+SUBSCRIBE) time: {s}");
    }
    env.print_errors();
    let mut r = ResultLine::new();
    r.put("clients", clients)
        .put("reconnected", conns.len())
        .num("reconnect_s", secs, 2)
        .put("resynced", resynced.load(Relaxed))
        .put("everyone", u8::from(all))
        .num("resync_s", ms(last_done - t0) / 1000.0, 2)
        .put("gaps", gaps)
        .put("duplicates", dups)
        .put("errors", stats.errors.load(Relaxed))
        .latency("reconnect", env.stats.summary(Hist::C));
    println!("{}", r.render("reconnect"));
    drop(pubs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_ids_carry_the_send_time() {
        assert_eq!(temp_id_ts("t12.3.99887766"), Some(99887766));
        assert_eq!(temp_id_ts("garbage"), None);
        assert_eq!(seq_of(&json!({"seq": 5})), Some(5));
        assert_eq!(seq_of(&json!({"seq": "6"})), Some(6));
        assert_eq!(seq_of(&json!({})), None);
    }
}
