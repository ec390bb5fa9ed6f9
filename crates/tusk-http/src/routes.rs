use std::task::Poll;
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use tracing::Instrument;
use tusk_protocol::{BodyStream, Headers, Method, Target, TusRequest, TusResponse};

use crate::conn::ConnWatch;
use crate::{AppState, cors, location};

/// Chunks buffered between the socket and the engine: bounded, so a slow store slows the
/// socket instead of growing memory.
const BODY_QUEUE: usize = 4;

/// Every request under the base path goes to the engine; anything else is 404.
///
/// The work runs in a task of its own, tied to the connection (see `conn`): when the client's
/// connection breaks, actix may drop this handler, but the commit of the bytes that arrived
/// runs to its end, and the lock is given back only after it.
pub(crate) async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Some(resp) = service_endpoint(&req, &state).await {
        return resp;
    }
    let watch = req.conn_data::<ConnWatch>().cloned();
    let task_running = watch.as_ref().map(ConnWatch::task_started);
    let work = actix_web::rt::spawn(async move {
        let _task_running = task_running;
        handle_tus(req, payload, state, watch).await
    });
    match work.await {
        Ok(resp) => resp,
        Err(err) => {
            tracing::error!(error = %err, "request task failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A request under the base path (or a stray one), answered by the engine.
async fn handle_tus(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    watch: Option<ConnWatch>,
) -> HttpResponse {
    let started = Instant::now();
    let config = &state.config;
    let origin = header(&req, "origin").map(str::to_owned);
    // X-HTTP-Method-Override lets clients behind restrictive proxies send PATCH and DELETE as
    // POST. Only on POST: a GET that any web page can make a browser send must never become a
    // DELETE.
    let method_name = header(&req, "x-http-method-override")
        .filter(|_| req.method() == actix_web::http::Method::POST)
        .map(|m| m.trim().to_ascii_uppercase())
        .unwrap_or_else(|| req.method().as_str().to_owned());
    let method = Method::parse(&method_name);
    let preflight =
        method == Method::Options && req.headers().contains_key("access-control-request-method");
    // Unknown methods share one label: a client cannot grow the metric's label set
    // or the trace's span names.
    let method_label = match &method {
        Method::Other(_) => "other",
        known => known.as_str(),
    };
    let request_id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        otel.name = format!("tus {method_label}"),
        otel.kind = "server",
        id = %request_id,
        method = %method_name,
        upload_id = tracing::field::Empty,
        offset = tracing::field::Empty,
        new_offset = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    crate::trace::adopt_remote_parent(&span, &req);

    let target = route(&config.base_path, req.path());
    let route_label = match &target {
        Some(Target::Collection) => "collection",
        Some(Target::Upload(_)) => "upload",
        None => "none",
    };
    let resp = match target {
        None => TusResponse::status(404)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Tus-Resumable", tusk_protocol::TUS_VERSION),
        Some(target) => {
            let mut headers = Headers::new();
            for (name, value) in req.headers() {
                headers.insert(name.as_str(), String::from_utf8_lossy(value.as_bytes()));
            }
            let body = matches!(method, Method::Post | Method::Patch).then(|| pump(payload, watch));
            // Only hooks are told these.
            let (uri, remote_addr) = if state.engine.hooks().is_some() {
                (req.uri().to_string(), location::client_addr(&req, config))
            } else {
                (String::new(), String::new())
            };
            let tus = TusRequest {
                method: method.clone(),
                target,
                headers,
                body,
                location_base: location::collection_url(&req, config),
                uri,
                remote_addr,
            };
            state.engine.handle(tus).instrument(span.clone()).await
        }
    };
    let metrics = tusk_metrics::metrics();
    metrics
        .http_requests
        .with_label_values(&[method_label, route_label, &resp.status.to_string()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method_label, route_label])
        .observe(started.elapsed().as_secs_f64());
    span.record("status", resp.status);
    span.in_scope(|| {
        tracing::info!(
            path = req.path(),
            status = resp.status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
    });

    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in resp.headers {
        out.insert_header((name, value));
    }
    for (name, value) in cors::headers(&config.cors, origin.as_deref(), preflight) {
        out.insert_header((name, value));
    }
    for (name, value) in &resp.extra_headers {
        if is_protocol_header(name) {
            tracing::warn!(header = %name, "a hook asked to set a protocol header; ignored");
            continue;
        }
        match (
            actix_web::http::header::HeaderName::try_from(name.as_str()),
            actix_web::http::header::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                out.insert_header((name, value));
            }
            _ => {
                tracing::warn!(header = %name, "a hook asked for an invalid response header; dropped")
            }
        }
    }
    out.insert_header(("X-Request-ID", request_id));
    if let Some((length, stream)) = resp.stream {
        // A download: streamed from the store with its exact length, never buffered whole.
        return out.body(SizedStream::new(length, stream));
    }
    if method == Method::Head || resp.body.is_empty() {
        out.finish()
    } else {
        out.body(resp.body)
    }
}

/// `/healthz` (the process lives), `/readyz` (it can serve: not draining, services answer) and
/// `/metrics` (unless served on its own listener), outside the tus collection.
async fn service_endpoint(req: &HttpRequest, state: &AppState) -> Option<HttpResponse> {
    if !matches!(req.method().as_str(), "GET" | "HEAD") {
        return None;
    }
    let plain = |status: StatusCode, body: String| {
        HttpResponse::build(status)
            .insert_header(("Content-Type", "text/plain; charset=utf-8"))
            .insert_header(("Cache-Control", "no-store"))
            .body(body)
    };
    match req.path() {
        "/healthz" => Some(plain(StatusCode::OK, "ok\n".to_owned())),
        "/readyz" => Some(match state.engine.ready().await {
            Ok(()) => plain(StatusCode::OK, "ready\n".to_owned()),
            Err(why) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        }),
        "/metrics" if state.config.metrics_on_main => Some(metrics_response()),
        _ => None,
    }
}

/// The Prometheus text exposition.
pub(crate) fn metrics_response() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", tusk_metrics::CONTENT_TYPE))
        .body(tusk_metrics::render())
}

/// Headers tusk owns: a hook's answer may not change them (clients and browsers rely on them).
fn is_protocol_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["tus-", "upload-", "access-control-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || matches!(
            name.as_str(),
            "location" | "content-length" | "transfer-encoding" | "x-request-id"
        )
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The client's `X-Request-ID` when it is short and plain, else a fresh one.
fn request_id(req: &HttpRequest) -> String {
    if let Some(id) = header(req, "x-request-id").filter(|id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }) {
        return id.to_owned();
    }
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return "unknown".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which tus target a path addresses: the base path itself, or one segment below it.
pub(crate) fn route(base_path: &str, path: &str) -> Option<Target> {
    if path == base_path || path == base_path.trim_end_matches('/') {
        return Some(Target::Collection);
    }
    let rest = path.strip_prefix(base_path)?;
    if rest.contains('/') {
        return None;
    }
    Some(Target::Upload(rest.to_owned()))
}

/// Move the request body (which lives on this worker thread) into a `Send` stream for the
/// engine, through a small bounded queue. Dropping the stream stops the pump. The connection's
/// watch learns when the body is empty, so a broken connection's last bytes are not lost.
fn pump(mut payload: web::Payload, watch: Option<ConnWatch>) -> BodyStream {
    let (tx, rx) = tokio::sync::mpsc::channel(BODY_QUEUE);
    // Registered before the task first runs: the connection may end in between.
    let pumping = watch.as_ref().map(ConnWatch::pump_started);
    actix_web::rt::spawn(async move {
        let _pumping = pumping;
        loop {
            let next = std::future::poll_fn(|cx| match payload.poll_next_unpin(cx) {
                Poll::Pending => {
                    if let Some(watch) = &watch {
                        watch.body_idle();
                    }
                    Poll::Pending
                }
                ready => ready,
            })
            .await;
            let Some(item) = next else { break };
            let item = item.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_the_collection_and_single_segments() {
        let cases = [
            ("/files/", Some(Target::Collection)),
            ("/files", Some(Target::Collection)),
            ("/files/abc", Some(Target::Upload("abc".into()))),
            ("/files/abc/", None),
            ("/files/a/b", None),
            ("/other/abc", None),
            ("/filesabc", None),
            ("/", None),
        ];
        for (path, want) in cases {
            assert_eq!(route("/files/", path), want, "{path}");
        }
    }
}
