//! Distributed per-upload locks for tusk on etcd (DESIGN invariants 5 and 6).
//!
//! Layout under the configured `key_prefix`:
//! - `<prefix>lock/<id>`: the lock. Created in a transaction only if absent, attached to a lease
//!   of `lease_ttl` that a background task keeps alive. Its create revision, with the epoch,
//!   makes the fencing token.
//! - `<prefix>release/<id>`: a release request. A request that finds the lock held writes it
//!   (value unique per waiter, attached to the waiter's own lease so it disappears with the
//!   waiter); the holder watches it and is told to let go.
//!
//! - `<prefix>epoch`: when this cluster first gave out a lock under the prefix, in microseconds
//!   since the Unix epoch. Written once, never on a lease; part of every fencing token (see
//!   `fence`), so a brand-new etcd cluster's tokens still beat the ones of the cluster it
//!   replaced.
//!
//! A waiter watches the lock key from the revision it read, so a delete (unlock or lease expiry)
//! between its read and its watch is never missed, and retries at once: handing the lock over
//! takes a few round trips, not a lease TTL.

mod error;
mod lease;
mod locker;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use error::EtcdError;
pub use locker::EtcdLocker;

/// Added to every etcd revision to make the fencing token.
///
/// The in-process locker's tokens start at the Unix time in microseconds (about 2^50 today), so
/// etcd tokens are always newer than those: a deployment moving from in-process locks to etcd
/// keeps its uploads writable instead of being refused as stale by the state store.
pub const FENCE_BASE: u64 = 1 << 62;

/// Fencing tokens per microsecond of epoch: more revisions than etcd can make per microsecond
/// (it manages well under one), so a younger epoch always outweighs the revisions of an older one.
const TOKENS_PER_EPOCH_MICROSECOND: u64 = 16;

/// The fencing token of a lock created at `revision` by a cluster whose epoch key reads
/// `epoch_micros`: `FENCE_BASE + epoch_micros * 16 + revision`, or `None` if it overflows.
///
/// Why the epoch: a new, empty etcd cluster (a lost cluster replaced, not restored from a
/// snapshot) starts its revisions again at 1. With the revision alone its tokens would be older
/// than every token the state store has seen, and every upload touched before would be refused
/// as stale (423) until it expired. The new cluster writes its own epoch at its first lock, at
/// least the old cluster's lifetime after the old one's, so its tokens are newer as long as the
/// old cluster made fewer than 16 revisions per microsecond of its life and the nodes' clocks were
/// not off by nearly that lifetime. Within one cluster the epoch never changes, so tokens follow
/// revisions; deleting the epoch key only moves tokens up.
pub(crate) fn fence(epoch_micros: u64, revision: i64) -> Option<u64> {
    let revision = u64::try_from(revision).ok()?;
    epoch_micros
        .checked_mul(TOKENS_PER_EPOCH_MICROSECOND)?
        .checked_add(revision)?
        .checked_add(FENCE_BASE)
}

/// How long one etcd request may take before the locker gives up on it. Without a bound, a
/// request to a down etcd can wait for a connection forever.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Run one etcd request, bounded by [`REQUEST_TIMEOUT`]; `op` names it in errors.
pub(crate) async fn rpc<T>(
    op: &'static str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(source)) => Err(EtcdError::Request { op, source }),
        Err(_) => Err(EtcdError::Timeout {
            op,
            timeout: REQUEST_TIMEOUT,
        }),
    }
}

/// Where etcd is and how the locks behave.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client URLs, `http://host:port` or `https://host:port` (TLS).
    pub endpoints: Vec<String>,
    /// User for etcd authentication; goes with `password`.
    pub user: Option<String>,
    /// Password of `user`. Never logged or displayed.
    pub password: Option<String>,
    /// PEM CA bundle that signs the etcd server certificates; required for `https://` endpoints
    /// (no system roots are built in).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; goes with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Lifetime of a node's lease without keep-alive: how long a crashed or partitioned holder
    /// can block an upload. Whole seconds (rounded up), [`MIN_LEASE_TTL`] to [`MAX_LEASE_TTL`];
    /// etcd may raise it to its minimum TTL.
    pub lease_ttl: Duration,
    /// Prepended verbatim to every key, e.g. `tusk/`.
    pub key_prefix: String,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("lease_ttl", &self.lease_ttl)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// The shortest lease: a keep-alive goes out every third of it, and a holder gives up a tenth of
/// it early, so shorter leases would be lost to ordinary network jitter.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
/// The longest lease: how long a crashed node may keep its uploads locked.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

impl Default for EtcdConfig {
    /// No endpoints (they must be given), a 10 s lease, keys under `tusk/`.
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            user: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            lease_ttl: Duration::from_secs(10),
            key_prefix: "tusk/".to_owned(),
        }
    }
}

impl EtcdConfig {
    /// Refuse settings that cannot work; each error names the setting's TOML key (the binary
    /// adds its flag and environment variable) and the fix.
    pub fn validate(&self) -> Result<(), EtcdError> {
        let invalid = |key: &'static str, message: String| Err(EtcdError::Config { key, message });
        if self.endpoints.is_empty() {
            return invalid(
                "etcd_endpoints",
                "must name at least one etcd client URL".into(),
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return invalid(
                "etcd_user",
                "etcd_user and etcd_password go together".into(),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return invalid(
                "etcd_cert_file",
                "etcd_cert_file and etcd_key_file go together".into(),
            );
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            return invalid("lock_lease", "must be at least 2s".into());
        }
        if self.lease_ttl > MAX_LEASE_TTL {
            return invalid("lock_lease", "must be at most 24h".into());
        }
        let tls = self.ca_file.is_some() || self.cert_file.is_some();
        for endpoint in &self.endpoints {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid(
                    "etcd_endpoints",
                    format!("{endpoint:?} must be an http:// or https:// URL"),
                );
            }
            if endpoint.starts_with("http://") && tls {
                return invalid(
                    "etcd_endpoints",
                    format!("{endpoint} is plain http but TLS files are set: use https://"),
                );
            }
            if endpoint.starts_with("https://") && self.ca_file.is_none() {
                return invalid(
                    "etcd_ca_file",
                    format!(
                        "endpoint {endpoint} uses TLS: set etcd_ca_file to the CA that signs \
                         etcd's certificate"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The lease TTL etcd is asked for, in whole seconds (rounded up).
    fn ttl_secs(&self) -> i64 {
        let secs = self.lease_ttl.as_secs() + u64::from(self.lease_ttl.subsec_nanos() > 0);
        i64::try_from(secs).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_order_by_epoch_then_revision_and_never_wrap() {
        let now = 1_790_000_000_000_000; // 2026, in microseconds
        assert_eq!(fence(now, 7), Some(FENCE_BASE + now * 16 + 7));
        // A cluster one second younger beats 16 million revisions of the older one.
        assert!(fence(now + 1_000_000, 1) > fence(now, 15_999_999));
        assert!(fence(now, 2) > fence(now, 1));
        assert_eq!(fence(now, -1), None);
        assert_eq!(fence(u64::MAX / 16, 1), None);
        assert_eq!(fence(u64::MAX, 0), None);
    }

    fn config() -> EtcdConfig {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            user: Some("tusk".to_owned()),
            password: Some("s3cret-pass".to_owned()),
            ca_file: None,
            cert_file: None,
            key_file: None,
            lease_ttl: Duration::from_millis(2500),
            key_prefix: "tusk/".to_owned(),
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(config().ttl_secs(), 3);
    }

    #[test]
    fn bad_settings_are_refused_with_the_fix() {
        type Change = fn(&mut EtcdConfig);
        let cases: [(Change, &str); 8] = [
            (
                |c| c.endpoints.clear(),
                "etcd_endpoints: must name at least one",
            ),
            (
                |c| c.password = None,
                "etcd_user: etcd_user and etcd_password",
            ),
            (
                |c| c.cert_file = Some("c.pem".into()),
                "etcd_cert_file: etcd_cert_file and etcd_key_file",
            ),
            (
                |c| c.lease_ttl = Duration::from_millis(1500),
                "lock_lease: must be at least 2s",
            ),
            (
                |c| c.lease_ttl = Duration::from_secs(90_000),
                "lock_lease: must be at most 24h",
            ),
            (
                |c| c.endpoints = vec!["https://e:2379".to_owned()],
                "etcd_ca_file: endpoint https://e:2379 uses TLS",
            ),
            (|c| c.ca_file = Some("ca.pem".into()), "use https://"),
            (
                |c| c.endpoints = vec!["e:2379".to_owned()],
                "http:// or https://",
            ),
        ];
        for (change, expected) in cases {
            let mut c = config();
            change(&mut c);
            let err = c.validate().expect_err(expected).to_string();
            assert!(err.contains(expected), "{err:?} does not say {expected:?}");
        }
        config().validate().expect("valid");
    }
}
