//! A part streamed to object storage while the PATCHes that fill it arrive.
//!
//! A client sending small PATCHes one after another fills a part every few dozen requests, and
//! the PATCH that fills it used to wait for the whole part's upload (8 MiB sent and stored:
//! most of that request's time). When the node keeps the upload's lock between requests and the
//! object store can take a body before it is whole ([`ObjectStore::streams_parts`]), the part's
//! upload starts when a PATCH leaves it open, and every later byte of it goes to object storage
//! as it goes into the part buffer. The PATCH that fills the part then sends only its last bytes
//! and waits for object storage to confirm.
//!
//! Nothing of the protocol's guarantees depends on it. The part buffer still holds every byte,
//! the tail is still committed to the state store at the end of each PATCH, and the part is
//! committed only once object storage confirmed it, as for any part. The last bytes are sent
//! only after the fenced check a full part always passes (see `Writer::take_part`), so a holder
//! that lost its lock completes no part. An upload dropped before its last byte (the tail copy
//! dropped, the lock given up, the node stopping) stores nothing; one that fails, or falls
//! behind, is replaced by the part's usual upload from the buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::AbortOnDropHandle;
use tusk_core::{ObjectStore, Result, UploadState};

use crate::MultipartStore;
use crate::budget::Reservation;
use crate::buffer::PartBuffer;
use crate::store::part_number;

/// Bytes handed to a part's upload that it has not taken yet, at most: an upload that falls
/// further behind is abandoned. Reserved in the node's part buffer budget while it lasts.
pub(crate) const AHEAD_QUEUE: usize = 1024 * 1024;

/// Parts streamed at once on a node, at most (each holds a connection to object storage).
pub(crate) const MAX_AHEAD: usize = 64;

/// A node's slots for parts streamed ahead.
pub(crate) fn slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_AHEAD))
}

/// One part's upload, fed with the part's bytes as they arrive. Dropping it cuts the upload
/// off: object storage stores nothing of it.
pub(crate) struct PartAhead {
    /// The part's number in its multipart upload.
    pub(crate) number: u32,
    /// Bytes of the part handed to the upload.
    fed: usize,
    size: usize,
    queue: mpsc::UnboundedSender<Bytes>,
    /// Bytes handed over and not yet taken by the upload.
    queued: Arc<AtomicUsize>,
    upload: AbortOnDropHandle<Result<String>>,
    _room: Reservation,
    _slot: OwnedSemaphorePermit,
}

impl PartAhead {
    /// Start uploading part `number` (`size` bytes) of `multipart_id`; `first` are its bytes
    /// so far (at most [`AHEAD_QUEUE`]).
    #[allow(clippy::too_many_arguments)] // the part's coordinates and the resources it holds
    pub(crate) fn start(
        objects: Arc<dyn ObjectStore>,
        key: String,
        multipart_id: String,
        number: u32,
        size: usize,
        first: Bytes,
        room: Reservation,
        slot: OwnedSemaphorePermit,
    ) -> Option<Self> {
        let (queue, mut taken) = mpsc::unbounded_channel::<Bytes>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let body: tusk_core::ByteStream = Box::pin(futures_util::stream::poll_fn(move |cx| {
            taken.poll_recv(cx).map(|next| {
                next.map(|bytes| {
                    counter.fetch_sub(bytes.len(), Ordering::SeqCst);
                    Ok(bytes)
                })
            })
        }));
        let upload = tokio::spawn(async move {
            objects
                .upload_part_streamed(&key, &multipart_id, number, size as u64, body)
                .await
        });
        let mut ahead = Self {
            number,
            fed: 0,
            size,
            queue,
            queued,
            upload: AbortOnDropHandle::new(upload),
            _room: room,
            _slot: slot,
        };
        ahead.feed(first).then_some(ahead)
    }

    /// Bytes of the part handed to the upload so far.
    pub(crate) fn fed(&self) -> usize {
        self.fed
    }

    /// Hand the part's next bytes to the upload. `false` if it cannot take them (it failed,
    /// or it is too far behind, or they would overrun the part): the caller drops it.
    #[must_use]
    pub(crate) fn feed(&mut self, bytes: Bytes) -> bool {
        let len = bytes.len();
        if self.fed + len > self.size
            || self.queued.load(Ordering::SeqCst) + len > AHEAD_QUEUE
            || self.upload.is_finished()
        {
            return false;
        }
        if len == 0 {
            return true;
        }
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.queue.send(bytes).is_err() {
            return false;
        }
        self.fed += len;
        true
    }

    /// Hand over the part's `last` bytes; `usable` says whether the stream's bytes are the
    /// part's (the buffer was not corrected from the stored tail since). The stream with all of
    /// the part's bytes, or `None` (counted as given up) when it cannot be completed.
    pub(crate) fn completed(mut self, usable: bool, last: Bytes) -> Option<Self> {
        if usable && self.feed(last) && self.is_whole() {
            return Some(self);
        }
        tusk_metrics::metrics().parts_stream_abandoned.inc();
        None
    }

    /// Whether `len` more bytes complete the part.
    pub(crate) fn completed_by(&self, len: usize) -> bool {
        self.fed + len == self.size
    }

    /// Whether the upload has all of the part's bytes.
    pub(crate) fn is_whole(&self) -> bool {
        self.fed == self.size
    }

    /// The part's ETag once object storage confirmed it, or why not.
    pub(crate) async fn stored(self) -> Result<String> {
        // The room and the slot are held until object storage answered.
        let Self {
            upload,
            _room,
            _slot,
            ..
        } = self;
        match upload.await {
            Ok(stored) => stored,
            Err(err) => Err(tusk_core::Error::new(
                tusk_core::ErrorKind::Backend,
                "streamed part upload task failed",
            )
            .with_source(err)),
        }
    }
}

/// Part `number`'s ETag: from `streamed` (completed, see [`PartAhead::completed`]) if object
/// storage stored it, otherwise by uploading `body`, the same bytes, whole.
pub(crate) async fn store_part(
    objects: &dyn ObjectStore,
    key: &str,
    multipart_id: &str,
    number: u32,
    body: Bytes,
    streamed: Option<PartAhead>,
) -> Result<String> {
    if let Some(ahead) = streamed {
        if ahead.number == number {
            match ahead.stored().await {
                Ok(etag) => {
                    tusk_metrics::metrics().parts_streamed.inc();
                    return Ok(etag);
                }
                Err(err) => tracing::debug!(
                    error = %err,
                    part_number = number,
                    "streamed part not stored; sending it whole"
                ),
            }
        }
        tusk_metrics::metrics().parts_stream_abandoned.inc();
    }
    objects.upload_part(key, multipart_id, number, body).await
}

impl MultipartStore {
    /// Start streaming the part that `buffer` (the upload's whole tail, kept for the next PATCH
    /// under this lock) begins, if object storage can take a part before it is whole, the part
    /// is a full one, and the node has a slot and the room (see `ahead`).
    pub(crate) async fn start_ahead(
        &self,
        state: &mut UploadState,
        fence: u64,
        buffer: &PartBuffer,
    ) -> Option<PartAhead> {
        if !self.objects.streams_parts() || buffer.written() > AHEAD_QUEUE {
            return None;
        }
        let part_start = u64::from(state.part_count).checked_mul(state.part_size)?;
        // A full part, or the last one of an upload of more than one part (an upload smaller
        // than a part is stored with one PUT). A deferred length's part is taken as full: if
        // it turns out to be the last, its stream is dropped unfinished. Not before the upload
        // has a multipart upload: a short deferred-length upload may never need one.
        let size = match state.length {
            Some(length) if state.part_count > 0 || length > state.part_size => {
                length.checked_sub(part_start)?.min(state.part_size)
            }
            Some(_) => return None,
            None if state.multipart_id.is_some() => state.part_size,
            None => return None,
        };
        let number = part_number(state.part_count as usize + 1).ok()?;
        let size = usize::try_from(size).ok().filter(|&size| size > 0)?;
        let slot = self.ahead_slots.clone().try_acquire_owned().ok()?;
        let room = self.budget.try_reserve_spare(AHEAD_QUEUE as u64)?;
        let multipart_id = match self.ensure_multipart(state, fence).await {
            Ok(id) => id,
            Err(err) => {
                // The PATCH's bytes are committed; its part is sent whole when full.
                tracing::debug!(upload_id = %state.id, error = %err, "part not streamed");
                return None;
            }
        };
        PartAhead::start(
            self.objects.clone(),
            state.object_key(),
            multipart_id,
            number,
            size,
            buffer.copy_written(),
            room,
            slot,
        )
    }
}
