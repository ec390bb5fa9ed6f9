//! The engine's protocol tests, one binary: each module covers one tus request or extension.
//! They run over the local store by default; `TUSK_TEST_STORE` picks another (see `common`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

mod common;

mod abilities;
mod concat;
mod delete;
mod expiration;
mod get;
mod head;
mod ietf;
mod options;
mod patch;
mod post;
