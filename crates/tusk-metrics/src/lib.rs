//! Every Prometheus metric tusk exports, in one place (docs/metrics.md lists them with their
//! meaning). Units are in the names; labels stay low-cardinality: never an upload id.
//!
//! The metrics live in one process-wide registry, so every crate records into the same ones
//! without passing handles around; [`render`] produces the text exposition for `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Buckets for request-scale durations: 1 ms to about 2 minutes.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// All of tusk's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `tusk_http_requests_total{method,route,status}`.
    pub http_requests: IntCounterVec,
    /// `tusk_http_request_duration_seconds{method,route}`.
    pub http_duration: HistogramVec,
    /// `tusk_received_bytes_total`.
    pub received_bytes: IntCounter,
    /// `tusk_uploads_created_total`.
    pub uploads_created: IntCounter,
    /// `tusk_ietf_draft_requests_total{interop_version}`: requests that spoke the IETF draft.
    pub ietf_requests: IntCounterVec,
    /// `tusk_interim_responses_total{status}`: informational responses sent.
    pub interim_responses: IntCounterVec,
    /// `tusk_uploads_finished_total`.
    pub uploads_finished: IntCounter,
    /// `tusk_uploads_terminated_total`.
    pub uploads_terminated: IntCounter,
    /// `tusk_uploads_expired_total`.
    pub uploads_expired: IntCounter,
    /// `tusk_patches_in_flight`.
    pub patches_in_flight: IntGauge,
    /// `tusk_lock_wait_seconds`.
    pub lock_wait: Histogram,
    /// `tusk_lock_release_requests_total`.
    pub lock_release_requests: IntCounter,
    /// `tusk_lock_releases_honoured_total`.
    pub lock_releases_honoured: IntCounter,
    /// `tusk_locks_lost_total`.
    pub locks_lost: IntCounter,
    /// `tusk_locks_kept_reused_total`.
    pub locks_kept_reused: IntCounter,
    /// `tusk_s3_request_duration_seconds{operation}`.
    pub s3_duration: HistogramVec,
    /// `tusk_s3_errors_total{operation}`.
    pub s3_errors: IntCounterVec,
    /// `tusk_redis_request_duration_seconds{operation}`.
    pub redis_duration: HistogramVec,
    /// `tusk_tail_appended_bytes_total`.
    pub tail_appended_bytes: IntCounter,
    /// `tusk_tail_cache_hits_total`.
    pub tail_cache_hits: IntCounter,
    /// `tusk_parts_streamed_total`.
    pub parts_streamed: IntCounter,
    /// `tusk_parts_stream_abandoned_total`.
    pub parts_stream_abandoned: IntCounter,
    /// `tusk_checksum_mismatches_total`.
    pub checksum_mismatches: IntCounter,
    /// `tusk_ready`.
    pub ready: IntGauge,
    /// `tusk_hook_duration_seconds{hook}`.
    pub hook_duration: HistogramVec,
    /// `tusk_hook_failures_total{hook}`.
    pub hook_failures: IntCounterVec,
    /// `tusk_hooks_dropped_total{hook}`.
    pub hooks_dropped: IntCounterVec,
    /// `tusk_hook_refusals_total{hook}`.
    pub hook_refusals: IntCounterVec,
    /// `tusk_hook_access_cache_hits_total`.
    pub hook_access_cache_hits: IntCounter,
    /// `tusk_known_upload_hits_total`.
    pub known_upload_hits: IntCounter,
    /// `tusk_part_buffer_limit_bytes`.
    pub part_buffer_limit: IntGauge,
    /// `tusk_part_buffer_reserved_bytes`.
    pub part_buffer_reserved: IntGauge,
    /// `tusk_part_buffer_wait_seconds`.
    pub part_buffer_wait: Histogram,
    /// `tusk_part_buffer_waiting`.
    pub part_buffer_waiting: IntGauge,
    /// `tusk_part_buffer_wait_timeouts_total`.
    pub part_buffer_wait_timeouts: IntCounter,
    /// `tusk_part_wait_timeouts_total`.
    pub part_wait_timeouts: IntCounter,
    /// `tusk_redis_replication_timeouts_total`.
    pub redis_replication_timeouts: IntCounter,
    /// `tusk_uploads_recovered_total`.
    pub uploads_recovered: IntCounter,
    /// `tusk_objects_missing_total`.
    pub objects_missing: IntCounter,
    /// `tusk_uploads_indexed`.
    pub uploads_indexed: IntGauge,
    /// `tusk_redis_memory_used_ratio`.
    pub redis_memory_used_ratio: Gauge,
    /// `tusk_uploads_refused_total{reason}`.
    pub uploads_refused: IntCounterVec,
    /// `tusk_tls_cert_expiry_timestamp_seconds`.
    pub tls_cert_expiry: IntGauge,
    /// `tusk_tls_reloads_total{result}`.
    pub tls_reloads: IntCounterVec,
}

/// Register `metric` (just built as `name`) in `registry`. Names are constants below,
/// registered once: a failure is a bug caught by the unit test, never a runtime condition.
fn add<C>(registry: &Registry, name: &str, metric: prometheus::Result<C>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.unwrap_or_else(|e| panic!("metric {name}: {e}"));
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        panic!("metric {name}: {e}");
    }
    metric
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    add(r, name, IntCounter::new(name, help))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    add(r, name, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    add(r, name, IntGauge::new(name, help))
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    add(r, name, Gauge::new(name, help))
}

/// A histogram of durations in seconds ([`SECONDS`] buckets).
fn seconds(r: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(SECONDS.to_vec());
    add(r, name, Histogram::with_opts(opts))
}

/// Durations in seconds ([`SECONDS`] buckets), by `labels`.
fn seconds_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(SECONDS.to_vec());
    add(r, name, HistogramVec::new(opts, labels))
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            http_requests: counter_vec(
                r,
                "tusk_http_requests_total",
                "HTTP requests answered, by method, route and status.",
                &["method", "route", "status"],
            ),
            http_duration: seconds_vec(
                r,
                "tusk_http_request_duration_seconds",
                "Time from a request's arrival to its response head, by method and route.",
                &["method", "route"],
            ),
            received_bytes: counter(
                r,
                "tusk_received_bytes_total",
                "Upload body bytes received from clients.",
            ),
            uploads_created: counter(r, "tusk_uploads_created_total", "Uploads created."),
            ietf_requests: counter_vec(
                r,
                "tusk_ietf_draft_requests_total",
                "Requests that spoke the IETF resumable upload draft, by interop version.",
                &["interop_version"],
            ),
            interim_responses: counter_vec(
                r,
                "tusk_interim_responses_total",
                "Informational responses (104 Upload Resumption Supported) written to clients.",
                &["status"],
            ),
            uploads_finished: counter(
                r,
                "tusk_uploads_finished_total",
                "Uploads that received their last byte (final uploads: assembled).",
            ),
            uploads_terminated: counter(
                r,
                "tusk_uploads_terminated_total",
                "Uploads deleted by clients (termination).",
            ),
            uploads_expired: counter(
                r,
                "tusk_uploads_expired_total",
                "Expired uploads removed by the reaper.",
            ),
            patches_in_flight: gauge(
                r,
                "tusk_patches_in_flight",
                "PATCH (and POST with body) requests whose body is being received.",
            ),
            lock_wait: seconds(
                r,
                "tusk_lock_wait_seconds",
                "Time requests waited for an upload's lock (also when they gave up with 423).",
            ),
            lock_release_requests: counter(
                r,
                "tusk_lock_release_requests_total",
                "Requests that found an upload locked and asked the holder to let go.",
            ),
            lock_releases_honoured: counter(
                r,
                "tusk_lock_releases_honoured_total",
                "PATCHes that stopped, committed and answered because another request asked for the lock.",
            ),
            locks_lost: counter(
                r,
                "tusk_locks_lost_total",
                "Requests whose upload lock was lost (lease expired, newer holder) and that committed nothing more.",
            ),
            locks_kept_reused: counter(
                r,
                "tusk_locks_kept_reused_total",
                "Requests that took an upload's lock their node kept from its previous request on it, without a lock service round trip.",
            ),
            s3_duration: seconds_vec(
                r,
                "tusk_s3_request_duration_seconds",
                "Duration of S3 calls (with the SDK's retries), by operation.",
                &["operation"],
            ),
            s3_errors: counter_vec(
                r,
                "tusk_s3_errors_total",
                "S3 calls that failed, by operation.",
                &["operation"],
            ),
            redis_duration: seconds_vec(
                r,
                "tusk_redis_request_duration_seconds",
                "Duration of Redis calls (one script or command each), by operation.",
                &["operation"],
            ),
            tail_appended_bytes: counter(
                r,
                "tusk_tail_appended_bytes_total",
                "Bytes appended to upload tails in Redis (distributed mode).",
            ),
            tail_cache_hits: counter(
                r,
                "tusk_tail_cache_hits_total",
                "PATCHes that found their upload's tail in this node's memory (written by this node under the same lock) and did not read it back from the state store.",
            ),
            parts_streamed: counter(
                r,
                "tusk_parts_streamed_total",
                "Parts sent to object storage while the PATCHes that filled them arrived, and stored that way (distributed mode, unsigned part bodies).",
            ),
            parts_stream_abandoned: counter(
                r,
                "tusk_parts_stream_abandoned_total",
                "Parts streamed while they filled whose stream was given up (it failed, fell behind, or the part's bytes were read back from Redis); the part was then sent whole.",
            ),
            checksum_mismatches: counter(
                r,
                "tusk_checksum_mismatches_total",
                "Bodies refused because they did not match their Upload-Checksum.",
            ),
            ready: gauge(
                r,
                "tusk_ready",
                "1 while the node can serve (not draining, its services answer), else 0; refreshed every 10 s and on each /readyz.",
            ),
            hook_duration: seconds_vec(
                r,
                "tusk_hook_duration_seconds",
                "Duration of hook calls (each attempt), by hook type.",
                &["hook"],
            ),
            hook_failures: counter_vec(
                r,
                "tusk_hook_failures_total",
                "Hook calls that failed (unreachable, timed out, non-2xx or unreadable answer), each attempt, by hook type.",
                &["hook"],
            ),
            hook_refusals: counter_vec(
                r,
                "tusk_hook_refusals_total",
                "Requests a blocking hook refused (pre-access), by hook type.",
                &["hook"],
            ),
            hook_access_cache_hits: counter(
                r,
                "tusk_hook_access_cache_hits_total",
                "Requests allowed from the pre-access cache (hooks_access_cache) without asking the hook.",
            ),
            known_upload_hits: counter(
                r,
                "tusk_known_upload_hits_total",
                "Requests on an upload this node saw exist seconds ago, locked without reading the store first.",
            ),
            hooks_dropped: counter_vec(
                r,
                "tusk_hooks_dropped_total",
                "Background (post-*) hooks dropped unsent because 10,000 were already waiting, by hook type.",
                &["hook"],
            ),
            part_buffer_limit: gauge(
                r,
                "tusk_part_buffer_limit_bytes",
                "The node's part buffer budget (--max-buffered-bytes; distributed mode).",
            ),
            part_buffer_reserved: gauge(
                r,
                "tusk_part_buffer_reserved_bytes",
                "Bytes of the part buffer budget reserved by PATCHes right now.",
            ),
            part_buffer_wait: seconds(
                r,
                "tusk_part_buffer_wait_seconds",
                "Time PATCHes waited for room in the node's part buffer budget (reserved as bytes arrive).",
            ),
            part_buffer_waiting: gauge(
                r,
                "tusk_part_buffer_waiting",
                "PATCHes waiting for room in the node's part buffer budget right now.",
            ),
            part_buffer_wait_timeouts: counter(
                r,
                "tusk_part_buffer_wait_timeouts_total",
                "PATCHes that gave up waiting for part buffer budget: they kept what arrived and answered 503.",
            ),
            part_wait_timeouts: counter(
                r,
                "tusk_part_wait_timeouts_total",
                "PATCHes that gave up waiting for object storage to store a part: they kept the parts stored before it and answered 503.",
            ),
            redis_replication_timeouts: counter(
                r,
                "tusk_redis_replication_timeouts_total",
                "State changes Redis's replicas did not confirm within redis_wait_timeout (with redis_wait_replicas): the request answered 503 and the change is not acknowledged.",
            ),
            uploads_recovered: counter(
                r,
                "tusk_uploads_recovered_total",
                "Uploads the state store reported unfinished (state lost, as in a Redis failover) whose assembled object was found in object storage: recorded finished instead of resumed or reaped.",
            ),
            objects_missing: counter(
                r,
                "tusk_objects_missing_total",
                "Finished uploads whose object was missing from object storage when read: data lost outside tusk (deleted by hand or by a bucket rule).",
            ),
            uploads_indexed: gauge(
                r,
                "tusk_uploads_indexed",
                "Uploads in the expiry index (unfinished ones, and finished ones kept for a retention time) at this node's last upload creation; max_uploads bounds it.",
            ),
            redis_memory_used_ratio: float_gauge(
                r,
                "tusk_redis_memory_used_ratio",
                "Redis used_memory over maxmemory, read at most once a second when uploads are created; redis_memory_high_water bounds it for new uploads.",
            ),
            uploads_refused: counter_vec(
                r,
                "tusk_uploads_refused_total",
                "New uploads refused with 503 because a limit was reached: max_uploads or redis_memory.",
                &["reason"],
            ),
            tls_cert_expiry: gauge(
                r,
                "tusk_tls_cert_expiry_timestamp_seconds",
                "When the listener's TLS certificate in use expires (Unix seconds); 0 when the listener has no TLS.",
            ),
            tls_reloads: counter_vec(
                r,
                "tusk_tls_reloads_total",
                "Reloads of the listener's TLS certificate and key (files changed, or SIGHUP), by result (ok, failed: the previous pair stays in use).",
                &["result"],
            ),
            registry,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    let families = metrics().registry.gather();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        return format!("# encoding metrics failed: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders_with_units_in_names() {
        metrics().uploads_created.inc();
        metrics().s3_errors.with_label_values(&["UploadPart"]).inc();
        let text = render();
        for name in [
            "tusk_uploads_created_total",
            "tusk_s3_errors_total{operation=\"UploadPart\"}",
            "tusk_patches_in_flight",
            "tusk_checksum_mismatches_total",
            "tusk_part_buffer_limit_bytes",
            "tusk_part_buffer_reserved_bytes",
            "tusk_part_buffer_wait_seconds_count",
            "tusk_part_buffer_waiting",
            "tusk_part_buffer_wait_timeouts_total",
            "tusk_part_wait_timeouts_total",
            "tusk_uploads_recovered_total",
            "tusk_objects_missing_total",
            "tusk_redis_replication_timeouts_total",
            "tusk_uploads_indexed",
            "tusk_redis_memory_used_ratio",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
