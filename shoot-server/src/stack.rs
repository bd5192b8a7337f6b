//! Backend wiring: which adapter serves which port, from [`Config`].
//!
//! | port | `sqlite` (default) | `postgres` | `mongodb` |
//! |---|---|---|---|
//! | users, social, bookmarks, schedules, notifications | SQLite | PostgreSQL | PostgreSQL |
//! | rooms, messages | SQLite | PostgreSQL | MongoDB |
//!
//! The log is the embedded SQLite log under the data directory (`SHOOT_LOG=local`) or Kafka
//! (`SHOOT_LOG=kafka`, sequence numbers allocated by PostgreSQL). Bus, locks and ephemeral
//! state are in-process (`local`) or Redis, each chosen on its own; a cluster
//! (`SHOOT_BUS=redis`) needs all three on Redis and Kafka (enforced by [`Config`]).
//!
//! Every configured backend is reached once at start-up (an unreachable one is a one-line
//! error) and gets a named readiness probe for `/ready`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use futures::FutureExt;
use futures::future::BoxFuture;
use shoot_core::engine::Ports;
use shoot_core::identity::UserStore;
use shoot_core::memory::{MemoryStores, SnowflakeIds};
use shoot_core::messages::Message;
use shoot_core::ports::{Clock, LogConsumer, LogEntry, MessageLog, Spawner};
use shoot_core::{PortResult, RoomId, Seq, UserId};
use shoot_kafka::{KafkaConfig, KafkaMessageLog};
use shoot_mongodb::MongoStore;
use shoot_redis::{Redis, RedisBusConfig};
use shoot_sql::{PostgresStore, SqliteMessageLog, SqliteStore};
use shoot_tokio::{TokioClock, TokioSpawner};

use crate::config::{Config, LogKind, SharedKind, StorageKind};

/// How long start-up waits for one backend before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

type ProbeFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Named readiness probes of the configured backends (cheap to clone).
#[derive(Clone, Default)]
pub struct Readiness {
    probes: Vec<(&'static str, ProbeFn)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.probes.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Readiness {
    fn add<F, Fut>(&mut self, name: &'static str, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.probes.push((name, Arc::new(move || probe().boxed())));
    }

    /// The backend names, in probe order.
    pub fn names(&self) -> Vec<&'static str> {
        self.probes.iter().map(|(n, _)| *n).collect()
    }

    /// Runs every probe concurrently, each bounded by `timeout`: `(name, Err(reason))` for
    /// a backend that failed or did not answer in time.
    pub async fn check(&self, timeout: Duration) -> Vec<(&'static str, Result<(), String>)> {
        let runs = self.probes.iter().map(|(name, probe)| {
            let fut = probe();
            async move {
                let result = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err("timed out".to_owned()),
                };
                (*name, result)
            }
        });
        futures::future::join_all(runs).await
    }
}

/// The ports of a configured stack and the readiness probes of its backends.
pub struct Stack {
    /// Every port (link fetcher not set).
    pub ports: Ports,
    /// One probe per configured backend.
    pub readiness: Readiness,
}

fn port_probe<T>(r: PortResult<T>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

async fn connecting<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow::anyhow!("cannot connect to {what}: {e}")),
        Err(_) => Err(anyhow::anyhow!(
            "cannot connect to {what}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

fn sql_probe<S: UserStore + Clone>(
    store: &S,
) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
    let store = store.clone();
    move || {
        let store = store.clone();
        async move { port_probe(store.get_user(UserId(0)).await) }.boxed()
    }
}

/// Connects every configured backend and assembles the ports. In-memory ports fill what
/// the configuration leaves local.
pub async fn build_stack(config: &Config) -> anyhow::Result<Stack> {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock);
    let spawner: Arc<dyn Spawner> = Arc::new(TokioSpawner::current());
    let memory = MemoryStores::new(clock.clone());
    let mut ports = memory.ports(clock.clone(), spawner);
    ports.ids = Arc::new(SnowflakeIds::new(
        clock.clone(),
        config
            .node_id
            .unwrap_or_else(|| crate::server::node_id(&config.instance_id)),
    ));
    let mut readiness = Readiness::default();

    let postgres = match config.storage {
        StorageKind::Memory => None,
        StorageKind::Sqlite => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("cannot create data directory {}", config.data_dir.display())
            })?;
            let db = config.data_dir.join("shoot.sqlite");
            let store = SqliteStore::open(&db.to_string_lossy())
                .await
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", db.display()))?;
            readiness.add("sqlite", sql_probe(&store));
            let store = Arc::new(store);
            ports.users = store.clone();
            ports.social = store.clone();
            ports.rooms = store.clone();
            ports.messages = store.clone();
            ports.bookmarks = store.clone();
            ports.schedules = store.clone();
            ports.notifications = store;
            None
        }
        StorageKind::Postgres | StorageKind::Mongodb => {
            let url = config
                .postgres_url
                .as_deref()
                .context("SHOOT_POSTGRES_URL is required")?;
            let store = match config.postgres_schema.as_deref() {
                Some(schema) => {
                    connecting("PostgreSQL", PostgresStore::connect_in_schema(url, schema)).await?
                }
                None => connecting("PostgreSQL", PostgresStore::connect(url)).await?,
            };
            readiness.add("postgres", sql_probe(&store));
            let store = Arc::new(store);
            ports.users = store.clone();
            ports.social = store.clone();
            ports.rooms = store.clone();
            ports.messages = store.clone();
            ports.bookmarks = store.clone();
            ports.schedules = store.clone();
            ports.notifications = store.clone();
            Some(store)
        }
    };
    if config.storage == StorageKind::Mongodb {
        wire_mongodb(config, &mut ports, &mut readiness).await?;
    }

    match config.log {
        LogKind::Local => {
            if config.storage != StorageKind::Memory {
                let log = open_local_log(config).await?;
                let probe = log.clone();
                readiness.add("log", move || {
                    let log = probe.clone();
                    async move { port_probe(log.retained_records().await) }
                });
                ports.log = Arc::new(log);
            }
        }
        LogKind::Kafka => {
            let sequences = postgres
                .clone()
                .context("SHOOT_LOG=kafka needs PostgreSQL storage")?;
            wire_kafka(config, sequences, &mut ports, &mut readiness).await?;
        }
    }

    let uses_redis = [config.bus, config.locks, config.ephemeral].contains(&SharedKind::Redis);
    if uses_redis {
        let url = config
            .redis_url
            .as_deref()
            .context("SHOOT_REDIS_URL is required")?;
        let redis = connecting(
            "Redis",
            Redis::connect_with_namespace(url, &config.redis_namespace),
        )
        .await?;
        let probe = redis.clone();
        readiness.add("redis", move || {
            let mut conn = probe.connection();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
        if config.bus == SharedKind::Redis {
            ports.bus = Arc::new(redis.bus(RedisBusConfig::default()));
        }
        if config.locks == SharedKind::Redis {
            ports.locks = Arc::new(redis.locks());
        }
        if config.ephemeral == SharedKind::Redis {
            ports.ephemeral = Arc::new(redis.ephemeral());
            if config.node_id.is_none() {
                let node = lease_node_id(ports.ephemeral.clone(), &config.instance_id).await?;
                ports.ids = Arc::new(SnowflakeIds::new(clock.clone(), node));
            }
        }
    }
    tracing::info!(
        instance = %config.instance_id,
        storage = ?config.storage,
        log = ?config.log,
        bus = ?config.bus,
        locks = ?config.locks,
        ephemeral = ?config.ephemeral,
        backends = ?readiness.names(),
        "stack wired"
    );
    Ok(Stack { ports, readiness })
}

/// How long a leased snowflake node stays reserved without a refresh.
const NODE_LEASE: Duration = Duration::from_secs(60);

/// Leases a snowflake node id no other live instance of the cluster holds, and keeps the
/// lease fresh for the life of the process. Two instances with one node id could mint the
/// same message id, and an idempotent insert would then drop one of the two messages.
async fn lease_node_id(
    ephemeral: Arc<dyn shoot_core::ports::EphemeralStore>,
    instance_id: &str,
) -> anyhow::Result<u16> {
    let first = crate::server::node_id(instance_id);
    let slots = SnowflakeIds::MAX_NODE + 1;
    for i in 0..slots {
        let node = (first + i) % slots;
        let key = format!("snowflake-node:{node}");
        let holder = ephemeral
            .set_if_absent(&key, instance_id, Some(NODE_LEASE))
            .await
            .map_err(|e| anyhow::anyhow!("cannot lease a snowflake node id: {e}"))?;
        if holder.is_none() {
            let instance = instance_id.to_owned();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(NODE_LEASE / 4).await;
                    if let Err(e) = ephemeral.set(&key, &instance, Some(NODE_LEASE)).await {
                        tracing::warn!(node, error = %e, "refreshing the snowflake node lease failed");
                    }
                }
            });
            tracing::info!(node, "snowflake node leased");
            return Ok(node);
        }
    }
    anyhow::bail!(
        "every snowflake node id (0–{}) is leased by a live instance",
        slots - 1
    )
}

async fn open_local_log(config: &Config) -> anyhow::Result<SqliteMessageLog> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("log.sqlite");
    SqliteMessageLog::open(&path.to_string_lossy())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the message log {}: {e}", path.display()))
}

/// Rooms and messages on MongoDB (the rest stays on PostgreSQL).
async fn wire_mongodb(
    config: &Config,
    ports: &mut Ports,
    readiness: &mut Readiness,
) -> anyhow::Result<()> {
    let url = config
        .mongodb_url
        .as_deref()
        .context("SHOOT_MONGODB_URL is required")?;
    let store = connecting(
        "MongoDB",
        MongoStore::connect(url, &config.mongodb_database),
    )
    .await?;
    // The driver connects lazily: make sure the server answers now.
    connecting("MongoDB", store.ping()).await?;
    let probe = store.clone();
    readiness.add("mongodb", move || {
        let store = probe.clone();
        async move { port_probe(store.ping().await) }
    });
    let store = Arc::new(store);
    ports.rooms = store.clone();
    ports.messages = store;
    Ok(())
}

/// The message log on Kafka, numbered by PostgreSQL.
async fn wire_kafka(
    config: &Config,
    sequences: Arc<PostgresStore>,
    ports: &mut Ports,
    readiness: &mut Readiness,
) -> anyhow::Result<()> {
    let brokers = config
        .kafka_brokers
        .as_deref()
        .context("SHOOT_KAFKA_BROKERS is required")?;
    let kafka_config = KafkaConfig::new(brokers)
        .with_topic(config.kafka_topic.clone())
        .with_instance(config.instance_id.clone());
    let log = KafkaMessageLog::new(kafka_config, sequences)
        .map_err(|e| anyhow::anyhow!("invalid Kafka configuration: {e}"))?;
    connecting("Kafka", log.ensure_topics(config.kafka_partitions)).await?;
    connecting("Kafka", log.check()).await?;
    let probe = log.clone();
    readiness.add("kafka", move || {
        let log = probe.clone();
        async move { port_probe(log.check().await) }
    });
    ports.log = Arc::new(TopicScopedGroups {
        prefix: config.kafka_topic.clone(),
        inner: log,
    });
    Ok(())
}

/// Names consumer groups after the log topic (`{topic}.{group}`, e.g.
/// `chat-messages.persistence`): deployments sharing a Kafka cluster with different topics
/// then never share a group, so one deployment's members joining or dying never pauses the
/// other's consumption for a rebalance.
struct TopicScopedGroups {
    prefix: String,
    inner: KafkaMessageLog,
}

#[async_trait]
impl MessageLog for TopicScopedGroups {
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>> {
        self.inner.append(batch).await
    }

    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>> {
        self.inner
            .consumer(&format!("{}.{group}", self.prefix))
            .await
    }

    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()> {
        self.inner.dead_letter(entry, reason).await
    }

    async fn durable_seq(&self, room: RoomId) -> PortResult<Option<Seq>> {
        self.inner.durable_seq(room).await
    }

    async fn durable_seqs(&self, rooms: &[RoomId]) -> PortResult<Vec<(RoomId, Seq)>> {
        self.inner.durable_seqs(rooms).await
    }
}
