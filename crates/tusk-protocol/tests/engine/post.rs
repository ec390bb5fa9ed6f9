use crate::common::{BASE, Harness, Req, assert_tus, chunks, id_of};

struct Case {
    name: &'static str,
    req: Req,
    status: u16,
    offset: Option<&'static str>,
}

#[tokio::test]
async fn creation_statuses() {
    let h = Harness::new().await;
    let long_meta = format!("k {}", "QUFB".repeat(20));
    let cases = vec![
        Case {
            name: "length",
            req: Req::post().header("Upload-Length", "10"),
            status: 201,
            offset: None,
        },
        Case {
            name: "zero length",
            req: Req::post().header("Upload-Length", "0"),
            status: 201,
            offset: None,
        },
        Case {
            name: "max length",
            req: Req::post().header("Upload-Length", "1000"),
            status: 201,
            offset: None,
        },
        Case {
            name: "deferred",
            req: Req::post().header("Upload-Defer-Length", "1"),
            status: 201,
            offset: None,
        },
        Case {
            name: "over max",
            req: Req::post().header("Upload-Length", "1001"),
            status: 413,
            offset: None,
        },
        Case {
            name: "absurd length",
            req: Req::post().header("Upload-Length", "99999999999999999999999"),
            status: 400,
            offset: None,
        },
        Case {
            name: "negative",
            req: Req::post().header("Upload-Length", "-1"),
            status: 400,
            offset: None,
        },
        Case {
            name: "two lengths",
            req: Req::post()
                .header("Upload-Length", "10")
                .header("Upload-Length", "20"),
            status: 400,
            offset: None,
        },
        Case {
            name: "two versions",
            req: Req::post()
                .header("Upload-Length", "10")
                .header("Tus-Resumable", "1.0.0"),
            status: 400,
            offset: None,
        },
        Case {
            name: "neither",
            req: Req::post(),
            status: 400,
            offset: None,
        },
        Case {
            name: "both",
            req: Req::post()
                .header("Upload-Length", "5")
                .header("Upload-Defer-Length", "1"),
            status: 400,
            offset: None,
        },
        Case {
            name: "defer not 1",
            req: Req::post().header("Upload-Defer-Length", "2"),
            status: 400,
            offset: None,
        },
        Case {
            name: "metadata ok",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "filename YS50eHQ=,flag"),
            status: 201,
            offset: None,
        },
        Case {
            name: "metadata duplicate key",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "a YQ==,a Yg=="),
            status: 400,
            offset: None,
        },
        Case {
            name: "metadata empty key",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "a YQ==,"),
            status: 400,
            offset: None,
        },
        Case {
            name: "metadata key with comma-space shape",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "a b c"),
            status: 400,
            offset: None,
        },
        Case {
            name: "metadata value not base64",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "a %%%"),
            status: 400,
            offset: None,
        },
        Case {
            name: "metadata too large",
            req: Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", &long_meta),
            status: 400,
            offset: None,
        },
        Case {
            name: "with upload",
            req: Req::post()
                .header("Upload-Length", "10")
                .header("Content-Type", "application/offset+octet-stream")
                .body(b"hello"),
            status: 201,
            offset: Some("5"),
        },
        Case {
            name: "with upload, deferred",
            req: Req::post()
                .header("Upload-Defer-Length", "1")
                .header("Content-Type", "application/offset+octet-stream")
                .body(b"hello"),
            status: 201,
            offset: Some("5"),
        },
        Case {
            name: "with upload over length by Content-Length",
            req: Req::post()
                .header("Upload-Length", "3")
                .header("Content-Type", "application/offset+octet-stream")
                .header("Content-Length", "5")
                .body(b"hello"),
            status: 413,
            offset: None,
        },
        Case {
            name: "body without tus content type is not an upload",
            req: Req::post().header("Upload-Length", "10").body(b"hello"),
            status: 201,
            offset: None,
        },
    ];
    for case in cases {
        let resp = h.send(case.req).await;
        assert_eq!(resp.status, case.status, "{}: {resp:?}", case.name);
        assert_eq!(resp.get("Upload-Offset"), case.offset, "{}", case.name);
        assert_tus(&resp);
        if resp.status == 201 {
            let id = id_of(&resp);
            assert_eq!(id.len(), 32, "{}: 128-bit hex id", case.name);
        } else {
            assert!(resp.get("Location").is_none(), "{}", case.name);
            assert!(
                !resp.body.is_empty(),
                "{}: errors explain themselves",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn location_is_under_the_given_base_and_ids_differ() {
    let h = Harness::new().await;
    let a = h.send(Req::post().header("Upload-Length", "1")).await;
    let b = h.send(Req::post().header("Upload-Length", "1")).await;
    assert!(a.get("Location").unwrap().starts_with(BASE));
    assert_ne!(a.get("Location"), b.get("Location"));
}

#[tokio::test]
async fn zero_length_upload_is_complete_at_once() {
    let h = Harness::new().await;
    let id = h.create(Some(0)).await;
    let resp = h.send(Req::head(&id)).await;
    assert_eq!(resp.get("Upload-Offset"), Some("0"));
    assert_eq!(resp.get("Upload-Length"), Some("0"));
}

#[tokio::test]
async fn creation_with_upload_stores_the_first_chunk() {
    let h = Harness::new().await;
    let resp = h
        .send(
            Req::post()
                .header("Upload-Length", "11")
                .header("Content-Type", "application/offset+octet-stream")
                .body(b"hello "),
        )
        .await;
    let id = id_of(&resp);
    assert_eq!(h.data(&id).await, b"hello ");
    let resp = h.send(Req::patch(&id, 6).body(b"world")).await;
    assert_eq!(resp.status, 204);
    assert_eq!(h.data(&id).await, b"hello world");
}

#[tokio::test]
async fn creation_with_an_oversized_streamed_body_stores_nothing() {
    let h = Harness::new().await;
    // No Content-Length: the overflow is only seen while streaming.
    let resp = h
        .send(
            Req::post()
                .header("Upload-Length", "4")
                .header("Content-Type", "application/offset+octet-stream")
                .stream(chunks(b"toolong", 2, false)),
        )
        .await;
    assert_eq!(resp.status, 413);
}

#[tokio::test]
async fn metadata_is_echoed_canonically() {
    let h = Harness::new().await;
    let resp = h
        .send(
            Req::post()
                .header("Upload-Length", "1")
                .header("Upload-Metadata", "filename YS50eHQ,flag"),
        )
        .await;
    let id = id_of(&resp);
    let head = h.send(Req::head(&id)).await;
    assert_eq!(head.get("Upload-Metadata"), Some("filename YS50eHQ=,flag"));
}
