//! One STOMP-over-WebSocket client connection: TCP from a chosen 127.0.0.x source address,
//! the WebSocket handshake, CONNECT, SUBSCRIBEs (confirmed by a RECEIPT), then a reader task
//! feeding a handler and a writer task that batches outgoing frames and sends heart-beats.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::frame::{Frame, FrameBuilder, parse_frames};
use crate::stats::Stats;

/// Which server the destinations and authentication are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Shoot: `/app/chat`, `/topic/messages/{roomId}`, JWT from REST.
    Shoot,
    /// RabbitMQ Web-STOMP: `/topic/room.{n}`, guest/guest.
    Rabbit,
}

impl Kind {
    /// The `--target` value that selects this kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shoot => "shoot",
            Kind::Rabbit => "rabbitmq",
        }
    }
}

/// The server under test.
#[derive(Clone, Debug)]
pub struct Target {
    /// Destination scheme.
    pub kind: Kind,
    /// Server addresses (loopback; at least one): connection `i` goes to
    /// `addrs[i % addrs.len()]`, REST set-up to the first. Several addresses are several
    /// instances of one Shoot cluster.
    pub addrs: Vec<SocketAddr>,
    /// WebSocket path (`/ws/chat`, RabbitMQ `/ws`).
    pub ws_path: String,
    /// Number of 127.0.0.x source addresses connections are spread over.
    pub spread: u8,
    /// Heart-beat interval both ways (ms; 0 = none).
    pub heartbeat_ms: u64,
    /// Login for RabbitMQ.
    pub login: (String, String),
    /// RabbitMQ only (the `durable` scenario): room subscriptions are durable queues and
    /// SENDs are `persistent`, so a SEND's RECEIPT (RabbitMQ sends it on the publisher
    /// confirm) means the message is on disk in every member's queue, as Shoot's RECEIPT
    /// means it is in the durable log.
    pub persistent: bool,
}

/// How long RabbitMQ keeps an unused durable subscription queue of the `durable` scenario
/// (`x-expires`), so that runs do not leave queues behind on the broker.
pub const RABBIT_DURABLE_QUEUE_TTL_MS: u64 = 60_000;

impl Target {
    /// Checks the address is on this machine's loopback range.
    pub fn validate(&self) -> Result<()> {
        if self.addrs.is_empty() {
            bail!("no server address");
        }
        if let Some(a) = self.addrs.iter().find(|a| !a.ip().is_loopback()) {
            bail!("refusing to load {a}: only 127.0.0.0/8 or ::1 targets are allowed");
        }
        Ok(())
    }

    /// The server connection `i` goes to.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// Where room `room_id`'s messages are delivered.
    pub fn room_topic(&self, room_id: &str) -> String {
        match self.kind {
            Kind::Shoot => format!("/topic/messages/{room_id}"),
            Kind::Rabbit => format!("/topic/room.{room_id}"),
        }
    }

    /// The per-client personal queue.
    pub fn personal_queue(&self, client: usize, shoot_queue: &str) -> String {
        match self.kind {
            Kind::Shoot => format!("/user/queue/{shoot_queue}"),
            Kind::Rabbit => format!("/queue/user.{client}"),
        }
    }

    /// A SEND of `text` to room `room_id`.
    pub fn send_frame(
        &self,
        room_id: &str,
        text: &str,
        temp_id: &str,
        receipt: Option<&str>,
    ) -> String {
        let body = serde_json::json!({"roomId": room_id, "content": text, "tempId": temp_id, "type": "TEXT"}).to_string();
        let dest = match self.kind {
            Kind::Shoot => "/app/chat".to_owned(),
            Kind::Rabbit => self.room_topic(room_id),
        };
        let mut f = FrameBuilder::new("SEND")
            .header("destination", &dest)
            .header("content-type", "application/json");
        if self.kind == Kind::Rabbit && self.persistent {
            f = f.header("persistent", "true");
        }
        if let Some(r) = receipt {
            f = f.header("receipt", r);
        }
        f.body(&body)
    }

    /// The source address of connection `i`.
    pub fn local_ip(&self, i: usize) -> IpAddr {
        if self.addr(i).is_ipv6() {
            return IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        }
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (i % usize::from(self.spread.max(1))) as u8,
        ))
    }
}

/// How a client authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer` in CONNECT (Shoot).
    Bearer(String),
    /// `login` / `passcode` (RabbitMQ).
    Login(String, String),
}

/// A frame to write.
#[derive(Debug)]
pub enum Out {
    /// A text WebSocket message (one STOMP frame).
    Frame(String),
}

/// A live connection: its writer channel and tasks.
pub struct Conn {
    /// Frames to send.
    pub tx: mpsc::UnboundedSender<Out>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Conn {
    /// Drops the connection abruptly (no DISCONNECT): both halves of the socket are dropped.
    pub fn kill(&self) {
        self.reader.abort();
        self.writer.abort();
    }

    /// Whether the reader has ended (the peer closed or an error happened).
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.kill();
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn next_frame_text(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            None => bail!("connection closed"),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => {
                if t.as_str().bytes().all(|b| b == b'\n' || b == b'\r') {
                    continue;
                }
                return Ok(t.as_str().as_bytes().to_vec());
            }
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(_))) => bail!("closed by server"),
            Some(Ok(_)) => {}
        }
    }
}

/// Waits for a frame with `command` (and `receipt-id` = `receipt` when given); an ERROR
/// frame fails with its message.
async fn expect(ws: &mut Ws, command: &str, receipt: Option<&str>) -> Result<()> {
    loop {
        let buf = next_frame_text(ws).await?;
        let frames = parse_frames(&buf)?;
        for f in frames {
            if f.command == "ERROR" {
                bail!(
                    "ERROR {}: {}",
                    f.header("message").unwrap_or_default(),
                    String::from_utf8_lossy(f.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                );
            }
            if f.command == command
                && receipt.is_none_or(|r| f.header("receipt-id").as_deref() == Some(r))
            {
                return Ok(());
            }
        }
    }
}

/// Opens connection `i`: TCP from its 127.0.0.x address, WebSocket, CONNECT, SUBSCRIBE to
/// each of `subscriptions` (`(destination, extra headers)`), confirmed by a RECEIPT.
pub async fn open(target: &Target, i: usize, auth: &Auth, subscriptions: &[String]) -> Result<Ws> {
    let addr = target.addr(i);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket
        .bind(SocketAddr::new(target.local_ip(i), 0))
        .context("bind source address")?;
    let _ = socket.set_nodelay(true);
    let stream = socket.connect(addr).await.context("tcp connect")?;
    let url = format!("ws://{addr}{}", target.ws_path);
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
        .await
        .context("websocket handshake")?;

    let hb = format!("{0},{0}", target.heartbeat_ms);
    let mut connect = FrameBuilder::new("CONNECT")
        .header("accept-version", "1.2")
        .header(
            "host",
            if target.kind == Kind::Rabbit {
                "/"
            } else {
                "localhost"
            },
        )
        .header("heart-beat", &hb);
    connect = match auth {
        Auth::Bearer(t) => connect.header("Authorization", &format!("Bearer {t}")),
        Auth::Login(l, p) => connect.header("login", l).header("passcode", p),
    };
    ws.send(Message::Text(connect.finish().into())).await?;
    expect(&mut ws, "CONNECTED", None)
        .await
        .context("CONNECT")?;

    if !subscriptions.is_empty() {
        for (n, dest) in subscriptions.iter().enumerate() {
            // RabbitMQ names a durable topic subscription's queue after (destination, id):
            // ids must differ between clients or room members would share one queue.
            let id = match target.kind {
                Kind::Shoot => n.to_string(),
                Kind::Rabbit => format!("c{i}.{n}"),
            };
            let mut f = FrameBuilder::new("SUBSCRIBE")
                .header("id", &id)
                .header("destination", dest);
            if target.kind == Kind::Rabbit && dest.starts_with("/queue/") {
                f = f.header("auto-delete", "true").header("durable", "false");
            }
            if target.kind == Kind::Rabbit && target.persistent && dest.starts_with("/topic/") {
                f = f
                    .header("durable", "true")
                    .header("auto-delete", "false")
                    .header("x-expires", &RABBIT_DURABLE_QUEUE_TTL_MS.to_string());
            }
            if n + 1 == subscriptions.len() {
                f = f.header("receipt", "sub");
            }
            ws.feed(Message::Text(f.finish().into())).await?;
        }
        ws.flush().await?;
        expect(&mut ws, "RECEIPT", Some("sub"))
            .await
            .context("SUBSCRIBE")?;
    }
    Ok(ws)
}

/// Starts the reader and writer tasks of an opened connection. `handler` sees every
/// server frame (with the connection's writer channel to answer on).
pub fn spawn<H>(ws: Ws, heartbeat_ms: u64, stats: Arc<Stats>, mut handler: H) -> Conn
where
    H: FnMut(&Frame<'_>, &mpsc::UnboundedSender<Out>) + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        let period = Duration::from_millis(if heartbeat_ms == 0 {
            3_600_000
        } else {
            heartbeat_ms
        });
        let mut hb = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(Out::Frame(text)) = out else { break };
                    if sink.feed(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                    let mut failed = false;
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(Out::Frame(text)) => {
                                if sink.feed(Message::Text(text.into())).await.is_err() {
                                    failed = true;
                                    break;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if failed || sink.flush().await.is_err() {
                        break;
                    }
                }
                _ = hb.tick(), if heartbeat_ms > 0 => {
                    if sink.send(Message::Text("\n".into())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    let reply = tx.clone();
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let bytes = match &msg {
                Ok(Message::Text(t)) => t.as_str().as_bytes(),
                Ok(Message::Binary(b)) => &b[..],
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            match parse_frames(bytes) {
                Ok(frames) => {
                    for f in &frames {
                        handler(f, &reply);
                    }
                }
                Err(e) => stats.error(|| format!("undecodable frame: {e}")),
            }
        }
        stats.closed.fetch_add(1, Relaxed);
    });
    Conn { tx, reader, writer }
}

/// An error frame's text for reports.
pub fn error_text(f: &Frame<'_>) -> String {
    format!(
        "{} {}: {}",
        f.command,
        f.header("message").unwrap_or_default(),
        String::from_utf8_lossy(f.body)
            .chars()
            .take(300)
            .collect::<String>()
    )
}

/// Parses `host:port` into a socket address.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {s}"))
}
