//! The checksum extension: `Upload-Checksum: <algorithm> <base64 digest>` over a whole PATCH
//! body, hashed as the body streams.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::TusError;

/// What `Tus-Checksum-Algorithm` advertises (sha1 is the one the spec requires).
pub(crate) const ALGORITHMS: &str = "sha1,md5,sha256,sha512,crc32";

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha1,
    Md5,
    Sha256,
    Sha512,
    /// CRC-32 (IEEE), sent as its 4 bytes big-endian.
    Crc32,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "sha1" => Algorithm::Sha1,
            "md5" => Algorithm::Md5,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "crc32" => Algorithm::Crc32,
            _ => return None,
        })
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Md5 => 16,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
            Algorithm::Crc32 => 4,
        }
    }
}

/// The digest a client announced for a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checksum {
    algorithm: Algorithm,
    expected: Vec<u8>,
}

fn invalid(reason: impl Into<String>) -> TusError {
    TusError::InvalidHeader {
        header: "Upload-Checksum",
        reason: reason.into(),
    }
}

impl Checksum {
    /// Parse an `Upload-Checksum` value. An unknown algorithm or a malformed value is a 400.
    pub(crate) fn parse(value: &str) -> Result<Self, TusError> {
        let (name, digest) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| invalid("must be `<algorithm> <base64 digest>`"))?;
        let algorithm = Algorithm::parse(name).ok_or_else(|| {
            TusError::UnsupportedChecksum(format!(
                "checksum algorithm {name:?} is not supported; use one of {ALGORITHMS}"
            ))
        })?;
        let expected = STANDARD
            .decode(digest.trim())
            .map_err(|_| invalid("the digest is not valid base64"))?;
        if expected.len() != algorithm.digest_len() {
            return Err(invalid(format!(
                "a {name} digest has {} bytes, this one {}",
                algorithm.digest_len(),
                expected.len()
            )));
        }
        Ok(Self {
            algorithm,
            expected,
        })
    }

    /// The strongest digest tusk can check in a `Content-Digest` value (RFC 9530: a dictionary
    /// of `algorithm=:base64:`), for the IETF draft's requests. `None` when it names only
    /// algorithms tusk does not compute (receivers ignore those); a malformed value is a 400.
    pub(crate) fn from_content_digest(value: &str) -> Result<Option<Self>, TusError> {
        let invalid = |reason: &str| TusError::InvalidHeader {
            header: "Content-Digest",
            reason: reason.to_owned(),
        };
        let mut best: Option<(usize, Self)> = None;
        for member in value.split(',') {
            let (key, item) = member
                .trim()
                .split_once('=')
                .ok_or_else(|| invalid("must be a dictionary of algorithm=:base64:"))?;
            // RFC 9530's names, weakest first.
            let strength = ["crc32", "md5", "sha", "sha-256", "sha-512"];
            let Some(rank) = strength.iter().position(|name| *name == key.trim()) else {
                continue;
            };
            let algorithm = [
                Algorithm::Crc32,
                Algorithm::Md5,
                Algorithm::Sha1,
                Algorithm::Sha256,
                Algorithm::Sha512,
            ][rank];
            let bytes = item
                .split(';')
                .next()
                .and_then(|v| v.trim().strip_prefix(':'))
                .and_then(|v| v.strip_suffix(':'))
                .ok_or_else(|| invalid("digests are byte sequences, :base64:"))?;
            let expected = STANDARD
                .decode(bytes)
                .map_err(|_| invalid("a digest is not valid base64"))?;
            if expected.len() != algorithm.digest_len() {
                return Err(invalid("a digest has the wrong length for its algorithm"));
            }
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((
                    rank,
                    Self {
                        algorithm,
                        expected,
                    },
                ));
            }
        }
        Ok(best.map(|(_, checksum)| checksum))
    }

    /// A hasher for the body this checksum covers.
    pub(crate) fn hasher(&self) -> Hasher {
        Hasher(match self.algorithm {
            Algorithm::Sha1 => State::Sha1(Default::default()),
            Algorithm::Md5 => State::Md5(Default::default()),
            Algorithm::Sha256 => State::Sha256(Default::default()),
            Algorithm::Sha512 => State::Sha512(Default::default()),
            Algorithm::Crc32 => State::Crc32(Default::default()),
        })
    }

    /// Whether `hasher`, fed the whole body, produced the announced digest.
    pub(crate) fn matches(&self, hasher: Hasher) -> bool {
        hasher.finish() == self.expected
    }
}

/// A running digest over a body.
pub(crate) struct Hasher(State);

enum State {
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            State::Sha1(h) => sha1::Digest::update(h, data),
            State::Md5(h) => md5::Digest::update(h, data),
            State::Sha256(h) => sha2::Digest::update(h, data),
            State::Sha512(h) => sha2::Digest::update(h, data),
            State::Crc32(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self.0 {
            State::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            State::Md5(h) => md5::Digest::finalize(h).to_vec(),
            State::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
            State::Sha512(h) => sha2::Digest::finalize(h).to_vec(),
            State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(algorithm: &str, data: &[u8]) -> bool {
        let known: &[(&str, &str)] = &[
            // Digests of "hello world" from the reference tools (sha1sum, md5sum, ...).
            ("sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            ("md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
            ("sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="),
            (
                "sha512",
                "MJ7MSJwS1utMxA9QyQLytNDtd+5RGnx6m808qG1M2G+YndNbxf9JlnDaNCVbRbDP2DDoH2Bdz33FVC6TrpzXbw==",
            ),
            ("crc32", "DUoRhQ=="),
        ];
        let (_, b64) = known.iter().find(|(a, _)| *a == algorithm).unwrap();
        let checksum = Checksum::parse(&format!("{algorithm} {b64}")).unwrap();
        let mut hasher = checksum.hasher();
        for piece in data.chunks(3) {
            hasher.update(piece);
        }
        checksum.matches(hasher)
    }

    #[test]
    fn every_algorithm_matches_its_reference_digest_and_nothing_else() {
        for algorithm in ["sha1", "md5", "sha256", "sha512", "crc32"] {
            assert!(digest_of(algorithm, b"hello world"), "{algorithm}");
            assert!(!digest_of(algorithm, b"hello worle"), "{algorithm}");
        }
    }

    #[test]
    fn content_digest_picks_the_strongest_algorithm_it_knows() {
        let sha256 = "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:";
        let picked = Checksum::from_content_digest(&format!(
            "md5=:XrY7u+Ae7tCTyyK7j1rNww==:, {sha256}, unixsum=:AAA=:"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(picked.algorithm, Algorithm::Sha256);
        let mut hasher = picked.hasher();
        hasher.update(b"hello world");
        assert!(picked.matches(hasher));
        assert!(
            Checksum::from_content_digest("unixsum=:AAA=:")
                .unwrap()
                .is_none()
        );
        for bad in ["sha-256", "sha-256=abc", "sha-256=:AAAA:"] {
            assert!(Checksum::from_content_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in ["sha1", "sha1 not-base64!", "sha1 AAAA", "", " "] {
            assert!(
                matches!(Checksum::parse(bad), Err(TusError::InvalidHeader { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Checksum::parse("whirlpool AAAA"),
            Err(TusError::UnsupportedChecksum(_))
        ));
    }
}
