//! `bigroom`: one room of `--clients` subscribers and a publisher sending `--rate`
//! messages/s; the time until the last subscriber has each message.
//!
//! One process holds at most about 19 000 connections here (the hard open-file limit), so
//! `--processes N` spreads the subscribers over N child processes of this tool
//! (`bigroom-part`, one share of the clients each) while this process sets up, publishes and
//! merges what the children saw. With several `--addr`es (instances of one cluster),
//! subscriber `i` connects to address `i % n` and the publisher to the first. Messages are
//! stamped with the machine's monotonic clock, which every process reads alike. With child
//! processes the parent's progress line shows sends only: deliveries are counted in the
//! children and reported at the end.
//!
//! Child protocol (lines on the child's stdin and stdout; anything else a child prints is
//! passed through): the child prints `@ready` once its share is connected, waits for
//! `sent N` on stdin, waits until its subscribers have the N messages (or 10 s), then prints
//! `@seen {json}` ([`Observed`]) and exits.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use crate::client::{self, Auth, Conn, Kind, Out};
use crate::frame::Frame;
use crate::payload::Marker;
use crate::scenarios::{Env, wait_for};
use crate::stats::{Hist, Progress, ResultLine, Stats, Summary, new_histogram};
use crate::sys;

/// How long subscribers may take to receive everything once the last message is sent.
const DRAIN: Duration = Duration::from_secs(10);

/// What a set of subscribers saw; sets from several processes merge into one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Subscribers connected.
    pub subscribers: u64,
    /// Subscribers that failed to connect.
    pub failed: u64,
    /// Seconds the set took to connect.
    pub subscribe_s: f64,
    /// Load messages delivered.
    pub delivered: u64,
    /// Per message: `(seq, recipients, latest delivery latency in ns)`.
    pub per_msg: Vec<(u64, u64, u64)>,
    /// Every delivery's latency: histogram buckets `(µs, count)`.
    pub delivery_us: Vec<(u64, u64)>,
    /// ERROR frames seen.
    pub errors: u64,
    /// The first error's text.
    pub first_error: Option<String>,
}

impl Observed {
    /// Adds `other` (another process's subscribers, connected at the same time).
    pub fn merge(&mut self, other: Observed) {
        self.subscribers += other.subscribers;
        self.failed += other.failed;
        self.subscribe_s = self.subscribe_s.max(other.subscribe_s);
        self.delivered += other.delivered;
        let mut by_seq: HashMap<u64, (u64, u64)> = self
            .per_msg
            .iter()
            .map(|&(seq, n, max)| (seq, (n, max)))
            .collect();
        for (seq, n, max) in other.per_msg {
            let e = by_seq.entry(seq).or_insert((0, 0));
            e.0 += n;
            e.1 = e.1.max(max);
        }
        self.per_msg = by_seq.into_iter().map(|(s, (n, m))| (s, n, m)).collect();
        self.per_msg.sort_unstable();
        self.delivery_us.extend(other.delivery_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Subscribers held by this process.
struct Subscribers {
    conns: Vec<(usize, Conn)>,
    failed: u64,
    secs: f64,
    per_msg: Arc<Mutex<HashMap<u64, (u64, u64)>>>,
    stats: Arc<Stats>,
}

impl Subscribers {
    /// Connects clients `ids` (authenticated by `auth[i]`) to `topic`.
    async fn connect(env: &Env, ids: Vec<usize>, auth: &[Auth], topic: &str) -> Subscribers {
        let stats = env.stats.clone();
        let per_msg: Arc<Mutex<HashMap<u64, (u64, u64)>>> = Arc::default();
        let failed0 = stats.connect_failed.load(Relaxed);
        let (conns, secs) = env
            .connect_all(
                ids,
                auth,
                |_| vec![topic.to_owned()],
                |_| {
                    let stats = stats.clone();
                    let per_msg = per_msg.clone();
                    move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| match f.command {
                        "MESSAGE" => {
                            let Some(m) = Marker::find(f.body) else {
                                return;
                            };
                            let lat = sys::now_ns().saturating_sub(m.sent_ns);
                            stats.delivered.fetch_add(1, Relaxed);
                            stats.record(Hist::A, lat);
                            let mut g = per_msg.lock().unwrap_or_else(|e| e.into_inner());
                            let e = g.entry(m.seq).or_insert((0, 0));
                            e.0 += 1;
                            e.1 = e.1.max(lat);
                        }
                        "ERROR" => stats.error(|| client::error_text(f)),
                        _ => {}
                    }
                },
            )
            .await;
        let failed = stats.connect_failed.load(Relaxed) - failed0;
        Subscribers {
            conns,
            failed,
            secs,
            per_msg,
            stats,
        }
    }

    /// Waits until every subscriber has `sent` messages (or [`DRAIN`]); returns whether
    /// they all did.
    async fn drain(&self, sent: u64) -> bool {
        let n = self.conns.len() as u64;
        wait_for(DRAIN, || self.stats.delivered.load(Relaxed) >= sent * n).await
    }

    fn observed(&self) -> Observed {
        let mut per_msg: Vec<(u64, u64, u64)> = self
            .per_msg
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&s, &(n, m))| (s, n, m))
            .collect();
        per_msg.sort_unstable();
        let delivery_us = self
            .stats
            .lat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            })
            .unwrap_or_default();
        Observed {
            subscribers: self.conns.len() as u64,
            failed: self.failed,
            subscribe_s: self.secs,
            delivered: self.stats.delivered.load(Relaxed),
            per_msg,
            delivery_us,
            errors: self.stats.errors.load(Relaxed),
            first_error: self.stats.first_error(),
        }
    }
}

/// The room, everyone's authentication and the publisher's.
struct Room {
    id: String,
    auth: Vec<Auth>,
    publisher: Auth,
}

async fn set_up(env: &Env, clients: usize) -> Result<Room> {
    match (&env.rest, env.target.kind) {
        (Some(rest), Kind::Shoot) => {
            println!("setting up {clients} users and one room over REST…");
            let users = rest.users(&env.prefix, clients, env.concurrency).await?;
            let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
            let t = std::time::Instant::now();
            let id = rest.group_room(&users[0], "load big room", &ids).await?;
            println!(
                "  room of {clients} ready in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            let publisher = Auth::Bearer(users[0].token.clone());
            Ok(Room {
                id,
                auth: users.into_iter().map(|u| Auth::Bearer(u.token)).collect(),
                publisher,
            })
        }
        _ => {
            let (l, p) = env.target.login.clone();
            Ok(Room {
                id: format!("{}big", env.prefix),
                auth: vec![Auth::Login(l.clone(), p.clone()); clients],
                publisher: Auth::Login(l, p),
            })
        }
    }
}

/// Sends `--duration × rate` messages at `rate`/s from client index `index` (the
/// publisher's connection); returns how many were sent and the connection.
async fn publish(env: &Env, room: &Room, index: usize, rate: f64) -> Result<(u64, Conn)> {
    let stats = env.stats.clone();
    let ws = client::open(&env.target, index, &room.publisher, &[]).await?;
    let publisher = client::spawn(ws, env.target.heartbeat_ms, stats.clone(), {
        let stats = stats.clone();
        move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| {
            if f.command == "ERROR" {
                stats.error(|| client::error_text(f));
            }
        }
    });
    let count = ((env.duration.as_secs_f64() * rate).ceil() as u64).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    let mut sent = 0;
    for seq in 1..=count {
        tick.tick().await;
        let now = sys::now_ns();
        let m = Marker {
            room: 0,
            sender: 0,
            seq,
            sent_ns: now,
        };
        let frame = env
            .target
            .send_frame(&room.id, &m.encode(), &format!("b{seq}.{now}"), None);
        if publisher.tx.send(Out::Frame(frame)).is_ok() {
            sent += 1;
            stats.sent.fetch_add(1, Relaxed);
        }
    }
    Ok((sent, publisher))
}

/// `bigroom` with every subscriber in this process or, with `processes > 1`, spread over
/// that many child processes.
pub async fn run(env: &Env, clients: usize, rate: f64, processes: usize) -> Result<()> {
    let room = set_up(env, clients).await?;
    let topic = env.target.room_topic(&room.id);
    let progress = Progress::start("bigroom", env.stats.clone(), env.server_pids.clone());
    let parts = if processes <= 1 {
        Parts::Local(Subscribers::connect(env, (0..clients).collect(), &room.auth, &topic).await)
    } else {
        Parts::Children(Children::start(env, &room, clients, processes).await?)
    };
    let (connected, failed, secs) = parts.connected();
    println!(
        "connected {connected}/{clients} subscribers in {secs:.2}s ({failed} failed){}",
        match processes {
            0 | 1 => String::new(),
            n => format!(" from {n} processes"),
        }
    );
    if connected == 0 {
        bail!(
            "no subscriber connected ({})",
            env.stats.first_error().unwrap_or_default()
        );
    }
    let (_, cpu0) = env.pid_figures();
    let t0 = sys::now_ns();
    let (sent, _publisher) = publish(env, &room, clients, rate).await?;
    let (drained, seen) = match parts {
        Parts::Local(subs) => {
            let drained = subs.drain(sent).await;
            (drained, subs.observed())
        }
        Parts::Children(children) => {
            let (drained, mut seen) = children.finish(sent).await?;
            // The publisher's errors (this process); the subscribers' came from the children.
            seen.errors += env.stats.errors.load(Relaxed);
            seen.first_error = seen.first_error.or_else(|| env.stats.first_error());
            (drained, seen)
        }
    };
    let (_, cpu1) = env.pid_figures();
    drop(progress);
    report(env, clients, rate, sent, drained, &seen, t0, cpu0.zip(cpu1));
    Ok(())
}

enum Parts {
    Local(Subscribers),
    Children(Children),
}

impl Parts {
    fn connected(&self) -> (u64, u64, f64) {
        match self {
            Parts::Local(s) => (s.conns.len() as u64, s.failed, s.secs),
            Parts::Children(c) => (c.ready.subscribers, c.ready.failed, c.ready.subscribe_s),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    env: &Env,
    clients: usize,
    rate: f64,
    sent: u64,
    drained: bool,
    seen: &Observed,
    t0: u64,
    cpu: Option<(f64, f64)>,
) {
    let n = seen.subscribers;
    let mut last = new_histogram();
    let (mut complete, mut incomplete) = (0, sent.saturating_sub(seen.per_msg.len() as u64));
    for &(_, count, max) in &seen.per_msg {
        last.saturating_record((max / 1000).max(1));
        if count >= n {
            complete += 1;
        } else {
            incomplete += 1;
        }
    }
    let last = Summary::of_nonempty(&last);
    let mut every = new_histogram();
    for &(us, count) in &seen.delivery_us {
        every.saturating_record_n(us, count);
    }
    let every = Summary::of_nonempty(&every);
    println!(
        "== bigroom: {n} subscribers, {sent} messages at {rate}/s ({}) ==",
        if drained {
            "all delivered"
        } else {
            "NOT all delivered"
        }
    );
    println!(
        "delivered: {} of {} expected; messages reaching everyone: {complete}, not: {incomplete}",
        seen.delivered,
        sent * n
    );
    if let Some(s) = last {
        println!("time to last recipient: {s}");
    }
    if let Some(s) = every {
        println!("every delivery:         {s}");
    }
    let cpu_per_delivery = cpu.map(|(a, b)| (b - a) * 1e6 / seen.delivered.max(1) as f64);
    if let (Some((a, b)), Some(per)) = (cpu, cpu_per_delivery) {
        println!(
            "server CPU: {:.2}s over {:.1}s: {per:.2} µs per delivery",
            b - a,
            (sys::now_ns() - t0) as f64 / 1e9,
        );
    }
    if seen.errors > 0 {
        println!(
            "errors: {} (first: {})",
            seen.errors,
            seen.first_error.as_deref().unwrap_or_default()
        );
    }
    let mut r = ResultLine::new();
    r.put("clients", clients)
        .put("subscribers", n)
        .put("instances", env.target.addrs.len())
        .num("subscribe_s", seen.subscribe_s, 2)
        .put("drained", u8::from(drained))
        .put("sent", sent)
        .put("delivered", seen.delivered)
        .put("expected", sent * n)
        .put("complete", complete)
        .put("incomplete", incomplete)
        .put("errors", seen.errors)
        .latency("last", last)
        .latency("delivery", every);
    if let Some(per) = cpu_per_delivery {
        r.num("cpu_us_per_delivery", per, 2);
    }
    println!("{}", r.render("bigroom"));
}

/// Child processes holding shares of the subscribers.
struct Children {
    procs: Vec<(Child, ChildStdin, tokio::io::Lines<BufReader<ChildStdout>>)>,
    ready: Observed,
    tokens: Option<std::path::PathBuf>,
}

impl Children {
    /// Starts `processes` children for clients `0..clients` and waits until all are ready.
    async fn start(env: &Env, room: &Room, clients: usize, processes: usize) -> Result<Children> {
        let tokens = match env.target.kind {
            Kind::Shoot => {
                let path = std::env::temp_dir()
                    .join(format!("shoot-loadtest-{}-tokens", std::process::id()));
                let mut text = String::new();
                for a in &room.auth {
                    if let Auth::Bearer(t) = a {
                        text.push_str(t);
                        text.push('\n');
                    }
                }
                std::fs::write(&path, text).context("write the token file")?;
                Some(path)
            }
            Kind::Rabbit => None,
        };
        let exe = std::env::current_exe().context("own executable")?;
        let addrs: Vec<String> = env.target.addrs.iter().map(|a| a.to_string()).collect();
        let mut children = Children {
            procs: Vec::new(),
            ready: Observed::default(),
            tokens,
        };
        let t0 = sys::now_ns();
        let share = clients.div_ceil(processes);
        for k in 0..processes {
            let (from, to) = (k * share, ((k + 1) * share).min(clients));
            if from >= to {
                break;
            }
            let mut cmd = Command::new(&exe);
            cmd.arg("bigroom-part")
                .args(["--room", &room.id])
                .args(["--from", &from.to_string(), "--to", &to.to_string()])
                .args(["--addr", &addrs.join(",")])
                .args(["--target", env.target.kind.name()])
                .args(["--ws-path", &env.target.ws_path])
                .args(["--spread", &env.target.spread.to_string()])
                .args(["--heartbeat", &env.target.heartbeat_ms.to_string()])
                .args(["--concurrency", &env.concurrency.to_string()])
                .args(["--login", &env.target.login.0])
                .args(["--passcode", &env.target.login.1])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            if let Some(path) = &children.tokens {
                cmd.arg("--tokens").arg(path);
            }
            let mut child = cmd.spawn().context("start a bigroom-part process")?;
            let stdin = child.stdin.take().context("child stdin")?;
            let stdout = BufReader::new(child.stdout.take().context("child stdout")?).lines();
            children.procs.push((child, stdin, stdout));
        }
        for (k, (_, _, out)) in children.procs.iter_mut().enumerate() {
            let line = until_tagged(k, out, "@ready ").await?;
            let part: Observed = serde_json::from_str(&line).context("@ready line")?;
            children.ready.merge(part);
        }
        children.ready.subscribe_s = (sys::now_ns() - t0) as f64 / 1e9;
        env.stats
            .connected
            .fetch_add(children.ready.subscribers, Relaxed);
        env.stats
            .connect_failed
            .fetch_add(children.ready.failed, Relaxed);
        Ok(children)
    }

    /// Tells every child `sent` and merges what they saw; returns whether all drained.
    async fn finish(mut self, sent: u64) -> Result<(bool, Observed)> {
        for (_, stdin, _) in &mut self.procs {
            stdin.write_all(format!("sent {sent}\n").as_bytes()).await?;
            stdin.flush().await?;
        }
        let mut seen = Observed {
            subscribe_s: self.ready.subscribe_s,
            ..Observed::default()
        };
        for (k, (child, _, out)) in self.procs.iter_mut().enumerate() {
            let line = tokio::time::timeout(DRAIN * 3, until_tagged(k, out, "@seen "))
                .await
                .with_context(|| format!("part {k}: no report"))??;
            let part: Observed = serde_json::from_str(&line).context("@seen line")?;
            seen.merge(part);
            let _ = child.wait().await;
        }
        seen.subscribe_s = self.ready.subscribe_s;
        let drained = seen.delivered >= sent * seen.subscribers;
        Ok((drained, seen))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if let Some(path) = &self.tokens {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Passes child `k`'s lines through until one starts with `tag`; returns the rest of it.
async fn until_tagged(
    k: usize,
    out: &mut tokio::io::Lines<BufReader<ChildStdout>>,
    tag: &str,
) -> Result<String> {
    while let Some(line) = out.next_line().await? {
        if let Some(rest) = line.strip_prefix(tag) {
            return Ok(rest.to_owned());
        }
        println!("  [part {k}] {line}");
    }
    bail!("part {k} exited before {}", tag.trim())
}

/// The `bigroom-part` child: clients `from..to` of the room subscribe (see the module docs).
pub async fn part(
    env: &Env,
    room: &str,
    from: usize,
    to: usize,
    tokens: Option<&str>,
) -> Result<()> {
    if from >= to {
        bail!("bigroom-part needs --from below --to (got {from}..{to})");
    }
    let auth: Vec<Auth> = match tokens {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("read {path}"))?
            .lines()
            .map(|t| Auth::Bearer(t.to_owned()))
            .collect(),
        None => {
            let (l, p) = env.target.login.clone();
            vec![Auth::Login(l, p); to]
        }
    };
    if auth.len() < to {
        bail!("--to {to}: only {} tokens", auth.len());
    }
    let topic = env.target.room_topic(room);
    let subs = Subscribers::connect(env, (from..to).collect(), &auth, &topic).await;
    drop(auth);
    println!("@ready {}", serde_json::to_string(&subs.observed())?);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let sent = loop {
        match stdin.next_line().await? {
            Some(line) => {
                if let Some(n) = line.strip_prefix("sent ") {
                    break n.trim().parse::<u64>().context("sent N")?;
                }
            }
            None => bail!("the coordinating process went away"),
        }
    };
    subs.drain(sent).await;
    println!("@seen {}", serde_json::to_string(&subs.observed())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_merge_per_message_and_in_total() {
        let mut a = Observed {
            subscribers: 2,
            failed: 1,
            subscribe_s: 1.5,
            delivered: 3,
            per_msg: vec![(1, 2, 900), (2, 1, 400)],
            delivery_us: vec![(1, 3)],
            errors: 0,
            first_error: None,
        };
        let b = Observed {
            subscribers: 3,
            failed: 0,
            subscribe_s: 2.5,
            delivered: 5,
            per_msg: vec![(2, 3, 700), (3, 2, 100)],
            delivery_us: vec![(2, 5)],
            errors: 2,
            first_error: Some("ERROR x".into()),
        };
        a.merge(b);
        assert_eq!(a.subscribers, 5);
        assert_eq!(a.failed, 1);
        assert_eq!(a.subscribe_s, 2.5);
        assert_eq!(a.delivered, 8);
        assert_eq!(a.per_msg, vec![(1, 2, 900), (2, 4, 700), (3, 2, 100)]);
        assert_eq!(a.delivery_us, vec![(1, 3), (2, 5)]);
        assert_eq!(a.errors, 2);
        assert_eq!(a.first_error.as_deref(), Some("ERROR x"));
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Observed>(&text).unwrap(), a);
    }
}
