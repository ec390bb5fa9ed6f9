//! The connection to Redis: [`RedisState`] itself, connecting to the server (TLS, timeouts, its
//! version), and sending commands and scripts inside a span, timed into a metric.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use redis::{Script, Value};
use tracing::Instrument as _;
use tusk_core::UploadId;

use crate::limits::Admission;
use crate::link::{Conn, Opener};
use crate::replication::{Replication, ReplicationWait};
use crate::reply::split_marker;
use crate::{RedisError, RedisLimits, error, scripts};

/// The Redis [`StateStore`](tusk_core::StateStore). Cheap to clone: clones share one
/// multiplexed connection (to a single Redis, or to each master of a Redis Cluster) that
/// reconnects by itself.
#[derive(Clone)]
pub struct RedisState {
    pub(crate) conn: Conn,
    pub(crate) prefix: String,
    /// The URL (the first seed of a cluster) with its password redacted, for messages.
    url: String,
    /// Opens more connections like `conn`.
    opener: Opener,
    /// The server takes scripts flagged to run while it is out of memory (Redis 7 and later).
    oom_flags: bool,
    /// Limits on new uploads.
    pub(crate) admission: Arc<Admission>,
    /// Waits for replicas before a change is acknowledged, if configured.
    replication: Option<Arc<Replication>>,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.url)
            .field("cluster", &self.opener.is_cluster())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connect to `url` (`redis://[user][:password@]host[:port][/db]`, or `rediss://` for TLS)
    /// and PING, so a wrong address or password fails at start-up rather than on the first
    /// upload. Keys are named `<key_prefix>{<id>}:...`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisState, RedisError> {
        let redacted = redact_url(url);
        let opener = Self::opener(url, Opener::single)?;
        Self::connect_with(opener, redacted, key_prefix).await
    }

    /// Connect to the Redis Cluster that `seeds` (URLs of any of its nodes; the password and
    /// TLS of the first apply to all) belong to, as [`RedisState::connect`] does. Every key of
    /// an upload shares its hash slot; the expiry index is spread over slots.
    pub async fn connect_cluster(
        seeds: &[&str],
        key_prefix: &str,
    ) -> Result<RedisState, RedisError> {
        let first = seeds.first().ok_or(RedisError::Setting {
            key: "redis_url",
            message: "a Redis Cluster needs at least one seed URL",
        })?;
        let redacted = seeds
            .iter()
            .map(|url| redact_url(url))
            .collect::<Vec<_>>()
            .join(",");
        let opener = Self::opener(first, |_| Opener::cluster(seeds))?;
        Self::connect_with(opener, redacted, key_prefix).await
    }

    fn opener(
        url: &str,
        open: impl FnOnce(&str) -> redis::RedisResult<Opener>,
    ) -> Result<Opener, RedisError> {
        if is_tls(url) {
            ensure_crypto_provider();
        }
        open(url).map_err(|source| RedisError::InvalidUrl {
            url: redact_url(url),
            source,
        })
    }

    async fn connect_with(
        opener: Opener,
        redacted: String,
        key_prefix: &str,
    ) -> Result<RedisState, RedisError> {
        // A brace in the prefix would become the hash tag and put all uploads in one slot.
        if key_prefix.contains(['{', '}']) {
            return Err(RedisError::InvalidPrefix(key_prefix.to_owned()));
        }
        let connect = async {
            let mut conn = opener.open().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            // A cluster answers with every master's: all must take flagged scripts.
            let info = redis::cmd("INFO")
                .arg("server")
                .query_async::<Value>(&mut conn)
                .await
                .map(crate::link::texts)
                .unwrap_or_default();
            Ok::<_, redis::RedisError>((conn, info))
        };
        let (conn, info) = connect.await.map_err(|source| RedisError::Connect {
            url: redacted.clone(),
            source,
        })?;
        let oom_flags = !info.is_empty()
            && info
                .iter()
                .all(|info| server_major_version(info).is_some_and(|major| major >= 7));
        if !oom_flags {
            tracing::warn!(
                "Redis older than 7 (or its version unknown): when it is full (maxmemory), uploads cannot be deleted or finished to free memory; raise maxmemory then"
            );
        }
        tracing::debug!(url = %redacted, cluster = opener.is_cluster(), prefix = key_prefix, "connected to Redis");
        Ok(RedisState {
            conn,
            prefix: key_prefix.to_owned(),
            url: redacted,
            opener,
            oom_flags,
            admission: Arc::new(Admission::new(RedisLimits::default())),
            replication: None,
        })
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.opener.is_cluster()
    }

    /// Acknowledge a change only once `wait.replicas` replicas have it (none: as Redis's own
    /// asynchronous replication does).
    pub fn with_replication(mut self, wait: ReplicationWait) -> Result<RedisState, RedisError> {
        wait.validate()?;
        self.replication =
            (wait.replicas > 0).then(|| Arc::new(Replication::new(wait, self.opener.clone())));
        Ok(self)
    }

    /// Apply `limits` to new uploads (instead of [`RedisLimits::default`]).
    pub fn with_limits(mut self, limits: RedisLimits) -> Result<RedisState, RedisError> {
        limits.validate()?;
        self.admission = Arc::new(Admission::new(limits));
        Ok(self)
    }

    /// The server's `maxmemory-policy`, or `None` when the server refuses `CONFIG GET` (as
    /// managed Redis services often do). Anything but `noeviction` can silently drop upload
    /// state under memory pressure: see [`RedisState::policy_can_evict`].
    pub async fn maxmemory_policy(&self) -> Result<Option<String>, RedisError> {
        let mut conn = self.conn.clone();
        let reply = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async::<HashMap<String, String>>(&mut conn)
            .await;
        match reply {
            Ok(mut config) => Ok(config.remove("maxmemory-policy")),
            Err(e) if error::is_unavailable(&e) => Err(RedisError::Command(e)),
            Err(e) => {
                tracing::debug!(error = %e, "Redis refused CONFIG GET maxmemory-policy");
                Ok(None)
            }
        }
    }

    /// The fewest replicas any master has connected now (`INFO replication`; a cluster answers
    /// for each master), or `None` when Redis refuses `INFO`. With `redis_wait_replicas` above
    /// it, every acknowledgement waits in vain until more replicas connect.
    pub async fn connected_replicas(&self) -> Result<Option<u64>, RedisError> {
        let mut conn = self.conn.clone();
        let reply = redis::cmd("INFO")
            .arg("replication")
            .query_async::<Value>(&mut conn)
            .await;
        match reply {
            Ok(reply) => Ok(crate::link::texts(reply)
                .iter()
                .filter(|info| info.contains("role:master"))
                .filter_map(|info| {
                    info.lines()
                        .find_map(|line| line.trim().strip_prefix("connected_slaves:"))
                        .and_then(|n| n.parse().ok())
                })
                .min()),
            Err(e) if error::is_unavailable(&e) => Err(RedisError::Command(e)),
            Err(_) => Ok(None),
        }
    }

    /// Whether Redis may evict keys under `policy`: anything but `noeviction` can.
    pub fn policy_can_evict(policy: &str) -> bool {
        !policy.trim().eq_ignore_ascii_case("noeviction")
    }

    /// Send one plain command, with the same span and duration metric as a script.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        id: Option<&UploadId>,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn.clone();
        Ok(self.timed(op, id, cmd.query_async(&mut conn)).await?)
    }

    /// `request`, inside a client span `redis <op>` and timed into
    /// `tusk_redis_request_duration_seconds{operation=op}`.
    pub(crate) async fn timed<R>(
        &self,
        op: &'static str,
        id: Option<&UploadId>,
        request: impl Future<Output = R>,
    ) -> R {
        let span = tracing::info_span!(
            "redis",
            otel.name = format!("redis {op}"),
            otel.kind = "client",
            db.system = "redis",
            op,
            upload_id = tracing::field::Empty,
        );
        if let Some(id) = id {
            span.record("upload_id", tracing::field::display(id));
        }
        let started = std::time::Instant::now();
        let reply = request.instrument(span).await;
        tusk_metrics::metrics()
            .redis_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        reply
    }

    /// `script` in the form this server runs while it is out of memory, if it can.
    pub(crate) fn oom_safe<'a>(&self, script: &'a scripts::OomSafe) -> &'a Script {
        if self.oom_flags {
            &script.flagged
        } else {
            &script.plain
        }
    }

    /// The call of `script` on the keys of `id` with `args`. EVALSHA built here rather than
    /// through `ScriptInvocation`, which copies every argument once more (a tail append's bytes
    /// are up to a part).
    fn invocation(
        &self,
        script: &Script,
        id: &UploadId,
        extra_key: Option<&str>,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> redis::Cmd {
        self.script_call("EVALSHA", script.get_hash(), id, extra_key, args)
    }

    /// `verb` (`EVALSHA` with a script's hash, `EVAL` with its text) on the keys of `id`, then
    /// `extra_key`, then `args`.
    fn script_call(
        &self,
        verb: &str,
        script: &str,
        id: &UploadId,
        extra_key: Option<&str>,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> redis::Cmd {
        let keys = self.keys(id);
        let mut call = redis::cmd(verb);
        call.arg(script)
            .arg(keys.len() + usize::from(extra_key.is_some()));
        for key in keys {
            call.arg(key);
        }
        if let Some(key) = extra_key {
            call.arg(key);
        }
        args(&mut call);
        call
    }

    /// Run `script` on the keys of `id` with `args`, and split its marker off the reply.
    pub(crate) async fn run(
        &self,
        op: &'static str,
        script: &Script,
        id: &UploadId,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        self.run_keys(op, script, id, None, args).await
    }

    /// [`RedisState::run`] with a fifth key (`KEYS[5]`) of the upload's hash tag.
    pub(crate) async fn run_keys(
        &self,
        op: &'static str,
        script: &Script,
        id: &UploadId,
        extra_key: Option<&str>,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        let call = self.invocation(script, id, extra_key, args);
        let mut conn = self.conn.clone();
        let invoke = async {
            match call.query_async::<Value>(&mut conn).await {
                // A Redis that restarted, or has not seen this script yet.
                Err(err) if err.kind() == redis::ErrorKind::NoScriptError => {
                    script.load_async(&mut conn).await?;
                    call.query_async::<Value>(&mut conn).await
                }
                other => other,
            }
        };
        let reply = self.timed(op, Some(id), invoke).await;
        split_marker(reply?)
    }

    /// Whether tail appends may go as `APPEND` plus [`scripts::COMMIT_APPENDED`] in one
    /// transaction: that script's undo must run while Redis is full, which needs Redis 7's
    /// script flags; older servers get the bytes as an argument of the commit script.
    pub(crate) fn appends_outside_lua(&self) -> bool {
        self.oom_flags
    }

    /// `APPEND` of `bytes` to the tail of `id`, then `script` (text, run as EVAL) on its keys
    /// with `args`, in one MULTI/EXEC; acknowledged like [`RedisState::run_acknowledged`].
    /// Nothing of it applies if Redis refuses either command when queued (out of memory); the
    /// script undoes the APPEND when it refuses the commit.
    pub(crate) async fn run_after_append(
        &self,
        op: &'static str,
        script: &str,
        id: &UploadId,
        bytes: &[u8],
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        let [_, _, tail, _] = self.keys(id);
        let mut append = redis::cmd("APPEND");
        append.arg(tail).arg(bytes);
        let call = self.script_call("EVAL", script, id, None, args);
        let reply = match &self.replication {
            Some(replication) => {
                self.timed(op, Some(id), replication.run_transaction(append, call))
                    .await?
            }
            None => {
                let mut transaction = redis::pipe();
                transaction.atomic().add_command(append).add_command(call);
                let mut conn = self.conn.clone();
                let (_, reply) = self
                    .timed(
                        op,
                        Some(id),
                        transaction.query_async::<(Value, Value)>(&mut conn),
                    )
                    .await?;
                reply
            }
        };
        split_marker(reply)
    }

    /// [`RedisState::run`] for a change the client is told about (or a read it is told):
    /// with `redis_wait_replicas`, it returns only once that many replicas have it.
    pub(crate) async fn run_acknowledged(
        &self,
        op: &'static str,
        script: &Script,
        id: &UploadId,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        self.run_acknowledged_keys(op, script, id, None, args).await
    }

    /// [`RedisState::run_acknowledged`] with a fifth key (`KEYS[5]`) of the upload's hash tag.
    pub(crate) async fn run_acknowledged_keys(
        &self,
        op: &'static str,
        script: &Script,
        id: &UploadId,
        extra_key: Option<&str>,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        let Some(replication) = &self.replication else {
            return self.run_keys(op, script, id, extra_key, args).await;
        };
        let call = self.invocation(script, id, extra_key, args);
        let reply = self
            .timed(op, Some(id), replication.run(call, script))
            .await;
        split_marker(reply?)
    }
}

/// Whether `url` asks for TLS.
fn is_tls(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// rustls needs a process-wide crypto provider. It picks one by itself only when exactly one is
/// compiled in; this crate alone enables none through redis, and were a second one ever linked
/// the first TLS connection would panic. So install ring's, unless the binary already chose one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error only means another thread installed a provider first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `url` with any password replaced by `***`, fit for messages and logs.
///
/// Redacts the user-info password (`redis://user:secret@host` becomes `redis://user:***@host`),
/// a user-info with no colon as a whole (some write the password there), and `pass` /
/// `password` query parameters (`redis+unix:///path?pass=secret`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL we understand: show nothing of it rather than risk a secret.
        return "<unparsable Redis URL>".to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    // The user-info ends at the last '@' before the path; a password may hold '/', '?' or '#'
    // if it was not percent-encoded, so look for '@' in the whole rest.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    if let Some(info) = userinfo {
        match info.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            None => out.push_str("***@"),
        }
    }
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
                    {
                        format!("{k}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// The major version in an `INFO server` reply (`redis_version:7.0.15`).
fn server_major_version(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .and_then(|version| version.trim().split('.').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(server_major_version(info), Some(7));
        assert_eq!(server_major_version("redis_version:6.2.14\n"), Some(6));
        assert_eq!(server_major_version("nothing here"), None);
    }

    #[test]
    fn redacts_passwords_in_every_place() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:s3cret@host:6379/2", "redis://:***@host:6379/2"),
            (
                "rediss://user:s3cret@host:6380",
                "rediss://user:***@host:6380",
            ),
            ("redis://s3cret@host", "redis://***@host"),
            ("redis://:p@ss/w?rd#x@host/0", "redis://:***@host/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("not a url s3cret", "<unparsable Redis URL>"),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("s3cret"), "{got}");
        }
    }

    #[test]
    fn only_noeviction_is_safe() {
        assert!(!RedisState::policy_can_evict("noeviction"));
        assert!(!RedisState::policy_can_evict("NoEviction "));
        for policy in [
            "allkeys-lru",
            "volatile-lru",
            "allkeys-random",
            "volatile-ttl",
            "",
        ] {
            assert!(RedisState::policy_can_evict(policy), "{policy}");
        }
    }
}
