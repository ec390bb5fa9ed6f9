//! The same bytes straight to S3 (the baseline) and through tusk, alternating, R rounds.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;

use crate::s3::S3;
use crate::stats::{median, mib, mib_per_s, secs};
use crate::tus::{STREAM_CHUNK, Tus, upload_id};

const MAX_RUNS: usize = 100;
/// S3's smallest part (except the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// S3 endpoint (on 127.0.0.1), e.g. http://127.0.0.1:15000
    #[arg(long)]
    s3_endpoint: String,
    /// Bucket for the baseline's objects; tusk's node must use the same one
    #[arg(long)]
    bucket: String,
    /// tusk's upload collection, e.g. http://127.0.0.1:1080/files/
    #[arg(long)]
    tusk: String,
    /// Bytes per upload
    #[arg(long)]
    size: u64,
    /// Baseline part size in bytes (use tusk's part size)
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    part_size: u64,
    /// Baseline UploadParts in flight (use tusk's --max-inflight-parts)
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Timed rounds (after one untimed warm-up of each side)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Send the baseline's parts as UNSIGNED-PAYLOAD (run tusk with --s3-payload-signing
    /// never to compare like with like); by default they carry their SHA-256, as tusk's do over
    /// plain HTTP
    #[arg(long)]
    unsigned_payload: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    Baseline,
    Tusk,
}

/// One measured upload: the total, and a split that shows where the time went.
struct Run {
    total: Duration,
    /// Baseline: CompleteMultipartUpload. tusk: from the body's last slice to the 204 (the last
    /// parts, CompleteMultipartUpload and the state writes inside tusk).
    finish: Duration,
}

struct Bench {
    s3: S3,
    tus: Tus,
    data: Bytes,
    sha256: String,
    part_size: usize,
    concurrency: usize,
    sha_checked: bool,
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(args.size > 0, "--size must be positive");
    ensure!(
        args.part_size >= MIN_PART_SIZE,
        "--part-size must be at least 5 MiB (S3's minimum part size)"
    );
    ensure!(
        (1..=MAX_RUNS).contains(&args.runs),
        "--runs must be 1..={MAX_RUNS}"
    );
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let size = usize::try_from(args.size)?;

    let t = Instant::now();
    let data = crate::data::generate(size, 0x7475_736b);
    let sha256 = crate::data::sha256_hex(&data);
    println!(
        "s3-vs-tusk: {:.0} MiB generated in memory in {:.2} s (sha256 {sha256})",
        mib(args.size),
        secs(t.elapsed())
    );
    println!(
        "s3-vs-tusk: baseline = aws-sdk-s3 multipart, {:.0} MiB parts, {} in flight; tusk = POST + one PATCH streamed in {} KiB slices",
        mib(args.part_size),
        args.concurrency,
        STREAM_CHUNK / 1024
    );
    let mut bench = Bench {
        s3: S3::connect(&args.s3_endpoint, &args.bucket)
            .await?
            .with_unsigned_payload(args.unsigned_payload),
        tus: Tus::new(&args.tusk)?,
        data,
        sha256,
        part_size: usize::try_from(args.part_size)?,
        concurrency: args.concurrency,
        sha_checked: false,
    };

    for side in [Side::Baseline, Side::Tusk] {
        let run = bench.measure(side, "warmup").await?;
        println!(
            "s3-vs-tusk: warm-up {:<8} {:>8.3} s (not counted)",
            name(side),
            secs(run.total)
        );
    }

    let mut baseline = Vec::with_capacity(args.runs);
    let mut tusk = Vec::with_capacity(args.runs);
    for round in 1..=args.runs {
        // Alternate which side goes first, so neither always follows the other's cleanup.
        let order = if round % 2 == 1 {
            [Side::Baseline, Side::Tusk]
        } else {
            [Side::Tusk, Side::Baseline]
        };
        for side in order {
            let run = bench.measure(side, &format!("run{round}")).await?;
            println!(
                "s3-vs-tusk: run {round} {:<8} {:>8.3} s {:>8.1} MiB/s (finish {:.3} s)",
                name(side),
                secs(run.total),
                mib_per_s(args.size, secs(run.total)),
                secs(run.finish)
            );
            match side {
                Side::Baseline => baseline.push(run),
                Side::Tusk => tusk.push(run),
            }
        }
    }

    report(&args, &baseline, &tusk)
}

fn name(side: Side) -> &'static str {
    match side {
        Side::Baseline => "baseline",
        Side::Tusk => "tusk",
    }
}

impl Bench {
    async fn measure(&mut self, side: Side, label: &str) -> Result<Run> {
        match side {
            Side::Baseline => self.baseline(label).await,
            Side::Tusk => self.tusk().await,
        }
    }

    async fn baseline(&self, label: &str) -> Result<Run> {
        let key = format!("baseline-{label}");
        let start = Instant::now();
        let times = self
            .s3
            .multipart_upload(&key, &self.data, self.part_size, self.concurrency)
            .await?;
        let total = start.elapsed();
        debug_assert!(times.parts <= total);
        self.s3.check_size(&key, self.data.len() as u64).await?;
        self.s3.delete(&key).await?;
        Ok(Run {
            total,
            finish: times.complete,
        })
    }

    async fn tusk(&mut self) -> Result<Run> {
        let size = self.data.len() as u64;
        let start = Instant::now();
        let url = self.tus.create(size).await?;
        let (_, streamed) = self
            .tus
            .patch_stream(&url, 0, &self.data, STREAM_CHUNK)
            .await?;
        let end = Instant::now();
        let total = end - start;
        let finish = end.saturating_duration_since(streamed.last_slice_sent);

        let id = upload_id(&url)?;
        self.s3.check_size(&id, size).await?;
        if !self.sha_checked {
            let (got_size, got_sha) = self.s3.object_sha256(&id).await?;
            ensure!(
                got_size == size && got_sha == self.sha256,
                "tusk object {id}: {got_size} bytes with sha256 {got_sha}, expected {size} bytes with {}",
                self.sha256
            );
            println!("s3-vs-tusk: tusk object {id}: size and sha256 match the source");
            self.sha_checked = true;
        }
        self.s3.delete_upload(&id).await?;
        Ok(Run { total, finish })
    }
}

fn report(args: &Args, baseline: &[Run], tusk: &[Run]) -> Result<()> {
    let col = |runs: &[Run], f: fn(&Run) -> Duration| -> Vec<f64> {
        runs.iter().map(|r| secs(f(r))).collect()
    };
    let base_total = col(baseline, |r| r.total);
    let tusk_total = col(tusk, |r| r.total);
    let base_med = median(&base_total);
    let tusk_med = median(&tusk_total);
    let base_finish = median(&col(baseline, |r| r.finish));
    let tusk_finish = median(&col(tusk, |r| r.finish));
    let ratio = if base_med > 0.0 {
        tusk_med / base_med
    } else {
        f64::NAN
    };

    println!();
    println!(
        "Results: {:.0} MiB, {:.0} MiB parts, {} in flight, {} runs",
        mib(args.size),
        mib(args.part_size),
        args.concurrency,
        args.runs
    );
    println!();
    println!(
        "{:<8} {:>12} {:>14} {:>12} {:>14} {:>14}",
        "run", "baseline s", "baseline MiB/s", "tusk s", "tusk MiB/s", "tusk/baseline"
    );
    for (i, (b, t)) in base_total.iter().zip(&tusk_total).enumerate() {
        println!(
            "{:<8} {:>12.3} {:>14.1} {:>12.3} {:>14.1} {:>14.2}",
            i + 1,
            b,
            mib_per_s(args.size, *b),
            t,
            mib_per_s(args.size, *t),
            t / b
        );
    }
    println!(
        "{:<8} {:>12.3} {:>14.1} {:>12.3} {:>14.1} {:>14.2}",
        "median",
        base_med,
        mib_per_s(args.size, base_med),
        tusk_med,
        mib_per_s(args.size, tusk_med),
        ratio
    );
    println!();
    println!("median CompleteMultipartUpload (baseline):           {base_finish:.3} s");
    println!("median last body slice sent -> 204 (tusk):           {tusk_finish:.3} s");
    println!("time ratio tusk / baseline (medians):                {ratio:.2}");
    let summary = serde_json::json!({
        "bench": "s3-vs-tusk",
        "size": args.size,
        "part_size": args.part_size,
        "concurrency": args.concurrency,
        "baseline_s": base_total,
        "tusk_s": tusk_total,
        "baseline_median_s": base_med,
        "tusk_median_s": tusk_med,
        "baseline_median_mib_s": mib_per_s(args.size, base_med),
        "tusk_median_mib_s": mib_per_s(args.size, tusk_med),
        "baseline_complete_median_s": base_finish,
        "tusk_finish_median_s": tusk_finish,
        "ratio": ratio,
    });
    println!("summary {summary}");
    Ok(())
}
