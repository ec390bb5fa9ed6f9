//! Hooks: the engine tells an outside receiver about uploads (post-*) and lets it decide
//! (pre-*). The request and response shapes are tusd's, so a tusd hook receiver works
//! unchanged; how they travel (HTTP) is a [`HookSender`] the binary chooses.
//!
//! pre-* hooks block the request and refuse it when they fail. post-* hooks run in the
//! background, are retried with backoff and never fail an upload.
//!
//! This file holds [`Hooks`]: dispatch, the background queue, the post-receive throttle and the
//! pre-access cache. The tusd wire types are in `wire`, the current request's context in
//! `context`.

mod context;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tusk_core::UploadId;

use context::current_request;
pub(crate) use context::scoped;
pub(crate) use wire::canonical_header_name;
pub use wire::{
    FileInfoChanges, HookError, HookEvent, HookHttpRequest, HookHttpResponse, HookRequest,
    HookResponse, HookSender, HookType, HookUpload,
};

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

impl HookConfig {
    /// Refuse settings that cannot work; each error names the setting's TOML key.
    pub fn validate(&self) -> Result<(), crate::EngineConfigError> {
        let invalid = |key, message: &str| {
            Err(crate::EngineConfigError {
                key,
                message: message.to_owned(),
            })
        };
        for (key, wait) in [
            ("hooks_timeout", self.timeout),
            ("hooks_backoff", self.post_backoff),
            ("hooks_post_receive_interval", self.post_receive_interval),
        ] {
            if wait.is_zero() {
                return invalid(key, "must be greater than zero");
            }
            if wait > crate::MAX_WAIT {
                return invalid(key, "must be at most 24h");
            }
        }
        if self.post_retries > 100 {
            return invalid("hooks_retries", "at most 100");
        }
        if self.access_cache > Duration::from_secs(3600) {
            return invalid("hooks_access_cache", "must be at most 1h");
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tusk_core::Metadata;

    use super::*;

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
