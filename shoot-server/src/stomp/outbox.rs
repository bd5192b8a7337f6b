//! The bounded outbound queue of one STOMP session, with the slow-consumer policy.
//!
//! Producers (the hub's topic tasks, the session itself) push [`Out`] items; the session's
//! task takes everything queued in one short critical section and writes it as a batch. An
//! idle session's queue holds no allocation.
//!
//! Slow-consumer policy, when the queue holds `capacity` items:
//! 1. a droppable item (typing, active users, presence) is dropped;
//! 2. any other item evicts the oldest queued droppable item;
//! 3. if nothing is droppable, the session is marked overflowed, everything pending is
//!    discarded and the session sends an `ERROR` ("slow consumer") and closes the socket. A
//!    session blocked writing to a socket the client stopped reading is woken by the overflow
//!    (see [`Outbox::is_overflowed`]) so that a dead consumer cannot keep its session (and
//!    socket) forever.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use futures::task::AtomicWaker;

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
    /// The session's task, woken when the queue becomes non-empty, closes or overflows.
    waker: AtomicWaker,
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
            waker: AtomicWaker::new(),
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
            self.waker.wake();
            return Pushed::Overflow;
        }
        drop(st);
        if was_empty {
            self.waker.wake();
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

    /// Stops accepting items (the session is over) and wakes the session's task.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        if st.closed.is_none() {
            st.closed = Some(Closed::Normal);
            st.queue.push_back(Out::Close);
        }
        drop(st);
        self.waker.wake();
    }

    /// Whether the outbox stopped accepting items.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    /// Wakes `waker` on the next push into an empty queue, close or overflow. Register
    /// before [`take`](Self::take) or [`is_overflowed`](Self::is_overflowed), so that nothing
    /// that happens in between goes unnoticed.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Whether the queue overflowed (the client stopped reading): checked by a session
    /// whose socket write is blocked, so that a dead consumer cannot keep it forever.
    pub(crate) fn is_overflowed(&self) -> bool {
        self.lock().closed == Some(Closed::SlowConsumer)
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

    /// A waker counting its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn the_registered_waker_is_woken_by_the_first_push_close_and_overflow() {
        let count = Arc::new(Count(Default::default()));
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        let waker = Waker::from(count.clone());
        let o = Arc::new(Outbox::new(2));
        o.register(&waker);
        o.push(item(&o, false, "a"));
        assert_eq!(woken(), 1);
        // The queue was not empty: no second wake-up for the same batch.
        o.register(&waker);
        o.push(item(&o, false, "b"));
        assert_eq!(woken(), 1);
        assert!(!o.is_overflowed());
        assert_eq!(o.push(item(&o, false, "c")), Pushed::Overflow);
        assert_eq!(woken(), 2);
        assert!(o.is_overflowed());

        let o = Arc::new(Outbox::new(2));
        o.register(&waker);
        o.close();
        assert_eq!(woken(), 3);
        assert!(!o.is_overflowed());
        assert_eq!(tags(&o), ["CLOSE"]);
    }
}
