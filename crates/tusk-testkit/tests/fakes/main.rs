//! The in-memory fakes pass the same conformance suites as the real backends. One binary.

mod memory_objects;
mod memory_state;
mod memory_store;
