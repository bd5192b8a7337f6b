//! STOMP over WebSocket against the real server on an ephemeral port (memory ports), with a
//! minimal STOMP client on tokio-tungstenite.

use futures::StreamExt;
use serde_json::json;
use shoot_server::ServerHandle;
use shoot_server::config::Config;
use shoot_server::stomp::frame::{Command, Frame, FrameLimits};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{FRAME_WAIT, ServerExt, StompClient, json_body, start_server};

/// Opens `ws://…/ws/chat{query}` offering the `v12.stomp` subprotocol, which the server
/// must accept.
async fn open(server: &ServerHandle, query: &str) -> StompClient {
    let (c, resp) = StompClient::try_open(server.addr, query, true, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("v12.stomp")
    );
    c
}

/// Opens and CONNECTs with the token in the CONNECT frame.
async fn connect(server: &ServerHandle, token: &str) -> StompClient {
    let mut c = open(server, "").await;
    c.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.1,1.2")
            .with_header("host", "localhost")
            .with_header("heart-beat", "0,0")
            .with_header("Authorization", format!("Bearer {token}")),
    )
    .await;
    let connected = c.next().await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    assert_eq!(connected.header("version"), Some("1.2"));
    assert_eq!(connected.header("heart-beat"), Some("10000,10000"));
    c
}

#[tokio::test]
async fn chat_statuses_and_delivery_between_two_users() {
    let server = start_server(Config::for_tests()).await;
    let (alice, alice_token) = server.user("alice").await;
    let (bob, bob_token) = server.user("bobby").await;
    let room = server.group(alice, "team", vec![bob]).await;

    let mut a = connect(&server, &alice_token).await;
    // Bob authenticates with ?token= on the handshake instead.
    let mut b = open(&server, &format!("?token={bob_token}")).await;
    b.send(
        Frame::new(Command::Stomp)
            .with_header("accept-version", "1.2")
            .with_header("host", "x"),
    )
    .await;
    assert_eq!(b.next().await.command, Command::Connected);

    let r = a
        .subscribe("st", &format!("/topic/message/status/{room}"))
        .await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("sub-st"))
    );
    let r = b.subscribe("m", &format!("/topic/messages/{room}")).await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("sub-m"))
    );

    a.app(
        "/app/chat",
        &json!({"roomId": room.to_string(), "content": {"text": "hello bob", "type": "TEXT"}, "tempId": "t-1"}),
        Some("send-1"),
    )
    .await;

    let mut statuses = Vec::new();
    let mut receipt = None;
    while statuses.last().map(String::as_str) != Some("SAVED") || receipt.is_none() {
        let f = a.next().await;
        match f.command {
            Command::Receipt => receipt = Some(f),
            Command::Message => {
                assert_eq!(f.header("subscription"), Some("st"));
                assert_eq!(f.header("event-type"), Some("MESSAGE_STATUS"));
                let v = json_body(&f);
                assert_eq!(v["tempId"], "t-1");
                statuses.push(v["status"].as_str().unwrap().to_owned());
            }
            other => panic!("unexpected {other}: {f:?}"),
        }
    }
    assert_eq!(
        statuses,
        ["SENDING", "SENT_TO_KAFKA", "PROCESSING", "SAVED"]
    );
    let receipt = receipt.unwrap();
    assert_eq!(receipt.header("receipt-id"), Some("send-1"));
    assert_eq!(receipt.header("status"), Some("SENT_TO_KAFKA"));
    assert_eq!(receipt.header("temp-id"), Some("t-1"));

    let m = b.next().await;
    assert_eq!(m.command, Command::Message);
    assert_eq!(
        m.header("destination"),
        Some(format!("/topic/messages/{room}").as_str())
    );
    assert_eq!(m.header("event-type"), Some("MESSAGE_CREATED"));
    assert!(m.header("message-id").is_some());
    let v = json_body(&m);
    assert_eq!(v["content"]["text"], "hello bob");
    assert_eq!(v["senderId"], alice.to_string());
    assert_eq!(v["roomId"], room.to_string());
    assert_eq!(v["seq"], 1);
    assert_eq!(receipt.header("persisted-id"), v["id"].as_str());

    // Bob resyncs from seq 0 and gets exactly that message on /user/queue/sync.
    b.subscribe("sync", "/user/queue/sync").await;
    b.app(
        "/app/sync",
        &json!({"roomId": room.to_string(), "lastSeq": 0, "direction": "AFTER"}),
        None,
    )
    .await;
    let s = b.next().await;
    assert_eq!(s.header("event-type"), Some("SYNC"));
    let v = json_body(&s);
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["content"]["text"], "hello bob");

    // DISCONNECT with a receipt: RECEIPT, then the server closes.
    a.send(Frame::new(Command::Disconnect).with_header("receipt", "bye"))
        .await;
    let r = a.next().await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("bye"))
    );
    a.expect_closed().await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unauthorised_subscribe_gets_an_error_and_the_session_goes_on() {
    let server = start_server(Config::for_tests()).await;
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bobby").await;
    let (_, eve_token) = server.user("eve01").await;
    let room = server.group(alice, "team", vec![bob]).await;

    let mut e = connect(&server, &eve_token).await;
    for dest in [
        format!("/topic/messages/{room}"),
        format!("/topic/typing/{room}"),
        format!("/queue/user/{alice}"),
        "/topic/nowhere".to_owned(),
    ] {
        let f = e.subscribe("x", &dest).await;
        assert_eq!(f.command, Command::Error, "{dest}: {f:?}");
        assert_eq!(f.header("receipt-id"), Some("sub-x"));
    }
    // Still connected: the own user queue works.
    let f = e.subscribe("errors", "/user/queue/errors").await;
    assert_eq!(f.command, Command::Receipt);

    // A business error on SEND goes to /user/queue/errors, never an ERROR frame.
    e.app(
        "/app/chat",
        &json!({"roomId": room.to_string(), "content": "hi", "tempId": "e-1"}),
        Some("r1"),
    )
    .await;
    let mut got_error = false;
    let mut got_receipt = false;
    while !(got_error && got_receipt) {
        let f = e.next().await;
        match f.command {
            Command::Message => {
                let v = json_body(&f);
                assert_eq!(v["errorCode"], "NOT_ROOM_PARTICIPANT", "{v}");
                assert_eq!(v["tempId"], "e-1");
                got_error = true;
            }
            Command::Receipt => {
                assert_eq!(f.header("status"), Some("FAILED"));
                assert_eq!(f.header("error-code"), Some("NOT_ROOM_PARTICIPANT"));
                got_receipt = true;
            }
            other => panic!("unexpected {other}: {f:?}"),
        }
    }
    // A malformed payload is reported the same way.
    e.app("/app/edit", &json!({"nope": true}), None).await;
    let f = e.next().await;
    assert_eq!(f.command, Command::Message);
    let v = json_body(&f);
    assert_eq!(v["errorCode"], "VALIDATION_FAILED");
    assert_eq!(v["destination"], "/app/edit");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_frames_and_missing_auth_get_error_and_close() {
    let server = start_server(Config::for_tests()).await;
    let (_, token) = server.user("alice").await;

    // Malformed frame after CONNECT.
    let mut c = connect(&server, &token).await;
    c.send_raw("BOGUS\nx:y\n\n\0").await;
    let f = c.next().await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.header("message"), Some("malformed frame"));
    c.expect_closed().await;

    // CONNECT without a token, CONNECT with a bad token, SEND before CONNECT: an ERROR
    // (with this `message` header, where given), then the close.
    for (first, message) in [
        (
            Frame::new(Command::Connect).with_header("accept-version", "1.2"),
            Some("unauthenticated"),
        ),
        (
            Frame::new(Command::Connect).with_header("passcode", "not-a-jwt"),
            None,
        ),
        (
            Frame::new(Command::Send).with_header("destination", "/app/chat"),
            None,
        ),
    ] {
        let mut c = open(&server, "").await;
        c.send(first).await;
        let f = c.next().await;
        assert_eq!(f.command, Command::Error, "{f:?}");
        if let Some(message) = message {
            assert_eq!(f.header("message"), Some(message));
        }
        c.expect_closed().await;
    }

    // A frame over the size limit.
    let mut c = connect(&server, &token).await;
    let big = "x".repeat(FrameLimits::default().max_body + 10);
    c.send(
        Frame::new(Command::Send)
            .with_header("destination", "/app/chat")
            .with_body(big),
    )
    .await;
    let f = c.next().await;
    assert_eq!(f.command, Command::Error);
    c.expect_closed().await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn frames_split_across_websocket_messages_and_heartbeats_are_handled() {
    let server = start_server(Config::for_tests()).await;
    let (_, token) = server.user("alice").await;
    let mut c = open(&server, "").await;
    let connect = String::from_utf8(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("Authorization", format!("Bearer {token}"))
            .encode(),
    )
    .unwrap();
    let (head, tail) = connect.split_at(10);
    c.send_raw("\n").await;
    c.send_raw(head).await;
    c.send_raw(tail).await;
    assert_eq!(c.next().await.command, Command::Connected);
    // Two frames in one WebSocket message, with heart-beat EOLs between them.
    c.send_raw("SUBSCRIBE\nid:1\ndestination:/user/queue/rooms\nreceipt:a\n\n\0\r\n\nSEND\ndestination:/app/rooms\n\n{}\0")
        .await;
    let r = c.next().await;
    assert_eq!(
        (r.command, r.header("receipt-id")),
        (Command::Receipt, Some("a"))
    );
    let list = c.next().await;
    assert_eq!(list.header("event-type"), Some("ROOM_LIST"));
    assert_eq!(json_body(&list), json!([]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn heart_beats_are_sent_and_a_silent_client_is_disconnected() {
    let mut config = Config::for_tests();
    config.stomp.heartbeat_send_ms = 50;
    config.stomp.heartbeat_receive_ms = 50;
    let server = start_server(config).await;
    let (_, token) = server.user("alice").await;
    let connect = |hb: &str| {
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("heart-beat", hb)
            .with_header("Authorization", format!("Bearer {token}"))
    };

    // The client wants beats every 50 ms and sends none: the server beats with bare EOLs
    // and does not time the client out.
    let mut c = open(&server, "").await;
    c.send(connect("0,50")).await;
    let connected = c.next().await;
    assert_eq!(connected.header("heart-beat"), Some("50,50"));
    let mut beats = 0;
    while beats < 3 {
        match tokio::time::timeout(FRAME_WAIT, c.ws.next())
            .await
            .expect("a heart-beat in time")
        {
            Some(Ok(Message::Text(t))) if t.as_str() == "\n" => beats += 1,
            other => panic!("unexpected {other:?}"),
        }
    }

    // The client promises beats every 50 ms and stays silent: ERROR, then close.
    let mut c = open(&server, "").await;
    c.send(connect("50,0")).await;
    assert_eq!(c.next().await.command, Command::Connected);
    let f = c.next().await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.header("message"), Some("heart-beat timeout"));
    c.expect_closed().await;
    server.shutdown().await.unwrap();
}
