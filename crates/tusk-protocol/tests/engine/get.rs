use crate::common::{Harness, Req};
use futures_util::StreamExt;
use tusk_protocol::{Target, TusResponse};

/// The streamed body of a download.
async fn body(resp: TusResponse) -> Vec<u8> {
    let (length, mut stream) = resp.stream.expect("a streamed body");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out.len() as u64, length, "announced length");
    out
}

fn get(id: &str) -> Req {
    // Browsers send no Tus-Resumable.
    Req::new("GET", Target::Upload(id.into())).bare()
}

const DATA: &[u8] = b"0123456789";

struct Case {
    name: &'static str,
    req: fn(&str) -> Req,
    status: u16,
    body: &'static [u8],
    content_range: Option<&'static str>,
}

#[tokio::test]
async fn get_statuses() {
    let cases = [
        Case {
            name: "whole",
            req: get,
            status: 200,
            body: DATA,
            content_range: None,
        },
        Case {
            name: "with Tus-Resumable too",
            req: |id| get(id).header("Tus-Resumable", "1.0.0"),
            status: 200,
            body: DATA,
            content_range: None,
        },
        Case {
            name: "first bytes",
            req: |id| get(id).header("Range", "bytes=0-3"),
            status: 206,
            body: b"0123",
            content_range: Some("bytes 0-3/10"),
        },
        Case {
            name: "open-ended",
            req: |id| get(id).header("Range", "bytes=7-"),
            status: 206,
            body: b"789",
            content_range: Some("bytes 7-9/10"),
        },
        Case {
            name: "suffix",
            req: |id| get(id).header("Range", "bytes=-2"),
            status: 206,
            body: b"89",
            content_range: Some("bytes 8-9/10"),
        },
        Case {
            name: "past the end is clamped",
            req: |id| get(id).header("Range", "bytes=5-99"),
            status: 206,
            body: b"56789",
            content_range: Some("bytes 5-9/10"),
        },
        Case {
            name: "several ranges: the whole body",
            req: |id| get(id).header("Range", "bytes=0-1,4-5"),
            status: 200,
            body: DATA,
            content_range: None,
        },
        Case {
            name: "malformed range is ignored",
            req: |id| get(id).header("Range", "bytes=x-y"),
            status: 200,
            body: DATA,
            content_range: None,
        },
        Case {
            name: "unsatisfiable",
            req: |id| get(id).header("Range", "bytes=10-"),
            status: 416,
            body: b"",
            content_range: Some("bytes */10"),
        },
    ];
    for case in cases {
        let h = Harness::new().await;
        let id = h.create(Some(10)).await;
        assert_eq!(h.send(Req::patch(&id, 0).body(DATA)).await.status, 204);
        let resp = h.send((case.req)(&id)).await;
        assert_eq!(resp.status, case.status, "{}: {resp:?}", case.name);
        assert_eq!(
            resp.get("Content-Range"),
            case.content_range,
            "{}",
            case.name
        );
        if case.status < 300 {
            assert_eq!(resp.get("Accept-Ranges"), Some("bytes"), "{}", case.name);
            assert!(resp.get("ETag").is_some(), "{}", case.name);
            assert_eq!(body(resp).await, case.body, "{}", case.name);
        } else {
            assert!(resp.stream.is_none(), "{}", case.name);
        }
    }
}

#[tokio::test]
async fn a_matching_etag_gets_304() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    h.send(Req::patch(&id, 0).body(DATA)).await;
    let etag = h.send(get(&id)).await.get("ETag").unwrap().to_owned();
    for header in [etag.clone(), format!("W/{etag}"), "\"other\", *".to_owned()] {
        let resp = h.send(get(&id).header("If-None-Match", &header)).await;
        assert_eq!(resp.status, 304, "{header}");
        assert!(resp.stream.is_none());
    }
    let resp = h.send(get(&id).header("If-None-Match", "\"other\"")).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn unfinished_unknown_and_empty_uploads() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    h.send(Req::patch(&id, 0).body(b"0123")).await;
    let resp = h.send(get(&id)).await;
    assert_eq!(resp.status, 409, "{resp:?}");
    assert!(resp.body.contains("not finished"), "{}", resp.body);

    let deferred = h.create(None).await;
    assert_eq!(h.send(get(&deferred)).await.status, 409);

    let resp = h
        .send(get(&tusk_core::UploadId::generate().to_string()))
        .await;
    assert_eq!(resp.status, 404);

    let empty = h.create(Some(0)).await;
    let resp = h.send(get(&empty)).await;
    assert_eq!(resp.status, 200);
    assert_eq!(body(resp).await, b"");
    let resp = h.send(get(&empty).header("Range", "bytes=0-")).await;
    assert_eq!(resp.status, 416);
}

#[tokio::test]
async fn type_and_name_come_from_metadata() {
    let h = Harness::new().await;
    // filetype image/png, filename "a/cat.png"
    let resp = h
        .send(Req::post().header("Upload-Length", "3").header(
            "Upload-Metadata",
            "filetype aW1hZ2UvcG5n,filename YS9jYXQucG5n",
        ))
        .await;
    let id = crate::common::id_of(&resp);
    h.send(Req::patch(&id, 0).body(b"png")).await;
    let resp = h.send(get(&id)).await;
    assert_eq!(resp.get("Content-Type"), Some("image/png"));
    assert_eq!(
        resp.get("Content-Disposition"),
        Some("inline; filename=\"cat.png\"; filename*=UTF-8''cat.png")
    );
    assert_eq!(resp.get("X-Content-Type-Options"), Some("nosniff"));

    // filetype text/html: served, but as an attachment.
    let resp = h
        .send(
            Req::post()
                .header("Upload-Length", "3")
                .header("Upload-Metadata", "filetype dGV4dC9odG1s"),
        )
        .await;
    let id = crate::common::id_of(&resp);
    h.send(Req::patch(&id, 0).body(b"<b>")).await;
    let resp = h.send(get(&id)).await;
    assert_eq!(resp.get("Content-Disposition"), Some("attachment"));
}
