//! The conformance suite every [`StateStore`] must pass. A backend's tests call [`run`] with a
//! store wired to the real service; every check uses fresh ids, so several runs can share one
//! server at the same time.
//!
//! The checks are grouped by what they prove, a file each: an upload's `lifecycle`, `fencing`,
//! the `tail`, `commits` of parts, and `expiry_and_links`. This file holds [`run`] and the
//! helpers they share.

mod commits;
mod expiry_and_links;
mod fencing;
mod lifecycle;
mod tail;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tusk_core::{Commit, ErrorKind, Metadata, StateStore, TailChange, UploadId, UploadState};

use commits::{
    keep_leaves_the_tail, new_parts_with_empty_replace_clear_the_tail,
    new_parts_with_replace_set_the_tail, stale_expectations_are_refused_and_change_nothing,
};
use expiry_and_links::{expiry_is_fenced_indexed_and_ordered, final_links_are_a_set};
use fencing::{
    equal_and_newer_fences_succeed, fences_compare_exactly_beyond_float_precision,
    older_fences_are_refused_and_change_nothing,
};
use lifecycle::{
    create_of_an_existing_id_fails, create_then_get_round_trips_every_field,
    deferred_length_is_set_once, delete_removes_state_parts_and_tail,
    finish_marks_finished_and_drops_the_tail, multipart_id_is_set_once, unknown_ids_are_not_found,
};
use tail::{appends_grow_the_tail_byte_exact, tail_ranges_are_slices_of_the_tail};

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
        // Kept and reported as it was given.
        created_at: Some(1_790_000_000),
        concat: None,
        placement: Default::default(),
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
