//! The upload requests (OPTIONS, POST, HEAD, PATCH) over reqwest, in tus 1.0 or the IETF
//! draft (the headers in which they differ come from [`Protocol`]), each bounded in time, and
//! what their failures mean for the caller: try again, start over, or stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::time::Instant;

use crate::ClientError;
use crate::error::chain_text;
use crate::protocol::{ChecksumHeader, Protocol, parse_sf_boolean};
use crate::retry::parse_retry_after;

/// At most this much of an error response's body is read, to quote it.
const ERROR_BODY_LIMIT: usize = 4096;
/// At most this much of it is quoted.
const ERROR_QUOTE_LIMIT: usize = 300;

/// How a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt after a pause: the connection broke or hung, the server is
    /// failing or busy (5xx, 408, 423, 429), our offset was stale (409), a checksum did not
    /// match (460).
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server no longer has this upload (404 or 410 on its URL).
    Lost { status: u16 },
    /// No retry will help.
    Fatal(ClientError),
}

/// What the server offers, from OPTIONS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// `Tus-Extension` includes `concatenation`.
    pub concatenation: bool,
    /// The server checks the checksums this client sends: for tus, `Tus-Extension` includes
    /// `checksum` and `Tus-Checksum-Algorithm` includes `sha1`.
    pub checksum: bool,
}

impl Capabilities {
    /// What a draft server is taken to offer without asking: no concatenation (the draft has
    /// none), and `Content-Digest`, which needs no discovery (RFC 9530: a server that does not
    /// check it ignores it).
    pub(crate) fn of_draft() -> Capabilities {
        Capabilities {
            concatenation: false,
            checksum: true,
        }
    }
}

/// The state of an upload, from HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub offset: u64,
    pub length: Option<u64>,
    /// The draft's `Upload-Complete` (tus has no such header).
    pub complete: Option<bool>,
}

/// When a streaming request last moved: the body gave the connection more bytes. A request
/// that does not move for the stall timeout is abandoned, however long it has run in all.
#[derive(Debug)]
pub(crate) struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout`.
    async fn stalled(&self, timeout: Duration) {
        loop {
            let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = last + timeout;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// An upload client for one endpoint: reqwest, the protocol, the user's headers, the timeout.
pub(crate) struct Client {
    http: reqwest::Client,
    protocol: Protocol,
    headers: HeaderMap,
    timeout: Duration,
}

/// Parse `--header 'Name: value'` arguments. Errors name the header, never its value, which is
/// often a secret.
pub(crate) fn parse_headers(headers: &[String]) -> Result<HeaderMap, ClientError> {
    let mut map = HeaderMap::new();
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            let name: String = header
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            return Err(ClientError::Usage(format!(
                "--header {name:?}...: expected 'Name: value'"
            )));
        };
        let name = name.trim();
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ClientError::Usage(format!("--header: {name:?} is not a valid header name"))
        })?;
        let mut header_value = HeaderValue::from_str(value.trim()).map_err(|_| {
            ClientError::Usage(format!(
                "--header {name}: the value is not a valid header value"
            ))
        })?;
        // Kept out of reqwest's and our Debug output.
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

impl Client {
    /// A client speaking `protocol`, sending `headers` with every request; `timeout` bounds
    /// connecting, each small request, and each PATCH's stalls.
    pub(crate) fn new(
        protocol: Protocol,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .http1_only()
            .connect_timeout(timeout)
            // A dead peer behind a NAT shows up in keepalives even while we only wait.
            .tcp_keepalive(Some(Duration::from_secs(15)))
            .pool_idle_timeout(Duration::from_secs(30))
            // A redirected POST turns into a GET; say so instead of following.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tusk-upload/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Http)?;
        Ok(Client {
            http,
            protocol,
            headers,
            timeout,
        })
    }

    /// The protocol the requests speak.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        let (name, value) = self.protocol.version_header();
        self.http
            .request(method, url.clone())
            .headers(self.headers.clone())
            .header(name, value)
    }

    /// Send a small request, bounded by the timeout as a whole.
    async fn send_small(&self, req: reqwest::RequestBuilder) -> Result<Response, Failure> {
        req.timeout(self.timeout).send().await.map_err(transport)
    }

    /// OPTIONS on the collection: what the server offers. A server that does not answer
    /// OPTIONS (it is optional for clients to use) offers nothing beyond the core.
    pub(crate) async fn options(&self, endpoint: &Url) -> Result<Capabilities, Failure> {
        let resp = self
            .send_small(self.request(Method::OPTIONS, endpoint))
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return match classify("OPTIONS", resp, false).await {
                Failure::Fatal(_) => Ok(Capabilities::default()),
                other => Err(other),
            };
        }
        let list = |name: &str| -> Vec<String> {
            resp.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_ascii_lowercase())
                .collect()
        };
        let extensions = list("tus-extension");
        let algorithms = list("tus-checksum-algorithm");
        Ok(Capabilities {
            concatenation: extensions.iter().any(|e| e == "concatenation"),
            checksum: extensions.iter().any(|e| e == "checksum")
                && algorithms.iter().any(|a| a == "sha1"),
        })
    }

    /// POST to the collection: a new upload; its URL (the `Location`, resolved against the
    /// endpoint). `length` is `None` for a final upload, whose length the server sums.
    pub(crate) async fn create(
        &self,
        endpoint: &Url,
        length: Option<u64>,
        metadata: Option<&str>,
        concat: Option<&str>,
    ) -> Result<Url, Failure> {
        let req = self.create_request(endpoint, length, metadata, concat);
        let resp = self.send_small(req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(classify("POST", resp, false).await);
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| protocol("201 Created without a Location header"))?;
        endpoint
            .join(location)
            .map_err(|e| protocol(&format!("Location {location:?} is not a URL ({e})")))
    }

    /// The POST of [`Client::create`]: without content (the draft's careful creation: its
    /// content comes in PATCHes, and the URL is known before any byte is sent). tusk and
    /// tus-js-client carry the metadata in `Upload-Metadata` on draft creations too.
    fn create_request(
        &self,
        endpoint: &Url,
        length: Option<u64>,
        metadata: Option<&str>,
        concat: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .request(Method::POST, endpoint)
            .header(reqwest::header::CONTENT_LENGTH, "0");
        for (name, value) in self.protocol.creation_headers() {
            req = req.header(*name, *value);
        }
        if let Some(length) = length {
            req = req.header("Upload-Length", length.to_string());
        }
        if let Some(metadata) = metadata.filter(|m| !m.is_empty()) {
            req = req.header("Upload-Metadata", metadata);
        }
        if let Some(concat) = concat {
            req = req.header("Upload-Concat", concat);
        }
        req
    }

    /// HEAD of an upload: its offset and length (tus answers 200, the draft 204).
    pub(crate) async fn head(&self, url: &Url) -> Result<Head, Failure> {
        let resp = self.send_small(self.request(Method::HEAD, url)).await?;
        if !resp.status().is_success() {
            return Err(classify("HEAD", resp, true).await);
        }
        let offset = number(&resp, "upload-offset")?
            .ok_or_else(|| protocol("HEAD answered without Upload-Offset"))?;
        let complete = match resp.headers().get("upload-complete") {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(parse_sf_boolean)
                    .ok_or_else(|| protocol("Upload-Complete is not ?0 or ?1"))?,
            ),
        };
        Ok(Head {
            offset,
            length: number(&resp, "upload-length")?,
            complete,
        })
    }

    /// PATCH `len` bytes of `body` at `offset` (`completes`: they end the upload): the offset
    /// the server reports after it. Not bounded as a whole (a big PATCH on a slow link takes as
    /// long as it takes) but by `activity`: it is abandoned once nothing moved for the timeout.
    pub(crate) async fn patch(
        &self,
        url: &Url,
        append: Append<'_>,
        body: reqwest::Body,
        activity: &Activity,
    ) -> Result<u64, Failure> {
        let req = self.patch_request(url, &append);
        activity.touch();
        let resp = tokio::select! {
            resp = req.body(body).send() => resp.map_err(transport)?,
            () = activity.stalled(self.timeout) => {
                return Err(Failure::Transient {
                    reason: format!("PATCH made no progress for {:?}", self.timeout),
                    retry_after: None,
                });
            }
        };
        if resp.status() != StatusCode::NO_CONTENT && !resp.status().is_success() {
            return Err(classify("PATCH", resp, true).await);
        }
        number(&resp, "upload-offset")?
            .ok_or_else(|| protocol("PATCH answered without Upload-Offset"))
    }

    /// The PATCH of [`Client::patch`], without its body.
    fn patch_request(&self, url: &Url, append: &Append<'_>) -> reqwest::RequestBuilder {
        let mut req = self
            .request(Method::PATCH, url)
            .header(
                reqwest::header::CONTENT_TYPE,
                self.protocol.append_media_type(),
            )
            .header(reqwest::header::CONTENT_LENGTH, append.len.to_string())
            .header("Upload-Offset", append.offset.to_string());
        for (name, value) in self.protocol.append_headers(append.completes) {
            req = req.header(name, value);
        }
        if let Some(checksum) = append.checksum {
            req = req.header(checksum.name, checksum.value.as_str());
        }
        req
    }
}

/// What one PATCH sends, besides its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Append<'a> {
    /// Where its bytes go in the upload.
    pub offset: u64,
    /// How many bytes the body holds.
    pub len: u64,
    /// The body holds the upload's last byte.
    pub completes: bool,
    pub checksum: Option<&'a ChecksumHeader>,
}

fn protocol(what: &str) -> Failure {
    Failure::Fatal(ClientError::Protocol(what.to_owned()))
}

/// A header that must be a decimal integer if present.
fn number(resp: &Response, name: &str) -> Result<Option<u64>, Failure> {
    let Some(value) = resp.headers().get(name) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| protocol(&format!("{name} is not a number")))
}

/// A request that got no response: always worth another attempt, except a request reqwest
/// could not even build (a bad URL).
fn transport(err: reqwest::Error) -> Failure {
    if err.is_builder() {
        return Failure::Fatal(ClientError::Usage(chain_text(&err)));
    }
    let reason = if err.is_timeout() {
        format!("timed out: {}", chain_text(&err))
    } else {
        chain_text(&err)
    };
    Failure::Transient {
        reason,
        retry_after: None,
    }
}

/// What an unsuccessful status means. `on_upload`: the URL is an upload's, so 404/410 mean
/// the server lost it (on the collection they mean a wrong URL, which is fatal).
async fn classify(method: &'static str, resp: Response, on_upload: bool) -> Failure {
    let status = resp.status();
    let code = status.as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let message = error_text(resp).await;
    match code {
        404 | 410 if on_upload => Failure::Lost { status: code },
        408 | 409 | 423 | 429 | 460 | 500..=599 => Failure::Transient {
            reason: format!("{method} answered {status}{}", quote(&message)),
            retry_after,
        },
        300..=399 => Failure::Fatal(ClientError::Refused {
            method,
            status: code,
            message: format!(
                "redirected to {}; give that URL instead",
                location.unwrap_or_else(|| "somewhere".into())
            ),
        }),
        _ => Failure::Fatal(ClientError::Refused {
            method,
            status: code,
            message,
        }),
    }
}

fn quote(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// The start of an error response's body, on one line (bounded read, bounded wait).
async fn error_text(mut resp: Response) -> String {
    let mut body = Vec::new();
    let read = async {
        while body.len() < ERROR_BODY_LIMIT {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    let text = String::from_utf8_lossy(&body);
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(ERROR_QUOTE_LIMIT)
        .collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_errors_never_show_values() {
        let map = parse_headers(&[
            "Authorization: Bearer s3cret".into(),
            "X-A:b".into(),
            "X-A: c".into(),
        ])
        .expect("valid");
        assert_eq!(map.get_all("x-a").iter().count(), 2);
        assert!(map["authorization"].is_sensitive());
        assert!(!format!("{map:?}").contains("s3cret"));
        for bad in [
            "Authorization Bearer s3cret",
            "Bad Name: s3cret",
            "X: s3cret\u{1}",
        ] {
            let err = parse_headers(&[bad.into()]).expect_err(bad).to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    fn built(req: reqwest::RequestBuilder) -> Vec<(String, String)> {
        let req = req.build().expect("a request");
        req.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect()
    }

    fn has(headers: &[(String, String)], name: &str) -> Option<String> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn client(protocol: Protocol) -> Client {
        let headers = parse_headers(&["Authorization: Bearer t".into()]).expect("valid");
        Client::new(protocol, headers, Duration::from_secs(30)).expect("client")
    }

    #[test]
    fn draft_creations_are_careful_and_carry_the_interop_version() {
        let endpoint = Url::parse("http://h/files/").expect("url");
        let headers = built(client(Protocol::IetfDraft).create_request(
            &endpoint,
            Some(1000),
            Some("filename YS5iaW4="),
            None,
        ));
        let expected = [
            ("upload-draft-interop-version", "8"),
            ("upload-complete", "?0"),
            ("upload-length", "1000"),
            ("content-length", "0"),
            ("upload-metadata", "filename YS5iaW4="),
            ("authorization", "Bearer t"),
        ];
        for (name, value) in expected {
            assert_eq!(has(&headers, name).as_deref(), Some(value), "{headers:?}");
        }
        assert_eq!(has(&headers, "tus-resumable"), None, "{headers:?}");
        assert_eq!(has(&headers, "content-type"), None, "{headers:?}");

        let tus = built(client(Protocol::Tus).create_request(&endpoint, Some(1000), None, None));
        assert_eq!(has(&tus, "tus-resumable").as_deref(), Some("1.0.0"));
        assert_eq!(has(&tus, "upload-draft-interop-version"), None);
        assert_eq!(has(&tus, "upload-complete"), None);
    }

    #[test]
    fn draft_appends_say_partial_upload_and_which_one_completes() {
        let url = Url::parse("http://h/files/abc").expect("url");
        let digest = Protocol::IetfDraft.checksum_header(&[0u8; 32]);
        let draft = client(Protocol::IetfDraft);
        let middle = built(draft.patch_request(
            &url,
            &Append {
                offset: 100,
                len: 50,
                completes: false,
                checksum: Some(&digest),
            },
        ));
        let expected = [
            ("upload-draft-interop-version", "8"),
            ("content-type", "application/partial-upload"),
            ("upload-offset", "100"),
            ("content-length", "50"),
            ("upload-complete", "?0"),
            ("content-digest", digest.value.as_str()),
        ];
        for (name, value) in expected {
            assert_eq!(has(&middle, name).as_deref(), Some(value), "{middle:?}");
        }
        assert_eq!(has(&middle, "tus-resumable"), None);
        assert_eq!(has(&middle, "upload-checksum"), None);
        let last = built(draft.patch_request(
            &url,
            &Append {
                offset: 150,
                len: 50,
                completes: true,
                checksum: None,
            },
        ));
        assert_eq!(has(&last, "upload-complete").as_deref(), Some("?1"));
        assert_eq!(has(&last, "content-digest"), None);

        let tus = built(client(Protocol::Tus).patch_request(
            &url,
            &Append {
                offset: 150,
                len: 50,
                completes: true,
                checksum: None,
            },
        ));
        assert_eq!(
            has(&tus, "content-type").as_deref(),
            Some("application/offset+octet-stream")
        );
        assert_eq!(has(&tus, "upload-complete"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_stalls_only_after_a_quiet_timeout() {
        let activity = Activity::new();
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        let stalled = activity.stalled(timeout);
        tokio::pin!(stalled);
        tokio::time::sleep(Duration::from_secs(20)).await;
        activity.touch();
        stalled.as_mut().await;
        assert!(
            start.elapsed() >= Duration::from_secs(50),
            "{:?}",
            start.elapsed()
        );
    }
}
