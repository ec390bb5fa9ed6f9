//! The Redis state store on a real Redis Cluster of three masters
//! (`TUSK_TEST_REDIS_CLUSTER_URLS`, started by `scripts/services.sh`): the shared conformance
//! suite, and what a cluster adds (uploads spread over masters, the expiry index over slots).
//!
//! Every test uses its own key prefix, so tests can run at the same time on one cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

use std::collections::BTreeSet;

use tusk_core::{ErrorKind, Metadata, StateStore, UploadId, UploadState};
use tusk_redis::{RedisLimits, RedisState};
use tusk_testkit::state_suite;

fn seeds() -> Option<Vec<String>> {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() != Ok("1") {
        eprintln!("skipped: needs the Redis Cluster (TUSK_TEST_SERVICES=1; scripts/test.sh)");
        return None;
    }
    let urls = std::env::var("TUSK_TEST_REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!(
            "TUSK_TEST_REDIS_CLUSTER_URLS is not set: start the test services with \
             `scripts/services.sh up` and source .services/env"
        )
    });
    Some(
        tusk_redis::seed_urls(&urls)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    )
}

async fn connect(seeds: &[String]) -> (RedisState, String) {
    let prefix = format!("tusk-test-{}:", UploadId::generate());
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let state = RedisState::connect_cluster(&seeds, &prefix)
        .await
        .expect("connect to the Redis Cluster");
    assert!(state.is_cluster());
    (state, prefix)
}

/// A plain connection to one node, for looking behind the store's back.
async fn node(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Keys under `prefix` on the node at `url` (each master holds its own slots' keys).
async fn keys_on(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = node(url).await;
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Drop every key a test left under its prefix, node by node.
async fn clean_up(seeds: &[String], prefix: &str) {
    for url in seeds {
        for key in keys_on(url, prefix).await {
            let mut conn = node(url).await;
            let _: i64 = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

fn new_state(expires_at: Option<u64>) -> UploadState {
    UploadState {
        id: UploadId::generate(),
        length: Some(10),
        metadata: Metadata::default(),
        part_size: 5 << 20,
        multipart_id: None,
        part_count: 0,
        tail_len: 0,
        finished: false,
        expires_at,
        created_at: Some(1_790_000_000),
        concat: None,
        placement: Default::default(),
    }
}

#[tokio::test]
async fn a_redis_cluster_passes_the_state_suite() {
    let Some(seeds) = seeds() else { return };
    let (state, prefix) = connect(&seeds).await;
    state_suite::run(&state).await;
    clean_up(&seeds, &prefix).await;
}

/// Uploads land on every master, each upload's keys together in one slot; the expiry index is
/// spread over masters too, and the reaper's query and the upload count cover every shard.
#[tokio::test]
async fn uploads_and_their_expiry_index_spread_over_every_master() {
    let Some(seeds) = seeds() else { return };
    let (state, prefix) = connect(&seeds).await;
    assert_eq!(
        state.connected_replicas().await.unwrap(),
        Some(0),
        "masters only"
    );
    let state = state
        .with_limits(RedisLimits {
            max_uploads: 40,
            memory_high_water_percent: 90,
        })
        .unwrap();
    let mut ids = BTreeSet::new();
    for n in 0..40 {
        let upload = new_state(Some(1_000 + n));
        state.create(&upload).await.unwrap();
        state
            .set_expiry(&upload.id, 1, upload.expires_at)
            .await
            .unwrap();
        ids.insert(upload.id);
    }
    let err = state.create(&new_state(Some(5_000))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("max_uploads"), "{err}");

    let mut masters_with_uploads = 0;
    let mut masters_with_index = 0;
    for url in &seeds {
        let keys = keys_on(url, &prefix).await;
        let states: Vec<_> = keys.iter().filter(|k| k.ends_with(":state")).collect();
        masters_with_uploads += usize::from(!states.is_empty());
        masters_with_index += usize::from(keys.iter().any(|k| k.contains("expiry")));
    }
    assert_eq!(
        masters_with_uploads,
        seeds.len(),
        "40 uploads on every master"
    );
    assert!(masters_with_index >= 2, "the index spreads over masters");

    let due: BTreeSet<_> = state
        .expired(2_000, 100)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(due, ids, "every shard is read");
    assert_eq!(state.expired(2_000, 7).await.unwrap().len(), 7);
    assert_eq!(state.expired(1_010, 100).await.unwrap().len(), 10);
    clean_up(&seeds, &prefix).await;
}
