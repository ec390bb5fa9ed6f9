use std::path::PathBuf;
use std::time::Duration;

use tusk_core::ErrorKind;

/// What the etcd locker can fail with. No variant carries the password: credentials errors name
/// the user only, and etcd's own messages never echo the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A setting cannot work: `key` is its TOML key (`etcd_user`, `lock_lease`, ...), the
    /// message says why and how to fix it.
    #[error("{key}: {message}")]
    Config {
        /// The setting's TOML key.
        key: &'static str,
        /// What is wrong and the fix.
        message: String,
    },
    /// A TLS file named in the configuration cannot be read.
    #[error("cannot read etcd TLS file {path}: {source}")]
    ReadFile {
        /// The file as configured.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The client refused the endpoints or TLS settings before any network traffic.
    #[error("cannot set up the etcd client for {endpoints}: {source}")]
    Client {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// The client's complaint.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer the start-up check in time (down, wrong address, firewalled).
    #[error(
        "cannot reach etcd at {endpoints} within {timeout:?}: check that it is running and that \
         the endpoints (scheme, host, port) are right"
    )]
    Unreachable {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// How long the check waited.
        timeout: Duration,
    },
    /// The start-up check (authenticate, then a read under the key prefix) failed.
    #[error("cannot connect to etcd at {endpoints}: {source}")]
    Connect {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// etcd's answer.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd refused the configured user and password (or authentication is not enabled).
    #[error("etcd at {endpoints} rejected the credentials of user {user:?}: {source}")]
    Auth {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// The configured user name.
        user: String,
        /// etcd's answer.
        #[source]
        source: etcd_client::Error,
    },
    /// A request to etcd failed after start-up.
    #[error("etcd request ({op}) failed: {source}")]
    Request {
        /// What the locker was doing.
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A request to etcd got no answer in time.
    #[error("etcd request ({op}) got no answer within {timeout:?}")]
    Timeout {
        /// What the locker was doing.
        op: &'static str,
        /// How long it waited.
        timeout: Duration,
    },
    /// The lease a waiter was using expired before it got the lock.
    #[error("the etcd lease of a waiting lock request was lost")]
    LeaseLost,
    /// etcd answered with something the locker did not ask for.
    #[error("unexpected etcd reply to {0}")]
    Unexpected(&'static str),
    /// Another request holds the lock and did not let go within the wait.
    #[error("upload is locked by another request; retry later")]
    Locked,
}

impl EtcdError {
    /// Whether the error means etcd cannot serve us right now (retry later) rather than a fault
    /// in tusk or in etcd's configuration.
    pub fn is_unavailable(&self) -> bool {
        match self {
            EtcdError::Unreachable { .. } | EtcdError::Timeout { .. } | EtcdError::LeaseLost => {
                true
            }
            EtcdError::Connect { source, .. } | EtcdError::Request { source, .. } => {
                client_error_is_unavailable(source)
            }
            _ => false,
        }
    }
}

/// Transport failures and the gRPC codes etcd uses for "no leader", "request timed out" and
/// "leader changed" all clear up on their own; permission and argument errors do not.
/// `NotFound` is etcd's "requested lease not found": a waiter's lease expired (a pause, a
/// partition) and a new request gets a new lease.
pub(crate) fn client_error_is_unavailable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_)
        | etcd_client::Error::LeaseKeepAliveError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Unknown
                | Code::NotFound
        ),
        _ => false,
    }
}

impl EtcdError {
    /// Whether etcd refused a request because the lease it names no longer exists (revoked from
    /// outside, or expired before this node's keep-alive noticed).
    pub(crate) fn is_lease_not_found(&self) -> bool {
        matches!(
            self,
            EtcdError::Request {
                source: etcd_client::Error::GRpcStatus(status),
                ..
            } if status.code() == tonic::Code::NotFound && status.message().contains("lease not found")
        )
    }
}

impl From<EtcdError> for tusk_core::Error {
    fn from(e: EtcdError) -> Self {
        let (kind, message) = match &e {
            EtcdError::Locked => (
                ErrorKind::Locked,
                "upload is locked by another request; retry later",
            ),
            _ if e.is_unavailable() => (
                ErrorKind::Unavailable,
                "lock service (etcd) is unavailable; retry later",
            ),
            EtcdError::Config { .. } | EtcdError::ReadFile { .. } | EtcdError::Client { .. } => {
                (ErrorKind::Backend, "lock service (etcd) is misconfigured")
            }
            _ => (ErrorKind::Backend, "lock service (etcd) failed"),
        };
        tusk_core::Error::new(kind, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_client_messages() {
        let locked: tusk_core::Error = EtcdError::Locked.into();
        assert_eq!(locked.kind(), ErrorKind::Locked);
        assert_eq!(
            locked.message(),
            "upload is locked by another request; retry later"
        );

        let timeout: tusk_core::Error = EtcdError::Timeout {
            op: "lock",
            timeout: Duration::from_secs(1),
        }
        .into();
        assert_eq!(timeout.kind(), ErrorKind::Unavailable);
        assert_eq!(
            timeout.message(),
            "lock service (etcd) is unavailable; retry later"
        );

        let no_leader: tusk_core::Error = EtcdError::Request {
            op: "lock",
            source: etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                "etcdserver: no leader",
            )),
        }
        .into();
        assert_eq!(no_leader.kind(), ErrorKind::Unavailable);

        let denied: tusk_core::Error = EtcdError::Request {
            op: "lock",
            source: etcd_client::Error::GRpcStatus(tonic::Status::permission_denied(
                "etcdserver: permission denied",
            )),
        }
        .into();
        assert_eq!(denied.kind(), ErrorKind::Backend);
        assert_eq!(denied.message(), "lock service (etcd) failed");
    }
}
