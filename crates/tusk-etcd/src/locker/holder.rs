//! Holding a lock: the guard's [`Held`] (dropping it unlocks), the [`Holder`] task that watches
//! for release requests and for the lock key lost, and `unlock`.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, Txn, TxnOp, TxnOpResponse, WatchFilterType, WatchOptions,
};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tusk_core::{LockGuard, UploadId};

use super::{EtcdLocker, Keys};
use crate::lease::Lease;
use crate::{EtcdError, fence, rpc};

/// How long a holder waits before it watches its lock (for release requests and for its key
/// deleted from outside). Locks held for less cost etcd two requests: take and unlock.
const WATCH_DELAY: Duration = Duration::from_millis(100);

/// Pause before a holder re-reads its lock after its watch broke, so a down etcd is not
/// hammered.
pub(super) const RESYNC_BACKOFF: Duration = Duration::from_millis(200);

impl EtcdLocker {
    /// The guard of a lock just taken (see [`Taken`]).
    pub(super) fn hold(
        &self,
        id: &UploadId,
        keys: Keys,
        lease: Arc<Lease>,
        taken: Taken,
    ) -> Result<LockGuard, EtcdError> {
        let Keys {
            lock_key,
            release_key,
            token,
        } = keys;
        let Taken {
            revision,
            epoch,
            waiter,
            follows_own,
        } = taken;
        let fence = fence(epoch, revision)
            .ok_or(EtcdError::Unexpected("the lock transaction (revision)"))?;
        let asked = CancellationToken::new();
        if waiter {
            // Someone was already waiting for the previous holder: make way for them at once.
            asked.cancel();
        }
        // A child: losing this lock (its key deleted from outside) must not cancel the node's
        // lease for every other lock.
        let lost = lease.lost().child_token();
        let stop = CancellationToken::new();
        let watch_now = CancellationToken::new();
        // On the locker's runtime: a kept lock outlives its request, and the request's runtime
        // (an HTTP worker's) may stop first.
        self.inner.runtime.spawn(
            Holder {
                client: self.inner.client.clone(),
                lock_key: lock_key.clone(),
                release_key,
                token,
                revision,
                release: asked.clone(),
                lost: lost.clone(),
                stop: stop.clone(),
                watch_now: watch_now.clone(),
            }
            .run(),
        );
        tracing::debug!(upload_id = %id, fence, "etcd lock taken");
        Ok(self.guard(Hold {
            lock_key,
            revision,
            fence,
            lease,
            stop,
            asked,
            lost,
            watch_now,
            keep: follows_own,
        }))
    }

    /// A guard over `hold`, for one request.
    pub(super) fn guard(&self, hold: Hold) -> LockGuard {
        let kept = hold.keep;
        LockGuard::new(
            hold.fence,
            hold.asked.clone(),
            hold.lost.clone(),
            Box::new(Held {
                locker: self.clone(),
                hold: Some(hold),
            }),
        )
        .kept_after(kept)
    }

    /// A request is done with `hold`: keep it for this node's next request on the upload when
    /// that is worth it and safe (nobody asked for it, it is not lost), else unlock.
    fn give_back(&self, hold: Hold) {
        if hold.keep && !hold.asked.is_cancelled() && !hold.lost.is_cancelled() {
            // From now on a request of another node must be heard at once, not after the delay
            // that spares short locks a watch.
            hold.watch_now.cancel();
            match self.inner.kept.put(self, hold) {
                Ok(()) => return,
                Err(hold) => return self.unlock_later(hold),
            }
        }
        self.unlock_later(hold);
    }

    /// Delete the lock key of `hold` in a task of the locker's runtime (tracked, for `flush`).
    pub(super) fn unlock_later(&self, hold: Hold) {
        hold.stop.cancel();
        if !hold.lost.is_cancelled() {
            // Asked for by another request: this upload's requests do not follow each other
            // on this node.
            self.inner
                .kept
                .given_back(&hold.lock_key, hold.asked.is_cancelled());
        }
        let Hold {
            lock_key: key,
            revision,
            lease,
            ..
        } = hold;
        let locker = self.clone();
        let inner = &self.inner;
        // A request of this node that wants the same lock meanwhile waits for this unlock
        // instead of asking its own node to let go (a release request and a watch).
        let unlocking = Unlocking {
            entry: Some(inner.releasing.start(&key)),
            locker: locker.clone(),
            key,
        };
        inner.unlocks.spawn_on(
            async move {
                let key = unlocking.key.as_str();
                for attempt in 1..=UNLOCK_ATTEMPTS {
                    // A lost lease took the key with it.
                    if lease.lost().is_cancelled()
                        || unlock(&locker.inner.client, key, revision).await
                    {
                        return;
                    }
                    if attempt < UNLOCK_ATTEMPTS {
                        sleep(RESYNC_BACKOFF * attempt).await;
                    }
                }
                // The node's lease would keep the key alive for as long as the node runs: stop
                // using that lease, so the key goes with it once its last lock is dropped.
                tracing::warn!(
                    key,
                    lease = lease.id(),
                    "cannot delete an etcd lock key; retiring the node's lease so it goes with it"
                );
                locker.inner.lease.retire(&lease).await;
            },
            &inner.runtime,
        );
    }
}

/// A lock the lock transaction created.
pub(super) struct Taken {
    /// The lock key's create revision.
    pub(super) revision: i64,
    /// The cluster's epoch.
    pub(super) epoch: u64,
    /// A release request was already waiting for it.
    pub(super) waiter: bool,
    /// This node gave the lock back a moment ago: its requests on the upload follow each
    /// other, so the lock is kept for the next one when this guard is dropped (`kept`).
    pub(super) follows_own: bool,
}

/// Delete the lock key created at `revision`, if it is still that one: once the lease was lost,
/// the key may be someone else's. Returns whether etcd answered.
pub(super) async fn unlock(client: &Client, key: &str, revision: i64) -> bool {
    let unlock = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, revision)])
        .and_then([TxnOp::delete(key, None)]);
    match rpc("release a lock", client.kv_client().txn(unlock)).await {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(key, %error, "cannot delete etcd lock key");
            false
        }
    }
}

/// Attempts to delete a lock key before its lease is retired instead.
const UNLOCK_ATTEMPTS: u32 = 3;

/// A lock this node holds in etcd, whether a request uses it or the node keeps it.
pub(super) struct Hold {
    pub(super) lock_key: String,
    revision: i64,
    fence: u64,
    lease: Arc<Lease>,
    /// Stops the holder task (the watch).
    stop: CancellationToken,
    /// Fired by the holder task when a request (of any node) asks for the lock.
    pub(super) asked: CancellationToken,
    pub(super) lost: CancellationToken,
    /// Starts the holder task's watch before its delay is over.
    watch_now: CancellationToken,
    /// Keep it for this node's next request on the upload once this one is done.
    keep: bool,
}

impl Hold {
    /// The node lease the lock is on.
    pub(super) fn lease(&self) -> &Lease {
        &self.lease
    }
}

/// What a guard owns: dropping it gives the lock back (kept or unlocked).
struct Held {
    locker: EtcdLocker,
    hold: Option<Hold>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.locker.give_back(hold);
        }
    }
}

/// An unlock in flight, as this node's next request on the key waits for it (see
/// `Releasing`). Dropped when the unlock task ends, however it ends (done, given up, or the task
/// dropped with its runtime), so no waiter is left waiting on an entry that never finishes.
struct Unlocking {
    locker: EtcdLocker,
    key: String,
    entry: Option<(u64, CancellationToken)>,
}

impl Drop for Unlocking {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.locker.inner.releasing.finish(&self.key, entry);
        }
    }
}

/// The holder's watch: release requests fire `release`, losing the key fires `lost`.
struct Holder {
    client: Client,
    lock_key: String,
    release_key: String,
    token: String,
    revision: i64,
    release: CancellationToken,
    lost: CancellationToken,
    stop: CancellationToken,
    watch_now: CancellationToken,
}

enum Watched {
    Lost,
    Broken,
}

impl Holder {
    async fn run(self) {
        let stop = self.stop.clone();
        let lost = self.lost.clone();
        tokio::select! {
            biased;
            () = stop.cancelled() => {}
            // The keep-alive gave up: nothing left to watch for.
            () = lost.cancelled() => {}
            () = async {
                // Most locks (a HEAD, a small PATCH) are gone before this: they cost etcd no
                // watch at all. The watch starts from the lock's revision, so a release request
                // written meanwhile is replayed, not missed; it only reaches us this much later.
                // A lock kept between requests watches at once.
                tokio::select! {
                    () = sleep(WATCH_DELAY) => {}
                    () = self.watch_now.cancelled() => {}
                }
                self.watch().await;
            } => {}
        }
    }

    async fn watch(&self) {
        // The lock transaction read the release key at `revision`: start right after it.
        let mut from = self.revision + 1;
        loop {
            match self.watch_from(from).await {
                Watched::Lost => {
                    tracing::warn!(
                        key = self.lock_key,
                        "etcd lock key deleted: the holder must stop"
                    );
                    self.lost.cancel();
                    return;
                }
                Watched::Broken => {}
            }
            // Events may have been missed while the watch was down: read the state again.
            from = loop {
                sleep(RESYNC_BACKOFF).await;
                match self.resync().await {
                    Ok(Some(revision)) => break revision + 1,
                    Ok(None) => {
                        tracing::warn!(
                            key = self.lock_key,
                            "etcd lock key gone: the holder must stop"
                        );
                        self.lost.cancel();
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(key = self.lock_key, %error, "cannot re-read etcd lock");
                    }
                }
            };
        }
    }

    async fn watch_from(&self, from: i64) -> Watched {
        let options = WatchOptions::new().with_start_revision(from);
        let Ok(mut stream) = self
            .client
            .watch_client()
            .watch(self.lock_key.as_str(), Some(options.clone()))
            .await
        else {
            return Watched::Broken;
        };
        let release_options = options.with_filters([WatchFilterType::NoDelete]);
        if stream
            .watch(self.release_key.as_str(), Some(release_options))
            .await
            .is_err()
        {
            return Watched::Broken;
        }
        loop {
            let reply = match stream.message().await {
                Ok(Some(reply)) if !reply.canceled() => reply,
                _ => return Watched::Broken,
            };
            for event in reply.events() {
                let Some(kv) = event.kv() else { continue };
                if kv.key() == self.lock_key.as_bytes() {
                    // Our key is only ever written once; any change means it is not ours.
                    if event.event_type() == EventType::Delete
                        || kv.create_revision() != self.revision
                    {
                        return Watched::Lost;
                    }
                } else if kv.key() == self.release_key.as_bytes()
                    && event.event_type() == EventType::Put
                    && kv.value() != self.token.as_bytes()
                {
                    self.release.cancel();
                }
            }
        }
    }

    /// Read both keys at one revision: `None` if the lock is no longer ours, else the revision
    /// read (and `release` fired if a request waits).
    async fn resync(&self) -> Result<Option<i64>, EtcdError> {
        let read = Txn::new().and_then([
            TxnOp::get(self.lock_key.as_str(), None),
            TxnOp::get(self.release_key.as_str(), None),
        ]);
        let reply = rpc("re-read a lock", self.client.kv_client().txn(read)).await?;
        let revision = reply
            .header()
            .map(|h| h.revision())
            .ok_or(EtcdError::Unexpected("the lock re-read"))?;
        let mut ours = false;
        for op in reply.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                if kv.key() == self.lock_key.as_bytes() {
                    ours = kv.create_revision() == self.revision;
                } else if kv.value() != self.token.as_bytes() {
                    self.release.cancel();
                }
            }
        }
        Ok(ours.then_some(revision))
    }
}
