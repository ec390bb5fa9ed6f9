#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a failed test
//! The client against a scripted tus server on 127.0.0.1 (which also answers the IETF draft's
//! offset retrieval and checks `Content-Digest`): which answers it retries (and how long it
//! waits), which it gives up on, when it starts over, what it sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use sha1::Digest as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tusk_client::{ClientError, Progress, Protocol, RetryPolicy, UploadOptions, upload};

/// Upper bound on any test's run.
const PATIENCE: Duration = Duration::from_secs(30);

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status and headers (no body).
type Answer = (u16, Vec<(&'static str, String)>);

/// A tus server with one upload slot per created URL, whose PATCH answers can be scripted.
struct Fake {
    requests: Vec<Request>,
    /// Answers forced on the next PATCHes (body read and dropped), in order.
    patch_script: VecDeque<Answer>,
    /// Answer forced on every POST, if any.
    post_answer: Option<Answer>,
    /// Extensions advertised by OPTIONS.
    extensions: &'static str,
    uploads: Vec<Vec<u8>>,
    length: u64,
}

impl Fake {
    fn new(length: u64) -> Fake {
        Fake {
            requests: Vec::new(),
            patch_script: VecDeque::new(),
            post_answer: None,
            extensions: "creation",
            uploads: Vec::new(),
            length,
        }
    }

    fn handle(&mut self, req: Request) -> Answer {
        self.requests.push(req.clone());
        let tus = ("Tus-Resumable", "1.0.0".to_owned());
        let upload = req
            .path
            .strip_prefix("/files/")
            .and_then(|id| id.parse::<usize>().ok());
        match (req.method.as_str(), upload) {
            ("OPTIONS", _) => (
                204,
                vec![
                    tus,
                    ("Tus-Extension", self.extensions.to_owned()),
                    ("Tus-Checksum-Algorithm", "md5,sha1".to_owned()),
                ],
            ),
            ("POST", None) => {
                if let Some(answer) = self.post_answer.clone() {
                    return answer;
                }
                self.uploads.push(Vec::new());
                let location = format!("/files/{}", self.uploads.len() - 1);
                (201, vec![tus, ("Location", location)])
            }
            ("HEAD", Some(id)) if req.header("upload-draft-interop-version").is_some() => {
                match self.uploads.get(id) {
                    Some(data) => (
                        204,
                        vec![
                            ("Upload-Offset", data.len().to_string()),
                            ("Upload-Length", self.length.to_string()),
                            ("Upload-Complete", "?0".to_owned()),
                        ],
                    ),
                    None => (404, Vec::new()),
                }
            }
            ("HEAD", Some(id)) => match self.uploads.get(id) {
                Some(data) => (
                    200,
                    vec![
                        tus,
                        ("Upload-Offset", data.len().to_string()),
                        ("Upload-Length", self.length.to_string()),
                    ],
                ),
                None => (404, vec![tus]),
            },
            ("PATCH", Some(id)) => {
                if let Some(answer) = self.patch_script.pop_front() {
                    return answer;
                }
                let Some(data) = self.uploads.get_mut(id) else {
                    return (404, vec![tus]);
                };
                let offset: usize = req.header("upload-offset").unwrap().parse().unwrap();
                if offset != data.len() {
                    return (409, vec![tus]);
                }
                if let Some(checksum) = req.header("upload-checksum") {
                    let digest = sha1::Sha1::digest(&req.body);
                    let expected = format!(
                        "sha1 {}",
                        base64::engine::general_purpose::STANDARD.encode(digest)
                    );
                    if checksum != expected {
                        return (460, vec![tus]);
                    }
                }
                if let Some(digest) = req.header("content-digest") {
                    let expected = format!(
                        "sha-256=:{}:",
                        base64::engine::general_purpose::STANDARD
                            .encode(sha2::Sha256::digest(&req.body))
                    );
                    if digest != expected {
                        return (460, Vec::new());
                    }
                }
                data.extend_from_slice(&req.body);
                (204, vec![tus, ("Upload-Offset", data.len().to_string())])
            }
            _ => (404, vec![tus]),
        }
    }
}

/// Serve `fake` on a free port of 127.0.0.1; the collection URL.
async fn serve(fake: Arc<Mutex<Fake>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/files/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                while let Some(req) = read_request(&mut read).await {
                    let (status, headers) = fake.lock().unwrap().handle(req);
                    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n");
                    for (k, v) in headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    if write.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

async fn read_request(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Request> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        read.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    read.read_exact(&mut body).await.ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// Records what the client reports.
#[derive(Default)]
struct Recorder {
    retries: Mutex<Vec<(Duration, String)>>,
    notices: Mutex<Vec<String>>,
}

impl Progress for Recorder {
    fn started(&self, _: u64, _: u64) {}
    fn advanced(&self, _: u64) {}
    fn retrying(&self, _: u32, delay: Duration, reason: &str) {
        self.retries
            .lock()
            .unwrap()
            .push((delay, reason.to_owned()));
    }
    fn notice(&self, text: &str) {
        self.notices.lock().unwrap().push(text.to_owned());
    }
    fn finished(&self, _: &str) {}
}

struct Case {
    _dir: tempfile::TempDir,
    data: Vec<u8>,
    options: UploadOptions,
    fake: Arc<Mutex<Fake>>,
    recorder: Arc<Recorder>,
}

async fn case(len: usize, setup: impl FnOnce(&mut Fake)) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.txt");
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let mut fake = Fake::new(len as u64);
    setup(&mut fake);
    let fake = Arc::new(Mutex::new(fake));
    let url = serve(fake.clone()).await;
    let mut options = UploadOptions::new(file, url);
    options.state_file = Some(dir.path().join("state.json"));
    options.timeout = Duration::from_secs(5);
    options.retry = RetryPolicy {
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        retry_after_cap: Duration::from_secs(5),
    };
    Case {
        _dir: dir,
        data,
        options,
        fake,
        recorder: Arc::new(Recorder::default()),
    }
}

impl Case {
    async fn run(&self) -> Result<tusk_client::Uploaded, ClientError> {
        tokio::time::timeout(
            PATIENCE,
            upload(self.options.clone(), self.recorder.clone()),
        )
        .await
        .expect("the upload did not end in time")
    }

    fn count(&self, method: &str) -> usize {
        let fake = self.fake.lock().unwrap();
        fake.requests.iter().filter(|r| r.method == method).count()
    }
}

#[tokio::test]
async fn busy_and_failing_answers_are_retried_honouring_retry_after() {
    let tus = || ("Tus-Resumable", "1.0.0".to_owned());
    let case = case(100_000, |fake| {
        fake.patch_script = VecDeque::from([
            (503, vec![tus(), ("Retry-After", "1".to_owned())]),
            (429, vec![tus()]),
            (423, vec![tus()]),
            (409, vec![tus()]),
            (500, vec![tus()]),
        ]);
    })
    .await;
    let started = tokio::time::Instant::now();
    let uploaded = case.run().await.expect("uploads");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After ignored"
    );
    assert!(uploaded.url.ends_with("/files/0"), "{}", uploaded.url);
    assert_eq!(case.fake.lock().unwrap().uploads[0], case.data);
    let retries = case.recorder.retries.lock().unwrap().clone();
    let reasons: Vec<&str> = retries.iter().map(|(_, r)| r.as_str()).collect();
    for status in ["503", "429", "423", "409", "500"] {
        assert!(reasons.iter().any(|r| r.contains(status)), "{reasons:?}");
    }
    assert!(retries[0].0 >= Duration::from_secs(1), "{retries:?}");
    // One HEAD after each failure, to learn the offset.
    assert_eq!(case.count("HEAD"), 5);
    assert_eq!(case.count("POST"), 1);
    assert!(!case.options.state_file.as_ref().unwrap().exists());
}

#[tokio::test]
async fn refusals_are_fatal_at_once() {
    for status in [400u16, 401, 403, 404, 413] {
        let case = case(10, |fake| fake.post_answer = Some((status, Vec::new()))).await;
        let err = case.run().await.expect_err("refused");
        assert!(
            matches!(err, ClientError::Refused { status: s, .. } if s == status),
            "{err}"
        );
        assert_eq!(err.exit_code(), tusk_client::EXIT_FAILED);
        assert_eq!(case.count("POST"), 1, "{status} was retried");
    }
}

#[tokio::test]
async fn max_retries_bounds_failures_in_a_row() {
    let case = case(10, |fake| {
        fake.post_answer = Some((503, Vec::new()));
    })
    .await;
    let mut options = case.options.clone();
    options.max_retries = Some(3);
    let err = upload(options, case.recorder.clone())
        .await
        .expect_err("gives up");
    assert!(
        matches!(err, ClientError::GaveUp { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(case.count("POST"), 4);
}

#[tokio::test]
async fn a_lost_upload_is_created_again() {
    let case = case(5000, |fake| {
        fake.patch_script = VecDeque::from([(410, Vec::new())]);
    })
    .await;
    let uploaded = case.run().await.expect("uploads");
    assert!(uploaded.url.ends_with("/files/1"), "{}", uploaded.url);
    assert_eq!(case.fake.lock().unwrap().uploads[1], case.data);
    let notices = case.recorder.notices.lock().unwrap().clone();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("no longer has the upload")),
        "{notices:?}"
    );
}

#[tokio::test]
async fn chunks_carry_sha1_checksums_when_offered() {
    let case = case(10_000, |fake| fake.extensions = "creation,checksum").await;
    let mut options = case.options.clone();
    options.chunk_size = Some(3000);
    options.metadata = vec![("k".into(), "v".into())];
    upload(options, case.recorder.clone())
        .await
        .expect("uploads");
    let fake = case.fake.lock().unwrap();
    assert_eq!(fake.uploads[0], case.data);
    let patches: Vec<&Request> = fake
        .requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    let sizes: Vec<usize> = patches.iter().map(|r| r.body.len()).collect();
    assert_eq!(sizes, [3000, 3000, 3000, 1000]);
    assert!(
        patches
            .iter()
            .all(|r| r.header("upload-checksum").is_some())
    );
    let post = fake.requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        post.header("upload-metadata"),
        Some("filename ZGF0YS50eHQ=,filetype dGV4dC9wbGFpbg==,k dg==")
    );
    assert_eq!(post.header("upload-length"), Some("10000"));
}

#[tokio::test]
async fn no_checksums_without_the_extension_or_a_chunk_size() {
    let case = case(10_000, |fake| fake.extensions = "creation").await;
    let mut options = case.options.clone();
    options.chunk_size = Some(4000);
    upload(options, case.recorder.clone())
        .await
        .expect("uploads");
    {
        let fake = case.fake.lock().unwrap();
        assert!(
            fake.requests
                .iter()
                .all(|r| r.header("upload-checksum").is_none())
        );
    }
    let case = self::case(10_000, |fake| fake.extensions = "creation,checksum").await;
    case.run().await.expect("uploads");
    let fake = case.fake.lock().unwrap();
    assert!(fake.requests.iter().all(|r| r.method != "OPTIONS"));
    assert!(
        fake.requests
            .iter()
            .all(|r| r.header("upload-checksum").is_none())
    );
}

#[tokio::test]
async fn parallel_without_concatenation_falls_back_to_one_upload() {
    let case = case(10_000, |fake| fake.extensions = "creation").await;
    let mut options = case.options.clone();
    options.parallel = 4;
    upload(options, case.recorder.clone())
        .await
        .expect("uploads");
    assert_eq!(case.count("POST"), 1);
    assert_eq!(case.fake.lock().unwrap().uploads[0], case.data);
    let notices = case.recorder.notices.lock().unwrap().clone();
    assert!(
        notices.iter().any(|n| n.contains("concatenation")),
        "{notices:?}"
    );
}

#[tokio::test]
async fn an_offset_past_the_bytes_sent_breaks_the_protocol() {
    let tus = || ("Tus-Resumable", "1.0.0".to_owned());
    let case = case(100, |fake| {
        fake.patch_script = VecDeque::from([(204, vec![tus(), ("Upload-Offset", "5000".into())])]);
    })
    .await;
    let err = case.run().await.expect_err("protocol error");
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    // The state stays: the same command may resume once the server is fixed.
    assert!(case.options.state_file.as_ref().unwrap().exists());
}

#[tokio::test]
async fn an_empty_file_is_one_creation() {
    let case = case(0, |_| {}).await;
    let uploaded = case.run().await.expect("uploads");
    assert_eq!(uploaded.length, 0);
    assert_eq!(case.count("POST"), 1);
    assert_eq!(case.count("PATCH"), 0);
}

#[tokio::test]
async fn ietf_requests_speak_the_draft_and_the_last_append_completes() {
    let case = case(10_000, |fake| {
        // The second PATCH is told its offset is wrong, as the draft says it: 409 with the
        // right offset.
        fake.patch_script = VecDeque::from([
            (204, vec![("Upload-Offset", "0".into())]),
            (409, vec![("Upload-Offset", "0".into())]),
        ]);
    })
    .await;
    let mut options = case.options.clone();
    options.protocol = Protocol::IetfDraft;
    options.chunk_size = Some(3000);
    options.max_retries = Some(5);
    upload(options, case.recorder.clone())
        .await
        .expect("uploads");
    let fake = case.fake.lock().unwrap();
    assert_eq!(fake.uploads[0], case.data);
    // No discovery: Content-Digest needs none and there is nothing else to learn.
    assert!(fake.requests.iter().all(|r| r.method != "OPTIONS"));
    for r in &fake.requests {
        assert_eq!(r.header("upload-draft-interop-version"), Some("8"), "{r:?}");
        assert_eq!(r.header("tus-resumable"), None, "{r:?}");
        assert_eq!(r.header("upload-checksum"), None, "{r:?}");
    }
    let post = fake.requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.header("upload-complete"), Some("?0"));
    assert_eq!(post.header("upload-length"), Some("10000"));
    assert_eq!(post.header("content-length"), Some("0"));
    assert!(post.header("upload-metadata").is_some(), "{post:?}");
    let patches: Vec<&Request> = fake
        .requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    let sent: Vec<(&str, usize, &str)> = patches
        .iter()
        .map(|r| {
            assert_eq!(r.header("content-type"), Some("application/partial-upload"));
            assert!(r.header("content-digest").is_some(), "{r:?}");
            (
                r.header("upload-offset").unwrap(),
                r.body.len(),
                r.header("upload-complete").unwrap(),
            )
        })
        .collect();
    // Only the request carrying the last byte says it completes the upload.
    assert_eq!(
        sent,
        [
            ("0", 3000, "?0"),
            ("0", 3000, "?0"),
            ("0", 3000, "?0"),
            ("3000", 3000, "?0"),
            ("6000", 3000, "?0"),
            ("9000", 1000, "?1"),
        ]
    );
    // After the 204 that stored nothing and after the 409: a HEAD each.
    assert_eq!(
        fake.requests.iter().filter(|r| r.method == "HEAD").count(),
        2
    );
}

#[tokio::test]
async fn ietf_refuses_parallel_uploads_before_any_request() {
    let case = case(10_000, |fake| fake.extensions = "creation,concatenation").await;
    let mut options = case.options.clone();
    options.protocol = Protocol::IetfDraft;
    options.parallel = 2;
    let err = upload(options, case.recorder.clone())
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::Usage(_)), "{err}");
    assert_eq!(err.exit_code(), tusk_client::EXIT_USAGE);
    assert!(err.to_string().contains("concatenation"), "{err}");
    assert!(case.fake.lock().unwrap().requests.is_empty());
}
