//! `tusk serve`: wire the backends, run the HTTP server, shut down in order.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use tusk_local::{LocalStore, ProcessLocker};
use tusk_protocol::Engine;

use crate::config::ServeConfig;
use crate::units::LogFormat;

/// Structured logs on stderr; verbosity from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Run until SIGTERM or SIGINT, then: stop accepting, let in-flight PATCHes commit what they
/// have, and exit within the shutdown timeout.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let store = LocalStore::open(&config.data_dir)
        .with_context(|| format!("cannot use data directory {}", config.data_dir.display()))?;
    let engine = Arc::new(Engine::new(
        Arc::new(store),
        Arc::new(ProcessLocker::new()),
        config.engine.clone(),
    ));
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let server = tusk_http::serve(
        engine.clone(),
        config.http.clone(),
        listener,
        config.shutdown_timeout,
    )?;
    // The one line on stdout: scripts and tests read the address from it (useful with port 0).
    println!("tusk listening on http://{addr}{}", config.http.base_path);
    tracing::info!(%addr, base_path = %config.http.base_path, data_dir = %config.data_dir.display(), "tusk started (local mode)");

    let handle = server.handle();
    let shutdown = engine.shutdown_token();
    actix_web::rt::spawn(async move {
        if let Err(err) = wait_for_signal().await {
            tracing::error!("cannot listen for signals: {err}");
            return;
        }
        tracing::info!("shutdown requested: no new connections, committing in-flight uploads");
        let stop = handle.stop(true);
        shutdown.cancel();
        stop.await;
    });
    server.await.context("HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
