//! Tests against a live MongoDB server (`SHOOT_TEST_MONGODB_URL`, e.g.
//! `mongodb://127.0.0.1:27017`). A standalone server is enough: the adapter uses no
//! transactions.

use std::collections::BTreeMap;

use shoot_core::ids::{MessageId, RoomId, Seq, UserId};
use shoot_core::messages::{Message, MessageStatus, MessageStore};
use shoot_core::testkit::{base36, fresh_id, message_store_contract, room_store_contract};
use shoot_core::time::Timestamp;
use shoot_mongodb::codec::message_to_doc;
use shoot_mongodb::mongodb::bson::{Document, doc};
use shoot_mongodb::{
    IX_MESSAGES_PINNED, IX_MESSAGES_ROOM_SEQ, IX_MESSAGES_SENDER_TEMP, IX_MESSAGES_THREAD,
    IX_MESSAGES_THREADS, IX_PARTICIPANTS_ROOM_USER, IX_PARTICIPANTS_USER, IX_ROOMS_DIRECT_KEY,
    MongoStore,
};

/// A store on a fresh database `shoot_test_<random>`, or `None` (after printing that the
/// test skipped) when `SHOOT_TEST_MONGODB_URL` is not set. The database is dropped by
/// [`finish`](Fixture::finish), or on drop when a test panicked.
struct Fixture {
    store: MongoStore,
    url: String,
    name: String,
    finished: bool,
}

async fn mongo() -> Option<Fixture> {
    let Ok(url) = std::env::var("SHOOT_TEST_MONGODB_URL") else {
        println!("skipped: SHOOT_TEST_MONGODB_URL not set");
        return None;
    };
    let name = format!("shoot_test_{}", base36(fresh_id()).to_lowercase());
    let store = MongoStore::connect(&url, &name)
        .await
        .expect("connect to SHOOT_TEST_MONGODB_URL");
    store.ping().await.expect("ping");
    Some(Fixture {
        store,
        url,
        name,
        finished: false,
    })
}

impl Fixture {
    async fn finish(mut self) {
        self.store
            .database()
            .drop()
            .await
            .expect("drop test database");
        self.finished = true;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A failed test: drop the database from a separate thread with its own runtime.
        let (url, name) = (self.url.clone(), self.name.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(store) = MongoStore::connect(&url, &name).await {
                        let _ = store.database().drop().await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

fn message(room: RoomId, seq: i64, sender: UserId, text: &str) -> Message {
    Message {
        seq: Seq(seq),
        temp_id: Some(format!("tmp-{}", fresh_id()).into()),
        status: MessageStatus::Saved,
        ..Message::new(
            MessageId(fresh_id()),
            room,
            sender,
            text,
            Timestamp(1_700_000_000_000 + seq),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_store_contract_on_mongodb() {
    let Some(fx) = mongo().await else { return };
    room_store_contract(&fx.store).await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_store_contract_on_mongodb() {
    let Some(fx) = mongo().await else { return };
    message_store_contract(&fx.store).await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_created_and_connect_is_idempotent() {
    let Some(fx) = mongo().await else { return };
    // A second connect to the same database re-creates the same indexes without error.
    let again = MongoStore::connect(&fx.url, &fx.name)
        .await
        .expect("second connect");
    let mut names = Vec::new();
    for coll in ["rooms", "participants", "messages"] {
        names.extend(
            again
                .database()
                .collection::<Document>(coll)
                .list_index_names()
                .await
                .expect("list indexes"),
        );
    }
    for want in [
        IX_ROOMS_DIRECT_KEY,
        IX_PARTICIPANTS_ROOM_USER,
        IX_PARTICIPANTS_USER,
        IX_MESSAGES_ROOM_SEQ,
        IX_MESSAGES_SENDER_TEMP,
        IX_MESSAGES_THREAD,
        IX_MESSAGES_PINNED,
        IX_MESSAGES_THREADS,
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "index {want} missing: {names:?}"
        );
    }
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaction_codes_that_are_not_field_names_round_trip() {
    let Some(fx) = mongo().await else { return };
    let store = &fx.store;
    let (room, u, v) = (RoomId(fresh_id()), UserId(fresh_id()), UserId(fresh_id()));
    let m = message(room, 1, u, "react to me");
    store
        .insert_messages(std::slice::from_ref(&m))
        .await
        .expect("insert");
    let codes = ["a.b", "$where", "100%", "%2E", "👍"];
    for code in codes {
        assert!(
            store
                .add_reaction(m.id, code, u, Timestamp(1))
                .await
                .expect("add")
        );
        assert!(
            store
                .add_reaction(m.id, code, v, Timestamp(2))
                .await
                .expect("add")
        );
    }
    let got = store.get_message(m.id).await.expect("get").expect("exists");
    let mut want: BTreeMap<String, Vec<UserId>> = BTreeMap::new();
    for code in codes {
        want.insert(code.to_owned(), vec![u, v]);
    }
    assert_eq!(
        got.reactions, want,
        "codes decode to themselves, users in order"
    );
    for code in codes {
        assert!(
            store
                .remove_reaction(m.id, code, u, Timestamp(3))
                .await
                .expect("rm")
        );
        assert!(
            store
                .remove_reaction(m.id, code, v, Timestamp(4))
                .await
                .expect("rm")
        );
    }
    let got = store.get_message(m.id).await.expect("get").expect("exists");
    assert!(
        got.reactions.is_empty(),
        "emptied codes disappear: {:?}",
        got.reactions
    );
    let raw = store
        .database()
        .collection::<Document>("messages")
        .find_one(doc! { "_id": m.id.0 })
        .await
        .expect("raw")
        .expect("exists");
    assert_eq!(
        raw.get_document("reactions").map(Document::len).ok(),
        Some(0),
        "the clean-up removed the empty lists from storage"
    );
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_batch_is_repaired_by_its_retry() {
    let Some(fx) = mongo().await else { return };
    let store = &fx.store;
    let (room, u) = (RoomId(fresh_id()), UserId(fresh_id()));
    let root = message(room, 1, u, "root");
    let mut reply = message(room, 2, u, "reply");
    reply.thread_id = Some(root.id);
    reply.created_at = Timestamp(1_700_000_009_999);
    // Simulate a writer that died after its insert, before updating the root.
    store
        .database()
        .collection::<Document>("messages")
        .insert_many([message_to_doc(&root), message_to_doc(&reply)])
        .await
        .expect("raw insert");
    // The log redelivers the batch: nothing new is inserted, the root is repaired.
    let inserted = store
        .insert_messages(&[root.clone(), reply.clone()])
        .await
        .expect("retry");
    assert!(inserted.is_empty(), "both were already stored");
    let r = store
        .get_message(root.id)
        .await
        .expect("get")
        .expect("root");
    assert_eq!(
        (r.reply_count, r.last_reply_at),
        (1, Some(reply.created_at)),
        "reply_count and last_reply_at recounted from the stored replies"
    );
    // Replaying again changes nothing.
    store
        .insert_messages(&[reply.clone()])
        .await
        .expect("replay");
    let r = store
        .get_message(root.id)
        .await
        .expect("get")
        .expect("root");
    assert_eq!(r.reply_count, 1);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_with_several_cursors_per_room_and_regex_characters_in_search() {
    let Some(fx) = mongo().await else { return };
    let store = &fx.store;
    let (room, me, other) = (RoomId(fresh_id()), UserId(fresh_id()), UserId(fresh_id()));
    let texts = [
        "a.c",
        "abc",
        "(x)",
        "[y]",
        "50% off",
        "back\\slash",
        "^start$",
        "ABC",
    ];
    let msgs: Vec<Message> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| message(room, i as i64 + 1, other, t))
        .collect();
    store.insert_messages(&msgs).await.expect("insert");
    let seqs = |v: Vec<Message>| v.into_iter().map(|m| m.seq.0).collect::<Vec<_>>();
    for (q, want) in [
        ("a.c", vec![1]),
        ("abc", vec![8, 2]),
        ("(x)", vec![3]),
        ("[y]", vec![4]),
        ("50%", vec![5]),
        ("\\", vec![6]),
        ("^start$", vec![7]),
        (".", vec![1]),
    ] {
        assert_eq!(
            seqs(store.search(room, q, 10).await.expect("search")),
            want,
            "{q}"
        );
    }
    let counts = store
        .unread_counts(
            me,
            &[
                (room, Seq(6)),
                (room, Seq(0)),
                (room, Seq(6)),
                (room, Seq(3)),
                (RoomId(fresh_id()), Seq(0)),
            ],
        )
        .await
        .expect("unread");
    assert_eq!(counts, vec![2, 8, 2, 5, 0]);
    fx.finish().await;
}
