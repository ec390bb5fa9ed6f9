//! The upload resource: limits, creation, offset retrieval, append, cancellation, lengths.

use super::{
    append_ok, append_request, completeness, create, created, gone, interop, length_header,
    limit_problem, limits_exist, problem_member, shown_completeness,
};
use crate::checks::{Outcome, Probe, Verdict, ensure, fail, first_difference, pattern};
use crate::http::{Request, Response, Url};

const INCONSISTENT_LENGTH: &str =
    "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";
const MISMATCHING_OFFSET: &str =
    "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";

pub(super) async fn options_limit(p: &mut Probe) -> Outcome {
    let request = p.stamp(Request::new("OPTIONS", &p.collection()));
    let response = p.send(request).await?;
    let Some(limit) = response.header("upload-limit") else {
        fail!(
            "OPTIONS answered {} without Upload-Limit",
            response.status_line
        );
    };
    Ok(format!("Upload-Limit: {limit}"))
}

pub(super) async fn limits_valid(p: &mut Probe) -> Outcome {
    let request = p.stamp(Request::new("OPTIONS", &p.collection()));
    let options = p.send(request).await?;
    let headers = length_header(p, 10);
    let (creation, _) = create(p, false, &headers, Vec::new()).await?;
    let url = created(p, &creation)?;
    let head = p.head(&url).await?;
    let mut seen = 0;
    for (what, response) in [
        ("OPTIONS", &options),
        ("creation", &creation),
        ("HEAD", &head),
    ] {
        let Some(value) = response.header("upload-limit") else {
            continue;
        };
        seen += 1;
        if let Some(why) = limit_problem(p, value) {
            fail!(
                "the {what} response's Upload-Limit {value:?} is not a dictionary of integer limits: {why}"
            );
        }
    }
    Ok(format!(
        "{seen} Upload-Limit values are dictionaries of integers"
    ))
}

/// Creates with `Upload-Complete: ?0` and no content; returns the response and the upload.
async fn create_incomplete(p: &mut Probe) -> Result<(Response, Url), Verdict> {
    let headers = length_header(p, 10);
    let (response, _) = create(p, false, &headers, Vec::new()).await?;
    let url = created(p, &response)?;
    Ok((response, url))
}

pub(super) async fn creation_location(p: &mut Probe) -> Outcome {
    let (response, url) = create_incomplete(p).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 0,
        "HEAD of the new upload at Location reports offset {offset}, expected 0"
    );
    Ok(format!("{} with Location {url}", response.status))
}

pub(super) async fn creation_limit(p: &mut Probe) -> Outcome {
    let (response, _) = create_incomplete(p).await?;
    match response.header("upload-limit") {
        Some(limit) => Ok(format!("Upload-Limit: {limit}")),
        None if !limits_exist(p) => Ok(format!(
            "no Upload-Limit; OPTIONS announced no limits ({:?})",
            p.cx.server.upload_limit
        )),
        None => fail!(
            "the creation response has no Upload-Limit, while OPTIONS announced {:?}",
            p.cx.server.upload_limit
        ),
    }
}

pub(super) async fn creation_201(p: &mut Probe) -> Outcome {
    let (response, _) = create_incomplete(p).await?;
    ensure!(
        response.status == 201,
        "creation answered {}, not 201",
        response.status_line
    );
    Ok(String::new())
}

pub(super) async fn creation_complete_header(p: &mut Probe) -> Outcome {
    let (response, _) = create_incomplete(p).await?;
    ensure!(
        completeness(p, &response) == Some(false),
        "the response to an incomplete creation has {}, expected it to say incomplete",
        shown_completeness(p, &response)
    );
    Ok(shown_completeness(p, &response))
}

/// HEADs `url` of an upload meant to be complete with `length` bytes; a resource removed
/// after completion (404, 410) is allowed. Returns a note.
async fn assert_complete(p: &mut Probe, url: &Url, length: u64) -> Outcome {
    let head = p.head(url).await?;
    if gone(&head) {
        return Ok(format!(
            "the resource answers {} after completion (allowed: it may be cleaned up)",
            head.status
        ));
    }
    ensure!(
        head.is_success(),
        "HEAD after completion answered {}",
        head.status_line
    );
    ensure!(
        completeness(p, &head) == Some(true)
            && head.number("upload-offset") == Some(length)
            && (interop(p) < 6 || head.number("upload-length") == Some(length)),
        "HEAD after completion: {}, Upload-Offset {:?}, Upload-Length {:?}; expected complete at {length} with length {length}",
        shown_completeness(p, &head),
        head.header("upload-offset"),
        head.header("upload-length")
    );
    Ok(format!("HEAD: complete at {length}"))
}

pub(super) async fn creation_complete(p: &mut Probe) -> Outcome {
    let data = pattern(1000, 41);
    let (response, url) = create(p, true, &[], data).await?;
    ensure!(
        response.is_success(),
        "a complete creation of 1000 bytes answered {}",
        response.status_line
    );
    let Some(url) = url else {
        return Err(Verdict::Skip(format!(
            "answered {} with neither Location nor a 104 naming the upload resource: nothing to ask",
            response.status
        )));
    };
    assert_complete(p, &url, 1000).await
}

pub(super) async fn creation_partial(p: &mut Probe) -> Outcome {
    let headers = length_header(p, 1000);
    let (response, _) = create(p, false, &headers, pattern(400, 42)).await?;
    let url = created(p, &response)?;
    let head = p.head(&url).await?;
    ensure!(
        head.is_success()
            && head.number("upload-offset") == Some(400)
            && completeness(p, &head) == Some(false),
        "after creating with 400 of 1000 bytes, HEAD answered {} with Upload-Offset {:?} and {}; expected 400, incomplete",
        head.status,
        head.header("upload-offset"),
        shown_completeness(p, &head)
    );
    Ok("HEAD: offset 400, incomplete".into())
}

pub(super) async fn length_mismatch(p: &mut Probe, problem: bool) -> Outcome {
    // One request: Upload-Length 10 with 5 bytes of content that completes the upload.
    let headers = vec![("Upload-Length", "10".to_owned())];
    let (single, url) = create(p, true, &headers, pattern(5, 43)).await?;
    let mut wrong = Vec::new();
    if single.is_success() {
        wrong.push(format!(
            "a creation with Upload-Length 10 and 5 bytes completing it answered {}",
            single.status
        ));
    }
    if let Some(url) = url {
        let head = p.head(&url).await?;
        if completeness(p, &head) == Some(true) {
            wrong.push("that upload is complete".to_owned());
        }
    }
    // Two requests: created with Upload-Length 10, completed after 4 bytes.
    let url = super::create_empty(p, 10).await?;
    let completing = append_request(p, &url, 0, pattern(4, 44), true);
    let append = p.send(completing).await?;
    if append.is_success() {
        wrong.push(format!(
            "an append of 4 bytes completing an upload created with Upload-Length 10 answered {}",
            append.status
        ));
    }
    let head = p.head(&url).await?;
    if completeness(p, &head) == Some(true) {
        wrong.push("that upload is complete".to_owned());
    }
    if problem {
        for (what, response) in [("creation", &single), ("append", &append)] {
            let kind = problem_member(response, "type");
            if kind.as_ref().and_then(|t| t.as_str()) != Some(INCONSISTENT_LENGTH) {
                wrong.push(format!(
                    "the {what}'s {} answer has problem type {kind:?}",
                    response.status
                ));
            }
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(format!(
        "refused with {} and {}",
        single.status, append.status
    ))
}

/// A created upload of 10 bytes with 4 appended: its URL and the append's response.
async fn partly_appended(p: &mut Probe) -> Result<(Url, Response), Verdict> {
    let url = super::create_empty(p, 10).await?;
    let response = append_ok(p, &url, 0, pattern(4, 45), false).await?;
    Ok((url, response))
}

/// HEAD of an upload created (10 bytes, 4 appended) for the offset-retrieval checks.
async fn head_of_partial(p: &mut Probe) -> Result<Response, Verdict> {
    let (url, _) = partly_appended(p).await?;
    let head = p.head(&url).await?;
    ensure!(
        head.is_success(),
        "HEAD of an upload answered {}",
        head.status_line
    );
    Ok(head)
}

pub(super) async fn head_offset(p: &mut Probe) -> Outcome {
    let url = super::create_empty(p, 10).await?;
    let first = p.head(&url).await?;
    ensure!(
        first.is_success() && first.number("upload-offset") == Some(0),
        "HEAD of a new upload answered {} with Upload-Offset {:?}, expected 0",
        first.status,
        first.header("upload-offset")
    );
    append_ok(p, &url, 0, pattern(4, 46), false).await?;
    let second = p.head(&url).await?;
    ensure!(
        second.is_success() && second.number("upload-offset") == Some(4),
        "HEAD after appending 4 bytes answered {} with Upload-Offset {:?}, expected 4",
        second.status,
        second.header("upload-offset")
    );
    Ok("0, then 4".into())
}

pub(super) async fn head_complete(p: &mut Probe) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let head = p.head(&url).await?;
    ensure!(
        head.is_success() && completeness(p, &head) == Some(false),
        "HEAD of an incomplete upload answered {} with {}",
        head.status,
        shown_completeness(p, &head)
    );
    append_ok(p, &url, 4, pattern(6, 47), true).await?;
    let note = assert_complete(p, &url, 10).await?;
    Ok(format!("incomplete, then {note}"))
}

pub(super) async fn head_length(p: &mut Probe) -> Outcome {
    let head = head_of_partial(p).await?;
    ensure!(
        head.number("upload-length") == Some(10),
        "HEAD of an upload created with Upload-Length 10 has Upload-Length {:?}",
        head.header("upload-length")
    );
    Ok(String::new())
}

pub(super) async fn head_limit(p: &mut Probe) -> Outcome {
    let head = head_of_partial(p).await?;
    match head.header("upload-limit") {
        Some(limit) => Ok(format!("Upload-Limit: {limit}")),
        None => fail!("HEAD has no Upload-Limit"),
    }
}

pub(super) async fn head_no_store(p: &mut Probe) -> Outcome {
    let head = head_of_partial(p).await?;
    let no_store = head.header("cache-control").is_some_and(|v| {
        v.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store"))
    });
    ensure!(
        no_store,
        "HEAD has Cache-Control {:?}, without no-store",
        head.header("cache-control")
    );
    Ok(String::new())
}

pub(super) async fn head_no_redirect(p: &mut Probe) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let head = p.head(&url).await?;
    ensure!(
        !matches!(head.status, 301 | 302),
        "HEAD of an upload answered {} (Location {:?})",
        head.status_line,
        head.header("location")
    );
    Ok(format!("{}", head.status))
}

pub(super) async fn append_appends(p: &mut Probe) -> Outcome {
    let url = super::create_empty(p, 10).await?;
    append_ok(p, &url, 0, pattern(3, 48), false).await?;
    append_ok(p, &url, 3, pattern(4, 49), false).await?;
    let head = p.head(&url).await?;
    ensure!(
        head.is_success()
            && head.number("upload-offset") == Some(7)
            && completeness(p, &head) == Some(false),
        "after appending 3 and 4 bytes HEAD answered {} with Upload-Offset {:?} and {}; expected 7, incomplete",
        head.status,
        head.header("upload-offset"),
        shown_completeness(p, &head)
    );
    Ok("3 + 4 bytes appended: offset 7".into())
}

pub(super) async fn append_complete_header(p: &mut Probe) -> Outcome {
    let (_, response) = partly_appended(p).await?;
    ensure!(
        completeness(p, &response) == Some(false),
        "the response to an append that does not complete the upload has {}",
        shown_completeness(p, &response)
    );
    Ok(shown_completeness(p, &response))
}

pub(super) async fn offset_mismatch(p: &mut Probe, problem: bool) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let mut notes = Vec::new();
    for at in [0u64, 7] {
        let request = append_request(p, &url, at, pattern(3, 50), false);
        let response = p.send(request).await?;
        if problem {
            let kind = problem_member(&response, "type");
            let expected = problem_member(&response, "expected-offset");
            let provided = problem_member(&response, "provided-offset");
            ensure!(
                kind.as_ref().and_then(|t| t.as_str()) == Some(MISMATCHING_OFFSET)
                    && expected.as_ref().and_then(|v| v.as_u64()) == Some(4)
                    && provided.as_ref().and_then(|v| v.as_u64()) == Some(at),
                "an append at {at} (offset 4) answered {} with type {kind:?}, expected-offset {expected:?}, provided-offset {provided:?}",
                response.status
            );
        } else {
            ensure!(
                response.status == 409
                    && completeness(p, &response) == Some(false)
                    && response.number("upload-offset") == Some(4),
                "an append at {at} when the offset is 4 answered {} with Upload-Offset {:?} and {}; expected 409, Upload-Offset 4, incomplete",
                response.status,
                response.header("upload-offset"),
                shown_completeness(p, &response)
            );
        }
        notes.push(format!("at {at}: {}", response.status));
    }
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 4,
        "after appends at wrong offsets the offset is {offset}, expected 4"
    );
    Ok(notes.join(", "))
}

pub(super) async fn append_completes(p: &mut Probe) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let request = append_request(p, &url, 4, pattern(6, 51), true);
    let response = p.send(request).await?;
    ensure!(
        completeness(p, &response) == Some(true),
        "the append completing the upload answered {} with {}, expected complete",
        response.status,
        shown_completeness(p, &response)
    );
    let note = assert_complete(p, &url, 10).await?;
    Ok(format!("{}; {note}", response.status))
}

pub(super) async fn append_content(p: &mut Probe) -> Outcome {
    let data = pattern(100_000, 52);
    let headers = length_header(p, data.len() as u64);
    let (response, _) = create(p, false, &headers, data[..30_000].to_vec()).await?;
    let url = created(p, &response)?;
    append_ok(p, &url, 30_000, data[30_000..70_000].to_vec(), false).await?;
    append_ok(p, &url, 70_000, data[70_000..].to_vec(), true).await?;
    let stored = p.read_back(&url, data.len()).await?;
    ensure!(stored == data, "{}", first_difference(&stored, &data));
    Ok("30000 bytes at creation, 40000 and 30000 appended: read back identical".into())
}

pub(super) async fn cancel_deactivates(p: &mut Probe) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let request = p.stamp(Request::new("DELETE", &url));
    let deleted = p.send(request).await?;
    ensure!(
        deleted.is_success(),
        "DELETE answered {}",
        deleted.status_line
    );
    let head = p.head(&url).await?;
    let request = append_request(p, &url, 4, pattern(2, 53), false);
    let append = p.send(request).await?;
    ensure!(
        gone(&head) && !append.is_success(),
        "after DELETE ({}), HEAD answered {} and an append {}; expected 404 or 410 and a refusal",
        deleted.status,
        head.status,
        append.status
    );
    Ok(format!(
        "DELETE {}, then HEAD {}",
        deleted.status, head.status
    ))
}

pub(super) async fn cancel_no_redirect(p: &mut Probe) -> Outcome {
    let (url, _) = partly_appended(p).await?;
    let request = p.stamp(Request::new("DELETE", &url));
    let deleted = p.send(request).await?;
    ensure!(
        !matches!(deleted.status, 301 | 302),
        "DELETE answered {} (Location {:?})",
        deleted.status_line,
        deleted.header("location")
    );
    Ok(format!("{}", deleted.status))
}

pub(super) async fn within_length(p: &mut Probe) -> Outcome {
    let url = super::create_empty(p, 10).await?;
    let request = append_request(p, &url, 0, pattern(15, 54), false);
    let append = p.send(request).await?;
    let head = p.head(&url).await?;
    if head.is_success() {
        let offset = head.number("upload-offset");
        ensure!(
            !append.is_success() && offset.is_some_and(|o| o <= 10),
            "an append of 15 bytes to an upload of length 10 answered {}; HEAD then reports Upload-Offset {:?}",
            append.status,
            head.header("upload-offset")
        );
    } else {
        ensure!(
            !append.is_success() && (400..500).contains(&head.status),
            "an append of 15 bytes to an upload of length 10 answered {}; HEAD then {}",
            append.status,
            head.status
        );
    }
    Ok(format!(
        "append refused with {}; HEAD {} (Upload-Offset {:?})",
        append.status,
        head.status,
        head.header("upload-offset")
    ))
}
