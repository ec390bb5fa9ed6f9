//! `tusk`: a tus 1.0 resumable-upload server.

use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue};

mod cli;
mod config;
mod conformance;
mod serve;
mod telemetry;
mod units;
mod upload;

fn main() -> ExitCode {
    use_ring_for_tls();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let kind = err.kind();
            let _ = err.print();
            if let (
                clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue,
                Some(flag),
            ) = (kind, invalid_flag(&err))
            {
                let env = format!(
                    "TUSK_{}",
                    flag.trim_start_matches("--")
                        .to_ascii_uppercase()
                        .replace('-', "_")
                );
                eprintln!(
                    "note: {flag} may come from the command line or from the environment variable {env}"
                );
            }
            return ExitCode::from(2);
        }
    };
    let (settings, cleanup) = match cli.command {
        cli::Command::Serve(settings) => (settings, false),
        cli::Command::Cleanup(settings) => (settings, true),
        cli::Command::Upload(args) => return upload::run(*args),
        cli::Command::Conformance(args) => return conformance::run(*args),
    };
    let config = match config::load(*settings) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tusk: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let system = actix_web::rt::System::new();
    // Inside the runtime: the gRPC trace exporter starts its connection task on it.
    let result = system.block_on(async move {
        let tracing = telemetry::init(config.log_format, config.otlp.as_ref())?;
        let result = if cleanup {
            serve::cleanup(config).await
        } else {
            serve::run(config).await
        };
        tracing.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let text = error_text(&err);
            tracing::error!("{text}");
            eprintln!("tusk: {text}");
            ExitCode::FAILURE
        }
    }
}

/// Every TLS connection of the process (S3, Redis, etcd, OTLP, hooks, the listener) on rustls
/// with ring, the one crypto library linked. Clients that take the process's default provider
/// (the OTLP/HTTP exporter's) need it installed; the others name ring themselves.
fn use_ring_for_tls() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An error and its causes on one line, skipping causes whose text an outer error already
/// includes (backend errors often quote their cause).
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The flag a clap value error is about, e.g. `--max-size`.
fn invalid_flag(err: &clap::Error) -> Option<String> {
    match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().map(str::to_owned),
        _ => None,
    }
}
