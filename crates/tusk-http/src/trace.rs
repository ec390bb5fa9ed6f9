//! W3C trace context: a request that arrives with `traceparent` continues the client's trace.

use actix_web::HttpRequest;
use opentelemetry::propagation::Extractor;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Make `span` a child of the trace context in `req`'s headers, if there is a valid one. Does
/// nothing when tusk exports no traces.
pub(crate) fn adopt_remote_parent(span: &tracing::Span, req: &HttpRequest) {
    if !req.headers().contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req)));
    // Fails only when no OpenTelemetry layer is installed: then there is nothing to join.
    let _ = span.set_parent(cx);
}

struct Headers<'a>(&'a HttpRequest);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.headers().get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.headers().keys().map(|k| k.as_str()).collect()
    }
}
