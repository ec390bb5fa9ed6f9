//! Tails this node wrote, kept in memory for the same lock holder's next PATCH.
//!
//! A client sending small PATCHes one after another to one node fills a part every few dozen
//! requests; the PATCH that fills it used to read the rest of the part back from the state store
//! (7.75 MiB of an 8 MiB part: the largest cost of that request after the part's upload). When
//! this node wrote the whole tail itself, under a lock it still holds (a lock kept between
//! requests keeps its fencing token), the bytes are still in the part buffer: the PATCH keeps
//! it here, and the next PATCH continues filling it.
//!
//! The state store stays the truth: a copy is used only by a request with the same fencing
//! token (no other holder can have written since), the same committed parts and the same tail
//! length as the state it loaded (a state store that lost writes, as in a failover, disagrees);
//! anything else drops it and reads the tail from the store. The copies hold their room in the
//! node's part buffer budget, which takes it back whenever a reservation finds the budget
//! short; none is kept while a reservation waits; each is dropped [`KEEP_FOR`] after it was
//! kept. Only requests whose lock their node keeps leave copies (no other request could use
//! them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tusk_core::UploadId;

use crate::ahead::PartAhead;
use crate::budget::Reservation;
use crate::buffer::PartBuffer;

/// How long a copy is kept: a client's next request comes within a moment, or the lock it
/// needs is given back anyway.
const KEEP_FOR: Duration = Duration::from_secs(2);

/// At most this many copies (each is a part buffer's mapping, at most one part).
const MAX_TAILS: usize = 1024;

/// The copy of one upload's tail.
pub(crate) struct CachedTail {
    /// The fencing token the tail was written under.
    pub(crate) fence: u64,
    /// Committed parts when it was written.
    pub(crate) parts: u32,
    /// The tail's bytes, as the written prefix of the next part's buffer.
    pub(crate) buffer: PartBuffer,
    /// Its room in the budget.
    pub(crate) reservation: Reservation,
    /// The part's upload, streamed as its bytes arrive (see `ahead`); dropped with the copy.
    pub(crate) ahead: Option<PartAhead>,
}

#[derive(Clone, Default)]
pub(crate) struct TailCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tails: Mutex<HashMap<UploadId, (u64, CachedTail)>>,
    next: AtomicU64,
    /// Reservations waiting for room: no copy is kept while there are any.
    waiters: AtomicUsize,
}

/// A reservation waiting for room (see [`TailCache::waiting`]).
pub(crate) struct Waiting(Arc<Inner>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for TailCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailCache")
            .field("tails", &self.len())
            .finish()
    }
}

impl TailCache {
    /// Keep `tail` for upload `id` (replacing an older copy).
    pub(crate) fn put(&self, id: &UploadId, tail: CachedTail) {
        let number = self.inner.next.fetch_add(1, Ordering::Relaxed);
        {
            let Ok(mut tails) = self.inner.tails.lock() else {
                return;
            };
            if self.inner.waiters.load(Ordering::SeqCst) > 0
                || (tails.len() >= MAX_TAILS && !tails.contains_key(id))
            {
                return;
            }
            tails.insert(id.clone(), (number, tail));
        }
        // Dropped after its time unless taken (or replaced) before.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::downgrade(&self.inner);
            let id = id.clone();
            runtime.spawn(async move {
                tokio::time::sleep(KEEP_FOR).await;
                if let Some(inner) = inner.upgrade()
                    && let Ok(mut tails) = inner.tails.lock()
                    && tails.get(&id).is_some_and(|(n, _)| *n == number)
                {
                    tails.remove(&id);
                }
            });
        }
    }

    /// The copy of upload `id`'s tail if it is exactly the tail of the state the caller loaded
    /// under `fence` (`parts` committed, `len` tail bytes); any other copy is dropped.
    pub(crate) fn take(
        &self,
        id: &UploadId,
        fence: u64,
        parts: u32,
        len: usize,
    ) -> Option<CachedTail> {
        let (_, tail) = self.inner.tails.lock().ok()?.remove(id)?;
        let same = tail.fence == fence && tail.parts == parts && tail.buffer.written() == len;
        if same {
            tusk_metrics::metrics().tail_cache_hits.inc();
        }
        same.then_some(tail)
    }

    /// A reservation is about to wait for room: every copy is dropped now, and none is kept
    /// until the returned guard is dropped (the wait is over).
    pub(crate) fn waiting(&self) -> Waiting {
        // Counted before the copies are dropped: a copy kept meanwhile sees the count (both
        // under the map's lock), so none is left holding room a waiter needs.
        self.inner.waiters.fetch_add(1, Ordering::SeqCst);
        self.clear();
        Waiting(self.inner.clone())
    }

    /// Drop the copy of upload `id`'s tail, if any.
    pub(crate) fn forget(&self, id: &UploadId) {
        if let Ok(mut tails) = self.inner.tails.lock() {
            tails.remove(id);
        }
    }

    /// Drop every copy, giving their room back to the budget; whether there was any.
    pub(crate) fn clear(&self) -> bool {
        let dropped = match self.inner.tails.lock() {
            Ok(mut tails) => std::mem::take(&mut *tails),
            Err(_) => return false,
        };
        !dropped.is_empty()
    }

    /// Whether a reservation waits for room now.
    #[cfg(test)]
    pub(crate) fn waited_on(&self) -> bool {
        self.inner.waiters.load(Ordering::SeqCst) > 0
    }

    fn len(&self) -> usize {
        self.inner.tails.lock().map_or(0, |tails| tails.len())
    }
}
