//! A work queue of object keys as client-go's: a key queued twice is processed once, a key is
//! never processed by two workers at once, and one that changes while being processed is
//! processed again afterwards.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::mpsc;

pub struct Queue {
    tx: mpsc::UnboundedSender<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
}

impl Queue {
    pub fn new() -> (Queue, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Queue {
            tx,
            state: Mutex::default(),
        };
        (queue, rx)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: String) {
        let mut state = self.state();
        if state.active.contains(&key) {
            state.dirty.insert(key);
        } else if state.queued.insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    /// A worker takes `key` off the queue.
    pub fn start(&self, key: &str) {
        let mut state = self.state();
        state.queued.remove(key);
        state.active.insert(key.to_owned());
    }

    /// A worker is done with `key`: queue it again if it changed meanwhile.
    pub fn done(&self, key: &str) {
        let again = {
            let mut state = self.state();
            state.active.remove(key);
            state.dirty.remove(key)
        };
        if again {
            self.add(key.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn dedupes_and_requeues_what_changed_while_active() {
        let (queue, mut rx) = Queue::new();
        queue.add("a".into());
        queue.add("a".into());
        assert_eq!(rx.try_recv().unwrap(), "a");
        assert!(rx.try_recv().is_err());
        queue.start("a");
        queue.add("a".into());
        assert!(rx.try_recv().is_err(), "not while active");
        queue.done("a");
        assert_eq!(rx.try_recv().unwrap(), "a");
    }
}
