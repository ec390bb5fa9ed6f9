//! The actix-web adapter: routes requests under the base path to the tus [`Engine`], streams
//! bodies into it with backpressure, builds `Location` URLs (proxy-aware), and adds CORS headers
//! to every response, errors included.

mod conn;
mod cors;
mod interim;
mod location;
mod routes;
mod tls;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use tokio::net::TcpStream;
use tusk_protocol::Engine;

use conn::{Socket, WatchedIo};

pub use cors::CorsOrigins;
pub use tls::{TlsConfig, TlsError, TlsSettings, TlsVersion};

/// A TLS handshake that takes longer is dropped: a client that opens connections and never
/// finishes its handshake must not hold them.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 flow-control windows: how much one upload stream, and one connection, may send before
/// the server has read it. Large enough that a stream is not throttled on a long fat link
/// (docs/benchmarks.md, "HTTPS"); small enough that what sits in them stays a few MiB per
/// connection.
const H2_STREAM_WINDOW: u32 = 8 << 20;
const H2_CONNECTION_WINDOW: u32 = 8 << 20;

/// How the HTTP layer presents the engine.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Path of the upload collection; starts and ends with `/` (e.g. `/files/`).
    pub base_path: String,
    /// Trust `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` when building URLs.
    pub behind_proxy: bool,
    /// Public origin (and optional path prefix) to build URLs from, without trailing `/`;
    /// overrides the request's host.
    pub base_url: Option<String>,
    /// Which browser origins may use the server.
    pub cors: CorsOrigins,
    /// Serve `/metrics` on this listener (else on its own, see [`serve_metrics`]).
    pub metrics_on_main: bool,
}

/// The upload collection's path unless configured.
pub const DEFAULT_BASE_PATH: &str = "/files/";

/// A setting of the HTTP layer that cannot work: its TOML key (the binary adds the flag and
/// environment variable) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct HttpConfigError {
    /// The setting's TOML key.
    pub key: &'static str,
    /// What is wrong and the fix.
    pub message: String,
}

impl HttpConfig {
    /// The HTTP layer's settings as an operator wrote them, checked and normalised: the base
    /// path gets exactly one trailing `/`, the base URL none; `None` takes the defaults
    /// ([`DEFAULT_BASE_PATH`], any CORS origin).
    pub fn from_settings(
        base_path: Option<String>,
        behind_proxy: bool,
        base_url: Option<String>,
        cors_origins: Option<Vec<String>>,
        metrics_on_main: bool,
    ) -> Result<Self, HttpConfigError> {
        let invalid = |key, message: String| HttpConfigError { key, message };
        let base_path = base_path.unwrap_or_else(|| DEFAULT_BASE_PATH.to_owned());
        if !base_path.starts_with('/')
            || base_path.contains(['?', '#', ' ', '%'])
            || base_path.contains("//")
        {
            return Err(invalid(
                "base_path",
                format!("{base_path:?} must be a plain absolute URL path such as /files/"),
            ));
        }
        let base_path = format!("{}/", base_path.trim_end_matches('/'));
        let base_url = match base_url {
            None => None,
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                let rest = lower
                    .strip_prefix("https://")
                    .or_else(|| lower.strip_prefix("http://"));
                match rest {
                    Some(rest)
                        if !rest.is_empty()
                            && !rest.starts_with('/')
                            && !url.contains(['?', '#', ' ']) =>
                    {
                        Some(url.trim_end_matches('/').to_owned())
                    }
                    _ => {
                        return Err(invalid(
                            "base_url",
                            format!(
                                "{url:?} must be an http:// or https:// URL without query or fragment, such as https://uploads.example.com"
                            ),
                        ));
                    }
                }
            }
        };
        let cors = match cors_origins {
            None => CorsOrigins::Any,
            Some(list) if list.iter().any(|o| o == "*") => {
                if list.len() > 1 {
                    return Err(invalid(
                        "cors_origins",
                        "\"*\" cannot be combined with other origins".to_owned(),
                    ));
                }
                CorsOrigins::Any
            }
            Some(list) => {
                for origin in &list {
                    let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                        && !origin
                            .trim_end_matches('/')
                            .split_once("://")
                            .is_some_and(|(_, h)| h.is_empty() || h.contains('/'));
                    if !ok || origin.ends_with('/') {
                        return Err(invalid(
                            "cors_origins",
                            format!(
                                "{origin:?} is not an origin; use scheme://host[:port] such as https://app.example.com, or *"
                            ),
                        ));
                    }
                }
                CorsOrigins::List(list)
            }
        };
        Ok(Self {
            base_path,
            behind_proxy,
            base_url,
            cors,
            metrics_on_main,
        })
    }
}

/// A listener that serves only `/metrics` (for `--metrics-listen`).
pub fn serve_metrics(listener: std::net::TcpListener) -> std::io::Result<Server> {
    let server = HttpServer::new(|| {
        App::new()
            .route(
                "/metrics",
                web::get().to(|| async { routes::metrics_response() }),
            )
            .default_service(web::to(|| async {
                actix_web::HttpResponse::NotFound().finish()
            }))
    })
    .disable_signals()
    .workers(1)
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

pub(crate) struct AppState {
    engine: Arc<Engine>,
    config: HttpConfig,
}

/// Build the HTTP server on an already bound listener; with `tls`, it speaks HTTPS (HTTP/2 and
/// HTTP/1.1 by ALPN). It does not install signal handlers: the caller stops it through
/// [`Server::handle`] after cancelling the engine's shutdown token.
///
/// Built from actix-server and actix-http rather than `HttpServer`, for the socket wrapper that
/// keeps a broken connection's last bytes and for connections that stay open until their
/// requests' commits end (see `conn`), which a graceful stop then waits for.
pub fn serve(
    engine: Arc<Engine>,
    config: HttpConfig,
    listener: std::net::TcpListener,
    shutdown_timeout: Duration,
    tls: Option<Arc<TlsSettings>>,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let state = web::Data::new(AppState { engine, config });
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let server = actix_server::Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout.as_secs().max(1))
        .listen("tusk", listener, move || {
            let app = App::new()
                .app_data(state.clone())
                .default_service(web::to(routes::handle));
            let secure = tls.is_some();
            let mut builder =
                actix_http::HttpService::<WatchedIo, _, actix_web::body::BoxBody>::build();
            if secure {
                builder = builder.secure();
            }
            let http = builder
                // Slow mobile links may take a while to deliver request headers.
                .client_request_timeout(Duration::from_secs(30))
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(addr)
                .h2_initial_window_size(H2_STREAM_WINDOW)
                .h2_initial_connection_window_size(H2_CONNECTION_WINDOW)
                .on_connect_ext(|io: &WatchedIo, ext: &mut actix_http::Extensions| {
                    ext.insert(io.watch());
                })
                .finish(actix_service::map_config(app, move |()| {
                    // The host is only a fallback for requests without `Host`; URLs are built
                    // from the request (see `location`), with https on a TLS listener.
                    actix_web::dev::AppConfig::__priv_test_new(secure, addr.to_string(), addr)
                }));
            let acceptor = tls
                .as_ref()
                .map(|tls| tokio_rustls::TlsAcceptor::from(tls.server_config()));
            actix_service::fn_factory(move || {
                let handler = actix_service::ServiceFactory::new_service(&http, ());
                let acceptor = acceptor.clone();
                async move {
                    let handler = std::rc::Rc::new(handler.await?);
                    Ok::<_, ()>(actix_service::fn_service(move |io: TcpStream| {
                        let handler = handler.clone();
                        let acceptor = acceptor.clone();
                        async move {
                            let peer = io.peer_addr().ok();
                            let (io, protocol) = match acceptor {
                                None => (Socket::Plain(io), actix_http::Protocol::Http1),
                                Some(acceptor) => {
                                    let handshake = tokio::time::timeout(
                                        TLS_HANDSHAKE_TIMEOUT,
                                        acceptor.accept(io),
                                    );
                                    let stream = match handshake.await {
                                        Ok(Ok(stream)) => stream,
                                        Ok(Err(error)) => {
                                            tracing::debug!(?peer, %error, "TLS handshake failed");
                                            return Ok(());
                                        }
                                        Err(_) => {
                                            tracing::debug!(?peer, "TLS handshake timed out");
                                            return Ok(());
                                        }
                                    };
                                    let protocol = match stream.get_ref().1.alpn_protocol() {
                                        Some(b"h2") => actix_http::Protocol::Http2,
                                        _ => actix_http::Protocol::Http1,
                                    };
                                    (Socket::Tls(Box::new(stream)), protocol)
                                }
                            };
                            let http1 = protocol == actix_http::Protocol::Http1;
                            let io = WatchedIo::new(io, http1);
                            let watch = io.watch();
                            let served =
                                actix_service::Service::call(&*handler, (io, protocol, peer)).await;
                            // The connection counts as open (graceful stop waits for it)
                            // until the commits of its requests have ended.
                            watch.tasks_finished().await;
                            served
                        }
                    }))
                }
            })
        })?
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(
        base_path: Option<&str>,
        base_url: Option<&str>,
        cors: Option<&[&str]>,
    ) -> Result<HttpConfig, HttpConfigError> {
        HttpConfig::from_settings(
            base_path.map(str::to_owned),
            false,
            base_url.map(str::to_owned),
            cors.map(|list| list.iter().map(|o| (*o).to_owned()).collect()),
            true,
        )
    }

    #[test]
    fn settings_are_normalised_and_bad_ones_name_their_key() {
        let c = from(None, None, None).unwrap();
        assert_eq!(
            (c.base_path.as_str(), c.cors),
            (DEFAULT_BASE_PATH, CorsOrigins::Any)
        );
        let c = from(
            Some("/up//"),
            Some("https://u.example/api/"),
            Some(&["https://a.example"]),
        );
        assert!(c.is_err(), "a path with // is refused");
        let c = from(
            Some("/up"),
            Some("https://u.example/api/"),
            Some(&["https://a.example"]),
        )
        .unwrap();
        assert_eq!(c.base_path, "/up/");
        assert_eq!(c.base_url.as_deref(), Some("https://u.example/api"));
        assert_eq!(
            c.cors,
            CorsOrigins::List(vec!["https://a.example".to_owned()])
        );
        for (result, key) in [
            (from(Some("files"), None, None), "base_path"),
            (from(None, Some("ftp://x"), None), "base_url"),
            (
                from(None, None, Some(&["*", "https://a.example"])),
                "cors_origins",
            ),
            (
                from(None, None, Some(&["https://a.example/"])),
                "cors_origins",
            ),
        ] {
            assert_eq!(result.unwrap_err().key, key);
        }
    }
}
