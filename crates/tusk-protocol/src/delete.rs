use tusk_core::UploadId;

use crate::hooks::HookType;
use crate::message::TusResponse;
use crate::{Engine, TusError};

impl Engine {
    /// DELETE (termination): remove the upload; later requests get 404. A pre-terminate hook
    /// may refuse it; post-terminate is sent afterwards.
    pub(crate) async fn delete(&self, id: &UploadId) -> Result<TusResponse, TusError> {
        let guard = self.lock(id).await?;
        let hooks = self.hooks().filter(|hooks| {
            hooks.enabled(HookType::PreTerminate) || hooks.enabled(HookType::PostTerminate)
        });
        let upload = match hooks {
            Some(_) => {
                let info = self.store().info_locked(id, guard.fence()).await?;
                Some(self.hook_upload(&info))
            }
            None => None,
        };
        if let (Some(hooks), Some(upload)) = (hooks, &upload) {
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
        }
        self.store().terminate(id, guard.fence()).await?;
        tusk_metrics::metrics().uploads_terminated.inc();
        if let (Some(hooks), Some(upload)) = (hooks, upload) {
            hooks.forget(id);
            hooks.notify(HookType::PostTerminate, upload);
        }
        Ok(TusResponse::status(204))
    }
}
