//! Shared harness for the engine tests: an engine over an in-memory store and the in-process
//! locker, and helpers to build requests.
//!
//! `TUSK_TEST_STORE=multipart` runs every engine test against the distributed store with
//! in-memory S3 and Redis (with the real ones' semantics); `TUSK_TEST_STORE=distributed` runs
//! them against the distributed store over the real Redis and S3 server of
//! `scripts/services.sh` (`TUSK_TEST_REDIS_URL`, `TUSK_TEST_S3_ENDPOINT`), and
//! `TUSK_TEST_STORE=cluster` over its Redis Cluster (`TUSK_TEST_REDIS_CLUSTER_URLS`) instead.
//! The test script runs all four.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tusk_core::UploadId;
use tusk_core::{ObjectStore, StateStore, Storage};
use tusk_local::ProcessLocker;
use tusk_multipart::{BufferBudget, MultipartConfig, MultipartStore};
use tusk_protocol::{
    BodyStream, Engine, EngineConfig, Headers, Method, Target, TusRequest, TusResponse,
};
use tusk_testkit::{MemoryObjects, MemoryState, MemoryStore};

pub const BASE: &str = "http://tus.test/files/";

pub struct Harness {
    pub engine: Arc<Engine>,
    pub locker: Arc<ProcessLocker>,
    /// The engine's clock: expiration tests move it instead of waiting.
    pub clock: tusk_protocol::ManualClock,
    backend: Backend,
}

/// The store under the engine, kept so tests can look at what it stored.
enum Backend {
    Memory(Arc<MemoryStore>),
    Multipart {
        objects: Arc<dyn ObjectStore>,
        state: Arc<dyn StateStore>,
    },
}

fn multipart(
    objects: Arc<dyn ObjectStore>,
    state: Arc<dyn StateStore>,
    config: &EngineConfig,
) -> (Storage, Backend) {
    let store = MultipartStore::new(
        objects.clone(),
        state.clone(),
        MultipartConfig {
            max_size: config.max_size,
            ..MultipartConfig::default()
        },
        BufferBudget::new(64 << 20),
    )
    .unwrap();
    (
        Storage::complete(Arc::new(store)),
        Backend::Multipart { objects, state },
    )
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the test services with `scripts/services.sh up` and source .services/env")
    })
}

/// The real S3 server (a fresh bucket) and Redis (a fresh key prefix) of the test services:
/// the single Redis, or with `cluster` the Redis Cluster.
async fn real_services(cluster: bool) -> (Arc<dyn ObjectStore>, Arc<dyn StateStore>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let endpoint = required("TUSK_TEST_S3_ENDPOINT");
    let redis_url = required("TUSK_TEST_REDIS_URL");
    let unique = UploadId::generate().as_str()[..16].to_owned();
    let bucket = format!("tusk-engine-{unique}");
    // moto takes an unsigned PUT to create a bucket.
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let put = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(put.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "create bucket: {}",
        String::from_utf8_lossy(&reply)
    );
    let objects = tusk_s3::S3Objects::connect(tusk_s3::S3Config {
        bucket,
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        prefix: String::new(),
        force_path_style: true,
        credentials: Some(tusk_s3::StaticCredentials::new("test", "test", None)),
        checksum: tusk_s3::ChecksumMode::default(),
        ..tusk_s3::S3Config::default()
    })
    .await
    .unwrap();
    let prefix = format!("engine-{unique}:");
    let state = if cluster {
        let seeds = required("TUSK_TEST_REDIS_CLUSTER_URLS");
        tusk_redis::RedisState::connect_cluster(&tusk_redis::seed_urls(&seeds), &prefix).await
    } else {
        tusk_redis::RedisState::connect(&redis_url, &prefix).await
    };
    let state = state.unwrap();
    (Arc::new(objects), Arc::new(state))
}

pub fn config() -> EngineConfig {
    EngineConfig {
        max_size: 1000,
        max_metadata_bytes: 64,
        lock_wait: Duration::from_secs(10),
        read_timeout: Duration::from_secs(30),
        expire_after: Some(Duration::from_secs(3600)),
        finished_retention: None,
        max_upload_age: None,
        ietf_draft: true,
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_config(config()).await
    }

    pub async fn with_config(config: EngineConfig) -> Self {
        let (storage, backend): (Storage, Backend) = match std::env::var("TUSK_TEST_STORE")
            .as_deref()
        {
            Ok("multipart") => multipart(
                Arc::new(MemoryObjects::new()),
                Arc::new(MemoryState::new()),
                &config,
            ),
            Ok(store @ ("distributed" | "cluster")) => {
                let (objects, state) = real_services(store == "cluster").await;
                multipart(objects, state, &config)
            }
            Ok("memory") | Err(_) => {
                let store = Arc::new(MemoryStore::new());
                (Storage::complete(store.clone()), Backend::Memory(store))
            }
            Ok(other) => {
                panic!("TUSK_TEST_STORE={other:?}: use memory, multipart, distributed or cluster")
            }
        };
        Self::over(storage, backend, config)
    }

    /// An engine over an in-memory store offering none of the optional abilities
    /// (termination, length declaration, expiry, concatenation).
    pub fn basic() -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::over(
            Storage::basic(store.clone()),
            Backend::Memory(store),
            config(),
        )
    }

    fn over(storage: Storage, backend: Backend, config: EngineConfig) -> Self {
        let locker = Arc::new(ProcessLocker::new());
        let clock = tusk_protocol::ManualClock::new();
        let engine = Arc::new(
            Engine::new(storage, locker.clone(), config).with_clock(Arc::new(clock.clone())),
        );
        Self {
            engine,
            locker,
            clock,
            backend,
        }
    }

    pub async fn send(&self, req: Req) -> TusResponse {
        self.engine.handle(req.build()).await
    }

    /// Create an upload and return its id.
    pub async fn create(&self, length: Option<u64>) -> String {
        let mut req = Req::post();
        req = match length {
            Some(l) => req.header("Upload-Length", &l.to_string()),
            None => req.header("Upload-Defer-Length", "1"),
        };
        let resp = self.send(req).await;
        assert_eq!(resp.status, 201, "{resp:?}");
        id_of(&resp)
    }

    pub async fn offset(&self, id: &str) -> u64 {
        let resp = self.send(Req::head(id)).await;
        assert_eq!(resp.status, 200, "{resp:?}");
        resp.get("Upload-Offset").unwrap().parse().unwrap()
    }

    /// The bytes stored for upload `id` (empty if none).
    pub async fn data(&self, id: &str) -> Vec<u8> {
        self.stored(id).await.unwrap_or_default()
    }

    /// The bytes stored for upload `id`, or `None` if the store has nothing for it.
    pub async fn stored(&self, id: &str) -> Option<Vec<u8>> {
        let id = UploadId::parse(id).unwrap();
        match &self.backend {
            Backend::Memory(store) => store.data(&id),
            Backend::Multipart { objects, state } => {
                let upload = state.get(&id).await.ok()?;
                if upload.finished {
                    let length = upload.length.unwrap();
                    let mut stream = objects.get_object(id.as_str(), 0, length).await.unwrap();
                    let mut out = Vec::new();
                    while let Some(chunk) = stream.next().await {
                        out.extend_from_slice(&chunk.unwrap());
                    }
                    return Some(out);
                }
                // Engine tests stay far below one 5 MiB part, so unfinished bytes are all in
                // the tail.
                assert_eq!(upload.part_count, 0, "engine tests never fill a part");
                Some(state.read_tail(&id).await.unwrap().to_vec())
            }
        }
    }
}

/// What the state store held for one upload at one moment, as a replica holds it.
pub struct StateCopy {
    state: tusk_core::UploadState,
    tail: Bytes,
    etags: Vec<String>,
}

impl Harness {
    /// A copy of upload `id`'s state now, or `None` for a store without a separate state store
    /// (the in-memory one, which cannot lose its state apart from its bytes).
    pub async fn copy_state(&self, id: &str) -> Option<StateCopy> {
        let Backend::Multipart { state, .. } = &self.backend else {
            return None;
        };
        let id = UploadId::parse(id).unwrap();
        Some(StateCopy {
            state: state.get(&id).await.unwrap(),
            tail: state.read_tail(&id).await.unwrap(),
            etags: state.etags(&id).await.unwrap(),
        })
    }

    /// Put `copy` in place of its upload's current state, as a failover to a replica that
    /// missed every write since the copy does.
    pub async fn restore_state(&self, copy: StateCopy) {
        let Backend::Multipart { state, .. } = &self.backend else {
            panic!("only a store with a separate state store has state to restore");
        };
        let StateCopy {
            state: mut upload,
            tail,
            etags,
        } = copy;
        let id = upload.id.clone();
        state.delete(&id, u64::MAX).await.unwrap();
        let multipart = upload.multipart_id.take();
        let (parts, tail_len) = (upload.part_count, upload.tail_len);
        upload.part_count = 0;
        upload.tail_len = 0;
        state.create(&upload).await.unwrap();
        // Fence 0, as a new upload's: every lock taken later is newer.
        if let Some(multipart) = multipart {
            state.set_multipart(&id, 0, &multipart).await.unwrap();
        }
        let commit = tusk_core::Commit {
            expect_parts: 0,
            expect_tail_len: 0,
            new_parts: etags,
            tail: tusk_core::TailChange::Replace(tail),
        };
        let restored = state.commit(&id, 0, commit).await.unwrap();
        assert_eq!((restored.part_count, restored.tail_len), (parts, tail_len));
    }
}

pub fn id_of(resp: &TusResponse) -> String {
    let loc = resp.get("Location").expect("Location");
    loc.strip_prefix(BASE)
        .expect("Location under base")
        .to_owned()
}

/// A request builder with `Tus-Resumable: 1.0.0` set.
pub struct Req {
    method: Method,
    target: Target,
    headers: Headers,
    body: Option<BodyStream>,
    interim: Option<std::sync::Arc<dyn tusk_protocol::Interim>>,
}

impl Req {
    pub fn new(method: &str, target: Target) -> Self {
        Self {
            method: Method::parse(method),
            target,
            headers: Headers::new().with("Tus-Resumable", "1.0.0"),
            body: None,
            interim: None,
        }
    }
    /// A request of the IETF draft at interop `version`: no `Tus-Resumable`.
    pub fn draft(method: &str, target: Target, version: u8) -> Self {
        let mut req = Self::new(method, target).bare();
        req.headers
            .insert("Upload-Draft-Interop-Version", version.to_string());
        req
    }
    /// Interim responses go to `interim`.
    pub fn interim(mut self, interim: std::sync::Arc<dyn tusk_protocol::Interim>) -> Self {
        self.interim = Some(interim);
        self
    }
    pub fn post() -> Self {
        Self::new("POST", Target::Collection)
    }
    pub fn head(id: &str) -> Self {
        Self::new("HEAD", Target::Upload(id.into()))
    }
    pub fn delete(id: &str) -> Self {
        Self::new("DELETE", Target::Upload(id.into()))
    }
    /// A PATCH at `offset` with the tus content type.
    pub fn patch(id: &str, offset: u64) -> Self {
        Self::new("PATCH", Target::Upload(id.into()))
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", &offset.to_string())
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name, value);
        self
    }
    /// Replace all headers (to test missing ones).
    pub fn bare(mut self) -> Self {
        self.headers = Headers::new();
        self
    }
    pub fn body(mut self, data: &[u8]) -> Self {
        self.body = Some(chunks(data, 7, false));
        self
    }
    pub fn stream(mut self, body: BodyStream) -> Self {
        self.body = Some(body);
        self
    }
    pub fn build(self) -> TusRequest {
        let uri = match &self.target {
            Target::Collection => "/files/".to_owned(),
            Target::Upload(id) => format!("/files/{id}"),
        };
        TusRequest {
            method: self.method,
            target: self.target,
            headers: self.headers,
            uri,
            remote_addr: "127.0.0.1:40000".into(),
            body: self.body,
            location_base: BASE.into(),
            interim: self.interim,
        }
    }
}

/// `data` in chunks of `size`; with `then_stall` the stream never ends afterwards.
pub fn chunks(data: &[u8], size: usize, then_stall: bool) -> BodyStream {
    let items: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let s = futures_util::stream::iter(items);
    if then_stall {
        s.chain(futures_util::stream::pending()).boxed()
    } else {
        s.boxed()
    }
}

/// `data`, then a broken connection.
pub fn cut_after(data: &[u8]) -> BodyStream {
    let items: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::other("connection reset")),
    ];
    futures_util::stream::iter(items).boxed()
}

/// A body fed by the test through a channel, to control exactly when bytes arrive.
pub fn channel_body() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    BodyStream,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, s.boxed())
}

/// Assert the headers every non-OPTIONS response carries.
pub fn assert_tus(resp: &TusResponse) {
    assert_eq!(resp.get("Tus-Resumable"), Some("1.0.0"), "{resp:?}");
}
