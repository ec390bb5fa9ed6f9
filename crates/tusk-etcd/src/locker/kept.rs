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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A node that was asked to give a lock back (another request wanted it) does not keep that
/// lock for this long: requests on the upload alternate between nodes (a round-robin load
/// balancer), or compete on this one, and keeping would make each wait for a release.
const CONTESTED_FOR: Duration = Duration::from_secs(10);

/// At most this many locks remembered (given back or asked for) per node.
const MAX_REMEMBERED: usize = 4096;

/// The locks a node keeps, by lock key, and what it remembers of the locks it gave back.
#[derive(Default)]
pub(super) struct Kept {
    locks: Mutex<KeptLocks>,
    /// Numbers each keeping, so the end of an old one cannot take a newer one.
    next: AtomicU64,
    history: Mutex<HashMap<String, GivenBack>>,
}

#[derive(Default)]
struct KeptLocks {
    by_key: HashMap<String, (u64, Hold)>,
    /// Shutting down: nothing more is kept.
    closed: bool,
}

/// When this node last gave a lock back on its own, and when it was last asked to.
#[derive(Clone, Copy, Default)]
struct GivenBack {
    freely: Option<Instant>,
    asked: Option<Instant>,
}

impl Kept {
    /// Keep `hold`; it is handed back if it cannot be kept (too many, or shutting down). A
    /// lock kept under the same key before (whose loss the node had not seen yet when this one
    /// was taken) is given back.
    pub(super) fn put(&self, locker: &EtcdLocker, hold: Hold) -> Result<(), Hold> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let key = hold.lock_key.clone();
        let asked = hold.asked.clone();
        let lost = hold.lost.clone();
        let displaced = {
            let Ok(mut locks) = self.locks.lock() else {
                return Err(hold);
            };
            if locks.closed || (locks.by_key.len() >= MAX_KEPT && !locks.by_key.contains_key(&key))
            {
                return Err(hold);
            }
            locks.by_key.insert(key.clone(), (number, hold))
        };
        if let Some((_, old)) = displaced {
            locker.unlock_later(old);
        }
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
        locks.by_key.remove(key).map(|(_, hold)| hold)
    }

    fn take_numbered(&self, key: &str, number: u64) -> Option<Hold> {
        let mut locks = self.locks.lock().ok()?;
        if locks.by_key.get(key).is_some_and(|(n, _)| *n == number) {
            return locks.by_key.remove(key).map(|(_, hold)| hold);
        }
        None
    }

    /// Stop keeping locks (the node shuts down) and return those kept, to be given back.
    pub(super) fn close(&self) -> Vec<Hold> {
        match self.locks.lock() {
            Ok(mut locks) => {
                locks.closed = true;
                locks.by_key.drain().map(|(_, (_, hold))| hold).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Keep locks again (after a `flush` that was not a shutdown).
    pub(super) fn reopen(&self) {
        if let Ok(mut locks) = self.locks.lock() {
            locks.closed = false;
        }
    }

    /// This node gives the lock `key` back: on its own (`asked` false), or because a request
    /// asked for it.
    pub(super) fn given_back(&self, key: &str, asked: bool) {
        let Ok(mut history) = self.history.lock() else {
            return;
        };
        if history.len() >= MAX_REMEMBERED && !history.contains_key(key) {
            history.retain(|_, given| {
                [given.freely, given.asked]
                    .into_iter()
                    .flatten()
                    .any(|at| at.elapsed() < CONTESTED_FOR)
            });
            // A flood of uploads: forgetting them all costs a kept lock or two, not memory.
            if history.len() >= MAX_REMEMBERED {
                history.clear();
            }
        }
        let entry = history.entry(key.to_owned()).or_default();
        let now = Some(Instant::now());
        if asked {
            entry.asked = now;
        } else {
            entry.freely = now;
        }
    }

    /// Whether a lock taken now follows this node's previous request on the upload: the node
    /// gave the lock back on its own within [`KEEP_FOR`], and nobody asked it for the lock
    /// within [`CONTESTED_FOR`]. Such a lock is kept after its request.
    pub(super) fn follows_own(&self, key: &str) -> bool {
        let Ok(history) = self.history.lock() else {
            return false;
        };
        history.get(key).is_some_and(|given| {
            given.freely.is_some_and(|at| at.elapsed() < KEEP_FOR)
                && given.asked.is_none_or(|at| at.elapsed() >= CONTESTED_FOR)
        })
    }
}
