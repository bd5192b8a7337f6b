//! The embedded SQLite message log: contract, durability across reopen, group commit.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use shoot_core::ids::{RoomId, Seq, UserId};
use shoot_core::ports::{LogEntry, MessageLog};
use shoot_core::testkit::fresh_id;
use shoot_sql::SqliteMessageLog;

use crate::support::message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_log_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir).await;
    shoot_core::testkit::message_log_contract(&log, &shoot_tokio::TokioClock).await;
    // With the default retention, committed records stay for groups created later.
    assert!(log.retained_records().await.expect("count") > 0);
}

async fn open(dir: &tempfile::TempDir) -> SqliteMessageLog {
    let path = dir.path().join("log.sqlite");
    SqliteMessageLog::open(path.to_str().expect("utf-8"))
        .await
        .expect("open log")
}

fn seqs(entries: &[LogEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.message.seq.0).collect()
}

/// Polls until `n` entries arrived (or a deadline passes).
async fn poll_n(consumer: &mut Box<dyn shoot_core::ports::LogConsumer>, n: usize) -> Vec<LogEntry> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && std::time::Instant::now() < deadline {
        got.extend(
            consumer
                .poll(n - got.len(), Duration::from_millis(200))
                .await
                .expect("poll"),
        );
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_across_reopen_and_seqs_continue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let room = RoomId(fresh_id());
    let other = RoomId(fresh_id());
    {
        let log = open(&dir).await;
        let batch = vec![
            message(room, UserId(1), "one"),
            message(other, UserId(1), "elsewhere"),
            message(room, UserId(2), "two"),
            message(room, UserId(1), "three"),
        ];
        let numbered = log.append(batch.clone()).await.expect("append");
        assert_eq!(
            numbered.iter().map(|m| (m.id, m.seq.0)).collect::<Vec<_>>(),
            vec![
                (batch[0].id, 1),
                (batch[1].id, 1),
                (batch[2].id, 2),
                (batch[3].id, 3)
            ],
            "per-room consecutive seqs in input order"
        );
        let mut consumer = log.consumer("persistence").await.expect("consumer");
        let got = poll_n(&mut consumer, 4).await;
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0].message, numbered[0],
            "the record is the numbered message"
        );
        consumer
            .commit(&[got[0].position])
            .await
            .expect("commit first");
    }
    // Reopen: the group resumes at its first uncommitted record; seqs continue.
    let log = open(&dir).await;
    let mut consumer = log.consumer("persistence").await.expect("consumer");
    let got = poll_n(&mut consumer, 3).await;
    assert_eq!(
        seqs(&got),
        vec![1, 2, 3],
        "other room's 1, then room's 2 and 3"
    );
    assert!(
        consumer
            .poll(10, Duration::from_millis(50))
            .await
            .expect("poll")
            .is_empty()
    );
    let more = log
        .append(vec![message(room, UserId(3), "four")])
        .await
        .expect("append");
    assert_eq!(more[0].seq, Seq(4), "seqs continue across restarts");
    let got = poll_n(&mut consumer, 1).await;
    assert_eq!(got[0].message.id, more[0].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_gap_free_seqs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir).await;
    let room = RoomId(fresh_id());
    let appends = (0..200).map(|i| {
        let log = log.clone();
        tokio::spawn(async move {
            let batch = vec![message(room, UserId(i), "a"), message(room, UserId(i), "b")];
            let out = log.append(batch).await.expect("append");
            assert_eq!(
                out[1].seq.0,
                out[0].seq.0 + 1,
                "one batch gets consecutive seqs"
            );
            out
        })
    });
    let mut seen = HashSet::new();
    for r in join_all(appends).await {
        for m in r.expect("append task") {
            assert!(seen.insert(m.seq.0), "seq {} given twice", m.seq);
        }
    }
    assert_eq!(
        seen,
        (1..=400).collect::<HashSet<i64>>(),
        "gap-free 1..=400"
    );
    // Consumers see them in seq order.
    let mut consumer = log.consumer("g").await.expect("consumer");
    let got = poll_n(&mut consumer, 400).await;
    assert_eq!(
        seqs(&got),
        (1..=400).collect::<Vec<_>>(),
        "log order is seq order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_wakes_on_append_and_groups_are_independent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = open(&dir).await;
    let room = RoomId(fresh_id());
    let mut a = log.consumer("a").await.expect("consumer");
    let mut b = log.consumer("b").await.expect("consumer");
    let writer = {
        let log = log.clone();
        tokio::spawn(async move { log.append(vec![message(room, UserId(1), "x")]).await })
    };
    // A long wait returns as soon as the record is committed.
    let got = a.poll(10, Duration::from_secs(10)).await.expect("poll");
    assert_eq!(seqs(&got), vec![1]);
    writer.await.expect("task").expect("append");
    assert_eq!(
        seqs(&poll_n(&mut b, 1).await),
        vec![1],
        "every group gets every record"
    );
    // Two consumers of one group share the records.
    let mut a2 = log.consumer("a").await.expect("consumer");
    log.append(vec![
        message(room, UserId(1), "y"),
        message(room, UserId(1), "z"),
    ])
    .await
    .expect("append");
    let first = a2.poll(1, Duration::from_secs(5)).await.expect("poll");
    let rest = poll_n(&mut a, 2).await;
    let mut all = seqs(&first);
    all.extend(seqs(&rest));
    all.sort_unstable();
    assert!(
        all.contains(&2) && all.contains(&3),
        "group a got 2 and 3: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_dead_letters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log.sqlite");
    let log = SqliteMessageLog::open_with_retention(path.to_str().expect("utf-8"), Duration::ZERO)
        .await
        .expect("open log");
    let room = RoomId(fresh_id());
    let mut p = log.consumer("persistence").await.expect("consumer");
    let mut d = log.consumer("delivery").await.expect("consumer");
    log.append((0..10).map(|_| message(room, UserId(1), "m")).collect())
        .await
        .expect("append");
    let got = poll_n(&mut p, 10).await;
    p.commit(&[got[9].position]).await.expect("commit");
    assert_eq!(
        log.retained_records().await.expect("count"),
        10,
        "group delivery still needs them"
    );
    let got_d = poll_n(&mut d, 10).await;
    d.commit(&[got_d[4].position]).await.expect("commit");
    assert_eq!(
        log.retained_records().await.expect("count"),
        5,
        "below every group's offset: gone"
    );
    d.commit(&[got_d[9].position]).await.expect("commit");
    assert_eq!(log.retained_records().await.expect("count"), 0);

    log.dead_letter(&got[3], "poison")
        .await
        .expect("dead_letter");
    let dead = log.dead_letters().await.expect("dead letters");
    assert_eq!(dead, vec![(got[3].clone(), "poison".to_owned())]);
    // Seqs still continue after every record was removed.
    let next = log
        .append(vec![message(room, UserId(1), "n")])
        .await
        .expect("append");
    assert_eq!(next[0].seq, Seq(11));
}
