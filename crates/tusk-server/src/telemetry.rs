//! Logs on stderr and, with an OTLP endpoint, traces: one subscriber, two layers, each with
//! its own filter (RUST_LOG for logs; tusk's own spans at INFO and above for traces).

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Otlp;
use crate::units::{LogFormat, OtlpProtocol};

/// The trace pipeline, to flush at exit.
pub struct Tracing(Option<SdkTracerProvider>);

/// Install logging, and tracing when `otlp` is set. An incoming `traceparent` is always
/// understood (W3C trace context), so hooks pass it on even without an exporter.
pub fn init(format: LogFormat, otlp: Option<&Otlp>) -> anyhow::Result<Tracing> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let log_filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .fmt_fields(LogFields)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(log_filter())
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
    });
    let provider = otlp.map(provider).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tusk"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("tusk") && *meta.level() <= tracing::Level::INFO
            }))
    });
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(traces)
        .try_init()
        .context("cannot install the log subscriber")?;
    Ok(Tracing(provider))
}

fn provider(otlp: &Otlp) -> anyhow::Result<SdkTracerProvider> {
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp.endpoint.clone())
            .build(),
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(http_traces_url(&otlp.endpoint))
            .build(),
    }
    .context("cannot set up the OTLP trace exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "tusk".to_owned());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}

/// OTLP/HTTP posts traces to `/v1/traces`; a bare `http://host:4318` means that path.
fn http_traces_url(endpoint: &str) -> String {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(slash) if after_scheme[slash..] != *"/" => endpoint.to_owned(),
        _ => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
    }
}

/// Span fields in text logs as usual, minus `otel.*` (span names and kinds meant for traces).
struct LogFields;

impl<'w> FormatFields<'w> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = WithoutOtel(DefaultVisitor::new(writer, true));
        fields.record(&mut visitor);
        visitor.0.finish()
    }
}

struct WithoutOtel<V>(V);

impl<V: Visit> Visit for WithoutOtel<V> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !field.name().starts_with("otel.") {
            self.0.record_str(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !field.name().starts_with("otel.") {
            self.0.record_debug(field, value);
        }
    }
}

impl Tracing {
    /// Send the spans still queued (bounded by the exporter's timeout). Runs the blocking
    /// flush off the runtime, which the gRPC exporter needs to make progress.
    pub async fn shutdown(self) {
        let Some(provider) = self.0 else { return };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = flushed {
            eprintln!("tusk: traces not all sent at exit: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both exporters set up TLS when they are built; a missing crypto provider would fail (or
    /// panic) here rather than on a user's first span.
    #[tokio::test]
    async fn https_endpoints_build_exporters_for_both_protocols() {
        crate::use_ring_for_tls();
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::Http] {
            let otlp = Otlp {
                endpoint: "https://127.0.0.1:1".to_owned(),
                protocol,
            };
            let provider = provider(&otlp).expect("an exporter for an https endpoint");
            tokio::task::spawn_blocking(move || drop(provider))
                .await
                .unwrap();
        }
    }

    #[test]
    fn http_endpoints_get_the_traces_path_when_they_have_none() {
        assert_eq!(http_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(http_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            http_traces_url("https://c/custom/traces"),
            "https://c/custom/traces"
        );
    }
}
