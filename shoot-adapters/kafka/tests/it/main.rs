//! Integration tests of shoot-kafka against a real Kafka-protocol broker (tansu in CI:
//! `scripts/tansu`), run when `SHOOT_TEST_KAFKA_BROKERS` is set; every test uses topics and
//! groups of its own. `unreachable_broker_fails_within_the_timeout` needs no broker.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{Message, MessageStatus};
use shoot_core::ports::{LogConsumer, LogEntry, MessageLog, SequenceAllocator};
use shoot_core::testkit::{base36, fresh_id, message_log_contract, wall_now};
use shoot_core::{PortError, PortResult};
use shoot_kafka::{HEADER_ERROR, HEADER_ORIGINAL_OFFSET, KafkaConfig, KafkaMessageLog};
use shoot_tokio::TokioClock;

const PATIENCE: Duration = Duration::from_secs(60);

/// In-memory [`SequenceAllocator`] for tests (the real one lives in shoot-sql).
#[derive(Default)]
struct MemorySeqs(Mutex<HashMap<RoomId, i64>>);

#[async_trait]
impl SequenceAllocator for MemorySeqs {
    async fn allocate(&self, room: RoomId, count: u32) -> PortResult<Seq> {
        let mut seqs = self.0.lock().unwrap();
        let last = seqs.entry(room).or_insert(0);
        let first = *last + 1;
        *last += i64::from(count);
        Ok(Seq(first))
    }
}

fn brokers() -> Option<String> {
    match std::env::var("SHOOT_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            println!("skipped: SHOOT_TEST_KAFKA_BROKERS not set");
            None
        }
    }
}

/// A log on fresh topics (4 partitions), created through the admin API.
async fn fresh_log(brokers: &str) -> KafkaMessageLog {
    let topic = format!("shoot-test-{}", base36(fresh_id()).to_lowercase());
    let config = KafkaConfig::new(brokers)
        .with_topic(topic)
        .with_instance("it");
    let log = KafkaMessageLog::new(config, Arc::new(MemorySeqs::default())).expect("log");
    log.ensure_topics(4).await.expect("ensure_topics");
    log.check().await.expect("check");
    log
}

fn message(room: RoomId) -> Message {
    let id = fresh_id();
    Message {
        temp_id: Some(format!("kafka-{id}").into()),
        status: MessageStatus::SentToKafka,
        ..Message::new(
            MessageId(id),
            room,
            UserId(7),
            format!("kafka test {id}"),
            wall_now(),
        )
    }
}

fn plain_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("plain producer")
}

/// Polls until `want` entries arrived or [`PATIENCE`] ran out.
async fn poll_n(consumer: &mut dyn LogConsumer, want: usize) -> Vec<LogEntry> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < want && start.elapsed() < PATIENCE {
        out.extend(
            consumer
                .poll(500, Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    out
}

/// Polls until a poll returns nothing.
async fn drain(consumer: &mut dyn LogConsumer) -> Vec<LogEntry> {
    let mut out = Vec::new();
    loop {
        let batch = consumer
            .poll(500, Duration::from_secs(3))
            .await
            .expect("poll");
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_log_contract_on_kafka() {
    let Some(brokers) = brokers() else { return };
    let log = fresh_log(&brokers).await;
    message_log_contract(&log, &TokioClock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_are_skipped() {
    let Some(brokers) = brokers() else { return };
    let log = fresh_log(&brokers).await;
    let topic = log.config().topic.clone();
    let room = RoomId(fresh_id());
    let key = room.0.to_string();
    let raw = plain_producer(&brokers);
    let poison = |body: &'static str| {
        let (raw, topic, key) = (&raw, &topic, &key);
        async move {
            raw.send(
                FutureRecord::to(topic).key(key.as_str()).payload(body),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .expect("produce poison");
        }
    };

    // valid, poison, valid, poison — all in the room's partition.
    let first = log.append(vec![message(room)]).await.expect("append");
    poison("this is not json").await;
    let second = log.append(vec![message(room)]).await.expect("append");
    poison(r#"{"type":"MESSAGE_DELETED","data":{}}"#).await;

    let group = format!("poison-{}", fresh_id());
    let mut c1 = log.consumer(&group).await.expect("consumer");
    let got = poll_n(c1.as_mut(), 2).await;
    let ids: Vec<MessageId> = got.iter().map(|e| e.message.id).collect();
    assert_eq!(
        ids,
        vec![first[0].id, second[0].id],
        "poison is never returned"
    );
    assert!(drain(c1.as_mut()).await.is_empty());
    c1.commit(&[got[1].position]).await.expect("commit");
    drop(c1);

    // The group is committed past both poison records.
    let mut c2 = log.consumer(&group).await.expect("consumer");
    let third = log.append(vec![message(room)]).await.expect("append");
    let after = poll_n(c2.as_mut(), 1).await;
    assert_eq!(
        after.iter().map(|e| e.message.id).collect::<Vec<_>>(),
        vec![third[0].id],
        "a new consumer resumes after the committed records and the poison"
    );
    assert!(drain(c2.as_mut()).await.is_empty());

    // Both poison records are in the DLQ with their payload and the error.
    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("dlq-reader-{}", fresh_id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("dlq consumer");
    dlq.subscribe(&[log.config().dlq_topic.as_str()])
        .expect("subscribe");
    let mut stream = dlq.stream();
    let mut dead: Vec<(Vec<u8>, String, String)> = Vec::new();
    let start = Instant::now();
    while dead.len() < 2 && start.elapsed() < PATIENCE {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await else {
            continue;
        };
        let m = m.expect("dlq record");
        let headers = m.headers().expect("dlq headers");
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        dead.push((
            m.payload().unwrap_or_default().to_vec(),
            header(HEADER_ERROR),
            header(HEADER_ORIGINAL_OFFSET),
        ));
        assert_eq!(
            m.key(),
            Some(key.as_bytes()),
            "the DLQ record keeps the key"
        );
    }
    assert_eq!(dead.len(), 2, "both poison records are dead-lettered");
    assert_eq!(dead[0].0, b"this is not json", "original payload kept");
    assert!(
        dead[0].1.contains("undecodable"),
        "error header: {}",
        dead[0].1
    );
    assert!(
        dead[1].1.contains("MESSAGE_DELETED"),
        "error header: {}",
        dead[1].1
    );
    assert!(dead.iter().all(|d| d.2.parse::<i64>().is_ok()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_new_consumer_resumes_after_the_commit() {
    let Some(brokers) = brokers() else { return };
    let log = fresh_log(&brokers).await;
    let room = RoomId(fresh_id());
    let sent = log
        .append((0..10).map(|_| message(room)).collect())
        .await
        .expect("append");
    let group = format!("resume-{}", fresh_id());
    let mut c1 = log.consumer(&group).await.expect("consumer");
    let got = poll_n(c1.as_mut(), 10).await;
    assert_eq!(got.len(), 10);
    c1.commit(&[got[4].position]).await.expect("commit");
    drop(c1);
    let mut c2 = log.consumer(&group).await.expect("consumer");
    let mut rest = poll_n(c2.as_mut(), 5).await;
    rest.extend(drain(c2.as_mut()).await);
    assert_eq!(
        rest.iter().map(|e| e.message.id).collect::<Vec<_>>(),
        sent[5..].iter().map(|m| m.id).collect::<Vec<_>>(),
        "exactly the records after the committed one, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_room_order_over_a_thousand_messages() {
    let Some(brokers) = brokers() else { return };
    let log = Arc::new(fresh_log(&brokers).await);
    let rooms: Vec<RoomId> = (0..7).map(|_| RoomId(fresh_id())).collect();
    // 50 concurrent appenders of 20-message batches mixing every room.
    let tasks = (0..50).map(|t| {
        let log = Arc::clone(&log);
        let rooms = rooms.clone();
        tokio::spawn(async move {
            let batch = (0..20)
                .map(|i| message(rooms[(t + i) % rooms.len()]))
                .collect();
            log.append(batch).await.expect("append")
        })
    });
    let appended: Vec<Message> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("task"))
        .collect();
    assert_eq!(appended.len(), 1000);
    let by_id: HashMap<MessageId, Seq> = appended.iter().map(|m| (m.id, m.seq)).collect();

    let group = format!("order-{}", fresh_id());
    let mut c = log.consumer(&group).await.expect("consumer");
    let got = poll_n(c.as_mut(), 1000).await;
    assert_eq!(got.len(), 1000, "every record is delivered");
    let mut per_room: HashMap<RoomId, Vec<i64>> = HashMap::new();
    for e in &got {
        assert_eq!(by_id.get(&e.message.id), Some(&e.message.seq));
        per_room
            .entry(e.message.room_id)
            .or_default()
            .push(e.message.seq.0);
    }
    assert_eq!(per_room.len(), rooms.len());
    for (room, seqs) in per_room {
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "room {room}: records in seq order without gaps"
        );
    }
    let unique: HashSet<MessageId> = got.iter().map(|e| e.message.id).collect();
    assert_eq!(unique.len(), 1000, "no record twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_fails_within_the_timeout() {
    // Nothing listens on port 1: every delivery times out.
    let config = KafkaConfig::new("127.0.0.1:1")
        .with_topic(format!("shoot-test-{}", fresh_id()))
        .with_message_timeout(Duration::from_secs(2));
    let log = KafkaMessageLog::new(config, Arc::new(MemorySeqs::default())).expect("log");
    let start = Instant::now();
    let err = log
        .append(vec![message(RoomId(fresh_id()))])
        .await
        .expect_err("append without a broker MUST fail");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "bounded by the message timeout, took {:?}",
        start.elapsed()
    );
    match &err {
        PortError::Backend { backend, .. } => assert_eq!(*backend, "kafka"),
        other => panic!("expected a kafka backend error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("not acknowledged"),
        "clear error: {err}"
    );
    let mut consumer = log.consumer("nobody").await.expect("consumer");
    let polled = consumer.poll(10, Duration::from_millis(300)).await;
    assert!(
        polled.map_or(true, |v| v.is_empty()),
        "no records without a broker"
    );
}

/// Informal: append rate of the log vs a plain idempotent FutureProducer (with one record
/// per batch like the log, and with default batching), each on a fresh topic with 64
/// concurrent single-record sends. Prints the figures; asserts only that every send worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_rate_vs_plain_producer() {
    let Some(brokers) = brokers() else { return };
    let n: usize = std::env::var("SHOOT_KAFKA_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let concurrency = 64;
    let log = Arc::new(fresh_log(&brokers).await);
    let rooms: Vec<RoomId> = (0..32).map(|_| RoomId(fresh_id())).collect();

    let start = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let (log, rooms) = (Arc::clone(&log), rooms.clone());
        tokio::spawn(async move {
            let mut i = w;
            while i < n {
                log.append(vec![message(rooms[i % rooms.len()])])
                    .await
                    .expect("append");
                i += concurrency;
            }
        })
    });
    for r in join_all(workers).await {
        r.expect("worker");
    }
    let log_rate = n as f64 / start.elapsed().as_secs_f64();

    let mut plain = Vec::new();
    for single in [true, false] {
        let topic_owner = fresh_log(&brokers).await;
        let topic = topic_owner.config().topic.clone();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("partitioner", "murmur2_random");
        if single {
            config.set("batch.num.messages", "1");
        }
        let raw: Arc<FutureProducer> = Arc::new(config.create().expect("plain producer"));
        let start = Instant::now();
        let workers = (0..concurrency).map(|w| {
            let (raw, rooms, topic) = (Arc::clone(&raw), rooms.clone(), topic.clone());
            tokio::spawn(async move {
                let mut i = w;
                while i < n {
                    let payload = serde_json::to_vec(&message(rooms[i % rooms.len()])).unwrap();
                    let key = rooms[i % rooms.len()].0.to_string();
                    raw.send(
                        FutureRecord::to(&topic).key(&key).payload(&payload),
                        Timeout::Never,
                    )
                    .await
                    .expect("plain send");
                    i += concurrency;
                }
            })
        });
        for r in join_all(workers).await {
            r.expect("worker");
        }
        plain.push(n as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "kafka append rate ({n} single-record appends, {concurrency} concurrent): \
         KafkaMessageLog {log_rate:.0}/s; plain idempotent FutureProducer: \
         one record per batch {:.0}/s, default batching {:.0}/s",
        plain[0], plain[1]
    );
}

/// A tansu broker started by this test on its own port, killed on drop.
struct OwnBroker {
    bin: std::path::PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    /// The tansu binary (`SHOOT_TEST_TANSU_BIN` or `~/.cargo/bin/tansu`), if present.
    fn binary() -> Option<std::path::PathBuf> {
        let bin = std::env::var_os("SHOOT_TEST_TANSU_BIN")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".cargo/bin/tansu"))
            })?;
        bin.is_file().then_some(bin)
    }

    fn start(bin: std::path::PathBuf) -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut broker = OwnBroker {
            bin,
            port,
            child: None,
        };
        broker.run();
        broker
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let child = std::process::Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(start.elapsed() < PATIENCE, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`STOP`/`CONT`) to the broker process.
    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("broker running")
            .id()
            .to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
        if signal == "STOP" {
            // `kill` returns once the signal is queued; the kernel wakes one thread to start
            // the group stop, and on a loaded machine the others run on (and may answer a
            // request) until it does. Wait until every thread is stopped.
            let start = Instant::now();
            while !all_threads_stopped(&pid) {
                assert!(start.elapsed() < PATIENCE, "broker {pid} did not stop");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether every thread of process `pid` is in the stopped state (`T` in `/proc`).
fn all_threads_stopped(pid: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("T")
        })
    })
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `f` until it succeeds or [`PATIENCE`] ran out.
async fn until_ok<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = PortResult<T>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() < PATIENCE => {
                println!("{what}: {e} (retrying)");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{what} did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_recover_after_a_broker_restart() {
    if brokers().is_none() {
        return;
    }
    let Some(bin) = OwnBroker::binary() else {
        println!("skipped: no tansu binary (SHOOT_TEST_TANSU_BIN or ~/.cargo/bin/tansu)");
        return;
    };
    let broker = OwnBroker::start(bin);
    let config = KafkaConfig::new(broker.addr())
        .with_topic(format!(
            "shoot-restart-{}",
            base36(fresh_id()).to_lowercase()
        ))
        .with_message_timeout(Duration::from_secs(3));
    let log = KafkaMessageLog::new(config, Arc::new(MemorySeqs::default())).expect("log");
    log.ensure_topics(1).await.expect("ensure_topics");
    let room = RoomId(fresh_id());
    let first = log.append(vec![message(room)]).await.expect("append");
    let mut consumer = log.consumer("restart").await.expect("consumer");
    let got = poll_n(consumer.as_mut(), 1).await;
    assert_eq!(got[0].message.id, first[0].id);
    consumer.commit(&[got[0].position]).await.expect("commit");

    // Broker unresponsive (process stopped): appends fail within the bounded timeout with a
    // kafka error, and polls return.
    broker.signal("STOP");
    let start = Instant::now();
    let err = log
        .append(vec![message(room)])
        .await
        .expect_err("append with the broker down MUST fail");
    let took = start.elapsed();
    println!("append with the broker stopped failed after {took:?}: {err}");
    assert!(
        took < Duration::from_secs(12),
        "bounded failure, took {took:?}"
    );
    assert!(matches!(
        err,
        PortError::Backend {
            backend: "kafka",
            ..
        }
    ));
    let polled = tokio::time::timeout(
        Duration::from_secs(15),
        consumer.poll(10, Duration::from_millis(500)),
    )
    .await
    .expect("poll returns while the broker is down");
    assert!(polled.map_or(true, |v| v.is_empty()));

    // Broker back: the same log and consumer work again by themselves.
    broker.signal("CONT");
    let again = until_ok("append after restart", || log.append(vec![message(room)])).await;
    let last = log.append(vec![message(room)]).await.expect("append");
    let start = Instant::now();
    let mut seen = Vec::new();
    while !seen.contains(&last[0].id) && start.elapsed() < PATIENCE {
        match consumer.poll(10, Duration::from_millis(500)).await {
            Ok(batch) => seen.extend(batch.iter().map(|e| e.message.id)),
            Err(e) => println!("poll after restart: {e} (retrying)"),
        }
    }
    assert!(
        seen.contains(&last[0].id),
        "the consumer receives records appended after the broker returned (saw {seen:?}, \
         appended {:?} then {:?})",
        again[0].id,
        last[0].id
    );
}
