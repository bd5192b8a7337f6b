//! The authorisation matrix: every REST endpoint of the OpenAPI document the server serves
//! and every STOMP `/app` and subscribable destination, probed by a user outside the room
//! (and by a plain member where the SPEC requires OWNER/ADMIN or the sender), with the
//! status / ERROR frame and stable error code each must answer. Refused writes must change
//! nothing (the owner's view of everything is compared before and after), and no user may
//! read another user's bookmarks, notifications, schedules, read state or user queue.
//!
//! The REST table is checked against the paths of `/api-docs/openapi.json` in both
//! directions, and the STOMP tables against the destinations the server's source routes, so
//! an endpoint or destination added without a matrix row fails these tests.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};
use shoot_core::engine::SendMessage;
use shoot_core::messages::HistoryQuery;
use shoot_core::{MessageId, RoomId, UserId};
use shoot_server::ServerHandle;
use shoot_server::config::Config;
use shoot_server::stomp::frame::{Command, Frame};
use shoot_server::stomp::routing::UserQueue;

use crate::support::{
    ServerExt, Session, StompClient, TestApp, eventually, start_server, str_of, text_message,
};

// ---------------------------------------------------------------------------------------
// REST fixture
// ---------------------------------------------------------------------------------------

/// Who sends a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// Not in the room, owns none of the resources.
    Outsider,
    /// A plain MEMBER of the room (not owner/admin, not the sender of `msg`).
    Member,
}

/// The world the probes run against: `a` owns group room `room` with members `m` and `n`;
/// `o` is outside it (with a room of its own with `x`); `a` owns every private resource.
struct Fx {
    a: Session,
    m: Session,
    n: Session,
    o: Session,
    x: Session,
    /// A's group room (A owner; M, N members).
    room: String,
    /// O's own group room (O, X).
    o_room: String,
    /// A's message in `room`, pinned, bookmarked by A, with a thread reply.
    msg: String,
    /// M's message in `room`, not pinned.
    msg2: String,
    /// A's pending scheduled message in `room`.
    schedule: String,
    /// One of A's notifications.
    notification: String,
    /// X's pending friend request to A.
    friend_request: String,
    /// A's friend group (holding M).
    friend_group: String,
    /// A's user code.
    a_code: String,
}

impl Fx {
    async fn new(app: &TestApp) -> Fx {
        let a = app.user("owner_a").await;
        let m = app.user("member_m").await;
        let n = app.user("member_n").await;
        let o = app.user("outsider_o").await;
        let x = app.user("stranger_x").await;
        let room = app.group(&a, "team secret", &[&m, &n]).await;
        let o_room = app.group(&o, "other room", &[&x]).await;
        let msg = app.send_saved(&a, &room, "hello team @member_m", "a-1");
        let msg = str_of(&msg.await, "id");
        let msg2 = app.send_saved(&m, &room, "hi from m", "m-1");
        let msg2 = str_of(&msg2.await, "id");
        app.post("/api/v1/messages/pin", &a.access, json!({"messageId": msg}))
            .await
            .expect(200);
        app.post(
            "/api/v1/messages/thread",
            &a.access,
            json!({"parentMessageId": msg, "content": "a reply", "tempId": "a-2"}),
        )
        .await
        .expect(201);
        app.post(
            "/api/v1/messages/bookmark",
            &a.access,
            json!({"messageId": msg, "note": "private note"}),
        )
        .await
        .expect(201);
        let due = app
            .state
            .auth
            .now()
            .plus(Duration::from_secs(86_400))
            .to_rfc3339();
        let schedule = app
            .post(
                "/api/v1/messages/schedule",
                &a.access,
                json!({"roomId": room, "content": "later", "scheduledAt": due}),
            )
            .await
            .expect(201)
            .data_str("id");
        // A and M become friends (M's request, A accepts); X's request stays pending.
        let req = app
            .friend_request(&m, &a.user_id)
            .await
            .expect(201)
            .data_str("requestId");
        app.post(
            &format!("/api/v1/users/friends/requests/{req}/accept"),
            &a.access,
            json!({}),
        )
        .await
        .expect(200);
        let friend_request = app
            .friend_request(&x, &a.user_id)
            .await
            .expect(201)
            .data_str("requestId");
        let friend_group = app
            .post(
                "/api/v1/users/friends/groups",
                &a.access,
                json!({"name": "close"}),
            )
            .await
            .expect(201)
            .data_str("id");
        app.post(
            &format!(
                "/api/v1/users/friends/groups/{friend_group}/members/{}",
                m.user_id
            ),
            &a.access,
            json!({}),
        )
        .await
        .expect(200);
        let notification = eventually(10, || async {
            let r = app
                .get("/api/v1/notifications", &a.access)
                .await
                .expect(200);
            r.data()
                .as_array()
                .and_then(|l| l.first())
                .map(|n| str_of(n, "id"))
        })
        .await;
        let a_code = app
            .get("/api/v1/users/me", &a.access)
            .await
            .expect(200)
            .data_str("userCode");
        Fx {
            a,
            m,
            n,
            o,
            x,
            room,
            o_room,
            msg,
            msg2,
            schedule,
            notification,
            friend_request,
            friend_group,
            a_code,
        }
    }

    fn session(&self, who: Who) -> &Session {
        match who {
            Who::Outsider => &self.o,
            Who::Member => &self.m,
        }
    }

    /// Everything A (and M, for their read state) can see: must be identical before and
    /// after the refused probes.
    async fn snapshot(&self, app: &TestApp) -> Vec<(String, Value)> {
        let r = &self.room;
        let a_views = [
            "/api/v1/users/me".to_owned(),
            "/api/v1/chatrooms".to_owned(),
            "/api/v1/chatrooms/favorites".to_owned(),
            format!("/api/v1/chatrooms/{r}"),
            format!("/api/v1/chatrooms/{r}/participants"),
            format!("/api/v1/chatrooms/{r}/notice"),
            format!("/api/v1/messages/{r}"),
            format!("/api/v1/messages/pins/{r}"),
            format!("/api/v1/messages/threads?roomId={r}"),
            format!("/api/v1/messages/thread?parentId={}", self.msg),
            "/api/v1/messages/schedule".to_owned(),
            "/api/v1/messages/bookmarks".to_owned(),
            "/api/v1/notifications".to_owned(),
            "/api/v1/notifications/unread/count".to_owned(),
            "/api/v1/users/friends".to_owned(),
            "/api/v1/users/friends/requests".to_owned(),
            "/api/v1/users/friends/groups".to_owned(),
            "/api/v1/users/blocked".to_owned(),
        ];
        let mut out = Vec::new();
        for (who, views) in [
            (&self.a, &a_views[..]),
            (&self.m, &a_views[1..4]),
            (&self.n, &a_views[1..4]),
        ] {
            for uri in views {
                let body = app.get(uri, &who.access).await.expect(200).body;
                out.push((format!("{} {uri}", who.user_id), body));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// REST matrix
// ---------------------------------------------------------------------------------------

/// What a probe must get: a status and error code, or success with this status.
type Expect = (Who, u16, &'static str);

/// A concrete request: URI and JSON body.
type Probe = (String, Option<Value>);

/// One row per (method, OpenAPI path).
struct Row {
    method: &'static str,
    path: &'static str,
    /// `false`: public (signup, login, refresh, logout, ops); covered by the JWT tests.
    auth: bool,
    /// The concrete request: URI and JSON body; `None`: the path itself, without a body.
    req: Option<fn(&Fx) -> Probe>,
    /// What each prober gets. An empty code means the call succeeds with that status.
    expect: &'static [Expect],
}

impl Row {
    /// The concrete request: URI and JSON body.
    fn request(&self, fx: &Fx) -> Probe {
        match self.req {
            Some(req) => req(fx),
            None => (self.path.to_owned(), None),
        }
    }
}

const NOT_PARTICIPANT: (u16, &str) = (403, "NOT_ROOM_PARTICIPANT");
const O_NOT_PARTICIPANT: Expect = (Who::Outsider, 403, "NOT_ROOM_PARTICIPANT");
const O_NO_MESSAGE: Expect = (Who::Outsider, 404, "MESSAGE_NOT_FOUND");
const M_DENIED: Expect = (Who::Member, 403, "ROOM_PERMISSION_DENIED");
const M_NOT_SENDER: Expect = (Who::Member, 403, "NOT_MESSAGE_SENDER");
const O_OK: Expect = (Who::Outsider, 200, "");
const O_CREATED: Expect = (Who::Outsider, 201, "");
const NO_FRIEND_GROUP: [Expect; 2] = both(404, "FRIEND_GROUP_NOT_FOUND");
const NO_SCHEDULE: [Expect; 2] = both(404, "SCHEDULE_NOT_FOUND");
const NO_BOOKMARK: [Expect; 2] = both(404, "BOOKMARK_NOT_FOUND");
const NO_NOTIFICATION: [Expect; 2] = both(404, "NOTIFICATION_NOT_FOUND");

/// The outsider and the plain member both get `status` and `code`.
const fn both(status: u16, code: &'static str) -> [Expect; 2] {
    [(Who::Outsider, status, code), (Who::Member, status, code)]
}

fn get(uri: String) -> Probe {
    (uri, None)
}

fn with(uri: String, body: Value) -> Probe {
    (uri, Some(body))
}

fn v1(path: &str) -> String {
    format!("/api/v1{path}")
}

/// The matrix. Kept in the order of the router.
fn rows() -> Vec<Row> {
    let r = |method, path, req, expect| Row {
        method,
        path,
        auth: true,
        req: Some(req),
        expect,
    };
    // The request is the documented path itself, without a body.
    let plain = |method, path, expect| Row {
        method,
        path,
        auth: true,
        req: None,
        expect,
    };
    let public = |method, path| Row {
        method,
        path,
        auth: false,
        req: None,
        expect: &[],
    };
    vec![
        // auth (public; the JWT tests cover them)
        public("POST", "/api/v1/auth/signup"),
        public("POST", "/api/v1/users"),
        public("POST", "/api/v1/auth/login"),
        public("POST", "/api/v1/auth/refresh"),
        public("POST", "/api/v1/auth/refresh-token"),
        public("POST", "/api/v1/auth/logout"),
        public("GET", "/health"),
        public("GET", "/ready"),
        public("GET", "/metrics"),
        plain("GET", "/api/v1/auth/me", &[O_OK]),
        // users: the caller's own profile; others' profiles are public (without e-mail)
        plain("GET", "/api/v1/users/me", &[O_OK]),
        r(
            "PUT",
            "/api/v1/users/me",
            |_| with(v1("/users/me"), json!({"nickname": "o renamed"})),
            &[O_OK],
        ),
        r(
            "PUT",
            "/api/v1/users/status",
            |_| with(v1("/users/status"), json!({"status": "AWAY"})),
            &[O_OK],
        ),
        r(
            "GET",
            "/api/v1/users/search",
            |_| get(v1("/users/search?q=owner")),
            &[O_OK],
        ),
        r(
            "GET",
            "/api/v1/users/find-by-code",
            |f| get(v1(&format!("/users/find-by-code?code={}", f.a_code))),
            &[O_OK],
        ),
        r(
            "GET",
            "/api/v1/users/{userId}",
            |f| get(v1(&format!("/users/{}", f.a.user_id))),
            &[O_OK],
        ),
        // friends: only one's own requests, friendships and groups
        plain("GET", "/api/v1/users/friends", &[O_OK]),
        plain("GET", "/api/v1/users/friends/requests", &[O_OK]),
        r(
            "POST",
            "/api/v1/users/friends/requests",
            |f| {
                with(
                    v1("/users/friends/requests"),
                    json!({"targetUserId": f.o.user_id}),
                )
            },
            &[(Who::Outsider, 400, "FRIEND_REQUEST_TO_SELF")],
        ),
        r(
            "POST",
            "/api/v1/users/friends/requests/{requestId}/accept",
            |f| {
                with(
                    v1(&format!(
                        "/users/friends/requests/{}/accept",
                        f.friend_request
                    )),
                    json!({}),
                )
            },
            &[(Who::Outsider, 404, "FRIEND_REQUEST_NOT_FOUND")],
        ),
        r(
            "POST",
            "/api/v1/users/friends/requests/{requestId}/reject",
            |f| {
                with(
                    v1(&format!(
                        "/users/friends/requests/{}/reject",
                        f.friend_request
                    )),
                    json!({}),
                )
            },
            &[(Who::Outsider, 404, "FRIEND_REQUEST_NOT_FOUND")],
        ),
        r(
            "DELETE",
            "/api/v1/users/friends/requests/{requestId}",
            |f| get(v1(&format!("/users/friends/requests/{}", f.friend_request))),
            &[(Who::Outsider, 404, "FRIEND_REQUEST_NOT_FOUND")],
        ),
        r(
            "DELETE",
            "/api/v1/users/friends/{friendId}",
            |f| get(v1(&format!("/users/friends/{}", f.a.user_id))),
            &[(Who::Outsider, 404, "NOT_FRIENDS")],
        ),
        plain("GET", "/api/v1/users/recommendations", &[O_OK]),
        plain("GET", "/api/v1/users/friends/groups", &[O_OK]),
        r(
            "POST",
            "/api/v1/users/friends/groups",
            |_| with(v1("/users/friends/groups"), json!({"name": "o group"})),
            &[O_CREATED],
        ),
        r(
            "PUT",
            "/api/v1/users/friends/groups/{groupId}",
            |f| {
                with(
                    v1(&format!("/users/friends/groups/{}", f.friend_group)),
                    json!({"name": "hijacked"}),
                )
            },
            &NO_FRIEND_GROUP,
        ),
        r(
            "DELETE",
            "/api/v1/users/friends/groups/{groupId}",
            |f| get(v1(&format!("/users/friends/groups/{}", f.friend_group))),
            &NO_FRIEND_GROUP,
        ),
        r(
            "POST",
            "/api/v1/users/friends/groups/{groupId}/members/{friendId}",
            |f| {
                with(
                    v1(&format!(
                        "/users/friends/groups/{}/members/{}",
                        f.friend_group, f.x.user_id
                    )),
                    json!({}),
                )
            },
            &[(Who::Outsider, 404, "FRIEND_GROUP_NOT_FOUND")],
        ),
        r(
            "DELETE",
            "/api/v1/users/friends/groups/{groupId}/members/{friendId}",
            |f| {
                get(v1(&format!(
                    "/users/friends/groups/{}/members/{}",
                    f.friend_group, f.m.user_id
                )))
            },
            &NO_FRIEND_GROUP,
        ),
        // blocking: one's own list
        r(
            "POST",
            "/api/v1/users/block",
            |f| with(v1("/users/block"), json!({"targetUserId": f.o.user_id})),
            &[(Who::Outsider, 400, "BLOCK_SELF")],
        ),
        r(
            "DELETE",
            "/api/v1/users/block/{userId}",
            |f| get(v1(&format!("/users/block/{}", f.a.user_id))),
            &[(Who::Outsider, 404, "NOT_BLOCKED")],
        ),
        plain("GET", "/api/v1/users/blocked", &[O_OK]),
        // chat rooms
        plain("GET", "/api/v1/chatrooms", &[O_OK]),
        r(
            "POST",
            "/api/v1/chatrooms",
            |f| {
                with(
                    v1("/chatrooms"),
                    json!({"type": "GROUP", "title": "o two", "participantIds": [f.x.user_id]}),
                )
            },
            &[O_CREATED],
        ),
        plain("GET", "/api/v1/chatrooms/favorites", &[O_OK]),
        r(
            "GET",
            "/api/v1/chatrooms/search",
            |_| get(v1("/chatrooms/search?q=secret")),
            &[O_OK],
        ),
        r(
            "POST",
            "/api/v1/chatrooms/multiple",
            |f| {
                with(
                    v1("/chatrooms/multiple"),
                    json!({"rooms": [{"type": "GROUP", "title": "o three", "participantIds": [f.x.user_id]}]}),
                )
            },
            &[O_CREATED],
        ),
        r(
            "GET",
            "/api/v1/chatrooms/{roomId}",
            |f| get(v1(&format!("/chatrooms/{}", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "PUT",
            "/api/v1/chatrooms/{roomId}",
            |f| {
                with(
                    v1(&format!("/chatrooms/{}", f.room)),
                    json!({"title": "hijacked"}),
                )
            },
            &[O_NOT_PARTICIPANT, M_DENIED],
        ),
        r(
            "DELETE",
            "/api/v1/chatrooms/{roomId}",
            |f| get(v1(&format!("/chatrooms/{}", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "GET",
            "/api/v1/chatrooms/{roomId}/participants",
            |f| get(v1(&format!("/chatrooms/{}/participants", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "POST",
            "/api/v1/chatrooms/{roomId}/participants",
            |f| {
                with(
                    v1(&format!("/chatrooms/{}/participants", f.room)),
                    json!({"participantIds": [f.o.user_id]}),
                )
            },
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "DELETE",
            "/api/v1/chatrooms/{roomId}/participants/{userId}",
            |f| {
                get(v1(&format!(
                    "/chatrooms/{}/participants/{}",
                    f.room, f.n.user_id
                )))
            },
            &[O_NOT_PARTICIPANT, M_DENIED],
        ),
        r(
            "GET",
            "/api/v1/chatrooms/{roomId}/notice",
            |f| get(v1(&format!("/chatrooms/{}/notice", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "POST",
            "/api/v1/chatrooms/{roomId}/notice",
            |f| {
                with(
                    v1(&format!("/chatrooms/{}/notice", f.room)),
                    json!({"announcement": "hijacked"}),
                )
            },
            &[O_NOT_PARTICIPANT, M_DENIED],
        ),
        r(
            "POST",
            "/api/v1/chatrooms/{roomId}/favorite",
            |f| with(v1(&format!("/chatrooms/{}/favorite", f.room)), json!({})),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "DELETE",
            "/api/v1/chatrooms/{roomId}/favorite",
            |f| get(v1(&format!("/chatrooms/{}/favorite", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        // messages
        r(
            "GET",
            "/api/v1/messages/{roomId}",
            |f| get(v1(&format!("/messages/{}", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "PUT",
            "/api/v1/messages/{messageId}",
            |f| {
                with(
                    v1(&format!("/messages/{}", f.msg)),
                    json!({"content": "hijacked"}),
                )
            },
            &[O_NO_MESSAGE, M_NOT_SENDER],
        ),
        r(
            "DELETE",
            "/api/v1/messages/{messageId}",
            |f| get(v1(&format!("/messages/{}", f.msg))),
            &[O_NO_MESSAGE, M_NOT_SENDER],
        ),
        r(
            "GET",
            "/api/v1/messages/detail/{messageId}",
            |f| get(v1(&format!("/messages/detail/{}", f.msg))),
            &[O_NO_MESSAGE],
        ),
        r(
            "POST",
            "/api/v1/messages/mark-read",
            |f| {
                with(
                    v1(&format!("/messages/mark-read?roomId={}", f.room)),
                    json!({}),
                )
            },
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "POST",
            "/api/v1/messages/forward",
            |f| {
                with(
                    v1("/messages/forward"),
                    json!({"messageId": f.msg, "targetRoomIds": [f.o_room]}),
                )
            },
            &[O_NO_MESSAGE],
        ),
        r(
            "POST",
            "/api/v1/messages/pin",
            |f| with(v1("/messages/pin"), json!({"messageId": f.msg2})),
            &[O_NO_MESSAGE, M_DENIED],
        ),
        r(
            "DELETE",
            "/api/v1/messages/pin/{messageId}",
            |f| get(v1(&format!("/messages/pin/{}", f.msg))),
            &[O_NO_MESSAGE, M_DENIED],
        ),
        r(
            "GET",
            "/api/v1/messages/pins/{roomId}",
            |f| get(v1(&format!("/messages/pins/{}", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "POST",
            "/api/v1/messages/reaction",
            |f| {
                with(
                    v1("/messages/reaction"),
                    json!({"messageId": f.msg, "reaction": "like"}),
                )
            },
            &[O_NO_MESSAGE],
        ),
        r(
            "DELETE",
            "/api/v1/messages/reaction",
            |f| {
                with(
                    v1("/messages/reaction"),
                    json!({"messageId": f.msg, "reaction": "like"}),
                )
            },
            &[O_NO_MESSAGE],
        ),
        plain("GET", "/api/v1/messages/reactions/types", &[O_OK]),
        r(
            "GET",
            "/api/v1/messages/thread",
            |f| get(v1(&format!("/messages/thread?parentId={}", f.msg))),
            &[O_NO_MESSAGE],
        ),
        r(
            "POST",
            "/api/v1/messages/thread",
            |f| {
                with(
                    v1("/messages/thread"),
                    json!({"parentMessageId": f.msg, "content": "sneaky", "tempId": "o-t1"}),
                )
            },
            &[O_NO_MESSAGE],
        ),
        r(
            "GET",
            "/api/v1/messages/threads",
            |f| get(v1(&format!("/messages/threads?roomId={}", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        r(
            "POST",
            "/api/v1/messages/schedule",
            |f| {
                with(
                    v1("/messages/schedule"),
                    json!({"roomId": f.room, "content": "sneaky", "scheduledAt": "2999-01-01T00:00:00Z"}),
                )
            },
            &[O_NOT_PARTICIPANT],
        ),
        plain("GET", "/api/v1/messages/schedule", &[O_OK]),
        r(
            "PUT",
            "/api/v1/messages/schedule/{scheduleId}",
            |f| {
                with(
                    v1(&format!("/messages/schedule/{}", f.schedule)),
                    json!({"content": "hijacked"}),
                )
            },
            &NO_SCHEDULE,
        ),
        r(
            "DELETE",
            "/api/v1/messages/schedule/{scheduleId}",
            |f| get(v1(&format!("/messages/schedule/{}", f.schedule))),
            &NO_SCHEDULE,
        ),
        r(
            "POST",
            "/api/v1/messages/bookmark",
            |f| with(v1("/messages/bookmark"), json!({"messageId": f.msg})),
            &[O_NO_MESSAGE],
        ),
        r(
            "DELETE",
            "/api/v1/messages/bookmark/{messageId}",
            |f| get(v1(&format!("/messages/bookmark/{}", f.msg))),
            &NO_BOOKMARK,
        ),
        r(
            "GET",
            "/api/v1/messages/bookmarks",
            |f| get(v1(&format!("/messages/bookmarks?roomId={}", f.room))),
            &[O_OK, (Who::Member, 200, "")],
        ),
        r(
            "GET",
            "/api/v1/messages/search",
            |f| get(v1(&format!("/messages/search?roomId={}&q=hello", f.room))),
            &[O_NOT_PARTICIPANT],
        ),
        // notifications: one's own only
        plain("GET", "/api/v1/notifications", &[O_OK]),
        plain("GET", "/api/v1/notifications/unread/count", &[O_OK]),
        r(
            "PUT",
            "/api/v1/notifications/read/all",
            |_| with(v1("/notifications/read/all"), json!({})),
            &[O_OK, (Who::Member, 200, "")],
        ),
        r(
            "PUT",
            "/api/v1/notifications/{id}/read",
            |f| {
                with(
                    v1(&format!("/notifications/{}/read", f.notification)),
                    json!({}),
                )
            },
            &NO_NOTIFICATION,
        ),
        r(
            "DELETE",
            "/api/v1/notifications/{id}",
            |f| get(v1(&format!("/notifications/{}", f.notification))),
            &NO_NOTIFICATION,
        ),
        // server-sent events: only the token is checked here; the stream is always the
        // caller's own user topic (src/sse.rs subscribes `subscribe_user(actor)`)
        plain("GET", "/api/v1/sse/subscribe", &[]),
    ]
}

/// The (METHOD, path) pairs of the OpenAPI document the server serves.
async fn documented(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc = app
        .call(Method::GET, "/api-docs/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_documented_endpoint_has_a_matrix_row() {
    let app = TestApp::new().await;
    let doc = documented(&app).await;
    let table = rows();
    let rows: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(rows.len(), table.len(), "duplicate matrix rows");
    let missing: Vec<_> = doc.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&doc).collect();
    assert!(
        missing.is_empty(),
        "endpoints without an authorisation row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for undocumented endpoints: {stale:?}"
    );
}

/// Every authenticated endpoint refuses a missing, a malformed and a wrong-scheme token with
/// 401 `INVALID_TOKEN`, before looking at the request.
#[tokio::test]
async fn every_authenticated_endpoint_refuses_requests_without_a_valid_token() {
    let app = TestApp::new().await;
    let fx = Fx::new(&app).await;
    let mut checked = 0;
    for row in rows().iter().filter(|r| r.auth) {
        let (uri, body) = row.request(&fx);
        let method = Method::from_bytes(row.method.as_bytes()).unwrap();
        for token in [
            None,
            Some("not-a-jwt"),
            Some("a.b.c"),
            Some(fx.a.refresh.as_str()),
        ] {
            let r = app.call(method.clone(), &uri, token, body.clone()).await;
            assert_eq!(
                (r.status.as_u16(), r.code()),
                (401, "INVALID_TOKEN"),
                "{} {uri} with token {token:?}: {}",
                row.method,
                r.body
            );
            checked += 1;
        }
        // `Authorization: Basic` is not a bearer token.
        let req = axum::http::Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("authorization", format!("Basic {}", fx.a.access))
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(app.raw(req).await.status(), 401, "{} {uri}", row.method);
    }
    // 68 authenticated endpoints today; a floor so an emptied table cannot pass.
    assert!(checked >= 4 * 60, "only {checked} probes");
}

#[tokio::test]
async fn rest_matrix_refuses_outsiders_and_plain_members_and_changes_nothing() {
    let app = TestApp::new().await;
    let fx = Fx::new(&app).await;
    let before = fx.snapshot(&app).await;
    let mut failures = Vec::new();
    let mut probes = 0;
    for row in rows().iter().filter(|r| r.auth) {
        let (uri, body) = row.request(&fx);
        let method = Method::from_bytes(row.method.as_bytes()).unwrap();
        for &(who, status, code) in row.expect {
            let token = &fx.session(who).access;
            let r = app
                .call(method.clone(), &uri, Some(token), body.clone())
                .await;
            probes += 1;
            let got = (r.status.as_u16(), r.code().to_owned());
            let ok = if code.is_empty() {
                got.0 == status && r.body["success"] == json!(true)
            } else {
                got == (status, code.to_owned()) && r.body["success"] == json!(false)
            };
            if !ok {
                failures.push(format!(
                    "{who:?} {} {uri}: expected {status} {code:?}, got {} {:?}: {}",
                    row.method, got.0, got.1, r.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix failures:\n{}",
        failures.join("\n")
    );
    assert!(probes >= 80, "only {probes} probes");
    let after = fx.snapshot(&app).await;
    for ((k, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(b, a, "a refused request changed {k}");
    }
}

/// Lists and look-ups any user may call show only the caller's own data.
#[tokio::test]
async fn private_data_of_one_user_is_invisible_to_others() {
    let app = TestApp::new().await;
    let fx = Fx::new(&app).await;
    let (o, m) = (&fx.o.access, &fx.m.access);
    // Bookmarks, schedules, notifications, friend groups and requests of A: empty for O,
    // and M (in A's room, A's friend) does not see A's bookmark or schedule either.
    for tok in [o, m] {
        let b = app.get("/api/v1/messages/bookmarks", tok).await.expect(200);
        assert_eq!(b.data(), &json!([]), "bookmarks leak");
        let b = app
            .get(
                &format!("/api/v1/messages/bookmarks?roomId={}&q=hello", fx.room),
                tok,
            )
            .await
            .expect(200);
        assert_eq!(b.data(), &json!([]), "bookmarks leak");
        let s = app.get("/api/v1/messages/schedule", tok).await.expect(200);
        assert_eq!(s.data(), &json!([]), "schedules leak");
        let g = app
            .get("/api/v1/users/friends/groups", tok)
            .await
            .expect(200);
        assert_eq!(g.data(), &json!([]), "friend groups leak");
    }
    let n = app.get("/api/v1/notifications", o).await.expect(200);
    assert_eq!(n.data(), &json!([]), "notifications leak");
    let c = app
        .get("/api/v1/notifications/unread/count", o)
        .await
        .expect(200);
    assert_eq!(c.data()["count"], 0);
    let reqs = app
        .get("/api/v1/users/friends/requests", o)
        .await
        .expect(200);
    assert_eq!(reqs.data(), &json!({"incoming": [], "outgoing": []}));
    let n = app.get("/api/v1/notifications", m).await.expect(200);
    let a_notification = &fx.notification;
    assert!(
        n.data()
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["id"] != json!(a_notification)),
        "M sees A's notification: {}",
        n.body
    );
    // Rooms: O's lists and searches never show A's room, its last message or unread count.
    for uri in [
        "/api/v1/chatrooms",
        "/api/v1/chatrooms/favorites",
        "/api/v1/chatrooms/search?q=secret",
        "/api/v1/chatrooms/search?q=team",
    ] {
        let r = app.get(uri, o).await.expect(200);
        assert!(
            !r.body.to_string().contains(&fx.room),
            "{uri} shows A's room to O: {}",
            r.body
        );
    }
    // Other people's profiles never carry their e-mail.
    for uri in [
        format!("/api/v1/users/{}", fx.a.user_id),
        format!("/api/v1/users/find-by-code?code={}", fx.a_code),
        "/api/v1/users/search?q=owner_a".to_owned(),
        "/api/v1/users/recommendations".to_owned(),
    ] {
        let r = app.get(&uri, o).await.expect(200);
        assert!(
            !r.body.to_string().contains("owner_a@example.com"),
            "{uri} leaks A's e-mail: {}",
            r.body
        );
    }
    let r = app
        .get(&format!("/api/v1/chatrooms/{}/participants", fx.room), m)
        .await
        .expect(200);
    assert!(!r.body.to_string().contains("@example.com"), "{}", r.body);
    // Read state: O's mark-read of A's room is refused, and M's read cursor is M's own:
    // M marking the room read moves only M's cursor.
    let before_a = app
        .get(
            &format!("/api/v1/chatrooms/{}/participants", fx.room),
            &fx.a.access,
        )
        .await
        .expect(200);
    let seq_of = |v: &Value, user: &str| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["userId"] == json!(user))
            .map(|p| p["lastReadSeq"].as_i64().unwrap())
            .unwrap()
    };
    let a_seq = seq_of(&before_a.body, &fx.a.user_id);
    app.post(
        &format!("/api/v1/messages/mark-read?roomId={}", fx.room),
        m,
        json!({}),
    )
    .await
    .expect(200);
    let after = app
        .get(
            &format!("/api/v1/chatrooms/{}/participants", fx.room),
            &fx.a.access,
        )
        .await
        .expect(200);
    assert_eq!(
        seq_of(&after.body, &fx.a.user_id),
        a_seq,
        "M moved A's cursor"
    );
    assert!(seq_of(&after.body, &fx.m.user_id) >= 2);
    // Forwarding into a room the caller is not in is refused even for a visible message,
    // and adds nothing there.
    let r = app
        .post(
            "/api/v1/messages/forward",
            m,
            json!({"messageId": fx.msg, "targetRoomIds": [fx.o_room]}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), NOT_PARTICIPANT, "{}", r.body);
    let h = app
        .get(&format!("/api/v1/messages/{}", fx.o_room), o)
        .await
        .expect(200);
    assert_eq!(h.data(), &json!([]), "forward landed in O's room");
    // X is O's room-mate, not A's: X cannot read A's room either.
    let r = app
        .get(&format!("/api/v1/messages/{}", fx.room), &fx.x.access)
        .await;
    assert_eq!((r.status.as_u16(), r.code()), NOT_PARTICIPANT);
}

// ---------------------------------------------------------------------------------------
// STOMP
// ---------------------------------------------------------------------------------------

/// The STOMP world: `a` owns group room `room` with members `m` and `n`; `o` is outside.
struct StompFx {
    server: ServerHandle,
    a: (UserId, String),
    m: (UserId, String),
    n: (UserId, String),
    o: (UserId, String),
    room: RoomId,
    /// A's message in `room`.
    msg: MessageId,
}

impl StompFx {
    async fn new() -> StompFx {
        let server = start_server(Config::for_tests()).await;
        let a = server.user("owner_a").await;
        let m = server.user("member_m").await;
        let n = server.user("member_n").await;
        let o = server.user("outsider_o").await;
        let room = server.group(a.0, "team secret", vec![m.0, n.0]).await;
        let engine = &server.state.engine;
        let msg = engine
            .send_message(a.0, text_message(room, "hello team", "a-1"))
            .await
            .expect("send")
            .message_id;
        eventually(10, || async { engine.message(a.0, msg).await.ok() }).await;
        StompFx {
            server,
            a,
            m,
            n,
            o,
            room,
            msg,
        }
    }

    fn token(&self, who: Who) -> &str {
        match who {
            Who::Outsider => &self.o.1,
            Who::Member => &self.m.1,
        }
    }

    /// What A sees of the room (participants, roles, title, history, pins, read cursors).
    async fn snapshot(&self) -> String {
        let e = &self.server.state.engine;
        let (a, r) = (self.a.0, self.room);
        let query = HistoryQuery {
            before: None,
            after: None,
            limit: 100,
        };
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            e.room(a, r).await.expect("room"),
            e.history(a, r, query).await.expect("history"),
            e.pinned_messages(a, r).await.expect("pins"),
            e.rooms_of(a).await.expect("rooms"),
            e.rooms_of(self.m.0).await.expect("rooms"),
        )
    }
}

/// One STOMP probe: who sends, the body, and the `error-code` of the FAILED receipt
/// (empty: the request succeeds).
type AppProbe = (Who, Value, &'static str);

/// One row per `/app` destination the server routes.
struct AppRow {
    dest: &'static str,
    probes: fn(&StompFx) -> Vec<AppProbe>,
}

fn app_rows() -> Vec<AppRow> {
    use Who::{Member, Outsider};
    const NRP: &str = "NOT_ROOM_PARTICIPANT";
    const MNF: &str = "MESSAGE_NOT_FOUND";
    const RPD: &str = "ROOM_PERMISSION_DENIED";
    const NMS: &str = "NOT_MESSAGE_SENDER";
    let row = |dest, probes| AppRow { dest, probes };
    vec![
        row("/app/chat", |f| {
            vec![(
                Outsider,
                json!({"roomId": f.room.to_string(), "content": "sneaky", "tempId": "o-1"}),
                NRP,
            )]
        }),
        row("/app/thread", |f| {
            vec![(
                Outsider,
                json!({"parentMessageId": f.msg.to_string(), "content": "sneaky", "tempId": "o-2"}),
                MNF,
            )]
        }),
        row("/app/edit", |f| {
            vec![
                (
                    Outsider,
                    json!({"messageId": f.msg.to_string(), "content": "hijacked"}),
                    MNF,
                ),
                (
                    Member,
                    json!({"messageId": f.msg.to_string(), "content": "hijacked"}),
                    NMS,
                ),
            ]
        }),
        row("/app/delete", |f| {
            vec![
                (Outsider, json!({"messageId": f.msg.to_string()}), MNF),
                (Member, json!({"messageId": f.msg.to_string()}), NMS),
            ]
        }),
        row("/app/reaction", |f| {
            vec![(
                Outsider,
                json!({"messageId": f.msg.to_string(), "reaction": "like"}),
                MNF,
            )]
        }),
        row("/app/pin/toggle", |f| {
            vec![
                (Outsider, json!({"messageId": f.msg.to_string()}), MNF),
                (Member, json!({"messageId": f.msg.to_string()}), RPD),
            ]
        }),
        row("/app/pin", |f| {
            vec![
                (Outsider, json!({"messageId": f.msg.to_string()}), MNF),
                (Member, json!({"messageId": f.msg.to_string()}), RPD),
            ]
        }),
        row("/app/typing", |f| {
            vec![(
                Outsider,
                json!({"roomId": f.room.to_string(), "isTyping": true}),
                NRP,
            )]
        }),
        row("/app/read", |f| {
            vec![
                (Outsider, json!({"roomId": f.room.to_string()}), NRP),
                (
                    Outsider,
                    json!({"roomId": f.room.to_string(), "lastSeq": 1}),
                    NRP,
                ),
                (Outsider, json!({"messageId": f.msg.to_string()}), MNF),
                (
                    Outsider,
                    json!({"messageId": f.msg.to_string(), "roomId": f.room.to_string()}),
                    NRP,
                ),
            ]
        }),
        row("/app/read-all", |f| {
            vec![(Outsider, json!({"roomId": f.room.to_string()}), NRP)]
        }),
        row("/app/sync", |f| {
            vec![
                (
                    Outsider,
                    json!({"roomId": f.room.to_string(), "direction": "INITIAL"}),
                    NRP,
                ),
                (
                    Outsider,
                    json!({"roomId": f.room.to_string(), "lastSeq": 0, "direction": "AFTER"}),
                    NRP,
                ),
                (
                    Outsider,
                    json!({"roomId": f.room.to_string(), "lastMessageId": f.msg.to_string(), "direction": "BEFORE"}),
                    NRP,
                ),
            ]
        }),
        // The caller's own room list (isolation checked below).
        row("/app/rooms", |_| vec![(Outsider, json!({}), "")]),
        row("/app/active", |f| {
            vec![(Outsider, json!({"roomId": f.room.to_string()}), NRP)]
        }),
        row("/app/group-chat", |f| {
            vec![
                (
                    Outsider,
                    json!({"action": "ADD_PARTICIPANT", "roomId": f.room.to_string(), "userId": f.o.0.to_string()}),
                    NRP,
                ),
                (
                    Outsider,
                    json!({"action": "REMOVE_PARTICIPANT", "roomId": f.room.to_string(), "userId": f.n.0.to_string()}),
                    NRP,
                ),
                (
                    Outsider,
                    json!({"action": "UPDATE_TITLE", "roomId": f.room.to_string(), "title": "hijacked"}),
                    NRP,
                ),
                (
                    Outsider,
                    json!({"action": "LEAVE", "roomId": f.room.to_string()}),
                    NRP,
                ),
                (
                    Member,
                    json!({"action": "UPDATE_TITLE", "roomId": f.room.to_string(), "title": "hijacked"}),
                    RPD,
                ),
                (
                    Member,
                    json!({"action": "REMOVE_PARTICIPANT", "roomId": f.room.to_string(), "userId": f.n.0.to_string()}),
                    RPD,
                ),
                (
                    Member,
                    json!({"action": "REMOVE_PARTICIPANT", "roomId": f.room.to_string(), "userId": f.a.0.to_string()}),
                    RPD,
                ),
                // Creating one's own group is allowed.
                (
                    Outsider,
                    json!({"action": "CREATE", "title": "o group", "participantIds": [f.n.0.to_string()]}),
                    "",
                ),
            ]
        }),
        row("/app/thread/messages", |f| {
            vec![(Outsider, json!({"threadId": f.msg.to_string()}), MNF)]
        }),
        row("/app/thread/detail", |f| {
            vec![(Outsider, json!({"threadId": f.msg.to_string()}), MNF)]
        }),
        row("/app/threads", |f| {
            vec![(Outsider, json!({"roomId": f.room.to_string()}), NRP)]
        }),
    ]
}

/// The quoted `"/app/…"` destinations routed by `stomp::app::handle`, read from its source
/// so that a destination added there without a row here fails the test.
fn routed_app_destinations() -> BTreeSet<String> {
    let src = include_str!("../../src/stomp/app.rs");
    let start = src.find("pub(crate) async fn handle(").expect("handle fn");
    let body = &src[start..];
    let end = body.find("\n}\n").expect("end of handle");
    quoted_with_prefix(&body[..end], "\"/app/")
}

/// The `strip_prefix("…")` destination prefixes of `routing::parse_destination`.
fn subscribable_prefixes() -> BTreeSet<String> {
    let src = include_str!("../../src/stomp/routing.rs");
    let start = src
        .find("pub fn parse_destination(")
        .expect("parse_destination");
    let body = &src[start..];
    let end = body.find("\n}\n").expect("end of parse_destination");
    quoted_with_prefix(&body[..end], "strip_prefix(\"")
}

fn quoted_with_prefix(src: &str, prefix: &str) -> BTreeSet<String> {
    let skip = prefix.len() - prefix.trim_start_matches(|c| c != '"').len() + 1;
    src.match_indices(prefix)
        .map(|(i, _)| {
            let rest = &src[i + skip..];
            rest[..rest.find('"').expect("closing quote")].to_owned()
        })
        .collect()
}

#[test]
fn every_routed_stomp_destination_has_a_matrix_row() {
    let rows: BTreeSet<String> = app_rows().iter().map(|r| r.dest.to_owned()).collect();
    let routed = routed_app_destinations();
    assert!(routed.len() >= 17, "{routed:?}");
    assert_eq!(
        routed, rows,
        "/app destinations without a row, or stale rows"
    );
    let prefixes = subscribable_prefixes();
    let covered: BTreeSet<String> = SUB_PREFIXES.iter().map(|p| (*p).to_owned()).collect();
    assert_eq!(prefixes, covered, "subscribable destinations without a row");
}

/// Subscribable destination prefixes the subscription matrix covers.
const SUB_PREFIXES: [&str; 7] = [
    "/topic/messages/",
    "/topic/message/status/",
    "/topic/typing/",
    "/topic/active/",
    "/topic/thread/",
    "/user/queue/",
    "/queue/user/",
];

/// The ERROR frame of a refused SUBSCRIBE names the stable code first in its body.
fn refused_code(f: &Frame) -> String {
    assert_eq!(f.command, Command::Error, "expected ERROR, got {f:?}");
    assert_eq!(f.header("message"), Some("forbidden"), "{f:?}");
    let body = String::from_utf8_lossy(&f.body);
    body.split(':').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn stomp_subscriptions_to_other_rooms_and_user_queues_are_refused() {
    let fx = StompFx::new().await;
    let addr = fx.server.addr;
    let mut o = StompClient::connect(addr, &fx.o.1).await;
    let (r, msg, a) = (fx.room, fx.msg, fx.a.0);
    let refused = [
        (format!("/topic/messages/{r}"), "NOT_ROOM_PARTICIPANT"),
        (format!("/topic/message/status/{r}"), "NOT_ROOM_PARTICIPANT"),
        (format!("/topic/typing/{r}"), "NOT_ROOM_PARTICIPANT"),
        (format!("/topic/active/{r}"), "NOT_ROOM_PARTICIPANT"),
        (format!("/topic/thread/{msg}"), "MESSAGE_NOT_FOUND"),
        (format!("/queue/user/{a}"), "ROOM_PERMISSION_DENIED"),
        // Rooms and messages that do not exist.
        ("/topic/messages/999999999".to_owned(), "ROOM_NOT_FOUND"),
        ("/topic/thread/999999999".to_owned(), "MESSAGE_NOT_FOUND"),
    ];
    for (i, (dest, code)) in refused.iter().enumerate() {
        let f = o.subscribe_answer(&format!("r{i}"), dest).await;
        assert_eq!(refused_code(&f), *code, "{dest}: {f:?}");
        assert_eq!(f.header("receipt-id"), Some(format!("sub-r{i}").as_str()));
    }
    // Every prefix of the table is probed above or below.
    for p in SUB_PREFIXES {
        assert!(
            refused.iter().any(|(d, _)| d.starts_with(p)) || p == "/user/queue/",
            "{p} not probed"
        );
    }
    // The session stays usable: the caller's own queues are granted.
    for q in UserQueue::ALL {
        let f = o
            .subscribe_answer(q.name(), &format!("/user/queue/{}", q.name()))
            .await;
        assert_eq!(f.command, Command::Receipt, "{q:?}: {f:?}");
    }
    let f = o
        .subscribe_answer("alias", &format!("/queue/user/{}", fx.o.0))
        .await;
    assert_eq!(f.command, Command::Receipt, "{f:?}");

    // A subscribes to its own queues; events for A (a mention notification, a room update,
    // A's read cursor) reach A and never O.
    let mut ac = StompClient::connect(addr, &fx.a.1).await;
    assert_eq!(
        ac.subscribe_answer("mine", &format!("/queue/user/{a}"))
            .await
            .command,
        Command::Receipt
    );
    let engine = &fx.server.state.engine;
    let cmd = SendMessage {
        mentions: vec![a],
        ..text_message(r, "ping @owner_a", "m-9")
    };
    engine.send_message(fx.m.0, cmd).await.expect("send");
    let mut seen = BTreeSet::new();
    while !seen.contains("NOTIFICATION") || !seen.contains("ROOM_UPDATE") {
        let f = ac.next().await;
        if let Some(t) = f.header("event-type") {
            seen.insert(t.to_owned());
        }
    }
    o.take_backlog();
    // O's own request afterwards: everything O got before its reply is O's.
    let receipt = o.request("/app/rooms", &json!({}), "sentinel").await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    let frames = o.take_backlog();
    assert!(
        frames
            .iter()
            .all(|f| f.header("event-type") == Some("ROOM_LIST")),
        "O received someone else's events: {frames:?}"
    );
    let list = frames.last().expect("ROOM_LIST reply");
    assert!(
        !String::from_utf8_lossy(&list.body).contains(&r.to_string()),
        "O's room list shows A's room: {list:?}"
    );
}

#[tokio::test]
async fn stomp_app_matrix_refuses_outsiders_and_plain_members_and_changes_nothing() {
    let fx = StompFx::new().await;
    let before = fx.snapshot().await;
    let mut clients = Vec::new();
    for who in [Who::Outsider, Who::Member] {
        let mut c = StompClient::connect(fx.server.addr, fx.token(who)).await;
        let f = c.subscribe_answer("errors", "/user/queue/errors").await;
        assert_eq!(f.command, Command::Receipt);
        clients.push((who, c));
    }
    let mut failures = Vec::new();
    let mut probes = 0;
    for row in app_rows() {
        for (i, (who, body, code)) in (row.probes)(&fx).into_iter().enumerate() {
            let c = &mut clients.iter_mut().find(|(w, _)| *w == who).unwrap().1;
            let receipt_id = format!("{}#{i}", row.dest);
            let f = c.request(row.dest, &body, &receipt_id).await;
            probes += 1;
            let ok = f.command == Command::Receipt
                && f.header("receipt-id") == Some(receipt_id.as_str())
                && if code.is_empty() {
                    f.header("status") != Some("FAILED")
                } else {
                    f.header("status") == Some("FAILED") && f.header("error-code") == Some(code)
                };
            if !ok {
                failures.push(format!(
                    "{who:?} SEND {} {body}: expected {code:?}, got {f:?}",
                    row.dest
                ));
                continue;
            }
            if !code.is_empty() {
                // The refusal is also reported on the caller's error queue (by the session
                // before the RECEIPT, or by the engine through the bus for rejected sends).
                let is_report = |m: &Frame| {
                    serde_json::from_slice::<Value>(&m.body)
                        .is_ok_and(|v| v["errorCode"] == code && v["destination"] == row.dest)
                };
                // Waits for it (`next` fails the test after 10 s without a frame).
                let mut reported = c.take_backlog().iter().any(is_report);
                while !reported {
                    let m = c.next().await;
                    reported = m.command == Command::Message && is_report(&m);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "STOMP matrix failures:\n{}",
        failures.join("\n")
    );
    assert!(probes >= 30, "only {probes} probes");
    assert_eq!(
        before,
        fx.snapshot().await,
        "a refused STOMP request changed the room"
    );
}
