//! Acknowledged means replicated (`redis_wait_replicas`): a state change a client is told about
//! (or that a HEAD reports) is on that many replicas first, so a failover to one of them loses
//! nothing acknowledged.
//!
//! `WAIT` confirms the writes of the connection it is sent on, and blocks that connection while
//! it waits: sent on the store's shared multiplexed connection, one lagging replica would stall
//! every request of the node behind it. So a waited change runs on a connection of its own from
//! a small pool, as one round trip: the script, then `WAIT`. Replication is one ordered stream,
//! so confirming this write confirms every write before it on the same master.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Cmd, Script, Value};
use tokio::sync::Semaphore;

use crate::RedisError;
use crate::link::{Conn, Opener};

/// Connections kept for waited changes: each carries one change at a time, for a round trip
/// (microseconds to a healthy replica) or, when replicas lag, up to the wait timeout.
const WAIT_CONNECTIONS: usize = 32;
/// The longest `redis_wait_timeout`: it holds a request (and one of the connections) that long.
pub const MAX_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many replicas confirm an acknowledged change, and for how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationWait {
    /// Replicas that must have a change before it is acknowledged (`0`: none, Redis's own
    /// asynchronous replication).
    pub replicas: u32,
    /// How long a change waits for them before the request answers 503.
    pub timeout: Duration,
}

impl Default for ReplicationWait {
    fn default() -> Self {
        Self {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }
    }
}

impl ReplicationWait {
    /// Check the values; errors name the setting's key.
    pub fn validate(&self) -> Result<(), RedisError> {
        if self.timeout < Duration::from_millis(1) || self.timeout > MAX_WAIT_TIMEOUT {
            return Err(RedisError::Setting {
                key: "redis_wait_timeout",
                message: "must be between 1ms and 10s",
            });
        }
        Ok(())
    }
}

/// The pool of connections waited changes run on.
pub(crate) struct Replication {
    wait: ReplicationWait,
    opener: Opener,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
}

impl Replication {
    pub(crate) fn new(wait: ReplicationWait, opener: Opener) -> Self {
        Self {
            wait,
            opener,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(WAIT_CONNECTIONS),
        }
    }

    /// Run `call` (an `EVALSHA` of `script`) and wait until the configured replicas have its
    /// writes. `NotReplicated` if they do not confirm within the timeout: the change may be on
    /// the master, but it is not acknowledged.
    pub(crate) async fn run(&self, call: Cmd, script: &Script) -> Result<Value, RedisError> {
        // The call moves into the pipeline: a tail append carries up to a part's bytes.
        let mut waited = redis::pipe();
        waited.add_command(call);
        self.waited(waited, Some(script)).await
    }

    /// `append` and `call` in one MULTI/EXEC, then the wait, as [`Replication::run`]; the
    /// reply of `call`. The transaction is spelled out rather than `atomic()`, which would
    /// wrap `WAIT` too.
    pub(crate) async fn run_transaction(
        &self,
        append: Cmd,
        call: Cmd,
    ) -> Result<Value, RedisError> {
        let mut waited = redis::pipe();
        waited.cmd("MULTI").ignore();
        waited.add_command(append).ignore();
        waited.add_command(call).ignore();
        waited.cmd("EXEC");
        let exec = self.waited(waited, None).await?;
        match exec {
            Value::Array(mut replies) if replies.len() == 2 => Ok(replies.swap_remove(1)),
            other => Err(RedisError::Corrupt(format!(
                "a tail append's transaction replied {other:?}"
            ))),
        }
    }

    /// `waited` (whose replies but one are ignored), then `WAIT`, on a connection of the
    /// pool; the one reply. `script` is loaded again if Redis has lost it.
    async fn waited(
        &self,
        mut waited: redis::Pipeline,
        script: Option<&Script>,
    ) -> Result<Value, RedisError> {
        let not_replicated = |confirmed| RedisError::NotReplicated {
            confirmed,
            wanted: self.wait.replicas,
            timeout_ms: self.wait.timeout.as_millis() as u64,
        };
        // Bounded like the wait itself: when every connection is waiting for lagging
        // replicas, this change would only wait behind them.
        let Ok(Ok(_slot)) = tokio::time::timeout(self.wait.timeout, self.slots.acquire()).await
        else {
            return Err(not_replicated(0));
        };
        let idle = self.take_idle();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.opener.open().await?,
        };
        waited
            .cmd("WAIT")
            .arg(self.wait.replicas)
            .arg(self.wait.timeout.as_millis() as u64);
        let reply = match (waited.query_async::<(Value, i64)>(&mut conn).await, script) {
            // A Redis that restarted, or has not seen this script yet.
            (Err(err), Some(script)) if err.kind() == redis::ErrorKind::NoScriptError => {
                script.load_async(&mut conn).await?;
                waited.query_async::<(Value, i64)>(&mut conn).await
            }
            (other, _) => other,
        };
        match reply {
            Ok((value, confirmed)) => {
                self.give_back(conn);
                if confirmed < i64::from(self.wait.replicas) {
                    tusk_metrics::metrics().redis_replication_timeouts.inc();
                    return Err(not_replicated(confirmed));
                }
                Ok(value)
            }
            // A connection that failed is dropped; the next change opens a new one.
            Err(err) => Err(err.into()),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }
}
