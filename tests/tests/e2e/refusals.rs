//! Authorisation and bad-input refusals, over REST and STOMP.

use reqwest::Method;
use serde_json::{Value, json};
use shoot_tests::{Stomp, WAIT, deadline};

use crate::{messages_topic, pair, send_saved, stomp_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_are_refused_on_every_room_scoped_endpoint() {
    let p = pair().await;
    let mut a = stomp_on(&p.server, &p.a, &[]).await;
    let m = send_saved(&p.server, &mut a, &p.a, &p.room, "private").await;
    let c = p.server.user("carol").await;
    let d = p.server.user("dave").await;
    let own = p.server.group(&c, "carol's", &[&d]).await;
    let r = &p.room;

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/chatrooms/{r}"), None),
        (
            Method::PUT,
            format!("/chatrooms/{r}"),
            Some(json!({"title": "mine now"})),
        ),
        (Method::DELETE, format!("/chatrooms/{r}"), None),
        (Method::GET, format!("/chatrooms/{r}/participants"), None),
        (
            Method::POST,
            format!("/chatrooms/{r}/participants"),
            Some(json!({"participantIds": [c.id]})),
        ),
        (
            Method::DELETE,
            format!("/chatrooms/{r}/participants/{}", p.b.id),
            None,
        ),
        (Method::GET, format!("/chatrooms/{r}/notice"), None),
        (
            Method::POST,
            format!("/chatrooms/{r}/notice"),
            Some(json!({"announcement": "hi"})),
        ),
        (Method::POST, format!("/chatrooms/{r}/favorite"), None),
        (Method::GET, format!("/messages/{r}"), None),
        (Method::GET, format!("/messages/detail/{m}"), None),
        (
            Method::PUT,
            format!("/messages/{m}"),
            Some(json!({"content": "x"})),
        ),
        (Method::DELETE, format!("/messages/{m}"), None),
        (
            Method::POST,
            format!("/messages/mark-read?roomId={r}"),
            None,
        ),
        (
            Method::POST,
            "/messages/forward".to_owned(),
            Some(json!({"messageId": m, "targetRoomIds": [own]})),
        ),
        (
            Method::POST,
            "/messages/pin".to_owned(),
            Some(json!({"messageId": m})),
        ),
        (Method::DELETE, format!("/messages/pin/{m}"), None),
        (Method::GET, format!("/messages/pins/{r}"), None),
        (
            Method::POST,
            "/messages/reaction".to_owned(),
            Some(json!({"messageId": m, "reaction": "like"})),
        ),
        (
            Method::DELETE,
            "/messages/reaction".to_owned(),
            Some(json!({"messageId": m, "reaction": "like"})),
        ),
        (Method::GET, format!("/messages/thread?parentId={m}"), None),
        (
            Method::POST,
            "/messages/thread".to_owned(),
            Some(json!({"parentMessageId": m, "content": "x", "tempId": "x"})),
        ),
        (Method::GET, format!("/messages/threads?roomId={r}"), None),
        (
            Method::POST,
            "/messages/schedule".to_owned(),
            Some(
                json!({"roomId": r, "content": "x", "scheduledAt": crate::rfc3339_in(std::time::Duration::from_secs(3600))}),
            ),
        ),
        (
            Method::POST,
            "/messages/bookmark".to_owned(),
            Some(json!({"messageId": m})),
        ),
        (
            Method::GET,
            format!("/messages/search?roomId={r}&q=private"),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body) in cases {
        let resp = p
            .server
            .call(method.clone(), &path, Some(&c.token), body)
            .await;
        resp.check_envelope();
        if resp.status != 403 && resp.status != 404 {
            wrong.push(format!("{method} {path} → {} {}", resp.status, resp.body));
        }
        assert!(
            !resp.body.to_string().contains("\"private\""),
            "{method} {path} leaked content: {}",
            resp.body
        );
    }
    assert!(
        wrong.is_empty(),
        "outsider not refused (expected 403/404):\n{}",
        wrong.join("\n")
    );
    // The room is intact and not listed for the outsider.
    let rooms = p.server.get("/chatrooms", &c.token).await.expect(200);
    assert!(
        crate::ids(rooms.data()).iter().all(|id| id != r),
        "{}",
        rooms.body
    );
    let history = p.server.history(&p.a, r).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["content"]["text"], "private");
    assert_eq!(history[0]["reactions"], json!({}));

    // STOMP: subscribing to another room's destinations gets an ERROR frame, not data.
    let mut cs = stomp_on(&p.server, &c, &["/user/queue/message-status"]).await;
    for dest in [
        messages_topic(r),
        format!("/topic/message/status/{r}"),
        format!("/topic/typing/{r}"),
        format!("/topic/active/{r}"),
        format!("/topic/thread/{m}"),
        format!("/queue/user/{}", p.a.id),
    ] {
        let refused = cs.subscribe(&dest).await;
        let err = refused
            .err()
            .unwrap_or_else(|| panic!("SUBSCRIBE {dest} by an outsider was accepted"));
        assert_eq!(err.command, "ERROR", "{err:?}");
    }
    // The session survives the refusals and a send into the room is refused with a status.
    let receipt = cs.chat(r, "let me in", "intruder").await;
    assert_eq!(receipt.header("status"), Some("FAILED"), "{receipt:?}");
    let code = receipt.header("error-code").unwrap_or_default().to_owned();
    assert!(
        code == "NOT_ROOM_PARTICIPANT" || code == "ROOM_NOT_FOUND",
        "{receipt:?}"
    );
    let status = cs
        .next_json_on("/user/queue/message-status", deadline(WAIT), |v| {
            v["tempId"] == "intruder"
        })
        .await
        .expect("FAILED status for the outsider's send");
    assert_eq!(status["status"], "FAILED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_bad_tokens_are_refused() {
    let p = pair().await;
    for path in [
        "/chatrooms",
        "/auth/me",
        "/users/friends",
        &format!("/messages/{}", p.room),
    ] {
        let r = p.server.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 401, "GET {path} without a token: {}", r.body);
        r.check_envelope();
        let r = p
            .server
            .call(Method::GET, path, Some("garbage.token.value"), None)
            .await;
        assert_eq!(r.status, 401, "GET {path} with a bad token: {}", r.body);
    }
    // A refresh token is not an access token.
    let r = p
        .server
        .call(Method::GET, "/auth/me", Some(&p.a.refresh), None)
        .await;
    assert_eq!(
        r.status, 401,
        "refresh token used as access token: {}",
        r.body
    );

    // STOMP: CONNECT without a token or with a bad one gets an ERROR.
    for token in [None, Some("garbage")] {
        let r = Stomp::connect(&p.server.ws_url(), token).await;
        let err = r
            .err()
            .unwrap_or_else(|| panic!("CONNECT with token {token:?} accepted"));
        assert!(err.to_string().contains("ERROR"), "{err}");
    }
    // `?token=` on the handshake is accepted.
    let url = format!("{}?token={}", p.server.ws_url(), p.a.token);
    Stomp::connect(&url, None)
        .await
        .expect("handshake token accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_codes() {
    let p = pair().await;
    let s = &p.server;
    // Malformed JSON: 400 VALIDATION_FAILED envelope.
    for (path, token) in [
        ("/auth/signup", None),
        ("/auth/login", None),
        ("/chatrooms", Some(p.a.token.as_str())),
    ] {
        s.call_raw(
            Method::POST,
            path,
            token,
            "application/json",
            "{\"username\": ",
        )
        .await
        .expect_err(400, "VALIDATION_FAILED");
    }
    // Wrong types and missing fields too.
    s.call_raw(
        Method::POST,
        "/users/friends/requests",
        Some(&p.a.token),
        "application/json",
        "{\"targetUserId\": true}",
    )
    .await
    .expect_err(400, "VALIDATION_FAILED");
    s.post("/messages/pin", &p.a.token, json!({}))
        .await
        .expect_err(400, "VALIDATION_FAILED");
    s.get("/messages/not-a-number", &p.a.token)
        .await
        .expect_err(400, "VALIDATION_FAILED");

    let max = s.config().limits.message_max_chars;
    let mut a = stomp_on(s, &p.a, &["/user/queue/message-status"]).await;
    let root = send_saved(s, &mut a, &p.a, &p.room, "root").await;
    // (content, expected error code or None for accepted)
    let cases: Vec<(String, Option<&str>)> = vec![
        ("x".repeat(max), None),
        ("x".repeat(max + 1), Some("MESSAGE_TOO_LONG")),
        (String::new(), Some("MESSAGE_EMPTY")),
        ("   \n\t ".to_owned(), Some("MESSAGE_EMPTY")),
    ];
    for (i, (content, code)) in cases.iter().enumerate() {
        let temp = format!("bad-{i}");
        let receipt = a.chat(&p.room, content, &temp).await;
        match code {
            None => assert_eq!(
                receipt.header("status"),
                Some("SENT_TO_KAFKA"),
                "{} chars: {receipt:?}",
                content.len()
            ),
            Some(code) => {
                assert_eq!(
                    receipt.header("status"),
                    Some("FAILED"),
                    "{} chars: {receipt:?}",
                    content.len()
                );
                assert_eq!(receipt.header("error-code"), Some(*code), "{receipt:?}");
                let st = a
                    .next_json_on("/user/queue/message-status", deadline(WAIT), |v| {
                        v["tempId"] == temp.as_str() && v["status"] == "FAILED"
                    })
                    .await
                    .unwrap_or_else(|| panic!("FAILED status for {temp}"));
                assert_eq!(st["errorCode"], *code, "{st}");
            }
        }
        // Same rules over REST (thread reply) and for edits.
        let r = s
            .post(
                "/messages/thread",
                &p.a.token,
                json!({"parentMessageId": root, "content": content, "tempId": format!("rest-{i}")}),
            )
            .await;
        let e = s
            .put(
                &format!("/messages/{root}"),
                &p.a.token,
                json!({"content": content}),
            )
            .await;
        match code {
            None => {
                r.expect(201);
                e.expect(200);
            }
            Some(code) => {
                r.expect_err(400, code);
                e.expect_err(400, code);
            }
        }
    }
    // A send with a malformed payload is answered with FAILED, never silence.
    let receipt = a
        .send(
            "/app/chat",
            &json!({"roomId": p.room, "tempId": "no-content"}),
        )
        .await;
    let receipt = receipt.unwrap_or_else(|e| e);
    assert_eq!(receipt.header("status"), Some("FAILED"), "{receipt:?}");
    assert_eq!(
        receipt.header("error-code"),
        Some("VALIDATION_FAILED"),
        "{receipt:?}"
    );
    // Room creation rules.
    s.post(
        "/chatrooms",
        &p.a.token,
        json!({"type": "DIRECT", "participantIds": [p.a.id]}),
    )
    .await
    .expect_err(400, "DIRECT_ROOM_WITH_SELF");
    s.post(
        "/chatrooms",
        &p.a.token,
        json!({"type": "GROUP", "title": "t".repeat(51), "participantIds": [p.b.id]}),
    )
    .await
    .expect_err(400, "INVALID_ROOM_TITLE");
}
