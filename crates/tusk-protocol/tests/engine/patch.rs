use std::time::Duration;

use crate::common::{Harness, Req, assert_tus, channel_body, chunks, config, cut_after};
use bytes::Bytes;

struct Case {
    name: &'static str,
    req: fn(&str) -> Req,
    status: u16,
    offset: Option<&'static str>,
    /// The upload's offset afterwards (every case starts from offset 3 of 10).
    after: u64,
}

#[tokio::test]
async fn patch_statuses() {
    let cases = [
        Case {
            name: "append",
            req: |id| Req::patch(id, 3).body(b"defg"),
            status: 204,
            offset: Some("7"),
            after: 7,
        },
        Case {
            name: "finish",
            req: |id| Req::patch(id, 3).body(b"defghij"),
            status: 204,
            offset: Some("10"),
            after: 10,
        },
        Case {
            name: "two offsets",
            req: |id| Req::patch(id, 3).header("Upload-Offset", "0").body(b"d"),
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "empty body",
            req: |id| Req::patch(id, 3),
            status: 204,
            offset: Some("3"),
            after: 3,
        },
        Case {
            name: "content type with parameters",
            req: |id| {
                Req::patch(id, 3)
                    .header("Content-Type", "x")
                    .bare()
                    .header("Tus-Resumable", "1.0.0")
                    .header(
                        "Content-Type",
                        "application/offset+octet-stream; charset=binary",
                    )
                    .header("Upload-Offset", "3")
                    .body(b"d")
            },
            status: 204,
            offset: Some("4"),
            after: 4,
        },
        Case {
            name: "wrong content type",
            req: |id| {
                Req::new("PATCH", tusk_protocol::Target::Upload(id.into()))
                    .header("Content-Type", "application/octet-stream")
                    .header("Upload-Offset", "3")
                    .body(b"d")
            },
            status: 415,
            offset: None,
            after: 3,
        },
        Case {
            name: "missing offset",
            req: |id| {
                Req::new("PATCH", tusk_protocol::Target::Upload(id.into()))
                    .header("Content-Type", "application/offset+octet-stream")
                    .body(b"d")
            },
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "invalid offset",
            req: |id| {
                Req::new("PATCH", tusk_protocol::Target::Upload(id.into()))
                    .header("Content-Type", "application/offset+octet-stream")
                    .header("Upload-Offset", "-3")
                    .body(b"d")
            },
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "offset behind",
            req: |id| Req::patch(id, 0).body(b"abc"),
            status: 409,
            offset: None,
            after: 3,
        },
        Case {
            name: "offset ahead",
            req: |id| Req::patch(id, 5).body(b"x"),
            status: 409,
            offset: None,
            after: 3,
        },
        Case {
            name: "past length by Content-Length",
            req: |id| {
                Req::patch(id, 3)
                    .header("Content-Length", "8")
                    .body(b"defghijk")
            },
            status: 413,
            offset: None,
            after: 3,
        },
        Case {
            name: "past length while streaming",
            req: |id| Req::patch(id, 3).stream(chunks(b"defghijk", 3, false)),
            status: 413,
            offset: None,
            after: 3,
        },
        Case {
            name: "same length again",
            req: |id| Req::patch(id, 3).header("Upload-Length", "10").body(b"d"),
            status: 204,
            offset: Some("4"),
            after: 4,
        },
        Case {
            name: "length change",
            req: |id| Req::patch(id, 3).header("Upload-Length", "11").body(b"d"),
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "bad Content-Length",
            req: |id| {
                Req::patch(id, 3)
                    .header("Content-Length", "lots")
                    .body(b"d")
            },
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "checksum matches",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "sha1 EH7LaJDu7pnZzMBucRYxNJp91ys=")
                    .body(b"defg")
            },
            status: 204,
            offset: Some("7"),
            after: 7,
        },
        Case {
            name: "crc32 checksum matches",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "crc32 O22OWQ==")
                    .stream(chunks(b"defg", 1, false))
            },
            status: 204,
            offset: Some("7"),
            after: 7,
        },
        Case {
            name: "checksum mismatch",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "md5 Al5Np+2sNe3lg/Xo1Rqn7A==")
                    .body(b"defX")
            },
            status: 460,
            offset: None,
            after: 3,
        },
        Case {
            name: "checksum of a body cut short",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "sha1 YAzNG3FWkjLQHRELxj6Qa+qwTYw=")
                    .stream(cut_after(b"de"))
            },
            status: 204,
            offset: Some("3"),
            after: 3,
        },
        Case {
            name: "cut body without checksum keeps what arrived",
            req: |id| Req::patch(id, 3).stream(cut_after(b"de")),
            status: 204,
            offset: Some("5"),
            after: 5,
        },
        Case {
            name: "unsupported checksum algorithm",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "whirlpool AAAA")
                    .body(b"d")
            },
            status: 400,
            offset: None,
            after: 3,
        },
        Case {
            name: "malformed checksum",
            req: |id| {
                Req::patch(id, 3)
                    .header("Upload-Checksum", "sha1 not base64!")
                    .body(b"d")
            },
            status: 400,
            offset: None,
            after: 3,
        },
    ];
    for case in cases {
        let h = Harness::new().await;
        let id = h.create(Some(10)).await;
        assert_eq!(h.send(Req::patch(&id, 0).body(b"abc")).await.status, 204);
        let resp = h.send((case.req)(&id)).await;
        assert_eq!(resp.status, case.status, "{}: {resp:?}", case.name);
        assert_eq!(resp.get("Upload-Offset"), case.offset, "{}", case.name);
        assert_tus(&resp);
        assert_eq!(h.offset(&id).await, case.after, "{}", case.name);
        assert_eq!(
            h.data(&id).await,
            &b"abcdefghij"[..case.after as usize],
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn unknown_upload_is_404() {
    let h = Harness::new().await;
    let resp = h
        .send(Req::patch(&tusk_core::UploadId::generate().to_string(), 0).body(b"x"))
        .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.get("Upload-Offset"), None);
}

#[tokio::test]
async fn deferred_length_is_declared_once_and_never_changed() {
    let h = Harness::new().await;
    let id = h.create(None).await;
    let steps: [(Req, u16, Option<&str>); 6] = [
        (Req::patch(&id, 0).body(b"hello "), 204, Some("6")),
        (Req::patch(&id, 6).header("Upload-Length", "3"), 400, None),
        (
            Req::patch(&id, 6).header("Upload-Length", "1001"),
            413,
            None,
        ),
        (
            Req::patch(&id, 6)
                .header("Upload-Length", "11")
                .body(b"wor"),
            204,
            Some("9"),
        ),
        (
            Req::patch(&id, 9).header("Upload-Length", "12").body(b"ld"),
            400,
            None,
        ),
        (Req::patch(&id, 9).body(b"ld"), 204, Some("11")),
    ];
    for (i, (req, status, offset)) in steps.into_iter().enumerate() {
        let resp = h.send(req).await;
        assert_eq!(resp.status, status, "step {i}: {resp:?}");
        assert_eq!(resp.get("Upload-Offset"), offset, "step {i}");
    }
    let head = h.send(Req::head(&id)).await;
    assert_eq!(head.get("Upload-Length"), Some("11"));
    assert_eq!(h.data(&id).await, b"hello world");
}

#[tokio::test]
async fn deferred_upload_cannot_pass_the_maximum_size() {
    let h = Harness::new().await;
    let id = h.create(None).await;
    let big = vec![7u8; 1001];
    let resp = h
        .send(Req::patch(&id, 0).stream(chunks(&big, 100, false)))
        .await;
    assert_eq!(resp.status, 413);
    assert_eq!(h.offset(&id).await, 0);
}

#[tokio::test]
async fn a_stalled_body_ends_and_commits_what_arrived() {
    let mut cfg = config();
    cfg.read_timeout = Duration::from_millis(200);
    let h = Harness::with_config(cfg).await;
    let id = h.create(Some(10)).await;
    let resp = h
        .send(Req::patch(&id, 0).stream(chunks(b"abcd", 2, true)))
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(resp.get("Upload-Offset"), Some("4"));
    assert_eq!(h.data(&id).await, b"abcd");
}

#[tokio::test]
async fn a_broken_connection_commits_what_arrived() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    let (tx, body) = channel_body();
    tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
    tx.send(Err(std::io::Error::other("connection reset")))
        .await
        .unwrap();
    let resp = h.send(Req::patch(&id, 0).stream(body)).await;
    assert_eq!(resp.get("Upload-Offset"), Some("3"));
    assert_eq!(h.offset(&id).await, 3);
}

/// Start a PATCH at offset 0 whose body sends `first` and then stays open; returns once the
/// PATCH holds the lock and has read `first` (its body queue is drained).
async fn running_patch(
    h: &Harness,
    id: &str,
    first: &'static [u8],
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    tokio::task::JoinHandle<tusk_protocol::TusResponse>,
) {
    let (tx, body) = channel_body();
    let engine = h.engine.clone();
    let req = Req::patch(id, 0).stream(body).build();
    let patch = tokio::spawn(async move { engine.handle(req).await });
    tx.send(Ok(Bytes::from_static(first))).await.unwrap();
    while tx.capacity() < tx.max_capacity() {
        tokio::task::yield_now().await;
    }
    (tx, patch)
}

#[tokio::test]
async fn a_head_asks_a_running_patch_to_commit_and_sees_its_bytes() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    let (tx, patch) = running_patch(&h, &id, b"abcd").await;
    let head = h.send(Req::head(&id)).await;
    let offset: u64 = head.get("Upload-Offset").unwrap().parse().unwrap();
    let patch = patch.await.unwrap();
    assert_eq!(patch.status, 204);
    assert_eq!(patch.get("Upload-Offset"), Some("4"));
    assert_eq!(offset, 4, "HEAD ran after the PATCH committed");
    // The client is still connected but the server stopped reading; nothing more counts.
    let _ = tx.send(Ok(Bytes::from_static(b"zz"))).await;
    assert_eq!(h.data(&id).await, b"abcd");
}

#[tokio::test]
async fn two_patches_at_one_offset_never_both_succeed() {
    let h = Harness::new().await;
    let id = h.create(Some(8)).await;
    let (_tx, first) = running_patch(&h, &id, b"AAAA").await;
    let second = h.send(Req::patch(&id, 0).body(b"BBBBBBBB")).await;
    let first = first.await.unwrap();
    // The first was asked to let go and committed its 4 bytes; the second's offset is stale.
    assert_eq!(first.status, 204);
    assert_eq!(first.get("Upload-Offset"), Some("4"));
    assert_eq!(second.status, 409);
    assert_eq!(h.data(&id).await, b"AAAA");
}

#[tokio::test]
async fn shutdown_makes_running_patches_commit_and_answer() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    let (tx, patch) = running_patch(&h, &id, b"abc").await;
    h.engine.shutdown_token().cancel();
    let resp = patch.await.unwrap();
    assert_eq!(resp.get("Upload-Offset"), Some("3"));
    drop(tx);
}
