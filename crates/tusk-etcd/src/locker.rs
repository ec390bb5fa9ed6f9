//! The [`Locker`] on etcd: lock keys with leases, release requests, fencing by revision.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchFilterType, WatchOptions, WatchStream,
};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tusk_core::{LockGuard, Locker, UploadId};

use crate::error::client_error_is_unavailable;
use crate::lease::{Lease, NodeLease};
use crate::{EtcdConfig, EtcdError, REQUEST_TIMEOUT, fence, rpc};

/// How long [`EtcdLocker::connect`] waits for etcd to answer before failing start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 pings on the etcd connection while streams (keep-alives, watches) are open, so a
/// silently dead connection is noticed in seconds, not after TCP's retransmission timeout.
/// etcd refuses pings more often than every 5 s by default.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a holder waits before it watches its lock (for release requests and for its key
/// deleted from outside). Locks held for less cost etcd two requests: take and unlock.
const WATCH_DELAY: Duration = Duration::from_millis(100);

/// Pause before a holder re-reads its lock after its watch broke, so a down etcd is not
/// hammered.
const RESYNC_BACKOFF: Duration = Duration::from_millis(200);

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
/// Dropping the guard deletes the key in a spawned task.
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
    /// Connect and check that etcd answers (and accepts the credentials, and lets us read under
    /// `key_prefix`) within a few seconds, so a wrong address or password fails start-up with a
    /// clear message instead of failing every request later.
    pub async fn connect(config: EtcdConfig) -> Result<Self, EtcdError> {
        config.validate()?;
        let endpoints = config.endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(PING_INTERVAL, PING_TIMEOUT)
            // etcd answers pings on a connection without streams with GOAWAY ("too many pings").
            .with_keep_alive_while_idle(false)
            // Without a leader, fail the request (503, retry later) instead of waiting.
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            // Simple tokens expire (5 min by default); a long-running server must renew them.
            options = options
                .with_user(user, password)
                .with_auto_token_refresh(true);
        }
        if config.ca_file.is_some() || config.cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &config.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca).await?));
            }
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                tls = tls.identity(Identity::from_pem(read(cert).await?, read(key).await?));
            }
            options = options.with_tls(tls);
        }

        let prefix = config.key_prefix.clone();
        let check = async {
            let client = Client::connect(&config.endpoints, Some(options))
                .await
                .map_err(|source| match (&config.user, &source) {
                    // With credentials, connecting authenticates: its only network request.
                    (Some(user), etcd_client::Error::GRpcStatus(_))
                        if !client_error_is_unavailable(&source) =>
                    {
                        EtcdError::Auth {
                            endpoints: endpoints.clone(),
                            user: user.clone(),
                            source,
                        }
                    }
                    (
                        _,
                        etcd_client::Error::GRpcStatus(_) | etcd_client::Error::TransportError(_),
                    ) => EtcdError::Connect {
                        endpoints: endpoints.clone(),
                        source,
                    },
                    _ => EtcdError::Client {
                        endpoints: endpoints.clone(),
                        source,
                    },
                })?;
            // A linearizable read needs a leader and read permission on our keys; every lock
            // also reads `epoch`, so a role that does not cover it must fail here, not later.
            let refused = |source| EtcdError::Connect {
                endpoints: endpoints.clone(),
                source,
            };
            let mut kv = client.kv_client();
            let locks = GetOptions::new().with_prefix().with_count_only();
            kv.get(format!("{prefix}lock/"), Some(locks))
                .await
                .map_err(refused)?;
            kv.get(format!("{prefix}epoch"), None)
                .await
                .map_err(refused)?;
            Ok(client)
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, check)
            .await
            .map_err(|_| EtcdError::Unreachable {
                endpoints: endpoints.clone(),
                timeout: CONNECT_TIMEOUT,
            })??;
        Ok(Self {
            inner: Arc::new(Inner {
                lease: NodeLease::new(client.clone(), config.ttl_secs()),
                requests: AtomicU64::new(0),
                client,
                prefix,
                ttl_secs: config.ttl_secs(),
                endpoints,
                unlocks: TaskTracker::new(),
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }

    fn key(&self, kind: &str, id: &UploadId) -> String {
        format!("{}{kind}/{}", self.inner.prefix, id.as_str())
    }

    async fn acquire(&self, id: &UploadId, wait: Duration) -> Result<LockGuard, EtcdError> {
        let deadline = Instant::now() + wait;
        let lock_key = self.key("lock", id);
        let release_key = self.key("release", id);
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
                    return self.hold(id, keys, lease, revision, epoch, waiter);
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

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.inner.prefix)
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

    fn hold(
        &self,
        id: &UploadId,
        keys: Keys,
        lease: Arc<Lease>,
        revision: i64,
        epoch: u64,
        waiter: bool,
    ) -> Result<LockGuard, EtcdError> {
        let Keys {
            lock_key,
            release_key,
            token,
        } = keys;
        let fence = fence(epoch, revision)
            .ok_or(EtcdError::Unexpected("the lock transaction (revision)"))?;
        let release = CancellationToken::new();
        if waiter {
            // Someone was already waiting for the previous holder: make way for them at once.
            release.cancel();
        }
        // A child: losing this lock (its key deleted from outside) must not cancel the node's
        // lease for every other lock.
        let lost = lease.lost().child_token();
        let stop = CancellationToken::new();
        tokio::spawn(
            Holder {
                client: self.inner.client.clone(),
                lock_key: lock_key.clone(),
                release_key,
                token,
                revision,
                release: release.clone(),
                lost: lost.clone(),
                stop: stop.clone(),
            }
            .run(),
        );
        tracing::debug!(upload_id = %id, fence, "etcd lock taken");
        let held = Held {
            locker: self.clone(),
            lock_key,
            revision,
            lease: Some(lease),
            stop,
        };
        Ok(LockGuard::new(fence, release, lost, Box::new(held)))
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

async fn read(path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| EtcdError::ReadFile {
            path: path.to_owned(),
            source,
        })
}

/// The keys of one lock request and its token (the lease id, unique per request).
struct Keys {
    lock_key: String,
    release_key: String,
    token: String,
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

/// Delete the lock key created at `revision`, if it is still that one: once the lease was lost,
/// the key may be someone else's. Returns whether etcd answered.
async fn unlock(client: &Client, key: &str, revision: i64) -> bool {
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

/// What the guard owns: dropping it unlocks.
struct Held {
    locker: EtcdLocker,
    lock_key: String,
    revision: i64,
    lease: Option<Arc<Lease>>,
    stop: CancellationToken,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stop.cancel();
        let Some(lease) = self.lease.take() else {
            return;
        };
        let locker = self.locker.clone();
        let key = std::mem::take(&mut self.lock_key);
        let revision = self.revision;
        let inner = &self.locker.inner;
        inner.unlocks.spawn_on(
            async move {
                for attempt in 1..=UNLOCK_ATTEMPTS {
                    // A lost lease took the key with it.
                    if lease.lost().is_cancelled()
                        || unlock(&locker.inner.client, &key, revision).await
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
                sleep(WATCH_DELAY).await;
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
