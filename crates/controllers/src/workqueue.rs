//! A work queue of object keys with client-go's guarantees: a key waiting is queued once
//! however often it is added, a key is never processed by two workers at once (an add while it
//! is processed queues it again afterwards), delayed adds, and per-key exponential backoff for
//! failures (5 ms doubling to 1000 s, as client-go's default controller rate limiter).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys that need processing (queued, or to be queued again when their worker is done).
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// Cheap to clone; clones share the queue.
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    ready: Arc<Notify>,
}

impl WorkQueue {
    pub fn new() -> WorkQueue {
        WorkQueue::default()
    }

    pub fn add(&self, key: String) {
        let mut state = self.state.lock().expect("queue lock");
        if !state.dirty.insert(key.clone()) {
            return;
        }
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(&self, key: String, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Adds `key` after its backoff, which doubles with every failure until [`forget`](Self::forget).
    pub fn add_rate_limited(&self, key: String) {
        let failures = {
            let mut state = self.state.lock().expect("queue lock");
            let n = state.failures.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .saturating_mul(
                1u32.checked_shl(failures.saturating_sub(1).min(31))
                    .unwrap_or(u32::MAX),
            )
            .min(MAX_DELAY);
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key` (after a successful sync).
    pub fn forget(&self, key: &str) {
        self.state.lock().expect("queue lock").failures.remove(key);
    }

    /// The next key to process; the caller must call [`done`](Self::done) with it.
    pub async fn get(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    pub fn done(&self, key: &str) {
        let mut state = self.state.lock().expect("queue lock");
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.to_owned());
            drop(state);
            self.ready.notify_one();
        }
    }
}

/// Runs `workers` tasks that take keys from `queue` and call `sync`; a failed sync is retried
/// with backoff, a successful one clears the key's backoff.
pub async fn run_workers<F, Fut>(queue: WorkQueue, workers: usize, name: &'static str, sync: F)
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.spawn(async move {
            loop {
                let key = queue.get().await;
                match sync(key.clone()).await {
                    Ok(()) => queue.forget(&key),
                    Err(err) => {
                        tracing::debug!(controller = name, %key, "sync failed: {err:#}");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_after_processing() {
        let q = WorkQueue::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        let first = q.get().await;
        assert_eq!(first, "a");
        // Added while processed: not handed out again until done.
        q.add("a".into());
        assert_eq!(q.get().await, "b");
        q.done("b");
        q.done("a");
        assert_eq!(q.get().await, "a");
    }
}
