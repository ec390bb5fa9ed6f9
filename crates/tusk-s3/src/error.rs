use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tusk_core::ErrorKind;

/// The boxed cause kept for logs.
type Source = Box<dyn std::error::Error + Send + Sync>;

/// An SDK error reduced to its chain of messages. The SDK's own `Debug` includes the raw
/// response body, and S3's `SignatureDoesNotMatch` body echoes the canonical request, session
/// token included: that must never reach a log.
#[derive(Debug)]
struct Cause(String);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

/// The cause to keep for `err`, without its raw response.
pub(crate) fn cause(err: &(dyn std::error::Error + 'static)) -> Source {
    Box::new(Cause(chain(err)))
}

/// `err` and its sources, by `Display` only. (The SDK's `DisplayErrorContext` appends the
/// error's `Debug`, raw response included.)
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// What the client is told when S3 cannot be reached; details go to the logs via the source.
const UNAVAILABLE: &str = "object storage (S3) is unavailable; retry later";

/// Everything that can go wrong talking to S3. Messages name buckets, variables and S3 error
/// codes, never credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The configuration cannot work (empty bucket name, half a key pair, ...).
    #[error("invalid S3 configuration: {0}")]
    Config(String),

    /// A setting cannot work: its TOML key (`s3_bucket`, `s3_endpoint`) and why.
    #[error("{key}: {message}")]
    Setting {
        /// The setting's TOML key.
        key: &'static str,
        /// What is wrong and the fix.
        message: String,
    },

    /// A `*_FILE` credential variable names a file that cannot be read.
    #[error("cannot read the file named by {variable}: {source}")]
    CredentialsFile {
        /// The environment variable, e.g. `AWS_SECRET_ACCESS_KEY_FILE`.
        variable: &'static str,
        /// Why the file could not be read.
        #[source]
        source: std::io::Error,
    },

    /// The start-up multipart upload failed: the store refuses how this client uploads parts.
    #[error(
        "S3 at {endpoint} refused a test multipart upload into bucket `{bucket}` ({detail}); \
         {hint}"
    )]
    MultipartCheck {
        /// The configured bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
        /// What failed.
        detail: String,
        /// What to try.
        hint: &'static str,
    },

    /// The bucket does not exist at the endpoint (HeadBucket answered 404).
    #[error("S3 bucket `{bucket}` does not exist at {endpoint}: create it or fix the bucket name")]
    BucketNotFound {
        /// The configured bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
    },

    /// The credentials may not use the bucket (HeadBucket answered 403).
    #[error(
        "access to S3 bucket `{bucket}` at {endpoint} was denied: check the credentials and the \
         bucket policy"
    )]
    AccessDenied {
        /// The configured bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
    },

    /// No connection could be made to the endpoint (refused, timed out, DNS).
    #[error("S3 endpoint {endpoint} is unreachable ({detail}): check the endpoint and the network")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// The chain of causes, for the operator.
        detail: String,
        /// The SDK's error.
        #[source]
        source: Source,
    },

    /// Checking the bucket failed for another reason (wrong region, no credentials, ...).
    #[error("checking S3 bucket `{bucket}` at {endpoint} failed: {detail}")]
    BucketCheck {
        /// The configured bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
        /// The S3 error code or chain of causes, for the operator.
        detail: String,
        /// The SDK's error.
        #[source]
        source: Source,
    },

    /// The multipart upload or object does not exist (`NoSuchUpload`, `NoSuchKey`, 404).
    #[error("S3 {operation}: no such upload or object ({code})")]
    NotFound {
        /// The S3 operation, e.g. `CompleteMultipartUpload`.
        operation: &'static str,
        /// The S3 error code.
        code: String,
        /// The SDK's error.
        #[source]
        source: Source,
    },

    /// S3 could not be reached or asked to slow down, after the SDK's retries.
    #[error("object storage (S3) is unavailable during {operation}; retry later")]
    Unavailable {
        /// The S3 operation.
        operation: &'static str,
        /// The SDK's error.
        #[source]
        source: Source,
    },

    /// S3 refused a multipart completion: a part is too small, missing, or has another ETag.
    #[error("S3 {operation} refused the parts: {code}{hint}")]
    Refused {
        /// The S3 operation.
        operation: &'static str,
        /// The S3 error code, e.g. `EntityTooSmall` or `InvalidPart`.
        code: String,
        /// A short explanation of the code, possibly empty.
        hint: &'static str,
        /// The SDK's error.
        #[source]
        source: Source,
    },

    /// S3 answered something else unexpected.
    #[error("S3 {operation} failed: {code}")]
    Service {
        /// The S3 operation.
        operation: &'static str,
        /// The S3 error code, or the HTTP status or failure when there is no code.
        code: String,
        /// The SDK's error.
        #[source]
        source: Source,
    },
}

impl S3Error {
    /// The kind of failure the engine sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            S3Error::NotFound { .. } => ErrorKind::NotFound,
            S3Error::Unavailable { .. } | S3Error::Unreachable { .. } => ErrorKind::Unavailable,
            S3Error::Refused { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Backend,
        }
    }

    /// Classify an SDK error from `operation`.
    pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let classified = Self::classify(operation, err);
        // "Not found" is an answer (an aborted upload, a missing object), not a failing S3.
        if !matches!(classified, S3Error::NotFound { .. }) {
            tusk_metrics::metrics()
                .s3_errors
                .with_label_values(&[operation])
                .inc();
        }
        classified
    }

    fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let code_or_status = || match (&code, status) {
            (Some(code), _) => code.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => chain(&err),
        };
        let unavailable = match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => true,
            SdkError::ServiceError(_) => {
                matches!(code.as_deref(), Some("SlowDown" | "ServiceUnavailable"))
                    || matches!(status, Some(502..=504))
            }
            _ => false,
        };
        if unavailable {
            return S3Error::Unavailable {
                operation,
                source: cause(&err),
            };
        }
        let hint = match code.as_deref() {
            Some("EntityTooSmall") => Some(" (every part but the last must be at least 5 MiB)"),
            Some("InvalidPart") => Some(" (a part is missing or its ETag does not match)"),
            Some("InvalidPartOrder") => Some(" (parts must be listed in ascending order)"),
            _ => None,
        };
        if let Some(hint) = hint {
            return S3Error::Refused {
                operation,
                code: code_or_status(),
                hint,
                source: cause(&err),
            };
        }
        // A missing bucket also answers 404, but it is a broken deployment, not a missing upload.
        let not_found = match code.as_deref() {
            Some("NoSuchUpload" | "NoSuchKey" | "NotFound") => true,
            Some("NoSuchBucket") => false,
            _ => status == Some(404),
        };
        let code = code_or_status();
        if not_found {
            S3Error::NotFound {
                operation,
                code,
                source: cause(&err),
            }
        } else {
            S3Error::Service {
                operation,
                code,
                source: cause(&err),
            }
        }
    }
}

impl From<S3Error> for tusk_core::Error {
    fn from(err: S3Error) -> Self {
        let kind = err.kind();
        let message = if kind == ErrorKind::Unavailable {
            UNAVAILABLE.to_owned()
        } else {
            err.to_string()
        };
        tusk_core::Error::new(kind, message).with_source(err)
    }
}
