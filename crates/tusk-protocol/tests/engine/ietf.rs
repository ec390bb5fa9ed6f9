//! The IETF resumable upload draft, interop versions 3 to 8, beside tus 1.0 on the same engine.

use std::sync::{Arc, Mutex};

use tusk_protocol::{EngineConfig, Interim, Target, TusResponse};

use crate::common::{BASE, Harness, Req, config, cut_after, id_of};

/// An interim response: its status and headers.
type Sent = (u16, Vec<(String, String)>);

/// Interim responses a request sent, as the HTTP adapter would have written them.
#[derive(Default)]
struct Recorder(Mutex<Vec<Sent>>);

impl Interim for Recorder {
    fn send(&self, status: u16, headers: &[(&'static str, String)]) -> bool {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone()))
            .collect();
        self.0.lock().unwrap().push((status, headers));
        true
    }
}

impl Recorder {
    fn sent(&self) -> Vec<Sent> {
        self.0.lock().unwrap().clone()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The completeness header a version uses and its value for `complete`.
fn completeness(version: u8, complete: bool) -> (&'static str, &'static str) {
    match (version, complete) {
        (3, true) => ("Upload-Incomplete", "?0"),
        (3, false) => ("Upload-Incomplete", "?1"),
        (_, true) => ("Upload-Complete", "?1"),
        (_, false) => ("Upload-Complete", "?0"),
    }
}

fn assert_complete(version: u8, resp: &TusResponse, complete: bool) {
    let (name, value) = completeness(version, complete);
    assert_eq!(resp.get(name), Some(value), "v{version}: {resp:?}");
}

/// A creation request at `version` with `body`, saying whether it completes the upload.
fn create(version: u8, body: &[u8], complete: bool) -> Req {
    let (name, value) = completeness(version, complete);
    Req::draft("POST", Target::Collection, version)
        .header(name, value)
        .header("Content-Length", &body.len().to_string())
        .body(body)
}

/// An append at `offset` with `body`, with the media type `version` wants.
fn append(version: u8, id: &str, offset: u64, body: &[u8], complete: bool) -> Req {
    let (name, value) = completeness(version, complete);
    let media = if version >= 6 {
        "application/partial-upload"
    } else {
        "application/octet-stream"
    };
    Req::draft("PATCH", Target::Upload(id.into()), version)
        .header(name, value)
        .header("Content-Type", media)
        .header("Upload-Offset", &offset.to_string())
        .header("Content-Length", &body.len().to_string())
        .body(body)
}

fn offset_retrieval(version: u8, id: &str) -> Req {
    Req::draft("HEAD", Target::Upload(id.into()), version)
}

#[tokio::test]
async fn every_interop_version_creates_resumes_and_completes() {
    let h = Harness::new().await;
    for version in 3..=8u8 {
        let recorder = Arc::new(Recorder::default());
        let mut req = create(version, b"abc", false).interim(recorder.clone());
        if version >= 6 {
            req = req.header("Upload-Length", "10");
        }
        let resp = h.send(req).await;
        assert_eq!(resp.status, 201, "v{version}: {resp:?}");
        assert_eq!(
            resp.get("Tus-Resumable"),
            None,
            "a draft response is not tus"
        );
        assert_complete(version, &resp, false);
        assert_eq!(resp.get("Upload-Offset"), Some("3"));
        let location = resp.get("Location").unwrap().to_owned();
        let id = id_of(&resp);
        // Upload-Limit from interop 6, its age key renamed at 7.
        let limits = resp.get("Upload-Limit");
        match version {
            3..=5 => assert_eq!(limits, None),
            6 => assert!(limits.unwrap().contains("expires="), "{limits:?}"),
            _ => assert!(limits.unwrap().contains("max-age="), "{limits:?}"),
        }
        if version >= 6 {
            assert!(limits.unwrap().starts_with("min-size=0, max-size=1000"));
        }
        // The 104 went out first, with the same Location and the client's interop version.
        let sent = recorder.sent();
        assert_eq!(sent.len(), 1, "v{version}");
        let (status, interim) = &sent[0];
        assert_eq!(*status, 104);
        assert_eq!(header(interim, "Location"), Some(location.as_str()));
        assert_eq!(
            header(interim, "Upload-Draft-Interop-Version"),
            Some(version.to_string().as_str())
        );
        assert_eq!(header(interim, "Upload-Limit").is_some(), version >= 6);

        let head = h.send(offset_retrieval(version, &id)).await;
        assert_eq!(head.status, 204, "v{version}: {head:?}");
        assert_eq!(head.get("Upload-Offset"), Some("3"));
        assert_complete(version, &head, false);
        assert_eq!(head.get("Cache-Control"), Some("no-store"));
        // Before interop 6 there was no Upload-Length: the length is unknown until the end.
        let length = (version >= 6).then_some("10");
        assert_eq!(head.get("Upload-Length"), length);

        let done = h.send(append(version, &id, 3, b"defghij", true)).await;
        assert_eq!(done.status, 204, "v{version}: {done:?}");
        assert_complete(version, &done, true);
        assert_eq!(done.get("Upload-Offset"), Some("10"));
        assert_eq!(h.data(&id).await, b"abcdefghij");
        let head = h.send(offset_retrieval(version, &id)).await;
        assert_complete(version, &head, true);
        assert_eq!(head.get("Upload-Length"), Some("10"));
    }
}

#[tokio::test]
async fn a_whole_representation_in_one_request_completes_at_creation() {
    let h = Harness::new().await;
    for version in [3u8, 6, 8] {
        let resp = h.send(create(version, b"hello", true)).await;
        assert_eq!(resp.status, 201, "{resp:?}");
        assert_complete(version, &resp, true);
        let id = id_of(&resp);
        assert_eq!(h.data(&id).await, b"hello");
        // A tus client sees a finished upload of that length.
        let tus = h.send(Req::head(&id)).await;
        assert_eq!(tus.get("Upload-Length"), Some("5"));
        assert_eq!(tus.get("Upload-Offset"), Some("5"));
    }
    // Without Content-Length (chunked), the length is where the whole body ended.
    let (name, value) = completeness(8, true);
    let resp = h
        .send(
            Req::draft("POST", Target::Collection, 8)
                .header(name, value)
                .body(b"streamed"),
        )
        .await;
    assert_eq!(resp.status, 201, "{resp:?}");
    assert_complete(8, &resp, true);
    assert_eq!(h.data(&id_of(&resp)).await, b"streamed");
    // Empty and complete.
    let resp = h.send(create(8, b"", true)).await;
    assert_complete(8, &resp, true);
}

#[tokio::test]
async fn an_optimistic_upload_cut_short_keeps_its_bytes_and_resumes() {
    let h = Harness::new().await;
    let recorder = Arc::new(Recorder::default());
    let (name, value) = completeness(8, true);
    let req = Req::draft("POST", Target::Collection, 8)
        .header(name, value)
        .header("Content-Length", "10")
        .stream(cut_after(b"abcd"))
        .interim(recorder.clone());
    let _ = h.send(req).await;
    // The client lost the final response; the 104 told it where to resume.
    let location = header(&recorder.sent()[0].1, "Location")
        .unwrap()
        .to_owned();
    let id = location.strip_prefix(BASE).unwrap().to_owned();
    let head = h.send(offset_retrieval(8, &id)).await;
    assert_eq!(head.get("Upload-Offset"), Some("4"));
    assert_complete(8, &head, false);
    assert_eq!(head.get("Upload-Length"), Some("10"));
    let done = h.send(append(8, &id, 4, b"efghij", true)).await;
    assert_eq!(done.status, 204, "{done:?}");
    assert_complete(8, &done, true);
    assert_eq!(h.data(&id).await, b"abcdefghij");
}

#[tokio::test]
async fn a_wrong_offset_gets_the_problem_document_and_the_right_offset() {
    let h = Harness::new().await;
    let id = id_of(&h.send(create(8, b"abc", false)).await);
    let resp = h.send(append(8, &id, 5, b"x", false)).await;
    assert_eq!(resp.status, 409, "{resp:?}");
    assert_eq!(resp.get("Upload-Offset"), Some("3"));
    assert_complete(8, &resp, false);
    assert_eq!(resp.get("Content-Type"), Some("application/problem+json"));
    let problem: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    );
    assert_eq!(problem["expected-offset"], 3);
    assert_eq!(problem["provided-offset"], 5);
    // Interop 3 gets the same in its own header.
    let resp = h.send(append(3, &id, 0, b"x", false)).await;
    assert_eq!(resp.status, 409);
    assert_complete(3, &resp, false);
}

#[tokio::test]
async fn lengths_that_disagree_are_refused_with_their_problem_type() {
    let h = Harness::new().await;
    let resp = h
        .send(create(8, b"abc", true).header("Upload-Length", "5"))
        .await;
    assert_eq!(resp.status, 400, "{resp:?}");
    let problem: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert_eq!(
        problem["type"],
        "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    );
    // An append that ends the upload elsewhere than its known length: refused before a byte
    // is stored.
    let id = id_of(
        &h.send(create(8, b"ab", false).header("Upload-Length", "10"))
            .await,
    );
    let resp = h.send(append(8, &id, 2, b"cd", true)).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_eq!(h.data(&id).await, b"ab");
    // A different Upload-Length later.
    let resp = h
        .send(append(8, &id, 2, b"cd", false).header("Upload-Length", "11"))
        .await;
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[tokio::test]
async fn requests_the_draft_refuses() {
    struct Case {
        name: &'static str,
        req: fn(&str) -> Req,
        status: u16,
    }
    let cases = [
        Case {
            name: "append without application/partial-upload at interop 6",
            req: |id| {
                Req::draft("PATCH", Target::Upload(id.into()), 6)
                    .header("Upload-Complete", "?0")
                    .header("Content-Type", "application/offset+octet-stream")
                    .header("Upload-Offset", "3")
                    .body(b"d")
            },
            status: 415,
        },
        Case {
            name: "append without completeness",
            req: |id| {
                Req::draft("PATCH", Target::Upload(id.into()), 8)
                    .header("Content-Type", "application/partial-upload")
                    .header("Upload-Offset", "3")
            },
            status: 400,
        },
        Case {
            name: "append without offset",
            req: |id| {
                Req::draft("PATCH", Target::Upload(id.into()), 8)
                    .header("Content-Type", "application/partial-upload")
                    .header("Upload-Complete", "?0")
            },
            status: 400,
        },
        Case {
            name: "creation without completeness",
            req: |_| Req::draft("POST", Target::Collection, 8),
            status: 400,
        },
        Case {
            name: "creation over the maximum size",
            req: |_| create(8, b"", false).header("Upload-Length", "1001"),
            status: 413,
        },
        Case {
            name: "append past the length",
            req: |id| append(8, id, 3, &[b'x'; 8], false),
            status: 413,
        },
        Case {
            name: "interop version 9",
            req: |id| Req::draft("HEAD", Target::Upload(id.into()), 9),
            status: 400,
        },
        Case {
            name: "unknown upload",
            req: |_| offset_retrieval(8, "nosuchupload"),
            status: 404,
        },
        Case {
            name: "GET on the collection",
            req: |_| Req::draft("GET", Target::Collection, 8),
            status: 405,
        },
    ];
    let h = Harness::new().await;
    for case in cases {
        let id = id_of(
            &h.send(create(8, b"abc", false).header("Upload-Length", "10"))
                .await,
        );
        let resp = h.send((case.req)(&id)).await;
        assert_eq!(resp.status, case.status, "{}: {resp:?}", case.name);
        if resp.status == 413 {
            assert!(resp.get("Upload-Limit").is_some(), "{}", case.name);
        }
        assert_eq!(resp.get("Tus-Resumable"), None, "{}", case.name);
        assert_eq!(h.offset(&id).await, 3, "{}: nothing stored", case.name);
    }
}

#[tokio::test]
async fn the_draft_and_tus_share_uploads_and_routes() {
    let h = Harness::new().await;
    // A tus upload, resumed by a draft client.
    let id = h.create(Some(6)).await;
    let resp = h.send(append(8, &id, 0, b"abcdef", true)).await;
    assert_eq!(resp.status, 204, "{resp:?}");
    assert_complete(8, &resp, true);
    // A request with both headers is tus.
    let resp = h
        .send(Req::head(&id).header("Upload-Draft-Interop-Version", "8"))
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.get("Tus-Resumable"), Some("1.0.0"));
    // The draft's representation metadata is tus metadata.
    let resp = h
        .send(
            create(8, b"", false)
                .header("Content-Type", "image/jpeg")
                .header("Content-Disposition", "inline; filename=\"fire.jpg\""),
        )
        .await;
    let meta = h.send(Req::head(&id_of(&resp))).await;
    let meta = meta.get("Upload-Metadata").unwrap();
    assert!(meta.contains("filename ZmlyZS5qcGc="), "{meta}");
    assert!(meta.contains("filetype aW1hZ2UvanBlZw=="), "{meta}");
    // Cancellation.
    let id = id_of(&h.send(create(8, b"ab", false)).await);
    let resp = h
        .send(Req::draft("DELETE", Target::Upload(id.clone()), 8))
        .await;
    assert_eq!(resp.status, 204);
    assert_eq!(h.send(offset_retrieval(8, &id)).await.status, 404);
    // Discovery.
    let resp = h.send(Req::draft("OPTIONS", Target::Collection, 8)).await;
    assert_eq!(resp.get("Upload-Limit"), Some("min-size=0, max-size=1000"));
}

#[tokio::test]
async fn with_the_draft_off_only_tus_is_spoken() {
    let h = Harness::with_config(EngineConfig {
        ietf_draft: false,
        ..config()
    })
    .await;
    let resp = h.send(create(8, b"abc", false)).await;
    assert_eq!(resp.status, 412, "{resp:?}");
    assert_eq!(resp.get("Tus-Resumable"), Some("1.0.0"));
}

#[tokio::test]
async fn content_digest_is_checked_over_the_whole_content() {
    let h = Harness::new().await;
    let id = id_of(
        &h.send(create(8, b"", false).header("Upload-Length", "11"))
            .await,
    );
    // sha-256 of "hello world".
    let digest = "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:";
    let wrong = h
        .send(append(8, &id, 0, b"hello worle", true).header("Content-Digest", digest))
        .await;
    assert_eq!(wrong.status, 460, "{wrong:?}");
    assert_eq!(
        h.offset(&id).await,
        0,
        "nothing of a mismatching content is stored"
    );
    let right = h
        .send(append(8, &id, 0, b"hello world", true).header("Content-Digest", digest))
        .await;
    assert_eq!(right.status, 204, "{right:?}");
    assert_complete(8, &right, true);
    // tus's own metadata header, as tus-js-client sends it in draft mode.
    let resp = h
        .send(create(6, b"", false).header("Upload-Metadata", "filename YS50eHQ="))
        .await;
    let head = h.send(Req::head(&id_of(&resp))).await;
    assert_eq!(head.get("Upload-Metadata"), Some("filename YS50eHQ="));
}
