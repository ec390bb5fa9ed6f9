//! Upload state and tail for distributed tusk, in Redis.
//!
//! Every key of an upload shares the Redis Cluster hash tag `{<id>}`, so the Lua script behind
//! each operation touches one slot and runs atomically:
//!
//! - `<prefix>{<id>}:state`: hash with `v` (schema version, 1), `length` (empty while
//!   deferred), `metadata` (JSON), `part_size`, `multipart` (empty until set), `finished` (0/1)
//!   and `fence` (the newest fencing token seen);
//! - `<prefix>{<id>}:parts`: list of the committed parts' ETags, part 1 first;
//! - `<prefix>{<id>}:tail`: string with the bytes after the last committed part (absent when
//!   empty).
//! - `<prefix>{<id>}:finals`: set of the final uploads made from this partial upload
//!   (concatenation), deleted with the upload;
//! - `<prefix>expiry` (not per upload): sorted set of upload ids by expiry time.
//!
//! Every state-changing call, and `load`, refuses a fencing token older than the stored one and
//! stores the newest, so a paused or partitioned old lock holder can never overwrite newer state.

mod error;
mod limits;
mod scripts;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tracing::Instrument as _;
use tusk_core::{Commit, Metadata, StateStore, TailChange, UploadId, UploadState};

pub use error::RedisError;
pub use limits::RedisLimits;

use limits::{Admission, MemoryUse};

/// The schema version written to every state hash; a reader refuses any other.
const SCHEMA_VERSION: &[u8] = b"1";
/// Bound on one connection attempt, so an unreachable Redis fails requests quickly instead of
/// holding them until the lock lease expires.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one command. Generous: a commit can carry a tail of up to one part (tens of MiB).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra connection attempts (about 1-2 s apart) before waiting commands fail with
/// `Unavailable`: enough to ride out a Redis restart, short enough for a quick 503. The next
/// command starts a new round, so the store heals by itself once Redis is back.
const RECONNECT_RETRIES: usize = 1;

/// The Redis [`StateStore`]. Cheap to clone: clones share one multiplexed connection that
/// reconnects by itself.
#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    prefix: String,
    /// The URL with its password redacted, for messages.
    url: String,
    /// The server takes scripts flagged to run while it is out of memory (Redis 7 and later).
    oom_flags: bool,
    /// Limits on new uploads.
    admission: Arc<Admission>,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connect to `url` (`redis://[user][:password@]host[:port][/db]`, or `rediss://` for TLS)
    /// and PING, so a wrong address or password fails at start-up rather than on the first
    /// upload. Keys are named `<key_prefix>{<id>}:...`.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisState, RedisError> {
        // A brace in the prefix would become the hash tag and put all uploads in one slot.
        if key_prefix.contains(['{', '}']) {
            return Err(RedisError::InvalidPrefix(key_prefix.to_owned()));
        }
        let redacted = redact_url(url);
        if is_tls(url) {
            ensure_crypto_provider();
        }
        let client = redis::Client::open(url).map_err(|source| RedisError::InvalidUrl {
            url: redacted.clone(),
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(RECONNECT_RETRIES);
        let connect = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            Ok::<_, redis::RedisError>((conn, info))
        };
        let (conn, info) = connect.await.map_err(|source| RedisError::Connect {
            url: redacted.clone(),
            source,
        })?;
        let oom_flags = server_major_version(&info).is_some_and(|major| major >= 7);
        if !oom_flags {
            tracing::warn!(
                "Redis older than 7 (or its version unknown): when it is full (maxmemory), uploads cannot be deleted or finished to free memory; raise maxmemory then"
            );
        }
        tracing::debug!(url = %redacted, prefix = key_prefix, "connected to Redis");
        Ok(RedisState {
            conn,
            prefix: key_prefix.to_owned(),
            url: redacted,
            oom_flags,
            admission: Arc::new(Admission::new(RedisLimits::default())),
        })
    }

    /// Apply `limits` to new uploads (instead of [`RedisLimits::default`]).
    pub fn with_limits(mut self, limits: RedisLimits) -> Result<RedisState, RedisError> {
        limits.validate()?;
        self.admission = Arc::new(Admission::new(limits));
        Ok(self)
    }

    /// Refuse a new upload while a limit of [`RedisLimits`] is reached: counting the expiry
    /// index costs one `ZCARD`, and Redis's memory use is read at most once a second.
    async fn admit_new_upload(&self) -> Result<(), RedisError> {
        let admission = &self.admission;
        let indexed = if admission.limits.max_uploads > 0 {
            let mut cmd = redis::cmd("ZCARD");
            cmd.arg(self.expiry_key());
            Some(self.query::<u64>("count_uploads", None, &cmd).await?)
        } else {
            None
        };
        let reading = if admission.needs_memory_reading() {
            let mut conn = self.conn.clone();
            let info = redis::cmd("INFO").arg("memory").to_owned();
            match self
                .timed("memory", None, info.query_async::<String>(&mut conn))
                .await
            {
                Ok(info) => MemoryUse::parse(&info),
                // A managed Redis may refuse INFO: the memory limit cannot apply there, and
                // Redis's own maxmemory is the last bound.
                Err(error) => {
                    tracing::debug!(%error, "cannot read Redis's memory use");
                    None
                }
            }
        } else {
            None
        };
        admission.admit(indexed, reading)
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

    /// Whether Redis may evict keys under `policy`: anything but `noeviction` can.
    pub fn policy_can_evict(policy: &str) -> bool {
        !policy.trim().eq_ignore_ascii_case("noeviction")
    }

    /// The keys of `id`, sharing its hash tag: state, parts, tail, and the final uploads made
    /// from it.
    fn keys(&self, id: &UploadId) -> [String; 4] {
        let base = format!("{}{{{}}}", self.prefix, id.as_str());
        [
            format!("{base}:state"),
            format!("{base}:parts"),
            format!("{base}:tail"),
            self.finals_key(id),
        ]
    }

    /// The sorted set indexing uploads by expiry (score: Unix seconds). It spans uploads, so it
    /// is kept next to the per-upload scripts rather than inside them (a script touches one
    /// upload's slot only); the reaper re-checks each upload's own state before acting.
    fn expiry_key(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    /// The set of final uploads made from partial upload `id` (same hash tag as its state).
    fn finals_key(&self, id: &UploadId) -> String {
        format!("{}{{{}}}:finals", self.prefix, id.as_str())
    }

    /// Record (or drop) `id` in the expiry index. The index only says where to look: the reaper
    /// re-checks each upload's own state and re-indexes (or drops) an entry that is wrong.
    async fn index_expiry(&self, id: &UploadId, at: Option<u64>) -> Result<(), RedisError> {
        let cmd = match at {
            Some(at) => {
                let mut c = redis::cmd("ZADD");
                c.arg(self.expiry_key()).arg(at).arg(id.as_str());
                c
            }
            None => {
                let mut c = redis::cmd("ZREM");
                c.arg(self.expiry_key()).arg(id.as_str());
                c
            }
        };
        let _: i64 = self.query("index_expiry", Some(id), &cmd).await?;
        Ok(())
    }

    /// Send one plain command, with the same span and duration metric as a script.
    async fn query<T: redis::FromRedisValue>(
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
    async fn timed<T>(
        &self,
        op: &'static str,
        id: Option<&UploadId>,
        request: impl Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
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

    /// Run `script` on the keys of `id` with `args`, and split its marker off the reply.
    /// `script` in the form this server runs while it is out of memory, if it can.
    fn oom_safe<'a>(&self, script: &'a scripts::OomSafe) -> &'a Script {
        if self.oom_flags {
            &script.flagged
        } else {
            &script.plain
        }
    }

    async fn run(
        &self,
        op: &'static str,
        script: &Script,
        id: &UploadId,
        args: impl FnOnce(&mut redis::Cmd),
    ) -> Result<Vec<Value>, RedisError> {
        // EVALSHA built here rather than through `ScriptInvocation`, which copies every
        // argument once more (a tail append's bytes are up to a part).
        let keys = self.keys(id);
        let mut call = redis::cmd("EVALSHA");
        call.arg(script.get_hash()).arg(keys.len());
        for key in keys {
            call.arg(key);
        }
        args(&mut call);
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
}

/// Whether `url` asks for TLS.
fn is_tls(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or_default();
    scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
}

/// rustls needs a process-wide crypto provider. It picks one by itself only when exactly one is
/// compiled in; in tusk two are (aws-lc-rs for S3, ring) or, in this crate alone, none, and the
/// first TLS connection would panic. So install ring's, unless the binary already chose one.
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

/// Split a script reply into its marker and the rest; any marker but `ok` is an error.
fn split_marker(reply: Value) -> Result<Vec<Value>, RedisError> {
    let Value::Array(mut items) = reply else {
        return Err(RedisError::Corrupt(format!(
            "script replied {reply:?}, not an array"
        )));
    };
    if items.is_empty() {
        return Err(RedisError::Corrupt("script replied an empty array".into()));
    }
    let marker = bytes_of(items.remove(0), "reply marker")?;
    match marker.as_slice() {
        b"ok" => Ok(items),
        b"notfound" => Err(RedisError::NotFound),
        b"fenced" => Err(RedisError::Fenced),
        b"mismatch" => Err(RedisError::Mismatch),
        b"exists" => Err(RedisError::Exists),
        // The caller knows which value was already set and says so.
        b"set" => Err(RedisError::AlreadySet("value")),
        other => Err(RedisError::Corrupt(format!(
            "script replied unknown marker {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn bytes_of(value: Value, what: &str) -> Result<Vec<u8>, RedisError> {
    match value {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        other => Err(RedisError::Corrupt(format!("{what} is {other:?}"))),
    }
}

fn text_of(value: Vec<u8>, what: &str) -> Result<String, RedisError> {
    String::from_utf8(value).map_err(|_| RedisError::Corrupt(format!("{what} is not UTF-8")))
}

fn number_of(value: &[u8], what: &str) -> Result<u64, RedisError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            RedisError::Corrupt(format!(
                "{what} is {:?}, not a number",
                String::from_utf8_lossy(value)
            ))
        })
}

/// Build the state of `id` from a `read()` reply: hash fields, number of parts, tail length.
fn parse_state(id: &UploadId, items: Vec<Value>) -> Result<UploadState, RedisError> {
    let [hash, parts, tail_len]: [Value; 3] = items
        .try_into()
        .map_err(|_| RedisError::Corrupt("state reply does not have 3 elements".into()))?;
    let Value::Array(flat) = hash else {
        return Err(RedisError::Corrupt("state hash is not an array".into()));
    };
    let mut fields = HashMap::new();
    let mut flat = flat.into_iter();
    while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
        fields.insert(bytes_of(k, "state field")?, bytes_of(v, "state value")?);
    }
    let mut field = |name: &str| {
        fields
            .remove(name.as_bytes())
            .ok_or_else(|| RedisError::Corrupt(format!("state hash has no {name:?}")))
    };
    let version = field("v")?;
    if version != SCHEMA_VERSION {
        return Err(RedisError::Corrupt(format!(
            "state schema version {:?} is not {:?}",
            String::from_utf8_lossy(&version),
            String::from_utf8_lossy(SCHEMA_VERSION)
        )));
    }
    let length = match field("length")? {
        l if l.is_empty() => None,
        l => Some(number_of(&l, "length")?),
    };
    let metadata: Metadata = serde_json::from_slice(&field("metadata")?)
        .map_err(|e| RedisError::Corrupt(format!("metadata is not valid JSON: {e}")))?;
    let part_size = number_of(&field("part_size")?, "part_size")?;
    let multipart_id = match field("multipart")? {
        m if m.is_empty() => None,
        m => Some(text_of(m, "multipart id")?),
    };
    let finished = match field("finished")?.as_slice() {
        b"0" => false,
        b"1" => true,
        other => {
            return Err(RedisError::Corrupt(format!(
                "finished is {:?}, not 0 or 1",
                String::from_utf8_lossy(other)
            )));
        }
    };
    // Optional: absent in hashes written before expiration existed.
    let expires_at = match fields.remove(b"expires".as_slice()) {
        None => None,
        Some(e) if e.is_empty() => None,
        Some(e) => Some(number_of(&e, "expires")?),
    };
    let concat = match fields.remove(b"concat".as_slice()) {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => Some(
            serde_json::from_slice(&c)
                .map_err(|e| RedisError::Corrupt(format!("concat is not valid JSON: {e}")))?,
        ),
    };
    let part_count = match parts {
        Value::Int(n) => u32::try_from(n)
            .map_err(|_| RedisError::Corrupt(format!("number of parts {n} is out of range")))?,
        other => return Err(RedisError::Corrupt(format!("number of parts is {other:?}"))),
    };
    let tail_len = match tail_len {
        Value::Int(n) => u64::try_from(n)
            .map_err(|_| RedisError::Corrupt(format!("tail length {n} is negative")))?,
        other => return Err(RedisError::Corrupt(format!("tail length is {other:?}"))),
    };
    Ok(UploadState {
        id: id.clone(),
        length,
        metadata,
        part_size,
        multipart_id,
        part_count,
        tail_len,
        finished,
        expires_at,
        concat,
    })
}

/// The upload ids among `members` of a set: anything else cannot be an upload, and is skipped
/// rather than failing the caller.
fn upload_ids(members: Vec<String>) -> Vec<UploadId> {
    members
        .iter()
        .filter_map(|id| UploadId::parse(id).ok())
        .collect()
}

/// Replace the generic "value already set" with the name of the value.
fn already_set(what: &'static str) -> impl FnOnce(RedisError) -> RedisError {
    move |e| match e {
        RedisError::AlreadySet(_) => RedisError::AlreadySet(what),
        other => other,
    }
}

#[async_trait]
impl StateStore for RedisState {
    async fn check(&self) -> tusk_core::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(RedisError::from)?;
        Ok(())
    }

    async fn create(&self, state: &UploadState) -> tusk_core::Result<()> {
        // Neither the tail's bytes nor the parts' ETags are part of `UploadState`, so a new
        // upload cannot claim any.
        if state.tail_len != 0 || state.part_count != 0 {
            return Err(
                RedisError::Invalid("a new upload cannot start with parts or tail bytes").into(),
            );
        }
        let metadata = serde_json::to_string(&state.metadata)
            .map_err(|e| RedisError::Corrupt(format!("metadata does not serialise: {e}")))?;
        let length = state.length.map(|l| l.to_string()).unwrap_or_default();
        self.admit_new_upload().await?;
        // Indexed first: an entry whose upload was never created is dropped by the reaper,
        // while an upload missing from the index would never expire.
        if let Some(at) = state.expires_at {
            self.index_expiry(&state.id, Some(at)).await?;
        }
        let concat = match &state.concat {
            Some(concat) => serde_json::to_string(concat)
                .map_err(|e| RedisError::Corrupt(format!("concat does not serialise: {e}")))?,
            None => String::new(),
        };
        self.run("create", &scripts::CREATE, &state.id, |inv| {
            inv.arg(length)
                .arg(metadata)
                .arg(state.part_size)
                .arg(state.multipart_id.as_deref().unwrap_or(""))
                .arg(if state.finished { "1" } else { "0" })
                .arg(
                    state
                        .expires_at
                        .map(|at| at.to_string())
                        .unwrap_or_default(),
                )
                .arg(concat.as_str());
        })
        .await?;
        Ok(())
    }

    async fn get(&self, id: &UploadId) -> tusk_core::Result<UploadState> {
        let items = self.run("get", &scripts::GET, id, |_| {}).await?;
        Ok(parse_state(id, items)?)
    }

    async fn load(&self, id: &UploadId, fence: u64) -> tusk_core::Result<UploadState> {
        let items = self
            .run("load", self.oom_safe(&scripts::LOAD), id, |inv| {
                inv.arg(fence);
            })
            .await?;
        Ok(parse_state(id, items)?)
    }

    async fn read_tail_range(
        &self,
        id: &UploadId,
        range: std::ops::Range<u64>,
        fence: Option<u64>,
    ) -> tusk_core::Result<Bytes> {
        // GETRANGE takes an inclusive end and reads negative indexes from the end (`0 -1` is
        // the whole string); `1 0` reads nothing, so an empty range still checks the upload.
        let (first, last) = match range.end.checked_sub(1) {
            Some(last) if range.start <= last && range.start <= i64::MAX as u64 => {
                (range.start, last.min(i64::MAX as u64))
            }
            _ => (1, 0),
        };
        let fence = fence.map(|f| f.to_string()).unwrap_or_default();
        let items = self
            .run("read_tail", &scripts::READ_TAIL, id, |inv| {
                inv.arg(first).arg(last).arg(fence.as_str());
            })
            .await?;
        let tail = items
            .into_iter()
            .next()
            .ok_or_else(|| RedisError::Corrupt("tail reply is empty".into()))?;
        Ok(Bytes::from(bytes_of(tail, "tail")?))
    }

    async fn etags(&self, id: &UploadId) -> tusk_core::Result<Vec<String>> {
        let items = self.run("etags", &scripts::ETAGS, id, |_| {}).await?;
        let Some(Value::Array(etags)) = items.into_iter().next() else {
            return Err(RedisError::Corrupt("parts list is not an array".into()).into());
        };
        let etags = etags
            .into_iter()
            .map(|p| text_of(bytes_of(p, "part ETag")?, "part ETag"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(etags)
    }

    async fn set_multipart(
        &self,
        id: &UploadId,
        fence: u64,
        multipart_id: &str,
    ) -> tusk_core::Result<()> {
        // The schema stores "no multipart id" as an empty string.
        if multipart_id.is_empty() {
            return Err(RedisError::Invalid("empty multipart upload id").into());
        }
        self.run(
            "set_multipart",
            self.oom_safe(&scripts::SET_MULTIPART),
            id,
            |inv| {
                inv.arg(fence).arg(multipart_id);
            },
        )
        .await
        .map_err(already_set("multipart upload id"))?;
        Ok(())
    }

    async fn commit(
        &self,
        id: &UploadId,
        fence: u64,
        commit: Commit,
    ) -> tusk_core::Result<UploadState> {
        let (mode, bytes) = match &commit.tail {
            TailChange::Keep => ("keep", &[][..]),
            TailChange::Append(b) => ("append", &b[..]),
            TailChange::Replace(b) => ("replace", &b[..]),
        };
        // Adding parts and emptying the tail frees memory: allowed when Redis is full.
        let script = match &commit.tail {
            TailChange::Replace(b) if b.is_empty() => self.oom_safe(&scripts::COMMIT),
            _ => &scripts::COMMIT.plain,
        };
        let items = self
            .run("commit", script, id, |inv| {
                inv.arg(fence)
                    .arg(commit.expect_parts)
                    .arg(commit.expect_tail_len)
                    .arg(mode)
                    .arg(bytes);
                for etag in &commit.new_parts {
                    inv.arg(etag.as_str());
                }
            })
            .await?;
        Ok(parse_state(id, items)?)
    }

    async fn set_length(&self, id: &UploadId, fence: u64, length: u64) -> tusk_core::Result<()> {
        self.run("set_length", &scripts::SET_LENGTH, id, |inv| {
            inv.arg(fence).arg(length);
        })
        .await
        .map_err(already_set("length"))?;
        Ok(())
    }

    async fn finish(&self, id: &UploadId, fence: u64) -> tusk_core::Result<()> {
        self.run("finish", self.oom_safe(&scripts::FINISH), id, |inv| {
            inv.arg(fence);
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, id: &UploadId, fence: u64) -> tusk_core::Result<()> {
        self.run("delete", &scripts::DELETE, id, |inv| {
            inv.arg(fence);
        })
        .await?;
        // The upload is gone; a stale index entry is dropped by the reaper.
        if let Err(err) = self.index_expiry(id, None).await {
            tracing::warn!(upload_id = %id, error = %err, "upload deleted; its expiry index entry is left to the reaper");
        }
        Ok(())
    }

    async fn link_final(&self, partial: &UploadId, final_id: &UploadId) -> tusk_core::Result<()> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.finals_key(partial)).arg(final_id.as_str());
        let _: i64 = self.query("link_final", Some(partial), &cmd).await?;
        Ok(())
    }

    async fn finals_of(&self, partial: &UploadId) -> tusk_core::Result<Vec<UploadId>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.finals_key(partial));
        let ids = self.query("finals_of", Some(partial), &cmd).await?;
        Ok(upload_ids(ids))
    }

    async fn set_expiry(
        &self,
        id: &UploadId,
        fence: u64,
        expires_at: Option<u64>,
    ) -> tusk_core::Result<()> {
        // Indexed after the fenced write (a refused write changes nothing). If indexing fails,
        // the entry keeps its old time; the reaper re-indexes an entry that comes up early. A
        // cleared expiry leaves the index even when the upload is gone.
        let stored = self
            .run("set_expiry", &scripts::SET_EXPIRY, id, |inv| {
                inv.arg(fence)
                    .arg(expires_at.map(|at| at.to_string()).unwrap_or_default());
            })
            .await;
        match stored {
            Ok(_) => self.index_expiry(id, expires_at).await?,
            Err(RedisError::NotFound) if expires_at.is_none() => {
                self.index_expiry(id, None).await?;
                return Err(RedisError::NotFound.into());
            }
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }

    async fn expired(&self, before: u64, limit: usize) -> tusk_core::Result<Vec<UploadId>> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.expiry_key())
            .arg("-inf")
            .arg(format!("({before}"))
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let ids = self.query("expired", None, &cmd).await?;
        Ok(upload_ids(ids))
    }
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

    #[test]
    fn markers_map_to_errors() {
        let reply = |m: &str| Value::Array(vec![Value::BulkString(m.as_bytes().to_vec())]);
        assert!(matches!(split_marker(reply("ok")), Ok(v) if v.is_empty()));
        assert!(matches!(
            split_marker(reply("notfound")),
            Err(RedisError::NotFound)
        ));
        assert!(matches!(
            split_marker(reply("fenced")),
            Err(RedisError::Fenced)
        ));
        assert!(matches!(
            split_marker(reply("mismatch")),
            Err(RedisError::Mismatch)
        ));
        assert!(matches!(
            split_marker(reply("exists")),
            Err(RedisError::Exists)
        ));
        assert!(matches!(
            split_marker(reply("set")),
            Err(RedisError::AlreadySet(_))
        ));
        assert!(matches!(
            split_marker(reply("what")),
            Err(RedisError::Corrupt(_))
        ));
        assert!(matches!(
            split_marker(Value::Nil),
            Err(RedisError::Corrupt(_))
        ));
    }

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
            (RedisError::NotFound, K::NotFound),
            (RedisError::Fenced, K::LockLost),
            (RedisError::Mismatch, K::OffsetMismatch),
            (RedisError::AlreadySet("length"), K::Invalid),
            (RedisError::Exists, K::Invalid),
            (RedisError::Corrupt("x".into()), K::Backend),
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
