//! Embedded backends for single-node mode: [`LocalStore`] keeps each upload as a data file and an
//! info file on the local disk; [`ProcessLocker`] gives per-upload locks inside one process with
//! the same release-request semantics as the distributed locker.

mod error;
mod locker;
mod store;

pub use error::LocalError;
pub use locker::ProcessLocker;
pub use store::LocalStore;
