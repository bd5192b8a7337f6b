//! JWT and login hardening end to end: forged, expired, not-yet-valid, wrongly signed,
//! `alg: none`, other-algorithm, garbage, wrong-type and unknown-user tokens are refused with
//! 401 and a stable code over REST, SSE and STOMP CONNECT; refresh rotation detects reuse
//! and revokes the family; login lock-out counts per account and per client address.
//! (The token service's own unit tests are in `src/auth.rs`; these go through the router.)

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use shoot_server::auth::{ACCESS, Claims, REFRESH};
use shoot_server::config::Config;
use shoot_server::stomp::frame::Command;

use crate::support::{PASSWORD, ServerExt, StompClient, TestApp, start_server};

fn secret() -> String {
    Config::for_tests().jwt_key().0.to_owned()
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn sign(claims: &Claims, alg: Algorithm, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Access claims for `sub`, valid from `nbf` to `exp` (seconds).
fn claims(sub: &str, nbf: i64, exp: i64, typ: &str) -> Claims {
    Claims {
        sub: sub.to_owned(),
        iat: nbf,
        nbf,
        exp,
        jti: "forged".to_owned(),
        typ: typ.to_owned(),
        fam: None,
    }
}

/// A token with a hand-written header over the payload of `claims` and signature `sig`.
fn with_header(header: &str, claims: &Claims, sig: &str) -> String {
    let payload = serde_json::to_vec(claims).unwrap();
    format!("{}.{}.{sig}", b64(header.as_bytes()), b64(&payload))
}

/// Every bad access token with the code it must be refused with.
fn bad_tokens(
    app_now_secs: i64,
    user: &str,
    refresh: &str,
) -> Vec<(&'static str, String, &'static str)> {
    let key = secret();
    let now = app_now_secs;
    let good = claims(user, now - 10, now + 3600, ACCESS);
    let valid_sig = sign(&good, Algorithm::HS256, &key);
    let sig = valid_sig.rsplit('.').next().unwrap().to_owned();
    vec![
        (
            "expired",
            sign(
                &claims(user, now - 7200, now - 1, ACCESS),
                Algorithm::HS256,
                &key,
            ),
            "TOKEN_EXPIRED",
        ),
        (
            "expires now",
            sign(
                &claims(user, now - 3600, now, ACCESS),
                Algorithm::HS256,
                &key,
            ),
            "TOKEN_EXPIRED",
        ),
        (
            "not yet valid",
            sign(
                &claims(user, now + 600, now + 4200, ACCESS),
                Algorithm::HS256,
                &key,
            ),
            "INVALID_TOKEN",
        ),
        (
            "wrong key",
            sign(&good, Algorithm::HS256, "another-secret-another-secret-123"),
            "INVALID_TOKEN",
        ),
        (
            "alg none",
            with_header(r#"{"alg":"none","typ":"JWT"}"#, &good, ""),
            "INVALID_TOKEN",
        ),
        (
            "alg none, signed",
            with_header(r#"{"alg":"none","typ":"JWT"}"#, &good, &sig),
            "INVALID_TOKEN",
        ),
        (
            "HS512 same key",
            sign(&good, Algorithm::HS512, &key),
            "INVALID_TOKEN",
        ),
        (
            "HS384 same key",
            sign(&good, Algorithm::HS384, &key),
            "INVALID_TOKEN",
        ),
        (
            "RS256 header, HMAC signature",
            with_header(r#"{"alg":"RS256","typ":"JWT"}"#, &good, &sig),
            "INVALID_TOKEN",
        ),
        (
            "tampered payload",
            {
                let other = claims("1", now - 10, now + 3600, ACCESS);
                let mut parts: Vec<String> = valid_sig.split('.').map(str::to_owned).collect();
                parts[1] = b64(&serde_json::to_vec(&other).unwrap());
                parts.join(".")
            },
            "INVALID_TOKEN",
        ),
        ("garbage", "garbage".to_owned(), "INVALID_TOKEN"),
        ("three dots", "a.b.c".to_owned(), "INVALID_TOKEN"),
        (
            "non-numeric subject",
            sign(
                &claims("alice", now - 10, now + 3600, ACCESS),
                Algorithm::HS256,
                &key,
            ),
            "INVALID_TOKEN",
        ),
        (
            "wrong type claim",
            sign(
                &claims(user, now - 10, now + 3600, "id"),
                Algorithm::HS256,
                &key,
            ),
            "INVALID_TOKEN",
        ),
        (
            "forged refresh type",
            sign(
                &claims(user, now - 10, now + 3600, REFRESH),
                Algorithm::HS256,
                &key,
            ),
            "INVALID_TOKEN",
        ),
        (
            "refresh token as access token",
            refresh.to_owned(),
            "INVALID_TOKEN",
        ),
    ]
}

fn now_secs(app_now: shoot_core::Timestamp) -> i64 {
    app_now.as_millis() / 1000
}

#[tokio::test]
async fn bad_access_tokens_are_refused_over_rest_and_sse() {
    let app = TestApp::new().await;
    let alice = app.user("alice").await;
    // The control: a correctly forged token is accepted, so refusals below are about the
    // one property each case breaks.
    let now = now_secs(app.state.auth.now());
    let good = sign(
        &claims(&alice.user_id, now - 10, now + 3600, ACCESS),
        Algorithm::HS256,
        &secret(),
    );
    app.get("/api/v1/auth/me", &good).await.expect(200);
    for (case, token, code) in bad_tokens(now, &alice.user_id, &alice.refresh) {
        for uri in [
            "/api/v1/auth/me",
            "/api/v1/users/me",
            "/api/v1/chatrooms",
            "/api/v1/notifications",
        ] {
            let r = app.get(uri, &token).await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (401, code),
                "{case} on {uri}: {}",
                r.body
            );
        }
        // SSE takes the token in the header or the query.
        let r = app.get("/api/v1/sse/subscribe", &token).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, code),
            "{case} on SSE: {}",
            r.body
        );
        let r = app
            .call(
                Method::GET,
                &format!("/api/v1/sse/subscribe?token={token}"),
                None,
                None,
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, code),
            "{case} on SSE ?token: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn bad_access_tokens_are_refused_by_stomp_connect() {
    let server = start_server(Config::for_tests()).await;
    let addr = server.addr;
    let (user, _) = server.user("alice").await;
    let refresh = server
        .state
        .engine
        .issue_refresh_token(user, None)
        .await
        .unwrap();
    let refresh = server.state.auth.issue_refresh(&refresh).unwrap();
    let now = now_secs(server.state.auth.now());
    let uid = user.to_string();
    let good = sign(
        &claims(&uid, now - 10, now + 3600, ACCESS),
        Algorithm::HS256,
        &secret(),
    );
    drop(StompClient::connect(addr, &good).await);
    let mut cases = bad_tokens(now, &uid, &refresh);
    cases.push(("no token", String::new(), "INVALID_TOKEN"));
    for (case, token, code) in cases {
        // In the CONNECT frame.
        let mut c = StompClient::open(addr, "").await;
        let f = c
            .send_connect((!token.is_empty()).then_some(token.as_str()))
            .await
            .expect("an answer");
        assert_eq!(f.command, Command::Error, "{case}: {f:?}");
        assert_eq!(f.header("message"), Some("unauthenticated"), "{case}");
        let body = String::from_utf8_lossy(&f.body).into_owned();
        assert!(body.starts_with(&format!("{code}:")), "{case}: {body}");
        c.expect_closed_after_errors().await;
        if token.is_empty() {
            continue;
        }
        // On the handshake (`?token=`), then a CONNECT without credentials.
        let mut c = StompClient::open(addr, &format!("?token={token}")).await;
        let f = c.send_connect(None).await.expect("an answer");
        assert_eq!(f.command, Command::Error, "{case} via ?token: {f:?}");
        let body = String::from_utf8_lossy(&f.body).into_owned();
        assert!(
            body.starts_with(&format!("{code}:")),
            "{case} via ?token: {body}"
        );
        c.expect_closed_after_errors().await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn refresh_rotation_reuse_revokes_the_family_and_types_do_not_mix() {
    let app = TestApp::new().await;
    let s = app.user("alice").await;
    // An access token is not a refresh token (body or Bearer), on both paths.
    app.refresh(&s.access)
        .await
        .expect_err(401, "INVALID_TOKEN");
    for path in ["/api/v1/auth/refresh", "/api/v1/auth/refresh-token"] {
        for token in [Some(s.access.as_str()), Some("garbage"), None] {
            let r = app.call(Method::POST, path, token, None).await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (401, "INVALID_TOKEN"),
                "{path} with {token:?}"
            );
        }
    }
    // A forged refresh token (right key, unknown id) is refused.
    let now = now_secs(app.state.auth.now());
    let mut forged = claims(&s.user_id, now - 10, now + 3600, REFRESH);
    forged.fam = Some("made-up".into());
    app.refresh(&sign(&forged, Algorithm::HS256, &secret()))
        .await
        .expect_err(401, "INVALID_TOKEN");
    // An expired refresh JWT.
    let expired = sign(
        &claims(&s.user_id, now - 100, now - 1, REFRESH),
        Algorithm::HS256,
        &secret(),
    );
    app.refresh(&expired).await.expect_err(401, "TOKEN_EXPIRED");

    // Rotation: r0 → r1 → r2; reusing r0 revokes the family, so r2 dies too.
    let other_session = app.login("alice").await;
    let r1 = app.refresh(&s.refresh).await.expect(200);
    let r1 = r1.data_str("refreshToken");
    let r2 = app.refresh(&r1).await.expect(200);
    let r2 = r2.data_str("refreshToken");
    app.refresh(&s.refresh)
        .await
        .expect_err(401, "TOKEN_REUSED");
    app.refresh(&r2).await.expect_err(401, "INVALID_TOKEN");
    app.refresh(&r1).await.expect_err(401, "INVALID_TOKEN");
    // Another login's family is untouched.
    app.refresh(&other_session.refresh).await.expect(200);

    // Logout revokes the family of the given refresh token.
    let s3 = app.login("alice").await;
    app.logout(&s3).await.expect(200);
    app.refresh(&s3.refresh)
        .await
        .expect_err(401, "INVALID_TOKEN");
    // Logout with an access token of the wrong kind of garbage is refused.
    let r = app
        .call(Method::POST, "/api/v1/auth/logout", Some("garbage"), None)
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "INVALID_TOKEN"));
}

/// POST /auth/login from `addr` (what the server learns from the TCP connection).
async fn login_from(app: &TestApp, addr: &str, login: &str, password: &str) -> (u16, String) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"username": login, "password": password}).to_string(),
        ))
        .unwrap();
    let addr: SocketAddr = format!("{addr}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    let resp = app.raw(req).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    (status, v["errorCode"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn login_lockout_counts_per_account_across_addresses() {
    let app = TestApp::new().await;
    app.signup("alice").await;
    app.signup("bobby").await;
    let max = app.state.engine.limits().login_max_failures;
    assert_eq!(max, 5, "SPEC default");
    // Five failures, each from a different address: the account locks.
    for i in 0..max {
        let r = login_from(&app, &format!("10.0.0.{}", i + 1), "alice", "wrong").await;
        assert_eq!(r, (401, "INVALID_CREDENTIALS".to_owned()), "failure {i}");
    }
    // Now even the right password from a fresh address is refused.
    assert_eq!(
        login_from(&app, "10.0.1.1", "alice", PASSWORD).await,
        (429, "ACCOUNT_LOCKED".to_owned())
    );
    // By e-mail too (same account).
    assert_eq!(
        login_from(&app, "10.0.1.2", "alice@example.com", PASSWORD).await,
        (429, "ACCOUNT_LOCKED".to_owned())
    );
    // Another account from one of those addresses is not locked.
    assert_eq!(login_from(&app, "10.0.0.1", "bobby", PASSWORD).await.0, 200);
}

#[tokio::test]
async fn login_lockout_counts_per_address_across_accounts() {
    let app = TestApp::new().await;
    for name in ["alice", "bobby", "carol", "davey", "erin_", "frank"] {
        app.signup(name).await;
    }
    // One failure on each of five accounts, all from 10.0.0.9: the address locks.
    for name in ["bobby", "carol", "davey", "erin_", "nobody"] {
        assert_eq!(
            login_from(&app, "10.0.0.9", name, "wrong").await,
            (401, "INVALID_CREDENTIALS".to_owned()),
            "{name}"
        );
    }
    assert_eq!(
        login_from(&app, "10.0.0.9", "alice", PASSWORD).await,
        (429, "ACCOUNT_LOCKED".to_owned())
    );
    // The accounts themselves are not locked: from another address they log in.
    for name in ["alice", "bobby", "frank"] {
        assert_eq!(
            login_from(&app, "10.0.0.10", name, PASSWORD).await.0,
            200,
            "{name}"
        );
    }
    // IPv6 addresses count separately.
    assert_eq!(
        login_from(&app, "[2001:db8::1]", "alice", PASSWORD).await.0,
        200
    );
}

/// Over a real socket the server learns the peer address itself, and a client cannot
/// escape an address lock-out by claiming another address in `X-Forwarded-For`.
#[tokio::test]
async fn real_server_locks_the_peer_address_and_ignores_forwarded_for() {
    let server = start_server(Config::for_tests()).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let signup = |name: &str| {
        json!({"username": name, "nickname": format!("{name} nick"),
            "email": format!("{name}@example.com"), "password": PASSWORD})
    };
    for name in ["alice", "bobby", "carol", "davey", "erin_", "frank"] {
        let r = http
            .post(format!("{base}/api/v1/auth/signup"))
            .header("content-type", "application/json")
            .body(signup(name).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let login = |name: &'static str, password: &'static str, forwarded: Option<&'static str>| {
        let mut req = http
            .post(format!("{base}/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(json!({"username": name, "password": password}).to_string());
        if let Some(f) = forwarded {
            req = req
                .header("x-forwarded-for", f)
                .header("forwarded", format!("for={f}"));
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            (status, v["errorCode"].as_str().unwrap_or("").to_owned())
        }
    };
    let forwarded = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"];
    for (name, f) in ["bobby", "carol", "davey", "erin_", "frank"]
        .into_iter()
        .zip(forwarded)
    {
        assert_eq!(login(name, "wrong", Some(f)).await.0, 401);
    }
    assert_eq!(
        login("alice", PASSWORD, None).await,
        (429, "ACCOUNT_LOCKED".to_owned())
    );
    assert_eq!(
        login("alice", PASSWORD, Some("203.0.113.7")).await,
        (429, "ACCOUNT_LOCKED".to_owned())
    );
    server.shutdown().await.unwrap();
}

/// A correctly signed access token whose user does not exist (deleted, or issued before a
/// database reset) is refused like any invalid token: `401 INVALID_TOKEN` on REST and SSE,
/// an ERROR frame on STOMP CONNECT (`AppState::authenticate`).
#[tokio::test]
async fn tokens_of_unknown_users_are_refused() {
    let app = TestApp::new().await;
    let now = now_secs(app.state.auth.now());
    let ghost = sign(
        &claims("987654321012345", now - 10, now + 3600, ACCESS),
        Algorithm::HS256,
        &secret(),
    );
    for uri in [
        "/api/v1/auth/me",
        "/api/v1/users/me",
        "/api/v1/chatrooms",
        "/api/v1/notifications",
        "/api/v1/sse/subscribe",
    ] {
        let r = app.get(uri, &ghost).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (401, "INVALID_TOKEN"),
            "{uri}: {}",
            r.body
        );
    }
    let server = start_server(Config::for_tests()).await;
    let mut c = StompClient::open(server.addr, "").await;
    let f = c.send_connect(Some(&ghost)).await.expect("an answer");
    assert_eq!(f.command, Command::Error, "{f:?}");
    server.shutdown().await.unwrap();
}
