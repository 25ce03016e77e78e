//! Expectations, as upstream's `UIDTrackingControllerExpectations`: after a controller asks
//! for N pod creations and M deletions it does not act on that owner again until its watch has
//! shown them (or five minutes pass), so a lagging watch never causes duplicate creates or
//! deletes. Deletions are tracked by pod key, so only the pods it deleted count.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long expectations hold before the controller syncs regardless (upstream's
/// `ExpectationsTimeout`).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

struct Expected {
    adds: i64,
    deletes: HashSet<String>,
    since: Instant,
}

#[derive(Default)]
pub struct Expectations {
    by_owner: Mutex<HashMap<String, Expected>>,
}

impl Expectations {
    /// Whether the owner may be synced: nothing outstanding, expectations expired, or none set.
    pub fn satisfied(&self, owner: &str) -> bool {
        let map = self.by_owner.lock().expect("expectations lock");
        match map.get(owner) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.since.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    pub fn expect_creations(&self, owner: &str, count: usize) {
        let mut map = self.by_owner.lock().expect("expectations lock");
        map.insert(
            owner.to_owned(),
            Expected {
                adds: count as i64,
                deletes: HashSet::new(),
                since: Instant::now(),
            },
        );
    }

    pub fn expect_deletions(&self, owner: &str, pods: impl IntoIterator<Item = String>) {
        let mut map = self.by_owner.lock().expect("expectations lock");
        map.insert(
            owner.to_owned(),
            Expected {
                adds: 0,
                deletes: pods.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    pub fn creation_observed(&self, owner: &str) {
        if let Some(e) = self.by_owner.lock().expect("expectations lock").get_mut(owner) {
            e.adds -= 1;
        }
    }

    pub fn deletion_observed(&self, owner: &str, pod: &str) {
        if let Some(e) = self.by_owner.lock().expect("expectations lock").get_mut(owner) {
            e.deletes.remove(pod);
        }
    }

    /// Forgets the owner (it was deleted).
    pub fn delete(&self, owner: &str) {
        self.by_owner.lock().expect("expectations lock").remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::Expectations;

    #[test]
    fn satisfied_once_every_expected_event_was_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.expect_deletions("ns/rs", ["ns/a".to_owned()]);
        e.deletion_observed("ns/rs", "ns/other");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/a");
        assert!(e.satisfied("ns/rs"));
    }
}
