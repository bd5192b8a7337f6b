//! Signup, login, friendship and the direct room; the response envelope.

use reqwest::Method;
use serde_json::json;
use shoot_tests::{PASSWORD, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_login_friend_request_accept_opens_direct_room() {
    let server = TestServer::start().await;
    let body = json!({
        "username": "alice", "nickname": "Alice", "email": "alice@example.com",
        "password": PASSWORD, "bio": "hi there",
    });
    let created = server
        .call(Method::POST, "/auth/signup", None, Some(body))
        .await
        .expect(201);
    let view = created.data();
    for key in [
        "id",
        "username",
        "nickname",
        "email",
        "status",
        "bio",
        "profileImageUrl",
        "userCode",
        "lastSeenAt",
    ] {
        assert!(view.get(key).is_some(), "user view lacks {key}: {view}");
    }
    assert!(view["id"].is_string(), "ids are strings: {view}");
    assert_eq!(view["username"], "alice");
    assert_eq!(view["email"], "alice@example.com");
    let code = view["userCode"].as_str().unwrap();
    assert!(
        (4..=12).contains(&code.len())
            && code
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "userCode {code:?} is not [A-Z0-9]{{4,12}}"
    );
    let a = server.login("alice", view["id"].as_str().unwrap()).await;

    // Wrong password and unknown user: 401 INVALID_CREDENTIALS.
    for (login, password) in [("alice", "Wrong#1234"), ("nobody", PASSWORD)] {
        server
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": login, "password": password})),
            )
            .await
            .expect_err(401, "INVALID_CREDENTIALS");
    }
    // Login by e-mail works too.
    let by_mail = server
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
        )
        .await
        .expect(200);
    assert_eq!(by_mail.data()["userId"], a.id.as_str());

    let me = server.get("/auth/me", &a.token).await.expect(200);
    assert_eq!(me.data()["id"], a.id.as_str());

    let b = server.user("bob").await;
    // Find by code, then request.
    let found = server
        .get(&format!("/users/find-by-code?code={code}"), &b.token)
        .await
        .expect(200);
    assert_eq!(found.data()["id"], a.id.as_str());

    let request = server.friend_request(&a, &b).await;
    let reqs = server
        .get("/users/friends/requests", &b.token)
        .await
        .expect(200);
    let incoming = reqs.data()["incoming"].as_array().expect("incoming list");
    assert_eq!(incoming.len(), 1, "{}", reqs.body);
    assert_eq!(incoming[0]["requestId"], request.as_str());
    assert_eq!(incoming[0]["fromUser"]["id"], a.id.as_str());
    assert_eq!(incoming[0]["toUser"]["id"], b.id.as_str());
    assert_eq!(incoming[0]["status"], "PENDING");
    let out = server
        .get("/users/friends/requests", &a.token)
        .await
        .expect(200);
    assert_eq!(
        out.data()["outgoing"].as_array().map(Vec::len),
        Some(1),
        "{}",
        out.body
    );
    // A duplicate request is refused.
    server
        .post(
            "/users/friends/requests",
            &a.token,
            json!({"targetUserId": b.id}),
        )
        .await
        .expect_err(409, "FRIEND_REQUEST_DUPLICATE");

    let accepted = server
        .post(
            &format!("/users/friends/requests/{request}/accept"),
            &b.token,
            json!({}),
        )
        .await
        .expect(200);
    let room = accepted.data()["roomId"]
        .as_str()
        .expect("roomId")
        .to_owned();
    assert_eq!(accepted.data()["status"], "ACCEPTED");

    for (me, other) in [(&a, &b), (&b, &a)] {
        let friends = server.get("/users/friends", &me.token).await.expect(200);
        assert_eq!(crate::ids(friends.data()), vec![other.id.clone()]);
        let rooms = server.get("/chatrooms", &me.token).await.expect(200);
        let list = rooms.data().as_array().unwrap();
        assert_eq!(list.len(), 1, "{}", rooms.body);
        assert_eq!(list[0]["id"], room.as_str());
        assert_eq!(list[0]["type"], "DIRECT");
        let mut members: Vec<&str> = list[0]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["userId"].as_str().unwrap())
            .collect();
        members.sort_unstable();
        let mut expect = vec![a.id.as_str(), b.id.as_str()];
        expect.sort_unstable();
        assert_eq!(members, expect);
    }
    // Opening the direct room again returns the same room (200, not a new one).
    let again = server
        .post(
            "/chatrooms",
            &a.token,
            json!({"type": "DIRECT", "participantIds": [b.id]}),
        )
        .await
        .expect(200);
    assert_eq!(again.data()["id"], room.as_str());
    let detail = server
        .get(&format!("/chatrooms/{room}"), &b.token)
        .await
        .expect(200);
    assert_eq!(detail.data()["id"], room.as_str());
}

/// (username, nickname, email, password, bio, status, errorCode)
type SignupCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_validation_uses_the_right_error_codes() {
    let server = TestServer::start().await;
    server.user("taken_name").await;
    let long_bio = "b".repeat(201);
    let cases: &[SignupCase] = &[
        (
            "ab",
            "Nick",
            "a1@example.com",
            PASSWORD,
            None,
            400,
            "INVALID_USERNAME",
        ),
        (
            "has space",
            "Nick",
            "a2@example.com",
            PASSWORD,
            None,
            400,
            "INVALID_USERNAME",
        ),
        (
            "bad-dash",
            "Nick",
            "a3@example.com",
            PASSWORD,
            None,
            400,
            "INVALID_USERNAME",
        ),
        (
            "a23456789012345678901",
            "Nick",
            "a4@example.com",
            PASSWORD,
            None,
            400,
            "INVALID_USERNAME",
        ),
        (
            "okname1",
            "N",
            "a5@example.com",
            PASSWORD,
            None,
            400,
            "INVALID_NICKNAME",
        ),
        (
            "okname2",
            "Nick",
            "not-an-email",
            PASSWORD,
            None,
            400,
            "INVALID_EMAIL",
        ),
        (
            "okname3",
            "Nick",
            "a6@example.com",
            "Sh#1a",
            None,
            400,
            "WEAK_PASSWORD",
        ),
        (
            "okname4",
            "Nick",
            "a7@example.com",
            "alllower#123",
            None,
            400,
            "WEAK_PASSWORD",
        ),
        (
            "okname5",
            "Nick",
            "a8@example.com",
            "ALLUPPER#123",
            None,
            400,
            "WEAK_PASSWORD",
        ),
        (
            "okname6",
            "Nick",
            "a9@example.com",
            "NoDigits#abc",
            None,
            400,
            "WEAK_PASSWORD",
        ),
        (
            "okname7",
            "Nick",
            "b1@example.com",
            "NoSymbol1234",
            None,
            400,
            "WEAK_PASSWORD",
        ),
        (
            "okname8",
            "Nick",
            "b2@example.com",
            PASSWORD,
            Some(long_bio.as_str()),
            400,
            "BIO_TOO_LONG",
        ),
        (
            "taken_name",
            "Nick",
            "b3@example.com",
            PASSWORD,
            None,
            409,
            "USERNAME_TAKEN",
        ),
        (
            "okname9",
            "Nick",
            "taken_name@example.com",
            PASSWORD,
            None,
            409,
            "EMAIL_TAKEN",
        ),
    ];
    for (username, nickname, email, password, bio, status, code) in cases {
        let mut body = json!({"username": username, "nickname": nickname, "email": email, "password": password});
        if let Some(bio) = bio {
            body["bio"] = json!(bio);
        }
        let r = server
            .call(Method::POST, "/auth/signup", None, Some(body))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (*status, *code),
            "signup {username:?}/{password:?}: {}",
            r.body
        );
        r.check_envelope();
    }
    // The alias `POST /users` applies the same rules and works.
    server
        .call(Method::POST, "/users", None, Some(json!({"username": "x", "nickname": "Nick", "email": "c@example.com", "password": PASSWORD})))
        .await
        .expect_err(400, "INVALID_USERNAME");
    server
        .call(Method::POST, "/users", None, Some(json!({"username": "via_alias", "nickname": "Nick", "email": "c@example.com", "password": PASSWORD})))
        .await
        .expect(201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_uses_the_envelope() {
    let server = TestServer::start().await;
    let a = server.user("alice").await;
    // Success: {success: true, data, message: null|string, errorCode: null}.
    for path in [
        "/auth/me",
        "/chatrooms",
        "/users/friends",
        "/messages/reactions/types",
        "/notifications",
    ] {
        server.get(path, &a.token).await.expect(200);
    }
    // Errors: {success: false, data: null, message: string, errorCode: string}.
    server
        .get("/chatrooms/123456789", &a.token)
        .await
        .check_envelope();
    server
        .get("/no/such/endpoint", &a.token)
        .await
        .expect_err(404, "NOT_FOUND");
    let unauth = server.call(Method::GET, "/chatrooms", None, None).await;
    assert_eq!(unauth.status, 401, "{}", unauth.body);
    unauth.check_envelope();
    let bad = server
        .call(Method::GET, "/chatrooms", Some("not-a-jwt"), None)
        .await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    bad.check_envelope();
    assert_eq!(bad.code(), "INVALID_TOKEN", "{}", bad.body);
}
