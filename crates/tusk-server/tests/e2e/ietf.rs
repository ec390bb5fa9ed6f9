//! The IETF resumable upload draft against the real binary: the `104 Upload Resumption
//! Supported` interim response read off a raw socket (before the body is sent, between
//! pipelined responses, beside `100 Continue`, over TLS), only for draft requests, and an
//! optimistic upload cut by a reset resumed from the 104's URL, in both modes.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::services::{Cluster, services_enabled};
use crate::support::*;

/// One response read off the socket.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, &name.to_ascii_lowercase())
    }
}

/// A client connection written and read by hand.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(url: &str) -> Conn {
        let rest = url.strip_prefix("http://").unwrap();
        let host = &rest[..rest.find('/').unwrap()];
        Conn {
            stream: TcpStream::connect(host).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next response (interim or final); `head` when it answers a HEAD (no body).
    async fn next(&mut self, head: bool) -> Response {
        let read = async {
            let end = loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                self.fill().await;
            };
            let text = String::from_utf8(self.buf[..end].to_vec()).unwrap();
            self.buf.drain(..end);
            let mut lines = text.split("\r\n");
            let status_line = lines.next().unwrap();
            assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
            let status: u16 = status_line[9..12].parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize =
                header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
            assert!(
                header(&headers, "transfer-encoding").is_none(),
                "tusk's responses here are sized"
            );
            let length = if head || status < 200 { 0 } else { length };
            while self.buf.len() < length {
                self.fill().await;
            }
            let body = self.buf.drain(..length).collect();
            Response {
                status,
                headers,
                body,
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("no response in time")
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed; unread: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Nothing more arrives within a short while (used after a response that must stand alone).
    async fn nothing_pending(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            self.stream.read(&mut chunk),
        )
        .await
        .is_err()
            && self.buf.is_empty()
    }
}

/// A draft creation head at interop `version` announcing `content_length` bytes.
fn creation_head(
    url: &str,
    version: u8,
    complete: bool,
    length: u64,
    content_length: u64,
) -> String {
    request_head(
        "POST",
        url,
        &[
            ("Upload-Draft-Interop-Version", version.to_string()),
            ("Upload-Complete", if complete { "?1" } else { "?0" }.into()),
            ("Upload-Length", length.to_string()),
        ],
        content_length,
    )
}

#[tokio::test]
async fn the_104_carries_the_upload_url_before_the_body_is_sent() {
    let server = Server::start(&[]).await;
    let data = pattern(64 << 10, 3);
    let mut conn = Conn::open(&server.url).await;
    // Only the head: the 104 must come without any of the body.
    conn.send(creation_head(&server.url, 8, true, data.len() as u64, data.len() as u64).as_bytes())
        .await;
    let interim = conn.next(false).await;
    assert_eq!(interim.status, 104, "{interim:?}");
    let location = interim.header("Location").unwrap().to_owned();
    assert!(location.starts_with(&server.url), "{location}");
    assert_eq!(interim.header("Upload-Draft-Interop-Version"), Some("8"));
    assert!(
        interim
            .header("Upload-Limit")
            .unwrap()
            .contains("max-size=")
    );
    conn.send(&data).await;
    let done = conn.next(false).await;
    assert_eq!(done.status, 201, "{done:?}");
    assert_eq!(done.header("Location"), Some(location.as_str()));
    assert_eq!(done.header("Upload-Complete"), Some("?1"));
    assert_eq!(done.header("Tus-Resumable"), None);
    assert_eq!(download(&location).await, data);
    let scrape = scrape(&server.url).await;
    assert_eq!(
        sample(&scrape, "tusk_interim_responses_total{status=\"104\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            "tusk_ietf_draft_requests_total{interop_version=\"8\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn pipelined_responses_stay_whole_around_a_104() {
    let server = Server::start(&[]).await;
    let finished = server.create(5).await;
    assert_eq!(patch(&finished, 0, b"hello".to_vec()).await.0, 204);
    let url = &server.url;
    // A GET with a body, a HEAD (a Content-Length and no body), the draft creation, then a
    // tus OPTIONS: all in one write, answered in order, with the 104 only before the 201.
    let (path, host) = {
        let rest = finished.strip_prefix("http://").unwrap();
        let slash = rest.find('/').unwrap();
        (rest[slash..].to_owned(), rest[..slash].to_owned())
    };
    let mut pipeline = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n\
         HEAD {path} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n\r\n"
    );
    pipeline.push_str(&creation_head(url, 6, false, 10, 4));
    pipeline.push_str("abcd");
    pipeline.push_str(&request_head("OPTIONS", url, &[], 0));
    let mut conn = Conn::open(url).await;
    conn.send(pipeline.as_bytes()).await;
    let get = conn.next(false).await;
    assert_eq!((get.status, get.body.as_slice()), (200, &b"hello"[..]));
    let head = conn.next(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Upload-Offset"), Some("5"));
    let interim = conn.next(false).await;
    assert_eq!(interim.status, 104, "{interim:?}");
    assert_eq!(interim.header("Upload-Draft-Interop-Version"), Some("6"));
    let created = conn.next(false).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("Location"), interim.header("Location"));
    assert_eq!(created.header("Upload-Offset"), Some("4"));
    let options = conn.next(false).await;
    assert_eq!(options.status, 204);
    assert!(options.header("Tus-Version").is_some());
    assert!(conn.nothing_pending().await);
}

#[tokio::test]
async fn a_104_goes_beside_100_continue() {
    let server = Server::start(&[]).await;
    let mut conn = Conn::open(&server.url).await;
    let mut head = creation_head(&server.url, 8, false, 10, 3);
    head.insert_str(head.len() - 2, "Expect: 100-continue\r\n");
    conn.send(head.as_bytes()).await;
    // Both interim responses, in either order, before any body byte is sent.
    let mut statuses = vec![conn.next(false).await.status, conn.next(false).await.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [100, 104]);
    conn.send(b"abc").await;
    let done = conn.next(false).await;
    assert_eq!(done.status, 201, "{done:?}");
    assert_eq!(done.header("Upload-Offset"), Some("3"));
}

#[tokio::test]
async fn only_draft_requests_at_a_known_version_get_a_104() {
    let server = Server::start(&[]).await;
    let mut conn = Conn::open(&server.url).await;
    // tus creation.
    let tus = request_head(
        "POST",
        &server.url,
        &[(TUS.0, TUS.1.to_owned()), ("Upload-Length", "3".into())],
        0,
    );
    conn.send(tus.as_bytes()).await;
    assert_eq!(conn.next(false).await.status, 201);
    // An interop version tusk does not speak.
    let unknown = creation_head(&server.url, 9, false, 3, 0);
    conn.send(unknown.as_bytes()).await;
    let refused = conn.next(false).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.body).contains("interop versions 3 to 8"));
    assert!(conn.nothing_pending().await);
    // With the draft off, not even a known version.
    let off = Server::start(&["--ietf-draft", "false"]).await;
    let mut conn = Conn::open(&off.url).await;
    conn.send(creation_head(&off.url, 8, false, 3, 0).as_bytes())
        .await;
    assert_eq!(conn.next(false).await.status, 412);
}

/// An optimistic upload (`Upload-Complete: ?1`, the whole file in one request) reset after
/// part of its body: resumed from the 104's URL with offset retrieval and an append.
async fn optimistic_upload_cut_by_a_reset_resumes(collection: &str) {
    let data = pattern(3 << 20, 7);
    let cut = 1 << 20;
    let mut conn = Conn::open(collection).await;
    conn.send(creation_head(collection, 8, true, data.len() as u64, data.len() as u64).as_bytes())
        .await;
    let interim = conn.next(false).await;
    assert_eq!(interim.status, 104);
    let location = interim.header("Location").unwrap().to_owned();
    conn.send(&data[..cut]).await;
    RawRequest::from_stream(conn.stream)
        .reset_when_acknowledged()
        .await;

    // Every byte the server's kernel acknowledged is kept: a HEAD (which waits for the cut
    // request's commit) reports all of them.
    assert_eq!(head(&location).await, (200, Some(cut as u64)));
    let client = client();
    let draft = [("Upload-Draft-Interop-Version", "8")];
    let head = client
        .head(&location)
        .header(draft[0].0, draft[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204);
    assert_eq!(head.headers()["upload-offset"], cut.to_string().as_str());
    assert_eq!(head.headers()["upload-complete"], "?0");
    assert_eq!(
        head.headers()["upload-length"],
        data.len().to_string().as_str()
    );
    // An append at the wrong offset: the draft's problem document and the right offset.
    let conflict = client
        .patch(&location)
        .header(draft[0].0, draft[0].1)
        .header("Upload-Complete", "?0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/partial-upload")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        conflict.headers()["upload-offset"],
        cut.to_string().as_str()
    );
    assert_eq!(conflict.headers()["upload-complete"], "?0");
    assert_eq!(
        conflict.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value =
        serde_json::from_slice(&conflict.bytes().await.unwrap()).unwrap();
    assert_eq!(problem["expected-offset"], cut);
    assert_eq!(problem["provided-offset"], 0);
    let offset = cut;
    let resp = client
        .patch(&location)
        .header(draft[0].0, draft[0].1)
        .header("Upload-Complete", "?1")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/partial-upload")
        .body(data[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-complete"], "?1");
    assert_eq!(download(&location).await, data);
}

#[tokio::test]
async fn an_optimistic_upload_cut_by_a_reset_resumes_from_the_104() {
    let server = Server::start(&[]).await;
    optimistic_upload_cut_by_a_reset_resumes(&server.url).await;
}

#[tokio::test]
async fn distributed_an_optimistic_upload_cut_by_a_reset_resumes_from_the_104() {
    if !services_enabled("distributed_an_optimistic_upload_cut_by_a_reset_resumes_from_the_104") {
        return;
    }
    let cluster = Cluster::start(1, &[]).await;
    optimistic_upload_cut_by_a_reset_resumes(&cluster.nodes[0].url).await;
}

#[tokio::test]
async fn a_104_over_tls_reaches_curl_before_its_final_response() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::tls::Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue("server", 1);
    let server = crate::tls::tls_server(&cert, &key, &[]).await;
    let file = dir.path().join("photo.jpg");
    let data = pattern(256 << 10, 5);
    std::fs::write(&file, &data).unwrap();
    // HTTP/1.1: actix's HTTP/2 cannot carry interim responses (docs/architecture.md).
    let verbose = curl_draft_upload("--http1.1", &ca.cert, &file, &server.url).await;
    let interim = verbose
        .find("< HTTP/1.1 104 Upload Resumption Supported")
        .unwrap_or_else(|| panic!("no 104 in {verbose}"));
    let last = verbose.find("< HTTP/1.1 201").expect("201");
    assert!(interim < last, "{verbose}");
    let location = verbose[interim..last]
        .lines()
        .find_map(|l| {
            l.strip_prefix("< location: ")
                .or(l.strip_prefix("< Location: "))
        })
        .expect("Location in the 104")
        .trim()
        .to_owned();
    assert!(location.starts_with("https://127.0.0.1:"), "{location}");
    assert!(verbose[last..].contains(&location), "{verbose}");
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    // HTTP/2 carries no 104 (actix's h2 has no interim responses); the upload still works.
    let verbose = curl_draft_upload("--http2", &ca.cert, &file, &server.url).await;
    assert!(verbose.contains("< HTTP/2 201"), "{verbose}");
    assert!(!verbose.contains(" 104"), "{verbose}");
    let got = client
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

/// curl's verbose output of an optimistic draft upload of `file` to `url` over TLS.
async fn curl_draft_upload(
    http: &str,
    ca: &std::path::Path,
    file: &std::path::Path,
    url: &str,
) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-v", http, "--cacert"])
        .arg(ca)
        .args([
            "-H",
            "Upload-Draft-Interop-Version: 8",
            "-H",
            "Upload-Complete: ?1",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(url)
        .output()
        .await
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{verbose}");
    verbose
}
