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
use tusk_core::{ObjectStore, Result};

use crate::budget::Reservation;

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
