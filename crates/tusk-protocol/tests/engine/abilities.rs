//! A store with none of the optional abilities (termination, length declaration, expiry,
//! concatenation): the engine offers only what the store can do, and refuses the rest with a
//! clear status instead of calling a store that cannot.

use crate::common::{Harness, Req};
use tusk_protocol::Target;

#[tokio::test]
async fn options_lists_only_what_a_basic_store_can_do() {
    let h = Harness::basic();
    let resp = h.send(Req::new("OPTIONS", Target::Collection).bare()).await;
    assert_eq!(resp.status, 204);
    assert_eq!(
        resp.get("Tus-Extension"),
        Some("creation,creation-with-upload,checksum")
    );
}

#[tokio::test]
async fn delete_is_not_allowed_without_termination() {
    let h = Harness::basic();
    let id = h.create(Some(3)).await;
    let resp = h.send(Req::delete(&id)).await;
    assert_eq!(resp.status, 405);
    let allow = resp.get("Allow").unwrap_or_default();
    assert!(!allow.contains("DELETE"), "Allow: {allow}");
    assert!(allow.contains("PATCH"), "Allow: {allow}");
    // The upload is untouched.
    assert_eq!(h.send(Req::head(&id)).await.status, 200);
}

#[tokio::test]
async fn deferred_lengths_and_concatenation_are_refused_and_create_nothing() {
    let h = Harness::basic();
    let deferred = h.send(Req::post().header("Upload-Defer-Length", "1")).await;
    assert_eq!(deferred.status, 400);
    assert!(deferred.get("Location").is_none());
    let partial = h
        .send(
            Req::post()
                .header("Upload-Length", "3")
                .header("Upload-Concat", "partial"),
        )
        .await;
    assert_eq!(partial.status, 400);
    assert!(partial.get("Location").is_none());
}

#[tokio::test]
async fn uploads_do_not_expire_without_expiry_in_the_store() {
    let h = Harness::basic();
    let id = h.create(Some(6)).await;
    let resp = h.send(Req::patch(&id, 0).body(b"abc")).await;
    assert_eq!(resp.status, 204);
    assert!(resp.get("Upload-Expires").is_none(), "{resp:?}");
    // Long past what the configuration would allow: still there, and the reaper has nothing.
    h.clock
        .advance(std::time::Duration::from_secs(10 * 24 * 3600));
    let report = h.engine.reap(100).await.unwrap().expect("a pass");
    assert_eq!((report.examined, report.removed), (0, 0));
    let resp = h.send(Req::patch(&id, 3).body(b"def")).await;
    assert_eq!(resp.status, 204);
    assert_eq!(h.data(&id).await, b"abcdef");
}
