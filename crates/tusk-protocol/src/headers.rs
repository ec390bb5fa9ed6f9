//! Strict parsing of tus request headers.

use crate::message::Headers;
use crate::{OFFSET_OCTET_STREAM, TusError};

/// Parse a non-negative decimal integer: digits only, no sign, no spaces, no overflow.
pub(crate) fn parse_u64(header: &'static str, value: &str) -> Result<u64, TusError> {
    let invalid = |reason: &str| TusError::InvalidHeader {
        header,
        reason: reason.to_owned(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("must be a non-negative decimal integer"));
    }
    value.parse().map_err(|_| invalid("is too large"))
}

/// An optional integer header.
pub(crate) fn optional_u64(headers: &Headers, name: &'static str) -> Result<Option<u64>, TusError> {
    headers
        .get(name)
        .map(|v| parse_u64(name, v.trim()))
        .transpose()
}

/// Whether the body is tus upload data (`application/offset+octet-stream`, parameters ignored).
pub(crate) fn is_offset_octet_stream(headers: &Headers) -> bool {
    is_media_type(headers, OFFSET_OCTET_STREAM)
}

/// Whether `Content-Type` is `media_type` (parameters ignored).
pub(crate) fn is_media_type(headers: &Headers, media_type: &str) -> bool {
    headers
        .get("Content-Type")
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_u64("Upload-Offset", "0").unwrap(), 0);
        assert_eq!(
            parse_u64("Upload-Offset", "18446744073709551615").unwrap(),
            u64::MAX
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert!(parse_u64("Upload-Offset", bad).is_err(), "{bad:?}");
        }
    }
}
