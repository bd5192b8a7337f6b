//! The bounded outbound queue of one STOMP session, with the slow-consumer policy.
//!
//! Producers (the hub's topic tasks, the session's reader) push [`Out`] items; the session's
//! writer task takes everything queued in one short critical section and writes it as a
//! batch. An idle session's queue holds no allocation.
//!
//! Slow-consumer policy, when the queue holds `capacity` items:
//! 1. a droppable item (typing, active users, presence) is dropped;
//! 2. any other item evicts the oldest queued droppable item;
//! 3. if nothing is droppable, the session is marked overflowed, everything pending is
//!    discarded and the writer sends an `ERROR` ("slow consumer") and closes the socket. A
//!    writer blocked on a socket the client stopped reading is woken by [`Outbox::overflowed`]
//!    so that a dead consumer cannot keep its session (and socket) forever.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::hub::{Payload, Subscriber};

/// One item for the writer.
pub(crate) enum Out {
    /// A fan-out message for one subscription: per-subscriber headers come from the
    /// subscriber, the rest (headers + body) is shared by every recipient.
    Message {
        /// The subscription it is for.
        sub: Arc<Subscriber>,
        /// The shared, pre-encoded tail.
        payload: Arc<Payload>,
    },
    /// A complete, pre-encoded frame (CONNECTED, RECEIPT, ERROR).
    Frame(String),
    /// Close the socket after writing everything before this.
    Close,
}

impl Out {
    fn droppable(&self) -> bool {
        matches!(self, Out::Message { payload, .. } if payload.droppable)
    }
}

/// Result of [`Outbox::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Queued,
    /// Dropped by the slow-consumer policy (a droppable item).
    Dropped,
    /// The queue overflowed with undroppable items: the session is being closed.
    Overflow,
    /// The session is closed; nothing is queued any more.
    Closed,
}

/// Why the outbox stopped accepting items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Normal close (a `Close` item was queued or the session ended).
    Normal,
    /// The client did not read fast enough.
    SlowConsumer,
}

struct State {
    queue: VecDeque<Out>,
    closed: Option<Closed>,
}

/// The bounded outbound queue of one session.
pub(crate) struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    /// Signalled (one stored permit) when the queue overflows.
    overflow: Notify,
    capacity: usize,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: None,
            }),
            notify: Notify::new(),
            overflow: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves a consistent queue; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `out` under the slow-consumer policy.
    pub(crate) fn push(&self, out: Out) -> Pushed {
        let mut st = self.lock();
        if st.closed.is_some() {
            return Pushed::Closed;
        }
        let was_empty = st.queue.is_empty();
        if matches!(out, Out::Close) {
            st.closed = Some(Closed::Normal);
            st.queue.push_back(out);
        } else if st.queue.len() < self.capacity {
            st.queue.push_back(out);
        } else if out.droppable() {
            return Pushed::Dropped;
        } else if let Some(i) = st.queue.iter().position(Out::droppable) {
            st.queue.remove(i);
            st.queue.push_back(out);
        } else {
            st.closed = Some(Closed::SlowConsumer);
            st.queue = VecDeque::new();
            drop(st);
            self.notify.notify_one();
            self.overflow.notify_one();
            return Pushed::Overflow;
        }
        drop(st);
        if was_empty {
            self.notify.notify_one();
        }
        Pushed::Queued
    }

    /// Moves everything queued into `into` (which must be empty) and reports whether the
    /// outbox is closed. Never blocks beyond the short critical section.
    pub(crate) fn take(&self, into: &mut VecDeque<Out>) -> Option<Closed> {
        let mut st = self.lock();
        std::mem::swap(&mut st.queue, into);
        st.closed
    }

    /// Stops accepting items (the session is over) and wakes the writer.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(Closed::Normal);
            st.queue.push_back(Out::Close);
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Whether the outbox stopped accepting items.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Completes when items may have been queued since the last [`take`](Self::take).
    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Completes once the queue has overflowed (immediately if it already did while nobody
    /// was waiting). Raced against socket writes by the writer.
    pub(crate) async fn overflowed(&self) {
        self.overflow.notified().await;
    }

    /// Items queued now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::hub::AckMode;
    use crate::stomp::routing::Filter;

    fn item(outbox: &Arc<Outbox>, droppable: bool, tag: &str) -> Out {
        let sub = Arc::new(Subscriber::new(
            tag,
            "/d",
            Filter::RoomMessages,
            AckMode::Auto,
            outbox.clone(),
        ));
        Out::Message {
            sub,
            payload: Arc::new(Payload::json(tag, "{}", droppable)),
        }
    }

    fn tags(outbox: &Outbox) -> Vec<String> {
        let mut q = VecDeque::new();
        outbox.take(&mut q);
        q.into_iter()
            .map(|o| match o {
                Out::Message { payload, .. } => payload
                    .tail
                    .lines()
                    .next()
                    .unwrap()
                    .trim_start_matches("event-type:")
                    .to_owned(),
                Out::Frame(f) => f,
                Out::Close => "CLOSE".to_owned(),
            })
            .collect()
    }

    #[test]
    fn full_queue_drops_droppable_then_evicts_then_overflows() {
        let o = Arc::new(Outbox::new(3));
        assert_eq!(o.push(item(&o, false, "c1")), Pushed::Queued);
        assert_eq!(o.push(item(&o, true, "t1")), Pushed::Queued);
        assert_eq!(o.push(item(&o, true, "t2")), Pushed::Queued);
        // Full: a droppable item is dropped.
        assert_eq!(o.push(item(&o, true, "t3")), Pushed::Dropped);
        // Full: a chat item evicts the oldest droppable one.
        assert_eq!(o.push(item(&o, false, "c2")), Pushed::Queued);
        assert_eq!(o.push(item(&o, false, "c3")), Pushed::Queued);
        assert_eq!(o.len(), 3);
        // Nothing left to evict: overflow closes the outbox and discards the queue.
        assert_eq!(o.push(item(&o, false, "c4")), Pushed::Overflow);
        assert!(o.is_closed());
        let mut q = VecDeque::new();
        assert_eq!(o.take(&mut q), Some(Closed::SlowConsumer));
        assert!(q.is_empty());
        assert_eq!(o.push(item(&o, false, "c5")), Pushed::Closed);
    }

    #[test]
    fn order_is_kept_and_close_is_last() {
        let o = Arc::new(Outbox::new(8));
        o.push(item(&o, false, "a"));
        o.push(Out::Frame("F".into()));
        o.push(item(&o, true, "b"));
        o.close();
        assert_eq!(o.push(item(&o, false, "late")), Pushed::Closed);
        assert_eq!(tags(&o), ["a", "F", "b", "CLOSE"]);
    }

    #[tokio::test]
    async fn overflowed_completes_after_an_overflow_only() {
        let o = Arc::new(Outbox::new(1));
        o.push(item(&o, false, "a"));
        // Not overflowed yet: the wait does not complete.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), o.overflowed()).await;
        assert!(pending.is_err());
        assert_eq!(o.push(item(&o, false, "b")), Pushed::Overflow);
        tokio::time::timeout(std::time::Duration::from_secs(5), o.overflowed())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn wait_wakes_on_push_made_before_waiting() {
        let o = Arc::new(Outbox::new(8));
        o.push(Out::Frame("x".into()));
        // The permit stored by the push completes the wait immediately.
        tokio::time::timeout(std::time::Duration::from_secs(5), o.wait())
            .await
            .unwrap();
        assert_eq!(tags(&o), ["x"]);
    }
}
