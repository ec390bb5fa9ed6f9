//! Sending one upload (the whole file, or one range of it as a partial upload) until the
//! server holds all of it: create or find it, then PATCH from the offset the server reports,
//! and after any failure wait, ask again (HEAD) and go on from there.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt as _;
use reqwest::Url;
use sha2::Digest;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use crate::http::{Activity, Append, Client, Failure};
use crate::protocol::ChecksumAlgorithm;
use crate::retry::{Retrier, RetryPolicy};
use crate::state::{self, FileIdentity, Saved};
use crate::{ClientError, Progress};

/// Bytes read from the file at a time: the most one PATCH holds in memory (reqwest and the
/// kernel's socket buffer hold a few of these more).
const READ_BUFFER: usize = 256 * 1024;

/// What every part of an upload shares.
pub(crate) struct Context {
    pub client: Client,
    pub progress: Arc<dyn Progress>,
    pub tracker: Arc<Tracker>,
    /// The file as named on the command line.
    pub file: PathBuf,
    pub identity: FileIdentity,
    pub endpoint: Url,
    /// Sent when creating a plain upload, or the final upload of a parallel one.
    pub metadata: String,
    pub chunk_size: Option<u64>,
    /// Send a checksum of each PATCH's content (`Upload-Checksum: sha1` or `Content-Digest:
    /// sha-256`).
    pub checksum: bool,
    pub policy: RetryPolicy,
    pub max_retries: Option<u32>,
    pub state_path: PathBuf,
    pub saved: Mutex<Saved>,
}

impl Context {
    pub(crate) fn retrier(&self) -> Retrier {
        Retrier::new(self.policy, self.max_retries)
    }

    /// Change the saved state and write it at once (atomically): a run killed right after
    /// finds what this one knew.
    pub(crate) fn update_state(&self, change: impl FnOnce(&mut Saved)) -> Result<(), ClientError> {
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut saved);
        state::save(&self.state_path, &saved)
    }

    /// The file must still be the one the upload started with: bytes of another version
    /// would be spliced into it.
    pub(crate) fn check_file(&self) -> Result<(), ClientError> {
        let now = FileIdentity::of(&self.file)?;
        if now == self.identity {
            Ok(())
        } else {
            Err(ClientError::FileChanged {
                path: self.file.clone(),
            })
        }
    }
}

/// The position of each part, summed into one for [`Progress::advanced`].
pub(crate) struct Tracker {
    positions: Vec<AtomicU64>,
    progress: Arc<dyn Progress>,
    started: AtomicBool,
}

impl Tracker {
    pub(crate) fn new(parts: usize, progress: Arc<dyn Progress>) -> Tracker {
        Tracker {
            positions: (0..parts).map(|_| AtomicU64::new(0)).collect(),
            progress,
            started: AtomicBool::new(false),
        }
    }

    fn total(&self) -> u64 {
        self.positions
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum()
    }

    /// Report the start, with what the server already holds.
    pub(crate) fn start(&self, length: u64) {
        self.started.store(true, Ordering::Relaxed);
        self.progress.started(length, self.total());
    }

    fn set(&self, part: usize, position: u64) {
        if let Some(p) = self.positions.get(part) {
            p.store(position, Ordering::Relaxed);
        }
        if self.started.load(Ordering::Relaxed) {
            self.progress.advanced(self.total());
        }
    }
}

/// One upload being sent: the whole file, or part `index` of a parallel upload.
pub(crate) struct PartRun<'a> {
    ctx: &'a Context,
    index: usize,
    /// Where this part starts in the file.
    start: u64,
    length: u64,
    /// A partial upload (`Upload-Concat: partial`, no metadata).
    partial: bool,
    url: Option<Url>,
    /// What the server last reported holding.
    offset: u64,
    retrier: Retrier,
}

impl<'a> PartRun<'a> {
    /// Part `index` as saved; its URL, if any, is checked by [`PartRun::sync`].
    pub(crate) fn new(ctx: &'a Context, index: usize, partial: bool) -> Result<Self, ClientError> {
        let saved = ctx.saved.lock().unwrap_or_else(PoisonError::into_inner);
        let part = saved
            .parts
            .get(index)
            .ok_or_else(|| ClientError::Protocol(format!("no part {index}")))?;
        // A URL that no longer parses is as good as lost: start that part over.
        let url = part.url.as_deref().and_then(|u| Url::parse(u).ok());
        Ok(PartRun {
            ctx,
            index,
            start: part.start,
            length: part.length,
            partial,
            url,
            offset: 0,
            retrier: ctx.retrier(),
        })
    }

    /// True if this part continues an upload an earlier run created.
    pub(crate) fn was_saved(&self) -> bool {
        self.url.is_some()
    }

    /// Until the server has this upload and we know its offset: HEAD the saved URL, or create
    /// the upload (and save its URL before anything is sent). A server that lost the upload
    /// gets a new one.
    pub(crate) async fn sync(&mut self) -> Result<(), ClientError> {
        let ctx = self.ctx;
        loop {
            let Some(url) = self.url.clone() else {
                let (metadata, concat) = if self.partial {
                    (None, Some("partial"))
                } else {
                    (Some(ctx.metadata.as_str()), None)
                };
                match ctx
                    .client
                    .create(&ctx.endpoint, Some(self.length), metadata, concat)
                    .await
                {
                    Ok(url) => {
                        ctx.update_state(|s| {
                            s.final_url = None;
                            if let Some(part) = s.parts.get_mut(self.index) {
                                part.url = Some(url.to_string());
                            }
                        })?;
                        self.url = Some(url);
                        self.offset = 0;
                        ctx.tracker.set(self.index, 0);
                        return Ok(());
                    }
                    Err(failure) => self.failed(failure).await?,
                }
                continue;
            };
            match ctx.client.head(&url).await {
                // A draft upload completed short of our length holds another file.
                Ok(head)
                    if head.offset > self.length
                        || head.length.is_some_and(|l| l != self.length)
                        || (head.complete == Some(true) && head.offset != self.length) =>
                {
                    ctx.progress.notice(&format!(
                        "{url} is not the upload this state file describes (length {:?}, offset {}); starting over",
                        head.length, head.offset
                    ));
                    self.url = None;
                }
                Ok(head) => {
                    if head.offset > self.offset {
                        self.retrier.progressed();
                    }
                    self.offset = head.offset;
                    ctx.tracker.set(self.index, self.offset);
                    return Ok(());
                }
                Err(failure) => self.failed(failure).await?,
            }
        }
    }

    /// A failed request: lost uploads are forgotten (the next [`PartRun::sync`] creates a new
    /// one), transient failures wait their backoff, fatal ones end the upload.
    async fn failed(&mut self, failure: Failure) -> Result<(), ClientError> {
        match failure {
            Failure::Lost { status } => {
                if let Some(url) = self.url.take() {
                    self.ctx.progress.notice(&format!(
                        "the server answered {status} for {url}: it no longer has the upload; starting over"
                    ));
                }
                self.offset = 0;
                self.ctx.tracker.set(self.index, 0);
                Ok(())
            }
            Failure::Transient {
                reason,
                retry_after,
            } => {
                // A body that broke off because the file shrank is the file's fault.
                self.ctx.check_file()?;
                self.retrier
                    .failed(&reason, retry_after, self.ctx.progress.as_ref())
                    .await
            }
            Failure::Fatal(err) => Err(err),
        }
    }

    /// Send the rest of this part (after [`PartRun::sync`]); its URL once the server holds it
    /// all.
    pub(crate) async fn run(&mut self) -> Result<Url, ClientError> {
        let ctx = self.ctx;
        loop {
            let Some(url) = self.url.clone() else {
                self.sync().await?;
                continue;
            };
            if self.offset >= self.length {
                return Ok(url);
            }
            ctx.check_file()?;
            let end = ctx.chunk_size.map_or(self.length, |c| {
                self.offset.saturating_add(c).min(self.length)
            });
            let len = end - self.offset;
            let from = self.start + self.offset;
            let protocol = ctx.client.protocol();
            let checksum = if ctx.checksum {
                let digest = digest_of(&ctx.file, from, len, protocol.checksum_algorithm())
                    .await
                    .map_err(|e| self.file_error(e))?;
                Some(protocol.checksum_header(&digest))
            } else {
                None
            };
            let activity = Activity::new();
            let body = self.body(from, len, activity.clone()).await?;
            let append = Append {
                offset: self.offset,
                len,
                completes: end == self.length,
                checksum: checksum.as_ref(),
            };
            let result = ctx.client.patch(&url, append, body, &activity).await;
            match result {
                Ok(reported) if reported > end => {
                    return Err(ClientError::Protocol(format!(
                        "PATCH of bytes {}..{end} answered Upload-Offset {reported}",
                        self.offset
                    )));
                }
                Ok(reported) if reported > self.offset => {
                    self.offset = reported;
                    self.retrier.progressed();
                    ctx.tracker.set(self.index, reported);
                }
                Ok(reported) => {
                    ctx.tracker.set(self.index, self.offset);
                    self.failed(Failure::Transient {
                        reason: format!(
                            "PATCH at {} answered Upload-Offset {reported}",
                            self.offset
                        ),
                        retry_after: None,
                    })
                    .await?;
                    self.sync().await?;
                }
                Err(failure) => {
                    // What went out since the last confirmation may not have arrived.
                    ctx.tracker.set(self.index, self.offset);
                    self.failed(failure).await?;
                    self.sync().await?;
                }
            }
        }
    }

    /// `len` bytes of the file from `from`, streamed: read a buffer at a time as the
    /// connection takes them, each marking `activity` and the progress.
    async fn body(
        &self,
        from: u64,
        len: u64,
        activity: Arc<Activity>,
    ) -> Result<reqwest::Body, ClientError> {
        let mut file = tokio::fs::File::open(&self.ctx.file)
            .await
            .map_err(|e| self.file_error(e))?;
        file.seek(SeekFrom::Start(from))
            .await
            .map_err(|e| self.file_error(e))?;
        let tracker = self.ctx.tracker.clone();
        let (index, offset) = (self.index, self.offset);
        let mut sent = 0u64;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_BUFFER).map(
            move |chunk| {
                if let Ok(bytes) = &chunk {
                    sent += bytes.len() as u64;
                    activity.touch();
                    tracker.set(index, offset + sent);
                }
                chunk
            },
        );
        Ok(reqwest::Body::wrap_stream(stream))
    }

    fn file_error(&self, source: std::io::Error) -> ClientError {
        ClientError::File {
            path: self.ctx.file.clone(),
            source,
        }
    }
}

/// The digest with `algorithm` of `len` bytes of `file` from `from`, read from the file in
/// buffers (the chunk is read twice, hashed then sent, rather than held in memory).
async fn digest_of(
    file: &std::path::Path,
    from: u64,
    len: u64,
    algorithm: ChecksumAlgorithm,
) -> std::io::Result<Vec<u8>> {
    match algorithm {
        ChecksumAlgorithm::Sha1 => hash_range::<sha1::Sha1>(file, from, len).await,
        ChecksumAlgorithm::Sha256 => hash_range::<sha2::Sha256>(file, from, len).await,
    }
}

async fn hash_range<D: Digest>(
    file: &std::path::Path,
    from: u64,
    len: u64,
) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(file).await?;
    file.seek(SeekFrom::Start(from)).await?;
    let mut reader = file.take(len);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut hash = D::new();
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        read += n as u64;
    }
    if read != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file ended early",
        ));
    }
    Ok(hash.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn digests_cover_exactly_the_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"xxabcyy").expect("write");
        let hex_of = |d: Vec<u8>| hex::encode(d);
        assert_eq!(
            hex_of(
                digest_of(&path, 2, 3, ChecksumAlgorithm::Sha1)
                    .await
                    .expect("hash")
            ),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex_of(
                digest_of(&path, 2, 3, ChecksumAlgorithm::Sha256)
                    .await
                    .expect("hash")
            ),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for algorithm in [ChecksumAlgorithm::Sha1, ChecksumAlgorithm::Sha256] {
            assert!(digest_of(&path, 5, 3, algorithm).await.is_err());
        }
    }
}
