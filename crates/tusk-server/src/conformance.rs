//! `tusk conformance URL`: the command line of [`tusk_conformance`].

use std::process::ExitCode;

/// Arguments of `tusk conformance`.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {}

/// Runs `tusk conformance`; exit 0 iff no check failed.
pub fn run(_args: ConformanceArgs) -> ExitCode {
    ExitCode::FAILURE
}
