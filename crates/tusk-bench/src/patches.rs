//! One upload sent as many small sequential PATCHes: how many PATCHes per second, and how the
//! latency is distributed (the PATCHes that fill a part pay for its UploadPart). Then HEADs of
//! the finished upload. With --etcd and --redis, what a PATCH and a HEAD cost each backend.

use std::time::Instant;

use anyhow::{Result, ensure};

use crate::backends::Backends;
use crate::s3::S3;
use crate::stats::{median, mib, mib_per_s, percentile, secs};
use crate::tus::{Tus, upload_id};

const MAX_PATCHES: u64 = 100_000;
/// How many of the slowest PATCHes are listed.
const SLOWEST: usize = 5;
/// How many groups the latency profile has.
const PROFILE_GROUPS: usize = 32;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// tusk's upload collection, e.g. http://127.0.0.1:1080/files/
    #[arg(long)]
    tusk: String,
    /// Bytes of the upload
    #[arg(long)]
    total: u64,
    /// Bytes per PATCH (the last one may be shorter)
    #[arg(long)]
    patch: u64,
    /// S3 endpoint: if given (with --bucket), check the object's size and sha256, then delete it
    #[arg(long, requires = "bucket")]
    s3_endpoint: Option<String>,
    /// Bucket of tusk's node (with --s3-endpoint)
    #[arg(long, requires = "s3_endpoint")]
    bucket: Option<String>,
    /// HEADs of the finished upload, timed one after another
    #[arg(long, default_value_t = 200)]
    heads: u64,
    /// etcd client URL: etcd writes and gRPC requests per PATCH and per HEAD
    #[arg(long)]
    etcd: Option<String>,
    /// Redis host:port: Redis commands per PATCH and per HEAD
    #[arg(long)]
    redis: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(
        args.total > 0 && args.patch > 0,
        "--total and --patch must be positive"
    );
    let count = args.total.div_ceil(args.patch);
    ensure!(
        count <= MAX_PATCHES,
        "at most {MAX_PATCHES} PATCHes (got {count})"
    );
    let data = crate::data::generate(usize::try_from(args.total)?, 0x7061_7463);
    let tus = Tus::new(&args.tusk)?;
    let s3 = match (&args.s3_endpoint, &args.bucket) {
        (Some(endpoint), Some(bucket)) => Some(S3::connect(endpoint, bucket).await?),
        _ => None,
    };

    println!(
        "patches: {:.1} MiB as {count} sequential PATCHes of {} KiB",
        mib(args.total),
        args.patch / 1024
    );
    ensure!(args.heads <= MAX_PATCHES, "at most {MAX_PATCHES} HEADs");
    let backends = Backends {
        etcd: args.etcd.clone(),
        redis: args.redis.clone(),
    };
    let url = tus.create(args.total).await?;
    let before_patches = backends.read(tus.client()).await?;
    let mut latencies = Vec::new();
    let mut offset = 0u64;
    let start = Instant::now();
    for slice in crate::data::slices(&data, usize::try_from(args.patch)?) {
        let t = Instant::now();
        offset = tus.patch(&url, offset, slice).await?;
        latencies.push((secs(t.elapsed()), offset));
    }
    let elapsed = secs(start.elapsed());
    ensure!(
        offset == args.total,
        "upload ended at {offset}, expected {}",
        args.total
    );
    let after_patches = backends.read(tus.client()).await?;
    let mut heads = Vec::new();
    for _ in 0..args.heads {
        let t = Instant::now();
        let at = tus.head(&url).await?;
        heads.push(secs(t.elapsed()) * 1000.0);
        ensure!(
            at == args.total,
            "HEAD reported {at}, expected {}",
            args.total
        );
    }
    let after_heads = backends.read(tus.client()).await?;

    if let Some(s3) = &s3 {
        let id = upload_id(&url)?;
        let (size, sha) = s3.object_sha256(&id).await?;
        let want = crate::data::sha256_hex(&data);
        ensure!(
            size == args.total && sha == want,
            "object {id}: {size} bytes, sha256 {sha}; expected {} bytes, {want}",
            args.total
        );
        println!("patches: object {id}: size and sha256 match the source");
        s3.delete_upload(&id).await?;
    }

    let ms: Vec<f64> = latencies.iter().map(|(s, _)| s * 1000.0).collect();
    let rate = latencies.len() as f64 / elapsed;
    let (p50, p99) = (percentile(&ms, 50.0), percentile(&ms, 99.0));
    let max = percentile(&ms, 100.0);
    println!();
    println!("PATCHes                 {:>10}", latencies.len());
    println!("total time              {elapsed:>10.3} s");
    println!("PATCHes/s               {rate:>10.1}");
    println!(
        "throughput              {:>10.1} MiB/s",
        mib_per_s(args.total, elapsed)
    );
    println!("latency median          {:>10.2} ms", median(&ms));
    println!("latency p50             {p50:>10.2} ms");
    println!("latency p99             {p99:>10.2} ms");
    println!("latency max             {max:>10.2} ms");
    // The latency profile along the upload shows whether a PATCH's cost depends on where it
    // lands within a part (a stored tail that is re-read, a part sent at a boundary).
    let group = (latencies.len() / PROFILE_GROUPS).max(1);
    let profile: Vec<String> = ms
        .chunks(group)
        .map(|g| format!("{:.1}", g.iter().sum::<f64>() / g.len() as f64))
        .collect();
    println!("mean latency of each run of {group} consecutive PATCHes (ms):");
    println!("  {}", profile.join(" "));
    let mut slowest: Vec<(usize, f64, u64)> = latencies
        .iter()
        .enumerate()
        .map(|(i, (s, end))| (i + 1, s * 1000.0, *end))
        .collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(SLOWEST);
    println!("slowest PATCHes (number: ms, offset after it in MiB):");
    for (n, ms, end) in &slowest {
        println!("  #{n:<5} {ms:>9.2} ms  {:>8.2} MiB", mib(*end));
    }
    if !heads.is_empty() {
        println!("HEADs                   {:>10}", heads.len());
        println!(
            "HEAD latency p50        {:>10.2} ms",
            percentile(&heads, 50.0)
        );
        println!(
            "HEAD latency p99        {:>10.2} ms",
            percentile(&heads, 99.0)
        );
    }
    if backends.any() {
        let count = latencies.len() as u64;
        backends.report("PATCH", count, &before_patches, &after_patches);
        backends.report("HEAD", args.heads, &after_patches, &after_heads);
    }
    let summary = serde_json::json!({
        "bench": "patches",
        "total": args.total,
        "patch": args.patch,
        "patches": latencies.len(),
        "seconds": elapsed,
        "patches_per_s": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
        "head_p50_ms": (!heads.is_empty()).then(|| percentile(&heads, 50.0)),
    });
    println!("summary {summary}");
    Ok(())
}
