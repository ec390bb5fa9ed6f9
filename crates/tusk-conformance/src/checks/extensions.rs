//! Termination, checksum, checksum-trailer, expiration, CORS and GET.

use std::time::{Duration, SystemTime};

use super::{
    Outcome, Probe, Verdict, b64, ensure, fail, first_difference, pattern, sha1_checksum, tokens,
};
use crate::http::{Request, Response, Url};

fn gone(response: &Response) -> bool {
    matches!(response.status, 404 | 410)
}

pub(super) async fn delete_204(p: &mut Probe) -> Outcome {
    let unfinished = p.create(10).await?;
    p.patch_ok(&unfinished, 0, b"012".to_vec()).await?;
    let finished = p.create(3).await?;
    p.patch_ok(&finished, 0, b"abc".to_vec()).await?;
    for (url, what) in [(unfinished, "an unfinished"), (finished, "a completed")] {
        let response = p.send(Request::new("DELETE", &url).tus()).await?;
        ensure!(
            response.status == 204,
            "DELETE of {what} upload answered {}, expected 204",
            response.status
        );
    }
    Ok(String::new())
}

pub(super) async fn delete_then_gone(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let response = p.send(Request::new("DELETE", &url).tus()).await?;
    ensure!(
        response.status == 204,
        "DELETE answered {}",
        response.status
    );
    let head = p.head(&url).await?;
    let patch = p.patch(&url, 0, b"012".to_vec()).await?;
    ensure!(
        gone(&head) && gone(&patch),
        "after DELETE, HEAD answered {} and PATCH {}, expected 404 or 410",
        head.status,
        patch.status
    );
    Ok(String::new())
}

pub(super) async fn delete_override(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let response = p
        .send(
            Request::new("POST", &url)
                .tus()
                .header("X-HTTP-Method-Override", "DELETE"),
        )
        .await?;
    ensure!(
        response.status == 204,
        "POST with X-HTTP-Method-Override: DELETE answered {}, expected 204",
        response.status
    );
    let head = p.head(&url).await?;
    ensure!(
        gone(&head),
        "after the overridden DELETE, HEAD answered {}, expected 404 or 410",
        head.status
    );
    Ok(String::new())
}

pub(super) async fn checksum_algorithms(p: &mut Probe) -> Outcome {
    let response = p.send(Request::new("OPTIONS", &p.collection())).await?;
    let Some(value) = response.header("tus-checksum-algorithm") else {
        fail!("OPTIONS has no Tus-Checksum-Algorithm");
    };
    let names = tokens(Some(value));
    ensure!(
        names.iter().any(|n| n == "sha1"),
        "Tus-Checksum-Algorithm {value:?} lacks sha1"
    );
    ensure!(
        names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase())),
        "Tus-Checksum-Algorithm {value:?} has names with uppercase or non-ASCII characters"
    );
    Ok(format!("Tus-Checksum-Algorithm: {value}"))
}

pub(super) async fn checksum_match(p: &mut Probe) -> Outcome {
    let url = p.create(11).await?;
    let request = Probe::patch_request(&url, 0, b"hello world".to_vec())
        .header("Upload-Checksum", sha1_checksum(b"hello world"));
    let response = p.send(request).await?;
    ensure!(
        response.status == 204 && response.number("upload-offset") == Some(11),
        "PATCH with a correct sha1 Upload-Checksum answered {} with Upload-Offset {:?}, expected 204 with 11",
        response.status,
        response.header("upload-offset")
    );
    Ok(String::new())
}

/// PATCHes 5 bytes, then 6 with `checksum`; `want` status and the offset staying 5 expected.
async fn refused_chunk(p: &mut Probe, checksum: String, want: u16, what: &str) -> Outcome {
    let url = p.create(11).await?;
    p.patch_ok(&url, 0, b"hello".to_vec()).await?;
    let request =
        Probe::patch_request(&url, 5, b" world".to_vec()).header("Upload-Checksum", checksum);
    let response = p.send(request).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        response.status == want && offset == 5,
        "PATCH with {what} answered {} and the offset is now {offset}; expected {want} and 5",
        response.status
    );
    Ok(String::new())
}

pub(super) async fn checksum_mismatch(p: &mut Probe) -> Outcome {
    refused_chunk(
        p,
        sha1_checksum(b"not the body"),
        460,
        "a wrong sha1 checksum",
    )
    .await
}

pub(super) async fn checksum_unsupported(p: &mut Probe) -> Outcome {
    let checksum = format!("conformance-unknown {}", b64(b"0123456789abcdef"));
    refused_chunk(p, checksum, 400, "an unsupported checksum algorithm").await
}

fn trailer_patch(url: &Url, offset: u64, data: &[u8], checksum: String) -> Request {
    let mut request = Probe::patch_request(url, offset, data.to_vec());
    request.trailers = Some(vec![("Upload-Checksum".into(), checksum)]);
    request
}

pub(super) async fn trailer_match(p: &mut Probe) -> Outcome {
    let url = p.create(11).await?;
    let response = p
        .send(trailer_patch(
            &url,
            0,
            b"hello world",
            sha1_checksum(b"hello world"),
        ))
        .await?;
    ensure!(
        response.status == 204 && response.number("upload-offset") == Some(11),
        "chunked PATCH with a correct Upload-Checksum trailer answered {} with Upload-Offset {:?}",
        response.status,
        response.header("upload-offset")
    );
    Ok(String::new())
}

pub(super) async fn trailer_mismatch(p: &mut Probe) -> Outcome {
    let url = p.create(11).await?;
    p.patch_ok(&url, 0, b"hello".to_vec()).await?;
    let response = p
        .send(trailer_patch(
            &url,
            5,
            b" world",
            sha1_checksum(b"not the body"),
        ))
        .await?;
    let offset = p.offset(&url).await?;
    ensure!(
        response.status == 460 && offset == 5,
        "chunked PATCH with a wrong Upload-Checksum trailer answered {} and the offset is now {offset}; expected 460 and 5",
        response.status
    );
    Ok(String::new())
}

/// Parses an RFC 9110 date; senders must generate IMF-fixdate, which `httpdate` reads.
fn parse_expires(value: &str) -> Result<SystemTime, String> {
    let time = httpdate::parse_http_date(value)
        .map_err(|_| format!("{value:?} is not an RFC 9110 date"))?;
    if httpdate::fmt_http_date(time) != value {
        return Err(format!(
            "{value:?} is not in the IMF-fixdate form senders must generate"
        ));
    }
    Ok(time)
}

pub(super) async fn expires_format(p: &mut Probe) -> Outcome {
    let (url, created) = p
        .create_with(&[("Upload-Length", "10".into())], Vec::new())
        .await?;
    let patched = p.patch(&url, 0, b"012".to_vec()).await?;
    let head = p.head(&url).await?;
    let mut seen = Vec::new();
    for (what, response) in [("POST", &created), ("PATCH", &patched), ("HEAD", &head)] {
        if let Some(value) = response.header("upload-expires") {
            let time = parse_expires(value)
                .map_err(|e| Verdict::Fail(format!("{what}: Upload-Expires {e}")))?;
            // Five minutes of clock skew between the two machines are tolerated.
            ensure!(
                time + Duration::from_secs(300) > SystemTime::now(),
                "{what}: Upload-Expires {value:?} is already past for an upload just created"
            );
            seen.push(what);
        }
    }
    ensure!(
        !seen.is_empty(),
        "the server advertises expiration but sent no Upload-Expires on POST, PATCH or HEAD of an unfinished upload"
    );
    Ok(format!("valid Upload-Expires on {}", seen.join(", ")))
}

pub(super) async fn expires_in_patch(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let response = p.patch(&url, 0, b"012".to_vec()).await?;
    ensure!(
        response.status == 204 && response.has("upload-expires"),
        "PATCH of an unfinished upload (expiration advertised) answered {} without Upload-Expires",
        response.status
    );
    Ok(String::new())
}

const CORS_REQUEST_HEADERS: &[&str] = &[
    "tus-resumable",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "content-type",
];

fn origin_allowed(response: &Response, origin: &str) -> bool {
    matches!(response.header("access-control-allow-origin"), Some(v) if v == "*" || v == origin)
}

fn lists(response: &Response, header: &str, name: &str) -> bool {
    tokens(response.header(header))
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(name))
}

pub(super) async fn cors_preflight(p: &mut Probe) -> Outcome {
    let origin = p.cx.config.origin.clone();
    let request = Request::new("OPTIONS", &p.collection())
        .header("Origin", origin.clone())
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            CORS_REQUEST_HEADERS.join(","),
        );
    let response = p.send(request).await?;
    if !response.has("access-control-allow-origin") {
        return Err(Verdict::NotOffered(
            "the server answers a CORS preflight without Access-Control-Allow-Origin: no CORS offered".into(),
        ));
    }
    ensure!(
        matches!(response.status, 200 | 204) && origin_allowed(&response, &origin),
        "preflight answered {} with Access-Control-Allow-Origin {:?} for Origin {origin}",
        response.status,
        response.header("access-control-allow-origin")
    );
    for method in ["POST", "HEAD", "PATCH", "DELETE"] {
        ensure!(
            lists(&response, "access-control-allow-methods", method)
                || (method == "HEAD" && response.has("access-control-allow-methods")),
            "Access-Control-Allow-Methods {:?} lacks {method}",
            response.header("access-control-allow-methods")
        );
    }
    for name in CORS_REQUEST_HEADERS {
        ensure!(
            lists(&response, "access-control-allow-headers", name),
            "Access-Control-Allow-Headers {:?} lacks {name}",
            response.header("access-control-allow-headers")
        );
    }
    Ok(String::new())
}

pub(super) async fn cors_expose(p: &mut Probe) -> Outcome {
    let origin = p.cx.config.origin.clone();
    let response = p
        .send(
            Request::new("POST", &p.collection())
                .tus()
                .header("Origin", origin.clone())
                .header("Upload-Length", "10"),
        )
        .await?;
    let Some(location) = response
        .header("location")
        .filter(|_| response.status == 201)
    else {
        fail!("POST with Origin answered {}", response.status);
    };
    let url = p
        .resolve(location)
        .map_err(|e| Verdict::Fail(e.to_string()))?;
    p.track(url.clone());
    if !response.has("access-control-allow-origin") {
        return Err(Verdict::NotOffered(
            "POST with Origin answered without Access-Control-Allow-Origin: no CORS offered".into(),
        ));
    }
    for name in ["Location", "Tus-Resumable"] {
        ensure!(
            lists(&response, "access-control-expose-headers", name),
            "POST: Access-Control-Expose-Headers {:?} lacks {name}",
            response.header("access-control-expose-headers")
        );
    }
    let head = p
        .send(
            Request::new("HEAD", &url)
                .tus()
                .header("Origin", origin.clone()),
        )
        .await?;
    ensure!(
        origin_allowed(&head, &origin),
        "HEAD with Origin: Access-Control-Allow-Origin {:?}",
        head.header("access-control-allow-origin")
    );
    for name in ["Upload-Offset", "Upload-Length", "Tus-Resumable"] {
        ensure!(
            lists(&head, "access-control-expose-headers", name),
            "HEAD: Access-Control-Expose-Headers {:?} lacks {name}",
            head.header("access-control-expose-headers")
        );
    }
    Ok(String::new())
}

/// A finished upload of `data` and the GET of it; not offered unless GET answers 200.
async fn finished_and_get(
    p: &mut Probe,
    data: &[u8],
    range: Option<&str>,
) -> Result<Response, Verdict> {
    let url = p.create(data.len() as u64).await?;
    p.patch_ok(&url, 0, data.to_vec()).await?;
    let mut request = Request::new("GET", &url).tus();
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = p.send(request).await?;
    if !matches!(response.status, 200 | 206) {
        return Err(Verdict::NotOffered(format!(
            "GET of a finished upload answered {}: downloads not offered",
            response.status
        )));
    }
    Ok(response)
}

pub(super) async fn get_content(p: &mut Probe) -> Outcome {
    let data = pattern(70_000, 3);
    let response = finished_and_get(p, &data, None).await?;
    ensure!(
        response.status == 200 && response.body == data,
        "GET answered {}; {}",
        response.status,
        first_difference(&response.body, &data)
    );
    Ok(String::new())
}

pub(super) async fn get_range(p: &mut Probe) -> Outcome {
    let data = pattern(1000, 4);
    let response = finished_and_get(p, &data, Some("bytes=100-199")).await?;
    match response.status {
        200 => {
            ensure!(
                response.body == data,
                "GET with Range ignored it but {}",
                first_difference(&response.body, &data)
            );
            Ok("Range ignored (200 with the whole upload), as RFC 9110 allows".into())
        }
        _ => {
            ensure!(
                response.header("content-range") == Some("bytes 100-199/1000")
                    && response.body == data[100..200],
                "206 with Content-Range {:?} and {} body bytes; expected bytes 100-199/1000 and those bytes",
                response.header("content-range"),
                response.body.len()
            );
            Ok(String::new())
        }
    }
}
