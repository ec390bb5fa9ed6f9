//! Concatenation and concatenation-unfinished.

use std::time::Duration;

use super::{Outcome, Probe, Verdict, b64, ensure, fail, first_difference};
use crate::http::{Response, Url};

fn partial() -> (&'static str, String) {
    ("Upload-Concat", "partial".into())
}

/// A partial upload of `data.len()` bytes with `upload` of it uploaded.
async fn partial_upload(p: &mut Probe, data: &[u8], upload: bool) -> Result<Url, Verdict> {
    let (url, _) = p
        .create_with(
            &[("Upload-Length", data.len().to_string()), partial()],
            Vec::new(),
        )
        .await?;
    if upload {
        p.patch_ok(&url, 0, data.to_vec()).await?;
    }
    Ok(url)
}

fn last_segment(url: &Url) -> &str {
    url.path.rsplit('/').next().unwrap_or_default()
}

/// Creates the final upload of `parts` in order.
async fn final_upload(
    p: &mut Probe,
    parts: &[&Url],
    metadata: Option<String>,
) -> Result<(Url, String), Verdict> {
    let paths: Vec<&str> = parts.iter().map(|u| u.path.as_str()).collect();
    let value = format!("final;{}", paths.join(" "));
    let mut headers = vec![("Upload-Concat", value.clone())];
    if let Some(metadata) = metadata {
        headers.push(("Upload-Metadata", metadata));
    }
    let (url, _) = p.create_with(&headers, Vec::new()).await?;
    Ok((url, value))
}

/// HEADs `url` until its offset equals its length (bounded by the request timeout).
async fn wait_complete(p: &mut Probe, url: &Url, length: u64) -> Result<Response, Verdict> {
    let deadline = tokio::time::Instant::now() + p.timeout();
    loop {
        let response = p.head(url).await?;
        if response.number("upload-offset") == Some(length)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(response);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn concat_matches(response: &Response, parts: &[&Url]) -> bool {
    let Some(value) = response.header("upload-concat") else {
        return false;
    };
    let Some(list) = value.strip_prefix("final;") else {
        return false;
    };
    let got: Vec<&str> = list
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|u| {
            u.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
        })
        .collect();
    let want: Vec<&str> = parts.iter().map(|u| last_segment(u)).collect();
    got == want
}

pub(super) async fn partial_head(p: &mut Probe) -> Outcome {
    let url = partial_upload(p, b"hello", false).await?;
    let response = p.head(&url).await?;
    ensure!(
        response.header("upload-concat") == Some("partial")
            && response.number("upload-offset") == Some(0),
        "HEAD of a partial upload has Upload-Concat {:?} and Upload-Offset {:?}, expected partial and 0",
        response.header("upload-concat"),
        response.header("upload-offset")
    );
    Ok(String::new())
}

pub(super) async fn final_head(p: &mut Probe) -> Outcome {
    let a = partial_upload(p, b"hello", true).await?;
    let b = partial_upload(p, b" world", true).await?;
    let (url, sent) = final_upload(p, &[&a, &b], None).await?;
    let response = wait_complete(p, &url, 11).await?;
    ensure!(
        response.number("upload-offset") == Some(11)
            && response.number("upload-length") == Some(11),
        "HEAD of the final upload of 5 + 6 bytes has Upload-Offset {:?} and Upload-Length {:?}, expected 11 and 11",
        response.header("upload-offset"),
        response.header("upload-length")
    );
    ensure!(
        concat_matches(&response, &[&a, &b]),
        "HEAD of the final upload has Upload-Concat {:?}, expected the value sent: {sent:?}",
        response.header("upload-concat")
    );
    Ok(String::new())
}

pub(super) async fn final_content(p: &mut Probe) -> Outcome {
    let a = partial_upload(p, b"hello", true).await?;
    let b = partial_upload(p, b" world", true).await?;
    // In reverse order: concatenation follows the list, not creation order.
    let (url, _) = final_upload(p, &[&b, &a], None).await?;
    wait_complete(p, &url, 11).await?;
    let stored = p.read_back(&url, 11).await?;
    ensure!(
        stored == b" worldhello",
        "final of (\" world\", \"hello\"): {}",
        first_difference(&stored, b" worldhello")
    );
    Ok(String::new())
}

pub(super) async fn final_patch(p: &mut Probe) -> Outcome {
    let a = partial_upload(p, b"hello", true).await?;
    let b = partial_upload(p, b" world", true).await?;
    let (url, _) = final_upload(p, &[&a, &b], None).await?;
    wait_complete(p, &url, 11).await?;
    let response = p.patch(&url, 11, b"!".to_vec()).await?;
    let head = p.head(&url).await?;
    let partial = p.head(&a).await?;
    ensure!(
        response.status == 403,
        "PATCH to a final upload answered {}, expected 403",
        response.status
    );
    ensure!(
        head.number("upload-length") == Some(11) && head.number("upload-offset") == Some(11),
        "after the refused PATCH the final upload has Upload-Offset {:?} / Upload-Length {:?}",
        head.header("upload-offset"),
        head.header("upload-length")
    );
    if partial.is_success() && partial.number("upload-offset") != Some(5) {
        fail!(
            "after the refused PATCH a partial upload has Upload-Offset {:?}",
            partial.header("upload-offset")
        );
    }
    Ok(String::new())
}

pub(super) async fn metadata_not_inherited(p: &mut Probe) -> Outcome {
    let (a, _) = p
        .create_with(
            &[
                ("Upload-Length", "5".into()),
                partial(),
                (
                    "Upload-Metadata",
                    format!("partialsecret {}", b64(b"secret")),
                ),
            ],
            Vec::new(),
        )
        .await?;
    p.patch_ok(&a, 0, b"hello".to_vec()).await?;
    let (url, _) = final_upload(p, &[&a], Some(format!("name {}", b64(b"final")))).await?;
    let response = wait_complete(p, &url, 5).await?;
    let metadata = response.header("upload-metadata").unwrap_or_default();
    ensure!(
        !metadata.contains("partialsecret"),
        "the final upload's Upload-Metadata {metadata:?} carries the partial upload's key `partialsecret`"
    );
    Ok(String::new())
}

pub(super) async fn unfinished_final(p: &mut Probe) -> Outcome {
    let a = partial_upload(p, b"hello", false).await?;
    let b = partial_upload(p, b" world", true).await?;
    let (url, _) = final_upload(p, &[&a, &b], None).await?;
    let before = p.head(&url).await?;
    ensure!(
        before.is_success() && concat_matches(&before, &[&a, &b]),
        "HEAD of a final upload of unfinished partials answered {} with Upload-Concat {:?}",
        before.status,
        before.header("upload-concat")
    );
    p.patch_ok(&a, 0, b"hello".to_vec()).await?;
    let after = wait_complete(p, &url, 11).await?;
    ensure!(
        after.number("upload-offset") == Some(11) && after.number("upload-length") == Some(11),
        "after the partials finished, the final upload has Upload-Offset {:?} and Upload-Length {:?}, expected 11 and 11",
        after.header("upload-offset"),
        after.header("upload-length")
    );
    let stored = p.read_back(&url, 11).await?;
    ensure!(
        stored == b"hello world",
        "{}",
        first_difference(&stored, b"hello world")
    );
    Ok(String::new())
}

pub(super) async fn unfinished_no_offset(p: &mut Probe) -> Outcome {
    let a = partial_upload(p, b"hello", false).await?;
    let (url, _) = final_upload(p, &[&a], None).await?;
    let response = p.head(&url).await?;
    ensure!(
        !response.has("upload-offset"),
        "HEAD of a final upload whose partial is unfinished has Upload-Offset {:?}",
        response.header("upload-offset")
    );
    Ok(String::new())
}
