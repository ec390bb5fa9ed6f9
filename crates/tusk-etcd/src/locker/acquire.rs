//! Taking a lock: the lock transaction (which also reads the epoch and withdraws our release
//! request), waiting on a watch of the lock key, giving up at the deadline, and writing the
//! cluster's epoch at its first lock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use tokio::time::{Instant, sleep_until};
use tusk_core::{LockGuard, UploadId};

use super::holder::{RESYNC_BACKOFF, Taken, unlock};
use super::{EtcdLocker, Keys};
use crate::lease::Lease;
use crate::{EtcdError, rpc};

impl EtcdLocker {
    pub(super) async fn acquire(
        &self,
        id: &UploadId,
        wait: Duration,
    ) -> Result<LockGuard, EtcdError> {
        let deadline = Instant::now() + wait;
        let lock_key = self.key("lock", id);
        let release_key = self.key("release", id);
        if let Some(hold) = self.inner.kept.take(&lock_key) {
            // Not on a lease the node retired (an unlock that failed): that lease must go, with
            // the key it could not delete, once its last lock is dropped.
            let usable = !hold.asked.is_cancelled()
                && !hold.lost.is_cancelled()
                && self.inner.lease.is_current(hold.lease()).await;
            if usable {
                tusk_metrics::metrics().locks_kept_reused.inc();
                tracing::debug!(upload_id = %id, "kept etcd lock taken");
                return Ok(self.guard(hold));
            }
            // Another request asked for it, or it is lost: it goes, and this request queues.
            self.unlock_later(hold);
        }
        let follows_own = self.inner.kept.follows_own(&lock_key);
        if let Some(unlocking) = self.inner.releasing.wait(&lock_key) {
            // This node's previous request on the upload is giving the lock back right now:
            // its delete is a round trip away, far sooner than a release request would be
            // answered.
            let _ = tokio::time::timeout_at(deadline, unlocking.cancelled()).await;
        }
        let mut lease = self.inner.lease.get().await?;
        // Lease ids are unique in the cluster and the number is unique on this node, so this
        // tells waiters (and holders) apart.
        let request = self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let token_on = |lease: &Lease| format!("{:x}.{request:x}", lease.id());
        let mut token = token_on(&lease);
        let mut changes: Option<WatchStream> = None;
        let mut asked = false;
        let mut regranted = false;
        loop {
            let attempt = match self.attempt(&lock_key, &release_key, &lease, &token).await {
                // The node's lease is gone before its keep-alive noticed: every lock on it is
                // lost already; this request goes on with a new lease (once).
                Err(e) if e.is_lease_not_found() && !regranted => {
                    regranted = true;
                    lease.gone();
                    lease = self.inner.lease.get().await?;
                    token = token_on(&lease);
                    changes = None;
                    continue;
                }
                attempt => attempt?,
            };
            let seen = match attempt {
                Attempt::Acquired {
                    revision,
                    waiter,
                    epoch,
                } => {
                    let epoch = match epoch {
                        Some(read) => read,
                        // The first lock under this prefix on this cluster.
                        None => self.create_epoch().await,
                    };
                    let epoch = match epoch {
                        Ok(epoch) => epoch,
                        Err(err) => {
                            // Awaited: the lock must be free again when the caller answers.
                            unlock(&self.inner.client, &lock_key, revision).await;
                            return Err(err);
                        }
                    };
                    let keys = Keys {
                        lock_key,
                        release_key,
                        token,
                    };
                    let taken = Taken {
                        revision,
                        epoch,
                        waiter,
                        follows_own,
                    };
                    return self.hold(id, keys, lease, taken);
                }
                Attempt::Held { revision } => {
                    // Counted once per waiting request, as the in-process locker does; later
                    // attempts only rewrite the same request.
                    if !asked {
                        asked = true;
                        tusk_metrics::metrics().lock_release_requests.inc();
                    }
                    revision
                }
            };
            if Instant::now() >= deadline {
                // A zero wait (or a change seen just at the deadline): no watch worth opening.
                return Err(self.give_up(id, wait, &release_key, &token).await);
            }
            // Watch from the revision of our read: a delete between the read and the watch's
            // creation is replayed, not missed.
            let stream = match &mut changes {
                Some(stream) => stream,
                None => changes.insert(
                    rpc(
                        "watch a lock",
                        self.inner.client.watch_client().watch(
                            lock_key.clone(),
                            Some(WatchOptions::new().with_start_revision(seen + 1)),
                        ),
                    )
                    .await?,
                ),
            };
            let woken = tokio::select! {
                biased;
                () = lease.lost().cancelled() => Woken::LeaseLost,
                () = sleep_until(deadline) => Woken::Deadline,
                changed = next_change(stream, seen) => changed,
            };
            match woken {
                Woken::Changed => {}
                // The next attempt opens a new watch from its own read, after a pause: a watch
                // that keeps breaking must not turn this wait into a busy loop on etcd.
                Woken::Broken => {
                    changes = None;
                    tokio::time::sleep_until(deadline.min(Instant::now() + RESYNC_BACKOFF)).await;
                }
                Woken::LeaseLost => return Err(EtcdError::LeaseLost),
                Woken::Deadline => {
                    return Err(self.give_up(id, wait, &release_key, &token).await);
                }
            }
        }
    }

    /// The wait is over and the lock still held.
    async fn give_up(
        &self,
        id: &UploadId,
        wait: Duration,
        release_key: &str,
        token: &str,
    ) -> EtcdError {
        // Awaited: our release request must be gone before the caller answers 423, or the next
        // holder would be asked to let go for nobody. Only ours: a newer waiter may have
        // replaced it.
        let withdraw = Txn::new()
            .when([Compare::value(release_key, CompareOp::Equal, token)])
            .and_then([TxnOp::delete(release_key, None)]);
        if let Err(error) = rpc(
            "withdraw a release request",
            self.inner.client.kv_client().txn(withdraw),
        )
        .await
        {
            tracing::debug!(upload_id = %id, %error, "cannot withdraw a release request");
        }
        tracing::debug!(upload_id = %id, ?wait, "etcd lock still held after the wait");
        EtcdError::Locked
    }

    /// Write the epoch key if it is still absent, and read it: the epoch of whichever node wrote
    /// it first.
    async fn create_epoch(&self) -> Result<u64, EtcdError> {
        let key = self.epoch_key();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| EtcdError::Unexpected("the system clock (before 1970)"))?
            .as_micros();
        let now = u64::try_from(now).map_err(|_| EtcdError::Unexpected("the system clock"))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), now.to_string(), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let reply = rpc("write the epoch", self.inner.client.kv_client().txn(txn)).await?;
        if reply.succeeded() {
            tracing::info!(epoch_micros = now, key = %key, "first lock on this etcd cluster: epoch written");
            return Ok(now);
        }
        match epoch_in(reply.op_responses().first()) {
            Some(epoch) => epoch,
            None => Err(EtcdError::Unexpected("the epoch transaction")),
        }
    }

    /// One transaction: create the lock if absent (and read any release request waiting for
    /// it, drop our own, and read the epoch), else write our release request.
    async fn attempt(
        &self,
        lock_key: &str,
        release_key: &str,
        lease: &Lease,
        token: &str,
    ) -> Result<Attempt, EtcdError> {
        let on_lease = || Some(PutOptions::new().with_lease(lease.id()));
        let epoch_key = self.epoch_key();
        let txn = Txn::new()
            .when([Compare::create_revision(lock_key, CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(lock_key, token, on_lease()),
                TxnOp::get(release_key, None),
                TxnOp::txn(
                    Txn::new()
                        .when([Compare::value(release_key, CompareOp::Equal, token)])
                        .and_then([TxnOp::delete(release_key, None)]),
                ),
                TxnOp::get(epoch_key.as_str(), None),
            ])
            .or_else([TxnOp::put(release_key, token, on_lease())]);
        let reply = rpc("take a lock", self.inner.client.kv_client().txn(txn)).await?;
        let revision = reply
            .header()
            .map(|h| h.revision())
            .ok_or(EtcdError::Unexpected("the lock transaction"))?;
        if !reply.succeeded() {
            return Ok(Attempt::Held { revision });
        }
        let ops = reply.op_responses();
        let waiter = match ops.get(1) {
            Some(TxnOpResponse::Get(get)) => {
                get.kvs().iter().any(|kv| kv.value() != token.as_bytes())
            }
            _ => return Err(EtcdError::Unexpected("the lock transaction")),
        };
        let epoch = epoch_in(ops.get(3));
        Ok(Attempt::Acquired {
            revision,
            waiter,
            epoch,
        })
    }
}

/// The epoch read by a transaction's get of the epoch key: `None` if the key is absent.
fn epoch_in(op: Option<&TxnOpResponse>) -> Option<Result<u64, EtcdError>> {
    let Some(TxnOpResponse::Get(get)) = op else {
        return Some(Err(EtcdError::Unexpected("the epoch read")));
    };
    let kv = get.kvs().first()?;
    Some(
        std::str::from_utf8(kv.value())
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(EtcdError::Unexpected(
                "the epoch key (not a number of microseconds)",
            )),
    )
}

enum Attempt {
    /// We created the lock key at `revision`; `waiter` if a release request was waiting;
    /// `epoch` as read in the same transaction, `None` if not written yet.
    Acquired {
        revision: i64,
        waiter: bool,
        epoch: Option<Result<u64, EtcdError>>,
    },
    /// The lock is held; our release request was written at `revision`.
    Held { revision: i64 },
}

enum Woken {
    Changed,
    Broken,
    LeaseLost,
    Deadline,
}

/// Wait for a change of the lock key after revision `after` (a delete: our turn; a new holder:
/// ask it to release too).
async fn next_change(stream: &mut WatchStream, after: i64) -> Woken {
    loop {
        match stream.message().await {
            Ok(Some(reply)) if !reply.canceled() => {
                let changed = reply
                    .events()
                    .iter()
                    .any(|e| e.kv().is_some_and(|kv| kv.mod_revision() > after));
                if changed {
                    return Woken::Changed;
                }
            }
            _ => return Woken::Broken,
        }
    }
}
