//! The tail: appends keep every byte exactly, and ranges read (fenced or not) are slices of it.

use tusk_core::{ErrorKind, StateStore, UploadId};

use super::{P, append, assert_kind, assert_stored, create};
use crate::store_suite::pattern;

pub(super) async fn appends_grow_the_tail_byte_exact(state: &dyn StateStore) {
    // Position i holds i mod 256 mixed with a pattern: every byte value, in many neighbourhoods.
    let len = 1024 * 1024 + 17;
    let data: Vec<u8> = pattern(len, 3)
        .iter()
        .enumerate()
        .map(|(i, b)| if i < 256 { i as u8 } else { *b })
        .collect();
    let mut s = create(state, Some(len as u64)).await;
    // Several steps of odd sizes, an empty one first, the rest of the data last.
    let mut pieces = vec![0usize, 1, 255, 65_536, 500_000];
    pieces.push(len - pieces.iter().sum::<usize>());
    let mut done = 0usize;
    for (step, piece) in pieces.into_iter().enumerate() {
        let new = state
            .commit(&s.id, 1, append(0, done as u64, &data[done..done + piece]))
            .await
            .unwrap_or_else(|e| panic!("append step {step}: {e}"));
        done += piece;
        s.tail_len = done as u64;
        assert_eq!(new, s, "append step {step}: returned state");
        assert_eq!(new.offset(), done as u64, "append step {step}: offset");
        let tail = state.read_tail(&s.id).await.expect("read_tail");
        assert!(
            tail == data[..done],
            "append step {step}: tail bytes differ"
        );
    }
    assert_eq!(done, len);
    assert_stored(state, &s, &data, "after appends").await;
}

pub(super) async fn tail_ranges_are_slices_of_the_tail(state: &dyn StateStore) {
    let s = create(state, Some(10 * P)).await;
    let empty = state.read_tail_range(&s.id, 0..10, None).await;
    assert!(empty.expect("empty tail").is_empty());
    let data = pattern(3000, 4);
    state
        .commit(&s.id, 1, append(0, 0, &data))
        .await
        .expect("append");
    for (range, want) in [
        (0..10, &data[..10]),
        (1000..2500, &data[1000..2500]),
        (2990..3000, &data[2990..]),
        (2995..9000, &data[2995..]),
        (0..u64::MAX, &data[..]),
        (7..7, &[][..]),
        (3000..3010, &[][..]),
        (u64::MAX - 1..u64::MAX, &[][..]),
    ] {
        let got = state
            .read_tail_range(&s.id, range.clone(), Some(1))
            .await
            .expect("read_tail_range");
        assert!(got == want, "tail range {range:?}: {} bytes", got.len());
    }
    // A fenced read refuses an older token and records nothing: the holder of token 1 can
    // still commit after a read with token 9.
    let newer = state.read_tail_range(&s.id, 0..10, Some(9)).await;
    assert!(newer.expect("newer token") == data[..10]);
    state
        .commit(&s.id, 2, append(0, 3000, b"x"))
        .await
        .expect("commit with token 2");
    assert_kind(
        state.read_tail_range(&s.id, 0..10, Some(1)).await,
        ErrorKind::LockLost,
        "fenced read with an older token",
    );
    let unfenced = state.read_tail_range(&s.id, 2999..3001, None).await;
    assert!(unfenced.expect("unfenced read") == [data[2999], b'x'][..]);
    assert_kind(
        state
            .read_tail_range(&UploadId::generate(), 0..10, None)
            .await,
        ErrorKind::NotFound,
        "read_tail_range of unknown id",
    );
    assert_kind(
        state
            .read_tail_range(&UploadId::generate(), 0..10, Some(1))
            .await,
        ErrorKind::NotFound,
        "fenced read_tail_range of unknown id",
    );
}
