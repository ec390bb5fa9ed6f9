//! The node's etcd lease, kept alive in the background: every lock and release request of this
//! node is attached to it, so a lock costs no lease of its own and a dead node's keys vanish
//! with its lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{Client, LeaseClient, LeaseKeepAliveStream, LeaseKeeper};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::{EtcdError, REQUEST_TIMEOUT, rpc};

/// The lease this node's locks are attached to. Granted on first use and again after it is
/// lost; shared by every lock taken meanwhile.
pub(crate) struct NodeLease {
    client: Client,
    ttl_secs: i64,
    current: tokio::sync::Mutex<Option<Arc<Lease>>>,
}

impl NodeLease {
    pub(crate) fn new(client: Client, ttl_secs: i64) -> Self {
        Self {
            client,
            ttl_secs,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The live lease, granting a new one if there is none or the last one was lost. Concurrent
    /// callers wait for one grant instead of each granting their own; each waits at most one
    /// request's time in all, so a down etcd cannot queue callers behind each other's grants.
    pub(crate) async fn get(&self) -> Result<Arc<Lease>, EtcdError> {
        let get = async {
            let mut current = self.current.lock().await;
            if let Some(lease) = current.as_ref().filter(|l| !l.lost().is_cancelled()) {
                return Ok(Arc::clone(lease));
            }
            let lease = Arc::new(Lease::grant(&self.client, self.ttl_secs).await?);
            tracing::debug!(
                lease = lease.id(),
                "etcd lease granted for this node's locks"
            );
            *current = Some(Arc::clone(&lease));
            Ok(lease)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, get)
            .await
            .unwrap_or(Err(EtcdError::Timeout {
                op: "grant a lease",
                timeout: REQUEST_TIMEOUT,
            }))
    }

    /// Stop handing out `lease` (a key on it could not be deleted): later locks get a fresh
    /// lease, and this one is revoked when its last lock is dropped, taking the key with it.
    pub(crate) async fn retire(&self, lease: &Lease) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|l| l.id() == lease.id()) {
            *current = None;
        }
    }

    /// Whether `lease` is the node's lease now (not lost, not retired).
    pub(crate) async fn is_current(&self, lease: &Lease) -> bool {
        !lease.lost().is_cancelled()
            && self
                .current
                .lock()
                .await
                .as_ref()
                .is_some_and(|current| current.id() == lease.id())
    }

    /// Revoke the current lease now (at shutdown): every key this node still has goes at once
    /// instead of after the TTL.
    pub(crate) async fn revoke(&self) {
        let lease = self.current.lock().await.take();
        if let Some(lease) = lease {
            lease.revoke().await;
        }
    }
}

/// A granted lease. Its keep-alive task runs until the lease is dropped or revoked; `lost` fires
/// when the lease is gone or may be gone. Dropping the last reference revokes it in a spawned
/// task.
pub(crate) struct Lease {
    id: i64,
    client: LeaseClient,
    stop: CancellationToken,
    lost: CancellationToken,
    revoked: AtomicBool,
}

impl Lease {
    /// Grant a lease of `ttl_secs` and start keeping it alive.
    pub(crate) async fn grant(client: &Client, ttl_secs: i64) -> Result<Self, EtcdError> {
        let mut leases = client.lease_client();
        // The server starts counting after it receives the request, so counting from before
        // sending errs on the safe side.
        let sent = Instant::now();
        let granted = rpc("grant a lease", leases.grant(ttl_secs, None)).await?;
        let ttl = u64::try_from(granted.ttl())
            .ok()
            .filter(|&ttl| ttl > 0 && granted.error().is_empty())
            .ok_or(EtcdError::Unexpected("lease grant"))?;
        let lease = Lease {
            id: granted.id(),
            client: leases,
            stop: CancellationToken::new(),
            lost: CancellationToken::new(),
            revoked: AtomicBool::new(false),
        };
        tokio::spawn(
            KeepAlive {
                client: lease.client.clone(),
                id: lease.id,
                ttl: Duration::from_secs(ttl),
                stop: lease.stop.clone(),
                lost: lease.lost.clone(),
                stream: None,
            }
            .run(sent),
        );
        Ok(lease)
    }

    /// The lease id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Fires when the lease expired, was revoked, or may have expired by the local clock.
    pub(crate) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// etcd says the lease is gone: every lock on it is lost, and [`NodeLease::get`] grants a
    /// new one.
    pub(crate) fn gone(&self) {
        self.lost.cancel();
    }

    /// Revoke now and wait for etcd (bounded), so keys attached to the lease are gone when this
    /// returns; every lock on it is lost. Failures are only logged: the lease expires on its own.
    pub(crate) async fn revoke(&self) {
        self.revoked.store(true, Ordering::Release);
        self.stop.cancel();
        self.lost.cancel();
        revoke(self.client.clone(), self.id).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.revoked.load(Ordering::Acquire) {
            return;
        }
        // Drop is synchronous: revoke in the background. Without a runtime (process shutting
        // down) etcd expires the lease after its TTL instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(revoke(self.client.clone(), self.id));
        }
    }
}

async fn revoke(mut client: LeaseClient, id: i64) {
    if let Err(error) = rpc("revoke a lease", client.revoke(id)).await {
        tracing::debug!(lease = id, %error, "cannot revoke etcd lease; it will expire");
    }
}

struct KeepAlive {
    client: LeaseClient,
    id: i64,
    ttl: Duration,
    stop: CancellationToken,
    lost: CancellationToken,
    stream: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

enum Renewal {
    /// The lease lives for this long again.
    Alive(Duration),
    /// etcd no longer knows the lease (expired or revoked).
    Gone,
}

impl KeepAlive {
    /// Renew at a third of the TTL; fire `lost` when etcd says the lease is gone or when the
    /// local clock says it may have expired without a successful renewal.
    ///
    /// A failed renewal is retried on a fresh stream rather than declared lost at once: the
    /// lease is still valid until its TTL runs out, and a dropped gRPC stream should not abort
    /// every upload in flight. The local deadline makes sure a holder that cannot renew (or
    /// whose process was paused) stops before etcd can hand the lock to someone else.
    async fn run(mut self, granted_at: Instant) {
        let (mut expires, mut next) = self.schedule(granted_at, self.ttl);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = sleep_until(expires) => break,
                () = sleep_until(next) => {}
            }
            // After a pause (SIGSTOP, a blocked runtime) every timer is due at once: trust the
            // clock, not a renewal that might still succeed.
            if Instant::now() >= expires {
                break;
            }
            let sent = Instant::now();
            let attempt_timeout = self.ttl / 3;
            let stop = self.stop.clone();
            let outcome = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = sleep_until(expires) => break,
                outcome = tokio::time::timeout(attempt_timeout, self.renew()) => outcome,
            };
            match outcome {
                Ok(Ok(Renewal::Alive(ttl))) => (expires, next) = self.schedule(sent, ttl),
                Ok(Ok(Renewal::Gone)) => {
                    tracing::debug!(lease = self.id, "etcd says the lease is gone");
                    break;
                }
                Ok(Err(error)) => {
                    tracing::debug!(lease = self.id, %error, "etcd lease keep-alive failed; retrying");
                    self.stream = None;
                    next = Instant::now() + (self.ttl / 10).min(Duration::from_millis(500));
                }
                Err(_) => {
                    tracing::debug!(lease = self.id, "etcd lease keep-alive timed out; retrying");
                    self.stream = None;
                    next = Instant::now();
                }
            }
        }
        tracing::warn!(
            lease = self.id,
            "etcd lease lost: the lock holder must stop"
        );
        self.lost.cancel();
    }

    /// When the lease must be considered lost (a tenth of the TTL early, so the old holder
    /// stops before etcd lets a newcomer in) and when to renew next, after a renewal sent at
    /// `sent` for `ttl`.
    fn schedule(&self, sent: Instant, ttl: Duration) -> (Instant, Instant) {
        (sent + ttl - ttl / 10, sent + ttl / 3)
    }

    async fn renew(&mut self) -> Result<Renewal, etcd_client::Error> {
        if let Some((keeper, replies)) = &mut self.stream {
            keeper.keep_alive().await?;
            return match replies.message().await? {
                Some(reply) => Ok(match u64::try_from(reply.ttl()) {
                    Ok(ttl) if ttl > 0 => Renewal::Alive(Duration::from_secs(ttl)),
                    _ => Renewal::Gone,
                }),
                None => Err(etcd_client::Error::LeaseKeepAliveError(
                    "keep-alive stream ended".to_owned(),
                )),
            };
        }
        match self.client.keep_alive(self.id).await {
            // Opening the stream renews once; the client checked that the reply's TTL is
            // positive, and a renewal restores the granted TTL.
            Ok(stream) => {
                self.stream = Some(stream);
                Ok(Renewal::Alive(self.ttl))
            }
            // The client reports a first reply with TTL 0 ("lease not found") this way.
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(Renewal::Gone),
            Err(e) => Err(e),
        }
    }
}
