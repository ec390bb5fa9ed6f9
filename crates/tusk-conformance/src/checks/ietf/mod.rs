//! The IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload): its table
//! of checks, their dispatch, and how its requests are spelled at each interop version. The
//! sentences are quoted from the editor's copy after draft -11 (interop version 8); with
//! `--interop N` below 8 a check whose sentence arrived later is skipped (`since`).

mod interim;
mod resource;

use super::{CheckDef, Outcome, Probe, Verdict, fail, robust};
use crate::Protocol;
use crate::http::{Request, Response, Url};
use crate::report::Level::{self, Must, Should};

/// The request header naming the interop version (and the 104's).
pub(crate) const INTEROP_HEADER: &str = "Upload-Draft-Interop-Version";

/// The IETF groups, in run order.
pub const IETF_GROUPS: &[&str] = &[
    "ietf-limits",
    "ietf-creation",
    "ietf-interim",
    "ietf-offset",
    "ietf-append",
    "ietf-cancel",
    "ietf-robust",
];

const fn def(
    id: &'static str,
    group: &'static str,
    level: Level,
    section: &'static str,
    quote: &'static str,
    since: u8,
) -> CheckDef {
    CheckDef {
        id,
        group,
        level,
        source: section,
        quote,
        needs: &[],
        protocol: Protocol::Ietf,
        since,
    }
}

// `source` must be a &'static str naming the draft and the section; concat! keeps it one literal.
macro_rules! section {
    ($name:literal) => {
        concat!("draft-ietf-httpbis-resumable-upload §", $name)
    };
}

const CREATION_SERVER: &str = section!("Upload Creation, Server Behavior");
const OFFSET_SERVER: &str = section!("Offset Retrieval, Server Behavior");
const APPEND_SERVER: &str = section!("Upload Append, Server Behavior");

const APPEND_APPLIES: &str = "A server applies a `PATCH` request with the `application/partial-upload` media type to an upload resource by appending the patch document in the request content. [...] If the request content was fully processed, the server acknowledges the appended data by sending a `2xx (Successful)` response with the `Upload-Complete` header field set to false.";
const APPEND_KEEPS: &str = "The server might not process the entire patch document when the upload is interrupted, for example because of a dropped connection or canceled request. In this case, the server SHOULD append as much of the patch document as possible to the upload resource, starting at its beginning and without discontinuities.";
const APPEND_INCOMPLETE: &str = "In this case, the server SHOULD append as much of the patch document as possible to the upload resource, starting at its beginning and without discontinuities. [...] In addition, the upload resource MUST NOT be considered complete then.";

/// Every IETF check, in run order.
pub(super) static CHECKS: &[CheckDef] = &[
    // limits
    def(
        "ietf-options-upload-limit",
        "ietf-limits",
        Must,
        section!("Limits"),
        "When responding to an `OPTIONS` request without the `Upload-Complete` header field, if the resource that is the target of the request supports the creation of a resumable upload resource, the server MUST include the `Upload-Limit` header field with the corresponding limits in the response.",
        8,
    ),
    def(
        "ietf-limits-valid",
        "ietf-limits",
        Must,
        section!("Limits"),
        "`Upload-Limit` is a Dictionary Structured Header Field. [...] `max-size`: [...] The value is an Integer. [...] If the server does not apply any limits, it MUST use `min-size=0` instead of an empty header value.",
        6,
    ),
    // creation
    def(
        "ietf-creation-location",
        "ietf-creation",
        Must,
        CREATION_SERVER,
        "If the `Upload-Complete` request header field is set to false, the client intends to transfer the representation over multiple requests. If the request content was fully processed, the server MUST include the `Location` response header field pointing to the upload resource",
        3,
    ),
    def(
        "ietf-creation-upload-limit",
        "ietf-creation",
        Must,
        CREATION_SERVER,
        "If the request content was fully processed, the server MUST include the `Location` response header field pointing to the upload resource and MUST include the `Upload-Limit` header field with the corresponding limits if existing.",
        8,
    ),
    def(
        "ietf-creation-201",
        "ietf-creation",
        Should,
        CREATION_SERVER,
        "Servers are RECOMMENDED to use the `201 (Created)` status code.",
        3,
    ),
    def(
        "ietf-creation-upload-complete",
        "ietf-creation",
        Should,
        CREATION_SERVER,
        "The server SHOULD include the `Upload-Complete` header field in the response to indicate whether it is the result of processing the uploaded representation.",
        3,
    ),
    def(
        "ietf-creation-complete",
        "ietf-creation",
        Must,
        section!("Completeness; Upload Creation, Server Behavior"),
        "An upload is marked as completed either when a request for creating the upload resource or appending to it includes the `Upload-Complete` header field with a true value and the request content was fully processed [...] The server MUST record the length according to {{upload-length}} if the `Upload-Length` or `Upload-Complete: ?1` header fields are included in the request.",
        3,
    ),
    def(
        "ietf-creation-partial",
        "ietf-creation",
        Must,
        section!("Offset; Offset Retrieval, Server Behavior"),
        "The offset is the number of bytes from the representation data that have been processed, either during the creation of the upload resource or by appending to it. [...] A successful response to a `HEAD` or `GET` request against an upload resource MUST include the offset in the `Upload-Offset` header field",
        3,
    ),
    def(
        "ietf-length-mismatch",
        "ietf-creation",
        Must,
        section!("Length"),
        "If indicators (1) and (2) are both present in the same request, their indicated lengths MUST match. If multiple requests include indicators, their indicated values MUST match.",
        6,
    ),
    def(
        "ietf-length-mismatch-problem",
        "ietf-creation",
        Should,
        section!("Length"),
        "A server can use the problem type of \"https://iana.org/assignments/http-problem-types#inconsistent-upload-length\" in responses to indicate inconsistent length values.",
        7,
    ),
    // interim responses
    def(
        "ietf-interim-announced",
        "ietf-interim",
        Should,
        CREATION_SERVER,
        "If so, the server SHOULD announce the upload resource by sending an interim response with the `104 (Upload Resumption Supported)` status code unless the server is not capable of sending interim responses.",
        3,
    ),
    def(
        "ietf-interim-location",
        "ietf-interim",
        Must,
        CREATION_SERVER,
        "When sent, it MUST include `Location` header field pointing to the upload resource [...] Where a response requires a `Location` header field to be included, all interim and final response messages for the same request MUST contain an identical `Location` value.",
        3,
    ),
    def(
        "ietf-interim-interop-version",
        "ietf-interim",
        Must,
        section!("Draft Version Identification"),
        "Server implementations of draft versions of the protocol MUST also send a header field `Upload-Draft-Interop-Version` with the interop version as its value to the `104 (Upload Resumption Supported)` informational response.",
        3,
    ),
    def(
        "ietf-interim-upload-limit",
        "ietf-interim",
        Must,
        CREATION_SERVER,
        "When sent, it MUST include `Location` header field pointing to the upload resource and MUST include the `Upload-Limit` header field with the corresponding limits if existing.",
        8,
    ),
    def(
        "ietf-interim-version-mismatch",
        "ietf-interim",
        Must,
        section!("Draft Version Identification"),
        "Server implementations of draft versions of the protocol MUST NOT send a `104 (Upload Resumption Supported)` informational response when the interop version indicated by the `Upload-Draft-Interop-Version` header field in the request is missing or mismatching.",
        3,
    ),
    def(
        "ietf-interim-append-no-location",
        "ietf-interim",
        Must,
        APPEND_SERVER,
        "While the request content is being processed, the server SHOULD send interim responses with a `104 (Upload Resumption Supported)` status code and the `Upload-Offset` header field set to the current offset to inform the client about the upload progress. These interim responses MUST NOT include the `Location` header field.",
        3,
    ),
    // offset retrieval
    def(
        "ietf-offset-upload-offset",
        "ietf-offset",
        Must,
        OFFSET_SERVER,
        "A successful response to a `HEAD` or `GET` request against an upload resource - MUST include the offset in the `Upload-Offset` header field",
        3,
    ),
    def(
        "ietf-offset-upload-complete",
        "ietf-offset",
        Must,
        OFFSET_SERVER,
        "A successful response to a `HEAD` or `GET` request against an upload resource [...] - MUST include the `Upload-Complete` header field indicating whether a final response was produced from processing the uploaded representation",
        3,
    ),
    def(
        "ietf-offset-upload-length",
        "ietf-offset",
        Must,
        OFFSET_SERVER,
        "A successful response to a `HEAD` or `GET` request against an upload resource [...] - MUST include the length in the `Upload-Length` header field, unless the client has not supplied one",
        6,
    ),
    def(
        "ietf-offset-upload-limit",
        "ietf-offset",
        Must,
        OFFSET_SERVER,
        "A successful response to a `HEAD` or `GET` request against an upload resource [...] - MUST indicate the limits in the `Upload-Limit` header field",
        8,
    ),
    def(
        "ietf-offset-no-store",
        "ietf-offset",
        Should,
        OFFSET_SERVER,
        "A successful response to a `HEAD` or `GET` request against an upload resource [...] - SHOULD include the `Cache-Control` header field with the value `no-store` to prevent HTTP caching",
        3,
    ),
    def(
        "ietf-offset-no-redirect",
        "ietf-offset",
        Should,
        OFFSET_SERVER,
        "The resource SHOULD NOT generate a response with the `301 (Moved Permanently)` and `302 (Found)` status codes because clients might follow the redirect without preserving the `HEAD` method.",
        3,
    ),
    // append
    def(
        "ietf-append-appends",
        "ietf-append",
        Must,
        APPEND_SERVER,
        APPEND_APPLIES,
        3,
    ),
    def(
        "ietf-append-upload-complete",
        "ietf-append",
        Should,
        APPEND_SERVER,
        "The server SHOULD include the `Upload-Complete` header field in the response to indicate whether it is the result of processing the uploaded representation.",
        7,
    ),
    def(
        "ietf-append-offset-mismatch",
        "ietf-append",
        Must,
        APPEND_SERVER,
        "If the `Upload-Offset` request header field value does not match the current offset, the server MUST reject the request with a `409 (Conflict)` status code and the `Upload-Complete` header field set to false. The response MUST include the correct offset in the `Upload-Offset` header field.",
        3,
    ),
    def(
        "ietf-append-offset-mismatch-problem",
        "ietf-append",
        Should,
        section!("Upload Append, Server Behavior; Problem Types"),
        "The response can use the problem type of \"https://iana.org/assignments/http-problem-types#mismatching-upload-offset\". [...] A response using this problem type SHOULD populate both members, with the value of `expected-offset` taken from the upload resource and the value of `provided-offset` taken from the upload append request.",
        6,
    ),
    def(
        "ietf-append-completes",
        "ietf-append",
        Must,
        APPEND_SERVER,
        "If the `Upload-Complete` request header field is set to true, [...] If the request content was fully processed, the upload is marked as complete [...] However, the response MUST include the `Upload-Complete` header field with a true value",
        3,
    ),
    def(
        "ietf-append-content",
        "ietf-append",
        Must,
        APPEND_SERVER,
        APPEND_APPLIES,
        3,
    ),
    // cancellation
    def(
        "ietf-cancel-deactivates",
        "ietf-cancel",
        Should,
        section!("Upload Cancellation, Server Behavior"),
        "Upon receiving a `DELETE` request, the server SHOULD deactivate the upload resource.",
        3,
    ),
    def(
        "ietf-cancel-no-redirect",
        "ietf-cancel",
        Should,
        section!("Upload Cancellation, Server Behavior"),
        "The server SHOULD NOT generate a response with the `301 (Moved Permanently)` and `302 (Found)` status codes because clients might follow the redirect without preserving the `DELETE` method.",
        3,
    ),
    // robustness
    def(
        "ietf-robust-offset-within-length",
        "ietf-robust",
        Must,
        APPEND_SERVER,
        "If the length is known, the server MUST prevent the offset from exceeding the upload length by rejecting the request once the offset exceeds the length, marking the upload resource invalid and rejecting any further interaction with it.",
        6,
    ),
    def(
        "ietf-robust-cut-fin-keeps-bytes",
        "ietf-robust",
        Should,
        APPEND_SERVER,
        APPEND_KEEPS,
        3,
    ),
    def(
        "ietf-robust-cut-fin-incomplete",
        "ietf-robust",
        Must,
        APPEND_SERVER,
        APPEND_INCOMPLETE,
        3,
    ),
    def(
        "ietf-robust-cut-rst-keeps-bytes",
        "ietf-robust",
        Should,
        APPEND_SERVER,
        APPEND_KEEPS,
        3,
    ),
    def(
        "ietf-robust-cut-rst-incomplete",
        "ietf-robust",
        Must,
        APPEND_SERVER,
        APPEND_INCOMPLETE,
        3,
    ),
    def(
        "ietf-robust-optimistic-cut",
        "ietf-robust",
        Must,
        CREATION_SERVER,
        "The server might not process the entire request content when the upload is interrupted, for example because of dropped connection or canceled request. In this case, the server SHOULD append as much of the request content as possible to the upload resource, allowing the client to resume the upload from where it was interrupted. In addition, the upload resource MUST NOT be considered complete then.",
        3,
    ),
    def(
        "ietf-robust-offset-accepted",
        "ietf-robust",
        Must,
        section!("Concurrency"),
        "In addition, the server MUST NOT send outdated information in responses when retrieving the offset. This means that the offset sent by the server MUST be accepted in a subsequent request to append representation data if no other request to append representation data or cancel was received in the meantime.",
        3,
    ),
    def(
        "ietf-robust-race",
        "ietf-robust",
        Must,
        section!("Concurrency"),
        "Therefore, the server MUST take measures to prevent race conditions, data loss and corruption from concurrent requests to append representation data and/or cancellation to the same upload resource.",
        3,
    ),
];

pub(super) async fn dispatch(id: &str, p: &mut Probe) -> Outcome {
    use robust::Cut;
    match id {
        "ietf-options-upload-limit" => Box::pin(resource::options_limit(p)).await,
        "ietf-limits-valid" => Box::pin(resource::limits_valid(p)).await,
        "ietf-creation-location" => Box::pin(resource::creation_location(p)).await,
        "ietf-creation-upload-limit" => Box::pin(resource::creation_limit(p)).await,
        "ietf-creation-201" => Box::pin(resource::creation_201(p)).await,
        "ietf-creation-upload-complete" => Box::pin(resource::creation_complete_header(p)).await,
        "ietf-creation-complete" => Box::pin(resource::creation_complete(p)).await,
        "ietf-creation-partial" => Box::pin(resource::creation_partial(p)).await,
        "ietf-length-mismatch" => Box::pin(resource::length_mismatch(p, false)).await,
        "ietf-length-mismatch-problem" => Box::pin(resource::length_mismatch(p, true)).await,
        "ietf-interim-announced" => Box::pin(interim::announced(p)).await,
        "ietf-interim-location" => Box::pin(interim::location(p)).await,
        "ietf-interim-interop-version" => Box::pin(interim::interop_version(p)).await,
        "ietf-interim-upload-limit" => Box::pin(interim::upload_limit(p)).await,
        "ietf-interim-version-mismatch" => Box::pin(interim::version_mismatch(p)).await,
        "ietf-interim-append-no-location" => Box::pin(interim::append_no_location(p)).await,
        "ietf-offset-upload-offset" => Box::pin(resource::head_offset(p)).await,
        "ietf-offset-upload-complete" => Box::pin(resource::head_complete(p)).await,
        "ietf-offset-upload-length" => Box::pin(resource::head_length(p)).await,
        "ietf-offset-upload-limit" => Box::pin(resource::head_limit(p)).await,
        "ietf-offset-no-store" => Box::pin(resource::head_no_store(p)).await,
        "ietf-offset-no-redirect" => Box::pin(resource::head_no_redirect(p)).await,
        "ietf-append-appends" => Box::pin(resource::append_appends(p)).await,
        "ietf-append-upload-complete" => Box::pin(resource::append_complete_header(p)).await,
        "ietf-append-offset-mismatch" => Box::pin(resource::offset_mismatch(p, false)).await,
        "ietf-append-offset-mismatch-problem" => Box::pin(resource::offset_mismatch(p, true)).await,
        "ietf-append-completes" => Box::pin(resource::append_completes(p)).await,
        "ietf-append-content" => Box::pin(resource::append_content(p)).await,
        "ietf-cancel-deactivates" => Box::pin(resource::cancel_deactivates(p)).await,
        "ietf-cancel-no-redirect" => Box::pin(resource::cancel_no_redirect(p)).await,
        "ietf-robust-offset-within-length" => Box::pin(resource::within_length(p)).await,
        "ietf-robust-cut-fin-keeps-bytes" => Box::pin(interim::cut(p, Cut::Fin, false)).await,
        "ietf-robust-cut-fin-incomplete" => Box::pin(interim::cut(p, Cut::Fin, true)).await,
        "ietf-robust-cut-rst-keeps-bytes" => Box::pin(interim::cut(p, Cut::Rst, false)).await,
        "ietf-robust-cut-rst-incomplete" => Box::pin(interim::cut(p, Cut::Rst, true)).await,
        "ietf-robust-optimistic-cut" => Box::pin(interim::optimistic_cut(p)).await,
        "ietf-robust-offset-accepted" => Box::pin(interim::offset_accepted(p)).await,
        "ietf-robust-race" => Box::pin(robust::race(p)).await,
        other => Err(Verdict::Fail(format!(
            "no implementation for check {other}"
        ))),
    }
}

/// The interop version of this run.
fn interop(p: &Probe) -> u8 {
    p.cx.config.interop
}

/// The completeness header as this interop version spells it: `Upload-Incomplete` (inverted)
/// at 3, `Upload-Complete` from 4.
fn complete_header(p: &Probe, complete: bool) -> (&'static str, &'static str) {
    if interop(p) == 3 {
        ("Upload-Incomplete", if complete { "?0" } else { "?1" })
    } else {
        ("Upload-Complete", if complete { "?1" } else { "?0" })
    }
}

/// Whether `response` says the upload is complete: `None` when the header is missing or not a
/// structured-field boolean.
fn completeness(p: &Probe, response: &Response) -> Option<bool> {
    let (name, _) = complete_header(p, true);
    let value = match response.header(name)?.split(';').next()?.trim() {
        "?1" => true,
        "?0" => false,
        _ => return None,
    };
    Some(if interop(p) == 3 { !value } else { value })
}

/// How a response spelled completeness, for reasons.
fn shown_completeness(p: &Probe, response: &Response) -> String {
    let (name, _) = complete_header(p, true);
    format!("{name} {:?}", response.header(name))
}

/// A creation request to the collection: completeness, `headers`, `body`.
fn creation_request(
    p: &Probe,
    complete: bool,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Request {
    let (name, value) = complete_header(p, complete);
    let mut request = p
        .stamp(Request::new("POST", &p.collection()))
        .header(name, value)
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value.clone());
    }
    request
}

/// `Upload-Length: length` where the interop version has it (from 6).
fn length_header(p: &Probe, length: u64) -> Vec<(&'static str, String)> {
    if interop(p) >= 6 {
        vec![("Upload-Length", length.to_string())]
    } else {
        Vec::new()
    }
}

/// The upload resource `response` points to: the final response's `Location`, else the first
/// 104's. Remembered for cleanup.
fn located(p: &mut Probe, response: &Response) -> Option<Url> {
    let location = response.header("location").or_else(|| {
        response
            .interim
            .iter()
            .find(|i| i.status == 104)
            .and_then(|i| i.header("location"))
    })?;
    let url = p.resolve(location).ok()?;
    p.track(url.clone());
    Some(url)
}

/// Sends a creation request; returns the response and the upload resource, if one was named.
async fn create(
    p: &mut Probe,
    complete: bool,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(Response, Option<Url>), Verdict> {
    let request = creation_request(p, complete, headers, body);
    let response = p.send(request).await?;
    let url = located(p, &response);
    Ok((response, url))
}

/// Creates an upload with no content and `Upload-Complete: ?0` (and `Upload-Length`); a 2xx
/// with `Location` expected.
pub(super) async fn create_empty(p: &mut Probe, length: u64) -> Result<Url, Verdict> {
    let headers = length_header(p, length);
    let (response, _) = create(p, false, &headers, Vec::new()).await?;
    created(p, &response)
}

/// The upload a `?0` creation answered with: 2xx with a `Location`.
fn created(p: &mut Probe, response: &Response) -> Result<Url, Verdict> {
    let location = response
        .header("location")
        .filter(|_| response.is_success());
    let Some(location) = location else {
        fail!(
            "creating an upload failed: {} (Location {:?})",
            response.status_line,
            response.header("location")
        );
    };
    let url = p
        .resolve(location)
        .map_err(|e| Verdict::Fail(format!("Location {location:?}: {e}")))?;
    p.track(url.clone());
    Ok(url)
}

/// An append of `data` at `offset`; `last` completes the upload.
pub(super) fn append_request(
    p: &Probe,
    url: &Url,
    offset: u64,
    data: Vec<u8>,
    last: bool,
) -> Request {
    let media_type = if interop(p) >= 6 {
        "application/partial-upload"
    } else {
        "application/offset+octet-stream"
    };
    let (name, value) = complete_header(p, last);
    p.stamp(Request::new("PATCH", url))
        .header("Content-Type", media_type)
        .header("Upload-Offset", offset.to_string())
        .header(name, value)
        .body(data)
}

/// Appends and expects a 2xx.
async fn append_ok(
    p: &mut Probe,
    url: &Url,
    offset: u64,
    data: Vec<u8>,
    last: bool,
) -> Result<Response, Verdict> {
    let len = data.len();
    let request = append_request(p, url, offset, data, last);
    let response = p.send(request).await?;
    if !response.is_success() {
        fail!(
            "appending {len} bytes at offset {offset} answered {}",
            response.status_line
        );
    }
    Ok(response)
}

/// Whether a resource answered as gone: 404 or 410 (what the draft allows after completion
/// and cancellation).
fn gone(response: &Response) -> bool {
    matches!(response.status, 404 | 410)
}

/// One member value of a structured-field dictionary, as far as the checks need it.
#[derive(Debug, PartialEq)]
enum Member {
    Integer(i64),
    Other(String),
}

/// Parses a structured-field dictionary (RFC 9651 §3.2) loosely: members `key=value` or `key`
/// (boolean true), parameters dropped. `Err` names the first thing that is not one.
fn dictionary(value: &str) -> Result<Vec<(String, Member)>, String> {
    if value.trim().is_empty() {
        return Err("empty value".into());
    }
    let mut members = Vec::new();
    for raw in value.split(',') {
        let raw = raw.trim();
        let (key, item) = raw.split_once('=').unwrap_or((raw, "?1"));
        let key_ok = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b));
        if !key_ok {
            return Err(format!("member {raw:?} has no valid key"));
        }
        let item = item.split(';').next().unwrap_or_default().trim();
        let digits = item.strip_prefix('-').unwrap_or(item);
        let member = if !digits.is_empty()
            && digits.len() <= 15
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            Member::Integer(item.parse().map_err(|_| format!("integer {item:?}"))?)
        } else if item.is_empty() {
            return Err(format!("member {raw:?} has no value"));
        } else {
            Member::Other(item.to_owned())
        };
        members.push((key.to_owned(), member));
    }
    Ok(members)
}

/// The limits this tool knows, by interop version (`expires` at 6, `max-age` from 7).
fn known_limit(p: &Probe, key: &str) -> bool {
    let age = if interop(p) == 6 {
        "expires"
    } else {
        "max-age"
    };
    [
        "max-size",
        "min-size",
        "max-append-size",
        "min-append-size",
        age,
    ]
    .contains(&key)
}

/// Why an `Upload-Limit` value is not a dictionary of integer limits, if it is not.
fn limit_problem(p: &Probe, value: &str) -> Option<String> {
    match dictionary(value) {
        Err(why) => Some(why),
        Ok(members) => members
            .iter()
            .find(|(k, m)| known_limit(p, k) && !matches!(m, Member::Integer(_)))
            .map(|(k, m)| format!("{k} is {m:?}, not an Integer")),
    }
}

/// Whether the server has limits to announce: what OPTIONS said, other than only `min-size=0`
/// (the spelling of "no limits").
fn limits_exist(p: &Probe) -> bool {
    match p.cx.server.upload_limit.as_deref().map(dictionary) {
        Some(Ok(members)) => members
            .iter()
            .any(|(k, m)| !(k == "min-size" && *m == Member::Integer(0))),
        Some(Err(_)) => true,
        None => false,
    }
}

/// An `application/problem+json` body's member `name`.
fn problem_member(response: &Response, name: &str) -> Option<serde_json::Value> {
    let body: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    body.get(name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionaries_parse() {
        assert_eq!(
            dictionary("min-size=0, max-size=10;x=1, flag").unwrap(),
            vec![
                ("min-size".into(), Member::Integer(0)),
                ("max-size".into(), Member::Integer(10)),
                ("flag".into(), Member::Other("?1".into())),
            ]
        );
        assert!(dictionary("").is_err());
        assert!(dictionary("Max=1").is_err());
        assert_eq!(
            dictionary("max-size=\"1 GiB\"").unwrap()[0].1,
            Member::Other("\"1 GiB\"".into())
        );
    }

    #[test]
    fn the_table_is_consistent() {
        for check in CHECKS {
            assert!(IETF_GROUPS.contains(&check.group), "{}", check.id);
            assert!(check.id.starts_with("ietf-"), "{}", check.id);
            assert!(
                check
                    .source
                    .starts_with("draft-ietf-httpbis-resumable-upload §"),
                "{}",
                check.id
            );
            assert!(
                (3..=crate::IETF_INTEROP).contains(&check.since),
                "{}",
                check.id
            );
        }
    }
}
