//! What differs between the draft's interop versions, in one place. Interop version N is what a
//! client sends in `Upload-Draft-Interop-Version`:
//!
//! | interop | drafts | differences handled here |
//! |---|---|---|
//! | 3 | -01 | completeness as `Upload-Incomplete` (inverted); any append media type |
//! | 4, 5 | -02, -03 | `Upload-Complete`; any append media type |
//! | 6 | -04, -05 | appends must be `application/partial-upload`; `Upload-Limit` with `expires` |
//! | 7, 8 | -06 to -08, -09 to -15 | `Upload-Limit` with `max-age` |
//!
//! `Upload-Length` arrived with interop 6; tusk reads it from any version (an older client never
//! sends it). The problem types of -05 are sent to every version: older clients read the status.

use std::ops::RangeInclusive;

use crate::TusError;
use crate::message::Headers;

/// The interop versions tusk speaks: 3 (iOS 17) to 8 (current iOS, draft -09 to -15).
pub const INTEROP_VERSIONS: RangeInclusive<u8> = 3..=8;

/// The request header naming the draft's interop version.
pub const INTEROP_HEADER: &str = "Upload-Draft-Interop-Version";

/// The media type of draft appends from interop 6 on.
pub const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// A request speaking the draft at one interop version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draft(u8);

impl Draft {
    /// The draft version a request speaks: `None` without the interop header, an error when it
    /// names a version tusk does not speak.
    pub fn of(headers: &Headers) -> Option<Result<Draft, TusError>> {
        let raw = headers.get(INTEROP_HEADER)?.trim();
        Some(match raw.parse::<u8>() {
            Ok(version) if INTEROP_VERSIONS.contains(&version) => Ok(Draft(version)),
            _ => Err(TusError::UnsupportedDraft(raw.chars().take(20).collect())),
        })
    }

    /// A draft at `version` (for tests and the HTTP adapter); `None` if unsupported.
    pub fn at(version: u8) -> Option<Draft> {
        INTEROP_VERSIONS
            .contains(&version)
            .then_some(Draft(version))
    }

    /// The interop version.
    pub fn version(self) -> u8 {
        self.0
    }

    /// The header that carries completeness at this version.
    pub fn complete_name(self) -> &'static str {
        if self.0 == 3 {
            "Upload-Incomplete"
        } else {
            "Upload-Complete"
        }
    }

    /// Whether the request says its content ends the upload: `None` when the header is missing
    /// or is not a structured-field boolean.
    pub fn complete(self, headers: &Headers) -> Option<bool> {
        let value = sf_boolean(headers.get(self.complete_name())?)?;
        Some(if self.0 == 3 { !value } else { value })
    }

    /// The completeness header of a response.
    pub fn complete_header(self, complete: bool) -> (&'static str, &'static str) {
        let value = if self.0 == 3 { !complete } else { complete };
        (self.complete_name(), if value { "?1" } else { "?0" })
    }

    /// The media type an append must have, from interop 6 on.
    pub fn append_media_type(self) -> Option<&'static str> {
        (self.0 >= 6).then_some(PARTIAL_UPLOAD)
    }

    /// `Upload-Limit` (from interop 6): the sizes, and for an upload that expires the seconds
    /// it has left (`expires` at 6, `max-age` from 7). `None` before interop 6.
    pub fn limits(self, max_size: u64, seconds_left: Option<u64>) -> Option<String> {
        if self.0 < 6 {
            return None;
        }
        let mut limits = format!("min-size=0, max-size={max_size}");
        if let Some(left) = seconds_left {
            let key = if self.0 == 6 { "expires" } else { "max-age" };
            limits.push_str(&format!(", {key}={left}"));
        }
        Some(limits)
    }
}

/// A structured-field boolean (`?0` or `?1`), parameters ignored.
fn sf_boolean(value: &str) -> Option<bool> {
    match value.split(';').next()?.trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in pairs {
            h.insert(n, *v);
        }
        h
    }

    #[test]
    fn versions_three_to_eight_are_spoken() {
        for v in 3..=8 {
            let h = headers(&[(INTEROP_HEADER, &v.to_string())]);
            assert_eq!(Draft::of(&h).unwrap().unwrap().version(), v);
        }
        for bad in ["2", "9", "", "x", "-1", "300"] {
            let h = headers(&[(INTEROP_HEADER, bad)]);
            assert!(matches!(
                Draft::of(&h),
                Some(Err(TusError::UnsupportedDraft(_)))
            ));
        }
        assert!(Draft::of(&headers(&[])).is_none());
    }

    #[test]
    fn completeness_is_inverted_at_interop_3() {
        let v3 = Draft::at(3).unwrap();
        let v8 = Draft::at(8).unwrap();
        assert_eq!(
            v3.complete(&headers(&[("Upload-Incomplete", "?0")])),
            Some(true)
        );
        assert_eq!(v3.complete(&headers(&[("Upload-Complete", "?1")])), None);
        assert_eq!(
            v8.complete(&headers(&[("Upload-Complete", "?1;x=1")])),
            Some(true)
        );
        assert_eq!(v8.complete(&headers(&[("Upload-Complete", "1")])), None);
        assert_eq!(v3.complete_header(false), ("Upload-Incomplete", "?1"));
        assert_eq!(v8.complete_header(false), ("Upload-Complete", "?0"));
    }

    #[test]
    fn limits_name_the_age_by_version() {
        assert_eq!(Draft::at(5).unwrap().limits(10, Some(5)), None);
        assert_eq!(
            Draft::at(6).unwrap().limits(10, Some(5)).unwrap(),
            "min-size=0, max-size=10, expires=5"
        );
        assert_eq!(
            Draft::at(7).unwrap().limits(10, None).unwrap(),
            "min-size=0, max-size=10"
        );
        assert_eq!(
            Draft::at(8).unwrap().limits(10, Some(5)).unwrap(),
            "min-size=0, max-size=10, max-age=5"
        );
        assert_eq!(Draft::at(4).unwrap().append_media_type(), None);
        assert_eq!(
            Draft::at(6).unwrap().append_media_type(),
            Some(PARTIAL_UPLOAD)
        );
    }
}
