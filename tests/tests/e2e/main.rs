//! End-to-end tests: the real server in-process (SQLite in a temp dir), real HTTP and STOMP
//! clients. One binary; each test starts its own server.

mod auth;
mod chat;
mod features;
mod read;
mod refusals;
mod reliability;
mod rooms;
mod social;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use shoot_tests::{Stomp, TestServer, User, WAIT, deadline, eventually};

/// Two friends `a` and `b` with their direct room.
pub struct Pair {
    pub server: TestServer,
    pub a: User,
    pub b: User,
    pub room: String,
}

/// A server with two friends and their direct room.
pub async fn pair() -> Pair {
    pair_on(TestServer::start().await).await
}

/// Two friends on `server`.
pub async fn pair_on(server: TestServer) -> Pair {
    let a = server.user("alice").await;
    let b = server.user("bob").await;
    let room = server.befriend(&a, &b).await;
    Pair { server, a, b, room }
}

/// `user`'s STOMP client subscribed to `destinations`.
pub async fn stomp_on(server: &TestServer, user: &User, destinations: &[&str]) -> Stomp {
    let mut s = server.stomp(user).await;
    for d in destinations {
        s.must_subscribe(d).await;
    }
    s
}

/// `/topic/messages/{room}`.
pub fn messages_topic(room: &str) -> String {
    format!("/topic/messages/{room}")
}

/// `/topic/message/status/{room}`.
pub fn status_topic(room: &str) -> String {
    format!("/topic/message/status/{room}")
}

/// Polls `GET /messages/detail/{id}` until the message is SAVED; returns its view.
pub async fn wait_saved(server: &TestServer, user: &User, id: &str) -> Value {
    eventually(WAIT, &format!("message {id} SAVED"), || async {
        let r = server
            .get(&format!("/messages/detail/{id}"), &user.token)
            .await;
        (r.status == 200 && r.data()["status"] == "SAVED").then(|| r.data().clone())
    })
    .await
}

/// Sends `text` over STOMP and waits until it is SAVED; returns the message id.
pub async fn send_saved(
    server: &TestServer,
    stomp: &mut Stomp,
    user: &User,
    room: &str,
    text: &str,
) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let temp = format!("saved-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let (id, _) = stomp.chat_ok(room, text, &temp).await;
    wait_saved(server, user, &id).await;
    id
}

/// The ids of a JSON list of views.
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| {
            v["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id in {v}"))
                .to_owned()
        })
        .collect()
}

/// RFC 3339 time `d` from now.
pub fn rfc3339_in(d: Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    shoot_core::Timestamp((now + d).as_millis() as i64).to_rfc3339()
}

/// A short deadline for "nothing else arrives" checks that follow a positive marker.
pub fn soon() -> tokio::time::Instant {
    deadline(WAIT)
}
