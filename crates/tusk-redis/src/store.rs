//! The [`StateStore`] on Redis: key naming, the expiry index, admission of new uploads, and each
//! operation as its script or command.

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use tusk_core::{Commit, StateStore, TailChange, UploadId, UploadState};

use crate::limits::MemoryUse;
use crate::link::texts;
use crate::reply::{already_set, bytes_of, parse_state, text_of, upload_ids};
use crate::{RedisError, RedisState, scripts};

/// Shards of the expiry index in a Redis Cluster: one sorted set would hold every upload's
/// entry in one slot, on one master.
const CLUSTER_EXPIRY_SHARDS: u32 = 16;

/// A tail up to this long goes to Redis inside its commit script (one round trip for a small
/// PATCH's bytes); a longer one is staged first. At 512 KiB, the copies of inline tails raised
/// the peak RSS of 8 concurrent uploads by 4 MiB (docs/benchmarks.md).
const INLINE_AT_MOST: usize = 256 << 10;
/// The bytes one staging command carries (see `stage`): each command copies one slice into
/// the node's memory, three times on its way (argument, packed command, connection buffer).
const STAGE_SLICE: usize = 128 << 10;
/// How long staged bytes wait for their commit: far longer than any commit takes.
const STAGE_TTL_MS: u64 = 10 * 60 * 1000;

impl RedisState {
    /// Refuse a new upload while a limit of [`RedisLimits`](crate::RedisLimits) is reached:
    /// counting the expiry index costs one `ZCARD`, and Redis's memory use is read at most once
    /// a second.
    async fn admit_new_upload(&self) -> Result<(), RedisError> {
        let admission = &self.admission;
        let indexed = if admission.limits.max_uploads > 0 {
            // One count per shard of the index, all at once.
            let counts = self.expiry_keys().into_iter().map(|key| async move {
                let mut cmd = redis::cmd("ZCARD");
                cmd.arg(key);
                self.query::<u64>("count_uploads", None, &cmd).await
            });
            let counts = futures_util::future::try_join_all(counts).await?;
            Some(counts.into_iter().sum())
        } else {
            None
        };
        let reading = if admission.needs_memory_reading() {
            let mut conn = self.conn.clone();
            let info = redis::cmd("INFO").arg("memory").to_owned();
            match self
                .timed("memory", None, info.query_async::<Value>(&mut conn))
                .await
            {
                // A cluster answers for each master.
                Ok(info) => {
                    MemoryUse::fullest(texts(info).iter().filter_map(|i| MemoryUse::parse(i)))
                }
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

    /// Write `bytes` to a staging key of `id` (its hash tag; one per fence, so an older holder
    /// never mixes in) in slices of [`STAGE_SLICE`], one command at a time; returns the key.
    /// It expires by itself if the commit never comes.
    async fn stage(&self, id: &UploadId, fence: u64, bytes: &[u8]) -> Result<String, RedisError> {
        let key = format!("{}:staging:{fence}", self.base(id));
        for (n, slice) in bytes.chunks(STAGE_SLICE).enumerate() {
            let mut cmd = redis::cmd(if n == 0 { "SET" } else { "APPEND" });
            cmd.arg(&key).arg(slice);
            if n == 0 {
                cmd.arg("PX").arg(STAGE_TTL_MS);
            }
            self.query::<Value>("stage", Some(id), &cmd).await?;
        }
        Ok(key)
    }

    /// What every key of `id` starts with: the prefix and the upload's hash tag.
    fn base(&self, id: &UploadId) -> String {
        format!("{}{{{}}}", self.prefix, id.as_str())
    }

    /// The keys of `id`, sharing its hash tag: state, parts, tail, and the final uploads made
    /// from it.
    pub(crate) fn keys(&self, id: &UploadId) -> [String; 4] {
        let base = self.base(id);
        [
            format!("{base}:state"),
            format!("{base}:parts"),
            format!("{base}:tail"),
            self.finals_key(id),
        ]
    }

    /// The sorted sets indexing uploads by expiry (score: Unix seconds): one on a single
    /// Redis, [`CLUSTER_EXPIRY_SHARDS`] in a Redis Cluster, each with a hash tag of its own so
    /// they spread over the masters. The index spans uploads, so it is kept next to the
    /// per-upload scripts rather than inside them (a script touches one upload's slot only); the
    /// reaper re-checks each upload's own state before acting.
    fn expiry_keys(&self) -> Vec<String> {
        if !self.is_cluster() {
            return vec![format!("{}expiry", self.prefix)];
        }
        (0..CLUSTER_EXPIRY_SHARDS)
            .map(|shard| self.expiry_shard(shard))
            .collect()
    }

    /// Shard `shard` of a cluster's expiry index.
    fn expiry_shard(&self, shard: u32) -> String {
        let prefix = &self.prefix;
        format!("{prefix}expiry:{{{prefix}expiry-{shard}}}")
    }

    /// The expiry index (shard) that holds `id`.
    fn expiry_key_of(&self, id: &UploadId) -> String {
        if !self.is_cluster() {
            return format!("{}expiry", self.prefix);
        }
        // FNV-1a: stable across nodes and versions, unlike std's hasher.
        let hash = id.as_str().bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        self.expiry_shard(hash % CLUSTER_EXPIRY_SHARDS)
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
                c.arg(self.expiry_key_of(id)).arg(at).arg(id.as_str());
                c
            }
            None => {
                let mut c = redis::cmd("ZREM");
                c.arg(self.expiry_key_of(id)).arg(id.as_str());
                c
            }
        };
        let _: i64 = self.query("index_expiry", Some(id), &cmd).await?;
        Ok(())
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
        let placement = if state.placement.is_default() {
            String::new()
        } else {
            serde_json::to_string(&state.placement)
                .map_err(|e| RedisError::Corrupt(format!("placement does not serialise: {e}")))?
        };
        self.run_acknowledged("create", &scripts::CREATE, &state.id, |inv| {
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
                .arg(concat.as_str())
                .arg(
                    state
                        .created_at
                        .map(|at| at.to_string())
                        .unwrap_or_default(),
                )
                .arg(placement.as_str());
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
            .run_acknowledged("load", self.oom_safe(&scripts::LOAD), id, |inv| {
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
        // A large tail goes to Redis in slices first: each command copies one slice, where
        // one command would copy the whole tail into the node's memory, outside the part
        // buffer budget.
        let staged = |b: &[u8]| b.len() > INLINE_AT_MOST;
        let (mode, bytes) = match &commit.tail {
            TailChange::Keep => ("keep", &[][..]),
            TailChange::Append(b) if staged(b) => ("append-staged", &b[..]),
            TailChange::Append(b) => ("append", &b[..]),
            TailChange::Replace(b) if staged(b) => ("replace-staged", &b[..]),
            TailChange::Replace(b) => ("replace", &b[..]),
        };
        // The common small append: its bytes go as a plain APPEND beside the script, not
        // through Lua (see `scripts::COMMIT_APPENDED`).
        if mode == "append"
            && !bytes.is_empty()
            && commit.new_parts.is_empty()
            && self.appends_outside_lua()
        {
            let items = self
                .run_after_append("commit", &scripts::COMMIT_APPENDED, id, bytes, |inv| {
                    inv.arg(fence)
                        .arg(commit.expect_parts)
                        .arg(commit.expect_tail_len)
                        .arg(bytes.len());
                })
                .await?;
            return Ok(parse_state(id, items)?);
        }
        // Adding parts and emptying the tail frees memory: allowed when Redis is full.
        let script = match &commit.tail {
            TailChange::Replace(b) if b.is_empty() => self.oom_safe(&scripts::COMMIT),
            _ => &scripts::COMMIT.plain,
        };
        let staging = if staged(bytes) {
            Some(self.stage(id, fence, bytes).await?)
        } else {
            None
        };
        let items = self
            .run_acknowledged_keys("commit", script, id, staging.as_deref(), |inv| {
                inv.arg(fence)
                    .arg(commit.expect_parts)
                    .arg(commit.expect_tail_len)
                    .arg(mode);
                // A staged tail is in the staging key: the script checks its length.
                if staging.is_some() {
                    inv.arg(bytes.len());
                } else {
                    inv.arg(bytes);
                }
                for etag in &commit.new_parts {
                    inv.arg(etag.as_str());
                }
            })
            .await?;
        Ok(parse_state(id, items)?)
    }

    async fn set_length(&self, id: &UploadId, fence: u64, length: u64) -> tusk_core::Result<()> {
        self.run_acknowledged("set_length", &scripts::SET_LENGTH, id, |inv| {
            inv.arg(fence).arg(length);
        })
        .await
        .map_err(already_set("length"))?;
        Ok(())
    }

    async fn finish(&self, id: &UploadId, fence: u64) -> tusk_core::Result<()> {
        self.run_acknowledged("finish", self.oom_safe(&scripts::FINISH), id, |inv| {
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
        // The oldest `limit` of each shard, all at once, merged oldest first.
        let shards = self.expiry_keys().into_iter().map(|key| async move {
            let mut cmd = redis::cmd("ZRANGEBYSCORE");
            cmd.arg(key)
                .arg("-inf")
                .arg(format!("({before}"))
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
            self.query::<Vec<(String, f64)>>("expired", None, &cmd)
                .await
        });
        let mut due: Vec<(String, f64)> = futures_util::future::try_join_all(shards)
            .await?
            .into_iter()
            .flatten()
            .collect();
        due.sort_by(|a, b| a.1.total_cmp(&b.1));
        due.truncate(limit);
        Ok(upload_ids(due.into_iter().map(|(id, _)| id).collect()))
    }
}
