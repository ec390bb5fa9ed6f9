use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tusk_core::{
    Concatenation, Expiration, LengthDeclaration, LockGuard, Locker, Storage, Termination,
    UploadId, UploadInfo, UploadStore,
};

use crate::expiry::{Clock, SystemClock};

use crate::body::{PatchBody, Stops};
use crate::hooks::{
    HookHttpRequest, HookHttpResponse, HookType, HookUpload, Hooks, canonical_header_name,
};
use crate::ietf::Draft;
use crate::message::{Method, Target, TusRequest, TusResponse};
use crate::{BodyStream, TUS_VERSION, TusError};

/// Limits and timings of the engine. Defaults match DESIGN.md's numbers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest upload accepted (`Tus-Max-Size`).
    pub max_size: u64,
    /// Largest `Upload-Metadata` header, in bytes.
    pub max_metadata_bytes: usize,
    /// How long a request waits for a held lock before answering 423.
    pub lock_wait: Duration,
    /// A PATCH body that sends nothing for this long ends (and commits what it has).
    pub read_timeout: Duration,
    /// Unfinished uploads expire this long after their last PATCH (`None`: never).
    pub expire_after: Option<Duration>,
    /// Finished uploads are removed this long after they finished (`None`: kept).
    pub finished_retention: Option<Duration>,
    /// An unfinished upload expires at this age whatever its last PATCH (`None`: no limit), so
    /// no upload outlives the bucket rule that aborts abandoned multipart uploads.
    pub max_upload_age: Option<Duration>,
    /// Speak the IETF resumable upload draft to requests that name its interop version.
    pub ietf_draft: bool,
}

/// The largest `Upload-Metadata` the engine may be configured to accept.
pub const MAX_METADATA_LIMIT: usize = 64 << 10;
/// The longest wait any setting may ask for (lock wait, read timeout): no deadline computed from
/// a setting can overflow the clock.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// How old an unfinished upload may get unless configured: 30 days.
pub const DEFAULT_MAX_UPLOAD_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest expiry or retention: a century.
pub const MAX_PERIOD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A setting of the engine that cannot work: its TOML key (the binary adds the flag and
/// environment variable) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct EngineConfigError {
    /// The setting's TOML key.
    pub key: &'static str,
    /// What is wrong and the fix.
    pub message: String,
}

impl EngineConfig {
    /// Refuse settings that cannot work; each error names the setting's TOML key.
    pub fn validate(&self) -> Result<(), EngineConfigError> {
        let invalid = |key, message: &str| {
            Err(EngineConfigError {
                key,
                message: message.to_owned(),
            })
        };
        if self.max_size == 0 {
            return invalid("max_size", "must be at least 1 byte");
        }
        if self.max_metadata_bytes == 0 || self.max_metadata_bytes > MAX_METADATA_LIMIT {
            return Err(EngineConfigError {
                key: "max_metadata_size",
                message: format!("must be between 1 byte and {MAX_METADATA_LIMIT} bytes"),
            });
        }
        for (key, wait) in [
            ("lock_wait", self.lock_wait),
            ("read_timeout", self.read_timeout),
        ] {
            if wait.is_zero() {
                return invalid(key, "must be greater than zero");
            }
            if wait > MAX_WAIT {
                return invalid(key, "must be at most 24h");
            }
        }
        for (key, period) in [
            ("expire_after", self.expire_after),
            ("finished_retention", self.finished_retention),
            ("max_upload_age", self.max_upload_age),
        ] {
            match period {
                // `None` is off; a zero in a file or flag means off and arrives as `None`.
                None => {}
                Some(d) if d < Duration::from_secs(1) => {
                    return invalid(key, "must be 0 (off) or at least 1s");
                }
                Some(d) if d > MAX_PERIOD => {
                    return invalid(key, "must be at most 36500d (a century)");
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_size: 1 << 40,
            max_metadata_bytes: 4096,
            lock_wait: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            expire_after: Some(Duration::from_secs(7 * 24 * 3600)),
            finished_retention: None,
            max_upload_age: Some(DEFAULT_MAX_UPLOAD_AGE),
            ietf_draft: true,
        }
    }
}

/// The tus protocol engine over one store (and the optional abilities it has) and one locker.
pub struct Engine {
    storage: Storage,
    locker: Arc<dyn Locker>,
    config: EngineConfig,
    shutdown: CancellationToken,
    hooks: Option<Arc<Hooks>>,
    clock: Arc<dyn Clock>,
    /// Ids the store said exist moments ago: their pre-lock read is skipped.
    known: crate::known::KnownUploads,
}

impl Engine {
    /// An engine over `storage` and `locker`. The tus extensions it offers, the methods it
    /// allows and its routes follow from the abilities `storage` has.
    pub fn new(storage: Storage, locker: Arc<dyn Locker>, config: EngineConfig) -> Self {
        Self {
            storage,
            locker,
            config,
            shutdown: CancellationToken::new(),
            hooks: None,
            clock: Arc::new(SystemClock),
            known: Default::default(),
        }
    }

    /// Read expiry times from `clock` instead of the system's (tests move a [`ManualClock`]).
    ///
    /// [`ManualClock`]: crate::ManualClock
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock expiry reads.
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Send hooks for this engine's uploads.
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = Some(Arc::new(hooks));
        self
    }

    /// The hooks, if configured.
    pub fn hooks(&self) -> Option<&Hooks> {
        self.hooks.as_deref()
    }

    /// Cancelling this token makes every in-flight PATCH stop reading, commit what it has and
    /// answer; used for graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn store(&self) -> &dyn UploadStore {
        self.storage.store.as_ref()
    }

    /// DELETE, if the store offers it.
    pub(crate) fn termination(&self) -> Option<&dyn Termination> {
        self.storage.termination.as_deref()
    }

    /// `Upload-Defer-Length`, if the store offers it.
    pub(crate) fn length_declaration(&self) -> Option<&dyn LengthDeclaration> {
        self.storage.length_declaration.as_deref()
    }

    /// Expiry, if the store offers it and uploads expire at all.
    pub(crate) fn expiration(&self) -> Option<&dyn Expiration> {
        self.storage.expiration.as_deref()
    }

    /// `Upload-Concat`, if the store offers it.
    pub(crate) fn concatenation(&self) -> Option<&dyn Concatenation> {
        self.storage.concatenation.as_deref()
    }

    /// The tus extensions this engine and its store support, for `Tus-Extension`.
    pub fn extensions(&self) -> Vec<&'static str> {
        let mut ext = vec!["creation", "creation-with-upload"];
        if self.length_declaration().is_some() {
            ext.push("creation-defer-length");
        }
        if self.termination().is_some() {
            ext.push("termination");
        }
        // Verified by the engine as bodies stream, so every store supports it. Not
        // checksum-trailer: actix-web drops request trailers (docs/architecture.md).
        ext.push("checksum");
        if self.expiration().is_some()
            && (self.config.expire_after.is_some() || self.config.max_upload_age.is_some())
        {
            ext.push("expiration");
        }
        if self.concatenation().is_some() {
            ext.push("concatenation");
            ext.push("concatenation-unfinished");
        }
        ext
    }

    /// The methods an upload URL accepts.
    pub(crate) fn upload_methods(&self) -> &'static str {
        if self.termination().is_some() {
            "OPTIONS, HEAD, GET, PATCH, DELETE"
        } else {
            "OPTIONS, HEAD, GET, PATCH"
        }
    }

    /// Answer one request. Never panics on client input; every failure is a [`TusResponse`].
    pub async fn handle(&self, req: TusRequest) -> TusResponse {
        if let Some(header) = SINGLE_HEADERS
            .iter()
            .find(|name| req.headers.count(name) > 1)
        {
            // Which line counts is a guess a proxy may make differently: refuse instead.
            let err = TusError::InvalidHeader {
                header,
                reason: "appears more than once; send it once".into(),
            };
            return err.into_response().header("Tus-Resumable", TUS_VERSION);
        }
        let draft = match self.draft_of(&req) {
            Ok(draft) => draft,
            Err(err) => return err.into_response(),
        };
        // Without hooks there is no request context to keep.
        let context = self
            .hooks()
            .map(|hooks| hook_http_request(&req, &hooks.config().forward_headers));
        let work = async move {
            match draft {
                Some(draft) => self.handle_draft(draft, req).await,
                None => {
                    let resp = match self.dispatch(req).await {
                        Ok(resp) => resp,
                        Err(err) => err.into_response(),
                    };
                    resp.header("Tus-Resumable", TUS_VERSION)
                }
            }
        };
        match context {
            Some(http) => crate::hooks::scoped(http, work).await,
            None => work.await,
        }
    }

    /// The IETF draft version a request speaks, if it speaks the draft: it names an interop
    /// version and no tus version, and the draft is on. A version tusk does not speak is a 400,
    /// except on OPTIONS, which then answers as tus.
    fn draft_of(&self, req: &TusRequest) -> Result<Option<Draft>, TusError> {
        if !self.config.ietf_draft || req.headers.get("Tus-Resumable").is_some() {
            return Ok(None);
        }
        match Draft::of(&req.headers) {
            None => Ok(None),
            Some(Ok(draft)) => Ok(Some(draft)),
            Some(Err(_)) if req.method == Method::Options => Ok(None),
            Some(Err(err)) => Err(err),
        }
    }

    /// The hook event view of `info`.
    pub(crate) fn hook_upload(&self, info: &UploadInfo) -> HookUpload {
        let location = self.store().location(info);
        HookUpload::from_info(
            info,
            location
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    /// [`Engine::finished`] where failing the request would not help the client: a POST (a
    /// retry would create a duplicate) or the request that happened to assemble a final upload.
    /// The failure is logged (and counted in the hook metrics); the response changes of a
    /// pre-finish that answered are returned.
    pub(crate) async fn finished_logged(&self, info: &UploadInfo) -> HookHttpResponse {
        self.finished(info).await.unwrap_or_else(|err| {
            tracing::warn!(upload_id = %info.id, error = %err, "upload complete, but its finish hooks failed");
            HookHttpResponse::default()
        })
    }

    /// `info` just received its last byte (or was assembled): pre-finish, whose answer's
    /// response changes are returned (for the caller to apply to a successful response) and
    /// whose failure fails the request (the bytes stay stored), then post-finish in the
    /// background.
    pub(crate) async fn finished(&self, info: &UploadInfo) -> Result<HookHttpResponse, TusError> {
        tusk_metrics::metrics().uploads_finished.inc();
        let Some(hooks) = self.hooks() else {
            return Ok(HookHttpResponse::default());
        };
        hooks.forget(&info.id);
        let upload = self.hook_upload(info);
        let changes = match hooks.call(HookType::PreFinish, upload.clone()).await {
            Err(err) => {
                return Err(TusError::HookFailed {
                    hook: HookType::PreFinish,
                    reason: err.to_string(),
                });
            }
            Ok(Some(answer)) => answer.http_response,
            Ok(None) => HookHttpResponse::default(),
        };
        hooks.notify(HookType::PostFinish, upload);
        Ok(changes)
    }

    async fn dispatch(&self, req: TusRequest) -> Result<TusResponse, TusError> {
        if req.method == Method::Options {
            return Ok(self.options());
        }
        // Downloads come from browsers and plain HTTP clients, which send no Tus-Resumable.
        if req.method != Method::Get
            && req.headers.get("Tus-Resumable").map(str::trim) != Some(TUS_VERSION)
        {
            return Err(TusError::UnsupportedVersion);
        }
        // Parsed once; an invalid id is a 404 once the method is known to be allowed.
        let id = match &req.target {
            Target::Upload(raw) => Some(parse_id(raw)),
            Target::Collection => None,
        };
        if let Some(Ok(id)) = &id {
            tracing::Span::current().record("upload_id", tracing::field::display(id));
        }
        let terminates = self.termination().is_some();
        match (&req.method, id) {
            (Method::Post, None) => self.post(req).await,
            (Method::Head, Some(id)) => self.head(&id?, &req.location_base).await,
            (Method::Get, Some(id)) => self.get(&id?, &req.headers).await,
            (Method::Patch, Some(id)) => self.patch(&id?, req).await,
            (Method::Delete, Some(id)) if terminates => self.delete(&id?).await,
            (_, None) => Err(TusError::MethodNotAllowed {
                allow: "OPTIONS, POST",
            }),
            (_, Some(_)) => Err(TusError::MethodNotAllowed {
                allow: self.upload_methods(),
            }),
        }
    }

    pub(crate) fn locker(&self) -> &dyn Locker {
        self.locker.as_ref()
    }

    /// Lock an upload that exists. An id no upload has is answered 404 from a plain read of
    /// the store before any lock is taken: a lock costs writes to the lock service (etcd: a
    /// lease, a put, a watch, a delete), and requests for unknown ids, which need no login and
    /// which any web page can make browsers send, must cost nothing there. The read is not
    /// fenced; the locked read that follows is, so an upload removed in between is still 404.
    ///
    /// The pre-access hook, when on, is asked here too, from the same read: a refused request
    /// takes no lock and changes nothing. Without that hook, an id the store said exists a few
    /// seconds ago on this node is locked without the read ([`crate::known`]).
    pub(crate) async fn lock_existing(&self, id: &UploadId) -> Result<LockGuard, TusError> {
        let asks_hook = self
            .hooks()
            .is_some_and(|hooks| hooks.enabled(crate::hooks::HookType::PreAccess));
        if !asks_hook && self.known.contains(id) {
            tusk_metrics::metrics().known_upload_hits.inc();
            return self.lock(id).await;
        }
        let info = self.store().info(id).await?;
        self.authorize(&info).await?;
        self.known.insert(id);
        self.lock(id).await
    }

    /// Upload `id` was just created here: its next requests on this node lock without the read.
    pub(crate) fn known_to_exist(&self, id: &UploadId) {
        self.known.insert(id);
    }

    /// Remove upload `id` (under its lock, `fence`) and everything this node keeps about it:
    /// its place among the known uploads, its hook throttle. The one way DELETE, a stopping
    /// post-receive hook and the reaper remove an upload.
    pub(crate) async fn remove_upload(
        &self,
        termination: &dyn tusk_core::Termination,
        id: &UploadId,
        fence: u64,
    ) -> Result<(), TusError> {
        termination.terminate(id, fence).await?;
        self.known.forget(id);
        if let Some(hooks) = self.hooks() {
            hooks.forget(id);
        }
        Ok(())
    }

    /// The pre-access hook's answer for the current request on `info`'s upload (allowed when
    /// no hook is set).
    pub(crate) async fn authorize(&self, info: &UploadInfo) -> Result<(), TusError> {
        match self.hooks() {
            Some(hooks) => hooks.authorize(&info.id, || self.hook_upload(info)).await,
            None => Ok(()),
        }
    }

    pub(crate) async fn lock(&self, id: &UploadId) -> Result<LockGuard, TusError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("lock", otel.name = "lock acquire", upload_id = %id);
        let locked = self
            .locker
            .lock(id, self.config.lock_wait)
            .instrument(span)
            .await;
        tusk_metrics::metrics()
            .lock_wait
            .observe(started.elapsed().as_secs_f64());
        Ok(locked?)
    }

    /// Readiness: not shutting down, and the store's and locker's services answer. Also
    /// recorded in the `tusk_ready` gauge.
    pub async fn ready(&self) -> Result<(), String> {
        let ready = self.check_ready().await;
        tusk_metrics::metrics().ready.set(i64::from(ready.is_ok()));
        ready
    }

    async fn check_ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".to_owned());
        }
        self.store().check().await.map_err(|e| e.to_string())?;
        self.locker.check().await.map_err(|e| e.to_string())
    }

    /// Wrap a request body so it stops on any of the engine's conditions.
    pub(crate) fn patch_body(
        &self,
        stream: BodyStream,
        room: u64,
        guard: &LockGuard,
        stopped_by_hook: CancellationToken,
    ) -> PatchBody {
        PatchBody::new(
            stream,
            room,
            self.config.read_timeout,
            Stops {
                release: guard.release_requested().clone(),
                lost: guard.lost().clone(),
                shutdown: self.shutdown.clone(),
                stopped_by_hook,
            },
        )
        .with_lock_kept(guard.kept())
    }
}

/// Headers a request may carry once only: each is one value (a number, a token, a list that
/// must not be split), and two lines of one would leave the server and any proxy on the way to
/// pick different ones.
const SINGLE_HEADERS: &[&str] = &[
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Concat",
    "Upload-Checksum",
    "Upload-Complete",
    "Upload-Incomplete",
    "Upload-Draft-Interop-Version",
];

/// The client request as hooks are told about it: only allow-listed headers, in Go's
/// canonical form.
fn hook_http_request(req: &TusRequest, forward: &[String]) -> HookHttpRequest {
    let mut header: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in req.headers.iter() {
        if forward.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            header
                .entry(canonical_header_name(name))
                .or_default()
                .push(value.to_owned());
        }
    }
    HookHttpRequest {
        method: req.method.as_str().to_owned(),
        uri: req.uri.clone(),
        remote_addr: req.remote_addr.clone(),
        header,
        traceparent: req.headers.get("traceparent").map(str::to_owned),
    }
}

/// The upload a path names. Ids starting with `_` are tusk's own lock names (the reaper's):
/// no client may lock them, so they name no upload.
pub(crate) fn parse_id(raw: &str) -> Result<UploadId, TusError> {
    if is_reserved(raw) {
        return Err(TusError::UnknownId);
    }
    UploadId::parse(raw).map_err(|_| TusError::UnknownId)
}

/// Whether `id` is reserved for tusk's own lock names, never an upload's.
pub(crate) fn is_reserved(id: &str) -> bool {
    id.starts_with('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_settings_that_cannot_work_name_their_key() {
        let ok = EngineConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases: [(EngineConfig, &str); 7] = [
            (
                EngineConfig {
                    max_size: 0,
                    ..ok.clone()
                },
                "max_size",
            ),
            (
                EngineConfig {
                    max_metadata_bytes: 65 << 10,
                    ..ok.clone()
                },
                "max_metadata_size",
            ),
            (
                EngineConfig {
                    lock_wait: Duration::ZERO,
                    ..ok.clone()
                },
                "lock_wait",
            ),
            (
                EngineConfig {
                    read_timeout: Duration::from_secs(25 * 3600),
                    ..ok.clone()
                },
                "read_timeout",
            ),
            (
                EngineConfig {
                    expire_after: Some(Duration::from_millis(500)),
                    ..ok.clone()
                },
                "expire_after",
            ),
            (
                EngineConfig {
                    finished_retention: Some(MAX_PERIOD * 2),
                    ..ok.clone()
                },
                "finished_retention",
            ),
            (
                EngineConfig {
                    max_upload_age: Some(Duration::from_millis(10)),
                    ..ok.clone()
                },
                "max_upload_age",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().unwrap_err().key, key);
        }
        // Off is allowed for both periods.
        let off = EngineConfig {
            expire_after: None,
            finished_retention: None,
            ..ok
        };
        assert_eq!(off.validate(), Ok(()));
    }

    #[test]
    fn paths_cannot_name_tusks_own_locks() {
        // The reaper locks `_tusk-reaper` through the same locker: a client that could lock it
        // (HEAD /files/_tusk-reaper, repeatedly) would stop expired uploads from being removed.
        assert!(matches!(parse_id("_tusk-reaper"), Err(TusError::UnknownId)));
        assert!(matches!(parse_id("_"), Err(TusError::UnknownId)));
        assert!(parse_id("custom-id_1").is_ok());
        assert!(parse_id(UploadId::generate().as_str()).is_ok());
    }
}
