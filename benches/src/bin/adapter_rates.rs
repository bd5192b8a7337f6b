//! Throughput of the distributed-stack adapters against the real services, next to a plain
//! client of the same service (see BENCHMARKS.md, "Adapters (distributed stack)").
//!
//! ```text
//! cargo run --release -p shoot-benches --bin adapter_rates -- redis-bus  [--scale F]
//! cargo run --release -p shoot-benches --bin adapter_rates -- kafka-log  [--scale F]
//! cargo run --release -p shoot-benches --bin adapter_rates -- pg-persist [--scale F]
//! ```
//!
//! - `redis-bus`: `RedisBus` publish (instance B) → delivery (subscriber on instance A), then
//!   `redis-benchmark` `XADD` (`-P 1` and `-P 16`, tiny and event-sized fields) in the same run.
//! - `kafka-log`: `KafkaMessageLog::append` (batches of 1 and 100; PostgreSQL and in-memory
//!   sequence allocators) vs a plain rdkafka `FutureProducer` with the same settings.
//! - `pg-persist`: `PostgresStore::insert_messages` with batches of 1, 100 and 500 (SQLite for
//!   reference).
//!
//! Every configuration is bounded by a message count and a time limit and prints messages/s.
//! Services (defaults): `SHOOT_BENCH_REDIS_URL` (`redis://127.0.0.1:6379`),
//! `SHOOT_BENCH_KAFKA_BROKERS` (`127.0.0.1:9092`, run `scripts/tansu`),
//! `SHOOT_BENCH_POSTGRES_URL` (`postgres://postgres@127.0.0.1:5432/test`). `--scale F`
//! multiplies every message count (e.g. `0.1` for a quick check). Keys, topics and schemas
//! are fresh per configuration; Redis keys and PostgreSQL schemas are deleted afterwards.

use std::collections::HashMap;
use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use shoot_core::events::{Event, Topic};
use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{Message, MessageStatus, MessageStore};
use shoot_core::ports::{EventBus, MessageLog, SequenceAllocator};
use shoot_core::time::Timestamp;
use shoot_core::{PortError, PortResult};
use shoot_kafka::{Envelope, KafkaConfig, KafkaMessageLog};
use shoot_redis::{Redis, RedisBusConfig};
use shoot_sql::{PostgresStore, SqliteStore};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "usage: adapter_rates (redis-bus | kafka-log | pg-persist) [--scale F]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut scale = 1.0_f64;
    let mut sub = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => match it.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(s) if s > 0.0 => scale = s,
                _ => {
                    eprintln!("--scale needs a positive number\n{USAGE}");
                    return ExitCode::FAILURE;
                }
            },
            "redis-bus" | "kafka-log" | "pg-persist" if sub.is_none() => sub = Some(a.clone()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(sub) = sub else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_conditions(&sub);
    let outcome = rt.block_on(async move {
        match sub.as_str() {
            "redis-bus" => redis_bus(scale).await,
            "kafka-log" => kafka_log(scale).await,
            _ => pg_persist(scale).await,
        }
    });
    print_load("end");
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("adapter_rates failed: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn print_load(when: &str) {
    println!("# load average at {when}: {}", load_average());
}

fn print_conditions(sub: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# adapter_rates {sub}: {cores} cores, unix time {}",
        unix_millis() / 1000
    );
    print_load("start");
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Ids unique across runs (time-based start, then counting).
fn next_id() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let _ = NEXT.compare_exchange(
        0,
        unix_millis() * 1_000_000,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Short lowercase unique suffix for keys, topics and schemas.
fn unique_suffix() -> String {
    format!("{:x}", next_id())
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

/// A TEXT message of a realistic size (~100 characters of text).
fn message(room: RoomId, sender: UserId, seq: i64) -> Message {
    let id = next_id();
    Message {
        seq: Seq(seq),
        temp_id: Some(format!("bench-{id}").into()),
        status: MessageStatus::SentToKafka,
        ..Message::new(
            MessageId(id),
            room,
            sender,
            format!(
                "benchmark message {id}: the quick brown fox jumps over the lazy dog, twice over."
            ),
            Timestamp(unix_millis()),
        )
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

// ---------------------------------------------------------------------------------------
// redis-bus
// ---------------------------------------------------------------------------------------

struct BusScenario {
    label: &'static str,
    topics: usize,
    publishers: usize,
    count: usize,
}

async fn redis_bus(scale: f64) -> BoxResult<()> {
    let url = env_or("SHOOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379");
    let scenarios = [
        BusScenario {
            label: "1 topic, 1 publisher",
            topics: 1,
            publishers: 1,
            count: scaled(20_000, scale),
        },
        BusScenario {
            label: "1 topic, 50 publishers",
            topics: 1,
            publishers: 50,
            count: scaled(200_000, scale),
        },
        BusScenario {
            label: "16 topics, 50 publishers",
            topics: 16,
            publishers: 50,
            count: scaled(200_000, scale),
        },
    ];
    let sample = Event::MessageCreated(message(RoomId(1), UserId(1), 1));
    let sample_json = serde_json::to_string(&sample)?;
    println!(
        "# RedisBus: default RedisBusConfig (16 shards, MAXLEN ~ 10000, XREAD COUNT 512), \
         event = MessageCreated, {} bytes of JSON",
        sample_json.len()
    );
    for s in &scenarios {
        bus_scenario(&url, s).await?;
    }
    redis_benchmark(&url, &sample_json).await?;
    Ok(())
}

/// Per topic: how many events arrived, the instant of the last one, and how many arrived
/// out of per-publisher order.
struct TopicTally {
    received: usize,
    last: Option<Instant>,
    reordered: usize,
}

async fn bus_scenario(url: &str, s: &BusScenario) -> BoxResult<()> {
    let namespace = format!("shoot-bench:{}", unique_suffix());
    let instance_a = Redis::connect_with_namespace(url, &namespace).await?;
    let instance_b = Redis::connect_with_namespace(url, &namespace).await?;
    let config = RedisBusConfig::default();
    let shards = config.shards;
    let bus_a = instance_a.bus(config.clone());
    let bus_b = Arc::new(instance_b.bus(config));
    let base = next_id();
    let rooms: Vec<RoomId> = (0..s.topics).map(|i| RoomId(base + i as i64)).collect();

    // Message i goes to topic i % topics, published by publisher i % publishers.
    let mut expected = vec![0_usize; s.topics];
    for i in 0..s.count {
        expected[i % s.topics] += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut subscribers = Vec::new();
    for (room, want) in rooms.iter().zip(&expected) {
        let mut stream = bus_a.subscribe(Topic::Room(*room)).await?;
        let want = *want;
        subscribers.push(tokio::spawn(async move {
            let mut tally = TopicTally {
                received: 0,
                last: None,
                reordered: 0,
            };
            let mut last_seq: HashMap<UserId, i64> = HashMap::new();
            while tally.received < want {
                let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
                let Ok(Some(event)) = next else { break };
                if let Event::MessageCreated(m) = &*event {
                    let prev = last_seq.insert(m.sender_id, m.seq.0).unwrap_or(0);
                    if m.seq.0 <= prev {
                        tally.reordered += 1;
                    }
                }
                tally.received += 1;
                tally.last = Some(Instant::now());
            }
            tally
        }));
    }

    let start = Instant::now();
    let publishers = (0..s.publishers).map(|p| {
        let (bus, rooms) = (Arc::clone(&bus_b), rooms.clone());
        let (count, publishers) = (s.count, s.publishers);
        tokio::spawn(async move {
            let sender = UserId(p as i64 + 1);
            let mut seq = 0;
            let mut i = p;
            while i < count && Instant::now() < deadline {
                let room = rooms[i % rooms.len()];
                seq += 1;
                let event = Event::MessageCreated(message(room, sender, seq));
                bus.publish(Topic::Room(room), event).await?;
                i += publishers;
            }
            PortResult::Ok(seq as usize)
        })
    });
    let mut published = 0;
    for r in join_all(publishers).await {
        published += r??;
    }
    let publish_time = start.elapsed();
    let mut received = 0;
    let mut reordered = 0;
    let mut last = start;
    for t in join_all(subscribers).await {
        let t = t?;
        received += t.received;
        reordered += t.reordered;
        if let Some(l) = t.last {
            last = last.max(l);
        }
    }
    let end_to_end = last.duration_since(start);
    println!(
        "redis-bus | {:<26} | published {published:>7} | publish {:>8.0} msg/s | \
         delivered {received:>7} ({} lost, {reordered} reordered) | end-to-end {:>8.0} msg/s \
         ({:.2} s)",
        s.label,
        rate(published, publish_time),
        published.saturating_sub(received),
        rate(received, end_to_end),
        end_to_end.as_secs_f64(),
    );
    let mut conn = instance_a.connection();
    let keys: Vec<String> = (0..shards)
        .map(|i| format!("{namespace}:bus:{i}"))
        .collect();
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<i64>(&mut conn)
        .await?;
    Ok(())
}

/// `redis-benchmark -n 200000 -c 50 -P {1,16} XADD …`, once with the tiny `f v` fields and
/// once with the bus's own command shape and an event-sized field.
async fn redis_benchmark(redis_url: &str, event_json: &str) -> BoxResult<()> {
    let host = env_or("SHOOT_BENCH_REDIS_HOST", "127.0.0.1");
    let port = env_or("SHOOT_BENCH_REDIS_PORT", "6379");
    let key = format!("bench-stream-{}", unique_suffix());
    let tiny: Vec<String> = ["XADD", &key, "*", "f", "v"].map(str::to_owned).to_vec();
    let sized: Vec<String> = [
        "XADD", &key, "MAXLEN", "~", "10000", "*", "t", "r:1", "e", event_json,
    ]
    .map(str::to_owned)
    .to_vec();
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    for (label, command) in [("XADD f v", &tiny), ("XADD MAXLEN ~ t e <event>", &sized)] {
        for pipeline in ["1", "16"] {
            let (host, port, command) = (host.clone(), port.clone(), command.clone());
            let output = tokio::task::spawn_blocking(move || {
                std::process::Command::new("redis-benchmark")
                    .args(["-h", &host, "-p", &port, "-n", "200000", "-c", "50"])
                    .args(["-P", pipeline, "-q"])
                    .args(&command)
                    .output()
            })
            .await??;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let summary = stdout
                .split(['\r', '\n'])
                .rfind(|l| l.contains("requests per second"))
                .map_or("(no summary line)", str::trim);
            // The command (echoed before the figure) may itself contain ": ".
            let figure = summary.rsplit_once(": ").map_or(summary, |(_, f)| f);
            println!("redis-benchmark | {label:<26} | -n 200000 -c 50 -P {pipeline:<2} | {figure}");
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// kafka-log
// ---------------------------------------------------------------------------------------

/// In-memory [`SequenceAllocator`] (what an allocator costs when it is free).
#[derive(Default)]
struct MemorySeqs(Mutex<HashMap<RoomId, i64>>);

#[async_trait]
impl SequenceAllocator for MemorySeqs {
    async fn allocate(&self, room: RoomId, count: u32) -> PortResult<Seq> {
        let mut seqs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let last = seqs.entry(room).or_insert(0);
        let first = *last + 1;
        *last += i64::from(count);
        Ok(Seq(first))
    }
}

const KAFKA_ROOMS: usize = 32;
const KAFKA_PARTITIONS: u32 = 4;
const KAFKA_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Appenders (or plain senders) running at once for a batch size: 64 single-record appends
/// in flight (many rooms' lanes at once), or 8 batches of 100.
fn kafka_concurrency(batch: usize) -> usize {
    if batch == 1 { 64 } else { 8 }
}

/// Messages per configuration: enough for several seconds at the rates seen on tansu.
fn kafka_count(batch: usize, one_record_per_batch: bool, scale: f64) -> usize {
    let n = match (batch, one_record_per_batch) {
        (1, true) => 20_000,
        (_, true) => 50_000,
        (1, false) => 50_000,
        (_, false) => 200_000,
    };
    scaled(n, scale)
}

async fn kafka_log(scale: f64) -> BoxResult<()> {
    let brokers = env_or("SHOOT_BENCH_KAFKA_BROKERS", "127.0.0.1:9092");
    let pg_url = env_or(
        "SHOOT_BENCH_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    let sample = serde_json::to_vec(&Envelope::message_created(
        message(RoomId(1), UserId(1), 1),
        "bench",
        unix_millis(),
    ))?;
    println!(
        "# Kafka: {KAFKA_PARTITIONS} partitions, fresh topic per configuration, {KAFKA_ROOMS} rooms \
         (keys), record = MESSAGE_CREATED envelope, {} bytes of JSON; a batch of 100 is one room's",
        sample.len()
    );
    for one_record_per_batch in [true, false] {
        for batch in [1, 100] {
            let allocators: Vec<&str> = if one_record_per_batch {
                vec!["memory", "postgres"]
            } else {
                vec!["memory"]
            };
            for allocator in allocators {
                log_append_run(
                    &brokers,
                    &pg_url,
                    allocator,
                    batch,
                    one_record_per_batch,
                    scale,
                )
                .await?;
            }
            plain_producer_run(&brokers, batch, one_record_per_batch, scale).await?;
        }
    }
    Ok(())
}

fn batching_label(one_record_per_batch: bool) -> &'static str {
    if one_record_per_batch {
        "1 record/batch"
    } else {
        "default batching"
    }
}

async fn log_append_run(
    brokers: &str,
    pg_url: &str,
    allocator: &str,
    batch: usize,
    one_record_per_batch: bool,
    scale: f64,
) -> BoxResult<()> {
    let schema = format!("shoot_bench_{}", unique_suffix());
    let pg = if allocator == "postgres" {
        Some(PostgresStore::connect_in_schema(pg_url, &schema).await?)
    } else {
        None
    };
    let seqs: Arc<dyn SequenceAllocator> = match &pg {
        Some(store) => Arc::new(store.clone()),
        None => Arc::new(MemorySeqs::default()),
    };
    let topic = format!("shoot-bench-{}", unique_suffix());
    let mut config = KafkaConfig::new(brokers)
        .with_topic(&topic)
        .with_instance("adapter-rates");
    config.one_record_per_batch = one_record_per_batch;
    let log = Arc::new(KafkaMessageLog::new(config, seqs)?);
    log.ensure_topics(KAFKA_PARTITIONS).await?;
    log.check().await?;
    let rooms: Arc<Vec<RoomId>> = Arc::new((0..KAFKA_ROOMS).map(|_| RoomId(next_id())).collect());
    // Warm-up: one append per room (connections, metadata, producer id, first allocation).
    for room in rooms.iter() {
        log.append(vec![message(*room, UserId(1), 0)]).await?;
    }
    let count = kafka_count(batch, one_record_per_batch, scale);
    let batches = count.div_ceil(batch);
    let next_batch = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + KAFKA_TIME_LIMIT;
    let workers = (0..kafka_concurrency(batch)).map(|_| {
        let (log, rooms, next_batch) = (
            Arc::clone(&log),
            Arc::clone(&rooms),
            Arc::clone(&next_batch),
        );
        tokio::spawn(async move {
            let mut appended = 0;
            loop {
                let b = next_batch.fetch_add(1, Ordering::Relaxed);
                if b >= batches || Instant::now() >= deadline {
                    return PortResult::Ok(appended);
                }
                let room = rooms[b % rooms.len()];
                let messages: Vec<Message> =
                    (0..batch).map(|_| message(room, UserId(1), 0)).collect();
                appended += log.append(messages).await?.len();
            }
        })
    });
    let mut appended = 0;
    for r in join_all(workers).await {
        appended += r??;
    }
    let elapsed = start.elapsed();
    println!(
        "kafka-log | KafkaMessageLog, {allocator:<8} seqs | {:<16} | batch {batch:>3} x {:>2} in flight | \
         {appended:>6} msgs in {:>6.2} s | {:>7.0} msg/s",
        batching_label(one_record_per_batch),
        kafka_concurrency(batch),
        elapsed.as_secs_f64(),
        rate(appended, elapsed),
    );
    if let Some(store) = pg {
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await?;
        store.close().await;
    }
    Ok(())
}

/// A plain rdkafka producer with the adapter's producer settings.
fn plain_producer(brokers: &str, one_record_per_batch: bool) -> BoxResult<FutureProducer> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "adapter-rates-plain")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000")
        .set("socket.timeout.ms", "10000")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "2")
        .set("partitioner", "murmur2_random");
    if one_record_per_batch {
        c.set("batch.num.messages", "1");
    }
    Ok(c.create()?)
}

async fn plain_producer_run(
    brokers: &str,
    batch: usize,
    one_record_per_batch: bool,
    scale: f64,
) -> BoxResult<()> {
    // The topic is created through the adapter's admin call, like the log's.
    let topic = format!("shoot-bench-{}", unique_suffix());
    let owner = KafkaMessageLog::new(
        KafkaConfig::new(brokers).with_topic(&topic),
        Arc::new(MemorySeqs::default()),
    )?;
    owner.ensure_topics(KAFKA_PARTITIONS).await?;
    let producer = Arc::new(plain_producer(brokers, one_record_per_batch)?);
    let rooms: Arc<Vec<RoomId>> = Arc::new((0..KAFKA_ROOMS).map(|_| RoomId(next_id())).collect());
    // Same payload as the log's records: an envelope per message, encoded when sent.
    let encode = |room: RoomId| -> BoxResult<Vec<u8>> {
        Ok(serde_json::to_vec(&Envelope::message_created(
            message(room, UserId(1), 1),
            "adapter-rates",
            unix_millis(),
        ))?)
    };
    for room in rooms.iter() {
        let payload = encode(*room)?;
        let key = room.0.to_string();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let count = kafka_count(batch, one_record_per_batch, scale);
    let batches = count.div_ceil(batch);
    let next_batch = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + KAFKA_TIME_LIMIT;
    let workers = (0..kafka_concurrency(batch)).map(|_| {
        let (producer, rooms, next_batch, topic) = (
            Arc::clone(&producer),
            Arc::clone(&rooms),
            Arc::clone(&next_batch),
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                let b = next_batch.fetch_add(1, Ordering::Relaxed);
                if b >= batches || Instant::now() >= deadline {
                    return BoxResult::Ok(sent);
                }
                let room = rooms[b % rooms.len()];
                let key = room.0.to_string();
                let mut deliveries = Vec::with_capacity(batch);
                for _ in 0..batch {
                    let payload = encode(room)?;
                    loop {
                        let record = FutureRecord::<str, [u8]>::to(&topic)
                            .key(&key)
                            .payload(&payload);
                        match producer.send_result(record) {
                            Ok(d) => break deliveries.push(d),
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                _,
                            )) => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Err((e, _)) => return Err(e.into()),
                        }
                    }
                }
                for d in join_all(deliveries).await {
                    match d {
                        Ok(Ok(_)) => sent += 1,
                        Ok(Err((e, _))) => return Err(e.into()),
                        Err(_) => return Err("delivery canceled".into()),
                    }
                }
            }
        })
    });
    let mut sent = 0;
    for r in join_all(workers).await {
        sent += r??;
    }
    let elapsed = start.elapsed();
    println!(
        "kafka-log | plain FutureProducer           | {:<16} | batch {batch:>3} x {:>2} in flight | \
         {sent:>6} msgs in {:>6.2} s | {:>7.0} msg/s",
        batching_label(one_record_per_batch),
        kafka_concurrency(batch),
        elapsed.as_secs_f64(),
        rate(sent, elapsed),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// pg-persist
// ---------------------------------------------------------------------------------------

const PERSIST_ROOMS: i64 = 16;
const PERSIST_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Inserts `count` messages with `writers` concurrent writers, `batch` per
/// `insert_messages` call; returns (inserted, elapsed).
async fn persist(
    store: Arc<dyn MessageStore>,
    batch: usize,
    writers: usize,
    count: usize,
) -> BoxResult<(usize, Duration)> {
    let base_room = next_id();
    let next_seq = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + PERSIST_TIME_LIMIT;
    let tasks = (0..writers).map(|_| {
        let (store, next_seq) = (Arc::clone(&store), Arc::clone(&next_seq));
        tokio::spawn(async move {
            let mut inserted = 0;
            while Instant::now() < deadline {
                let first = next_seq.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    break;
                }
                let n = batch.min(count - first);
                // Seqs are unique overall, so (room, seq) is unique whatever the room.
                let messages: Vec<Message> = (first..first + n)
                    .map(|i| {
                        let room = RoomId(base_room + (i as i64 % PERSIST_ROOMS));
                        message(room, UserId(1 + (i as i64 % 8)), i as i64 + 1)
                    })
                    .collect();
                inserted += store.insert_messages(&messages).await?.len();
            }
            Result::<usize, PortError>::Ok(inserted)
        })
    });
    let mut inserted = 0;
    for r in join_all(tasks).await {
        inserted += r??;
    }
    Ok((inserted, start.elapsed()))
}

fn persist_count(batch: usize, scale: f64) -> usize {
    if batch == 1 {
        scaled(5_000, scale)
    } else {
        scaled(50_000, scale)
    }
}

async fn pg_persist(scale: f64) -> BoxResult<()> {
    let pg_url = env_or(
        "SHOOT_BENCH_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    );
    println!(
        "# insert_messages: fresh schema / database per configuration, {PERSIST_ROOMS} rooms, \
         messages with ~100 characters of text; limit {} s per configuration",
        PERSIST_TIME_LIMIT.as_secs()
    );
    let configs = [(1, 1), (100, 1), (500, 1), (1, 8)];
    for (batch, writers) in configs {
        let schema = format!("shoot_bench_{}", unique_suffix());
        let store = PostgresStore::connect_in_schema(&pg_url, &schema).await?;
        let (inserted, elapsed) = persist(
            Arc::new(store.clone()),
            batch,
            writers,
            persist_count(batch, scale),
        )
        .await?;
        report_persist("PostgresStore", batch, writers, inserted, elapsed);
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await?;
        store.close().await;
    }
    for (batch, writers) in configs {
        let path = std::env::temp_dir().join(format!("shoot-bench-{}.sqlite", unique_suffix()));
        let path_str = path.to_string_lossy().into_owned();
        let store = SqliteStore::open(&path_str).await?;
        let (inserted, elapsed) = persist(
            Arc::new(store.clone()),
            batch,
            writers,
            persist_count(batch, scale),
        )
        .await?;
        report_persist("SqliteStore", batch, writers, inserted, elapsed);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path_str}{suffix}"));
        }
    }
    Ok(())
}

fn report_persist(store: &str, batch: usize, writers: usize, inserted: usize, elapsed: Duration) {
    println!(
        "pg-persist | {store:<13} | batch {batch:>3} | {writers} writer(s) | {inserted:>6} msgs in \
         {:>6.2} s | {:>7.0} msg/s",
        elapsed.as_secs_f64(),
        rate(inserted, elapsed),
    );
}
