//! `tusk conformance URL`: the command line of [`tusk_conformance`].

use std::path::PathBuf;
use std::process::ExitCode;

use crate::units::{ByteSize, CommaList, HumanDuration};

/// Arguments of `tusk conformance`.
///
/// Exit status: 0 when no check failed (warnings and skips allowed), 1 when a check failed,
/// 2 when the run could not start (bad flags, refused or unreachable target).
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// The server's upload collection URL (http:// only), e.g. http://127.0.0.1:1080/files/.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Groups to run, comma-separated [default: all]: core, creation, creation-with-upload,
    /// creation-defer-length, termination, checksum, checksum-trailer, expiration,
    /// concatenation, concatenation-unfinished, cors, get, robustness; with --ietf:
    /// ietf-limits, ietf-creation, ietf-interim, ietf-offset, ietf-append, ietf-cancel,
    /// ietf-robust.
    #[arg(long, value_name = "LIST")]
    pub groups: Option<CommaList>,

    /// Only these check ids, comma-separated (see docs/conformance.md).
    #[arg(long, value_name = "LIST")]
    pub checks: Option<CommaList>,

    /// Bound on each request, at most 1h (a whole check gets 12 times this).
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub timeout: HumanDuration,

    /// Origin sent by the CORS checks.
    #[arg(
        long,
        value_name = "ORIGIN",
        default_value = "https://conformance.example"
    )]
    pub origin: String,

    /// Size of the uploads cut by FIN/RST and raced.
    #[arg(long, value_name = "BYTES", default_value = "4MiB")]
    pub big: ByteSize,

    /// Extensions that must be offered, comma-separated (also `cors`, `get`): not advertised
    /// is then a failure instead of a skip. Not with --ietf (the draft has no extensions).
    #[arg(long, value_name = "LIST")]
    pub require: Option<CommaList>,

    /// Write the full report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Read finished uploads back from DIR/<id> (tusd / @tus/file-store layout) when the
    /// server does not serve GET.
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,

    /// Allow a target that resolves to a public address, and a `Location` on another server
    /// (by default only loopback and private networks: the checks write, delete and send
    /// hostile requests).
    #[arg(long)]
    pub allow_remote: bool,

    /// Count SHOULD failures as failures (otherwise they are warnings).
    #[arg(long)]
    pub strict: bool,

    /// Show the spec sentence and the exchanges of every check, not only failures.
    #[arg(long, short)]
    pub verbose: bool,

    /// Check the IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload)
    /// instead of tus 1.0: every request carries Upload-Draft-Interop-Version.
    #[arg(long)]
    pub ietf: bool,

    /// With --ietf: the draft's interop version to speak, 3 to 8.
    #[arg(long, value_name = "N", default_value_t = tusk_conformance::IETF_INTEROP, requires = "ietf")]
    pub interop: u8,
}

/// Runs `tusk conformance`; exit 0 iff no check failed.
pub fn run(args: ConformanceArgs) -> ExitCode {
    let mut config = tusk_conformance::Config::new(args.url);
    if args.ietf {
        config.protocol = tusk_conformance::Protocol::Ietf;
        config.interop = args.interop;
    }
    config.groups = args.groups.map(|l| l.0).unwrap_or_default();
    config.only = args.checks.map(|l| l.0).unwrap_or_default();
    config.timeout = args.timeout.0;
    config.origin = args.origin;
    config.big = args.big.0;
    config.require = args.require.map(|l| l.0).unwrap_or_default();
    config.store_dir = args.store_dir;
    config.allow_remote = args.allow_remote;
    config.strict = args.strict;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tusk conformance: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let report = match runtime.block_on(tusk_conformance::run(config)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("tusk conformance: {err}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.text(args.verbose));
    if let Some(path) = &args.json {
        let written = report
            .json()
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(err) = written {
            eprintln!("tusk conformance: cannot write {}: {err}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
