//! Test support shared by the engine and every backend: an in-memory store, chunk sources, and
//! the conformance suites each store and locker implementation runs against its real service.

pub mod locker_suite;
mod memory;
mod source;
pub mod store_suite;

pub use memory::MemoryStore;
pub use source::ChunkList;
