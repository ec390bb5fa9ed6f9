use std::ffi::OsString;
use std::fmt;

use crate::S3Error;

/// Where and how to reach the bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// The bucket holding uploads; it must exist.
    pub bucket: String,
    /// A custom endpoint (MinIO, garage, R2, moto), e.g. `http://127.0.0.1:9000`; `None` for AWS.
    pub endpoint: Option<String>,
    /// The region; `None` to use the standard AWS lookup, falling back to `us-east-1`.
    pub region: Option<String>,
    /// Prepended to every key (`<prefix><id>`), e.g. `uploads/`.
    pub prefix: String,
    /// Where tusk's own records (`<id>.info`) go instead of `prefix`, e.g. `tusk-meta/`, so
    /// the data prefix holds only uploads' objects; `None`: beside the data.
    pub meta_prefix: Option<String>,
    /// Address buckets as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>`; most S3 clones
    /// need it.
    pub force_path_style: bool,
    /// Explicit credentials. `None` uses `AWS_ACCESS_KEY_ID_FILE` / `AWS_SECRET_ACCESS_KEY_FILE`
    /// / `AWS_SESSION_TOKEN_FILE` when any is set, else the standard AWS credential chain.
    pub credentials: Option<StaticCredentials>,
    /// When the client adds checksums to what it sends and checks those it receives.
    pub checksum: ChecksumMode,
    /// Whether part and object bodies are SHA-256 signed (`s3_payload_signing`).
    pub payload_signing: PayloadSigning,
    /// The storage class of uploads' objects (`s3_storage_class`, e.g. `STANDARD_IA`);
    /// `None`: the bucket's default.
    pub storage_class: Option<String>,
    /// Server-side encryption of uploads' objects (`s3_sse`: `AES256`, `aws:kms` or
    /// `aws:kms:dsse`); `None`: the bucket's default.
    pub sse: Option<String>,
    /// The KMS key for `aws:kms` encryption (`s3_sse_kms_key_id`); `None`: the account's
    /// default key.
    pub sse_kms_key_id: Option<String>,
}

/// When the S3 client adds a checksum to each request and checks the checksum of each response
/// (`s3_checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// Whenever the operation supports one: the AWS SDKs' default since 2025, a CRC32 with
    /// every part. For AWS S3 and the stores that follow it.
    #[default]
    WhenSupported,
    /// Only when the operation requires one: for S3-compatible stores that reject or
    /// mishandle the SDK's default checksums (Cloudflare R2, Backblaze B2, Wasabi, older
    /// MinIO, garage with streamed bodies).
    WhenRequired,
}

impl ChecksumMode {
    /// The setting's value (`when-supported`, `when-required`).
    pub fn parse(value: &str) -> Result<Self, S3Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "when-supported" | "when_supported" => Ok(Self::WhenSupported),
            "when-required" | "when_required" => Ok(Self::WhenRequired),
            other => Err(S3Error::Setting {
                key: "s3_checksum",
                message: format!("{other:?} must be when-supported or when-required"),
            }),
        }
    }

    /// How the setting is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhenSupported => "when-supported",
            Self::WhenRequired => "when-required",
        }
    }
}

/// Whether the bodies of UploadPart and PutObject are signed with their SHA-256
/// (`x-amz-content-sha256`) or sent as `UNSIGNED-PAYLOAD` (`s3_payload_signing`). Hashing
/// every byte costs the node a quarter of its CPU on the S3 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadSigning {
    /// Unsigned over HTTPS, where TLS already protects the bytes (and the CRC32 of
    /// `when-supported` checks them end to end); signed over plain HTTP. The AWS SDK for
    /// Java's policy.
    #[default]
    Auto,
    /// Always signed.
    Always,
    /// Never signed, also over plain HTTP: for a store on a network the operator trusts.
    Never,
}

impl PayloadSigning {
    /// The setting's value (`auto`, `always`, `never`).
    pub fn parse(value: &str) -> Result<Self, S3Error> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(S3Error::Setting {
                key: "s3_payload_signing",
                message: format!("{other:?} must be auto, always or never"),
            }),
        }
    }

    /// How the setting is written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    /// Whether bodies sent to `endpoint` (`None`: AWS, over HTTPS) are signed.
    pub fn signs(self, endpoint: Option<&str>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => endpoint.is_some_and(|e| !e.to_ascii_lowercase().starts_with("https://")),
        }
    }
}

impl S3Config {
    /// Refuse settings that cannot work; each error names the setting's TOML key.
    pub fn validate(&self) -> Result<(), S3Error> {
        if self.bucket.is_empty() {
            return Err(S3Error::Setting {
                key: "s3_bucket",
                message: "must not be empty".to_owned(),
            });
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(S3Error::Setting {
                key: "s3_endpoint",
                message: format!("{endpoint:?} must be an http:// or https:// URL"),
            });
        }
        check_storage_settings(
            self.storage_class.as_deref(),
            self.sse.as_deref(),
            self.sse_kms_key_id.is_some(),
        )
        .map_err(|(key, message)| S3Error::Setting { key, message })?;
        Ok(())
    }
}

/// Storage class and encryption S3 knows, and a KMS key only with KMS encryption: for the
/// bucket's settings and for an upload's own (a pre-create hook's). The error names the
/// setting by its TOML key.
pub(crate) fn check_storage_settings(
    storage_class: Option<&str>,
    sse: Option<&str>,
    has_kms_key: bool,
) -> Result<(), (&'static str, String)> {
    use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
    if let Some(class) = storage_class
        && !StorageClass::values().contains(&class)
    {
        return Err((
            "s3_storage_class",
            format!(
                "{class:?} is not an S3 storage class; use one of {}",
                StorageClass::values().join(", ")
            ),
        ));
    }
    if let Some(sse) = sse
        && !ServerSideEncryption::values().contains(&sse)
    {
        return Err((
            "s3_sse",
            format!(
                "{sse:?} is not an S3 server-side encryption; use one of {}",
                ServerSideEncryption::values().join(", ")
            ),
        ));
    }
    if has_kms_key && !sse.is_some_and(|s| s.starts_with("aws:kms")) {
        return Err((
            "s3_sse_kms_key_id",
            "needs s3_sse = \"aws:kms\" (or \"aws:kms:dsse\")".to_owned(),
        ));
    }
    Ok(())
}

/// A fixed access key. Its `Debug` output shows nothing of the key.
#[derive(Clone)]
pub struct StaticCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// One credential: its plain variable and its `*_FILE` variant.
struct Variable {
    name: &'static str,
    file: &'static str,
}

const ACCESS_KEY_ID: Variable = Variable {
    name: "AWS_ACCESS_KEY_ID",
    file: "AWS_ACCESS_KEY_ID_FILE",
};
const SECRET_ACCESS_KEY: Variable = Variable {
    name: "AWS_SECRET_ACCESS_KEY",
    file: "AWS_SECRET_ACCESS_KEY_FILE",
};
const SESSION_TOKEN: Variable = Variable {
    name: "AWS_SESSION_TOKEN",
    file: "AWS_SESSION_TOKEN_FILE",
};

impl StaticCredentials {
    /// An access key, with a session token for temporary credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    /// The access key id (not secret in AWS's model; the secret key is never exposed).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Credentials from the `*_FILE` variables of the process environment; see
    /// [`StaticCredentials::from_file_variables`].
    pub fn from_env_files() -> Result<Option<Self>, S3Error> {
        Self::from_file_variables(|name| std::env::var_os(name))
    }

    /// Credentials from files named by `AWS_ACCESS_KEY_ID_FILE`, `AWS_SECRET_ACCESS_KEY_FILE`
    /// and `AWS_SESSION_TOKEN_FILE` (mounted secrets), as looked up by `lookup`.
    ///
    /// `None` if none of the three is set (use the standard chain). When any is set, each
    /// credential comes from its file, else from its plain variable (`AWS_ACCESS_KEY_ID`, ...);
    /// the key id and secret are both required. A trailing newline is trimmed. Errors name the
    /// variable, never the content.
    pub fn from_file_variables(
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Self>, S3Error> {
        let any_file = [&ACCESS_KEY_ID, &SECRET_ACCESS_KEY, &SESSION_TOKEN]
            .iter()
            .any(|v| lookup(v.file).is_some());
        if !any_file {
            return Ok(None);
        }
        let required = |v: &Variable| {
            read_variable(&lookup, v)?.ok_or_else(|| {
                S3Error::Config(format!(
                    "a *_FILE credential variable is set but neither {} nor {} is",
                    v.file, v.name
                ))
            })
        };
        Ok(Some(Self {
            access_key_id: required(&ACCESS_KEY_ID)?,
            secret_access_key: required(&SECRET_ACCESS_KEY)?,
            session_token: read_variable(&lookup, &SESSION_TOKEN)?,
        }))
    }

    /// The SDK's form.
    pub(crate) fn to_sdk(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.clone(),
            self.session_token.clone(),
            None,
            "tusk-static",
        )
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &"** redacted **")
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// The value of `v` from its file if `v.file` is set, else from `v.name`.
fn read_variable(
    lookup: &impl Fn(&str) -> Option<OsString>,
    v: &Variable,
) -> Result<Option<String>, S3Error> {
    if let Some(path) = lookup(v.file) {
        let content =
            std::fs::read_to_string(&path).map_err(|source| S3Error::CredentialsFile {
                variable: v.file,
                source,
            })?;
        let value = content.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(S3Error::Config(format!(
                "the file named by {} is empty",
                v.file
            )));
        }
        return Ok(Some(value.to_owned()));
    }
    match lookup(v.name) {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| S3Error::Config(format!("{} is not valid UTF-8", v.name))),
    }
}
