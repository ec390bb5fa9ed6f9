use tusk_core::ErrorKind;

/// What the Redis state store can fail with. Messages never contain the password of the URL:
/// URLs are redacted with [`crate::connection::redact_url`] before they are stored in an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL does not parse as a Redis URL.
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// Why the redis client refused it.
        #[source]
        source: redis::RedisError,
    },
    /// The key prefix would break the per-upload hash tag.
    #[error("invalid Redis key prefix {0:?}: it must not contain '{{' or '}}'")]
    InvalidPrefix(String),
    /// The first connection (and PING) failed.
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// The underlying failure.
        #[source]
        source: redis::RedisError,
    },
    /// A command failed (connection lost, timeout, server error).
    #[error("Redis command failed: {0}")]
    Command(#[source] redis::RedisError),
    /// The upload does not exist.
    #[error("upload not found")]
    NotFound,
    /// `create` found the id taken.
    #[error("upload id already exists")]
    Exists,
    /// A newer fencing token has been seen for this upload.
    #[error("lock lost: a newer lock holder has written to this upload")]
    Fenced,
    /// A commit's expected parts or tail length no longer match.
    #[error("the upload's state moved on since it was read")]
    Mismatch,
    /// A commit's staged tail bytes are gone from Redis (evicted or expired before the commit):
    /// nothing was committed and the client resends from the offset it is told.
    #[error("the tail bytes staged for this commit are gone from Redis (evicted or expired)")]
    StagingLost,
    /// A value that may be set only once is already set.
    #[error("the upload's {0} is already set")]
    AlreadySet(&'static str),
    /// A request the store refuses before touching Redis.
    #[error("{0}")]
    Invalid(&'static str),
    /// The stored state does not follow the schema (or a script replied nonsense).
    #[error("corrupt upload state in Redis: {0}")]
    Corrupt(String),
    /// A limit on what new uploads may add to Redis is reached (see `RedisLimits`).
    #[error("{0}")]
    Full(String),
    /// Replicas did not confirm a change in time (`redis_wait_replicas`): it may be on the
    /// master, but it is not acknowledged.
    #[error(
        "Redis replicas confirmed the change on {confirmed} of {wanted} replicas within {timeout_ms} ms"
    )]
    NotReplicated {
        /// Replicas that confirmed it.
        confirmed: i64,
        /// Replicas that had to.
        wanted: u32,
        /// How long it waited.
        timeout_ms: u64,
    },
    /// A setting has a value it cannot have: its TOML key and why.
    #[error("{key}: {message}")]
    Setting {
        /// The setting's TOML key.
        key: &'static str,
        /// What is wrong with it.
        message: &'static str,
    },
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> Self {
        RedisError::Command(e)
    }
}

/// Whether `e` means Redis cannot serve us right now (as opposed to refusing this request):
/// the caller should retry later rather than see a server bug.
pub(crate) fn is_unavailable(e: &redis::RedisError) -> bool {
    use redis::ErrorKind as K;
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            K::ClusterDown
                // A redirection still unresolved after the client's retries: a slot whose
                // master is down or moving.
                | K::Moved
                | K::Ask
                | K::TryAgain
                | K::MasterDown
                | K::BusyLoadingError
                | K::ReadOnly
                | K::ClusterConnectionNotFound
        )
        // Out of memory under `noeviction`, a failed RDB save, too few replicas: all clear up
        // on the server's side, none is a fault of the request.
        || matches!(e.code(), Some("OOM" | "MISCONF" | "NOREPLICAS"))
}

impl RedisError {
    /// The core kind this error maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RedisError::Connect { source, .. } | RedisError::Command(source)
                if is_unavailable(source) =>
            {
                ErrorKind::Unavailable
            }
            RedisError::NotFound => ErrorKind::NotFound,
            RedisError::Fenced => ErrorKind::LockLost,
            RedisError::Mismatch => ErrorKind::OffsetMismatch,
            RedisError::Exists
            | RedisError::AlreadySet(_)
            | RedisError::Invalid(_)
            | RedisError::Setting { .. } => ErrorKind::Invalid,
            RedisError::Full(_) | RedisError::NotReplicated { .. } | RedisError::StagingLost => {
                ErrorKind::Unavailable
            }
            RedisError::InvalidUrl { .. }
            | RedisError::InvalidPrefix(_)
            | RedisError::Connect { .. }
            | RedisError::Command(_)
            | RedisError::Corrupt(_) => ErrorKind::Backend,
        }
    }
}

impl From<RedisError> for tusk_core::Error {
    fn from(e: RedisError) -> Self {
        let kind = e.kind();
        // Clients see a short message; details (never secrets) stay in the source for logs.
        let message = match (&e, kind) {
            (RedisError::Full(message), _) => message.clone(),
            (RedisError::NotReplicated { .. }, _) => {
                "the state store's replicas did not confirm this change in time, so it is not acknowledged; retry later (HEAD reports what is confirmed)".to_owned()
            }
            (_, ErrorKind::Unavailable) => {
                "state store (Redis) is unavailable; retry later".to_owned()
            }
            (_, ErrorKind::Backend) => "state store (Redis) failed".to_owned(),
            _ => e.to_string(),
        };
        tusk_core::Error::new(kind, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_core_kinds() {
        use tusk_core::ErrorKind as K;
        let io =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let cases = [
            (RedisError::Command(io), K::Unavailable),
            (
                RedisError::Command(redis::RedisError::from((
                    redis::ErrorKind::ClusterDown,
                    "down",
                ))),
                K::Unavailable,
            ),
            (
                RedisError::Command(redis::RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "bad",
                ))),
                K::Backend,
            ),
            (
                RedisError::Command(redis::RedisError::from((redis::ErrorKind::Moved, "moved"))),
                K::Unavailable,
            ),
            (
                RedisError::NotReplicated {
                    confirmed: 0,
                    wanted: 1,
                    timeout_ms: 1000,
                },
                K::Unavailable,
            ),
            (RedisError::NotFound, K::NotFound),
            (RedisError::Fenced, K::LockLost),
            (RedisError::Mismatch, K::OffsetMismatch),
            (RedisError::AlreadySet("length"), K::Invalid),
            (RedisError::Exists, K::Invalid),
            (RedisError::Corrupt("x".into()), K::Backend),
            (RedisError::StagingLost, K::Unavailable),
        ];
        for (e, kind) in cases {
            let core = tusk_core::Error::from(e);
            assert_eq!(core.kind(), kind, "{core}");
        }
        let io = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let core = tusk_core::Error::from(RedisError::Command(io));
        assert_eq!(
            core.message(),
            "state store (Redis) is unavailable; retry later"
        );
        assert!(std::error::Error::source(&core).is_some());
    }
}
