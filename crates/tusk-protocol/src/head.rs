use tusk_core::{UploadId, UploadInfo};

use crate::message::TusResponse;
use crate::{Engine, TusError};

impl Engine {
    /// HEAD: the upload's offset, length and metadata. Holds the lock, so an in-flight PATCH is
    /// asked to commit first and the offset is current.
    pub(crate) async fn head(&self, id: &UploadId, base: &str) -> Result<TusResponse, TusError> {
        let guard = self.lock_existing(id).await?;
        let info = self.store().info_locked(id, guard.fence()).await?;
        let info = self.unexpired(info, guard.fence()).await?;
        let info = self.assemble_if_ready(info, guard.fence()).await?;
        let mut resp =
            describe(TusResponse::status(200), &info).header("Cache-Control", "no-store");
        if let Some(concat) = &info.concat {
            resp = resp.header("Upload-Concat", crate::concat::concat_header(concat, base));
        }
        Ok(crate::expiry::with_expires(resp, &info))
    }
}

/// The headers that describe an upload's state.
pub(crate) fn describe(mut resp: TusResponse, info: &UploadInfo) -> TusResponse {
    // A final upload has no offset of its own until it is assembled.
    let unassembled_final =
        matches!(info.concat, Some(tusk_core::Concat::Final(_))) && !info.is_complete();
    if !unassembled_final {
        resp = resp.header("Upload-Offset", info.offset.to_string());
    }
    resp = match info.length {
        Some(length) => resp.header("Upload-Length", length.to_string()),
        None => resp.header("Upload-Defer-Length", "1"),
    };
    if let Some(meta) = info.metadata.to_header() {
        resp = resp.header("Upload-Metadata", meta);
    }
    resp
}
