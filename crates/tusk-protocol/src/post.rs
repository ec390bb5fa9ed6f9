use tusk_core::{Concat, Metadata, NewUpload, Placement, UploadId};

use crate::headers::{is_offset_octet_stream, optional_u64};
use crate::hooks::{HookHttpResponse, HookType, HookUpload};
use crate::message::{TusRequest, TusResponse};
use crate::{Engine, TusError};

impl Engine {
    /// POST (creation, creation-with-upload, creation-defer-length): create an upload and
    /// answer 201 with its `Location`; a tus body is the first chunk.
    pub(crate) async fn post(&self, mut req: TusRequest) -> Result<TusResponse, TusError> {
        let headers = &req.headers;
        let max = self.config().max_size;
        let concat = headers
            .get("Upload-Concat")
            .map(crate::concat::parse_concat)
            .transpose()?;
        if concat.is_some() && self.concatenation().is_none() {
            return Err(TusError::InvalidConcat(
                "this server does not support concatenation".into(),
            ));
        }
        let is_final = matches!(concat, Some(Concat::Final(_)));
        let length = match (
            optional_u64(headers, "Upload-Length")?,
            headers.get("Upload-Defer-Length"),
        ) {
            // A final upload's length is the sum of its partials', computed below.
            (None, None) if is_final => None,
            _ if is_final => {
                return Err(TusError::InvalidConcat(
                    "a final upload's length is the sum of its partial uploads: send no Upload-Length".into(),
                ));
            }
            (Some(_), Some(_)) => return Err(TusError::LengthAndDefer),
            (None, None) => return Err(TusError::LengthRequired),
            (None, Some(defer)) => {
                if defer.trim() != "1" {
                    return Err(TusError::InvalidHeader {
                        header: "Upload-Defer-Length",
                        reason: "must be 1".into(),
                    });
                }
                if self.length_declaration().is_none() {
                    return Err(TusError::DeferUnsupported);
                }
                None
            }
            (Some(length), None) if length > max => {
                return Err(TusError::MaxSizeExceeded { length, max });
            }
            (Some(length), None) => Some(length),
        };
        let metadata = self.upload_metadata(headers)?.unwrap_or_default();
        let with_body = is_offset_octet_stream(headers);
        if with_body && is_final {
            return Err(TusError::FinalUpload);
        }
        let length = match &concat {
            Some(Concat::Final(ids)) => {
                let sum = self.final_length(ids).await?;
                if sum > max {
                    return Err(TusError::MaxSizeExceeded { length: sum, max });
                }
                Some(sum)
            }
            _ => length,
        };
        let content_length = optional_u64(headers, "Content-Length")?;
        let checksum = crate::patch::checksum_header(&req)?;
        if with_body && content_length.is_some_and(|len| len > length.unwrap_or(max)) {
            return Err(TusError::BodyTooLarge);
        }

        // What the hooks of this request ask to change in its response, later ones winning.
        let PreCreated {
            id,
            metadata,
            placement,
            mut changes,
        } = self
            .pre_create(UploadId::generate(), metadata, length, concat.as_ref())
            .await?;
        if let Some(Concat::Final(ids)) = &concat {
            // Linked before the final exists, so a failure here leaves no upload behind for the
            // client to lose; a link to an upload never created is ignored. Whoever completes
            // the last partial completes the final (concatenation-unfinished).
            if let Some(concatenation) = self.concatenation() {
                for partial in ids {
                    concatenation.link_final(partial, &id).await?;
                }
            }
        }
        // The body's upload is locked before it exists: a HEAD that finds it (the client lost
        // this request and resumes) then waits for the body's commit instead of reporting an
        // offset of 0 that the commit is about to overtake.
        let body_guard = if with_body && length != Some(0) {
            Some(self.lock(&id).await?)
        } else {
            None
        };
        let info = self
            .create_upload(id.clone(), length, metadata, concat.clone(), placement)
            .await?;
        if info.is_complete() {
            // Empty: stored complete at creation (an empty final upload too).
            changes.merge(self.finished_logged(&info).await);
        }
        let mut resp =
            TusResponse::status(201).header("Location", format!("{}{id}", req.location_base));
        let mut info = info;
        if is_final {
            // If the partials are all complete already, assemble now. The upload exists, so a
            // failure is not the client's to retry (a retry would create a second upload):
            // the next HEAD or GET assembles it.
            let assembled = match self.lock(&id).await {
                Ok(guard) => self.assemble_if_ready(info.clone(), guard.fence()).await,
                Err(err) => Err(err),
            };
            match assembled {
                Ok(assembled) => info = assembled,
                Err(err) => {
                    tracing::warn!(upload_id = %id, error = %err, "final upload not assembled yet");
                }
            }
        }
        if let Some(guard) = body_guard {
            let was_complete = info.is_complete();
            info = match self
                .receive(info, req.body.take(), content_length, checksum, &guard)
                .await
            {
                Ok(info) => {
                    if !was_complete && info.is_complete() {
                        changes.merge(self.finished_logged(&info).await);
                    }
                    self.refresh_expiry(info, guard.fence()).await
                }
                Err(TusError::BodyTooLarge) => return Err(TusError::BodyTooLarge),
                // A post-receive hook stopped the upload and it was removed.
                Err(err @ TusError::HookRejected { .. }) => return Err(err),
                // The upload exists: tell the client where, and how much of the body is stored,
                // so it can resume instead of starting over.
                Err(err) => {
                    tracing::warn!(upload_id = %id, error = %err, "first chunk not stored");
                    self.store().info(&id).await?
                }
            };
            tracing::Span::current().record("new_offset", info.offset);
            resp = resp.header("Upload-Offset", info.offset.to_string());
        }
        Ok(changes.apply(crate::expiry::with_expires(resp, &info)))
    }

    /// The request's `Upload-Metadata`, parsed, within the configured size.
    pub(crate) fn upload_metadata(
        &self,
        headers: &crate::message::Headers,
    ) -> Result<Option<Metadata>, TusError> {
        let Some(raw) = headers.get("Upload-Metadata") else {
            return Ok(None);
        };
        let max = self.config().max_metadata_bytes;
        if raw.len() > max {
            return Err(TusError::MetadataTooLarge {
                size: raw.len(),
                max,
            });
        }
        Ok(Some(Metadata::parse(raw)?))
    }

    /// Store a new upload (its expiry from now, or its retention if it is complete at once),
    /// count it and tell the post-create hook.
    pub(crate) async fn create_upload(
        &self,
        id: UploadId,
        length: Option<u64>,
        metadata: Metadata,
        concat: Option<Concat>,
        placement: Placement,
    ) -> Result<tusk_core::UploadInfo, TusError> {
        let created_at = self.now_secs();
        let info = self
            .store()
            .create(NewUpload {
                id: id.clone(),
                length,
                metadata,
                expires_at: if length == Some(0) {
                    self.finished_expiry()
                } else {
                    self.unfinished_expiry(Some(created_at))
                },
                created_at: Some(created_at),
                concat,
                placement,
            })
            .await?;
        tracing::info!(upload_id = %id, length = ?length, "upload created");
        // The client's first PATCH follows at once: this node knows the upload exists.
        self.known_to_exist(&id);
        tracing::Span::current().record("upload_id", tracing::field::display(&id));
        tusk_metrics::metrics().uploads_created.inc();
        if let Some(hooks) = self.hooks() {
            hooks.notify(HookType::PostCreate, self.hook_upload(&info));
        }
        Ok(info)
    }

    /// An upload id a pre-create hook chose: valid, not reserved ("_" starts tusk's own lock
    /// names) and not taken.
    async fn hook_chosen_id(&self, chosen: &str) -> Result<UploadId, TusError> {
        let refuse = |why: String| TusError::HookFailed {
            hook: HookType::PreCreate,
            reason: format!("it chose the upload ID {chosen:?}, which {why}"),
        };
        let id = UploadId::parse(chosen).map_err(|e| refuse(format!("is invalid ({e})")))?;
        if crate::engine::is_reserved(chosen) {
            return Err(refuse(
                "is reserved (IDs starting with _ are tusk's)".into(),
            ));
        }
        match self.store().info(&id).await {
            Ok(_) => Err(refuse("belongs to an existing upload".into())),
            Err(err) if err.kind() == tusk_core::ErrorKind::NotFound => Ok(id),
            Err(err) if err.kind() == tusk_core::ErrorKind::Gone => {
                Err(refuse("belongs to an expired upload".into()))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The pre-create hook: it may refuse the upload, or change its id, its metadata or where
    /// its object is stored (`ChangeFileInfo.Storage`, if the store places objects).
    pub(crate) async fn pre_create(
        &self,
        id: UploadId,
        metadata: Metadata,
        length: Option<u64>,
        concat: Option<&Concat>,
    ) -> Result<PreCreated, TusError> {
        let unchanged = |id, metadata| PreCreated {
            id,
            metadata,
            placement: Placement::default(),
            changes: HookHttpResponse::default(),
        };
        let Some(hooks) = self.hooks() else {
            return Ok(unchanged(id, metadata));
        };
        let hook = HookType::PreCreate;
        let upload = HookUpload::new(length, &metadata, concat);
        let answer = match hooks.call(hook, upload).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Ok(unchanged(id, metadata)),
            Err(err) => {
                return Err(TusError::HookFailed {
                    hook,
                    reason: err.to_string(),
                });
            }
        };
        if answer.reject_upload {
            return Err(TusError::HookRejected {
                hook,
                response: answer.http_response,
            });
        }
        let changes = answer.change_file_info;
        let failed = |reason: String| TusError::HookFailed { hook, reason };
        // Checked before anything is created: a placement the store cannot honour fails the
        // request instead of storing the bytes somewhere the hook did not ask for.
        let placement = match &changes.storage {
            None => Placement::default(),
            Some(storage) => Placement::from_hook(storage).map_err(&failed)?,
        };
        self.store()
            .check_placement(&placement)
            .map_err(|why| failed(format!("it chose a placement the store refuses: {why}")))?;
        let id = if changes.id.is_empty() {
            id
        } else {
            self.hook_chosen_id(&changes.id).await?
        };
        let metadata = match &changes.metadata {
            None => metadata,
            Some(pairs) => {
                Metadata::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(|e| failed(format!("it chose invalid metadata: {e}")))?
            }
        };
        Ok(PreCreated {
            id,
            metadata,
            placement,
            changes: answer.http_response,
        })
    }
}

/// A new upload as its pre-create hook left it.
pub(crate) struct PreCreated {
    /// Its id (the generated one, or the hook's).
    pub id: UploadId,
    /// Its metadata (the client's, or the hook's).
    pub metadata: Metadata,
    /// Where its object goes (the hook's `ChangeFileInfo.Storage`).
    pub placement: Placement,
    /// What the hook asked to change in the response.
    pub changes: HookHttpResponse,
}
