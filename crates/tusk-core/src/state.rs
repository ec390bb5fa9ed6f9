use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Concat, Metadata, Placement, Result, UploadId, UploadInfo};

/// An upload's state in the distributed store (kept in Redis).
///
/// The upload's bytes are `part_count` full parts of `part_size` bytes in object storage, then
/// `tail_len` bytes in the state store's tail. So the offset is always derived from state that
/// only counts stored bytes, never from listing object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// The upload's id.
    pub id: UploadId,
    /// Total length, or `None` while deferred.
    pub length: Option<u64>,
    /// Client metadata.
    pub metadata: Metadata,
    /// The fixed part size P: part n holds bytes `[(n-1)P, nP)`.
    pub part_size: u64,
    /// The object store's multipart upload id, once the first part was needed.
    pub multipart_id: Option<String>,
    /// How many parts are committed. Their ETags are read only to assemble the object
    /// ([`StateStore::etags`]): carrying them here made every per-part commit cost O(parts).
    pub part_count: u32,
    /// Bytes after the last committed part, held in the tail.
    pub tail_len: u64,
    /// Whether the object is assembled and the upload is done.
    pub finished: bool,
    /// When the upload expires (Unix seconds), if it does.
    pub expires_at: Option<u64>,
    /// When the upload was created (Unix seconds), if recorded.
    pub created_at: Option<u64>,
    /// Its part in a concatenation, if any.
    pub concat: Option<Concat>,
    /// Where its object goes (key prefix, storage class, encryption), as its pre-create hook
    /// chose.
    pub placement: Placement,
}

impl UploadState {
    /// Bytes stored and acknowledged. A finished upload has all of its length (its last,
    /// shorter part is recorded only in the assembled object).
    pub fn offset(&self) -> u64 {
        match (self.finished, self.length) {
            (true, Some(length)) => length,
            _ => u64::from(self.part_count) * self.part_size + self.tail_len,
        }
    }

    /// The key of the upload's object in object storage.
    pub fn object_key(&self) -> String {
        self.placement.object_key(&self.id)
    }

    /// The protocol's view of this state.
    pub fn info(&self) -> UploadInfo {
        UploadInfo {
            id: self.id.clone(),
            offset: self.offset(),
            length: self.length,
            metadata: self.metadata.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            concat: self.concat.clone(),
            placement: self.placement.clone(),
            loaded: crate::Loaded::default(),
        }
    }

    /// The protocol's view of this state, carrying the state itself for the store's next call
    /// under the same lock (see [`crate::UploadInfo::loaded`]).
    pub fn into_info(self) -> UploadInfo {
        let mut info = self.info();
        info.loaded = crate::Loaded::new(self);
        info
    }
}

/// What happens to the tail in a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailChange {
    /// Leave the tail as it is.
    Keep,
    /// Append bytes to the tail (no new part absorbed it).
    Append(Bytes),
    /// The old tail was absorbed into the first new part: the tail becomes these bytes.
    Replace(Bytes),
}

/// One atomic step forward: new parts and a tail change, applied only if the state is still the
/// one the writer started from (`expect_parts`, `expect_tail_len`) and the writer's fencing
/// token is not older than the newest one seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Committed parts the writer saw.
    pub expect_parts: u32,
    /// Tail length the writer saw.
    pub expect_tail_len: u64,
    /// ETags of parts `expect_parts + 1 ..`, in order.
    pub new_parts: Vec<String>,
    /// The tail change.
    pub tail: TailChange,
}

/// Where distributed uploads keep their state and tail (Redis in production).
///
/// Every call that changes state takes the caller's fencing token and fails with
/// `ErrorKind::LockLost` if a newer token has been seen for that upload; the newest token is
/// remembered. An unknown upload is `ErrorKind::NotFound`; an unreachable service is
/// `ErrorKind::Unavailable`.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Whether the state store answers (for readiness probes). By default: yes.
    async fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Record a new upload, with no parts and no tail yet (else `ErrorKind::Invalid`). Fails if
    /// the id exists.
    async fn create(&self, state: &UploadState) -> Result<()>;

    /// Read the state without fencing (for callers that do not hold the lock).
    async fn get(&self, id: &UploadId) -> Result<UploadState>;

    /// Read the state as the lock holder with `fence`, recording the token, so that an older
    /// holder can no longer change anything.
    async fn load(&self, id: &UploadId, fence: u64) -> Result<UploadState>;

    /// Bytes `range` of the tail: fewer if the tail ends first, none if it is empty. With
    /// `fence`, `ErrorKind::LockLost` if a newer token has been seen (nothing is recorded): a
    /// holder that lost its lock must not build a part from a tail the new holder changed,
    /// because object storage cannot refuse that part.
    async fn read_tail_range(
        &self,
        id: &UploadId,
        range: Range<u64>,
        fence: Option<u64>,
    ) -> Result<Bytes>;

    /// The whole tail, unfenced (for inspection).
    async fn read_tail(&self, id: &UploadId) -> Result<Bytes> {
        self.read_tail_range(id, 0..u64::MAX, None).await
    }

    /// The committed parts' ETags, part 1 first: what completing the multipart upload needs.
    async fn etags(&self, id: &UploadId) -> Result<Vec<String>>;

    /// Record the multipart upload id; fails with `ErrorKind::Invalid` if one is already set.
    async fn set_multipart(&self, id: &UploadId, fence: u64, multipart_id: &str) -> Result<()>;

    /// Apply `commit` atomically. `ErrorKind::OffsetMismatch` if the state moved on.
    /// Returns the new state.
    async fn commit(&self, id: &UploadId, fence: u64, commit: Commit) -> Result<UploadState>;

    /// Set the length of a deferred upload (once).
    async fn set_length(&self, id: &UploadId, fence: u64, length: u64) -> Result<()>;

    /// Mark the upload finished and drop its tail.
    async fn finish(&self, id: &UploadId, fence: u64) -> Result<()>;

    /// Delete state and tail.
    async fn delete(&self, id: &UploadId, fence: u64) -> Result<()>;

    /// Record that final upload `final_id` is made from partial upload `partial`.
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()>;

    /// The final uploads recorded for `partial`.
    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>>;

    /// Set (or clear) when the upload expires (Unix seconds).
    async fn set_expiry(&self, id: &UploadId, fence: u64, expires_at: Option<u64>) -> Result<()>;

    /// Up to `limit` uploads whose expiry is before `before` (Unix seconds), oldest first. An
    /// index, not the truth: the caller re-checks each under its lock.
    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>>;
}
