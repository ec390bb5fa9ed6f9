use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tusk_core::ChunkSource;

use crate::checksum::{Checksum, Hasher};

/// When asked to stop, a PATCH still takes the bytes the client already sent (a dead client's
/// last bytes are in the socket buffers): it keeps reading while chunks keep coming, each within
/// `DRAIN_QUIET` of the last, for at most `DRAIN_MAX`. Then it commits and answers.
const DRAIN_QUIET: Duration = Duration::from_millis(25);
const DRAIN_MAX: Duration = Duration::from_millis(250);

/// A failure reading the request body (the client went away or sent a malformed body).
pub type BodyError = std::io::Error;

/// A request body: chunks as they arrive from the socket.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Why a PATCH body stopped being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The client sent the whole body.
    Complete,
    /// The connection broke mid-body.
    ClientGone,
    /// No bytes arrived for the read timeout.
    Stalled,
    /// Another request asked for the upload's lock.
    ReleaseRequested,
    /// The lock was lost: nothing may be committed.
    LockLost,
    /// The server is shutting down.
    ShuttingDown,
    /// The body went past the upload's length: nothing may be committed.
    TooLarge,
    /// The whole body arrived but does not match its `Upload-Checksum`: nothing may be committed.
    ChecksumMismatch,
    /// A post-receive hook stopped the upload, which is then removed: nothing more is committed
    /// (parts committed while the body streamed go with the upload).
    StoppedByHook,
}

/// The engine's view of a PATCH body: it stops at the first of end of body, broken
/// connection, stall, lock release request, lost lock, shutdown or length overflow.
pub(crate) struct PatchBody {
    stream: BodyStream,
    room: u64,
    /// Bytes handed to the store; shared so post-receive hooks can read it while the store
    /// holds the body.
    received: Arc<AtomicU64>,
    read_timeout: Duration,
    release: CancellationToken,
    lost: CancellationToken,
    shutdown: CancellationToken,
    stopped_by_hook: CancellationToken,
    end: Option<BodyEnd>,
    /// Asked to stop (release request, shutdown): why, and until when bytes already on their
    /// way are still taken.
    draining: Option<(BodyEnd, Instant)>,
    /// The announced checksum and the running digest, for a body under a checksum.
    checksum: Option<(Checksum, Option<Hasher>)>,
    /// The request's node keeps its lock after it.
    lock_kept: bool,
}

/// What stops a body besides the body itself.
pub(crate) struct Stops {
    pub release: CancellationToken,
    pub lost: CancellationToken,
    pub shutdown: CancellationToken,
    pub stopped_by_hook: CancellationToken,
}

impl PatchBody {
    /// Read at most `room` bytes from `stream`.
    pub(crate) fn new(stream: BodyStream, room: u64, read_timeout: Duration, stops: Stops) -> Self {
        Self {
            stream,
            room,
            received: Arc::default(),
            read_timeout,
            release: stops.release,
            lost: stops.lost,
            shutdown: stops.shutdown,
            stopped_by_hook: stops.stopped_by_hook,
            end: None,
            draining: None,
            checksum: None,
            lock_kept: false,
        }
    }

    /// Its lock stays with this node after the request (see `LockGuard::kept`).
    pub(crate) fn with_lock_kept(mut self, kept: bool) -> Self {
        self.lock_kept = kept;
        self
    }

    /// Verify the whole body against `checksum`: nothing is committed unless it matches.
    pub(crate) fn with_checksum(mut self, checksum: Option<Checksum>) -> Self {
        self.checksum = checksum.map(|c| {
            let hasher = c.hasher();
            (c, Some(hasher))
        });
        self
    }

    /// Why reading stopped, once it has.
    pub(crate) fn end(&self) -> Option<BodyEnd> {
        self.end
    }

    /// `Complete` if the body matches its checksum (or has none), else `ChecksumMismatch`.
    fn verify(&mut self) -> BodyEnd {
        match &mut self.checksum {
            Some((checksum, hasher)) => match hasher.take() {
                Some(hasher) => {
                    if checksum.matches(hasher) {
                        BodyEnd::Complete
                    } else {
                        BodyEnd::ChecksumMismatch
                    }
                }
                None => BodyEnd::ChecksumMismatch,
            },
            None => BodyEnd::Complete,
        }
    }

    /// Bytes handed to the store.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// A live view of [`PatchBody::received`].
    pub(crate) fn progress(&self) -> Arc<AtomicU64> {
        self.received.clone()
    }
}

#[async_trait]
impl ChunkSource for PatchBody {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.end.is_some() {
                return None;
            }
            let next = match self.draining {
                Some((why, deadline)) => {
                    let quiet = DRAIN_QUIET.min(deadline.saturating_duration_since(Instant::now()));
                    tokio::select! {
                        biased;
                        _ = self.lost.cancelled() => Err(BodyEnd::LockLost),
                        read = tokio::time::timeout(quiet, self.stream.next()) => match read {
                            Err(_) => Err(why),
                            Ok(None) => Err(BodyEnd::Complete),
                            Ok(Some(Err(_))) => Err(BodyEnd::ClientGone),
                            Ok(Some(Ok(chunk))) => Ok(chunk),
                        },
                    }
                }
                None => tokio::select! {
                    biased;
                    _ = self.lost.cancelled() => Err(BodyEnd::LockLost),
                    _ = self.stopped_by_hook.cancelled() => Err(BodyEnd::StoppedByHook),
                    _ = self.release.cancelled() => {
                        self.draining = Some((BodyEnd::ReleaseRequested, Instant::now() + DRAIN_MAX));
                        continue;
                    }
                    _ = self.shutdown.cancelled() => {
                        self.draining = Some((BodyEnd::ShuttingDown, Instant::now() + DRAIN_MAX));
                        continue;
                    }
                    read = tokio::time::timeout(self.read_timeout, self.stream.next()) => match read {
                        Err(_) => Err(BodyEnd::Stalled),
                        Ok(None) => Err(BodyEnd::Complete),
                        Ok(Some(Err(_))) => Err(BodyEnd::ClientGone),
                        Ok(Some(Ok(chunk))) => Ok(chunk),
                    },
                },
            };
            match next {
                Err(BodyEnd::Complete) => self.end = Some(self.verify()),
                Err(end) => self.end = Some(end),
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) if chunk.len() as u64 > self.room - self.received() => {
                    self.end = Some(BodyEnd::TooLarge);
                }
                Ok(chunk) => {
                    self.received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    tusk_metrics::metrics()
                        .received_bytes
                        .inc_by(chunk.len() as u64);
                    if let Some((_, Some(hasher))) = &mut self.checksum {
                        hasher.update(&chunk);
                    }
                    return Some(chunk);
                }
            }
        }
    }

    fn may_commit(&self) -> bool {
        match self.end {
            Some(
                BodyEnd::TooLarge
                | BodyEnd::LockLost
                | BodyEnd::ChecksumMismatch
                | BodyEnd::StoppedByHook,
            ) => false,
            // A body under a checksum counts only if all of it arrived and matched.
            Some(BodyEnd::Complete) => true,
            _ => self.checksum.is_none(),
        }
    }

    fn all_or_nothing(&self) -> bool {
        self.checksum.is_some()
    }

    fn lock_lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn lock_kept(&self) -> bool {
        self.lock_kept
    }

    fn stopped(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let tokens = [
            self.release.clone(),
            self.lost.clone(),
            self.shutdown.clone(),
            self.stopped_by_hook.clone(),
        ];
        Box::pin(async move {
            let [release, lost, shutdown, hook] = tokens;
            tokio::select! {
                () = release.cancelled() => {}
                () = lost.cancelled() => {}
                () = shutdown.cancelled() => {}
                () = hook.cancelled() => {}
            }
        })
    }
}
