use tusk_core::UploadId;

use crate::hooks::HookType;
use crate::message::TusResponse;
use crate::{Engine, TusError};

impl Engine {
    /// DELETE (termination): remove the upload; later requests get 404. A pre-terminate hook
    /// may refuse it; post-terminate is sent afterwards.
    pub(crate) async fn delete(&self, id: &UploadId) -> Result<TusResponse, TusError> {
        let guard = self.lock_existing(id).await?;
        let hooks = self.hooks();
        // The upload as the terminate hooks see it, read only when one of them is on.
        let upload = match hooks.filter(|hooks| {
            hooks.enabled(HookType::PreTerminate) || hooks.enabled(HookType::PostTerminate)
        }) {
            Some(hooks) => {
                let info = self.store().info_locked(id, guard.fence()).await?;
                let upload = self.hook_upload(&info);
                let hook = HookType::PreTerminate;
                match hooks.call(hook, upload.clone()).await {
                    Err(err) => {
                        return Err(TusError::HookFailed {
                            hook,
                            reason: err.to_string(),
                        });
                    }
                    Ok(Some(answer)) if answer.reject_termination => {
                        return Err(TusError::HookRejected {
                            hook,
                            response: answer.http_response,
                        });
                    }
                    Ok(_) => {}
                }
                Some(upload)
            }
            None => None,
        };
        // Routed here only when the store offers termination.
        let Some(termination) = self.termination() else {
            return Err(TusError::MethodNotAllowed {
                allow: self.upload_methods(),
            });
        };
        self.remove_upload(termination, id, guard.fence()).await?;
        tusk_metrics::metrics().uploads_terminated.inc();
        if let (Some(hooks), Some(upload)) = (hooks, upload) {
            hooks.notify(HookType::PostTerminate, upload);
        }
        Ok(TusResponse::status(204))
    }
}
