//! Combined store look-ups ("group reads"): callers that need a look-up while another one
//! is running queue their keys, and the next look-up answers all of them at once, like a
//! group commit. Under load the store sees a few large queries instead of one per caller (a
//! reconnect storm authorises thousands of subscriptions per second); an idle engine still
//! asks at once, with one caller's keys.
//!
//! Freshness: a look-up answers only keys queued before it started, so every caller sees
//! the store as it was at some moment after it asked.
//!
//! Cancellation: a caller may be dropped at any await (a WebSocket session ends mid-
//! handshake). The running look-up is a [`Baton`]: dropping it, finished or not, hands the
//! turn to the next queued caller, and callers whose answers were lost with a cancelled
//! look-up queue their keys again.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use foldhash::{HashMap, HashMapExt};

use tokio::sync::oneshot;

use super::pipeline::lock;
use crate::error::{Error, ErrorCode, Result};

/// One kind of combined look-up: keys `K` answered with values `V`.
pub(crate) struct GroupRead<K, V> {
    state: Arc<Mutex<State<K, V>>>,
}

impl<K, V> Default for GroupRead<K, V> {
    fn default() -> Self {
        GroupRead {
            state: Arc::new(Mutex::new(State {
                running: false,
                queued: Vec::new(),
            })),
        }
    }
}

struct State<K, V> {
    /// Whether a [`Baton`] exists (a look-up runs or is being handed on).
    running: bool,
    queued: Vec<Waiter<K, V>>,
}

struct Waiter<K, V> {
    /// Shared with the caller, which queues them again if the look-up is cancelled.
    keys: Arc<[K]>,
    reply: oneshot::Sender<Turn<K, V>>,
}

/// What a queued caller is told.
enum Turn<K, V> {
    /// The values of its keys.
    Found(Vec<V>),
    /// The look-up failed: code and client-safe message.
    Failed(ErrorCode, String),
    /// It runs the next look-up.
    Lead(Baton<K, V>),
}

/// The right to run the next look-up. Dropping it hands it to the first queued caller that
/// still waits, or ends the turn when none does.
struct Baton<K, V> {
    state: Arc<Mutex<State<K, V>>>,
    armed: bool,
}

impl<K, V> Drop for Baton<K, V> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        loop {
            let waiter = {
                let mut st = lock(&self.state);
                if st.queued.is_empty() {
                    st.running = false;
                    return;
                }
                st.queued.remove(0)
            };
            let next = Baton {
                state: self.state.clone(),
                armed: true,
            };
            match waiter.reply.send(Turn::Lead(next)) {
                Ok(()) => return,
                // That caller is gone: the baton comes back, disarmed, and the next one gets it.
                Err(Turn::Lead(mut returned)) => returned.armed = false,
                Err(_) => unreachable!("only a Lead was sent"),
            }
        }
    }
}

impl<K: Clone + Eq + Hash, V: Clone> GroupRead<K, V> {
    /// The values of `keys`, looked up with whatever other callers ask meanwhile: `fetch` gets
    /// every queued key (possibly repeated) and returns the values found, and `key_of` tells
    /// which key a value answers (several values may answer one key). A failed fetch fails
    /// every caller it served.
    pub(crate) async fn read<F>(
        &self,
        keys: Vec<K>,
        fetch: impl Fn(Vec<K>) -> F,
        key_of: impl Fn(&V) -> K,
    ) -> Result<Vec<V>>
    where
        F: Future<Output = Result<Vec<V>>>,
    {
        let keys: Arc<[K]> = keys.into();
        let mut baton: Option<Baton<K, V>> = None;
        loop {
            let (tx, rx) = oneshot::channel();
            {
                let mut st = lock(&self.state);
                st.queued.push(Waiter {
                    keys: keys.clone(),
                    reply: tx,
                });
                if baton.is_none() && !std::mem::replace(&mut st.running, true) {
                    baton = Some(Baton {
                        state: self.state.clone(),
                        armed: true,
                    });
                }
            }
            if let Some(turn) = baton.take() {
                self.run(turn, &fetch, &key_of).await;
            }
            match rx.await {
                Ok(Turn::Found(values)) => return Ok(values),
                Ok(Turn::Failed(code, message)) => return Err(Error::new(code, message)),
                Ok(Turn::Lead(turn)) => baton = Some(turn),
                // The look-up that held our keys was cancelled: queue them again.
                Err(_) => {}
            }
        }
    }

    /// One look-up for everything queued; `_turn` is handed on when it ends.
    async fn run<F>(
        &self,
        _turn: Baton<K, V>,
        fetch: &impl Fn(Vec<K>) -> F,
        key_of: &impl Fn(&V) -> K,
    ) where
        F: Future<Output = Result<Vec<V>>>,
    {
        // Let the other runnable tasks go first: those about to ask join this look-up instead
        // of waiting for the next one (under load a look-up then serves a whole burst).
        YieldOnce(false).await;
        let queued = std::mem::take(&mut lock(&self.state).queued);
        let all: Vec<K> = queued.iter().flat_map(|w| w.keys.iter().cloned()).collect();
        match fetch(all).await {
            Ok(found) => {
                // Hashed: a storm's look-up answers thousands of callers at once.
                let mut by_key: HashMap<K, Vec<usize>> = HashMap::with_capacity(found.len());
                for (i, v) in found.iter().enumerate() {
                    by_key.entry(key_of(v)).or_default().push(i);
                }
                for w in queued {
                    let mut mine: Vec<usize> = w
                        .keys
                        .iter()
                        .filter_map(|k| by_key.get(k))
                        .flatten()
                        .copied()
                        .collect();
                    if w.keys.len() > 1 {
                        mine.sort_unstable();
                        mine.dedup();
                    }
                    let values = mine.into_iter().map(|i| found[i].clone()).collect();
                    let _ = w.reply.send(Turn::Found(values));
                }
            }
            Err(e) => {
                for w in queued {
                    let _ = w.reply.send(Turn::Failed(e.code(), e.message().to_owned()));
                }
            }
        }
    }
}

impl<K: Clone + Eq + Hash> GroupRead<K, ()> {
    /// A combined write: `write` gets every key queued while the previous write ran; each
    /// caller learns whether the write that carried its keys succeeded.
    pub(crate) async fn write<F>(&self, keys: Vec<K>, write: impl Fn(Vec<K>) -> F) -> Result<()>
    where
        F: Future<Output = Result<()>>,
    {
        self.read(
            keys,
            |all| {
                let done = write(all);
                async move { done.await.map(|()| Vec::new()) }
            },
            // A write answers with no values, so no value is ever matched to a key.
            |(): &()| unreachable!("a combined write returns no values"),
        )
        .await
        .map(drop)
    }
}

/// A future that is pending once (waking itself at once), so that the executor runs the
/// other ready tasks first; runtime-agnostic (`tokio::task::yield_now` would tie the engine
/// to tokio's runtime).
pub(crate) struct YieldOnce(pub(crate) bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn an_idle_caller_looks_up_alone() {
        let g: GroupRead<u32, u32> = GroupRead::default();
        let calls = AtomicUsize::new(0);
        let got = block_on(g.read(
            vec![1, 2],
            |keys: Vec<u32>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async move { Ok(keys.iter().map(|k| k * 10).collect()) }
            },
            |v| v / 10,
        ))
        .unwrap();
        assert_eq!(got, vec![10, 20]);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(!lock(&g.state).running, "the turn ended");
    }

    #[test]
    fn callers_arriving_during_a_look_up_share_the_next_one() {
        let g: GroupRead<u32, u32> = GroupRead::default();
        let fetched: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
        let (release_tx, release_rx) = futures::channel::oneshot::channel::<()>();
        let release = Mutex::new(Some(release_rx));
        let fetch = |keys: Vec<u32>| {
            lock(&fetched).push(keys.clone());
            let gate = lock(&release).take();
            async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                // Like a store: each value once, however often its key was asked.
                let mut found: Vec<u32> = keys.into_iter().filter(|k| *k != 3).collect();
                found.sort_unstable();
                found.dedup();
                Ok(found)
            }
        };
        let key_of = |v: &u32| *v;
        // Resolves once the first look-up has started (its keys were fetched).
        let started = || {
            futures::future::poll_fn(|cx| {
                if lock(&fetched).is_empty() {
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                } else {
                    std::task::Poll::Ready(())
                }
            })
        };
        let results = block_on(async {
            let first = g.read(vec![1], &fetch, key_of);
            let second = async {
                started().await;
                g.read(vec![2, 3], &fetch, key_of).await
            };
            let third = async {
                started().await;
                g.read(vec![2], &fetch, key_of).await
            };
            let opener = async {
                // Let the two queue behind the first look-up before it finishes.
                started().await;
                let mut yielded = false;
                futures::future::poll_fn(|cx| {
                    if std::mem::replace(&mut yielded, true) {
                        std::task::Poll::Ready(())
                    } else {
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
                let _ = release_tx.send(());
            };
            let (a, b, c, ()) = futures::join!(first, second, third, opener);
            (a.unwrap(), b.unwrap(), c.unwrap())
        });
        assert_eq!(results, (vec![1], vec![2], vec![2]));
        let mut fetched = std::mem::take(&mut *lock(&fetched));
        for keys in &mut fetched {
            keys.sort_unstable();
        }
        assert_eq!(
            fetched,
            vec![vec![1], vec![2, 2, 3]],
            "the second look-up served both late callers"
        );
    }

    #[test]
    fn callers_asking_in_one_scheduling_round_share_one_look_up() {
        let g: GroupRead<u32, u32> = GroupRead::default();
        let calls = AtomicUsize::new(0);
        let fetch = |keys: Vec<u32>| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { Ok(keys) }
        };
        let key_of = |v: &u32| *v;
        let (a, b, c) = block_on(async {
            futures::join!(
                g.read(vec![1], &fetch, key_of),
                g.read(vec![2], &fetch, key_of),
                g.read(vec![3], &fetch, key_of)
            )
        });
        assert_eq!(
            (a.unwrap(), b.unwrap(), c.unwrap()),
            (vec![1], vec![2], vec![3])
        );
        assert_eq!(
            calls.load(Ordering::Relaxed),
            1,
            "the first caller yields once before looking up, so the others join it"
        );
    }

    #[test]
    fn a_failed_look_up_fails_its_callers_and_the_next_one_runs() {
        let g: GroupRead<u32, u32> = GroupRead::default();
        let err = block_on(g.read(
            vec![1],
            |_: Vec<u32>| async { Err(Error::new(ErrorCode::BackendUnavailable, "down")) },
            |v| *v,
        ))
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BackendUnavailable);
        let ok = block_on(g.read(vec![4], |k: Vec<u32>| async { Ok(k) }, |v| *v));
        assert_eq!(ok.unwrap(), vec![4]);
    }

    #[test]
    fn a_cancelled_look_up_hands_its_callers_on() {
        let g: GroupRead<u32, u32> = GroupRead::default();
        let hang = |_: Vec<u32>| std::future::pending::<Result<Vec<u32>>>();
        let key_of = |v: &u32| *v;
        block_on(async {
            let mut leader = Box::pin(g.read(vec![1], hang, key_of));
            let mut follower = Box::pin(g.read(vec![2], |k: Vec<u32>| async { Ok(k) }, key_of));
            // The leader starts its look-up; the follower queues behind it.
            assert!(futures::poll!(&mut leader).is_pending());
            assert!(futures::poll!(&mut follower).is_pending());
            // The leader's caller goes away mid-look-up: the follower runs its own.
            drop(leader);
            assert_eq!(follower.await.unwrap(), vec![2]);
        });
        assert!(!lock(&g.state).running);
        assert!(lock(&g.state).queued.is_empty());
    }
}
