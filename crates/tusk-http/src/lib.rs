//! The actix-web adapter: routes requests under the base path to the tus [`Engine`], streams
//! bodies into it with backpressure, builds `Location` URLs (proxy-aware), and adds CORS headers
//! to every response, errors included.

mod conn;
mod cors;
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
const H2_STREAM_WINDOW: u32 = 4 << 20;
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
                            let io = WatchedIo::new(io);
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
