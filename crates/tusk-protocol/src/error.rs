use tusk_core::{ErrorKind, MetadataError};

use crate::hooks::{HookHttpResponse, HookType};
use crate::{TUS_VERSION, TusResponse};

/// Every way a tus request can fail. [`TusError::status`] is the one place a failure becomes an
/// HTTP status; [`TusError::code`] is a stable machine-readable code, as in tusd.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TusError {
    /// `Tus-Resumable` missing or not 1.0.0.
    #[error(
        "Tus-Resumable header is missing or names an unsupported version (this server speaks {TUS_VERSION})"
    )]
    UnsupportedVersion,
    /// PATCH without the media type of its protocol.
    #[error("Content-Type must be {expected}")]
    UnsupportedMediaType {
        /// The media type the request needs.
        expected: &'static str,
    },
    /// `Upload-Draft-Interop-Version` names a version of the IETF draft tusk does not speak.
    #[error(
        "Upload-Draft-Interop-Version {0:?} is not supported: this server speaks interop versions 3 to 8 of the IETF resumable upload draft, or tus 1.0.0 (Tus-Resumable)"
    )]
    UnsupportedDraft(String),
    /// The length indications of a draft request disagree with each other or the upload's.
    #[error("inconsistent upload length: {0}")]
    InconsistentLength(String),
    /// PATCH without `Upload-Offset`.
    #[error("Upload-Offset header is required")]
    MissingOffset,
    /// A header that does not parse.
    #[error("invalid {header} header: {reason}")]
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// POST with neither `Upload-Length` nor `Upload-Defer-Length`.
    #[error("either Upload-Length or Upload-Defer-Length: 1 is required")]
    LengthRequired,
    /// POST with both `Upload-Length` and `Upload-Defer-Length`.
    #[error("Upload-Length and Upload-Defer-Length cannot both be given")]
    LengthAndDefer,
    /// A length above the configured maximum.
    #[error("upload length {length} exceeds the maximum upload size of {max} bytes")]
    MaxSizeExceeded {
        /// The requested length.
        length: u64,
        /// The configured maximum.
        max: u64,
    },
    /// `Upload-Metadata` longer than allowed.
    #[error("Upload-Metadata is {size} bytes; at most {max} are allowed")]
    MetadataTooLarge {
        /// The header's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// `Upload-Metadata` that does not parse.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The client's offset is not the upload's.
    #[error("Upload-Offset {client} does not match the upload's offset {server}")]
    OffsetMismatch {
        /// What the client sent.
        client: u64,
        /// What is stored.
        server: u64,
    },
    /// A body that would go past the upload's length (nothing of it was stored).
    #[error("request body would exceed the upload's length; nothing of it was stored")]
    BodyTooLarge,
    /// A second, different `Upload-Length` for an upload.
    #[error("upload length is already set to {0} and cannot be changed")]
    LengthChange(u64),
    /// A declared length below what has already been received.
    #[error("Upload-Length {length} is below the upload's offset {offset}")]
    LengthBelowOffset {
        /// The declared length.
        length: u64,
        /// Bytes already stored.
        offset: u64,
    },
    /// The store does not defer lengths.
    #[error("this server does not support Upload-Defer-Length")]
    DeferUnsupported,
    /// A method this target does not accept.
    #[error("method not allowed here")]
    MethodNotAllowed {
        /// The methods this target accepts.
        allow: &'static str,
    },
    /// `Upload-Checksum` names an algorithm this server does not support.
    #[error("{0}")]
    UnsupportedChecksum(String),
    /// The body does not match its `Upload-Checksum` (nothing of it was stored).
    #[error("the request body does not match its Upload-Checksum; nothing of it was stored")]
    ChecksumMismatch,
    /// An `Upload-Concat` that cannot be honoured.
    #[error("{0}")]
    InvalidConcat(String),
    /// PATCH to a final upload, which is made only from its partial uploads.
    #[error("a final upload cannot be patched; it is assembled from its partial uploads")]
    FinalUpload,
    /// A partial upload of this final upload was removed before it was assembled.
    #[error("partial upload {0} of this final upload no longer exists")]
    PartialGone(tusk_core::UploadId),
    /// The upload's time is up (expiration extension).
    #[error("the upload has expired")]
    Expired,
    /// GET of an upload whose bytes have not all arrived.
    #[error("the upload is not finished ({offset} of {} bytes received); it can be downloaded once it is", length.map_or("an unknown number of".to_owned(), |l| l.to_string()))]
    NotFinished {
        /// Bytes received.
        offset: u64,
        /// The upload's length, if known.
        length: Option<u64>,
    },
    /// A `Range` that selects no byte of the upload.
    #[error("the requested range is not satisfiable: the upload has {length} bytes")]
    RangeNotSatisfiable {
        /// The upload's length.
        length: u64,
    },
    /// A path id that is not a valid upload id, so no such upload can exist.
    #[error("upload not found")]
    UnknownId,
    /// A blocking hook could not be asked (unreachable, timed out, bad answer). pre-create and
    /// pre-terminate changed nothing; pre-finish runs once the bytes are stored, which stay.
    #[error("the {hook} hook failed ({reason}); {}", after_hook_failure(*.hook))]
    HookFailed {
        /// Which hook.
        hook: HookType,
        /// What went wrong (never the hook's URL).
        reason: String,
    },
    /// A hook refused the request: pre-create rejected the upload, pre-terminate the DELETE,
    /// or post-receive stopped the upload.
    #[error("{}", rejection_message(*.hook))]
    HookRejected {
        /// Which hook.
        hook: HookType,
        /// The status, body and headers it chose.
        response: HookHttpResponse,
    },
    /// A store or locker failure.
    #[error(transparent)]
    Store(#[from] tusk_core::Error),
}

fn after_hook_failure(hook: HookType) -> &'static str {
    match hook {
        HookType::PreFinish => "the upload is complete and its bytes are stored",
        _ => "nothing was changed; try again later",
    }
}

fn rejection_message(hook: HookType) -> &'static str {
    match hook {
        HookType::PreCreate => "upload creation has been rejected by server",
        HookType::PreTerminate => "upload termination has been rejected by server",
        HookType::PreAccess => "access to the upload has been refused by server",
        _ => "upload has been stopped by server",
    }
}

impl TusError {
    /// The HTTP status for this failure.
    pub fn status(&self) -> u16 {
        match self {
            TusError::UnsupportedVersion => 412,
            TusError::UnsupportedMediaType { .. } => 415,
            TusError::UnsupportedDraft(_) | TusError::InconsistentLength(_) => 400,
            TusError::MissingOffset
            | TusError::InvalidHeader { .. }
            | TusError::LengthRequired
            | TusError::LengthAndDefer
            | TusError::MetadataTooLarge { .. }
            | TusError::Metadata(_)
            | TusError::LengthChange(_)
            | TusError::LengthBelowOffset { .. }
            | TusError::DeferUnsupported
            | TusError::UnsupportedChecksum(_) => 400,
            TusError::ChecksumMismatch => 460,
            TusError::NotFinished { .. } => 409,
            TusError::Expired | TusError::PartialGone(_) => 410,
            TusError::InvalidConcat(_) => 400,
            TusError::FinalUpload => 403,
            TusError::RangeNotSatisfiable { .. } => 416,
            TusError::MaxSizeExceeded { .. } | TusError::BodyTooLarge => 413,
            TusError::OffsetMismatch { .. } => 409,
            TusError::MethodNotAllowed { .. } => 405,
            TusError::UnknownId => 404,
            TusError::HookFailed { .. } => 503,
            // A hook may pick any error status; anything else keeps tusd's default.
            TusError::HookRejected { hook, response } => match response.status_code {
                status @ 400..=599 => status,
                _ if *hook == HookType::PreAccess => 403,
                _ => 400,
            },
            TusError::Store(e) => match e.kind() {
                ErrorKind::NotFound => 404,
                ErrorKind::Gone => 410,
                ErrorKind::OffsetMismatch => 409,
                ErrorKind::Locked | ErrorKind::LockLost => 423,
                ErrorKind::TooLarge => 413,
                ErrorKind::Invalid => 400,
                ErrorKind::Unavailable => 503,
                _ => 500,
            },
        }
    }

    /// A stable code naming the failure, first word of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            TusError::UnsupportedVersion => "ERR_UNSUPPORTED_VERSION",
            TusError::UnsupportedMediaType { .. } => "ERR_INVALID_CONTENT_TYPE",
            TusError::UnsupportedDraft(_) => "ERR_UNSUPPORTED_DRAFT_VERSION",
            TusError::InconsistentLength(_) => "ERR_INCONSISTENT_LENGTH",
            TusError::MissingOffset => "ERR_MISSING_OFFSET",
            TusError::InvalidHeader { .. } => "ERR_INVALID_HEADER",
            TusError::LengthRequired => "ERR_LENGTH_REQUIRED",
            TusError::LengthAndDefer => "ERR_LENGTH_AND_DEFER",
            TusError::MaxSizeExceeded { .. } => "ERR_MAX_SIZE_EXCEEDED",
            TusError::MetadataTooLarge { .. } => "ERR_METADATA_TOO_LARGE",
            TusError::Metadata(_) => "ERR_INVALID_METADATA",
            TusError::OffsetMismatch { .. } => "ERR_MISMATCHED_OFFSET",
            TusError::BodyTooLarge => "ERR_UPLOAD_SIZE_EXCEEDED",
            TusError::LengthChange(_) => "ERR_INVALID_UPLOAD_LENGTH_CHANGE",
            TusError::LengthBelowOffset { .. } => "ERR_INVALID_UPLOAD_LENGTH",
            TusError::DeferUnsupported => "ERR_DEFER_LENGTH_UNSUPPORTED",
            TusError::MethodNotAllowed { .. } => "ERR_METHOD_NOT_ALLOWED",
            TusError::UnsupportedChecksum(_) => "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM",
            TusError::ChecksumMismatch => "ERR_CHECKSUM_MISMATCH",
            TusError::NotFinished { .. } => "ERR_UPLOAD_NOT_FINISHED",
            TusError::Expired => "ERR_UPLOAD_EXPIRED",
            TusError::InvalidConcat(_) => "ERR_INVALID_CONCAT",
            TusError::FinalUpload => "ERR_MODIFY_FINAL",
            TusError::PartialGone(_) => "ERR_PARTIAL_GONE",
            TusError::RangeNotSatisfiable { .. } => "ERR_RANGE_NOT_SATISFIABLE",
            TusError::UnknownId => "ERR_UPLOAD_NOT_FOUND",
            TusError::HookFailed { .. } => "ERR_HOOK_FAILED",
            TusError::HookRejected { hook, .. } => match hook {
                HookType::PreCreate => "ERR_UPLOAD_REJECTED",
                HookType::PreTerminate => "ERR_UPLOAD_TERMINATION_REJECTED",
                HookType::PreAccess => "ERR_ACCESS_REFUSED",
                _ => "ERR_UPLOAD_STOPPED",
            },
            TusError::Store(e) => match e.kind() {
                ErrorKind::NotFound => "ERR_UPLOAD_NOT_FOUND",
                ErrorKind::Gone => "ERR_UPLOAD_GONE",
                ErrorKind::OffsetMismatch => "ERR_MISMATCHED_OFFSET",
                ErrorKind::Locked => "ERR_UPLOAD_LOCKED",
                ErrorKind::LockLost => "ERR_LOCK_LOST",
                ErrorKind::TooLarge => "ERR_UPLOAD_SIZE_EXCEEDED",
                ErrorKind::Invalid => "ERR_INVALID_REQUEST",
                ErrorKind::Unavailable => "ERR_SERVICE_UNAVAILABLE",
                _ => "ERR_INTERNAL",
            },
        }
    }

    /// The response for this failure: status, code and message, plus the headers some statuses
    /// require (`Tus-Version` with 412, `Retry-After` with 423 and 503, `Allow` with 405).
    pub fn into_response(self) -> TusResponse {
        let status = self.status();
        if status >= 500 {
            tracing::error!(code = self.code(), error = %ErrorChain(&self), "request failed");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        let mut resp =
            TusResponse::status(status).header("Content-Type", "text/plain; charset=utf-8");
        resp.body = format!("{}: {self}\n", self.code());
        if let TusError::HookRejected { response, .. } = &self {
            // The hook speaks to the client in its own words and headers.
            if !response.body.is_empty() {
                resp.body.clone_from(&response.body);
            }
            resp.extra_headers = response
                .header
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
        }
        match (&self, status) {
            (TusError::UnsupportedVersion, _) => resp = resp.header("Tus-Version", TUS_VERSION),
            (TusError::MethodNotAllowed { allow }, _) => resp = resp.header("Allow", *allow),
            (TusError::RangeNotSatisfiable { length }, _) => {
                resp = resp.header("Content-Range", format!("bytes */{length}"));
            }
            (_, 423 | 503) => resp = resp.header("Retry-After", "1"),
            _ => {}
        }
        resp
    }
}

/// Formats an error with its whole source chain, for logs only (sources may name server paths).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
