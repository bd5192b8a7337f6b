//! Blocking and friend recommendations.

use serde_json::json;
use shoot_tests::{TestServer, WAIT, deadline};

use crate::{ids, pair, stomp_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_user_cannot_send_or_request() {
    let p = pair().await;
    let mut a = stomp_on(
        &p.server,
        &p.a,
        &["/user/queue/message-status", "/user/queue/errors"],
    )
    .await;
    let (before, _) = a.chat_ok(&p.room, "before the block", "pre").await;

    p.server
        .post("/users/block", &p.b.token, json!({"targetUserId": p.a.id}))
        .await
        .expect(200);
    let blocked = p.server.get("/users/blocked", &p.b.token).await.expect(200);
    assert_eq!(ids(blocked.data()), std::slice::from_ref(&p.a.id));

    // STOMP send into the direct room: FAILED USER_BLOCKED, never silence.
    let receipt = a.chat(&p.room, "after the block", "post").await;
    assert_eq!(receipt.header("status"), Some("FAILED"), "{receipt:?}");
    assert_eq!(
        receipt.header("error-code"),
        Some("USER_BLOCKED"),
        "{receipt:?}"
    );
    let status = a
        .next_json_on("/user/queue/message-status", deadline(WAIT), |v| {
            v["tempId"] == "post" && v["status"] == "FAILED"
        })
        .await
        .expect("FAILED status on the sender's queue");
    assert_eq!(status["errorCode"], "USER_BLOCKED", "{status}");
    let err = a
        .next_json_on("/user/queue/errors", deadline(WAIT), |v| {
            v["tempId"] == "post"
        })
        .await
        .expect("error on /user/queue/errors");
    assert_eq!(err["errorCode"], "USER_BLOCKED");

    // REST thread reply into the same room: 403 USER_BLOCKED.
    p.server
        .post(
            "/messages/thread",
            &p.a.token,
            json!({"parentMessageId": before, "content": "sneaky", "tempId": "t"}),
        )
        .await
        .expect_err(403, "USER_BLOCKED");
    // Nothing of it reached the history.
    let history = p.server.history(&p.b, &p.room).await;
    assert!(
        history
            .iter()
            .all(|m| m["tempId"] != "post" && m["tempId"] != "t"),
        "{history:?}"
    );

    // A blocked user cannot send a friend request to the blocker.
    let c = p.server.user("carol").await;
    let d = p.server.user("dave").await;
    p.server
        .post("/users/block", &c.token, json!({"targetUserId": d.id}))
        .await
        .expect(200);
    p.server
        .post(
            "/users/friends/requests",
            &d.token,
            json!({"targetUserId": c.id}),
        )
        .await
        .expect_err(403, "USER_BLOCKED");
    // …and neither can the blocker (either side blocks ⇒ no request).
    let r = p
        .server
        .post(
            "/users/friends/requests",
            &c.token,
            json!({"targetUserId": d.id}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Unblocking restores sending (nothing else automatically).
    p.server
        .delete(&format!("/users/block/{}", p.a.id), &p.b.token)
        .await
        .expect(200);
    a.chat_ok(&p.room, "after unblock", "post2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_rank_friends_of_friends_by_mutual_count() {
    let server = TestServer::start().await;
    let mut users = Vec::new();
    for name in ["alice", "bob", "carol", "dave", "erin", "frank", "gina"] {
        users.push(server.user(name).await);
    }
    let [a, b, c, d, e, f, g] = users.as_slice() else {
        unreachable!()
    };
    // a–b, a–e; b–c, e–c (c: 2 mutual), b–d (d: 1 mutual), b–f (f blocked by a); g pending from a.
    for (x, y) in [(a, b), (a, e), (b, c), (e, c), (b, d), (b, f)] {
        server.befriend(x, y).await;
    }
    server.friend_request(a, g).await;
    server
        .post("/users/block", &a.token, json!({"targetUserId": f.id}))
        .await
        .expect(200);
    // g is only reachable through a's pending request; give g a path via b to check exclusion.
    server.befriend(b, g).await;

    let r = server
        .get(
            "/users/recommendations?maxDepth=2&limit=10&skip=0",
            &a.token,
        )
        .await
        .expect(200);
    let list = r.data().as_array().unwrap();
    let got: Vec<(String, u64)> = list
        .iter()
        .map(|x| {
            (
                x["user"]["id"].as_str().unwrap().to_owned(),
                x["mutualFriends"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(c.id.clone(), 2), (d.id.clone(), 1)],
        "ranked by mutual friends; friends, pending, blocked and self excluded: {}",
        r.body
    );
    assert!(list.iter().all(|x| x["depth"] == 2), "{}", r.body);

    let page = server
        .get("/users/recommendations?limit=1&skip=1", &a.token)
        .await
        .expect(200);
    let page: Vec<&str> = page
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["user"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [d.id.as_str()], "paginated");
}
