use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Metadata, Placement, UploadId};

/// What a client asked for when creating an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The id chosen by the engine.
    pub id: UploadId,
    /// Total length, or `None` when deferred (creation-defer-length).
    pub length: Option<u64>,
    /// Client metadata.
    pub metadata: Metadata,
    /// When the upload expires (Unix seconds), if it does (expiration extension).
    pub expires_at: Option<u64>,
    /// When the upload was created (Unix seconds): its age bounds how long it may stay
    /// unfinished.
    pub created_at: Option<u64>,
    /// Its part in a concatenation, if any.
    pub concat: Option<Concat>,
    /// Where its object goes, as its pre-create hook chose (default: the store's settings).
    pub placement: Placement,
}

/// What part an upload plays in concatenation (`Upload-Concat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concat {
    /// A partial upload, to be concatenated into final uploads.
    Partial,
    /// A final upload: the concatenation of these partial uploads, in order. It takes no
    /// PATCH; it is complete once they all are and have been assembled.
    Final(Vec<UploadId>),
}

/// The state of an upload as a store reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    /// The upload's id.
    pub id: UploadId,
    /// Bytes durably stored and acknowledged.
    pub offset: u64,
    /// Total length, or `None` while deferred.
    pub length: Option<u64>,
    /// Client metadata, echoed by HEAD.
    pub metadata: Metadata,
    /// When the upload expires (Unix seconds), if it does: unfinished uploads some time after
    /// their last PATCH, finished ones after the configured retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When the upload was created (Unix seconds); `None` for uploads recorded before tusk
    /// kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// Its part in a concatenation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<Concat>,
    /// Where its object is stored, if its pre-create hook chose.
    #[serde(default, skip_serializing_if = "Placement::is_default")]
    pub placement: Placement,
    /// What the store read to report this, kept for the store itself: the engine hands an
    /// upload read under its lock back to the store's write, so a PATCH reads its state once.
    #[serde(skip)]
    pub loaded: Loaded,
}

/// A store's own view of an upload, carried along with the [`UploadInfo`] it reported. Opaque
/// to everyone but the store that put it there; never serialised, never compared.
#[derive(Clone, Default)]
pub struct Loaded(Option<Arc<dyn Any + Send + Sync>>);

impl Loaded {
    /// Keep `state` with the info a store reports.
    pub fn new<T: Any + Send + Sync>(state: T) -> Self {
        Self(Some(Arc::new(state)))
    }

    /// The state a store kept, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref()?.downcast_ref()
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Loaded(..)"
        } else {
            "Loaded(none)"
        })
    }
}

/// Not part of an upload's identity: two infos that say the same are equal whatever their
/// stores kept.
impl PartialEq for Loaded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Loaded {}

impl UploadInfo {
    /// Whether every byte of a known length has arrived.
    pub fn is_complete(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Whether the upload has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

impl Serialize for UploadId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UploadId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UploadId::parse(&s).map_err(serde::de::Error::custom)
    }
}
