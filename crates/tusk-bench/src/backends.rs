//! What tusk's requests cost its backends, read from the backends themselves: etcd's revision
//! (one per write) and its gRPC message counters, and Redis's command counter.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use reqwest::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tus::loopback_url;

/// A snapshot of the counters of etcd (client URL) and Redis (host:port), either optional.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    etcd_revision: u64,
    /// gRPC messages etcd received, per method (a unary call is one; a watch or keep-alive
    /// stream counts each request on it).
    etcd_messages: BTreeMap<String, u64>,
    redis_commands: u64,
}

/// Where the backends are, for [`Counters::read`].
#[derive(Clone, Debug, Default)]
pub struct Backends {
    pub etcd: Option<String>,
    pub redis: Option<String>,
}

impl Backends {
    pub fn any(&self) -> bool {
        self.etcd.is_some() || self.redis.is_some()
    }

    pub async fn read(&self, client: &Client) -> Result<Counters> {
        let mut counters = Counters::default();
        if let Some(etcd) = &self.etcd {
            counters.etcd_revision = etcd_revision(client, etcd).await?;
            counters.etcd_messages = etcd_messages(client, etcd).await?;
        }
        if let Some(redis) = &self.redis {
            counters.redis_commands = redis_commands(redis).await?;
        }
        Ok(counters)
    }

    /// Print what happened between `before` and `after`, per request of `count` requests of
    /// `what`. The readings themselves are not subtracted: reading etcd's revision is a range
    /// request, counted once per reading, so at most 2 messages in all are the benchmark's own.
    pub fn report(&self, what: &str, count: u64, before: &Counters, after: &Counters) {
        let per = |n: u64| n as f64 / count.max(1) as f64;
        if self.etcd.is_some() {
            let writes = after.etcd_revision.saturating_sub(before.etcd_revision);
            let mut total = 0;
            let mut methods = Vec::new();
            for (method, n) in &after.etcd_messages {
                let d = n.saturating_sub(before.etcd_messages.get(method).copied().unwrap_or(0));
                if d > 0 {
                    total += d;
                    methods.push(format!("{method} {:.2}", per(d)));
                }
            }
            println!(
                "etcd per {what:<6}         {:>10.2} writes, {:.2} requests ({})",
                per(writes),
                per(total),
                methods.join(", ")
            );
        }
        if self.redis.is_some() {
            let commands = after.redis_commands.saturating_sub(before.redis_commands);
            println!(
                "Redis per {what:<6}        {:>10.2} commands",
                per(commands)
            );
        }
    }
}

/// The etcd cluster's revision (every write raises it by one).
pub async fn etcd_revision(client: &Client, endpoint: &str) -> Result<u64> {
    let url = loopback_url(&format!("{}/v3/kv/range", endpoint.trim_end_matches('/')))?;
    let resp = client.post(url).body(r#"{"key":"AA=="}"#).send().await?;
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
    body["header"]["revision"]
        .as_str()
        .context("no revision")?
        .parse()
        .context("revision")
}

/// etcd's `grpc_server_msg_received_total` per method, from its /metrics.
async fn etcd_messages(client: &Client, endpoint: &str) -> Result<BTreeMap<String, u64>> {
    let url = loopback_url(&format!("{}/metrics", endpoint.trim_end_matches('/')))?;
    let text = client.get(url).send().await?.text().await?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("grpc_server_msg_received_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let method = labels
            .split(',')
            .find_map(|l| l.strip_prefix("grpc_method=\""))
            .and_then(|m| m.strip_suffix('"'))
            .unwrap_or("?");
        let value: f64 = value.trim().parse().context("etcd metric value")?;
        // Counters are whole numbers printed as floats.
        *counts.entry(method.to_owned()).or_insert(0) += value as u64;
    }
    ensure!(!counts.is_empty(), "etcd's /metrics has no gRPC counters");
    Ok(counts)
}

/// Redis's `total_commands_processed` (INFO stats), over a plain RESP exchange.
pub async fn redis_commands(host_port: &str) -> Result<u64> {
    let addr: std::net::SocketAddr = host_port.parse().context("--redis must be host:port")?;
    ensure!(addr.ip().is_loopback(), "--redis must be on 127.0.0.1");
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n")
        .await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    // A bulk string: `$<len>\r\n<len bytes>\r\n`.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .context("Redis did not answer")??;
        ensure!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((len, rest)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n"))
            && let Ok(len) = len.parse::<usize>()
            && rest.len() >= len
        {
            return rest
                .lines()
                .find_map(|l| l.strip_prefix("total_commands_processed:"))
                .context("no total_commands_processed")?
                .trim()
                .parse()
                .context("total_commands_processed");
        }
        ensure!(reply.len() < 1 << 20, "Redis's INFO reply is too long");
    }
}
