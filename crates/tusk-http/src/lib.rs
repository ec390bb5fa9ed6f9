//! The actix-web adapter: routes requests under the base path to the tus [`Engine`], streams
//! bodies into it with backpressure, builds `Location` URLs (proxy-aware), and adds CORS headers
//! to every response, errors included.

mod cors;
mod location;
mod routes;
mod trace;

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use tusk_protocol::Engine;

pub use cors::CorsOrigins;

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

/// Build the HTTP server on an already bound listener. It does not install signal handlers:
/// the caller stops it through [`Server::handle`] after cancelling the engine's shutdown token.
pub fn serve(
    engine: Arc<Engine>,
    config: HttpConfig,
    listener: std::net::TcpListener,
    shutdown_timeout: Duration,
) -> std::io::Result<Server> {
    let state = web::Data::new(AppState { engine, config });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(routes::handle))
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    // Slow mobile links may take a while to deliver request headers.
    .client_request_timeout(Duration::from_secs(30))
    .listen(listener)?
    .run();
    Ok(server)
}
