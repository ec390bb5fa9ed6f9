//! Distributed mode end to end: three `tusk` processes over one real Redis, etcd and S3 (moto),
//! any request on any node. Letters refer to the distributed-mode issue's scenarios.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::services::*;
use crate::support::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The part size of every cluster here (`--preferred-part-size 5MiB`).
const P: usize = 5 * MIB;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Every part but the last is exactly P.
async fn assert_equal_parts(cluster: &Cluster, url: &str, len: usize) {
    let sizes = cluster.part_sizes(url).await;
    let expected: Vec<u64> = (0..len.div_ceil(P))
        .map(|i| ((len - i * P).min(P)) as u64)
        .collect();
    assert_eq!(sizes, expected);
}

#[tokio::test]
async fn a_create_patch_head_on_different_nodes_then_small_pieces_round_robin() {
    if !services_enabled("a_create_patch_head_on_different_nodes_then_small_pieces_round_robin") {
        return;
    }
    let cluster = Cluster::start(3, &[]).await;
    let len = 2 * P + 1_234_567;
    let data = pattern(len, 1);
    let url = cluster.create(0, len as u64).await;

    let (status, offset) = patch(&cluster.on(1, &url), 0, data[..3 * MIB].to_vec()).await;
    assert_eq!((status, offset), (204, Some(3 * MIB as u64)));
    assert_eq!(
        head(&cluster.on(2, &url)).await,
        (200, Some(3 * MIB as u64))
    );

    let mut offset = 3 * MIB;
    let mut turn = 0;
    while offset < len {
        let end = (offset + 300 * KIB).min(len);
        let node_url = cluster.on(turn % 3, &url);
        let (status, new) = patch(&node_url, offset as u64, data[offset..end].to_vec()).await;
        assert_eq!((status, new), (204, Some(end as u64)), "piece at {offset}");
        offset = end;
        turn += 1;
    }
    assert_eq!(head(&cluster.on(1, &url)).await, (200, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    assert_equal_parts(&cluster, &url, len).await;

    // Node 1 filled parts from other nodes' tails; once every PATCH is answered, none of its
    // part buffer budget (the default 512 MiB) is still reserved.
    let metrics = scrape(&cluster.nodes[1].url).await;
    let value = |series| sample(&metrics, series);
    assert_eq!(value("tusk_part_buffer_limit_bytes"), Some(536_870_912.0));
    assert_eq!(value("tusk_part_buffer_reserved_bytes"), Some(0.0));
    let waits = value("tusk_part_buffer_wait_seconds_count");
    assert!(
        waits.is_some_and(|n| n > 0.0),
        "no reservations:\n{metrics}"
    );
}

/// With unsigned part bodies (the default over HTTPS; `--s3-payload-signing never` here), small
/// PATCHes to one node stream each part to S3 while they fill it. A PATCH on another node in
/// the middle of a part makes the first node give its lock and its streamed part up; the
/// object is byte-exact in equal parts either way.
#[tokio::test]
async fn small_patches_to_one_node_stream_their_parts_to_s3_while_they_fill() {
    if !services_enabled("small_patches_to_one_node_stream_their_parts_to_s3_while_they_fill") {
        return;
    }
    let cluster = Cluster::start(2, &["--s3-payload-signing", "never"]).await;
    let len = 3 * P + 1_000_003;
    let data = pattern(len, 21);
    let url = cluster.create(0, len as u64).await;
    let detour = 2 * P + 2 * MIB;
    let mut offset = 0;
    while offset < len {
        let end = (offset + 256 * KIB).min(len);
        let node = usize::from(offset == detour);
        let (status, new) = patch(
            &cluster.on(node, &url),
            offset as u64,
            data[offset..end].to_vec(),
        )
        .await;
        assert_eq!((status, new), (204, Some(end as u64)), "piece at {offset}");
        offset = end;
    }
    cluster.assert_object(&url, &data).await;
    assert_equal_parts(&cluster, &url, len).await;
    let metrics = scrape(&cluster.nodes[0].url).await;
    let streamed = sample(&metrics, "tusk_parts_streamed_total").unwrap_or(0.0);
    if std::env::var_os("TUSK_TEST_S3_REFUSES_STREAMED_PARTS").is_some() {
        // The start-up check found that the store refuses streamed parts: all go whole.
        assert_eq!(streamed, 0.0, "{metrics}");
    } else {
        assert!(
            streamed >= 2.0,
            "parts 1 and 2 were not streamed by node 0:\n{metrics}"
        );
    }
    assert_eq!(
        sample(&metrics, "tusk_part_buffer_reserved_bytes"),
        Some(0.0)
    );
}

#[tokio::test]
async fn b_a_patch_cut_off_on_one_node_resumes_on_another_without_loss_or_resend() {
    if !services_enabled("b_a_patch_cut_off_on_one_node_resumes_on_another_without_loss_or_resend")
    {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let len = 4 * MIB;
    let data = pattern(len, 2);
    let url = cluster.create(0, len as u64).await;
    let cut_at = 3 * MIB / 2;
    let mut raw = RawRequest::patch(&cluster.on(0, &url), 0, len as u64).await;
    raw.send(&data[..cut_at]).await;
    raw.cut();
    // Node 1 sees the broken connection and commits the 1.5 MiB to the Redis tail.
    let deadline = Instant::now() + PATIENCE;
    let offset = loop {
        let (status, offset) = head(&cluster.on(1, &url)).await;
        assert_eq!(status, 200);
        if offset == Some(cut_at as u64) || Instant::now() > deadline {
            break offset;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        offset,
        Some(cut_at as u64),
        "every byte that arrived is kept"
    );
    let (status, offset) =
        patch(&cluster.on(1, &url), cut_at as u64, data[cut_at..].to_vec()).await;
    assert_eq!((status, offset), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn c_a_node_killed_mid_patch_does_not_block_the_resume_for_long() {
    if !services_enabled("c_a_node_killed_mid_patch_does_not_block_the_resume_for_long") {
        return;
    }
    let lease = Duration::from_secs(3);
    let wait = Duration::from_secs(5);
    let cluster = Cluster::start(2, &["--lock-lease", "3s", "--lock-wait", "5s"]).await;
    let len = P + 2 * MIB;
    let data = pattern(len, 3);
    let url = cluster.create(0, len as u64).await;
    let raw = stalled_patch(&cluster, 0, &url, len, &data[..2 * MIB]).await;
    cluster.nodes[0].signal("KILL");
    let started = Instant::now();
    let (status, offset) = head(&cluster.on(1, &url)).await;
    let waited = started.elapsed();
    eprintln!("resume HEAD after kill -9 of the holder: {waited:?}");
    assert_eq!(status, 200);
    assert!(waited < lease + wait, "took {waited:?}");
    // The dead node committed nothing of its unfinished part; nothing is claimed that is not stored.
    let offset = offset.unwrap() as usize;
    assert_eq!(offset, 0);
    let (status, end) = patch(&cluster.on(1, &url), 0, data.clone()).await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    drop(raw);
}

/// A node keeps an upload's lock between a client's requests once they follow each other on it
/// (docs/architecture.md, "Kept locks"). Killed outright while it keeps one, it cannot give it
/// back: the lock goes with its lease, and the resume on the other node gets through within the
/// lease and the lock wait, at the acknowledged offset.
#[tokio::test]
async fn c_a_node_killed_while_keeping_a_lock_blocks_the_resume_only_until_its_lease() {
    if !services_enabled(
        "c_a_node_killed_while_keeping_a_lock_blocks_the_resume_only_until_its_lease",
    ) {
        return;
    }
    let lease = Duration::from_secs(3);
    let wait = Duration::from_secs(5);
    let cluster = Cluster::start(2, &["--lock-lease", "3s", "--lock-wait", "5s"]).await;
    let len = P + 2 * MIB;
    let data = pattern(len, 33);
    let url = cluster.create(0, len as u64).await;
    let on_0 = cluster.on(0, &url);
    let (status, end) = patch(&on_0, 0, data[..MIB].to_vec()).await;
    assert_eq!((status, end), (204, Some(MIB as u64)));
    let (status, end) = patch(&on_0, MIB as u64, data[MIB..2 * MIB].to_vec()).await;
    assert_eq!((status, end), (204, Some(2 * MIB as u64)));
    cluster.nodes[0].signal("KILL");
    // The kept lock outlives the node, on its lease.
    wait_until_locked(&cluster, &url).await;
    let started = Instant::now();
    let (status, offset) = head(&cluster.on(1, &url)).await;
    let waited = started.elapsed();
    eprintln!("resume HEAD after kill -9 of the node keeping the lock: {waited:?}");
    assert_eq!((status, offset), (200, Some(2 * MIB as u64)));
    assert!(waited < lease + wait, "took {waited:?}");
    let (status, end) = patch(
        &cluster.on(1, &url),
        2 * MIB as u64,
        data[2 * MIB..].to_vec(),
    )
    .await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

/// Wait until a request on another node would have to ask for the upload's lock: the holder
/// shows up as a lock key in etcd.
async fn wait_until_locked(cluster: &Cluster, url: &str) {
    let id = id_of(url).to_owned();
    let etcd = cluster.endpoints.etcd.clone();
    wait_until("the PATCH to hold the upload's lock", move || {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &etcd, "get", "--prefix", "", "--keys-only"])
            .output()
            .expect("etcdctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|k| k.ends_with(&format!("lock/{id}")))
    })
    .await;
}

/// A PATCH of `len` bytes on node `node` that sends `first` and then stalls, once that node
/// holds the upload's lock (as a dead mobile client leaves it).
async fn stalled_patch(
    cluster: &Cluster,
    node: usize,
    url: &str,
    len: usize,
    first: &[u8],
) -> RawRequest {
    let mut raw = RawRequest::patch(&cluster.on(node, url), 0, len as u64).await;
    raw.send(first).await;
    wait_until_locked(cluster, url).await;
    raw
}

#[tokio::test]
async fn d_a_stalled_patch_on_one_node_lets_go_when_another_node_asks() {
    if !services_enabled("d_a_stalled_patch_on_one_node_lets_go_when_another_node_asks") {
        return;
    }
    // A 60 s read timeout and a 10 s lease: only the release request explains a fast handover.
    let cluster = Cluster::start(2, &["--read-timeout", "60s", "--lock-lease", "10s"]).await;
    let len = 3 * MIB;
    let data = pattern(len, 4);
    let url = cluster.create(0, len as u64).await;
    let stale = stalled_patch(&cluster, 0, &url, len, &data[..MIB]).await;

    let started = Instant::now();
    let (status, offset) = head(&cluster.on(1, &url)).await;
    let head_took = started.elapsed();
    assert_eq!(status, 200);
    // The holder commits what it had read of the 1 MiB when asked (all of it, unless the
    // request came before the bytes were read), and answers with exactly that.
    let offset = offset.unwrap() as usize;
    assert!(offset <= MIB);
    let (status, end) = patch(&cluster.on(1, &url), offset as u64, data[offset..].to_vec()).await;
    let total = started.elapsed();
    assert_eq!((status, end), (204, Some(len as u64)));
    eprintln!(
        "cross-node release: HEAD after {head_took:?} (offset {offset}), HEAD+PATCH after {total:?}"
    );
    assert!(
        head_took < Duration::from_secs(5),
        "HEAD took {head_took:?}"
    );
    let (status, headers) = stale.response().await;
    assert_eq!(status, 204);
    assert_eq!(
        header(&headers, "upload-offset"),
        Some(offset.to_string().as_str())
    );
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn e_two_concurrent_patches_at_one_offset_never_both_store_the_body() {
    if !services_enabled("e_two_concurrent_patches_at_one_offset_never_both_store_the_body") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let len = 6 * MIB;
    let data = pattern(len, 5);
    let url = cluster.create(0, len as u64).await;
    let (url_a, url_b) = (cluster.on(0, &url), cluster.on(1, &url));
    let (a, b) = tokio::join!(
        patch(&url_a, 0, data.clone()),
        patch(&url_b, 0, data.clone()),
    );
    eprintln!("concurrent PATCHes: {a:?} {b:?}");
    let full = |r: &(u16, Option<u64>)| *r == (204, Some(len as u64));
    assert!(!(full(&a) && full(&b)), "both stored the whole body");
    for r in [a, b] {
        // Each either stored the body, was refused, or was asked to let go and acknowledged
        // exactly what it had committed.
        assert!(matches!(r.0, 204 | 409 | 423), "unexpected status {r:?}");
    }
    let (_, offset) = head(&cluster.on(0, &url)).await;
    let offset = offset.unwrap() as usize;
    if offset < len {
        let (status, end) =
            patch(&cluster.on(1, &url), offset as u64, data[offset..].to_vec()).await;
        assert_eq!((status, end), (204, Some(len as u64)));
    }
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn f_a_paused_holder_whose_lease_expired_cannot_write_after_the_new_holder() {
    if !services_enabled("f_a_paused_holder_whose_lease_expired_cannot_write_after_the_new_holder")
    {
        return;
    }
    let cluster = Cluster::start(2, &["--lock-lease", "2s", "--lock-wait", "10s"]).await;
    let len = 2 * MIB;
    let data = pattern(len, 6);
    let garbage = pattern(len, 99);
    let url = cluster.create(0, len as u64).await;
    // Node 1 receives wrong bytes, then is paused while holding the lock.
    let mut stale = stalled_patch(&cluster, 0, &url, len, &garbage[..MIB]).await;
    cluster.nodes[0].signal("STOP");
    // Node 2 gets the lock once the paused holder's lease expires, and stores the right bytes.
    let (status, end) = patch(&cluster.on(1, &url), 0, data[..MIB + 7].to_vec()).await;
    assert_eq!((status, end), (204, Some(MIB as u64 + 7)));
    // The old holder wakes up and its body ends: it must not change anything.
    cluster.nodes[0].signal("CONT");
    stale.send(&garbage[MIB..MIB + 1000]).await;
    stale.cut();
    let (status, offset) = head(&cluster.on(0, &url)).await;
    assert_eq!((status, offset), (200, Some(MIB as u64 + 7)));
    let (status, end) = patch(
        &cluster.on(0, &url),
        MIB as u64 + 7,
        data[MIB + 7..].to_vec(),
    )
    .await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn g_termination_aborts_the_multipart_upload_and_deletes_state_and_tail() {
    if !services_enabled("g_termination_aborts_the_multipart_upload_and_deletes_state_and_tail") {
        return;
    }
    let cluster = Cluster::start(3, &[]).await;
    let len = 3 * P;
    let url = cluster.create(0, len as u64).await;
    let (status, _) = patch(&cluster.on(1, &url), 0, pattern(P + 100, 7)).await;
    assert_eq!(status, 204);
    assert_eq!(cluster.multipart_uploads().await, 1);
    assert!(!cluster.redis_keys().is_empty());

    assert_eq!(delete(&cluster.on(2, &url)).await, 204);
    for i in 0..3 {
        assert_eq!(head(&cluster.on(i, &url)).await, (404, None), "node {i}");
        let (status, _) = patch(&cluster.on(i, &url), P as u64 + 100, vec![1]).await;
        assert_eq!(status, 404);
    }
    assert_eq!(cluster.multipart_uploads().await, 0);
    assert_eq!(cluster.redis_keys(), Vec::<String>::new());
}

#[tokio::test]
async fn edge_sizes_are_byte_exact() {
    if !services_enabled("edge_sizes_are_byte_exact") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    for len in [0, 1, P, P + 1] {
        let data = pattern(len, len as u8);
        let url = cluster.create(0, len as u64).await;
        if len > 0 {
            let (status, end) = patch(&cluster.on(1, &url), 0, data.clone()).await;
            assert_eq!((status, end), (204, Some(len as u64)), "length {len}");
        }
        assert_eq!(head(&cluster.on(1, &url)).await, (200, Some(len as u64)));
        cluster.assert_object(&url, &data).await;
    }
}

#[tokio::test]
async fn deferred_length_is_byte_exact() {
    if !services_enabled("deferred_length_is_byte_exact") {
        return;
    }
    let cluster = Cluster::start(2, &["--max-size", "1GiB"]).await;
    let data = pattern(P + 3, 8);
    let url = cluster.nodes[0]
        .post(&[("Upload-Defer-Length", "1".into())])
        .await;
    let (status, end) = patch(&cluster.on(1, &url), 0, data[..MIB].to_vec()).await;
    assert_eq!((status, end), (204, Some(MIB as u64)));
    let resp = client()
        .patch(cluster.on(0, &url))
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", MIB.to_string())
        .header("Upload-Length", data.len().to_string())
        .body(data[MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn a_length_needing_more_parts_than_allowed_gets_bigger_equal_parts() {
    if !services_enabled("a_length_needing_more_parts_than_allowed_gets_bigger_equal_parts") {
        return;
    }
    // At most 3 parts: 20 MiB needs 7 MiB parts although 5 MiB is preferred.
    let cluster = Cluster::start(2, &["--max-parts", "3", "--max-size", "21MiB"]).await;
    let len = 20 * MIB;
    let data = pattern(len, 9);
    let url = cluster.create(0, len as u64).await;
    let (status, _) = patch(&cluster.on(1, &url), 0, data[..9 * MIB].to_vec()).await;
    assert_eq!(status, 204);
    let (status, end) = patch(
        &cluster.on(0, &url),
        9 * MIB as u64,
        data[9 * MIB..].to_vec(),
    )
    .await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    assert_eq!(
        cluster.part_sizes(&url).await,
        vec![7 * MIB as u64, 7 * MIB as u64, 6 * MIB as u64]
    );
}

/// PATCH expecting a 503 with a message, then check the upload is untouched.
async fn assert_unavailable(url: &str, offset: usize, data: &[u8], what: &str) {
    let resp = client()
        .patch(url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", offset.to_string())
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "PATCH while {what} is down");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("unavailable"),
        "message while {what} is down: {body:?}"
    );
}

#[tokio::test]
async fn h_each_service_down_mid_upload_gives_503_and_the_upload_completes_after() {
    if !services_enabled("h_each_service_down_mid_upload_gives_503_and_the_upload_completes_after")
    {
        return;
    }
    let shared = Endpoints::shared();
    let (mut redis, redis_url) = Private::redis().await;
    let (mut etcd, etcd_url) = Private::etcd().await;
    let relay = Relay::start(shared.s3.trim_start_matches("http://")).await;
    let endpoints = Endpoints {
        redis_url,
        etcd: etcd_url,
        s3: format!("http://127.0.0.1:{}", relay.port),
    };
    let cluster = Cluster::start_over(endpoints, 2, &["--lock-wait", "2s"]).await;
    let len = 3 * P;
    let data = pattern(len, 10);
    let url = cluster.create(0, len as u64).await;
    let mut offset = 0;
    let step = P + 300 * KIB;

    for (i, what) in ["Redis", "etcd", "S3"].into_iter().enumerate() {
        let (status, end) = patch(
            &cluster.on(i % 2, &url),
            offset as u64,
            data[offset..offset + step / 2].to_vec(),
        )
        .await;
        assert_eq!(status, 204, "before {what} outage");
        offset = end.unwrap() as usize;
        match what {
            "Redis" => redis.stop().await,
            "etcd" => etcd.stop().await,
            _ => relay.cut(),
        }
        // On the other node: the node of the last request may keep the upload's lock a moment
        // and would not need etcd for this one.
        assert_unavailable(
            &cluster.on((i + 1) % 2, &url),
            offset,
            &data[offset..offset + step],
            what,
        )
        .await;
        // Readiness names the service that is down.
        let origin = cluster.nodes[0].url.trim_end_matches("/files/").to_owned();
        let ready = client()
            .get(format!("{origin}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503, "readyz while {what} is down");
        let why = ready.text().await.unwrap();
        let named = match what {
            "Redis" => "Redis",
            "etcd" => "etcd",
            _ => "S3",
        };
        assert!(why.contains(named), "readyz while {what} is down: {why}");
        // HEAD needs only Redis and etcd: S3 is not on its path.
        let expected = if what == "S3" {
            (200, Some(offset as u64))
        } else {
            (503, None)
        };
        assert_eq!(
            head(&cluster.on(0, &url)).await,
            expected,
            "HEAD while {what} is down"
        );
        match what {
            "Redis" => redis.start().await,
            "etcd" => etcd.start().await,
            _ => relay.restore().await,
        }
        // The upload is exactly where it was.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = head(&cluster.on(1, &url)).await;
            if got == (200, Some(offset as u64)) {
                break;
            }
            assert!(Instant::now() < deadline, "after {what} came back: {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (status, end) = patch(&cluster.on(0, &url), offset as u64, data[offset..].to_vec()).await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

#[tokio::test]
async fn a_node_stopped_for_a_rolling_restart_hands_its_upload_over_at_once() {
    if !services_enabled("a_node_stopped_for_a_rolling_restart_hands_its_upload_over_at_once") {
        return;
    }
    // The lease (10 s) outlasts the lock wait (2 s): only a lock given back on shutdown lets
    // the other node in before its HEAD gives up with 423.
    let cluster = Cluster::start(2, &["--lock-lease", "10s", "--lock-wait", "2s"]).await;
    let len = 2 * MIB;
    let data = pattern(len, 11);
    let url = cluster.create(0, len as u64).await;
    let raw = stalled_patch(&cluster, 0, &url, len, &data[..MIB]).await;
    cluster.nodes[0].signal("TERM");
    // The PATCH is told to commit and answers with what it stored.
    let (status, headers) = raw.response().await;
    assert_eq!(status, 204);
    let offset: usize = header(&headers, "upload-offset").unwrap().parse().unwrap();
    assert!(offset <= MIB);
    let pid = cluster.nodes[0].pid();
    wait_until("node 1 to exit", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'))
        })
    })
    .await;
    assert_eq!(head(&cluster.on(1, &url)).await, (200, Some(offset as u64)));
    let (status, end) = patch(&cluster.on(1, &url), offset as u64, data[offset..].to_vec()).await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
}

/// Run `tusk serve` with `args`; it must exit (bounded wait) with a failure whose stderr
/// contains every one of `expected`.
async fn assert_refuses_to_start(args: &[&str], expected: &[&str]) {
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tusk"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(s3_env())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tusk did not exit")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {args:?}");
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: {text:?} not in {stderr}");
    }
    assert!(
        !stderr.contains("hunter2"),
        "a password was printed: {stderr}"
    );
}

#[tokio::test]
async fn start_up_fails_fast_naming_the_service_that_does_not_answer() {
    if !services_enabled("start_up_fails_fast_naming_the_service_that_does_not_answer") {
        return;
    }
    let shared = Endpoints::shared();
    let bucket = unique("tusk-e2e");
    create_bucket(&shared.s3, &bucket).await;
    let s3 = ["--s3-endpoint", &shared.s3, "--s3-force-path-style"];
    // The single Redis whatever the nodes of other tests use: this test is about start-up.
    let redis = std::env::var("TUSK_TEST_REDIS_URL").unwrap();
    let closed = "http://127.0.0.1:1";

    // S3 unreachable.
    let args = [
        "--s3-bucket",
        &bucket,
        "--s3-endpoint",
        closed,
        "--redis-url",
        &redis,
    ];
    assert_refuses_to_start(&args, &["S3", "unreachable"]).await;
    // A bucket that does not exist is named.
    let mut args = vec!["--s3-bucket", "no-such-bucket-tusk", "--redis-url", &redis];
    args.extend(s3);
    assert_refuses_to_start(&args, &["no-such-bucket-tusk"]).await;
    // Redis unreachable; its password is never printed.
    let mut args = vec![
        "--s3-bucket",
        &bucket,
        "--redis-url",
        "redis://:hunter2@127.0.0.1:1/",
    ];
    args.extend(s3);
    assert_refuses_to_start(&args, &["Redis"]).await;
    // A Redis Cluster none of whose seeds answers.
    let mut args = vec![
        "--s3-bucket",
        &bucket,
        "--redis-cluster",
        "--redis-url",
        "redis://:hunter2@127.0.0.1:1/,redis://127.0.0.1:2/",
    ];
    args.extend(s3);
    assert_refuses_to_start(&args, &["Redis"]).await;
    // etcd unreachable.
    let mut args = vec![
        "--s3-bucket",
        &bucket,
        "--redis-url",
        &redis,
        "--etcd-endpoints",
        closed,
    ];
    args.extend(s3);
    assert_refuses_to_start(&args, &["etcd"]).await;
}

#[tokio::test]
async fn start_up_warns_when_redis_may_evict_upload_state() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    if !services_enabled("start_up_warns_when_redis_may_evict_upload_state") {
        return;
    }
    let shared = Endpoints::shared();
    let (_redis, redis_url) = Private::redis_with(&["--maxmemory-policy", "allkeys-lru"]).await;
    let bucket = unique("tusk-e2e");
    create_bucket(&shared.s3, &bucket).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tusk"))
        .arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--s3-bucket",
            &bucket,
            "--s3-force-path-style",
        ])
        .args(["--s3-endpoint", &shared.s3, "--redis-url", &redis_url])
        .envs(s3_env())
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let warned = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("maxmemory-policy") && line.contains("allkeys-lru") {
                return true;
            }
            if line.contains("tusk started") {
                return false;
            }
        }
        false
    })
    .await
    .expect("no start-up log");
    assert!(warned, "no maxmemory-policy warning before start");
}

#[tokio::test]
async fn a_checksum_mismatch_commits_none_of_the_parts_it_sent() {
    if !services_enabled("a_checksum_mismatch_commits_none_of_the_parts_it_sent") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let len = 3 * P;
    let data = pattern(len, 12);
    let url = cluster.create(0, len as u64).await;
    let (status, _) = patch(&cluster.on(0, &url), 0, data[..MIB].to_vec()).await;
    assert_eq!(status, 204);
    // Two whole parts go to S3 while this body streams, but its checksum is wrong.
    let mut wrong = data[MIB..].to_vec();
    wrong[len - MIB - 1] ^= 1;
    let good = sha256_checksum(&data[MIB..]);
    let (status, _) = patch_with(
        &cluster.on(1, &url),
        MIB as u64,
        wrong,
        std::slice::from_ref(&good),
    )
    .await;
    assert_eq!(status, 460);
    assert_eq!(head(&cluster.on(0, &url)).await, (200, Some(MIB as u64)));
    // The correct retry, on the other node, succeeds and overwrites those parts.
    let (status, end) = patch_with(
        &cluster.on(0, &url),
        MIB as u64,
        data[MIB..].to_vec(),
        &[good],
    )
    .await;
    assert_eq!((status, end), (204, Some(len as u64)));
    cluster.assert_object(&url, &data).await;
    assert_equal_parts(&cluster, &url, len).await;
}

#[tokio::test]
async fn downloads_stream_from_s3_on_any_node() {
    if !services_enabled("downloads_stream_from_s3_on_any_node") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let len = 2 * P + 12_345;
    let data = pattern(len, 14);
    let url = cluster.create(0, len as u64).await;
    let (status, _) = patch(&cluster.on(0, &url), 0, data[..P].to_vec()).await;
    assert_eq!(status, 204);
    let resp = client().get(cluster.on(1, &url)).send().await.unwrap();
    assert_eq!(resp.status(), 409, "unfinished uploads are not served");
    let (status, _) = patch(&cluster.on(1, &url), P as u64, data[P..].to_vec()).await;
    assert_eq!(status, 204);

    let resp = client().get(cluster.on(1, &url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(len as u64));
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(sha(&resp.bytes().await.unwrap()), sha(&data));

    let range = format!("bytes={}-{}", P - 10, P + 9);
    let resp = client()
        .get(cluster.on(0, &url))
        .header("Range", range)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap(), data[P - 10..P + 10]);
    let resp = client()
        .get(cluster.on(0, &url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    let resp = client()
        .get(cluster.on(0, &url))
        .header("Range", "bytes=-0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
}

#[tokio::test]
async fn expired_uploads_are_410_on_every_node_and_tusk_cleanup_clears_s3_and_redis() {
    if !services_enabled(
        "expired_uploads_are_410_on_every_node_and_tusk_cleanup_clears_s3_and_redis",
    ) {
        return;
    }
    // No node reaps during the test (1 h interval), so every node must answer 410 by itself.
    let cluster = Cluster::start(3, &["--expire-after", "2s", "--reap-interval", "1h"]).await;
    let url = cluster.create(0, 3 * P as u64).await;
    let (status, _) = patch(&cluster.on(1, &url), 0, pattern(P + 10, 15)).await;
    assert_eq!(status, 204);
    assert_eq!(cluster.multipart_uploads().await, 1);
    for node in 0..3 {
        let deadline = Instant::now() + PATIENCE;
        while head(&cluster.on(node, &url)).await.0 != 410 {
            assert!(Instant::now() < deadline, "node {node}: never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (status, _) = patch(&cluster.on(2, &url), P as u64 + 10, vec![1]).await;
    assert_eq!(status, 410);
    let out = cluster.cleanup().await;
    assert!(out.contains("1 removed"), "{out}");
    for node in 0..3 {
        assert_eq!(head(&cluster.on(node, &url)).await.0, 404, "node {node}");
    }
    assert_eq!(cluster.multipart_uploads().await, 0);
    let keys: Vec<String> = cluster
        .redis_keys()
        .into_iter()
        .filter(|k| k.contains(id_of(&url)))
        .collect();
    assert_eq!(keys, Vec::<String>::new());
}

#[tokio::test]
async fn the_background_reaper_removes_expired_uploads() {
    if !services_enabled("the_background_reaper_removes_expired_uploads") {
        return;
    }
    let cluster = Cluster::start(2, &["--expire-after", "1s", "--reap-interval", "1s"]).await;
    let url = cluster.create(0, 3 * P as u64).await;
    let (status, _) = patch(&cluster.on(1, &url), 0, pattern(P + 10, 16)).await;
    assert_eq!(status, 204);
    // 200 until it expires, then 410 until a node's reaper removes it, then 404 everywhere.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let statuses = [
            head(&cluster.on(0, &url)).await.0,
            head(&cluster.on(1, &url)).await.0,
        ];
        assert!(
            statuses.iter().all(|s| matches!(s, 200 | 410 | 404)),
            "{statuses:?}"
        );
        if statuses == [404, 404] {
            break;
        }
        assert!(Instant::now() < deadline, "never reaped: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cluster.multipart_uploads().await, 0);
}

#[tokio::test]
async fn a_final_upload_is_assembled_in_s3_from_partials_on_any_node() {
    if !services_enabled("a_final_upload_is_assembled_in_s3_from_partials_on_any_node") {
        return;
    }
    let cluster = Cluster::start(3, &[]).await;
    // 6 MiB and 7 MiB partials are copied inside S3 where they can be; the 1 MiB one and the
    // short pieces around it go through a node as one 5 MiB part.
    let sizes = [6 * MIB, MIB, 7 * MIB, 2 * MIB];
    let data: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, len)| pattern(*len, 20 + i as u8))
        .collect();
    let mut partials = Vec::new();
    for (i, part) in data.iter().enumerate() {
        let url = cluster.nodes[i % 3]
            .post(&[
                ("Upload-Concat", "partial".into()),
                ("Upload-Length", part.len().to_string()),
            ])
            .await;
        partials.push(url);
    }
    // The first three partials finish; the final is created before the last one does.
    for (i, part) in data.iter().enumerate().take(3) {
        let (status, _) = patch(&cluster.on((i + 1) % 3, &partials[i]), 0, part.clone()).await;
        assert_eq!(status, 204);
    }
    let concat = format!("final;{}", partials.join(" "));
    let fin = cluster.nodes[2].post(&[("Upload-Concat", concat)]).await;
    let resp = client()
        .head(cluster.on(0, &fin))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["upload-length"],
        (16 * MIB).to_string().as_str()
    );
    assert!(
        resp.headers().get("upload-offset").is_none(),
        "not assembled yet"
    );
    assert!(
        resp.headers()["upload-concat"]
            .to_str()
            .unwrap()
            .starts_with("final;")
    );
    let (status, _) = patch(&cluster.on(1, &fin), 0, vec![1]).await;
    assert_eq!(status, 403);

    let (status, _) = patch(&cluster.on(0, &partials[3]), 0, data[3].clone()).await;
    assert_eq!(status, 204);
    assert_eq!(
        head(&cluster.on(1, &fin)).await,
        (200, Some(16 * MIB as u64))
    );
    let whole: Vec<u8> = data.concat();
    cluster.assert_object(&fin, &whole).await;
    assert_eq!(
        cluster.part_sizes(&fin).await,
        vec![6 * MIB as u64, 5 * MIB as u64, 5 * MIB as u64]
    );
    let resp = client().get(cluster.on(2, &fin)).send().await.unwrap();
    assert_eq!(sha(&resp.bytes().await.unwrap()), sha(&whole));
}

#[tokio::test]
async fn with_s3_equal_parts_a_final_upload_has_parts_of_one_size() {
    if !services_enabled("with_s3_equal_parts_a_final_upload_has_parts_of_one_size") {
        return;
    }
    // The cluster's 5 MiB parts: a part inside one partial is copied in S3, one across
    // partials streamed through a node.
    let cluster = Cluster::start(2, &["--s3-equal-parts"]).await;
    let sizes = [6 * MIB, MIB + 3, 7 * MIB, 2 * MIB];
    let mut whole = Vec::new();
    let mut partials = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let data = pattern(*len, 40 + i as u8);
        let url = cluster.nodes[i % 2]
            .post(&[
                ("Upload-Concat", "partial".into()),
                ("Upload-Length", len.to_string()),
            ])
            .await;
        assert_eq!(patch(&url, 0, data.clone()).await.0, 204);
        whole.extend(data);
        partials.push(url);
    }
    let fin = cluster.nodes[1]
        .post(&[("Upload-Concat", format!("final;{}", partials.join(" ")))])
        .await;
    assert_eq!(head(&fin).await, (200, Some(whole.len() as u64)));
    cluster.assert_object(&fin, &whole).await;
    let parts = cluster.part_sizes(&fin).await;
    let (last, full) = parts.split_last().unwrap();
    assert!(full.iter().all(|&s| s == 5 * MIB as u64), "{parts:?}");
    assert!(*last > 0 && *last <= 5 * MIB as u64, "{parts:?}");
}

/// A node that created or saw an upload locks it again without reading the store first; once
/// another node deleted it, that node's next request still answers 404 (the read under the
/// lock decides), and its first request after the delete of its own reads the store again.
#[tokio::test]
async fn a_node_that_knows_an_upload_skips_its_pre_lock_read_and_still_sees_it_deleted() {
    if !services_enabled(
        "a_node_that_knows_an_upload_skips_its_pre_lock_read_and_still_sees_it_deleted",
    ) {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let hits = |scrape: &str| sample(scrape, "tusk_known_upload_hits_total").unwrap_or(0.0);
    let before = hits(&scrape(&cluster.nodes[0].url).await);
    // The node that created it knows it from the start.
    let url = cluster.create(0, 10).await;
    let node0 = cluster.on(0, &url);
    assert_eq!(head(&node0).await, (200, Some(0)));
    assert_eq!(patch(&node0, 0, b"abcde".to_vec()).await, (204, Some(5)));
    assert_eq!(head(&node0).await, (200, Some(5)));
    let known = hits(&scrape(&cluster.nodes[0].url).await);
    assert_eq!(
        known - before,
        3.0,
        "both HEADs and the PATCH skipped the read"
    );

    // Deleted through the other node: node 0 still knows the id, locks it, and answers 404.
    assert_eq!(delete(&cluster.on(1, &url)).await, 204);
    assert_eq!(head(&node0).await.0, 404);
    assert_eq!(
        patch(&node0, 5, b"fghij".to_vec()).await.0,
        404,
        "a PATCH on a deleted upload is refused, whatever the node remembered"
    );
    // Node 1 deleted it itself: it forgot the id, so the read before the lock answers 404.
    let before = hits(&scrape(&cluster.nodes[1].url).await);
    assert_eq!(head(&cluster.on(1, &url)).await.0, 404);
    assert_eq!(hits(&scrape(&cluster.nodes[1].url).await), before);
}
