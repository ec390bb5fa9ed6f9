//! Upload ids this node found in the store moments ago.
//!
//! A request on an upload reads the store before it takes the lock, so an id no upload has is
//! answered 404 without writing to the lock service (see `Engine::lock_existing`). For an id
//! this node saw exist a few seconds ago, that read is skipped: the locked read that follows
//! still answers 404 if the upload is gone, so the worst a stale entry costs is one lock of an
//! id that existed recently, which anyone who knew the id could cause anyway. A client's
//! PATCHes and HEADs on one upload save a store round trip each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tusk_core::UploadId;

/// How long an id stays known after the store last said it exists.
const KNOWN_FOR: Duration = Duration::from_secs(10);
/// The most ids remembered: past it, expired entries go, and if none had, all do.
const MAX_KNOWN: usize = 16_384;

/// Ids with when the store last said they exist; bounded in size and age.
#[derive(Default)]
pub(crate) struct KnownUploads {
    seen: Mutex<HashMap<UploadId, Instant>>,
}

impl KnownUploads {
    /// Whether the store said `id` exists within the last [`KNOWN_FOR`].
    pub(crate) fn contains(&self, id: &UploadId) -> bool {
        self.contains_at(id, Instant::now())
    }

    fn contains_at(&self, id: &UploadId, now: Instant) -> bool {
        let Ok(seen) = self.seen.lock() else {
            return false;
        };
        seen.get(id)
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_FOR)
    }

    /// The store just said `id` exists.
    pub(crate) fn insert(&self, id: &UploadId) {
        self.insert_at(id, Instant::now());
    }

    fn insert_at(&self, id: &UploadId, now: Instant) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_KNOWN && !seen.contains_key(id) {
            seen.retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
            if seen.len() >= MAX_KNOWN {
                seen.clear();
            }
        }
        seen.insert(id.clone(), now);
    }

    /// `id` is gone (deleted here): ask the store again next time.
    pub(crate) fn forget(&self, id: &UploadId) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_known_for_a_while_then_asked_again() {
        let known = KnownUploads::default();
        let id = UploadId::generate();
        let t0 = Instant::now();
        assert!(!known.contains_at(&id, t0));
        known.insert_at(&id, t0);
        assert!(known.contains_at(&id, t0 + KNOWN_FOR / 2));
        assert!(!known.contains_at(&id, t0 + KNOWN_FOR));
        known.forget(&id);
        assert!(!known.contains_at(&id, t0));
    }

    #[test]
    fn the_set_never_grows_past_its_bound() {
        let known = KnownUploads::default();
        let t0 = Instant::now();
        for _ in 0..MAX_KNOWN {
            known.insert_at(&UploadId::generate(), t0);
        }
        assert_eq!(known.len(), MAX_KNOWN);
        // Full of live entries: a new one clears them rather than growing.
        let newest = UploadId::generate();
        known.insert_at(&newest, t0);
        assert_eq!(known.len(), 1);
        assert!(known.contains_at(&newest, t0));
        // Full of expired entries: they go, the live ones stay.
        let later = t0 + KNOWN_FOR;
        for _ in 0..MAX_KNOWN - 1 {
            known.insert_at(&UploadId::generate(), t0);
        }
        let live = UploadId::generate();
        known.insert_at(&live, later);
        assert_eq!(known.len(), 1);
        assert!(known.contains_at(&live, later));
    }
}
