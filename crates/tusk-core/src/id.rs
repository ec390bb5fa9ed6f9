use std::fmt;

/// Upload ids are the only secret protecting an upload, so they carry 128 random bits from the
/// operating system's CSPRNG, written as 32 lowercase hex digits.
const RANDOM_BYTES: usize = 16;
/// Longest id accepted from a path (ids may later come from hooks, so not only our own format).
const MAX_LEN: usize = 128;

/// A validated upload id: 1 to 128 characters of `[A-Za-z0-9_-]`, so it is safe in a file name,
/// an S3 key and a Redis key, and can never traverse a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(String);

/// A string that is not a valid upload id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid upload id: must be 1 to {MAX_LEN} characters of A-Z, a-z, 0-9, '-' or '_'")]
pub struct InvalidUploadId;

impl UploadId {
    /// A fresh id with 128 bits from the OS random source.
    ///
    /// # Panics
    /// Only if the operating system has no random source at all, which tusk cannot run without.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
        let mut s = String::with_capacity(RANDOM_BYTES * 2);
        for b in bytes {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        }
        Self(s)
    }

    /// Validate an id taken from a request path or a hook.
    pub fn parse(s: &str) -> Result<Self, InvalidUploadId> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidUploadId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_digits_and_distinct() {
        let a = UploadId::generate();
        let b = UploadId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(UploadId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn rejects_traversal_and_odd_characters() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "a b",
            "a%2f",
            "é",
            &"x".repeat(129),
        ] {
            assert_eq!(UploadId::parse(bad), Err(InvalidUploadId), "{bad:?}");
        }
        assert!(UploadId::parse("abc-DEF_123").is_ok());
    }
}
