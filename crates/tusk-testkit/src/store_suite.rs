//! The conformance suite every [`UploadStore`] must pass (with termination and length
//! declaration, which every store here has). A backend's tests call [`run`] with a store wired
//! to the real service and a way to read back the bytes it committed. Writes go as the engine
//! sends them: the upload read under its lock (`info_locked`), then `write` with that read.

use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::{
    ChunkSource, ErrorKind, LengthDeclaration, Metadata, NewUpload, Termination, UploadId,
    UploadInfo, UploadStore,
};

use crate::{ChunkList, MemoryStore};

/// Reads back what a store committed for an upload (stores have no read path of their own yet).
#[async_trait]
pub trait ReadBack: Send + Sync {
    /// All committed bytes of `id`.
    async fn read_back(&self, id: &UploadId) -> Vec<u8>;
}

#[async_trait]
impl ReadBack for MemoryStore {
    async fn read_back(&self, id: &UploadId) -> Vec<u8> {
        self.data(id).unwrap_or_default()
    }
}

/// Deterministic test bytes: position-dependent so a misplaced byte is caught.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

async fn create(store: &dyn UploadStore, length: Option<u64>) -> UploadId {
    let id = UploadId::generate();
    let meta = Metadata::parse("filename YS50eHQ=").expect("valid metadata");
    let info = store
        .create(NewUpload {
            id: id.clone(),
            length,
            metadata: meta.clone(),
            expires_at: None,
            created_at: None,
            concat: None,
            placement: Default::default(),
        })
        .await
        .expect("create");
    assert_eq!(info.offset, 0);
    assert_eq!(info.length, length);
    assert_eq!(info.metadata, meta);
    id
}

/// What the suite needs of a store.
pub trait SuiteStore: UploadStore + Termination + LengthDeclaration {}
impl<S: UploadStore + Termination + LengthDeclaration> SuiteStore for S {}

/// Run every check. Panics on the first failure, naming it.
pub async fn run<S: SuiteStore>(store: &S, read: &dyn ReadBack) {
    unknown_ids_are_not_found(store).await;
    writes_in_pieces_land_byte_exact(store, read).await;
    refused_bodies_change_nothing(store, read).await;
    writes_from_an_unlocked_read_work_too(store, read).await;
    deferred_length_is_declared_once(store, read).await;
    empty_uploads_are_complete(store).await;
    termination_removes_everything(store).await;
}

/// Write `body` the way the engine does: read under the lock, then write with that read.
async fn append(
    store: &dyn UploadStore,
    id: &UploadId,
    body: &mut dyn ChunkSource,
) -> tusk_core::Result<UploadInfo> {
    let info = store.info_locked(id, 1).await?;
    store.write(&info, body, 1).await
}

async fn unknown_ids_are_not_found<S: SuiteStore>(store: &S) {
    let id = UploadId::generate();
    let err = store.info(&id).await.expect_err("info of unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store
        .terminate(&id, 1)
        .await
        .expect_err("terminate unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

async fn writes_in_pieces_land_byte_exact<S: SuiteStore>(store: &S, read: &dyn ReadBack) {
    let data = pattern(300_000, 7);
    let id = create(store, Some(data.len() as u64)).await;
    let mut offset = 0usize;
    for (i, piece) in [1usize, 99_999, 100_000, 100_000].iter().enumerate() {
        let mut src = ChunkList::split(&data[offset..offset + piece], 4096 + i);
        let info = append(store, &id, &mut src).await.expect("write");
        offset += piece;
        assert_eq!(info.offset, offset as u64);
        assert_eq!(store.info(&id).await.expect("info").offset, offset as u64);
    }
    assert!(store.info(&id).await.expect("info").is_complete());
    assert_eq!(read.read_back(&id).await, data);
}

async fn refused_bodies_change_nothing<S: SuiteStore>(store: &S, read: &dyn ReadBack) {
    let id = create(store, Some(10)).await;
    let mut ok = ChunkList::new([Bytes::from_static(b"abc")]);
    append(store, &id, &mut ok).await.expect("write");
    let mut refused = ChunkList::new([Bytes::from_static(b"XYZ")]).refused();
    let info = append(store, &id, &mut refused)
        .await
        .expect("refused write");
    assert_eq!(info.offset, 3);
    let mut rest = ChunkList::new([Bytes::from_static(b"defghij")]);
    let info = append(store, &id, &mut rest).await.expect("write rest");
    assert_eq!(info.offset, 10);
    assert_eq!(read.read_back(&id).await, b"abcdefghij");
}

/// A store may keep what `info_locked` read for its `write`, but must not need it: an info
/// from a plain `info` (nothing kept) writes the same.
async fn writes_from_an_unlocked_read_work_too<S: SuiteStore>(store: &S, read: &dyn ReadBack) {
    let id = create(store, Some(6)).await;
    let info = store.info(&id).await.expect("info");
    let mut src = ChunkList::new([Bytes::from_static(b"abc")]);
    let info = store.write(&info, &mut src, 1).await.expect("write");
    assert_eq!(info.offset, 3);
    // The info a write returns serves the next write under the same lock.
    let mut src = ChunkList::new([Bytes::from_static(b"def")]);
    let info = store.write(&info, &mut src, 1).await.expect("second write");
    assert!(info.is_complete());
    assert_eq!(read.read_back(&id).await, b"abcdef");
}

async fn deferred_length_is_declared_once<S: SuiteStore>(store: &S, read: &dyn ReadBack) {
    let id = create(store, None).await;
    let mut src = ChunkList::new([Bytes::from_static(b"hello ")]);
    let info = append(store, &id, &mut src).await.expect("write");
    let info = store.declare_length(&info, 11, 1).await.expect("declare");
    assert_eq!(info.length, Some(11));
    let err = store
        .declare_length(&info, 12, 1)
        .await
        .expect_err("second declare");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    // The info declare_length returned serves the write under the same lock.
    let mut src = ChunkList::new([Bytes::from_static(b"world")]);
    let info = store.write(&info, &mut src, 1).await.expect("write");
    assert!(info.is_complete());
    assert_eq!(read.read_back(&id).await, b"hello world");
}

async fn empty_uploads_are_complete<S: SuiteStore>(store: &S) {
    let id = create(store, Some(0)).await;
    assert!(store.info(&id).await.expect("info").is_complete());
}

async fn termination_removes_everything<S: SuiteStore>(store: &S) {
    let id = create(store, Some(4)).await;
    let mut src = ChunkList::new([Bytes::from_static(b"ab")]);
    append(store, &id, &mut src).await.expect("write");
    store.terminate(&id, 1).await.expect("terminate");
    let err = store.info(&id).await.expect_err("info after terminate");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
