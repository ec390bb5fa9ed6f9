use crate::common::{Harness, Req};
use tusk_protocol::Target;

#[tokio::test]
async fn options_advertises_version_extensions_and_max_size() {
    let h = Harness::new().await;
    for target in [Target::Collection, Target::Upload("whatever".into())] {
        // OPTIONS needs no Tus-Resumable.
        let resp = h.send(Req::new("OPTIONS", target).bare()).await;
        assert_eq!(resp.status, 204);
        assert_eq!(resp.get("Tus-Version"), Some("1.0.0"));
        assert_eq!(
            resp.get("Tus-Extension"),
            Some(
                "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation,concatenation-unfinished"
            )
        );
        assert_eq!(resp.get("Tus-Max-Size"), Some("1000"));
        assert_eq!(
            resp.get("Tus-Checksum-Algorithm"),
            Some("sha1,md5,sha256,sha512,crc32")
        );
    }
}

#[tokio::test]
async fn requests_without_a_supported_version_get_412_with_tus_version() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    let cases = [
        (
            "missing on POST",
            Req::post().bare().header("Upload-Length", "1"),
        ),
        (
            "old version on POST",
            Req::post().bare().header("Tus-Resumable", "0.2.2"),
        ),
        ("missing on HEAD", Req::head(&id).bare()),
        (
            "garbage on PATCH",
            Req::patch(&id, 0).bare().header("Tus-Resumable", "x"),
        ),
        ("missing on DELETE", Req::delete(&id).bare()),
    ];
    for (name, req) in cases {
        let resp = h.send(req).await;
        assert_eq!(resp.status, 412, "{name}");
        assert_eq!(resp.get("Tus-Version"), Some("1.0.0"), "{name}");
        crate::common::assert_tus(&resp);
    }
    assert_eq!(h.offset(&id).await, 0, "nothing changed");
}

#[tokio::test]
async fn unsupported_methods_get_405_with_allow() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    let cases = [
        (Req::new("PUT", Target::Collection), "OPTIONS, POST"),
        (Req::new("PATCH", Target::Collection), "OPTIONS, POST"),
        (
            Req::new("POST", Target::Upload(id.clone())),
            "OPTIONS, HEAD, GET, PATCH, DELETE",
        ),
        (
            Req::new("PUT", Target::Upload(id.clone())),
            "OPTIONS, HEAD, GET, PATCH, DELETE",
        ),
    ];
    for (req, allow) in cases {
        let resp = h.send(req).await;
        assert_eq!(resp.status, 405);
        assert_eq!(resp.get("Allow"), Some(allow));
        crate::common::assert_tus(&resp);
    }
}
