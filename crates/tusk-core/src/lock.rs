use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{Result, UploadId};

/// Per-upload mutual exclusion. Every request on an upload holds its lock for the request's
/// whole duration.
///
/// A request that finds the lock held asks the holder to let go (the holder's
/// [`LockGuard::release_requested`] fires), then waits up to `wait` for it; after that it fails
/// with `ErrorKind::Locked`.
#[async_trait]
pub trait Locker: Send + Sync + 'static {
    /// Acquire the lock of `id`, asking any holder to release, waiting at most `wait`.
    async fn lock(&self, id: &UploadId, wait: Duration) -> Result<LockGuard>;

    /// Whether the lock service answers (for readiness probes). By default: yes.
    async fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Wait, at most `timeout`, until the locks of dropped guards are given back to the lock
    /// service. A node shutting down calls this last, so its locks are free at once for the
    /// other nodes instead of expiring with their leases. By default there is nothing to wait for.
    async fn flush(&self, timeout: Duration) {
        let _ = timeout;
    }
}

/// A held lock. Dropping it unlocks.
pub struct LockGuard {
    fence: u64,
    kept: bool,
    release_requested: CancellationToken,
    lost: CancellationToken,
    _held: Box<dyn Send + Sync>,
}

impl LockGuard {
    /// A guard for a backend: `held` unlocks when dropped.
    pub fn new(
        fence: u64,
        release_requested: CancellationToken,
        lost: CancellationToken,
        held: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            fence,
            kept: false,
            release_requested,
            lost,
            _held: held,
        }
    }

    /// The fencing token: strictly greater than any earlier holder's for the same upload. A
    /// lock a node keeps between its requests on the upload (the etcd locker does) is still
    /// the same holder's and keeps its token.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Mark the lock as one its node keeps after the request ([`Self::kept`]).
    pub fn kept_after(mut self, kept: bool) -> Self {
        self.kept = kept;
        self
    }

    /// Whether the node keeps this lock after the request, for its next request on the upload
    /// (which then runs under the same fencing token), unless another request asks for it
    /// first. A store may keep per-upload data in memory for that request.
    pub fn kept(&self) -> bool {
        self.kept
    }

    /// Fires when another request asks this holder to let go.
    pub fn release_requested(&self) -> &CancellationToken {
        &self.release_requested
    }

    /// Fires when the lock is no longer ours (for example an expired lease): stop at once.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("fence", &self.fence)
            .field("kept", &self.kept)
            .field("release_requested", &self.release_requested.is_cancelled())
            .field("lost", &self.lost.is_cancelled())
            .finish()
    }
}
