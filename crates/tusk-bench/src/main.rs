//! `tusk-bench`: benchmarks of tusk's distributed mode (S3 + Redis + etcd). They measure; they
//! never pass or fail on a figure. Every address must be on the loopback interface.
//!
//! Subcommands:
//! - `s3-vs-tusk`: the same bytes uploaded straight to S3 (multipart, aws-sdk-s3) and through
//!   tusk (one POST, one streamed PATCH), alternating, with medians and the time ratio;
//! - `patches`: one upload sent as many small sequential PATCHes (latency percentiles);
//! - `concurrent`: several uploads at once, sampling the tusk process's RSS;
//! - `load`: many uploads over several nodes, optionally with clients that drip bytes;
//! - `flaky`: one upload through the fault proxy, cut every so many bytes, resumed after each
//!   cut, against the same upload without cuts (local or distributed mode).

mod backends;
mod concurrent;
mod data;
mod flaky;
mod load;
mod patches;
mod rss;
mod s3;
mod s3_vs_tusk;
mod stats;
mod tus;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tusk-bench",
    about = "Benchmarks of tusk's distributed mode (not tests)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The same bytes straight to S3 (multipart) and through tusk (one PATCH), alternating.
    S3VsTusk(s3_vs_tusk::Args),
    /// One upload sent as sequential PATCHes of a fixed size: PATCHes/s and latency.
    Patches(patches::Args),
    /// Concurrent uploads (one streamed PATCH each) while sampling the tusk process's RSS.
    Concurrent(concurrent::Args),
    /// One upload through a proxy that cuts the link every so many bytes, resumed after each
    /// cut, against the same upload without cuts.
    Flaky(flaky::Args),
    /// Many uploads of random sizes over several nodes, a fixed number at a time, optionally
    /// with clients that hold PATCHes open by dripping a byte now and then.
    Load(load::Args),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::S3VsTusk(args) => s3_vs_tusk::run(args).await,
            Command::Patches(args) => patches::run(args).await,
            Command::Concurrent(args) => concurrent::run(args).await,
            Command::Flaky(args) => flaky::run(args).await,
            Command::Load(args) => load::run(args).await,
        }
    })
}
