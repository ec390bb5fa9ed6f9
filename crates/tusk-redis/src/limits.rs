//! Limits on what new uploads may add to Redis, checked before an upload is created: the number
//! of uploads in the expiry index, and how full Redis's memory is. Uploads already under way are
//! never refused by them, so they keep the room they need to finish (and, once Redis is full,
//! finishing and deleting still free memory: see the scripts' `allow-oom` forms).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::RedisError;

/// How long a reading of Redis's memory use is trusted: the check costs one `INFO memory` a
/// second per node, not one per new upload.
const MEMORY_READING_TTL: Duration = Duration::from_secs(1);

/// What new uploads may add to Redis. `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisLimits {
    /// New uploads are refused while the expiry index holds this many uploads: every upload
    /// that can still expire (unfinished ones, and finished ones kept for a retention time).
    pub max_uploads: u64,
    /// New uploads are refused while Redis's `used_memory` is above this percentage of its
    /// `maxmemory` (ignored when Redis has no `maxmemory`).
    pub memory_high_water_percent: u8,
}

impl Default for RedisLimits {
    fn default() -> Self {
        Self {
            max_uploads: 100_000,
            memory_high_water_percent: 90,
        }
    }
}

impl RedisLimits {
    /// Check the values; errors name the setting's key.
    pub fn validate(&self) -> Result<(), RedisError> {
        if self.memory_high_water_percent > 100 {
            return Err(RedisError::Setting {
                key: "redis_memory_high_water",
                message: "must be a percentage from 0 (off) to 100",
            });
        }
        Ok(())
    }
}

/// Redis's memory use, as `INFO memory` reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryUse {
    used: u64,
    max: u64,
}

impl MemoryUse {
    pub(crate) fn parse(info: &str) -> Option<MemoryUse> {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse().ok())
        };
        Some(MemoryUse {
            used: field("used_memory")?,
            max: field("maxmemory")?,
        })
    }

    /// The fullest of several readings (a cluster's masters): the first to fill up refuses
    /// the writes of every upload in its slots.
    pub(crate) fn fullest(readings: impl IntoIterator<Item = MemoryUse>) -> Option<MemoryUse> {
        readings.into_iter().max_by(|a, b| {
            let ratio = |m: &MemoryUse| m.ratio().unwrap_or(0.0);
            ratio(a).total_cmp(&ratio(b))
        })
    }

    /// Used memory as a fraction of `maxmemory`; `None` when Redis has no limit.
    fn ratio(self) -> Option<f64> {
        (self.max > 0).then(|| self.used as f64 / self.max as f64)
    }
}

/// The limits and the last reading of Redis's memory, shared by the clones of a store.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub(crate) limits: RedisLimits,
    memory: Mutex<Option<(Instant, MemoryUse)>>,
}

impl Admission {
    pub(crate) fn new(limits: RedisLimits) -> Self {
        Self {
            limits,
            memory: Mutex::new(None),
        }
    }

    /// Whether a fresh `INFO memory` is needed for this check.
    pub(crate) fn needs_memory_reading(&self) -> bool {
        if self.limits.memory_high_water_percent == 0 {
            return false;
        }
        match *self.memory.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((at, _)) => at.elapsed() >= MEMORY_READING_TTL,
            None => true,
        }
    }

    /// Decide on a new upload, given the expiry index's size (if counted) and a fresh memory
    /// reading (if one was taken). Refusals are counted by reason.
    pub(crate) fn admit(
        &self,
        indexed: Option<u64>,
        reading: Option<MemoryUse>,
    ) -> Result<(), RedisError> {
        let metrics = tusk_metrics::metrics();
        if let Some(indexed) = indexed {
            metrics
                .uploads_indexed
                .set(i64::try_from(indexed).unwrap_or(i64::MAX));
            let max = self.limits.max_uploads;
            if max > 0 && indexed >= max {
                metrics
                    .uploads_refused
                    .with_label_values(&["max_uploads"])
                    .inc();
                return Err(RedisError::Full(format!(
                    "this service holds its limit of {max} uploads (max_uploads); new uploads are refused until some finish or expire: retry later"
                )));
            }
        }
        let memory = {
            let mut cached = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(reading) = reading {
                *cached = Some((Instant::now(), reading));
            }
            cached.map(|(_, memory)| memory)
        };
        let high_water = self.limits.memory_high_water_percent;
        if let Some(ratio) = memory.and_then(MemoryUse::ratio) {
            metrics.redis_memory_used_ratio.set(ratio);
            if high_water > 0 && ratio * 100.0 > f64::from(high_water) {
                metrics
                    .uploads_refused
                    .with_label_values(&["redis_memory"])
                    .inc();
                return Err(RedisError::Full(format!(
                    "the state store (Redis) is {:.0}% full (redis_memory_high_water {high_water}%); new uploads are refused until uploads under way finish or expire: retry later",
                    ratio * 100.0
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_use_parses_info_and_ignores_similar_names() {
        let info = "# Memory\r\nused_memory:900\r\nused_memory_human:900B\r\nused_memory_rss:5000\r\nmaxmemory:1000\r\nmaxmemory_human:1000B\r\n";
        let memory = MemoryUse::parse(info).unwrap();
        assert_eq!((memory.used, memory.max), (900, 1000));
        assert_eq!(memory.ratio(), Some(0.9));
        let unlimited = MemoryUse::parse("used_memory:900\nmaxmemory:0\n").unwrap();
        assert_eq!(unlimited.ratio(), None);
        assert!(MemoryUse::parse("used_memory:900\n").is_none());
        let fullest = MemoryUse::fullest([
            MemoryUse { used: 5, max: 10 },
            MemoryUse { used: 9, max: 10 },
            unlimited,
        ])
        .unwrap();
        assert_eq!(fullest.ratio(), Some(0.9));
    }

    #[test]
    fn admission_refuses_at_the_upload_limit_and_above_the_high_water_mark() {
        let admission = Admission::new(RedisLimits {
            max_uploads: 10,
            memory_high_water_percent: 80,
        });
        assert!(admission.admit(Some(9), None).is_ok());
        let full = admission.admit(Some(10), None).unwrap_err();
        assert!(full.to_string().contains("max_uploads"), "{full}");
        let below = MemoryUse { used: 80, max: 100 };
        assert!(admission.admit(Some(0), Some(below)).is_ok());
        let above = MemoryUse { used: 81, max: 100 };
        let full = admission.admit(Some(0), Some(above)).unwrap_err();
        assert!(full.to_string().contains("81% full"), "{full}");
        // The reading is kept for the next check.
        assert!(admission.admit(Some(0), None).is_err());
        assert!(!admission.needs_memory_reading());

        let off = Admission::new(RedisLimits {
            max_uploads: 0,
            memory_high_water_percent: 0,
        });
        assert!(off.admit(Some(u64::MAX), Some(above)).is_ok());
        assert!(!off.needs_memory_reading());
    }

    #[test]
    fn a_high_water_mark_over_100_percent_is_refused_by_name() {
        let limits = RedisLimits {
            memory_high_water_percent: 101,
            ..RedisLimits::default()
        };
        let err = limits.validate().unwrap_err().to_string();
        assert!(err.contains("redis_memory_high_water"), "{err}");
    }
}
