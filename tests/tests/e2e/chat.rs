//! Chatting over STOMP: status lifecycle, delivery order, idempotency, edit, delete,
//! reactions and pins.

use crate::{messages_topic, pair, send_saved, soon, status_topic, stomp_on, wait_saved};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_with_full_status_sequence_and_ordered_delivery() {
    let p = pair().await;
    let (msgs, status) = (messages_topic(&p.room), status_topic(&p.room));
    let mut a = stomp_on(&p.server, &p.a, &[&status, "/user/queue/message-status"]).await;
    let mut b = stomp_on(&p.server, &p.b, &[&msgs]).await;

    let mut sent = Vec::new();
    for i in 1..=3 {
        let temp = format!("tmp-{i}");
        let (id, seq) = a.chat_ok(&p.room, &format!("hello {i}"), &temp).await;
        assert_eq!(seq, i, "per-room sequence of message {i}");
        sent.push((temp, id));
    }

    // Status sequence per message on the room status topic, SAVED carrying persistedId.
    for (temp, id) in &sent {
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("SAVED") {
            let v = a
                .next_json_on(&status, soon(), |v| v["tempId"] == temp.as_str())
                .await
                .unwrap_or_else(|| panic!("status stream for {temp} stopped after {seen:?}"));
            let s = v["status"].as_str().unwrap().to_owned();
            assert_ne!(s, "FAILED", "{v}");
            if s == "SAVED" {
                assert_eq!(
                    v["persistedId"],
                    id.as_str(),
                    "SAVED names the message id: {v}"
                );
            }
            seen.push(s);
        }
        assert_eq!(
            seen,
            ["SENDING", "SENT_TO_KAFKA", "PROCESSING", "SAVED"],
            "status sequence of {temp}"
        );
        // The sender's own status queue gets the same transitions.
        let mine = a
            .next_json_on("/user/queue/message-status", soon(), |v| {
                v["tempId"] == temp.as_str() && v["status"] == "SAVED"
            })
            .await;
        assert!(
            mine.is_some(),
            "SAVED on /user/queue/message-status for {temp}"
        );
    }

    // Delivered to the other user in order with seq 1, 2, 3.
    for (i, (temp, id)) in sent.iter().enumerate() {
        let f = b
            .next_on(&msgs, soon())
            .await
            .unwrap_or_else(|| panic!("message {} not delivered to bob", i + 1));
        assert_eq!(f.header("event-type"), Some("MESSAGE_CREATED"), "{f:?}");
        let m = f.json();
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["seq"], json!(i as i64 + 1));
        assert_eq!(m["tempId"], temp.as_str());
        assert_eq!(m["senderId"], p.a.id.as_str());
        assert_eq!(m["roomId"], p.room.as_str());
        assert_eq!(m["content"]["text"], format!("hello {}", i + 1));
    }
    // History agrees.
    for (_, id) in &sent {
        wait_saved(&p.server, &p.a, id).await;
    }
    let history = p.server.history(&p.b, &p.room).await;
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_temp_id_twice_yields_one_message() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let first = a.chat(&p.room, "only once", "dup-1").await;
    let second = a.chat(&p.room, "only once", "dup-1").await;
    assert_eq!(first.header("status"), Some("SENT_TO_KAFKA"), "{first:?}");
    assert_eq!(second.header("status"), Some("SENT_TO_KAFKA"), "{second:?}");
    assert_eq!(
        first.header("persisted-id"),
        second.header("persisted-id"),
        "same message id"
    );
    assert_eq!(first.header("duplicate"), Some("false"));
    assert_eq!(second.header("duplicate"), Some("true"));
    let id = first.header("persisted-id").unwrap().to_owned();
    wait_saved(&p.server, &p.a, &id).await;
    // A later message proves the pipeline moved past any second copy.
    let (later, _) = a.chat_ok(&p.room, "after", "dup-2").await;
    wait_saved(&p.server, &p.a, &later).await;
    let history = p.server.history(&p.a, &p.room).await;
    let copies = history.iter().filter(|m| m["tempId"] == "dup-1").count();
    assert_eq!(copies, 1, "{history:?}");
    assert_eq!(history.len(), 2);

    // The REST thread reply honours tempId the same way.
    let body = json!({"parentMessageId": id, "content": "reply", "tempId": "dup-r"});
    let r1 = p
        .server
        .post("/messages/thread", &p.b.token, body.clone())
        .await
        .expect(201);
    let r2 = p.server.post("/messages/thread", &p.b.token, body).await;
    assert!(r2.status == 200 || r2.status == 201, "{}", r2.body);
    r2.check_envelope();
    assert_eq!(r1.data()["messageId"], r2.data()["messageId"]);
    assert_eq!(r2.data()["duplicate"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_and_delete_leave_a_tombstone() {
    let p = pair().await;
    let msgs = messages_topic(&p.room);
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut b = stomp_on(&p.server, &p.b, &[&msgs]).await;
    let first = send_saved(&p.server, &mut a, &p.a, &p.room, "first").await;
    let second = send_saved(&p.server, &mut a, &p.a, &p.room, "second").await;
    let third = send_saved(&p.server, &mut a, &p.a, &p.room, "third").await;

    // Only the sender may edit.
    p.server
        .put(
            &format!("/messages/{first}"),
            &p.b.token,
            json!({"content": "hijack"}),
        )
        .await
        .expect_err(403, "NOT_MESSAGE_SENDER");
    let edited = p
        .server
        .put(
            &format!("/messages/{first}"),
            &p.a.token,
            json!({"content": "first (edited)"}),
        )
        .await
        .expect(200);
    assert_eq!(edited.data()["content"]["text"], "first (edited)");
    assert_eq!(edited.data()["content"]["isEdited"], true);
    let ev = b
        .next_where(soon(), |f| f.header("event-type") == Some("MESSAGE_EDITED"))
        .await
        .expect("MESSAGE_EDITED broadcast");
    assert_eq!(ev.json()["id"], first.as_str());
    assert_eq!(ev.json()["content"]["text"], "first (edited)");

    // Edit over STOMP too.
    a.must_send(
        "/app/edit",
        &json!({"messageId": third, "content": "third (edited)"}),
    )
    .await;
    let ev = b
        .next_where(soon(), |f| {
            f.header("event-type") == Some("MESSAGE_EDITED") && f.body.contains(&third)
        })
        .await
        .expect("MESSAGE_EDITED broadcast for /app/edit");
    assert_eq!(ev.json()["content"]["text"], "third (edited)");

    // Delete: tombstone keeps its place.
    p.server
        .delete(&format!("/messages/{second}"), &p.b.token)
        .await
        .expect(403);
    let deleted = p
        .server
        .delete(&format!("/messages/{second}"), &p.a.token)
        .await
        .expect(200);
    assert_eq!(deleted.data()["content"]["isDeleted"], true);
    let ev = b
        .next_where(soon(), |f| {
            f.header("event-type") == Some("MESSAGE_DELETED")
        })
        .await
        .expect("MESSAGE_DELETED broadcast");
    assert_eq!(ev.json()["message"]["id"], second.as_str());
    let history = p.server.history(&p.b, &p.room).await;
    let view: Vec<(i64, bool, String)> = history
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["content"]["isDeleted"] == true,
                m["content"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            (1, false, "first (edited)".to_owned()),
            (2, true, String::new()),
            (3, false, "third (edited)".to_owned())
        ],
        "tombstone in history"
    );
    // A deleted message cannot be edited.
    let r = p
        .server
        .put(
            &format!("/messages/{second}"),
            &p.a.token,
            json!({"content": "back"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "MESSAGE_DELETED"), "{}", r.body);
}

fn reactions(v: &Value) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = v["reactions"]
        .as_object()
        .unwrap_or_else(|| panic!("reactions is a map: {v}"))
        .iter()
        .map(|(k, users)| {
            let mut u: Vec<String> = users
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            u.sort();
            (k.clone(), u)
        })
        .filter(|(_, u)| !u.is_empty())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_add_remove_and_unknown_code() {
    let p = pair().await;
    let msgs = messages_topic(&p.room);
    let mut a = stomp_on(&p.server, &p.a, &[&msgs]).await;
    let m = send_saved(&p.server, &mut a, &p.a, &p.room, "react to me").await;

    let types = p
        .server
        .get("/messages/reactions/types", &p.a.token)
        .await
        .expect(200);
    let mut codes: Vec<&str> = types
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["angry", "haha", "like", "love", "sad", "wow"]);

    p.server
        .post(
            "/messages/reaction",
            &p.a.token,
            json!({"messageId": m, "reaction": "like"}),
        )
        .await
        .expect(200);
    p.server
        .post(
            "/messages/reaction",
            &p.b.token,
            json!({"messageId": m, "reaction": "like"}),
        )
        .await
        .expect(200);
    let r = p
        .server
        .post(
            "/messages/reaction",
            &p.b.token,
            json!({"messageId": m, "reaction": "love"}),
        )
        .await
        .expect(200);
    let mut both = vec![p.a.id.clone(), p.b.id.clone()];
    both.sort();
    assert_eq!(
        reactions(r.data()),
        [
            ("like".to_owned(), both),
            ("love".to_owned(), vec![p.b.id.clone()])
        ]
    );
    let ev = a
        .next_where(soon(), |f| f.header("event-type") == Some("REACTION_ADDED"))
        .await
        .expect("REACTION_ADDED broadcast");
    assert_eq!(ev.json()["reaction"], "like");

    let r = p
        .server
        .delete_with(
            "/messages/reaction",
            &p.a.token,
            json!({"messageId": m, "reaction": "like"}),
        )
        .await
        .expect(200);
    assert_eq!(
        reactions(r.data()),
        [
            ("like".to_owned(), vec![p.b.id.clone()]),
            ("love".to_owned(), vec![p.b.id.clone()])
        ]
    );
    a.next_where(soon(), |f| {
        f.header("event-type") == Some("REACTION_REMOVED")
    })
    .await
    .expect("REACTION_REMOVED broadcast");
    let detail = p
        .server
        .get(&format!("/messages/detail/{m}"), &p.a.token)
        .await
        .expect(200);
    assert_eq!(reactions(detail.data()), reactions(r.data()));

    p.server
        .post(
            "/messages/reaction",
            &p.a.token,
            json!({"messageId": m, "reaction": "nope"}),
        )
        .await
        .expect_err(400, "UNKNOWN_REACTION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_limited_to_three_per_room() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(send_saved(&p.server, &mut a, &p.a, &p.room, &format!("pin me {i}")).await);
    }
    // Anyone may pin in a direct room: alternate pinners.
    for (i, id) in ids[..3].iter().enumerate() {
        let who = if i % 2 == 0 { &p.a } else { &p.b };
        let r = p
            .server
            .post("/messages/pin", &who.token, json!({"messageId": id}))
            .await
            .expect(200);
        assert_eq!(r.data()["pinned"], true);
    }
    // Pinning a pinned message is a no-op.
    p.server
        .post("/messages/pin", &p.a.token, json!({"messageId": ids[0]}))
        .await
        .expect(200);
    p.server
        .post("/messages/pin", &p.a.token, json!({"messageId": ids[3]}))
        .await
        .expect_err(409, "PIN_LIMIT_EXCEEDED");
    let pins = p
        .server
        .get(&format!("/messages/pins/{}", p.room), &p.b.token)
        .await
        .expect(200);
    let mut pinned = crate::ids(pins.data());
    pinned.sort();
    let mut expect = ids[..3].to_vec();
    expect.sort();
    assert_eq!(pinned, expect);

    let r = p
        .server
        .delete(&format!("/messages/pin/{}", ids[1]), &p.b.token)
        .await
        .expect(200);
    assert_eq!(r.data()["pinned"], false);
    p.server
        .post("/messages/pin", &p.a.token, json!({"messageId": ids[3]}))
        .await
        .expect(200);
    let pins = p
        .server
        .get(&format!("/messages/pins/{}", p.room), &p.a.token)
        .await
        .expect(200);
    assert_eq!(pins.data().as_array().unwrap().len(), 3);
}
