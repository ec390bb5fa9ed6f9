//! OpenTelemetry traces end to end: a real OTLP receiver in the test (gRPC on tonic, and
//! protobuf over HTTP) collects what the real binary exports.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

use crate::receiver::{Answer, Receiver};
use crate::services::{Cluster, Endpoints, free_port, services_enabled};
use crate::support::*;

/// An OTLP/gRPC trace collector on 127.0.0.1.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

struct Service(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .lock()
            .unwrap()
            .extend(spans_of(request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn spans_of(request: ExportTraceServiceRequest) -> Vec<Span> {
    request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

impl Collector {
    async fn start() -> Collector {
        let port = free_port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let service = TraceServiceServer::new(Service(spans.clone()));
            async move {
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve(addr)
                    .await
                    .unwrap();
            }
        });
        wait_until_connectable(addr).await;
        Collector {
            url: format!("http://{addr}"),
            spans,
            task,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_until_connectable(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "collector did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

/// A number attribute (tracing-opentelemetry sends values recorded late as text).
fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        AnyValue::IntValue(n) => Some(n),
        AnyValue::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

/// Whether `span` descends from `ancestor` within `spans`.
fn descends_from(span: &Span, ancestor: &Span, spans: &[Span]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..32 {
        if parent == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(next) => parent = next.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn a_patch_in_distributed_mode_exports_its_span_tree_over_grpc() {
    if !services_enabled("a_patch_in_distributed_mode_exports_its_span_tree_over_grpc") {
        return;
    }
    let collector = Collector::start().await;
    let hooks = Receiver::start(|_| Answer::ok(json!({}))).await;
    let cluster = Cluster::start_with_env(
        Endpoints::shared(),
        1,
        &[
            "--otlp-endpoint",
            &collector.url,
            "--otlp-protocol",
            "grpc",
            "--hooks-url",
            &hooks.url,
            "--hooks-events",
            "pre-finish",
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let length = 6 * 1024 * 1024 + 1;
    let url = cluster.create(0, length as u64).await;
    let id = id_of(&url).to_owned();
    let trace_hex = "0af7651916cd43dd8448eb211c80319c";
    let parent_hex = "b7ad6b7169203331";
    let traceparent = format!("00-{trace_hex}-{parent_hex}-01");
    let (status, offset) = patch_with(
        &url,
        0,
        pattern(length, 3),
        &[("traceparent", traceparent.clone())],
    )
    .await;
    assert_eq!((status, offset), (204, Some(length as u64)));

    let trace_id = hex::decode(trace_hex).unwrap();
    let in_trace = || -> Vec<Span> {
        collector
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    };
    let named = |spans: &[Span], prefix: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .cloned()
            .collect()
    };
    wait_until("the PATCH's spans", || {
        let spans = in_trace();
        [
            "tus PATCH",
            "lock acquire",
            "redis ",
            "s3 UploadPart",
            "s3 CompleteMultipartUpload",
            "hook pre-finish",
        ]
        .iter()
        .all(|name| !named(&spans, name).is_empty())
    })
    .await;
    let spans = in_trace();

    // One server span for the request, a child of the client's span, with the upload's facts.
    let requests = named(&spans, "tus PATCH");
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.parent_span_id, hex::decode(parent_hex).unwrap());
    assert_eq!(request.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(text(request, "upload_id").as_deref(), Some(id.as_str()));
    assert_eq!(text(request, "method").as_deref(), Some("PATCH"));
    assert_eq!(int(request, "offset"), Some(0));
    assert_eq!(int(request, "new_offset"), Some(length as i64));
    assert_eq!(int(request, "status"), Some(204));

    // Children: the lock, each Redis script and S3 call, the hook.
    for lock in named(&spans, "lock acquire") {
        assert_eq!(lock.parent_span_id, request.span_id);
    }
    for prefix in ["redis ", "s3 ", "hook "] {
        let children = named(&spans, prefix);
        assert!(!children.is_empty(), "{prefix}");
        for child in &children {
            assert!(
                descends_from(child, request, &spans),
                "{} is not under the request span",
                child.name
            );
            assert_eq!(child.kind, 3, "{} is a client span", child.name);
        }
    }

    // The hook request carried the trace on, from the hook span.
    let hook_span = &named(&spans, "hook pre-finish")[0];
    let sent = hooks.all();
    assert_eq!(sent.len(), 1);
    let carried = sent[0].header("traceparent").unwrap().to_owned();
    assert_eq!(
        carried,
        format!("00-{trace_hex}-{}-01", hex::encode(&hook_span.span_id))
    );
}

#[tokio::test]
async fn traces_go_out_over_otlp_http_too() {
    let collector = Receiver::start(|_| Answer::ok(json!({}))).await;
    let data = tempfile::tempdir().unwrap();
    let server = Server::spawn(
        &data.path().join("data"),
        &["--otlp-endpoint", &collector.url, "--otlp-protocol", "http"],
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "tusk-e2e"),
        ],
    )
    .await;
    let url = server.create(3).await;
    let id = id_of(&url).to_owned();
    let post_span = || {
        collector
            .all()
            .into_iter()
            .filter(|r| r.path == "/v1/traces")
            .flat_map(|r| {
                assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
                spans_of(ExportTraceServiceRequest::decode(&r.body[..]).unwrap())
            })
            .find(|s| s.name == "tus POST" && text(s, "upload_id").as_deref() == Some(&id))
    };
    wait_until("the POST's span over OTLP/HTTP", || post_span().is_some()).await;
    let exported = collector
        .all()
        .into_iter()
        .find(|r| r.path == "/v1/traces")
        .unwrap();
    let request = ExportTraceServiceRequest::decode(&exported.body[..]).unwrap();
    let service = request.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value);
    assert_eq!(service, Some(AnyValue::StringValue("tusk-e2e".into())));
}
