use std::time::Duration;

/// The smallest part S3 accepts for any part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The largest part tusk cuts. S3 takes parts up to 5 GiB, but the bytes of a part that is not
/// full yet live in one Redis string, and Redis refuses strings (and arguments) over 512 MB.
pub const MAX_PART_SIZE: u64 = 512 * MIB;
/// The largest part S3 accepts (copied parts of a concatenation are cut at it).
pub(crate) const S3_MAX_PART_SIZE: u64 = 5 << 30;
const MIB: u64 = 1024 * 1024;

/// How the distributed store cuts uploads into parts and bounds its memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartConfig {
    /// Part size used unless an upload's length needs bigger parts (default 8 MiB).
    pub preferred_part_size: u64,
    /// Most parts an upload may have (S3 allows 10,000).
    pub max_parts: u32,
    /// Largest upload; sizes the parts of uploads whose length is deferred.
    pub max_size: u64,
    /// Parts of one upload being sent to object storage at once, besides the one filling.
    pub max_inflight_parts: usize,
    /// Longest a PATCH waits for room in the node's part buffer budget before it keeps what
    /// arrived and answers 503 (the binary sets the read timeout).
    pub budget_wait: Duration,
    /// Assemble final uploads (concatenation) from parts of one size too, for stores that
    /// require every part but the last to be the same size (Cloudflare R2). Uploads are always
    /// cut into equal parts; without this, a final's parts follow its partials' sizes.
    pub equal_parts: bool,
}

impl Default for MultipartConfig {
    fn default() -> Self {
        Self {
            preferred_part_size: 8 * MIB,
            max_parts: 10_000,
            max_size: 1 << 40,
            max_inflight_parts: 2,
            budget_wait: Duration::from_secs(30),
            equal_parts: false,
        }
    }
}

/// Slowest object storage is assumed to take a part at: the wait for a part's confirmation
/// allows its size at this rate on top of the budget wait.
const SLOWEST_PART_RATE: u64 = 4 * MIB;

/// Longest a PATCH waits for object storage to confirm one part of `part_size`: the budget wait
/// (the read timeout), plus the part's size at 4 MiB/s, so a 512 MiB part on a slow store is not
/// cut off while an 8 MiB part on a hung one is given up within seconds of the read timeout.
pub fn part_wait(part_size: u64, config: &MultipartConfig) -> Duration {
    config.budget_wait + Duration::from_secs(part_size.div_ceil(SLOWEST_PART_RATE))
}

/// The part size P of an upload of `length`: at least 5 MiB and the preferred size, large
/// enough that `max_parts` parts hold the whole upload, rounded up to a whole MiB.
///
/// An upload whose length is deferred gets the preferred size (at least 5 MiB), not a size that
/// would fit the maximum upload: parts sized for a 1 TiB maximum (105 MiB) would let a handful of
/// such uploads fill a node's part buffer budget. It then holds at most [`deferred_capacity`]
/// bytes, so it never needs more than `max_parts` parts either.
pub fn part_size_for(length: Option<u64>, config: &MultipartConfig) -> u64 {
    let base = MIN_PART_SIZE.max(config.preferred_part_size);
    let size = match length {
        Some(length) => base.max(length.div_ceil(u64::from(config.max_parts.max(1)))),
        None => base,
    };
    size.div_ceil(MIB).saturating_mul(MIB)
}

/// The most bytes an upload with parts of `part_size` may hold: `max_parts` parts, and never
/// more than the maximum upload size. For a deferred-length upload this is below the maximum
/// size when `max_parts` parts of the preferred size hold less.
pub fn deferred_capacity(part_size: u64, config: &MultipartConfig) -> u64 {
    part_size
        .saturating_mul(u64::from(config.max_parts))
        .min(config.max_size)
}

/// A node's part buffer budget unless configured (`max_buffered_bytes`).
pub const DEFAULT_BUFFER_BUDGET: u64 = 512 * MIB;

/// A setting of the distributed store that cannot work: its TOML key (the binary adds the flag
/// and environment variable) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MultipartConfigError {
    /// The setting's TOML key.
    pub key: &'static str,
    /// What is wrong and the fix.
    pub message: String,
}

impl MultipartConfig {
    /// Refuse settings that cannot work: part sizes S3 and Redis refuse, part counts S3
    /// refuses, a maximum upload that would need parts larger than a Redis string.
    pub fn validate(&self) -> Result<(), MultipartConfigError> {
        let invalid = |key, message: String| Err(MultipartConfigError { key, message });
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.preferred_part_size) {
            return invalid(
                "preferred_part_size",
                "must be between 5MiB (the S3 minimum) and 512MiB (the largest tail Redis holds)"
                    .into(),
            );
        }
        if !(1..=10_000).contains(&self.max_parts) {
            return invalid("max_parts", "must be between 1 and 10000".into());
        }
        if !(1..=64).contains(&self.max_inflight_parts) {
            return invalid("max_inflight_parts", "must be between 1 and 64".into());
        }
        if largest_part_size(self) > MAX_PART_SIZE {
            return invalid(
                "max_size",
                format!(
                    "{} bytes do not fit {} parts of at most 512MiB (the largest tail Redis holds); lower max_size or raise max_parts",
                    self.max_size, self.max_parts
                ),
            );
        }
        Ok(())
    }

    /// Refuse a part buffer budget (`max_buffered_bytes`) that cannot hold one part of the
    /// largest upload.
    pub fn check_budget(&self, budget: u64) -> Result<(), MultipartConfigError> {
        let part = largest_part_size(self);
        if budget < part {
            return Err(MultipartConfigError {
                key: "max_buffered_bytes",
                message: format!(
                    "must hold at least one part of the largest upload ({part} bytes with max_size {} and max_parts {})",
                    self.max_size, self.max_parts
                ),
            });
        }
        Ok(())
    }
}

/// The largest part any upload may need: the one of an upload of the maximum size.
pub fn largest_part_size(config: &MultipartConfig) -> u64 {
    part_size_for(Some(config.max_size), config).max(part_size_for(None, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused_by_their_key() {
        let ok = MultipartConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.check_budget(DEFAULT_BUFFER_BUDGET), Ok(()));
        let cases: [(MultipartConfig, &str); 4] = [
            (
                MultipartConfig {
                    preferred_part_size: 4 * MIB,
                    ..ok.clone()
                },
                "preferred_part_size",
            ),
            (
                MultipartConfig {
                    max_parts: 10_001,
                    ..ok.clone()
                },
                "max_parts",
            ),
            (
                MultipartConfig {
                    max_inflight_parts: 0,
                    ..ok.clone()
                },
                "max_inflight_parts",
            ),
            (
                MultipartConfig {
                    max_size: 6 << 40,
                    ..ok.clone()
                },
                "max_size",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().unwrap_err().key, key);
        }
        // The default 1 TiB maximum needs 105 MiB parts.
        assert_eq!(
            ok.check_budget(64 * MIB).unwrap_err().key,
            "max_buffered_bytes"
        );
    }

    #[test]
    fn part_sizes_follow_the_rule() {
        let config = MultipartConfig::default();
        let cases = [
            (Some(0), 8 * MIB),
            (Some(1), 8 * MIB),
            // 10,000 parts of 8 MiB hold 80,000 MiB; a byte more needs 9 MiB parts.
            (Some(80_000 * MIB), 8 * MIB),
            (Some(80_000 * MIB + 1), 9 * MIB),
            // Deferred: the preferred size, whatever the maximum upload size.
            (None, 8 * MIB),
        ];
        for (length, expected) in cases {
            assert_eq!(part_size_for(length, &config), expected, "{length:?}");
        }
        // Parts for the 1 TiB maximum are 105 MiB: the largest any upload needs.
        assert_eq!(largest_part_size(&config), 105 * MIB);
        // A deferred-length upload holds 10,000 parts of 8 MiB at most.
        assert_eq!(deferred_capacity(8 * MIB, &config), 80_000 * MIB);
        let small_max = MultipartConfig {
            max_size: MIB,
            ..MultipartConfig::default()
        };
        assert_eq!(deferred_capacity(8 * MIB, &small_max), MIB);
    }

    #[test]
    fn never_below_the_s3_minimum_and_always_whole_mib() {
        let config = MultipartConfig {
            preferred_part_size: 1,
            max_parts: 3,
            ..MultipartConfig::default()
        };
        assert_eq!(part_size_for(Some(10), &config), MIN_PART_SIZE);
        assert_eq!(part_size_for(Some(16 * MIB), &config), 6 * MIB);
    }
}
