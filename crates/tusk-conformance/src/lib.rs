//! Checks a tus 1.0 server, or a server of the IETF draft "Resumable Uploads for HTTP"
//! (draft-ietf-httpbis-resumable-upload), against the protocol: each check cites the sentence it
//! enforces and its level, and records what it sent and what came back.
//!
//! The entry point is [`run`]; [`checks`] lists every check of both suites (see [`Protocol`]).

pub mod checks;
pub mod http;
pub mod report;
mod target;

use std::path::PathBuf;
use std::time::Duration;

pub use checks::{CheckDef, GROUPS, IETF_GROUPS, checks};
pub use report::{CheckResult, Level, Report, Status};
pub use target::address_allowed;

/// Which protocol to check: each has its own suite of checks and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// tus 1.0.0.
    #[default]
    Tus1,
    /// The IETF draft "Resumable Uploads for HTTP" at [`Config::interop`].
    Ietf,
}

/// The draft's current interop version (the editor's copy after draft -11).
pub const IETF_INTEROP: u8 = 8;

/// The interop versions `--interop` accepts: 3 (draft -01) to 8.
pub const IETF_INTEROP_VERSIONS: std::ops::RangeInclusive<u8> = 3..=IETF_INTEROP;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The collection URL (where uploads are created).
    pub url: String,
    /// The protocol suite.
    pub protocol: Protocol,
    /// The draft's interop version sent in `Upload-Draft-Interop-Version` ([`Protocol::Ietf`]).
    pub interop: u8,
    /// Groups to run; empty: all.
    pub groups: Vec<String>,
    /// Check ids to run; empty: all in the selected groups.
    pub only: Vec<String>,
    /// Bound on each request.
    pub timeout: Duration,
    /// `Origin` sent by the CORS checks.
    pub origin: String,
    /// Size of the cut, race and takeover uploads.
    pub big: u64,
    /// Extensions (or `cors`, `get`) that must be offered: not offered is a failure.
    pub require: Vec<String>,
    /// Directory holding finished uploads as `DIR/<id>`, to read bytes back when the server
    /// does not serve GET.
    pub store_dir: Option<PathBuf>,
    /// Allow targets outside loopback and private networks.
    pub allow_remote: bool,
    /// Count SHOULD failures as failures.
    pub strict: bool,
}

impl Config {
    /// Defaults for `url`: tus 1.0, every group, 10 s per request, 4 MiB big uploads.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            protocol: Protocol::Tus1,
            interop: IETF_INTEROP,
            groups: Vec::new(),
            only: Vec::new(),
            timeout: Duration::from_secs(10),
            origin: "https://conformance.example".into(),
            big: 4 << 20,
            require: Vec::new(),
            store_dir: None,
            allow_remote: false,
            strict: false,
        }
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is unusable.
    #[error(transparent)]
    Url(#[from] http::HttpError),
    /// The host did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver error.
        #[source]
        source: std::io::Error,
    },
    /// The target is public and `--allow-remote` was not given.
    #[error(
        "{host} resolves to {addr}, which is neither loopback nor private: this tool writes and deletes uploads and sends hostile requests, so it checks only servers you run; pass --allow-remote to check it anyway"
    )]
    Remote {
        /// Host name.
        host: String,
        /// The public address.
        addr: std::net::IpAddr,
    },
    /// An unknown group or extension name.
    #[error("unknown {what} {name:?}; known: {known}")]
    Unknown {
        /// `group`, `check` or `extension`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        known: String,
    },
    /// Invalid setting.
    #[error("{0}")]
    Invalid(String),
    /// `OPTIONS` on the collection got no HTTP response at all.
    #[error("{url} did not answer OPTIONS: {source}")]
    Unreachable {
        /// The collection URL.
        url: String,
        /// Why.
        #[source]
        source: http::HttpError,
    },
}

/// Runs the selected checks against `config.url` and returns the report.
pub async fn run(config: Config) -> Result<Report, Error> {
    checks::run(config).await
}
