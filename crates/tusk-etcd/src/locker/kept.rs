//! Locks a node keeps between its requests on an upload.
//!
//! A client that sends its requests one after another (a HEAD, then PATCH after PATCH) to the
//! same node would make the node take and give back the upload's lock in etcd for each: two
//! writes that etcd syncs to disk, one on every request's path. Once a node sees its requests on
//! an upload follow each other (it takes the lock a moment after it gave it back), it keeps the
//! lock for [`KEEP_FOR`] after each request, watching it; its next request takes it without
//! asking etcd. It is the same holder all along (the same key, lease and fencing token), and a
//! request of any other node is served as if the lock were held: its release request makes the
//! node give the kept lock back at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::EtcdLocker;
use super::holder::Hold;

/// How long a node keeps a lock after its request on the upload: longer than the pause a client
/// on a slow mobile link leaves between two requests, short enough that a kept lock of a client
/// that went away is soon given back (a request of another node needs no wait for it anyway).
pub(super) const KEEP_FOR: Duration = Duration::from_secs(2);

/// At most this many locks kept per node: each is a key and a watch in etcd.
const MAX_KEPT: usize = 1024;

/// The locks a node keeps, by lock key.
#[derive(Default)]
pub(super) struct Kept {
    locks: Mutex<HashMap<String, (u64, Hold)>>,
    /// Numbers each keeping, so the end of an old one cannot take a newer one.
    next: AtomicU64,
    /// Shutting down: nothing more is kept.
    closed: AtomicBool,
}

impl Kept {
    /// Keep `hold`; it is handed back if it cannot be kept (too many, or shutting down).
    pub(super) fn put(&self, locker: &EtcdLocker, hold: Hold) -> Result<(), Hold> {
        if self.closed.load(Ordering::Acquire) {
            return Err(hold);
        }
        let Ok(mut locks) = self.locks.lock() else {
            return Err(hold);
        };
        if locks.len() >= MAX_KEPT {
            return Err(hold);
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let key = hold.lock_key.clone();
        let asked = hold.asked.clone();
        let lost = hold.lost.clone();
        locks.insert(key.clone(), (number, hold));
        drop(locks);
        // Given back when its time is up, when a request asks for it, or when it is lost; unless
        // this node's next request took it first.
        let until = Instant::now() + KEEP_FOR;
        let locker = locker.clone();
        locker.inner.runtime.clone().spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = asked.cancelled() => {}
                () = lost.cancelled() => {}
            }
            if let Some(hold) = locker.inner.kept.take_numbered(&key, number) {
                locker.unlock_later(hold);
            }
        });
        Ok(())
    }

    /// The kept lock with this key, if any: the caller uses it or gives it back.
    pub(super) fn take(&self, key: &str) -> Option<Hold> {
        let mut locks = self.locks.lock().ok()?;
        locks.remove(key).map(|(_, hold)| hold)
    }

    fn take_numbered(&self, key: &str, number: u64) -> Option<Hold> {
        let mut locks = self.locks.lock().ok()?;
        if locks.get(key).is_some_and(|(n, _)| *n == number) {
            return locks.remove(key).map(|(_, hold)| hold);
        }
        None
    }

    /// Stop keeping locks (the node shuts down) and return those kept, to be given back.
    pub(super) fn close(&self) -> Vec<Hold> {
        self.closed.store(true, Ordering::Release);
        match self.locks.lock() {
            Ok(mut locks) => locks.drain().map(|(_, (_, hold))| hold).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Keep locks again (after a `flush` that was not a shutdown).
    pub(super) fn reopen(&self) {
        self.closed.store(false, Ordering::Release);
    }
}
