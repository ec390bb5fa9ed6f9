//! A minimal tus 1.0 client (creation + PATCH) on reqwest, for loopback addresses only.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Client, Response, StatusCode, Url};

/// Slice size of a streamed PATCH body.
pub const STREAM_CHUNK: usize = 256 * 1024;
/// No single request of a benchmark may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// Parse `url` and refuse anything but http:// on a 127.0.0.0/8 address.
pub fn loopback_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).with_context(|| format!("invalid URL '{url}'"))?;
    check_loopback(&parsed)?;
    Ok(parsed)
}

fn check_loopback(url: &Url) -> Result<()> {
    ensure!(url.scheme() == "http", "{url}: only http:// is supported");
    let host = url.host_str().unwrap_or_default();
    match host.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        _ => bail!("{url}: benchmarks only talk to 127.0.0.1 (got host '{host}')"),
    }
}

/// The upload id: the last path segment of an upload URL (also its S3 object key).
pub fn upload_id(url: &Url) -> Result<String> {
    url.path_segments()
        .and_then(|mut segments| segments.next_back())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("no upload id in {url}"))
}

/// The outcome of one streamed PATCH.
pub struct Streamed {
    /// When the body's last slice was handed to the HTTP client.
    pub last_slice_sent: Instant,
}

/// A tus client for one upload collection.
pub struct Tus {
    client: Client,
    endpoint: Url,
}

impl Tus {
    pub fn new(endpoint: &str) -> Result<Self> {
        let endpoint = loopback_url(endpoint)?;
        let client = Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, endpoint })
    }

    /// POST a new upload of `length` bytes; its URL.
    pub async fn create(&self, length: u64) -> Result<Url> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", length.to_string())
            .send()
            .await
            .with_context(|| format!("POST {}", self.endpoint))?;
        let response = expect_status(response, StatusCode::CREATED, "POST").await?;
        let location = response
            .headers()
            .get("location")
            .context("POST: no Location header")?
            .to_str()
            .context("POST: Location is not text")?;
        let url = self
            .endpoint
            .join(location)
            .with_context(|| format!("POST: bad Location '{location}'"))?;
        check_loopback(&url)?;
        Ok(url)
    }

    /// PATCH `body` (sent whole) at `offset`; the new offset, checked.
    pub async fn patch(&self, url: &Url, offset: u64, body: Bytes) -> Result<u64> {
        let len = body.len() as u64;
        let response = self
            .patch_request(url, offset, len)
            .body(body)
            .send()
            .await
            .with_context(|| format!("PATCH {url}"))?;
        check_patch(response, offset + len).await
    }

    /// HEAD the upload; its offset.
    pub async fn head(&self, url: &Url) -> Result<u64> {
        let response = self
            .client
            .head(url.clone())
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .with_context(|| format!("HEAD {url}"))?;
        let response = expect_status(response, StatusCode::OK, "HEAD").await?;
        offset_header(&response)
    }

    /// The HTTP client, for requests to the backends' own endpoints.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// PATCH `data` at `offset` as one request whose body streams `data` in slices of
    /// `chunk` bytes (no copies); the new offset (checked) and when the last slice went out.
    pub async fn patch_stream(
        &self,
        url: &Url,
        offset: u64,
        data: &Bytes,
        chunk: usize,
    ) -> Result<(u64, Streamed)> {
        let len = data.len() as u64;
        let last = Arc::new(Mutex::new(None::<Instant>));
        let slices = crate::data::slices(data, chunk);
        let count = slices.len();
        let marker = Arc::clone(&last);
        let stream =
            futures_util::stream::iter(slices.into_iter().enumerate()).map(move |(i, slice)| {
                if i + 1 == count
                    && let Ok(mut at) = marker.lock()
                {
                    *at = Some(Instant::now());
                }
                Ok::<Bytes, std::io::Error>(slice)
            });
        let response = self
            .patch_request(url, offset, len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .with_context(|| format!("PATCH {url}"))?;
        let done = Instant::now();
        let new_offset = check_patch(response, offset + len).await?;
        let last_slice_sent = last.lock().ok().and_then(|at| *at).unwrap_or(done);
        Ok((new_offset, Streamed { last_slice_sent }))
    }

    fn patch_request(&self, url: &Url, offset: u64, len: u64) -> reqwest::RequestBuilder {
        self.client
            .patch(url.clone())
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", len.to_string())
    }
}

/// POST a new upload of `length` bytes to `collection` with `client`; the upload's URL (the
/// `Location`, resolved against the collection).
pub async fn create_with(client: &Client, collection: &Url, length: u64) -> Result<Url> {
    let created = client
        .post(collection.clone())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .send()
        .await
        .with_context(|| format!("POST {collection}"))?;
    ensure!(
        created.status() == StatusCode::CREATED,
        "POST: {}",
        created.status()
    );
    let location = created
        .headers()
        .get("location")
        .context("POST: no Location")?
        .to_str()?;
    Ok(collection.join(location)?)
}

/// DELETE (terminate) the upload at `url`, so a benchmark leaves nothing behind.
pub async fn delete_with(client: &Client, url: &Url) -> Result<()> {
    let deleted = client
        .delete(url.clone())
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .with_context(|| format!("DELETE {url}"))?;
    ensure!(
        deleted.status() == StatusCode::NO_CONTENT,
        "DELETE: {}",
        deleted.status()
    );
    Ok(())
}

/// The `Upload-Offset` of a response.
pub fn offset_header(resp: &Response) -> Result<u64> {
    resp.headers()
        .get("upload-offset")
        .context("no Upload-Offset")?
        .to_str()?
        .parse()
        .context("Upload-Offset is not a number")
}

async fn expect_status(response: Response, want: StatusCode, what: &str) -> Result<Response> {
    let status = response.status();
    if status == want {
        return Ok(response);
    }
    let url = response.url().clone();
    let body = response.text().await.unwrap_or_default();
    bail!(
        "{what} {url}: expected {want}, got {status}: {}",
        body.chars().take(500).collect::<String>()
    )
}

async fn check_patch(response: Response, want: u64) -> Result<u64> {
    let response = expect_status(response, StatusCode::NO_CONTENT, "PATCH").await?;
    let offset: u64 = response
        .headers()
        .get("upload-offset")
        .context("PATCH: no Upload-Offset header")?
        .to_str()?
        .parse()
        .context("PATCH: Upload-Offset is not a number")?;
    ensure!(
        offset == want,
        "PATCH {}: Upload-Offset {offset}, expected {want}",
        response.url()
    );
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http() {
        assert!(loopback_url("http://127.0.0.1:1080/files/").is_ok());
        assert!(loopback_url("http://127.1.2.3/").is_ok());
        assert!(loopback_url("http://example.com/files/").is_err());
        assert!(loopback_url("http://10.0.0.1/").is_err());
        assert!(loopback_url("https://127.0.0.1/").is_err());
    }

    #[test]
    fn upload_ids() {
        let url = Url::parse("http://127.0.0.1:1/files/abc123").unwrap();
        assert_eq!(upload_id(&url).unwrap(), "abc123");
        let url = Url::parse("http://127.0.0.1:1/files/").unwrap();
        assert!(upload_id(&url).is_err());
    }
}
