//! The conformance suite every [`StateStore`] must pass. A backend's tests call [`run`] with a
//! store wired to the real service; every check uses fresh ids, so several runs can share one
//! server at the same time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tusk_core::{Commit, ErrorKind, Metadata, StateStore, TailChange, UploadId, UploadState};

use crate::store_suite::pattern;

/// The part size of every upload in the suite: S3's minimum, so a ~1 MiB tail fits below it.
const P: u64 = 5 * 1024 * 1024;

/// Run every check. Panics on the first failure, naming it.
pub async fn run(state: &dyn StateStore) {
    create_then_get_round_trips_every_field(state).await;
    create_of_an_existing_id_fails(state).await;
    unknown_ids_are_not_found(state).await;
    older_fences_are_refused_and_change_nothing(state).await;
    equal_and_newer_fences_succeed(state).await;
    fences_compare_exactly_beyond_float_precision(state).await;
    appends_grow_the_tail_byte_exact(state).await;
    tail_ranges_are_slices_of_the_tail(state).await;
    new_parts_with_empty_replace_clear_the_tail(state).await;
    new_parts_with_replace_set_the_tail(state).await;
    keep_leaves_the_tail(state).await;
    stale_expectations_are_refused_and_change_nothing(state).await;
    multipart_id_is_set_once(state).await;
    deferred_length_is_set_once(state).await;
    finish_marks_finished_and_drops_the_tail(state).await;
    delete_removes_state_parts_and_tail(state).await;
    expiry_is_fenced_indexed_and_ordered(state).await;
    final_links_are_a_set(state).await;
}

/// Metadata with binary values (every byte value, NUL and 0xff included) and a valueless key.
fn binary_metadata() -> Metadata {
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let header = format!(
        "filename {},bin {},is_confidential,quotes {}",
        STANDARD.encode("r\u{e9}sum\u{e9} \"1\".pdf"),
        STANDARD.encode(&every_byte),
        STANDARD.encode([0u8, 0xff, b'{', b'}', b'"', b'\\']),
    );
    Metadata::parse(&header).expect("valid metadata")
}

fn new_state(length: Option<u64>, metadata: Metadata) -> UploadState {
    UploadState {
        id: UploadId::generate(),
        length,
        metadata,
        part_size: P,
        multipart_id: None,
        part_count: 0,
        tail_len: 0,
        finished: false,
        expires_at: None,
        concat: None,
    }
}

async fn create(state: &dyn StateStore, length: Option<u64>) -> UploadState {
    let s = new_state(length, binary_metadata());
    state.create(&s).await.expect("create");
    s
}

fn etag(n: usize) -> String {
    format!("\"etag-{n:04}-0123456789abcdef\"")
}

fn append(expect_parts: u32, expect_tail_len: u64, bytes: &[u8]) -> Commit {
    Commit {
        expect_parts,
        expect_tail_len,
        new_parts: Vec::new(),
        tail: TailChange::Append(Bytes::copy_from_slice(bytes)),
    }
}

/// Assert that `id` is exactly `want` with the tail `tail`, by both read paths.
async fn assert_stored(state: &dyn StateStore, want: &UploadState, tail: &[u8], what: &str) {
    let got = state.get(&want.id).await.expect("get");
    assert_eq!(&got, want, "{what}: state");
    let got_tail = state.read_tail(&want.id).await.expect("read_tail");
    assert_eq!(got_tail.len(), tail.len(), "{what}: tail length");
    assert!(got_tail == tail, "{what}: tail bytes differ");
    assert_eq!(got.tail_len, tail.len() as u64, "{what}: tail_len");
    // Every upload of the suite commits etag(1), etag(2), ... in order.
    let want_etags: Vec<String> = (1..=want.part_count as usize).map(etag).collect();
    let got_etags = state.etags(&want.id).await.expect("etags");
    assert_eq!(got_etags, want_etags, "{what}: part ETags");
}

fn assert_kind<T>(result: tusk_core::Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(_) => panic!("{what}: succeeded, expected {kind}"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: wrong kind for {e}"),
    }
}

async fn create_then_get_round_trips_every_field(state: &dyn StateStore) {
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
}

async fn create_of_an_existing_id_fails(state: &dyn StateStore) {
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

async fn unknown_ids_are_not_found(state: &dyn StateStore) {
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

async fn older_fences_are_refused_and_change_nothing(state: &dyn StateStore) {
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

async fn equal_and_newer_fences_succeed(state: &dyn StateStore) {
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

async fn fences_compare_exactly_beyond_float_precision(state: &dyn StateStore) {
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

async fn appends_grow_the_tail_byte_exact(state: &dyn StateStore) {
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

async fn tail_ranges_are_slices_of_the_tail(state: &dyn StateStore) {
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

async fn new_parts_with_empty_replace_clear_the_tail(state: &dyn StateStore) {
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

async fn new_parts_with_replace_set_the_tail(state: &dyn StateStore) {
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

async fn keep_leaves_the_tail(state: &dyn StateStore) {
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

async fn stale_expectations_are_refused_and_change_nothing(state: &dyn StateStore) {
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
    }
    assert_stored(state, &s, b"12345", "after stale commits").await;
}

async fn multipart_id_is_set_once(state: &dyn StateStore) {
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

async fn deferred_length_is_set_once(state: &dyn StateStore) {
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

async fn finish_marks_finished_and_drops_the_tail(state: &dyn StateStore) {
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

async fn delete_removes_state_parts_and_tail(state: &dyn StateStore) {
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

async fn expiry_is_fenced_indexed_and_ordered(state: &dyn StateStore) {
    let check = "expiry_is_fenced_indexed_and_ordered";
    // Expiry times far in the past, so no other upload of this run can be due before them.
    let mut with_expiry = new_state(Some(10), Metadata::default());
    with_expiry.expires_at = Some(100);
    state.create(&with_expiry).await.expect("create");
    assert_eq!(
        state.get(&with_expiry.id).await.expect("get").expires_at,
        Some(100),
        "{check}: created with an expiry"
    );
    let b = create(state, Some(10)).await;
    let c = create(state, Some(10)).await;
    state.load(&b.id, 5).await.expect("load");
    state.set_expiry(&b.id, 5, Some(50)).await.expect("set b");
    state.set_expiry(&c.id, 0, Some(200)).await.expect("set c");
    let err = state
        .set_expiry(&b.id, 4, Some(1))
        .await
        .expect_err("older fence");
    assert_eq!(err.kind(), ErrorKind::LockLost, "{check}: fenced");
    assert_eq!(state.get(&b.id).await.expect("get").expires_at, Some(50));

    let due = state.expired(150, 10).await.expect("expired");
    assert_eq!(
        due,
        vec![b.id.clone(), with_expiry.id.clone()],
        "{check}: due, oldest first"
    );
    let first = state.expired(1_000, 1).await.expect("expired");
    assert_eq!(first, vec![b.id.clone()], "{check}: limit");
    assert!(
        state.expired(50, 10).await.expect("expired").is_empty(),
        "{check}: before is exclusive"
    );

    state
        .set_expiry(&with_expiry.id, 0, None)
        .await
        .expect("clear");
    assert_eq!(
        state.get(&with_expiry.id).await.expect("get").expires_at,
        None
    );
    state.delete(&b.id, 5).await.expect("delete");
    let due = state.expired(250, 10).await.expect("expired");
    assert_eq!(
        due,
        vec![c.id.clone()],
        "{check}: cleared and deleted uploads leave the index"
    );
    state.delete(&c.id, 0).await.expect("delete");
    state.delete(&with_expiry.id, 0).await.expect("delete");
}

async fn final_links_are_a_set(state: &dyn StateStore) {
    let check = "final_links_are_a_set";
    let partial = create(state, Some(3)).await;
    let (a, b) = (UploadId::generate(), UploadId::generate());
    assert!(
        state
            .finals_of(&partial.id)
            .await
            .expect("finals")
            .is_empty(),
        "{check}: none yet"
    );
    state.link_final(&partial.id, &a).await.expect("link a");
    state.link_final(&partial.id, &b).await.expect("link b");
    state
        .link_final(&partial.id, &a)
        .await
        .expect("link a again");
    let mut finals = state.finals_of(&partial.id).await.expect("finals");
    finals.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(finals, expected, "{check}: each final once");
    state.delete(&partial.id, 0).await.expect("delete");
    assert!(
        state
            .finals_of(&partial.id)
            .await
            .expect("finals")
            .is_empty(),
        "{check}: deleted with the upload"
    );
}
