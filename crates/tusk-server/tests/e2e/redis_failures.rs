//! Upload state that survives Redis failures, with the real binary: three nodes over a Redis
//! Cluster of a test's own (a tusk node and a Redis master killed mid-upload), acknowledged
//! means replicated (a frozen replica), and a failover to a replica that missed the last PATCH
//! (the finished file is kept and served, never reaped).

use std::time::{Duration, Instant};

use crate::services::*;
use crate::support::*;

const MIB: usize = 1024 * 1024;
const P: usize = 5 * MIB;

/// `redis-cli -p port args...`, its stdout.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// HEAD until it answers 200 (bounded): after a Redis master comes back, requests get 503 until
/// the cluster serves its slots again.
async fn head_when_back(url: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let (200, Some(offset)) = head(url).await {
            return offset;
        }
        assert!(Instant::now() < deadline, "HEAD never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redis_cluster_keeps_uploads_through_a_killed_node_and_a_restarted_master() {
    if !services_enabled(
        "a_redis_cluster_keeps_uploads_through_a_killed_node_and_a_restarted_master",
    ) {
        return;
    }
    let shared = Endpoints::shared();
    let (mut masters, ports, seeds) = Private::redis_cluster(0).await;
    let endpoints = Endpoints {
        redis_url: seeds,
        ..shared
    };
    let cluster =
        Cluster::start_over(endpoints, 3, &["--redis-cluster", "--lock-lease", "3s"]).await;
    let len = 3 * P + 12_345;
    let data = pattern(len, 21);
    let url = cluster.create(0, len as u64).await;

    // A part and a tail through node 0, then node 1 dies by SIGKILL in the middle of a PATCH.
    let first = P + 300 * 1024;
    let (status, offset) = patch(&cluster.on(0, &url), 0, data[..first].to_vec()).await;
    assert_eq!((status, offset), (204, Some(first as u64)));
    let mut cut = RawRequest::patch(&cluster.on(1, &url), first as u64, (len - first) as u64).await;
    cut.send(&data[first..first + MIB]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.nodes[1].signal("KILL");
    drop(cut);
    // Node 2 resumes where the state says, once the dead node's lock lease runs out.
    let offset = head_when_back(&cluster.on(2, &url)).await as usize;
    assert!(offset >= first && offset <= first + MIB, "offset {offset}");
    let second = 2 * P + 100;
    let (status, end) = patch(
        &cluster.on(2, &url),
        offset as u64,
        data[offset..second].to_vec(),
    )
    .await;
    assert_eq!((status, end), (204, Some(second as u64)));

    // The master holding the upload's state dies by SIGKILL and comes back from its AOF.
    let key = cluster.state_key(&url);
    let holder = ports
        .iter()
        .position(|port| redis_cli(*port, &["EXISTS", &key]) == "1")
        .expect("one master holds the upload");
    masters[holder].kill().await;
    let (status, _) = patch(
        &cluster.on(0, &url),
        second as u64,
        data[second..second + 10].to_vec(),
    )
    .await;
    assert_eq!(
        status, 503,
        "no acknowledgement while the upload's master is down"
    );
    masters[holder].start().await;
    for port in &ports {
        wait_for_cluster_ok(*port).await;
    }
    let offset = head_when_back(&cluster.on(0, &url)).await as usize;
    assert_eq!(
        offset, second,
        "every acknowledged byte survived the master's restart"
    );
    let (status, end) = patch(&cluster.on(0, &url), offset as u64, data[offset..].to_vec()).await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    let body = download(&cluster.on(2, &url)).await;
    assert!(body == data, "download bytes differ");
}

#[tokio::test]
async fn with_wait_replicas_a_frozen_replica_holds_back_every_acknowledgement() {
    if !services_enabled("with_wait_replicas_a_frozen_replica_holds_back_every_acknowledgement") {
        return;
    }
    let pair = Replicated::start().await;
    let replica = &pair.replica;
    let endpoints = Endpoints {
        redis_url: pair.primary_url.clone(),
        ..Endpoints::shared()
    };
    let cluster = Cluster::start_over(
        endpoints,
        1,
        &[
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout",
            "500ms",
        ],
    )
    .await;
    let len = P + 4000;
    let data = pattern(len, 5);
    let url = cluster.create(0, len as u64).await;
    let (status, offset) = patch(&url, 0, data[..1000].to_vec()).await;
    assert_eq!((status, offset), (204, Some(1000)));

    replica.signal("-STOP");
    let (status, _) = patch(&url, 1000, data[1000..3000].to_vec()).await;
    assert_eq!(status, 503, "not on the replica: not acknowledged");
    let (status, _) = head(&url).await;
    assert_eq!(status, 503, "HEAD reports nothing it cannot confirm");
    replica.signal("-CONT");

    // The replica catches up; what the master had is confirmed now and reported.
    let offset = head_when_back(&url).await as usize;
    assert!(offset == 1000 || offset == 3000, "offset {offset}");
    let (status, end) = patch(&url, offset as u64, data[offset..].to_vec()).await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    let scrape = scrape(&cluster.nodes[0].url).await;
    assert!(
        sample(&scrape, "tusk_redis_replication_timeouts_total").unwrap_or_default() >= 2.0,
        "{scrape}"
    );
}

/// The failure of the issue: a primary with one replica; the replica's link drops, the last
/// PATCH finishes the upload on the primary (204, object complete, GET 200); the primary dies
/// and the replica is promoted. The promoted state says the upload is unfinished: the file must
/// still be served and never reaped.
#[tokio::test]
async fn a_failover_to_a_replica_that_missed_the_last_patch_keeps_the_finished_file() {
    if !services_enabled(
        "a_failover_to_a_replica_that_missed_the_last_patch_keeps_the_finished_file",
    ) {
        return;
    }
    let mut pair = Replicated::start().await;
    let (primary_port, replica_port) = (pair.primary_port, pair.replica_port);
    let replica_url = pair.replica_url.clone();
    let endpoints = Endpoints {
        redis_url: pair.primary_url.clone(),
        ..Endpoints::shared()
    };
    let mut cluster = Cluster::start_over(
        endpoints,
        1,
        &["--expire-after", "2s", "--reap-interval", "1s"],
    )
    .await;
    let len = 2 * P + 5000;
    let data = pattern(len, 9);
    let url = cluster.create(0, len as u64).await;
    let first = P + 1000;
    let (status, offset) = patch(&url, 0, data[..first].to_vec()).await;
    assert_eq!((status, offset), (204, Some(first as u64)));
    // Everything so far is on the replica; then its link drops.
    replica_caught_up(primary_port, replica_port).await;
    redis_cli(replica_port, &["REPLICAOF", "127.0.0.1", "1"]);

    let (status, offset) = patch(&url, first as u64, data[first..].to_vec()).await;
    assert_eq!(
        (status, offset),
        (204, Some(len as u64)),
        "told it is stored"
    );
    download(&url).await;

    // The primary dies; the replica is promoted and the node talks to it.
    pair.primary.kill().await;
    assert_eq!(redis_cli(replica_port, &["REPLICAOF", "NO", "ONE"]), "OK");
    // The node restarts to follow the failover, as in a rolling restart: it gives back the
    // lock it keeps after its requests (a killed node's locks go with its lease, a TTL later).
    for node in cluster.nodes.drain(..) {
        node.stop().await;
    }
    let node = cluster.node_with_redis(&replica_url).await;
    let on_node = format!("{}{}", node.url, id_of(&url));
    // The promoted state is behind: HEAD reports its stale offset, or, once that state's
    // expiry (2 s after the first PATCH) has passed, finds the object and reports it finished.
    let (status, offset) = head(&on_node).await;
    assert_eq!(status, 200, "HEAD on the promoted state: {offset:?}");
    assert!(
        offset == Some(first as u64) || offset == Some(len as u64),
        "{offset:?}"
    );
    // Past the stale state's expiry the reaper (every second) comes to the upload: it must
    // find the object and keep the file.
    let deadline = Instant::now() + PATIENCE;
    while sample(&scrape(&node.url).await, "tusk_uploads_recovered_total").unwrap_or_default() < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the reaper never came to the upload"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = download(&on_node).await;
    assert!(body == data, "download bytes differ");
    assert_eq!(head(&on_node).await, (200, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

/// A Redis primary with one replica, in sync, both of the test's own.
struct Replicated {
    primary: Private,
    primary_url: String,
    primary_port: u16,
    replica: Private,
    replica_url: String,
    replica_port: u16,
}

impl Replicated {
    async fn start() -> Replicated {
        // A replica's first sync would otherwise wait 5 s for more replicas to share it.
        let (primary, primary_url) =
            Private::redis_with(&["--repl-diskless-sync-delay", "0"]).await;
        let primary_port = port_of(&primary_url);
        let (replica, replica_url) =
            Private::redis_with(&["--replicaof", "127.0.0.1", &primary_port.to_string()]).await;
        let replica_port = port_of(&replica_url);
        wait_until("the replica to sync", || {
            redis_cli(replica_port, &["INFO", "replication"]).contains("master_link_status:up")
        })
        .await;
        wait_for_replicas_streaming(primary_port, 1).await;
        Replicated {
            primary,
            primary_url,
            primary_port,
            replica,
            replica_url,
            replica_port,
        }
    }
}

/// The `field:` number of `INFO replication` on `port`.
fn replication_offset(port: u16, field: &str) -> Option<u64> {
    redis_cli(port, &["INFO", "replication"])
        .lines()
        .find_map(|line| line.trim().strip_prefix(field)?.parse().ok())
}

/// Until the replica has applied everything the primary has written so far (bounded). Not
/// `WAIT` from another connection: it confirms only that connection's own writes (none).
async fn replica_caught_up(primary: u16, replica: u16) {
    let written = replication_offset(primary, "master_repl_offset:").expect("primary offset");
    wait_until("the replica to catch up", || {
        replication_offset(replica, "slave_repl_offset:").is_some_and(|o| o >= written)
    })
    .await;
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// `cluster nodes`-style facts of the node on `port`: its id.
fn node_id(port: u16) -> String {
    redis_cli(port, &["CLUSTER", "MYID"])
}

/// The master (among `ports`) that serves `key`'s slot now.
fn master_of(ports: &[u16], key: &str) -> usize {
    ports
        .iter()
        .position(|port| {
            redis_cli(*port, &["INFO", "replication"]).contains("role:master")
                && redis_cli(*port, &["EXISTS", key]) == "1"
        })
        .expect("a master holds the key")
}

/// A Redis Cluster with a replica per master, the nodes acknowledging only what a replica has:
/// the upload's slot moves to another master mid-upload (503 while its keys migrate, then
/// MOVED), then that master dies and the cluster promotes its replica. Nothing acknowledged is
/// lost and the file is byte-exact.
#[tokio::test]
async fn a_redis_cluster_slot_move_and_failover_lose_nothing_acknowledged() {
    if !services_enabled("a_redis_cluster_slot_move_and_failover_lose_nothing_acknowledged") {
        return;
    }
    let (mut nodes, ports, seeds) = Private::redis_cluster(1).await;
    let endpoints = Endpoints {
        redis_url: seeds,
        ..Endpoints::shared()
    };
    let cluster = Cluster::start_over(
        endpoints,
        2,
        &[
            "--redis-cluster",
            "--redis-wait-replicas",
            "1",
            "--lock-lease",
            "3s",
        ],
    )
    .await;
    let len = 2 * P + 777;
    let data = pattern(len, 33);
    let url = cluster.create(0, len as u64).await;
    let offset = std::cell::Cell::new(0);
    let send = async |node: usize, upto: usize| {
        let from = offset.get();
        let (status, end) = patch(
            &cluster.on(node, &url),
            from as u64,
            data[from..upto].to_vec(),
        )
        .await;
        assert_eq!((status, end), (204, Some(upto as u64)), "PATCH to {upto}");
        offset.set(upto);
    };
    send(0, 300 * 1024).await;

    // Move the upload's slot to another master, step by step as redis-cli --cluster does.
    let key = cluster.state_key(&url);
    let from = master_of(&ports, &key);
    let to = (0..ports.len())
        .find(|&i| {
            i != from && redis_cli(ports[i], &["INFO", "replication"]).contains("role:master")
        })
        .unwrap();
    let slot = redis_cli(ports[from], &["CLUSTER", "KEYSLOT", &key]);
    let (from_id, to_id) = (node_id(ports[from]), node_id(ports[to]));
    assert_eq!(
        redis_cli(
            ports[to],
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]
        ),
        "OK"
    );
    assert_eq!(
        redis_cli(
            ports[from],
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]
        ),
        "OK"
    );
    let keys = redis_cli(ports[from], &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
    let mut migrate = vec!["MIGRATE", "127.0.0.1"];
    let to_port = ports[to].to_string();
    migrate.extend([to_port.as_str(), "", "0", "5000", "KEYS"]);
    migrate.extend(keys.lines());
    assert_eq!(redis_cli(ports[from], &migrate), "OK");
    // The keys are on the new master, the slot still on the old one: Redis answers a script
    // over several keys with TRYAGAIN until the move completes (a window of milliseconds in a
    // real resharding), and the client retries. Nothing is acknowledged meanwhile.
    let (status, _) = patch(
        &cluster.on(1, &url),
        offset.get() as u64,
        data[offset.get()..600 * 1024].to_vec(),
    )
    .await;
    assert_eq!(status, 503, "retry later while the slot moves");
    for port in &ports {
        redis_cli(*port, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
    // The slot is the new master's: MOVED.
    send(0, P + 100).await;
    assert_eq!(
        master_of(&ports, &key),
        to,
        "the upload lives on the new master"
    );

    // That master dies; the cluster promotes its replica after the node timeout (2 s).
    let master_port = format!("master_port:{}", ports[to]);
    let replica = *ports
        .iter()
        .find(|port| redis_cli(**port, &["INFO", "replication"]).contains(&master_port))
        .expect("the master has a replica");
    nodes[to].kill().await;
    wait_until("the cluster to promote the replica", || {
        redis_cli(replica, &["INFO", "replication"]).contains("role:master")
    })
    .await;
    wait_for_cluster_ok(replica).await;
    // The promoted master has no replica left to confirm anything: no acknowledgement, and
    // HEAD reports nothing, until the dead node comes back as its replica.
    assert_eq!(head(&cluster.on(1, &url)).await.0, 503);
    nodes[to].start().await;
    wait_until("the old master to rejoin as a replica", || {
        redis_cli(ports[to], &["INFO", "replication"]).contains("master_link_status:up")
    })
    .await;
    let resumed = head_when_back(&cluster.on(1, &url)).await as usize;
    assert_eq!(
        resumed,
        offset.get(),
        "the promoted replica has every acknowledged byte"
    );
    send(1, len).await;
    cluster.assert_object(&url, &data).await;
    let body = download(&cluster.on(0, &url)).await;
    assert!(body == data, "download bytes differ");
}
