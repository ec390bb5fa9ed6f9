use async_trait::async_trait;
use bytes::Bytes;
use tusk_core::ChunkSource;

/// A [`ChunkSource`] over a fixed list of chunks, with a chosen commit verdict.
#[derive(Debug, Clone)]
pub struct ChunkList {
    chunks: std::collections::VecDeque<Bytes>,
    may_commit: bool,
    lock_kept: bool,
}

impl ChunkList {
    /// Chunks that may be committed.
    pub fn new<I: IntoIterator<Item = Bytes>>(chunks: I) -> Self {
        Self {
            chunks: chunks.into_iter().collect(),
            may_commit: true,
            lock_kept: false,
        }
    }

    /// `data` split into chunks of `chunk` bytes.
    pub fn split(data: &[u8], chunk: usize) -> Self {
        Self::new(data.chunks(chunk.max(1)).map(Bytes::copy_from_slice))
    }

    /// Chunks whose body must not be committed (as after a length overflow or bad checksum).
    pub fn refused(mut self) -> Self {
        self.may_commit = false;
        self
    }

    /// Chunks of a request whose node keeps its lock after it (`ChunkSource::lock_kept`).
    pub fn under_kept_lock(mut self) -> Self {
        self.lock_kept = true;
        self
    }
}

#[async_trait]
impl ChunkSource for ChunkList {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        // As a socket does between reads, let other tasks run (a store's background uploads
        // take their bytes then, even on a single-threaded runtime).
        tokio::task::yield_now().await;
        self.chunks.pop_front()
    }

    fn may_commit(&self) -> bool {
        self.may_commit
    }

    fn lock_kept(&self) -> bool {
        self.lock_kept
    }
}
