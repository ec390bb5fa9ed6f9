//! `tusk upload FILE URL`: the command line of [`tusk_client`], and its terminal output (a
//! progress bar on a terminal, plain lines otherwise, nothing with `--quiet`). stdout gets the
//! upload's URL and nothing else; everything else goes to stderr. Exit codes: docs/cli.md.

use std::fmt;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tusk_client::{ClientError, Progress, UploadOptions};

use crate::units::{ByteSize, HumanDuration};

/// Arguments of `tusk upload`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run the same command again after an interruption to resume the same upload. \
                  Exit codes: 0 done, 1 upload failed, 2 usage error, 3 file error (docs/cli.md)."
)]
pub struct UploadArgs {
    /// The file to upload.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The collection URL uploads are created at, e.g. https://uploads.example.com/files/.
    #[arg(value_name = "URL")]
    pub url: String,

    /// Upload with the IETF resumable upload draft (interop version 8) instead of tus 1.0,
    /// for servers that speak the draft; not with --parallel.
    #[arg(long)]
    pub ietf: bool,

    /// Upload-Metadata pair, repeatable; added to filename and filetype, and wins over them.
    #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,

    /// Extra request header, repeatable (e.g. 'Authorization: Bearer ...'); values are never
    /// printed.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<HeaderArg>,

    /// Bytes per PATCH, in bytes or with a unit (KiB, MiB, GiB) [default: the rest of the file
    /// in one PATCH]. Also turns on checksums (sha1 when the server offers them; with --ietf,
    /// Content-Digest sha-256).
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<ByteSize>,

    /// Send the file as N partial uploads at once, concatenated at the end (needs the
    /// server's concatenation extension; one upload otherwise). tus only.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Stall timeout: connecting, each small request, and a PATCH that sends nothing for this
    /// long are abandoned and retried.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: HumanDuration,

    /// Failed attempts in a row (without the upload moving on) before giving up
    /// [default: retry for ever].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Keep the resume state in this file [default: $XDG_STATE_HOME/tusk/uploads/ or
    /// ~/.local/state/tusk/uploads/, one file per file, size, mtime and URL].
    #[arg(long, value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Do not send Upload-Checksum (or, with --ietf, Content-Digest), even with --chunk-size.
    #[arg(long)]
    pub no_checksum: bool,

    /// Print nothing on stderr but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A `--header` argument, kept as given: parsed (and refused, naming only the header) by the
/// client, and never shown in Debug output, since it usually carries a token.
#[derive(Clone)]
pub struct HeaderArg(String);

impl FromStr for HeaderArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(HeaderArg(s.to_owned()))
    }
}

impl fmt::Debug for HeaderArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.split(':').next().unwrap_or_default();
        write!(f, "{name}: <redacted>")
    }
}

/// Runs `tusk upload`; the exit code is documented in docs/cli.md.
pub fn run(args: UploadArgs) -> ExitCode {
    let quiet = args.quiet;
    let progress: Arc<dyn Progress> = if quiet {
        tusk_client::no_progress()
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(Lines::default())
    };
    let result = options(args).and_then(|options| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot start the async runtime: {e}")))?;
        runtime.block_on(tusk_client::upload(options, progress))
    });
    match result {
        Ok(uploaded) => {
            println!("{}", uploaded.url);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tusk upload: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn options(args: UploadArgs) -> Result<UploadOptions, ClientError> {
    let mut options = UploadOptions::new(args.file, args.url);
    if args.ietf {
        options.protocol = tusk_client::Protocol::IetfDraft;
    }
    options.metadata = args
        .metadata
        .iter()
        .map(|pair| tusk_client::metadata::parse_pair(pair))
        .collect::<Result<_, _>>()?;
    options.headers = args.headers.into_iter().map(|h| h.0).collect();
    options.chunk_size = args.chunk_size.map(|s| s.0);
    options.parallel = usize::from(args.parallel);
    options.timeout = args.timeout.0;
    options.max_retries = args.max_retries;
    options.state_file = args.state_file;
    options.checksum = !args.no_checksum;
    Ok(options)
}

/// A progress bar with rate and ETA, on a terminal.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Bar { bar }
    }
}

impl Progress for Bar {
    fn started(&self, total: u64, done: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        // Bytes sent by an earlier run do not count towards this run's rate.
        self.bar.reset_eta();
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn advanced(&self, done: u64) {
        self.bar.set_position(done);
    }

    fn retrying(&self, failures: u32, delay: Duration, reason: &str) {
        self.bar.println(retry_line(failures, delay, reason));
    }

    fn notice(&self, text: &str) {
        self.bar.println(format!("tusk upload: {text}"));
    }

    fn finished(&self, _url: &str) {
        // Cleared, so the URL printed on stdout next starts a line of its own.
        self.bar.finish_and_clear();
        let length = self.bar.length().unwrap_or_default();
        eprintln!(
            "tusk upload: {} uploaded in {:.1}s",
            BinaryBytes(length),
            self.bar.elapsed().as_secs_f64()
        );
    }
}

/// Plain progress lines (stderr is a file or pipe): one at the start, then at most one every
/// [`Lines::EVERY`], and one at the end.
#[derive(Default)]
struct Lines {
    state: Mutex<LinesState>,
}

#[derive(Default)]
struct LinesState {
    total: u64,
    last: Option<Instant>,
}

impl Lines {
    const EVERY: Duration = Duration::from_secs(2);

    fn print(&self, done: u64, force: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && state.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        state.last = Some(Instant::now());
        let percent = if state.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / state.total as f64
        };
        eprintln!(
            "tusk upload: {} of {} ({percent:.0}%)",
            BinaryBytes(done),
            BinaryBytes(state.total)
        );
    }
}

impl Progress for Lines {
    fn started(&self, total: u64, done: u64) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total = total;
        self.print(done, true);
    }

    fn advanced(&self, done: u64) {
        self.print(done, false);
    }

    fn retrying(&self, failures: u32, delay: Duration, reason: &str) {
        eprintln!("{}", retry_line(failures, delay, reason));
    }

    fn notice(&self, text: &str) {
        eprintln!("tusk upload: {text}");
    }

    fn finished(&self, _url: &str) {
        let total = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total;
        self.print(total, true);
    }
}

fn retry_line(failures: u32, delay: Duration, reason: &str) -> String {
    format!(
        "tusk upload: {reason}; retrying in {:.1}s (failure {failures} in a row)",
        delay.as_secs_f64()
    )
}
