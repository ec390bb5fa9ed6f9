//! The in-memory state store passes the same conformance suite as the Redis one.

use tusk_core::{StateStore, UploadId, UploadState};
use tusk_testkit::{MemoryState, state_suite};

#[tokio::test]
async fn memory_state_passes_the_state_suite() {
    state_suite::run(&MemoryState::new()).await;
}

#[tokio::test]
async fn clones_share_uploads() {
    let a = MemoryState::new();
    let b = a.clone();
    let s = UploadState {
        id: UploadId::generate(),
        length: Some(1),
        metadata: Default::default(),
        part_size: 5 * 1024 * 1024,
        multipart_id: None,
        part_count: 0,
        tail_len: 0,
        finished: false,
        expires_at: None,
        created_at: None,
        concat: None,
        placement: Default::default(),
    };
    a.create(&s).await.expect("create");
    assert_eq!(b.get(&s.id).await.expect("get through the clone"), s);
}
