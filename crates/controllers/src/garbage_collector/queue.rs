//! A work queue with client-go's `workqueue` guarantees: an item waits at most once however
//! often it is added, is never handed to two workers at the same time (an add while it is being
//! processed queues it again for after `done`), and failures are retried later with a
//! per-item exponential backoff (5 ms doubling up to 1000 s, as the default controller rate limiter).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<K> {
    queue: VecDeque<K>,
    /// Waiting in `queue`, or to be queued again when processing ends.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    pub fn new() -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    pub fn add(&self, item: K) {
        let mut state = self.state.lock().expect("queue lock");
        if !state.dirty.insert(item.clone()) {
            return;
        }
        if !state.processing.contains(&item) {
            state.queue.push_back(item);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Adds `item` after `delay`.
    pub fn add_after(self: &Arc<Self>, item: K, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Adds `item` again after its backoff (which grows with each failure until `forget`).
    pub fn add_rate_limited(self: &Arc<Self>, item: K) {
        let failures = {
            let mut state = self.state.lock().expect("queue lock");
            let n = state.failures.entry(item.clone()).or_default();
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(31)))
            .min(MAX_DELAY);
        self.add_after(item, delay);
    }

    /// Clears `item`'s failure count.
    pub fn forget(&self, item: &K) {
        self.state.lock().expect("queue lock").failures.remove(item);
    }

    /// The next item to process; call `done` with it afterwards.
    pub async fn get(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(item) = state.queue.pop_front() {
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone());
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return item;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, item: &K) {
        let mut state = self.state.lock().expect("queue lock");
        state.processing.remove(item);
        if state.dirty.contains(item) {
            state.queue.push_back(item.clone());
            drop(state);
            self.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_are_deduplicated_and_never_processed_twice_at_once() {
        let queue = WorkQueue::new();
        queue.add(1);
        queue.add(1);
        queue.add(2);
        let first = queue.get().await;
        assert_eq!(first, 1);
        queue.add(1); // while processing: held back until done
        assert_eq!(queue.get().await, 2);
        queue.done(&2);
        let again = tokio::time::timeout(Duration::from_millis(50), queue.get()).await;
        assert!(again.is_err(), "1 is still being processed");
        queue.done(&1);
        assert_eq!(queue.get().await, 1);
    }

    #[tokio::test]
    async fn failures_are_retried_later() {
        let queue = WorkQueue::new();
        queue.add_rate_limited("x");
        let item = tokio::time::timeout(Duration::from_secs(1), queue.get()).await;
        assert_eq!(item.unwrap(), "x");
    }
}
