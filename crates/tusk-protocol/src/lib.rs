//! The tus 1.0 protocol engine: it turns a [`TusRequest`] into a [`TusResponse`] using only the
//! [`tusk_core`] traits. It knows nothing of HTTP frameworks, disks or networks; the HTTP adapter
//! feeds it and the binary chooses its backends.
//!
//! Each tus method lives in its own module. [`TusError`] is the one place that maps every
//! failure to a status.

mod body;
mod checksum;
mod concat;
mod delete;
mod engine;
mod error;
mod expiry;
mod get;
mod head;
mod headers;
mod hooks;
mod ietf;
mod known;
mod message;
mod options;
mod patch;
mod post;

pub use body::{BodyEnd, BodyError, BodyStream};
pub use engine::{
    DEFAULT_MAX_UPLOAD_AGE, Engine, EngineConfig, EngineConfigError, MAX_METADATA_LIMIT,
    MAX_PERIOD, MAX_WAIT,
};
pub use error::TusError;
pub use expiry::{Clock, ManualClock, ReapReport, SystemClock};
pub use hooks::{
    DEFAULT_FORWARD_HEADERS, FileInfoChanges, HookConfig, HookError, HookEvent, HookHttpRequest,
    HookHttpResponse, HookRequest, HookResponse, HookSender, HookType, HookUpload, Hooks,
};
pub use ietf::{Draft, INTEROP_HEADER, INTEROP_VERSIONS, PARTIAL_UPLOAD};
pub use message::{Headers, Interim, Method, Target, TusRequest, TusResponse};

/// The only protocol version tusk speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The media type of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Every tus header a response may carry (for `Access-Control-Expose-Headers`).
pub const RESPONSE_HEADERS: &[&str] = &[
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Concat",
    "Retry-After",
    // The IETF draft's.
    "Upload-Complete",
    "Upload-Incomplete",
    "Upload-Limit",
    "Upload-Draft-Interop-Version",
];
/// Every tus header a request may carry (for `Access-Control-Allow-Headers`).
pub const REQUEST_HEADERS: &[&str] = &[
    "Authorization",
    "Content-Type",
    "Origin",
    "X-Requested-With",
    "X-Request-ID",
    "X-HTTP-Method-Override",
    "Tus-Resumable",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Concat",
    "Upload-Checksum",
    // The IETF draft's.
    "Upload-Complete",
    "Upload-Incomplete",
    "Upload-Draft-Interop-Version",
    "Content-Disposition",
    "Content-Digest",
    // W3C trace context, so browser tracing can continue into tusk (docs/operations.md).
    "traceparent",
    "tracestate",
];
