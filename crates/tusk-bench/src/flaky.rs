//! The flaky link: one upload through the fault proxy (`tusk_testkit::fault_proxy`), cut every
//! so many bytes by a reset or an orderly close, by a client that HEADs and resumes after each
//! cut as tus clients do; against the same upload through the same proxy without cuts, in the
//! same run. Reports what reached the server over the file's size, attempts and the time ratio.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use clap::Args as ClapArgs;
use reqwest::{Client, StatusCode, Url};
use tusk_testkit::fault_proxy::{ConnPlan, CutKind, FaultProxy, Policy, random_cuts};

use crate::tus::{create_with, delete_with, loopback_url, offset_header};

const MIB: u64 = 1024 * 1024;
/// No single request may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The tus collection URL of the node (127.0.0.1 only), e.g. http://127.0.0.1:1080/files/
    #[arg(long)]
    endpoint: String,
    /// Size of the upload, MiB.
    #[arg(long, default_value_t = 64)]
    size_mib: u64,
    /// Upstream bytes per connection before it is cut, KiB (the mean for random cut points).
    #[arg(long, default_value_t = 1024)]
    cut_kib: u64,
    /// The link's upstream bandwidth, KiB/s (0: as fast as loopback goes, where the fixed cost
    /// of each reconnect dominates the time ratio).
    #[arg(long, default_value_t = 4096)]
    rate_kib: u64,
    /// Rounds of each scenario (the time ratio uses medians).
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

/// How the link breaks in one scenario.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    NoCuts,
    Every(CutKind),
    /// Cut points drawn evenly between half and one and a half times the cut size.
    Random(CutKind),
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::NoCuts => "no cuts".to_owned(),
            Scenario::Every(kind) => format!("{} every cut", kind_name(kind)),
            Scenario::Random(kind) => format!("{} at 0.5-1.5 x cut", kind_name(kind)),
        }
    }

    fn policy(self, cut: u64, seed: u64, rate: Option<u64>) -> Policy {
        match self {
            Scenario::NoCuts => Box::new(move |_| ConnPlan::PASS.at_rate(rate)),
            Scenario::Every(kind) => {
                Box::new(move |_| ConnPlan::cut_after(cut, kind).at_rate(rate))
            }
            Scenario::Random(kind) => {
                let mut cuts = random_cuts(cut / 2, cut + cut / 2, kind, seed);
                Box::new(move |n| cuts(n).at_rate(rate))
            }
        }
    }
}

fn kind_name(kind: CutKind) -> &'static str {
    match kind {
        CutKind::Rst => "RST",
        CutKind::Fin => "FIN",
        CutKind::HangThenRst(_) => "hang+RST",
    }
}

/// One upload's figures.
struct Outcome {
    forwarded: u64,
    attempts: u64,
    elapsed: Duration,
}

pub async fn run(args: Args) -> Result<()> {
    let endpoint = loopback_url(&args.endpoint)?;
    let size = args.size_mib * MIB;
    let cut = args.cut_kib * 1024;
    let rate = (args.rate_kib > 0).then_some(args.rate_kib * 1024);
    ensure!(
        size > 0 && cut > 0,
        "--size-mib and --cut-kib must be above 0"
    );
    let data = crate::data::generate(size as usize, 0x51A4);
    let scenarios = [
        Scenario::NoCuts,
        Scenario::Every(CutKind::Rst),
        Scenario::Every(CutKind::Fin),
        Scenario::Random(CutKind::Rst),
        Scenario::Random(CutKind::Fin),
    ];
    println!(
        "flaky link: {} MiB, cut after {} KiB of upstream traffic per connection, {}, {} run(s)",
        args.size_mib,
        args.cut_kib,
        match rate {
            Some(_) => format!("link at {} KiB/s", args.rate_kib),
            None => "link unthrottled".to_owned(),
        },
        args.runs
    );
    println!(
        "{:<24} {:>10} {:>9} {:>10} {:>11}",
        "scenario", "sent/size", "attempts", "time (s)", "time ratio"
    );
    let mut baseline = None;
    for scenario in scenarios {
        let mut outcomes = Vec::new();
        for run in 0..args.runs {
            let seed = 0x9E37 + run as u64;
            outcomes.push(upload(&endpoint, &data, scenario.policy(cut, seed, rate)).await?);
        }
        let mut times: Vec<f64> = outcomes.iter().map(|o| o.elapsed.as_secs_f64()).collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let base = *baseline.get_or_insert(median);
        let sent = outcomes.iter().map(|o| o.forwarded).sum::<u64>() as f64
            / (size as f64 * outcomes.len() as f64);
        let attempts = outcomes.iter().map(|o| o.attempts).sum::<u64>() / outcomes.len() as u64;
        println!(
            "{:<24} {:>10.4} {:>9} {:>10.2} {:>11.2}",
            scenario.name(),
            sent,
            attempts,
            median,
            median / base
        );
    }
    Ok(())
}

/// Upload `data` through a fresh proxy planned by `policy`, resuming after every cut; checks
/// the stored bytes.
async fn upload(endpoint: &Url, data: &Bytes, policy: Policy) -> Result<Outcome> {
    let node = endpoint
        .socket_addrs(|| None)?
        .into_iter()
        .next()
        .context("no address")?;
    let proxy = FaultProxy::start(node, Box::new(|_| ConnPlan::PASS)).await?;
    let mut via = endpoint.clone();
    via.set_port(Some(proxy.addr().port()))
        .ok()
        .context("proxy port")?;
    // A fresh connection for every request: a tus client on a broken link reconnects anyway,
    // and each connection then gets its own cut point.
    let client = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let size = data.len() as u64;
    let url = create_with(&client, &via, size).await?;
    // Direct to the node, for the check at the end.
    let mut direct = url.clone();
    direct.set_port(endpoint.port()).ok().context("port")?;
    let upstream_before = proxy.upstream_bytes();
    proxy.set_policy(policy);
    // Far more than any sane run needs; a run that needs them is reported as a failure.
    let max_attempts = 20 * (size / MIB + 1) + 100;
    let started = Instant::now();
    let mut offset = 0u64;
    let mut attempts = 0u64;
    while offset < size {
        attempts += 1;
        if attempts > max_attempts {
            bail!("no progress: offset {offset} of {size} after {max_attempts} attempts");
        }
        let body = data.slice(offset as usize..);
        let sent = client
            .patch(url.clone())
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status() == StatusCode::NO_CONTENT => {
                offset = offset_header(&resp)?;
            }
            // Cut: ask the server what it kept, as tus clients do.
            _ => offset = head(&client, &url).await?,
        }
    }
    let elapsed = started.elapsed();
    let forwarded = proxy.upstream_bytes() - upstream_before;
    let stored = client.get(direct.clone()).send().await?.bytes().await?;
    ensure!(
        stored == *data,
        "stored bytes differ from the file ({} of {} bytes)",
        stored.len(),
        data.len()
    );
    delete_with(&client, &direct).await?;
    Ok(Outcome {
        forwarded,
        attempts,
        elapsed,
    })
}

/// The upload's offset (HEAD), retried while the link cuts the HEAD itself.
async fn head(client: &Client, url: &Url) -> Result<u64> {
    for _ in 0..20 {
        if let Ok(resp) = client
            .head(url.clone())
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            && resp.status() == StatusCode::OK
        {
            return offset_header(&resp);
        }
    }
    bail!("HEAD {url} failed 20 times")
}
