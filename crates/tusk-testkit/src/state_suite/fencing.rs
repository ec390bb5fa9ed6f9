//! Fencing tokens: an older token is refused and changes nothing, equal and newer ones write and
//! are recorded by every kind of write, and tokens compare exactly as integers.

use bytes::Bytes;
use tusk_core::{Commit, ErrorKind, StateStore, TailChange};

use super::{P, append, assert_kind, assert_stored, create, etag};

pub(super) async fn older_fences_are_refused_and_change_nothing(state: &dyn StateStore) {
    let mut s = create(state, None).await;
    // 9 against 10 also catches a store that compares tokens as text ("9" > "10").
    assert_eq!(state.load(&s.id, 10).await.expect("load"), s);
    s = state
        .commit(&s.id, 10, append(0, 0, b"abc"))
        .await
        .expect("commit with the loaded fence");
    let ll = ErrorKind::LockLost;
    assert_kind(state.load(&s.id, 9).await, ll, "load with older fence");
    assert_kind(
        state.commit(&s.id, 9, append(0, 3, b"def")).await,
        ll,
        "commit with older fence",
    );
    assert_kind(
        state
            .commit(
                &s.id,
                9,
                Commit {
                    expect_parts: 0,
                    expect_tail_len: 3,
                    new_parts: vec![etag(1)],
                    tail: TailChange::Replace(Bytes::new()),
                },
            )
            .await,
        ll,
        "commit of parts with older fence",
    );
    assert_kind(
        state.set_multipart(&s.id, 9, "mp-old").await,
        ll,
        "set_multipart with older fence",
    );
    assert_kind(
        state.set_length(&s.id, 9, 100).await,
        ll,
        "set_length with older fence",
    );
    assert_kind(state.finish(&s.id, 9).await, ll, "finish with older fence");
    assert_kind(state.delete(&s.id, 9).await, ll, "delete with older fence");
    assert_kind(state.load(&s.id, 0).await, ll, "load with fence 0");
    assert_stored(state, &s, b"abc", "after refused older fences").await;
}

pub(super) async fn equal_and_newer_fences_succeed(state: &dyn StateStore) {
    let mut s = create(state, None).await;
    state.load(&s.id, 10).await.expect("load");
    // Equal: the same holder keeps writing with its own token.
    s = state
        .commit(&s.id, 10, append(0, 0, b"ab"))
        .await
        .expect("commit with equal fence");
    state
        .set_multipart(&s.id, 10, "mp-1")
        .await
        .expect("set_multipart with equal fence");
    s.multipart_id = Some("mp-1".to_owned());
    // Newer: a later holder takes over, and every kind of write records its token.
    s = state
        .commit(&s.id, 11, append(0, 2, b"cd"))
        .await
        .expect("commit with newer fence");
    assert_kind(
        state.load(&s.id, 10).await,
        ErrorKind::LockLost,
        "load below a token recorded by commit",
    );
    state
        .set_length(&s.id, 12, 2 * P)
        .await
        .expect("set_length with newer fence");
    s.length = Some(2 * P);
    assert_kind(
        state.commit(&s.id, 11, append(0, 4, b"e")).await,
        ErrorKind::LockLost,
        "commit below a token recorded by set_length",
    );
    assert_eq!(state.load(&s.id, 12).await.expect("load equal"), s);
    assert_eq!(state.load(&s.id, 13).await.expect("load newer"), s);
    assert_kind(
        state.set_length(&s.id, 12, 2 * P).await,
        ErrorKind::LockLost,
        "set_length below a token recorded by load",
    );
    state
        .finish(&s.id, 14)
        .await
        .expect("finish with newer fence");
    s.finished = true;
    s.tail_len = 0;
    assert_stored(state, &s, b"", "after newer fences").await;
    assert_kind(
        state.delete(&s.id, 13).await,
        ErrorKind::LockLost,
        "delete below a token recorded by finish",
    );
    state
        .delete(&s.id, 14)
        .await
        .expect("delete with equal fence");
    assert_kind(
        state.get(&s.id).await,
        ErrorKind::NotFound,
        "get after delete",
    );
}

pub(super) async fn fences_compare_exactly_beyond_float_precision(state: &dyn StateStore) {
    // 2^53 + 1 and 2^53 are the same double: a store comparing floats would accept the older.
    let s = create(state, Some(10)).await;
    let high = (1u64 << 53) + 1;
    state.load(&s.id, high).await.expect("load high fence");
    assert_kind(
        state.load(&s.id, high - 1).await,
        ErrorKind::LockLost,
        "load one below a fence above 2^53",
    );
    state
        .load(&s.id, u64::MAX - 1)
        .await
        .expect("load near u64::MAX");
    assert_kind(
        state.finish(&s.id, u64::MAX - 2).await,
        ErrorKind::LockLost,
        "finish one below u64::MAX - 1",
    );
    state.load(&s.id, u64::MAX).await.expect("load u64::MAX");
    assert_stored(state, &s, b"", "after large fences").await;
}
