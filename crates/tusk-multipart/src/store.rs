use std::sync::Arc;

use crate::ahead::PartAhead;
use crate::budget::Reservation;
use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::{
    ByteStream, ChunkSource, Concatenation, Error, ErrorKind, Expiration, LengthDeclaration,
    NewUpload, ObjectAttributes, ObjectStore, Placement, Result, StateStore, Termination, UploadId,
    UploadInfo, UploadState, UploadStore,
};

use crate::{BufferBudget, MultipartConfig, deferred_capacity, largest_part_size, part_size_for};

/// Uploads in object storage (equal parts of a multipart upload) with state and tail in a
/// [`StateStore`]. See the crate docs and docs/architecture.md for the invariants.
#[derive(Clone)]
pub struct MultipartStore {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) config: MultipartConfig,
    pub(crate) budget: BufferBudget,
    /// Slots for parts streamed while small PATCHes fill them (see `ahead`).
    pub(crate) ahead_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for MultipartStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartStore")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Why a configuration cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the node's part buffer budget ({budget} bytes) must hold at least one part of the largest upload ({part} bytes)"
)]
pub struct BudgetTooSmall {
    /// The budget.
    pub budget: u64,
    /// The largest part size.
    pub part: u64,
}

impl MultipartStore {
    /// The state `upload` was reported from, read under the caller's lock with `fence` (see
    /// [`UploadInfo::loaded`]): a PATCH reads its state once. An info without it (from an
    /// unlocked read) is read again, fenced.
    pub(crate) async fn locked_state(
        &self,
        upload: &UploadInfo,
        fence: u64,
    ) -> Result<UploadState> {
        match upload.loaded.get::<UploadState>() {
            Some(state) => {
                let mut state = state.clone();
                // The engine may have moved the expiry since, in a fenced write of its own.
                state.expires_at = upload.expires_at;
                Ok(state)
            }
            None => {
                let state = self.state.load(&upload.id, fence).await?;
                self.settle(state, fence).await
            }
        }
    }

    /// A store over `objects` and `state`, buffering at most `budget` bytes of parts on this
    /// node. Fails if the budget cannot hold one part of the largest allowed upload.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        state: Arc<dyn StateStore>,
        config: MultipartConfig,
        budget: BufferBudget,
    ) -> Result<Self, BudgetTooSmall> {
        // The largest part: an upload's of the maximum size.
        let part = largest_part_size(&config);
        if budget.bytes() < part {
            return Err(BudgetTooSmall {
                budget: budget.bytes(),
                part,
            });
        }
        Ok(Self {
            objects,
            state,
            config,
            budget,
            ahead_slots: crate::ahead::slots(),
        })
    }

    /// The object key of an upload's operator-facing info document.
    fn info_key(id: &UploadId) -> String {
        format!("{id}{}", tusk_core::RECORD_SUFFIX)
    }

    /// Write `<id>.info` (length and metadata, for operators). It is informational, so a failure
    /// is logged and does not fail the upload.
    pub(crate) async fn write_info_object(&self, state: &UploadState) {
        let doc = serde_json::json!({
            "id": state.id.as_str(),
            "length": state.length,
            "metadata": state.metadata,
            "part_size": state.part_size,
            "finished": state.finished,
            // Where the data is when a hook placed it elsewhere: with the state lost, this
            // record is what still leads an operator to it.
            "key": state.object_key(),
        });
        let body = Bytes::from(doc.to_string());
        if let Err(err) = self
            .objects
            .put_object(&Self::info_key(&state.id), body, &ObjectAttributes::json())
            .await
        {
            tracing::warn!(upload_id = %state.id, error = %err, "could not write the info object");
        }
    }

    /// Assemble the object of an upload whose every byte is stored, and mark it finished.
    /// Idempotent: after a crash anywhere in here, running it again completes the same object.
    /// `tail` is the tail's bytes if the caller has them in memory; `reserved` is buffer
    /// budget the caller holds for them (at least the tail's length). Without it, reading the
    /// tail back reserves its own. `streamed` is the tail's upload as the last part, already
    /// handed all of its bytes (see `ahead`), if the caller streamed it.
    pub(crate) async fn finalize(
        &self,
        mut state: UploadState,
        fence: u64,
        tail: Option<Bytes>,
        reserved: Option<Reservation>,
        streamed: Option<PartAhead>,
    ) -> Result<UploadState> {
        debug_assert!(!state.finished && state.length == Some(state.offset()));
        // Held until the object is assembled: the tail's bytes are in memory until then.
        let (tail, _reservation) = match tail {
            Some(tail) => (tail, reserved),
            None if state.tail_len == 0 => (Bytes::new(), reserved),
            None => {
                let reservation = match reserved {
                    Some(reservation) => reservation,
                    None => {
                        self.budget
                            .reserve_for(state.tail_len, self.config.budget_wait, "the tail")
                            .await?
                    }
                };
                let tail = self
                    .state
                    .read_tail_range(&state.id, 0..state.tail_len, Some(fence))
                    .await?;
                (tail, Some(reservation))
            }
        };
        if tail.len() as u64 != state.tail_len {
            return Err(corrupt_tail(&state.id, state.tail_len, tail.len()));
        }
        let key = &state.object_key();
        let attributes = ObjectAttributes::of_upload(&state.metadata, &state.placement);
        let store = async {
            match state.multipart_id.as_deref() {
                // Smaller than one part: a single PUT, no multipart upload needed.
                None => self.objects.put_object(key, tail, &attributes).await,
                Some(multipart_id) if state.part_count == 0 && tail.is_empty() => {
                    self.objects
                        .put_object(key, Bytes::new(), &attributes)
                        .await?;
                    self.objects.abort_multipart(key, multipart_id).await
                }
                Some(multipart_id) => {
                    let assembled = self.assemble(&state, multipart_id, tail, streamed).await;
                    self.completed(key, state.length, assembled).await
                }
            }
        };
        // Bounded like the wait for any part: every byte is already stored (parts and tail), so
        // giving up loses nothing; the next request on the upload finishes it (`settle`).
        let bound = crate::part_wait(state.part_size, &self.config);
        let Ok(stored) = tokio::time::timeout(bound, store).await else {
            tusk_metrics::metrics().part_wait_timeouts.inc();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "object storage did not finish the upload within {}s; every byte is stored and the next request finishes it: retry later",
                    bound.as_secs()
                ),
            ));
        };
        stored?;
        self.mark_finished(&mut state, fence).await?;
        tracing::info!(upload_id = %state.id, length = ?state.length, parts = state.part_count, "upload finished");
        Ok(state)
    }

    /// The outcome of assembling the object at `key`: success, or an already assembled object.
    /// A multipart upload that is gone (NotFound; some S3 clones answer an unknown upload id
    /// with a server error) was either completed by an earlier attempt that crashed before
    /// recording it (then the object has exactly `length` bytes) or really vanished.
    pub(crate) async fn completed(
        &self,
        key: &str,
        length: Option<u64>,
        assembled: Result<()>,
    ) -> Result<()> {
        match assembled {
            Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::Backend) => {
                if self.objects.object_size(key).await? == length {
                    Ok(())
                } else {
                    Err(vanished(err))
                }
            }
            other => other,
        }
    }

    /// Record that the object is assembled (fenced), drop the tail, write `<id>.info`.
    pub(crate) async fn mark_finished(&self, state: &mut UploadState, fence: u64) -> Result<()> {
        self.state.finish(&state.id, fence).await?;
        state.finished = true;
        state.tail_len = 0;
        self.write_info_object(state).await;
        Ok(())
    }

    /// The upload's multipart upload, started (and recorded, fenced) the first time a part is
    /// needed.
    pub(crate) async fn ensure_multipart(
        &self,
        state: &mut UploadState,
        fence: u64,
    ) -> Result<String> {
        if let Some(id) = &state.multipart_id {
            return Ok(id.clone());
        }
        let key = &state.object_key();
        let attributes = ObjectAttributes::of_upload(&state.metadata, &state.placement);
        let multipart_id = self.objects.create_multipart(key, &attributes).await?;
        if let Err(err) = self
            .state
            .set_multipart(&state.id, fence, &multipart_id)
            .await
        {
            // Give its storage back only when the store said no. After a timeout or a dropped
            // connection the script may have run and recorded it: aborting then would break
            // the upload for good. An unrecorded one is left to the bucket's lifecycle rule.
            if matches!(
                err.kind(),
                ErrorKind::LockLost | ErrorKind::Invalid | ErrorKind::NotFound
            ) {
                let _ = self.objects.abort_multipart(key, &multipart_id).await;
            }
            return Err(err);
        }
        state.multipart_id = Some(multipart_id.clone());
        Ok(multipart_id)
    }

    /// Upload the tail as the last part (or take it from its stream) and complete the multipart
    /// upload.
    async fn assemble(
        &self,
        state: &UploadState,
        multipart_id: &str,
        tail: Bytes,
        streamed: Option<PartAhead>,
    ) -> Result<()> {
        let key = &state.object_key();
        let mut etags = self.state.etags(&state.id).await?;
        if etags.len() != state.part_count as usize {
            // The list only grows, and only under the lock we hold: this is damage, not a race.
            return Err(Error::new(
                ErrorKind::Backend,
                format!(
                    "upload {}: the state store lists {} part ETags for {} committed parts",
                    state.id,
                    etags.len(),
                    state.part_count
                ),
            ));
        }
        if !tail.is_empty() {
            let number = part_number(etags.len() + 1)?;
            let etag =
                crate::ahead::store_part(&*self.objects, key, multipart_id, number, tail, streamed)
                    .await?;
            etags.push(etag);
        }
        self.objects
            .complete_multipart(key, multipart_id, &etags)
            .await
    }

    /// An upload its state calls unfinished whose object is assembled in object storage: its
    /// state was lost and restored from an older copy (a Redis failover to a replica that missed
    /// the last writes). tusk writes an upload's object only when the upload finishes, whole,
    /// so the object is the truth: the upload is recorded finished (fenced) and returned. `None`
    /// if there is no object; an object whose size contradicts the state is an error, and
    /// nothing is changed or removed.
    pub(crate) async fn recover_from_object(
        &self,
        mut state: UploadState,
        fence: u64,
    ) -> Result<Option<UploadState>> {
        if state.finished {
            return Ok(Some(state));
        }
        let Some(size) = self.objects.object_size(&state.object_key()).await? else {
            return Ok(None);
        };
        match state.length {
            Some(length) if length == size => {}
            None if size >= state.offset() => {
                self.state.set_length(&state.id, fence, size).await?;
                state.length = Some(size);
            }
            length => {
                return Err(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "upload {}: object storage holds its object with {size} bytes, but its state says length {length:?} and offset {}; left as it is for an operator",
                        state.id,
                        state.offset()
                    ),
                ));
            }
        }
        self.mark_finished(&mut state, fence).await?;
        tusk_metrics::metrics().uploads_recovered.inc();
        tracing::warn!(
            upload_id = %state.id,
            length = size,
            "the state store reported this upload unfinished but its object is assembled (state lost, as in a Redis failover): recorded finished"
        );
        Ok(Some(state))
    }

    /// The error for a PATCH that found its multipart upload gone (`err`): if the upload's
    /// object is assembled, the upload is recorded finished and the client is told its offset
    /// is behind (409; HEAD then reports the whole length); otherwise the upload is gone.
    pub(crate) async fn multipart_gone(
        &self,
        state: &UploadState,
        fence: u64,
        err: Error,
    ) -> Error {
        if err.kind() != ErrorKind::NotFound {
            return err;
        }
        match self.recover_from_object(state.clone(), fence).await {
            Ok(Some(_)) => Error::new(
                ErrorKind::OffsetMismatch,
                "the upload is already finished (its state had fallen behind object storage); HEAD reports its offset",
            ),
            Ok(None) => vanished(err),
            Err(recovery) => recovery,
        }
    }

    /// Finish an upload whose bytes are all stored but which a crashed holder left unfinished.
    async fn settle(&self, state: UploadState, fence: u64) -> Result<UploadState> {
        if !state.finished && state.length == Some(state.offset()) {
            return self.finalize(state, fence, None, None, None).await;
        }
        Ok(state)
    }
}

/// S3 part numbers are 1 to 10,000.
pub(crate) fn part_number(n: usize) -> Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::TooLarge,
                "upload would need more than 10,000 parts",
            )
        })
}

/// The multipart upload is gone from object storage (aborted by a lifecycle rule, or by hand):
/// the upload cannot continue.
pub(crate) fn vanished(err: Error) -> Error {
    if err.kind() == ErrorKind::NotFound {
        Error::new(
            ErrorKind::Gone,
            "the upload's data is no longer in object storage",
        )
        .with_source(err)
    } else {
        err
    }
}

/// The tail read back is not as long as the state says: never used as upload bytes.
pub(crate) fn corrupt_tail(id: &UploadId, counted: u64, read: usize) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("upload {id}: the tail holds {read} bytes but the state counts {counted}"),
    )
}

#[async_trait]
impl UploadStore for MultipartStore {
    fn location(&self, upload: &UploadInfo) -> Vec<(&'static str, String)> {
        self.objects
            .location(&upload.placement.object_key(&upload.id))
    }

    fn check_placement(&self, placement: &Placement) -> std::result::Result<(), String> {
        self.objects.check_placement(placement)
    }

    async fn check(&self) -> Result<()> {
        self.state.check().await?;
        self.objects.check().await
    }

    async fn create(&self, upload: NewUpload) -> Result<UploadInfo> {
        let state = UploadState {
            part_size: part_size_for(upload.length, &self.config),
            id: upload.id,
            length: upload.length,
            metadata: upload.metadata,
            multipart_id: None,
            part_count: 0,
            tail_len: 0,
            finished: false,
            expires_at: upload.expires_at,
            created_at: upload.created_at,
            concat: upload.concat,
            placement: upload.placement,
        };
        self.state.create(&state).await?;
        self.write_info_object(&state).await;
        if state.length == Some(0) {
            // Nobody else knows the id yet, so no lock is needed; fence 0 is older than any
            // lock's token, so a holder that arrives meanwhile wins.
            let state = self
                .finalize(state, 0, Some(Bytes::new()), None, None)
                .await?;
            return Ok(state.info());
        }
        Ok(state.info())
    }

    async fn info(&self, id: &UploadId) -> Result<UploadInfo> {
        Ok(self.state.get(id).await?.info())
    }

    async fn info_locked(&self, id: &UploadId, fence: u64) -> Result<UploadInfo> {
        let state = self.state.load(id, fence).await?;
        Ok(self.settle(state, fence).await?.into_info())
    }

    async fn write(
        &self,
        upload: &UploadInfo,
        body: &mut dyn ChunkSource,
        fence: u64,
    ) -> Result<UploadInfo> {
        let state = self.locked_state(upload, fence).await?;
        Ok(self.write_body(state, body, fence).await?.into_info())
    }

    async fn read(&self, id: &UploadId, start: u64, end: u64) -> Result<ByteStream> {
        let state = self.state.get(id).await?;
        if !state.finished {
            return Err(Error::new(ErrorKind::Invalid, "upload is not finished"));
        }
        match self
            .objects
            .get_object(&state.object_key(), start, end)
            .await
        {
            Err(err) if err.kind() == ErrorKind::NotFound => {
                tusk_metrics::metrics().objects_missing.inc();
                tracing::error!(upload_id = %id, length = ?state.length, "the upload is finished but its object is missing from object storage (deleted outside tusk?)");
                Err(Error::new(
                    ErrorKind::Gone,
                    "the upload was finished, but its object is missing from object storage",
                )
                .with_source(err))
            }
            other => other,
        }
    }

    async fn recover_finished(
        &self,
        upload: &UploadInfo,
        fence: u64,
    ) -> Result<Option<UploadInfo>> {
        let state = self.locked_state(upload, fence).await?;
        Ok(self
            .recover_from_object(state, fence)
            .await?
            .map(UploadState::into_info))
    }
}

#[async_trait]
impl LengthDeclaration for MultipartStore {
    async fn declare_length(
        &self,
        upload: &UploadInfo,
        length: u64,
        fence: u64,
    ) -> Result<UploadInfo> {
        let mut state = self.locked_state(upload, fence).await?;
        let id = &upload.id;
        if let Some(current) = state.length {
            if current != length {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("upload length is already set to {current}"),
                ));
            }
            return Ok(state.into_info());
        }
        if length < state.offset() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "upload length is below the upload's offset",
            ));
        }
        // Parts of a deferred-length upload have the preferred size: a length past what
        // `max_parts` of them hold would need more parts than allowed.
        let capacity = deferred_capacity(state.part_size, &self.config);
        if length > capacity {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "an upload created without a length holds at most {capacity} bytes here; declare larger lengths when creating the upload"
                ),
            ));
        }
        self.state.set_length(id, fence, length).await?;
        state.length = Some(length);
        Ok(self.settle(state, fence).await?.into_info())
    }
}

#[async_trait]
impl Termination for MultipartStore {
    async fn terminate(&self, id: &UploadId, fence: u64) -> Result<()> {
        self.budget.tails().forget(id);
        let state = self.state.load(id, fence).await?;
        let key = state.object_key();
        // Object storage first: if it fails, the state still points at everything and the
        // client can retry; an abort of an already aborted upload succeeds.
        if let Some(multipart_id) = &state.multipart_id {
            self.objects.abort_multipart(&key, multipart_id).await?;
        }
        self.objects.delete_object(&key).await?;
        self.objects.delete_object(&Self::info_key(id)).await?;
        self.state.delete(id, fence).await?;
        tracing::info!(upload_id = %id, "upload terminated");
        Ok(())
    }
}

#[async_trait]
impl Expiration for MultipartStore {
    async fn set_expiry(&self, id: &UploadId, fence: u64, expires_at: Option<u64>) -> Result<()> {
        self.state.set_expiry(id, fence, expires_at).await
    }

    async fn expired(&self, before: u64, limit: usize) -> Result<Vec<UploadId>> {
        self.state.expired(before, limit).await
    }
}

#[async_trait]
impl Concatenation for MultipartStore {
    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> Result<()> {
        self.state.link_final(partial, final_id).await
    }

    async fn finals_of(&self, partial: &UploadId) -> Result<Vec<UploadId>> {
        self.state.finals_of(partial).await
    }

    async fn concatenate(
        &self,
        id: &UploadId,
        partials: &[UploadInfo],
        fence: u64,
    ) -> Result<UploadInfo> {
        self.assemble_final(id, partials, fence).await
    }
}
