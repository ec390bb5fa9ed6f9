use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::{Commit, Error, ErrorKind, Result, StateStore, TailChange, UploadId, UploadState};

/// An in-memory [`StateStore`] with the same semantics as the Redis one, for engine tests.
///
/// Clones share the same uploads, so a test can hand one clone to the engine and inspect another.
/// Not for production: nothing survives a restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryState {
    uploads: Arc<Mutex<HashMap<UploadId, Entry>>>,
    finals: crate::links::FinalLinks,
    /// Tail bytes returned by `read_tail_range`, for tests of what a store reads back.
    tail_bytes_read: Arc<std::sync::atomic::AtomicU64>,
}

/// One upload: its state (with `tail_len` kept equal to `tail.len()` and `part_count` to
/// `etags.len()`), the parts' ETags, the tail's bytes and the newest fencing token seen.
#[derive(Debug, Clone)]
struct Entry {
    state: UploadState,
    etags: Vec<String>,
    tail: Vec<u8>,
    fence: u64,
}

impl MemoryState {
    /// An empty state store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A separate copy of every upload as it is now, as a replica holds it: later writes to
    /// either store do not reach the other (a failover to the copy loses them).
    pub fn snapshot(&self) -> Self {
        Self {
            uploads: Arc::new(Mutex::new(self.map().clone())),
            finals: self.finals.clone(),
            tail_bytes_read: Arc::default(),
        }
    }

    /// Tail bytes read back so far (by this store and its clones, not its snapshots).
    pub fn tail_bytes_read(&self) -> u64 {
        self.tail_bytes_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn map(&self) -> MutexGuard<'_, HashMap<UploadId, Entry>> {
        // A poisoned map only means another test thread panicked; the data is still usable.
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Look `id` up and check `fence` against the newest token seen, without recording it yet: a
/// call that fails for any reason must leave the upload exactly as it was.
fn fenced<'a>(
    map: &'a mut HashMap<UploadId, Entry>,
    id: &UploadId,
    fence: u64,
) -> Result<&'a mut Entry> {
    let entry = map.get_mut(id).ok_or_else(Error::not_found)?;
    if fence < entry.fence {
        return Err(Error::new(
            ErrorKind::LockLost,
            "lock lost: a newer lock holder has written to this upload",
        ));
    }
    Ok(entry)
}

fn already_set(what: &str) -> Error {
    Error::new(
        ErrorKind::Invalid,
        format!("the upload's {what} is already set"),
    )
}

#[async_trait]
impl StateStore for MemoryState {
    async fn create(&self, state: &UploadState) -> Result<()> {
        // Neither the tail's bytes nor the parts' ETags are part of `UploadState`, so a new
        // upload cannot claim any.
        if state.tail_len != 0 || state.part_count != 0 {
            return Err(Error::new(
                ErrorKind::Invalid,
                "a new upload cannot start with parts or tail bytes",
            ));
        }
        let mut map = self.map();
        if map.contains_key(&state.id) {
            return Err(Error::new(ErrorKind::Invalid, "upload id already exists"));
        }
        map.insert(
            state.id.clone(),
            Entry {
                state: state.clone(),
                etags: Vec::new(),
                tail: Vec::new(),
                fence: 0,
            },
        );
        Ok(())
    }

    async fn get(&self, id: &UploadId) -> Result<UploadState> {
        self.map()
            .get(id)
            .map(|e| e.state.clone())
            .ok_or_else(Error::not_found)
    }

    async fn load(&self, id: &UploadId, fence: u64) -> Result<UploadState> {
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        entry.fence = fence;
        Ok(entry.state.clone())
    }

    async fn read_tail_range(
        &self,
        id: &UploadId,
        range: Range<u64>,
        fence: Option<u64>,
    ) -> Result<Bytes> {
        // A round trip, as in `commit`.
        tokio::task::yield_now().await;
        let mut map = self.map();
        let entry = match fence {
            Some(fence) => fenced(&mut map, id, fence)?,
            None => map.get_mut(id).ok_or_else(Error::not_found)?,
        };
        let tail = &entry.tail;
        let clamp = |at: u64| usize::try_from(at).unwrap_or(usize::MAX).min(tail.len());
        let (start, end) = (clamp(range.start), clamp(range.end));
        self.tail_bytes_read.fetch_add(
            end.saturating_sub(start) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Bytes::copy_from_slice(
            tail.get(start..end).unwrap_or_default(),
        ))
    }

    async fn etags(&self, id: &UploadId) -> Result<Vec<String>> {
        self.map()
            .get(id)
            .map(|e| e.etags.clone())
            .ok_or_else(Error::not_found)
    }

    async fn set_multipart(&self, id: &UploadId, fence: u64, multipart_id: &str) -> Result<()> {
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        // Redis stores "no multipart id" as an empty string, so an empty id cannot be recorded.
        if multipart_id.is_empty() {
            return Err(Error::new(ErrorKind::Invalid, "empty multipart upload id"));
        }
        if entry.state.multipart_id.is_some() {
            return Err(already_set("multipart upload id"));
        }
        entry.fence = fence;
        entry.state.multipart_id = Some(multipart_id.to_owned());
        Ok(())
    }

    async fn commit(&self, id: &UploadId, fence: u64, commit: Commit) -> Result<UploadState> {
        // As a round trip to Redis does, let other tasks run (a store's background uploads
        // take the bytes handed to them), even on a single-threaded runtime.
        tokio::task::yield_now().await;
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        if entry.state.part_count != commit.expect_parts
            || entry.tail.len() as u64 != commit.expect_tail_len
        {
            return Err(Error::new(
                ErrorKind::OffsetMismatch,
                "the upload's state moved on since it was read",
            ));
        }
        let Some(part_count) = u32::try_from(commit.new_parts.len())
            .ok()
            .and_then(|new| entry.state.part_count.checked_add(new))
        else {
            return Err(Error::new(ErrorKind::Invalid, "too many parts"));
        };
        entry.fence = fence;
        entry.state.part_count = part_count;
        entry.etags.extend(commit.new_parts);
        match commit.tail {
            TailChange::Keep => {}
            TailChange::Append(bytes) => entry.tail.extend_from_slice(&bytes),
            TailChange::Replace(bytes) => entry.tail = bytes.to_vec(),
        }
        entry.state.tail_len = entry.tail.len() as u64;
        Ok(entry.state.clone())
    }

    async fn set_length(&self, id: &UploadId, fence: u64, length: u64) -> Result<()> {
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        if entry.state.length.is_some() {
            return Err(already_set("length"));
        }
        entry.fence = fence;
        entry.state.length = Some(length);
        Ok(())
    }

    async fn finish(&self, id: &UploadId, fence: u64) -> Result<()> {
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        entry.fence = fence;
        entry.state.finished = true;
        entry.tail = Vec::new();
        entry.state.tail_len = 0;
        Ok(())
    }

    async fn delete(&self, id: &UploadId, fence: u64) -> Result<()> {
        let mut map = self.map();
        fenced(&mut map, id, fence)?;
        map.remove(id);
        self.finals.forget(id);
        Ok(())
    }

    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()> {
        self.finals.link(partial, final_id);
        Ok(())
    }

    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>> {
        Ok(self.finals.of(partial))
    }

    async fn set_expiry(&self, id: &UploadId, fence: u64, expires_at: Option<u64>) -> Result<()> {
        let mut map = self.map();
        let entry = fenced(&mut map, id, fence)?;
        entry.state.expires_at = expires_at;
        entry.fence = fence;
        Ok(())
    }

    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>> {
        let map = self.map();
        let mut due: Vec<(u64, UploadId)> = map
            .values()
            .filter_map(|e| e.state.expires_at.map(|at| (at, e.state.id.clone())))
            .filter(|(at, _)| *at < before)
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}
