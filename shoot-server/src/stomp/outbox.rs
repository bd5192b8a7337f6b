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
//!    discarded and the writer sends an `ERROR` ("slow consumer") and closes the socket.

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
    capacity: usize,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State { queue: VecDeque::new(), closed: None }),
            notify: Notify::new(),
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

    /// Items queued now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }
}
