use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tusk_core::ChunkSource;

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
}

/// The engine's view of a PATCH body: it stops at the first of end of body, broken
/// connection, stall, lock release request, lost lock, shutdown or length overflow.
pub(crate) struct PatchBody {
    stream: BodyStream,
    room: u64,
    received: u64,
    read_timeout: Duration,
    release: CancellationToken,
    lost: CancellationToken,
    shutdown: CancellationToken,
    end: Option<BodyEnd>,
}

/// What stops a body besides the body itself.
pub(crate) struct Stops {
    pub release: CancellationToken,
    pub lost: CancellationToken,
    pub shutdown: CancellationToken,
}

impl PatchBody {
    /// Read at most `room` bytes from `stream`.
    pub(crate) fn new(stream: BodyStream, room: u64, read_timeout: Duration, stops: Stops) -> Self {
        Self {
            stream,
            room,
            received: 0,
            read_timeout,
            release: stops.release,
            lost: stops.lost,
            shutdown: stops.shutdown,
            end: None,
        }
    }

    /// Why reading stopped, once it has.
    pub(crate) fn end(&self) -> Option<BodyEnd> {
        self.end
    }

    /// Bytes handed to the store.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }
}

#[async_trait]
impl ChunkSource for PatchBody {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.end.is_some() {
                return None;
            }
            let next = tokio::select! {
                biased;
                _ = self.lost.cancelled() => Err(BodyEnd::LockLost),
                _ = self.release.cancelled() => Err(BodyEnd::ReleaseRequested),
                _ = self.shutdown.cancelled() => Err(BodyEnd::ShuttingDown),
                read = tokio::time::timeout(self.read_timeout, self.stream.next()) => match read {
                    Err(_) => Err(BodyEnd::Stalled),
                    Ok(None) => Err(BodyEnd::Complete),
                    Ok(Some(Err(_))) => Err(BodyEnd::ClientGone),
                    Ok(Some(Ok(chunk))) => Ok(chunk),
                },
            };
            match next {
                Err(end) => self.end = Some(end),
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) if chunk.len() as u64 > self.room - self.received => {
                    self.end = Some(BodyEnd::TooLarge);
                }
                Ok(chunk) => {
                    self.received += chunk.len() as u64;
                    return Some(chunk);
                }
            }
        }
    }

    fn may_commit(&self) -> bool {
        !matches!(self.end, Some(BodyEnd::TooLarge | BodyEnd::LockLost))
    }
}
