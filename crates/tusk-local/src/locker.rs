use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;
use tusk_core::{Error, ErrorKind, LockGuard, Locker, Result, UploadId};

/// Per-upload locks inside one process. A newcomer cancels the holder's release token, then
/// waits (FIFO) for the lock. Entries are removed when nobody holds or awaits them, so memory
/// stays proportional to active uploads.
///
/// Fencing tokens start at the start-up time in microseconds since the Unix epoch, so a restarted
/// process issues tokens newer than any of its previous run (a state store that remembers tokens
/// across restarts, like Redis, keeps accepting them).
#[derive(Debug, Clone)]
pub struct ProcessLocker {
    inner: Arc<Inner>,
}

impl Default for ProcessLocker {
    fn default() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        Self {
            inner: Arc::new(Inner {
                entries: Mutex::default(),
                next_fence: AtomicU64::new(now),
            }),
        }
    }
}

#[derive(Debug)]
struct Inner {
    entries: Mutex<HashMap<UploadId, Arc<Entry>>>,
    next_fence: AtomicU64,
}

#[derive(Debug, Default)]
struct Entry {
    mutex: Arc<tokio::sync::Mutex<()>>,
    state: Mutex<EntryState>,
}

#[derive(Debug, Default)]
struct EntryState {
    /// The current holder's release token.
    release: CancellationToken,
    /// Requests waiting for the lock: a new holder is asked to release at once if any remain.
    waiters: usize,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // These mutexes guard plain data with no invariants a panic could break.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessLocker {
    /// A locker with no locks held.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many uploads have a lock entry (held or awaited).
    #[cfg(test)]
    fn active(&self) -> usize {
        locked(&self.inner.entries).len()
    }
}

impl Inner {
    fn entry(&self, id: &UploadId) -> Arc<Entry> {
        locked(&self.entries).entry(id.clone()).or_default().clone()
    }

    /// Drop our reference to `entry`, removing it from the map when nobody else has one.
    fn forget(&self, id: &UploadId, entry: Arc<Entry>) {
        let mut entries = locked(&self.entries);
        // Every clone is taken under this map lock, so the count cannot grow while we look.
        if Arc::strong_count(&entry) == 2 {
            entries.remove(id);
        }
    }
}

struct Held {
    inner: Arc<Inner>,
    id: UploadId,
    entry: Option<Arc<Entry>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.guard.take());
        if let Some(entry) = self.entry.take() {
            self.inner.forget(&self.id, entry);
        }
    }
}

#[async_trait]
impl Locker for ProcessLocker {
    async fn lock(&self, id: &UploadId, wait: Duration) -> Result<LockGuard> {
        let entry = self.inner.entry(id);
        let guard = match entry.mutex.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                {
                    let mut state = locked(&entry.state);
                    state.waiters += 1;
                    state.release.cancel();
                    tusk_metrics::metrics().lock_release_requests.inc();
                }
                let acquired = tokio::time::timeout(wait, entry.mutex.clone().lock_owned()).await;
                locked(&entry.state).waiters -= 1;
                match acquired {
                    Ok(guard) => guard,
                    Err(_) => {
                        self.inner.forget(id, entry);
                        return Err(Error::new(
                            ErrorKind::Locked,
                            "upload is locked by another request; retry later",
                        ));
                    }
                }
            }
        };
        let release = {
            let mut state = locked(&entry.state);
            state.release = CancellationToken::new();
            if state.waiters > 0 {
                state.release.cancel();
            }
            state.release.clone()
        };
        let fence = self.inner.next_fence.fetch_add(1, Ordering::Relaxed) + 1;
        let held = Held {
            inner: self.inner.clone(),
            id: id.clone(),
            entry: Some(entry),
            guard: Some(guard),
        };
        Ok(LockGuard::new(
            fence,
            release,
            CancellationToken::new(),
            Box::new(held),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_locker_suite_and_cleans_up() {
        let locker = ProcessLocker::new();
        tusk_testkit::locker_suite::run(&locker).await;
        assert_eq!(locker.active(), 0, "lock entries leaked");
    }

    #[tokio::test]
    async fn a_holder_acquired_while_others_wait_is_asked_to_release_at_once() {
        let locker = ProcessLocker::new();
        let id = UploadId::generate();
        let first = locker.lock(&id, Duration::from_secs(10)).await.unwrap();
        let l2 = locker.clone();
        let id2 = id.clone();
        let second = tokio::spawn(async move { l2.lock(&id2, Duration::from_secs(10)).await });
        let l3 = locker.clone();
        let id3 = id.clone();
        // Every wait is bounded: a locker that never asks fails the test instead of hanging it.
        let patience = Duration::from_secs(10);
        // Wait until the second request is queued (its release request cancelled our token).
        tokio::time::timeout(patience, first.release_requested().cancelled())
            .await
            .expect("the first holder is asked to release");
        let third = tokio::spawn(async move { l3.lock(&id3, Duration::from_secs(10)).await });
        tokio::time::timeout(patience, async {
            while locked(&locker.inner.entry(&id).state).waiters < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the third request queues");
        drop(first);
        let second = second.await.unwrap().unwrap();
        // The third request is still waiting, so the second holder is asked to let go at once.
        tokio::time::timeout(patience, second.release_requested().cancelled())
            .await
            .expect("the second holder is asked to release at once");
        drop(second);
        third.await.unwrap().unwrap();
    }
}
