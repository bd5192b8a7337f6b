//! A broadcast channel whose buffer grows with its backlog instead of being allocated up front.
//!
//! Every receiver sees every value sent after it subscribed, in order, unless it falls more
//! than `capacity` values behind: the oldest values are then dropped and it is told how many
//! it missed ([`Recv::Lagged`]). Unlike `tokio::sync::broadcast`, which allocates all
//! `capacity` slots when the channel is made, the buffer here holds only what some receiver
//! has not read yet and is released when everyone has caught up. A server keeps one channel
//! per connected user and per watched room, almost all of them idle: an idle channel costs a
//! few dozen bytes instead of `capacity` slots.
//!
//! Used by [`MemoryBus`](super::MemoryBus) and by bus adapters for their local subscribers.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::lock;

/// Buffer capacity kept when the backlog drains; a larger buffer shrinks to it. A topic's
/// bursts (a drained batch's statuses, say) up to this size then cost no allocation, and an
/// idle topic holds at most this many slots.
const KEEP_CAPACITY: usize = 64;

/// The sending side; cloning it gives another sender of the same channel.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// One subscription: receives every value sent after it was made.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    id: u64,
    /// Position of the next value to read.
    next: u64,
}

/// What [`Receiver::recv`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<T> {
    /// The next value.
    Value(T),
    /// The receiver fell behind: this many values were dropped before it read them.
    Lagged(u64),
    /// Every sender is gone and everything was read.
    Closed,
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    /// Values some receiver has not read yet, with how many receivers still have to.
    buf: VecDeque<(T, usize)>,
    /// Position of `buf[0]`.
    head: u64,
    capacity: usize,
    receivers: usize,
    senders: usize,
    next_id: u64,
    /// Receivers waiting for a value.
    waiting: Waiters,
}

/// The receivers waiting for a value, by receiver id. The first is kept inline: the fan-out
/// hub is the only receiver of most channels (one per connected user's topic), so they never
/// allocate for it, neither while idle nor on each value.
#[derive(Default)]
struct Waiters {
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

impl Waiters {
    /// Records that receiver `id` waits, with `waker` (replacing its earlier waker).
    fn register(&mut self, id: u64, waker: &Waker) {
        if let Some((_, w)) = self.first.as_mut().filter(|(i, _)| *i == id) {
            w.clone_from(waker);
        } else if let Some((_, w)) = self.more.iter_mut().find(|(i, _)| *i == id) {
            w.clone_from(waker);
        } else if self.first.is_none() {
            self.first = Some((id, waker.clone()));
        } else {
            self.more.push((id, waker.clone()));
        }
    }

    /// Forgets receiver `id`.
    fn remove(&mut self, id: u64) {
        if self.first.as_ref().is_some_and(|(i, _)| *i == id) {
            self.first = self.more.pop();
        } else {
            self.more.retain(|(i, _)| *i != id);
        }
    }

    /// Wakes every waiting receiver (call with the state's lock released).
    fn wake_all(self) {
        for (_, waker) in self.first.into_iter().chain(self.more) {
            waker.wake();
        }
    }
}

/// A channel that buffers at most `capacity` values (at least 1) per slowest receiver.
pub fn channel<T: Clone>(capacity: usize) -> Sender<T> {
    Sender {
        shared: Arc::new(Shared {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                head: 0,
                capacity: capacity.max(1),
                receivers: 0,
                senders: 1,
                next_id: 0,
                waiting: Waiters::default(),
            }),
        }),
    }
}

impl<T: Clone> Sender<T> {
    /// Sends `value` to every current receiver; gives it back if there is none.
    pub fn send(&self, value: T) -> Result<(), T> {
        let mut st = lock(&self.shared.state);
        if st.receivers == 0 {
            return Err(value);
        }
        let receivers = st.receivers;
        st.buf.push_back((value, receivers));
        if st.buf.len() > st.capacity {
            // The slowest receivers lose the oldest value (they learn it on their next read).
            st.buf.pop_front();
            st.head += 1;
        }
        let waiting = std::mem::take(&mut st.waiting);
        drop(st);
        waiting.wake_all();
        Ok(())
    }

    /// A new receiver of everything sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let mut st = lock(&self.shared.state);
        st.receivers += 1;
        let id = st.next_id;
        st.next_id += 1;
        let next = st.head + st.buf.len() as u64;
        Receiver {
            shared: self.shared.clone(),
            id,
            next,
        }
    }

    /// Number of live receivers.
    pub fn receiver_count(&self) -> usize {
        lock(&self.shared.state).receivers
    }

    /// Number of values buffered (not yet read by every receiver).
    pub fn len(&self) -> usize {
        lock(&self.shared.state).buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        lock(&self.shared.state).senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.senders -= 1;
        if st.senders == 0 {
            let waiting = std::mem::take(&mut st.waiting);
            drop(st);
            waiting.wake_all();
        }
    }
}

impl<T> State<T> {
    /// Drops the values every receiver has read, and a large buffer once it is empty.
    fn trim(&mut self) {
        while self.buf.front().is_some_and(|(_, left)| *left == 0) {
            self.buf.pop_front();
            self.head += 1;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
    }
}

impl<T: Clone> Receiver<T> {
    /// The next value (or a lag, or the end).
    pub fn recv(&mut self) -> RecvFuture<'_, T> {
        RecvFuture { rx: self }
    }

    /// The values as a stream that ends once every sender is gone. A lag (values dropped
    /// because this receiver fell `capacity` behind) is reported to `lagged` and skipped.
    pub fn into_stream<F>(self, lagged: F) -> impl futures::Stream<Item = T> + Send + 'static
    where
        T: Send + 'static,
        F: FnMut(u64) + Send + Unpin + 'static,
    {
        RecvStream { rx: self, lagged }
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Recv<T>> {
        let mut st = lock(&self.shared.state);
        if self.next < st.head {
            let missed = st.head - self.next;
            self.next = st.head;
            return Poll::Ready(Recv::Lagged(missed));
        }
        let idx = (self.next - st.head) as usize;
        if idx == 0 && st.buf.front().is_some_and(|(_, left)| *left == 1) {
            // The last reader of the oldest value: take it instead of cloning and dropping.
            if let Some((value, _)) = st.buf.pop_front() {
                st.head += 1;
                self.next += 1;
                st.trim();
                return Poll::Ready(Recv::Value(value));
            }
        }
        if let Some((value, left)) = st.buf.get_mut(idx) {
            let value = value.clone();
            *left -= 1;
            self.next += 1;
            st.trim();
            return Poll::Ready(Recv::Value(value));
        }
        if st.senders == 0 {
            return Poll::Ready(Recv::Closed);
        }
        st.waiting.register(self.id, cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.receivers -= 1;
        // The values this receiver would still have read no longer wait for it.
        let from = self.next.saturating_sub(st.head) as usize;
        for (_, left) in st.buf.iter_mut().skip(from) {
            *left -= 1;
        }
        st.trim();
        st.waiting.remove(self.id);
    }
}

/// The future of [`Receiver::recv`].
pub struct RecvFuture<'a, T> {
    rx: &'a mut Receiver<T>,
}

impl<T: Clone> Future for RecvFuture<'_, T> {
    type Output = Recv<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Recv<T>> {
        self.rx.poll_recv(cx)
    }
}

/// [`Receiver::into_stream`]: polls the receiver directly (no future per value).
struct RecvStream<T, F> {
    rx: Receiver<T>,
    lagged: F,
}

impl<T: Clone, F: FnMut(u64) + Unpin> futures::Stream for RecvStream<T, F> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        loop {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Recv::Value(value)) => return Poll::Ready(Some(value)),
                Poll::Ready(Recv::Lagged(missed)) => (this.lagged)(missed),
                Poll::Ready(Recv::Closed) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn now<T: Clone>(rx: &mut Receiver<T>) -> Option<Recv<T>> {
        rx.recv().now_or_never()
    }

    #[test]
    fn every_receiver_gets_what_was_sent_after_it_subscribed() {
        let tx = channel::<u32>(8);
        assert_eq!(tx.send(0), Err(0), "no receiver: given back");
        let mut a = tx.subscribe();
        tx.send(1).unwrap();
        let mut b = tx.subscribe();
        tx.send(2).unwrap();
        assert_eq!(now(&mut a), Some(Recv::Value(1)));
        assert_eq!(now(&mut a), Some(Recv::Value(2)));
        assert_eq!(now(&mut a), None, "pending");
        assert_eq!(now(&mut b), Some(Recv::Value(2)));
        assert!(tx.is_empty(), "read by everyone: released");
    }

    #[test]
    fn a_drained_burst_shrinks_the_buffer_to_the_kept_size_which_later_bursts_reuse() {
        let capacity = |tx: &Sender<u32>| lock(&tx.shared.state).buf.capacity();
        let tx = channel::<u32>(10_000);
        let mut rx = tx.subscribe();
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        assert!(capacity(&tx) >= 1000);
        for i in 0..1000 {
            assert_eq!(now(&mut rx), Some(Recv::Value(i)));
        }
        assert!(tx.is_empty());
        assert_eq!(
            capacity(&tx),
            KEEP_CAPACITY,
            "given back down to the kept size"
        );
        for i in 0..KEEP_CAPACITY as u32 {
            tx.send(i).unwrap();
        }
        assert_eq!(
            capacity(&tx),
            KEEP_CAPACITY,
            "a burst that fits does not grow it"
        );
    }

    #[test]
    fn a_slow_receiver_lags_and_resumes_at_the_oldest_kept() {
        let tx = channel::<u32>(3);
        let mut slow = tx.subscribe();
        let mut fast = tx.subscribe();
        for i in 0..5 {
            tx.send(i).unwrap();
            assert_eq!(now(&mut fast), Some(Recv::Value(i)));
        }
        assert_eq!(tx.len(), 3, "bounded by the capacity");
        assert_eq!(now(&mut slow), Some(Recv::Lagged(2)));
        for i in 2..5 {
            assert_eq!(now(&mut slow), Some(Recv::Value(i)));
        }
        assert!(tx.is_empty());
    }

    #[test]
    fn as_a_stream_lags_are_reported_and_skipped_and_it_ends_with_the_senders() {
        let tx = channel::<u32>(2);
        let rx = tx.subscribe();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let missed = Arc::new(Mutex::new(Vec::new()));
        let report = missed.clone();
        let stream = rx.into_stream(move |n| report.lock().unwrap().push(n));
        let got: Vec<u32> = futures::executor::block_on(futures::StreamExt::collect(stream));
        assert_eq!(got, vec![3, 4]);
        assert_eq!(*missed.lock().unwrap(), vec![3]);
    }

    #[test]
    fn a_dropped_receiver_releases_what_it_did_not_read() {
        let tx = channel::<u32>(100);
        let mut a = tx.subscribe();
        let b = tx.subscribe();
        for i in 0..50 {
            tx.send(i).unwrap();
        }
        for i in 0..50 {
            assert_eq!(now(&mut a), Some(Recv::Value(i)));
        }
        assert_eq!(tx.len(), 50, "b has not read them");
        drop(b);
        assert!(tx.is_empty());
        assert_eq!(tx.receiver_count(), 1);
        drop(a);
        assert_eq!(tx.send(9), Err(9));
    }

    #[test]
    fn every_waiting_receiver_is_woken_whichever_left_first() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let tx = channel::<u32>(4);
        let mut rxs: Vec<Receiver<u32>> = (0..3).map(|_| tx.subscribe()).collect();
        let counts: Vec<Arc<Count>> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        for (rx, count) in rxs.iter_mut().zip(&counts) {
            let waker = Waker::from(count.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(rx.poll_recv(&mut cx).is_pending());
            // Registering again replaces the waker instead of adding one.
            assert!(rx.poll_recv(&mut cx).is_pending());
        }
        // The inline waiter leaves: the others still are woken, once each.
        rxs.remove(0);
        tx.send(1).unwrap();
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken, vec![0, 1, 1]);
        for rx in &mut rxs {
            assert_eq!(now(rx), Some(Recv::Value(1)));
        }
    }

    #[test]
    fn a_waiting_receiver_is_woken_and_the_end_is_reported() {
        let tx = channel::<u32>(4);
        let mut rx = tx.subscribe();
        let mut fut = Box::pin(async move {
            let mut got = Vec::new();
            loop {
                match rx.recv().await {
                    Recv::Value(v) => got.push(v),
                    Recv::Lagged(_) => panic!("no lag"),
                    Recv::Closed => return got,
                }
            }
        });
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        tx.send(7).unwrap();
        let tx2 = tx.clone();
        drop(tx);
        tx2.send(8).unwrap();
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(tx2);
        assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(vec![7, 8]));
    }
}
