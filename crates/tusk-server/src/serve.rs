//! `tusk serve`: wire the backends, run the HTTP server, shut down in order.

use std::sync::Arc;

use anyhow::Context;
use tusk_core::{Locker, Storage as EngineStorage};
use tusk_local::{LocalStore, ProcessLocker};
use tusk_multipart::{BufferBudget, MultipartStore};
use tusk_protocol::{Engine, Hooks};

use crate::config::{Distributed, ServeConfig, Storage};

/// How often readiness is re-checked for the `tusk_ready` gauge.
const READY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a stopping node waits for post-* hooks still being sent.
const HOOK_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a stopping node waits for its locks to be given back.
const LOCK_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Run until SIGTERM or SIGINT, then: stop accepting, let in-flight PATCHes commit what they
/// have, and exit within the shutdown timeout.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let (store, locker, mode) = backends(&config.storage).await?;
    let mut engine = Engine::new(store, locker.clone(), config.engine.clone());
    if let Some(hooks) = &config.hooks {
        let sender = tusk_hooks::HttpHookSender::new(&hooks.url.0)?;
        engine = engine.with_hooks(Hooks::new(Arc::new(sender), hooks.config.clone()));
        let events: Vec<&str> = hooks.config.events.iter().map(|e| e.as_str()).collect();
        tracing::info!(events = %events.join(","), "hooks on");
    }
    let engine = Arc::new(engine);
    let tls = match &config.tls {
        Some(tls) => {
            let settings = tusk_http::TlsSettings::load(tls.clone())
                .context("cannot set up TLS on the listener")?;
            watch_tls(settings.clone(), engine.shutdown_token());
            Some(settings)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Before the address is announced: a SIGTERM that follows it at once must drain the node,
    // not find the default action (exit by signal) still in place.
    let signals = ShutdownSignals::install().context("cannot listen for signals")?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let server = tusk_http::serve(
        engine.clone(),
        config.http.clone(),
        listener,
        config.shutdown_timeout,
        tls,
    )?;
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            tracing::info!(addr = %listener.local_addr()?, "metrics on their own listener");
            Some(tusk_http::serve_metrics(listener)?)
        }
        None => None,
    };
    let metrics_handle = metrics_server.as_ref().map(|m| m.handle());
    let metrics_task = metrics_server.map(actix_web::rt::spawn);
    // The one line on stdout: scripts and tests read the address from it (useful with port 0).
    println!(
        "tusk listening on {scheme}://{addr}{}",
        config.http.base_path
    );
    tracing::info!(%addr, base_path = %config.http.base_path, mode, "tusk started");

    let reaper = (config.engine.expire_after.is_some()
        || config.engine.finished_retention.is_some()
        || config.engine.max_upload_age.is_some())
    .then(|| {
        actix_web::rt::spawn(reap_periodically(
            engine.clone(),
            config.reap_interval,
            engine.shutdown_token(),
        ))
    });

    // Readiness as a metric too (`tusk_ready`), so an alert can fire without a probe.
    actix_web::rt::spawn({
        let engine = engine.clone();
        let shutdown = engine.shutdown_token();
        async move {
            loop {
                let _ = engine.ready().await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(READY_INTERVAL) => {}
                }
            }
            tusk_metrics::metrics().ready.set(0);
        }
    });

    let handle = server.handle();
    let shutdown = engine.shutdown_token();
    actix_web::rt::spawn(async move {
        signals.recv().await;
        tracing::info!("shutdown requested: no new connections, committing in-flight uploads");
        let stop = handle.stop(true);
        shutdown.cancel();
        stop.await;
    });
    server.await.context("HTTP server failed")?;
    // A reaper pass stops at its next upload; its locks go back to etcd with the others below.
    if let Some(reaper) = reaper
        && tokio::time::timeout(REAPER_STOP_TIMEOUT, reaper)
            .await
            .is_err()
    {
        tracing::warn!("reaper pass still running at exit; its locks expire with their lease");
    }
    // `/metrics` on its own listener stays up through the drain, when in-flight PATCHes count.
    if let (Some(handle), Some(task)) = (metrics_handle, metrics_task) {
        handle.stop(true).await;
        let _ = task.await;
    }
    // Hand the locks of the requests that just ended back to etcd, so other nodes take over
    // these uploads at once instead of after a lease TTL (rolling restarts).
    locker.flush(LOCK_FLUSH_TIMEOUT).await;
    if let Some(hooks) = engine.hooks() {
        hooks.drain(HOOK_DRAIN_TIMEOUT).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Uploads one reaper pass removes at most; a full batch is followed by another pass at once.
const REAP_BATCH: usize = 500;
/// How long shutdown waits for a reaper pass under way.
const REAPER_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a pass that reported `report` may have left due uploads behind and is worth
/// following at once: a full batch that removed something. A full batch that removed nothing
/// (a backend failing every removal) waits for the next interval instead of spinning.
fn another_pass(report: &tusk_protocol::ReapReport) -> bool {
    report.examined == REAP_BATCH && report.removed > 0
}
/// Passes in one `tusk cleanup` at most (bounded, whatever the store reports).
const CLEANUP_PASSES: usize = 10_000;

/// Every `interval`, one pass of the reaper (skipped when another node's pass is running),
/// until shutdown.
async fn reap_periodically(
    engine: Arc<Engine>,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        for _ in 0..CLEANUP_PASSES {
            match engine.reap(REAP_BATCH).await {
                Ok(Some(report)) if another_pass(&report) && !shutdown.is_cancelled() => {}
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "reaper pass failed; retrying next interval");
                    break;
                }
            }
        }
    }
}

/// `tusk cleanup`: remove every expired upload now, then exit.
pub async fn cleanup(config: ServeConfig) -> anyhow::Result<()> {
    let (store, locker, mode) = backends(&config.storage).await?;
    let engine = Engine::new(store, locker.clone(), config.engine.clone());
    tracing::info!(mode, "cleanup started");
    let mut total = tusk_protocol::ReapReport::default();
    for _ in 0..CLEANUP_PASSES {
        let Some(report) = engine.reap(REAP_BATCH).await? else {
            anyhow::bail!("another reaper pass is running (on this or another node); try again");
        };
        total.examined += report.examined;
        total.removed += report.removed;
        total.failed += report.failed;
        if !another_pass(&report) {
            break;
        }
    }
    locker.flush(LOCK_FLUSH_TIMEOUT).await;
    println!(
        "cleanup: {} due, {} removed, {} failed",
        total.examined, total.removed, total.failed
    );
    if total.failed > 0 {
        anyhow::bail!("{} expired uploads could not be removed", total.failed);
    }
    Ok(())
}

/// The store and locker the configuration asks for, each checked to work before serving.
async fn backends(storage: &Storage) -> anyhow::Result<(EngineStorage, Arc<dyn Locker>, String)> {
    match storage {
        Storage::Local { data_dir } => {
            let store = LocalStore::open(data_dir)
                .with_context(|| format!("cannot use data directory {}", data_dir.display()))?;
            let mode = format!("local disk at {}", data_dir.display());
            let storage = EngineStorage::complete(Arc::new(store));
            Ok((storage, Arc::new(ProcessLocker::new()), mode))
        }
        Storage::Distributed(d) => distributed(d).await,
    }
}

async fn distributed(d: &Distributed) -> anyhow::Result<(EngineStorage, Arc<dyn Locker>, String)> {
    let objects = tusk_s3::S3Objects::connect(d.s3.clone())
        .await
        .context("cannot use S3")?;

    let state = if d.redis_cluster {
        let seeds = tusk_redis::seed_urls(&d.redis_url.0);
        tusk_redis::RedisState::connect_cluster(&seeds, &d.redis_prefix).await
    } else {
        tusk_redis::RedisState::connect(&d.redis_url.0, &d.redis_prefix).await
    };
    let state = state
        .and_then(|state| state.with_limits(d.redis_limits))
        .and_then(|state| state.with_replication(d.redis_replication))
        .context("cannot use Redis")?;
    let wanted = d.redis_replication.replicas;
    if wanted > 0 {
        match state.connected_replicas().await {
            Ok(Some(connected)) if connected < u64::from(wanted) => tracing::warn!(
                connected,
                wanted,
                "Redis has fewer replicas connected than redis_wait_replicas: every upload \
                 request answers 503 until enough replicas connect"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cannot read Redis's replicas"),
        }
    }
    match state.maxmemory_policy().await {
        Ok(Some(policy)) if tusk_redis::RedisState::policy_can_evict(&policy) => tracing::warn!(
            policy,
            "Redis maxmemory-policy can evict keys, which would lose upload state and tails; \
             set maxmemory-policy noeviction"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read Redis maxmemory-policy"),
    }

    let (locker, locks): (Arc<dyn Locker>, &str) = match &d.etcd {
        Some(etcd) => {
            let locker = tusk_etcd::EtcdLocker::connect(etcd.clone())
                .await
                .context("cannot use etcd")?;
            (Arc::new(locker), "etcd locks")
        }
        None => (
            Arc::new(ProcessLocker::new()),
            "in-process locks (single node)",
        ),
    };

    let store = MultipartStore::new(
        Arc::new(objects),
        Arc::new(state),
        d.multipart.clone(),
        BufferBudget::new(d.max_buffered_bytes),
    )?;
    let mode = format!(
        "distributed: S3 bucket {}, Redis state, {locks}",
        d.s3.bucket
    );
    Ok((EngineStorage::complete(Arc::new(store)), locker, mode))
}

/// How often the certificate and key files are checked for a change.
const TLS_FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Reload the listener's certificate when its files change (cert-manager and certbot replace
/// them in place) and on SIGHUP, until shutdown. A failed reload keeps the pair in use.
fn watch_tls(settings: Arc<tusk_http::TlsSettings>, shutdown: tokio_util::sync::CancellationToken) {
    actix_web::rt::spawn(
        settings
            .clone()
            .watch_files(TLS_FILE_CHECK, shutdown.clone()),
    );
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(err) => {
                tracing::warn!(
                    "cannot listen for SIGHUP; certificates reload on file changes only: {err}"
                );
                return;
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hangup.recv() => {}
            }
            tracing::info!("SIGHUP: reloading the TLS certificate");
            let settings = settings.clone();
            let _ = tokio::task::spawn_blocking(move || settings.reload()).await;
        }
    });
}

/// SIGTERM and SIGINT, caught from the moment they are installed.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Until either arrives.
    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
