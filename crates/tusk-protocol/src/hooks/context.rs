//! The client request the current request's hooks describe, kept as task-local context.

use super::HookHttpRequest;

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
pub(super) fn current_request() -> HookHttpRequest {
    REQUEST.try_with(Clone::clone).unwrap_or_default()
}
