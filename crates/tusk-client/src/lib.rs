//! A tus 1.0 upload client that resumes through resets, hangs and restarts: the engine of
//! `tusk upload FILE URL`. It also speaks the IETF draft "Resumable Uploads for HTTP"
//! ([`Protocol::IetfDraft`], `tusk upload --ietf`) with the same guarantees.
//!
//! [`upload`] creates an upload (or finds the one an earlier run saved in the state file),
//! then sends the file with PATCH requests streamed from disk. Whatever goes wrong with the
//! connection or the server (a reset, a stall, a 5xx, 409, 423 or 429) it asks the server for
//! the upload's offset (HEAD) and carries on from there after a backoff, so no byte the server
//! reported is sent twice. With `parallel > 1` and a server offering `concatenation`, the file
//! is sent as that many partial uploads at once, then concatenated into a final one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod error;
mod http;
pub mod metadata;
mod parallel;
mod protocol;
mod retry;
pub mod state;
mod transfer;
mod upload;

pub use error::{ClientError, EXIT_FAILED, EXIT_FILE, EXIT_OK, EXIT_USAGE};
pub use protocol::{INTEROP_VERSION, Protocol};
pub use retry::{RetryPolicy, parse_retry_after};
pub use upload::upload;

/// What to upload, where, and how.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The file to upload.
    pub file: PathBuf,
    /// The collection URL, where uploads are created (POST).
    pub endpoint: String,
    /// tus 1.0, or the IETF draft.
    pub protocol: Protocol,
    /// `Upload-Metadata` pairs added to (and winning over) `filename` and `filetype`.
    pub metadata: Vec<(String, String)>,
    /// Extra request headers, each `Name: value` (authentication); values are never logged.
    pub headers: Vec<String>,
    /// Bytes per PATCH; `None`: one PATCH for the rest of the file.
    pub chunk_size: Option<u64>,
    /// Partial uploads sent at once (1: a plain upload); tus only.
    pub parallel: usize,
    /// The stall timeout: connecting, each small request, and each PATCH without progress.
    pub timeout: Duration,
    /// Failed attempts in a row allowed before giving up; `None`: retry for ever.
    pub max_retries: Option<u32>,
    /// Where to keep the state; `None`: the user's state directory, named by the state key.
    pub state_file: Option<PathBuf>,
    /// With a chunk size set, send each PATCH's checksum: tus's `Upload-Checksum: sha1` when
    /// the server offers it, the draft's `Content-Digest: sha-256`.
    pub checksum: bool,
    /// The waits between attempts.
    pub retry: RetryPolicy,
}

impl UploadOptions {
    /// Options with the defaults: tus 1.0, one upload, no chunking, 30 s stall timeout, retry
    /// for ever, state in the user's state directory, checksums when possible.
    pub fn new(file: impl Into<PathBuf>, endpoint: impl Into<String>) -> UploadOptions {
        UploadOptions {
            file: file.into(),
            endpoint: endpoint.into(),
            protocol: Protocol::Tus,
            metadata: Vec::new(),
            headers: Vec::new(),
            chunk_size: None,
            parallel: 1,
            timeout: Duration::from_secs(30),
            max_retries: None,
            state_file: None,
            checksum: true,
            retry: RetryPolicy::default(),
        }
    }
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The upload's URL (the final upload's, for a parallel upload).
    pub url: String,
    /// Its length in bytes.
    pub length: u64,
    /// It continued an upload an earlier run had started.
    pub resumed: bool,
}

/// What an upload reports as it goes; the command line draws it, a library user may ignore it
/// ([`NoProgress`]). Called from several tasks at once in a parallel upload.
pub trait Progress: Send + Sync {
    /// Sending starts: `total` bytes, of which the server already holds `done`.
    fn started(&self, total: u64, done: u64);
    /// `done` bytes are on the server or on their way; after a failure it can go back to what
    /// the server holds.
    fn advanced(&self, done: u64);
    /// An attempt failed (`failures` in a row) for `reason`; the next starts after `delay`.
    fn retrying(&self, failures: u32, delay: Duration, reason: &str);
    /// Something the user should know: resuming, starting over, no parallel upload.
    fn notice(&self, text: &str);
    /// The upload is complete at `url`.
    fn finished(&self, url: &str);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _: u64, _: u64) {}
    fn advanced(&self, _: u64) {}
    fn retrying(&self, _: u32, _: Duration, _: &str) {}
    fn notice(&self, _: &str) {}
    fn finished(&self, _: &str) {}
}

/// A shareable [`Progress`] that reports nothing.
pub fn no_progress() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}
