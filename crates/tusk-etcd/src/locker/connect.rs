//! Connecting an [`EtcdLocker`]: connection options (keep-alive pings, TLS, credentials) and a
//! first read that proves etcd answers and lets us in.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use tokio_util::task::TaskTracker;

use super::{EtcdLocker, Inner};
use crate::error::client_error_is_unavailable;
use crate::lease::NodeLease;
use crate::{EtcdConfig, EtcdError, REQUEST_TIMEOUT};

/// How long [`EtcdLocker::connect`] waits for etcd to answer before failing start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 pings on the etcd connection while streams (keep-alives, watches) are open, so a
/// silently dead connection is noticed in seconds, not after TCP's retransmission timeout.
/// etcd refuses pings more often than every 5 s by default.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

impl EtcdLocker {
    /// Connect and check that etcd answers (and accepts the credentials, and lets us read under
    /// `key_prefix`) within a few seconds, so a wrong address or password fails start-up with a
    /// clear message instead of failing every request later.
    pub async fn connect(config: EtcdConfig) -> Result<Self, EtcdError> {
        config.validate()?;
        let endpoints = config.endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(PING_INTERVAL, PING_TIMEOUT)
            // etcd answers pings on a connection without streams with GOAWAY ("too many pings").
            .with_keep_alive_while_idle(false)
            // Without a leader, fail the request (503, retry later) instead of waiting.
            .with_require_leader(true);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            // Simple tokens expire (5 min by default); a long-running server must renew them.
            options = options
                .with_user(user, password)
                .with_auto_token_refresh(true);
        }
        if config.ca_file.is_some() || config.cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &config.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca).await?));
            }
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                tls = tls.identity(Identity::from_pem(read(cert).await?, read(key).await?));
            }
            options = options.with_tls(tls);
        }

        let prefix = config.key_prefix.clone();
        let check = async {
            let client = Client::connect(&config.endpoints, Some(options))
                .await
                .map_err(|source| match (&config.user, &source) {
                    // With credentials, connecting authenticates: its only network request.
                    (Some(user), etcd_client::Error::GRpcStatus(_))
                        if !client_error_is_unavailable(&source) =>
                    {
                        EtcdError::Auth {
                            endpoints: endpoints.clone(),
                            user: user.clone(),
                            source,
                        }
                    }
                    (
                        _,
                        etcd_client::Error::GRpcStatus(_) | etcd_client::Error::TransportError(_),
                    ) => EtcdError::Connect {
                        endpoints: endpoints.clone(),
                        source,
                    },
                    _ => EtcdError::Client {
                        endpoints: endpoints.clone(),
                        source,
                    },
                })?;
            // A linearizable read needs a leader and read permission on our keys; every lock
            // also reads `epoch`, so a role that does not cover it must fail here, not later.
            let refused = |source| EtcdError::Connect {
                endpoints: endpoints.clone(),
                source,
            };
            let mut kv = client.kv_client();
            let locks = GetOptions::new().with_prefix().with_count_only();
            kv.get(format!("{prefix}lock/"), Some(locks))
                .await
                .map_err(refused)?;
            kv.get(format!("{prefix}epoch"), None)
                .await
                .map_err(refused)?;
            Ok(client)
        };
        let client = tokio::time::timeout(CONNECT_TIMEOUT, check)
            .await
            .map_err(|_| EtcdError::Unreachable {
                endpoints: endpoints.clone(),
                timeout: CONNECT_TIMEOUT,
            })??;
        Ok(Self {
            inner: Arc::new(Inner {
                lease: NodeLease::new(client.clone(), config.ttl_secs()),
                requests: AtomicU64::new(0),
                client,
                prefix,
                ttl_secs: config.ttl_secs(),
                endpoints,
                unlocks: TaskTracker::new(),
                releasing: Default::default(),
                kept: Default::default(),
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }
}

async fn read(path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| EtcdError::ReadFile {
            path: path.to_owned(),
            source,
        })
}
