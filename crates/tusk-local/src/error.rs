use std::path::PathBuf;

use tusk_core::{Error, ErrorKind};

/// Failures of the local disk store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// A file system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An info file that does not parse.
    #[error("info file {} is corrupt: {source}", path.display())]
    CorruptInfo {
        /// The info file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A partial upload's data file is shorter than its recorded offset.
    #[error("{} holds {found} bytes, {expected} expected", path.display())]
    Truncated {
        /// The data file.
        path: PathBuf,
        /// Bytes its info counts.
        expected: u64,
        /// Bytes it has.
        found: u64,
    },
    /// A blocking task died (only if the runtime is shutting down).
    #[error("blocking file task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl LocalError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io { op, path, source }
    }
}

impl From<LocalError> for Error {
    fn from(err: LocalError) -> Self {
        // Client-facing messages never name server paths; the full error stays as the source.
        let (kind, message) = match &err {
            LocalError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                (ErrorKind::NotFound, "upload not found")
            }
            LocalError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded =>
            {
                (
                    ErrorKind::Unavailable,
                    "server storage is full; retry later",
                )
            }
            // Only `create` makes files exclusively: the id is taken (a hook chose it twice).
            LocalError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                (ErrorKind::Invalid, "an upload with this id already exists")
            }
            _ => (ErrorKind::Backend, "local storage failed"),
        };
        Error::new(kind, message).with_source(err)
    }
}
