//! The conformance suite every [`UploadStore`] must pass. A backend's tests call [`run`] with a
//! store wired to the real service and a way to read back the bytes it committed.

use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::{ErrorKind, Metadata, NewUpload, UploadId, UploadStore};

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
            concat: None,
        })
        .await
        .expect("create");
    assert_eq!(info.offset, 0);
    assert_eq!(info.length, length);
    assert_eq!(info.metadata, meta);
    id
}

/// Run every check. Panics on the first failure, naming it.
pub async fn run(store: &dyn UploadStore, read: &dyn ReadBack) {
    unknown_ids_are_not_found(store).await;
    writes_in_pieces_land_byte_exact(store, read).await;
    refused_bodies_change_nothing(store, read).await;
    wrong_offsets_are_refused(store).await;
    deferred_length_is_declared_once(store, read).await;
    empty_uploads_are_complete(store).await;
    termination_removes_everything(store).await;
}

async fn unknown_ids_are_not_found(store: &dyn UploadStore) {
    let id = UploadId::generate();
    let err = store.info(&id).await.expect_err("info of unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store
        .terminate(&id, 1)
        .await
        .expect_err("terminate unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

async fn writes_in_pieces_land_byte_exact(store: &dyn UploadStore, read: &dyn ReadBack) {
    let data = pattern(300_000, 7);
    let id = create(store, Some(data.len() as u64)).await;
    let mut offset = 0usize;
    for (i, piece) in [1usize, 99_999, 100_000, 100_000].iter().enumerate() {
        let mut src = ChunkList::split(&data[offset..offset + piece], 4096 + i);
        let info = store
            .write(&id, offset as u64, &mut src, 1)
            .await
            .expect("write");
        offset += piece;
        assert_eq!(info.offset, offset as u64);
        assert_eq!(store.info(&id).await.expect("info").offset, offset as u64);
    }
    assert!(store.info(&id).await.expect("info").is_complete());
    assert_eq!(read.read_back(&id).await, data);
}

async fn refused_bodies_change_nothing(store: &dyn UploadStore, read: &dyn ReadBack) {
    let id = create(store, Some(10)).await;
    let mut ok = ChunkList::new([Bytes::from_static(b"abc")]);
    store.write(&id, 0, &mut ok, 1).await.expect("write");
    let mut refused = ChunkList::new([Bytes::from_static(b"XYZ")]).refused();
    let info = store
        .write(&id, 3, &mut refused, 1)
        .await
        .expect("refused write");
    assert_eq!(info.offset, 3);
    let mut rest = ChunkList::new([Bytes::from_static(b"defghij")]);
    let info = store.write(&id, 3, &mut rest, 1).await.expect("write rest");
    assert_eq!(info.offset, 10);
    assert_eq!(read.read_back(&id).await, b"abcdefghij");
}

async fn wrong_offsets_are_refused(store: &dyn UploadStore) {
    let id = create(store, Some(10)).await;
    let mut src = ChunkList::new([Bytes::from_static(b"abc")]);
    let err = store
        .write(&id, 5, &mut src, 1)
        .await
        .expect_err("bad offset");
    assert_eq!(err.kind(), ErrorKind::OffsetMismatch);
    assert_eq!(store.info(&id).await.expect("info").offset, 0);
}

async fn deferred_length_is_declared_once(store: &dyn UploadStore, read: &dyn ReadBack) {
    let id = create(store, None).await;
    let mut src = ChunkList::new([Bytes::from_static(b"hello ")]);
    store.write(&id, 0, &mut src, 1).await.expect("write");
    let info = store.declare_length(&id, 11, 1).await.expect("declare");
    assert_eq!(info.length, Some(11));
    let err = store
        .declare_length(&id, 12, 1)
        .await
        .expect_err("second declare");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let mut src = ChunkList::new([Bytes::from_static(b"world")]);
    let info = store.write(&id, 6, &mut src, 1).await.expect("write");
    assert!(info.is_complete());
    assert_eq!(read.read_back(&id).await, b"hello world");
}

async fn empty_uploads_are_complete(store: &dyn UploadStore) {
    let id = create(store, Some(0)).await;
    assert!(store.info(&id).await.expect("info").is_complete());
}

async fn termination_removes_everything(store: &dyn UploadStore) {
    let id = create(store, Some(4)).await;
    let mut src = ChunkList::new([Bytes::from_static(b"ab")]);
    store.write(&id, 0, &mut src, 1).await.expect("write");
    store.terminate(&id, 1).await.expect("terminate");
    let err = store.info(&id).await.expect_err("info after terminate");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}
