//! One connection to Redis, whether Redis is a single server (or a primary behind a failover
//! endpoint) or a Redis Cluster, and the way to open more of them.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Bound on one connection attempt, so an unreachable Redis fails requests quickly instead of
/// holding them until the lock lease expires.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one command. Generous: a commit can carry a tail of up to one part (tens of MiB).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra connection attempts (about 1-2 s apart) before waiting commands fail with
/// `Unavailable`: enough to ride out a Redis restart, short enough for a quick 503. The next
/// command starts a new round, so the store heals by itself once Redis is back.
const RECONNECT_RETRIES: usize = 1;
/// Attempts of a Redis Cluster command after a redirection or a lost node (the client refreshes
/// its slot map in between, 100 ms to 1 s apart): enough to follow a slot's move or a failover
/// of a few seconds, short enough for a quick 503 while a slot has no master.
const CLUSTER_RETRIES: u32 = 4;

/// A multiplexed connection to a single Redis, or to every master of a Redis Cluster (commands
/// go to the master of their key's slot, following MOVED and ASK). Clones share it.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Opens connections to one Redis deployment: the store's shared one, and the dedicated ones
/// that acknowledged writes wait for replicas on.
#[derive(Clone)]
pub(crate) enum Opener {
    Single(redis::Client),
    Cluster(ClusterClient),
}

impl Opener {
    /// For the single Redis at `url`.
    pub(crate) fn single(url: &str) -> RedisResult<Opener> {
        Ok(Opener::Single(redis::Client::open(url)?))
    }

    /// For the Redis Cluster that `seeds` (any of its nodes) belong to.
    pub(crate) fn cluster(seeds: &[&str]) -> RedisResult<Opener> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(100)
            .max_retry_wait(1000)
            .build()?;
        Ok(Opener::Cluster(client))
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Opener::Cluster(_))
    }

    /// A new connection (for a cluster: one to each master, and the slot map).
    pub(crate) async fn open(&self) -> RedisResult<Conn> {
        match self {
            Opener::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    .set_number_of_retries(RECONNECT_RETRIES);
                let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
                Ok(Conn::Single(conn))
            }
            Opener::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// Every text in a reply: a single server's reply is one, a command a cluster sends to every
/// master (`INFO`) answers with one per master.
pub(crate) fn texts(reply: Value) -> Vec<String> {
    match reply {
        Value::BulkString(bytes) => vec![String::from_utf8_lossy(&bytes).into_owned()],
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => vec![text],
        Value::Array(items) | Value::Set(items) => items.into_iter().flat_map(texts).collect(),
        Value::Map(pairs) => pairs.into_iter().flat_map(|(_, v)| texts(v)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_single_and_per_master_replies() {
        assert_eq!(texts(Value::BulkString(b"a:1".to_vec())), ["a:1"]);
        let per_master = Value::Map(vec![
            (
                Value::SimpleString("127.0.0.1:7001".into()),
                Value::BulkString(b"x".to_vec()),
            ),
            (
                Value::SimpleString("127.0.0.1:7002".into()),
                Value::VerbatimString {
                    format: redis::VerbatimFormat::Text,
                    text: "y".into(),
                },
            ),
        ]);
        assert_eq!(texts(per_master), ["x", "y"]);
        assert!(texts(Value::Nil).is_empty());
    }
}
