use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// `Upload-Metadata`: unique keys, each with an optional binary value (base64 on the wire).
///
/// Stored decoded and re-encoded canonically (padded standard base64) when echoed, so what
/// HEAD returns always parses, whatever padding style the client used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(BTreeMap<String, Option<Base64Value>>);

/// A metadata value, kept as bytes, serialised as base64 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Value(pub Vec<u8>);

impl Serialize for Base64Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        decode(&s)
            .map(Base64Value)
            .ok_or_else(|| serde::de::Error::custom("metadata value is not base64"))
    }
}

/// Why an `Upload-Metadata` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A pair with no key (for example `,,` or a leading space).
    #[error("Upload-Metadata has an empty key")]
    EmptyKey,
    /// A pair with more than one space.
    #[error("Upload-Metadata pair {0:?} must be `key` or `key base64value`")]
    MalformedPair(String),
    /// A key that appears twice.
    #[error("Upload-Metadata key {0:?} appears more than once")]
    DuplicateKey(String),
    /// A key with characters outside printable ASCII.
    #[error("Upload-Metadata key {0:?} must be printable ASCII")]
    BadKey(String),
    /// A value that is not base64.
    #[error("Upload-Metadata value for key {0:?} is not valid base64")]
    BadValue(String),
}

fn decode(s: &str) -> Option<Vec<u8>> {
    // Accept unpadded values too: some clients strip padding.
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(s).ok()
}

impl Metadata {
    /// Parse the header value. An empty header is empty metadata.
    pub fn parse(header: &str) -> Result<Self, MetadataError> {
        let mut map = BTreeMap::new();
        if header.trim().is_empty() {
            return Ok(Self(map));
        }
        for pair in header.split(',') {
            let pair = pair.trim();
            let mut parts = pair.split(' ');
            let key = parts.next().unwrap_or_default();
            let value = parts.next();
            if parts.next().is_some() {
                return Err(MetadataError::MalformedPair(pair.to_owned()));
            }
            if key.is_empty() {
                return Err(MetadataError::EmptyKey);
            }
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(MetadataError::BadKey(key.to_owned()));
            }
            let value = match value {
                None | Some("") => None,
                Some(v) => Some(Base64Value(
                    decode(v).ok_or_else(|| MetadataError::BadValue(key.to_owned()))?,
                )),
            };
            if map.insert(key.to_owned(), value).is_some() {
                return Err(MetadataError::DuplicateKey(key.to_owned()));
            }
        }
        Ok(Self(map))
    }

    /// The canonical header value, or `None` when there is no metadata.
    pub fn to_header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k} {}", STANDARD.encode(&v.0)),
                None => k.clone(),
            })
            .collect();
        Some(pairs.join(","))
    }

    /// The decoded value of `key`, if present and valued.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .get(key)
            .and_then(|v| v.as_ref())
            .map(|v| v.0.as_slice())
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every pair, by key: the decoded value, or `None` for a key sent without one.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map(|v| v.0.as_slice())))
    }

    /// Metadata from decoded text pairs (as hooks send them), with the keys checked as
    /// [`Metadata::parse`] checks them. An empty value is a key without a value.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, MetadataError> {
        let mut map = BTreeMap::new();
        for (key, value) in pairs {
            if key.is_empty() {
                return Err(MetadataError::EmptyKey);
            }
            if !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                return Err(MetadataError::BadKey(key.to_owned()));
            }
            let value = (!value.is_empty()).then(|| Base64Value(value.as_bytes().to_vec()));
            if map.insert(key.to_owned(), value).is_some() {
                return Err(MetadataError::DuplicateKey(key.to_owned()));
            }
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_echoes_canonically() {
        let m = Metadata::parse("filename d29ybGQucGRm,is_confidential, type dGV4dA").unwrap();
        assert_eq!(m.get("filename"), Some(&b"world.pdf"[..]));
        assert_eq!(m.get("is_confidential"), None);
        assert_eq!(m.get("type"), Some(&b"text"[..]));
        assert_eq!(
            m.to_header().unwrap(),
            "filename d29ybGQucGRm,is_confidential,type dGV4dA=="
        );
        assert_eq!(Metadata::parse(&m.to_header().unwrap()).unwrap(), m);
    }

    #[test]
    fn refuses_malformed_headers() {
        let cases = [
            ("a eA==,,b", MetadataError::EmptyKey),
            ("a b c", MetadataError::MalformedPair("a b c".into())),
            ("a eA==,a eA==", MetadataError::DuplicateKey("a".into())),
            ("a !!!", MetadataError::BadValue("a".into())),
            ("k\u{e9} eA==", MetadataError::BadKey("k\u{e9}".into())),
        ];
        for (header, want) in cases {
            assert_eq!(Metadata::parse(header), Err(want), "{header:?}");
        }
    }

    #[test]
    fn blank_header_is_empty_metadata() {
        assert!(Metadata::parse(" ").unwrap().is_empty());
        assert_eq!(Metadata::parse("").unwrap().to_header(), None);
    }

    #[test]
    fn json_round_trip_keeps_bytes() {
        let m = Metadata::parse("bin AP8=,flag").unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"bin":"AP8=","flag":null}"#);
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), m);
    }

    #[test]
    fn builds_from_hook_pairs_and_iterates() {
        let m = Metadata::from_pairs([("filename", "a b.pdf"), ("flag", "")]).unwrap();
        assert_eq!(m.get("filename"), Some(&b"a b.pdf"[..]));
        let pairs: Vec<_> = m.iter().collect();
        assert_eq!(
            pairs,
            vec![("filename", Some(&b"a b.pdf"[..])), ("flag", None)]
        );
        assert_eq!(
            Metadata::parse(&m.to_header().unwrap()).unwrap(),
            m,
            "round-trips through the header"
        );
        assert!(Metadata::from_pairs([("", "x")]).is_err());
        assert!(Metadata::from_pairs([("a,b", "x")]).is_err());
        assert!(Metadata::from_pairs([("a b", "x")]).is_err());
    }
}
