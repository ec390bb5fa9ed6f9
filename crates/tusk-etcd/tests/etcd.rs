//! The etcd locker against a real etcd: `TUSK_TEST_ETCD_ENDPOINTS` (comma-separated).
//!
//! Each test uses its own key prefix, so tests run in parallel on one etcd. Waits are on
//! conditions with generous bounds, never on sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, GetOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tusk_core::{ErrorKind, Locker, UploadId};
use tusk_etcd::{EtcdConfig, EtcdError, EtcdLocker, FENCE_BASE};

/// Bound for waits that should end quickly: a condition, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether tests that need the real etcd run: only when `TUSK_TEST_SERVICES` is "1"
/// (`.services/env` sets it). Otherwise it says on stderr that `test` is skipped.
fn services_enabled(test: &str) -> bool {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: {test} needs etcd (set TUSK_TEST_SERVICES=1; scripts/test.sh does)");
    false
}

fn endpoints() -> Vec<String> {
    let Ok(list) = std::env::var("TUSK_TEST_ETCD_ENDPOINTS") else {
        panic!(
            "TUSK_TEST_ETCD_ENDPOINTS is not set: start the test services with \
             `scripts/services.sh up` and source .services/env"
        );
    };
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A key prefix no other test (or earlier run) uses.
fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tusk-test/{test}-{nanos}/")
}

fn config(endpoints: Vec<String>, prefix: &str, lease_ttl: Duration) -> EtcdConfig {
    EtcdConfig {
        endpoints,
        user: None,
        password: None,
        ca_file: None,
        cert_file: None,
        key_file: None,
        lease_ttl,
        key_prefix: prefix.to_owned(),
    }
}

async fn locker(prefix: &str, lease_ttl: Duration) -> EtcdLocker {
    EtcdLocker::connect(config(endpoints(), prefix, lease_ttl))
        .await
        .expect("connect to the test etcd")
}

/// A plain etcd client, as a third party (an operator, another tool).
async fn raw_client() -> Client {
    Client::connect(endpoints(), None)
        .await
        .expect("raw etcd client")
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {PATIENCE:?}"))
}

/// Poll etcd until `cond` holds for the keys under `prefix`: for effects of spawned tasks (an
/// unlock after a drop) that have no event of their own to wait on.
async fn eventually_keys(prefix: &str, what: &str, cond: impl Fn(&[String]) -> bool) {
    let mut client = raw_client().await;
    within(what, async {
        loop {
            let reply = client
                .get(
                    prefix,
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
                .await
                .unwrap();
            let keys: Vec<String> = reply
                .kvs()
                .iter()
                .map(|kv| kv.key_str().unwrap().to_owned())
                .collect();
            if cond(&keys) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn lock_key(prefix: &str, id: &UploadId) -> String {
    format!("{prefix}lock/{id}")
}

fn release_key(prefix: &str, id: &UploadId) -> String {
    format!("{prefix}release/{id}")
}

#[tokio::test]
async fn passes_the_locker_suite_and_leaves_no_keys() {
    if !services_enabled("passes_the_locker_suite_and_leaves_no_keys") {
        return;
    }
    let prefix = unique_prefix("suite");
    let locker = locker(&prefix, Duration::from_secs(5)).await;
    tusk_testkit::locker_suite::run(&locker).await;
    let epoch_key = format!("{prefix}epoch");
    eventually_keys(&prefix, "every lock and release key removed", |keys| {
        keys == [epoch_key.as_str()]
    })
    .await;
}

#[tokio::test]
async fn a_release_request_crosses_nodes_and_the_newcomer_gets_the_lock_at_once() {
    if !services_enabled("a_release_request_crosses_nodes_and_the_newcomer_gets_the_lock_at_once") {
        return;
    }
    let prefix = unique_prefix("handover");
    let ttl = Duration::from_secs(10);
    let node_a = locker(&prefix, ttl).await;
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();

    let first = node_a.lock(&id, PATIENCE).await.expect("lock on node A");
    assert!(
        first.fence() > FENCE_BASE,
        "fence {} not above 2^62",
        first.fence()
    );
    assert!(!first.release_requested().is_cancelled());

    let started = std::time::Instant::now();
    let newcomer = {
        let id = id.clone();
        tokio::spawn(async move { node_b.lock(&id, ttl).await })
    };
    within(
        "node A told to release",
        first.release_requested().cancelled(),
    )
    .await;
    let asked = started.elapsed();
    let first_fence = first.fence();
    assert!(!first.lost().is_cancelled());
    drop(first);
    let second = within("node B gets the lock", newcomer)
        .await
        .unwrap()
        .expect("lock on node B");
    let handover = started.elapsed();
    println!(
        "release request reached the holder after {asked:?}; request to acquire: {handover:?}"
    );
    assert!(
        handover < ttl / 4,
        "handover took {handover:?}: it should not wait for the lease ({ttl:?})"
    );
    assert!(second.fence() > first_fence);
    assert!(!second.release_requested().is_cancelled());
    assert!(!second.lost().is_cancelled());
}

#[tokio::test]
async fn fences_strictly_increase_across_nodes() {
    if !services_enabled("fences_strictly_increase_across_nodes") {
        return;
    }
    let prefix = unique_prefix("fences");
    let ttl = Duration::from_secs(5);
    let nodes = [locker(&prefix, ttl).await, locker(&prefix, ttl).await];
    let id = UploadId::generate();
    let mut last = FENCE_BASE;
    for round in 0..6 {
        let guard = nodes[round % 2].lock(&id, PATIENCE).await.expect("lock");
        assert!(
            guard.fence() > last,
            "round {round}: fence {} not above {last}",
            guard.fence()
        );
        last = guard.fence();
        drop(guard);
    }
    // Other uploads' locks are newer still: the token is the cluster-wide revision.
    let other = nodes[0]
        .lock(&UploadId::generate(), PATIENCE)
        .await
        .expect("lock");
    assert!(other.fence() > last);
}

#[tokio::test]
async fn a_holder_that_ignores_the_request_makes_the_newcomer_fail_with_locked() {
    if !services_enabled("a_holder_that_ignores_the_request_makes_the_newcomer_fail_with_locked") {
        return;
    }
    let prefix = unique_prefix("ignored");
    let ttl = Duration::from_secs(5);
    let node_a = locker(&prefix, ttl).await;
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();

    let first = node_a.lock(&id, PATIENCE).await.expect("lock on node A");
    let wait = Duration::from_millis(700);
    let started = std::time::Instant::now();
    let err = node_b
        .lock(&id, wait)
        .await
        .expect_err("lock while held and not released");
    let waited = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert_eq!(
        err.message(),
        "upload is locked by another request; retry later"
    );
    assert!(waited >= wait, "gave up after {waited:?}, before the wait");
    assert!(first.release_requested().is_cancelled());
    assert!(!first.lost().is_cancelled());

    // The newcomer cleaned up its release request before answering.
    let mut raw = raw_client().await;
    let pending = raw.get(release_key(&prefix, &id), None).await.unwrap();
    assert!(pending.kvs().is_empty(), "release request left behind");
    // The holder keeps the lock.
    let held = raw.get(lock_key(&prefix, &id), None).await.unwrap();
    assert_eq!(held.kvs().len(), 1);

    drop(first);
    let next = node_b
        .lock(&id, PATIENCE)
        .await
        .expect("lock after release");
    assert!(
        !next.release_requested().is_cancelled(),
        "a stale release request reached the next holder"
    );
}

#[tokio::test]
async fn a_zero_wait_fails_at_once_and_still_asks_the_holder() {
    if !services_enabled("a_zero_wait_fails_at_once_and_still_asks_the_holder") {
        return;
    }
    let prefix = unique_prefix("zero-wait");
    let node = locker(&prefix, Duration::from_secs(5)).await;
    let id = UploadId::generate();
    let first = node.lock(&id, PATIENCE).await.expect("lock");
    let err = node
        .lock(&id, Duration::ZERO)
        .await
        .expect_err("try-lock while held");
    assert_eq!(err.kind(), ErrorKind::Locked);
    // The request is in etcd's history even though the waiter already removed it.
    within(
        "holder told to release",
        first.release_requested().cancelled(),
    )
    .await;
}

#[tokio::test]
async fn a_holder_acquired_while_another_waits_is_asked_to_release_at_once() {
    if !services_enabled("a_holder_acquired_while_another_waits_is_asked_to_release_at_once") {
        return;
    }
    let prefix = unique_prefix("queue");
    let ttl = Duration::from_secs(5);
    let nodes = [
        locker(&prefix, ttl).await,
        locker(&prefix, ttl).await,
        locker(&prefix, ttl).await,
    ];
    let id = UploadId::generate();
    let first = nodes[0].lock(&id, PATIENCE).await.expect("first");
    let spawn_lock = |node: &EtcdLocker| {
        let (node, id) = (node.clone(), id.clone());
        tokio::spawn(async move { node.lock(&id, PATIENCE).await })
    };
    let mut second = spawn_lock(&nodes[1]);
    within(
        "first asked to release",
        first.release_requested().cancelled(),
    )
    .await;
    let mut third = spawn_lock(&nodes[2]);
    // Both wait: the lock is handed over twice, and the holder in between is asked to make way
    // at once, whichever of the two got it first.
    drop(first);
    let (next, was_second) = within("a waiter gets the lock", async {
        tokio::select! {
            r = &mut second => (r, true),
            r = &mut third => (r, false),
        }
    })
    .await;
    let next = next.unwrap().expect("first waiter gets the lock");
    within(
        "the new holder asked to make way for the other waiter",
        next.release_requested().cancelled(),
    )
    .await;
    let next_fence = next.fence();
    drop(next);
    let last = if was_second { third } else { second };
    let last = within("the other waiter gets the lock", last)
        .await
        .unwrap()
        .expect("second waiter gets the lock");
    assert!(last.fence() > next_fence);
    assert!(!last.release_requested().is_cancelled());
}

#[tokio::test]
async fn a_lease_revoked_from_outside_fires_lost_and_lets_the_newcomer_in() {
    if !services_enabled("a_lease_revoked_from_outside_fires_lost_and_lets_the_newcomer_in") {
        return;
    }
    let prefix = unique_prefix("revoked");
    let ttl = Duration::from_secs(10);
    let node_a = locker(&prefix, ttl).await;
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();
    let first = node_a.lock(&id, PATIENCE).await.expect("lock on node A");

    let mut raw = raw_client().await;
    let held = raw.get(lock_key(&prefix, &id), None).await.unwrap();
    let lease = held.kvs()[0].lease();
    raw.lease_revoke(lease).await.expect("revoke from outside");

    let started = std::time::Instant::now();
    within("holder sees its lease lost", first.lost().cancelled()).await;
    println!("lost after {:?}", started.elapsed());
    assert!(
        started.elapsed() < ttl / 4,
        "lost noticed only after {:?}",
        started.elapsed()
    );
    let second = node_b.lock(&id, PATIENCE).await.expect("newcomer gets in");
    assert!(second.fence() > first.fence());
    // The old guard's unlock must not delete the newcomer's key. Absence can only be checked
    // by waiting: its unlock takes two round trips, give it a second.
    drop(first);
    let kept = tokio::time::timeout(Duration::from_secs(1), second.lost().cancelled()).await;
    assert!(
        kept.is_err(),
        "the old holder's unlock removed the newcomer's lock"
    );
    let still = raw.get(lock_key(&prefix, &id), None).await.unwrap();
    assert_eq!(still.kvs().len(), 1);
}

#[tokio::test]
async fn a_lock_key_deleted_from_outside_fires_lost() {
    if !services_enabled("a_lock_key_deleted_from_outside_fires_lost") {
        return;
    }
    let prefix = unique_prefix("deleted");
    let node = locker(&prefix, Duration::from_secs(10)).await;
    let id = UploadId::generate();
    let guard = node.lock(&id, PATIENCE).await.expect("lock");
    let mut raw = raw_client().await;
    raw.delete(lock_key(&prefix, &id), None).await.unwrap();
    within("holder sees its key gone", guard.lost().cancelled()).await;
    let other = node.lock(&id, PATIENCE).await.expect("lock again");
    assert!(!other.lost().is_cancelled());
}

#[tokio::test]
async fn locks_of_one_node_share_its_lease_and_lose_only_their_own_key() {
    if !services_enabled("locks_of_one_node_share_its_lease_and_lose_only_their_own_key") {
        return;
    }
    let prefix = unique_prefix("shared");
    let node = locker(&prefix, Duration::from_secs(10)).await;
    let (one, two) = (UploadId::generate(), UploadId::generate());
    let first = node.lock(&one, PATIENCE).await.expect("lock one");
    let second = node.lock(&two, PATIENCE).await.expect("lock two");
    let mut raw = raw_client().await;
    let lease_of = |reply: etcd_client::GetResponse| reply.kvs()[0].lease();
    let lease = lease_of(raw.get(lock_key(&prefix, &one), None).await.unwrap());
    assert_eq!(
        lease,
        lease_of(raw.get(lock_key(&prefix, &two), None).await.unwrap()),
        "two locks of one node on different leases"
    );

    // One lock's key deleted from outside: that holder stops, the other keeps its lock.
    raw.delete(lock_key(&prefix, &one), None).await.unwrap();
    within("holder one sees its key gone", first.lost().cancelled()).await;
    let kept = tokio::time::timeout(Duration::from_millis(500), second.lost().cancelled()).await;
    assert!(kept.is_err(), "losing one lock cost the node's other lock");

    // The node's lease revoked: every lock on it is lost, and the next lock gets a new lease.
    raw.lease_revoke(lease).await.expect("revoke from outside");
    within("holder two sees the lease lost", second.lost().cancelled()).await;
    drop((first, second));
    let third = node
        .lock(&one, PATIENCE)
        .await
        .expect("lock on a fresh lease");
    let fresh = lease_of(raw.get(lock_key(&prefix, &one), None).await.unwrap());
    assert_ne!(fresh, lease, "a lock was attached to the revoked lease");
    assert!(!third.lost().is_cancelled());
    drop(third);
    let epoch_key = format!("{prefix}epoch");
    eventually_keys(&prefix, "every lock key removed", |keys| {
        keys == [epoch_key.as_str()]
    })
    .await;
}

#[tokio::test]
async fn flush_revokes_the_node_lease_so_nothing_of_the_node_stays_in_etcd() {
    if !services_enabled("flush_revokes_the_node_lease_so_nothing_of_the_node_stays_in_etcd") {
        return;
    }
    let prefix = unique_prefix("flush");
    let node = locker(&prefix, Duration::from_secs(30)).await;
    let id = UploadId::generate();
    let guard = node.lock(&id, PATIENCE).await.expect("lock");
    let mut raw = raw_client().await;
    let lease = raw.get(lock_key(&prefix, &id), None).await.unwrap().kvs()[0].lease();
    // A guard still held at shutdown (flush's wait ran out): its key goes with the lease.
    node.flush(Duration::from_millis(100)).await;
    within(
        "the held guard is told its lock is gone",
        guard.lost().cancelled(),
    )
    .await;
    let epoch_key = format!("{prefix}epoch");
    eventually_keys(&prefix, "the node's keys gone with its lease", |keys| {
        keys == [epoch_key.as_str()]
    })
    .await;
    let left = raw.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert_eq!(left, -1, "the node's lease was not revoked");
}

/// A TCP proxy in front of etcd that can cut every connection and refuse new ones (a node
/// partitioned from etcd), or freeze them, forwarding nothing (etcd hung, packets dropped).
struct Proxy {
    addr: SocketAddr,
    cut: CancellationToken,
    frozen: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Self {
        let target = endpoints()[0]
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        let frozen = CancellationToken::new();
        let (stop, freeze) = (cut.clone(), frozen.clone());
        let task = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let target = target.clone();
                let (stop, freeze) = (stop.clone(), freeze.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        () = stop.cancelled() => {}
                        // Both sockets stay open, silent, until the cut.
                        () = freeze.cancelled() => stop.cancelled().await,
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            frozen,
            task: Some(task),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Close every connection and the listener (new connections are refused).
    async fn cut(mut self) {
        self.cut.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Stop forwarding: connections stay open but nothing gets through, either way.
    fn freeze(&self) {
        self.frozen.cancel();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.cancel();
    }
}

#[tokio::test]
async fn a_holder_cut_off_from_etcd_loses_the_lock_before_the_newcomer_gets_it() {
    if !services_enabled("a_holder_cut_off_from_etcd_loses_the_lock_before_the_newcomer_gets_it") {
        return;
    }
    let prefix = unique_prefix("partition");
    let ttl = Duration::from_secs(2);
    let proxy = Proxy::start().await;
    let node_a = EtcdLocker::connect(config(vec![proxy.endpoint()], &prefix, ttl))
        .await
        .expect("connect through the proxy");
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();
    let first = node_a.lock(&id, PATIENCE).await.expect("lock on node A");

    let started = std::time::Instant::now();
    proxy.cut().await;
    let second = node_b
        .lock(&id, PATIENCE)
        .await
        .expect("newcomer gets the lock once the lease expires");
    let taken = started.elapsed();
    println!("partitioned holder's lock taken over after {taken:?} (lease TTL {ttl:?})");
    // The old holder stopped before etcd let the newcomer in: never two holders at once.
    assert!(
        first.lost().is_cancelled(),
        "newcomer got the lock while the partitioned holder still believed it held it"
    );
    assert!(taken < ttl * 3, "takeover took {taken:?}");
    assert!(second.fence() > first.fence());
    drop(first);
    drop(second);
}

#[tokio::test]
async fn a_paused_holder_loses_the_lock_within_the_ttl_and_knows_it_on_resume() {
    if !services_enabled("a_paused_holder_loses_the_lock_within_the_ttl_and_knows_it_on_resume") {
        return;
    }
    let prefix = unique_prefix("paused");
    let ttl = Duration::from_secs(2);
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel::<u64>();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let (verdict_tx, verdict_rx) = tokio::sync::oneshot::channel::<bool>();
    let id = UploadId::generate();
    // The holder gets a runtime (its "process") of its own, with one thread that we block.
    let holder = {
        let (prefix, id) = (prefix.clone(), id.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let node = locker(&prefix, ttl).await;
                let guard = node.lock(&id, PATIENCE).await.expect("lock on node A");
                locked_tx.send(guard.fence()).unwrap();
                // Paused: no task of this runtime runs (no keep-alive, no watch).
                resume_rx.recv().unwrap();
                let lost = tokio::time::timeout(PATIENCE, guard.lost().cancelled())
                    .await
                    .is_ok();
                verdict_tx.send(lost).unwrap();
            });
        })
    };
    let first_fence = within("node A locks", locked_rx).await.unwrap();

    let node_b = locker(&prefix, ttl).await;
    let started = std::time::Instant::now();
    let second = node_b
        .lock(&id, PATIENCE)
        .await
        .expect("newcomer gets the lock once the paused holder's lease expires");
    let taken = started.elapsed();
    println!("paused holder's lock taken over after {taken:?} (lease TTL {ttl:?})");
    assert!(taken < ttl * 3, "takeover took {taken:?}");
    assert!(second.fence() > first_fence);

    resume_tx.send(()).unwrap();
    let lost = within("resumed holder reports", verdict_rx).await.unwrap();
    assert!(
        lost,
        "a resumed holder kept believing it held an expired lock"
    );
    holder.join().unwrap();
    assert!(!second.lost().is_cancelled());
}

/// A locker (5 s lease) that reaches etcd through a [`Proxy`] the test can cut or freeze.
async fn locker_behind_a_proxy(prefix: &str) -> (Proxy, EtcdLocker) {
    let proxy = Proxy::start().await;
    let node = EtcdLocker::connect(config(
        vec![proxy.endpoint()],
        prefix,
        Duration::from_secs(5),
    ))
    .await
    .expect("connect through the proxy");
    (proxy, node)
}

/// With etcd hung, requests that need the node's lease do not queue behind each other's
/// grants: each fails within one request's time, however many wait at once.
#[tokio::test]
async fn with_etcd_hung_concurrent_locks_fail_in_one_request_time_not_in_turn() {
    if !services_enabled("with_etcd_hung_concurrent_locks_fail_in_one_request_time_not_in_turn") {
        return;
    }
    let prefix = unique_prefix("hung-grant");
    let (proxy, node) = locker_behind_a_proxy(&prefix).await;
    proxy.freeze();
    let started = std::time::Instant::now();
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let node = node.clone();
            tokio::spawn(async move { node.lock(&UploadId::generate(), PATIENCE).await })
        })
        .collect();
    for attempt in attempts {
        let err = within("lock answers", attempt)
            .await
            .unwrap()
            .expect_err("lock with etcd hung");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    }
    let took = started.elapsed();
    println!("4 concurrent locks failed after {took:?}");
    // One request's bound (5 s) and some slack; in turn they would take 20 s.
    assert!(took < Duration::from_secs(9), "{took:?}");
}

#[tokio::test]
async fn lock_fails_with_unavailable_when_etcd_is_unreachable() {
    if !services_enabled("lock_fails_with_unavailable_when_etcd_is_unreachable") {
        return;
    }
    let prefix = unique_prefix("unreachable");
    let (proxy, node) = locker_behind_a_proxy(&prefix).await;
    proxy.cut().await;
    // The first request finds its connection closed, the next ones a refused reconnect.
    for attempt in 0..3 {
        let started = std::time::Instant::now();
        let err = within("lock answers", node.lock(&UploadId::generate(), PATIENCE))
            .await
            .expect_err("lock with etcd gone");
        println!(
            "attempt {attempt}: unavailable after {:?}: {err:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(
            err.message(),
            "lock service (etcd) is unavailable; retry later"
        );
    }
}

#[tokio::test]
async fn a_hung_etcd_costs_the_holder_its_lock_and_newcomers_get_unavailable() {
    if !services_enabled("a_hung_etcd_costs_the_holder_its_lock_and_newcomers_get_unavailable") {
        return;
    }
    let prefix = unique_prefix("hung");
    let ttl = Duration::from_secs(2);
    let proxy = Proxy::start().await;
    let node = EtcdLocker::connect(config(vec![proxy.endpoint()], &prefix, ttl))
        .await
        .expect("connect through the proxy");
    let holder = node
        .lock(&UploadId::generate(), PATIENCE)
        .await
        .expect("lock");

    proxy.freeze();
    // No renewal gets through: the holder must give up by its own clock, within the TTL.
    let frozen_at = std::time::Instant::now();
    within("holder gives up its lock", holder.lost().cancelled()).await;
    let lost_after = frozen_at.elapsed();
    println!("holder gave up {lost_after:?} after etcd stopped answering (lease TTL {ttl:?})");
    assert!(lost_after <= ttl, "held on for {lost_after:?}");

    // A request that gets no answer is bounded too.
    let started = std::time::Instant::now();
    let err = within("lock answers", node.lock(&UploadId::generate(), PATIENCE))
        .await
        .expect_err("lock with etcd hung");
    println!("unavailable after {:?}: {err:?}", started.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_with_a_clear_message() {
    let started = std::time::Instant::now();
    let mut bad = config(
        vec!["http://127.0.0.1:1".to_owned()],
        "tusk-test/closed/",
        Duration::from_secs(5),
    );
    bad.user = Some("tusk".to_owned());
    bad.password = Some("hunter2-do-not-show".to_owned());
    let err = EtcdLocker::connect(bad.clone())
        .await
        .expect_err("nothing listens on port 1");
    let elapsed = started.elapsed();
    let message = err.to_string();
    println!("failed after {elapsed:?}: {message}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("etcd"), "{message}");
    assert!(!message.contains("hunter2"), "password shown: {message}");
    assert!(!format!("{err:?}").contains("hunter2"), "password in Debug");
    assert!(
        !format!("{bad:?}").contains("hunter2"),
        "password in config Debug"
    );
    let core: tusk_core::Error = err.into();
    assert_eq!(core.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn credentials_are_checked_at_connect_and_never_shown() {
    if !services_enabled("credentials_are_checked_at_connect_and_never_shown") {
        return;
    }
    // The test etcd has authentication disabled, so any credentials are refused at connect.
    let mut with_user = config(endpoints(), "tusk-test/auth/", Duration::from_secs(5));
    with_user.user = Some("tusk".to_owned());
    with_user.password = Some("hunter2-do-not-show".to_owned());
    let err = EtcdLocker::connect(with_user)
        .await
        .expect_err("etcd without auth refuses credentials");
    let message = err.to_string();
    println!("{message}");
    assert!(matches!(err, EtcdError::Auth { .. }), "{err:?}");
    assert!(message.contains("\"tusk\""), "{message}");
    assert!(!message.contains("hunter2"), "password shown: {message}");
    assert!(!format!("{err:?}").contains("hunter2"), "password in Debug");
}

/// A second, brand-new etcd cluster on free loopback ports, stopped (and its data removed)
/// on drop: what an operator gets by replacing a lost cluster instead of restoring a snapshot.
struct FreshEtcd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    endpoint: String,
}

impl FreshEtcd {
    async fn start() -> Self {
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client_port, peer_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let child = std::process::Command::new("etcd")
            .args(["--name", "fresh", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("fresh={peer}")])
            .args(["--heartbeat-interval", "20", "--election-timeout", "200"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd (installed by scripts/services.sh)");
        let mut fresh = Self {
            child,
            dir,
            endpoint,
        };
        let ready = async {
            loop {
                if let Some(status) = fresh.child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(fresh.dir.path().join("etcd.log"));
                    panic!("the fresh etcd exited ({status}): {log:?}");
                }
                if let Ok(mut client) = Client::connect([fresh.endpoint.as_str()], None).await
                    && client.get("ready", None).await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        within("the fresh etcd answers", ready).await;
        fresh
    }
}

impl Drop for FreshEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Revisions of a replacement cluster start again at 1; its tokens must still be newer than
/// the old cluster's, or the state store would refuse every upload touched before as stale.
#[tokio::test]
async fn a_replacement_cluster_gives_newer_fences_than_the_cluster_it_replaced() {
    if !services_enabled("a_replacement_cluster_gives_newer_fences_than_the_cluster_it_replaced") {
        return;
    }
    let prefix = unique_prefix("replaced");
    let ttl = Duration::from_secs(5);
    let id = UploadId::generate();

    let old_cluster = locker(&prefix, ttl).await;
    // Move the old cluster's revision well past anything the fresh one reaches below.
    let mut raw = raw_client().await;
    for n in 0..20 {
        raw.put(format!("{prefix}filler/{n}"), "x", None)
            .await
            .unwrap();
    }
    let old_fence = old_cluster.lock(&id, PATIENCE).await.expect("lock").fence();
    let old_revision = raw
        .get(format!("{prefix}filler/19"), None)
        .await
        .unwrap()
        .kvs()[0]
        .mod_revision();

    let fresh = FreshEtcd::start().await;
    let new_cluster = EtcdLocker::connect(config(vec![fresh.endpoint.clone()], &prefix, ttl))
        .await
        .expect("connect to the fresh etcd");
    let guard = new_cluster.lock(&id, PATIENCE).await.expect("lock");
    let mut fresh_raw = Client::connect([fresh.endpoint.as_str()], None)
        .await
        .unwrap();
    let fresh_revision = fresh_raw
        .get(format!("{prefix}lock/{id}"), None)
        .await
        .unwrap()
        .kvs()[0]
        .create_revision();
    // Without the epoch the fresh cluster's token would be the older one.
    assert!(
        fresh_revision < old_revision,
        "the fresh cluster's revision {fresh_revision} should be below the old one's {old_revision}"
    );
    assert!(
        guard.fence() > old_fence,
        "fence on the replacement cluster {} not above the old cluster's {old_fence}",
        guard.fence()
    );

    // Both clusters wrote their epoch once; every later lock reuses it.
    let epoch = |reply: etcd_client::GetResponse| -> u64 {
        reply.kvs()[0].value_str().unwrap().parse().unwrap()
    };
    let old_epoch = epoch(raw.get(format!("{prefix}epoch"), None).await.unwrap());
    let new_epoch = epoch(fresh_raw.get(format!("{prefix}epoch"), None).await.unwrap());
    assert!(new_epoch > old_epoch);
    drop(guard);
    let again = new_cluster.lock(&id, PATIENCE).await.expect("lock again");
    assert_eq!(
        epoch(fresh_raw.get(format!("{prefix}epoch"), None).await.unwrap()),
        new_epoch
    );
    assert!(again.fence() > old_fence);
}

#[tokio::test]
async fn an_unreadable_epoch_fails_the_lock_and_leaves_no_lock_behind() {
    if !services_enabled("an_unreadable_epoch_fails_the_lock_and_leaves_no_lock_behind") {
        return;
    }
    let prefix = unique_prefix("bad-epoch");
    let node = locker(&prefix, Duration::from_secs(5)).await;
    raw_client()
        .await
        .put(format!("{prefix}epoch"), "not a number", None)
        .await
        .unwrap();
    let id = UploadId::generate();
    let err = node.lock(&id, PATIENCE).await.expect_err("refused");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    assert!(chain.contains("the epoch key (not a number"), "{chain}");
    eventually_keys(&prefix, "the lock key removed", |keys| {
        keys == [format!("{prefix}epoch")]
    })
    .await;
}

/// Run `etcdctl` against `endpoint` (as `user`, if given); panics with its output on failure.
fn etcdctl(endpoint: &str, user: Option<&str>, args: &[&str]) {
    let mut command = std::process::Command::new("etcdctl");
    command
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint]);
    if let Some(user) = user {
        command.args(["--user", user]);
    }
    let out = command
        .args(args)
        .output()
        .expect("run etcdctl (installed by scripts/services.sh)");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With authentication on, every lock reads `<prefix>epoch` as well as `lock/` and `release/`
/// keys: a role that does not cover the whole prefix is refused at start-up, not at the first
/// upload; one that does works, from the first lock on.
#[tokio::test]
async fn with_authentication_the_role_must_cover_the_whole_prefix() {
    if !services_enabled("with_authentication_the_role_must_cover_the_whole_prefix") {
        return;
    }
    let fresh = FreshEtcd::start().await;
    let at = fresh.endpoint.as_str();
    let prefix = "tusk-rbac/";
    for args in [
        &["role", "add", "root"][..],
        &["user", "add", "root", "--new-user-password", "root-pw"],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "narrow"],
        &[
            "role",
            "grant-permission",
            "narrow",
            "--prefix=true",
            "readwrite",
            "tusk-rbac/lock/",
        ],
        &[
            "role",
            "grant-permission",
            "narrow",
            "--prefix=true",
            "readwrite",
            "tusk-rbac/release/",
        ],
        &["user", "add", "narrow", "--new-user-password", "narrow-pw"],
        &["user", "grant-role", "narrow", "narrow"],
        &["role", "add", "whole"],
        &[
            "role",
            "grant-permission",
            "whole",
            "--prefix=true",
            "readwrite",
            prefix,
        ],
        &["user", "add", "whole", "--new-user-password", "whole-pw"],
        &["user", "grant-role", "whole", "whole"],
        &["auth", "enable"],
    ] {
        etcdctl(at, None, args);
    }
    let as_user = |user: &str, password: &str| EtcdConfig {
        user: Some(user.to_owned()),
        password: Some(password.to_owned()),
        ..config(vec![fresh.endpoint.clone()], prefix, Duration::from_secs(5))
    };

    let err = EtcdLocker::connect(as_user("narrow", "narrow-pw"))
        .await
        .expect_err("a role without the epoch key is refused at connect");
    assert!(matches!(err, EtcdError::Connect { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("narrow-pw"),
        "password shown: {err}"
    );

    let locker = EtcdLocker::connect(as_user("whole", "whole-pw"))
        .await
        .expect("a role over the whole prefix connects");
    let guard = locker
        .lock(&UploadId::generate(), PATIENCE)
        .await
        .expect("and locks");
    assert!(guard.fence() > FENCE_BASE);
    drop(guard);
    etcdctl(at, Some("root:root-pw"), &["get", "tusk-rbac/epoch"]);
}

/// A request that wants a lock its own node is giving back waits for that unlock instead of
/// asking its own node to release: etcd's history under the prefix shows the unlock and the
/// new lock, and no release request in between.
#[tokio::test]
async fn a_lock_its_own_node_is_giving_back_is_taken_without_a_release_request() {
    if !services_enabled("a_lock_its_own_node_is_giving_back_is_taken_without_a_release_request") {
        return;
    }
    let prefix = unique_prefix("regive");
    let locker = locker(&prefix, Duration::from_secs(5)).await;
    let mut client = raw_client().await;
    for round in 0..20 {
        // A new upload each round: on one the node has just locked twice, it keeps the lock.
        let id = UploadId::generate();
        let first = within("first lock", locker.lock(&id, PATIENCE))
            .await
            .unwrap();
        let start = client.get("tusk-test/", None).await.unwrap();
        let from = start.header().unwrap().revision() + 1;
        drop(first);
        // At once, while the dropped guard's delete is on its way to etcd.
        let second = within("second lock", locker.lock(&id, PATIENCE))
            .await
            .unwrap();
        let sentinel = format!("{prefix}sentinel");
        client
            .put(sentinel.as_str(), round.to_string(), None)
            .await
            .unwrap();
        // Everything under the prefix since the first lock, up to the sentinel.
        let mut events = client
            .watch(
                prefix.as_str(),
                Some(
                    etcd_client::WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(from),
                ),
            )
            .await
            .unwrap();
        let mut keys: Vec<String> = Vec::new();
        within("the history up to the sentinel", async {
            while !keys.contains(&sentinel) {
                let reply = events.message().await.unwrap().unwrap();
                keys.extend(
                    reply
                        .events()
                        .iter()
                        .filter_map(|e| e.kv()?.key_str().ok().map(str::to_owned)),
                );
            }
        })
        .await;
        assert!(
            !keys.contains(&release_key(&prefix, &id)),
            "round {round}: a release request was written: {keys:?}"
        );
        assert!(keys.contains(&lock_key(&prefix, &id)), "{keys:?}");
        drop(second);
    }
}

/// The revision of the etcd cluster now: it moves with every write.
async fn revision(client: &mut Client) -> i64 {
    client
        .get("tusk-test/", Some(GetOptions::new().with_count_only()))
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

/// Take the lock twice in a row on `node`, so that it keeps it after the second: its requests
/// on the upload follow each other. Returns the fence it keeps.
async fn lock_twice(node: &EtcdLocker, id: &UploadId) -> u64 {
    lock_twice_watching(node, id).await.0
}

/// [`lock_twice`], with the kept lock's `lost` token.
async fn lock_twice_watching(node: &EtcdLocker, id: &UploadId) -> (u64, CancellationToken) {
    let first = within("lock", node.lock(id, PATIENCE)).await.unwrap();
    assert!(
        !first.kept(),
        "a node's first lock on an upload is not kept"
    );
    drop(first);
    let second = within("lock again", node.lock(id, PATIENCE)).await.unwrap();
    assert!(second.kept(), "the second lock in a row is kept");
    (second.fence(), second.lost().clone())
}

#[tokio::test]
async fn a_node_keeps_a_lock_between_its_requests_without_writing_to_etcd() {
    if !services_enabled("a_node_keeps_a_lock_between_its_requests_without_writing_to_etcd") {
        return;
    }
    let prefix = unique_prefix("kept");
    let node = locker(&prefix, Duration::from_secs(10)).await;
    let id = UploadId::generate();
    let kept_fence = lock_twice(&node, &id).await;
    let mut raw = raw_client().await;
    // The kept lock's key stays; the unlock of the first lock is the last write.
    eventually_keys(&prefix, "the kept lock stays in etcd", |keys| {
        keys.contains(&lock_key(&prefix, &id))
    })
    .await;
    let before = revision(&mut raw).await;
    for _ in 0..10 {
        let guard = within("the kept lock", node.lock(&id, PATIENCE))
            .await
            .unwrap();
        assert_eq!(guard.fence(), kept_fence, "the same holder keeps its token");
        assert!(!guard.release_requested().is_cancelled());
        assert!(!guard.lost().is_cancelled());
    }
    assert_eq!(
        revision(&mut raw).await,
        before,
        "taking a kept lock wrote to etcd"
    );
    // Not kept forever: it goes by itself.
    eventually_keys(&prefix, "the kept lock given back in time", |keys| {
        !keys.contains(&lock_key(&prefix, &id))
    })
    .await;
}

#[tokio::test]
async fn a_kept_lock_goes_to_another_node_at_once_and_is_not_reused_after() {
    if !services_enabled("a_kept_lock_goes_to_another_node_at_once_and_is_not_reused_after") {
        return;
    }
    let prefix = unique_prefix("kept-handover");
    let ttl = Duration::from_secs(10);
    let node_a = locker(&prefix, ttl).await;
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();
    let kept_fence = lock_twice(&node_a, &id).await;
    let started = std::time::Instant::now();
    let on_b = within(
        "node B takes the lock node A keeps",
        node_b.lock(&id, PATIENCE),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    println!("node B took the kept lock after {took:?}");
    // Kept locks are given back for 2 s at most; a request elsewhere must not wait that out.
    assert!(
        took < Duration::from_secs(1),
        "node B waited {took:?}, as if for the keep time"
    );
    assert!(on_b.fence() > kept_fence);
    // Node A's next request queues behind node B's and gets a lock of its own.
    let b_fence = on_b.fence();
    let again = tokio::spawn({
        let node_a = node_a.clone();
        let id = id.clone();
        async move { node_a.lock(&id, PATIENCE).await }
    });
    within(
        "node B asked to let go",
        on_b.release_requested().cancelled(),
    )
    .await;
    drop(on_b);
    let on_a = within("node A again", again).await.unwrap().unwrap();
    assert!(on_a.fence() > b_fence, "node A reused a lock it gave away");
}

#[tokio::test]
async fn a_kept_lock_whose_lease_is_lost_is_not_reused() {
    if !services_enabled("a_kept_lock_whose_lease_is_lost_is_not_reused") {
        return;
    }
    let prefix = unique_prefix("kept-lost");
    let node = locker(&prefix, Duration::from_secs(10)).await;
    let id = UploadId::generate();
    let (kept_fence, lost) = lock_twice_watching(&node, &id).await;
    let mut raw = raw_client().await;
    let held = raw.get(lock_key(&prefix, &id), None).await.unwrap();
    let lease = held.kvs()[0].lease();
    raw.lease_revoke(lease).await.expect("revoke from outside");
    within("the node sees the kept lock lost", lost.cancelled()).await;
    let guard = within("lock after the lease is gone", node.lock(&id, PATIENCE))
        .await
        .unwrap();
    assert!(guard.fence() > kept_fence, "a lost lock was reused");
    assert!(!guard.lost().is_cancelled());
}

#[tokio::test]
async fn a_node_asked_for_a_lock_stops_keeping_it_for_a_while() {
    if !services_enabled("a_node_asked_for_a_lock_stops_keeping_it_for_a_while") {
        return;
    }
    let prefix = unique_prefix("kept-contested");
    let ttl = Duration::from_secs(10);
    let node_a = locker(&prefix, ttl).await;
    let node_b = locker(&prefix, ttl).await;
    let id = UploadId::generate();
    lock_twice(&node_a, &id).await;
    // Requests on the upload alternate between the nodes (a round-robin balancer): node B asks
    // for the lock node A keeps.
    drop(within("node B", node_b.lock(&id, PATIENCE)).await.unwrap());
    // Node A's requests follow each other again, but it was asked for the lock a moment ago:
    // it keeps none, so the next request elsewhere needs no release.
    let mut last = 0;
    for round in 0..3 {
        let guard = within("node A again", node_a.lock(&id, PATIENCE))
            .await
            .unwrap();
        assert!(!guard.kept(), "round {round}: kept a contested lock");
        assert!(guard.fence() > last, "round {round}: a lock was reused");
        last = guard.fence();
    }
}
