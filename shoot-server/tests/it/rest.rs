use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shoot_server::config::Config;

use crate::support::{TestApp, eventually, start_server};

#[tokio::test]
async fn signup_login_me() {
    let app = TestApp::new().await;
    let user = app.signup("alice").await;
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["status"], "OFFLINE");
    assert!(
        user["userCode"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    assert!(user.get("passwordHash").is_none() && user.get("password").is_none());

    // Alias and conflicts.
    let dup = json!({"username": "ALICE", "nickname": "xx", "email": "other@example.com", "password": "Secret#123"});
    app.call(Method::POST, "/api/v1/users", None, Some(dup))
        .await
        .expect_err(409, "USERNAME_TAKEN");
    let weak = json!({"username": "bob", "nickname": "bob", "email": "bob@example.com", "password": "password"});
    app.call(Method::POST, "/api/v1/auth/signup", None, Some(weak))
        .await
        .expect_err(400, "WEAK_PASSWORD");

    let s = app.login("alice").await;
    assert_eq!(s.user_id, user["id"]);
    let by_email = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": "Secret#123"})),
        )
        .await
        .expect(200);
    assert_eq!(by_email.data()["expiresIn"], 3600);
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "alice", "password": "Wrong#123"})),
    )
    .await
    .expect_err(401, "INVALID_CREDENTIALS");

    let me = app.get("/api/v1/auth/me", &s.access).await.expect(200);
    let me2 = app.get("/api/v1/users/me", &s.access).await.expect(200);
    assert_eq!(me.data(), me2.data());
    assert_eq!(me.data()["id"], user["id"]);

    let updated = app
        .put(
            "/api/v1/users/me",
            &s.access,
            json!({"nickname": "Ally", "bio": "hi"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.data()["nickname"], "Ally");
    assert_eq!(updated.data()["bio"], "hi");
    let st = app
        .put("/api/v1/users/status", &s.access, json!({"status": "BUSY"}))
        .await
        .expect(200);
    assert_eq!(st.data()["status"], "BUSY");
    app.put(
        "/api/v1/users/status",
        &s.access,
        json!({"status": "SLEEPING"}),
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");

    // Other users see no e-mail; find by code works.
    let bob = app.user("bob").await;
    let seen = app
        .get(&format!("/api/v1/users/{}", s.user_id), &bob.access)
        .await
        .expect(200);
    assert!(seen.data()["email"].is_null());
    let code = user["userCode"].as_str().unwrap();
    let found = app
        .get(
            &format!("/api/v1/users/find-by-code?code={code}"),
            &bob.access,
        )
        .await
        .expect(200);
    assert_eq!(found.data()["id"], user["id"]);
    let search = app
        .get("/api/v1/users/search?q=ali", &bob.access)
        .await
        .expect(200);
    assert_eq!(search.data().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unauthenticated_and_bad_tokens_are_401() {
    let app = TestApp::new().await;
    let s = app.user("alice").await;
    app.call(Method::GET, "/api/v1/users/me", None, None)
        .await
        .expect_err(401, "INVALID_TOKEN");
    app.get("/api/v1/users/me", "not-a-jwt")
        .await
        .expect_err(401, "INVALID_TOKEN");
    // A refresh token is not an access token.
    app.get("/api/v1/users/me", &s.refresh)
        .await
        .expect_err(401, "INVALID_TOKEN");
    let req = Request::get("/api/v1/users/me")
        .header("authorization", format!("Basic {}", s.access))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.raw(req).await.status(), 401);
}

#[tokio::test]
async fn refresh_rotation_reuse_and_logout() {
    let app = TestApp::new().await;
    let s = app.user("alice").await;

    // Access token refused as a refresh token.
    app.refresh(&s.access)
        .await
        .expect_err(401, "INVALID_TOKEN");

    let r1 = app.refresh(&s.refresh).await.expect(200);
    let refresh2 = r1.data_str("refreshToken");
    assert_ne!(refresh2, s.refresh);
    let access2 = r1.data_str("accessToken");
    app.get("/api/v1/auth/me", &access2).await.expect(200);

    // Bearer form and the alias path.
    let r2 = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh-token",
            Some(&refresh2),
            None,
        )
        .await
        .expect(200);
    let refresh3 = r2.data_str("refreshToken");

    // Reusing an old token revokes the family: the newest is dead too.
    app.refresh(&s.refresh)
        .await
        .expect_err(401, "TOKEN_REUSED");
    let after = app.refresh(&refresh3).await;
    assert_eq!(after.status, 401, "{}", after.body);

    // Logout revokes a fresh family.
    let s2 = app.login("alice").await;
    app.logout(&s2).await.expect(200);
    let r = app.refresh(&s2.refresh).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // Logout without any token is refused.
    app.call(Method::POST, "/api/v1/auth/logout", None, None)
        .await
        .expect_err(401, "INVALID_TOKEN");
}

#[tokio::test]
async fn bad_input_is_400_with_code() {
    let app = TestApp::new().await;
    let s = app.user("alice").await;
    let missing = app
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"username": "x"})),
        )
        .await;
    missing.expect_err(400, "VALIDATION_FAILED");
    let wrong_type = app
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"username": 1, "nickname": "n", "email": "e", "password": "p"})),
        )
        .await;
    wrong_type.expect_err(400, "VALIDATION_FAILED");
    let req = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let resp = app.raw(req).await;
    assert_eq!(resp.status(), 400);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["errorCode"], "VALIDATION_FAILED");
    // Path and query parse errors.
    app.get("/api/v1/chatrooms/not-a-number", &s.access)
        .await
        .expect_err(400, "VALIDATION_FAILED");
    app.get("/api/v1/messages/1?limit=many", &s.access)
        .await
        .expect_err(400, "VALIDATION_FAILED");
    app.post(
        "/api/v1/users/friends/requests",
        &s.access,
        json!({"targetUserId": "abc"}),
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");
    // Body too large.
    let big = json!({"username": "a".repeat(70 * 1024), "password": "x"});
    app.call(Method::POST, "/api/v1/auth/login", None, Some(big))
        .await
        .expect_err(413, "PAYLOAD_TOO_LARGE");
    // Unknown route.
    app.get("/api/v1/nope", &s.access)
        .await
        .expect_err(404, "NOT_FOUND");
}

#[tokio::test]
async fn rooms_and_authorisation() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;

    let room = app.group(&alice, "team", &[&bob]).await;
    let list = app.get("/api/v1/chatrooms", &bob.access).await.expect(200);
    assert_eq!(list.data()[0]["id"], room.as_str());
    assert_eq!(list.data()[0]["type"], "GROUP");
    assert_eq!(list.data()[0]["participants"].as_array().unwrap().len(), 2);

    // Carol is not in the room.
    app.get(&format!("/api/v1/chatrooms/{room}"), &carol.access)
        .await
        .expect_err(403, "NOT_ROOM_PARTICIPANT");
    app.get(&format!("/api/v1/messages/{room}"), &carol.access)
        .await
        .expect_err(403, "NOT_ROOM_PARTICIPANT");
    app.get(
        &format!("/api/v1/chatrooms/{room}/participants"),
        &carol.access,
    )
    .await
    .expect_err(403, "NOT_ROOM_PARTICIPANT");
    app.get("/api/v1/chatrooms/424242", &carol.access)
        .await
        .expect_err(404, "ROOM_NOT_FOUND");

    // Only owner/admin rename; members cannot.
    app.put(
        &format!("/api/v1/chatrooms/{room}"),
        &bob.access,
        json!({"title": "hijack"}),
    )
    .await
    .expect(403);
    let renamed = app
        .put(
            &format!("/api/v1/chatrooms/{room}"),
            &alice.access,
            json!({"title": "renamed"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed.data()["title"], "renamed");

    // Notice, participants, favourites.
    app.post(
        &format!("/api/v1/chatrooms/{room}/notice"),
        &alice.access,
        json!({"announcement": "hello all"}),
    )
    .await
    .expect(200);
    let notice = app
        .get(&format!("/api/v1/chatrooms/{room}/notice"), &bob.access)
        .await
        .expect(200);
    assert_eq!(notice.data()["announcement"], "hello all");
    let added = app
        .post(
            &format!("/api/v1/chatrooms/{room}/participants"),
            &alice.access,
            json!({"participantIds": [carol.user_id]}),
        )
        .await
        .expect(200);
    assert_eq!(added.data()["participants"].as_array().unwrap().len(), 3);
    app.get(&format!("/api/v1/chatrooms/{room}"), &carol.access)
        .await
        .expect(200);
    app.post(
        &format!("/api/v1/chatrooms/{room}/favorite"),
        &bob.access,
        json!({}),
    )
    .await
    .expect(200);
    let favs = app
        .get("/api/v1/chatrooms/favorites", &bob.access)
        .await
        .expect(200);
    assert_eq!(favs.data().as_array().unwrap().len(), 1);
    assert_eq!(favs.data()[0]["favorite"], true);
    app.delete(
        &format!("/api/v1/chatrooms/{room}/participants/{}", carol.user_id),
        &alice.access,
    )
    .await
    .expect(200);
    app.get(&format!("/api/v1/chatrooms/{room}"), &carol.access)
        .await
        .expect(403);
    let found = app
        .get("/api/v1/chatrooms/search?q=renamed", &alice.access)
        .await
        .expect(200);
    assert_eq!(found.data().as_array().unwrap().len(), 1);

    // Direct rooms: created once, then reused.
    let d1 = app
        .post(
            "/api/v1/chatrooms",
            &alice.access,
            json!({"type": "DIRECT", "participantIds": [carol.user_id]}),
        )
        .await
        .expect(201);
    let d2 = app
        .post(
            "/api/v1/chatrooms",
            &carol.access,
            json!({"type": "DIRECT", "participantIds": [alice.user_id]}),
        )
        .await
        .expect(200);
    assert_eq!(d1.data()["id"], d2.data()["id"]);
    assert_eq!(d1.data()["title"], "carol nick");
    app.post(
        "/api/v1/chatrooms",
        &alice.access,
        json!({"type": "DIRECT", "participantIds": [alice.user_id]}),
    )
    .await
    .expect_err(400, "DIRECT_ROOM_WITH_SELF");
    let multi = app
        .post(
            "/api/v1/chatrooms/multiple",
            &bob.access,
            json!({"rooms": [{"type": "DIRECT", "participantIds": [carol.user_id]}, {"type": "GROUP", "title": "g2", "participantIds": [alice.user_id]}]}),
        )
        .await
        .expect(201);
    assert_eq!(multi.data().as_array().unwrap().len(), 2);

    // Leave.
    app.delete(&format!("/api/v1/chatrooms/{room}"), &bob.access)
        .await
        .expect(200);
    app.get(&format!("/api/v1/chatrooms/{room}"), &bob.access)
        .await
        .expect(403);
}

#[tokio::test]
async fn messages_happy_path() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = app.group(&alice, "team", &[&bob]).await;

    let m1 = app.send_saved(&alice, &room, "hello world", "t-1").await;
    let m2 = app.send_saved(&bob, &room, "second", "t-2").await;
    assert_eq!(m1["seq"], 1);
    assert_eq!(m1["tempId"], "t-1");
    assert_eq!(m1["content"]["text"], "hello world");
    let id1 = m1["id"].as_str().unwrap().to_owned();
    let id2 = m2["id"].as_str().unwrap().to_owned();

    // History: oldest → newest, paging by seq.
    let page = app
        .get(&format!("/api/v1/messages/{room}"), &bob.access)
        .await
        .expect(200);
    let seqs: Vec<i64> = page
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    let before = app
        .get(
            &format!("/api/v1/messages/{room}?before=2&limit=10"),
            &bob.access,
        )
        .await
        .expect(200);
    assert_eq!(before.data().as_array().unwrap().len(), 1);
    let after = app
        .get(&format!("/api/v1/messages/{room}?after=1"), &bob.access)
        .await
        .expect(200);
    assert_eq!(after.data()[0]["id"], id2.as_str());

    // Edit (sender only), reactions, pins.
    app.put(
        &format!("/api/v1/messages/{id1}"),
        &bob.access,
        json!({"content": "nope"}),
    )
    .await
    .expect_err(403, "NOT_MESSAGE_SENDER");
    let edited = app
        .put(
            &format!("/api/v1/messages/{id1}"),
            &alice.access,
            json!({"content": "hello edited"}),
        )
        .await
        .expect(200);
    assert_eq!(edited.data()["content"]["isEdited"], true);
    let reacted = app
        .post(
            "/api/v1/messages/reaction",
            &bob.access,
            json!({"messageId": id1, "reaction": "like"}),
        )
        .await
        .expect(200);
    assert_eq!(reacted.data()["reactions"]["like"], json!([bob.user_id]));
    app.post(
        "/api/v1/messages/reaction",
        &bob.access,
        json!({"messageId": id1, "reaction": "nope"}),
    )
    .await
    .expect_err(400, "UNKNOWN_REACTION");
    let unreacted = app
        .call(
            Method::DELETE,
            "/api/v1/messages/reaction",
            Some(&bob.access),
            Some(json!({"messageId": id1, "reaction": "like"})),
        )
        .await
        .expect(200);
    assert!(
        unreacted.data()["reactions"]
            .get("like")
            .is_none_or(|v| v.as_array().unwrap().is_empty())
    );
    let types = app
        .get("/api/v1/messages/reactions/types", &bob.access)
        .await
        .expect(200);
    assert_eq!(types.data().as_array().unwrap().len(), 6);
    let pinned = app
        .post(
            "/api/v1/messages/pin",
            &alice.access,
            json!({"messageId": id1}),
        )
        .await
        .expect(200);
    assert_eq!(pinned.data()["pinned"], true);
    let pins = app
        .get(&format!("/api/v1/messages/pins/{room}"), &bob.access)
        .await
        .expect(200);
    assert_eq!(pins.data().as_array().unwrap().len(), 1);
    app.delete(&format!("/api/v1/messages/pin/{id1}"), &alice.access)
        .await
        .expect(200);

    // Carol cannot see or touch them.
    app.get(&format!("/api/v1/messages/detail/{id1}"), &carol.access)
        .await
        .expect(404);

    // Read state.
    let read = app
        .post(
            &format!("/api/v1/messages/mark-read?roomId={room}"),
            &alice.access,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(read.data()["lastReadSeq"], 2);

    // Threads.
    let reply = app
        .post(
            "/api/v1/messages/thread",
            &bob.access,
            json!({"parentMessageId": id1, "content": "a reply", "tempId": "r-1"}),
        )
        .await
        .expect(201);
    assert_eq!(reply.data()["status"], "SENT_TO_KAFKA");
    let thread = eventually(5, || async {
        let t = app
            .get(
                &format!("/api/v1/messages/thread?parentId={id1}"),
                &alice.access,
            )
            .await;
        (t.status == 200 && t.data()["replies"].as_array().is_some_and(|r| r.len() == 1))
            .then(|| t.data().clone())
    })
    .await;
    assert_eq!(thread["replies"][0]["threadId"], id1.as_str());
    let threads = app
        .get(
            &format!("/api/v1/messages/threads?roomId={room}"),
            &alice.access,
        )
        .await
        .expect(200);
    assert_eq!(threads.data()[0]["root"]["id"], id1.as_str());

    // Search, bookmarks, forward.
    let found = app
        .get(
            &format!("/api/v1/messages/search?roomId={room}&q=second"),
            &alice.access,
        )
        .await
        .expect(200);
    assert_eq!(found.data().as_array().unwrap().len(), 1);
    app.post(
        "/api/v1/messages/bookmark",
        &alice.access,
        json!({"messageId": id2, "note": "remember"}),
    )
    .await
    .expect(201);
    let marks = app
        .get(
            &format!("/api/v1/messages/bookmarks?roomId={room}&q=remember"),
            &alice.access,
        )
        .await
        .expect(200);
    assert_eq!(marks.data()[0]["message"]["id"], id2.as_str());
    app.delete(&format!("/api/v1/messages/bookmark/{id2}"), &alice.access)
        .await
        .expect(200);
    let other = app.group(&alice, "team", &[&carol]).await;
    let fwd = app
        .post(
            "/api/v1/messages/forward",
            &alice.access,
            json!({"messageId": id2, "targetRoomIds": [other], "additionalContent": "fyi"}),
        )
        .await
        .expect(201);
    assert_eq!(fwd.data()[0]["roomId"], other.as_str());
    app.post(
        "/api/v1/messages/forward",
        &carol.access,
        json!({"messageId": id2, "targetRoomIds": [other]}),
    )
    .await
    .expect(404);

    // Delete keeps a tombstone.
    let deleted = app
        .delete(&format!("/api/v1/messages/{id2}"), &bob.access)
        .await
        .expect(200);
    assert_eq!(deleted.data()["content"]["isDeleted"], true);
    let page = app
        .get(&format!("/api/v1/messages/{room}"), &alice.access)
        .await
        .expect(200);
    assert!(
        page.data()
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id2.as_str() && m["content"]["isDeleted"] == true)
    );
}

#[tokio::test]
async fn schedules() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let room = app.group(&alice, "team", &[&bob]).await;
    let at = chrono::Utc::now() + chrono::Duration::hours(2);
    let created = app
        .post("/api/v1/messages/schedule", &alice.access, json!({"roomId": room, "content": "later", "scheduledAt": at.to_rfc3339(), "repeat": "DAILY"}))
        .await
        .expect(201);
    assert_eq!(created.data()["status"], "PENDING");
    assert_eq!(created.data()["repeat"], "DAILY");
    let id = created.data_str("id");
    let list = app
        .get("/api/v1/messages/schedule", &alice.access)
        .await
        .expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 1);
    let updated = app
        .put(
            &format!("/api/v1/messages/schedule/{id}"),
            &alice.access,
            json!({"content": "even later", "repeat": null}),
        )
        .await
        .expect(200);
    assert_eq!(updated.data()["content"], "even later");
    assert!(updated.data()["repeat"].is_null());
    app.delete(&format!("/api/v1/messages/schedule/{id}"), &bob.access)
        .await
        .expect_err(404, "SCHEDULE_NOT_FOUND");
    let canceled = app
        .delete(&format!("/api/v1/messages/schedule/{id}"), &alice.access)
        .await
        .expect(200);
    assert_eq!(canceled.data()["status"], "CANCELED");
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    app.post(
        "/api/v1/messages/schedule",
        &alice.access,
        json!({"roomId": room, "content": "x", "scheduledAt": past}),
    )
    .await
    .expect_err(400, "SCHEDULE_IN_PAST");
    app.post(
        "/api/v1/messages/schedule",
        &alice.access,
        json!({"roomId": room, "content": "x", "scheduledAt": "tomorrow"}),
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");
    app.post(
        "/api/v1/messages/schedule",
        &carol.access,
        json!({"roomId": room, "content": "x", "scheduledAt": at.to_rfc3339()}),
    )
    .await
    .expect(403);
}

#[tokio::test]
async fn friends_blocking_groups_notifications() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;

    let req = app.friend_request(&alice, &bob.user_id).await.expect(201);
    assert_eq!(req.data()["status"], "PENDING");
    assert_eq!(req.data()["fromUser"]["username"], "alice");
    let request_id = req.data_str("requestId");
    app.friend_request(&alice, &bob.user_id).await.expect(409);
    app.friend_request(&alice, &alice.user_id)
        .await
        .expect_err(400, "FRIEND_REQUEST_TO_SELF");

    let pending = app
        .get("/api/v1/users/friends/requests", &bob.access)
        .await
        .expect(200);
    assert_eq!(
        pending.data()["incoming"][0]["requestId"],
        request_id.as_str()
    );
    assert_eq!(pending.data()["outgoing"].as_array().unwrap().len(), 0);

    // Notification for bob.
    let count = app
        .get("/api/v1/notifications/unread/count", &bob.access)
        .await
        .expect(200);
    assert_eq!(count.data()["count"], 1);
    let notes = app
        .get("/api/v1/notifications?limit=10&offset=0", &bob.access)
        .await
        .expect(200);
    assert_eq!(notes.data()[0]["type"], "FRIEND_REQUEST");
    let note_id = notes.data()[0]["id"].as_str().unwrap().to_owned();
    app.put(
        &format!("/api/v1/notifications/{note_id}/read"),
        &carol.access,
        json!({}),
    )
    .await
    .expect(404);
    app.put(
        &format!("/api/v1/notifications/{note_id}/read"),
        &bob.access,
        json!({}),
    )
    .await
    .expect(200);
    app.put("/api/v1/notifications/read/all", &bob.access, json!({}))
        .await
        .expect(200);
    app.delete(&format!("/api/v1/notifications/{note_id}"), &bob.access)
        .await
        .expect(200);

    // Only the addressee accepts.
    app.post(
        &format!("/api/v1/users/friends/requests/{request_id}/accept"),
        &carol.access,
        json!({}),
    )
    .await
    .expect(404);
    let accepted = app
        .post(
            &format!("/api/v1/users/friends/requests/{request_id}/accept"),
            &bob.access,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(accepted.data()["status"], "ACCEPTED");
    assert!(accepted.data()["roomId"].is_string());
    let friends = app
        .get("/api/v1/users/friends", &alice.access)
        .await
        .expect(200);
    assert_eq!(friends.data()[0]["username"], "bob");

    // Recommendations: carol befriends bob, so alice gets carol.
    let r = app.friend_request(&carol, &bob.user_id).await.expect(201);
    let rid = r.data_str("requestId");
    app.post(
        &format!("/api/v1/users/friends/requests/{rid}/accept"),
        &bob.access,
        json!({}),
    )
    .await
    .expect(200);
    let recs = app
        .get(
            "/api/v1/users/recommendations?maxDepth=2&limit=10&skip=0",
            &alice.access,
        )
        .await
        .expect(200);
    assert_eq!(recs.data()[0]["user"]["username"], "carol");
    assert_eq!(recs.data()[0]["mutualFriends"], 1);
    app.get("/api/v1/users/recommendations?maxDepth=9", &alice.access)
        .await
        .expect(400);

    // Friend groups.
    let g = app
        .post(
            "/api/v1/users/friends/groups",
            &alice.access,
            json!({"name": "close", "memberIds": [bob.user_id]}),
        )
        .await
        .expect(201);
    let gid = g.data_str("id");
    assert_eq!(g.data()["memberIds"], json!([bob.user_id]));
    app.put(
        &format!("/api/v1/users/friends/groups/{gid}"),
        &alice.access,
        json!({"name": "closest"}),
    )
    .await
    .expect(200);
    app.delete(
        &format!("/api/v1/users/friends/groups/{gid}/members/{}", bob.user_id),
        &alice.access,
    )
    .await
    .expect(200);
    app.post(
        &format!(
            "/api/v1/users/friends/groups/{gid}/members/{}",
            carol.user_id
        ),
        &alice.access,
        json!({}),
    )
    .await
    .expect(404);
    app.post(
        &format!("/api/v1/users/friends/groups/{gid}/members/{}", bob.user_id),
        &alice.access,
        json!({}),
    )
    .await
    .expect(200);
    let groups = app
        .get("/api/v1/users/friends/groups", &alice.access)
        .await
        .expect(200);
    assert_eq!(groups.data()[0]["name"], "closest");
    app.delete(&format!("/api/v1/users/friends/groups/{gid}"), &bob.access)
        .await
        .expect(404);
    app.delete(
        &format!("/api/v1/users/friends/groups/{gid}"),
        &alice.access,
    )
    .await
    .expect(200);

    // Remove friend; block.
    app.delete(
        &format!("/api/v1/users/friends/{}", bob.user_id),
        &alice.access,
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/users/block",
        &alice.access,
        json!({"targetUserId": carol.user_id}),
    )
    .await
    .expect(200);
    let blocked = app
        .get("/api/v1/users/blocked", &alice.access)
        .await
        .expect(200);
    assert_eq!(blocked.data()[0]["username"], "carol");
    app.friend_request(&carol, &alice.user_id)
        .await
        .expect_err(403, "USER_BLOCKED");
    app.delete(
        &format!("/api/v1/users/block/{}", carol.user_id),
        &alice.access,
    )
    .await
    .expect(200);
    let r = app.friend_request(&carol, &alice.user_id).await.expect(201);
    let rid = r.data_str("requestId");
    app.post(
        &format!("/api/v1/users/friends/requests/{rid}/reject"),
        &alice.access,
        json!({}),
    )
    .await
    .expect(200);
    let r = app.friend_request(&carol, &alice.user_id).await.expect(201);
    let rid = r.data_str("requestId");
    let canceled = app
        .delete(
            &format!("/api/v1/users/friends/requests/{rid}"),
            &carol.access,
        )
        .await
        .expect(200);
    assert_eq!(canceled.data()["status"], "CANCELED");
}

/// Reads SSE frames from a response body until one contains `needle`.
async fn read_until(body: &mut axum::body::Body, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(needle) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen:?}"));
        let frame = frame.expect("stream ended").expect("body error");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
}

#[tokio::test]
async fn sse_streams_notifications_and_resumes() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;

    app.call(Method::GET, "/api/v1/sse/subscribe", None, None)
        .await
        .expect_err(401, "INVALID_TOKEN");

    let req = Request::get(format!("/api/v1/sse/subscribe?token={}", bob.access))
        .body(Body::empty())
        .unwrap();
    let resp = app.raw(req).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = resp.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: unread-counts").await;

    app.friend_request(&alice, &bob.user_id).await.expect(201);
    read_until(&mut body, &mut seen, "event: notification").await;
    assert!(seen.contains("FRIEND_REQUEST"), "{seen}");
    let id_line = seen
        .lines()
        .find(|l| l.starts_with("id: "))
        .expect("event id")
        .to_owned();
    let last_id = id_line.trim_start_matches("id: ").to_owned();

    // Resume from that id while the stream is open: nothing missed yet, then a new event.
    let req = Request::get("/api/v1/sse/subscribe")
        .header("authorization", format!("Bearer {}", bob.access))
        .header("last-event-id", &last_id)
        .body(Body::empty())
        .unwrap();
    let mut resumed = app.raw(req).await.into_body();
    let carol = app.user("carol").await;
    app.friend_request(&carol, &bob.user_id).await.expect(201);
    let mut seen2 = String::new();
    read_until(&mut resumed, &mut seen2, "carol").await;
    assert!(
        !seen2.contains(&format!("id: {last_id}\n")),
        "already-seen event replayed: {seen2}"
    );

    // An unknown id asks the client to resync.
    let req = Request::get("/api/v1/sse/subscribe")
        .header("authorization", format!("Bearer {}", bob.access))
        .header("last-event-id", "1-999999")
        .body(Body::empty())
        .unwrap();
    let mut stale = app.raw(req).await.into_body();
    let mut seen3 = String::new();
    read_until(&mut stale, &mut seen3, "event: resync").await;
}

#[tokio::test]
async fn ops_and_docs() {
    let app = TestApp::new().await;
    let health = app
        .call(Method::GET, "/health", None, None)
        .await
        .expect(200);
    assert_eq!(health.data()["status"], "UP");
    let ready = app
        .call(Method::GET, "/ready", None, None)
        .await
        .expect(200);
    assert!(
        ready.data()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "UP")
    );

    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = app.raw(req).await;
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("shoot_http_requests_total{class=\"2xx\"}"),
        "{text}"
    );

    let doc = app
        .call(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/login",
        "/api/v1/messages/{roomId}",
        "/api/v1/chatrooms/{roomId}/participants",
        "/api/v1/sse/subscribe",
        "/ready",
    ] {
        assert!(paths.contains_key(p), "{p} missing from OpenAPI");
    }
    let req = Request::get("/swagger-ui/").body(Body::empty()).unwrap();
    let resp = app.raw(req).await;
    assert_eq!(resp.status(), 200);

    // Shutting down makes the instance unready.
    app.state.shutdown.cancel();
    let down = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(down.status, 503);
    assert_eq!(down.body["success"], false);
    assert_eq!(down.body["errorCode"], "BACKEND_UNAVAILABLE");
    assert_eq!(down.data()["status"], "DOWN");
}

#[tokio::test]
async fn real_listener_serves_and_shuts_down() {
    let server = start_server(Config::for_tests()).await;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let signup = client
        .post(format!("{base}/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body(json!({"username": "dora", "nickname": "Dora", "email": "dora@example.com", "password": "Secret#123"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(json!({"username": "dora", "password": "Secret#123"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hangs")
        .unwrap();
    assert!(
        client.get(format!("{base}/health")).send().await.is_err(),
        "still serving after shutdown"
    );
}
