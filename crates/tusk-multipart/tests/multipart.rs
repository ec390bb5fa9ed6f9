//! The distributed store over in-memory object and state stores with S3's and Redis's
//! semantics. The same store runs against real S3 and Redis in the binary's end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;
use tusk_core::{
    ByteStream, ChunkSource, Commit, Error, ErrorKind, LengthDeclaration, Metadata, NewUpload,
    ObjectAttributes, ObjectStore, Placement, Result, StateStore, Termination, UploadId,
    UploadInfo, UploadState, UploadStore,
};
use tusk_multipart::{BufferBudget, MultipartConfig, MultipartStore};
use tusk_testkit::store_suite::{self, ReadBack};
use tusk_testkit::{ChunkList, MemoryObjects, MemoryState};

const MIB: u64 = 1024 * 1024;

/// Writes as the engine does (a fenced read, the offset checked against it, then the write),
/// for tests that name an offset.
#[async_trait]
trait WriteAt {
    async fn write_at(
        &self,
        id: &UploadId,
        offset: u64,
        body: &mut dyn ChunkSource,
        fence: u64,
    ) -> Result<UploadInfo>;
}

#[async_trait]
impl WriteAt for MultipartStore {
    async fn write_at(
        &self,
        id: &UploadId,
        offset: u64,
        body: &mut dyn ChunkSource,
        fence: u64,
    ) -> Result<UploadInfo> {
        let info = self.info_locked(id, fence).await?;
        if info.offset != offset {
            return Err(Error::new(ErrorKind::OffsetMismatch, "offset mismatch"));
        }
        self.write(&info, body, fence).await
    }
}
const P: u64 = 5 * MIB;

fn config() -> MultipartConfig {
    MultipartConfig {
        preferred_part_size: P,
        max_parts: 10_000,
        max_size: 10_000 * P,
        max_inflight_parts: 2,
        ..MultipartConfig::default()
    }
}

/// One "node": a store over shared object and state stores.
fn node(
    objects: &MemoryObjects,
    state: Arc<dyn StateStore>,
    config: MultipartConfig,
) -> MultipartStore {
    MultipartStore::new(
        Arc::new(objects.clone()),
        state,
        config,
        BufferBudget::new(64 * MIB),
    )
    .unwrap()
}

struct Cluster {
    objects: MemoryObjects,
    state: MemoryState,
}

impl Cluster {
    fn new() -> Self {
        Self {
            objects: MemoryObjects::new(),
            state: MemoryState::new(),
        }
    }

    fn node(&self) -> MultipartStore {
        node(&self.objects, Arc::new(self.state.clone()), config())
    }
}

/// Reads finished objects back.
struct Objects(MemoryObjects);

#[async_trait]
impl ReadBack for Objects {
    async fn read_back(&self, id: &UploadId) -> Vec<u8> {
        self.0.object(id.as_str()).expect("finished object")
    }
}

fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

async fn create(store: &MultipartStore, length: Option<u64>) -> UploadId {
    let id = UploadId::generate();
    store
        .create(NewUpload {
            id: id.clone(),
            length,
            metadata: Metadata::default(),
            expires_at: None,
            created_at: None,
            concat: None,
            placement: Default::default(),
        })
        .await
        .expect("create");
    id
}

/// Write `data` at `offset` in chunks of 64 KiB.
async fn write(store: &MultipartStore, id: &UploadId, offset: u64, data: &[u8]) -> u64 {
    let mut src = ChunkList::split(data, 64 * 1024);
    store
        .write_at(id, offset, &mut src, 1)
        .await
        .expect("write")
        .offset
}

fn assert_equal_parts(objects: &MemoryObjects, id: &UploadId, part_size: u64) {
    let Some(sizes) = objects.part_sizes_of_last_complete(id.as_str()) else {
        return; // a single PUT: smaller than one part
    };
    let (last, full) = sizes.split_last().expect("at least one part");
    assert!(
        full.iter().all(|&s| s == part_size),
        "unequal parts: {sizes:?}"
    );
    assert!(*last <= part_size && *last > 0, "last part {last}");
}

#[tokio::test]
async fn passes_the_store_conformance_suite() {
    let cluster = Cluster::new();
    store_suite::run(&cluster.node(), &Objects(cluster.objects.clone())).await;
}

#[tokio::test]
async fn edge_sizes_land_byte_exact_in_equal_parts() {
    let cluster = Cluster::new();
    let store = cluster.node();
    for len in [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 3] {
        let data = pattern(len, len as u8);
        let id = create(&store, Some(len)).await;
        if len > 0 {
            assert_eq!(write(&store, &id, 0, &data).await, len);
        }
        assert_eq!(
            cluster.objects.object(id.as_str()),
            Some(data),
            "length {len}"
        );
        assert_equal_parts(&cluster.objects, &id, P);
    }
    assert_eq!(cluster.objects.pending_multiparts(), 0);
}

#[tokio::test]
async fn small_pieces_alternating_nodes_resume_from_the_tail() {
    let cluster = Cluster::new();
    let nodes = [cluster.node(), cluster.node(), cluster.node()];
    let len = 2 * P + 777_777;
    let data = pattern(len, 3);
    let id = create(&nodes[0], Some(len)).await;
    // 3 MiB on node 2, then 300 KiB pieces round the nodes: every piece after the first starts
    // from the tail another node left.
    let mut offset = write(&nodes[1], &id, 0, &data[..3 * MIB as usize]).await;
    assert_eq!(nodes[2].info(&id).await.unwrap().offset, 3 * MIB);
    let mut turn = 0;
    while offset < len {
        let end = (offset + 300 * 1024).min(len);
        let node = &nodes[turn % 3];
        offset = write(node, &id, offset, &data[offset as usize..end as usize]).await;
        assert_eq!(offset, end);
        turn += 1;
    }
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
    assert_equal_parts(&cluster.objects, &id, P);
}

#[tokio::test]
async fn deferred_length_and_a_length_that_forces_bigger_parts() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let data = pattern(P + 10, 9);
    let id = create(&store, None).await;
    let offset = write(&store, &id, 0, &data).await;
    assert_eq!(offset, P + 10);
    let info = store.info_locked(&id, 1).await.unwrap();
    store.declare_length(&info, P + 10, 1).await.unwrap();
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));

    // Three parts at most: 24 MiB needs 8 MiB parts, above the 5 MiB preferred size.
    let few_parts = MultipartConfig {
        max_parts: 3,
        max_size: 30 * MIB,
        ..config()
    };
    let store = node(&cluster.objects, Arc::new(cluster.state.clone()), few_parts);
    let len = 24 * MIB - 5;
    let data = pattern(len, 1);
    let id = create(&store, Some(len)).await;
    write(&store, &id, 0, &data).await;
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
    assert_eq!(
        cluster.objects.part_sizes_of_last_complete(id.as_str()),
        Some(vec![8 * MIB, 8 * MIB, 8 * MIB - 5])
    );
}

#[tokio::test]
async fn an_older_fence_changes_nothing() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let id = create(&store, Some(10)).await;
    let mut src = ChunkList::new([Bytes::from_static(b"abc")]);
    store.write_at(&id, 0, &mut src, 7).await.unwrap();
    let mut stale = ChunkList::new([Bytes::from_static(b"XYZ")]);
    let err = store.write_at(&id, 3, &mut stale, 6).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockLost);
    assert_eq!(store.info(&id).await.unwrap().offset, 3);
    let err = store.terminate(&id, 6).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockLost);
}

#[tokio::test]
async fn object_storage_outage_keeps_every_committed_byte() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let len = 3 * P;
    let data = pattern(len, 5);
    let id = create(&store, Some(len)).await;
    let offset = write(&store, &id, 0, &data[..(P + 100) as usize]).await;
    assert_eq!(offset, P + 100);

    cluster.objects.set_unavailable(true);
    let mut src = ChunkList::split(&data[offset as usize..], 64 * 1024);
    let err = store.write_at(&id, offset, &mut src, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Nothing was lost, nothing claimed that is not stored.
    assert_eq!(store.info(&id).await.unwrap().offset, offset);

    cluster.objects.set_unavailable(false);
    assert_eq!(
        write(&store, &id, offset, &data[offset as usize..]).await,
        len
    );
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
}

#[tokio::test]
async fn an_outage_while_finishing_is_repaired_by_the_next_request() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let len = P + 5;
    let data = pattern(len, 2);
    let id = create(&store, Some(len)).await;
    write(&store, &id, 0, &data[..P as usize]).await;

    // The last 5 bytes are committed to the tail, then assembling the object fails.
    cluster.objects.set_unavailable(true);
    let mut src = ChunkList::new([Bytes::copy_from_slice(&data[P as usize..])]);
    let err = store.write_at(&id, P, &mut src, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(store.info(&id).await.unwrap().offset, len);
    assert_eq!(cluster.objects.object(id.as_str()), None);

    cluster.objects.set_unavailable(false);
    let info = cluster.node().info_locked(&id, 2).await.unwrap();
    assert!(info.is_complete());
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
}

/// A state store that fails one call of `op` once: `finish` without running (a crash between
/// CompleteMultipartUpload and the state update), `set_multipart` after running (the reply
/// lost to a timeout).
struct FailsOnce {
    inner: MemoryState,
    op: &'static str,
    failed: AtomicBool,
}

impl FailsOnce {
    fn new(inner: MemoryState, op: &'static str) -> Arc<Self> {
        Arc::new(Self {
            inner,
            op,
            failed: AtomicBool::new(false),
        })
    }

    /// Whether this call of `op` is the one that fails.
    fn fails(&self, op: &str) -> bool {
        op == self.op && !self.failed.swap(true, Ordering::SeqCst)
    }
}

fn outage() -> tusk_core::Error {
    tusk_core::Error::new(ErrorKind::Unavailable, "crash")
}

#[async_trait]
impl StateStore for FailsOnce {
    async fn create(&self, state: &UploadState) -> Result<()> {
        self.inner.create(state).await
    }
    async fn get(&self, id: &UploadId) -> Result<UploadState> {
        self.inner.get(id).await
    }
    async fn load(&self, id: &UploadId, fence: u64) -> Result<UploadState> {
        self.inner.load(id, fence).await
    }
    async fn read_tail_range(
        &self,
        id: &UploadId,
        range: Range<u64>,
        fence: Option<u64>,
    ) -> Result<Bytes> {
        self.inner.read_tail_range(id, range, fence).await
    }
    async fn etags(&self, id: &UploadId) -> Result<Vec<String>> {
        self.inner.etags(id).await
    }
    async fn set_multipart(&self, id: &UploadId, fence: u64, multipart_id: &str) -> Result<()> {
        self.inner.set_multipart(id, fence, multipart_id).await?;
        if self.fails("set_multipart") {
            return Err(outage());
        }
        Ok(())
    }
    async fn commit(&self, id: &UploadId, fence: u64, commit: Commit) -> Result<UploadState> {
        self.inner.commit(id, fence, commit).await
    }
    async fn set_length(&self, id: &UploadId, fence: u64, length: u64) -> Result<()> {
        self.inner.set_length(id, fence, length).await
    }
    async fn finish(&self, id: &UploadId, fence: u64) -> Result<()> {
        if self.fails("finish") {
            return Err(outage());
        }
        self.inner.finish(id, fence).await
    }
    async fn delete(&self, id: &UploadId, fence: u64) -> Result<()> {
        self.inner.delete(id, fence).await
    }
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()> {
        self.inner.link_final(partial, final_id).await
    }
    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>> {
        self.inner.finals_of(partial).await
    }
    async fn set_expiry(&self, id: &UploadId, fence: u64, at: Option<u64>) -> Result<()> {
        self.inner.set_expiry(id, fence, at).await
    }
    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>> {
        self.inner.expired(before, limit).await
    }
}

#[tokio::test]
async fn finishing_is_exactly_once_after_a_crash_between_complete_and_record() {
    let objects = MemoryObjects::new();
    let state = MemoryState::new();
    let store = node(&objects, FailsOnce::new(state.clone(), "finish"), config());
    let len = 2 * P + 1;
    let data = pattern(len, 4);
    let id = create(&store, Some(len)).await;
    let mut src = ChunkList::split(&data, 64 * 1024);
    let err = store.write_at(&id, 0, &mut src, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // The object is assembled, the state not yet finished.
    assert_eq!(objects.object(id.as_str()), Some(data.clone()));
    assert!(!state.get(&id).await.unwrap().finished);

    let info = store.info_locked(&id, 2).await.unwrap();
    assert!(info.is_complete());
    assert!(state.get(&id).await.unwrap().finished);
    assert_eq!(objects.object(id.as_str()), Some(data));
}

#[tokio::test]
async fn a_lost_reply_to_recording_the_multipart_upload_does_not_break_the_upload() {
    let objects = MemoryObjects::new();
    let state = MemoryState::new();
    let store = node(
        &objects,
        FailsOnce::new(state.clone(), "set_multipart"),
        config(),
    );
    let len = 2 * P + 1;
    let data = pattern(len, 6);
    let id = create(&store, Some(len)).await;
    let mut src = ChunkList::split(&data, 64 * 1024);
    let err = store.write_at(&id, 0, &mut src, 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Redis did record it: it must still exist in S3.
    assert_eq!(objects.pending_multiparts(), 1);

    let offset = store.info_locked(&id, 2).await.unwrap().offset;
    let mut rest = ChunkList::split(&data[offset as usize..], 64 * 1024);
    let info = store.write_at(&id, offset, &mut rest, 2).await.unwrap();
    assert!(info.is_complete());
    assert_eq!(objects.object(id.as_str()), Some(data));
}

#[tokio::test]
async fn termination_aborts_the_multipart_upload() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let id = create(&store, Some(3 * P)).await;
    write(&store, &id, 0, &pattern(P + 1, 0)).await;
    assert_eq!(cluster.objects.pending_multiparts(), 1);
    store.terminate(&id, 1).await.unwrap();
    assert_eq!(cluster.objects.pending_multiparts(), 0);
    assert_eq!(
        store.info(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(cluster.objects.object(&format!("{id}.info")), None);
}

/// A body under a checksum that turns out wrong: nothing of it may count.
struct Refused(ChunkList);

#[async_trait]
impl ChunkSource for Refused {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        self.0.next_chunk().await
    }
    fn may_commit(&self) -> bool {
        false
    }
    fn all_or_nothing(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn all_or_nothing_bodies_commit_no_part_when_refused() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let len = 3 * P;
    let data = pattern(len, 8);
    let id = create(&store, Some(len)).await;
    write(&store, &id, 0, &data[..100]).await;
    let mut refused = Refused(ChunkList::split(&data[100..(2 * P) as usize], 64 * 1024));
    let info = store.write_at(&id, 100, &mut refused, 1).await.unwrap();
    assert_eq!(info.offset, 100);
    assert_eq!(write(&store, &id, 100, &data[100..]).await, len);
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
}

#[tokio::test]
async fn concurrent_uploads_share_a_budget_of_one_part() {
    let objects = MemoryObjects::new();
    let state = MemoryState::new();
    let store = MultipartStore::new(
        Arc::new(objects.clone()),
        Arc::new(state),
        MultipartConfig {
            max_size: 100 * MIB,
            ..config()
        },
        BufferBudget::new(P),
    )
    .unwrap();
    let len = 3 * P + 9;
    let mut tasks = Vec::new();
    for seed in 0..4u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(len, seed);
            let id = create(&store, Some(len)).await;
            write(&store, &id, 0, &data).await;
            (id, data)
        }));
    }
    for task in tasks {
        let (id, data) = task.await.unwrap();
        assert_eq!(objects.object(id.as_str()), Some(data));
    }
}

#[test]
fn a_budget_smaller_than_a_part_is_refused() {
    let err = MultipartStore::new(
        Arc::new(MemoryObjects::new()),
        Arc::new(MemoryState::new()),
        config(),
        BufferBudget::new(P - 1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
}

/// Object storage whose PUTs of upload bytes (not `.info` objects) wait for the test: each
/// arrival adds a permit to `arrived`, each permit of `gate` lets one through.
struct GatedPuts {
    inner: MemoryObjects,
    arrived: Semaphore,
    gate: Semaphore,
    parts_sent: AtomicUsize,
    /// UploadPart never answers (a hung S3).
    hang_parts: AtomicBool,
}

impl GatedPuts {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryObjects::new(),
            arrived: Semaphore::new(0),
            gate: Semaphore::new(0),
            parts_sent: AtomicUsize::new(0),
            hang_parts: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl ObjectStore for GatedPuts {
    async fn create_multipart(&self, key: &str, attributes: &ObjectAttributes) -> Result<String> {
        self.inner.create_multipart(key, attributes).await
    }
    async fn upload_part(&self, key: &str, id: &str, number: u32, body: Bytes) -> Result<String> {
        self.parts_sent.fetch_add(1, Ordering::SeqCst);
        if self.hang_parts.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.upload_part(key, id, number, body).await
    }
    async fn complete_multipart(&self, key: &str, id: &str, etags: &[String]) -> Result<()> {
        self.inner.complete_multipart(key, id, etags).await
    }
    async fn upload_part_copy(
        &self,
        key: &str,
        id: &str,
        number: u32,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<String> {
        let inner = &self.inner;
        inner
            .upload_part_copy(key, id, number, source, start, end)
            .await
    }
    async fn abort_multipart(&self, key: &str, id: &str) -> Result<()> {
        self.inner.abort_multipart(key, id).await
    }
    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        attributes: &ObjectAttributes,
    ) -> Result<()> {
        if !key.ends_with(".info") {
            self.arrived.add_permits(1);
            self.gate.acquire().await.unwrap().forget();
        }
        self.inner.put_object(key, body, attributes).await
    }
    async fn object_size(&self, key: &str) -> Result<Option<u64>> {
        self.inner.object_size(key).await
    }
    async fn get_object(&self, key: &str, start: u64, end: u64) -> Result<ByteStream> {
        self.inner.get_object(key, start, end).await
    }
    async fn delete_object(&self, key: &str) -> Result<()> {
        self.inner.delete_object(key).await
    }
}

#[tokio::test]
async fn a_finishing_upload_keeps_its_budget_until_object_storage_has_the_last_part() {
    let objects = GatedPuts::new();
    let budget = BufferBudget::new(P);
    let store = MultipartStore::new(
        objects.clone(),
        Arc::new(MemoryState::new()),
        config(),
        budget.clone(),
    )
    .unwrap();
    // Smaller than a part: the whole upload is its last part, stored with one PUT.
    let len = P / 2;
    let data = pattern(len, 5);
    let id = create(&store, Some(len)).await;
    let writer = tokio::spawn({
        let (store, id, data) = (store.clone(), id.clone(), data.clone());
        async move { write(&store, &id, 0, &data).await }
    });
    tokio::time::timeout(Duration::from_secs(10), objects.arrived.acquire())
        .await
        .expect("the last part reaches object storage")
        .unwrap()
        .forget();
    assert_eq!(
        budget.available(),
        P - len,
        "the last part's bytes are in memory, so their budget is still reserved"
    );
    objects.gate.add_permits(1);
    assert_eq!(writer.await.unwrap(), len);
    assert_eq!(budget.available(), P);
    assert_eq!(objects.inner.object(id.as_str()), Some(data));
}

/// A body that sends `first`, tells the test (`reached`), waits for `resume`, then sends `rest`.
struct PausedBody {
    first: Option<Bytes>,
    reached: Option<tokio::sync::oneshot::Sender<()>>,
    resume: Option<tokio::sync::oneshot::Receiver<()>>,
    rest: Option<Bytes>,
}

#[async_trait]
impl ChunkSource for PausedBody {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if let Some(reached) = self.reached.take() {
            let _ = reached.send(());
        }
        if let Some(resume) = self.resume.take() {
            let _ = resume.await;
        }
        self.rest.take()
    }
    fn may_commit(&self) -> bool {
        true
    }
}

/// A body under token `stale` starts at the upload's offset with `first`, then a newer holder
/// (token `newer`) takes the upload over, then the body sends `rest`: it must be refused.
async fn refused_after_takeover(
    store: &MultipartStore,
    id: &UploadId,
    first: &[u8],
    rest: &[u8],
    stale: u64,
    newer: u64,
) {
    let offset = store.info(id).await.unwrap().offset;
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let mut body = PausedBody {
        first: Some(Bytes::copy_from_slice(first)),
        reached: Some(reached_tx),
        resume: Some(resume_rx),
        rest: Some(Bytes::copy_from_slice(rest)),
    };
    let writer = tokio::spawn({
        let (store, id) = (store.clone(), id.clone());
        async move { store.write_at(&id, offset, &mut body, stale).await }
    });
    tokio::time::timeout(Duration::from_secs(10), reached_rx)
        .await
        .expect("the stale body is under way")
        .unwrap();
    store.info_locked(id, newer).await.unwrap();
    resume_tx.send(()).unwrap();
    let err = writer
        .await
        .unwrap()
        .expect_err("the stale holder is refused");
    assert_eq!(err.kind(), ErrorKind::LockLost, "{err}");
}

/// S3 cannot refuse a part from a holder that lost its lock, so such a holder must not even
/// build one from the tail the new holder may have changed: its tail read is fenced.
#[tokio::test]
async fn a_holder_that_lost_its_lock_sends_no_part_built_from_the_tail() {
    let objects = GatedPuts::new();
    let state = MemoryState::new();
    let store = MultipartStore::new(
        objects.clone(),
        Arc::new(state),
        config(),
        BufferBudget::new(4 * P),
    )
    .unwrap();
    let len = 3 * P;
    let data = pattern(len, 8);
    let id = create(&store, Some(len)).await;
    // Part 1 in object storage (so the multipart upload exists), 1 MiB of part 2 in the tail.
    let mut src = ChunkList::split(&data[..(P + MIB) as usize], 64 * 1024);
    store.write_at(&id, 0, &mut src, 7).await.unwrap();
    assert_eq!(objects.parts_sent.load(Ordering::SeqCst), 1);

    // The stale holder (token 8) starts a body that will fill part 2 from the tail, when a
    // newer holder (token 9) takes the upload over.
    let from = (P + MIB) as usize;
    let to = from + MIB as usize;
    refused_after_takeover(
        &store,
        &id,
        &data[from..to],
        &data[to..2 * P as usize],
        8,
        9,
    )
    .await;
    assert_eq!(
        objects.parts_sent.load(Ordering::SeqCst),
        1,
        "no part 2 was sent by the stale holder"
    );
    assert_eq!(store.info(&id).await.unwrap().offset, P + MIB);
}

/// A slow client must not hold a node's budget: a body holds budget for the bytes it sent (in
/// steps of 256 KiB), not a whole part from its first byte.
#[tokio::test]
async fn a_body_that_sends_little_holds_little_budget() {
    let budget = BufferBudget::new(P);
    let store = MultipartStore::new(
        Arc::new(MemoryObjects::new()),
        Arc::new(MemoryState::new()),
        config(),
        budget.clone(),
    )
    .unwrap();
    let id = create(&store, None).await;
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let mut drip = PausedBody {
        first: Some(Bytes::from_static(b"x")),
        reached: Some(reached_tx),
        resume: Some(resume_rx),
        rest: Some(Bytes::from_static(b"yz")),
    };
    let writer = tokio::spawn({
        let (store, id) = (store.clone(), id.clone());
        async move { store.write_at(&id, 0, &mut drip, 1).await }
    });
    tokio::time::timeout(Duration::from_secs(10), reached_rx)
        .await
        .expect("the body is under way")
        .unwrap();
    assert_eq!(budget.available(), P - 256 * 1024);
    resume_tx.send(()).unwrap();
    assert_eq!(writer.await.unwrap().unwrap().offset, 3);
    assert_eq!(budget.available(), P);
}

/// With the budget spent, a PATCH that needs more stores what it buffered in the tail and gives
/// its budget back before it waits, so PATCHes holding parts of parts never wait for each
/// other: two uploads, each past half a part when the budget (one part) runs out, both finish.
#[tokio::test]
async fn patches_out_of_budget_store_their_bytes_and_never_wait_for_each_other() {
    let objects = MemoryObjects::new();
    let budget = BufferBudget::new(P);
    let store = MultipartStore::new(
        Arc::new(objects.clone()),
        Arc::new(MemoryState::new()),
        config(),
        budget.clone(),
    )
    .unwrap();
    let len = 2 * P;
    let mut bodies = Vec::new();
    for seed in [3u8, 4] {
        let data = pattern(len, seed);
        let id = create(&store, Some(len)).await;
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
        let half = (P / 2) as usize;
        let body = PausedBody {
            first: Some(Bytes::copy_from_slice(&data[..half])),
            reached: Some(reached_tx),
            resume: Some(resume_rx),
            rest: Some(Bytes::copy_from_slice(&data[half..])),
        };
        bodies.push((id, data, body, reached_rx, resume_tx));
    }
    let mut running = Vec::new();
    for (id, data, mut body, reached, resume) in bodies {
        let writer = tokio::spawn({
            let (store, id) = (store.clone(), id.clone());
            async move { store.write_at(&id, 0, &mut body, 1).await }
        });
        tokio::time::timeout(Duration::from_secs(10), reached)
            .await
            .expect("the body is under way")
            .unwrap();
        running.push((id, data, writer, resume));
    }
    // Both hold half a part: the budget is spent.
    assert_eq!(budget.available(), 0);
    let mut writers = Vec::new();
    for (id, data, writer, resume) in running {
        resume.send(()).unwrap();
        writers.push((id, data, writer));
    }
    for (id, data, writer) in writers {
        let info = tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("no PATCH waits for another forever")
            .unwrap()
            .unwrap();
        assert_eq!(info.offset, len);
        assert_eq!(objects.object(id.as_str()), Some(data));
    }
    assert_eq!(budget.available(), P);
}

/// A body whose lock is lost when the test says so.
struct LosesLock {
    chunks: ChunkList,
    lost: tokio_util::sync::CancellationToken,
}

#[async_trait]
impl ChunkSource for LosesLock {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        self.chunks.next_chunk().await
    }
    fn may_commit(&self) -> bool {
        !self.lost.is_cancelled()
    }
    fn lock_lost(&self) -> tokio_util::sync::CancellationToken {
        self.lost.clone()
    }
}

fn hung_store(budget_wait: Duration) -> (Arc<GatedPuts>, MemoryState, MultipartStore) {
    let objects = GatedPuts::new();
    objects.hang_parts.store(true, Ordering::SeqCst);
    let state = MemoryState::new();
    let store = MultipartStore::new(
        objects.clone(),
        Arc::new(state.clone()),
        store_config(budget_wait),
        BufferBudget::new(4 * P),
    )
    .unwrap();
    (objects, state, store)
}

/// A hung object store cannot hold a PATCH (and its lock) for longer than the read timeout
/// plus the part's size at 4 MiB/s: it answers 503 and keeps the offset it had.
#[tokio::test]
async fn a_part_object_storage_never_stores_ends_the_patch_within_its_bound() {
    let (objects, state, store) = hung_store(Duration::from_millis(200));
    let bound = tusk_multipart::part_wait(P, &store_config(Duration::from_millis(200)));
    assert_eq!(
        bound,
        Duration::from_millis(2200),
        "200 ms + 5 MiB at 4 MiB/s"
    );
    let data = pattern(2 * P, 11);
    let id = create(&store, Some(2 * P)).await;
    let started = std::time::Instant::now();
    let mut src = ChunkList::split(&data[..(P + MIB) as usize], 64 * 1024);
    let err = tokio::time::timeout(Duration::from_secs(20), store.write_at(&id, 0, &mut src, 1))
        .await
        .expect("the PATCH ends by itself")
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("resume later"), "{err}");
    assert!(
        took >= bound && took < bound + Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(objects.parts_sent.load(Ordering::SeqCst), 1);
    // Nothing that follows the part that was never stored counts.
    let stored = state.get(&id).await.unwrap();
    assert_eq!((stored.part_count, stored.tail_len), (0, 0));
}

fn store_config(budget_wait: Duration) -> MultipartConfig {
    MultipartConfig {
        budget_wait,
        ..config()
    }
}

/// A PATCH waiting for object storage stops at once when its lock is lost.
#[tokio::test]
async fn a_patch_waiting_for_object_storage_stops_when_its_lock_is_lost() {
    let (objects, state, store) = hung_store(Duration::from_secs(600));
    let data = pattern(2 * P, 12);
    let id = create(&store, Some(2 * P)).await;
    let lost = tokio_util::sync::CancellationToken::new();
    let mut src = LosesLock {
        chunks: ChunkList::split(&data[..(P + MIB) as usize], 64 * 1024),
        lost: lost.clone(),
    };
    let writer = tokio::spawn({
        let (store, id) = (store.clone(), id.clone());
        async move { store.write_at(&id, 0, &mut src, 1).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while objects.parts_sent.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("part 1 reaches object storage");
    lost.cancel();
    let err = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .expect("the PATCH stops once its lock is lost")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LockLost, "{err}");
    let stored = state.get(&id).await.unwrap();
    assert_eq!((stored.part_count, stored.tail_len), (0, 0));
}

/// Finishing waits for object storage no longer than a part does: an upload whose last PUT
/// hangs answers 503 within the bound with every byte kept, and the next request finishes it.
#[tokio::test]
async fn a_finish_object_storage_never_confirms_is_given_up_and_repaired_later() {
    let objects = GatedPuts::new();
    let state = MemoryState::new();
    let store = MultipartStore::new(
        objects.clone(),
        Arc::new(state.clone()),
        store_config(Duration::from_millis(200)),
        BufferBudget::new(4 * P),
    )
    .unwrap();
    let len = MIB;
    let data = pattern(len, 13);
    let id = create(&store, Some(len)).await;
    let mut src = ChunkList::split(&data, 64 * 1024);
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), store.write_at(&id, 0, &mut src, 1))
        .await
        .expect("the PATCH ends by itself")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The bytes are stored (in the tail) and counted, not yet finished.
    let stored = state.get(&id).await.unwrap();
    assert_eq!((stored.tail_len, stored.finished), (len, false));
    // Object storage answers again: the next locked read finishes the upload.
    objects.gate.add_permits(1);
    let info = store.info_locked(&id, 2).await.unwrap();
    assert!(info.is_complete());
    assert_eq!(objects.inner.object(id.as_str()), Some(data));
}

/// Every byte of a finished upload, read through the store as a download does.
async fn download(store: &MultipartStore, id: &UploadId) -> Result<Vec<u8>> {
    use futures_util::StreamExt as _;
    let length = store.info(id).await?.length.unwrap_or_default();
    let mut stream = store.read(id, 0, length).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// A failover of the state store to a replica that missed the last PATCH: the upload's state
/// says unfinished, its multipart upload is completed and gone, its object is whole.
#[tokio::test]
async fn a_state_that_fell_behind_a_finished_upload_is_recovered_from_the_object() {
    let objects = MemoryObjects::new();
    let primary = MemoryState::new();
    let store = node(&objects, Arc::new(primary.clone()), config());
    let data = pattern(2 * P + 1000, 3);
    let id = create(&store, Some(data.len() as u64)).await;
    let first = (P + 10) as usize;
    write(&store, &id, 0, &data[..first]).await;
    // The replica's link drops here: it never sees the rest.
    let replica = primary.snapshot();
    let length = write(&store, &id, first as u64, &data[first..]).await;
    assert_eq!(length, data.len() as u64);
    assert_eq!(objects.object(id.as_str()).unwrap(), data);

    let promoted = node(&objects, Arc::new(replica), config());
    assert_eq!(
        promoted.info_locked(&id, 2).await.unwrap().offset,
        first as u64,
        "the promoted replica's state is behind"
    );
    // The client resumes where that state says: the part it sends finds the multipart upload
    // gone and the object whole.
    let mut body = ChunkList::split(&data[first..], 64 * 1024);
    let err = promoted
        .write_at(&id, first as u64, &mut body, 3)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OffsetMismatch, "{err}");
    let info = promoted.info_locked(&id, 4).await.unwrap();
    assert_eq!(info.offset, data.len() as u64, "recorded finished");
    assert_eq!(download(&promoted, &id).await.unwrap(), data);
    assert_eq!(
        objects.object(id.as_str()).unwrap(),
        data,
        "never rewritten"
    );
}

/// The opposite loss: the state says finished, but the object is gone (deleted outside tusk).
/// A download answers that clearly (410), never with an empty or partial body.
#[tokio::test]
async fn a_finished_upload_whose_object_is_gone_says_so() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let data = pattern(P + 7, 5);
    let id = create(&store, Some(data.len() as u64)).await;
    write(&store, &id, 0, &data).await;
    assert_eq!(download(&store, &id).await.unwrap(), data);
    cluster.objects.delete_object(id.as_str()).await.unwrap();
    let err = download(&store, &id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Gone, "{err}");
    assert!(
        err.to_string().contains("missing from object storage"),
        "{err}"
    );
}

/// A final upload of `partials` (their lengths) on a store with `equal_parts`: its bytes, and
/// the sizes of its object's parts.
async fn concatenated(partials: &[u64], equal_parts: bool) -> (Vec<u8>, Vec<u8>, Vec<u64>) {
    use tusk_core::{Concat, Concatenation};
    let cluster = Cluster::new();
    let store = node(
        &cluster.objects,
        Arc::new(cluster.state.clone()),
        MultipartConfig {
            equal_parts,
            ..config()
        },
    );
    let mut expected = Vec::new();
    let mut infos = Vec::new();
    for (i, len) in partials.iter().enumerate() {
        let data = pattern(*len, i as u8);
        let id = UploadId::generate();
        store
            .create(NewUpload {
                id: id.clone(),
                length: Some(*len),
                metadata: Metadata::default(),
                expires_at: None,
                created_at: None,
                concat: Some(Concat::Partial),
                placement: Default::default(),
            })
            .await
            .unwrap();
        write(&store, &id, 0, &data).await;
        infos.push(store.info(&id).await.unwrap());
        expected.extend(data);
    }
    let id = UploadId::generate();
    store
        .create(NewUpload {
            id: id.clone(),
            length: Some(expected.len() as u64),
            metadata: Metadata::default(),
            expires_at: None,
            created_at: None,
            concat: Some(Concat::Final(infos.iter().map(|i| i.id.clone()).collect())),
            placement: Default::default(),
        })
        .await
        .unwrap();
    let done = store.concatenate(&id, &infos, 1).await.unwrap();
    assert!(done.is_complete());
    let parts = cluster
        .objects
        .part_sizes_of_last_complete(id.as_str())
        .unwrap();
    (
        cluster.objects.object(id.as_str()).unwrap(),
        expected,
        parts,
    )
}

#[tokio::test]
async fn with_equal_parts_a_final_upload_has_parts_of_one_size() {
    let partials = [6 * MIB, MIB + 3, 12 * MIB, 2 * MIB];
    let (stored, expected, parts) = concatenated(&partials, true).await;
    assert!(stored == expected, "the final's bytes differ");
    let (last, full) = parts.split_last().unwrap();
    assert!(full.iter().all(|&s| s == P), "{parts:?}");
    assert!(*last <= P);
    // Without it, parts follow the partials (what S3 itself accepts).
    let (stored, expected, parts) = concatenated(&partials, false).await;
    assert!(stored == expected);
    assert!(parts.windows(2).any(|w| w[0] != w[1]), "{parts:?}");
}

#[tokio::test]
async fn objects_present_themselves_as_tusk_s_downloads_do() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let metadata =
        Metadata::from_pairs([("filetype", "image/jpeg"), ("filename", "fire.jpg")]).unwrap();
    // One small enough for a single PUT, one assembled from parts.
    for len in [10, 2 * P + 1] {
        let id = UploadId::generate();
        store
            .create(NewUpload {
                id: id.clone(),
                length: Some(len),
                metadata: metadata.clone(),
                expires_at: None,
                created_at: None,
                concat: None,
                placement: Default::default(),
            })
            .await
            .unwrap();
        write(&store, &id, 0, &pattern(len, 9)).await;
        let attributes = cluster.objects.attributes(id.as_str()).unwrap();
        assert_eq!(
            attributes,
            ObjectAttributes::of_upload(&metadata, &Placement::default()),
            "{len}"
        );
        assert_eq!(attributes.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            attributes.content_disposition.as_deref(),
            Some("inline; filename=\"fire.jpg\"; filename*=UTF-8''fire.jpg")
        );
        let info = cluster.objects.attributes(&format!("{id}.info")).unwrap();
        assert_eq!(info.content_type.as_deref(), Some("application/json"));
    }
}

/// A pre-create hook's placement: every object operation of the upload (parts, a single PUT,
/// download, concatenation's sources and final, termination) uses its key under the chosen
/// prefix, and the object is created with the chosen class and encryption.
#[tokio::test]
async fn placed_uploads_live_under_their_prefix_for_their_whole_life() {
    use tusk_core::{Concat, Concatenation};
    let cluster = Cluster::new();
    let store = cluster.node();
    let placed = |prefix: &str| Placement {
        key_prefix: Some(prefix.to_owned()),
        storage_class: Some("STANDARD_IA".to_owned()),
        server_side_encryption: Some("aws:kms".to_owned()),
        sse_kms_key_id: Some("key-1".to_owned()),
    };
    let create = |len: u64, concat: Option<Concat>, placement: Placement| {
        let store = store.clone();
        async move {
            let id = UploadId::generate();
            store
                .create(NewUpload {
                    id: id.clone(),
                    length: Some(len),
                    metadata: Metadata::default(),
                    expires_at: None,
                    created_at: None,
                    concat,
                    placement,
                })
                .await
                .unwrap();
            id
        }
    };
    // One of parts and a tail, one small enough for a single PUT: both partials.
    let mut expected = Vec::new();
    let mut infos = Vec::new();
    for (len, prefix) in [(2 * P + 7, "tenant-a/2026/"), (100, "tenant-b/")] {
        let id = create(len, Some(Concat::Partial), placed(prefix)).await;
        let data = pattern(len, len as u8);
        write(&store, &id, 0, &data).await;
        let key = format!("{prefix}{id}");
        assert_eq!(cluster.objects.object(&key).as_deref(), Some(&data[..]));
        assert_eq!(
            cluster.objects.object(id.as_str()),
            None,
            "nothing at the plain key"
        );
        let attributes = cluster.objects.attributes(&key).unwrap();
        assert_eq!(attributes.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(
            attributes.server_side_encryption.as_deref(),
            Some("aws:kms")
        );
        assert_eq!(attributes.sse_kms_key_id.as_deref(), Some("key-1"));
        assert_eq!(download(&store, &id).await.unwrap(), data);
        // Its record stays where tusk's records are, and says where the data is.
        let record = cluster.objects.object(&format!("{id}.info")).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(record["key"], key.as_str());
        let info = store.info(&id).await.unwrap();
        assert_eq!(info.placement, placed(prefix));
        infos.push(info);
        expected.extend(data);
    }
    // The final is placed by its own hook; its parts come from the partials' placed objects.
    let final_id = create(
        expected.len() as u64,
        Some(Concat::Final(infos.iter().map(|i| i.id.clone()).collect())),
        placed("finals/"),
    )
    .await;
    store.concatenate(&final_id, &infos, 1).await.unwrap();
    let final_key = format!("finals/{final_id}");
    assert!(cluster.objects.object(&final_key).unwrap() == expected);
    assert_eq!(download(&store, &final_id).await.unwrap(), expected);
    // Termination removes the placed object and the record.
    store.terminate(&final_id, 2).await.unwrap();
    assert_eq!(cluster.objects.object(&final_key), None);
    assert_eq!(cluster.objects.object(&format!("{final_id}.info")), None);
}

/// Write `data` from offset 0 as PATCHes of `piece` bytes, the `i`th under fence `fence(i)`,
/// each under a lock its node keeps after it but the first (as a node keeps its locks from its
/// second request on an upload).
async fn write_pieces(
    store: &MultipartStore,
    id: &UploadId,
    data: &[u8],
    piece: usize,
    fence: impl Fn(usize) -> u64,
) {
    let mut offset = 0;
    for (i, bytes) in data.chunks(piece).enumerate() {
        let mut src = ChunkList::split(bytes, 64 * 1024);
        if i > 0 {
            src = src.under_kept_lock();
        }
        offset = store
            .write_at(id, offset, &mut src, fence(i))
            .await
            .expect("write")
            .offset;
    }
    assert_eq!(offset, data.len() as u64);
}

/// Small PATCHes under one lock (a lock the node keeps between requests keeps its token): the
/// PATCH that fills a part takes the tail from the node's memory, reading back one fenced byte
/// instead of the part's other bytes. The node keeps its lock from its second request on, so
/// that one reads its small tail in to start the copy. Under a new lock for each PATCH, none
/// kept, every fill reads the tail back. The objects are byte-exact either way.
#[tokio::test]
async fn a_tail_this_node_wrote_under_the_same_lock_is_not_read_back() {
    let cluster = Cluster::new();
    let store = cluster.node();
    let len = 2 * P + 3 * MIB;
    let data = pattern(len, 21);
    let piece = 256 * 1024;

    let same_lock = create(&store, Some(len)).await;
    write_pieces(
        &store,
        &same_lock,
        &data,
        piece,
        |i| if i == 0 { 1 } else { 2 },
    )
    .await;
    assert_eq!(
        cluster.objects.object(same_lock.as_str()),
        Some(data.clone())
    );
    assert_equal_parts(&cluster.objects, &same_lock, P);
    let read = cluster.state.tail_bytes_read();
    assert!(
        read <= piece as u64 + 3,
        "{read} tail bytes read back under one lock"
    );

    let new_locks = create(&store, Some(len)).await;
    let mut offset = 0;
    for (i, bytes) in data.chunks(piece).enumerate() {
        let mut src = ChunkList::split(bytes, 64 * 1024);
        offset = store
            .write_at(&new_locks, offset, &mut src, 10 + i as u64)
            .await
            .unwrap()
            .offset;
    }
    assert_eq!(cluster.objects.object(new_locks.as_str()), Some(data));
    let read = cluster.state.tail_bytes_read() - read;
    // Two fills of a part (the rest of it from the tail), and the last part's whole tail,
    // which finishing reads back.
    let expected = 2 * (P - piece as u64) + 3 * MIB;
    assert_eq!(read, expected, "tail bytes read back under new locks");
}

/// The node's copy of a tail is used only for the state it was written to: after a failover
/// to a state store that missed the last append (same lock, so the same token), the client
/// resends from the older offset, with other bytes, and those are what the object holds.
#[tokio::test]
async fn a_tail_copy_the_state_store_lost_is_not_used() {
    let objects = MemoryObjects::new();
    let primary = MemoryState::new();
    let budget = BufferBudget::new(64 * MIB);
    let on = |state: &MemoryState| {
        MultipartStore::new(
            Arc::new(objects.clone()),
            Arc::new(state.clone()),
            config(),
            budget.clone(),
        )
        .unwrap()
    };
    let len = P + MIB;
    let first = pattern(len, 31);
    let resent = pattern(len, 32);
    let store = on(&primary);
    let id = create(&store, Some(len)).await;
    // Two PATCHes: the second, under a kept lock, reads the first's tail in and keeps a copy.
    let mib = MIB as usize;
    write_pieces(&store, &id, &first[..mib], mib / 2, |_| 1).await;
    let replica = primary.snapshot();
    // Acknowledged by the primary only: the node's copy of the tail has it.
    let mut src = ChunkList::split(&first[mib..2 * mib], 64 * 1024).under_kept_lock();
    store.write_at(&id, MIB, &mut src, 1).await.unwrap();

    let promoted = on(&replica);
    assert_eq!(promoted.info(&id).await.unwrap().offset, MIB);
    let mut expected = first[..mib].to_vec();
    expected.extend_from_slice(&resent[mib..]);
    let mut src = ChunkList::split(&expected[mib..], 64 * 1024).under_kept_lock();
    let info = promoted.write_at(&id, MIB, &mut src, 1).await.unwrap();
    assert_eq!(info.offset, len);
    assert_eq!(objects.object(id.as_str()), Some(expected));
}

/// Copies of tails give their budget back to any reservation that finds the budget short: a
/// body that needs a whole part does not wait for them.
#[tokio::test]
async fn tail_copies_give_their_budget_back_on_demand() {
    let objects = MemoryObjects::new();
    let budget = BufferBudget::new(P);
    let store = MultipartStore::new(
        Arc::new(objects.clone()),
        Arc::new(MemoryState::new()),
        // Without the copies given back, the second body would wait this long and give up.
        store_config(Duration::from_secs(600)),
        budget.clone(),
    )
    .unwrap();
    let kept = create(&store, Some(2 * P)).await;
    let tail = pattern(3 * MIB, 41);
    write_pieces(&store, &kept, &tail, MIB as usize, |_| 1).await;
    assert_eq!(
        budget.available(),
        P - 3 * MIB,
        "the tail's copy holds its bytes"
    );

    let whole = pattern(P, 42);
    let other = create(&store, Some(P)).await;
    let wrote = tokio::time::timeout(
        Duration::from_secs(10),
        write_pieces(&store, &other, &whole, P as usize, |_| 1),
    )
    .await;
    assert!(
        wrote.is_ok(),
        "a body waited for the budget tail copies hold"
    );
    assert_eq!(objects.object(other.as_str()), Some(whole));
    // The first upload goes on from its stored tail.
    let rest = pattern(2 * P, 41);
    let mut src = ChunkList::split(&rest[3 * MIB as usize..], 64 * 1024);
    store.write_at(&kept, 3 * MIB, &mut src, 1).await.unwrap();
    let mut expected = tail;
    expected.extend_from_slice(&rest[3 * MIB as usize..]);
    assert_eq!(objects.object(kept.as_str()), Some(expected));
    assert_eq!(budget.available(), P);
}

/// Object storage that takes a part's bytes as they arrive (S3 with unsigned bodies).
fn streaming_cluster() -> Cluster {
    let cluster = Cluster::new();
    cluster.objects.set_streams_parts(true);
    cluster
}

/// Small PATCHes under a lock the node keeps: each part is streamed to object storage while
/// the PATCHes fill it, whether a part starts at a PATCH's first byte or in its middle, the
/// last, shorter one too, and the objects are byte-exact in equal parts.
#[tokio::test]
async fn small_patches_under_a_kept_lock_stream_their_parts_while_they_fill() {
    for (seed, piece) in [(51, 256 * 1024), (52, 300 * 1024 + 7)] {
        let cluster = streaming_cluster();
        let store = cluster.node();
        let len = 2 * P + 3 * MIB;
        let data = pattern(len, seed);
        let id = create(&store, Some(len)).await;
        write_pieces(&store, &id, &data, piece, |_| 1).await;
        assert_eq!(cluster.objects.object(id.as_str()), Some(data));
        assert_equal_parts(&cluster.objects, &id, P);
        assert_eq!(
            cluster.objects.streamed_parts(),
            3,
            "parts streamed, {piece}-byte PATCHes"
        );
        assert_eq!(cluster.objects.pending_multiparts(), 0);
    }
}

/// A streamed part that object storage does not store is sent again whole from the buffer.
#[tokio::test]
async fn a_streamed_part_object_storage_refuses_is_sent_whole() {
    let cluster = streaming_cluster();
    cluster.objects.set_streamed_parts_fail(true);
    let store = cluster.node();
    let len = 2 * P + MIB;
    let data = pattern(len, 53);
    let id = create(&store, Some(len)).await;
    write_pieces(&store, &id, &data, 256 * 1024, |_| 1).await;
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
    assert_equal_parts(&cluster.objects, &id, P);
    assert_eq!(cluster.objects.streamed_parts(), 0);
}

/// A body under a checksum commits nothing before its end, so it sends no part early either:
/// the part streamed so far is dropped, and a refused body stores nothing of it.
#[tokio::test]
async fn a_body_under_a_checksum_does_not_finish_a_streamed_part() {
    let cluster = streaming_cluster();
    let store = cluster.node();
    let len = 2 * P;
    let data = pattern(len, 54);
    let id = create(&store, Some(len)).await;
    let mib = MIB as usize;
    write_pieces(&store, &id, &data[..mib], mib / 4, |_| 1).await;
    let mut refused = Refused(ChunkList::split(&data[mib..2 * P as usize], 64 * 1024));
    let info = store.write_at(&id, MIB, &mut refused, 1).await.unwrap();
    assert_eq!(info.offset, MIB);
    assert_eq!(cluster.objects.streamed_parts(), 0);
    assert_eq!(write(&store, &id, MIB, &data[mib..]).await, len);
    assert_eq!(cluster.objects.object(id.as_str()), Some(data));
}

/// A holder that lost its lock completes no streamed part: the part's last bytes go out only
/// after the fenced read a full part always makes, and the upload is cut off with the request.
/// The new holder's bytes are what the object holds.
#[tokio::test]
async fn a_holder_that_lost_its_lock_completes_no_streamed_part() {
    let cluster = streaming_cluster();
    let store = cluster.node();
    let len = 2 * P;
    let data = pattern(len, 55);
    let id = create(&store, Some(len)).await;
    let (quarter, upto) = (MIB as usize / 4, (P - MIB) as usize);
    // PATCHes of a quarter MiB under token 7, kept: part 1 is being streamed, all but its
    // last MiB in. The stale body's last piece (half a MiB) would fit the stream's queue.
    write_pieces(&store, &id, &data[..upto], quarter, |_| 7).await;

    let half = upto + 2 * quarter;
    refused_after_takeover(
        &store,
        &id,
        &data[upto..half],
        &data[half..P as usize],
        7,
        8,
    )
    .await;
    assert_eq!(
        cluster.objects.streamed_parts(),
        0,
        "a stale part was stored"
    );

    // The new holder resends from the committed offset, other bytes this time.
    let resent = pattern(len, 56);
    let mut expected = data[..upto].to_vec();
    expected.extend_from_slice(&resent[upto..]);
    let mut src = ChunkList::split(&expected[upto..], 64 * 1024);
    let info = store.write_at(&id, upto as u64, &mut src, 8).await.unwrap();
    assert_eq!(info.offset, len);
    assert_eq!(cluster.objects.object(id.as_str()), Some(expected));
}

/// The upload's last part, shorter than a full one, is streamed too, and its last bytes go out
/// only after the tail's fenced commit: a holder that lost its lock completes neither the part
/// nor the upload.
#[tokio::test]
async fn a_holder_that_lost_its_lock_completes_no_streamed_last_part() {
    let cluster = streaming_cluster();
    let store = cluster.node();
    // A last part of 1 MiB: the stale body's last piece (half of it) fits the stream's queue.
    let len = P + MIB;
    let data = pattern(len, 57);
    let id = create(&store, Some(len)).await;
    let (p, quarter) = (P as usize, MIB as usize / 4);
    // Part 1 streamed and stored; the last part open with a quarter MiB, being streamed.
    write_pieces(&store, &id, &data[..p + quarter], quarter, |_| 7).await;
    assert_eq!(cluster.objects.streamed_parts(), 1);

    let (first, rest) = (
        &data[p + quarter..p + 2 * quarter],
        &data[p + 2 * quarter..],
    );
    refused_after_takeover(&store, &id, first, rest, 7, 8).await;
    assert_eq!(
        cluster.objects.streamed_parts(),
        1,
        "a stale last part was stored"
    );
    assert_eq!(cluster.objects.object(id.as_str()), None);

    let resent = pattern(len, 58);
    let mut expected = data[..p + quarter].to_vec();
    expected.extend_from_slice(&resent[p + quarter..]);
    let mut src = ChunkList::split(&expected[p + quarter..], 64 * 1024);
    let info = store
        .write_at(&id, (p + quarter) as u64, &mut src, 8)
        .await
        .unwrap();
    assert_eq!(info.offset, len);
    assert_eq!(cluster.objects.object(id.as_str()), Some(expected));
}
