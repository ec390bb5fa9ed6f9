//! Cheap attacks must fail cheaply: requests for ids that do not exist, method overrides on
//! requests any web page can make a browser send.

use crate::services::{Cluster, Endpoints, Private, services_enabled};
use crate::support::*;

/// The etcd cluster's current revision (every write raises it by one).
async fn etcd_revision(endpoint: &str) -> u64 {
    let resp = client()
        .post(format!("{endpoint}/v3/kv/range"))
        .body(r#"{"key":"AA=="}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    body["header"]["revision"]
        .as_str()
        .expect("revision")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_for_unknown_ids_write_nothing_to_etcd() {
    if !services_enabled("requests_for_unknown_ids_write_nothing_to_etcd") {
        return;
    }
    // A private etcd: the shared one counts the other tests' writes too.
    let shared = Endpoints::shared();
    let (_etcd, etcd_url) = Private::etcd().await;
    let endpoints = Endpoints {
        etcd: etcd_url.clone(),
        ..shared
    };
    let cluster = Cluster::start_over(endpoints, 1, &[]).await;
    let node = &cluster.nodes[0];
    // One real upload first, so the lock service's one-time set-up writes are behind us.
    let url = node.create(3).await;
    assert_eq!(patch(&url, 0, b"abc".to_vec()).await, (204, Some(3)));
    let before = etcd_revision(&etcd_url).await;
    let requests = 400u64;
    for i in 0..requests / 2 {
        // Well-formed ids (32 hex digits) that no upload has.
        let unknown = format!("{}{:032x}", node.url, 0x5eed_0000_u64 + i * 7919);
        let resp = client().get(&unknown).send().await.unwrap();
        assert_eq!(resp.status(), 404, "GET {unknown}");
        assert_eq!(head(&unknown).await.0, 404, "HEAD {unknown}");
    }
    let after = etcd_revision(&etcd_url).await;
    let per_request = (after - before) as f64 / requests as f64;
    eprintln!("etcd revisions: {before} -> {after} over {requests} requests ({per_request} each)");
    assert!(
        per_request <= 0.1,
        "{per_request} etcd writes per request for unknown ids"
    );
    // Known uploads still lock: a HEAD of the real one is answered from its locked state.
    assert_eq!(head(&url).await, (200, Some(3)));
}

/// The value of `series` on the node serving `files_url`.
async fn metric(files_url: &str, series: &str) -> f64 {
    sample(&scrape(files_url).await, series).unwrap_or(0.0)
}

/// Wait (bounded) until `series` on the node satisfies `cond`.
async fn wait_for_metric(files_url: &str, series: &str, cond: impl Fn(f64) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let value = metric(files_url, series).await;
        if cond(value) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dripping_clients_do_not_keep_an_honest_upload_out() {
    if !services_enabled("dripping_clients_do_not_keep_an_honest_upload_out") {
        return;
    }
    // A budget of three parts: with a whole part reserved at each body's first byte, six
    // clients dripping a byte now and then held all of it, and an honest upload waited forever.
    let cluster = Cluster::start(
        2,
        &[
            "--max-buffered-bytes",
            "15MiB",
            "--max-size",
            "1GiB",
            "--read-timeout",
            "60s",
        ],
    )
    .await;
    let node = &cluster.nodes[0].url;
    let mut drippers = Vec::new();
    for _ in 0..6 {
        let url = cluster.nodes[0]
            .post(&[("Upload-Defer-Length", "1".into())])
            .await;
        let mut raw = RawRequest::patch(&url, 0, 10_000_000).await;
        raw.send(b"x").await;
        drippers.push(raw);
    }
    // Each holds a reservation once its byte is read.
    wait_for_metric(node, "tusk_part_buffer_reserved_bytes", |v| {
        v >= 6.0 * 1024.0
    })
    .await;
    let held = metric(node, "tusk_part_buffer_reserved_bytes").await;
    eprintln!("six dripping clients hold {held} bytes of the budget");
    assert!(held <= 6.0 * 256.0 * 1024.0, "drippers hold {held} bytes");

    // The honest upload: POST + one PATCH of 10 MiB, within 30 s while the drippers drip.
    let data = pattern(10 << 20, 21);
    let url = cluster.nodes[0].create(data.len() as u64).await;
    let honest = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        patch(&url, 0, data.clone()),
    );
    let drip = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            for raw in &mut drippers {
                raw.send_if_open(b"x").await;
            }
        }
    };
    let done = tokio::select! {
        done = honest => done.expect("the honest upload did not finish in 30 s"),
        () = drip => unreachable!(),
    };
    assert_eq!(done, (204, Some(data.len() as u64)));
    // Its HEAD on the other node is answered, not refused with 423.
    assert_eq!(
        head(&cluster.on(1, &url)).await,
        (200, Some(data.len() as u64))
    );
    let resp = client().get(cluster.on(1, &url)).send().await.unwrap();
    assert!(resp.bytes().await.unwrap() == data, "stored bytes differ");
}

#[tokio::test]
async fn a_wait_for_budget_is_bounded_keeps_what_arrived_and_lets_go_when_asked() {
    if !services_enabled("a_wait_for_budget_is_bounded_keeps_what_arrived_and_lets_go_when_asked") {
        return;
    }
    // A budget of one part. Upload A fills most of a part and pauses, holding the budget.
    let cluster = Cluster::start(
        2,
        &[
            "--max-buffered-bytes",
            "5MiB",
            "--max-size",
            "100MiB",
            "--read-timeout",
            "3s",
            "--lock-wait",
            "10s",
        ],
    )
    .await;
    let node = &cluster.nodes[0].url;
    let a = cluster.nodes[0].create(8 << 20).await;
    let mut holder = RawRequest::patch(&a, 0, 8 << 20).await;
    // 4.8 MiB: reserved in steps of 256 KiB, that is all 5 MiB.
    holder.send(&pattern(4 * 1048576 + 800 * 1024, 1)).await;
    wait_for_metric(node, "tusk_part_buffer_reserved_bytes", |v| {
        v >= 5.0 * 1048576.0
    })
    .await;

    // Upload B's PATCH finds no room: it waits (visible in the gauge), then gives up after
    // the read timeout, keeps what it read, and answers 503 with Retry-After.
    let b_data = pattern(2 << 20, 2);
    let b = cluster.nodes[0].create(b_data.len() as u64).await;
    let mut waiter = RawRequest::patch(&b, 0, b_data.len() as u64).await;
    waiter.send(&b_data[..1 << 20]).await;
    wait_for_metric(node, "tusk_part_buffer_waiting", |v| v >= 1.0).await;
    let timeouts_before = metric(node, "tusk_part_buffer_wait_timeouts_total").await;
    // Keep A alive (a byte a second is above nothing) while B waits.
    let started = std::time::Instant::now();
    let (status, headers) = tokio::select! {
        answer = waiter.response() => answer,
        () = async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                holder.send_if_open(b"y").await;
            }
        } => unreachable!(),
    };
    eprintln!("B answered {status} after {:?}", started.elapsed());
    assert_eq!(status, 503, "{headers:?}");
    assert!(header(&headers, "retry-after").is_some());
    assert!(metric(node, "tusk_part_buffer_wait_timeouts_total").await > timeouts_before);
    let (status, kept) = head(&cluster.on(1, &b)).await;
    assert_eq!(status, 200);
    let kept = kept.unwrap();
    eprintln!("B kept {kept} bytes");
    assert!(kept <= 1 << 20);

    // A waiter asked to let go does so at once: a HEAD of C on the other node gets in.
    let c = cluster.nodes[0].create(b_data.len() as u64).await;
    let mut asked = RawRequest::patch(&c, 0, b_data.len() as u64).await;
    asked.send(&b_data[..1 << 20]).await;
    wait_for_metric(node, "tusk_part_buffer_waiting", |v| v >= 1.0).await;
    let asked_at = std::time::Instant::now();
    let (status, c_kept) = head(&cluster.on(1, &c)).await;
    let waited = asked_at.elapsed();
    eprintln!("HEAD of C after {waited:?}: {status} {c_kept:?}");
    assert_eq!(status, 200);
    assert!(
        waited < std::time::Duration::from_secs(2),
        "HEAD waited {waited:?}"
    );
    let (status, _) = asked.response().await;
    assert_eq!(status, 204);

    // Once A is gone, B resumes from what it kept and completes byte for byte.
    holder.cut();
    let (status, end) = patch(&cluster.on(1, &b), kept, b_data[kept as usize..].to_vec()).await;
    assert_eq!((status, end), (204, Some(b_data.len() as u64)));
    let resp = client().get(cluster.on(1, &b)).send().await.unwrap();
    assert!(resp.bytes().await.unwrap() == b_data, "stored bytes differ");
}
