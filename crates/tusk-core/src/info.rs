use serde::{Deserialize, Serialize};

use crate::{Metadata, UploadId};

/// What a client asked for when creating an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The id chosen by the engine.
    pub id: UploadId,
    /// Total length, or `None` when deferred (creation-defer-length).
    pub length: Option<u64>,
    /// Client metadata.
    pub metadata: Metadata,
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
}

impl UploadInfo {
    /// Whether every byte of a known length has arrived.
    pub fn is_complete(&self) -> bool {
        self.length == Some(self.offset)
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
