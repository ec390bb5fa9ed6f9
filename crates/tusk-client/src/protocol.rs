//! The two protocols an upload can speak, and every header in which they differ: tus 1.0, and
//! the IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload) at interop
//! version 8. Creation, offset retrieval and append are the same three requests in both; only
//! these headers change, so everything else (retries, state, resume) is shared.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The draft's interop version this client speaks (drafts -09 to -15).
pub const INTEROP_VERSION: &str = "8";

/// The request header naming the draft's interop version.
const INTEROP_HEADER: &str = "Upload-Draft-Interop-Version";

/// Which protocol an upload speaks, from creation to the end: an upload is resumed with the
/// protocol it was created with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// tus 1.0 (`Tus-Resumable: 1.0.0`).
    #[default]
    #[serde(rename = "tus-1.0")]
    Tus,
    /// The IETF draft at interop version 8 (`Upload-Draft-Interop-Version: 8`).
    #[serde(rename = "ietf-draft-8")]
    IetfDraft,
}

/// A chunk's checksum, as the header that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChecksumHeader {
    pub name: &'static str,
    pub value: String,
}

impl Protocol {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tus => "tus 1.0",
            Protocol::IetfDraft => "the IETF resumable upload draft",
        }
    }

    /// The name saved in state files and hashed into the state key (the serde name).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Protocol::Tus => "tus-1.0",
            Protocol::IetfDraft => "ietf-draft-8",
        }
    }

    /// The header every request carries to say which protocol it speaks.
    pub(crate) fn version_header(self) -> (&'static str, &'static str) {
        match self {
            Protocol::Tus => ("Tus-Resumable", "1.0.0"),
            Protocol::IetfDraft => (INTEROP_HEADER, INTEROP_VERSION),
        }
    }

    /// Headers of a creation besides the length and metadata: the draft's careful creation
    /// says it brings no content that completes the upload.
    pub(crate) fn creation_headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Protocol::Tus => &[],
            Protocol::IetfDraft => &[("Upload-Complete", "?0")],
        }
    }

    /// The media type of an append (PATCH).
    pub(crate) fn append_media_type(self) -> &'static str {
        match self {
            Protocol::Tus => "application/offset+octet-stream",
            Protocol::IetfDraft => "application/partial-upload",
        }
    }

    /// Headers of an append besides offset, length and checksum: the draft says whether this
    /// request's content ends the upload (it carries the file's last byte). tus needs nothing:
    /// the server knows the length.
    pub(crate) fn append_headers(self, completes: bool) -> Vec<(&'static str, &'static str)> {
        match self {
            Protocol::Tus => Vec::new(),
            Protocol::IetfDraft => vec![("Upload-Complete", sf_boolean(completes))],
        }
    }

    /// Whether uploads can be sent as partial uploads and concatenated (the draft has no
    /// concatenation).
    pub fn concatenates(self) -> bool {
        matches!(self, Protocol::Tus)
    }

    /// The algorithm a chunk is hashed with: sha1 for tus's `Upload-Checksum` (the one
    /// algorithm tus servers commonly offer), sha-256 for the draft's `Content-Digest` (RFC
    /// 9530's recommended one).
    pub(crate) fn checksum_algorithm(self) -> ChecksumAlgorithm {
        match self {
            Protocol::Tus => ChecksumAlgorithm::Sha1,
            Protocol::IetfDraft => ChecksumAlgorithm::Sha256,
        }
    }

    /// The header that carries a chunk's digest, computed with
    /// [`Protocol::checksum_algorithm`].
    pub(crate) fn checksum_header(self, digest: &[u8]) -> ChecksumHeader {
        let encoded = STANDARD.encode(digest);
        match self {
            Protocol::Tus => ChecksumHeader {
                name: "Upload-Checksum",
                value: format!("sha1 {encoded}"),
            },
            // RFC 9530: a dictionary of algorithm = byte sequence (base64 between colons).
            Protocol::IetfDraft => ChecksumHeader {
                name: "Content-Digest",
                value: format!("sha-256=:{encoded}:"),
            },
        }
    }
}

/// The hash functions chunks are checksummed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

/// A structured-field boolean (RFC 8941).
fn sf_boolean(value: bool) -> &'static str {
    if value { "?1" } else { "?0" }
}

/// A structured-field boolean header value: `None` if it is not one.
pub(crate) fn parse_sf_boolean(value: &str) -> Option<bool> {
    match value.trim() {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_names_itself_and_nothing_of_the_other() {
        assert_eq!(Protocol::Tus.version_header(), ("Tus-Resumable", "1.0.0"));
        assert_eq!(
            Protocol::IetfDraft.version_header(),
            ("Upload-Draft-Interop-Version", "8")
        );
        assert!(Protocol::Tus.creation_headers().is_empty());
        assert_eq!(
            Protocol::IetfDraft.creation_headers(),
            &[("Upload-Complete", "?0")]
        );
        assert!(Protocol::Tus.append_headers(true).is_empty());
        assert_eq!(
            Protocol::IetfDraft.append_headers(true),
            vec![("Upload-Complete", "?1")]
        );
        assert_eq!(
            Protocol::IetfDraft.append_headers(false),
            vec![("Upload-Complete", "?0")]
        );
        assert_eq!(
            Protocol::IetfDraft.append_media_type(),
            "application/partial-upload"
        );
        assert!(Protocol::Tus.concatenates());
        assert!(!Protocol::IetfDraft.concatenates());
    }

    #[test]
    fn checksums_are_upload_checksum_or_content_digest() {
        // sha1("abc") and sha-256("abc").
        let sha1 = hex::decode("a9993e364706816aba3e25717850c26c9cd0d89d").expect("hex");
        let sha256 =
            hex::decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
                .expect("hex");
        assert_eq!(Protocol::Tus.checksum_algorithm(), ChecksumAlgorithm::Sha1);
        assert_eq!(
            Protocol::Tus.checksum_header(&sha1),
            ChecksumHeader {
                name: "Upload-Checksum",
                value: "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=".into()
            }
        );
        assert_eq!(
            Protocol::IetfDraft.checksum_algorithm(),
            ChecksumAlgorithm::Sha256
        );
        assert_eq!(
            Protocol::IetfDraft.checksum_header(&sha256),
            ChecksumHeader {
                name: "Content-Digest",
                value: "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=:".into()
            }
        );
    }

    #[test]
    fn booleans_are_structured_fields() {
        assert_eq!(parse_sf_boolean("?1"), Some(true));
        assert_eq!(parse_sf_boolean(" ?0 "), Some(false));
        for bad in ["1", "true", "?", "?2", ""] {
            assert_eq!(parse_sf_boolean(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_protocol_is_saved_by_name() {
        for protocol in [Protocol::Tus, Protocol::IetfDraft] {
            assert_eq!(
                serde_json::to_string(&protocol).expect("json"),
                format!("\"{}\"", protocol.key())
            );
        }
        assert_eq!(
            serde_json::to_string(&Protocol::IetfDraft).expect("json"),
            "\"ietf-draft-8\""
        );
        assert_eq!(
            serde_json::from_str::<Protocol>("\"tus-1.0\"").expect("json"),
            Protocol::Tus
        );
    }
}
