//! Load over several nodes: many uploads of random sizes, a fixed number at a time, each
//! created on one node and sent to the next, with or without clients that hold connections
//! open by dripping a byte now and then. Reports uploads/s, upload time percentiles, errors,
//! each node's peak RSS against its part buffer bound, and etcd writes and Redis commands per
//! upload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use reqwest::{Client, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::backends::{etcd_revision, redis_commands};
use crate::rss::status_field;
use crate::stats::{MIB, percentile};
use crate::tus::{create_with, delete_with, loopback_url, offset_header};

/// No single request may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Attempts per upload (a 503 or a broken request is resumed from the offset HEAD reports).
const MAX_ATTEMPTS: u32 = 20;
/// Every this many uploads, the stored bytes are downloaded and compared.
const VERIFY_EVERY: usize = 50;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The nodes' upload collections, comma-separated (127.0.0.1 only)
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Uploads in all
    #[arg(long, default_value_t = 1000)]
    uploads: usize,
    /// Uploads at a time
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Smallest and largest upload, MiB (sizes drawn evenly, to the byte)
    #[arg(long, default_value_t = 1)]
    min_mib: u64,
    #[arg(long, default_value_t = 8)]
    max_mib: u64,
    /// Clients that each hold a PATCH open, sending one byte every --drip-every
    #[arg(long, default_value_t = 0)]
    drippers: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    drip_every: Duration,
    /// PIDs of the nodes, comma-separated, for their peak RSS (VmHWM)
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// The nodes' --max-buffered-bytes, to report peak RSS against
    #[arg(long)]
    buffer_bound: Option<u64>,
    /// etcd client URL, for writes per upload (revision delta)
    #[arg(long)]
    etcd: Option<String>,
    /// Redis host:port, for commands per upload (INFO stats)
    #[arg(long)]
    redis: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    ensure!(!args.endpoints.is_empty(), "--endpoints is empty");
    ensure!(
        (1..=100_000).contains(&args.uploads),
        "--uploads must be 1..=100000"
    );
    ensure!(
        (1..=1024).contains(&args.concurrency),
        "--concurrency must be 1..=1024"
    );
    ensure!(args.drippers <= 10_000, "--drippers must be at most 10000");
    ensure!(
        args.min_mib >= 1 && args.max_mib >= args.min_mib,
        "need 1 <= --min-mib <= --max-mib"
    );
    let endpoints: Vec<Url> = args
        .endpoints
        .iter()
        .map(|e| loopback_url(e))
        .collect::<Result<_>>()?;
    let client = Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let max_bytes = args.max_mib * 1024 * 1024;
    let data = crate::data::generate(usize::try_from(max_bytes)?, 0x10ad);
    let sizes = upload_sizes(args.uploads, args.min_mib * 1024 * 1024, max_bytes);

    let stop = Arc::new(AtomicBool::new(false));
    let mut drippers = JoinSet::new();
    for i in 0..args.drippers {
        let endpoint = endpoints[i % endpoints.len()].clone();
        let (client, stop) = (client.clone(), stop.clone());
        let every = args.drip_every;
        drippers.spawn(async move { drip(&client, &endpoint, every, &stop).await });
    }
    if args.drippers > 0 {
        println!(
            "{} dripping clients started (one byte every {:?})",
            args.drippers, args.drip_every
        );
    }

    let etcd_before = match &args.etcd {
        Some(etcd) => Some(etcd_revision(&client, etcd).await?),
        None => None,
    };
    let redis_before = match &args.redis {
        Some(redis) => Some(redis_commands(redis).await?),
        None => None,
    };
    let started = Instant::now();
    let retries = Arc::new(AtomicU64::new(0));
    let mut running = JoinSet::new();
    let mut times = Vec::with_capacity(args.uploads);
    let mut errors = Vec::new();
    let mut next = 0;
    while next < sizes.len() || !running.is_empty() {
        while next < sizes.len() && running.len() < args.concurrency {
            let i = next;
            next += 1;
            let body = data.slice(..usize::try_from(sizes[i])?);
            let (client, endpoints, retries) = (client.clone(), endpoints.clone(), retries.clone());
            running.spawn(async move {
                let t = Instant::now();
                let result = upload(&client, &endpoints, i, body, &retries).await;
                (i, t.elapsed(), result)
            });
        }
        if let Some(done) = running.join_next().await {
            let (i, took, result) = done.context("upload task")?;
            match result {
                Ok(()) => times.push(took.as_secs_f64()),
                Err(err) => errors.push(format!("upload {i}: {err:#}")),
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    drippers.abort_all();

    let ok = times.len();
    let bytes: u64 = sizes.iter().sum();
    println!(
        "{} uploads of {}-{} MiB ({:.0} MiB), {} at a time over {} node(s), {} dripping client(s)",
        args.uploads,
        args.min_mib,
        args.max_mib,
        bytes as f64 / MIB,
        args.concurrency,
        endpoints.len(),
        args.drippers
    );
    println!(
        "  {:.1} uploads/s ({:.1} MiB/s), upload time p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        ok as f64 / wall,
        bytes as f64 / MIB / wall,
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        percentile(&times, 100.0)
    );
    println!(
        "  errors: {} (uploads that did not complete in {MAX_ATTEMPTS} attempts); resumed requests: {}",
        errors.len(),
        retries.load(Ordering::SeqCst)
    );
    for err in errors.iter().take(5) {
        println!("    {err}");
    }
    for pid in &args.pids {
        let peak = status_field(*pid, "VmHWM")?;
        match args.buffer_bound {
            Some(bound) => println!(
                "  node pid {pid}: peak RSS {:.1} MiB ({:.2} x the {:.0} MiB part buffer bound)",
                peak as f64 / MIB,
                peak as f64 / bound as f64,
                bound as f64 / MIB
            ),
            None => println!("  node pid {pid}: peak RSS {:.1} MiB", peak as f64 / MIB),
        }
    }
    if let (Some(etcd), Some(before)) = (&args.etcd, etcd_before) {
        let after = etcd_revision(&client, etcd).await?;
        println!(
            "  etcd: {} writes, {:.1} per upload",
            after - before,
            (after - before) as f64 / args.uploads as f64
        );
    }
    if let (Some(redis), Some(before)) = (&args.redis, redis_before) {
        let after = redis_commands(redis).await?;
        println!(
            "  Redis: {} commands, {:.1} per upload",
            after - before,
            (after - before) as f64 / args.uploads as f64
        );
    }
    Ok(())
}

/// `count` sizes drawn evenly from `min..=max` bytes, the same every run.
fn upload_sizes(count: usize, min: u64, max: u64) -> Vec<u64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            min + state % (max - min + 1)
        })
        .collect()
}

/// One upload: POST on one node, PATCH on the next; after a failed PATCH, HEAD on the node
/// after that and resume. Checks the stored bytes of every [`VERIFY_EVERY`]th upload, then
/// deletes the upload (termination), so the S3 server does not fill up.
async fn upload(
    client: &Client,
    endpoints: &[Url],
    i: usize,
    body: Bytes,
    retries: &AtomicU64,
) -> Result<()> {
    let node = |k: usize| &endpoints[(i + k) % endpoints.len()];
    let size = body.len() as u64;
    let created = create_with(client, node(0), size).await?;
    let id = created
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .context("no id")?
        .to_owned();
    let on = |k: usize| node(k).join(&id);
    let mut offset = 0u64;
    let mut attempt = 0u32;
    while offset < size {
        attempt += 1;
        if attempt > MAX_ATTEMPTS {
            bail!("offset {offset} of {size} after {MAX_ATTEMPTS} attempts");
        }
        if attempt > 1 {
            retries.fetch_add(1, Ordering::Relaxed);
            // A 503 asks for a second's pause (Retry-After: 1).
            tokio::time::sleep(Duration::from_millis(200)).await;
            let head = client
                .head(on(attempt as usize)?)
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await?;
            offset = offset_header(&head)?;
            if offset == size {
                break;
            }
        }
        let sent = client
            .patch(on(attempt as usize)?)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(body.slice(usize::try_from(offset)?..))
            .send()
            .await;
        if let Ok(resp) = sent
            && resp.status() == StatusCode::NO_CONTENT
        {
            offset = offset_header(&resp)?;
        }
    }
    let url = on(0)?;
    if i.is_multiple_of(VERIFY_EVERY) {
        let stored = client.get(url.clone()).send().await?.bytes().await?;
        ensure!(stored == body, "stored bytes differ");
    }
    delete_with(client, &url).await
}

/// A client that creates a deferred-length upload and holds a PATCH declaring 10,000,000 bytes
/// open, sending one byte every `every`, until `stop`; it reconnects when the server ends the
/// PATCH.
async fn drip(client: &Client, endpoint: &Url, every: Duration, stop: &AtomicBool) -> Result<()> {
    let created = client
        .post(endpoint.clone())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Defer-Length", "1")
        .send()
        .await?;
    let location = created
        .headers()
        .get("location")
        .context("no Location")?
        .to_str()?;
    let url = endpoint.join(location)?;
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or(80)
    );
    let mut offset = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut conn = TcpStream::connect(&host).await?;
        let head = format!(
            "PATCH {} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 10000000\r\n\r\n",
            url.path()
        );
        conn.write_all(head.as_bytes()).await?;
        while !stop.load(Ordering::SeqCst) {
            if conn.write_all(b"x").await.is_err() {
                break;
            }
            offset += 1;
            tokio::time::sleep(every).await;
            // The server may have answered (and closed); then start a new PATCH.
            let mut peek = [0u8; 1];
            if tokio::time::timeout(Duration::from_millis(1), conn.peek(&mut peek))
                .await
                .is_ok()
            {
                break;
            }
        }
        // Where the server says we are, for the next PATCH.
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.read_to_end(&mut answer)).await;
        let resp = client
            .head(url.clone())
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await?;
        offset = offset_header(&resp).unwrap_or(offset);
    }
    Ok(())
}
