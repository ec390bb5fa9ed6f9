//! The conformance suite every [`ObjectStore`] must pass, with S3's multipart semantics.
//!
//! Keys are fresh upload ids, so several runs (and several backends) can share one bucket.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tusk_core::{ErrorKind, ObjectAttributes, ObjectStore, UploadId};

/// S3's minimum size for every part but the last.
const MIN_PART: usize = 5 * 1024 * 1024;

/// Reads a whole object back, bypassing the store under test, so the suite can check the bytes
/// it assembled. Each backend's tests implement it with their own client.
#[async_trait]
pub trait ReadObject: Send + Sync {
    /// The bytes stored under `key` (relative, as given to the store). Panics if there are none.
    async fn read(&self, key: &str) -> Vec<u8>;
}

/// Run every check. Panics on the first failure, naming it.
pub async fn run(objects: &dyn ObjectStore, read: &dyn ReadObject) {
    full_parts_and_a_short_last_part_assemble_byte_exact(objects, read).await;
    reuploading_a_part_replaces_it(objects, read).await;
    short_non_last_part_is_refused_and_upload_stays_completable(objects, read).await;
    second_complete_is_not_found_or_idempotent(objects, read).await;
    complete_of_unknown_multipart_fails(objects).await;
    upload_part_after_abort_fails(objects).await;
    abort_twice_succeeds(objects).await;
    whole_objects_round_trip(objects, read).await;
    missing_object_has_no_size_and_deletes(objects).await;
    ranges_of_an_object_stream_back(objects).await;
}

/// `len` bytes whose pattern depends on `seed` and does not repeat every 256 bytes, so a part
/// placed at the wrong offset or in the wrong order shows.
fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_mul(7).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

fn concat(parts: &[&Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

/// Compare object bytes without printing megabytes on failure.
fn assert_same_bytes(check: &str, actual: &[u8], expected: &[u8]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{check}: object is {} bytes, expected {}",
        actual.len(),
        expected.len()
    );
    if let Some(at) = actual.iter().zip(expected).position(|(a, e)| a != e) {
        panic!("{check}: object differs from what was uploaded at byte {at}");
    }
}

fn fresh_key() -> String {
    UploadId::generate().to_string()
}

async fn create(objects: &dyn ObjectStore, check: &str, key: &str) -> String {
    objects
        .create_multipart(key, &ObjectAttributes::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: create_multipart: {e}"))
}

async fn upload(
    objects: &dyn ObjectStore,
    check: &str,
    key: &str,
    id: &str,
    number: u32,
    body: &Bytes,
) -> String {
    objects
        .upload_part(key, id, number, body.clone())
        .await
        .unwrap_or_else(|e| panic!("{check}: upload_part {number}: {e}"))
}

async fn complete(objects: &dyn ObjectStore, check: &str, key: &str, id: &str, etags: &[String]) {
    objects
        .complete_multipart(key, id, etags)
        .await
        .unwrap_or_else(|e| panic!("{check}: complete_multipart: {e}"));
}

async fn delete(objects: &dyn ObjectStore, check: &str, key: &str) {
    objects
        .delete_object(key)
        .await
        .unwrap_or_else(|e| panic!("{check}: delete_object: {e}"));
}

async fn full_parts_and_a_short_last_part_assemble_byte_exact(
    objects: &dyn ObjectStore,
    read: &dyn ReadObject,
) {
    let check = "full_parts_and_a_short_last_part_assemble_byte_exact";
    let key = fresh_key();
    let parts = [pattern(MIN_PART, 1), pattern(MIN_PART, 2), pattern(1, 3)];
    let id = create(objects, check, &key).await;
    let mut etags = Vec::new();
    for (n, body) in (1..).zip(&parts) {
        etags.push(upload(objects, check, &key, &id, n, body).await);
    }
    complete(objects, check, &key, &id, &etags).await;

    let size = objects
        .object_size(&key)
        .await
        .unwrap_or_else(|e| panic!("{check}: object_size: {e}"));
    assert_eq!(size, Some(2 * MIN_PART as u64 + 1), "{check}: object_size");
    let expected = concat(&[&parts[0], &parts[1], &parts[2]]);
    assert_same_bytes(check, &read.read(&key).await, &expected);

    // The upload is gone once completed; aborting it (a crash-recovery path) must still succeed.
    objects
        .abort_multipart(&key, &id)
        .await
        .unwrap_or_else(|e| panic!("{check}: abort after complete: {e}"));
    delete(objects, check, &key).await;
}

async fn reuploading_a_part_replaces_it(objects: &dyn ObjectStore, read: &dyn ReadObject) {
    let check = "reuploading_a_part_replaces_it";
    let key = fresh_key();
    let (old, new, last) = (pattern(MIN_PART, 10), pattern(MIN_PART, 11), pattern(7, 12));
    let id = create(objects, check, &key).await;
    let old_etag = upload(objects, check, &key, &id, 1, &old).await;
    let new_etag = upload(objects, check, &key, &id, 1, &new).await;
    assert_ne!(old_etag, new_etag, "{check}: different bytes, same ETag");
    let last_etag = upload(objects, check, &key, &id, 2, &last).await;

    let err = objects
        .complete_multipart(&key, &id, &[old_etag, last_etag.clone()])
        .await
        .expect_err(&format!("{check}: complete with the replaced part's ETag"));
    assert_eq!(
        err.kind(),
        ErrorKind::Invalid,
        "{check}: complete with a stale ETag: {err}"
    );

    complete(objects, check, &key, &id, &[new_etag, last_etag]).await;
    assert_same_bytes(check, &read.read(&key).await, &concat(&[&new, &last]));
    delete(objects, check, &key).await;
}

async fn short_non_last_part_is_refused_and_upload_stays_completable(
    objects: &dyn ObjectStore,
    read: &dyn ReadObject,
) {
    let check = "short_non_last_part_is_refused_and_upload_stays_completable";
    let key = fresh_key();
    let (short, last) = (pattern(1024 * 1024, 20), pattern(1, 21));
    let id = create(objects, check, &key).await;
    let short_etag = upload(objects, check, &key, &id, 1, &short).await;
    let last_etag = upload(objects, check, &key, &id, 2, &last).await;

    let err = objects
        .complete_multipart(&key, &id, &[short_etag, last_etag.clone()])
        .await
        .expect_err(&format!("{check}: complete with a 1 MiB first part"));
    assert_eq!(err.kind(), ErrorKind::Invalid, "{check}: {err}");
    assert!(
        err.message().contains("EntityTooSmall"),
        "{check}: message does not name EntityTooSmall: {err}"
    );
    let size = objects
        .object_size(&key)
        .await
        .unwrap_or_else(|e| panic!("{check}: object_size: {e}"));
    assert_eq!(size, None, "{check}: a refused complete left an object");

    let full = pattern(MIN_PART, 22);
    let full_etag = upload(objects, check, &key, &id, 1, &full).await;
    complete(objects, check, &key, &id, &[full_etag, last_etag]).await;
    assert_same_bytes(check, &read.read(&key).await, &concat(&[&full, &last]));
    delete(objects, check, &key).await;
}

async fn second_complete_is_not_found_or_idempotent(
    objects: &dyn ObjectStore,
    read: &dyn ReadObject,
) {
    let check = "second_complete_is_not_found_or_idempotent";
    let key = fresh_key();
    let body = pattern(10, 30);
    let id = create(objects, check, &key).await;
    let etag = upload(objects, check, &key, &id, 1, &body).await;
    let etags = [etag];
    complete(objects, check, &key, &id, &etags).await;
    // The retry after a crash between Complete and the state update. The in-memory store says
    // NotFound (the upload is gone); S3 and moto answer 200 again while the object it made
    // still exists. Either way the object must be intact.
    match objects.complete_multipart(&key, &id, &etags).await {
        Ok(()) => {}
        Err(err) => assert_eq!(err.kind(), ErrorKind::NotFound, "{check}: {err}"),
    }
    assert_same_bytes(check, &read.read(&key).await, &body);
    delete(objects, check, &key).await;
}

async fn complete_of_unknown_multipart_fails(objects: &dyn ObjectStore) {
    let check = "complete_of_unknown_multipart_fails";
    let key = fresh_key();
    let err = objects
        .complete_multipart(&key, &fresh_key(), &["\"0\"".to_owned()])
        .await
        .expect_err(&format!("{check}: complete of a made-up id"));
    assert_not_found_or_moto_500(check, &err);
}

/// S3 answers `NoSuchUpload` (404) for an unknown upload id. moto 5.1 answers UploadPart and
/// CompleteMultipartUpload for one with a bare 500, which a backend cannot honestly call
/// NotFound, so `Backend` passes too; anything else (Invalid, Unavailable, ...) fails.
fn assert_not_found_or_moto_500(check: &str, err: &tusk_core::Error) {
    assert!(
        matches!(err.kind(), ErrorKind::NotFound | ErrorKind::Backend),
        "{check}: expected NotFound (or Backend for moto's 500), got {:?}: {err}",
        err.kind()
    );
}

async fn upload_part_after_abort_fails(objects: &dyn ObjectStore) {
    let check = "upload_part_after_abort_fails";
    let key = fresh_key();
    let id = create(objects, check, &key).await;
    upload(objects, check, &key, &id, 1, &pattern(10, 40)).await;
    objects
        .abort_multipart(&key, &id)
        .await
        .unwrap_or_else(|e| panic!("{check}: abort: {e}"));
    let err = objects
        .upload_part(&key, &id, 2, pattern(10, 41))
        .await
        .expect_err(&format!("{check}: upload_part after abort"));
    assert_not_found_or_moto_500(check, &err);
    let size = objects
        .object_size(&key)
        .await
        .unwrap_or_else(|e| panic!("{check}: object_size: {e}"));
    assert_eq!(size, None, "{check}: an aborted upload left an object");
}

async fn abort_twice_succeeds(objects: &dyn ObjectStore) {
    let check = "abort_twice_succeeds";
    let key = fresh_key();
    let id = create(objects, check, &key).await;
    for attempt in ["first", "second"] {
        objects
            .abort_multipart(&key, &id)
            .await
            .unwrap_or_else(|e| panic!("{check}: {attempt} abort: {e}"));
    }
    objects
        .abort_multipart(&key, &fresh_key())
        .await
        .unwrap_or_else(|e| panic!("{check}: abort of a made-up id: {e}"));
}

async fn whole_objects_round_trip(objects: &dyn ObjectStore, read: &dyn ReadObject) {
    let check = "whole_objects_round_trip";
    let key = format!("{}.info", fresh_key());
    let size = |key: String| async move {
        objects
            .object_size(&key)
            .await
            .unwrap_or_else(|e| panic!("{check}: object_size: {e}"))
    };

    let first = Bytes::from_static(br#"{"length":42,"metadata":{}}"#);
    objects
        .put_object(&key, first.clone(), &ObjectAttributes::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: put_object: {e}"));
    assert_eq!(size(key.clone()).await, Some(first.len() as u64), "{check}");
    assert_same_bytes(check, &read.read(&key).await, &first);

    let second = Bytes::from_static(br#"{"length":42,"offset":42}"#);
    objects
        .put_object(&key, second.clone(), &ObjectAttributes::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: put_object over an object: {e}"));
    assert_eq!(
        size(key.clone()).await,
        Some(second.len() as u64),
        "{check}: after overwrite"
    );
    assert_same_bytes(check, &read.read(&key).await, &second);

    let empty = format!("{}.empty", fresh_key());
    objects
        .put_object(&empty, Bytes::new(), &ObjectAttributes::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: put_object of 0 bytes: {e}"));
    assert_eq!(size(empty.clone()).await, Some(0), "{check}: empty object");

    for k in [&key, &empty] {
        delete(objects, check, k).await;
        assert_eq!(size(k.clone()).await, None, "{check}: after delete");
    }
}

async fn missing_object_has_no_size_and_deletes(objects: &dyn ObjectStore) {
    let check = "missing_object_has_no_size_and_deletes";
    let key = fresh_key();
    let size = objects
        .object_size(&key)
        .await
        .unwrap_or_else(|e| panic!("{check}: object_size: {e}"));
    assert_eq!(size, None, "{check}");
    delete(objects, check, &key).await;
}

async fn ranges_of_an_object_stream_back(objects: &dyn ObjectStore) {
    let check = "ranges_of_an_object_stream_back";
    let key = fresh_key();
    let data = pattern(300_000, 3);
    objects
        .put_object(&key, data.clone(), &ObjectAttributes::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: put_object: {e}"));
    for (start, end) in [
        (0, 300_000),
        (0, 1),
        (299_999, 300_000),
        (1_000, 200_000),
        (5, 5),
    ] {
        let mut stream = objects
            .get_object(&key, start, end)
            .await
            .unwrap_or_else(|e| panic!("{check}: get_object {start}..{end}: {e}"));
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{check}: chunk: {e}")));
        }
        assert!(
            got == data[start as usize..end as usize],
            "{check}: bytes {start}..{end} differ ({} bytes read)",
            got.len()
        );
    }
    let missing = objects.get_object(&fresh_key(), 0, 1).await.err();
    assert_eq!(
        missing.map(|e| e.kind()),
        Some(ErrorKind::NotFound),
        "{check}: a missing object"
    );
    objects
        .delete_object(&key)
        .await
        .unwrap_or_else(|e| panic!("{check}: delete_object: {e}"));
}
