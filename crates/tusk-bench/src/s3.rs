//! The direct S3 side: a multipart upload from in-memory slices, and object checks.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

/// Same bounds as tusk's own client (tusk-s3): connect quickly, allow a slow part.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// An S3 client on one bucket of a local S3 server (credentials test/test, us-east-1,
/// path-style addressing).
#[derive(Clone)]
pub struct S3 {
    client: Client,
    bucket: String,
    /// Parts go as UNSIGNED-PAYLOAD instead of with their SHA-256.
    unsigned_payload: bool,
}

/// How long the phases of one direct multipart upload took.
pub struct MultipartTimes {
    /// CreateMultipartUpload and every UploadPart.
    pub parts: Duration,
    /// CompleteMultipartUpload.
    pub complete: Duration,
}

fn sdk_error(what: &str, err: impl std::error::Error) -> anyhow::Error {
    anyhow!("S3 {what}: {}", DisplayErrorContext(err))
}

/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` when set (garage has real keys), else the
/// placeholder moto accepts.
fn credentials() -> Credentials {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "test".to_owned());
    Credentials::new(
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "tusk-bench",
    )
}

impl S3 {
    /// Send parts as UNSIGNED-PAYLOAD (as tusk does with `--s3-payload-signing never`).
    pub fn with_unsigned_payload(mut self, unsigned: bool) -> Self {
        self.unsigned_payload = unsigned;
        self
    }

    /// Connect and check with HeadBucket that the bucket exists.
    pub async fn connect(endpoint: &str, bucket: &str) -> Result<Self> {
        let endpoint = crate::tus::loopback_url(endpoint)?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        // The SDK's default client on ring, as tusk's (its default would link aws-lc too).
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint.as_str().trim_end_matches('/'))
            .credentials_provider(credentials())
            .timeout_config(timeouts)
            .load()
            .await;
        let config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(true)
            .build();
        let s3 = Self {
            client: Client::from_conf(config),
            bucket: bucket.to_owned(),
            unsigned_payload: false,
        };
        s3.client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("HeadBucket {bucket} at {endpoint}"), e))?;
        Ok(s3)
    }

    /// Upload `data` to `key` as a multipart upload of `part_size` parts (the last one shorter),
    /// at most `concurrency` UploadParts in flight, each body a slice of `data`.
    pub async fn multipart_upload(
        &self,
        key: &str,
        data: &Bytes,
        part_size: usize,
        concurrency: usize,
    ) -> Result<MultipartTimes> {
        let start = Instant::now();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", e))?;
        let upload_id = created
            .upload_id
            .context("CreateMultipartUpload answered without an upload id")?;
        let parts = match self
            .upload_parts(key, &upload_id, data, part_size, concurrency)
            .await
        {
            Ok(parts) => parts,
            Err(err) => {
                // Best effort: give the parts' storage back; the error that matters is `err`.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(err);
            }
        };
        let parts_done = Instant::now();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", e))?;
        Ok(MultipartTimes {
            parts: parts_done - start,
            complete: parts_done.elapsed(),
        })
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &Bytes,
        part_size: usize,
        concurrency: usize,
    ) -> Result<Vec<CompletedPart>> {
        let mut tasks = JoinSet::new();
        let mut done = Vec::new();
        for (i, body) in crate::data::slices(data, part_size).into_iter().enumerate() {
            if tasks.len() >= concurrency.max(1) {
                done.push(join_one(&mut tasks).await?);
            }
            let number = i32::try_from(i + 1).context("too many parts")?;
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body));
            let unsigned = self.unsigned_payload;
            tasks.spawn(async move {
                let sent = if unsigned {
                    request.customize().disable_payload_signing().send().await
                } else {
                    request.send().await
                };
                let out = sent.map_err(|e| sdk_error(&format!("UploadPart {number}"), e))?;
                let etag = out
                    .e_tag
                    .with_context(|| format!("UploadPart {number} answered without an ETag"))?;
                Ok::<_, anyhow::Error>((number, etag))
            });
        }
        while !tasks.is_empty() {
            done.push(join_one(&mut tasks).await?);
        }
        done.sort_by_key(|(number, _)| *number);
        Ok(done
            .into_iter()
            .map(|(number, etag)| {
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build()
            })
            .collect())
    }

    /// The object's size (HeadObject).
    pub async fn object_size(&self, key: &str) -> Result<u64> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("HeadObject {key}"), e))?;
        let size = out
            .content_length
            .with_context(|| format!("HeadObject {key}: no Content-Length"))?;
        u64::try_from(size).with_context(|| format!("HeadObject {key}: size {size}"))
    }

    /// Check that the object has `size` bytes.
    pub async fn check_size(&self, key: &str, size: u64) -> Result<()> {
        let got = self.object_size(key).await?;
        ensure!(got == size, "object {key} has {got} bytes, expected {size}");
        Ok(())
    }

    /// Size and hex SHA-256 of the object, streamed (GetObject) into the hasher.
    pub async fn object_sha256(&self, key: &str) -> Result<(u64, String)> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("GetObject {key}"), e))?;
        let mut body = out.body;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        // Ends with the object; the SDK's timeouts bound a stalled body.
        while let Some(chunk) = body
            .try_next()
            .await
            .with_context(|| format!("GetObject {key}: reading the body"))?
        {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Delete the object (frees the S3 server's storage between runs).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("DeleteObject {key}"), e))?;
        Ok(())
    }

    /// Delete a tusk upload's object and its `<id>.info` object.
    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        self.delete(id).await?;
        self.delete(&format!("{id}.info")).await
    }
}

async fn join_one(tasks: &mut JoinSet<Result<(i32, String)>>) -> Result<(i32, String)> {
    tasks
        .join_next()
        .await
        .context("no part upload left to wait for")?
        .context("a part upload task failed")?
}
