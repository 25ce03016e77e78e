//! A watcher's state machine: replay history from the database until caught up with a
//! snapshot, then follow the broadcast of durable events; whenever the broadcast has moved on
//! without it (lagged), go back to replaying from the last revision it saw. The subscription
//! always exists before the snapshot is read, so history and live events overlap, never a gap.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::StreamExt;
use store::{Event, KeyRange, Result, Revision, StoreError, WatchStream};
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::Inner;
use crate::read;
use crate::syncer::EventBatch;

struct Watcher {
    inner: Arc<Inner>,
    range: KeyRange,
    /// Every revision up to here has been delivered or skipped as outside the range.
    seen: Revision,
    live: Receiver<EventBatch>,
    replaying: bool,
    ready: VecDeque<Event>,
    done: bool,
}

pub fn stream(inner: Arc<Inner>, range: KeyRange, after: Revision) -> WatchStream {
    let live = inner.events.subscribe();
    let watcher = Watcher {
        inner,
        range,
        seen: after,
        live,
        replaying: true,
        ready: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(watcher, |mut w| async move {
        let item = w.next().await?;
        Some((item, w))
    })
    .boxed()
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let step = if self.replaying {
                self.replay_page().await
            } else {
                self.follow().await
            };
            if let Err(err) = step {
                self.done = true;
                return Some(Err(err));
            }
        }
    }

    async fn replay_page(&mut self) -> Result<()> {
        let (range, after) = (self.range.clone(), self.seen);
        let page = self
            .inner
            .read(move |conn, snap| read::history(conn, snap, &range, after))
            .await?;
        self.ready.extend(page.events);
        self.seen = page.through;
        if page.through >= page.snapshot {
            self.replaying = false;
        }
        Ok(())
    }

    async fn follow(&mut self) -> Result<()> {
        match self.live.recv().await {
            Ok(batch) => {
                for event in batch.iter() {
                    if event.revision() > self.seen && self.range.contains(event.kv.key.as_bytes()) {
                        self.ready.push_back(event.clone());
                    }
                }
                if let Some(last) = batch.last() {
                    self.seen = self.seen.max(last.revision());
                }
                Ok(())
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    missed,
                    after = self.seen,
                    "watcher lagged; replaying from the database"
                );
                self.replaying = true;
                Ok(())
            }
            Err(RecvError::Closed) => Err(StoreError::Closed),
        }
    }
}
