use std::fmt;

/// The few kinds of failure the protocol engine distinguishes. Every backend error is converted
/// into one of these; the engine maps each kind to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The upload does not exist (never did, or was terminated).
    NotFound,
    /// The upload existed but has expired.
    Gone,
    /// The client's offset does not match the stored offset.
    OffsetMismatch,
    /// Another request holds the upload's lock and did not let go in time.
    Locked,
    /// This request's lock was lost (lease expired, newer holder): it must not change state.
    LockLost,
    /// A size limit was exceeded.
    TooLarge,
    /// The request is malformed or not allowed for this upload.
    Invalid,
    /// A backing service (disk, Redis, S3, etcd) is unreachable or out of space; retry later.
    Unavailable,
    /// An unexpected backend failure.
    Backend,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Gone => "gone",
            ErrorKind::OffsetMismatch => "offset mismatch",
            ErrorKind::Locked => "locked",
            ErrorKind::LockLost => "lock lost",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Backend => "backend failure",
        };
        f.write_str(name)
    }
}

/// An error from a store or locker: a kind for the engine, a message for the client (never a
/// secret), and the underlying cause for logs.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a client-facing `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying cause (kept for logs, not shown to clients).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind the engine maps to a status.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for an unknown upload.
    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "upload not found")
    }
}
