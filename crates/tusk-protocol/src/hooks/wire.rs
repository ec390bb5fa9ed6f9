//! The tusd hook wire types: what a receiver is sent ([`HookRequest`]) and answers
//! ([`HookResponse`]), the [`HookSender`] that carries them, and how they fail.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use tusk_core::{Concat, Metadata, UploadInfo};

/// The events a hook is sent for, named as in tusd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    /// Before an upload is created; can reject it or change its id and metadata.
    PreCreate,
    /// After an upload was created.
    PostCreate,
    /// While bytes arrive, at most once per interval per upload.
    PostReceive,
    /// After the last byte is stored, before the response; can change the response.
    PreFinish,
    /// After an upload finished.
    PostFinish,
    /// Before a DELETE removes an upload; can refuse it.
    PreTerminate,
    /// After an upload was removed by DELETE.
    PostTerminate,
    /// Before a HEAD, PATCH, GET or DELETE of an upload is served, and for each partial a new
    /// final upload names; can refuse it. Not in the default set.
    PreAccess,
}

impl HookType {
    /// Every hook type.
    pub const ALL: [HookType; 8] = [
        HookType::PreCreate,
        HookType::PostCreate,
        HookType::PostReceive,
        HookType::PreFinish,
        HookType::PostFinish,
        HookType::PreTerminate,
        HookType::PostTerminate,
        HookType::PreAccess,
    ];

    /// The name in tusd's `Type` field and in `--hooks-events`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::PreCreate => "pre-create",
            HookType::PostCreate => "post-create",
            HookType::PostReceive => "post-receive",
            HookType::PreFinish => "pre-finish",
            HookType::PostFinish => "post-finish",
            HookType::PreTerminate => "pre-terminate",
            HookType::PostTerminate => "post-terminate",
            HookType::PreAccess => "pre-access",
        }
    }

    /// The hook type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hook receiver is sent (tusd's `HookRequest`).
#[derive(Debug, Clone, Serialize)]
pub struct HookRequest {
    /// The event.
    #[serde(rename = "Type")]
    pub kind: HookType,
    /// The upload and the client request that caused the event.
    #[serde(rename = "Event")]
    pub event: HookEvent,
}

/// tusd's `HookEvent`.
#[derive(Debug, Clone, Serialize)]
pub struct HookEvent {
    /// The upload as it is (for pre-create: as it would be created, with an empty id).
    #[serde(rename = "Upload")]
    pub upload: HookUpload,
    /// The client request.
    #[serde(rename = "HTTPRequest")]
    pub http_request: HookHttpRequest,
}

/// tusd's `FileInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookUpload {
    /// The upload id; empty in pre-create.
    #[serde(rename = "ID")]
    pub id: String,
    /// The length (0 while deferred).
    pub size: u64,
    /// Whether the length is not known yet.
    pub size_is_deferred: bool,
    /// Bytes stored (post-receive: bytes received so far).
    pub offset: u64,
    /// Client metadata, values decoded (lossy UTF-8); a key without a value has "".
    #[serde(rename = "MetaData")]
    pub metadata: BTreeMap<String, String>,
    /// Created with `Upload-Concat: partial`.
    pub is_partial: bool,
    /// Created with `Upload-Concat: final;...`.
    pub is_final: bool,
    /// A final upload's partial upload ids.
    pub partial_uploads: Option<Vec<String>>,
    /// Where the bytes live (store-specific keys, e.g. Type, Bucket, Key or Path).
    pub storage: Option<BTreeMap<String, String>>,
}

impl HookUpload {
    /// The event view of a stored upload.
    pub fn from_info(info: &UploadInfo, storage: BTreeMap<String, String>) -> Self {
        let mut upload = Self::new(info.length, &info.metadata, info.concat.as_ref());
        upload.id = info.id.to_string();
        upload.offset = info.offset;
        upload.storage = (!storage.is_empty()).then_some(storage);
        upload
    }

    /// An upload about to be created.
    pub fn new(length: Option<u64>, metadata: &Metadata, concat: Option<&Concat>) -> Self {
        Self {
            id: String::new(),
            size: length.unwrap_or(0),
            size_is_deferred: length.is_none(),
            offset: 0,
            metadata: metadata
                .iter()
                .map(|(k, v)| {
                    let v = v.map(String::from_utf8_lossy).unwrap_or_default();
                    (k.to_owned(), v.into_owned())
                })
                .collect(),
            is_partial: matches!(concat, Some(Concat::Partial)),
            is_final: matches!(concat, Some(Concat::Final(_))),
            partial_uploads: match concat {
                Some(Concat::Final(ids)) => Some(ids.iter().map(|id| id.to_string()).collect()),
                _ => None,
            },
            storage: None,
        }
    }
}

/// tusd's `HTTPRequest`: the client request behind an event.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookHttpRequest {
    /// The method (after `X-HTTP-Method-Override`).
    pub method: String,
    /// The request target: path and query.
    #[serde(rename = "URI")]
    pub uri: String,
    /// The client's address and port (the proxy's, unless behind a proxy that is trusted).
    pub remote_addr: String,
    /// The forwarded request headers (only those on the allow-list), in canonical form.
    pub header: BTreeMap<String, Vec<String>>,
    /// The client's W3C `traceparent`, passed on to hook requests when tusk exports no trace
    /// of its own.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

/// What a hook receiver answers (tusd's `HookResponse`). Every field is optional, and JSON
/// `null` counts as absent (Go encodes empty maps so).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HookResponse {
    /// Changes to the response the client gets (pre-create, pre-finish, post-receive with
    /// StopUpload, pre-terminate with RejectTermination).
    #[serde(rename = "HTTPResponse", deserialize_with = "null_as_default")]
    pub http_response: HookHttpResponse,
    /// pre-create: refuse the upload.
    pub reject_upload: bool,
    /// pre-create: change the new upload's id or metadata.
    #[serde(deserialize_with = "null_as_default")]
    pub change_file_info: FileInfoChanges,
    /// post-receive: stop the upload (the PATCH ends and the upload is removed).
    pub stop_upload: bool,
    /// pre-terminate: refuse the DELETE.
    pub reject_termination: bool,
}

/// tusd's `HTTPResponse`: overrides for the client's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HookHttpResponse {
    /// The status (0: unchanged).
    pub status_code: u16,
    /// The body (empty: unchanged).
    #[serde(deserialize_with = "null_as_default")]
    pub body: String,
    /// Headers to set.
    #[serde(deserialize_with = "null_as_default")]
    pub header: BTreeMap<String, String>,
}

impl HookHttpResponse {
    /// Add the changes a later hook asked for: its fields win.
    pub(crate) fn merge(&mut self, later: HookHttpResponse) {
        if later.status_code != 0 {
            self.status_code = later.status_code;
        }
        if !later.body.is_empty() {
            self.body = later.body;
        }
        self.header.extend(later.header);
    }

    /// Apply these changes to a successful response. A body turns a 204 into a 200 (204 has no
    /// body); a status outside 2xx is ignored (success stays success).
    pub(crate) fn apply(self, mut resp: crate::TusResponse) -> crate::TusResponse {
        if (200..300).contains(&self.status_code) {
            resp.status = self.status_code;
        }
        if !self.body.is_empty() {
            if resp.status == 204 {
                resp.status = 200;
            }
            resp.body = self.body;
        }
        resp.extra_headers.extend(self.header);
        resp
    }
}

/// tusd's `FileInfoChanges` (pre-create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct FileInfoChanges {
    /// A new id for the upload (empty: keep the generated one).
    #[serde(rename = "ID", deserialize_with = "null_as_default")]
    pub id: String,
    /// Metadata replacing the client's, if set.
    #[serde(rename = "MetaData")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Where the upload's object goes (S3 store): `KeyPrefix`, `StorageClass`,
    /// `ServerSideEncryption`, `SSEKMSKeyId` (see [`tusk_core::Placement`]).
    pub storage: Option<BTreeMap<String, String>>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a hook call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HookError {
    /// No answer within the hook timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The receiver could not be reached.
    #[error("cannot reach the hook receiver: {0}")]
    Unreachable(String),
    /// The receiver answered with a status outside 2xx.
    #[error("the hook receiver answered HTTP {0}")]
    Status(u16),
    /// The receiver's answer is not a hook response.
    #[error("the hook receiver's answer is not a hook response: {0}")]
    InvalidResponse(String),
}

/// Delivers one hook request and returns the receiver's answer. One attempt: the engine
/// applies the timeout and the retries.
#[async_trait]
pub trait HookSender: Send + Sync {
    /// Send `request`; called inside the `hook` span, whose trace context it should pass on.
    async fn send(&self, request: &HookRequest) -> Result<HookResponse, HookError>;
}

/// `name` in Go's canonical header form (`x-request-id` → `X-Request-Id`), as tusd's
/// receivers look headers up.
pub(crate) fn canonical_header_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use tusk_core::UploadId;

    use super::*;

    #[test]
    fn hook_types_round_trip_their_names() {
        for kind in HookType::ALL {
            assert_eq!(HookType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(HookType::parse("pre-upload"), None);
    }

    #[test]
    fn responses_parse_as_go_encodes_them() {
        // Go's encoding of a zero HookResponse: nil maps are null.
        let go = r#"{"HTTPResponse":{"StatusCode":0,"Body":"","Header":null},"RejectUpload":false,
            "ChangeFileInfo":{"ID":"","MetaData":null,"Storage":null},"StopUpload":false,
            "RejectTermination":false}"#;
        let parsed: HookResponse = serde_json::from_str(go).unwrap();
        assert_eq!(parsed, HookResponse::default());
        let reject = r#"{"RejectUpload":true,"HTTPResponse":{"StatusCode":403,"Body":"no","Header":{"X-Why":"quota"}}}"#;
        let parsed: HookResponse = serde_json::from_str(reject).unwrap();
        assert!(parsed.reject_upload);
        assert_eq!(parsed.http_response.status_code, 403);
        assert_eq!(parsed.http_response.header["X-Why"], "quota");
        let change = r#"{"ChangeFileInfo":{"ID":"my-id","MetaData":{"a":"b"}}}"#;
        let parsed: HookResponse = serde_json::from_str(change).unwrap();
        assert_eq!(parsed.change_file_info.id, "my-id");
        assert_eq!(
            parsed.change_file_info.metadata,
            Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]))
        );
        assert_eq!(
            serde_json::from_str::<HookResponse>("{}").unwrap(),
            HookResponse::default()
        );
    }

    #[test]
    fn requests_serialize_in_tusd_shape() {
        let metadata = Metadata::parse("filename aGVsbG8udHh0,flag").unwrap();
        let id = UploadId::generate();
        let upload = HookUpload::new(None, &metadata, Some(&Concat::Final(vec![id.clone()])));
        let request = HookRequest {
            kind: HookType::PreCreate,
            event: HookEvent {
                upload,
                http_request: HookHttpRequest {
                    method: "POST".into(),
                    uri: "/files/".into(),
                    remote_addr: "127.0.0.1:5000".into(),
                    header: BTreeMap::from([(
                        "Authorization".to_owned(),
                        vec!["Bearer x".to_owned()],
                    )]),
                    traceparent: Some("00-abc".into()),
                },
            },
        };
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        let want = serde_json::json!({
            "Type": "pre-create",
            "Event": {
                "Upload": {
                    "ID": "", "Size": 0, "SizeIsDeferred": true, "Offset": 0,
                    "MetaData": {"filename": "hello.txt", "flag": ""},
                    "IsPartial": false, "IsFinal": true,
                    "PartialUploads": [id.to_string()], "Storage": null
                },
                "HTTPRequest": {
                    "Method": "POST", "URI": "/files/", "RemoteAddr": "127.0.0.1:5000",
                    "Header": {"Authorization": ["Bearer x"]}
                }
            }
        });
        assert_eq!(json, want);
    }

    #[test]
    fn response_changes_merge_later_over_earlier_and_apply_to_success_only_as_2xx() {
        let mut changes = HookHttpResponse {
            status_code: 202,
            body: "first".into(),
            header: [("X-A".to_owned(), "1".to_owned())].into(),
        };
        changes.merge(HookHttpResponse {
            status_code: 0,
            body: "second".into(),
            header: [("X-B".to_owned(), "2".to_owned())].into(),
        });
        assert_eq!(changes.status_code, 202, "0 leaves the status alone");
        assert_eq!(changes.body, "second");
        let resp = changes.apply(crate::TusResponse::status(204));
        assert_eq!(resp.status, 202);
        assert_eq!(resp.body, "second");
        assert_eq!(resp.extra_headers.len(), 2);
        // A body on a 204 makes it a 200; a status outside 2xx is ignored.
        let resp = HookHttpResponse {
            status_code: 500,
            body: "kept".into(),
            ..Default::default()
        }
        .apply(crate::TusResponse::status(204));
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical_header_name("x-request-id"), "X-Request-Id");
        assert_eq!(canonical_header_name("AUTHORIZATION"), "Authorization");
        assert_eq!(canonical_header_name("upload-metadata"), "Upload-Metadata");
    }
}
