//! Hooks: the engine tells an outside receiver about uploads (post-*) and lets it decide
//! (pre-*). The request and response shapes are tusd's, so a tusd hook receiver works
//! unchanged; how they travel (HTTP) is a [`HookSender`] the binary chooses.
//!
//! pre-* hooks block the request and refuse it when they fail. post-* hooks run in the
//! background, are retried with backoff and never fail an upload.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tusk_core::{Concat, Metadata, UploadId, UploadInfo};

/// The events a hook is sent for, named as in tusd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    /// Before an upload is created; can reject it or change its id and metadata.
    PreCreate,
    /// After an upload was created.
    PostCreate,
    /// While bytes arrive, at most once per interval per upload.
    PostReceive,
    /// After the last byte is stored, before the response; can change the response.
    PreFinish,
    /// After an upload finished.
    PostFinish,
    /// Before a DELETE removes an upload; can refuse it.
    PreTerminate,
    /// After an upload was removed by DELETE.
    PostTerminate,
    /// Before a HEAD, PATCH, GET or DELETE of an upload is served, and for each partial a new
    /// final upload names; can refuse it. Not in the default set.
    PreAccess,
}

impl HookType {
    /// Every hook type.
    pub const ALL: [HookType; 8] = [
        HookType::PreCreate,
        HookType::PostCreate,
        HookType::PostReceive,
        HookType::PreFinish,
        HookType::PostFinish,
        HookType::PreTerminate,
        HookType::PostTerminate,
        HookType::PreAccess,
    ];

    /// The name in tusd's `Type` field and in `--hooks-events`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreCreate => "pre-create",
            HookType::PostCreate => "post-create",
            HookType::PostReceive => "post-receive",
            HookType::PreFinish => "pre-finish",
            HookType::PostFinish => "post-finish",
            HookType::PreTerminate => "pre-terminate",
            HookType::PostTerminate => "post-terminate",
            HookType::PreAccess => "pre-access",
        }
    }

    /// The hook type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook receiver is sent (tusd's `HookRequest`).
#[derive(Debug, Clone, Serialize)]
pub struct HookRequest {
    /// The event.
    #[serde(rename = "Type")]
    pub kind: HookType,
    /// The upload and the client request that caused the event.
    #[serde(rename = "Event")]
    pub event: HookEvent,
}

/// tusd's `HookEvent`.
#[derive(Debug, Clone, Serialize)]
pub struct HookEvent {
    /// The upload as it is (for pre-create: as it would be created, with an empty id).
    #[serde(rename = "Upload")]
    pub upload: HookUpload,
    /// The client request.
    #[serde(rename = "HTTPRequest")]
    pub http_request: HookHttpRequest,
}

/// tusd's `FileInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookUpload {
    /// The upload id; empty in pre-create.
    #[serde(rename = "ID")]
    pub id: String,
    /// The length (0 while deferred).
    pub size: u64,
    /// Whether the length is not known yet.
    pub size_is_deferred: bool,
    /// Bytes stored (post-receive: bytes received so far).
    pub offset: u64,
    /// Client metadata, values decoded (lossy UTF-8); a key without a value has "".
    #[serde(rename = "MetaData")]
    pub metadata: BTreeMap<String, String>,
    /// Created with `Upload-Concat: partial`.
    pub is_partial: bool,
    /// Created with `Upload-Concat: final;...`.
    pub is_final: bool,
    /// A final upload's partial upload ids.
    pub partial_uploads: Option<Vec<String>>,
    /// Where the bytes live (store-specific keys, e.g. Type, Bucket, Key or Path).
    pub storage: Option<BTreeMap<String, String>>,
}

impl HookUpload {
    /// The event view of a stored upload.
    pub fn from_info(info: &UploadInfo, storage: BTreeMap<String, String>) -> Self {
        let mut upload = Self::new(info.length, &info.metadata, info.concat.as_ref());
        upload.id = info.id.to_string();
        upload.offset = info.offset;
        upload.storage = (!storage.is_empty()).then_some(storage);
        upload
    }

    /// An upload about to be created.
    pub fn new(length: Option<u64>, metadata: &Metadata, concat: Option<&Concat>) -> Self {
        Self {
            id: String::new(),
            size: length.unwrap_or(0),
            size_is_deferred: length.is_none(),
            offset: 0,
            metadata: metadata
                .iter()
                .map(|(k, v)| {
                    let v = v.map(String::from_utf8_lossy).unwrap_or_default();
                    (k.to_owned(), v.into_owned())
                })
                .collect(),
            is_partial: matches!(concat, Some(Concat::Partial)),
            is_final: matches!(concat, Some(Concat::Final(_))),
            partial_uploads: match concat {
                Some(Concat::Final(ids)) => Some(ids.iter().map(|id| id.to_string()).collect()),
                _ => None,
            },
            storage: None,
        }
    }
}

/// tusd's `HTTPRequest`: the client request behind an event.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookHttpRequest {
    /// The method (after `X-HTTP-Method-Override`).
    pub method: String,
    /// The request target: path and query.
    #[serde(rename = "URI")]
    pub uri: String,
    /// The client's address and port (the proxy's, unless behind a proxy that is trusted).
    pub remote_addr: String,
    /// The forwarded request headers (only those on the allow-list), in canonical form.
    pub header: BTreeMap<String, Vec<String>>,
    /// The client's W3C `traceparent`, passed on to hook requests when tusk exports no trace
    /// of its own.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// What a hook receiver answers (tusd's `HookResponse`). Every field is optional, and JSON
/// `null` counts as absent (Go encodes empty maps so).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HookResponse {
    /// Changes to the response the client gets (pre-create, pre-finish, post-receive with
    /// StopUpload, pre-terminate with RejectTermination).
    #[serde(rename = "HTTPResponse", deserialize_with = "null_as_default")]
    pub http_response: HookHttpResponse,
    /// pre-create: refuse the upload.
    pub reject_upload: bool,
    /// pre-create: change the new upload's id or metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub change_file_info: FileInfoChanges,
    /// post-receive: stop the upload (the PATCH ends and the upload is removed).
    pub stop_upload: bool,
    /// pre-terminate: refuse the DELETE.
    pub reject_termination: bool,
}

/// tusd's `HTTPResponse`: overrides for the client's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HookHttpResponse {
    /// The status (0: unchanged).
    pub status_code: u16,
    /// The body (empty: unchanged).
    #[serde(deserialize_with = "null_as_default")]
    pub body: String,
    /// Headers to set.
    #[serde(deserialize_with = "null_as_default")]
    pub header: BTreeMap<String, String>,
}

impl HookHttpResponse {
    /// Add the changes a later hook asked for: its fields win.
    pub(crate) fn merge(&mut self, later: HookHttpResponse) {
        if later.status_code != 0 {
            self.status_code = later.status_code;
        }
        if !later.body.is_empty() {
            self.body = later.body;
        }
        self.header.extend(later.header);
    }

    /// Apply these changes to a successful response. A body turns a 204 into a 200 (204 has no
    /// body); a status outside 2xx is ignored (success stays success).
    pub(crate) fn apply(self, mut resp: crate::TusResponse) -> crate::TusResponse {
        if (200..300).contains(&self.status_code) {
            resp.status = self.status_code;
        }
        if !self.body.is_empty() {
            if resp.status == 204 {
                resp.status = 200;
            }
            resp.body = self.body;
        }
        resp.extra_headers.extend(self.header);
        resp
    }
}

/// tusd's `FileInfoChanges` (pre-create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct FileInfoChanges {
    /// A new id for the upload (empty: keep the generated one).
    #[serde(rename = "ID", deserialize_with = "null_as_default")]
    pub id: String,
    /// Metadata replacing the client's, if set.
    #[serde(rename = "MetaData")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility and ignored: tusk places objects itself.
    pub storage: Option<BTreeMap<String, String>>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a hook call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// No answer within the hook timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The receiver could not be reached.
    #[error("cannot reach the hook receiver: {0}")]
    Unreachable(String),
    /// The receiver answered with a status outside 2xx.
    #[error("the hook receiver answered HTTP {0}")]
    Status(u16),
    /// The receiver's answer is not a hook response.
    #[error("the hook receiver's answer is not a hook response: {0}")]
    InvalidResponse(String),
}

/// Delivers one hook request and returns the receiver's answer. One attempt: the engine
/// applies the timeout and the retries.
#[async_trait]
pub trait HookSender: Send + Sync {
    /// Send `request`; called inside the `hook` span, whose trace context it should pass on.
    async fn send(&self, request: &HookRequest) -> Result<HookResponse, HookError>;
}

/// How hooks are sent.
#[derive(Debug, Clone)]
pub struct HookConfig {
    /// The events that are sent; the others are not (default: all but post-receive).
    pub events: Vec<HookType>,
    /// Client request headers passed on in `HTTPRequest.Header` (case-insensitive names).
    pub forward_headers: Vec<String>,
    /// How long one hook call may take.
    pub timeout: Duration,
    /// post-* hooks (but post-receive): attempts after the first one fails.
    pub post_retries: u32,
    /// post-* hooks: wait before the first retry; doubled for each next one.
    pub post_backoff: Duration,
    /// post-receive: at most one per upload per this interval (per node).
    pub post_receive_interval: Duration,
    /// pre-access: how long an allow answer is reused for the same upload and `Authorization`
    /// (per node); zero: never.
    pub access_cache: Duration,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            // As tusd: post-receive only when asked for, it is the chatty one; pre-access too,
            // it is one more round trip on every request.
            events: HookType::ALL
                .into_iter()
                .filter(|t| !matches!(t, HookType::PostReceive | HookType::PreAccess))
                .collect(),
            forward_headers: DEFAULT_FORWARD_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            timeout: Duration::from_secs(10),
            post_retries: 3,
            post_backoff: Duration::from_secs(1),
            access_cache: Duration::ZERO,
            post_receive_interval: Duration::from_secs(1),
        }
    }
}

/// Request headers passed to hooks unless configured otherwise: what a receiver needs to
/// authorize and identify a client. Cookies are not among them.
pub const DEFAULT_FORWARD_HEADERS: &[&str] = &[
    "Authorization",
    "Content-Length",
    "Content-Type",
    "Host",
    "Origin",
    "Tus-Resumable",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Request-Id",
];

/// Past this many uploads in the post-receive throttle, entries past their interval are dropped.
const THROTTLE_PRUNE_AT: usize = 10_000;
/// pre-access allow answers kept at most (per node), with `access_cache`.
const ACCESS_CACHE_ENTRIES: usize = 10_000;
/// Background (post-*) hook calls in flight at once; the rest wait their turn.
const BACKGROUND_CONCURRENCY: usize = 32;
/// Background hook calls queued or in flight at most; past it new ones are dropped (and
/// counted), so a slow or dead receiver cannot make a node hold unbounded work.
const BACKGROUND_QUEUE: usize = 10_000;

/// The hooks of one engine: sender, settings, background post-* calls and the post-receive
/// throttle.
pub struct Hooks {
    sender: Arc<dyn HookSender>,
    config: HookConfig,
    tasks: TaskTracker,
    /// Turns for background calls in flight.
    sending: Arc<tokio::sync::Semaphore>,
    last_receive: Mutex<HashMap<UploadId, Instant>>,
    /// pre-access allow answers: (upload, digest of the request's `Authorization`) -> until.
    access_allowed: Mutex<HashMap<(UploadId, [u8; 32]), Instant>>,
}

impl Hooks {
    /// Hooks sent through `sender`.
    pub fn new(sender: Arc<dyn HookSender>, config: HookConfig) -> Self {
        Self {
            sender,
            config,
            tasks: TaskTracker::new(),
            sending: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_CONCURRENCY)),
            last_receive: Mutex::new(HashMap::new()),
            access_allowed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `kind` is sent.
    pub fn enabled(&self, kind: HookType) -> bool {
        self.config.events.contains(&kind)
    }

    /// The settings in force.
    pub fn config(&self) -> &HookConfig {
        &self.config
    }

    /// Wait (at most `timeout`) for post-* hooks still being sent; for shutdown.
    pub async fn drain(&self, timeout: Duration) {
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.tasks.len(),
                "post hooks still unsent at shutdown"
            );
        }
    }

    /// Send a blocking hook and wait for its answer; `None` if `kind` is not enabled.
    pub(crate) async fn call(
        &self,
        kind: HookType,
        upload: HookUpload,
    ) -> Result<Option<HookResponse>, HookError> {
        if !self.enabled(kind) {
            return Ok(None);
        }
        let request = hook_request(kind, upload);
        send_once(self.sender.as_ref(), &request, self.config.timeout)
            .await
            .map(Some)
    }

    /// Send a post-* hook in the background, retrying with backoff; it never fails the request.
    pub(crate) fn notify(&self, kind: HookType, upload: HookUpload) {
        self.notify_then(kind, upload, |_| {});
    }

    /// Send post-receive in the background; an answer with StopUpload fires `stop`.
    pub(crate) fn notify_receive(&self, upload: HookUpload, stop: StopRequest) {
        self.notify_then(HookType::PostReceive, upload, move |answer| {
            if answer.stop_upload {
                stop.stop(answer.http_response);
            }
        });
    }

    fn notify_then(
        &self,
        kind: HookType,
        upload: HookUpload,
        on_answer: impl FnOnce(HookResponse) + Send + 'static,
    ) {
        if !self.enabled(kind) {
            return;
        }
        if self.tasks.len() >= BACKGROUND_QUEUE {
            tusk_metrics::metrics()
                .hooks_dropped
                .with_label_values(&[kind.as_str()])
                .inc();
            tracing::error!(hook = %kind, queued = BACKGROUND_QUEUE, "too many hooks waiting to be sent; this one is dropped");
            return;
        }
        let request = hook_request(kind, upload);
        let sender = self.sender.clone();
        let sending = self.sending.clone();
        let timeout = self.config.timeout;
        let mut backoff = self.config.post_backoff;
        // A progress report is stale by the time a retry could go out; the next one supersedes
        // it.
        let retries = if kind == HookType::PostReceive {
            0
        } else {
            self.config.post_retries
        };
        self.tasks.spawn(
            async move {
                // The semaphore is never closed.
                let Ok(_turn) = sending.acquire_owned().await else {
                    return;
                };
                for attempt in 0..=retries {
                    match send_once(sender.as_ref(), &request, timeout).await {
                        Ok(answer) => return on_answer(answer),
                        Err(err) if attempt < retries => {
                            tracing::warn!(hook = %kind, error = %err, attempt, "hook failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = backoff.saturating_mul(2);
                        }
                        Err(err) => {
                            tracing::error!(hook = %kind, error = %err, attempts = attempt + 1, "hook failed; giving up");
                        }
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Whether a post-receive for `id` is due (and if so, counts it as sent).
    pub(crate) fn receive_due(&self, id: &UploadId) -> bool {
        if !self.enabled(HookType::PostReceive) {
            return false;
        }
        let now = Instant::now();
        let interval = self.config.post_receive_interval;
        let Ok(mut last) = self.last_receive.lock() else {
            return false;
        };
        if last.len() >= THROTTLE_PRUNE_AT {
            last.retain(|_, at| now.duration_since(*at) < interval);
        }
        match last.get(id) {
            Some(at) if now.duration_since(*at) < interval => false,
            _ => {
                last.insert(id.clone(), now);
                true
            }
        }
    }

    /// The current request's key in the pre-access cache: the upload and a digest of its
    /// `Authorization` values (the credential itself is never kept).
    fn access_key(id: &UploadId) -> (UploadId, [u8; 32]) {
        use sha2::Digest as _;
        let request = current_request();
        let mut digest = sha2::Sha256::new();
        for (name, values) in &request.header {
            if name.eq_ignore_ascii_case("authorization") {
                for value in values {
                    digest.update(value.as_bytes());
                    digest.update([0]);
                }
            }
        }
        (id.clone(), digest.finalize().into())
    }

    /// Ask the pre-access hook whether the current request may touch `upload` (whose id is
    /// `id`); `Ok` if the hook is off, allows, or allowed the same request recently (with
    /// `access_cache`). A refusal or a failed hook is an error: the request is refused.
    pub(crate) async fn authorize(
        &self,
        id: &UploadId,
        upload: impl FnOnce() -> HookUpload,
    ) -> Result<(), crate::TusError> {
        let hook = HookType::PreAccess;
        if !self.enabled(hook) {
            return Ok(());
        }
        let metrics = tusk_metrics::metrics();
        let ttl = self.config.access_cache;
        let key = (!ttl.is_zero()).then(|| Self::access_key(id));
        if let Some(key) = &key
            && let Ok(allowed) = self.access_allowed.lock()
            && allowed
                .get(key)
                .is_some_and(|until| Instant::now() < *until)
        {
            metrics.hook_access_cache_hits.inc();
            return Ok(());
        }
        match self.call(hook, upload()).await {
            Err(err) => Err(crate::TusError::HookFailed {
                hook,
                reason: err.to_string(),
            }),
            Ok(Some(answer)) if answer.reject_upload => {
                metrics
                    .hook_refusals
                    .with_label_values(&[hook.as_str()])
                    .inc();
                Err(crate::TusError::HookRejected {
                    hook,
                    response: answer.http_response,
                })
            }
            Ok(_) => {
                if let Some(key) = key
                    && let Ok(mut allowed) = self.access_allowed.lock()
                {
                    let now = Instant::now();
                    if allowed.len() >= ACCESS_CACHE_ENTRIES {
                        allowed.retain(|_, until| now < *until);
                    }
                    // Full of live entries: this answer is simply not reused.
                    if allowed.len() < ACCESS_CACHE_ENTRIES {
                        allowed.insert(key, now + ttl);
                    }
                }
                Ok(())
            }
        }
    }

    /// Forget `id`'s post-receive throttle (it finished or is gone).
    pub(crate) fn forget(&self, id: &UploadId) {
        if let Ok(mut last) = self.last_receive.lock() {
            last.remove(id);
        }
    }
}

/// A post-receive hook's request to stop the upload it reports on.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopRequest {
    /// Cancelled when the hook asks to stop; the PATCH body watches it.
    pub token: CancellationToken,
    response: Arc<Mutex<Option<HookHttpResponse>>>,
}

impl StopRequest {
    fn stop(&self, response: HookHttpResponse) {
        if let Ok(mut slot) = self.response.lock() {
            *slot = Some(response);
        }
        self.token.cancel();
    }

    /// The response the hook asked for.
    pub(crate) fn response(&self) -> HookHttpResponse {
        self.response
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .unwrap_or_default()
    }
}

fn hook_request(kind: HookType, upload: HookUpload) -> HookRequest {
    HookRequest {
        kind,
        event: HookEvent {
            upload,
            http_request: current_request(),
        },
    }
}

/// One attempt, in its own `hook` span, timed and counted.
async fn send_once(
    sender: &dyn HookSender,
    request: &HookRequest,
    timeout: Duration,
) -> Result<HookResponse, HookError> {
    let kind = request.kind.as_str();
    let span = tracing::info_span!(
        "hook",
        otel.name = format!("hook {kind}"),
        otel.kind = "client",
        hook = kind,
        upload_id = %request.event.upload.id,
    );
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, sender.send(request).instrument(span)).await {
        Ok(result) => result,
        Err(_) => Err(HookError::Timeout(timeout)),
    };
    let metrics = tusk_metrics::metrics();
    metrics
        .hook_duration
        .with_label_values(&[kind])
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics.hook_failures.with_label_values(&[kind]).inc();
    }
    result
}

tokio::task_local! {
    /// The client request every hook of the current request describes. Read-only context
    /// (like a tracing span), so the request need not be passed through every handler to the
    /// few places a hook is sent; what hooks answer comes back as values.
    static REQUEST: HookHttpRequest;
}

/// Run `f` as the request `http`: its hooks describe it.
pub(crate) async fn scoped<F: std::future::Future>(http: HookHttpRequest, f: F) -> F::Output {
    REQUEST.scope(http, f).await
}

/// The current request as hooks see it (empty outside a request: the reaper).
fn current_request() -> HookHttpRequest {
    REQUEST.try_with(Clone::clone).unwrap_or_default()
}

/// `name` in Go's canonical header form (`x-request-id` → `X-Request-Id`), as tusd's
/// receivers look headers up.
pub(crate) fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_types_round_trip_their_names() {
        for kind in HookType::ALL {
            assert_eq!(HookType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HookType::parse("pre-upload"), None);
    }

    #[test]
    fn responses_parse_as_go_encodes_them() {
        // Go's encoding of a zero HookResponse: nil maps are null.
        let go = r#"{"HTTPResponse":{"StatusCode":0,"Body":"","Header":null},"RejectUpload":false,
            "ChangeFileInfo":{"ID":"","MetaData":null,"Storage":null},"StopUpload":false,
            "RejectTermination":false}"#;
        let parsed: HookResponse = serde_json::from_str(go).unwrap();
        assert_eq!(parsed, HookResponse::default());
        let reject = r#"{"RejectUpload":true,"HTTPResponse":{"StatusCode":403,"Body":"no","Header":{"X-Why":"quota"}}}"#;
        let parsed: HookResponse = serde_json::from_str(reject).unwrap();
        assert!(parsed.reject_upload);
        assert_eq!(parsed.http_response.status_code, 403);
        assert_eq!(parsed.http_response.header["X-Why"], "quota");
        let change = r#"{"ChangeFileInfo":{"ID":"my-id","MetaData":{"a":"b"}}}"#;
        let parsed: HookResponse = serde_json::from_str(change).unwrap();
        assert_eq!(parsed.change_file_info.id, "my-id");
        assert_eq!(
            parsed.change_file_info.metadata,
            Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]))
        );
        assert_eq!(
            serde_json::from_str::<HookResponse>("{}").unwrap(),
            HookResponse::default()
        );
    }

    #[test]
    fn requests_serialize_in_tusd_shape() {
        let metadata = Metadata::parse("filename aGVsbG8udHh0,flag").unwrap();
        let id = UploadId::generate();
        let upload = HookUpload::new(None, &metadata, Some(&Concat::Final(vec![id.clone()])));
        let request = HookRequest {
            kind: HookType::PreCreate,
            event: HookEvent {
                upload,
                http_request: HookHttpRequest {
                    method: "POST".into(),
                    uri: "/files/".into(),
                    remote_addr: "127.0.0.1:5000".into(),
                    header: BTreeMap::from([(
                        "Authorization".to_owned(),
                        vec!["Bearer x".to_owned()],
                    )]),
                    traceparent: Some("00-abc".into()),
                },
            },
        };
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        let want = serde_json::json!({
            "Type": "pre-create",
            "Event": {
                "Upload": {
                    "ID": "", "Size": 0, "SizeIsDeferred": true, "Offset": 0,
                    "MetaData": {"filename": "hello.txt", "flag": ""},
                    "IsPartial": false, "IsFinal": true,
                    "PartialUploads": [id.to_string()], "Storage": null
                },
                "HTTPRequest": {
                    "Method": "POST", "URI": "/files/", "RemoteAddr": "127.0.0.1:5000",
                    "Header": {"Authorization": ["Bearer x"]}
                }
            }
        });
        assert_eq!(json, want);
    }

    /// A receiver that never answers.
    struct Silent;

    #[async_trait::async_trait]
    impl HookSender for Silent {
        async fn send(&self, _: &HookRequest) -> Result<HookResponse, HookError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn background_hooks_queue_at_most_their_bound_and_the_rest_are_dropped() {
        let hooks = Hooks::new(
            Arc::new(Silent),
            HookConfig {
                timeout: Duration::from_secs(3600),
                ..HookConfig::default()
            },
        );
        let dropped = || {
            tusk_metrics::metrics()
                .hooks_dropped
                .with_label_values(&[HookType::PostCreate.as_str()])
                .get()
        };
        let before = dropped();
        let upload = HookUpload::new(None, &Metadata::default(), None);
        for _ in 0..BACKGROUND_QUEUE + 5 {
            hooks.notify(HookType::PostCreate, upload.clone());
        }
        assert_eq!(hooks.tasks.len(), BACKGROUND_QUEUE);
        assert_eq!(dropped() - before, 5);
        // At most the concurrency bound is being sent; the others wait for a turn.
        tokio::task::yield_now().await;
        assert_eq!(
            hooks.sending.available_permits(),
            0,
            "all turns are taken by calls that never end"
        );
    }

    #[test]
    fn response_changes_merge_later_over_earlier_and_apply_to_success_only_as_2xx() {
        let mut changes = HookHttpResponse {
            status_code: 202,
            body: "first".into(),
            header: [("X-A".to_owned(), "1".to_owned())].into(),
        };
        changes.merge(HookHttpResponse {
            status_code: 0,
            body: "second".into(),
            header: [("X-B".to_owned(), "2".to_owned())].into(),
        });
        assert_eq!(changes.status_code, 202, "0 leaves the status alone");
        assert_eq!(changes.body, "second");
        let resp = changes.apply(crate::TusResponse::status(204));
        assert_eq!(resp.status, 202);
        assert_eq!(resp.body, "second");
        assert_eq!(resp.extra_headers.len(), 2);
        // A body on a 204 makes it a 200; a status outside 2xx is ignored.
        let resp = HookHttpResponse {
            status_code: 500,
            body: "kept".into(),
            ..Default::default()
        }
        .apply(crate::TusResponse::status(204));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header_name("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header_name("AUTHORIZATION"), "Authorization");
        assert_eq!(canonical_header_name("upload-metadata"), "Upload-Metadata");
    }

    #[test]
    fn post_receive_is_throttled_per_upload() {
        struct Never;
        #[async_trait]
        impl HookSender for Never {
            async fn send(&self, _: &HookRequest) -> Result<HookResponse, HookError> {
                Err(HookError::Status(500))
            }
        }
        let hooks = Hooks::new(
            Arc::new(Never),
            HookConfig {
                events: HookType::ALL.to_vec(),
                post_receive_interval: Duration::from_secs(3600),
                ..HookConfig::default()
            },
        );
        let (a, b) = (UploadId::generate(), UploadId::generate());
        assert!(hooks.receive_due(&a));
        assert!(!hooks.receive_due(&a), "a second one within the interval");
        assert!(hooks.receive_due(&b), "per upload");
        hooks.forget(&a);
        assert!(hooks.receive_due(&a), "forgotten once finished");
    }

    #[tokio::test]
    async fn post_hooks_retry_then_drain_at_shutdown() {
        use std::sync::atomic::{AtomicU32, Ordering};
        /// Fails the first two calls, then answers after a short delay.
        struct Flaky(AtomicU32);
        #[async_trait]
        impl HookSender for Flaky {
            async fn send(&self, _: &HookRequest) -> Result<HookResponse, HookError> {
                if self.0.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(HookError::Status(503));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(HookResponse::default())
            }
        }
        let sender = Arc::new(Flaky(AtomicU32::new(0)));
        let hooks = Hooks::new(
            sender.clone(),
            HookConfig {
                post_backoff: Duration::from_millis(10),
                ..HookConfig::default()
            },
        );
        let upload = HookUpload::new(Some(1), &Metadata::default(), None);
        hooks.notify(HookType::PostFinish, upload.clone());
        hooks.notify(HookType::PostReceive, upload);
        hooks.drain(Duration::from_secs(10)).await;
        // post-finish: two failures and a success; post-receive is not enabled by default.
        assert_eq!(sender.0.load(Ordering::SeqCst), 3);
    }
}
