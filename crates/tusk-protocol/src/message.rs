use crate::BodyStream;

/// The request methods the engine distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// OPTIONS
    Options,
    /// HEAD
    Head,
    /// GET
    Get,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// Anything else.
    Other(String),
}

impl Method {
    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Other(name) => name,
        }
    }

    /// Parse a method name (case-sensitive, as HTTP methods are).
    pub fn parse(name: &str) -> Self {
        match name {
            "OPTIONS" => Method::Options,
            "HEAD" => Method::Head,
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_owned()),
        }
    }
}

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The upload collection (the base path): OPTIONS and POST.
    Collection,
    /// One upload, by the raw (not yet validated) id from the path.
    Upload(String),
}

/// Request headers with case-insensitive names. Values that were not valid text arrive as
/// lossy text, which then fails validation with a 400.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Empty headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a header.
    pub fn insert(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Builder form of [`Headers::insert`].
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Every header, names in lower case, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many times `name` appears.
    pub fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request as the engine sees it.
pub struct TusRequest {
    /// The method, after `X-HTTP-Method-Override`.
    pub method: Method,
    /// What the path addresses.
    pub target: Target,
    /// Request headers.
    pub headers: Headers,
    /// The body, for POST and PATCH.
    pub body: Option<BodyStream>,
    /// The public URL of the collection, ending in `/`; `Location` is this plus the id.
    pub location_base: String,
    /// The request target as sent (path and query), for hooks.
    pub uri: String,
    /// The client's address and port, for hooks.
    pub remote_addr: String,
    /// Sends informational (1xx) responses ahead of the final one, where the connection can
    /// carry them (see [`Interim`]).
    pub interim: Option<std::sync::Arc<dyn Interim>>,
}

/// A way to send an informational response (such as the IETF draft's `104 Upload Resumption
/// Supported`) before the final response of the same request.
pub trait Interim: Send + Sync {
    /// Queue the interim response `status` with `headers`; it goes out before the final
    /// response. `false` when this connection cannot carry one (HTTP/2, an HTTP/1.0 client, a
    /// response stream tusk cannot follow): the request then goes on without it.
    fn send(&self, status: u16, headers: &[(&'static str, String)]) -> bool;
}

impl std::fmt::Debug for TusRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusRequest")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &self.headers)
            .field("body", &self.body.is_some())
            .field("location_base", &self.location_base)
            .field("uri", &self.uri)
            .field("remote_addr", &self.remote_addr)
            .field("interim", &self.interim.is_some())
            .finish()
    }
}

/// A response: status, headers and a short plain-text body, or for a download a streamed body.
pub struct TusResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// Plain-text body (empty for successes).
    pub body: String,
    /// Headers named at run time (by a hook): checked by the HTTP adapter, which drops any
    /// that is not a valid header.
    pub extra_headers: Vec<(String, String)>,
    /// A download: its exact length and its bytes, streamed from the store.
    pub stream: Option<(u64, tusk_core::ByteStream)>,
}

impl std::fmt::Debug for TusResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("extra_headers", &self.extra_headers)
            .field("stream", &self.stream.as_ref().map(|(len, _)| len))
            .finish()
    }
}

impl TusResponse {
    /// A response with no headers and no body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            extra_headers: Vec::new(),
            stream: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
