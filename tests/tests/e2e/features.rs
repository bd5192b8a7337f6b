//! Threads, forwarding, bookmarks and scheduled messages.

use std::time::Duration;

use serde_json::json;
use shoot_tests::{WAIT, deadline, eventually};

use crate::{ids, messages_topic, pair, rfc3339_in, send_saved, stomp_on, wait_saved};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_attach_replies_to_the_root() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let root = send_saved(&p.server, &mut a, &p.a, &p.room, "thread root").await;

    let r1 = p
        .server
        .post(
            "/messages/thread",
            &p.b.token,
            json!({"parentMessageId": root, "content": "reply one", "tempId": "r1"}),
        )
        .await
        .expect(201);
    assert_eq!(r1.data()["status"], "SENT_TO_KAFKA");
    let r1 = r1.data()["messageId"].as_str().unwrap().to_owned();
    let m1 = wait_saved(&p.server, &p.b, &r1).await;
    assert_eq!(m1["threadId"], root.as_str());

    // A reply to a reply attaches to the root (one level), here over STOMP /app/thread.
    let receipt = a
        .must_send(
            "/app/thread",
            &json!({"parentMessageId": r1, "content": "reply two", "tempId": "r2"}),
        )
        .await;
    assert_eq!(
        receipt.header("status"),
        Some("SENT_TO_KAFKA"),
        "{receipt:?}"
    );
    let r2 = receipt.header("persisted-id").unwrap().to_owned();
    let m2 = wait_saved(&p.server, &p.a, &r2).await;
    assert_eq!(
        m2["threadId"],
        root.as_str(),
        "reply to a reply names the root: {m2}"
    );

    let thread = p
        .server
        .get(&format!("/messages/thread?parentId={root}"), &p.a.token)
        .await
        .expect(200);
    assert_eq!(thread.data()["root"]["id"], root.as_str());
    assert_eq!(ids(&thread.data()["replies"]), [r1.clone(), r2.clone()]);

    let summaries = eventually(WAIT, "thread summary with 2 replies", || async {
        let r = p
            .server
            .get(&format!("/messages/threads?roomId={}", p.room), &p.b.token)
            .await
            .expect(200);
        let list = r.data().as_array().unwrap().clone();
        (list.len() == 1 && list[0]["replyCount"] == 2).then_some(list)
    })
    .await;
    let s = &summaries[0];
    assert_eq!(s["root"]["id"], root.as_str());
    assert_eq!(s["lastReply"]["id"], r2.as_str());
    let mut who: Vec<&str> = s["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    who.sort_unstable();
    let mut expect = vec![p.a.id.as_str(), p.b.id.as_str()];
    expect.sort_unstable();
    assert_eq!(who, expect);
    let root_view = p
        .server
        .get(&format!("/messages/detail/{root}"), &p.a.token)
        .await
        .expect(200);
    assert_eq!(root_view.data()["replyCount"], 2, "{}", root_view.body);
    // The room history still lists the root and its replies in sequence.
    let history = p.server.history(&p.a, &p.room).await;
    assert_eq!(history.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_keeps_forwarded_from() {
    let p = pair().await;
    let c = p.server.user("carol").await;
    let group = p.server.group(&p.a, "trio", &[&p.b, &c]).await;
    let outsider = p.server.user("dave").await;
    let foreign = p.server.group(&outsider, "elsewhere", &[&c]).await;

    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let original = send_saved(&p.server, &mut a, &p.a, &p.room, "worth sharing").await;
    let mut cs = stomp_on(&p.server, &c, &[&messages_topic(&group)]).await;

    // bob forwards alice's message into the group with a note.
    let r = p
        .server
        .post(
            "/messages/forward",
            &p.b.token,
            json!({"messageId": original, "targetRoomIds": [group], "additionalContent": "look"}),
        )
        .await
        .expect(201);
    let receipts = r.data().as_array().unwrap();
    assert_eq!(receipts.len(), 1, "{}", r.body);
    assert_eq!(receipts[0]["roomId"], group.as_str());
    let copy = receipts[0]["messageId"].as_str().unwrap().to_owned();
    let delivered = cs
        .next_on(&messages_topic(&group), deadline(WAIT))
        .await
        .expect("forwarded copy delivered");
    assert_eq!(delivered.json()["id"], copy.as_str());

    let view = wait_saved(&p.server, &c, &copy).await;
    assert_eq!(
        view["forwardedFrom"],
        json!({"messageId": original, "roomId": p.room, "senderId": p.a.id}),
        "forwardedFrom kept: {view}"
    );
    assert_eq!(view["senderId"], p.b.id.as_str());
    let text = view["content"]["text"].as_str().unwrap();
    assert!(
        text.contains("worth sharing") && text.contains("look"),
        "original and extra text: {text:?}"
    );

    // Not into a room the forwarder does not belong to.
    let r = p
        .server
        .post(
            "/messages/forward",
            &p.b.token,
            json!({"messageId": original, "targetRoomIds": [foreign]}),
        )
        .await;
    assert!(
        r.status == 403 || r.status == 404,
        "forward into a foreign room: {}",
        r.body
    );
    r.check_envelope();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_are_private() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let m1 = send_saved(&p.server, &mut a, &p.a, &p.room, "remember the milk").await;
    let m2 = send_saved(&p.server, &mut a, &p.a, &p.room, "and the eggs").await;

    let r = p
        .server
        .post(
            "/messages/bookmark",
            &p.a.token,
            json!({"messageId": m1, "note": "groceries"}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["messageId"], m1.as_str());
    p.server
        .post("/messages/bookmark", &p.a.token, json!({"messageId": m2}))
        .await
        .expect(201);

    let all = p
        .server
        .get("/messages/bookmarks", &p.a.token)
        .await
        .expect(200);
    let mut got: Vec<&str> = all
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["messageId"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut expect = vec![m1.as_str(), m2.as_str()];
    expect.sort_unstable();
    assert_eq!(got, expect);
    let by_room = p
        .server
        .get(
            &format!("/messages/bookmarks?roomId={}", p.room),
            &p.a.token,
        )
        .await
        .expect(200);
    assert_eq!(by_room.data().as_array().unwrap().len(), 2);
    let by_text = p
        .server
        .get("/messages/bookmarks?q=groceries", &p.a.token)
        .await
        .expect(200);
    let hits: Vec<&str> = by_text
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(hits, [m1.as_str()]);

    // bob sees none of alice's bookmarks and cannot remove them.
    let bobs = p
        .server
        .get("/messages/bookmarks", &p.b.token)
        .await
        .expect(200);
    assert_eq!(bobs.data().as_array().unwrap().len(), 0, "{}", bobs.body);
    p.server
        .delete(&format!("/messages/bookmark/{m1}"), &p.b.token)
        .await
        .expect_err(404, "BOOKMARK_NOT_FOUND");

    p.server
        .delete(&format!("/messages/bookmark/{m1}"), &p.a.token)
        .await
        .expect(200);
    let left = p
        .server
        .get("/messages/bookmarks", &p.a.token)
        .await
        .expect(200);
    assert_eq!(left.data().as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_message_is_delivered_once() {
    let p = pair().await;
    let msgs = messages_topic(&p.room);
    let mut b = stomp_on(&p.server, &p.b, &[&msgs]).await;

    p.server
        .post(
            "/messages/schedule",
            &p.a.token,
            json!({"roomId": p.room, "content": "too late", "scheduledAt": rfc3339_in(Duration::ZERO)}),
        )
        .await
        .expect_err(400, "SCHEDULE_IN_PAST");

    let r = p
        .server
        .post(
            "/messages/schedule",
            &p.a.token,
            json!({"roomId": p.room, "content": "from the past", "scheduledAt": rfc3339_in(Duration::from_millis(1500))}),
        )
        .await
        .expect(201);
    assert_eq!(r.data()["status"], "PENDING");
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let listed = p
        .server
        .get("/messages/schedule", &p.a.token)
        .await
        .expect(200);
    assert_eq!(ids(listed.data()), std::slice::from_ref(&id));

    let f = b
        .next_on(&msgs, deadline(Duration::from_secs(8)))
        .await
        .expect("scheduled message delivered within the deadline");
    let m = f.json();
    assert_eq!(m["content"]["text"], "from the past");
    assert_eq!(m["senderId"], p.a.id.as_str());

    eventually(WAIT, "schedule marked SENT", || async {
        let r = p
            .server
            .get("/messages/schedule", &p.a.token)
            .await
            .expect(200);
        let list = r.data().as_array().unwrap().clone();
        list.iter()
            .any(|s| s["id"] == id.as_str() && s["status"] == "SENT")
            .then_some(())
    })
    .await;
    let msg_id = m["id"].as_str().unwrap().to_owned();
    wait_saved(&p.server, &p.a, &msg_id).await;
    let history = p.server.history(&p.a, &p.room).await;
    assert_eq!(
        history
            .iter()
            .filter(|h| h["content"]["text"] == "from the past")
            .count(),
        1,
        "exactly once"
    );
}
