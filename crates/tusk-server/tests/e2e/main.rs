#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test
//! End-to-end tests: each spawns the real `tusk` binary on 127.0.0.1 and talks HTTP to it.

mod access;
mod attacks;
mod cli;
mod conformance;
mod cuts;
mod distributed;
mod durability;
mod hooks;
mod http_surface;
mod ietf;
mod memory;
mod receiver;
mod redis_failures;
mod redis_full;
mod services;
mod support;
mod tls;
mod traces;
mod upload_cli;
