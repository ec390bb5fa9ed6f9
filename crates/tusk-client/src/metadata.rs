//! `Upload-Metadata`: `key base64(value)` pairs, comma-separated.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::ClientError;

/// Parse a `--metadata KEY=VALUE` argument (the value may be empty; the key is validated).
pub fn parse_pair(arg: &str) -> Result<(String, String), ClientError> {
    let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
    validate_key(key)?;
    Ok((key.to_owned(), value.to_owned()))
}

/// A metadata key must be non-empty, without spaces or commas (the header's separators), and
/// printable ASCII (the spec says keys SHOULD be ASCII; servers reject the rest).
pub fn validate_key(key: &str) -> Result<(), ClientError> {
    let bad = |why: &str| Err(ClientError::Usage(format!("metadata key {key:?} {why}")));
    if key.is_empty() {
        return bad("is empty");
    }
    if key.contains(' ') || key.contains(',') {
        return bad("must not contain spaces or commas");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ASCII");
    }
    Ok(())
}

/// The `Upload-Metadata` value for `pairs`, in order; a later pair replaces an earlier one
/// with the same key. An empty value is sent as the key alone, as the spec allows.
pub fn encode(pairs: &[(String, String)]) -> Result<String, ClientError> {
    let mut kept: Vec<&(String, String)> = Vec::new();
    for pair in pairs {
        validate_key(&pair.0)?;
        kept.retain(|(k, _)| *k != pair.0);
        kept.push(pair);
    }
    let parts: Vec<String> = kept
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k} {}", STANDARD.encode(v.as_bytes()))
            }
        })
        .collect();
    Ok(parts.join(","))
}

/// The metadata of an upload of `file`: `filename` (its base name) and `filetype` (when the
/// extension is a common one), then the user's pairs, which win over those two.
pub fn for_file(file: &Path, user: &[(String, String)]) -> Result<String, ClientError> {
    let mut pairs = Vec::new();
    if let Some(name) = file.file_name() {
        pairs.push(("filename".to_owned(), name.to_string_lossy().into_owned()));
    }
    if let Some(kind) = guess_filetype(file) {
        pairs.push(("filetype".to_owned(), kind.to_owned()));
    }
    pairs.extend(user.iter().cloned());
    encode(&pairs)
}

/// The media type of common file extensions; `None` for the rest (no guess is better than a
/// wrong one).
pub fn guess_filetype(file: &Path) -> Option<&'static str> {
    let ext = file.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "md" => "text/markdown",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "zst" => "application/zstd",
        "xz" => "application/x-xz",
        "7z" => "application/x-7z-compressed",
        "wasm" => "application/wasm",
        "iso" => "application/x-iso9660-image",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        "heic" => "image/heic",
        "tif" | "tiff" => "image/tiff",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn values_are_base64_and_empty_values_are_bare_keys() {
        let header = encode(&[
            pair("filename", "a b.txt"),
            pair("flag", ""),
            pair("k", "é"),
        ]);
        assert_eq!(header.expect("valid"), "filename YSBiLnR4dA==,flag,k w6k=");
    }

    #[test]
    fn bad_keys_are_refused() {
        for key in ["", "a b", "a,b", "tab\t", "clé"] {
            assert!(validate_key(key).is_err(), "{key:?} accepted");
            assert!(encode(&[pair(key, "v")]).is_err(), "{key:?} encoded");
        }
        for key in ["filename", "x-y_z.1", "Content-Type"] {
            assert!(validate_key(key).is_ok(), "{key:?} refused");
        }
    }

    #[test]
    fn pairs_parse_with_and_without_values() {
        assert_eq!(parse_pair("a=b=c").expect("valid"), pair("a", "b=c"));
        assert_eq!(parse_pair("flag").expect("valid"), pair("flag", ""));
        assert_eq!(parse_pair("k=").expect("valid"), pair("k", ""));
        assert!(parse_pair("=v").is_err());
        assert!(parse_pair("a b=v").is_err());
    }

    #[test]
    fn file_defaults_come_first_and_the_user_wins() {
        let file = Path::new("/x/photo.JPG");
        let header = for_file(file, &[]).expect("valid");
        assert_eq!(header, "filename cGhvdG8uSlBH,filetype aW1hZ2UvanBlZw==");
        let header = for_file(file, &[pair("filename", "a"), pair("user", "b")]).expect("valid");
        assert_eq!(header, "filetype aW1hZ2UvanBlZw==,filename YQ==,user Yg==");
        assert_eq!(guess_filetype(Path::new("data.bin")), None);
        assert_eq!(guess_filetype(Path::new("noext")), None);
    }
}
