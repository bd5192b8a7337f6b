//! [`MessageStore`] contract.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::{expect_not_found, fresh_id, ok, wall_now};
use crate::ids::{MessageId, RoomId, Seq, UserId};
use crate::messages::{HistoryQuery, Message, MessageStatus, MessageStore, Pin};
use crate::time::Timestamp;

fn message(room: RoomId, seq: i64, sender: UserId, text: &str, at: Timestamp) -> Message {
    Message {
        seq: Seq(seq),
        temp_id: Some(format!("tmp-{}", fresh_id()).into()),
        status: MessageStatus::Saved,
        ..Message::new(MessageId(fresh_id()), room, sender, text, at)
    }
}

fn seqs(v: &[Message]) -> Vec<i64> {
    v.iter().map(|m| m.seq.0).collect()
}

fn q(before: Option<i64>, after: Option<i64>, limit: usize) -> HistoryQuery {
    HistoryQuery {
        before: before.map(Seq),
        after: after.map(Seq),
        limit,
    }
}

/// Runs the [`MessageStore`] contract.
pub async fn message_store_contract(store: &dyn MessageStore) {
    let t = wall_now();
    let room = RoomId(fresh_id());
    let empty_room = RoomId(fresh_id());
    let (s, o) = (UserId(fresh_id()), UserId(fresh_id()));
    let at = |seq: i64| Timestamp(t.0 + seq * 1000);

    // Seqs 1..=10, odd ones by s, even ones by o.
    let msgs: Vec<Message> = (1..=10)
        .map(|i| {
            let sender = if i % 2 == 1 { s } else { o };
            message(room, i, sender, &format!("Hello number {i}"), at(i))
        })
        .collect();
    let ids: Vec<MessageId> = msgs.iter().map(|m| m.id).collect();
    assert_eq!(
        ok(store.insert_messages(&msgs[..6]).await, "insert_messages"),
        ids[..6].to_vec()
    );
    assert_eq!(
        ok(store.insert_messages(&msgs).await, "insert_messages"),
        ids[6..].to_vec(),
        "insert_messages skips already stored ids and returns the new ones"
    );
    assert!(
        ok(store.insert_messages(&msgs).await, "insert_messages").is_empty(),
        "idempotent"
    );
    let mut same_temp = message(room, 11, s, "dup", at(11));
    same_temp.temp_id = msgs[0].temp_id.clone();
    assert!(
        ok(store.insert_messages(&[same_temp]).await, "insert_messages").is_empty(),
        "insert_messages skips a (sender_id, temp_id) already stored"
    );
    let mut other_sender = message(empty_room, 1, o, "other sender, same temp id", at(1));
    other_sender.temp_id = msgs[0].temp_id.clone();
    assert_eq!(
        ok(
            store
                .insert_messages(std::slice::from_ref(&other_sender))
                .await,
            "insert_messages"
        ),
        vec![other_sender.id],
        "temp ids are per sender"
    );
    let empty_room = RoomId(fresh_id());

    // Look-ups.
    assert_eq!(
        ok(store.get_message(ids[2]).await, "get_message"),
        Some(msgs[2].clone()),
        "round trip"
    );
    assert_eq!(
        ok(
            store.get_message(MessageId(fresh_id())).await,
            "get_message"
        ),
        None
    );
    let mut got: Vec<MessageId> = ok(
        store
            .get_messages(&[ids[4], MessageId(fresh_id()), ids[1]])
            .await,
        "get_messages",
    )
    .into_iter()
    .map(|m| m.id)
    .collect();
    got.sort();
    let mut want = vec![ids[1], ids[4]];
    want.sort();
    assert_eq!(got, want, "get_messages returns the existing ones");
    let tmp = msgs[3].temp_id.clone().unwrap_or_default();
    assert_eq!(
        ok(store.find_by_temp_id(o, &tmp).await, "find_by_temp_id").map(|m| m.id),
        Some(ids[3])
    );
    assert_eq!(
        ok(store.find_by_temp_id(s, &tmp).await, "find_by_temp_id"),
        None,
        "temp ids are per sender"
    );
    let tmp1 = msgs[0].temp_id.clone().unwrap_or_default();
    let tmp5 = msgs[5].temp_id.clone().unwrap_or_default();
    let mut got: Vec<MessageId> = ok(
        store
            .find_by_temp_ids(&[
                (o, &*tmp),
                (s, &*tmp),
                (s, &*tmp1),
                (s, "never-sent"),
                (o, &*tmp5),
                (o, &*tmp),
            ])
            .await,
        "find_by_temp_ids",
    )
    .into_iter()
    .map(|m| m.id)
    .collect();
    got.sort();
    let mut want = vec![ids[0], ids[3], ids[5]];
    want.sort();
    assert_eq!(
        got, want,
        "find_by_temp_ids: the stored ones, per sender, each once"
    );
    assert_eq!(
        ok(
            store.find_by_temp_ids(&[(s, &*tmp1)]).await,
            "find_by_temp_ids"
        ),
        vec![msgs[0].clone()],
        "find_by_temp_ids returns whole messages"
    );
    assert!(
        ok(store.find_by_temp_ids(&[]).await, "find_by_temp_ids").is_empty(),
        "no keys, no messages"
    );

    // History paging.
    let h = |before, after, limit| store.history(room, q(before, after, limit));
    assert_eq!(
        seqs(&ok(h(None, None, 3).await, "history")),
        vec![8, 9, 10],
        "newest page, oldest first"
    );
    assert_eq!(
        seqs(&ok(h(Some(5), None, 3).await, "history")),
        vec![2, 3, 4],
        "before"
    );
    assert_eq!(
        seqs(&ok(h(None, Some(5), 3).await, "history")),
        vec![6, 7, 8],
        "after: the oldest after"
    );
    assert_eq!(
        seqs(&ok(h(Some(6), Some(2), 10).await, "history")),
        vec![3, 4, 5],
        "between"
    );
    assert_eq!(
        seqs(&ok(h(Some(9), Some(2), 2).await, "history")),
        vec![3, 4],
        "between with after: oldest"
    );
    assert_eq!(
        seqs(&ok(h(None, Some(8), 10).await, "history")),
        vec![9, 10]
    );
    assert!(
        ok(h(Some(1), None, 10).await, "history").is_empty(),
        "nothing before seq 1"
    );
    assert!(
        ok(h(None, Some(10), 10).await, "history").is_empty(),
        "nothing after the last"
    );
    assert!(ok(h(None, None, 0).await, "history").is_empty(), "limit 0");
    let queries = [
        (room, q(None, None, 3)),
        (room, q(None, Some(5), 3)),
        (empty_room, q(None, None, 10)),
        (room, q(Some(6), Some(2), 10)),
        (room, q(Some(5), None, 3)),
        (room, q(None, None, 3)),
        (room, q(None, None, 0)),
    ];
    let pages = ok(store.histories(&queries).await, "histories");
    assert_eq!(pages.len(), queries.len(), "histories: one page per query");
    for ((room, query), page) in queries.iter().zip(&pages) {
        assert_eq!(
            page,
            &ok(store.history(*room, *query).await, "history"),
            "histories: each page as history returns it ({query:?})"
        );
    }
    assert!(ok(store.histories(&[]).await, "histories").is_empty());
    assert!(
        ok(
            store.history(empty_room, q(None, None, 10)).await,
            "history"
        )
        .is_empty()
    );
    assert_eq!(
        ok(h(None, None, 100).await, "history"),
        msgs,
        "history returns the stored messages"
    );

    // Threads: replies in separate batches, out of seq order; root and reply in one batch.
    let root = ids[0];
    let mut r12 = message(room, 12, o, "second reply", at(12));
    r12.thread_id = Some(root);
    let mut r11 = message(room, 11, s, "first reply", at(11));
    r11.thread_id = Some(root);
    ok(
        store.insert_messages(std::slice::from_ref(&r12)).await,
        "insert reply",
    );
    ok(
        store.insert_messages(std::slice::from_ref(&r11)).await,
        "insert reply",
    );
    ok(
        store.insert_messages(std::slice::from_ref(&r11)).await,
        "re-insert reply",
    );
    let root_msg = ok(store.get_message(root).await, "get_message").expect("root exists");
    assert_eq!(
        root_msg.reply_count, 2,
        "each newly inserted reply increments reply_count once"
    );
    assert_eq!(
        root_msg.last_reply_at,
        Some(at(12)),
        "last_reply_at is the latest reply's time"
    );
    assert_eq!(
        seqs(&ok(
            store.history(room, q(None, Some(10), 10)).await,
            "history"
        )),
        vec![11, 12],
        "history includes replies, ordered by seq whatever the insertion order"
    );
    let root2 = message(room, 13, o, "another root", at(13));
    let mut r14 = message(room, 14, s, "reply in the same batch", at(14));
    r14.thread_id = Some(root2.id);
    ok(
        store.insert_messages(&[root2.clone(), r14.clone()]).await,
        "insert root + reply",
    );
    let root2_msg = ok(store.get_message(root2.id).await, "get_message").expect("root2 exists");
    assert_eq!(
        root2_msg.reply_count, 1,
        "a reply inserted with its root in one batch counts"
    );
    let replies = ok(store.thread_replies(root, None, 10).await, "thread_replies");
    assert_eq!(seqs(&replies), vec![11, 12], "thread_replies oldest first");
    assert_eq!(
        seqs(&ok(
            store.thread_replies(root, Some(Seq(11)), 10).await,
            "thread_replies"
        )),
        vec![12]
    );
    assert_eq!(
        seqs(&ok(
            store.thread_replies(root, None, 1).await,
            "thread_replies"
        )),
        vec![11]
    );
    assert!(
        ok(
            store.thread_replies(ids[5], None, 10).await,
            "thread_replies"
        )
        .is_empty()
    );
    let threads: Vec<MessageId> = ok(store.threads(room, 10).await, "threads")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        threads,
        vec![root2.id, root],
        "threads: roots with replies, most recent reply first"
    );
    assert_eq!(
        ok(store.threads(room, 1).await, "threads").len(),
        1,
        "threads honours limit"
    );

    // update_message replaces the mutable fields only.
    ok(
        store.add_reaction(ids[2], "like", o, at(20)).await,
        "add_reaction",
    );
    let mut edited = ok(store.get_message(ids[2]).await, "get").expect("exists");
    edited.text = "Edited text".into();
    edited.is_edited = true;
    edited.mentions = vec![o];
    edited.updated_at = Some(at(21));
    edited.reactions = BTreeMap::new();
    edited.pin = Some(Pin {
        pinned_by: s,
        pinned_at: at(21),
    });
    edited.reply_count = 7;
    ok(store.update_message(&edited).await, "update_message");
    let stored = ok(store.get_message(ids[2]).await, "get").expect("exists");
    assert_eq!(
        (
            &*stored.text,
            stored.is_edited,
            &stored.mentions,
            stored.updated_at
        ),
        ("Edited text", true, &vec![o], Some(at(21))),
        "update_message replaces text, is_edited, mentions, updated_at"
    );
    assert_eq!(
        stored.reactions.get("like"),
        Some(&vec![o]),
        "update_message never touches reactions"
    );
    assert_eq!(
        (stored.pin, stored.reply_count),
        (None, 0),
        "update_message never touches pins or reply counts"
    );
    expect_not_found(
        store.update_message(&message(room, 99, s, "x", t)).await,
        "update_message absent",
    );

    // Reactions.
    let m = ids[3];
    assert!(
        ok(
            store.add_reaction(m, "heart", s, at(30)).await,
            "add_reaction"
        ),
        "added"
    );
    assert!(
        !ok(
            store.add_reaction(m, "heart", s, at(31)).await,
            "add_reaction"
        ),
        "already there"
    );
    assert!(ok(
        store.add_reaction(m, "heart", o, at(32)).await,
        "add_reaction"
    ));
    assert!(ok(
        store.add_reaction(m, "laugh", o, at(33)).await,
        "add_reaction"
    ));
    let r = ok(store.get_message(m).await, "get").expect("exists");
    assert_eq!(
        r.reactions.get("heart"),
        Some(&vec![s, o]),
        "reactions in reaction order"
    );
    assert_eq!(r.updated_at, Some(at(33)));
    assert!(
        ok(
            store.remove_reaction(m, "heart", s, at(34)).await,
            "remove_reaction"
        ),
        "was there"
    );
    assert!(
        !ok(
            store.remove_reaction(m, "heart", s, at(35)).await,
            "remove_reaction"
        ),
        "not any more"
    );
    assert!(ok(
        store.remove_reaction(m, "laugh", o, at(36)).await,
        "remove_reaction"
    ));
    let r = ok(store.get_message(m).await, "get").expect("exists");
    assert_eq!(r.reactions.get("heart"), Some(&vec![o]));
    assert!(
        !r.reactions.contains_key("laugh"),
        "an emptied reaction code disappears"
    );
    expect_not_found(
        store.add_reaction(MessageId(fresh_id()), "x", s, t).await,
        "add_reaction absent",
    );
    let racers = join_all((0..6).map(|_| store.add_reaction(m, "fire", s, at(40)))).await;
    let added = racers.into_iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(
        added, 1,
        "concurrent add_reaction of one user and code: exactly one adds"
    );

    // Pins: most recently pinned first.
    ok(
        store
            .set_pin(
                ids[4],
                Some(Pin {
                    pinned_by: s,
                    pinned_at: at(50),
                }),
                at(50),
            )
            .await,
        "set_pin",
    );
    ok(
        store
            .set_pin(
                ids[6],
                Some(Pin {
                    pinned_by: o,
                    pinned_at: at(51),
                }),
                at(51),
            )
            .await,
        "set_pin",
    );
    ok(
        store
            .set_pin(
                ids[1],
                Some(Pin {
                    pinned_by: o,
                    pinned_at: at(49),
                }),
                at(49),
            )
            .await,
        "set_pin",
    );
    let pinned: Vec<MessageId> = ok(store.pinned(room).await, "pinned")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        pinned,
        vec![ids[6], ids[4], ids[1]],
        "pinned: most recently pinned first"
    );
    ok(store.set_pin(ids[6], None, at(52)).await, "unpin");
    let pinned: Vec<MessageId> = ok(store.pinned(room).await, "pinned")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(pinned, vec![ids[4], ids[1]]);
    let p = ok(store.get_message(ids[4]).await, "get").and_then(|m| m.pin);
    assert_eq!(
        p,
        Some(Pin {
            pinned_by: s,
            pinned_at: at(50)
        })
    );
    expect_not_found(
        store.set_pin(MessageId(fresh_id()), None, t).await,
        "set_pin absent",
    );

    // Deleting (a tombstone via update_message) hides from search and unread.
    let mut gone = ok(store.get_message(ids[7]).await, "get").expect("exists"); // seq 8, by o
    gone.is_deleted = true;
    gone.text = "".into();
    gone.updated_at = Some(at(60));
    ok(store.update_message(&gone).await, "update_message delete");

    // Search: case-insensitive, non-deleted, newest first, limited.
    let found = seqs(&ok(store.search(room, "HELLO NUMBER", 100).await, "search"));
    assert_eq!(
        found,
        vec![10, 9, 7, 6, 5, 4, 2, 1],
        "search: newest first, deleted and edited-away excluded"
    );
    assert_eq!(
        seqs(&ok(store.search(room, "hello", 2).await, "search")),
        vec![10, 9],
        "search limit"
    );
    assert!(ok(store.search(room, "no such text", 10).await, "search").is_empty());
    let literal = ok(store.search(room, "hello%number", 10).await, "search");
    assert!(literal.is_empty(), "search treats '%' literally");

    // Unread counts, batched: non-deleted, seq > cursor, not sent by the user.
    // Room seqs 1..=14; sent by o (counted for s): 2,4,6,8(deleted),10,12,13 → after 0: 6.
    let counts = ok(
        store
            .unread_counts(
                s,
                &[
                    (room, Seq(0)),
                    (room, Seq(5)),
                    (empty_room, Seq(0)),
                    (room, Seq(100)),
                    (room, Seq(12)),
                ],
            )
            .await,
        "unread_counts",
    );
    assert_eq!(
        counts,
        vec![6, 4, 0, 0, 1],
        "unread_counts: one entry per input, in input order"
    );
    let counts = ok(
        store.unread_counts(o, &[(room, Seq(0))]).await,
        "unread_counts",
    );
    // Sent by s: 1,3,5,7,9,11,14 (seq 3 edited, still counted) → 7.
    assert_eq!(counts, vec![7]);
    assert!(ok(store.unread_counts(s, &[]).await, "unread_counts").is_empty());
    assert_eq!(
        ok(
            store
                .unread_counts_of(&[
                    (s, room, Seq(0)),
                    (o, room, Seq(0)),
                    (s, empty_room, Seq(0)),
                    (s, room, Seq(12)),
                    (o, room, Seq(13)),
                ])
                .await,
            "unread_counts_of"
        ),
        vec![6, 7, 0, 1, 1],
        "unread_counts_of: several users at once, one entry per input, in input order"
    );
    assert!(ok(store.unread_counts_of(&[]).await, "unread_counts_of").is_empty());

    assert_eq!(ok(store.max_seq(room).await, "max_seq"), Seq(14));
    assert_eq!(ok(store.max_seq(empty_room).await, "max_seq"), Seq::ZERO);
    assert_eq!(
        ok(store.max_seqs(&[empty_room, room, room]).await, "max_seqs"),
        vec![(room, Seq(14))],
        "max_seqs: the rooms holding messages, each once, with their highest seq"
    );
    assert!(ok(store.max_seqs(&[]).await, "max_seqs").is_empty());

    // Concurrent inserts of one message or one (sender, temp id): exactly one insertion.
    let one = message(room, 15, s, "race", at(15));
    let results = join_all((0..6).map(|_| store.insert_messages(std::slice::from_ref(&one)))).await;
    let inserted: usize = results
        .into_iter()
        .map(|r| ok(r, "concurrent insert").len())
        .sum();
    assert_eq!(
        inserted, 1,
        "concurrent insert of one id: exactly one insertion"
    );
    let temp = format!("race-{}", fresh_id());
    let racers: Vec<Message> = (0..6)
        .map(|i| {
            let mut m = message(room, 16 + i, o, "temp race", at(16));
            m.temp_id = Some(temp.as_str().into());
            m
        })
        .collect();
    let results = join_all(
        racers
            .iter()
            .map(|m| store.insert_messages(std::slice::from_ref(m))),
    )
    .await;
    let inserted: usize = results
        .into_iter()
        .map(|r| ok(r, "concurrent insert").len())
        .sum();
    assert_eq!(
        inserted, 1,
        "concurrent insert of one (sender, temp_id): exactly one insertion"
    );
}
