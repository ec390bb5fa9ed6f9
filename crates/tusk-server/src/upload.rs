//! `tusk upload FILE URL`: the command line of [`tusk_client`].

use std::process::ExitCode;

/// Arguments of `tusk upload`.
#[derive(Debug, clap::Args)]
pub struct UploadArgs {}

/// Runs `tusk upload`; the exit code is documented in docs/cli.md.
pub fn run(_args: UploadArgs) -> ExitCode {
    ExitCode::FAILURE
}
