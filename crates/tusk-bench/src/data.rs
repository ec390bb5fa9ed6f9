//! Deterministic, incompressible benchmark data, generated once in memory.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// `len` bytes from a splitmix64 sequence seeded with `seed`: the same arguments always give
/// the same bytes, and they do not compress.
pub fn generate(len: usize, seed: u64) -> Bytes {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut buf = vec![0u8; len];
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&next().to_le_bytes());
    }
    let rest = words.into_remainder();
    let last = next().to_le_bytes();
    let n = rest.len();
    rest.copy_from_slice(&last[..n]);
    Bytes::from(buf)
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `data` as consecutive slices of at most `chunk` bytes (no copies).
pub fn slices(data: &Bytes, chunk: usize) -> Vec<Bytes> {
    let chunk = chunk.max(1);
    (0..data.len())
        .step_by(chunk)
        .map(|start| data.slice(start..(start + chunk).min(data.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_exact() {
        let a = generate(1001, 7);
        let b = generate(1001, 7);
        assert_eq!(a, b);
        assert_eq!(a.len(), 1001);
        assert_ne!(generate(1001, 8), a);
    }

    #[test]
    fn slices_cover_the_data_in_order() {
        let data = generate(10, 1);
        let parts = slices(&data, 4);
        assert_eq!(parts.iter().map(Bytes::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(parts.concat(), data.to_vec());
    }
}
