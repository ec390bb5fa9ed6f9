//! Concatenation and concatenation-unfinished: partial uploads and final uploads.

use crate::common::{BASE, Harness, Req, id_of};
use tusk_protocol::Target;

async fn partial(h: &Harness, data: &[u8]) -> String {
    let resp = h
        .send(
            Req::post()
                .header("Upload-Concat", "partial")
                .header("Upload-Length", &data.len().to_string()),
        )
        .await;
    assert_eq!(resp.status, 201, "{resp:?}");
    id_of(&resp)
}

async fn final_of(h: &Harness, ids: &[&str]) -> tusk_protocol::TusResponse {
    let urls: Vec<String> = ids.iter().map(|id| format!("{BASE}{id}")).collect();
    h.send(Req::post().header("Upload-Concat", &format!("final;{}", urls.join(" "))))
        .await
}

#[tokio::test]
async fn a_final_upload_of_finished_partials_is_complete_at_once() {
    let h = Harness::new().await;
    let a = partial(&h, b"hello ").await;
    let b = partial(&h, b"world").await;
    assert_eq!(h.send(Req::patch(&a, 0).body(b"hello ")).await.status, 204);
    assert_eq!(h.send(Req::patch(&b, 0).body(b"world")).await.status, 204);
    let resp = final_of(&h, &[&a, &b]).await;
    assert_eq!(resp.status, 201, "{resp:?}");
    let f = id_of(&resp);
    let head = h.send(Req::head(&f)).await;
    assert_eq!(head.get("Upload-Length"), Some("11"));
    assert_eq!(head.get("Upload-Offset"), Some("11"));
    assert_eq!(
        head.get("Upload-Concat"),
        Some(format!("final;{BASE}{a} {BASE}{b}").as_str())
    );
    assert_eq!(h.data(&f).await, b"hello world");
    assert_eq!(
        h.send(Req::head(&a)).await.get("Upload-Concat"),
        Some("partial")
    );
    // A final upload takes no PATCH.
    let resp = h.send(Req::patch(&f, 11).body(b"x")).await;
    assert_eq!(resp.status, 403, "{resp:?}");
    // Partials may be used again.
    let resp = final_of(&h, &[&b, &a]).await;
    assert_eq!(resp.status, 201);
    assert_eq!(h.data(&id_of(&resp)).await, b"worldhello ");
}

#[tokio::test]
async fn a_final_upload_created_early_completes_when_its_partials_do() {
    let h = Harness::new().await;
    let a = partial(&h, b"abc").await;
    let b = partial(&h, b"defg").await;
    assert_eq!(h.send(Req::patch(&a, 0).body(b"abc")).await.status, 204);
    let resp = final_of(&h, &[&a, &b]).await;
    assert_eq!(resp.status, 201);
    let f = id_of(&resp);
    let head = h.send(Req::head(&f)).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("Upload-Length"), Some("7"));
    assert_eq!(head.get("Upload-Offset"), None, "no offset before assembly");
    let get = Req::new("GET", Target::Upload(f.clone())).bare();
    assert_eq!(h.send(get).await.status, 409);

    // The PATCH that completes the last partial assembles the final upload: its bytes are
    // stored before anyone asks for it.
    assert_eq!(h.send(Req::patch(&b, 0).body(b"defg")).await.status, 204);
    assert_eq!(h.data(&f).await, b"abcdefg");
    let head = h.send(Req::head(&f)).await;
    assert_eq!(head.get("Upload-Offset"), Some("7"));
}

#[tokio::test]
async fn bad_final_uploads_are_refused() {
    let h = Harness::new().await;
    let p = partial(&h, b"abc").await;
    let plain = h.create(Some(3)).await;
    let deferred = {
        let resp = h
            .send(
                Req::post()
                    .header("Upload-Concat", "partial")
                    .header("Upload-Defer-Length", "1"),
            )
            .await;
        id_of(&resp)
    };
    let unknown = tusk_core::UploadId::generate().to_string();
    for (name, resp, status) in [
        ("not partial", final_of(&h, &[&p, &plain]).await, 400),
        ("unknown", final_of(&h, &[&unknown]).await, 400),
        ("deferred partial", final_of(&h, &[&deferred]).await, 400),
        (
            "with Upload-Length",
            h.send(
                Req::post()
                    .header("Upload-Concat", &format!("final;{BASE}{p}"))
                    .header("Upload-Length", "3"),
            )
            .await,
            400,
        ),
        (
            "malformed",
            h.send(Req::post().header("Upload-Concat", "final;")).await,
            400,
        ),
        (
            "unknown kind",
            h.send(
                Req::post()
                    .header("Upload-Concat", "whole")
                    .header("Upload-Length", "3"),
            )
            .await,
            400,
        ),
    ] {
        assert_eq!(resp.status, status, "{name}: {resp:?}");
    }
}

#[tokio::test]
async fn options_advertise_concatenation() {
    let h = Harness::new().await;
    let resp = h.send(Req::new("OPTIONS", Target::Collection).bare()).await;
    let ext = resp.get("Tus-Extension").unwrap();
    assert!(
        ext.contains("concatenation,concatenation-unfinished"),
        "{ext}"
    );
}

#[tokio::test]
async fn a_partial_is_part_of_at_most_sixteen_final_uploads_and_listed_once_in_each() {
    let h = Harness::new().await;
    let a = partial(&h, b"ab").await;
    assert_eq!(h.send(Req::patch(&a, 0).body(b"ab")).await.status, 204);
    let resp = final_of(&h, &[&a, &a]).await;
    assert_eq!(resp.status, 400, "a partial listed twice: {resp:?}");
    for _ in 0..16 {
        assert_eq!(final_of(&h, &[&a]).await.status, 201);
    }
    let resp = final_of(&h, &[&a]).await;
    assert_eq!(resp.status, 400, "a seventeenth final upload: {resp:?}");
    assert!(resp.body.contains("16 final uploads"), "{resp:?}");
}
