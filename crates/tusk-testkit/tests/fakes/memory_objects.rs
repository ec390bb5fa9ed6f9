//! The object-store conformance suite against the in-memory fake, plus its test helpers.

use bytes::Bytes;
use tusk_core::{ErrorKind, ObjectAttributes, ObjectStore};
use tusk_testkit::{MemoryObjects, object_suite};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn memory_objects_pass_the_object_suite() {
    let objects = MemoryObjects::new();
    object_suite::run(&objects, &objects).await;
    assert_eq!(
        objects.pending_multiparts(),
        0,
        "the suite leaves no upload"
    );
}

#[tokio::test]
async fn part_sizes_and_pending_uploads_are_visible() {
    let objects = MemoryObjects::new();
    let id = objects
        .create_multipart("a", &ObjectAttributes::default())
        .await
        .expect("create");
    assert_eq!(objects.pending_multiparts(), 1);
    let e1 = objects
        .upload_part("a", &id, 1, Bytes::from(vec![1; 5 * MIB]))
        .await
        .expect("part 1");
    let e2 = objects
        .upload_part("a", &id, 2, Bytes::from_static(b"xyz"))
        .await
        .expect("part 2");
    objects
        .complete_multipart("a", &id, &[e1, e2])
        .await
        .expect("complete");
    assert_eq!(objects.pending_multiparts(), 0);
    assert_eq!(
        objects.part_sizes_of_last_complete("a"),
        Some(vec![5 * MIB as u64, 3])
    );
    assert_eq!(objects.object("a").map(|d| d.len()), Some(5 * MIB + 3));

    objects
        .put_object(
            "a",
            Bytes::from_static(b"whole"),
            &ObjectAttributes::default(),
        )
        .await
        .expect("put");
    assert_eq!(objects.part_sizes_of_last_complete("a"), None);
    assert_eq!(objects.object("a"), Some(b"whole".to_vec()));
}

#[tokio::test]
async fn clones_share_state_and_ids_are_random() {
    let a = MemoryObjects::new();
    let b = a.clone();
    let id1 = a
        .create_multipart("k", &ObjectAttributes::default())
        .await
        .expect("create");
    let id2 = b
        .create_multipart("k", &ObjectAttributes::default())
        .await
        .expect("create");
    assert_ne!(id1, id2);
    assert_eq!(a.pending_multiparts(), 2);
    b.abort_multipart("k", &id1).await.expect("abort");
    assert_eq!(a.pending_multiparts(), 1);
}

#[tokio::test]
async fn unknown_or_foreign_multipart_is_not_found() {
    let objects = MemoryObjects::new();
    let id = objects
        .create_multipart("mine", &ObjectAttributes::default())
        .await
        .expect("create");
    let err = objects
        .upload_part("other", &id, 1, Bytes::from_static(b"x"))
        .await
        .expect_err("part under another key");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = objects
        .upload_part("mine", "nope", 1, Bytes::from_static(b"x"))
        .await
        .expect_err("unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = objects
        .complete_multipart("mine", "nope", &["\"0\"".to_owned()])
        .await
        .expect_err("complete of an unknown id");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = objects
        .upload_part("mine", &id, 0, Bytes::from_static(b"x"))
        .await
        .expect_err("part 0");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = objects
        .complete_multipart("mine", &id, &[])
        .await
        .expect_err("no parts");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[tokio::test]
async fn unavailable_switch_fails_every_call_until_cleared() {
    let objects = MemoryObjects::new();
    objects
        .put_object("k", Bytes::from_static(b"v"), &ObjectAttributes::default())
        .await
        .expect("put");
    objects.set_unavailable(true);
    let kinds = [
        objects
            .create_multipart("k", &ObjectAttributes::default())
            .await
            .map(drop),
        objects
            .upload_part("k", "id", 1, Bytes::new())
            .await
            .map(drop),
        objects.complete_multipart("k", "id", &[]).await,
        objects.abort_multipart("k", "id").await,
        objects
            .put_object("k", Bytes::new(), &ObjectAttributes::default())
            .await,
        objects.object_size("k").await.map(drop),
        objects.delete_object("k").await,
    ]
    .map(|r| r.expect_err("call while unavailable").kind());
    assert!(
        kinds.iter().all(|k| *k == ErrorKind::Unavailable),
        "{kinds:?}"
    );
    objects.set_unavailable(false);
    assert_eq!(objects.object_size("k").await.expect("size"), Some(1));
}

#[tokio::test]
async fn second_complete_is_not_found() {
    let objects = MemoryObjects::new();
    let id = objects
        .create_multipart("k", &ObjectAttributes::default())
        .await
        .expect("create");
    let etag = objects
        .upload_part("k", &id, 1, Bytes::from_static(b"x"))
        .await
        .expect("part");
    let etags = [etag];
    objects
        .complete_multipart("k", &id, &etags)
        .await
        .expect("complete");
    let err = objects
        .complete_multipart("k", &id, &etags)
        .await
        .expect_err("second complete");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(objects.object("k"), Some(b"x".to_vec()));
}
