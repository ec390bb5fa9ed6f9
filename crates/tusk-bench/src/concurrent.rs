//! Several uploads at once (one streamed PATCH each, or PATCHes of `--patch-size`) while the
//! tusk process's RSS is sampled: does a node's memory stay near its part-buffer bound?

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::rss::status_field;
use crate::s3::S3;
use crate::stats::{median, mib, mib_per_s, secs};
use crate::tus::{STREAM_CHUNK, Tus, upload_id};

const MAX_UPLOADS: usize = 256;
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The sampler stops after this many samples (about 4 h) even if the uploads never end.
const MAX_SAMPLES: u64 = 4 * 3600 * 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// tusk's upload collection, e.g. http://127.0.0.1:1080/files/
    #[arg(long)]
    tusk: String,
    /// Concurrent uploads
    #[arg(long)]
    uploads: usize,
    /// Bytes per upload
    #[arg(long)]
    size: u64,
    /// Send each upload as sequential PATCHes of this many bytes (default: one PATCH). Sizes
    /// that are not a multiple of tusk's part size make it assemble parts from stored tails.
    #[arg(long)]
    patch_size: Option<u64>,
    /// PID of the tusk process whose RSS is sampled (/proc/PID/status)
    #[arg(long)]
    pid: u32,
    /// tusk's --max-buffered-bytes, to report the peak against it
    #[arg(long)]
    buffer_bound: Option<u64>,
    /// S3 endpoint: if given (with --bucket), check each object's size, then delete it
    #[arg(long, requires = "bucket")]
    s3_endpoint: Option<String>,
    /// Bucket of tusk's node (with --s3-endpoint)
    #[arg(long, requires = "s3_endpoint")]
    bucket: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(
        (1..=MAX_UPLOADS).contains(&args.uploads),
        "--uploads must be 1..={MAX_UPLOADS}"
    );
    ensure!(args.size > 0, "--size must be positive");
    let patch_size = usize::try_from(args.patch_size.unwrap_or(args.size))?;
    ensure!(patch_size > 0, "--patch-size must be positive");
    let data = crate::data::generate(usize::try_from(args.size)?, 0x636f_6e63);
    let tus = Arc::new(Tus::new(&args.tusk)?);
    let s3 = match (&args.s3_endpoint, &args.bucket) {
        (Some(endpoint), Some(bucket)) => Some(S3::connect(endpoint, bucket).await?),
        _ => None,
    };

    let idle = status_field(args.pid, "VmRSS")?;
    println!(
        "concurrent: {} uploads of {:.0} MiB at once, PATCHes of {:.1} MiB; tusk pid {} idle RSS {:.1} MiB",
        args.uploads,
        mib(args.size),
        mib(patch_size as u64),
        args.pid,
        mib(idle)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_rss(args.pid, Arc::clone(&stop)));

    let start = Instant::now();
    let mut uploads = JoinSet::new();
    for _ in 0..args.uploads {
        let tus = Arc::clone(&tus);
        let data = data.clone();
        uploads.spawn(async move {
            let t = Instant::now();
            let url = tus.create(data.len() as u64).await?;
            let mut offset = 0;
            while offset < data.len() {
                let end = (offset + patch_size).min(data.len());
                let body = data.slice(offset..end);
                tus.patch_stream(&url, offset as u64, &body, STREAM_CHUNK)
                    .await?;
                offset = end;
            }
            Ok::<_, anyhow::Error>((url, t.elapsed()))
        });
    }
    let mut finished = Vec::new();
    let mut first_error = None;
    while let Some(joined) = uploads.join_next().await {
        match joined.context("an upload task failed").and_then(|r| r) {
            Ok(done) => finished.push(done),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    let elapsed = secs(start.elapsed());
    stop.store(true, Ordering::Relaxed);
    let (peak_sampled, samples) = sampler.await.context("the RSS sampler failed")??;
    let hwm = status_field(args.pid, "VmHWM")?;
    if let Some(err) = first_error {
        return Err(err);
    }

    if let Some(s3) = &s3 {
        for (url, _) in &finished {
            let id = upload_id(url)?;
            s3.check_size(&id, args.size).await?;
            s3.delete_upload(&id).await?;
        }
        println!(
            "concurrent: all {} objects have {} bytes",
            finished.len(),
            args.size
        );
    }

    let total = args.size * args.uploads as u64;
    let each: Vec<f64> = finished.iter().map(|(_, d)| secs(*d)).collect();
    let peak = peak_sampled.max(hwm);
    println!();
    println!("uploads                  {:>10}", args.uploads);
    println!("bytes per upload         {:>10.1} MiB", mib(args.size));
    println!("total time               {elapsed:>10.3} s");
    println!(
        "aggregate throughput     {:>10.1} MiB/s",
        mib_per_s(total, elapsed)
    );
    println!(
        "per-upload time          {:>10.3} s median ({:.3} .. {:.3})",
        median(&each),
        each.iter().copied().fold(f64::INFINITY, f64::min),
        each.iter().copied().fold(0.0, f64::max)
    );
    println!("idle RSS (VmRSS before)  {:>10.1} MiB", mib(idle));
    println!(
        "peak RSS sampled         {:>10.1} MiB ({samples} samples every {} ms)",
        mib(peak_sampled),
        SAMPLE_EVERY.as_millis()
    );
    println!("peak RSS (VmHWM)         {:>10.1} MiB", mib(hwm));
    println!(
        "peak - idle              {:>10.1} MiB",
        mib(peak.saturating_sub(idle))
    );
    if let Some(bound) = args.buffer_bound {
        println!(
            "buffer bound             {:>10.1} MiB (--max-buffered-bytes)",
            mib(bound)
        );
        println!(
            "(peak - idle) / bound    {:>10.2}",
            peak.saturating_sub(idle) as f64 / bound as f64
        );
    }
    let summary = serde_json::json!({
        "bench": "concurrent",
        "uploads": args.uploads,
        "size": args.size,
        "patch_size": patch_size,
        "seconds": elapsed,
        "aggregate_mib_s": mib_per_s(total, elapsed),
        "idle_rss": idle,
        "peak_rss_sampled": peak_sampled,
        "vm_hwm": hwm,
        "buffer_bound": args.buffer_bound,
    });
    println!("summary {summary}");
    Ok(())
}

/// Sample VmRSS every [`SAMPLE_EVERY`] until `stop` is set; the largest value and the count.
async fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> Result<(u64, u64)> {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut peak = 0;
    let mut samples = 0;
    while samples < MAX_SAMPLES && !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        peak = peak.max(status_field(pid, "VmRSS")?);
        samples += 1;
    }
    Ok((peak, samples))
}
