//! The [`Locker`] on etcd: lock keys with leases, release requests, fencing by revision.
//!
//! This file holds the locker's type and the [`Locker`] impl; connecting (`connect`), taking a
//! lock (`acquire`) and holding it until it is dropped (`holder`) each have a file of their own.

mod acquire;
mod connect;
mod holder;
mod kept;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::Client;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tusk_core::{LockGuard, Locker, UploadId};

use crate::lease::NodeLease;
use crate::{EtcdError, rpc};

/// Per-upload locks on etcd, shared by every tusk node pointing at the same cluster and
/// `key_prefix`. Cheap to clone.
///
/// A lock is a key `<prefix>lock/<id>` on the node's lease (one per node, kept alive in the
/// background); its fencing token is made of the key's create revision and the cluster's epoch
/// key. A request that finds the lock held writes `<prefix>release/<id>` (the holder's
/// [`LockGuard::release_requested`] fires, on whichever node it runs) and takes the lock as soon
/// as the key is deleted.
///
/// A guard's [`LockGuard::lost`] fires when etcd says the node's lease is gone, when the lock
/// key is deleted from outside, or when the lease may have expired by the local clock (a tenth
/// of the TTL early, so a partitioned or paused holder stops before etcd lets anyone else in).
/// Dropping the guard deletes the key in a spawned task, or, when this node's requests on the
/// upload follow each other, keeps the lock a moment for the next one (`kept`).
#[derive(Clone)]
pub struct EtcdLocker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    prefix: String,
    ttl_secs: i64,
    endpoints: String,
    lease: NodeLease,
    /// Numbers this node's lock requests, so each has its own token on the shared lease.
    requests: AtomicU64,
    /// Unlocks of dropped guards still talking to etcd; `flush` waits for them.
    unlocks: TaskTracker,
    /// The same unlocks by lock key, for this node's next request on the upload to wait on.
    releasing: Releasing,
    /// Locks kept between this node's requests on an upload.
    kept: kept::Kept,
    /// The runtime `connect` ran on, which owns the client's connections. Unlocks run there:
    /// a request's own runtime (an HTTP worker's) may stop before the unlock is done.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for EtcdLocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLocker")
            .field("endpoints", &self.inner.endpoints)
            .field("key_prefix", &self.inner.prefix)
            .field("lease_ttl_secs", &self.inner.ttl_secs)
            .finish()
    }
}
impl EtcdLocker {
    fn key(&self, kind: &str, id: &UploadId) -> String {
        format!("{}{kind}/{}", self.inner.prefix, id.as_str())
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.inner.prefix)
    }
}

#[async_trait]
impl Locker for EtcdLocker {
    async fn check(&self) -> tusk_core::Result<()> {
        let mut kv = self.inner.client.kv_client();
        let key = format!("{}lock/", self.inner.prefix);
        rpc(
            "check etcd",
            kv.get(key, Some(etcd_client::GetOptions::new().with_count_only())),
        )
        .await?;
        Ok(())
    }

    async fn flush(&self, timeout: Duration) {
        for hold in self.inner.kept.close() {
            self.unlock_later(hold);
        }
        self.inner.unlocks.close();
        if tokio::time::timeout(timeout, self.inner.unlocks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.inner.unlocks.len(),
                "some etcd locks were not released in time; the node's lease is revoked instead"
            );
        }
        self.inner.unlocks.reopen();
        self.inner.kept.reopen();
        // Whatever this node still has in etcd (a lock whose unlock failed, a waiter's release
        // request) goes with the lease now, not a TTL later.
        self.inner.lease.revoke().await;
    }

    async fn lock(&self, id: &UploadId, wait: Duration) -> tusk_core::Result<LockGuard> {
        self.acquire(id, wait).await.map_err(|e| {
            if !matches!(e, EtcdError::Locked) {
                tracing::warn!(upload_id = %id, error = %e, "etcd lock failed");
            }
            e.into()
        })
    }
}
/// Lock keys whose unlock this node has sent and etcd has not confirmed yet: a request of this
/// node for the same lock waits for it (a fraction of a millisecond) rather than finding the
/// key held, writing a release request and watching, which took tens of milliseconds. Entries
/// live as long as their unlock task, so the map holds at most the node's unlocks in flight.
#[derive(Default)]
struct Releasing {
    keys: std::sync::Mutex<std::collections::HashMap<String, (u64, CancellationToken)>>,
    next: AtomicU64,
}

impl Releasing {
    /// An unlock of `key` starts; returns its number, for [`Releasing::finish`].
    fn start(&self, key: &str) -> (u64, CancellationToken) {
        let entry = (
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            CancellationToken::new(),
        );
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(key.to_owned(), entry.clone());
        }
        entry
    }

    /// The unlock `done` of `key` is over (done or given up): wake whoever waits on it.
    fn finish(&self, key: &str, done: (u64, CancellationToken)) {
        done.1.cancel();
        if let Ok(mut keys) = self.keys.lock()
            && keys.get(key).is_some_and(|(n, _)| *n == done.0)
        {
            keys.remove(key);
        }
    }

    /// What to wait on for this node's unlock of `key` in flight, if there is one: cancelled
    /// once it is over.
    fn wait(&self, key: &str) -> Option<CancellationToken> {
        let keys = self.keys.lock().ok()?;
        keys.get(key).map(|(_, done)| done.clone())
    }
}

/// The keys of one lock request and its token (the lease id, unique per request).
struct Keys {
    lock_key: String,
    release_key: String,
    token: String,
}
