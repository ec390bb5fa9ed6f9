use std::time::Duration;

use crate::common::{Harness, Req, assert_tus, config};
use tusk_core::{Locker, UploadId};

#[tokio::test]
async fn head_describes_the_upload() {
    let h = Harness::new().await;
    let known = h.create(Some(10)).await;
    let deferred = h.create(None).await;
    h.send(Req::patch(&known, 0).body(b"abc")).await;

    let resp = h.send(Req::head(&known)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.get("Upload-Offset"), Some("3"));
    assert_eq!(resp.get("Upload-Length"), Some("10"));
    assert_eq!(resp.get("Upload-Defer-Length"), None);
    assert_eq!(resp.get("Cache-Control"), Some("no-store"));
    assert_eq!(resp.get("Upload-Metadata"), None);
    assert!(resp.body.is_empty());
    assert_tus(&resp);

    let resp = h.send(Req::head(&deferred)).await;
    assert_eq!(resp.get("Upload-Defer-Length"), Some("1"));
    assert_eq!(resp.get("Upload-Length"), None);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404_without_offset() {
    let h = Harness::new().await;
    for id in [
        UploadId::generate().to_string(),
        "..".to_owned(),
        "../etc/passwd".to_owned(),
        "a b".to_owned(),
        "x".repeat(500),
    ] {
        let resp = h.send(Req::head(&id)).await;
        assert_eq!(resp.status, 404, "{id}");
        assert_eq!(resp.get("Upload-Offset"), None);
        assert_tus(&resp);
    }
}

#[tokio::test]
async fn a_holder_that_does_not_let_go_yields_423_with_retry_after() {
    let mut cfg = config();
    cfg.lock_wait = Duration::from_millis(100);
    let h = Harness::with_config(cfg).await;
    let id = h.create(Some(10)).await;
    // Hold the lock outside the engine and ignore the release request.
    let guard = h
        .locker
        .lock(&UploadId::parse(&id).unwrap(), Duration::from_secs(1))
        .await
        .unwrap();
    let resp = h.send(Req::head(&id)).await;
    assert_eq!(resp.status, 423);
    assert_eq!(resp.get("Retry-After"), Some("1"));
    assert!(
        guard.release_requested().is_cancelled(),
        "holder was asked to release"
    );
    drop(guard);
    assert_eq!(h.send(Req::head(&id)).await.status, 200);
}
