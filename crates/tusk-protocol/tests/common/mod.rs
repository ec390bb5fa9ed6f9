//! Shared harness for the engine tests: an engine over the in-memory store and the in-process
//! locker, and helpers to build requests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tusk_core::UploadId;
use tusk_local::ProcessLocker;
use tusk_protocol::{
    BodyStream, Engine, EngineConfig, Headers, Method, Target, TusRequest, TusResponse,
};
use tusk_testkit::MemoryStore;

pub const BASE: &str = "http://tus.test/files/";

pub struct Harness {
    pub engine: Arc<Engine>,
    pub store: Arc<MemoryStore>,
    pub locker: Arc<ProcessLocker>,
}

pub fn config() -> EngineConfig {
    EngineConfig {
        max_size: 1000,
        max_metadata_bytes: 64,
        lock_wait: Duration::from_secs(10),
        read_timeout: Duration::from_secs(30),
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(config())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let locker = Arc::new(ProcessLocker::new());
        let engine = Arc::new(Engine::new(store.clone(), locker.clone(), config));
        Self {
            engine,
            store,
            locker,
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

    pub fn data(&self, id: &str) -> Vec<u8> {
        self.store
            .data(&UploadId::parse(id).unwrap())
            .unwrap_or_default()
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
}

impl Req {
    pub fn new(method: &str, target: Target) -> Self {
        Self {
            method: Method::parse(method),
            target,
            headers: Headers::new().with("Tus-Resumable", "1.0.0"),
            body: None,
        }
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
        TusRequest {
            method: self.method,
            target: self.target,
            headers: self.headers,
            body: self.body,
            location_base: BASE.into(),
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
