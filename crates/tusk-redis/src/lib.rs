//! Upload state and tail for distributed tusk, in Redis.
//!
//! Every key of an upload shares the Redis Cluster hash tag `{<id>}`, so the Lua script behind
//! each operation touches one slot and runs atomically:
//!
//! - `<prefix>{<id>}:state`: hash with `v` (schema version, 1), `length` (empty while
//!   deferred), `metadata` (JSON), `part_size`, `multipart` (empty until set), `finished` (0/1)
//!   `fence` (the newest fencing token seen), `expires` and `created` (Unix seconds, empty
//!   when none), `concat` (JSON, empty when none) and `placement` (JSON: the key prefix,
//!   storage class and encryption a pre-create hook chose; empty or absent when none);
//! - `<prefix>{<id>}:parts`: list of the committed parts' ETags, part 1 first;
//! - `<prefix>{<id>}:tail`: string with the bytes after the last committed part (absent when
//!   empty).
//! - `<prefix>{<id>}:finals`: set of the final uploads made from this partial upload
//!   (concatenation), deleted with the upload;
//! - `<prefix>expiry` (not per upload): sorted set of upload ids by expiry time.
//!
//! Every state-changing call, and `load`, refuses a fencing token older than the stored one and
//! stores the newest, so a paused or partitioned old lock holder can never overwrite newer state.

mod connection;
mod error;
mod limits;
mod link;
mod replication;
mod reply;
mod scripts;
mod store;

pub use connection::RedisState;
pub use error::RedisError;
pub use limits::RedisLimits;
pub use replication::{MAX_WAIT_TIMEOUT, ReplicationWait};

/// The prefix of tusk's Redis keys unless configured (`redis_prefix`).
pub const DEFAULT_KEY_PREFIX: &str = "tusk:";

/// The seed URLs of a Redis Cluster in `redis_url` (comma-separated).
pub fn seed_urls(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// Refuse a Redis URL (or, for a cluster, seed URLs) or key prefix that cannot work, naming the
/// setting's TOML key: checked at start-up, before any connection is tried.
pub fn check_settings(url: &str, cluster: bool, key_prefix: &str) -> Result<(), RedisError> {
    let urls = if cluster { seed_urls(url) } else { vec![url] };
    if urls.is_empty() {
        return Err(RedisError::Setting {
            key: "redis_url",
            message: "a Redis Cluster needs at least one seed URL",
        });
    }
    for url in &urls {
        let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
        if !(scheme_ok || (!cluster && url.starts_with("unix://"))) {
            return Err(RedisError::Setting {
                key: "redis_url",
                message: if cluster {
                    "each seed URL of a Redis Cluster must start with redis:// or rediss:// (TLS)"
                } else {
                    "must start with redis://, rediss:// (TLS) or unix://"
                },
            });
        }
    }
    if !cluster && (url.contains(",redis://") || url.contains(",rediss://")) {
        return Err(RedisError::Setting {
            key: "redis_url",
            message: "several URLs are the seeds of a Redis Cluster: set redis_cluster = true",
        });
    }
    // A brace in the prefix would become the hash tag and put all uploads in one slot.
    if key_prefix.contains(['{', '}']) {
        return Err(RedisError::Setting {
            key: "redis_prefix",
            message: "must not contain '{' or '}' (they would become the Redis Cluster hash tag)",
        });
    }
    Ok(())
}
