use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tracing::Instrument;
use tusk_core::{Error, ErrorKind, ObjectAttributes, ObjectStore, Placement, Result};

use crate::{S3Config, S3Error};

/// Records an S3 call's duration in `tusk_s3_request_duration_seconds{operation}` (errors are
/// counted where they are classified, in [`S3Error::from_sdk`]).
trait Timed: std::future::Future + Sized {
    async fn timed(self, operation: &'static str) -> Self::Output {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "s3",
            otel.name = format!("s3 {operation}"),
            otel.kind = "client",
            operation
        );
        let out = self.instrument(span).await;
        tusk_metrics::metrics()
            .s3_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        out
    }
}

impl<F: std::future::Future> Timed for F {}

/// The HTTP(S) client for the AWS SDK: built as its default one is, but with rustls on ring,
/// the crypto library the rest of tusk uses (the SDK's own default would link aws-lc as a
/// second one). Like the default, it trusts the system's root certificates and goes through
/// the proxy that `HTTPS_PROXY` / `HTTP_PROXY` name, except for hosts in `NO_PROXY`.
pub fn sdk_http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
            .tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Region used when neither the config nor the AWS environment names one.
const DEFAULT_REGION: &str = "us-east-1";
/// A TCP connection that takes longer is treated as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt of one request, generous enough for a large part on a slow link.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// [`ObjectStore`] on an S3 bucket (AWS or a compatible service).
///
/// Keys are stored as `<prefix><key>`. Part bodies are sent from memory, never spooled to disk.
/// The SDK's standard retries apply to every call.
#[derive(Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
    prefix: String,
    /// Where records (`<id>.info`) go, if not under `prefix`.
    meta_prefix: Option<String>,
    /// Storage class and encryption of every object tusk creates.
    storage_class: Option<aws_sdk_s3::types::StorageClass>,
    sse: Option<aws_sdk_s3::types::ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
    /// Whether part and object bodies carry their SHA-256 (else `UNSIGNED-PAYLOAD`).
    sign_payload: bool,
    /// Whether parts may be streamed as their bytes arrive: bodies are unsigned and the store
    /// took a streamed part at start-up.
    stream_parts: bool,
    /// Where S3 is, for messages.
    endpoint: String,
}

impl fmt::Debug for S3Objects {
    // The client's configuration holds the credentials provider: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Objects")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Objects {
    /// Build a client from `config` and check with HeadBucket that the bucket is usable, so a
    /// missing bucket, refused credentials or an unreachable endpoint fail start-up with a clear
    /// message instead of the first upload.
    pub async fn connect(config: S3Config) -> std::result::Result<Self, S3Error> {
        config.validate()?;
        let credentials = match config.credentials {
            Some(credentials) => Some(credentials),
            None => crate::StaticCredentials::from_env_files()?,
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let http_client = sdk_http_client();
        // The SDK's default region chain (environment, profile, instance metadata), the last
        // with this client; resolved once by the loader for everything it configures.
        let provider_config = ProviderConfig::default().with_http_client(http_client.clone());
        let region = RegionProviderChain::first_try(config.region.map(Region::new))
            .or_else(EnvironmentVariableRegionProvider::new())
            .or_else(
                ProfileFileRegionProvider::builder()
                    .configure(&provider_config)
                    .build(),
            )
            .or_else(
                ImdsRegionProvider::builder()
                    .configure(&provider_config)
                    .build(),
            )
            .or_else(Region::new(DEFAULT_REGION));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .region(region)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard());
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials.to_sdk());
        }
        let sdk_config = loader.load().await;
        let endpoint = match (&config.endpoint, sdk_config.region()) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(region)) => format!("AWS S3 ({region})"),
            (None, None) => "AWS S3".to_owned(),
        };
        let (request_checksums, response_checksums) = match config.checksum {
            crate::ChecksumMode::WhenSupported => (
                RequestChecksumCalculation::WhenSupported,
                ResponseChecksumValidation::WhenSupported,
            ),
            crate::ChecksumMode::WhenRequired => (
                RequestChecksumCalculation::WhenRequired,
                ResponseChecksumValidation::WhenRequired,
            ),
        };
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(request_checksums)
            .response_checksum_validation(response_checksums)
            .build();
        let mut objects = Self {
            client: Client::from_conf(s3_config),
            bucket: config.bucket,
            prefix: config.prefix,
            meta_prefix: config.meta_prefix,
            storage_class: config
                .storage_class
                .as_deref()
                .map(aws_sdk_s3::types::StorageClass::from),
            sse: config
                .sse
                .as_deref()
                .map(aws_sdk_s3::types::ServerSideEncryption::from),
            sse_kms_key_id: config.sse_kms_key_id,
            sign_payload: config.payload_signing.signs(config.endpoint.as_deref()),
            stream_parts: !config.payload_signing.signs(config.endpoint.as_deref()),
            endpoint: endpoint.clone(),
        };
        objects.check_bucket(endpoint).await?;
        objects.check_multipart(config.checksum).await?;
        Ok(objects)
    }

    /// Upload a small object as a multipart upload of one part, then delete it: a store that
    /// refuses how this client uploads parts (above all the SDK's checksums) fails here, at
    /// start-up, instead of on the first user's upload. With unsigned bodies the part is first
    /// sent as a stream; a store that refuses that (the SDK frames a streamed body with its
    /// checksum differently) gets whole parts only, with a warning.
    async fn check_multipart(
        &mut self,
        checksum: crate::ChecksumMode,
    ) -> std::result::Result<(), S3Error> {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| S3Error::Config(e.to_string()))?;
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!(".tusk-start-up-check-{hex}");
        let failed = |step: &str, err: Error| S3Error::MultipartCheck {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            detail: format!("{step}: {}", crate::error::chain(&err)),
            hint: match checksum {
                crate::ChecksumMode::WhenSupported => {
                    "if the store rejects the AWS SDK's checksums (R2, B2, Wasabi, older MinIO, garage), set s3_checksum = \"when-required\""
                }
                crate::ChecksumMode::WhenRequired => {
                    "check that the store supports multipart uploads and the credentials may write to the bucket"
                }
            },
        };
        let multipart_id = self
            .create_multipart(&key, &ObjectAttributes::default())
            .await
            .map_err(|e| failed("CreateMultipartUpload", e))?;
        let body = Bytes::from_static(b"tusk start-up check");
        if self.stream_parts {
            let stream: tusk_core::ByteStream =
                Box::pin(futures_util::stream::iter([Ok(body.clone())]));
            let streamed = self
                .upload_part_streamed(&key, &multipart_id, 1, body.len() as u64, stream)
                .await;
            if let Err(err) = streamed {
                tracing::warn!(
                    bucket = %self.bucket,
                    endpoint = %self.endpoint,
                    error = %crate::error::chain(&err),
                    "the S3 store refused a part streamed as its bytes arrive; parts go whole (s3_checksum = \"when-required\" may let it take them)"
                );
                self.stream_parts = false;
            }
        }
        let stored = async {
            let etag = self
                .upload_part(&key, &multipart_id, 1, body)
                .await
                .map_err(|e| failed("UploadPart", e))?;
            self.complete_multipart(&key, &multipart_id, &[etag])
                .await
                .map_err(|e| failed("CompleteMultipartUpload", e))
        }
        .await;
        if stored.is_err() {
            let _ = self.abort_multipart(&key, &multipart_id).await;
        }
        stored?;
        self.delete_object(&key)
            .await
            .map_err(|e| failed("DeleteObject", e))
    }

    /// The bucket in use.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix prepended to every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Storage class and encryption of an object with `attributes`: an upload's own choice
    /// (from its pre-create hook) over the bucket's settings. Encryption is chosen whole: an
    /// upload that picks `AES256` must not inherit the bucket setting's KMS key.
    fn stored_as(
        &self,
        attributes: &ObjectAttributes,
    ) -> (
        Option<aws_sdk_s3::types::StorageClass>,
        Option<aws_sdk_s3::types::ServerSideEncryption>,
        Option<String>,
    ) {
        let storage_class = match &attributes.storage_class {
            Some(class) => Some(aws_sdk_s3::types::StorageClass::from(class.as_str())),
            None => self.storage_class.clone(),
        };
        match &attributes.server_side_encryption {
            Some(sse) => (
                storage_class,
                Some(aws_sdk_s3::types::ServerSideEncryption::from(sse.as_str())),
                attributes.sse_kms_key_id.clone(),
            ),
            None => (storage_class, self.sse.clone(), self.sse_kms_key_id.clone()),
        }
    }

    /// An `UploadPart` of part `part_number` of `multipart_id`, without its body.
    fn part_request(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
    ) -> Result<aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder> {
        Ok(self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(multipart_id)
            .part_number(self::part_number(part_number)?))
    }

    fn key(&self, key: &str) -> String {
        match &self.meta_prefix {
            Some(meta) if key.ends_with(tusk_core::RECORD_SUFFIX) => format!("{meta}{key}"),
            _ => format!("{}{}", self.prefix, key),
        }
    }

    async fn check_bucket(&self, endpoint: String) -> std::result::Result<(), S3Error> {
        let err = match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let bucket = self.bucket.clone();
        let status = err.raw_response().map(|r| r.status().as_u16());
        let detail = crate::error::chain(&err);
        match &err {
            SdkError::DispatchFailure(e) if e.is_io() || e.is_timeout() => {
                return Err(S3Error::Unreachable {
                    endpoint,
                    detail,
                    source: crate::error::cause(&err),
                });
            }
            SdkError::TimeoutError(_) => {
                return Err(S3Error::Unreachable {
                    endpoint,
                    detail,
                    source: crate::error::cause(&err),
                });
            }
            _ => {}
        }
        Err(match status {
            Some(404) => S3Error::BucketNotFound { bucket, endpoint },
            Some(403) => S3Error::AccessDenied { bucket, endpoint },
            Some(301) => S3Error::BucketCheck {
                bucket,
                endpoint,
                detail: "HTTP 301: the bucket is in another region; set the region".to_owned(),
                source: crate::error::cause(&err),
            },
            Some(status) => S3Error::BucketCheck {
                bucket,
                endpoint,
                detail: format!("HTTP {status}: {detail}"),
                source: crate::error::cause(&err),
            },
            // Not sent at all: typically no credentials were found.
            None => S3Error::BucketCheck {
                bucket,
                endpoint,
                detail,
                source: crate::error::cause(&err),
            },
        })
    }
}

/// Whether S3 can store an upload's object as `placement` says: a storage class and an
/// encryption it knows (the key prefix and the KMS key's pairing with `aws:kms` are checked
/// where the hook's answer is read). The message names the hook's key.
pub fn check_placement(placement: &Placement) -> std::result::Result<(), String> {
    crate::config::check_storage_settings(
        placement.storage_class.as_deref(),
        placement.server_side_encryption.as_deref(),
        placement.sse_kms_key_id.is_some(),
    )
    .map_err(|(key, message)| {
        let key = match key {
            "s3_storage_class" => "StorageClass",
            "s3_sse" => "ServerSideEncryption",
            _ => "SSEKMSKeyId",
        };
        format!("Storage.{key}: {message}")
    })
}

/// S3 numbers parts as a signed 32-bit integer (1..=10,000).
fn part_number(n: u32) -> Result<i32> {
    i32::try_from(n)
        .map_err(|_| Error::new(ErrorKind::Invalid, format!("part number {n} is too large")))
}

fn missing(operation: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("S3 {operation} answered without {what}"),
    )
}

#[async_trait]
impl ObjectStore for S3Objects {
    fn location(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Type", "s3store".to_owned()),
            ("Bucket", self.bucket.clone()),
            ("Key", self.key(key)),
        ]
    }

    async fn check(&self) -> Result<()> {
        Ok(self.check_bucket(self.endpoint.clone()).await?)
    }

    fn check_placement(&self, placement: &Placement) -> std::result::Result<(), String> {
        check_placement(placement)
    }

    async fn create_multipart(&self, key: &str, attributes: &ObjectAttributes) -> Result<String> {
        let (storage_class, sse, sse_kms_key_id) = self.stored_as(attributes);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .set_content_type(attributes.content_type.clone())
            .set_content_disposition(attributes.content_disposition.clone())
            .set_storage_class(storage_class)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(sse_kms_key_id)
            .send()
            .instrument(tracing::debug_span!("s3.create_multipart_upload", key))
            .timed("CreateMultipartUpload")
            .await
            .map_err(|e| S3Error::from_sdk("CreateMultipartUpload", e))?;
        out.upload_id
            .ok_or_else(|| missing("CreateMultipartUpload", "an upload id"))
    }

    async fn upload_part(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<String> {
        let size = body.len();
        let request = self
            .part_request(key, multipart_id, part_number)?
            .body(ByteStream::from(body));
        let sent = async {
            if self.sign_payload {
                request.send().await
            } else {
                request.customize().disable_payload_signing().send().await
            }
        };
        let out = sent
            .instrument(tracing::debug_span!(
                "s3.upload_part",
                key,
                part_number,
                size
            ))
            .timed("UploadPart")
            .await
            .map_err(|e| S3Error::from_sdk("UploadPart", e))?;
        out.e_tag.ok_or_else(|| missing("UploadPart", "an ETag"))
    }

    fn streams_parts(&self) -> bool {
        // A signed body's hash goes in the request's headers, before its first byte.
        self.stream_parts
    }

    async fn upload_part_streamed(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        size: u64,
        body: tusk_core::ByteStream,
    ) -> Result<String> {
        if self.sign_payload {
            return Err(Error::new(
                ErrorKind::Backend,
                "a part cannot be streamed while bodies are signed (s3_payload_signing)",
            ));
        }
        let length = i64::try_from(size)
            .map_err(|_| Error::new(ErrorKind::Invalid, "a part of more than 2^63 bytes"))?;
        // Not retried by the SDK (the body cannot be replayed): a failed attempt fails the call.
        let out = self
            .part_request(key, multipart_id, part_number)?
            .content_length(length)
            .body(ByteStream::from_body_1_x(crate::part_body::PartBody::new(
                body, size,
            )))
            .customize()
            .disable_payload_signing()
            .send()
            .instrument(tracing::debug_span!(
                "s3.upload_part",
                key,
                part_number,
                size,
                streamed = true
            ))
            // Its own label: it lasts as long as the PATCHes that fill the part take.
            .timed("UploadPartStreamed")
            .await
            .map_err(|e| S3Error::from_sdk("UploadPartStreamed", e))?;
        out.e_tag.ok_or_else(|| missing("UploadPart", "an ETag"))
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<String> {
        // x-amz-copy-source is `bucket/key`, URL-encoded; our keys are the operator's prefix
        // plus an upload id, so only the prefix can hold characters that need encoding.
        let source_key = self.key(source);
        let encoded: String = source_key
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(multipart_id)
            .part_number(self::part_number(part_number)?)
            .copy_source(format!("{}/{encoded}", self.bucket))
            .copy_source_range(format!("bytes={start}-{}", end.saturating_sub(1)))
            .send()
            .instrument(tracing::debug_span!(
                "s3.upload_part_copy",
                key,
                part_number,
                source,
                start,
                end
            ))
            .timed("UploadPartCopy")
            .await
            .map_err(|e| S3Error::from_sdk("UploadPartCopy", e))?;
        out.copy_part_result
            .and_then(|r| r.e_tag)
            .ok_or_else(|| missing("UploadPartCopy", "an ETag"))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        multipart_id: &str,
        etags: &[String],
    ) -> Result<()> {
        let mut parts = Vec::with_capacity(etags.len());
        for (n, etag) in (1u32..).zip(etags) {
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number(n)?)
                    .e_tag(etag)
                    .build(),
            );
        }
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(multipart_id)
            .multipart_upload(upload)
            .send()
            .instrument(tracing::debug_span!(
                "s3.complete_multipart_upload",
                key,
                parts = etags.len()
            ))
            .timed("CompleteMultipartUpload")
            .await
            .map_err(|e| S3Error::from_sdk("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, multipart_id: &str) -> Result<()> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(multipart_id)
            .send()
            .instrument(tracing::debug_span!("s3.abort_multipart_upload", key))
            .timed("AbortMultipartUpload")
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match S3Error::from_sdk("AbortMultipartUpload", e) {
                // Already completed or aborted: the goal is reached.
                S3Error::NotFound { .. } => Ok(()),
                other => Err(other.into()),
            },
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        attributes: &ObjectAttributes,
    ) -> Result<()> {
        let size = body.len();
        let (storage_class, sse, sse_kms_key_id) = self.stored_as(attributes);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(body))
            .set_content_type(attributes.content_type.clone())
            .set_content_disposition(attributes.content_disposition.clone())
            .set_storage_class(storage_class)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(sse_kms_key_id);
        let sent = async {
            if self.sign_payload {
                request.send().await
            } else {
                request.customize().disable_payload_signing().send().await
            }
        };
        sent.instrument(tracing::debug_span!("s3.put_object", key, size))
            .timed("PutObject")
            .await
            .map_err(|e| S3Error::from_sdk("PutObject", e))?;
        Ok(())
    }

    async fn object_size(&self, key: &str) -> Result<Option<u64>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .instrument(tracing::debug_span!("s3.head_object", key))
            .timed("HeadObject")
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                return match S3Error::from_sdk("HeadObject", e) {
                    S3Error::NotFound { .. } => Ok(None),
                    other => Err(other.into()),
                };
            }
        };
        let size = out
            .content_length
            .ok_or_else(|| missing("HeadObject", "a Content-Length"))?;
        u64::try_from(size)
            .map(Some)
            .map_err(|_| missing("HeadObject", "a valid Content-Length"))
    }

    async fn get_object(&self, key: &str, start: u64, end: u64) -> Result<tusk_core::ByteStream> {
        if start >= end {
            // An HTTP range cannot name zero bytes.
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .range(format!("bytes={start}-{}", end - 1))
            .send()
            .instrument(tracing::debug_span!("s3.get_object", key, start, end))
            .timed("GetObject")
            .await
            .map_err(|e| Error::from(S3Error::from_sdk("GetObject", e)))?;
        // The body streams from S3 as the client reads it: never buffered whole.
        let body = futures_util::stream::unfold(out.body, |mut body| async move {
            let next = body.next().await?;
            let item = next.map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    "object storage (S3) stopped sending the object",
                )
                .with_source(e)
            });
            Some((item, body))
        });
        Ok(Box::pin(body))
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .instrument(tracing::debug_span!("s3.delete_object", key))
            .timed("DeleteObject")
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match S3Error::from_sdk("DeleteObject", e) {
                // S3 answers 204 for a missing key; some clones answer 404.
                S3Error::NotFound { .. } => Ok(()),
                other => Err(other.into()),
            },
        }
    }
}
