use async_trait::async_trait;
use bytes::Bytes;

use crate::{ByteStream, Metadata, Placement, Result};

/// The suffix of tusk's own records among object keys (`<id>.info`).
pub const RECORD_SUFFIX: &str = ".info";

/// What an object says about itself to whoever reads it straight from the store (a presigned
/// URL, a CDN): set when it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// Storage class, instead of the store's.
    pub storage_class: Option<String>,
    /// Server-side encryption, instead of the store's.
    pub server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms` encryption, instead of the store's.
    pub sse_kms_key_id: Option<String>,
}

impl ObjectAttributes {
    /// An upload's object: the same `Content-Type` and `Content-Disposition` as tusk's GET
    /// answers with (see [`crate::presentation`]), stored as its pre-create hook chose.
    pub fn of_upload(metadata: &Metadata, placement: &Placement) -> Self {
        let (content_type, disposition) = crate::presentation(metadata);
        Self {
            content_type: Some(content_type),
            content_disposition: Some(disposition),
            storage_class: placement.storage_class.clone(),
            server_side_encryption: placement.server_side_encryption.clone(),
            sse_kms_key_id: placement.sse_kms_key_id.clone(),
        }
    }

    /// A JSON document of tusk's own (`<id>.info`).
    pub fn json() -> Self {
        Self {
            content_type: Some("application/json".to_owned()),
            ..Self::default()
        }
    }
}

/// Object storage with multipart uploads: what the distributed store needs from S3.
///
/// Keys are relative (`<id>`, `<id>.info`); the implementation adds its configured prefix.
/// Keys ending in [`RECORD_SUFFIX`] are tusk's own records, never an upload's data (upload ids
/// have no `.`): an implementation may keep them apart (tusk-s3's `s3_meta_prefix`).
/// Errors use the shared kinds: `NotFound` for an unknown multipart upload or object,
/// `Unavailable` when the service cannot be reached, `Backend` for anything else.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Whether object storage answers (for readiness probes). By default: yes.
    async fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Where `key` lives, for hooks (`Storage`): for S3, `Type`, `Bucket` and `Key`.
    fn location(&self, key: &str) -> Vec<(&'static str, String)> {
        vec![("Key", key.to_owned())]
    }

    /// Whether objects can be created as `placement` says (its storage class and encryption
    /// are ones this store knows). By default: yes.
    fn check_placement(&self, placement: &Placement) -> std::result::Result<(), String> {
        let _ = placement;
        Ok(())
    }

    /// Start a multipart upload for `key`, the object to have `attributes`; returns its
    /// upload id.
    async fn create_multipart(&self, key: &str, attributes: &ObjectAttributes) -> Result<String>;

    /// Upload part `part_number` (1-based) of a multipart upload; returns the part's ETag.
    /// Uploading the same part number again replaces it.
    async fn upload_part(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<String>;

    /// Whether [`Self::upload_part_streamed`] can send a part's bytes while they are still
    /// arriving (for S3: only when bodies are not signed, since a signature needs the whole
    /// body's hash first). By default: no.
    fn streams_parts(&self) -> bool {
        false
    }

    /// Upload part `part_number` of exactly `size` bytes, sending them as `body` yields them
    /// (it may wait a long while between bytes); returns the part's ETag. A body that fails or
    /// ends before `size` bytes stores nothing. Only called when [`Self::streams_parts`] says
    /// yes; by default it refuses.
    async fn upload_part_streamed(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        size: u64,
        body: ByteStream,
    ) -> Result<String> {
        let _ = (key, multipart_id, part_number, size, body);
        Err(crate::Error::new(
            crate::ErrorKind::Backend,
            "this object store cannot stream a part",
        ))
    }

    /// Assemble the object from `etags` (part 1 first). `NotFound` if the multipart upload is
    /// gone, which after a crash may mean it was already completed.
    async fn complete_multipart(
        &self,
        key: &str,
        multipart_id: &str,
        etags: &[String],
    ) -> Result<()>;

    /// Make part `part_number` of a multipart upload from bytes `start..end` of the object
    /// `source`, inside object storage (no bytes through the node); returns the part's ETag.
    async fn upload_part_copy(
        &self,
        key: &str,
        multipart_id: &str,
        part_number: u32,
        source: &str,
        start: u64,
        end: u64,
    ) -> Result<String>;

    /// Abort a multipart upload, freeing its parts. Succeeds if it is already gone.
    async fn abort_multipart(&self, key: &str, multipart_id: &str) -> Result<()>;

    /// Store a whole (small) object with `attributes`.
    async fn put_object(&self, key: &str, body: Bytes, attributes: &ObjectAttributes)
    -> Result<()>;

    /// The size of an object, or `None` if there is none.
    async fn object_size(&self, key: &str) -> Result<Option<u64>>;

    /// Stream bytes `start..end` of an object (`end` at most its size). `NotFound` if there is
    /// no object.
    async fn get_object(&self, key: &str, start: u64, end: u64) -> Result<ByteStream>;

    /// Delete an object. Succeeds if there is none.
    async fn delete_object(&self, key: &str) -> Result<()>;
}
