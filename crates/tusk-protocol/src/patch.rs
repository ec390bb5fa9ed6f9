use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tusk_core::{Error, ErrorKind, UploadId, UploadInfo};

use crate::hooks::{HookType, StopRequest};

use crate::body::BodyEnd;
use crate::checksum::Checksum;
use crate::headers::{is_offset_octet_stream, optional_u64};
use crate::message::{TusRequest, TusResponse};
use crate::{BodyStream, Engine, TusError};

impl Engine {
    /// PATCH: append the body at `Upload-Offset`. Everything acknowledged in the response's
    /// `Upload-Offset` is durable.
    pub(crate) async fn patch(
        &self,
        id: &UploadId,
        mut req: TusRequest,
    ) -> Result<TusResponse, TusError> {
        if !is_offset_octet_stream(&req.headers) {
            return Err(TusError::UnsupportedMediaType {
                expected: crate::OFFSET_OCTET_STREAM,
            });
        }
        let offset = optional_u64(&req.headers, "Upload-Offset")?.ok_or(TusError::MissingOffset)?;
        let declared_length = optional_u64(&req.headers, "Upload-Length")?;
        let content_length = optional_u64(&req.headers, "Content-Length")?;
        let checksum = checksum_header(&req)?;
        tracing::Span::current().record("offset", offset);

        let (guard, mut info) = self.lock_for_append(id, offset).await?;
        if let Some(length) = declared_length {
            info = self
                .declare_length_for_body(info, length, content_length, guard.fence())
                .await?;
        }
        let was_complete = info.is_complete();
        let info = self
            .receive(info, req.body.take(), content_length, checksum, &guard)
            .await?;
        // The bytes are stored whatever pre-finish says; a failure is reported after the
        // upload's expiry and its final uploads are brought up to date.
        let finish_hooks = if !was_complete && info.is_complete() {
            self.finished(&info).await
        } else {
            Ok(Default::default())
        };
        let info = self.refresh_expiry(info, guard.fence()).await;
        tracing::Span::current().record("new_offset", info.offset);
        // The partial's lock is released before any final upload's is taken.
        drop(guard);
        self.complete_finals_of(&info).await;
        let changes = finish_hooks?;
        let resp = TusResponse::status(204).header("Upload-Offset", info.offset.to_string());
        Ok(changes.apply(crate::expiry::with_expires(resp, &info)))
    }

    /// Lock upload `id` for an append at `offset`: it exists, has not expired, is not a final
    /// upload (made only from its partials) and is at that offset. Its expiry is refreshed
    /// before the body: an upload being written is not expiring (the reaper would otherwise ask
    /// a long PATCH of a nearly expired upload to stop); usually within the slack of the last
    /// PATCH's refresh, so nothing is written.
    pub(crate) async fn lock_for_append(
        &self,
        id: &UploadId,
        offset: u64,
    ) -> Result<(tusk_core::LockGuard, UploadInfo), TusError> {
        let guard = self.lock_existing(id).await?;
        let info = self.store().info_locked(id, guard.fence()).await?;
        let info = self.unexpired(info, guard.fence()).await?;
        if matches!(info.concat, Some(tusk_core::Concat::Final(_))) {
            return Err(TusError::FinalUpload);
        }
        if info.offset != offset {
            return Err(TusError::OffsetMismatch {
                client: offset,
                server: info.offset,
            });
        }
        let info = self.refresh_expiry(info, guard.fence()).await;
        Ok((guard, info))
    }

    /// [`Engine::declare_length`] for a request whose body of `content_length` must fit: a body
    /// that cannot is refused before the length is fixed, so a refused request changes nothing.
    pub(crate) async fn declare_length_for_body(
        &self,
        info: UploadInfo,
        length: u64,
        content_length: Option<u64>,
        fence: u64,
    ) -> Result<UploadInfo, TusError> {
        if content_length.is_some_and(|len| len > length.saturating_sub(info.offset)) {
            return Err(TusError::BodyTooLarge);
        }
        self.declare_length(info, length, fence).await
    }

    /// creation-defer-length: set the length once; repeating the same value is harmless.
    pub(crate) async fn declare_length(
        &self,
        info: UploadInfo,
        length: u64,
        fence: u64,
    ) -> Result<UploadInfo, TusError> {
        match info.length {
            Some(current) if current == length => Ok(info),
            Some(current) => Err(TusError::LengthChange(current)),
            None if length < info.offset => Err(TusError::LengthBelowOffset {
                length,
                offset: info.offset,
            }),
            None if length > self.config().max_size => Err(TusError::MaxSizeExceeded {
                length,
                max: self.config().max_size,
            }),
            None => match self.length_declaration() {
                Some(declaration) => Ok(declaration.declare_length(&info, length, fence).await?),
                // Only an upload created with Upload-Defer-Length has no length, and only a
                // store that declares lengths takes those.
                None => Err(TusError::DeferUnsupported),
            },
        }
    }

    /// Stream `body` into the store after `info.offset`, stopping at the upload's length (or the
    /// maximum size while the length is deferred). A body that would pass it commits nothing.
    /// Sends post-receive; the caller sends the finish hooks if the upload is now complete.
    pub(crate) async fn receive(
        &self,
        info: UploadInfo,
        body: Option<BodyStream>,
        content_length: Option<u64>,
        checksum: Option<Checksum>,
        guard: &tusk_core::LockGuard,
    ) -> Result<UploadInfo, TusError> {
        self.receive_to_end(info, body, content_length, checksum, guard)
            .await
            .map(|(info, _)| info)
    }

    /// [`Engine::receive`], also telling how the body ended (`None`: there was no body).
    pub(crate) async fn receive_to_end(
        &self,
        info: UploadInfo,
        body: Option<BodyStream>,
        content_length: Option<u64>,
        checksum: Option<Checksum>,
        guard: &tusk_core::LockGuard,
    ) -> Result<(UploadInfo, Option<BodyEnd>), TusError> {
        let limit = info.length.unwrap_or(self.config().max_size);
        let room = limit.saturating_sub(info.offset);
        if content_length.is_some_and(|len| len > room) {
            return Err(TusError::BodyTooLarge);
        }
        let Some(stream) = body else {
            return Ok((info, None));
        };
        let metrics = tusk_metrics::metrics();
        metrics.patches_in_flight.inc();
        // Decremented however this returns.
        let _in_flight = scopeguard(|| metrics.patches_in_flight.dec());
        let stop = StopRequest::default();
        let mut body = self
            .patch_body(stream, room, guard, stop.token.clone())
            .with_checksum(checksum);
        let progress = body.progress();
        let write = self.store().write(&info, &mut body, guard.fence());
        let written = self
            .reporting_progress(&info, &progress, &stop, write)
            .await;
        let end = body.end();
        tracing::debug!(
            upload_id = %info.id,
            offset = info.offset,
            received = body.received(),
            end = ?end,
            "body read"
        );
        match end {
            Some(BodyEnd::ReleaseRequested) => metrics.lock_releases_honoured.inc(),
            Some(BodyEnd::ChecksumMismatch) => metrics.checksum_mismatches.inc(),
            Some(BodyEnd::StoppedByHook) => {
                return Err(self.stop_upload(&info, &stop, guard).await);
            }
            _ => {}
        }
        // Once per request, whether the body or the store noticed first.
        if matches!(end, Some(BodyEnd::LockLost))
            || written
                .as_ref()
                .is_err_and(|err| err.kind() == ErrorKind::LockLost)
        {
            metrics.locks_lost.inc();
        }
        let written = written?;
        match end {
            Some(BodyEnd::TooLarge) => return Err(TusError::BodyTooLarge),
            Some(BodyEnd::ChecksumMismatch) => return Err(TusError::ChecksumMismatch),
            Some(BodyEnd::LockLost) => {
                return Err(TusError::Store(Error::new(
                    ErrorKind::LockLost,
                    "the upload's lock was lost; nothing of this request was stored",
                )));
            }
            _ => {}
        }
        // A body that completed the upload is reported by the caller, through `finished`.
        if !written.is_complete()
            && written.offset > info.offset
            && let Some(hooks) = self.hooks()
            && hooks.receive_due(&written.id)
        {
            hooks.notify(HookType::PostReceive, self.hook_upload(&written));
        }
        Ok((written, end))
    }

    /// Await `write`, sending post-receive (bytes received so far) every interval while it
    /// runs. An answer with StopUpload fires `stop`, which ends the body.
    async fn reporting_progress<T>(
        &self,
        info: &UploadInfo,
        progress: &Arc<AtomicU64>,
        stop: &StopRequest,
        write: impl std::future::Future<Output = T>,
    ) -> T {
        let Some(hooks) = self
            .hooks()
            .filter(|hooks| hooks.enabled(HookType::PostReceive))
        else {
            return write.await;
        };
        let interval = hooks.config().post_receive_interval;
        tokio::pin!(write);
        loop {
            tokio::select! {
                out = &mut write => return out,
                _ = tokio::time::sleep(interval) => {
                    if hooks.receive_due(&info.id) {
                        let mut upload = self.hook_upload(info);
                        upload.offset = info.offset + progress.load(Ordering::Relaxed);
                        hooks.notify_receive(upload, stop.clone());
                    }
                }
            }
        }
    }

    /// A post-receive hook stopped the upload: remove it (as tusd does) and answer with the
    /// hook's response.
    async fn stop_upload(
        &self,
        info: &UploadInfo,
        stop: &StopRequest,
        guard: &tusk_core::LockGuard,
    ) -> TusError {
        tracing::info!(upload_id = %info.id, "upload stopped by the post-receive hook");
        if let Some(termination) = self.termination() {
            if let Err(err) = self
                .remove_upload(termination, &info.id, guard.fence())
                .await
            {
                return err;
            }
            tusk_metrics::metrics().uploads_terminated.inc();
        } else if let Some(hooks) = self.hooks() {
            hooks.forget(&info.id);
        }
        TusError::HookRejected {
            hook: HookType::PostReceive,
            response: stop.response(),
        }
    }
}

/// The request's `Upload-Checksum`, if any.
pub(crate) fn checksum_header(req: &TusRequest) -> Result<Option<Checksum>, TusError> {
    req.headers
        .get("Upload-Checksum")
        .map(Checksum::parse)
        .transpose()
}

/// Runs `f` when dropped.
pub(crate) fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
