use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration, LogFormat, OriginList};

/// tusk: a resumable-upload server for the tus 1.0 protocol.
#[derive(Debug, Parser)]
#[command(name = "tusk", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve tus uploads. With no options: 127.0.0.1:1080, /files/, data in ./tusk-data.
    ///
    /// Every option can also be set by its environment variable (shown below) or by the same
    /// key, in snake_case, in the TOML file given by --config. Flags beat environment, which
    /// beats the file, which beats the defaults.
    Serve(Box<Settings>),
}

/// Every setting of `tusk serve`. All optional here: [`crate::config::load`] layers flags and
/// environment over the TOML file over the defaults, then validates.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file (keys as the flags, in snake_case).
    #[arg(long, env = "TUSK_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on [default: 127.0.0.1:1080]. Port 0 picks a free port.
    #[arg(long, env = "TUSK_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// URL path of the upload collection [default: /files/].
    #[arg(long, env = "TUSK_BASE_PATH", value_name = "PATH")]
    pub base_path: Option<String>,

    /// Directory holding uploads in local mode [default: ./tusk-data].
    #[arg(long, env = "TUSK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Largest upload accepted, in bytes or with a unit (KiB, MiB, GiB, TiB) [default: 1TiB].
    #[arg(long, env = "TUSK_MAX_SIZE", value_name = "BYTES")]
    pub max_size: Option<ByteSize>,

    /// Largest Upload-Metadata header, in bytes or with a unit [default: 4KiB].
    #[arg(long, env = "TUSK_MAX_METADATA_SIZE", value_name = "BYTES")]
    pub max_metadata_size: Option<ByteSize>,

    /// Trust Forwarded / X-Forwarded-Host / X-Forwarded-Proto to build upload URLs
    /// [default: false]. Only enable behind a proxy that sets them.
    #[arg(long, env = "TUSK_BEHIND_PROXY", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub behind_proxy: Option<bool>,

    /// Public origin (optionally with a path prefix) for upload URLs, e.g.
    /// https://uploads.example.com; overrides the request's host [default: none].
    #[arg(long, env = "TUSK_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Browser origins allowed by CORS, comma-separated: "*" for any (no credentials), an
    /// empty string to disable CORS [default: *].
    #[arg(long, env = "TUSK_CORS_ORIGINS", value_name = "LIST")]
    pub cors_origins: Option<OriginList>,

    /// How long a request waits for an upload held by another request (which is asked to
    /// let go) before answering 423 [default: 5s].
    #[arg(long, env = "TUSK_LOCK_WAIT", value_name = "DURATION")]
    pub lock_wait: Option<HumanDuration>,

    /// A PATCH body that sends nothing for this long ends and keeps what arrived [default: 30s].
    #[arg(long, env = "TUSK_READ_TIMEOUT", value_name = "DURATION")]
    pub read_timeout: Option<HumanDuration>,

    /// On SIGTERM/SIGINT, how long in-flight requests get to finish before exit [default: 10s].
    #[arg(long, env = "TUSK_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,

    /// Log format on stderr: text or json [default: text]. Verbosity via RUST_LOG.
    #[arg(long, env = "TUSK_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl Settings {
    /// Fill every unset field of `self` from `lower`.
    pub fn over(self, lower: Settings) -> Settings {
        macro_rules! layer {
            ($($field:ident),* $(,)?) => {
                Settings { $($field: self.$field.or(lower.$field)),* }
            };
        }
        layer!(
            config,
            listen,
            base_path,
            data_dir,
            max_size,
            max_metadata_size,
            behind_proxy,
            base_url,
            cors_origins,
            lock_wait,
            read_timeout,
            shutdown_timeout,
            log_format,
        )
    }
}
