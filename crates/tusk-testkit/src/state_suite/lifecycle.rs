//! An upload's life in the store: created and read back field for field, an id taken once,
//! unknown ids not found, the multipart id and a deferred length set once, finish and delete.

use bytes::Bytes;
use tusk_core::{
    Commit, ErrorKind, Metadata, Placement, StateStore, TailChange, UploadId, UploadState,
};

use super::{P, append, assert_kind, assert_stored, binary_metadata, create, etag, new_state};

pub(super) async fn create_then_get_round_trips_every_field(state: &dyn StateStore) {
    let known = new_state(Some(123_456_789_012), binary_metadata());
    state.create(&known).await.expect("create with length");
    assert_eq!(state.get(&known.id).await.expect("get"), known);
    assert_eq!(state.load(&known.id, 1).await.expect("load"), known);
    assert!(state.read_tail(&known.id).await.expect("tail").is_empty());

    let deferred = UploadState {
        part_size: 16 * 1024 * 1024,
        ..new_state(None, Metadata::default())
    };
    state.create(&deferred).await.expect("create deferred");
    let got = state.get(&deferred.id).await.expect("get deferred");
    assert_eq!(got, deferred);
    assert_eq!(got.length, None);
    assert_eq!(got.multipart_id, None);
    assert_eq!(got.offset(), 0);

    // Where a pre-create hook placed the object comes back as it was given.
    let placed = UploadState {
        placement: Placement {
            key_prefix: Some("tenant-7/2026/".to_owned()),
            storage_class: Some("GLACIER_IR".to_owned()),
            server_side_encryption: Some("aws:kms".to_owned()),
            sse_kms_key_id: Some("arn:aws:kms:eu-west-1:1:key/k".to_owned()),
        },
        ..new_state(Some(5), Metadata::default())
    };
    state.create(&placed).await.expect("create placed");
    assert_eq!(state.get(&placed.id).await.expect("get placed"), placed);
    assert_eq!(
        state.load(&placed.id, 1).await.expect("load placed"),
        placed
    );
}

pub(super) async fn create_of_an_existing_id_fails(state: &dyn StateStore) {
    let first = create(state, Some(10)).await;
    let second = UploadState {
        length: Some(20),
        metadata: Metadata::default(),
        ..first.clone()
    };
    state
        .create(&second)
        .await
        .expect_err("create of an existing id");
    assert_stored(state, &first, b"", "after a second create").await;

    // Parts and tail come only from commits.
    for (part_count, tail_len) in [(1, 0), (0, 1)] {
        let claims = UploadState {
            part_count,
            tail_len,
            ..new_state(Some(10 * P), Metadata::default())
        };
        assert_kind(
            state.create(&claims).await,
            ErrorKind::Invalid,
            "create with parts or tail bytes",
        );
        assert_kind(
            state.get(&claims.id).await,
            ErrorKind::NotFound,
            "refused create",
        );
    }
}

pub(super) async fn unknown_ids_are_not_found(state: &dyn StateStore) {
    let id = UploadId::generate();
    let nf = ErrorKind::NotFound;
    assert_kind(state.get(&id).await, nf, "get of unknown id");
    assert_kind(state.load(&id, 1).await, nf, "load of unknown id");
    assert_kind(state.read_tail(&id).await, nf, "read_tail of unknown id");
    assert_kind(state.etags(&id).await, nf, "etags of unknown id");
    assert_kind(
        state.set_multipart(&id, 1, "mp").await,
        nf,
        "set_multipart of unknown id",
    );
    assert_kind(
        state.commit(&id, 1, append(0, 0, b"x")).await,
        nf,
        "commit of unknown id",
    );
    assert_kind(
        state.set_length(&id, 1, 5).await,
        nf,
        "set_length of unknown id",
    );
    assert_kind(state.finish(&id, 1).await, nf, "finish of unknown id");
    assert_kind(state.delete(&id, 1).await, nf, "delete of unknown id");
    assert_kind(state.get(&id).await, nf, "get after calls on unknown id");
}

pub(super) async fn multipart_id_is_set_once(state: &dyn StateStore) {
    let mut s = create(state, Some(10)).await;
    state
        .set_multipart(&s.id, 1, "2~mp/upload+id=")
        .await
        .expect("set_multipart");
    s.multipart_id = Some("2~mp/upload+id=".to_owned());
    assert_stored(state, &s, b"", "after set_multipart").await;
    assert_kind(
        state.set_multipart(&s.id, 1, "another").await,
        ErrorKind::Invalid,
        "second set_multipart",
    );
    assert_stored(state, &s, b"", "after second set_multipart").await;
}

pub(super) async fn deferred_length_is_set_once(state: &dyn StateStore) {
    let mut s = create(state, None).await;
    state
        .set_length(&s.id, 1, 3 * P + 7)
        .await
        .expect("set_length");
    s.length = Some(3 * P + 7);
    assert_stored(state, &s, b"", "after set_length").await;
    assert_kind(
        state.set_length(&s.id, 1, 3 * P + 7).await,
        ErrorKind::Invalid,
        "second set_length",
    );
    assert_stored(state, &s, b"", "after second set_length").await;

    let known = create(state, Some(10)).await;
    assert_kind(
        state.set_length(&known.id, 1, 10).await,
        ErrorKind::Invalid,
        "set_length of an upload created with a length",
    );
    assert_stored(state, &known, b"", "after set_length on known length").await;

    // Zero is a length, not "deferred".
    let mut zero = create(state, None).await;
    state
        .set_length(&zero.id, 1, 0)
        .await
        .expect("set_length 0");
    zero.length = Some(0);
    assert_stored(state, &zero, b"", "after set_length 0").await;
}

pub(super) async fn finish_marks_finished_and_drops_the_tail(state: &dyn StateStore) {
    let mut s = create(state, Some(2 * P + 3)).await;
    state.set_multipart(&s.id, 1, "mp").await.expect("mp");
    s = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: vec![etag(1), etag(2)],
                tail: TailChange::Append(Bytes::from_static(b"end")),
            },
        )
        .await
        .expect("commit");
    assert_eq!(s.offset(), 2 * P + 3);
    state.finish(&s.id, 1).await.expect("finish");
    s.finished = true;
    s.tail_len = 0;
    assert_stored(state, &s, b"", "after finish").await;
    assert_eq!(s.part_count, 2);
    assert_eq!(s.multipart_id.as_deref(), Some("mp"));
}

pub(super) async fn delete_removes_state_parts_and_tail(state: &dyn StateStore) {
    let s = create(state, Some(10 * P)).await;
    state
        .commit(
            &s.id,
            5,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: vec![etag(1)],
                tail: TailChange::Append(Bytes::from_static(b"tail")),
            },
        )
        .await
        .expect("commit");
    state.delete(&s.id, 5).await.expect("delete");
    let nf = ErrorKind::NotFound;
    assert_kind(state.get(&s.id).await, nf, "get after delete");
    assert_kind(state.load(&s.id, 6).await, nf, "load after delete");
    assert_kind(state.read_tail(&s.id).await, nf, "read_tail after delete");
    assert_kind(
        state.commit(&s.id, 6, append(1, 4, b"x")).await,
        nf,
        "commit after delete",
    );
    assert_kind(state.delete(&s.id, 6).await, nf, "second delete");
    // The id is free again, and nothing of the old parts, tail or fence survived.
    state.create(&s).await.expect("create again after delete");
    assert_stored(state, &s, b"", "recreated after delete").await;
    state.load(&s.id, 1).await.expect("old fence forgotten");
}
