//! Service faults on the distributed stack: Redis, PostgreSQL and the Kafka broker go away
//! and come back while two instances of the real binary serve a steady load.
//!
//! What must hold: both instances stay up; every send gets an answer (a receipt with
//! `SENT_TO_KAFKA`, or `FAILED` with a stable error code, never silence); the clients'
//! retries (same `tempId`) succeed once the service is back, without anyone touching the
//! servers; no acknowledged message is lost or stored twice and per-room seqs have no gaps;
//! a reader that reconnects and syncs ends up with exactly the history; `/ready` is green again.
//!
//! These tests stop and start the machine's services, so besides the three `SHOOT_TEST_*`
//! service variables they need `SHOOT_TEST_FAULTS=1`, and they must not share the services
//! with anything else while they run. A guard restarts whatever they stopped, even when a
//! test fails. Commands: Redis `redis-cli shutdown nosave` / `redis-server --daemonize yes …`,
//! PostgreSQL `pg_ctlcluster --skip-systemctl-redirect <version> main stop|start`, the broker
//! (tansu on port 9092) `kill -STOP|-CONT <pid>` for an outage, `kill` + `scripts/tansu` for
//! a restart.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Command as Shell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoot_server::stomp::frame::Command;
use tokio::sync::watch;

use crate::cluster::{Env, Instance, SERIAL, WAIT};
use crate::crash::{self, Answer, Ledger, Reader, Sent};
use crate::support::StompClient;

/// How long a service stays down: shorter than every client timeout of the server.
const OUTAGE: Duration = Duration::from_secs(4);

/// A broker outage longer than the producer's delivery timeout (10 s): sends fail, and
/// records in flight at the broker may still be written after their sender was told FAILED.
const LONG_OUTAGE: Duration = Duration::from_secs(15);

/// Longest wait for one receipt (a send may wait for a backend's own timeouts: 10 s for
/// Kafka deliveries, up to 30 s for a PostgreSQL connection).
const RECEIPT: Duration = Duration::from_secs(45);

/// Longest time from a service's return until every sender got a receipt again.
const RECOVERY: Duration = Duration::from_secs(60);

/// Error codes a client may get while a backend is away: the backend is unavailable, or a
/// previous attempt of the same `tempId` is still in flight.
const EXPECTED_CODES: [&str; 2] = ["BACKEND_UNAVAILABLE", "CONFLICT"];

/// Whether fault injection was asked for (it restarts the machine's services).
fn opted_in() -> bool {
    if std::env::var("SHOOT_TEST_FAULTS").is_ok_and(|v| v.trim() == "1") {
        return true;
    }
    println!(
        "skipped: SHOOT_TEST_FAULTS=1 not set (these tests restart Redis, PostgreSQL and the Kafka broker)"
    );
    false
}

/// Runs `script` with bash; its output on failure.
fn sh(script: &str) -> Result<String, String> {
    let out = Shell::new("bash")
        .args(["-c", script])
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{script}: {}: {text}", out.status))
    }
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Polls until the port is (or is no longer) accepting connections.
fn wait_port(port: u16, open: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if port_open(port) == open {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    port_open(port) == open
}

/// The pid of the process listening on `port`.
fn listener_pid(port: u16) -> Option<u32> {
    let out = sh(&format!("ss -ltnpH 'sport = :{port}'")).ok()?;
    let at = out.find("pid=")? + 4;
    out[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Redis,
    Postgres,
    Kafka,
}

impl Service {
    fn port(self) -> u16 {
        match self {
            Service::Redis => 6379,
            Service::Postgres => 5432,
            Service::Kafka => 9092,
        }
    }

    fn stop(self) -> Result<String, String> {
        match self {
            Service::Redis => sh("redis-cli shutdown nosave"),
            Service::Postgres => sh(
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main stop -m fast",
            ),
            Service::Kafka => {
                let pid = listener_pid(9092).ok_or("nothing listens on 9092")?;
                sh(&format!("kill {pid}"))
            }
        }
    }

    fn start(self) -> Result<String, String> {
        match self {
            Service::Redis => sh(
                "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' \
                 --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
            ),
            Service::Postgres => sh(
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start",
            ),
            Service::Kafka => sh(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/tansu")),
        }
    }

    /// Starts the service unless it answers; resumes a paused broker first.
    fn ensure_running(self) {
        if self == Service::Kafka {
            if let Some(pid) = listener_pid(9092) {
                let _ = sh(&format!("kill -CONT {pid}"));
            }
        }
        if port_open(self.port()) {
            return;
        }
        match self.start() {
            Ok(_) if wait_port(self.port(), true, Duration::from_secs(30)) => {}
            Ok(out) => eprintln!("{self:?} did not come back: {out}"),
            Err(e) => eprintln!("{self:?} could not be restarted: {e}"),
        }
    }
}

/// Leaves the service running when the test ends, however it ends.
struct Restore(Service);

impl Drop for Restore {
    fn drop(&mut self) {
        self.0.ensure_running();
    }
}

/// How a service is taken away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Stopped (state lost where the service keeps it in memory), then started again.
    Restart(Service),
    /// The broker process frozen (SIGSTOP) for this long, then resumed: an outage without
    /// data loss.
    Pause(Duration),
}

impl Fault {
    fn service(self) -> Service {
        match self {
            Fault::Restart(s) => s,
            Fault::Pause(_) => Service::Kafka,
        }
    }

    /// Takes the service away and brings it back: when it was back.
    async fn inject(self) -> Instant {
        tokio::task::spawn_blocking(move || {
            match self {
                Fault::Restart(s) => {
                    s.stop().unwrap_or_else(|e| panic!("stopping {s:?}: {e}"));
                    assert!(
                        wait_port(s.port(), false, Duration::from_secs(30)),
                        "{s:?} stops"
                    );
                    std::thread::sleep(OUTAGE);
                    s.start().unwrap_or_else(|e| panic!("starting {s:?}: {e}"));
                    assert!(
                        wait_port(s.port(), true, Duration::from_secs(30)),
                        "{s:?} starts"
                    );
                }
                Fault::Pause(outage) => {
                    let pid = listener_pid(9092).expect("the broker's pid");
                    sh(&format!("kill -STOP {pid}")).expect("SIGSTOP");
                    std::thread::sleep(outage);
                    sh(&format!("kill -CONT {pid}")).expect("SIGCONT");
                }
            }
            Instant::now()
        })
        .await
        .expect("fault task")
    }
}

/// What one sender saw.
#[derive(Debug, Default)]
struct Seen {
    acked: Vec<Instant>,
    failed: BTreeMap<String, usize>,
    /// Receipts that did not come within [`RECEIPT`].
    silent: usize,
    connects: usize,
}

/// One client sending one message at a time (same `tempId` again after a failure, as a real
/// client does), reconnecting when the connection drops, until `stop` and its last message
/// is acknowledged.
async fn steady(
    sender: usize,
    addr: SocketAddr,
    token: String,
    rooms: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut client: Option<StompClient> = None;
    let mut current: Option<(String, String)> = None;
    let mut n = 0usize;
    let give_up = |since: Instant| since.elapsed() > RECOVERY * 2;
    let mut stopped_at: Option<Instant> = None;
    loop {
        if current.is_none() {
            if *stop.borrow() {
                break;
            }
            let temp = format!("f-s{sender}-{n}");
            let room = rooms[n % rooms.len()].clone();
            n += 1;
            ledger.lock().unwrap().sent.insert(
                temp.clone(),
                Sent {
                    sender,
                    room: room.clone(),
                    ack: None,
                },
            );
            current = Some((temp, room));
        }
        if *stop.borrow() {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            assert!(
                !give_up(since),
                "sender {sender}: {current:?} never acknowledged"
            );
        }
        let Some(c) = client.as_mut() else {
            match StompClient::try_connect(addr, &token, WAIT).await {
                Ok(c) => client = Some(c),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            seen.connects += 1;
            continue;
        };
        let (temp, room) = current.clone().expect("a message");
        if !c.try_send(crash::chat(&room, &temp)).await {
            client = None;
            continue;
        }
        let deadline = Instant::now() + RECEIPT;
        let receipt = loop {
            match c.read(deadline).await {
                Some(f) if f.command == Command::Receipt => break Some(f),
                Some(_) => {}
                None => break None,
            }
        };
        let Some(f) = receipt else {
            if !c.is_closed() {
                seen.silent += 1;
            }
            client = None;
            continue;
        };
        match crash::answer(&f) {
            Answer::Acked { temp: t, ack, .. } => {
                assert_eq!(t, temp, "receipts come in order");
                ledger.lock().unwrap().ack(&temp, ack);
                seen.acked.push(Instant::now());
                current = None;
            }
            Answer::Failed { code, .. } => {
                *seen.failed.entry(code).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    seen
}

/// The reader: live messages, and a reconnect plus sync whenever its connection drops.
async fn listen(
    addr: SocketAddr,
    token: String,
    rooms: Vec<String>,
    mut reader: Reader,
    stop: watch::Receiver<bool>,
) -> (Reader, usize) {
    let mut reconnects = 0;
    let mut c = Reader::connect(addr, &token, &rooms).await;
    reader.sync(&mut c, &rooms).await;
    while !*stop.borrow() {
        match c.read(Instant::now() + Duration::from_millis(300)).await {
            Some(f) => reader.live(&f),
            None if c.is_closed() => {
                reconnects += 1;
                loop {
                    match StompClient::try_connect(addr, &token, WAIT).await {
                        Ok(_) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                c = Reader::connect(addr, &token, &rooms).await;
                reader.sync(&mut c, &rooms).await;
            }
            None => {}
        }
    }
    // Whatever the live stream missed, a last sync brings.
    let mut c = Reader::connect(addr, &token, &rooms).await;
    reader.sync(&mut c, &rooms).await;
    (reader, reconnects)
}

async fn ready(addr: SocketAddr) -> bool {
    let url = format!("http://{addr}/ready");
    reqwest::get(url)
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Waits until `/ready` answers 200 on `addr`: how long that took.
async fn until_ready(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    while !ready(addr).await {
        assert!(started.elapsed() < RECOVERY, "{addr} never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

/// Two instances, three senders and a reader; `fault` in the middle of the load.
async fn survive(fault: Fault) {
    let Some(env) = Env::get() else { return };
    if !opted_in() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let _restore = Restore(fault.service());
    let mut instances = [
        Instance::spawn(&env, "a").await,
        Instance::spawn(&env, "b").await,
    ];
    let addrs = [instances[0].addr, instances[1].addr];
    let cast = crash::cast(addrs[0], 3, 2).await;
    let ledger = Arc::new(Mutex::new(Ledger {
        gaps_allowed: true,
        ..Ledger::default()
    }));
    let (stop_tx, stop) = watch::channel(false);
    let senders: Vec<_> = cast
        .senders
        .iter()
        .enumerate()
        .map(|(i, token)| {
            tokio::spawn(steady(
                i,
                addrs[i % 2],
                token.clone(),
                cast.rooms.clone(),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let listener = tokio::spawn(listen(
        addrs[1],
        cast.reader.clone(),
        cast.rooms.clone(),
        Reader::new(true),
        stop.clone(),
    ));
    let acked = |l: &Arc<Mutex<Ledger>>| {
        l.lock()
            .unwrap()
            .sent
            .values()
            .filter(|s| s.ack.is_some())
            .count()
    };
    let warm = Instant::now();
    while acked(&ledger) < 30 {
        assert!(warm.elapsed() < RECOVERY, "no load before the fault");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = acked(&ledger);
    let down = Instant::now();
    let back = fault.inject().await;
    // Every sender gets acknowledgements again, by itself.
    let per_sender = |l: &Arc<Mutex<Ledger>>| {
        let l = l.lock().unwrap();
        (0..cast.senders.len())
            .map(|i| {
                l.sent
                    .values()
                    .filter(|s| s.sender == i && s.ack.is_some())
                    .count()
            })
            .collect::<Vec<_>>()
    };
    let at_back = per_sender(&ledger);
    let recovered = loop {
        let now = per_sender(&ledger);
        if now.iter().zip(&at_back).all(|(n, b)| *n >= b + 5) {
            break back.elapsed();
        }
        for i in &mut instances {
            i.assert_running();
        }
        assert!(
            back.elapsed() < RECOVERY,
            "{fault:?}: senders stuck at {now:?} (at the service's return: {at_back:?}); logs: {:#?} {:#?}",
            instances[0].log_tail(20),
            instances[1].log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop_tx.send_replace(true);
    let mut seen = Vec::new();
    for s in senders {
        seen.push(s.await.expect("sender"));
    }
    let (mut reader, reader_reconnects) = listener.await.expect("reader");
    for i in &mut instances {
        i.assert_running();
    }

    // Clear statuses only.
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seen {
        for (code, n) in &s.failed {
            *codes.entry(code.clone()).or_default() += n;
        }
    }
    for code in codes.keys() {
        assert!(
            EXPECTED_CODES.contains(&code.as_str()),
            "{fault:?}: a send failed with {code}: {codes:?}"
        );
    }
    let silent: usize = seen.iter().map(|s| s.silent).sum();
    assert_eq!(
        silent, 0,
        "{fault:?}: sends without any answer in {RECEIPT:?}"
    );

    // Nothing lost, nothing twice, no gap; the reader has exactly the history.
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("senders done")
        .into_inner()
        .unwrap();
    let http = crash::http_client();
    let h = crash::settled(&http, addrs[0], &cast, &ledger, Duration::from_secs(90)).await;
    let bounds = h
        .iter()
        .map(|(r, m): (&String, &Vec<Value>)| (r.clone(), m.len() as i64))
        .collect();
    let mut c = Reader::connect(addrs[1], &cast.reader, &cast.rooms).await;
    reader.catch_up(&mut c, &h, &bounds).await;
    let ready_after = [until_ready(addrs[0]).await, until_ready(addrs[1]).await];
    let stored: usize = h.values().map(Vec::len).sum();
    let connects: usize = seen.iter().map(|s| s.connects).sum();
    let errors: Vec<usize> = instances
        .iter()
        .map(|i| i.log_count("\"level\":\"ERROR\""))
        .collect();
    eprintln!(
        "{fault:?}: {before} acknowledged before the fault; service away for {:?}; \
         every sender acknowledged again {:?} after its return; failures {codes:?}; {connects} sender \
         connection attempts, {reader_reconnects} reader reconnects; {stored} messages stored and checked; \
         reader: {} from sync; /ready again after {ready_after:?}; ERROR log lines per instance {errors:?}",
        back - down,
        recovered,
        reader.synced,
    );
    for mut i in instances {
        let status = i.terminate().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{fault:?}: a graceful stop after the fault: {status:?}; log: {:#?}",
            i.log_tail(30)
        );
    }
}

/// Redis (bus, locks, claims, presence) shut down without saving and started empty.
/// Bounded at about 90 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_load_loses_no_acknowledged_message() {
    survive(Fault::Restart(Service::Redis)).await;
}

/// PostgreSQL (every store, the seq allocator) stopped and started. Bounded at about 120 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_acknowledged_message() {
    survive(Fault::Restart(Service::Postgres)).await;
}

/// The Kafka broker frozen for a few seconds (its storage kept). Bounded at about 120 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_broker_outage_under_load_loses_no_acknowledged_message() {
    survive(Fault::Pause(OUTAGE)).await;
}

/// The Kafka broker frozen for longer than the delivery timeout: sends in flight fail
/// although the broker may write them when it resumes; their retries must not store them
/// twice, and a retry's receipt must name the record the store kept (RELIABILITY.md,
/// finding 4). Bounded at about 140 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_kafka_broker_outage_under_load_loses_no_acknowledged_message() {
    survive(Fault::Pause(LONG_OUTAGE)).await;
}
