//! Group rooms, history paging, concurrent senders, rate limits, mentions and token rotation.

use serde_json::{Value, json};
use shoot_tests::{Stomp, TestServer, WAIT, deadline, eventually};

use crate::{messages_topic, pair, pair_on, stomp_on, wait_saved};

fn role_of(room: &Value, user: &str) -> String {
    room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["userId"] == user)
        .map(|p| p["role"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "ABSENT".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rooms_roles_membership_and_ownership_handover() {
    let p = pair().await;
    let s = &p.server;
    let c = s.user("carol").await;
    let mut cs = stomp_on(s, &c, &["/user/queue/notifications"]).await;

    let created = s
        .post(
            "/chatrooms",
            &p.a.token,
            json!({"type": "GROUP", "title": "team", "participantIds": [p.b.id]}),
        )
        .await
        .expect(201);
    let room = created.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.data()["type"], "GROUP");
    assert_eq!(created.data()["title"], "team");
    assert_eq!(role_of(created.data(), &p.a.id), "OWNER");
    assert_eq!(role_of(created.data(), &p.b.id), "MEMBER");

    // Adding carol notifies her.
    let added = s
        .post(
            &format!("/chatrooms/{room}/participants"),
            &p.a.token,
            json!({"participantIds": [c.id]}),
        )
        .await
        .expect(200);
    assert_eq!(role_of(added.data(), &c.id), "MEMBER");
    let n = cs
        .next_json_on("/user/queue/notifications", deadline(WAIT), |v| {
            v["type"] == "ADDED_TO_ROOM"
        })
        .await
        .expect("ADDED_TO_ROOM notification pushed");
    assert_eq!(n["roomId"], room.as_str());

    // Members cannot retitle; the owner can.
    s.put(
        &format!("/chatrooms/{room}"),
        &c.token,
        json!({"title": "mine"}),
    )
    .await
    .expect(403);
    s.put(
        &format!("/chatrooms/{room}"),
        &p.a.token,
        json!({"title": "team two"}),
    )
    .await
    .expect(200);
    // A direct room takes no third member.
    let r = s
        .post(
            &format!("/chatrooms/{}/participants", p.room),
            &p.a.token,
            json!({"participantIds": [c.id]}),
        )
        .await;
    assert!(
        (400..500).contains(&r.status),
        "direct room grew: {}",
        r.body
    );
    r.check_envelope();

    // The owner leaves: the longest member (bob) becomes owner.
    s.delete(&format!("/chatrooms/{room}"), &p.a.token)
        .await
        .expect(200);
    let detail = s
        .get(&format!("/chatrooms/{room}"), &p.b.token)
        .await
        .expect(200);
    assert_eq!(role_of(detail.data(), &p.a.id), "ABSENT");
    assert_eq!(role_of(detail.data(), &p.b.id), "OWNER");
    assert_eq!(detail.data()["title"], "team two");
    let r = s.get(&format!("/chatrooms/{room}"), &p.a.token).await;
    assert!(
        r.status == 403 || r.status == 404,
        "left room still visible: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_by_sequence() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let mut last = String::new();
    for i in 1..=7 {
        last = a
            .chat_ok(&p.room, &format!("page {i}"), &format!("page-{i}"))
            .await
            .0;
    }
    wait_saved(&p.server, &p.a, &last).await;
    let seqs = |r: &Value| {
        r.as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let cases: &[(&str, &[i64])] = &[
        ("limit=3", &[5, 6, 7]),
        ("before=5&limit=3", &[2, 3, 4]),
        ("before=3", &[1, 2]),
        ("after=2&limit=2", &[3, 4]),
        ("after=7", &[]),
    ];
    for (query, expect) in cases {
        let r = p
            .server
            .get(&format!("/messages/{}?{query}", p.room), &p.b.token)
            .await
            .expect(200);
        assert_eq!(seqs(r.data()), *expect, "GET /messages/{{room}}?{query}");
    }
    p.server
        .get(&format!("/messages/{}?limit=0", p.room), &p.b.token)
        .await
        .expect_err(400, "VALIDATION_FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_see_one_gap_free_order() {
    let p = pair().await;
    let c = p.server.user("carol").await;
    let room = p.server.group(&p.a, "busy", &[&p.b, &c]).await;
    let topic = messages_topic(&room);
    let mut a = stomp_on(&p.server, &p.a, &[&topic]).await;
    let mut b = stomp_on(&p.server, &p.b, &[&topic]).await;
    let mut cs = stomp_on(&p.server, &c, &[&topic]).await;

    const EACH: usize = 15;
    async fn burst(s: &mut Stomp, room: &str, who: &str) -> Vec<i64> {
        let mut seqs = Vec::new();
        for i in 0..EACH {
            seqs.push(
                s.chat_ok(room, &format!("{who} {i}"), &format!("{who}-{i}"))
                    .await
                    .1,
            );
        }
        seqs
    }
    let (sa, sb) = tokio::join!(burst(&mut a, &room, "a"), burst(&mut b, &room, "b"));
    let mut all: Vec<i64> = sa.iter().chain(&sb).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=2 * EACH as i64).collect::<Vec<_>>(),
        "seqs unique and gap-free"
    );
    assert!(
        sa.windows(2).all(|w| w[0] < w[1]) && sb.windows(2).all(|w| w[0] < w[1]),
        "one sender's order kept"
    );

    let mut orders = Vec::new();
    for s in [&mut a, &mut b, &mut cs] {
        let mut got = Vec::new();
        while got.len() < 2 * EACH {
            let f = s
                .next_on(&topic, deadline(WAIT))
                .await
                .unwrap_or_else(|| panic!("only {} of {} delivered", got.len(), 2 * EACH));
            let m = f.json();
            got.push((
                m["seq"].as_i64().unwrap(),
                m["tempId"].as_str().unwrap().to_owned(),
            ));
        }
        orders.push(got);
    }
    let seqs: Vec<i64> = orders[0].iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=2 * EACH as i64).collect::<Vec<_>>(),
        "delivered in sequence order"
    );
    assert_eq!(orders[0], orders[1], "same order for every subscriber");
    assert_eq!(orders[0], orders[2], "same order for every subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_limit_fails_with_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_second = 0.2;
        c.limits.message_burst = 3;
    })
    .await;
    let p = pair_on(server).await;
    let mut a = stomp_on(&p.server, &p.a, &["/user/queue/message-status"]).await;
    let mut first = String::new();
    for i in 0..3 {
        let id = a
            .chat_ok(&p.room, &format!("burst {i}"), &format!("burst-{i}"))
            .await
            .0;
        if i == 0 {
            first = id;
        }
    }
    let r = a.chat(&p.room, "one too many", "burst-3").await;
    assert_eq!(r.header("status"), Some("FAILED"), "{r:?}");
    assert_eq!(r.header("error-code"), Some("RATE_LIMITED"), "{r:?}");
    let st = a
        .next_json_on("/user/queue/message-status", deadline(WAIT), |v| {
            v["tempId"] == "burst-3" && v["status"] == "FAILED"
        })
        .await
        .expect("FAILED RATE_LIMITED status");
    assert_eq!(st["errorCode"], "RATE_LIMITED");
    wait_saved(&p.server, &p.a, &first).await;
    p.server
        .post(
            "/messages/thread",
            &p.a.token,
            json!({"parentMessageId": first, "content": "rest too", "tempId": "rest-burst"}),
        )
        .await
        .expect_err(429, "RATE_LIMITED");
    // Other users have their own bucket; typing and reads are not counted.
    let mut b = stomp_on(&p.server, &p.b, &[]).await;
    b.chat_ok(&p.room, "bob is fine", "bob-1").await;
    a.must_send("/app/typing", &json!({"roomId": p.room, "isTyping": true}))
        .await;
    let read = a.must_send("/app/read", &json!({"roomId": p.room})).await;
    assert!(read.header("status").is_none(), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_notify_the_mentioned_participant() {
    let p = pair().await;
    let mut b = stomp_on(&p.server, &p.b, &["/user/queue/notifications"]).await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let (id, _) = a.chat_ok(&p.room, "hey @bob look", "mention-1").await;
    let n = b
        .next_json_on("/user/queue/notifications", deadline(WAIT), |v| {
            v["type"] == "MENTION"
        })
        .await
        .expect("MENTION pushed on /user/queue/notifications");
    assert_eq!(n["messageId"], id.as_str(), "{n}");
    assert_eq!(n["actorId"], p.a.id.as_str(), "{n}");
    let list = p.server.get("/notifications", &p.b.token).await.expect(200);
    assert!(
        list.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["type"] == "MENTION" && x["messageId"] == id.as_str()),
        "{}",
        list.body
    );
    let count = p
        .server
        .get("/notifications/unread/count", &p.b.token)
        .await
        .expect(200);
    let before = count.data()["count"].as_u64().unwrap();
    assert!(before >= 1, "{}", count.body);
    p.server
        .call(
            reqwest::Method::PUT,
            "/notifications/read/all",
            Some(&p.b.token),
            None,
        )
        .await
        .expect(200);
    eventually(WAIT, "unread notifications 0", || async {
        let c = p
            .server
            .get("/notifications/unread/count", &p.b.token)
            .await
            .expect(200);
        (c.data()["count"] == 0).then_some(())
    })
    .await;
    // alice is not notified of her own mention-free message.
    let mine = p.server.get("/notifications", &p.a.token).await.expect(200);
    assert!(
        mine.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["type"] != "MENTION"),
        "{}",
        mine.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let server = TestServer::start().await;
    let a = server.user("alice").await;
    let refresh = |t: &str| {
        server.call(
            reqwest::Method::POST,
            "/auth/refresh",
            None,
            Some(json!({"refreshToken": t})),
        )
    };
    let next = refresh(&a.refresh).await.expect(200);
    let second = next.data()["refreshToken"].as_str().unwrap().to_owned();
    let access = next.data()["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(second, a.refresh);
    server.get("/auth/me", &access).await.expect(200);
    // Reusing the rotated-out token is detected and revokes the family.
    refresh(&a.refresh).await.expect_err(401, "TOKEN_REUSED");
    let r = refresh(&second).await;
    assert_eq!(r.status, 401, "family revoked after reuse: {}", r.body);
    // Logout revokes a fresh family.
    let fresh = server.login("alice", &a.id).await;
    server
        .call(
            reqwest::Method::POST,
            "/auth/logout",
            Some(&fresh.token),
            Some(json!({"refreshToken": fresh.refresh})),
        )
        .await
        .expect(200);
    assert_eq!(refresh(&fresh.refresh).await.status, 401);
}
