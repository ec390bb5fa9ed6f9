//! The 104 interim response, interrupted appends and creations, and offsets under concurrency.

use tokio::time::Instant;

use super::{
    INTEROP_HEADER, append_request, completeness, create, created, creation_request, interop,
    length_header, limits_exist, shown_completeness,
};
use crate::checks::robust::{self, Cut, CutUpload, HalfStreamed};
use crate::checks::{Outcome, Probe, Verdict, ensure, fail, first_difference, pattern};
use crate::http::{HttpError, Request, Response, Streaming, Url};

/// An incomplete creation with 10 bytes of content: the final response (2xx with `Location`
/// expected) and its first 104, if any.
async fn creation_104(p: &mut Probe) -> Result<(Response, Option<Response>), Verdict> {
    let headers = length_header(p, 100);
    let (response, _) = create(p, false, &headers, pattern(10, 61)).await?;
    created(p, &response)?;
    let interim = response.interim.iter().find(|r| r.status == 104).cloned();
    Ok((response, interim))
}

/// The 104 of an incomplete creation; SKIP when the server sent none.
async fn the_104(p: &mut Probe) -> Result<(Response, Response), Verdict> {
    match creation_104(p).await? {
        (response, Some(interim)) => Ok((response, interim)),
        (response, None) => Err(Verdict::Skip(format!(
            "the creation got no 104 before its final {} (see ietf-interim-announced)",
            response.status
        ))),
    }
}

pub(super) async fn announced(p: &mut Probe) -> Outcome {
    let (response, interim) = creation_104(p).await?;
    ensure!(
        interim.is_some(),
        "the creation's final {} came without a 104 interim response",
        response.status
    );
    Ok(String::new())
}

pub(super) async fn location(p: &mut Probe) -> Outcome {
    let (response, interim) = the_104(p).await?;
    let (early, last) = (interim.header("location"), response.header("location"));
    ensure!(
        early.is_some() && early == last,
        "the 104 has Location {early:?}, the final {} has {last:?}; expected both, identical",
        response.status
    );
    Ok(format!("Location {}", early.unwrap_or_default()))
}

pub(super) async fn interop_version(p: &mut Probe) -> Outcome {
    let (_, interim) = the_104(p).await?;
    let sent = interim.header(INTEROP_HEADER);
    ensure!(
        sent.map(str::trim) == Some(interop(p).to_string().as_str()),
        "the 104 has {INTEROP_HEADER} {sent:?}, expected {}",
        interop(p)
    );
    Ok(String::new())
}

pub(super) async fn upload_limit(p: &mut Probe) -> Outcome {
    let (_, interim) = the_104(p).await?;
    match interim.header("upload-limit") {
        Some(limit) => Ok(format!("Upload-Limit: {limit}")),
        None if !limits_exist(p) => Ok("no Upload-Limit; OPTIONS announced no limits".into()),
        None => fail!(
            "the 104 has no Upload-Limit, while OPTIONS announced {:?}",
            p.cx.server.upload_limit
        ),
    }
}

pub(super) async fn version_mismatch(p: &mut Probe) -> Outcome {
    let mut wrong = Vec::new();
    let mut notes = Vec::new();
    for version in [None, Some("99")] {
        let (name, value) = super::complete_header(p, true);
        let mut request = Request::new("POST", &p.collection())
            .header(name, value)
            .body(pattern(10, 62));
        if let Some(version) = version {
            request = request.header(INTEROP_HEADER, version);
        }
        let response = p.send(request).await?;
        if response.is_success() {
            super::located(p, &response);
        }
        let shown = version.map_or("no interop version".to_owned(), |v| {
            format!("interop version {v}")
        });
        if response.interim.iter().any(|r| r.status == 104) {
            wrong.push(format!(
                "{shown}: a 104 before the final {}",
                response.status
            ));
        }
        notes.push(format!("{shown}: {}", response.status));
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(format!("no 104 ({})", notes.join(", ")))
}

pub(super) async fn append_no_location(p: &mut Probe) -> Outcome {
    let url = super::create_empty(p, 256 * 1024).await?;
    let request = append_request(p, &url, 0, pattern(128 * 1024, 63), false);
    let response = p.send(request).await?;
    let with_location: Vec<&Response> = response
        .interim
        .iter()
        .filter(|r| r.status == 104 && r.has("location"))
        .collect();
    ensure!(
        with_location.is_empty(),
        "{} of the append's 104s carry Location ({:?})",
        with_location.len(),
        with_location[0].header("location")
    );
    let count = response.interim.iter().filter(|r| r.status == 104).count();
    Ok(format!("{count} 104s, none with Location"))
}

/// Reads the upload at `url` back where the server lets it be read: it must equal `data`.
/// The draft defines no way to read an upload, so unreadable is a note, not a skip.
async fn compare_if_readable(p: &mut Probe, url: &Url, data: &[u8]) -> Outcome {
    match p.read_back(url, data.len()).await {
        Ok(stored) => {
            ensure!(
                stored == data,
                "read back: {}",
                first_difference(&stored, data)
            );
            Ok("read back identical".into())
        }
        Err(Verdict::Skip(why)) => Ok(format!("content not compared: {why}")),
        Err(other) => Err(other),
    }
}

/// Resumes `data` at `url` after a cut, then compares the content where readable.
async fn resume_and_compare(p: &mut Probe, url: &Url, data: &[u8]) -> Outcome {
    robust::finish(p, url, data, Instant::now() + p.timeout()).await?;
    let compared = compare_if_readable(p, url, data).await?;
    Ok(format!("resumed; {compared}"))
}

/// After a cut: HEAD must say incomplete.
async fn assert_incomplete(p: &mut Probe, url: &Url, note: &str) -> Result<(), Verdict> {
    let head = p.head(url).await?;
    ensure!(
        head.is_success() && completeness(p, &head) == Some(false),
        "{note}: HEAD answered {} with {}; the upload must not be complete",
        head.status,
        shown_completeness(p, &head)
    );
    Ok(())
}

pub(super) async fn cut(p: &mut Probe, how: Cut, incomplete: bool) -> Outcome {
    let CutUpload {
        url,
        data,
        offset,
        note,
    } = robust::cut_upload(p, how).await?;
    if !incomplete {
        ensure!(
            offset > 0,
            "{note}: HEAD reports offset 0; nothing received was kept"
        );
        return Ok(format!("{note}: {offset} bytes kept"));
    }
    assert_incomplete(p, &url, &note).await?;
    let resumed = resume_and_compare(p, &url, &data).await?;
    Ok(format!(
        "{note}: {offset} bytes kept, incomplete; {resumed}"
    ))
}

pub(super) async fn optimistic_cut(p: &mut Probe) -> Outcome {
    let big = p.cx.config.big as usize;
    let timeout = p.timeout();
    let data = pattern(big, 64);
    let headers = length_header(p, big as u64);
    let mut request = creation_request(p, true, &headers, Vec::new());
    request.content_length = Some(big as u64);
    let mut stream = Streaming::open(&request, timeout)
        .await
        .map_err(|e| Verdict::Fail(format!("the creation could not start: {e}")))?;
    if let Some(err) = robust::write_chunks(&mut stream, &data[..big / 2], timeout).await {
        let sent = stream.sent();
        p.record(&request, sent, Err(&err));
        fail!("the server stopped reading the creation after {sent} bytes: {err}");
    }
    let interim = match stream.interim(timeout).await {
        Ok(Some(interim)) => interim,
        Ok(None) => {
            let sent = stream.sent();
            stream.cut_rst();
            p.record(&request, sent, Err(&HttpError::Timeout(timeout)));
            return Err(Verdict::Skip(format!(
                "no 104 within {timeout:?} after {sent} bytes: a client cannot resume this creation"
            )));
        }
        Err(err) => {
            p.record(&request, stream.sent(), Err(&err));
            return Err(Verdict::Skip(format!(
                "the creation was answered before its content was sent: {err}"
            )));
        }
    };
    let url = interim.header("location").and_then(|l| p.resolve(l).ok());
    let (sent, note) = robust::cut_stream(p, &request, stream, Cut::Rst).await?;
    let Some(url) = url else {
        fail!(
            "the 104 ({}) names no upload resource to resume",
            interim.status_line
        );
    };
    p.track(url.clone());
    let note = format!("optimistic creation {note}");
    let offset = robust::settled_offset(p, &url, Instant::now() + timeout).await?;
    ensure!(
        offset <= sent,
        "{note}: HEAD reports offset {offset}, more than was sent"
    );
    assert_incomplete(p, &url, &note).await?;
    let resumed = resume_and_compare(p, &url, &data).await?;
    Ok(format!(
        "{note}: {offset} bytes kept, incomplete; {resumed}"
    ))
}

pub(super) async fn offset_accepted(p: &mut Probe) -> Outcome {
    let big = p.cx.config.big;
    let HalfStreamed {
        url,
        data,
        first,
        stream,
        reported,
    } = robust::half_streamed(p, 65).await?;
    let second = append_request(p, &url, reported, data[reported as usize..].to_vec(), true);
    let answer = p.try_send(second).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            fail!("an append at the offset HEAD reported ({reported}) got no answer: {err}")
        }
    };
    ensure!(
        answer.is_success(),
        "HEAD reported offset {reported} while an older append streamed; an append at {reported} then answered {} (Upload-Offset {:?})",
        answer.status_line,
        answer.header("upload-offset")
    );
    robust::stale_rest(p, &first, stream).await;
    let head = p.head(&url).await?;
    if head.is_success() {
        ensure!(
            head.number("upload-offset") == Some(big) && completeness(p, &head) == Some(true),
            "after the append at {reported} completed the upload, HEAD reports Upload-Offset {:?} and {}",
            head.header("upload-offset"),
            shown_completeness(p, &head)
        );
    }
    let compared = compare_if_readable(p, &url, &data).await?;
    Ok(format!(
        "HEAD reported {reported}; the append there answered {}; {compared}",
        answer.status
    ))
}
