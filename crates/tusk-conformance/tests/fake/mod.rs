//! A small in-memory tus 1.0 server on tokio with its own HTTP/1.1 parsing, implementing every
//! extension (and the IETF draft, in `ietf.rs`) correctly unless a [`Defect`] switches one
//! behaviour off: each check is shown to fail against the defect that breaks what it enforces.

mod ietf;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha1::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// One deliberate protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    NoTusVersion,
    OptionsChecksVersion,
    BadExtensionList,
    BadMaxSize,
    NoTusResumableOnErrors,
    VersionNoTusVersionHeader,
    VersionProcessedAnyway,
    HeadNoOffsetWhenZero,
    HeadNoLength,
    HeadNoCacheControl,
    UnknownHead500,
    Patch200,
    PatchCorrupts,
    IgnoreOffset,
    AcceptAnyContentType,
    UnknownPatch500,
    NoMethodOverride,
    Create200,
    HeadNoMetadata,
    EmptyUploadRefused,
    MaxSizeNotEnforced,
    NoLengthAccepted,
    CreationBodyNoOffset,
    CreationBodyCorrupt,
    WithUploadWithoutCreation,
    DeferHeadNoHeader,
    DeferIgnoresPatchLength,
    DeferLengthChangeable,
    DeferAnyValue,
    Delete200,
    DeleteKeeps,
    NoChecksumAlgorithmHeader,
    ChecksumAlwaysMismatch,
    ChecksumNotVerified,
    UnknownAlgorithmAccepted,
    TrailerAlwaysMismatch,
    TrailerNotVerified,
    ExpiresBadFormat,
    ExpiresNotOnPatch,
    PartialHeadNoConcat,
    FinalHeadNoConcat,
    ConcatWrongOrder,
    FinalPatchAllowed,
    FinalInheritsMetadata,
    UnfinishedFinalRefused,
    UnfinishedFinalHasOffset,
    CorsNoPatchMethod,
    CorsNoExpose,
    GetCorrupt,
    RangeWrongContentRange,
    LenientLength,
    HugeLength500,
    LenientOffset,
    DuplicatesFirstWins,
    MalformedMetadata500,
    LargeMetadata500,
    MetadataAsHeaders,
    TraversalServed,
    AcceptPastLength,
    ReadPastContentLength,
    DiscardIncomplete,
    CorruptIncomplete,
    NoLocking,
    LockWaitsForever,
    HideTermination,
    // The IETF draft.
    IetfOptionsNoLimit,
    IetfLimitNotInteger,
    IetfCreateNoLocation,
    IetfCreateNoLimit,
    IetfCreate200,
    IetfCreateNoComplete,
    IetfCreationCompleteIgnored,
    IetfCreationDropsContent,
    IetfLengthsUnchecked,
    IetfNoLengthProblem,
    IetfNo104,
    Ietf104WrongLocation,
    Ietf104NoVersion,
    Ietf104NoLimit,
    Ietf104AnyVersion,
    Ietf104OnAppendWithLocation,
    IetfHeadNoOffset,
    IetfHeadNoComplete,
    IetfHeadNoLength,
    IetfHeadNoLimit,
    IetfHeadNoCacheControl,
    IetfHeadRedirect,
    IetfAppendNotApplied,
    IetfAppendNoComplete,
    IetfMismatchNoOffset,
    IetfMismatchNoProblem,
    IetfAppendCompleteIgnored,
    IetfAppendCorrupts,
    IetfDeleteKeeps,
    IetfDeleteRedirect,
    IetfAcceptPastLength,
    IetfCutCompletes,
    IetfStaleOffset,
}

const MAX_SIZE: u64 = 1 << 30;
const MAX_HEAD: usize = 64 * 1024;
const MAX_METADATA: usize = 4 * 1024;
const COLLECTION: &str = "/files/";

#[derive(Debug, Clone)]
enum Concat {
    Partial,
    Final { ids: Vec<String>, value: String },
}

#[derive(Debug, Clone, Default)]
struct Upload {
    data: Vec<u8>,
    offset: u64,
    length: Option<u64>,
    metadata: Option<String>,
    concat: Option<Concat>,
    locked: bool,
    /// IETF draft: completed by a request saying so.
    complete: bool,
    /// IETF draft: ends the transfer in flight, for a newer request on the upload.
    stop: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Default)]
struct State {
    uploads: HashMap<String, Upload>,
    next: u64,
}

/// A running fake server.
pub struct Fake {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Server {
    defect: Option<Defect>,
    state: Mutex<State>,
}

impl Server {
    fn has(&self, defect: Defect) -> bool {
        self.defect == Some(defect)
    }
}

impl Fake {
    /// Starts the fake on 127.0.0.1 with `defect` (or none).
    pub async fn start(defect: Option<Defect>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Arc::new(Server {
            defect,
            state: Mutex::new(State::default()),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(120),
                        serve_connection(server, stream),
                    )
                    .await;
                });
            }
        });
        Fake {
            url: format!("http://{addr}{COLLECTION}"),
            task,
        }
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; 0 at EOF or error.
    async fn fill(&mut self) -> usize {
        let mut chunk = vec![0u8; 65536];
        match tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            _ => 0,
        }
    }

    async fn take(&mut self, max: usize) -> Option<Vec<u8>> {
        if self.buf.is_empty() && self.fill().await == 0 {
            return None;
        }
        let n = max.min(self.buf.len());
        Some(self.buf.drain(..n).collect())
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Some(line);
            }
            if self.buf.len() > MAX_HEAD || self.fill().await == 0 {
                return None;
            }
        }
    }
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl Resp {
    fn new(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }
    fn h(mut self, name: &str, value: impl Into<String>) -> Resp {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    fn closing(mut self) -> Resp {
        self.close = true;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        423 => "Locked",
        431 => "Request Header Fields Too Large",
        460 => "Checksum Mismatch",
        _ => "Status",
    }
}

async fn serve_connection(server: Arc<Server>, stream: TcpStream) {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    loop {
        let Some(request_line) = conn.line().await else {
            if conn.buf.len() > MAX_HEAD {
                let _ = write(&mut conn, &server, Resp::new(431).closing(), "GET", None).await;
            }
            return;
        };
        let mut parts = request_line.split(' ');
        let (Some(method), Some(path), Some(_version)) = (parts.next(), parts.next(), parts.next())
        else {
            let _ = write(&mut conn, &server, Resp::new(400).closing(), "GET", None).await;
            linger_close(conn).await;
            return;
        };
        let mut req = Req {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
        };
        let mut head_size = request_line.len();
        loop {
            let Some(line) = conn.line().await else {
                let _ = write(&mut conn, &server, Resp::new(431).closing(), "GET", None).await;
                linger_close(conn).await;
                return;
            };
            if line.is_empty() {
                break;
            }
            head_size += line.len();
            if head_size > MAX_HEAD {
                let _ = write(&mut conn, &server, Resp::new(431).closing(), "GET", None).await;
                linger_close(conn).await;
                return;
            }
            if let Some((n, v)) = line.split_once(':') {
                req.headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let close_requested = req
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let origin = req.get("origin").map(str::to_owned);
        let method = req.method.clone();
        let resp = handle(&server, &mut conn, &mut req).await;
        let close = resp.close || close_requested;
        if write(&mut conn, &server, resp, &method, origin.as_deref())
            .await
            .is_err()
            || close
        {
            linger_close(conn).await;
            return;
        }
    }
}

/// Half-closes, then drains what the client still sends (bounded): closing with unread bytes
/// would reset the connection and could destroy the response before the client reads it.
async fn linger_close(mut conn: Conn) {
    let _ = conn.stream.shutdown().await;
    let mut sink = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, conn.stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

async fn write(
    conn: &mut Conn,
    server: &Server,
    mut resp: Resp,
    method: &str,
    origin: Option<&str>,
) -> std::io::Result<()> {
    let omit_tus = server.has(Defect::NoTusResumableOnErrors) && resp.status >= 400;
    if !omit_tus {
        resp.headers.push(("Tus-Resumable".into(), "1.0.0".into()));
    }
    if let Some(origin) = origin {
        resp.headers
            .push(("Access-Control-Allow-Origin".into(), origin.to_owned()));
        if !server.has(Defect::CorsNoExpose) {
            resp.headers.push((
                "Access-Control-Expose-Headers".into(),
                "Location, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires, Upload-Concat, Upload-Defer-Length".into(),
            ));
        }
    }
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let bodiless = resp.status == 204 || method == "HEAD";
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if method != "HEAD" {
        bytes.extend_from_slice(&resp.body);
    }
    conn.stream.write_all(&bytes).await?;
    conn.stream.flush().await
}

fn expires() -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(86400))
}

fn with_expires(server: &Server, resp: Resp) -> Resp {
    if server.has(Defect::ExpiresBadFormat) {
        resp.h("Upload-Expires", "2099-01-01T00:00:00Z")
    } else {
        resp.h("Upload-Expires", expires())
    }
}

fn number(value: &str, lenient: bool) -> Option<u64> {
    if lenient {
        let digits: String = value.chars().take_while(|c| c.is_ascii_digit()).collect();
        return Some(digits.parse().unwrap_or(0));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// One header that must appear at most once; `Err` for a duplicate.
fn single<'a>(server: &Server, req: &'a Req, name: &str) -> Result<Option<&'a str>, ()> {
    let all = req.all(name);
    if all.len() > 1 && !server.has(Defect::DuplicatesFirstWins) {
        return Err(());
    }
    Ok(all.first().copied())
}

fn valid_metadata(value: &str) -> bool {
    let mut keys = Vec::new();
    for pair in value.split(',') {
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        if key.is_empty()
            || key.contains(' ')
            || !key.bytes().all(|b| b.is_ascii_graphic())
            || keys.contains(&key)
            || base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .is_err()
        {
            return false;
        }
        keys.push(key);
    }
    true
}

fn id_of(path: &str) -> Option<&str> {
    let id = path.strip_prefix(COLLECTION)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Reads a whole body (Content-Length or chunked with trailers); `None` if it broke off.
async fn read_body(conn: &mut Conn, req: &mut Req) -> Option<Vec<u8>> {
    if req
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let line = conn.line().await?;
            let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                loop {
                    let trailer = conn.line().await?;
                    if trailer.is_empty() {
                        return Some(body);
                    }
                    if let Some((n, v)) = trailer.split_once(':') {
                        req.headers.push((n.trim().to_owned(), v.trim().to_owned()));
                    }
                }
            }
            while conn.buf.len() < size + 2 {
                if conn.fill().await == 0 {
                    return None;
                }
            }
            body.extend_from_slice(&conn.buf[..size]);
            conn.buf.drain(..size + 2);
        }
    }
    let length: usize = req.get("content-length").unwrap_or("0").parse().ok()?;
    let mut body = Vec::new();
    while body.len() < length {
        body.extend(conn.take(length - body.len()).await?);
    }
    Some(body)
}

async fn handle(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    if let Some(method) = req.get("x-http-method-override")
        && !server.has(Defect::NoMethodOverride)
    {
        req.method = method.to_ascii_uppercase();
    }
    if ietf::speaks_draft(req) {
        return ietf::handle(server, conn, req).await;
    }
    if req.method == "OPTIONS" {
        let _ = read_body(conn, req).await;
        return options(server, req);
    }
    if req.method != "GET" && req.get("tus-resumable") != Some("1.0.0") {
        if server.has(Defect::VersionProcessedAnyway) && req.method == "PATCH" {
            let _ = patch(server, conn, req).await;
        } else {
            let _ = read_body(conn, req).await;
        }
        let resp = Resp::new(412).closing();
        return if server.has(Defect::VersionNoTusVersionHeader) {
            resp
        } else {
            resp.h("Tus-Version", "1.0.0")
        };
    }
    let is_collection = req.path == COLLECTION || req.path == COLLECTION.trim_end_matches('/');
    match req.method.as_str() {
        "POST" if is_collection => create(server, conn, req).await,
        "HEAD" => head(server, req).await,
        "GET" => get(server, req).await,
        "PATCH" => patch(server, conn, req).await,
        "DELETE" => delete(server, req).await,
        _ => {
            let _ = read_body(conn, req).await;
            Resp::new(405).closing()
        }
    }
}

/// The tus extensions the fake advertises (`Tus-Extension`) unless a defect hides some.
pub const EXTENSIONS: &[&str] = &[
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "checksum-trailer",
    "expiration",
    "concatenation",
    "concatenation-unfinished",
];

fn extensions(server: &Server) -> String {
    if server.has(Defect::BadExtensionList) {
        return "Creation; Termination; Checksum".into();
    }
    let mut list = EXTENSIONS.to_vec();
    if server.has(Defect::WithUploadWithoutCreation) {
        list.retain(|e| *e != "creation");
    }
    if server.has(Defect::HideTermination) {
        list.retain(|e| *e != "termination");
    }
    list.join(",")
}

fn options(server: &Server, req: &Req) -> Resp {
    if server.has(Defect::OptionsChecksVersion)
        && req.get("tus-resumable").is_some_and(|v| v != "1.0.0")
    {
        return Resp::new(412).h("Tus-Version", "1.0.0");
    }
    let mut resp = Resp::new(204).h("Tus-Extension", extensions(server)).h(
        "Tus-Max-Size",
        if server.has(Defect::BadMaxSize) {
            "1 GiB".to_owned()
        } else {
            MAX_SIZE.to_string()
        },
    );
    if !server.has(Defect::NoTusVersion) {
        resp = resp.h("Tus-Version", "1.0.0");
    }
    if !server.has(Defect::NoChecksumAlgorithmHeader) {
        resp = resp.h("Tus-Checksum-Algorithm", "sha1");
    }
    if req.get("access-control-request-method").is_some() {
        let methods = if server.has(Defect::CorsNoPatchMethod) {
            "POST, HEAD, DELETE, OPTIONS"
        } else {
            "POST, HEAD, PATCH, DELETE, OPTIONS"
        };
        resp = resp.h("Access-Control-Allow-Methods", methods).h(
            "Access-Control-Allow-Headers",
            "Tus-Resumable, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Checksum, Content-Type, X-HTTP-Method-Override",
        );
    }
    resp
}

async fn create(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    let body = read_body(conn, req).await.unwrap_or_default();
    let Ok(length_header) = single(server, req, "upload-length") else {
        return Resp::new(400);
    };
    let defer = req.get("upload-defer-length");
    let concat = req.get("upload-concat").map(str::to_owned);
    let metadata = req.get("upload-metadata").map(str::to_owned);
    if let Some(metadata) = &metadata {
        if metadata.len() > MAX_METADATA {
            return if server.has(Defect::LargeMetadata500) {
                Resp::new(500)
            } else {
                Resp::new(413)
            };
        }
        if !valid_metadata(metadata) {
            return if server.has(Defect::MalformedMetadata500) {
                Resp::new(500)
            } else {
                Resp::new(400)
            };
        }
    }
    let mut upload = Upload {
        metadata: metadata.clone(),
        ..Upload::default()
    };
    let mut state = server.state.lock().await;
    match concat.as_deref() {
        Some(value) if value.starts_with("final;") => {
            let mut ids = Vec::new();
            for url in value["final;".len()..].split(' ').filter(|s| !s.is_empty()) {
                let id = url.rsplit('/').next().unwrap_or_default().to_owned();
                match state.uploads.get(&id) {
                    Some(u) if matches!(u.concat, Some(Concat::Partial)) => {
                        if server.has(Defect::UnfinishedFinalRefused) && Some(u.offset) != u.length
                        {
                            return Resp::new(400);
                        }
                        if server.has(Defect::FinalInheritsMetadata)
                            && upload.metadata.is_some()
                            && let Some(m) = &u.metadata
                        {
                            upload.metadata = Some(format!(
                                "{},{m}",
                                upload.metadata.clone().unwrap_or_default()
                            ));
                        }
                        ids.push(id);
                    }
                    _ => return Resp::new(400),
                }
            }
            if ids.is_empty() {
                return Resp::new(400);
            }
            if server.has(Defect::ConcatWrongOrder) {
                ids.sort();
                ids.reverse();
            }
            upload.concat = Some(Concat::Final {
                ids,
                value: value.to_owned(),
            });
        }
        Some("partial") | None => {
            if concat.is_some() {
                upload.concat = Some(Concat::Partial);
            }
            match (length_header, defer) {
                (Some(length), _) => {
                    let Some(length) = number(length, server.has(Defect::LenientLength)) else {
                        return Resp::new(400);
                    };
                    if length > (1 << 62) && server.has(Defect::HugeLength500) {
                        return Resp::new(500);
                    }
                    if length > MAX_SIZE && !server.has(Defect::MaxSizeNotEnforced) {
                        return Resp::new(413);
                    }
                    if length == 0 && server.has(Defect::EmptyUploadRefused) {
                        return Resp::new(400);
                    }
                    upload.length = Some(length);
                }
                (None, Some(value)) => {
                    if value != "1" && !server.has(Defect::DeferAnyValue) {
                        return Resp::new(400);
                    }
                }
                (None, None) => {
                    if !server.has(Defect::NoLengthAccepted) {
                        return Resp::new(400);
                    }
                }
            }
        }
        Some(_) => return Resp::new(400),
    }
    let mut offset_header = None;
    if !body.is_empty() {
        let fits = upload.length.is_none_or(|l| body.len() as u64 <= l);
        if !fits {
            return Resp::new(413);
        }
        upload.data = if server.has(Defect::CreationBodyCorrupt) {
            vec![0; body.len()]
        } else {
            body.clone()
        };
        upload.offset = body.len() as u64;
        offset_header = Some(upload.offset);
    }
    state.next += 1;
    let id = format!("{:032x}", state.next.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    state.uploads.insert(id.clone(), upload);
    drop(state);
    let mut resp = Resp::new(if server.has(Defect::Create200) {
        200
    } else {
        201
    })
    .h("Location", format!("{COLLECTION}{id}"));
    if let Some(offset) = offset_header
        && !server.has(Defect::CreationBodyNoOffset)
    {
        resp = resp.h("Upload-Offset", offset.to_string());
    }
    with_expires(server, resp)
}

/// The final upload's (offset, length, data) if computable, from its partials.
fn final_view(
    server: &Server,
    state: &State,
    ids: &[String],
) -> (Option<u64>, Option<u64>, Vec<u8>) {
    let mut length = Some(0u64);
    let mut complete = true;
    let mut data = Vec::new();
    for id in ids {
        let Some(part) = state.uploads.get(id) else {
            return (None, None, Vec::new());
        };
        length = length.zip(part.length).map(|(a, b)| a + b);
        complete &= Some(part.offset) == part.length;
        data.extend_from_slice(&part.data);
    }
    let offset = if complete {
        length
    } else if server.has(Defect::UnfinishedFinalHasOffset) {
        Some(0)
    } else {
        None
    };
    (offset, length, data)
}

fn traversal(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("..") || lower.contains("%2e") || path.len() > 1000
}

async fn head(server: &Server, req: &Req) -> Resp {
    let Some(id) = id_of(&req.path) else {
        if server.has(Defect::TraversalServed) && traversal(&req.path) {
            return Resp::new(200).h("Upload-Offset", "0");
        }
        return Resp::new(404);
    };
    let state = server.state.lock().await;
    let Some(upload) = state.uploads.get(id) else {
        return if server.has(Defect::UnknownHead500) {
            Resp::new(500)
        } else {
            Resp::new(404)
        };
    };
    let mut resp = Resp::new(200);
    if !server.has(Defect::HeadNoCacheControl) {
        resp = resp.h("Cache-Control", "no-store");
    }
    let (offset, length) = match &upload.concat {
        Some(Concat::Final { ids, value }) => {
            let (offset, length, _) = final_view(server, &state, ids);
            if !server.has(Defect::FinalHeadNoConcat) {
                resp = resp.h("Upload-Concat", value.clone());
            }
            (offset, length)
        }
        Some(Concat::Partial) => {
            if !server.has(Defect::PartialHeadNoConcat) {
                resp = resp.h("Upload-Concat", "partial");
            }
            (Some(upload.offset), upload.length)
        }
        None => (Some(upload.offset), upload.length),
    };
    if let Some(offset) = offset
        && !(offset == 0 && server.has(Defect::HeadNoOffsetWhenZero))
    {
        resp = resp.h("Upload-Offset", offset.to_string());
    }
    match length {
        Some(length) if !server.has(Defect::HeadNoLength) => {
            resp = resp.h("Upload-Length", length.to_string());
        }
        None if !server.has(Defect::DeferHeadNoHeader) => {
            resp = resp.h("Upload-Defer-Length", "1");
        }
        _ => {}
    }
    if let Some(metadata) = &upload.metadata
        && !server.has(Defect::HeadNoMetadata)
    {
        resp = resp.h("Upload-Metadata", metadata.clone());
        if server.has(Defect::MetadataAsHeaders) {
            for pair in metadata.split(',') {
                let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .unwrap_or_default();
                resp = resp.h(
                    &format!("Upload-Meta-{key}"),
                    String::from_utf8_lossy(&decoded).into_owned(),
                );
            }
        }
    }
    if Some(upload.offset) != upload.length && upload.concat.is_none() {
        resp = with_expires(server, resp);
    }
    resp
}

async fn get(server: &Server, req: &Req) -> Resp {
    let Some(id) = id_of(&req.path) else {
        if server.has(Defect::TraversalServed) && traversal(&req.path) {
            return Resp::new(200);
        }
        return Resp::new(404);
    };
    let state = server.state.lock().await;
    let Some(upload) = state.uploads.get(id) else {
        return Resp::new(404);
    };
    let mut data = match &upload.concat {
        Some(Concat::Final { ids, .. }) => final_view(server, &state, ids).2,
        _ => upload.data[..upload.offset as usize].to_vec(),
    };
    if server.has(Defect::GetCorrupt)
        && let Some(last) = data.last_mut()
    {
        *last ^= 0xff;
    }
    if let Some(range) = req.get("range").and_then(|r| r.strip_prefix("bytes="))
        && let Some((a, b)) = range.split_once('-')
        && let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>())
        && a <= b
        && b < data.len()
    {
        let content_range = if server.has(Defect::RangeWrongContentRange) {
            format!("bytes {a}-{b}/*")
        } else {
            format!("bytes {a}-{b}/{}", data.len())
        };
        let mut resp = Resp::new(206).h("Content-Range", content_range);
        resp.body = data[a..=b].to_vec();
        return resp;
    }
    let mut resp = Resp::new(200);
    resp.body = data;
    resp
}

async fn delete(server: &Server, req: &Req) -> Resp {
    let Some(id) = id_of(&req.path) else {
        return Resp::new(404);
    };
    let mut state = server.state.lock().await;
    if !state.uploads.contains_key(id) {
        return Resp::new(404);
    }
    if !server.has(Defect::DeleteKeeps) {
        state.uploads.remove(id);
    }
    Resp::new(if server.has(Defect::Delete200) {
        200
    } else {
        204
    })
}

fn sha1_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(data))
}

/// The checksum verdict for `body`: `None` to accept, else the status to answer.
fn verify(server: &Server, checksum: &str, body: &[u8], trailer: bool) -> Option<u16> {
    let (algorithm, digest) = checksum.split_once(' ').unwrap_or((checksum, ""));
    if algorithm != "sha1" {
        return (!server.has(Defect::UnknownAlgorithmAccepted)).then_some(400);
    }
    let always_mismatch = if trailer {
        server.has(Defect::TrailerAlwaysMismatch)
    } else {
        server.has(Defect::ChecksumAlwaysMismatch)
    };
    let not_verified = if trailer {
        server.has(Defect::TrailerNotVerified)
    } else {
        server.has(Defect::ChecksumNotVerified)
    };
    if always_mismatch {
        return Some(460);
    }
    if not_verified || sha1_b64(body) == digest {
        None
    } else {
        Some(460)
    }
}

async fn patch(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    let Some(id) = id_of(&req.path).map(str::to_owned) else {
        let _ = read_body(conn, req).await;
        if server.has(Defect::TraversalServed) && traversal(&req.path) {
            return Resp::new(204).h("Upload-Offset", "0");
        }
        return Resp::new(404);
    };
    if req.get("content-type") != Some("application/offset+octet-stream")
        && !server.has(Defect::AcceptAnyContentType)
    {
        let _ = read_body(conn, req).await;
        return Resp::new(415);
    }
    let Ok(offset_header) = single(server, req, "upload-offset") else {
        let _ = read_body(conn, req).await;
        return Resp::new(400);
    };
    let Ok(length_header) = single(server, req, "upload-length") else {
        let _ = read_body(conn, req).await;
        return Resp::new(400);
    };
    let lenient = server.has(Defect::LenientOffset);
    // Lock (or refuse) and validate under the state lock.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let start = loop {
        let mut state = server.state.lock().await;
        let Some(upload) = state.uploads.get_mut(&id) else {
            drop(state);
            let _ = read_body(conn, req).await;
            return if server.has(Defect::UnknownPatch500) {
                Resp::new(500)
            } else {
                Resp::new(404)
            };
        };
        if matches!(upload.concat, Some(Concat::Final { .. })) {
            drop(state);
            let _ = read_body(conn, req).await;
            return if server.has(Defect::FinalPatchAllowed) {
                Resp::new(409)
            } else {
                Resp::new(403)
            };
        }
        if upload.locked && !server.has(Defect::NoLocking) {
            if server.has(Defect::LockWaitsForever) && tokio::time::Instant::now() < deadline {
                drop(state);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            return Resp::new(423).closing();
        }
        let current = upload.offset;
        let offset = match offset_header.map(|v| number(v, false)) {
            Some(Some(offset)) => offset,
            _ if lenient => current,
            _ => {
                drop(state);
                let _ = read_body(conn, req).await;
                return Resp::new(400);
            }
        };
        if offset != current && !server.has(Defect::IgnoreOffset) && !server.has(Defect::NoLocking)
        {
            drop(state);
            let _ = read_body(conn, req).await;
            return Resp::new(409);
        }
        if let Some(length) = length_header {
            let Some(length) = number(length, false) else {
                return Resp::new(400).closing();
            };
            match upload.length {
                None if !server.has(Defect::DeferIgnoresPatchLength) => {
                    upload.length = Some(length)
                }
                Some(old) if old != length => {
                    if server.has(Defect::DeferLengthChangeable) {
                        upload.length = Some(length);
                    } else {
                        return Resp::new(400).closing();
                    }
                }
                _ => {}
            }
        }
        upload.locked = true;
        break offset;
    };
    let resp = patch_body(server, conn, req, &id, start).await;
    if let Some(upload) = server.state.lock().await.uploads.get_mut(&id) {
        upload.locked = false;
    }
    resp
}

/// Streams the body into the upload from `start`, bytes applied as they arrive (unless a
/// checksum makes the chunk all-or-nothing).
async fn patch_body(server: &Server, conn: &mut Conn, req: &mut Req, id: &str, start: u64) -> Resp {
    let chunked = req.get("transfer-encoding").is_some();
    let declared: u64 = req
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let length = server
        .state
        .lock()
        .await
        .uploads
        .get(id)
        .and_then(|u| u.length);
    if !chunked
        && let Some(length) = length
        && start + declared > length
        && !server.has(Defect::AcceptPastLength)
    {
        return Resp::new(413).closing();
    }
    let checksum = req.get("upload-checksum").map(str::to_owned);
    if checksum.is_some() || chunked {
        let Some(body) = read_body(conn, req).await else {
            return Resp::new(400).closing();
        };
        let trailer_checksum = if chunked {
            req.get("upload-checksum").map(str::to_owned)
        } else {
            None
        };
        if let Some(checksum) = trailer_checksum.as_ref().or(checksum.as_ref())
            && let Some(status) = verify(server, checksum, &body, trailer_checksum.is_some())
        {
            return Resp::new(status);
        }
        return apply(server, id, start, &body, true).await;
    }
    let mut received = 0u64;
    let complete = loop {
        if received == declared {
            break true;
        }
        let Some(chunk) = conn.take((declared - received) as usize).await else {
            break false;
        };
        let first = received == 0;
        let mut chunk = chunk;
        if server.has(Defect::PatchCorrupts) && first && start > 0 {
            chunk[0] ^= 1;
        }
        apply(server, id, start + received, &chunk, false).await;
        received += chunk.len() as u64;
    };
    if server.has(Defect::ReadPastContentLength) && !conn.buf.is_empty() {
        let extra: Vec<u8> = conn.buf.drain(..).collect();
        apply(server, id, start + received, &extra, false).await;
    }
    if !complete {
        let mut state = server.state.lock().await;
        if let Some(upload) = state.uploads.get_mut(id) {
            if server.has(Defect::DiscardIncomplete) {
                upload.offset = start;
                upload.data.truncate(start as usize);
            } else if server.has(Defect::CorruptIncomplete)
                && let Some(last) = upload.data.last_mut()
            {
                *last ^= 0xff;
            }
        }
        return Resp::new(400).closing();
    }
    let state = server.state.lock().await;
    let Some(upload) = state.uploads.get(id) else {
        return Resp::new(404);
    };
    let status = if server.has(Defect::Patch200) {
        200
    } else {
        204
    };
    let resp = Resp::new(status).h("Upload-Offset", upload.offset.to_string());
    if server.has(Defect::ExpiresNotOnPatch) || Some(upload.offset) == upload.length {
        resp
    } else {
        with_expires(server, resp)
    }
}

/// Writes `bytes` at `at`; with `respond`, answers with the new offset.
async fn apply(server: &Server, id: &str, at: u64, bytes: &[u8], respond: bool) -> Resp {
    let mut state = server.state.lock().await;
    let Some(upload) = state.uploads.get_mut(id) else {
        return Resp::new(404);
    };
    let at = at as usize;
    if upload.data.len() < at + bytes.len() {
        upload.data.resize(at + bytes.len(), 0);
    }
    upload.data[at..at + bytes.len()].copy_from_slice(bytes);
    upload.offset = upload.offset.max((at + bytes.len()) as u64);
    if !respond {
        return Resp::new(204);
    }
    let resp = Resp::new(204).h("Upload-Offset", upload.offset.to_string());
    if Some(upload.offset) == upload.length {
        resp
    } else {
        with_expires(server, resp)
    }
}
