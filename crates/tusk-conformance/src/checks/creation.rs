//! Creation, creation-with-upload and creation-defer-length.

use super::{Outcome, Probe, Verdict, b64, ensure, first_difference};
use crate::http::Request;

/// `Upload-Metadata` as a sorted list of (key, decoded value); `None` if malformed.
pub(super) fn parse_metadata(value: &str) -> Option<Vec<(String, Vec<u8>)>> {
    use base64::Engine as _;
    let mut pairs = Vec::new();
    for pair in value.split(',') {
        let pair = pair.trim();
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        pairs.push((key.to_owned(), decoded));
    }
    pairs.sort();
    Some(pairs)
}

pub(super) async fn created_location(p: &mut Probe) -> Outcome {
    let (url, response) = p
        .create_with(&[("Upload-Length", "10".into())], Vec::new())
        .await?;
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 0,
        "HEAD of the created upload reports offset {offset}, expected 0"
    );
    Ok(format!(
        "Location: {}",
        response.header("location").unwrap_or_default()
    ))
}

pub(super) async fn metadata_in_head(p: &mut Probe) -> Outcome {
    let sent = format!(
        "filename {},is_confidential",
        b64(b"world_domination_plan.pdf")
    );
    let (url, _) = p
        .create_with(
            &[
                ("Upload-Length", "10".into()),
                ("Upload-Metadata", sent.clone()),
            ],
            Vec::new(),
        )
        .await?;
    let response = p.head(&url).await?;
    let got = response.header("upload-metadata").unwrap_or_default();
    ensure!(
        parse_metadata(got) == parse_metadata(&sent),
        "HEAD has Upload-Metadata {got:?}, expected the pairs of {sent:?}"
    );
    Ok(String::new())
}

pub(super) async fn empty_upload(p: &mut Probe) -> Outcome {
    let url = p.create(0).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.number("upload-offset") == Some(0) && response.number("upload-length") == Some(0),
        "HEAD of an empty upload has Upload-Offset {:?} and Upload-Length {:?}, expected 0 and 0",
        response.header("upload-offset"),
        response.header("upload-length")
    );
    Ok(String::new())
}

pub(super) async fn max_size(p: &mut Probe) -> Outcome {
    let Some(max) = p.cx.server.max_size.filter(|m| *m < u64::MAX) else {
        // No advertised maximum: nothing to exceed.
        return Err(Verdict::Skip(
            "the server advertises no Tus-Max-Size below 2^64-1".into(),
        ));
    };
    let response = p
        .send(
            Request::new("POST", &p.collection())
                .tus()
                .header("Upload-Length", (max + 1).to_string()),
        )
        .await?;
    p.track_location(&response);
    ensure!(
        response.status == 413,
        "POST with Upload-Length {} (Tus-Max-Size + 1) answered {}, expected 413",
        max + 1,
        response.status
    );
    Ok(String::new())
}

pub(super) async fn length_required(p: &mut Probe) -> Outcome {
    let response = p.send(Request::new("POST", &p.collection()).tus()).await?;
    p.track_location(&response);
    ensure!(
        (400..500).contains(&response.status),
        "POST without Upload-Length or Upload-Defer-Length answered {}, expected 400",
        response.status
    );
    Ok(format!("{}", response.status))
}

fn octets() -> (&'static str, String) {
    ("Content-Type", "application/offset+octet-stream".into())
}

pub(super) async fn with_upload_offset(p: &mut Probe) -> Outcome {
    let (url, response) = p
        .create_with(
            &[("Upload-Length", "11".into()), octets()],
            b"hello".to_vec(),
        )
        .await?;
    ensure!(
        response.number("upload-offset") == Some(5),
        "POST with a 5-byte body answered Upload-Offset {:?}, expected 5",
        response.header("upload-offset")
    );
    let offset = p.offset(&url).await?;
    ensure!(
        offset == 5,
        "HEAD after creation with 5 bytes reports offset {offset}"
    );
    Ok(String::new())
}

pub(super) async fn with_upload_content(p: &mut Probe) -> Outcome {
    let (url, response) = p
        .create_with(
            &[("Upload-Length", "11".into()), octets()],
            b"hello".to_vec(),
        )
        .await?;
    let offset = response.number("upload-offset").unwrap_or(0);
    ensure!(
        offset <= 5,
        "POST with 5 bytes answered Upload-Offset {offset}"
    );
    p.patch_ok(&url, offset, b"hello world"[offset as usize..].to_vec())
        .await?;
    let stored = p.read_back(&url, 11).await?;
    ensure!(
        stored == b"hello world",
        "content differs: {}",
        first_difference(&stored, b"hello world")
    );
    Ok(String::new())
}

pub(super) async fn with_upload_needs_creation(p: &mut Probe) -> Outcome {
    ensure!(
        p.cx.offers("creation"),
        "Tus-Extension {:?} offers creation-with-upload without creation",
        p.cx.server.extensions.join(",")
    );
    Ok(String::new())
}

async fn create_deferred(p: &mut Probe) -> Result<crate::http::Url, Verdict> {
    Ok(
        p.create_with(&[("Upload-Defer-Length", "1".into())], Vec::new())
            .await?
            .0,
    )
}

pub(super) async fn defer_head(p: &mut Probe) -> Outcome {
    let url = create_deferred(p).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.header("upload-defer-length") == Some("1") && !response.has("upload-length"),
        "HEAD of a deferred-length upload has Upload-Defer-Length {:?} and Upload-Length {:?}, expected 1 and none",
        response.header("upload-defer-length"),
        response.header("upload-length")
    );
    Ok(String::new())
}

fn patch_with_length(url: &crate::http::Url, offset: u64, length: u64, data: &[u8]) -> Request {
    Probe::patch_request(url, offset, data.to_vec()).header("Upload-Length", length.to_string())
}

pub(super) async fn defer_set_by_patch(p: &mut Probe) -> Outcome {
    let url = create_deferred(p).await?;
    let response = p.send(patch_with_length(&url, 0, 10, b"0123")).await?;
    ensure!(
        response.status == 204 && response.number("upload-offset") == Some(4),
        "PATCH declaring Upload-Length 10 with 4 bytes answered {} with Upload-Offset {:?}",
        response.status,
        response.header("upload-offset")
    );
    let response = p.head(&url).await?;
    ensure!(
        response.number("upload-length") == Some(10) && !response.has("upload-defer-length"),
        "HEAD after the length was set has Upload-Length {:?} and Upload-Defer-Length {:?}, expected 10 and none",
        response.header("upload-length"),
        response.header("upload-defer-length")
    );
    p.patch_ok(&url, 4, b"456789".to_vec()).await?;
    Ok(String::new())
}

pub(super) async fn defer_immutable(p: &mut Probe) -> Outcome {
    let url = create_deferred(p).await?;
    let response = p.send(patch_with_length(&url, 0, 10, b"0123")).await?;
    ensure!(
        response.status == 204,
        "PATCH declaring Upload-Length 10 answered {}",
        response.status
    );
    let response = p.send(patch_with_length(&url, 4, 20, b"45")).await?;
    let head = p.head(&url).await?;
    ensure!(
        head.number("upload-length") == Some(10),
        "after a second PATCH declaring Upload-Length 20 (answered {}), HEAD has Upload-Length {:?}, expected 10",
        response.status,
        head.header("upload-length")
    );
    Ok(format!("second declaration answered {}", response.status))
}

pub(super) async fn defer_value(p: &mut Probe) -> Outcome {
    let response = p
        .send(
            Request::new("POST", &p.collection())
                .tus()
                .header("Upload-Defer-Length", "2"),
        )
        .await?;
    p.track_location(&response);
    ensure!(
        response.status == 400,
        "POST with Upload-Defer-Length: 2 answered {}, expected 400",
        response.status
    );
    Ok(String::new())
}
