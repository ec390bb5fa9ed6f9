//! A Redis that is full (`maxmemory` reached with `noeviction`) refuses what would grow it (new
//! uploads, tail appends: 503), but what frees memory still works: deleting an upload, and an
//! upload going on to its next part or its end. Once memory is freed, uploads work again.
//!
//! Before it is full, the limits on new uploads (`--max-uploads`, `--redis-memory-high-water`)
//! refuse new uploads with 503 while uploads under way go on.

use crate::services::{Cluster, Endpoints, Private, services_enabled};
use crate::support::*;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// Redis's `used_memory`.
fn used_memory(redis_url: &str) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", redis_url, "info", "memory"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

#[tokio::test]
async fn a_full_redis_refuses_growth_but_lets_uploads_free_memory_and_then_recovers() {
    if !services_enabled(
        "a_full_redis_refuses_growth_but_lets_uploads_free_memory_and_then_recovers",
    ) {
        return;
    }
    let (_redis, redis_url) =
        Private::redis_with(&["--maxmemory", "12mb", "--maxmemory-policy", "noeviction"]).await;
    let endpoints = Endpoints {
        redis_url: redis_url.clone(),
        ..Endpoints::shared()
    };
    // Parts of 5 MiB: each upload below leaves a 3 MiB tail in Redis.
    // The high-water mark would refuse new uploads before Redis is full: this test is about
    // what happens once it is.
    let cluster = Cluster::start_over(endpoints, 1, &["--redis-memory-high-water", "0"]).await;
    let node = &cluster.nodes[0];
    let tail = 3 * MIB;
    let len = 10 * MIB;
    let mut held = Vec::new();
    let mut refused = None;
    // Bounded: 12 MB hold at most four such tails.
    for seed in 0..8u8 {
        let data = pattern(len, seed);
        let url = node.create(len as u64).await;
        let (status, offset) = patch(&url, 0, data[..tail].to_vec()).await;
        if status == 503 {
            refused = Some((url, data));
            break;
        }
        assert_eq!((status, offset), (204, Some(tail as u64)));
        held.push((url, data));
    }
    let (refused_url, refused_data) = refused.expect("Redis never filled up");
    eprintln!(
        "Redis full after {} tails: used_memory {}",
        held.len(),
        used_memory(&redis_url)
    );
    assert!(held.len() >= 2, "{} tails held", held.len());
    // That append did not fit (its 3 MiB count while Redis reads them); now make Redis full
    // outright, below what it holds, so that every write that grows it is refused.
    let full = used_memory(&redis_url) - MIB as u64;
    let out = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &redis_url,
            "config",
            "set",
            "maxmemory",
            &full.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // The refused PATCH stored nothing; the upload is still there, at offset 0.
    assert_eq!(head(&refused_url).await, (200, Some(0)));
    // A new upload is refused too, with 503 and Retry-After.
    let resp = client()
        .post(&node.url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "a new upload while Redis is full");
    assert!(resp.headers().contains_key("retry-after"));
    // So is a small append (its bytes go beside the commit script, in one transaction that
    // Redis refuses whole): the upload stays where it was.
    let (small, small_data) = &held[held.len() - 1];
    let (status, _) = patch(small, tail as u64, small_data[tail..tail + 1000].to_vec()).await;
    assert_eq!(status, 503, "a small append while Redis is full");
    assert_eq!(head(small).await, (200, Some(tail as u64)));

    // What frees memory still works. An upload goes on past its part boundary and to its end:
    // its tail becomes part 1 in S3, its last part follows, and it is finished.
    let (finishing, data) = held.remove(0);
    let (status, end) = patch(&finishing, tail as u64, data[tail..].to_vec()).await;
    assert_eq!(
        (status, end),
        (204, Some(len as u64)),
        "finishing while Redis is full"
    );
    let resp = client().get(&finishing).send().await.unwrap();
    assert!(resp.bytes().await.unwrap() == data, "stored bytes differ");
    // An upload is deleted.
    let (deleted, _) = held.remove(0);
    assert_eq!(delete(&deleted).await, 204, "DELETE while Redis is full");
    assert_eq!(head(&deleted).await.0, 404);

    // With that memory back (6 MiB of tails), the refused upload resumes and new uploads are
    // taken.
    let used = used_memory(&redis_url);
    eprintln!("after freeing: used_memory {used}, maxmemory {full}");
    assert!(used + 4 * MIB as u64 <= full, "memory was not freed");
    let (status, offset) = patch(&refused_url, 0, refused_data[..tail].to_vec()).await;
    assert_eq!((status, offset), (204, Some(tail as u64)));
    let url = node.create(10).await;
    assert_eq!(
        patch(&url, 0, b"0123456789".to_vec()).await,
        (204, Some(10))
    );
}

/// A POST of an upload of `length` bytes: its status, and its URL when created, else the
/// response's body.
async fn try_create(url: &str, length: usize, body: Option<Vec<u8>>) -> (u16, String) {
    let mut req = client()
        .post(url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", length.to_string());
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/offset+octet-stream")
            .body(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 503 {
        assert!(
            resp.headers().contains_key("retry-after"),
            "503 without Retry-After"
        );
    }
    if status == 201 {
        return (
            status,
            resp.headers()["location"].to_str().unwrap().to_owned(),
        );
    }
    (status, resp.text().await.unwrap())
}

/// The cluster's upload state hashes in Redis.
fn states(cluster: &Cluster) -> usize {
    let keys = cluster.redis_keys();
    keys.iter().filter(|k| k.ends_with(":state")).count()
}

#[tokio::test]
async fn new_uploads_are_refused_at_max_uploads_until_one_finishes_or_goes() {
    if !services_enabled("new_uploads_are_refused_at_max_uploads_until_one_finishes_or_goes") {
        return;
    }
    let cluster = Cluster::start(1, &["--max-uploads", "3"]).await;
    let node = &cluster.nodes[0];
    let urls = [
        node.create(10).await,
        node.create(10).await,
        node.create(10).await,
    ];

    // The fourth is refused, with or without a body, and leaves nothing behind.
    let (status, body) = try_create(&node.url, 10, None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_uploads"), "{body}");
    let (status, _) = try_create(&node.url, 10, Some(b"0123456789".to_vec())).await;
    assert_eq!(status, 503);
    assert_eq!(states(&cluster), 3, "a refused upload left state behind");
    let scrape = scrape(&node.url).await;
    assert_eq!(
        sample(
            &scrape,
            "tusk_uploads_refused_total{reason=\"max_uploads\"}"
        ),
        Some(2.0)
    );
    assert_eq!(sample(&scrape, "tusk_uploads_indexed"), Some(3.0));

    // Uploads under way are not refused, and one that finishes makes room.
    assert_eq!(
        patch(&urls[0], 0, b"0123456789".to_vec()).await,
        (204, Some(10))
    );
    let fourth = node.create(10).await;
    assert_eq!(try_create(&node.url, 10, None).await.0, 503);
    // So does one that is deleted.
    assert_eq!(delete(&urls[1]).await, 204);
    let fifth = node.create(10).await;
    assert_ne!(fourth, fifth);
}

#[tokio::test]
async fn new_uploads_are_refused_above_the_redis_memory_high_water_mark() {
    if !services_enabled("new_uploads_are_refused_above_the_redis_memory_high_water_mark") {
        return;
    }
    let (_redis, redis_url) =
        Private::redis_with(&["--maxmemory", "16mb", "--maxmemory-policy", "noeviction"]).await;
    let endpoints = Endpoints {
        redis_url: redis_url.clone(),
        ..Endpoints::shared()
    };
    let cluster = Cluster::start_over(endpoints, 1, &["--redis-memory-high-water", "40"]).await;
    let node = &cluster.nodes[0];
    let tail = 2 * MIB;
    let len = 10 * MIB;
    let mut held = Vec::new();
    // Bounded: 40% of 16 MiB holds at most three such tails.
    let refusal = loop {
        assert!(held.len() < 8, "new uploads never refused");
        let (status, url) = try_create(&node.url, len, None).await;
        if status == 503 {
            break url;
        }
        assert_eq!(status, 201, "{url}");
        let data = pattern(len, held.len() as u8);
        assert_eq!(
            patch(&url, 0, data[..tail].to_vec()).await,
            (204, Some(tail as u64))
        );
        held.push((url, data));
        // The reading of Redis's memory is a second old at most: wait that out, so the next
        // POST sees this tail.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    };
    assert!(refusal.contains("redis_memory_high_water"), "{refusal}");
    eprintln!("refused after {} tails: {refusal}", held.len());
    assert!(!held.is_empty(), "refused before any tail was stored");

    // Uploads under way go on: the first one finishes (its tail becomes a part in S3).
    let (url, data) = held.remove(0);
    assert_eq!(
        patch(&url, tail as u64, data[tail..].to_vec()).await,
        (204, Some(len as u64))
    );
    let resp = client().get(&url).send().await.unwrap();
    assert!(resp.bytes().await.unwrap() == data, "stored bytes differ");
    // With the other tails deleted, new uploads are taken again (once the next reading of
    // memory shows it).
    for (url, _) in held.drain(..) {
        assert_eq!(delete(&url).await, 204);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = try_create(&node.url, 10, None).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "new uploads still refused: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scrape = scrape(&node.url).await;
    let refused = sample(
        &scrape,
        "tusk_uploads_refused_total{reason=\"redis_memory\"}",
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
}
