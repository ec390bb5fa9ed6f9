//! Robustness: malformed and absurd headers, metadata abuse, path traversal, bodies longer than
//! the upload or than `Content-Length`, PATCHes cut by FIN or RST, racing PATCHes. The cuts and
//! races speak the run's protocol (tus or the IETF draft) through the probe, so both suites share
//! them.

use std::time::Duration;

use tokio::time::Instant;

use super::{Outcome, Probe, Verdict, b64, ensure, fail, first_difference, pattern};
use crate::http::{HttpError, Request, Response, Streaming, Url};

const CHUNK: usize = 64 * 1024;

fn client_error(status: u16) -> bool {
    (400..500).contains(&status)
}

pub(super) async fn length_invalid(p: &mut Probe) -> Outcome {
    let values = [
        "abc",
        "-1",
        "1.5",
        "0x10",
        "1e3",
        "",
        "18446744073709551616",
        "999999999999999999999999999999",
    ];
    let mut wrong = Vec::new();
    for value in values {
        let request = Request::new("POST", &p.collection())
            .tus()
            .header("Upload-Length", value);
        let response = p.send(request).await?;
        p.track_location(&response);
        if !client_error(response.status) {
            wrong.push(format!("{value:?} -> {}", response.status));
        }
    }
    ensure!(
        wrong.is_empty(),
        "invalid Upload-Length values not refused with 4xx: {}",
        wrong.join(", ")
    );
    Ok(format!("{} invalid values refused with 4xx", values.len()))
}

pub(super) async fn length_huge(p: &mut Probe) -> Outcome {
    let max = p.cx.server.max_size;
    let mut notes = Vec::new();
    for value in [u64::MAX, 1 << 63] {
        let request = Request::new("POST", &p.collection())
            .tus()
            .header("Upload-Length", value.to_string());
        let response = p.send(request).await?;
        p.track_location(&response);
        match max {
            Some(max) if value > max => ensure!(
                response.status == 413,
                "POST with Upload-Length {value} (above Tus-Max-Size {max}) answered {}, expected 413",
                response.status
            ),
            _ => ensure!(
                response.status == 201 || client_error(response.status),
                "POST with Upload-Length {value} answered {}, expected 201 or a 4xx",
                response.status
            ),
        }
        notes.push(format!("{value} -> {}", response.status));
    }
    Ok(notes.join(", "))
}

pub(super) async fn offset_invalid(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let values = [
        "abc",
        "-1",
        "-0",
        "1.0",
        "",
        "18446744073709551615",
        "18446744073709551616",
        "999999999999999999999999999999",
    ];
    let mut wrong = Vec::new();
    for value in values {
        let request = Request::new("PATCH", &url)
            .tus()
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", value)
            .body(b"abc".to_vec());
        let response = p.send(request).await?;
        if !client_error(response.status) {
            wrong.push(format!("{value:?} -> {}", response.status));
        }
    }
    let offset = p.offset(&url).await?;
    ensure!(
        wrong.is_empty() && offset == 0,
        "invalid Upload-Offset values not refused with 4xx: [{}]; offset now {offset}",
        wrong.join(", ")
    );
    Ok(String::new())
}

pub(super) async fn duplicate_headers(p: &mut Probe) -> Outcome {
    let request = Request::new("POST", &p.collection())
        .tus()
        .header("Upload-Length", "10")
        .header("Upload-Length", "20");
    let created = p.send(request).await?;
    p.track_location(&created);
    let url = p.create(10).await?;
    let request = Probe::patch_request(&url, 0, b"abc".to_vec()).header("Upload-Offset", "3");
    let patched = p.send(request).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        client_error(created.status) && client_error(patched.status) && offset == 0,
        "two conflicting Upload-Length lines: POST answered {}; two conflicting Upload-Offset lines: PATCH answered {} (offset now {offset}); expected 4xx for both",
        created.status,
        patched.status
    );
    Ok(String::new())
}

pub(super) async fn metadata_malformed(p: &mut Probe) -> Outcome {
    let values = [
        "key not-base64!!".to_owned(),
        format!("a {},a {}", b64(b"1"), b64(b"2")),
        format!(" {}", b64(b"no key")),
        ",,,".to_owned(),
        format!("k\u{1} {}", b64(b"control")),
        "k ====".to_owned(),
    ];
    let mut wrong = Vec::new();
    for value in values {
        let request = Request::new("POST", &p.collection())
            .tus()
            .header("Upload-Length", "1")
            .header("Upload-Metadata", value.clone());
        let response = p.send(request).await?;
        p.track_location(&response);
        if response.status != 201 && !client_error(response.status) {
            wrong.push(format!("{value:?} -> {}", response.status));
        } else if response.status == 201
            && let Some(location) = response.header("location")
            && let Ok(url) = p.resolve(location)
        {
            let head = p.head(&url).await?;
            if !head.is_success() {
                wrong.push(format!("{value:?} -> 201, then HEAD {}", head.status));
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "malformed Upload-Metadata neither accepted nor refused with 4xx: {}",
        wrong.join(", ")
    );
    Ok(String::new())
}

pub(super) async fn metadata_large(p: &mut Probe) -> Outcome {
    let mut notes = Vec::new();
    for size in [8 * 1024, 64 * 1024] {
        let value = format!("big {}", b64(&vec![b'x'; size]));
        let request = Request::new("POST", &p.collection())
            .tus()
            .header("Upload-Length", "1")
            .header("Upload-Metadata", value);
        let response = p.send(request).await?;
        p.track_location(&response);
        ensure!(
            response.status == 201 || client_error(response.status),
            "POST with {size} bytes of metadata answered {}, expected 201 or a 4xx (413, 431)",
            response.status
        );
        notes.push(format!("{size} B -> {}", response.status));
    }
    Ok(notes.join(", "))
}

fn injected(response: &Response) -> Option<String> {
    response
        .headers
        .iter()
        .find(|(name, value)| {
            name.eq_ignore_ascii_case("x-injected") || value.contains(['\r', '\n'])
        })
        .map(|(name, value)| format!("{name}: {value:?}"))
}

pub(super) async fn metadata_injection(p: &mut Probe) -> Outcome {
    let metadata = format!(
        "filename {},x {},y {}",
        b64(b"\r\nX-Injected: 1"),
        b64(b"\nX-Injected: 1"),
        b64(b"a\r\nX-Injected: 1\r\n\r\nHTTP/1.1 200 OK")
    );
    let request = Request::new("POST", &p.collection())
        .tus()
        .header("Upload-Length", "1")
        .header("Upload-Metadata", metadata);
    let response = p.send(request).await?;
    if let Some(found) = injected(&response) {
        fail!("the POST response carries an injected header line: {found}");
    }
    if response.status != 201 {
        return Ok(format!("metadata refused with {}", response.status));
    }
    p.track_location(&response);
    let Some(url) = response.header("location").and_then(|l| p.resolve(l).ok()) else {
        fail!("201 without a usable Location");
    };
    let head = p.head(&url).await?;
    if let Some(found) = injected(&head) {
        fail!("HEAD response carries an injected header line: {found}");
    }
    let _ = p.patch(&url, 0, b"x".to_vec()).await?;
    let get = p.send(Request::new("GET", &url).tus()).await?;
    if let Some(found) = injected(&get) {
        fail!("GET response carries an injected header line: {found}");
    }
    Ok("no injected header in the POST, HEAD and GET responses".into())
}

pub(super) async fn path_traversal(p: &mut Probe) -> Outcome {
    let mut base = p.collection().path;
    if let Some(at) = base.find('?') {
        base.truncate(at);
    }
    if !base.ends_with('/') {
        base.push('/');
    }
    let ids = [
        "../../../../etc/passwd".to_owned(),
        "..%2f..%2f..%2f..%2fetc%2fpasswd".to_owned(),
        "%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_owned(),
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "..%252f..%252fetc%252fpasswd".to_owned(),
        "..%5c..%5c..%5cwindows%5cwin.ini".to_owned(),
        "..".to_owned(),
        "a".repeat(4096),
        "a".repeat(16_000),
    ];
    let mut wrong = Vec::new();
    let mut closed = 0;
    for id in &ids {
        let url = p.collection().with_path(format!("{base}{id}"));
        let shown = if id.len() > 40 {
            format!("<{} x 'a'>", id.len())
        } else {
            id.clone()
        };
        for request in [
            Request::new("HEAD", &url).tus(),
            Request::new("GET", &url).tus(),
            Probe::patch_request(&url, 0, Vec::new()),
        ] {
            let method = request.method.clone();
            match p.try_send(request).await {
                Ok(response) if client_error(response.status) => {}
                Ok(response) => wrong.push(format!("{method} {shown} -> {}", response.status)),
                // Closing the connection on a hostile request line refuses it too.
                Err(HttpError::Closed(_) | HttpError::Io { .. }) => closed += 1,
                Err(err) => wrong.push(format!("{method} {shown} -> {err}")),
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "traversal or absurd upload ids not refused with 4xx: {}",
        wrong.join("; ")
    );
    Ok(format!(
        "{} requests refused ({closed} by closing the connection)",
        ids.len() * 3
    ))
}

pub(super) async fn body_past_length(p: &mut Probe) -> Outcome {
    let data = pattern(15, 5);
    let url = p.create(10).await?;
    let response = p.patch(&url, 0, data.clone()).await?;
    if response.status == 204 {
        let reported = response.number("upload-offset");
        ensure!(
            reported.is_some_and(|o| o <= 10),
            "PATCH of 15 bytes into a 10-byte upload answered 204 with Upload-Offset {:?}",
            response.header("upload-offset")
        );
    }
    let offset = p.offset(&url).await?;
    ensure!(
        offset <= 10,
        "PATCH of 15 bytes into a 10-byte upload answered {}; the offset is now {offset}, past the length",
        response.status
    );
    if offset < 10 {
        p.patch_ok(&url, offset, data[offset as usize..10].to_vec())
            .await?;
    }
    let extra = p.patch(&url, 10, b"!".to_vec()).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        !extra.is_success() && offset == 10,
        "PATCH of 1 byte at the end of a finished 10-byte upload answered {}; offset now {offset}",
        extra.status
    );
    let stored = p.read_back(&url, 10).await?;
    ensure!(
        stored == data[..10],
        "{}",
        first_difference(&stored, &data[..10])
    );
    Ok(format!("15-byte PATCH answered {}", response.status))
}

pub(super) async fn bytes_past_content_length(p: &mut Probe) -> Outcome {
    let data = pattern(20, 9);
    let url = p.create(20).await?;
    let mut request = Probe::patch_request(&url, 0, data[..5].to_vec());
    request.extra = data[5..10].to_vec();
    request.close = false;
    let response = p.send(request).await?;
    if response.status == 204 {
        ensure!(
            response.number("upload-offset") == Some(5),
            "PATCH with Content-Length 5 followed by 5 more bytes answered 204 with Upload-Offset {:?}, expected 5",
            response.header("upload-offset")
        );
    }
    // The stray bytes reach the server as the start of a next request; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let offset = p.offset(&url).await?;
    // A server may answer the stray bytes (a malformed next request) with 400 and close before
    // the PATCH's own answer; then the PATCH may or may not have been applied, but never more.
    let allowed: &[u64] = if response.status == 204 {
        &[5]
    } else {
        &[0, 5]
    };
    ensure!(
        allowed.contains(&offset),
        "PATCH with Content-Length 5 followed by 5 stray bytes answered {}; the offset is now {offset}, expected {}",
        response.status,
        if response.status == 204 {
            "5"
        } else {
            "0 or 5"
        }
    );
    p.patch_ok(&url, offset, data[offset as usize..].to_vec())
        .await?;
    let stored = p.read_back(&url, 20).await?;
    ensure!(stored == data, "{}", first_difference(&stored, &data));
    Ok(format!(
        "answered {}, offset then {offset}",
        response.status
    ))
}

/// How a PATCH is cut.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cut {
    /// Half-close: the server reads an early end of body.
    Fin,
    /// `SO_LINGER` 0 then close: the server's kernel drops the connection.
    Rst,
}

/// Polls HEAD until the offset is stable for three polls (and above zero, or `deadline`).
pub(super) async fn settled_offset(
    p: &mut Probe,
    url: &Url,
    deadline: Instant,
) -> Result<u64, Verdict> {
    let mut last = None;
    let mut stable = 0;
    loop {
        let response = p.head(url).await?;
        let offset = response
            .number("upload-offset")
            .filter(|_| response.is_success());
        if offset.is_some() && offset == last {
            stable += 1;
        } else {
            stable = 0;
        }
        last = offset;
        if let Some(offset) = offset
            && ((stable >= 3 && offset > 0) || (Instant::now() >= deadline))
        {
            return Ok(offset);
        }
        if Instant::now() >= deadline {
            fail!(
                "HEAD answered {} with Upload-Offset {:?} until the deadline",
                response.status,
                response.header("upload-offset")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PATCHes the rest of `data` from the offset HEAD reports until the upload is complete,
/// retrying while the server still holds an old request (423, 409), until `deadline`. An IETF
/// append completes the upload, after which the server may remove the resource: done then.
pub(super) async fn finish(
    p: &mut Probe,
    url: &Url,
    data: &[u8],
    deadline: Instant,
) -> Result<(), Verdict> {
    loop {
        let offset = p.offset(url).await?;
        ensure!(
            offset <= data.len() as u64,
            "HEAD reports offset {offset}, past the length {}",
            data.len()
        );
        if offset == data.len() as u64 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "HEAD still reports offset {offset} of {} at the deadline: appends were acknowledged but not applied",
            data.len()
        );
        let request = p.append_request(url, offset, data[offset as usize..].to_vec(), true);
        let response = p.send(request).await?;
        match response.status {
            _ if p.appended(&response) && p.ietf() => return Ok(()),
            _ if p.appended(&response) => {}
            409 | 423 if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            status => fail!("resuming at offset {offset} answered {status}"),
        }
    }
}

/// The head of an append (completing the upload, in an IETF run) announcing `content_length`
/// bytes, for streaming.
pub(super) fn append_head(p: &Probe, url: &Url, offset: u64, content_length: u64) -> Request {
    let mut request = p.append_request(url, offset, Vec::new(), true);
    request.content_length = Some(content_length);
    request
}

/// Writes `data` in chunks, stopping quietly at the first error (the server may have answered
/// and closed already).
pub(super) async fn write_chunks(
    stream: &mut Streaming,
    data: &[u8],
    timeout: Duration,
) -> Option<HttpError> {
    for chunk in data.chunks(CHUNK) {
        if let Err(err) = stream.write(chunk, timeout).await {
            return Some(err);
        }
    }
    None
}

/// An upload whose first append was cut after half of `--big` bytes, and what HEAD settled on.
pub(super) struct CutUpload {
    pub url: Url,
    pub data: Vec<u8>,
    /// The offset HEAD settled on.
    pub offset: u64,
    /// What happened, for reasons.
    pub note: String,
}

/// Creates a `--big` upload, streams half of an append announcing all of it (completing it, in
/// an IETF run), waits for the acknowledgement, cuts it `how`, and lets the offset settle.
pub(super) async fn cut_upload(p: &mut Probe, how: Cut) -> Result<CutUpload, Verdict> {
    let big = p.cx.config.big as usize;
    let data = pattern(big, 11);
    let url = p.create(big as u64).await?;
    let request = append_head(p, &url, 0, big as u64);
    let (sent, note) = stream_and_cut(p, &request, &data[..big / 2], how).await?;
    let deadline = Instant::now() + p.timeout();
    let offset = settled_offset(p, &url, deadline).await?;
    ensure!(
        offset <= sent,
        "{note}: HEAD reports offset {offset}, more than was sent"
    );
    Ok(CutUpload {
        url,
        data,
        offset,
        note,
    })
}

/// Streams `part` as the start of `request`'s body, waits until the server acknowledged it, and
/// cuts the connection `how`. Returns the bytes sent and a note saying what happened.
pub(super) async fn stream_and_cut(
    p: &mut Probe,
    request: &Request,
    part: &[u8],
    how: Cut,
) -> Result<(u64, String), Verdict> {
    let timeout = p.timeout();
    let what = request.method.clone();
    let mut stream = Streaming::open(request, timeout)
        .await
        .map_err(|e| Verdict::Fail(format!("{what} could not start: {e}")))?;
    if let Some(err) = write_chunks(&mut stream, part, timeout).await {
        let sent = stream.sent();
        p.record(request, sent, Err(&err));
        fail!("the server stopped reading the {what} after {sent} bytes: {err}");
    }
    cut_stream(p, request, stream, how).await
}

/// Waits until the server acknowledged what `stream` sent, then cuts it `how` (recording the
/// exchange). Returns the bytes sent and a note.
pub(super) async fn cut_stream(
    p: &mut Probe,
    request: &Request,
    stream: Streaming,
    how: Cut,
) -> Result<(u64, String), Verdict> {
    let timeout = p.timeout();
    let acknowledged = stream.wait_acknowledged(timeout).await;
    let sent = stream.sent();
    let observed = match acknowledged {
        Ok(true) => "acknowledged",
        Ok(false) => "sent (acknowledgement not observable here)",
        Err(_) => "sent, not all acknowledged in time",
    };
    let note = match how {
        Cut::Fin => match stream.cut_fin(timeout).await {
            Some(response) => {
                p.record(request, sent, Ok(&response));
                format!("cut by FIN after {sent} bytes {observed}")
            }
            None => {
                p.record(request, sent, Err(&HttpError::Closed(0)));
                format!("cut by FIN after {sent} bytes {observed}, no response")
            }
        },
        Cut::Rst => {
            stream.cut_rst();
            p.record(request, sent, Err(&HttpError::Closed(0)));
            format!("cut by RST after {sent} bytes {observed}")
        }
    };
    Ok((sent, note))
}

pub(super) async fn cut(p: &mut Probe, how: Cut, check_prefix: bool) -> Outcome {
    let big = p.cx.config.big as usize;
    let timeout = p.timeout();
    let CutUpload {
        url,
        data,
        offset,
        note,
    } = cut_upload(p, how).await?;
    if !check_prefix {
        ensure!(
            offset > 0,
            "{note}: HEAD reports offset 0; nothing received was kept"
        );
        return Ok(format!("{note}: {offset} bytes kept"));
    }
    finish(p, &url, &data, Instant::now() + timeout).await?;
    let stored = p.read_back(&url, big).await?;
    ensure!(
        stored == data,
        "{note}, {offset} bytes kept, rest resumed: {}",
        first_difference(&stored, &data)
    );
    Ok(format!(
        "{note}: {offset} bytes kept, exactly a prefix of what was sent"
    ))
}

/// Sends the whole of `data` as one PATCH at `offset` and reads the answer.
async fn streamed_patch(
    request: Request,
    data: Vec<u8>,
    timeout: Duration,
) -> (Request, u64, Result<Response, HttpError>) {
    let mut stream = match Streaming::open(&request, timeout).await {
        Ok(stream) => stream,
        Err(err) => return (request, 0, Err(err)),
    };
    let _ = write_chunks(&mut stream, &data, timeout).await;
    let sent = stream.sent();
    let response = stream.response(timeout).await;
    (request, sent, response)
}

pub(super) async fn race(p: &mut Probe) -> Outcome {
    let big = p.cx.config.big as usize;
    let timeout = p.timeout();
    let a = pattern(big, 31);
    let b = pattern(big, 32);
    let url = p.create(big as u64).await?;
    let (ra, rb) = tokio::join!(
        streamed_patch(append_head(p, &url, 0, big as u64), a.clone(), timeout),
        streamed_patch(append_head(p, &url, 0, big as u64), b.clone(), timeout),
    );
    let mut statuses = Vec::new();
    for (request, sent, response) in [&ra, &rb] {
        p.record(request, *sent, response.as_ref());
        statuses.push(match response {
            Ok(r) => format!(
                "{} (Upload-Offset {:?})",
                r.status,
                r.header("upload-offset")
            ),
            Err(e) => e.to_string(),
        });
    }
    let accepted = [&ra.2, &rb.2]
        .iter()
        .filter(|r| matches!(r, Ok(r) if p.appended(r)))
        .count();
    ensure!(
        accepted < 2,
        "two PATCHes of {big} bytes at offset 0 were both accepted: {}",
        statuses.join(" / ")
    );
    let offset = settled_offset(p, &url, Instant::now() + timeout).await?;
    ensure!(
        offset <= big as u64,
        "offset {offset} is past the length {big}"
    );
    if offset < big as u64 {
        finish(p, &url, &a, Instant::now() + timeout).await?;
    }
    let stored = p.read_back(&url, big).await?;
    let o = offset as usize;
    let b_then_a: Vec<u8> = b[..o].iter().chain(&a[o..]).copied().collect();
    ensure!(
        stored == a || stored == b || stored == b_then_a,
        "after racing PATCHes ({}) and resuming from {offset}, the content is neither body: {}",
        statuses.join(" / "),
        first_difference(&stored, &a)
    );
    Ok(format!(
        "answers {}; content is one body",
        statuses.join(" / ")
    ))
}

/// A `--big` upload with an append of all of it streaming, half sent and acknowledged, and the
/// offset HEAD then reports.
pub(super) struct HalfStreamed {
    pub url: Url,
    pub data: Vec<u8>,
    /// The streaming append's head.
    pub first: Request,
    pub stream: Streaming,
    /// The offset HEAD reported meanwhile.
    pub reported: u64,
}

/// Creates a `--big` upload, streams half of an append of all of it, and asks HEAD for the
/// offset (which may not exceed what was sent) while that append is still open.
pub(super) async fn half_streamed(p: &mut Probe, seed: u8) -> Result<HalfStreamed, Verdict> {
    let big = p.cx.config.big as usize;
    let timeout = p.timeout();
    let data = pattern(big, seed);
    let url = p.create(big as u64).await?;
    let first = append_head(p, &url, 0, big as u64);
    let mut stream = Streaming::open(&first, timeout)
        .await
        .map_err(|e| Verdict::Fail(format!("first PATCH could not start: {e}")))?;
    if let Some(err) = write_chunks(&mut stream, &data[..big / 2], timeout).await {
        fail!("the server stopped reading the first PATCH: {err}");
    }
    let _ = stream.wait_acknowledged(timeout).await;
    // Let the server write what it received before asking where the upload stands.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reported = p.offset(&url).await?;
    ensure!(
        reported <= stream.sent(),
        "HEAD reports offset {reported} while only {} bytes were sent",
        stream.sent()
    );
    Ok(HalfStreamed {
        url,
        data,
        first,
        stream,
        reported,
    })
}

/// Lets the older request of [`half_streamed`] send different bytes (which must land nowhere)
/// for a while, then records its answer.
pub(super) async fn stale_rest(p: &mut Probe, first: &Request, mut stream: Streaming) {
    let timeout = p.timeout();
    let rest = p.cx.config.big - stream.sent();
    let garbage = pattern(rest as usize, 99);
    let _ = write_chunks(&mut stream, &garbage, timeout / 4).await;
    let sent = stream.sent();
    let response = stream.response(timeout).await;
    p.record(first, sent, response.as_ref());
}

pub(super) async fn patch_while_streaming(p: &mut Probe) -> Outcome {
    let big = p.cx.config.big as usize;
    let timeout = p.timeout();
    let HalfStreamed {
        url,
        data,
        first,
        stream,
        reported,
    } = half_streamed(p, 21).await?;
    let second = Probe::patch_request(&url, reported, data[reported as usize..].to_vec());
    let answer = p.try_send(second).await;
    let note = match answer {
        Err(err) => fail!(
            "a PATCH at the offset HEAD reported ({reported}) while another PATCH streamed got no answer: {err}; expected a 409/423 or the older request ended"
        ),
        Ok(r) if matches!(r.status, 409 | 423) => {
            let sent = stream.sent();
            let response = stream.cut_fin(timeout).await;
            p.record(&first, sent, response.as_ref().ok_or(&HttpError::Closed(0)));
            settled_offset(p, &url, Instant::now() + timeout).await?;
            finish(p, &url, &data, Instant::now() + timeout).await?;
            format!("second PATCH refused with {}", r.status)
        }
        Ok(r) if r.status == 204 => {
            ensure!(
                r.number("upload-offset") == Some(big as u64),
                "the second PATCH answered 204 with Upload-Offset {:?}, expected {big}",
                r.header("upload-offset")
            );
            // The older request keeps sending bytes that must land nowhere.
            stale_rest(p, &first, stream).await;
            "second PATCH applied (204 at the full length)".to_owned()
        }
        Ok(r) => fail!(
            "a PATCH at the offset HEAD reported ({reported}) while another PATCH streamed answered {}; expected 409, 423 or 204",
            r.status
        ),
    };
    let offset = p.offset(&url).await?;
    ensure!(
        offset == big as u64,
        "{note}; the offset is {offset}, expected {big}"
    );
    let stored = p.read_back(&url, big).await?;
    ensure!(
        stored == data,
        "{note}; content: {}",
        first_difference(&stored, &data)
    );
    Ok(note)
}
