//! Property tests against simple models: the status lifecycle, per-room ordering with
//! concurrent senders and retried tempIds, unread counts, and reactions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use proptest::prelude::*;
use shoot_core::engine::{ReadTarget, SendMessage};
use shoot_core::events::{Event, Topic};
use shoot_core::ids::{MessageId, Seq};
use shoot_core::messages::status::{self, StatusEvent};
use shoot_core::messages::{MessageStatus, MessageType};
use shoot_core::{ErrorCode, RoomId, UserId};

use crate::pipeline::{Harness, next_event};

fn block_on<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f);
}

/// Two worker threads, so that concurrent sends really interleave.
fn block_on_parallel<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f);
}

fn any_event() -> impl Strategy<Value = StatusEvent> {
    prop_oneof![
        Just(StatusEvent::Appended),
        Just(StatusEvent::ProcessingStarted),
        Just(StatusEvent::Stored),
        Just(StatusEvent::Failed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens, a status only moves forward, and once final nothing is accepted.
    #[test]
    fn the_status_machine_never_goes_backwards(events in prop::collection::vec(any_event(), 0..12)) {
        let mut current = status::INITIAL;
        for e in events {
            match status::next(current, e) {
                Ok(next) => {
                    prop_assert!(status::rank(next) > status::rank(current), "{current:?} -> {next:?}");
                    prop_assert!(!current.is_final());
                    current = next;
                }
                Err(err) => prop_assert_eq!(err.from, current),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Sends against a log that fails at random: every tempId's statuses (as its sender sees
    /// them) strictly move forward and end SAVED when the send succeeded, FAILED otherwise.
    #[test]
    fn every_send_ends_saved_or_failed(plan in prop::collection::vec((0usize..2, any::<bool>(), prop::bool::weighted(0.2)), 1..12)) {
        block_on(async move {
            let h = Harness::started().await;
            let users = h.users(["a", "b"]).await;
            let room = h.group(users[0], &users[1..]).await;
            let mut streams = Vec::new();
            for u in users {
                streams.push(h.subscribe(Topic::User(u)).await);
            }
            let mut expected: HashMap<String, MessageStatus> = HashMap::new();
            for (i, (who, empty, log_down)) in plan.iter().enumerate() {
                h.stores.log.set_failing(*log_down);
                let mut cmd = h.cmd(room, if *empty { "  " } else { "hello" });
                cmd.temp_id = format!("p{i}");
                let ok = h.engine.send_message(users[*who], cmd).await.is_ok();
                h.stores.log.set_failing(false);
                expected.insert(format!("p{i}"), if ok { MessageStatus::Saved } else { MessageStatus::Failed });
            }
            for (who, stream) in streams.iter_mut().enumerate() {
                let mine: HashSet<String> = plan
                    .iter()
                    .enumerate()
                    .filter(|(_, (w, _, _))| *w == who)
                    .map(|(i, _)| format!("p{i}"))
                    .collect();
                let mut seen: HashMap<Arc<str>, Vec<MessageStatus>> = HashMap::new();
                while seen.iter().filter(|(_, v)| v.last().is_some_and(|s| s.is_final())).count() < mine.len() {
                    if let Event::Status(s) = &*next_event(stream).await {
                        let key = s.temp_id.clone().expect("temp id");
                        let list = seen.entry(key).or_default();
                        if let Some(last) = list.last() {
                            assert!(!last.is_final(), "status after a final one: {list:?} then {:?}", s.status);
                            assert!(status::rank(s.status) > status::rank(*last), "{list:?} then {:?}", s.status);
                        }
                        list.push(s.status);
                    }
                }
                for key in mine {
                    assert_eq!(seen[key.as_str()].last(), expected.get(&key), "{key}: {:?}", seen[key.as_str()]);
                }
            }
        });
    }

    /// Concurrent senders with retried tempIds: per room the seqs are 1..=n without gaps,
    /// `MessageCreated` is published in seq order, and each `(sender, tempId)` is one message.
    #[test]
    fn per_room_order_and_no_duplicates(ops in prop::collection::vec((0usize..3, 0usize..6), 1..40)) {
        block_on_parallel(async move {
            let h = Arc::new(Harness::new());
            let users = h.users(["a", "b", "c"]).await;
            let rooms = [h.group(users[0], &users[1..]).await, h.group(users[1], &[users[0], users[2]]).await];
            let mut streams = Vec::new();
            for r in rooms {
                streams.push(h.subscribe(Topic::Room(r)).await);
            }
            let mut tasks = Vec::new();
            for (u, t) in ops.clone() {
                let h = h.clone();
                // A key always targets the same room, as a client retry does.
                let room = rooms[t % 2];
                tasks.push(tokio::spawn(async move {
                    let cmd = SendMessage {
                        room_id: room,
                        text: format!("{u}/{t}"),
                        message_type: MessageType::Text,
                        temp_id: format!("k{t}"),
                        thread_id: None,
                        mentions: vec![],
                    };
                    let r = h.engine.send_message(users[u], cmd).await.expect("send");
                    (users[u], t, r)
                }));
            }
            let mut by_key: HashMap<(UserId, usize), MessageId> = HashMap::new();
            for t in tasks {
                let (u, k, r) = t.await.expect("task");
                let first = *by_key.entry((u, k)).or_insert(r.message_id);
                assert_eq!(first, r.message_id, "one message per (sender, tempId)");
            }
            let mut per_room: BTreeMap<RoomId, usize> = BTreeMap::new();
            for (_, k) in by_key.keys() {
                *per_room.entry(rooms[k % 2]).or_default() += 1;
            }
            for (i, r) in rooms.iter().enumerate() {
                let n = per_room.get(r).copied().unwrap_or(0);
                let mut seqs = Vec::new();
                while seqs.len() < n {
                    if let Event::MessageCreated(m) = &*next_event(&mut streams[i]).await {
                        seqs.push(m.seq.0);
                    }
                }
                assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>(), "room {r}");
            }
            assert_eq!(h.stores.log.len(), by_key.len());
        });
    }
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize, usize),
    Read(usize, usize, i64),
    ReadAll(usize, usize),
    Delete(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, 0usize..2).prop_map(|(u, r)| Op::Send(u, r)),
        1 => (0usize..3, 0usize..2, 0i64..10).prop_map(|(u, r, s)| Op::Read(u, r, s)),
        1 => (0usize..3, 0usize..2).prop_map(|(u, r)| Op::ReadAll(u, r)),
        1 => (0usize..3, 0usize..20).prop_map(|(u, m)| Op::Delete(u, m)),
    ]
}

/// A message of the model: room index, sender index, seq, deleted.
struct ModelMessage {
    id: MessageId,
    room: usize,
    sender: usize,
    seq: i64,
    deleted: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Unread counts equal the model after random sends, reads and deletes.
    #[test]
    fn unread_counts_match_the_model(ops in prop::collection::vec(op(), 1..25)) {
        block_on(async move {
            let h = Harness::started().await;
            let users = h.users(["a", "b", "c"]).await;
            let rooms = [h.group(users[0], &users[1..]).await, h.group(users[0], &users[1..]).await];
            let mut messages: Vec<ModelMessage> = Vec::new();
            let mut cursors = [[0i64; 2]; 3];
            for op in ops {
                match op {
                    Op::Send(u, r) => {
                        let m = h.send_saved(users[u], rooms[r], "x").await;
                        messages.push(ModelMessage { id: m.id, room: r, sender: u, seq: m.seq.0, deleted: false });
                    }
                    Op::Read(u, r, s) => {
                        let max = messages.iter().filter(|m| m.room == r).map(|m| m.seq).max().unwrap_or(0);
                        let got = h.engine.mark_read(users[u], rooms[r], ReadTarget::Seq(Seq(s))).await.expect("read");
                        cursors[u][r] = cursors[u][r].max(s.min(max));
                        assert_eq!(got.0, cursors[u][r]);
                    }
                    Op::ReadAll(u, r) => {
                        let max = messages.iter().filter(|m| m.room == r).map(|m| m.seq).max().unwrap_or(0);
                        h.engine.mark_read(users[u], rooms[r], ReadTarget::All).await.expect("read all");
                        cursors[u][r] = cursors[u][r].max(max);
                    }
                    Op::Delete(u, i) => {
                        let Some(m) = messages.get_mut(i) else { continue };
                        // users[0] owns both rooms and may delete anything.
                        let allowed = u == m.sender || u == 0;
                        let result = h.engine.delete_message(users[u], m.id).await;
                        assert_eq!(result.is_ok(), allowed, "{result:?}");
                        if allowed {
                            m.deleted = true;
                        }
                    }
                }
            }
            for (u, user) in users.iter().enumerate() {
                let got: BTreeMap<RoomId, u64> = h.engine.unread_counts(*user).await.expect("counts").into_iter().collect();
                for (r, room) in rooms.iter().enumerate() {
                    let expect = messages
                        .iter()
                        .filter(|m| m.room == r && m.sender != u && !m.deleted && m.seq > cursors[u][r])
                        .count() as u64;
                    assert_eq!(got.get(room).copied(), Some(expect), "user {u} room {r}");
                }
            }
        });
    }

    /// Reactions equal a model set after random adds and removes (unknown codes refused).
    #[test]
    fn reactions_match_a_model_set(ops in prop::collection::vec((0usize..3, 0usize..7, any::<bool>()), 1..40)) {
        block_on(async move {
            let h = Harness::started().await;
            let users = h.users(["a", "b", "c"]).await;
            let room = h.group(users[0], &users[1..]).await;
            let m = h.send_saved(users[0], room, "react to me").await;
            let codes = ["like", "love", "haha", "wow", "sad", "angry", "nope"];
            let mut model: BTreeMap<String, BTreeSet<UserId>> = BTreeMap::new();
            for (u, c, add) in ops {
                let code = codes[c];
                let result = if add {
                    h.engine.add_reaction(users[u], m.id, code).await
                } else {
                    h.engine.remove_reaction(users[u], m.id, code).await
                };
                if code == "nope" {
                    assert_eq!(result.expect_err("unknown").code(), ErrorCode::UnknownReaction);
                    continue;
                }
                result.expect("reaction");
                let set = model.entry(code.to_owned()).or_default();
                if add {
                    set.insert(users[u]);
                } else {
                    set.remove(&users[u]);
                }
                model.retain(|_, s| !s.is_empty());
            }
            let stored = h.engine.message(users[1], m.id).await.expect("message").message;
            let got: BTreeMap<String, BTreeSet<UserId>> =
                stored.reactions.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect();
            assert_eq!(got, model);
        });
    }
}
