//! Sync after reconnect and durability across a server restart.

use std::collections::HashSet;

use serde_json::json;
use shoot_tests::{WAIT, deadline, eventually};

use crate::{messages_topic, pair, stomp_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_after_reconnect_returns_exactly_the_missed_messages() {
    let p = pair().await;
    let msgs = messages_topic(&p.room);
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut b = stomp_on(&p.server, &p.b, &[&msgs]).await;

    for i in 1..=3 {
        a.chat_ok(&p.room, &format!("seen {i}"), &format!("seen-{i}"))
            .await;
    }
    let mut last_seq = 0;
    for _ in 0..3 {
        let f = b
            .next_on(&msgs, deadline(WAIT))
            .await
            .expect("live delivery before the disconnect");
        last_seq = f.json()["seq"].as_i64().unwrap();
    }
    assert_eq!(last_seq, 3);
    b.disconnect().await;

    let mut missed = Vec::new();
    for i in 1..=5 {
        let (id, seq) = a
            .chat_ok(&p.room, &format!("missed {i}"), &format!("missed-{i}"))
            .await;
        missed.push((id, seq));
    }
    // Reconnect once the missed messages are stored (the immediate case is
    // `sync_right_after_a_send_lets_the_client_see_every_durable_message`).
    crate::wait_saved(&p.server, &p.a, &missed[4].0).await;

    let mut b = stomp_on(&p.server, &p.b, &["/user/queue/sync"]).await;
    let receipt = b
        .send(
            "/app/sync",
            &json!({"roomId": p.room, "lastSeq": last_seq, "direction": "AFTER"}),
        )
        .await;
    assert!(receipt.is_ok(), "sync refused: {receipt:?}");
    let f = b
        .next_on("/user/queue/sync", deadline(WAIT))
        .await
        .expect("SYNC reply on /user/queue/sync");
    let page = f.json();
    let got: Vec<(String, i64)> = page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages list: {page}"))
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got, missed,
        "exactly the 5 missed messages, in order, no gaps or duplicates"
    );
    assert_eq!(
        got.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    assert_eq!(page["hasMore"], false, "{page}");
    assert_eq!(page["latestSeq"], 8, "{page}");
    assert_eq!(page["roomId"], p.room.as_str());
}

/// A sync issued right after a message became durable (SENT_TO_KAFKA) must either return it
/// or report a `latestSeq` that reveals it, so that the client knows to sync again; otherwise
/// a client reconnecting at the wrong moment silently misses it. Several rounds, because the
/// window is the persistence worker's latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_right_after_a_send_lets_the_client_see_every_durable_message() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut b = stomp_on(&p.server, &p.b, &["/user/queue/sync"]).await;
    let mut last_seq = 0;
    let mut hidden = Vec::new();
    for i in 0..10 {
        let (id, seq) = a
            .chat_ok(&p.room, &format!("race {i}"), &format!("race-{i}"))
            .await;
        b.must_send(
            "/app/sync",
            &json!({"roomId": p.room, "lastSeq": last_seq, "direction": "AFTER"}),
        )
        .await;
        let page = b
            .next_on("/user/queue/sync", deadline(WAIT))
            .await
            .expect("SYNC reply")
            .json();
        let got: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        let latest = page["latestSeq"].as_i64().unwrap_or(0);
        if !got.contains(&id.as_str()) && latest < seq {
            hidden.push(format!(
                "seq {seq}: sync returned {got:?}, latestSeq {latest}, hasMore {}",
                page["hasMore"]
            ));
        }
        last_seq = seq;
    }
    assert!(
        hidden.is_empty(),
        "durable messages invisible to an immediate sync:\n{}",
        hidden.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_messages_survive_a_restart_exactly_once() {
    let mut p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        let temp = format!("durable-{i}");
        let (id, seq) = a.chat_ok(&p.room, &format!("durable {i}"), &temp).await;
        sent.push((id, seq, temp));
    }
    // Restart right away: some messages may be in the log only.
    drop(a);
    p.server.restart().await;

    let expect: HashSet<String> = sent.iter().map(|(id, ..)| id.clone()).collect();
    let history = eventually(
        std::time::Duration::from_secs(10),
        "all durable messages SAVED after restart",
        || async {
            let h = p.server.history(&p.a, &p.room).await;
            let saved: HashSet<String> = h
                .iter()
                .filter(|m| m["status"] == "SAVED")
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            expect.is_subset(&saved).then_some(h)
        },
    )
    .await;
    assert_eq!(
        history.len(),
        sent.len(),
        "each message exactly once: {history:?}"
    );
    let got: Vec<(String, i64, String)> = history
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["seq"].as_i64().unwrap(),
                m["tempId"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(got, sent, "same ids, seqs and tempIds, in order");

    // The restarted server keeps working: the next message continues the sequence, and
    // re-sending an already durable tempId does not create a copy.
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let (_, seq) = a.chat_ok(&p.room, "after restart", "after-restart").await;
    assert_eq!(seq, sent.len() as i64 + 1);
    let again = a.chat(&p.room, "durable 0", "durable-0").await;
    assert_eq!(
        again.header("persisted-id"),
        Some(sent[0].0.as_str()),
        "idempotent across restart: {again:?}"
    );
    p.server.stop().await;
}
