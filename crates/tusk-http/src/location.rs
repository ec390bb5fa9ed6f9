//! Where the upload collection is, as the client sees it: used to build `Location`.

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};

use crate::HttpConfig;

/// The public URL of the collection, ending in `/`.
///
/// `base_url` wins; behind a trusted proxy the forwarded host and scheme are used; otherwise the
/// request's own `Host`, with `https` on a TLS listener. Without any host the URL is path-only, which clients resolve against
/// the URL they used.
pub(crate) fn collection_url(req: &HttpRequest, config: &HttpConfig) -> String {
    if let Some(base) = &config.base_url {
        return format!("{base}{}", config.base_path);
    }
    let forwarded = if config.behind_proxy {
        forwarded(req.headers())
    } else {
        (None, None)
    };
    let own_host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .filter(|h| valid_host(h));
    match forwarded.1.as_deref().or(own_host) {
        Some(host) => {
            // The connection's own scheme unless a trusted proxy says what the client used.
            let own = if req.app_config().secure() {
                "https"
            } else {
                "http"
            };
            let scheme = forwarded.0.as_deref().unwrap_or(own);
            format!("{scheme}://{host}{}", config.base_path)
        }
        None => config.base_path.clone(),
    }
}

/// The client's address for hooks: behind a trusted proxy the address that proxy saw (the
/// last `X-Forwarded-For` entry: earlier ones are whatever the client sent), else the peer's
/// address and port.
pub(crate) fn client_addr(req: &HttpRequest, config: &HttpConfig) -> String {
    if config.behind_proxy
        && let Some(last) = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .last()
    {
        return last.to_owned();
    }
    req.peer_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// `(scheme, host)` from `Forwarded` (RFC 7239), else `X-Forwarded-Proto` / `X-Forwarded-Host`.
/// Values that are not a plain scheme or host are ignored.
fn forwarded(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let mut proto = None;
    let mut host = None;
    if let Some(value) = text("forwarded") {
        // The first element is the one the outermost proxy added.
        let first = value.split(',').next().unwrap_or_default();
        for pair in first.split(';') {
            let Some((key, val)) = pair.trim().split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = Some(val.to_ascii_lowercase()),
                "host" => host = Some(val.to_owned()),
                _ => {}
            }
        }
    }
    let first = |v: &str| v.split(',').next().unwrap_or_default().trim().to_owned();
    proto = proto.or_else(|| text("x-forwarded-proto").map(|v| first(v).to_ascii_lowercase()));
    host = host.or_else(|| text("x-forwarded-host").map(first));
    (
        proto.filter(|p| p == "http" || p == "https"),
        host.filter(|h| valid_host(h)),
    )
}

/// A host (with optional port) made only of characters a host can have: nothing that could
/// smuggle a path, credentials or a header into the URL.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CorsOrigins;
    use actix_web::test::TestRequest;

    fn config(behind_proxy: bool, base_url: Option<&str>) -> HttpConfig {
        HttpConfig {
            base_path: "/files/".into(),
            behind_proxy,
            base_url: base_url.map(str::to_owned),
            cors: CorsOrigins::Any,
            metrics_on_main: true,
        }
    }

    #[test]
    fn client_address_is_what_the_trusted_proxy_saw() {
        let req = || {
            TestRequest::default()
                .peer_addr("10.0.0.5:40000".parse().unwrap())
                .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.7"))
                .to_http_request()
        };
        assert_eq!(client_addr(&req(), &config(true, None)), "203.0.113.7");
        assert_eq!(client_addr(&req(), &config(false, None)), "10.0.0.5:40000");
        let direct = TestRequest::default()
            .peer_addr("10.0.0.5:40000".parse().unwrap())
            .to_http_request();
        assert_eq!(client_addr(&direct, &config(true, None)), "10.0.0.5:40000");
    }

    #[test]
    fn location_sources_in_order_of_trust() {
        let proxied = || {
            TestRequest::default()
                .insert_header(("Host", "internal:1080"))
                .insert_header(("X-Forwarded-Host", "up.example.com"))
                .insert_header(("X-Forwarded-Proto", "https"))
                .to_http_request()
        };
        let cases = [
            (
                proxied(),
                config(false, None),
                "http://internal:1080/files/",
            ),
            (
                proxied(),
                config(true, None),
                "https://up.example.com/files/",
            ),
            (
                proxied(),
                config(true, Some("https://cdn.example/api")),
                "https://cdn.example/api/files/",
            ),
            (
                TestRequest::default()
                    .insert_header(("Host", "internal"))
                    .insert_header((
                        "Forwarded",
                        "for=1.2.3.4;proto=https;host=\"f.example\", for=5.6.7.8",
                    ))
                    .insert_header(("X-Forwarded-Host", "ignored.example"))
                    .to_http_request(),
                config(true, None),
                "https://f.example/files/",
            ),
            (
                TestRequest::default()
                    .insert_header(("Host", "internal"))
                    .insert_header(("X-Forwarded-Host", "evil.example/path?x"))
                    .insert_header(("X-Forwarded-Proto", "javascript"))
                    .to_http_request(),
                config(true, None),
                "http://internal/files/",
            ),
            (
                TestRequest::default().to_http_request(),
                config(false, None),
                "/files/",
            ),
        ];
        for (req, cfg, want) in cases {
            assert_eq!(collection_url(&req, &cfg), want);
        }
    }
}
