use tusk_core::UploadId;

use crate::message::TusResponse;
use crate::{Engine, TusError};

impl Engine {
    /// DELETE (termination): remove the upload; later requests get 404.
    pub(crate) async fn delete(&self, id: &UploadId) -> Result<TusResponse, TusError> {
        let guard = self.lock(id).await?;
        self.store().terminate(id, guard.fence()).await?;
        tusk_metrics::metrics().uploads_terminated.inc();
        Ok(TusResponse::status(204))
    }
}
