use tusk_core::{UploadId, UploadInfo};

use crate::message::TusResponse;
use crate::{Engine, TusError};

impl Engine {
    /// HEAD: the upload's offset, length and metadata. Holds the lock, so an in-flight PATCH is
    /// asked to commit first and the offset is current.
    pub(crate) async fn head(&self, id: &UploadId, base: &str) -> Result<TusResponse, TusError> {
        let info = self.current(id).await?;
        let mut resp =
            describe(TusResponse::status(200), &info).header("Cache-Control", "no-store");
        if let Some(concat) = &info.concat {
            resp = resp.header("Upload-Concat", crate::concat::concat_header(concat, base));
        }
        Ok(crate::expiry::with_expires(resp, &info))
    }
}

impl Engine {
    /// The state of upload `id` for an offset retrieval (tus HEAD, the draft's HEAD): read
    /// under its lock, so an in-flight PATCH is asked to commit first and the offset is
    /// current; 410 if it expired; a final upload whose partials are complete is assembled.
    /// The lock is given back before the answer.
    pub(crate) async fn current(&self, id: &UploadId) -> Result<UploadInfo, TusError> {
        let guard = self.lock_existing(id).await?;
        let info = self.store().info_locked(id, guard.fence()).await?;
        let info = self.unexpired(info, guard.fence()).await?;
        self.assemble_if_ready(info, guard.fence()).await
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
