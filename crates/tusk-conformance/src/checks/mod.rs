//! The checks: a table of definitions (id, group, level, quoted sentence) per protocol, the probe
//! each runs with, and the runner.

mod concat;
mod core;
mod creation;
mod extensions;
mod ietf;
mod robust;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use crate::http::{self, HttpError, Limits, Request, Response, Url};
use crate::report::{CheckResult, Exchange, Level, Report, ServerInfo, Status};
use crate::{Config, Error, Protocol};

pub use ietf::IETF_GROUPS;

/// Every tus 1.0 group, in run order.
pub const GROUPS: &[&str] = &[
    "core",
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "checksum-trailer",
    "expiration",
    "concatenation",
    "concatenation-unfinished",
    "cors",
    "get",
    "robustness",
];

/// Names `--require` accepts: the tus extensions, and `cors` / `get`, which tus does not define
/// but this tool checks where offered.
const REQUIRABLE: &[&str] = &[
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "checksum-trailer",
    "expiration",
    "concatenation",
    "concatenation-unfinished",
    "cors",
    "get",
];

/// One check's definition.
#[derive(Debug, Clone, Copy)]
pub struct CheckDef {
    /// Stable identifier.
    pub id: &'static str,
    /// Group it is reported under.
    pub group: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// Document and section of the sentence.
    pub source: &'static str,
    /// The sentence enforced, quoted.
    pub quote: &'static str,
    /// Extensions the server must advertise for the check to apply.
    pub needs: &'static [&'static str],
    /// The suite the check belongs to.
    pub protocol: Protocol,
    /// IETF draft: the first interop version the sentence applies to (0 for tus).
    pub since: u8,
}

const fn def(
    id: &'static str,
    group: &'static str,
    level: Level,
    source: &'static str,
    quote: &'static str,
    needs: &'static [&'static str],
) -> CheckDef {
    CheckDef {
        id,
        group,
        level,
        source,
        quote,
        needs,
        protocol: Protocol::Tus1,
        since: 0,
    }
}

use Level::{Must, Should};

const C: &[&str] = &["creation"];

static TUS_CHECKS: &[CheckDef] = &[
    // core
    def(
        "core-options-version",
        "core",
        Must,
        "tus 1.0.0 §OPTIONS",
        "A successful response indicated by the `204 No Content` or `200 OK` status MUST contain the `Tus-Version` header.",
        &[],
    ),
    def(
        "core-options-ignores-tus-resumable",
        "core",
        Must,
        "tus 1.0.0 §OPTIONS",
        "The Client SHOULD NOT include the `Tus-Resumable` header in the request and the Server MUST ignore the header.",
        &[],
    ),
    def(
        "core-extension-list",
        "core",
        Must,
        "tus 1.0.0 §Tus-Extension",
        "The `Tus-Extension` response header MUST be a comma-separated list of the extensions supported by the Server.",
        &[],
    ),
    def(
        "core-max-size-format",
        "core",
        Must,
        "tus 1.0.0 §Tus-Max-Size",
        "The `Tus-Max-Size` response header MUST be a non-negative integer indicating the maximum allowed size of an entire upload in bytes.",
        &[],
    ),
    def(
        "core-tus-resumable-in-responses",
        "core",
        Must,
        "tus 1.0.0 §Tus-Resumable",
        "The `Tus-Resumable` header MUST be included in every request and response except for `OPTIONS` requests.",
        C,
    ),
    def(
        "core-unsupported-version-412",
        "core",
        Must,
        "tus 1.0.0 §Tus-Resumable",
        "If the version specified by the Client is not supported by the Server, it MUST respond with the `412 Precondition Failed` status and MUST include the `Tus-Version` header into the response.",
        C,
    ),
    def(
        "core-unsupported-version-not-processed",
        "core",
        Must,
        "tus 1.0.0 §Tus-Resumable",
        "In addition, the Server MUST NOT process the request.",
        C,
    ),
    def(
        "core-head-offset",
        "core",
        Must,
        "tus 1.0.0 §HEAD",
        "The Server MUST always include the `Upload-Offset` header in the response for a `HEAD` request, even if the offset is `0`, or the upload is already considered completed.",
        C,
    ),
    def(
        "core-head-length",
        "core",
        Must,
        "tus 1.0.0 §HEAD",
        "If the size of the upload is known, the Server MUST include the `Upload-Length` header in the response.",
        C,
    ),
    def(
        "core-head-no-store",
        "core",
        Must,
        "tus 1.0.0 §HEAD",
        "The Server MUST prevent the client and/or proxies from caching the response by adding the `Cache-Control: no-store` header to the response.",
        C,
    ),
    def(
        "core-head-unknown",
        "core",
        Should,
        "tus 1.0.0 §HEAD",
        "If the resource is not found, the Server SHOULD return either the `404 Not Found`, `410 Gone` or `403 Forbidden` status without the `Upload-Offset` header.",
        &[],
    ),
    def(
        "core-patch-204",
        "core",
        Must,
        "tus 1.0.0 §PATCH",
        "The Server MUST acknowledge successful `PATCH` requests with the `204 No Content` status. It MUST include the `Upload-Offset` header containing the new offset.",
        C,
    ),
    def(
        "core-patch-content",
        "core",
        Must,
        "tus 1.0.0 §PATCH",
        "The new offset MUST be the sum of the offset before the `PATCH` request and the number of bytes received and processed or stored during the current `PATCH` request.",
        C,
    ),
    def(
        "core-patch-offset-mismatch-409",
        "core",
        Must,
        "tus 1.0.0 §PATCH",
        "If the offsets do not match, the Server MUST respond with the `409 Conflict` status without modifying the upload resource.",
        C,
    ),
    def(
        "core-patch-content-type-415",
        "core",
        Should,
        "tus 1.0.0 §PATCH",
        "All `PATCH` requests MUST use `Content-Type: application/offset+octet-stream`, otherwise the server SHOULD return a `415 Unsupported Media Type` status.",
        C,
    ),
    def(
        "core-patch-unknown-404",
        "core",
        Should,
        "tus 1.0.0 §PATCH",
        "If the server receives a `PATCH` request against a non-existent resource it SHOULD return a `404 Not Found` status.",
        &[],
    ),
    def(
        "core-method-override",
        "core",
        Must,
        "tus 1.0.0 §X-HTTP-Method-Override",
        "The `X-HTTP-Method-Override` request header MUST be a string which MUST be interpreted as the request's method by the Server, if the header is presented.",
        C,
    ),
    // creation
    def(
        "creation-201-location",
        "creation",
        Must,
        "tus 1.0.0 §Creation POST",
        "The Server MUST acknowledge a successful upload creation with the `201 Created` status. The Server MUST set the `Location` header to the URL of the created resource.",
        C,
    ),
    def(
        "creation-metadata-in-head",
        "creation",
        Must,
        "tus 1.0.0 §Creation POST",
        "If an upload contains additional metadata, responses to `HEAD` requests MUST include the `Upload-Metadata` header and its value as specified by the Client during the creation.",
        C,
    ),
    def(
        "creation-empty-upload",
        "creation",
        Should,
        "tus 1.0.0 §Creation POST",
        "The `Upload-Length` header MAY be set to 0, indicating that the Client wants to upload an empty file. Such an upload is immediately complete after its creation",
        C,
    ),
    def(
        "creation-max-size-413",
        "creation",
        Must,
        "tus 1.0.0 §Creation POST",
        "If the length of the upload exceeds the maximum, which MAY be specified using the `Tus-Max-Size` header, the Server MUST respond with the `413 Request Entity Too Large` status.",
        C,
    ),
    def(
        "creation-length-required",
        "creation",
        Should,
        "tus 1.0.0 §Creation POST",
        "The request MUST include one of the following headers: a) `Upload-Length` [...] b) `Upload-Defer-Length: 1`",
        C,
    ),
    // creation-with-upload
    def(
        "creation-with-upload-offset",
        "creation-with-upload",
        Must,
        "tus 1.0.0 §Creation With Upload",
        "The Server SHOULD accept as many bytes as possible and MUST include the `Upload-Offset` header in the response and MUST set its value to the offset of the upload after applying the accepted bytes.",
        &["creation-with-upload", "creation"],
    ),
    def(
        "creation-with-upload-content",
        "creation-with-upload",
        Must,
        "tus 1.0.0 §Creation With Upload",
        "In this case, similar rules as for the `PATCH` request and response apply.",
        &["creation-with-upload", "creation"],
    ),
    def(
        "creation-with-upload-needs-creation",
        "creation-with-upload",
        Must,
        "tus 1.0.0 §Creation With Upload",
        "Therefore, if the Server does not offer the Creation extension, it MUST NOT offer the Creation With Upload extension either.",
        &["creation-with-upload"],
    ),
    // creation-defer-length
    def(
        "defer-length-head",
        "creation-defer-length",
        Must,
        "tus 1.0.0 §Creation POST",
        "As long as the length of the upload is not known, the Server MUST set `Upload-Defer-Length: 1` in all responses to `HEAD` requests.",
        &["creation-defer-length", "creation"],
    ),
    def(
        "defer-length-set-by-patch",
        "creation-defer-length",
        Must,
        "tus 1.0.0 §Creation POST",
        "If the length was deferred using `Upload-Defer-Length: 1`, the Client MUST set the `Upload-Length` header in the next `PATCH` request, once the length is known.",
        &["creation-defer-length", "creation"],
    ),
    def(
        "defer-length-immutable",
        "creation-defer-length",
        Must,
        "tus 1.0.0 §Creation POST",
        "Once set the length MUST NOT be changed.",
        &["creation-defer-length", "creation"],
    ),
    def(
        "defer-length-value-400",
        "creation-defer-length",
        Should,
        "tus 1.0.0 §Creation POST",
        "If the `Upload-Defer-Length` header contains any other value than `1` the server should return a `400 Bad Request` status.",
        &["creation-defer-length", "creation"],
    ),
    // termination
    def(
        "termination-delete-204",
        "termination",
        Must,
        "tus 1.0.0 §Termination DELETE",
        "When receiving a `DELETE` request for an existing upload the Server SHOULD free associated resources and MUST respond with the `204 No Content` status confirming that the upload was terminated.",
        &["termination", "creation"],
    ),
    def(
        "termination-then-404",
        "termination",
        Should,
        "tus 1.0.0 §Termination DELETE",
        "For all future requests to this URL, the Server SHOULD respond with the `404 Not Found` or `410 Gone` status.",
        &["termination", "creation"],
    ),
    def(
        "termination-method-override",
        "termination",
        Must,
        "tus 1.0.0 §X-HTTP-Method-Override",
        "The `X-HTTP-Method-Override` request header MUST be a string which MUST be interpreted as the request's method by the Server, if the header is presented.",
        &["termination", "creation"],
    ),
    // checksum
    def(
        "checksum-algorithms",
        "checksum",
        Must,
        "tus 1.0.0 §Checksum",
        "The `Tus-Checksum-Algorithm` header MUST be included in the response to an `OPTIONS` request. [...] The Server MUST support at least the SHA1 checksum algorithm identified by `sha1`.",
        &["checksum"],
    ),
    def(
        "checksum-match-204",
        "checksum",
        Must,
        "tus 1.0.0 §Checksum",
        "Once the entire request has been received, the Server MUST verify the uploaded chunk against the provided checksum using the specified algorithm.",
        &["checksum", "creation"],
    ),
    def(
        "checksum-mismatch-460",
        "checksum",
        Must,
        "tus 1.0.0 §Checksum",
        "2) `460 Checksum Mismatch` if the checksums mismatch [...] In the first two cases the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be updated.",
        &["checksum", "creation"],
    ),
    def(
        "checksum-unsupported-400",
        "checksum",
        Must,
        "tus 1.0.0 §Checksum",
        "1) `400 Bad Request` if the checksum algorithm is not supported by the server, [...] In the first two cases the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be updated.",
        &["checksum", "creation"],
    ),
    // checksum-trailer
    def(
        "checksum-trailer-match-204",
        "checksum-trailer",
        Must,
        "tus 1.0.0 §Checksum",
        "If the hash cannot be calculated at the beginning of the upload, it MAY be included as a trailer. If the Server can handle trailers, this behavior MUST be announced by adding `checksum-trailer` to the `Tus-Extension` header.",
        &["checksum-trailer", "creation"],
    ),
    def(
        "checksum-trailer-mismatch-460",
        "checksum-trailer",
        Must,
        "tus 1.0.0 §Checksum",
        "In the first two cases the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be updated.",
        &["checksum-trailer", "creation"],
    ),
    // expiration
    def(
        "expiration-date-format",
        "expiration",
        Must,
        "tus 1.0.0 §Upload-Expires",
        "The value of the `Upload-Expires` header MUST be in RFC 9110 datetime format.",
        &["expiration", "creation"],
    ),
    def(
        "expiration-in-patch-response",
        "expiration",
        Must,
        "tus 1.0.0 §Upload-Expires",
        "This header MUST be included in every `PATCH` response if the upload is going to expire.",
        &["expiration", "creation"],
    ),
    // concatenation
    def(
        "concat-partial-head",
        "concatenation",
        Must,
        "tus 1.0.0 §Concatenation",
        "The response to a HEAD request for a partial upload MUST contain the `Upload-Offset` header. [...] Response to `HEAD` request against partial or final upload MUST include the `Upload-Concat` header",
        &["concatenation", "creation"],
    ),
    def(
        "concat-final-head",
        "concatenation",
        Must,
        "tus 1.0.0 §Concatenation",
        "After successful concatenation, the `Upload-Offset` and `Upload-Length` MUST be set and their values MUST be equal. [...] MUST include the `Upload-Concat` header and its value as received in the upload creation request.",
        &["concatenation", "creation"],
    ),
    def(
        "concat-final-content",
        "concatenation",
        Must,
        "tus 1.0.0 §Concatenation",
        "The partial uploads MUST be concatenated as per the order specified in the list.",
        &["concatenation", "creation"],
    ),
    def(
        "concat-final-patch-403",
        "concatenation",
        Must,
        "tus 1.0.0 §Concatenation",
        "The Server MUST respond with the `403 Forbidden` status to `PATCH` requests against a final upload URL and MUST NOT modify the final or its partial uploads.",
        &["concatenation", "creation"],
    ),
    def(
        "concat-metadata-not-inherited",
        "concatenation",
        Must,
        "tus 1.0.0 §Concatenation",
        "When creating a new final upload the partial uploads' metadata SHALL NOT be transferred to the new final upload.",
        &["concatenation", "creation"],
    ),
    def(
        "concat-unfinished-final",
        "concatenation-unfinished",
        Must,
        "tus 1.0.0 §Concatenation",
        "The Client MAY send the concatenation request while the partial uploads are still in progress. This feature MUST be explicitly announced by the Server by adding `concatenation-unfinished` to the `Tus-Extension` header.",
        &["concatenation-unfinished", "concatenation", "creation"],
    ),
    def(
        "concat-unfinished-no-offset",
        "concatenation-unfinished",
        Should,
        "tus 1.0.0 §Concatenation",
        "The response to a HEAD request for a final upload SHOULD NOT contain the `Upload-Offset` header unless the concatenation has been successfully finished.",
        &["concatenation-unfinished", "concatenation", "creation"],
    ),
    // cors (not in tus; checked where the server answers CORS at all)
    def(
        "cors-preflight",
        "cors",
        Should,
        "Fetch Standard §CORS protocol (HTTP responses)",
        "`Access-Control-Allow-Headers` Indicates which headers are supported by the response's URL for the purposes of the CORS protocol.",
        &[],
    ),
    def(
        "cors-expose-headers",
        "cors",
        Should,
        "Fetch Standard §CORS protocol (HTTP responses)",
        "`Access-Control-Expose-Headers` Indicates which headers can be exposed as part of the response by listing their names.",
        C,
    ),
    // get (not in tus; checked where the server serves finished uploads)
    def(
        "get-content",
        "get",
        Must,
        "RFC 9110 §9.3.1 GET",
        "The GET method requests transfer of a current selected representation for the target resource.",
        C,
    ),
    def(
        "get-range",
        "get",
        Must,
        "RFC 9110 §15.3.7 206 Partial Content",
        "If a single part is being transferred, the server generating the 206 response MUST generate a Content-Range header field, describing what range of the selected representation is enclosed, and a content consisting of the range.",
        C,
    ),
    // robustness
    def(
        "robust-upload-length-invalid",
        "robustness",
        Must,
        "tus 1.0.0 §Upload-Length",
        "The `Upload-Length` request and response header indicates the size of the entire upload in bytes. The value MUST be a non-negative integer.",
        C,
    ),
    def(
        "robust-upload-length-huge",
        "robustness",
        Must,
        "tus 1.0.0 §Creation POST",
        "If the length of the upload exceeds the maximum, which MAY be specified using the `Tus-Max-Size` header, the Server MUST respond with the `413 Request Entity Too Large` status.",
        C,
    ),
    def(
        "robust-upload-offset-invalid",
        "robustness",
        Must,
        "tus 1.0.0 §Upload-Offset",
        "The `Upload-Offset` request and response header indicates a byte offset within a resource. The value MUST be a non-negative integer.",
        C,
    ),
    def(
        "robust-duplicate-headers",
        "robustness",
        Should,
        "tus 1.0.0 §Upload-Length; RFC 9110 §5.3",
        "The value MUST be a non-negative integer. (Two `Upload-Length` or `Upload-Offset` lines combine to `10, 20`, which is not one.)",
        C,
    ),
    def(
        "robust-metadata-malformed",
        "robustness",
        Should,
        "tus 1.0.0 §Upload-Metadata",
        "Since metadata can contain arbitrary binary values, Servers SHOULD carefully validate metadata values or sanitize them before using them as header values to avoid header smuggling.",
        C,
    ),
    def(
        "robust-metadata-large",
        "robustness",
        Should,
        "tus 1.0.0 §Upload-Metadata",
        "Since metadata can contain arbitrary binary values, Servers SHOULD carefully validate metadata values",
        C,
    ),
    def(
        "robust-metadata-header-injection",
        "robustness",
        Must,
        "RFC 9110 §5.5",
        "Field values containing CR, LF, or NUL characters are invalid and dangerous, due to the varying ways that implementations might parse and interpret those characters",
        C,
    ),
    def(
        "robust-path-traversal",
        "robustness",
        Should,
        "tus 1.0.0 §HEAD",
        "If the resource is not found, the Server SHOULD return either the `404 Not Found`, `410 Gone` or `403 Forbidden` status",
        &[],
    ),
    def(
        "robust-body-past-length",
        "robustness",
        Must,
        "tus 1.0.0 §Upload-Length",
        "The `Upload-Length` request and response header indicates the size of the entire upload in bytes.",
        C,
    ),
    def(
        "robust-bytes-past-content-length",
        "robustness",
        Must,
        "tus 1.0.0 §PATCH",
        "The new offset MUST be the sum of the offset before the `PATCH` request and the number of bytes received and processed or stored during the current `PATCH` request.",
        C,
    ),
    def(
        "robust-cut-fin-keeps-bytes",
        "robustness",
        Should,
        "tus 1.0.0 §PATCH",
        "The Server SHOULD always attempt to store as much of the received data as possible.",
        C,
    ),
    def(
        "robust-cut-fin-prefix",
        "robustness",
        Must,
        "tus 1.0.0 §PATCH",
        "The new offset MUST be the sum of the offset before the `PATCH` request and the number of bytes received and processed or stored during the current `PATCH` request.",
        C,
    ),
    def(
        "robust-cut-rst-keeps-bytes",
        "robustness",
        Should,
        "tus 1.0.0 §PATCH",
        "The Server SHOULD always attempt to store as much of the received data as possible.",
        C,
    ),
    def(
        "robust-cut-rst-prefix",
        "robustness",
        Must,
        "tus 1.0.0 §PATCH",
        "The new offset MUST be the sum of the offset before the `PATCH` request and the number of bytes received and processed or stored during the current `PATCH` request.",
        C,
    ),
    def(
        "robust-race-same-offset",
        "robustness",
        Must,
        "tus 1.0.0 §PATCH",
        "The `Upload-Offset` header's value MUST be equal to the current offset of the resource. [...] If the offsets do not match, the Server MUST respond with the `409 Conflict` status without modifying the upload resource.",
        C,
    ),
    def(
        "robust-patch-while-streaming",
        "robustness",
        Must,
        "tus 1.0.0 §PATCH",
        "The `Upload-Offset` header's value MUST be equal to the current offset of the resource. [...] If the offsets do not match, the Server MUST respond with the `409 Conflict` status without modifying the upload resource.",
        C,
    ),
];

static CHECKS: LazyLock<Vec<CheckDef>> =
    LazyLock::new(|| TUS_CHECKS.iter().chain(ietf::CHECKS).copied().collect());

/// Every check of both suites (tus 1.0, then the IETF draft), in run order.
pub fn checks() -> &'static [CheckDef] {
    &CHECKS
}

/// Why a check did not pass.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The server did not do what the sentence asks.
    Fail(String),
    /// The check cannot tell (e.g. bytes cannot be read back).
    Skip(String),
    /// The server does not offer what the check needs (a failure if required).
    NotOffered(String),
}

/// `Ok(what was observed)` or why not.
pub(crate) type Outcome = Result<String, Verdict>;

/// Fails the check with a formatted reason unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::checks::Verdict::Fail(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// Fails the check with a formatted reason.
macro_rules! fail {
    ($($fmt:tt)+) => {
        return Err($crate::checks::Verdict::Fail(format!($($fmt)+)))
    };
}
pub(crate) use fail;

/// Shared by every check of a run.
pub(crate) struct Ctx {
    pub config: Config,
    pub collection: Url,
    pub server: ServerInfo,
}

impl Ctx {
    pub fn offers(&self, extension: &str) -> bool {
        self.server.extensions.iter().any(|e| e == extension)
    }
}

/// What one check uses to talk to the server; records every exchange.
pub(crate) struct Probe {
    pub cx: Arc<Ctx>,
    pub exchanges: Vec<Exchange>,
    created: Vec<Url>,
}

/// Deterministic, position-dependent bytes; `seed` tells two bodies apart.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8).wrapping_mul(seed | 1)
        })
        .collect()
}

/// `Upload-Checksum: sha1 <base64>` of `data`.
pub(crate) fn sha1_checksum(data: &[u8]) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    format!(
        "sha1 {}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(data))
    )
}

/// Base64 of `value`, as `Upload-Metadata` values are written.
pub(crate) fn b64(value: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// A random 32-hex-digit id no server has.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness only matters against the server's own ids; time will do.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}

fn describe_response(response: &Response) -> String {
    let mut text = String::new();
    for interim in response.interim.iter().chain([response]) {
        if !text.is_empty() {
            text.push_str("\r\n\r\n");
        }
        text.push_str(&interim.status_line);
        for (name, value) in &interim.headers {
            text.push_str(&format!("\r\n{name}: {value}"));
        }
    }
    text
}

/// First 16 differing bytes of two bodies, for failure reasons.
pub(crate) fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(at) => format!(
            "{} bytes read back, {} expected; first difference at byte {at}",
            got.len(),
            want.len()
        ),
        None => format!(
            "{} bytes read back, {} expected (one is a prefix of the other)",
            got.len(),
            want.len()
        ),
    }
}

impl Probe {
    fn new(cx: Arc<Ctx>) -> Probe {
        Probe {
            cx,
            exchanges: Vec::new(),
            created: Vec::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.cx.config.timeout
    }

    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.cx.config.timeout,
            max_body: (self.cx.config.big as usize)
                .saturating_mul(2)
                .max(64 << 20),
        }
    }

    pub fn collection(&self) -> Url {
        self.cx.collection.clone()
    }

    /// Records an exchange made outside [`Probe::try_send`] (streamed requests).
    pub fn record(
        &mut self,
        request: &Request,
        body_bytes: u64,
        result: Result<&Response, &HttpError>,
    ) {
        let (response, response_body_bytes, error) = match result {
            Ok(r) => (Some(describe_response(r)), r.body.len() as u64, None),
            Err(e) => (None, 0, Some(e.to_string())),
        };
        self.exchanges.push(Exchange {
            request: request.head(),
            body_bytes,
            response,
            response_body_bytes,
            error,
        });
    }

    /// Sends `request`; a transport error is returned (and recorded), not a verdict.
    pub async fn try_send(&mut self, request: Request) -> Result<Response, HttpError> {
        let result = http::send(&request, self.limits()).await;
        let body_bytes = request
            .content_length
            .unwrap_or(request.body.len() as u64)
            .min(request.body.len() as u64)
            + request.extra.len() as u64;
        self.record(&request, body_bytes, result.as_ref());
        result
    }

    /// Sends `request`; no HTTP response fails the check.
    pub async fn send(&mut self, request: Request) -> Result<Response, Verdict> {
        let line = format!("{} {}", request.method, request.url.path);
        self.try_send(request)
            .await
            .map_err(|e| Verdict::Fail(format!("{} got no valid response: {e}", shorten(&line))))
    }

    /// POSTs to the collection with `headers` (tus version added) and `body`; 201 with a
    /// `Location` expected. Returns the upload URL and the response.
    pub async fn create_with(
        &mut self,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(Url, Response), Verdict> {
        let mut request = Request::new("POST", &self.cx.collection).tus().body(body);
        for (name, value) in headers {
            request = request.header(name, value.clone());
        }
        let response = self.send(request).await?;
        let Some(location) = response
            .header("location")
            .filter(|_| response.status == 201)
        else {
            fail!(
                "creating an upload failed: {} (Location {:?})",
                response.status_line,
                response.header("location")
            );
        };
        let url = self
            .resolve(location)
            .map_err(|e| Verdict::Fail(format!("Location {location:?}: {e}")))?;
        self.created.push(url.clone());
        Ok((url, response))
    }

    /// Whether this run checks the IETF draft.
    pub fn ietf(&self) -> bool {
        self.cx.config.protocol == Protocol::Ietf
    }

    /// `request` marked as speaking this run's protocol: `Tus-Resumable`, or the draft's
    /// interop version.
    pub fn stamp(&self, request: Request) -> Request {
        if self.ietf() {
            request.header(ietf::INTEROP_HEADER, self.cx.config.interop.to_string())
        } else {
            request.tus()
        }
    }

    /// Creates an upload of `length` bytes with no content (an IETF run: `Upload-Complete: ?0`
    /// and `Upload-Length`).
    pub async fn create(&mut self, length: u64) -> Result<Url, Verdict> {
        if self.ietf() {
            return ietf::create_empty(self, length).await;
        }
        Ok(self
            .create_with(&[("Upload-Length", length.to_string())], Vec::new())
            .await?
            .0)
    }

    /// A request appending `data` at `offset` in this run's protocol; `last` (IETF only) marks
    /// it as completing the upload.
    pub fn append_request(&self, url: &Url, offset: u64, data: Vec<u8>, last: bool) -> Request {
        if self.ietf() {
            ietf::append_request(self, url, offset, data, last)
        } else {
            Self::patch_request(url, offset, data)
        }
    }

    /// Whether `response` acknowledges an append: tus 204, the draft any 2xx.
    pub fn appended(&self, response: &Response) -> bool {
        if self.ietf() {
            response.is_success()
        } else {
            response.status == 204
        }
    }

    /// A tus PATCH of `data` at `offset`.
    pub fn patch_request(url: &Url, offset: u64, data: Vec<u8>) -> Request {
        Request::new("PATCH", url)
            .tus()
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(data)
    }

    pub async fn patch(
        &mut self,
        url: &Url,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Response, Verdict> {
        self.send(Self::patch_request(url, offset, data)).await
    }

    /// PATCHes `data` at `offset`; 204 with the new offset expected.
    pub async fn patch_ok(&mut self, url: &Url, offset: u64, data: Vec<u8>) -> Result<(), Verdict> {
        let end = offset + data.len() as u64;
        let response = self.patch(url, offset, data).await?;
        ensure!(
            response.status == 204 && response.number("upload-offset") == Some(end),
            "PATCH at {offset} expected 204 with Upload-Offset {end}, got {} with Upload-Offset {:?}",
            response.status,
            response.header("upload-offset")
        );
        Ok(())
    }

    pub async fn head(&mut self, url: &Url) -> Result<Response, Verdict> {
        let request = self.stamp(Request::new("HEAD", url));
        self.send(request).await
    }

    /// The offset a HEAD reports (2xx with a valid `Upload-Offset` expected).
    pub async fn offset(&mut self, url: &Url) -> Result<u64, Verdict> {
        let response = self.head(url).await?;
        match response.number("upload-offset") {
            Some(offset) if response.is_success() => Ok(offset),
            _ => fail!(
                "HEAD expected 2xx with Upload-Offset, got {} with Upload-Offset {:?}",
                response.status,
                response.header("upload-offset")
            ),
        }
    }

    /// The bytes of the finished upload at `url` (`len` expected): by GET when the server
    /// serves it, else from `--store-dir`, else the check is skipped.
    pub async fn read_back(&mut self, url: &Url, len: usize) -> Result<Vec<u8>, Verdict> {
        let response = self.try_send(Request::new("GET", url).tus()).await;
        if let Ok(response) = &response
            && response.status == 200
            && response.body.len() == len
        {
            return Ok(response.body.clone());
        }
        if let Some(dir) = &self.cx.config.store_dir {
            let id = url.path.rsplit('/').next().unwrap_or_default();
            let path = dir.join(id);
            return std::fs::read(&path)
                .map_err(|e| Verdict::Skip(format!("cannot read {} back: {e}", path.display())));
        }
        let what = match &response {
            Ok(r) if r.status == 200 => {
                format!("GET answered 200 with {} bytes, not {len}", r.body.len())
            }
            Ok(r) => format!("GET answered {}", r.status),
            Err(e) => format!("GET failed: {e}"),
        };
        Err(Verdict::Skip(format!(
            "the bytes cannot be read back ({what}); pass --store-dir DIR if the server stores uploads as DIR/<id>"
        )))
    }

    /// DELETEs what this check created, where termination is offered. The DELETEs are
    /// recorded: a server that dies on one is then caught right after this check.
    async fn cleanup(&mut self) {
        if !self.ietf() && !self.cx.offers("termination") {
            return;
        }
        for url in std::mem::take(&mut self.created) {
            let request = self.stamp(Request::new("DELETE", &url));
            let _ = self.try_send(request).await;
        }
    }

    /// A URL under the collection that no upload has: `<collection>/<random id>`.
    pub fn unknown_url(&self) -> Url {
        let mut path = self.cx.collection.path.clone();
        if let Some(at) = path.find('?') {
            path.truncate(at);
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        self.cx
            .collection
            .with_path(format!("{path}{}", random_id()))
    }

    /// Remembers `url` for cleanup (uploads created outside [`Probe::create_with`]).
    pub fn track(&mut self, url: Url) {
        self.created.push(url);
    }

    /// `location` (a server's `Location`) resolved against the collection. A URL on another
    /// server is refused unless `--allow-remote`: the target's vetting must not be undone by
    /// a `Location` that sends this run's PATCHes and DELETEs somewhere else.
    pub fn resolve(&self, location: &str) -> Result<Url, HttpError> {
        let url = self.cx.collection.join(location)?;
        if !self.cx.config.allow_remote
            && (url.host != self.cx.collection.host || url.port != self.cx.collection.port)
        {
            return Err(HttpError::Url {
                url: location.to_owned(),
                why: "points at another server than the one checked (--allow-remote allows it)",
            });
        }
        Ok(url)
    }

    /// Remember the upload a successful response's `Location` names, so cleanup deletes it.
    pub fn track_location(&mut self, response: &Response) {
        if response.is_success()
            && let Some(location) = response.header("location")
            && let Ok(url) = self.resolve(location)
        {
            self.track(url);
        }
    }
}

fn shorten(text: &str) -> String {
    if text.len() > 120 {
        let mut end = 120;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text.to_owned()
    }
}

async fn dispatch(id: &str, p: &mut Probe) -> Outcome {
    match id {
        "core-options-version" => Box::pin(core::options_version(p)).await,
        "core-options-ignores-tus-resumable" => {
            Box::pin(core::options_ignores_tus_resumable(p)).await
        }
        "core-extension-list" => Box::pin(core::extension_list(p)).await,
        "core-max-size-format" => Box::pin(core::max_size_format(p)).await,
        "core-tus-resumable-in-responses" => Box::pin(core::tus_resumable_in_responses(p)).await,
        "core-unsupported-version-412" => core::unsupported_version_412(p).await,
        "core-unsupported-version-not-processed" => {
            Box::pin(core::unsupported_version_not_processed(p)).await
        }
        "core-head-offset" => Box::pin(core::head_offset(p)).await,
        "core-head-length" => Box::pin(core::head_length(p)).await,
        "core-head-no-store" => Box::pin(core::head_no_store(p)).await,
        "core-head-unknown" => Box::pin(core::head_unknown(p)).await,
        "core-patch-204" => core::patch_204(p).await,
        "core-patch-content" => Box::pin(core::patch_content(p)).await,
        "core-patch-offset-mismatch-409" => Box::pin(core::patch_offset_mismatch(p)).await,
        "core-patch-content-type-415" => Box::pin(core::patch_content_type(p)).await,
        "core-patch-unknown-404" => Box::pin(core::patch_unknown(p)).await,
        "core-method-override" => Box::pin(core::method_override(p)).await,
        "creation-201-location" => Box::pin(creation::created_location(p)).await,
        "creation-metadata-in-head" => Box::pin(creation::metadata_in_head(p)).await,
        "creation-empty-upload" => Box::pin(creation::empty_upload(p)).await,
        "creation-max-size-413" => Box::pin(creation::max_size(p)).await,
        "creation-length-required" => Box::pin(creation::length_required(p)).await,
        "creation-with-upload-offset" => Box::pin(creation::with_upload_offset(p)).await,
        "creation-with-upload-content" => Box::pin(creation::with_upload_content(p)).await,
        "creation-with-upload-needs-creation" => {
            Box::pin(creation::with_upload_needs_creation(p)).await
        }
        "defer-length-head" => Box::pin(creation::defer_head(p)).await,
        "defer-length-set-by-patch" => Box::pin(creation::defer_set_by_patch(p)).await,
        "defer-length-immutable" => Box::pin(creation::defer_immutable(p)).await,
        "defer-length-value-400" => Box::pin(creation::defer_value(p)).await,
        "termination-delete-204" => extensions::delete_204(p).await,
        "termination-then-404" => Box::pin(extensions::delete_then_gone(p)).await,
        "termination-method-override" => Box::pin(extensions::delete_override(p)).await,
        "checksum-algorithms" => Box::pin(extensions::checksum_algorithms(p)).await,
        "checksum-match-204" => Box::pin(extensions::checksum_match(p)).await,
        "checksum-mismatch-460" => Box::pin(extensions::checksum_mismatch(p)).await,
        "checksum-unsupported-400" => Box::pin(extensions::checksum_unsupported(p)).await,
        "checksum-trailer-match-204" => Box::pin(extensions::trailer_match(p)).await,
        "checksum-trailer-mismatch-460" => Box::pin(extensions::trailer_mismatch(p)).await,
        "expiration-date-format" => Box::pin(extensions::expires_format(p)).await,
        "expiration-in-patch-response" => Box::pin(extensions::expires_in_patch(p)).await,
        "concat-partial-head" => Box::pin(concat::partial_head(p)).await,
        "concat-final-head" => Box::pin(concat::final_head(p)).await,
        "concat-final-content" => Box::pin(concat::final_content(p)).await,
        "concat-final-patch-403" => Box::pin(concat::final_patch(p)).await,
        "concat-metadata-not-inherited" => Box::pin(concat::metadata_not_inherited(p)).await,
        "concat-unfinished-final" => Box::pin(concat::unfinished_final(p)).await,
        "concat-unfinished-no-offset" => Box::pin(concat::unfinished_no_offset(p)).await,
        "cors-preflight" => Box::pin(extensions::cors_preflight(p)).await,
        "cors-expose-headers" => Box::pin(extensions::cors_expose(p)).await,
        "get-content" => Box::pin(extensions::get_content(p)).await,
        "get-range" => Box::pin(extensions::get_range(p)).await,
        "robust-upload-length-invalid" => Box::pin(robust::length_invalid(p)).await,
        "robust-upload-length-huge" => Box::pin(robust::length_huge(p)).await,
        "robust-upload-offset-invalid" => Box::pin(robust::offset_invalid(p)).await,
        "robust-duplicate-headers" => Box::pin(robust::duplicate_headers(p)).await,
        "robust-metadata-malformed" => Box::pin(robust::metadata_malformed(p)).await,
        "robust-metadata-large" => Box::pin(robust::metadata_large(p)).await,
        "robust-metadata-header-injection" => Box::pin(robust::metadata_injection(p)).await,
        "robust-path-traversal" => Box::pin(robust::path_traversal(p)).await,
        "robust-body-past-length" => Box::pin(robust::body_past_length(p)).await,
        "robust-bytes-past-content-length" => Box::pin(robust::bytes_past_content_length(p)).await,
        "robust-cut-fin-keeps-bytes" => Box::pin(robust::cut(p, robust::Cut::Fin, false)).await,
        "robust-cut-fin-prefix" => Box::pin(robust::cut(p, robust::Cut::Fin, true)).await,
        "robust-cut-rst-keeps-bytes" => Box::pin(robust::cut(p, robust::Cut::Rst, false)).await,
        "robust-cut-rst-prefix" => Box::pin(robust::cut(p, robust::Cut::Rst, true)).await,
        "robust-race-same-offset" => Box::pin(robust::race(p)).await,
        "robust-patch-while-streaming" => Box::pin(robust::patch_while_streaming(p)).await,
        other => Err(Verdict::Fail(format!(
            "no implementation for check {other}"
        ))),
    }
}

/// Parses a comma-separated header value into trimmed, non-empty tokens.
pub(crate) fn tokens(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn validate(config: &Config) -> Result<(), Error> {
    let unknown = |what, name: &str, known: &[&str]| Error::Unknown {
        what,
        name: name.to_owned(),
        known: known.join(","),
    };
    let (groups, requirable): (&[&str], &[&str]) = match config.protocol {
        Protocol::Tus1 => (GROUPS, REQUIRABLE),
        Protocol::Ietf => (IETF_GROUPS, &[]),
    };
    for group in &config.groups {
        if !groups.contains(&group.as_str()) {
            return Err(unknown("group", group, groups));
        }
    }
    if config.protocol == Protocol::Ietf && !config.require.is_empty() {
        return Err(Error::Invalid(
            "--require names tus extensions; the IETF draft has none to require".into(),
        ));
    }
    for ext in &config.require {
        if !requirable.contains(&ext.as_str()) {
            return Err(unknown("extension", ext, requirable));
        }
    }
    if config.protocol == Protocol::Ietf && !crate::IETF_INTEROP_VERSIONS.contains(&config.interop)
    {
        return Err(Error::Invalid(format!(
            "--interop {} is not one this tool speaks (3 to {})",
            config.interop,
            crate::IETF_INTEROP
        )));
    }
    let ids: Vec<&str> = suite(config.protocol).map(|c| c.id).collect();
    for id in &config.only {
        if !ids.contains(&id.as_str()) {
            return Err(unknown("check", id, &ids));
        }
    }
    if config.timeout.is_zero() {
        return Err(Error::Invalid("--timeout must be above zero".into()));
    }
    // Deadlines are computed from it (a check's budget is 12 of them): no overflow.
    if config.timeout > Duration::from_secs(3600) {
        return Err(Error::Invalid("--timeout must be at most 3600 s".into()));
    }
    if config.big < 1024 {
        return Err(Error::Invalid("--big must be at least 1024 bytes".into()));
    }
    Ok(())
}

/// The checks of `protocol`'s suite.
fn suite(protocol: Protocol) -> impl Iterator<Item = &'static CheckDef> {
    checks().iter().filter(move |c| c.protocol == protocol)
}

async fn discover(config: &Config, collection: &Url) -> Result<ServerInfo, Error> {
    let limits = Limits {
        timeout: config.timeout,
        max_body: 1 << 20,
    };
    let mut options = Request::new("OPTIONS", collection);
    if config.protocol == Protocol::Ietf {
        options = options.header(ietf::INTEROP_HEADER, config.interop.to_string());
    }
    let response = http::send(&options, limits)
        .await
        .map_err(|source| Error::Unreachable {
            url: collection.to_string(),
            source,
        })?;
    Ok(ServerInfo {
        options_status: response.status,
        versions: tokens(response.header("tus-version")),
        extensions: tokens(response.header("tus-extension")),
        max_size: response.number("tus-max-size"),
        checksum_algorithms: tokens(response.header("tus-checksum-algorithm")),
        upload_limit: match config.protocol {
            Protocol::Ietf => response.header("upload-limit").map(str::to_owned),
            _ => None,
        },
    })
}

pub(crate) async fn run(config: Config) -> Result<Report, Error> {
    validate(&config)?;
    let collection = Url::parse(&config.url)?;
    crate::target::vet(&collection, config.allow_remote).await?;
    let server = discover(&config, &collection).await?;
    let protocol = match config.protocol {
        Protocol::Tus1 => "tus 1.0.0".to_owned(),
        Protocol::Ietf => format!(
            "draft-ietf-httpbis-resumable-upload interop {}",
            config.interop
        ),
    };
    let cx = Arc::new(Ctx {
        config,
        collection,
        server,
    });
    let selected = suite(cx.config.protocol).filter(|c| {
        (cx.config.groups.is_empty() || cx.config.groups.iter().any(|g| g == c.group))
            && (cx.config.only.is_empty() || cx.config.only.iter().any(|i| i == c.id))
    });
    let mut results: Vec<CheckResult> = Vec::new();
    // Set once the server stops answering: the rest fail without running, naming the check
    // during which it went away, instead of each failing on a refused connection.
    let mut gone: Option<String> = None;
    for def in selected {
        if let Some(why) = &gone {
            results.push(not_run(def, why.clone()));
            continue;
        }
        let result = run_check(&cx, def).await;
        let transport_error = result.exchanges.iter().any(|e| e.error.is_some());
        if transport_error && let Err(err) = discover(&cx.config, &cx.collection).await {
            gone = Some(format!(
                "not run: the server stopped answering during `{}` ({err})",
                def.id
            ));
        }
        results.push(result);
    }
    Ok(Report::new(
        protocol,
        cx.collection.to_string(),
        cx.config.strict,
        cx.server.clone(),
        results,
    ))
}

fn not_run(def: &CheckDef, reason: String) -> CheckResult {
    CheckResult {
        id: def.id.to_owned(),
        group: def.group.to_owned(),
        level: def.level,
        source: def.source.to_owned(),
        quote: def.quote.to_owned(),
        status: Status::Fail,
        reason,
        exchanges: Vec::new(),
        duration_ms: 0,
    }
}

/// A bound on one whole check: the big transfers and bounded waits of the robustness checks
/// take several request timeouts.
fn check_budget(cx: &Ctx) -> Duration {
    cx.config.timeout * 12
}

async fn run_check(cx: &Arc<Ctx>, def: &CheckDef) -> CheckResult {
    let started = Instant::now();
    let required = |name: &str| cx.config.require.iter().any(|r| r == name);
    let mut probe = Probe::new(cx.clone());
    let missing = def.needs.iter().find(|ext| !cx.offers(ext));
    let too_old = def.protocol == Protocol::Ietf && cx.config.interop < def.since;
    let outcome = match missing {
        Some(ext) => Err(Verdict::NotOffered(format!(
            "the server does not advertise `{ext}` in Tus-Extension"
        ))),
        None if too_old => Err(Verdict::Skip(format!(
            "the sentence arrived with interop version {}; checking interop {}",
            def.since, cx.config.interop
        ))),
        None => {
            let run = async {
                match def.protocol {
                    Protocol::Ietf => Box::pin(ietf::dispatch(def.id, &mut probe)).await,
                    _ => Box::pin(dispatch(def.id, &mut probe)).await,
                }
            };
            match tokio::time::timeout(check_budget(cx), run).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Verdict::Fail(format!(
                    "the check did not finish within {:?}",
                    check_budget(cx)
                ))),
            }
        }
    };
    probe.cleanup().await;
    let (status, reason) = match outcome {
        Ok(note) => (Status::Pass, note),
        Err(Verdict::Fail(why)) => match def.level {
            Level::Should if !cx.config.strict => (Status::Warn, why),
            _ => (Status::Fail, why),
        },
        Err(Verdict::Skip(why)) => (Status::Skip, why),
        Err(Verdict::NotOffered(why)) => {
            // The extension that is missing, or (cors, get: found out by trying) the group.
            let needed = missing.copied().unwrap_or(def.group);
            if required(needed) {
                (
                    Status::Fail,
                    format!("`{needed}` is required (--require): {why}"),
                )
            } else {
                (Status::Skip, why)
            }
        }
    };
    CheckResult {
        id: def.id.to_owned(),
        group: def.group.to_owned(),
        level: def.level,
        source: def.source.to_owned(),
        quote: def.quote.to_owned(),
        status,
        reason,
        exchanges: probe.exchanges,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}
