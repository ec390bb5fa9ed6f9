//! The expiration extension across methods: Upload-Expires, 410 after expiry, the reaper.

use std::time::{Duration, UNIX_EPOCH};

use crate::common::{Harness, Req, config};
use tusk_protocol::{EngineConfig, Target};

fn expiring(after: u64, retention: Option<u64>) -> EngineConfig {
    EngineConfig {
        expire_after: Some(Duration::from_secs(after)),
        finished_retention: retention.map(Duration::from_secs),
        ..config()
    }
}

fn expires_of(resp: &tusk_protocol::TusResponse) -> u64 {
    let date =
        httpdate::parse_http_date(resp.get("Upload-Expires").expect("Upload-Expires")).unwrap();
    date.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The engine's time, in Unix seconds.
fn now(h: &Harness) -> u64 {
    use tusk_protocol::Clock as _;
    h.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn post_patch_and_head_announce_the_expiry() {
    let h = Harness::with_config(expiring(3600, None)).await;
    let before = now(&h);
    let resp = h.send(Req::post().header("Upload-Length", "10")).await;
    assert_eq!(resp.status, 201);
    let at = expires_of(&resp);
    // One period after the request, counted from the next whole second (never early).
    assert!((before + 3600..=now(&h) + 3601).contains(&at), "{at}");
    let id = crate::common::id_of(&resp);
    let resp = h.send(Req::patch(&id, 0).body(b"abc")).await;
    assert_eq!(resp.status, 204);
    assert!(expires_of(&resp) >= at);
    assert!(h.send(Req::head(&id)).await.get("Upload-Expires").is_some());
    // Finished: nothing expires, so no header.
    let resp = h.send(Req::patch(&id, 3).body(b"defghij")).await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.get("Upload-Expires"), None);
}

#[tokio::test]
async fn without_expiration_nothing_is_announced() {
    let h = Harness::with_config(EngineConfig {
        expire_after: None,
        ..config()
    })
    .await;
    let resp = h.send(Req::new("OPTIONS", Target::Collection).bare()).await;
    assert!(!resp.get("Tus-Extension").unwrap().contains("expiration"));
    let resp = h.send(Req::post().header("Upload-Length", "10")).await;
    assert_eq!(resp.get("Upload-Expires"), None);
}

#[tokio::test]
async fn an_expired_upload_answers_410_and_the_reaper_removes_it() {
    let h = Harness::with_config(expiring(1, None)).await;
    let id = h.create(Some(10)).await;
    assert_eq!(h.send(Req::patch(&id, 0).body(b"abc")).await.status, 204);
    let done = h.create(Some(3)).await;
    assert_eq!(h.send(Req::patch(&done, 0).body(b"abc")).await.status, 204);

    assert_eq!(h.send(Req::head(&id)).await.status, 200, "not yet");
    // Two seconds later by the engine's clock (a period of 1 s counts from the next second).
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(h.send(Req::head(&id)).await.status, 410);
    let resp = h.send(Req::patch(&id, 3).body(b"d")).await;
    assert_eq!(resp.status, 410, "{resp:?}");
    let get = Req::new("GET", Target::Upload(id.clone())).bare();
    assert_eq!(h.send(get).await.status, 410);

    let report = h.engine.reap(100).await.unwrap().expect("a pass");
    assert_eq!(report.removed, 1);
    assert_eq!(h.send(Req::head(&id)).await.status, 404);
    assert!(h.stored(&id).await.is_none());
    // Finished uploads are kept without a retention.
    assert_eq!(h.send(Req::head(&done)).await.status, 200);
    assert_eq!(h.data(&done).await, b"abc");
}

#[tokio::test]
async fn finished_uploads_go_after_their_retention() {
    let h = Harness::with_config(expiring(3600, Some(1))).await;
    let done = h.create(Some(3)).await;
    assert_eq!(h.send(Req::patch(&done, 0).body(b"abc")).await.status, 204);
    let open = h.create(Some(3)).await;
    assert_eq!(h.send(Req::head(&done)).await.status, 200, "not yet");
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(h.send(Req::head(&done)).await.status, 410);
    let report = h.engine.reap(100).await.unwrap().expect("a pass");
    assert_eq!(report.removed, 1);
    assert_eq!(h.send(Req::head(&done)).await.status, 404);
    assert_eq!(h.send(Req::head(&open)).await.status, 200);
}

#[tokio::test]
async fn one_reaper_pass_at_a_time() {
    let h = Harness::with_config(expiring(1, None)).await;
    let reaper = tusk_core::UploadId::parse("_tusk-reaper").unwrap();
    let held = tusk_core::Locker::lock(h.locker.as_ref(), &reaper, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(h.engine.reap(10).await.unwrap(), None);
    drop(held);
    assert!(h.engine.reap(10).await.unwrap().is_some());
}

/// A failover of the state store to a replica that missed an upload's last PATCH: the state says
/// unfinished while its object is whole. The reaper must not remove it, and a download finds it.
#[tokio::test]
async fn a_finished_upload_whose_state_fell_behind_is_served_and_never_reaped() {
    let h = Harness::with_config(expiring(1, None)).await;
    let served = h.create(Some(10)).await;
    let reaped = h.create(Some(10)).await;
    let headed = h.create(Some(10)).await;
    let mut copies = Vec::new();
    for id in [&served, &reaped, &headed] {
        assert_eq!(h.send(Req::patch(id, 0).body(b"abcd")).await.status, 204);
        let Some(copy) = h.copy_state(id).await else {
            eprintln!("skipped: the in-memory store keeps state and bytes together");
            return;
        };
        copies.push(copy);
        assert_eq!(h.send(Req::patch(id, 4).body(b"efghij")).await.status, 204);
    }
    for copy in copies {
        h.restore_state(copy).await;
    }
    assert_eq!(h.offset(&served).await, 4, "the state fell behind");
    assert_eq!(h.offset(&reaped).await, 4, "the state fell behind");

    let get = h
        .send(Req::new("GET", Target::Upload(served.clone())).bare())
        .await;
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(h.offset(&served).await, 10, "recorded finished");

    // Past the unfinished upload's expiry: a HEAD finds the object rather than answering 410,
    // and the reaper finds it and keeps the upload.
    h.clock.advance(Duration::from_secs(2));
    let head = h.send(Req::head(&headed)).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("Upload-Offset"), Some("10"));
    let report = h.engine.reap(100).await.unwrap().expect("a pass");
    assert_eq!(report.removed, 0, "{report:?}");
    let head = h.send(Req::head(&reaped)).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.get("Upload-Offset"), Some("10"));
    for id in [&served, &reaped, &headed] {
        assert_eq!(h.data(id).await, b"abcdefghij");
    }
}

/// An upload resumed every few hours would never expire by its last PATCH alone: its age bounds
/// it, in `Upload-Expires` and in what the server does, and the reaper removes it.
#[tokio::test]
async fn an_unfinished_upload_expires_at_its_maximum_age_however_often_it_is_resumed() {
    let h = Harness::with_config(EngineConfig {
        max_upload_age: Some(Duration::from_secs(10 * 3600)),
        ..expiring(4 * 3600, None)
    })
    .await;
    let created = now(&h);
    let id = h.create(Some(100)).await;
    let limit = created + 10 * 3600;
    // Resumed at hours 3, 6 and 9: the sliding expiry alone (4 h) would move on for ever.
    for offset in 0..3u64 {
        h.clock.advance(Duration::from_secs(3 * 3600));
        let resp = h.send(Req::patch(&id, offset).body(b"x")).await;
        assert_eq!(resp.status, 204, "{resp:?}");
        let expires = expires_of(&resp);
        assert!(expires <= limit, "{expires} is past the age limit {limit}");
    }
    // At hour 9 the sliding expiry (hour 13) is past the limit: the limit is announced.
    assert_eq!(expires_of(&h.send(Req::head(&id)).await), limit);
    h.clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(
        h.send(Req::head(&id)).await.status,
        410,
        "older than the limit"
    );
    assert_eq!(
        h.send(Req::patch(&id, 3).body(b"x")).await.status,
        410,
        "no resume past the limit"
    );
    let report = h.engine.reap(100).await.unwrap().expect("a pass");
    assert_eq!(report.removed, 1);
    assert_eq!(h.send(Req::head(&id)).await.status, 404);
}

/// Without a sliding expiry, the age limit alone still announces and enforces expiration.
#[tokio::test]
async fn the_age_limit_alone_is_the_expiration_extension() {
    let h = Harness::with_config(EngineConfig {
        expire_after: None,
        max_upload_age: Some(Duration::from_secs(60)),
        ..config()
    })
    .await;
    let resp = h.send(Req::new("OPTIONS", Target::Collection).bare()).await;
    assert!(resp.get("Tus-Extension").unwrap().contains("expiration"));
    let created = now(&h);
    let resp = h.send(Req::post().header("Upload-Length", "10")).await;
    assert_eq!(expires_of(&resp), created + 60);
    let id = crate::common::id_of(&resp);
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(h.send(Req::head(&id)).await.status, 410);
}
