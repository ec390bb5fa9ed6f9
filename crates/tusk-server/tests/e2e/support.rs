//! Spawning the real `tusk` binary and talking to it, including with a raw socket for bodies
//! that stall or break mid-way.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Upper bound on any wait for a condition; reaching it fails the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
pub const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

pub struct Server {
    pub child: Child,
    /// The collection URL, e.g. `http://127.0.0.1:PORT/files/`.
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Start `tusk serve` on a free port with a fresh data directory and extra `args`.
    pub async fn start(args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut server = Self::start_in(&dir, args).await;
        server._tmp = Some(tmp);
        server
    }

    /// Start `tusk serve` on a free port over an existing data directory.
    pub async fn start_in(data_dir: &Path, args: &[&str]) -> Server {
        Self::spawn(data_dir, args, &[]).await
    }

    /// Start `tusk serve` with `args` and extra environment `envs`.
    pub async fn spawn(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tusk"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tusk");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("tusk did not start in time")
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("tusk listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url,
            data_dir: data_dir.to_owned(),
            _tmp: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Create an upload of `length` bytes; returns its URL.
    pub async fn create(&self, length: u64) -> String {
        let resp = client()
            .post(&self.url)
            .header(TUS.0, TUS.1)
            .header("Upload-Length", length.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// POST to the collection with `headers` (tus version added); asserts 201, returns the
    /// upload's URL.
    pub async fn post(&self, headers: &[(&str, String)]) -> String {
        let mut req = client().post(&self.url).header(TUS.0, TUS.1);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// The stored bytes of the upload at `url`.
    pub fn stored(&self, url: &str) -> Vec<u8> {
        std::fs::read(self.data_dir.join(id_of(url))).unwrap()
    }

    /// The offset recorded in the upload's info file.
    pub fn recorded_offset(&self, url: &str) -> u64 {
        let text = std::fs::read(self.data_dir.join(format!("{}.info", id_of(url)))).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        v["offset"].as_u64().unwrap()
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Stop the server as an orchestrator does (SIGTERM) and wait until it has exited.
    pub async fn stop(mut self) {
        self.signal("TERM");
        let exit = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("tusk did not exit after SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

pub fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

fn offset_of(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// The `/metrics` scrape of the node whose upload collection is `files_url`.
pub async fn scrape(files_url: &str) -> String {
    let resp = client()
        .get(files_url.replace("/files/", "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET /metrics");
    resp.text().await.unwrap()
}

/// The value of the sample named exactly `series` (name and labels) in `scrape`.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// DELETE of an upload: its status.
pub async fn delete(url: &str) -> u16 {
    client()
        .delete(url)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// HEAD of an upload: (status, Upload-Offset).
pub async fn head(url: &str) -> (u16, Option<u64>) {
    let resp = client()
        .head(url)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), offset_of(&resp))
}

/// PATCH `data` at `offset`: (status, Upload-Offset).
pub async fn patch(url: &str, offset: u64, data: Vec<u8>) -> (u16, Option<u64>) {
    patch_with(url, offset, data, &[]).await
}

/// PATCH `data` at `offset` with extra `headers`: (status, Upload-Offset).
pub async fn patch_with(
    url: &str,
    offset: u64,
    data: Vec<u8>,
    headers: &[(&str, String)],
) -> (u16, Option<u64>) {
    let mut req = client()
        .patch(url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", offset.to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.body(data).send().await.unwrap();
    (resp.status().as_u16(), offset_of(&resp))
}

/// `Upload-Checksum: sha256 <digest of data>`.
pub fn sha256_checksum(data: &[u8]) -> (&'static str, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(data);
    (
        "Upload-Checksum",
        format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ),
    )
}

/// The whole upload at `url`, downloaded (GET must answer 200).
pub async fn download(url: &str) -> Vec<u8> {
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.bytes().await.unwrap().to_vec()
}

/// Wait (bounded) until `cond` holds.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deterministic bytes, position-dependent.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// A request written by hand over a socket, so a test controls exactly which body bytes are
/// sent, and when the connection stalls or breaks.
pub struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Send the head of `method url` with `headers` and `Content-Length: content_length`.
    pub async fn start(
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        content_length: u64,
    ) -> RawRequest {
        let rest = url.strip_prefix("http://").unwrap();
        let host = &rest[..rest.find('/').unwrap()];
        let mut stream = TcpStream::connect(host).await.unwrap();
        let head = request_head(method, url, headers, content_length);
        stream.write_all(head.as_bytes()).await.unwrap();
        RawRequest { stream }
    }

    /// A request already written on `stream` by other means.
    pub fn from_stream(stream: TcpStream) -> RawRequest {
        RawRequest { stream }
    }

    /// The head [`RawRequest::patch`] sends.
    pub fn patch_head(url: &str, offset: u64, content_length: u64) -> String {
        request_head("PATCH", url, &Self::patch_headers(offset), content_length)
    }

    fn patch_headers(offset: u64) -> [(&'static str, String); 3] {
        [
            (TUS.0, TUS.1.into()),
            (OCTETS.0, OCTETS.1.into()),
            ("Upload-Offset", offset.to_string()),
        ]
    }

    /// A tus PATCH head at `offset` announcing `content_length` body bytes.
    pub async fn patch(url: &str, offset: u64, content_length: u64) -> RawRequest {
        Self::start("PATCH", url, &Self::patch_headers(offset), content_length).await
    }

    pub async fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Send more body bytes if the server still reads them; a server that already answered
    /// may have closed the connection, which is fine here.
    pub async fn send_if_open(&mut self, data: &[u8]) {
        let _ = self.stream.write_all(data).await;
        let _ = self.stream.flush().await;
    }

    /// Read the response head (bounded wait): (status, headers lowercased).
    pub async fn response(mut self) -> (u16, Vec<(String, String)>) {
        let mut buf = Vec::new();
        let read = async {
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = self.stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("no response in time");
        let text = String::from_utf8_lossy(&buf);
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        (status, headers)
    }

    /// Close the connection abruptly, as a dropped mobile link would.
    pub fn cut(self) {
        drop(self.stream);
    }

    /// Wait (bounded) until the server's kernel has acknowledged every byte sent, then reset
    /// the connection (`SO_LINGER` 0, then close): the commonest death of a mobile link.
    pub async fn reset_when_acknowledged(self) {
        let local = self.stream.local_addr().unwrap();
        let peer = self.stream.peer_addr().unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while tusk_testkit::fault_proxy::unacknowledged_bytes(local, peer).unwrap() != Some(0) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never acknowledged the bytes sent"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        socket2::SockRef::from(&self.stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(self.stream);
    }
}

/// An HTTP/1.1 request head for `method url` with `headers` and `Content-Length`.
pub fn request_head(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    content_length: u64,
) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {content_length}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
