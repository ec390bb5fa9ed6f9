//! Bytes that arrived are kept, whatever ends the PATCH; locks hand over promptly.

use std::time::Duration;

use crate::support::*;

const KIB: usize = 1024;

#[tokio::test]
async fn a_patch_cut_off_mid_body_keeps_every_byte_that_arrived() {
    let server = Server::start(&[]).await;
    let data = pattern(1024 * KIB, 9);
    let url = server.create(data.len() as u64).await;
    let mut raw = RawRequest::patch(&url, 0, data.len() as u64).await;
    raw.send(&data[..300 * KIB]).await;
    raw.cut();
    // The server sees the broken connection and commits; wait for that, then resume.
    wait_until("the cut PATCH to commit", || {
        server.recorded_offset(&url) > 0
    })
    .await;
    assert_eq!(head(&url).await, (200, Some(300 * KIB as u64)));
    assert_eq!(server.stored(&url), &data[..300 * KIB]);
    let (status, offset) = patch(&url, 300 * KIB as u64, data[300 * KIB..].to_vec()).await;
    assert_eq!((status, offset), (204, Some(data.len() as u64)));
    assert_eq!(server.stored(&url), data);
}

#[tokio::test]
async fn a_stalled_body_ends_after_the_read_timeout_and_commits() {
    let server = Server::start(&["--read-timeout", "1s"]).await;
    let url = server.create(100 * KIB as u64).await;
    let data = pattern(40 * KIB, 1);
    let mut raw = RawRequest::patch(&url, 0, 100 * KIB as u64).await;
    raw.send(&data).await;
    // The connection stays open and silent; the server answers once the read timeout passes.
    let (status, headers) = raw.response().await;
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "upload-offset"), Some("40960"));
    assert_eq!(server.stored(&url), data);
}

#[tokio::test]
async fn a_resume_asks_a_stale_patch_to_let_go() {
    // With a 60 s read timeout and 5 s lock wait, only a release request lets the HEAD in while
    // the PATCH holds the upload.
    let server = Server::start(&["--read-timeout", "60s", "--lock-wait", "5s"]).await;
    let data = pattern(256 * KIB, 5);
    // The HEAD may overtake the PATCH (which then has not taken the lock yet), or reach it
    // before its first bytes are read (it commits nothing); only a HEAD that finds it holding
    // the lock with the 64 KiB read shows the release. Bounded attempts.
    for attempt in 1..=30 {
        let url = server.create(data.len() as u64).await;
        let mut stale = RawRequest::patch(&url, 0, data.len() as u64).await;
        stale.send(&data[..64 * KIB]).await;
        let started = std::time::Instant::now();
        let (status, offset) = head(&url).await;
        let waited = started.elapsed();
        assert_eq!(status, 200, "HEAD was not let in");
        let offset = offset.unwrap();
        if offset == 0 {
            // Let the PATCH finish normally (or find it already answered) and try again.
            stale.send_if_open(&data[64 * KIB..]).await;
            let (status, _) = stale.response().await;
            assert_eq!(status, 204);
            eprintln!("attempt {attempt}: HEAD came first");
            continue;
        }
        assert_eq!(offset, 64 * KIB as u64);
        assert!(waited < Duration::from_secs(5), "took {waited:?}");
        eprintln!("HEAD got the lock after {waited:?} (offset {offset})");
        // The stale PATCH was answered with what it committed.
        let (status, headers) = stale.response().await;
        assert_eq!(status, 204);
        assert_eq!(header(&headers, "upload-offset"), Some("65536"));
        let (status, end) = patch(&url, offset, data[offset as usize..].to_vec()).await;
        assert_eq!((status, end), (204, Some(data.len() as u64)));
        assert_eq!(server.stored(&url), data);
        return;
    }
    panic!("no HEAD found the PATCH holding the lock in 30 attempts");
}

#[tokio::test]
async fn two_patches_at_one_offset_never_both_succeed() {
    let server = Server::start(&["--read-timeout", "60s"]).await;
    let len = 128 * KIB;
    let url = server.create(len as u64).await;
    let mut first = RawRequest::patch(&url, 0, len as u64).await;
    first.send(&vec![b'A'; 32 * KIB]).await;
    let (second_status, second_offset) = patch(&url, 0, vec![b'B'; len]).await;
    // If the first still reads its body (it got the lock after the second let go with nothing
    // stored), let it finish.
    first.send_if_open(&vec![b'A'; len - 32 * KIB]).await;
    let (first_status, first_headers) = first.response().await;
    let first_offset: Option<u64> =
        header(&first_headers, "upload-offset").map(|v| v.parse().unwrap());
    let stored = server.stored(&url);
    eprintln!("first: {first_status} {first_offset:?}, second: {second_status} {second_offset:?}");
    match (first_status, first_offset) {
        (204, Some(k)) if k > 0 => {
            // The first stored (part of) its body; the second stored nothing.
            assert!(second_status == 409 || second_offset == Some(0));
            assert_eq!(stored, vec![b'A'; k as usize]);
        }
        // The first stored nothing (let go at once, or its offset was stale): the second won.
        (204, Some(0)) | (409, None) => {
            assert_eq!((second_status, second_offset), (204, Some(len as u64)));
            assert_eq!(stored, vec![b'B'; len]);
        }
        other => panic!("unexpected first response {other:?}"),
    }
}

/// The signal handlers are in place before the node announces its address: a SIGTERM that
/// follows the announcement at once (an orchestrator stopping a pod that just started) still
/// shuts it down cleanly (exit 0), never by the signal's default action.
#[tokio::test]
async fn a_sigterm_right_after_start_is_a_clean_shutdown() {
    for _ in 0..5 {
        let server = Server::start(&[]).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn sigterm_commits_in_flight_patches_exits_and_a_restart_resumes() {
    let mut server = Server::start(&["--shutdown-timeout", "5s", "--read-timeout", "60s"]).await;
    let data = pattern(512 * KIB, 11);
    let url = server.create(data.len() as u64).await;
    let (status, _) = patch(&url, 0, data[..100 * KIB].to_vec()).await;
    assert_eq!(status, 204);
    let mut raw = RawRequest::patch(&url, 100 * KIB as u64, (412 * KIB) as u64).await;
    raw.send(&data[100 * KIB..150 * KIB]).await;
    server.signal("TERM");
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("tusk did not exit after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    // The in-flight PATCH committed what reached the server before shutdown.
    let offset = server.recorded_offset(&url);
    assert!(
        (100 * KIB as u64..=150 * KIB as u64).contains(&offset),
        "{offset}"
    );
    let _ = raw.response().await;

    let dir = server.data_dir.clone();
    let restarted = Server::start_in(&dir, &[]).await;
    let url = url.replace(&server.url, &restarted.url);
    assert_eq!(head(&url).await, (200, Some(offset)));
    let (status, end) = patch(&url, offset, data[offset as usize..].to_vec()).await;
    assert_eq!((status, end), (204, Some(data.len() as u64)));
    assert_eq!(restarted.stored(&url), data);
    drop(server);
}
