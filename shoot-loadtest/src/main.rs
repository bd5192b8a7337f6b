//! `shoot-loadtest`: see `--help`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use shoot_loadtest::args::Args;
use shoot_loadtest::bigroom;
use shoot_loadtest::client::{Kind, Target, parse_addr};
use shoot_loadtest::scenarios::{self, Env, Traffic};
use shoot_loadtest::setup::Rest;
use shoot_loadtest::stats::Stats;
use shoot_loadtest::sys;

mod soak;

const HELP: &str = "\
shoot-loadtest SCENARIO [options]   — STOMP 1.2 over WebSocket load tool (loopback targets only)

Scenarios:
  idle       N connections, 2 subscriptions each, heart-beats; connect rate, server RSS and
             socket memory per connection (--clients 2000 --room-size 10)
  fanout     rooms of --room-size members + one personal queue per client, --rate msg/s total;
             deliveries/s, latency, losses, server CPU per delivery (--clients 200 --rate 1000)
  durable    like fanout with a RECEIPT per SEND and /user/queue/message-status:
             SEND→RECEIPT and SEND→SAVED (--clients 20 --rate 1000); rabbitmq: persistent
             SENDs into durable subscription queues, RECEIPT = publisher confirm
  bigroom    one room of --clients subscribers, --rate msg/s (default 1); time to last recipient;
             --processes N spreads the subscribers over N child processes (each under its
             own open-file limit), several --addr are instances of one cluster
  soak       fanout with RECEIPTs plus --churn reconnections/s, alternately abrupt and with
             DISCONNECT; fails on any ERROR, FAILED receipt, duplicate or reordered delivery
             (Shoot only; scripts/soak samples the server around it)
  reconnect  everyone drops, misses --missed messages per room, reconnects at once and resyncs
             with /app/sync (Shoot only); time to resync, gaps, duplicates

Options (defaults in brackets):
  --target shoot|rabbitmq     destination scheme preset [shoot]
  --addr HOST:PORT[,…]        server [127.0.0.1:8100; rabbitmq 127.0.0.1:15674]; with several,
                              connection i goes to the (i mod n)th and REST to the first
  --ws-path PATH              WebSocket path [/ws/chat; rabbitmq /ws]
  --duration SECS             measured phase [10]
  --clients N  --room-size N  --rate MSG_PER_S
  --receipts true|false       RECEIPT on fanout SENDs [true for shoot]
  --personal-queue NAME       Shoot personal queue /user/queue/NAME [errors; idle: notifications]
  --churn N                   soak: reconnections per second [5]
  --before N --missed N       reconnect: messages per room seen / missed [2 / 5]
  --concurrency N             concurrent connects and REST calls [200]
  --spread N                  127.0.0.x source addresses [32]
  --heartbeat MS              heart-beat both ways [10000]
  --server-pid PID[,…]        read the server's RSS and CPU from /proc (summed over several)
  --processes N               bigroom: subscriber processes [1]
  --run-id ID                 username run id (users are {prefix}{run}_{i}) [from the clock]
  --user-prefix P             [lt]
  --login USER --passcode PW  rabbitmq credentials [guest/guest]
  --threads N                 tool runtime threads [1]

Shoot server for load: SHOOT_LIMITS_MESSAGES_PER_SECOND=0 (no per-user rate limit),
SHOOT_PASSWORD_MEMORY_KIB=8 SHOOT_PASSWORD_ITERATIONS=1 (cheap set-up), and for bigroom
SHOOT_LIMITS_GROUP_MAX_MEMBERS above --clients.

(`bigroom-part --room ID --from A --to B [--tokens FILE]` is the child process of
`bigroom --processes`; see the bigroom module.)";

fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = secs % 36u64.pow(5);
    let mut s = Vec::new();
    for _ in 0..5 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

fn main() -> Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    let Some(command) = args.command.clone() else {
        println!("{HELP}");
        return Ok(());
    };
    if command == "help" || args.has("help") {
        println!("{HELP}");
        return Ok(());
    }
    let kind = match args.opt("target").as_deref().unwrap_or("shoot") {
        "shoot" => Kind::Shoot,
        "rabbitmq" | "rabbit" => Kind::Rabbit,
        other => bail!("--target {other:?}: expected shoot or rabbitmq"),
    };
    let (def_addr, def_path) = match kind {
        Kind::Shoot => ("127.0.0.1:8100", "/ws/chat"),
        Kind::Rabbit => ("127.0.0.1:15674", "/ws"),
    };
    let addrs = args
        .opt("addr")
        .unwrap_or_else(|| def_addr.to_owned())
        .split(',')
        .map(|a| parse_addr(a.trim()))
        .collect::<Result<Vec<_>>>()?;
    let rest_addr = addrs[0];
    let target = Target {
        kind,
        addrs,
        ws_path: args.opt("ws-path").unwrap_or_else(|| def_path.to_owned()),
        spread: args.get("spread", 32u8)?,
        heartbeat_ms: args.get("heartbeat", 10_000u64)?,
        login: (
            args.opt("login").unwrap_or_else(|| "guest".into()),
            args.opt("passcode").unwrap_or_else(|| "guest".into()),
        ),
        persistent: command == "durable",
    };
    target.validate()?;
    let threads: usize = args.get("threads", 1)?;
    let concurrency: usize = args.get("concurrency", 200)?;
    let duration = Duration::from_secs_f64(args.get("duration", 10.0f64)?.clamp(0.1, 3600.0));
    let server_pids: Vec<u32> = match args.opt("server-pid") {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().parse())
            .collect::<Result<_, _>>()
            .context("--server-pid")?,
        None => Vec::new(),
    };
    let prefix = format!(
        "{}{}_",
        args.opt("user-prefix").unwrap_or_else(|| "lt".into()),
        args.opt("run-id").unwrap_or_else(run_id)
    );
    let default_queue = if command == "idle" {
        "notifications"
    } else {
        "errors"
    };
    let personal_queue = args
        .opt("personal-queue")
        .unwrap_or_else(|| default_queue.into());
    let room_size: usize = args.get("room-size", 10)?;
    let (def_clients, def_rate) = match command.as_str() {
        "idle" => (2000, 0.0),
        "durable" => (20, 1000.0),
        "bigroom" => (1000, 1.0),
        "reconnect" => (1000, 0.0),
        _ => (200, 1000.0),
    };
    let clients: usize = args.get("clients", def_clients)?;
    let rate: f64 = args.get("rate", def_rate)?;
    let receipts: bool = args.get("receipts", kind == Kind::Shoot)?;
    let before: u64 = args.get("before", 2)?;
    let missed: u64 = args.get("missed", 5)?;
    let churn: f64 = args.get("churn", 5.0)?;
    let processes: usize = args.get("processes", 1)?;
    let part_room = args.opt("room");
    let part_range: (usize, usize) = (args.get("from", 0)?, args.get("to", 0)?);
    let part_tokens = args.opt("tokens");
    args.reject_unknown()?;
    if clients == 0 || clients > 1_000_000 {
        bail!("--clients must be 1..=1000000");
    }

    let nofile = sys::raise_nofile();
    let mut rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if threads > 1 {
        rt.worker_threads(threads);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let rest = if kind == Kind::Shoot { Some(Rest::new(rest_addr, concurrency)?) } else { None };
        let env = Env { target, stats: Stats::new(), server_pids, duration, concurrency, prefix, rest, personal_queue };
        let addrs: Vec<String> = env.target.addrs.iter().map(|a| a.to_string()).collect();
        println!(
            "shoot-loadtest {command}: target {:?} at {} ({}), open-file limit {nofile}, users {}*, {threads} thread(s)",
            env.target.kind, addrs.join(","), env.target.ws_path, env.prefix
        );
        let started = std::time::Instant::now();
        let run = async {
            match command.as_str() {
                "idle" => scenarios::idle(&env, clients, room_size).await,
                "fanout" => scenarios::traffic(&env, "fanout", Traffic { clients, room_size, rate, receipts, status: false }).await,
                "durable" => scenarios::traffic(&env, "durable", Traffic { clients, room_size, rate, receipts: true, status: true }).await,
                "bigroom" => bigroom::run(&env, clients, rate, processes).await,
                "bigroom-part" => {
                    let room = part_room.context("bigroom-part needs --room")?;
                    bigroom::part(&env, &room, part_range.0, part_range.1, part_tokens.as_deref()).await
                }
                "soak" => soak::run(&env, soak::Soak { clients, room_size, rate, churn }).await,
                "reconnect" => scenarios::reconnect(&env, clients, room_size, before, missed).await,
                other => bail!("unknown scenario {other:?} (see --help)"),
            }
        };
        // Every phase is bounded on its own; this is the overall backstop.
        let limit = duration * 4 + Duration::from_secs(600);
        match tokio::time::timeout(limit, run).await {
            Ok(r) => r?,
            Err(_) => bail!("gave up after {limit:?}"),
        }
        println!("done in {:.1}s", started.elapsed().as_secs_f64());
        Ok(())
    })
}
