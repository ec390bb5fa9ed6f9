//! The in-memory fakes pass the same conformance suites as the real backends. One binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

mod memory_objects;
mod memory_state;
mod memory_store;
