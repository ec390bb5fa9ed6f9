//! Commits: new parts with the tail cleared, replaced or kept, in order, and a commit whose
//! expected parts or tail length are stale refused without changing anything.

use bytes::Bytes;
use tusk_core::{Commit, ErrorKind, StateStore, TailChange};

use super::{P, append, assert_kind, assert_stored, create, etag};
use crate::store_suite::pattern;

pub(super) async fn new_parts_with_empty_replace_clear_the_tail(state: &dyn StateStore) {
    let mut s = create(state, Some(10 * P)).await;
    let tail = pattern(1000, 9);
    s = state
        .commit(&s.id, 1, append(0, 0, &tail))
        .await
        .expect("append");
    let new = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 1000,
                new_parts: vec![etag(1), etag(2)],
                tail: TailChange::Replace(Bytes::new()),
            },
        )
        .await
        .expect("commit two parts, clear tail");
    s.part_count = 2;
    s.tail_len = 0;
    assert_eq!(new, s, "returned state");
    assert_eq!(new.offset(), 2 * P);
    assert_stored(state, &s, b"", "after parts with empty replace").await;
}

pub(super) async fn new_parts_with_replace_set_the_tail(state: &dyn StateStore) {
    let mut s = create(state, Some(10 * P)).await;
    s = state
        .commit(&s.id, 1, append(0, 0, b"old tail"))
        .await
        .expect("append");
    let rest = pattern(70_000, 1);
    let new = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 8,
                new_parts: vec![etag(1)],
                tail: TailChange::Replace(Bytes::from(rest.clone())),
            },
        )
        .await
        .expect("commit a part, replace tail");
    s.part_count = 1;
    s.tail_len = rest.len() as u64;
    assert_eq!(new, s, "returned state");
    assert_eq!(new.offset(), P + 70_000);
    assert_stored(state, &s, &rest, "after replace").await;

    // Replace with no new parts, then more parts in one step: order of ETags is kept.
    let new = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 1,
                expect_tail_len: 70_000,
                new_parts: vec![etag(2), etag(3), etag(4)],
                tail: TailChange::Replace(Bytes::from_static(b"z")),
            },
        )
        .await
        .expect("commit three parts");
    s.part_count = 4;
    s.tail_len = 1;
    assert_eq!(new, s);
    assert_eq!(new.offset(), 4 * P + 1);
    assert_stored(state, &s, b"z", "after three parts").await;
}

pub(super) async fn keep_leaves_the_tail(state: &dyn StateStore) {
    let mut s = create(state, Some(10 * P)).await;
    s = state
        .commit(&s.id, 1, append(0, 0, b"kept"))
        .await
        .expect("append");
    let noop = Commit {
        expect_parts: 0,
        expect_tail_len: 4,
        new_parts: Vec::new(),
        tail: TailChange::Keep,
    };
    assert_eq!(state.commit(&s.id, 1, noop).await.expect("no-op"), s);
    let new = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 4,
                new_parts: vec![etag(1)],
                tail: TailChange::Keep,
            },
        )
        .await
        .expect("commit a part, keep tail");
    s.part_count = 1;
    assert_eq!(new, s);
    assert_eq!(new.offset(), P + 4);
    assert_stored(state, &s, b"kept", "after keep").await;
}

pub(super) async fn stale_expectations_are_refused_and_change_nothing(state: &dyn StateStore) {
    let mut s = create(state, Some(10 * P)).await;
    s = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: vec![etag(1)],
                tail: TailChange::Append(Bytes::from_static(b"12345")),
            },
        )
        .await
        .expect("commit");
    let om = ErrorKind::OffsetMismatch;
    let stale = [
        (0, 5, "parts behind"),
        (2, 5, "parts ahead"),
        (1, 4, "tail behind"),
        (1, 6, "tail ahead"),
        (1, 0, "tail empty"),
        (0, 0, "both behind"),
    ];
    for (parts, tail_len, what) in stale {
        let changes = [
            TailChange::Append(Bytes::from_static(b"x")),
            TailChange::Replace(Bytes::new()),
            TailChange::Replace(Bytes::from_static(b"y")),
            TailChange::Keep,
        ];
        for change in changes {
            let commit = Commit {
                expect_parts: parts,
                expect_tail_len: tail_len,
                new_parts: vec![etag(2)],
                tail: change,
            };
            assert_kind(state.commit(&s.id, 1, commit).await, om, what);
        }
        // The common small append, with no parts (Redis sends its bytes beside the script).
        let append = Commit {
            expect_parts: parts,
            expect_tail_len: tail_len,
            new_parts: Vec::new(),
            tail: TailChange::Append(Bytes::from_static(b"x")),
        };
        assert_kind(state.commit(&s.id, 1, append).await, om, what);
    }
    assert_stored(state, &s, b"12345", "after stale commits").await;
}
