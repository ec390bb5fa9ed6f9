//! Core protocol: OPTIONS, Tus-Resumable, HEAD, PATCH, X-HTTP-Method-Override.

use super::{Outcome, Probe, ensure, fail, first_difference, pattern, tokens};
use crate::http::{Request, Response};

pub(super) async fn options_version(p: &mut Probe) -> Outcome {
    let response = p.send(Request::new("OPTIONS", &p.collection())).await?;
    ensure!(
        matches!(response.status, 200 | 204),
        "OPTIONS answered {}, expected 200 or 204",
        response.status
    );
    let versions = tokens(response.header("tus-version"));
    ensure!(
        versions.iter().any(|v| v == "1.0.0"),
        "Tus-Version is {:?}, expected a list containing 1.0.0",
        response.header("tus-version")
    );
    Ok(format!("Tus-Version: {}", versions.join(",")))
}

pub(super) async fn options_ignores_tus_resumable(p: &mut Probe) -> Outcome {
    let request = Request::new("OPTIONS", &p.collection()).header("Tus-Resumable", "0.0.1");
    let response = p.send(request).await?;
    ensure!(
        matches!(response.status, 200 | 204) && response.has("tus-version"),
        "OPTIONS with an unsupported Tus-Resumable answered {} (Tus-Version {:?}); the header must be ignored",
        response.status,
        response.header("tus-version")
    );
    Ok(String::new())
}

pub(super) async fn extension_list(p: &mut Probe) -> Outcome {
    let response = p.send(Request::new("OPTIONS", &p.collection())).await?;
    let Some(value) = response.header("tus-extension") else {
        return Ok("no Tus-Extension: no extensions".into());
    };
    let names: Vec<&str> = value.split(',').map(str::trim).collect();
    for name in &names {
        ensure!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "Tus-Extension {value:?} is not a comma-separated list of extension names (item {name:?})"
        );
    }
    Ok(format!("Tus-Extension: {value}"))
}

pub(super) async fn max_size_format(p: &mut Probe) -> Outcome {
    let response = p.send(Request::new("OPTIONS", &p.collection())).await?;
    match response.header("tus-max-size") {
        None => Ok("no Tus-Max-Size sent".into()),
        Some(value) => {
            ensure!(
                !value.is_empty()
                    && value.bytes().all(|b| b.is_ascii_digit())
                    && value.parse::<u64>().is_ok(),
                "Tus-Max-Size {value:?} is not a non-negative integer"
            );
            Ok(format!("Tus-Max-Size: {value}"))
        }
    }
}

fn tus_resumable_ok(response: &Response) -> bool {
    response.header("tus-resumable") == Some("1.0.0")
}

pub(super) async fn tus_resumable_in_responses(p: &mut Probe) -> Outcome {
    let (url, created) = p
        .create_with(&[("Upload-Length", "10".into())], Vec::new())
        .await?;
    let mut responses: Vec<(&str, Response)> = vec![("POST (201)", created)];
    responses.push(("HEAD", p.head(&url).await?));
    responses.push(("PATCH (204)", p.patch(&url, 0, b"01234".to_vec()).await?));
    responses.push((
        "PATCH at a wrong offset",
        p.patch(&url, 0, b"x".to_vec()).await?,
    ));
    let unknown = p.unknown_url();
    responses.push(("HEAD of an unknown upload", p.head(&unknown).await?));
    let missing: Vec<String> = responses
        .iter()
        .filter(|(_, r)| !tus_resumable_ok(r))
        .map(|(what, r)| {
            format!(
                "{what} -> {} with Tus-Resumable {:?}",
                r.status,
                r.header("tus-resumable")
            )
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "responses without `Tus-Resumable: 1.0.0`: {}",
        missing.join("; ")
    );
    Ok(format!(
        "{} responses carry Tus-Resumable: 1.0.0",
        responses.len()
    ))
}

pub(super) async fn unsupported_version_412(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let response = p
        .send(Request::new("HEAD", &url).header("Tus-Resumable", "0.0.1"))
        .await?;
    ensure!(
        response.status == 412 && response.has("tus-version"),
        "HEAD with Tus-Resumable 0.0.1 answered {} (Tus-Version {:?}), expected 412 with Tus-Version",
        response.status,
        response.header("tus-version")
    );
    let response = p
        .send(
            Request::new("POST", &p.collection())
                .header("Tus-Resumable", "0.0.1")
                .header("Upload-Length", "10"),
        )
        .await?;
    ensure!(
        response.status == 412 && response.has("tus-version"),
        "POST with Tus-Resumable 0.0.1 answered {} (Tus-Version {:?}), expected 412 with Tus-Version",
        response.status,
        response.header("tus-version")
    );
    p.track_location(&response);
    Ok(String::new())
}

pub(super) async fn unsupported_version_not_processed(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let mut request = Probe::patch_request(&url, 0, b"01234".to_vec());
    request.headers.retain(|(n, _)| n != "Tus-Resumable");
    let response = p.send(request.header("Tus-Resumable", "0.0.1")).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        response.status == 412 && offset == 0,
        "PATCH with Tus-Resumable 0.0.1 answered {}, and the offset is now {offset}: expected 412 and offset 0",
        response.status
    );
    Ok(String::new())
}

pub(super) async fn head_offset(p: &mut Probe) -> Outcome {
    let url = p.create(5).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.is_success() && response.number("upload-offset") == Some(0),
        "HEAD of a new upload answered {} with Upload-Offset {:?}, expected 2xx with 0",
        response.status,
        response.header("upload-offset")
    );
    p.patch_ok(&url, 0, b"hello".to_vec()).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.is_success() && response.number("upload-offset") == Some(5),
        "HEAD of a completed upload answered {} with Upload-Offset {:?}, expected 2xx with 5",
        response.status,
        response.header("upload-offset")
    );
    Ok(String::new())
}

pub(super) async fn head_length(p: &mut Probe) -> Outcome {
    let url = p.create(5).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.number("upload-length") == Some(5),
        "HEAD of an upload created with Upload-Length 5 has Upload-Length {:?}",
        response.header("upload-length")
    );
    Ok(String::new())
}

pub(super) async fn head_no_store(p: &mut Probe) -> Outcome {
    let url = p.create(5).await?;
    let response = p.head(&url).await?;
    let directives: Vec<String> = tokens(response.header("cache-control"))
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    ensure!(
        directives.iter().any(|d| d == "no-store"),
        "HEAD has Cache-Control {:?}, expected no-store",
        response.header("cache-control")
    );
    Ok(String::new())
}

pub(super) async fn head_unknown(p: &mut Probe) -> Outcome {
    let url = p.unknown_url();
    let response = p.head(&url).await?;
    ensure!(
        matches!(response.status, 404 | 410 | 403) && !response.has("upload-offset"),
        "HEAD of an unknown upload answered {} (Upload-Offset {:?}), expected 404, 410 or 403 without Upload-Offset",
        response.status,
        response.header("upload-offset")
    );
    Ok(format!("{}", response.status))
}

pub(super) async fn patch_204(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    p.patch_ok(&url, 0, b"012".to_vec()).await?;
    p.patch_ok(&url, 3, b"3456789".to_vec()).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 10,
        "HEAD after two PATCHes (3 + 7 bytes) reports offset {offset}, expected 10"
    );
    Ok(String::new())
}

pub(super) async fn patch_content(p: &mut Probe) -> Outcome {
    let data = pattern(100_000, 7);
    let url = p.create(data.len() as u64).await?;
    p.patch_ok(&url, 0, data[..33_333].to_vec()).await?;
    p.patch_ok(&url, 33_333, data[33_333..].to_vec()).await?;
    let stored = p.read_back(&url, data.len()).await?;
    ensure!(
        stored == data,
        "content differs: {}",
        first_difference(&stored, &data)
    );
    Ok("100000 bytes in two PATCHes read back intact".into())
}

pub(super) async fn patch_offset_mismatch(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    p.patch_ok(&url, 0, b"012".to_vec()).await?;
    for (offset, what) in [(0, "behind"), (5, "ahead of")] {
        let response = p.patch(&url, offset, b"abc".to_vec()).await?;
        ensure!(
            response.status == 409,
            "PATCH at {offset} ({what} the offset 3) answered {}, expected 409",
            response.status
        );
    }
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 3,
        "after the refused PATCHes the offset is {offset}, expected 3"
    );
    Ok(String::new())
}

pub(super) async fn patch_content_type(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let mut request = Probe::patch_request(&url, 0, b"012".to_vec());
    for (name, value) in &mut request.headers {
        if name == "Content-Type" {
            *value = "application/octet-stream".into();
        }
    }
    let response = p.send(request).await?;
    let offset = p.offset(&url).await?;
    ensure!(
        response.status == 415 && offset == 0,
        "PATCH with Content-Type application/octet-stream answered {} (offset now {offset}), expected 415",
        response.status
    );
    Ok(String::new())
}

pub(super) async fn patch_unknown(p: &mut Probe) -> Outcome {
    let url = p.unknown_url();
    let response = p.patch(&url, 0, b"012".to_vec()).await?;
    ensure!(
        matches!(response.status, 404 | 410),
        "PATCH to an unknown upload answered {}, expected 404 (or 410)",
        response.status
    );
    Ok(format!("{}", response.status))
}

pub(super) async fn method_override(p: &mut Probe) -> Outcome {
    let url = p.create(10).await?;
    let mut request = Probe::patch_request(&url, 0, b"0123".to_vec());
    request.method = "POST".into();
    let response = p
        .send(request.header("X-HTTP-Method-Override", "PATCH"))
        .await?;
    ensure!(
        response.status == 204 && response.number("upload-offset") == Some(4),
        "POST with X-HTTP-Method-Override: PATCH answered {} with Upload-Offset {:?}, expected 204 with 4",
        response.status,
        response.header("upload-offset")
    );
    let offset = p.offset(&url).await?;
    if offset != 4 {
        fail!("after the overridden PATCH the offset is {offset}, expected 4");
    }
    Ok(String::new())
}
