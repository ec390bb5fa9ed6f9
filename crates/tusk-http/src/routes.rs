use std::task::Poll;
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use tracing::Instrument;
use tusk_protocol::{BodyStream, Headers, Method, Target, TusRequest, TusResponse};

use crate::conn::ConnWatch;
use crate::interim::RequestInterims;
use crate::{AppState, cors, location};

/// Bytes buffered between the socket and the engine: bounded, so a slow store slows the socket
/// instead of growing memory. Counted in bytes, not chunks: HTTP/2 hands the body on in 16 KiB
/// frames, HTTP/1.1 in reads of up to 64 KiB, and a bound in chunks made HTTP/2's queue a
/// quarter of HTTP/1.1's. HTTP/2 needs 1 MiB to keep its speed (docs/benchmarks.md, "HTTPS");
/// HTTP/1.1 runs as fast with a quarter of it, and this queue is outside the part buffer budget,
/// once per upload in flight (8 uploads: 6 MiB less at peak, docs/benchmarks.md, "Memory").
const BODY_QUEUE_BYTES: usize = 1 << 20;
const BODY_QUEUE_BYTES_HTTP1: usize = 256 << 10;
/// Frames that arrive together are joined into chunks of up to this size before they are
/// queued, so the engine handles a few large chunks rather than many 16 KiB frames.
const BODY_CHUNK: usize = 256 << 10;

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
    let watch = req.conn_data::<ConnWatch>().cloned();
    // Every request of the connection, in order, before anything can answer it: the socket
    // wrapper counts responses against these (see `interim`).
    let interim = watch.as_ref().map(|watch| {
        let interims = watch.interims().clone();
        let number = interims.register(req.method() == actix_web::http::Method::HEAD);
        RequestInterims { interims, number }
    });
    if let Some(resp) = service_endpoint(&req, &state).await {
        return resp;
    }
    // HTTP/1.0 clients must not get interim responses (RFC 9110, 15.2).
    let interim = interim
        .filter(|_| req.version() == actix_web::http::Version::HTTP_11)
        .map(|interim| std::sync::Arc::new(interim) as std::sync::Arc<dyn tusk_protocol::Interim>);
    let task_running = watch.as_ref().map(ConnWatch::task_started);
    let work = actix_web::rt::spawn(async move {
        let _task_running = task_running;
        handle_tus(req, payload, state, watch, interim).await
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
    interim: Option<std::sync::Arc<dyn tusk_protocol::Interim>>,
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
            let queue = if req.version() == actix_web::http::Version::HTTP_2 {
                BODY_QUEUE_BYTES
            } else {
                BODY_QUEUE_BYTES_HTTP1
            };
            let body =
                matches!(method, Method::Post | Method::Patch).then(|| pump(payload, watch, queue));
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
                interim,
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
fn pump(mut payload: web::Payload, watch: Option<ConnWatch>, queue: usize) -> BodyStream {
    // A chunk holds its bytes' share of the queue's room until the engine takes it.
    let room = std::sync::Arc::new(tokio::sync::Semaphore::new(queue));
    let share_bytes = BODY_CHUNK.min(queue);
    let share = u32::try_from(share_bytes).unwrap_or(u32::MAX);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(
        std::io::Result<bytes::Bytes>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    )>();
    // Registered before the task first runs: the connection may end in between.
    let pumping = watch.as_ref().map(ConnWatch::pump_started);
    actix_web::rt::spawn(async move {
        let _pumping = pumping;
        let mut frames: Vec<bytes::Bytes> = Vec::new();
        let mut ended = false;
        while !ended {
            // Room for a whole chunk first, then bytes: a pump that read a chunk and then
            // waited for room would hold one chunk more per upload while the store is slow
            // (docs/benchmarks.md). Room the chunk does not fill is given back below.
            let Ok(mut permit) = room.clone().acquire_many_owned(share).await else {
                break;
            };
            if tx.is_closed() {
                break;
            }
            // Wait for the next frame; then take every frame that is already there, up to a
            // chunk, without waiting again.
            let mut wait = true;
            let mut size = 0;
            let mut failed = None;
            loop {
                let next = std::future::poll_fn(|cx| match payload.poll_next_unpin(cx) {
                    Poll::Pending if !wait => Poll::Ready(None::<Option<_>>),
                    Poll::Pending => {
                        if let Some(watch) = &watch {
                            watch.body_idle();
                        }
                        Poll::Pending
                    }
                    Poll::Ready(item) => Poll::Ready(Some(item)),
                })
                .await;
                match next {
                    // Nothing more right now.
                    None => break,
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    Some(Some(Ok(frame))) => {
                        size += frame.len();
                        frames.push(frame);
                        wait = false;
                        if size >= BODY_CHUNK {
                            break;
                        }
                    }
                    Some(Some(Err(e))) => {
                        failed = Some(std::io::Error::other(e.to_string()));
                        break;
                    }
                }
            }
            if size > 0 {
                // One frame goes on as it is; several are joined (one copy).
                let chunk = if frames.len() == 1 {
                    frames.pop().unwrap_or_default()
                } else {
                    let mut joined = bytes::BytesMut::with_capacity(size);
                    for frame in frames.drain(..) {
                        joined.extend_from_slice(&frame);
                    }
                    joined.freeze()
                };
                // Small chunks (HTTP/2's 16 KiB frames, a slow client) leave the rest of the
                // queue to the chunks after them.
                drop(permit.split(share_bytes - chunk.len().min(share_bytes)));
                if tx.send((Ok(chunk), Some(permit))).is_err() {
                    break;
                }
            }
            // Empty frames (which carry nothing) do not pile up.
            frames.clear();
            if let Some(err) = failed {
                let _ = tx.send((Err(err), None));
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        // The permit is dropped here: the engine has the chunk, its room is free again.
        rx.recv().await.map(|(item, _permit)| (item, rx))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body a handler would be given for `payload`.
    async fn request_body(mut payload: actix_web::dev::Payload) -> web::Payload {
        use actix_web::FromRequest as _;
        let req = actix_web::test::TestRequest::default().to_http_request();
        web::Payload::from_request(&req, &mut payload)
            .await
            .unwrap()
    }

    /// A body of many small frames (as HTTP/2 delivers it) comes out whole and in order, in
    /// fewer, larger chunks; a body that breaks hands on every byte before its error.
    #[test]
    fn the_pump_joins_frames_and_keeps_every_byte_before_an_error() {
        actix_web::rt::System::new().block_on(async {
            let (mut sender, payload) = actix_http::h1::Payload::create(false);
            let mut sent = Vec::new();
            for i in 0..100u8 {
                let frame = vec![i; 16 * 1024];
                sent.extend_from_slice(&frame);
                sender.feed_data(bytes::Bytes::from(frame));
            }
            sender.set_error(actix_http::error::PayloadError::Incomplete(None));
            let body = request_body(actix_web::dev::Payload::from(payload)).await;
            let mut body = pump(body, None, BODY_QUEUE_BYTES);
            let (mut got, mut chunks) = (Vec::new(), 0);
            let mut ended_in_error = false;
            while let Some(item) = body.next().await {
                match item {
                    Ok(chunk) => {
                        assert!(!ended_in_error, "bytes after the error");
                        assert!(chunk.len() <= BODY_CHUNK);
                        got.extend_from_slice(&chunk);
                        chunks += 1;
                    }
                    Err(_) => ended_in_error = true,
                }
            }
            assert!(ended_in_error);
            assert!(got == sent, "{} of {} bytes", got.len(), sent.len());
            assert!(chunks < 100, "frames were joined: {chunks} chunks");
        });
    }

    /// While the engine does not take chunks, the pump reads no more than the queue holds: it
    /// waits for room before it reads, not with a chunk in hand.
    #[test]
    fn the_pump_reads_no_further_than_the_queue_has_room_for() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const FRAME: usize = 64 * 1024;
        actix_web::rt::System::new().block_on(async {
            let pulled = std::sync::Arc::new(AtomicUsize::new(0));
            let counter = pulled.clone();
            // Always ready, 64 frames of 64 KiB (4 MiB): the pump is only held back by room.
            let frames = futures_util::stream::iter(0..64).map(move |_| {
                counter.fetch_add(FRAME, Ordering::SeqCst);
                Ok::<_, actix_web::error::PayloadError>(bytes::Bytes::from(vec![1u8; FRAME]))
            });
            let stream: actix_http::BoxedPayloadStream = Box::pin(frames);
            let body = request_body(actix_web::dev::Payload::from(stream)).await;
            let mut body = pump(body, None, BODY_QUEUE_BYTES_HTTP1);
            // Let the pump run as far as it can (it never waits on anything but room).
            for _ in 0..200 {
                actix_web::rt::task::yield_now().await;
            }
            let before = pulled.load(Ordering::SeqCst);
            assert!(
                before >= BODY_CHUNK,
                "the pump did not start: {before} bytes"
            );
            assert!(
                before <= BODY_QUEUE_BYTES_HTTP1,
                "{before} bytes read with a queue of {BODY_QUEUE_BYTES_HTTP1}"
            );
            // The engine takes one chunk: room for one more, and no more than that.
            let first = body.next().await.unwrap().unwrap();
            for _ in 0..200 {
                actix_web::rt::task::yield_now().await;
            }
            let after = pulled.load(Ordering::SeqCst);
            assert!(after > before, "no progress after a chunk was taken");
            assert!(
                after <= before + first.len(),
                "{after} bytes read after {before}, one chunk of {} taken",
                first.len()
            );
        });
    }

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
