use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

use crate::{NewUpload, Result, UploadId, UploadInfo};

/// A PATCH body as a store sees it: a sequence of chunks that ends for whatever reason (complete,
/// client gone, stalled, lock release requested, shutdown, length exceeded). The engine decides
/// why it ended; the store only asks, once it has seen the end, whether it may commit.
#[async_trait]
pub trait ChunkSource: Send {
    /// The next chunk, or `None` once the body has ended for any reason.
    async fn next_chunk(&mut self) -> Option<Bytes>;

    /// Asked after `next_chunk` returned `None`: whether what arrived may be committed. `false`
    /// (length exceeded, lock lost, and later a checksum mismatch) means nothing of this body may
    /// change the upload's offset.
    fn may_commit(&self) -> bool;

    /// Whether nothing of this body may be committed before it has ended and `may_commit` said
    /// yes (a body under a checksum). Otherwise a store may commit whole parts while the body
    /// is still arriving, so a crash loses as little as possible.
    fn all_or_nothing(&self) -> bool {
        false
    }

    /// Completes once the request has been told to stop (another request asked for the lock,
    /// the lock was lost, the server is shutting down): a store that waits for something other
    /// than the body (room in a memory budget) stops waiting then. By default, never.
    fn stopped(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(std::future::pending())
    }

    /// Cancelled once the request's lock is lost: a store waiting for object storage stops at
    /// once, since nothing it would commit can be committed any more. By default, never.
    fn lock_lost(&self) -> tokio_util::sync::CancellationToken {
        tokio_util::sync::CancellationToken::new()
    }

    /// Whether the request's node keeps its lock after it (see [`crate::LockGuard::kept`]): the
    /// node's next request on the upload runs under the same fencing token, so what this one
    /// leaves in memory may serve it. By default, no.
    fn lock_kept(&self) -> bool {
        false
    }
}

/// The bytes of a download, streamed from the store; an error ends it early.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Where upload bytes and state live: the part every store has. What only some stores can do
/// (termination, length declaration, expiry, concatenation) are traits of their own, which the
/// engine holds as options in [`Storage`]; `Tus-Extension`, `Allow` and routing follow from
/// which are there.
///
/// The engine holds the upload's lock around every call except `create` and `info`, and
/// passes the lock's fencing token to every call that changes state.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    /// Where an upload's bytes live, for hooks (tusd's `Storage`: `Type` and store-specific
    /// keys). By default: nothing said.
    fn location(&self, _upload: &UploadInfo) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// Whether an upload may be stored as `placement` says (a pre-create hook's choice of key
    /// prefix, storage class and encryption); the engine asks before creating it. By default:
    /// no, unless nothing is chosen.
    fn check_placement(&self, placement: &crate::Placement) -> std::result::Result<(), String> {
        if placement.is_default() {
            Ok(())
        } else {
            Err("this store places uploads itself and takes no ChangeFileInfo.Storage".to_owned())
        }
    }

    /// Whether the services behind the store answer (for readiness probes). By default: yes.
    async fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Create an empty upload.
    async fn create(&self, upload: NewUpload) -> Result<UploadInfo>;

    /// Current state, unlocked. `ErrorKind::NotFound` for an unknown id.
    async fn info(&self, id: &UploadId) -> Result<UploadInfo>;

    /// Current state, read by the lock holder with `fence` before it acts on the upload. A store
    /// may record the token (so older holders can no longer write), finish work a crashed
    /// holder left undone, and keep what it read in [`UploadInfo::loaded`] for its `write`. By
    /// default the same as [`UploadStore::info`].
    async fn info_locked(&self, id: &UploadId, fence: u64) -> Result<UploadInfo> {
        let _ = fence;
        self.info(id).await
    }

    /// Append `body` to `upload`, as [`UploadStore::info_locked`] (or a call since, under the
    /// same lock) reported it: the engine has checked the client's offset against
    /// `upload.offset` and bounds the body by the length. Before returning, every byte counted
    /// in the returned offset is durable. When the body ends early, whatever arrived is
    /// committed if `body.may_commit()`; otherwise the offset stays unchanged. An upload whose
    /// offset reaches its length is finished here.
    async fn write(
        &self,
        upload: &UploadInfo,
        body: &mut dyn ChunkSource,
        fence: u64,
    ) -> Result<UploadInfo>;

    /// Stream bytes `start..end` of a finished upload (the caller checked the range against
    /// the length). An unfinished upload is `ErrorKind::Invalid`.
    async fn read(&self, id: &UploadId, start: u64, end: u64) -> Result<ByteStream>;

    /// Called under the lock before the engine treats `upload` (reported unfinished) as
    /// unfinished for good: before the reaper removes it, and before a download refuses it. A
    /// store whose state can fall behind its bytes (distributed state restored from an older
    /// copy, as after a Redis failover) checks whether the upload was in fact finished and, if
    /// so, records that and returns the finished upload. By default: never.
    async fn recover_finished(
        &self,
        upload: &UploadInfo,
        fence: u64,
    ) -> Result<Option<UploadInfo>> {
        let _ = (upload, fence);
        Ok(None)
    }
}

/// termination: DELETE.
#[async_trait]
pub trait Termination: Send + Sync + 'static {
    /// Delete the upload and everything stored for it.
    async fn terminate(&self, id: &UploadId, fence: u64) -> Result<()>;
}

/// creation-defer-length: uploads created without a length get one later.
#[async_trait]
pub trait LengthDeclaration: Send + Sync + 'static {
    /// Set the length of `upload` (read under the same lock; its length is still deferred and
    /// `length` is at least its offset, both checked by the engine).
    async fn declare_length(
        &self,
        upload: &UploadInfo,
        length: u64,
        fence: u64,
    ) -> Result<UploadInfo>;
}

/// expiration: uploads carry an expiry time, and an index finds the due ones.
#[async_trait]
pub trait Expiration: Send + Sync + 'static {
    /// Set (or clear) when the upload expires (Unix seconds).
    async fn set_expiry(&self, id: &UploadId, fence: u64, expires_at: Option<u64>) -> Result<()>;

    /// Up to `limit` uploads whose expiry is before `before` (Unix seconds). An index, not the
    /// truth: the caller re-checks each under its lock before removing it.
    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>>;
}

/// concatenation (and concatenation-unfinished): final uploads assembled from partial ones.
#[async_trait]
pub trait Concatenation: Send + Sync + 'static {
    /// Record that final upload `final_id` is made from partial upload `partial`, so that
    /// whoever completes the partial can complete the final upload too.
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()>;

    /// The final uploads recorded for `partial` (see [`Concatenation::link_final`]).
    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>>;

    /// Assemble the final upload `id` from `partials` (complete, in order, their lengths
    /// summing to its length) and mark it complete. Idempotent: after a crash, calling it again
    /// finishes the same upload.
    async fn concatenate(
        &self,
        id: &UploadId,
        partials: &[UploadInfo],
        fence: u64,
    ) -> Result<UploadInfo>;
}

/// A store and the optional abilities it has, as the engine holds them.
#[derive(Clone)]
pub struct Storage {
    /// What every store does.
    pub store: Arc<dyn UploadStore>,
    /// DELETE, if offered.
    pub termination: Option<Arc<dyn Termination>>,
    /// `Upload-Defer-Length`, if offered.
    pub length_declaration: Option<Arc<dyn LengthDeclaration>>,
    /// Expiry, if offered.
    pub expiration: Option<Arc<dyn Expiration>>,
    /// `Upload-Concat`, if offered.
    pub concatenation: Option<Arc<dyn Concatenation>>,
}

impl Storage {
    /// A store with none of the optional abilities.
    pub fn basic(store: Arc<dyn UploadStore>) -> Self {
        Self {
            store,
            termination: None,
            length_declaration: None,
            expiration: None,
            concatenation: None,
        }
    }

    /// A store with every optional ability.
    pub fn complete<S>(store: Arc<S>) -> Self
    where
        S: UploadStore + Termination + LengthDeclaration + Expiration + Concatenation,
    {
        Self {
            termination: Some(store.clone()),
            length_declaration: Some(store.clone()),
            expiration: Some(store.clone()),
            concatenation: Some(store.clone()),
            store,
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("termination", &self.termination.is_some())
            .field("length_declaration", &self.length_declaration.is_some())
            .field("expiration", &self.expiration.is_some())
            .field("concatenation", &self.concatenation.is_some())
            .finish_non_exhaustive()
    }
}
