//! Read receipts, unread counts and typing.

use serde_json::{Value, json};
use shoot_tests::{TestServer, User, WAIT, deadline, eventually};

use crate::{messages_topic, pair, stomp_on, wait_saved};

async fn unread(server: &TestServer, user: &User, room: &str) -> u64 {
    let r = server.get("/chatrooms", &user.token).await.expect(200);
    let list = r.data().as_array().unwrap();
    let entry = list
        .iter()
        .find(|e| e["id"] == room)
        .unwrap_or_else(|| panic!("room {room} not in list: {}", r.body));
    entry["unreadCount"]
        .as_u64()
        .unwrap_or_else(|| panic!("unreadCount missing: {entry}"))
}

async fn wait_unread(server: &TestServer, user: &User, room: &str, expect: u64) {
    eventually(
        WAIT,
        &format!("{} unread = {expect}", user.username),
        || async { (unread(server, user, room).await == expect).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_and_unread_counts() {
    let p = pair().await;
    let msgs = messages_topic(&p.room);
    let mut a = stomp_on(&p.server, &p.a, &[&msgs]).await;
    let mut b = stomp_on(&p.server, &p.b, &[]).await;

    let mut last = String::new();
    for i in 1..=3 {
        last = a
            .chat_ok(&p.room, &format!("unread {i}"), &format!("u{i}"))
            .await
            .0;
    }
    wait_saved(&p.server, &p.a, &last).await;
    wait_unread(&p.server, &p.b, &p.room, 3).await;
    assert_eq!(
        unread(&p.server, &p.a, &p.room).await,
        0,
        "own messages are not unread"
    );

    // REST mark-read: everything.
    let r = p
        .server
        .call(
            reqwest::Method::POST,
            &format!("/messages/mark-read?roomId={}", p.room),
            Some(&p.b.token),
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.data()["lastReadSeq"], 3, "{}", r.body);
    wait_unread(&p.server, &p.b, &p.room, 0).await;
    let ev = a
        .next_where(deadline(WAIT), |f| f.header("event-type") == Some("READ"))
        .await
        .expect("READ receipt broadcast to the room");
    let ev = ev.json();
    assert_eq!(
        (ev["userId"].clone(), ev["lastReadSeq"].clone()),
        (json!(p.b.id), json!(3))
    );

    for i in 4..=5 {
        last = a
            .chat_ok(&p.room, &format!("unread {i}"), &format!("u{i}"))
            .await
            .0;
    }
    wait_saved(&p.server, &p.a, &last).await;
    wait_unread(&p.server, &p.b, &p.room, 2).await;

    // STOMP /app/read up to seq 4.
    let receipt = b
        .must_send("/app/read", &json!({"roomId": p.room, "lastSeq": 4}))
        .await;
    assert_eq!(receipt.header("last-read-seq"), Some("4"), "{receipt:?}");
    wait_unread(&p.server, &p.b, &p.room, 1).await;
    let ev: Value = a
        .next_json_on(&msgs, deadline(WAIT), |v| {
            v["type"] == "READ" && v["lastReadSeq"] == 4
        })
        .await
        .expect("READ up to 4 broadcast");
    assert_eq!(ev["userId"], p.b.id.as_str());

    // /app/read with a message id marks everything up to it.
    let receipt = b.must_send("/app/read", &json!({"messageId": last})).await;
    assert_eq!(receipt.header("last-read-seq"), Some("5"), "{receipt:?}");
    wait_unread(&p.server, &p.b, &p.room, 0).await;
    let detail = p
        .server
        .get(&format!("/messages/detail/{last}"), &p.a.token)
        .await
        .expect(200);
    assert_eq!(
        detail.data()["readCount"],
        1,
        "read by bob: {}",
        detail.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_broadcast_at_most_once_per_second() {
    let p = pair().await;
    let typing = format!("/topic/typing/{}", p.room);
    let mut b = stomp_on(&p.server, &p.b, &[&typing]).await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;

    let start = tokio::time::Instant::now();
    a.must_send("/app/typing", &json!({"roomId": p.room, "isTyping": true}))
        .await;
    a.must_send("/app/typing", &json!({"roomId": p.room, "isTyping": true}))
        .await;
    let within = start.elapsed();
    // A state change is always broadcast: it marks the end of what the two frames produced.
    a.must_send("/app/typing", &json!({"roomId": p.room, "isTyping": false}))
        .await;

    let mut seen = Vec::new();
    loop {
        let f = b
            .next_on(&typing, deadline(WAIT))
            .await
            .unwrap_or_else(|| panic!("typing events stopped at {seen:?}"));
        let v = f.json();
        assert_eq!(v["userId"], p.a.id.as_str(), "{v}");
        assert_eq!(v["roomId"], p.room.as_str(), "{v}");
        let t = v["isTyping"].as_bool().expect("isTyping");
        seen.push(t);
        if !t {
            break;
        }
    }
    assert!(
        within < p.server.config().limits.typing_throttle,
        "the two frames were sent within the throttle window"
    );
    assert_eq!(
        seen,
        [true, false],
        "two typing frames within 1 s give one broadcast"
    );
}
