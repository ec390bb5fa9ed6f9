//! Vocabulary shared by every tusk crate: what an upload is, and the small traits the protocol
//! engine needs from storage and locking. Backends implement these traits; they never depend on
//! each other, and only the `tusk` binary picks concrete types.

mod error;
mod id;
mod info;
mod lock;
mod metadata;
mod objects;
mod placement;
mod presentation;
mod state;
mod store;

pub use error::{Error, ErrorKind, Result};
pub use id::{InvalidUploadId, UploadId};
pub use info::{Concat, Loaded, NewUpload, UploadInfo};
pub use lock::{LockGuard, Locker};
pub use metadata::{Metadata, MetadataError};
pub use objects::{ObjectAttributes, ObjectStore, RECORD_SUFFIX};
pub use placement::Placement;
pub use presentation::presentation;
pub use state::{Commit, StateStore, TailChange, UploadState};
pub use store::{
    ByteStream, ChunkSource, Concatenation, Expiration, LengthDeclaration, Storage, Termination,
    UploadStore,
};
