//! The idempotency check of the send path against the store, batched per lane drain: one
//! `MessageStore::find_by_temp_ids` per drained batch instead of one `find_by_temp_id` per
//! send; keys found stored are answered as duplicates and not appended.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::join_all;
use shoot_core::error::PortResult;
use shoot_core::events::{Event, Topic};
use shoot_core::ids::{RoomId, Seq};
use shoot_core::memory::{ManualClock, MemoryLog};
use shoot_core::messages::{Message, MessageStatus, MessageStore};
use shoot_core::ports::{Clock, EphemeralStore, LogConsumer, LogEntry, MessageLog};
use shoot_core::{ErrorCode, Timestamp, UserId};

use crate::pipeline::{Harness, code, wait_for};
use crate::support::{SpyMessages, text_message};

/// A log that records the size of every append and holds each one until a permit is added,
/// so that sends queue up behind it.
struct GatedLog {
    inner: MemoryLog,
    sizes: Mutex<Vec<usize>>,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl MessageLog for GatedLog {
    async fn append(&self, batch: Vec<Message>) -> PortResult<Vec<Message>> {
        self.sizes.lock().unwrap().push(batch.len());
        self.gate.acquire().await.expect("gate").forget();
        self.inner.append(batch).await
    }
    async fn consumer(&self, group: &str) -> PortResult<Box<dyn LogConsumer>> {
        self.inner.consumer(group).await
    }
    async fn dead_letter(&self, entry: &LogEntry, reason: &str) -> PortResult<()> {
        self.inner.dead_letter(entry, reason).await
    }
}

struct Setup {
    h: Arc<Harness>,
    store: Arc<SpyMessages>,
    log: Arc<GatedLog>,
}

/// A harness whose message store records look-ups and whose log appends one batch per permit
/// (the persistence worker is not started: what is stored is what the test inserts).
fn setup() -> Setup {
    let store = Arc::new(SpyMessages::default());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_2024());
    let log = Arc::new(GatedLog {
        inner: MemoryLog::new(clock),
        sizes: Mutex::new(Vec::new()),
        gate: tokio::sync::Semaphore::new(0),
    });
    let (s, l) = (store.clone(), log.clone());
    let h = Arc::new(Harness::custom(
        |_| {},
        move |p| {
            p.messages = s;
            p.log = l;
        },
    ));
    Setup { h, store, log }
}

fn stored(id: i64, room: RoomId, seq: i64, sender: UserId, temp_id: &str) -> Message {
    Message {
        created_at: Timestamp(1),
        ..text_message(
            id,
            room,
            seq,
            sender,
            Some(temp_id),
            &format!("stored {temp_id}"),
        )
    }
}

/// Waits until `n` sends of the room have emitted SENDING (they join the lane right after).
async fn sending(stream: &mut shoot_core::ports::EventStream, n: usize) {
    for _ in 0..n {
        wait_for(stream, |e| match e {
            Event::Status(s) if s.status == MessageStatus::Sending => Some(()),
            _ => None,
        })
        .await;
    }
}

#[tokio::test]
async fn a_drained_batch_is_checked_against_the_store_once_and_stored_keys_are_duplicates() {
    let Setup { h, store, log } = setup();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    // Stored earlier; their claims have expired (there are none).
    let old_a = stored(9_000_001, room, 100, alice, "dup-a");
    let old_b = stored(9_000_002, room, 101, bob, "dup-b");
    store
        .insert_messages(&[old_a.clone(), old_b.clone()])
        .await
        .unwrap();

    let mut room_events = h.subscribe(Topic::Room(room)).await;
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.send(alice, room, "first").await })
    };
    h.until(|| async { (log.sizes.lock().unwrap().len() == 1).then_some(()) })
        .await;
    sending(&mut room_events, 1).await;

    let sends = [
        (alice, "dup-a"),
        (bob, "fresh-b"),
        (bob, "dup-b"),
        (alice, "fresh-a"),
    ];
    let mut tasks = Vec::new();
    for (who, temp_id) in sends {
        let h = h.clone();
        let mut cmd = h.cmd(room, temp_id);
        cmd.temp_id = temp_id.to_owned();
        tasks.push(tokio::spawn(async move {
            h.engine.send_message(who, cmd).await
        }));
    }
    sending(&mut room_events, 4).await;
    log.gate.add_permits(2);
    assert!(!first.await.unwrap().duplicate);
    let receipts: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("send"))
        .collect();

    assert_eq!(
        (
            receipts[0].message_id,
            receipts[0].seq,
            receipts[0].duplicate
        ),
        (old_a.id, old_a.seq, true)
    );
    assert_eq!(
        (
            receipts[2].message_id,
            receipts[2].seq,
            receipts[2].duplicate
        ),
        (old_b.id, old_b.seq, true)
    );
    assert!(!receipts[1].duplicate && !receipts[3].duplicate);
    let mut seqs = vec![receipts[1].seq.0, receipts[3].seq.0];
    seqs.sort();
    assert_eq!(seqs, vec![2, 3], "only the fresh ones were appended");
    assert_eq!(*log.sizes.lock().unwrap(), vec![1, 2]);
    assert_eq!(
        *store.batch_lookups.lock().unwrap(),
        vec![1, 4],
        "one look-up per drained batch"
    );
    assert_eq!(store.single_lookups.load(Ordering::SeqCst), 0);

    // The duplicates' claims now name the stored messages: a retry is answered from the
    // claim, without asking the store.
    let claim = h
        .stores
        .ephemeral
        .get(&format!("idem:{alice}:dup-a"))
        .await
        .unwrap()
        .expect("claim");
    assert!(
        claim.starts_with(&format!("d:{}:{}:", old_a.id, old_a.seq)),
        "{claim}"
    );
    let mut retry = h.cmd(room, "dup-a");
    retry.temp_id = "dup-a".to_owned();
    let again = h.engine.send_message(alice, retry).await.unwrap();
    assert_eq!((again.message_id, again.duplicate), (old_a.id, true));
    assert_eq!(store.batch_lookups.lock().unwrap().len(), 2);
    assert_eq!(log.sizes.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn lanes_draining_together_share_one_store_look_up() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let store = Arc::new(SpyMessages {
        lookup_gate: Some(gate.clone()),
        ..SpyMessages::default()
    });
    let s = store.clone();
    let h = Arc::new(Harness::custom(|_| {}, move |p| p.messages = s));
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let rooms = [
        h.group(alice, &[bob]).await,
        h.group(alice, &[bob]).await,
        h.group(alice, &[bob]).await,
    ];
    let old = stored(9_000_003, rooms[2], 100, bob, "dup-c");
    store
        .insert_messages(std::slice::from_ref(&old))
        .await
        .unwrap();

    // The first room's drain holds the look-up; the other two queue behind it.
    let first = {
        let h = h.clone();
        tokio::spawn(async move { h.send(alice, rooms[0], "first").await })
    };
    h.until(|| async { (store.batch_lookups.lock().unwrap().len() == 1).then_some(()) })
        .await;
    let mut room_b = h.subscribe(Topic::Room(rooms[1])).await;
    let mut room_c = h.subscribe(Topic::Room(rooms[2])).await;
    let mut tasks = Vec::new();
    for (room, who, temp_id) in [
        (rooms[1], alice, "b-1"),
        (rooms[2], bob, "dup-c"),
        (rooms[2], alice, "c-1"),
    ] {
        let h = h.clone();
        let mut cmd = h.cmd(room, temp_id);
        cmd.temp_id = temp_id.to_owned();
        tasks.push(tokio::spawn(async move {
            h.engine.send_message(who, cmd).await
        }));
    }
    sending(&mut room_b, 1).await;
    sending(&mut room_c, 2).await;
    // Queued behind the first look-up, not asking the store themselves.
    assert_eq!(store.batch_lookups.lock().unwrap().len(), 1);
    gate.add_permits(2);
    assert!(!first.await.unwrap().duplicate);
    let receipts: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("send"))
        .collect();
    assert_eq!(
        *store.batch_lookups.lock().unwrap(),
        vec![1, 3],
        "the waiting lanes' keys went to the store in one look-up"
    );
    assert!(!receipts[0].duplicate && !receipts[2].duplicate);
    assert_eq!(
        (receipts[1].message_id, receipts[1].duplicate),
        (old.id, true),
        "each lane gets the stored messages of its own keys"
    );
    assert_eq!((receipts[0].seq, receipts[2].seq), (Seq(1), Seq(1)));
}

#[tokio::test]
async fn a_failed_store_check_fails_the_batch_and_releases_its_claims() {
    let Setup { h, store, log } = setup();
    let [alice, bob] = h.users(["alice", "bob"]).await;
    let room = h.group(alice, &[bob]).await;
    let mut mine = h.subscribe(Topic::User(alice)).await;
    store.fail_lookups.store(true, Ordering::SeqCst);
    let cmd = h.cmd(room, "hello");
    assert_eq!(
        code(h.engine.send_message(alice, cmd.clone()).await),
        ErrorCode::BackendUnavailable
    );
    let failed = wait_for(&mut mine, |e| match e {
        Event::Status(s) if s.status == MessageStatus::Failed => Some(s.clone()),
        _ => None,
    })
    .await;
    assert_eq!(failed.temp_id.as_deref(), Some(cmd.temp_id.as_str()));
    assert!(log.sizes.lock().unwrap().is_empty(), "nothing appended");
    assert_eq!(
        h.stores
            .ephemeral
            .get(&format!("idem:{alice}:{}", cmd.temp_id))
            .await
            .unwrap(),
        None,
        "the claim is released"
    );

    // Once the store answers again, the same tempId is sent afresh.
    store.fail_lookups.store(false, Ordering::SeqCst);
    log.gate.add_permits(1);
    let r = h.engine.send_message(alice, cmd).await.unwrap();
    assert_eq!((r.seq, r.duplicate), (Seq(1), false));
    assert_eq!(*store.batch_lookups.lock().unwrap(), vec![1, 1]);
}
