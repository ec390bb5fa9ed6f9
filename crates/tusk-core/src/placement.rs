use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UploadId;

/// Where and how one upload's object is stored, when its pre-create hook chose it
/// (`ChangeFileInfo.Storage`); every field unset means the store's own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// A folder under the store's prefix for this upload's object: the key becomes
    /// `<key_prefix><id>`. Ends with `/`, so two prefixes never make the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The object's storage class (S3 `x-amz-storage-class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Server-side encryption (`AES256`, `aws:kms`, `aws:kms:dsse`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms` encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
}

/// The `ChangeFileInfo.Storage` keys tusk reads, as hooks spell them.
const PLACEMENT_KEYS: [&str; 4] = [
    "KeyPrefix",
    "StorageClass",
    "ServerSideEncryption",
    "SSEKMSKeyId",
];

/// Longest key prefix accepted: S3 keys are at most 1024 bytes, and the id and the store's own
/// prefix need room too.
const MAX_KEY_PREFIX: usize = 512;

impl Placement {
    /// Whether nothing was chosen (the store's settings apply).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The object key of upload `id` (before the store's own prefix).
    pub fn object_key(&self, id: &UploadId) -> String {
        match &self.key_prefix {
            Some(prefix) => format!("{prefix}{id}"),
            None => id.to_string(),
        }
    }

    /// The placement a pre-create hook's `ChangeFileInfo.Storage` asks for. An unknown key or
    /// an unsafe key prefix is an error naming it: a hook's typo must not silently store data
    /// somewhere else than intended.
    pub fn from_hook(storage: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut placement = Self::default();
        for (key, value) in storage {
            let field = match key.as_str() {
                "KeyPrefix" => {
                    check_key_prefix(value)?;
                    &mut placement.key_prefix
                }
                // Their values are the object store's to check (`ObjectStore::check_placement`).
                "StorageClass" => &mut placement.storage_class,
                "ServerSideEncryption" => &mut placement.server_side_encryption,
                "SSEKMSKeyId" => {
                    if value.is_empty() || value.len() > 2048 || value.chars().any(char::is_control)
                    {
                        return Err("Storage.SSEKMSKeyId must be a KMS key id or ARN".to_owned());
                    }
                    &mut placement.sse_kms_key_id
                }
                _ => {
                    return Err(format!(
                        "Storage.{key} is not a setting tusk knows (it takes {})",
                        PLACEMENT_KEYS.join(", ")
                    ));
                }
            };
            *field = Some(value.clone());
        }
        if placement.sse_kms_key_id.is_some()
            && !placement
                .server_side_encryption
                .as_deref()
                .is_some_and(|sse| sse.starts_with("aws:kms"))
        {
            return Err(
                "Storage.SSEKMSKeyId needs Storage.ServerSideEncryption aws:kms or aws:kms:dsse"
                    .to_owned(),
            );
        }
        Ok(placement)
    }
}

/// A key prefix is a relative folder of safe characters: no empty, `.` or `..` segment (S3
/// keys are not paths, but tools that mirror a bucket to disk treat them as such), no leading
/// `/`, and a trailing `/`.
fn check_key_prefix(prefix: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("Storage.KeyPrefix {prefix:?} {why}"));
    if prefix.len() > MAX_KEY_PREFIX {
        return invalid(&format!("is longer than {MAX_KEY_PREFIX} bytes"));
    }
    let Some(folders) = prefix.strip_suffix('/') else {
        return invalid("must end with /");
    };
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.!*'()/=+,@:~".contains(&b))
    {
        return invalid("may hold only ASCII letters, digits and - _ . ! * ' ( ) / = + , @ : ~");
    }
    if folders
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return invalid("must not start with / or hold an empty, . or .. folder");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(pairs: &[(&str, &str)]) -> Result<Placement, String> {
        Placement::from_hook(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_hook_chooses_every_setting() {
        let placement = hook(&[
            ("KeyPrefix", "tenant-7/2026-12/"),
            ("StorageClass", "STANDARD_IA"),
            ("ServerSideEncryption", "aws:kms"),
            ("SSEKMSKeyId", "arn:aws:kms:eu-west-1:1:key/abc"),
        ])
        .unwrap();
        assert_eq!(placement.key_prefix.as_deref(), Some("tenant-7/2026-12/"));
        let id = UploadId::generate();
        assert_eq!(placement.object_key(&id), format!("tenant-7/2026-12/{id}"));
        assert_eq!(Placement::default().object_key(&id), id.to_string());
        assert!(hook(&[]).unwrap().is_default());
    }

    #[test]
    fn what_s3_would_refuse_or_a_typo_is_an_error_naming_it() {
        for (pairs, names) in [
            (vec![("KeyPrefix", "no-slash")], "KeyPrefix"),
            (vec![("KeyPrefix", "/abs/")], "KeyPrefix"),
            (vec![("KeyPrefix", "a/../b/")], "KeyPrefix"),
            (vec![("KeyPrefix", "a//b/")], "KeyPrefix"),
            (vec![("KeyPrefix", "sp ace/")], "KeyPrefix"),
            (vec![("SSEKMSKeyId", "k")], "SSEKMSKeyId"),
            (
                vec![("ServerSideEncryption", "AES256"), ("SSEKMSKeyId", "k")],
                "SSEKMSKeyId",
            ),
            (vec![("Path", "./x")], "Path"),
        ] {
            let err = hook(&pairs).unwrap_err();
            assert!(err.contains(names), "{err}");
        }
        let long = format!("{}/", "a".repeat(MAX_KEY_PREFIX));
        assert!(hook(&[("KeyPrefix", &long)]).is_err());
    }
}
