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
}

impl Default for MultipartConfig {
    fn default() -> Self {
        Self {
            preferred_part_size: 8 * MIB,
            max_parts: 10_000,
            max_size: 1 << 40,
            max_inflight_parts: 2,
        }
    }
}

/// The part size P of an upload of `length` (or of the maximum size when the length is
/// deferred): at least 5 MiB and the preferred size, large enough that `max_parts` parts hold
/// the whole upload, rounded up to a whole MiB.
pub fn part_size_for(length: Option<u64>, config: &MultipartConfig) -> u64 {
    let length = length.unwrap_or(config.max_size);
    let for_count = length.div_ceil(u64::from(config.max_parts.max(1)));
    let size = MIN_PART_SIZE.max(config.preferred_part_size).max(for_count);
    size.div_ceil(MIB).saturating_mul(MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_follow_the_rule() {
        let config = MultipartConfig::default();
        let cases = [
            (Some(0), 8 * MIB),
            (Some(1), 8 * MIB),
            // 10,000 parts of 8 MiB hold 80,000 MiB; a byte more needs 9 MiB parts.
            (Some(80_000 * MIB), 8 * MIB),
            (Some(80_000 * MIB + 1), 9 * MIB),
            // Deferred: sized for the 1 TiB maximum.
            (None, 105 * MIB),
        ];
        for (length, expected) in cases {
            assert_eq!(part_size_for(length, &config), expected, "{length:?}");
        }
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
