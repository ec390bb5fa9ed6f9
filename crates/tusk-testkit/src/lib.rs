//! Test support shared by the engine and every backend: an in-memory store, chunk sources, and
//! the conformance suites each store and locker implementation runs against its real service.

pub mod fault_proxy;
mod links;
// A conformance suite: a failed expectation is a failed test.
#[allow(clippy::expect_used)]
pub mod locker_suite;
mod memory;
mod memory_objects;
mod memory_state;
// A conformance suite: a failed expectation is a failed test.
#[allow(clippy::expect_used)]
pub mod object_suite;
mod source;
// A conformance suite: a failed expectation is a failed test.
#[allow(clippy::expect_used)]
pub mod state_suite;
// A conformance suite: a failed expectation is a failed test.
#[allow(clippy::expect_used)]
pub mod store_suite;

pub use memory::MemoryStore;
pub use memory_objects::MemoryObjects;
pub use memory_state::MemoryState;
pub use source::ChunkList;
