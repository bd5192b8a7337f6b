//! Hostile REST input: oversized and malformed bodies, absurd query and path parameters and
//! over-long text fields. Each request must get the documented 4xx status with its stable
//! `errorCode` in the error envelope (never a 5xx, a panic or a stack overflow), and must leave
//! nothing behind: every test reads the state back after the rejection.

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};

use crate::support::{Reply, Session, TestApp, str_of};

/// Sends `body` as is, declared as JSON.
async fn json_bytes(
    app: &TestApp,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let body = Body::from(body);
    app.request(method, uri, token, Some("application/json"), body)
        .await
}

/// A root message in `room`, stored: its id.
async fn message(app: &TestApp, who: &Session, room: &str) -> String {
    let m = app.send_saved(who, room, "original", "hostile-root").await;
    str_of(&m, "id")
}

async fn room_list(app: &TestApp, who: &Session) -> Value {
    app.get("/api/v1/chatrooms", &who.access)
        .await
        .expect(200)
        .data()
        .clone()
}

async fn history(app: &TestApp, who: &Session, room: &str) -> Value {
    app.get(&format!("/api/v1/messages/{room}?limit=100"), &who.access)
        .await
        .expect(200)
        .data()
        .clone()
}

async fn me(app: &TestApp, who: &Session) -> Value {
    app.get("/api/v1/users/me", &who.access)
        .await
        .expect(200)
        .data()
        .clone()
}

/// Whether a user named `username` exists (searched by a signed-in user).
async fn user_exists(app: &TestApp, searcher: &Session, username: &str) -> bool {
    let found = app
        .get(
            &format!("/api/v1/users/search?q={username}"),
            &searcher.access,
        )
        .await
        .expect(200);
    found
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == username)
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_not_applied() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let before = me(&app, &alice).await;
    let over = app.state.config.http_body_limit + 1;

    // A well-formed signup whose bio pushes the body over the limit.
    let signup = json!({"username": "mallory", "nickname": "Mallory", "email": "m@example.com",
        "password": "Secret#123", "bio": long(over)});
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        signup.to_string().into_bytes(),
    )
    .await
    .expect_err(413, "PAYLOAD_TOO_LARGE");
    assert!(!user_exists(&app, &alice, "mallory").await);

    let profile = json!({"nickname": "Big", "bio": long(over)});
    json_bytes(
        &app,
        Method::PUT,
        "/api/v1/users/me",
        Some(&alice.access),
        profile.to_string().into_bytes(),
    )
    .await
    .expect_err(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(me(&app, &alice).await, before);

    // The optional-body extractor (refresh) has the same limit.
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        format!(r#"{{"refreshToken":"{}"}}"#, long(over)).into_bytes(),
    )
    .await
    .expect_err(413, "PAYLOAD_TOO_LARGE");

    // Garbage over the limit is refused for its size before it is parsed.
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/chatrooms",
        Some(&alice.access),
        vec![b'{'; over],
    )
    .await
    .expect_err(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(room_list(&app, &alice).await, json!([]));
}

#[tokio::test]
async fn malformed_utf8_and_broken_json_are_400() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.group(&alice, "team", &[&bob]).await;
    let id = message(&app, &alice, &room).await;
    let before = history(&app, &alice, &room).await;

    let edit = format!("/api/v1/messages/{id}");
    for body in [
        &b"{\"content\":\"\xff\xfe\"}"[..],
        b"{\"content\":\"ok\xc3\x28\"}",
        b"{\"content\":\"\xed\xa0\x80\"}",
        b"{\"content\":\"\\ud800\"}",
        b"{\"content\":\"x\"",
        b"{\"content\":\"x\"}}",
        b"\xef\xbb\xbf{\"content\":\"bom\"}",
        b"{\"content\":\"x\",}",
        b"{content:'x'}",
        b"null",
        b"[]",
        b"",
        b"{\"content\":12}",
        b"{\"content\":\"a\",\"content\":\"b\"}",
    ] {
        let r = json_bytes(&app, Method::PUT, &edit, Some(&alice.access), body.to_vec()).await;
        assert_eq!(
            r.status,
            400,
            "body {:?}: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        r.expect_err(400, "VALIDATION_FAILED");
    }
    assert_eq!(history(&app, &alice, &room).await, before);

    // Invalid UTF-8 in a signup never creates the user.
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        b"{\"username\":\"eve\",\"nickname\":\"\xff\xff\",\"email\":\"eve@example.com\",\"password\":\"Secret#123\"}".to_vec(),
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");
    assert!(!user_exists(&app, &alice, "eve").await);
}

#[tokio::test]
async fn deeply_nested_json_is_400_not_a_stack_overflow() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let depth = 10_000;
    let arrays = format!(
        r#"{{"type":"GROUP","title":"t","participantIds":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let objects = format!(
        r#"{{"type":"GROUP","title":"t","participantIds":[{}1{}]}}"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    // Ids are parsed through a buffering (recursive) deserializer: serde_json's recursion
    // limit stops it.
    for body in [arrays, objects] {
        let r = json_bytes(
            &app,
            Method::POST,
            "/api/v1/chatrooms",
            Some(&alice.access),
            body.into_bytes(),
        )
        .await
        .expect_err(400, "VALIDATION_FAILED");
        let message = r.body["message"].as_str().unwrap();
        assert!(message.contains("recursion limit exceeded"), "{message}");
    }
    let top_level = "[".repeat(depth) + &"]".repeat(depth);
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/chatrooms",
        Some(&alice.access),
        top_level.into_bytes(),
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");
    assert_eq!(room_list(&app, &alice).await, json!([]));
    // An unknown field is skipped without recursion, however deep: the request is served.
    let nested_unknown = format!(
        r#"{{"username":"deep","nickname":"Deep","email":"deep@example.com","password":"Secret#123","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    json_bytes(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        nested_unknown.into_bytes(),
    )
    .await
    .expect(201);
    assert!(user_exists(&app, &alice, "deep").await);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_400() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let body = json!({"type": "GROUP", "title": "t", "participantIds": [bob.user_id]}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("json"),
    ] {
        let r = app
            .request(
                Method::POST,
                "/api/v1/chatrooms",
                Some(&alice.access),
                content_type,
                Body::from(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{content_type:?}: {}", r.body);
        r.expect_err(400, "VALIDATION_FAILED");
    }
    assert_eq!(room_list(&app, &alice).await, json!([]));
    // The same body declared as JSON (with a charset parameter) is accepted.
    app.request(
        Method::POST,
        "/api/v1/chatrooms",
        Some(&alice.access),
        Some("application/json; charset=utf-8"),
        Body::from(body),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn absurd_query_and_path_parameters_are_400() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.group(&alice, "team", &[&bob]).await;
    let id = message(&app, &alice, &room).await;
    let huge = "99999999999999999999999999";
    let rejected = [
        format!("/api/v1/messages/{room}?limit=-1"),
        format!("/api/v1/messages/{room}?limit=0"),
        format!("/api/v1/messages/{room}?limit={huge}"),
        format!("/api/v1/messages/{room}?limit=ten"),
        format!("/api/v1/messages/{room}?limit=1.5"),
        format!("/api/v1/messages/{room}?before=-5"),
        format!("/api/v1/messages/{room}?after=-1"),
        format!("/api/v1/messages/{room}?before={huge}"),
        format!("/api/v1/messages/{room}?after=abc"),
        "/api/v1/messages/abc".to_owned(),
        format!("/api/v1/messages/{huge}"),
        "/api/v1/messages/1e3".to_owned(),
        "/api/v1/messages/detail/abc".to_owned(),
        format!("/api/v1/messages/detail/{huge}"),
        "/api/v1/chatrooms/not-a-room".to_owned(),
        "/api/v1/users/%00".to_owned(),
        "/api/v1/users/search".to_owned(),
        "/api/v1/users/search?q=a&limit=-3".to_owned(),
        "/api/v1/users/recommendations?maxDepth=300".to_owned(),
        "/api/v1/users/recommendations?maxDepth=-1".to_owned(),
        "/api/v1/users/recommendations?maxDepth=0".to_owned(),
        "/api/v1/users/recommendations?skip=-1".to_owned(),
        "/api/v1/notifications?limit=-1".to_owned(),
        format!("/api/v1/notifications?offset={huge}"),
        "/api/v1/messages/thread?parentId=abc".to_owned(),
        "/api/v1/messages/thread".to_owned(),
        format!("/api/v1/messages/thread?parentId={id}&limit=-1"),
        "/api/v1/messages/threads?roomId=".to_owned(),
        "/api/v1/messages/search?roomId=abc&q=x".to_owned(),
        format!("/api/v1/messages/search?roomId={room}&q=x&limit={huge}"),
        "/api/v1/messages/bookmarks?roomId=abc".to_owned(),
    ];
    for uri in &rejected {
        let r = app.get(uri, &alice.access).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.body);
        r.expect_err(400, "VALIDATION_FAILED");
    }
    for uri in [
        "/api/v1/messages/mark-read?roomId=abc",
        "/api/v1/messages/mark-read",
    ] {
        app.call(Method::POST, uri, Some(&alice.access), None)
            .await
            .expect_err(400, "VALIDATION_FAILED");
    }

    // Large but well-formed values are clamped or simply find nothing.
    let page = app
        .get(
            &format!("/api/v1/messages/{room}?limit=1000000&before=9223372036854775807"),
            &alice.access,
        )
        .await
        .expect(200);
    assert_eq!(page.data().as_array().unwrap().len(), 1);
    for uri in [
        "/api/v1/notifications?limit=1000000&offset=18446744073709551615".to_owned(),
        "/api/v1/users/recommendations?limit=18446744073709551615&skip=18446744073709551615"
            .to_owned(),
        "/api/v1/users/search?q=bob&limit=18446744073709551615".to_owned(),
        format!("/api/v1/messages/{room}?after=9223372036854775807"),
        format!("/api/v1/messages/threads?roomId={room}&limit=18446744073709551615"),
    ] {
        let r = app.get(&uri, &alice.access).await;
        assert_eq!(r.status, 200, "{uri}: {}", r.body);
    }
    // Negative and unknown ids are simply not found (or not the caller's).
    for (uri, code) in [
        ("/api/v1/chatrooms/-1", "ROOM_NOT_FOUND"),
        ("/api/v1/messages/detail/-7", "MESSAGE_NOT_FOUND"),
        ("/api/v1/users/-3", "USER_NOT_FOUND"),
    ] {
        app.get(uri, &alice.access).await.expect_err(404, code);
    }
    assert_eq!(
        history(&app, &alice, &room).await.as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn over_long_text_fields_are_rejected_and_nothing_is_persisted() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let room = app.group(&alice, "team", &[&bob]).await;
    let id = message(&app, &alice, &room).await;
    let limits = app.state.engine.limits().clone();
    let t = &alice.access;

    // Sending: thread replies, forwards and scheduled messages.
    let msg_max = limits.message_max_chars;
    let sends = [
        (
            "/api/v1/messages/thread",
            json!({"parentMessageId": id, "content": long(msg_max + 1), "tempId": "t-long"}),
            "MESSAGE_TOO_LONG",
        ),
        (
            "/api/v1/messages/thread",
            json!({"parentMessageId": id, "content": "ok", "tempId": long(65)}),
            "INVALID_TEMP_ID",
        ),
        (
            "/api/v1/messages/thread",
            json!({"parentMessageId": id, "content": "ok", "tempId": "t-type", "type": long(5000)}),
            "INVALID_MESSAGE_TYPE",
        ),
        (
            "/api/v1/messages/forward",
            json!({"messageId": id, "targetRoomIds": [room], "additionalContent": long(msg_max + 1)}),
            "MESSAGE_TOO_LONG",
        ),
        (
            "/api/v1/messages/schedule",
            json!({"roomId": room, "content": long(msg_max + 1), "scheduledAt": "2999-01-01T00:00:00Z"}),
            "MESSAGE_TOO_LONG",
        ),
        (
            "/api/v1/messages/schedule",
            json!({"roomId": room, "content": "ok", "scheduledAt": long(10_000)}),
            "VALIDATION_FAILED",
        ),
        (
            "/api/v1/messages/reaction",
            json!({"messageId": id, "reaction": long(10_000)}),
            "UNKNOWN_REACTION",
        ),
        (
            "/api/v1/messages/bookmark",
            json!({"messageId": id, "note": long(201)}),
            "VALIDATION_FAILED",
        ),
    ];
    for (uri, body, code) in sends {
        let r = app.post(uri, t, body).await;
        assert_eq!(r.code(), code, "{uri}: {}", r.body);
        r.expect_err(400, code);
    }
    let edit = format!("/api/v1/messages/{id}");
    app.put(&edit, t, json!({"content": long(msg_max + 1)}))
        .await
        .expect_err(400, "MESSAGE_TOO_LONG");
    // Only white space is empty.
    app.put(&edit, t, json!({"content": " \n\t\u{3000} "}))
        .await
        .expect_err(400, "MESSAGE_EMPTY");
    let msgs = history(&app, &alice, &room).await;
    assert_eq!(msgs.as_array().unwrap().len(), 1, "{msgs}");
    assert_eq!(msgs[0]["content"]["text"], "original");
    assert_eq!(msgs[0]["replyCount"], 0);
    assert_eq!(msgs[0]["reactions"], json!({}));
    let schedules = app.get("/api/v1/messages/schedule", t).await.expect(200);
    assert_eq!(schedules.data(), &json!([]));
    let bookmarks = app.get("/api/v1/messages/bookmarks", t).await.expect(200);
    assert_eq!(bookmarks.data(), &json!([]));

    // Rooms: create, create several, update, notice.
    let rooms_before = room_list(&app, &alice).await;
    let title_max = limits.room_title_max;
    let creates = [
        (
            "/api/v1/chatrooms",
            json!({"type": "GROUP", "title": long(title_max + 1), "participantIds": [bob.user_id]}),
        ),
        (
            "/api/v1/chatrooms",
            json!({"type": long(5000), "title": "t", "participantIds": [bob.user_id]}),
        ),
        (
            "/api/v1/chatrooms/multiple",
            json!({"rooms": [{"type": "GROUP", "title": long(title_max + 1), "participantIds": [bob.user_id]}]}),
        ),
    ];
    for (uri, body) in creates {
        let r = app.post(uri, t, body).await;
        assert_eq!(r.status, 400, "{uri}: {}", r.body);
        r.expect(400);
    }
    let room_uri = format!("/api/v1/chatrooms/{room}");
    app.put(&room_uri, t, json!({"title": long(title_max + 1)}))
        .await
        .expect_err(400, "INVALID_ROOM_TITLE");
    let ann_max = limits.announcement_max;
    // A valid title next to an over-long announcement: neither is applied.
    app.put(
        &room_uri,
        t,
        json!({"title": "renamed", "announcement": long(ann_max + 1)}),
    )
    .await
    .expect_err(400, "ANNOUNCEMENT_TOO_LONG");
    app.post(
        &format!("{room_uri}/notice"),
        t,
        json!({"announcement": long(ann_max + 1)}),
    )
    .await
    .expect_err(400, "ANNOUNCEMENT_TOO_LONG");
    assert_eq!(room_list(&app, &alice).await, rooms_before);
    let details = app.get(&room_uri, t).await.expect(200);
    assert_eq!(details.data()["title"], "team");
    assert!(details.data()["announcement"].is_null(), "{}", details.body);

    // Profile and status.
    let profile_before = me(&app, &alice).await;
    let profiles = [
        (
            json!({"nickname": long(limits.nickname_max + 1)}),
            "INVALID_NICKNAME",
        ),
        (json!({"bio": long(limits.bio_max + 1)}), "BIO_TOO_LONG"),
        (
            json!({"nickname": "Fine", "profileImageUrl": format!("https://x.example/{}", long(2100))}),
            "VALIDATION_FAILED",
        ),
        (
            json!({"nickname": "Fine", "bio": long(limits.bio_max + 1)}),
            "BIO_TOO_LONG",
        ),
    ];
    for (body, code) in profiles {
        app.put("/api/v1/users/me", t, body)
            .await
            .expect_err(400, code);
    }
    app.put("/api/v1/users/status", t, json!({"status": long(5000)}))
        .await
        .expect_err(400, "VALIDATION_FAILED");
    assert_eq!(me(&app, &alice).await, profile_before);

    // Friend groups.
    let groups = [
        json!({"name": long(limits.friend_group_name_max + 1)}),
        json!({"name": "ok", "description": long(201)}),
    ];
    for body in groups {
        app.post("/api/v1/users/friends/groups", t, body)
            .await
            .expect_err(400, "INVALID_FRIEND_GROUP");
    }
    let list = app.get("/api/v1/users/friends/groups", t).await.expect(200);
    assert_eq!(list.data(), &json!([]));

    // Sign-up: every text field.
    let base = json!({"username": "newbie", "nickname": "Newbie", "email": "newbie@example.com",
        "password": "Secret#123", "bio": "hi"});
    let signups = [
        (
            "username",
            long(limits.username_max + 1),
            "INVALID_USERNAME",
        ),
        (
            "nickname",
            long(limits.nickname_max + 1),
            "INVALID_NICKNAME",
        ),
        (
            "email",
            format!("{}@example.com", long(250)),
            "INVALID_EMAIL",
        ),
        ("password", format!("Aa1#{}", long(5000)), "WEAK_PASSWORD"),
        ("bio", long(limits.bio_max + 1), "BIO_TOO_LONG"),
    ];
    for (field, value, code) in signups {
        let mut body = base.clone();
        body[field] = json!(value);
        let r = app
            .call(Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await;
        assert_eq!(r.code(), code, "{field}: {}", r.body);
        r.expect_err(400, code);
    }
    assert!(!user_exists(&app, &alice, "newbie").await);
}
