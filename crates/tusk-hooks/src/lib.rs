//! HTTP hooks: each hook request is POSTed as JSON, in tusd's shape, to one receiver URL, and
//! its JSON answer is read back. One attempt per call; the engine applies timeout and retries.
//!
//! The request carries the trace context of the `hook` span (W3C `traceparent`), or, when
//! tusk exports no traces, the client's own `traceparent`, so a receiver joins the trace.

use std::collections::HashMap;

use async_trait::async_trait;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tusk_protocol::{HookError, HookRequest, HookResponse, HookSender};

/// Largest hook answer read; a receiver sending more is broken, not chatty.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A hook URL that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HookSetupError {
    /// Not an http(s) URL.
    #[error("hooks URL must be an http:// or https:// URL")]
    BadUrl,
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the hooks HTTP client: {0}")]
    Client(String),
}

/// Sends hooks to one HTTP(S) endpoint.
pub struct HttpHookSender {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl std::fmt::Debug for HttpHookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token: never printed.
        f.debug_struct("HttpHookSender").finish_non_exhaustive()
    }
}

impl HttpHookSender {
    /// Whether `url` can be a hooks URL (checked at start-up, before any client is built).
    pub fn check_url(url: &str) -> Result<reqwest::Url, HookSetupError> {
        let url = reqwest::Url::parse(url).map_err(|_| HookSetupError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(HookSetupError::BadUrl);
        }
        Ok(url)
    }

    /// A sender POSTing to `url`.
    pub fn new(url: &str) -> Result<Self, HookSetupError> {
        let url = Self::check_url(url)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("tusk/", env!("CARGO_PKG_VERSION")))
            // A hook carries the client's request headers, credentials included: a receiver's
            // redirect is a failure, never followed to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HookSetupError::Client(e.without_url().to_string()))?;
        Ok(Self { client, url })
    }
}

#[async_trait]
impl HookSender for HttpHookSender {
    async fn send(&self, request: &HookRequest) -> Result<HookResponse, HookError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| HookError::InvalidResponse(format!("cannot encode the request: {e}")))?;
        let mut post = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in trace_headers(request.event.http_request.traceparent.as_deref()) {
            post = post.header(name, value);
        }
        let mut resp = post
            .send()
            .await
            .map_err(|e| HookError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status();
        let mut answer = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| HookError::Unreachable(e.without_url().to_string()))?
        {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(HookError::InvalidResponse(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            answer.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(HookError::Status(status.as_u16()));
        }
        parse_answer(&answer)
    }
}

/// A receiver's answer; an empty body is an answer with nothing to say.
fn parse_answer(body: &[u8]) -> Result<HookResponse, HookError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HookResponse::default());
    }
    serde_json::from_slice(body).map_err(|e| HookError::InvalidResponse(e.to_string()))
}

/// The W3C trace headers for a hook request: the current span's context when tusk traces,
/// else the client's `traceparent` unchanged.
fn trace_headers(client_traceparent: Option<&str>) -> HashMap<String, String> {
    let mut headers = HeaderMap::default();
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    }
    if !headers.0.contains_key("traceparent")
        && let Some(parent) = client_traceparent
    {
        headers
            .0
            .insert("traceparent".to_owned(), parent.to_owned());
    }
    headers.0
}

#[derive(Default)]
struct HeaderMap(HashMap<String, String>);

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(HttpHookSender::new("http://127.0.0.1:8000/hooks").is_ok());
        assert!(HttpHookSender::new("https://hooks.example.com/").is_ok());
        for bad in ["ftp://x/", "127.0.0.1:8000", "", "http://"] {
            assert!(HttpHookSender::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_parse_and_empty_means_nothing_to_say() {
        assert_eq!(parse_answer(b"").unwrap(), HookResponse::default());
        assert_eq!(parse_answer(b" \n").unwrap(), HookResponse::default());
        assert!(
            parse_answer(br#"{"RejectUpload":true}"#)
                .unwrap()
                .reject_upload
        );
        assert!(matches!(
            parse_answer(b"<html>"),
            Err(HookError::InvalidResponse(_))
        ));
    }

    #[test]
    fn the_clients_traceparent_passes_through_without_tracing() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = trace_headers(Some(parent));
        assert_eq!(headers.get("traceparent").map(String::as_str), Some(parent));
        assert!(trace_headers(None).is_empty());
    }
}
