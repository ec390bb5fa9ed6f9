//! `tusk`: a tus 1.0 resumable-upload server.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod config;
mod serve;
mod units;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(settings) => {
            let config = match config::load(*settings) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("tusk: configuration error: {err}");
                    return ExitCode::from(2);
                }
            };
            serve::init_logging(config.log_format);
            match actix_web::rt::System::new().block_on(serve::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("tusk: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
