//! kubelet's per-key exponential back-off (client-go's `flowcontrol.Backoff`), used for
//! container restarts (CrashLoopBackOff) and image pulls (ImagePullBackOff): 10 s doubling to
//! 5 minutes; an entry not used for twice the maximum starts over.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

impl Backoff {
    fn expired(entry: &Entry, event: Timestamp) -> bool {
        since(event, entry.last_update) > MAX * 2
    }

    /// When the key is backing off from an event at `event` (a container's exit, a failed
    /// pull): the back-off and how much of it is left. `None`: go ahead (then call [`next`]).
    pub fn in_backoff_since(
        &self,
        key: &str,
        event: Timestamp,
        now: Timestamp,
    ) -> Option<(Duration, Duration)> {
        let entry = self.entries.get(key)?;
        if Self::expired(entry, event) {
            return None;
        }
        let elapsed = since(now, event);
        (elapsed < entry.backoff).then(|| (entry.backoff, entry.backoff - elapsed))
    }

    /// Whether the key backs off now, counted from its last attempt (image pulls): how much
    /// of the back-off is left.
    pub fn in_backoff_since_update(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        let elapsed = since(now, entry.last_update);
        (elapsed < entry.backoff).then(|| entry.backoff - elapsed)
    }

    /// Records an attempt: the first (or the first after expiry) starts at [`INITIAL`], each
    /// further one doubles up to [`MAX`].
    pub fn next(&mut self, key: &str, event: Timestamp, now: Timestamp) {
        let entry = self.entries.entry(key.to_owned()).or_insert(Entry {
            backoff: Duration::ZERO,
            last_update: now,
        });
        entry.backoff = if entry.backoff.is_zero() || Self::expired(entry, event) {
            INITIAL
        } else {
            (entry.backoff * 2).min(MAX)
        };
        entry.last_update = now;
    }

    /// The current back-off of a key, if any.
    pub fn current(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn restarts_back_off_doubling_to_five_minutes() {
        let mut b = Backoff::default();
        // First exit: restart at once.
        assert!(b.in_backoff_since("c", at(0), at(0)).is_none());
        b.next("c", at(0), at(0));
        // Second exit right after: 10 s.
        assert_eq!(
            b.in_backoff_since("c", at(1), at(2)),
            Some((INITIAL, Duration::from_secs(9)))
        );
        assert!(b.in_backoff_since("c", at(1), at(11)).is_none());
        b.next("c", at(1), at(11));
        assert_eq!(b.current("c"), Some(Duration::from_secs(20)));
        for _ in 0..10 {
            b.next("c", at(12), at(12));
        }
        assert_eq!(b.current("c"), Some(MAX));
        // Quiet for more than 10 minutes: back to the start.
        assert!(b.in_backoff_since("c", at(12 + 700), at(12 + 700)).is_none());
        b.next("c", at(12 + 700), at(12 + 700));
        assert_eq!(b.current("c"), Some(INITIAL));
    }
}
