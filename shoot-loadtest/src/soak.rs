//! `soak` (Shoot): a steady message rate with connection churn, for leak hunting.
//!
//! Rooms of `room_size` members, every member subscribed to its room and personal queue,
//! `rate` messages/s from rotating members (with RECEIPTs), and `churn` reconnections/s: one
//! client at a time is dropped (alternately abruptly, and with DISCONNECT) and reconnected
//! with fresh subscriptions. At the end every connection is closed. The tool only drives the
//! load and checks what clients see (no ERROR frame, no FAILED receipt, no duplicate or
//! reordered delivery on a live subscription); `scripts/soak` samples the server's RSS, open
//! files and tasks around it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Result, bail};
use shoot_loadtest::client::{self, Auth, Conn, Out};
use shoot_loadtest::frame::{Frame, FrameBuilder};
use shoot_loadtest::payload::Marker;
use shoot_loadtest::scenarios::Env;
use shoot_loadtest::seq::{Seen, SeqTracker};
use shoot_loadtest::stats::{Hist, Progress, ResultLine, Stats};
use shoot_loadtest::sys;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// One connected client: its connection, SENDs written on it and RECEIPTs it got.
struct Live {
    conn: Conn,
    /// Marker sender id of this connection: every connection numbers its own SENDs, because
    /// the order guarantee is per session (an old session of a reconnected client may still
    /// be finishing its last SENDs while the new one starts).
    sender: u32,
    sent: u64,
    acked: Arc<AtomicU64>,
}

/// Options of the soak scenario.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Soak {
    /// Connected clients.
    pub(crate) clients: usize,
    /// Members per room.
    pub(crate) room_size: usize,
    /// Messages per second, all rooms together.
    pub(crate) rate: f64,
    /// Reconnections per second.
    pub(crate) churn: f64,
}

/// The frame handler of one connection: deliveries, per-sender order on this connection,
/// receipts and errors.
fn handler(
    stats: Arc<Stats>,
    acked: Arc<AtomicU64>,
) -> impl FnMut(&Frame<'_>, &mpsc::UnboundedSender<Out>) + Send {
    let mut trackers: HashMap<u32, SeqTracker> = HashMap::new();
    move |f: &Frame<'_>, _: &mpsc::UnboundedSender<Out>| match f.command {
        "MESSAGE" => {
            let Some(m) = Marker::find(f.body) else {
                return;
            };
            stats.delivered.fetch_add(1, Relaxed);
            stats.record(Hist::A, sys::now_ns().saturating_sub(m.sent_ns));
            // A fresh subscription starts wherever the sending session is; it must then see
            // that session's messages once each and in order (a gap: the sender was dropped
            // with SENDs still unwritten).
            match trackers
                .entry(m.sender)
                .or_insert_with(|| SeqTracker::new(m.seq))
                .observe(m.seq)
            {
                Seen::InOrder => {}
                Seen::Gap(n) => {
                    stats.gaps.fetch_add(n, Relaxed);
                }
                Seen::Late => {
                    stats.late.fetch_add(1, Relaxed);
                }
                Seen::Duplicate => {
                    stats.duplicates.fetch_add(1, Relaxed);
                }
            }
        }
        "RECEIPT" => {
            if f.header("status").as_deref() == Some("FAILED") {
                stats.error(|| {
                    format!(
                        "FAILED receipt: {}",
                        f.header("error-code").unwrap_or_default()
                    )
                });
            } else if f.header("receipt-id").is_some_and(|r| r.starts_with('r')) {
                stats.accepted.fetch_add(1, Relaxed);
                acked.fetch_add(1, Relaxed);
            }
        }
        "ERROR" => stats.error(|| client::error_text(f)),
        _ => {}
    }
}

/// Runs the soak for `env.duration`.
pub(crate) async fn run(env: &Env, s: Soak) -> Result<()> {
    if env.rest.is_none() {
        bail!("soak drives Shoot only (--target shoot)");
    }
    let pop = env.populate(s.clients, s.room_size).await?;
    let stats = env.stats.clone();
    let subs = |i: usize| {
        vec![
            env.target.room_topic(&pop.rooms[pop.room_of(i)]),
            env.target.personal_queue(i, &env.personal_queue),
        ]
    };
    let progress = Progress::start("soak", stats.clone(), env.server_pids.clone());
    let mut slots: Vec<Option<Live>> = (0..s.clients).map(|_| None).collect();
    let mut opening: JoinSet<(usize, Result<Ws>)> = JoinSet::new();
    for i in 0..s.clients {
        spawn_open(&mut opening, env, i, &pop.auth[i], subs(i));
        // Bounded concurrency while the population first connects.
        if opening.len() >= env.concurrency.max(1) {
            settle(&mut opening, &mut slots, env, &stats, false).await;
        }
    }
    while !opening.is_empty() {
        settle(&mut opening, &mut slots, env, &stats, false).await;
    }
    let up = slots.iter().filter(|c| c.is_some()).count();
    println!("connected {up}/{}", s.clients);
    if up == 0 {
        bail!(
            "no client connected ({})",
            stats.first_error().unwrap_or_default()
        );
    }

    let rooms = pop.rooms.len();
    let t0 = sys::now_ns();
    let duration_ns = env.duration.as_nanos() as u64;
    let (mut k, mut churned, mut abandoned) = (0u64, 0u64, 0u64);
    let mut closing: Vec<(u64, Conn)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = sys::now_ns();
        let elapsed = now - t0;
        if elapsed >= duration_ns {
            break;
        }
        settle(&mut opening, &mut slots, env, &stats, true).await;
        // Gracefully closed connections get a second to say goodbye.
        closing.retain(|(since, _)| now - since < 1_000_000_000);
        let due = (elapsed as f64 / 1e9 * s.rate) as u64;
        while k < due {
            let r = (k % rooms as u64) as usize;
            let member = r * pop.room_size + ((k / rooms as u64) % pop.room_size as u64) as usize;
            k += 1;
            let Some(live) = &mut slots[member] else {
                continue;
            };
            let m = Marker {
                room: r as u32,
                sender: live.sender,
                seq: live.sent + 1,
                sent_ns: now,
            };
            let temp = format!("s{}.{}.{now}", live.sender, m.seq);
            let frame =
                env.target
                    .send_frame(&pop.rooms[r], &m.encode(), &temp, Some(&format!("r{now}")));
            if live.conn.tx.send(Out::Frame(frame)).is_ok() {
                live.sent += 1;
                stats.sent.fetch_add(1, Relaxed);
            }
        }
        let churn_due = (elapsed as f64 / 1e9 * s.churn) as u64;
        while churned < churn_due {
            let i = (churned as usize * 7919) % s.clients;
            churned += 1;
            let Some(live) = slots[i].take() else {
                continue;
            };
            // Receipts still owed to a dropped connection are not expected any more.
            abandoned += live.sent.saturating_sub(live.acked.load(Relaxed));
            if churned % 2 == 0 {
                let bye = FrameBuilder::new("DISCONNECT").finish();
                let _ = live.conn.tx.send(Out::Frame(bye));
                closing.push((now, live.conn));
            } else {
                drop(live);
            }
            spawn_open(&mut opening, env, i, &pop.auth[i], subs(i));
        }
    }
    let send_secs = (sys::now_ns() - t0) as f64 / 1e9;
    let sent = stats.sent.load(Relaxed);
    // Let the last receipts arrive, then close everything.
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.accepted.load(Relaxed) + abandoned + stats.errors.load(Relaxed) < sent
        && tokio::time::Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while !opening.is_empty() {
        settle(&mut opening, &mut slots, env, &stats, false).await;
    }
    drop(progress);
    let open_at_end = slots.iter().filter(|c| c.is_some()).count();
    drop(closing);
    drop(slots);

    let accepted = stats.accepted.load(Relaxed);
    let errors = stats.errors.load(Relaxed);
    let failed = stats.connect_failed.load(Relaxed);
    let (late, dups) = (stats.late.load(Relaxed), stats.duplicates.load(Relaxed));
    println!(
        "== soak: {} clients in {rooms} rooms of {}, {} msg/s, {} reconnections/s for {send_secs:.1}s ==",
        s.clients, pop.room_size, s.rate, s.churn
    );
    println!(
        "sent: {sent}, accepted (RECEIPT): {accepted} (+{abandoned} owed to dropped connections), delivered: {}, reconnections: {churned}, connect failures: {failed}, open at end: {open_at_end}",
        stats.delivered.load(Relaxed)
    );
    println!(
        "duplicates: {dups}, reordered: {late}, gaps (senders churned mid-stream): {}",
        stats.gaps.load(Relaxed)
    );
    if let Some(sum) = stats.summary(Hist::A) {
        println!("SEND→delivery: {sum}");
    }
    let mut line = ResultLine::new();
    line.put("sent", sent)
        .put("accepted", accepted)
        .put("delivered", stats.delivered.load(Relaxed))
        .put("reconnections", churned)
        .put("abandoned_receipts", abandoned)
        .put("connect_failures", failed)
        .put("errors", errors)
        .put("duplicates", dups)
        .put("reordered", late)
        .latency("delivery", stats.summary(Hist::A));
    println!("{}", line.render("soak"));
    if errors > 0 || failed > 0 || dups > 0 || late > 0 || accepted + abandoned < sent {
        bail!(
            "soak saw problems: errors={errors} (first: {}), connect failures={failed}, duplicates={dups}, reordered={late}, unaccepted={}",
            stats.first_error().unwrap_or_default(),
            sent.saturating_sub(accepted + abandoned)
        );
    }
    Ok(())
}

/// Starts opening connection `i` in the background.
fn spawn_open(
    set: &mut JoinSet<(usize, Result<Ws>)>,
    env: &Env,
    i: usize,
    auth: &Auth,
    subs: Vec<String>,
) {
    let target = env.target.clone();
    let auth = auth.clone();
    set.spawn(async move {
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            client::open(&target, i, &auth, &subs),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        (i, r)
    });
}

/// Installs finished connection attempts into their slots: all that are ready when
/// `nowait`, else at least one.
async fn settle(
    set: &mut JoinSet<(usize, Result<Ws>)>,
    slots: &mut [Option<Live>],
    env: &Env,
    stats: &Arc<Stats>,
    nowait: bool,
) {
    loop {
        let next = if nowait {
            match set.try_join_next() {
                Some(r) => r,
                None => return,
            }
        } else {
            match set.join_next().await {
                Some(r) => r,
                None => return,
            }
        };
        match next {
            Ok((i, Ok(ws))) => {
                stats.connected.fetch_add(1, Relaxed);
                let acked = Arc::new(AtomicU64::new(0));
                let conn = client::spawn(
                    ws,
                    env.target.heartbeat_ms,
                    stats.clone(),
                    handler(stats.clone(), acked.clone()),
                );
                slots[i] = Some(Live {
                    conn,
                    sender: stats.connected.load(Relaxed) as u32,
                    sent: 0,
                    acked,
                });
            }
            Ok((i, Err(e))) => {
                stats.connect_failed.fetch_add(1, Relaxed);
                stats.error(|| format!("connect {i}: {e:#}"));
            }
            Err(e) => stats.error(|| format!("connect task: {e}")),
        }
        if !nowait {
            return;
        }
    }
}
