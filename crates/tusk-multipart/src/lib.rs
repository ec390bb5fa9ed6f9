//! The distributed upload store: upload bytes in equal-sized parts of an object store's
//! multipart upload, the bytes that do not yet fill a part (the tail) and all state in a fenced
//! state store. Any node can serve any request: nothing a request needs lives on the node
//! between requests (a node keeps copies of tails it wrote, to save reading them back; the state
//! store stays the truth, see `tail_cache`).
//!
//! This crate depends only on the traits in `tusk-core`; the binary wires S3 and Redis in.

mod ahead;
mod budget;
mod buffer;
mod concat;
mod config;
mod store;
mod tail_cache;
mod write;

pub use budget::BufferBudget;
pub use config::{
    DEFAULT_BUFFER_BUDGET, MAX_PART_SIZE, MIN_PART_SIZE, MultipartConfig, MultipartConfigError,
    deferred_capacity, largest_part_size, part_size_for, part_wait,
};
pub use store::{BudgetTooSmall, MultipartStore};
