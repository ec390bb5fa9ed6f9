//! A fault-injecting TCP proxy for tests and benchmarks, on 127.0.0.1: it forwards each client
//! connection to one upstream address and breaks connections the way mobile links and proxies
//! do (reset, orderly close, a hang then a reset) after a chosen number of upstream bytes, adds
//! latency, and counts what it forwarded.
//!
//! A cut happens only once the upstream kernel has acknowledged every byte forwarded on that
//! connection (the proxy's socket has nothing unacknowledged in its send queue, read from
//! `/proc/net/tcp`) and, for a server on this machine, once the server has read them from its
//! kernel (bounded), so whatever the server loses after a cut is the server's doing.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a cut waits for the upstream kernel to acknowledge what was forwarded.
const ACK_PATIENCE: Duration = Duration::from_secs(20);
/// How long a cut waits for a local server to read what its kernel acknowledged.
const READ_PATIENCE: Duration = Duration::from_secs(5);
/// How long an orderly close waits for the server to close its side.
const CLOSE_PATIENCE: Duration = Duration::from_secs(30);

/// How a connection is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// Both sides get a TCP reset (`SO_LINGER` 0, then close).
    Rst,
    /// The upstream gets an orderly end of stream (FIN) and the client's side is closed.
    Fin,
    /// Nothing moves either way for this long, then both sides get a reset.
    HangThenRst(Duration),
}

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnPlan {
    /// Break the connection once this many bytes went upstream.
    pub cut: Option<(u64, CutKind)>,
    /// Wait this long before forwarding each chunk upstream.
    pub latency: Duration,
    /// Forward upstream at most this many bytes per second (a link's bandwidth).
    pub rate: Option<u64>,
}

impl ConnPlan {
    /// Forward everything, promptly.
    pub const PASS: ConnPlan = ConnPlan {
        cut: None,
        latency: Duration::ZERO,
        rate: None,
    };

    /// Cut after `bytes` upstream bytes.
    pub fn cut_after(bytes: u64, kind: CutKind) -> ConnPlan {
        ConnPlan {
            cut: Some((bytes, kind)),
            ..ConnPlan::PASS
        }
    }

    /// The same plan on a link of `bytes_per_second` (`None`: as fast as loopback goes).
    pub fn at_rate(self, bytes_per_second: Option<u64>) -> ConnPlan {
        ConnPlan {
            rate: bytes_per_second.filter(|r| *r > 0),
            ..self
        }
    }
}

/// Chooses each connection's plan from its number (0 for the first connection).
pub type Policy = Box<dyn FnMut(u64) -> ConnPlan + Send>;

/// A policy that cuts every connection after a number of bytes drawn evenly from
/// `min..=max` (a fixed seed makes runs repeatable).
pub fn random_cuts(min: u64, max: u64, kind: CutKind, seed: u64) -> Policy {
    let mut state = seed | 1;
    Box::new(move |_| {
        // xorshift64: plenty for spreading cut points.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let span = max.saturating_sub(min) + 1;
        ConnPlan::cut_after(min + state % span, kind)
    })
}

/// What happened on one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnRecord {
    /// Bytes forwarded from the client to the upstream.
    pub upstream_bytes: u64,
    /// The connection was cut by the plan.
    pub cut: bool,
    /// The cut went ahead although the upstream had not acknowledged everything in time.
    pub cut_unacknowledged: bool,
}

#[derive(Default)]
struct Shared {
    upstream_bytes: AtomicU64,
    connections: Mutex<Vec<ConnRecord>>,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    policy: Arc<Mutex<Policy>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream`, planning each connection
    /// with `policy`.
    pub async fn start(upstream: SocketAddr, policy: Policy) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let policy = Arc::new(Mutex::new(policy));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            shared.clone(),
            policy.clone(),
        ));
        Ok(FaultProxy {
            addr,
            shared,
            policy,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Plan the connections accepted from now on with `policy`.
    pub fn set_policy(&self, policy: Policy) {
        *lock(&self.policy) = policy;
    }

    /// Bytes forwarded upstream over all connections so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.shared.upstream_bytes.load(Ordering::SeqCst)
    }

    /// One record per connection accepted so far, in order.
    pub fn connections(&self) -> Vec<ConnRecord> {
        lock(&self.shared.connections).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    policy: Arc<Mutex<Policy>>,
) {
    // The connections' tasks end with the proxy.
    let mut tasks = tokio::task::JoinSet::new();
    let mut number = 0u64;
    while let Ok((client, _)) = listener.accept().await {
        let plan = (lock(&policy))(number);
        let index = {
            let mut connections = lock(&shared.connections);
            connections.push(ConnRecord::default());
            connections.len() - 1
        };
        number += 1;
        tasks.spawn(forward(client, upstream, plan, shared.clone(), index));
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    plan: ConnPlan,
    shared: Arc<Shared>,
    index: usize,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Server to client, as it comes; the other direction is where the faults are. At a cut
    // the task hands the client's write half back (to be reset), or after an orderly cut
    // drops it and reads what the server still says, so that closing the upstream socket
    // with unread bytes does not turn the FIN into a reset.
    let (stop, mut stopped) = tokio::sync::watch::channel(Stop::No);
    let mut downstream = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut to_client = Some(to_client);
        loop {
            let read = tokio::select! {
                read = from_server.read(&mut buf) => read,
                _ = stopped.changed(), if to_client.is_some() => match *stopped.borrow() {
                    Stop::Reset => return to_client,
                    Stop::Drain => {
                        to_client = None;
                        continue;
                    }
                    Stop::No => continue,
                },
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(client) = &mut to_client
                        && client.write_all(&buf[..n]).await.is_err()
                    {
                        break;
                    }
                }
            }
        }
        if let Some(mut client) = to_client {
            let _ = client.shutdown().await;
        }
        None
    });
    // Small chunks on a slow link, so its pace is even.
    let mut buf = vec![
        0u8;
        if plan.rate.is_some() {
            16 * 1024
        } else {
            64 * 1024
        }
    ];
    let mut sent = 0u64;
    let started = tokio::time::Instant::now();
    loop {
        let want = match plan.cut {
            Some((at, _)) => (at.saturating_sub(sent) as usize).min(buf.len()),
            None => buf.len(),
        };
        if want == 0 {
            break;
        }
        let n = tokio::select! {
            read = from_client.read(&mut buf[..want]) => match read {
                Ok(n) => n,
                Err(_) => {
                    // The client reset its side: pass the reset on.
                    reset(to_server.as_ref());
                    to_server.forget();
                    downstream.abort();
                    return;
                }
            },
            // The server closed or reset; the client's side has been closed in turn.
            _ = &mut downstream => return,
        };
        if n == 0 {
            let _ = to_server.shutdown().await;
            let _ = downstream.await;
            return;
        }
        if !plan.latency.is_zero() {
            tokio::time::sleep(plan.latency).await;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            downstream.abort();
            return;
        }
        sent += n as u64;
        shared.upstream_bytes.fetch_add(n as u64, Ordering::SeqCst);
        lock(&shared.connections)[index].upstream_bytes = sent;
        if let Some(rate) = plan.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            tokio::time::sleep_until(started + due).await;
        }
    }
    // The cut point: everything up to it was forwarded.
    let Some((_, kind)) = plan.cut else { return };
    let acknowledged = wait_acknowledged(&to_server).await;
    {
        let mut connections = lock(&shared.connections);
        connections[index].cut = true;
        connections[index].cut_unacknowledged = !acknowledged;
    }
    match kind {
        CutKind::Rst | CutKind::HangThenRst(_) => {
            let _ = stop.send(Stop::Reset);
            let to_client = (&mut downstream).await.ok().flatten();
            if let CutKind::HangThenRst(hang) = kind {
                tokio::time::sleep(hang).await;
            }
            reset(to_server.as_ref());
            reset(from_client.as_ref());
            // No orderly shutdown on the way out: the reset is the first thing either side sees.
            to_server.forget();
            if let Some(to_client) = to_client {
                to_client.forget();
            }
        }
        CutKind::Fin => {
            let _ = to_server.shutdown().await;
            let _ = stop.send(Stop::Drain);
            drop(from_client);
            if tokio::time::timeout(CLOSE_PATIENCE, &mut downstream)
                .await
                .is_err()
            {
                downstream.abort();
            }
        }
    }
}

/// What the server-to-client task is told at a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    No,
    /// Hand the client's write half back, to be reset.
    Reset,
    /// Close the client's side; keep reading the server's until it closes.
    Drain,
}

/// Reset the connection of `stream` when its last handle is dropped.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Wait (bounded) until the peer's kernel acknowledged everything sent on `stream` and, when
/// the peer is on this machine, until the peer's program has read it all from its kernel: the
/// bytes are then in the server's own hands, where a cut must not lose them. A peer that does
/// not read (backpressure) is given [`READ_PATIENCE`], then the cut goes ahead anyway.
async fn wait_acknowledged(stream: &OwnedWriteHalf) -> bool {
    let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr()) else {
        return false;
    };
    let start = tokio::time::Instant::now();
    let mut acknowledged = false;
    loop {
        let ours = socket_queues(local, peer).ok().flatten();
        acknowledged = acknowledged || ours.is_some_and(|(tx, _)| tx == 0);
        let theirs = socket_queues(peer, local).ok().flatten();
        let read = theirs.is_none_or(|(_, rx)| rx == 0);
        if acknowledged && (read || start.elapsed() >= READ_PATIENCE) {
            return true;
        }
        if start.elapsed() >= ACK_PATIENCE {
            return acknowledged;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Bytes sent on the IPv4 TCP connection `local` -> `peer` that its peer has not acknowledged
/// yet (`tx_queue` in `/proc/net/tcp`); `None` if the connection is not listed.
pub fn unacknowledged_bytes(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u64>> {
    Ok(socket_queues(local, peer)?.map(|(tx, _)| tx))
}

/// The send and receive queues (`tx_queue`, `rx_queue`) of the IPv4 TCP socket `local` ->
/// `peer` on this machine; `None` if it is not listed.
pub fn socket_queues(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<(u64, u64)>> {
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(l), Some(r), Some(queues)) = (fields.get(1), fields.get(2), fields.get(4)) else {
            return None;
        };
        if parse_proc_addr(l)? != local || parse_proc_addr(r)? != peer {
            return None;
        }
        let (tx, rx) = queues.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    }))
}

/// `0100007F:1F90` (address in the kernel's byte order, port in hex) as a socket address.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let addr = u32::from_str_radix(addr, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(addr.to_ne_bytes()), port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse_in_kernel_order() {
        let addr = parse_proc_addr("0100007F:1F90").expect("parses");
        assert_eq!(addr, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(parse_proc_addr("nonsense"), None);
    }

    #[test]
    fn random_cuts_stay_in_range_and_vary() {
        let mut policy = random_cuts(100, 200, CutKind::Rst, 7);
        let cuts: Vec<u64> = (0..50).map(|i| policy(i).cut.expect("cuts").0).collect();
        assert!(cuts.iter().all(|c| (100..=200).contains(c)));
        assert!(cuts.iter().any(|c| *c != cuts[0]));
    }
}
