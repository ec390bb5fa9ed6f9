//! A Redis that is full (`maxmemory` reached with `noeviction`) refuses what would grow it (new
//! uploads, tail appends: 503), but what frees memory still works: deleting an upload, and an
//! upload going on to its next part or its end. Once memory is freed, uploads work again.

use crate::services::{Cluster, Endpoints, Private, services_enabled};
use crate::support::*;

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
    let cluster = Cluster::start_over(endpoints, 1, &[]).await;
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
    let resp = client()
        .delete(&deleted)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "DELETE while Redis is full");
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
