//! A raw HTTP/1.1 client over a tokio `TcpStream`: the checks need exact control of what goes on
//! the wire (duplicate headers, bytes past `Content-Length`, bodies cut by FIN or RST), which a
//! general-purpose client would tidy away.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not one this client can speak to.
    #[error("unsupported URL {url:?}: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// Connecting, writing or reading failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within the per-request timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection before a complete response head.
    #[error("connection closed before a complete response ({0} bytes received)")]
    Closed(usize),
    /// The response is not HTTP/1.x as this client reads it.
    #[error("malformed response: {0}")]
    Malformed(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> HttpError {
    move |source| HttpError::Io { what, source }
}

/// An `http://` URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host as written (a name, an IPv4 address or a bracketed IPv6 address).
    pub host: String,
    /// TCP port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses an absolute `http://` URL; `https://` and others are refused.
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let refuse = |why| HttpError::Url {
            url: text.to_owned(),
            why,
        };
        let rest = if let Some(rest) = text.strip_prefix("http://") {
            rest
        } else if text.starts_with("https://") {
            return Err(refuse(
                "https is not supported: the raw checks write exact bytes on a plain TCP connection; point it at the server's http listener (or a local TLS-terminating proxy's backend)",
            ));
        } else {
            return Err(refuse("expected an http:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(refuse("expected http://host[:port]/path"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| refuse("unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| refuse("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(refuse("bad authority")),
            };
            (format!("[{addr}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| refuse("bad port"))?),
                None => (authority.to_owned(), 80),
            }
        };
        Ok(Url {
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host without IPv6 brackets, for name resolution.
    pub fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// `reference` (a `Location`, absolute or relative) resolved against this URL.
    pub fn join(&self, reference: &str) -> Result<Url, HttpError> {
        // Absolute only if a scheme comes before the first `/` (a query may hold `://`).
        if reference
            .split('/')
            .next()
            .is_some_and(|first| first.len() > 1 && first.ends_with(':'))
        {
            return Url::parse(reference);
        }
        let path = if reference.starts_with("//") {
            return Url::parse(&format!("http:{reference}"));
        } else if reference.starts_with('/') {
            reference.to_owned()
        } else {
            let dir = match self.path.rfind('/') {
                Some(at) => &self.path[..=at],
                None => "/",
            };
            format!("{dir}{reference}")
        };
        Ok(Url {
            path,
            ..self.clone()
        })
    }

    /// This URL with `path` instead of its own.
    pub fn with_path(&self, path: String) -> Url {
        Url {
            path,
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

/// One request, written verbatim: headers in order (duplicates kept), `Content-Length` from the
/// body unless overridden, optional bytes after the body.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method token as sent.
    pub method: String,
    /// Where it goes.
    pub url: Url,
    /// Headers in order, after `Host` (and `Content-Length`, unless chunked).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// A `Content-Length` other than the body's length; `None`: the body's.
    pub content_length: Option<u64>,
    /// Send the body chunked with these trailer fields instead of `Content-Length`.
    pub trailers: Option<Vec<(String, String)>>,
    /// Bytes written right after the body (past `Content-Length`).
    pub extra: Vec<u8>,
    /// Add `Connection: close` (the default); off to let the server read past the body.
    pub close: bool,
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: &str, url: &Url) -> Request {
        Request {
            method: method.to_owned(),
            url: url.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            content_length: None,
            trailers: None,
            extra: Vec::new(),
            close: true,
        }
    }

    /// Adds a header (a second one with the same name is sent as a second line).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Adds `Tus-Resumable: 1.0.0`.
    pub fn tus(self) -> Request {
        self.header("Tus-Resumable", "1.0.0")
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }

    /// The request head (request line and headers) as written.
    pub fn head(&self) -> String {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method,
            self.url.path,
            self.url.authority()
        );
        match &self.trailers {
            Some(trailers) => {
                head.push_str("Transfer-Encoding: chunked\r\n");
                if !trailers.is_empty() {
                    let names: Vec<&str> = trailers.iter().map(|(n, _)| n.as_str()).collect();
                    let _ = write!(head, "Trailer: {}\r\n", names.join(", "));
                }
            }
            None => {
                let length = self.content_length.unwrap_or(self.body.len() as u64);
                let _ = write!(head, "Content-Length: {length}\r\n");
            }
        }
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        head
    }

    /// Everything this request puts on the wire.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = self.head().into_bytes();
        match &self.trailers {
            Some(trailers) => {
                if !self.body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                    out.extend_from_slice(&self.body);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(&self.body),
        }
        out.extend_from_slice(&self.extra);
        out
    }
}

/// A response as received.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The status line as received.
    pub status_line: String,
    /// Headers in order, names as received.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The `1xx` interim responses received before this one, in order.
    pub interim: Vec<Response>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Header `name` parsed as a non-negative integer, if present and valid.
    pub fn number(&self, name: &str) -> Option<u64> {
        self.header(name).and_then(|v| v.trim().parse().ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Limits on one exchange.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bound on connecting, writing and reading the response.
    pub timeout: Duration,
    /// Largest body read; longer bodies are an error.
    pub max_body: usize,
}

/// Connects to `url`'s host within `timeout`.
pub async fn connect(url: &Url, timeout: Duration) -> Result<TcpStream, HttpError> {
    let target = (url.bare_host().to_owned(), url.port);
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(stream) => {
            let stream = stream.map_err(io("connect"))?;
            // Small writes (a head, then a few body bytes) must leave at once.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Err(_) => Err(HttpError::Timeout(timeout)),
    }
}

/// Sends `request` on a fresh connection and reads the response.
pub async fn send(request: &Request, limits: Limits) -> Result<Response, HttpError> {
    let mut stream = connect(&request.url, limits.timeout).await?;
    let wire = request.wire();
    let exchange = async {
        // A server may answer (and close) before reading the whole body: still read its answer.
        let written = stream.write_all(&wire).await;
        let _ = stream.flush().await;
        match read_response(&mut stream, &request.method, limits.max_body).await {
            Ok(response) => Ok(response),
            Err(err) => match written {
                Err(source) => Err(HttpError::Io {
                    what: "write",
                    source,
                }),
                Ok(()) => Err(err),
            },
        }
    };
    tokio::time::timeout(limits.timeout, exchange)
        .await
        .map_err(|_| HttpError::Timeout(limits.timeout))?
}

/// Reads one response from `stream`; the `1xx` interim ones before it are kept in
/// [`Response::interim`].
pub async fn read_response(
    stream: &mut TcpStream,
    method: &str,
    max_body: usize,
) -> Result<Response, HttpError> {
    read_response_from(stream, Vec::new(), Vec::new(), method, max_body).await
}

/// [`read_response`] with bytes already read (`buf`) and interim responses already received.
async fn read_response_from(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    mut interim: Vec<Response>,
    method: &str,
    max_body: usize,
) -> Result<Response, HttpError> {
    loop {
        let (mut response, rest) = read_head(stream, &mut buf).await?;
        if (100..200).contains(&response.status) {
            if interim.len() >= MAX_INTERIM {
                return Err(HttpError::Malformed(format!(
                    "more than {MAX_INTERIM} interim responses"
                )));
            }
            interim.push(response);
            buf = rest;
            continue;
        }
        response.interim = interim;
        let bodiless = method == "HEAD" || response.status == 204 || response.status == 304;
        if bodiless {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        response.body = if chunked {
            read_chunked(stream, rest, max_body).await?
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed(format!("Content-Length {length:?}")))?;
            if length > max_body {
                return Err(HttpError::Malformed(format!(
                    "body of {length} bytes exceeds the {max_body}-byte read limit"
                )));
            }
            let mut body = rest;
            body.truncate(length);
            while body.len() < length {
                let mut chunk = vec![0u8; (length - body.len()).min(1 << 16)];
                let n = stream.read(&mut chunk).await.map_err(io("read body"))?;
                if n == 0 {
                    return Err(HttpError::Malformed(format!(
                        "body ended after {} of {length} bytes",
                        body.len()
                    )));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body
        } else {
            let mut body = rest;
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                let n = stream.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
                if body.len() > max_body {
                    return Err(HttpError::Malformed("body exceeds the read limit".into()));
                }
            }
            body
        };
        return Ok(response);
    }
}

const MAX_HEAD: usize = 1 << 20;
/// Interim (1xx) responses accepted before one final response: a server sending them for ever
/// must not grow the list until the timeout.
const MAX_INTERIM: usize = 64;

async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(Response, Vec<u8>), HttpError> {
    let mut chunk = vec![0u8; 8192];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::Malformed("response head over 1 MiB".into()));
        }
        let n = stream.read(&mut chunk).await.map_err(io("read"))?;
        if n == 0 {
            return Err(HttpError::Closed(buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end + 4..].to_vec();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed(format!("status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    Ok((
        Response {
            status,
            status_line,
            headers,
            body: Vec::new(),
            interim: Vec::new(),
        },
        rest,
    ))
}

async fn read_chunked(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    max_body: usize,
) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    // Bounded: every pass consumes input or reads more, and reads end at EOF or the size cap.
    loop {
        let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
            if buf.len() > MAX_HEAD {
                return Err(HttpError::Malformed("a chunk-size line over 1 MiB".into()));
            }
            let n = stream.read(&mut chunk).await.map_err(io("read chunk"))?;
            if n == 0 {
                return Err(HttpError::Malformed("chunked body ended early".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {size_text:?}")))?;
        if size == 0 {
            return Ok(body);
        }
        // Compared without adding: a server's size near usize::MAX must not wrap around.
        if size > max_body.saturating_sub(body.len()) {
            return Err(HttpError::Malformed("body exceeds the read limit".into()));
        }
        let need = line_end + 2 + size + 2;
        while buf.len() < need {
            let n = stream.read(&mut chunk).await.map_err(io("read chunk"))?;
            if n == 0 {
                return Err(HttpError::Malformed("chunked body ended early".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
        buf.drain(..need);
    }
}

/// A request whose body is written piece by piece, for cuts and races.
#[derive(Debug)]
pub struct Streaming {
    stream: TcpStream,
    method: String,
    sent: u64,
    /// Bytes read past the interim responses taken so far.
    buf: Vec<u8>,
    /// Interim responses taken so far, handed to the final response.
    interim: Vec<Response>,
}

impl Streaming {
    /// Connects and writes `request`'s head (its `content_length` announced, no body).
    pub async fn open(request: &Request, timeout: Duration) -> Result<Streaming, HttpError> {
        let mut stream = connect(&request.url, timeout).await?;
        let head = request.head();
        tokio::time::timeout(timeout, stream.write_all(head.as_bytes()))
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
            .map_err(io("write head"))?;
        Ok(Streaming {
            stream,
            method: request.method.clone(),
            sent: 0,
            buf: Vec::new(),
            interim: Vec::new(),
        })
    }

    /// Body bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Writes `data` within `timeout`.
    pub async fn write(&mut self, data: &[u8], timeout: Duration) -> Result<(), HttpError> {
        tokio::time::timeout(timeout, self.stream.write_all(data))
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
            .map_err(io("write body"))?;
        self.sent += data.len() as u64;
        Ok(())
    }

    /// Waits (up to `timeout`) until the server's kernel acknowledged every byte written.
    /// Returns false when that cannot be observed (no `/proc/net/tcp`), after a short grace
    /// period instead.
    pub async fn wait_acknowledged(&self, timeout: Duration) -> Result<bool, HttpError> {
        let local = self.stream.local_addr().map_err(io("local address"))?;
        let peer = self.stream.peer_addr().map_err(io("peer address"))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match unacknowledged_bytes(local, peer) {
                Some(0) => return Ok(true),
                Some(_) => {}
                None => {
                    tokio::time::sleep(Duration::from_millis(500).min(timeout)).await;
                    return Ok(false);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HttpError::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Reads the next response head within `timeout` while the body is still being sent: an
    /// interim (`1xx`) response, kept for [`Streaming::response`] too. `Ok(None)` when none
    /// arrived in time; an error when the server answered with a final response instead.
    pub async fn interim(&mut self, timeout: Duration) -> Result<Option<Response>, HttpError> {
        let mut buf = std::mem::take(&mut self.buf);
        let read = tokio::time::timeout(timeout, read_head(&mut self.stream, &mut buf)).await;
        let Ok(read) = read else {
            self.buf = buf;
            return Ok(None);
        };
        let (response, rest) = read?;
        self.buf = rest;
        if !(100..200).contains(&response.status) {
            return Err(HttpError::Malformed(format!(
                "final response {:?} before the body was sent",
                response.status_line
            )));
        }
        self.interim.push(response.clone());
        Ok(Some(response))
    }

    /// Reads the response within `timeout`.
    pub async fn response(mut self, timeout: Duration) -> Result<Response, HttpError> {
        let method = self.method.clone();
        let read = read_response_from(
            &mut self.stream,
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.interim),
            &method,
            1 << 20,
        );
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
    }

    /// Ends the body early with a FIN (half-close), then reads whatever the server answers
    /// within `timeout`.
    pub async fn cut_fin(mut self, timeout: Duration) -> Option<Response> {
        let _ = self.stream.shutdown().await;
        self.response(timeout).await.ok()
    }

    /// Resets the connection (`SO_LINGER` 0, then close): the server's kernel drops it at once.
    pub fn cut_rst(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        drop(self.stream);
    }
}

/// `tx_queue` of the TCP socket `local` -> `peer` from `/proc/net/tcp{,6}`: bytes sent but not
/// yet acknowledged. `None` when the table cannot be read or the socket is not listed.
fn unacknowledged_bytes(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let table = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (l, r, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        if parse_proc_addr(l)? != local || parse_proc_addr(r)? != peer {
            return None;
        }
        let (tx, _) = queues.split_once(':')?;
        u64::from_str_radix(tx, 16).ok()
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6, four 32-bit words in kernel order) with a
/// hex port, as a socket address.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if addr.len() == 8 {
        let word = u32::from_str_radix(addr, 16).ok()?;
        return Some(SocketAddr::from((
            std::net::Ipv4Addr::from(word.to_ne_bytes()),
            port,
        )));
    }
    if addr.len() == 32 {
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
            bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
        return Some(SocketAddr::from((std::net::Ipv6Addr::from(bytes), port)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_join() {
        let url = Url::parse("http://127.0.0.1:8080/files/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.authority(), "127.0.0.1:8080");
        assert_eq!(
            url.join("abc").map(|u| u.to_string()).ok(),
            Some("http://127.0.0.1:8080/files/abc".into())
        );
        assert_eq!(
            url.join("/x/y").map(|u| u.path).ok(),
            Some("/x/y".to_owned())
        );
        assert!(Url::parse("https://example.com/").is_err());
        let v6 = Url::parse("http://[::1]:9/a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.bare_host(), "::1");
        // A relative reference whose query holds a URL stays relative.
        assert_eq!(
            url.join("/files/a?from=http://x/y").map(|u| u.path).ok(),
            Some("/files/a?from=http://x/y".to_owned())
        );
    }

    /// A server on 127.0.0.1 that answers every connection with `answer`, then closes.
    async fn hostile(answer: &'static [u8]) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut head = [0u8; 4096];
                let _ = conn.read(&mut head).await;
                let _ = conn.write_all(answer).await;
            }
        });
        Url::parse(&format!("http://127.0.0.1:{port}/files/")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// What a misbehaving server sends is an error of the run, never a panic or a wait until
    /// the timeout.
    #[tokio::test]
    async fn hostile_answers_are_errors() {
        let limits = Limits {
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
        };
        let overflow: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            4\r\nabcd\r\nffffffffffffffff\r\n";
        let url = hostile(overflow).await;
        let err = send(&Request::new("GET", &url), limits).await.unwrap_err();
        assert!(err.to_string().contains("read limit"), "{err}");

        let endless: &'static [u8] = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(100).leak();
        let url = hostile(endless).await;
        let err = send(&Request::new("GET", &url), limits).await.unwrap_err();
        assert!(err.to_string().contains("interim responses"), "{err}");
    }

    #[test]
    fn proc_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            "127.0.0.1:8080".parse().ok()
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:0050"),
            "[::1]:80".parse().ok()
        );
    }
}
