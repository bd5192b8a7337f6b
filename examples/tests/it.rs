//! Runs both examples end to end and checks what they print.

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_chat_walkthrough() {
    let mut buf = Vec::new();
    shoot_examples::embedded_chat(&mut buf)
        .await
        .expect("example failed");
    let text = String::from_utf8(buf).expect("utf-8");

    // Four messages sent (a-1, b-1, a-2, b-2), each through the full lifecycle.
    let full = lines_with(
        &text,
        "status: SENDING → SENT_TO_KAFKA → PROCESSING → SAVED",
    );
    assert_eq!(full.len(), 4, "{text}");
    assert!(text.contains("duplicate: true"), "{text}");
    assert!(text.contains("Bob reacted 'like'"), "{text}");
    assert!(text.contains("pinned in room: 1"), "{text}");
    assert!(text.contains("1 reply — \"Can Carol join us?\""), "{text}");
    assert!(text.contains("Bob had 2 unread"), "{text}"); // a-1 and a-2, not his own b-1/b-2
    assert!(text.contains("now 0 unread"), "{text}");

    let history: Vec<&str> = text.lines().filter(|l| l.starts_with("  [")).collect();
    assert_eq!(history.len(), 4, "{text}");
    assert!(
        history[0].contains("Hi Bob! Lunch tomorrow?") && history[0].contains("\"like\": 1"),
        "{text}"
    );
    assert!(history[0].contains("1 thread reply"), "{text}");
    assert!(history[1].contains("pinned"), "{text}");
    assert!(history[3].contains("reply in thread"), "{text}");
    assert!(history.iter().all(|l| l.contains("SAVED")), "{text}");
    assert!(
        history[0].contains("read by 1") && history[1].contains("read by 0"),
        "{text}"
    );
    assert!(text.contains("MessageCreated: 4"), "{text}");
    assert!(text.contains("ReadReceipt: 1"), "{text}");
    assert!(text.ends_with("engine shut down cleanly\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_port_walkthrough() {
    let mut buf = Vec::new();
    shoot_examples::custom_port(&mut buf)
        .await
        .expect("example failed");
    let text = String::from_utf8(buf).expect("utf-8");
    assert!(
        text.contains("link preview of https://example.org/rust: \"Rust Programming Language\""),
        "{text}"
    );
    assert!(text.contains("stored message has preview: true"), "{text}");
    assert_eq!(lines_with(&text, "→ PROCESSING → SAVED").len(), 2, "{text}");
    assert!(
        text.contains("events published through CountingBus: {\"room\":"),
        "{text}"
    );
    assert!(text.ends_with("engine shut down cleanly\n"), "{text}");
}
