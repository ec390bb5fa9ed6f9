//! How an upload presents itself when downloaded: `Content-Type` and `Content-Disposition`
//! from its `filetype` and `filename` metadata, the same for tusk's GET and for the object in
//! S3 (read directly or through a CDN).

use crate::Metadata;

/// Types a browser may render inline from this origin: media and plain text, nothing that can
/// run script (no HTML, SVG, XML or PDF). Everything else is served as an attachment.
const INLINE_TYPES: &[&str] = &[
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/bmp",
    "image/webp",
    "image/avif",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/wave",
    "audio/x-wav",
    "audio/webm",
    "audio/flac",
    "video/mp4",
    "video/ogg",
    "video/webm",
    "application/ogg",
];

/// `Content-Type` and `Content-Disposition` from the `filetype` and `filename` metadata: only
/// allow-listed types (media and plain text) are inline, so an uploaded page
/// never runs as one of the site's own; names are sanitized for headers and disks.
pub fn presentation(metadata: &Metadata) -> (String, String) {
    let filetype = metadata
        .get("filetype")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| is_media_type(t));
    let inline = filetype
        .as_deref()
        .is_some_and(|t| INLINE_TYPES.contains(&t));
    let content_type = filetype.unwrap_or_else(|| "application/octet-stream".to_owned());
    let mut disposition = if inline { "inline" } else { "attachment" }.to_owned();
    if let Some(name) = metadata
        .get("filename")
        .map(sanitize_filename)
        .filter(|name| !name.is_empty())
    {
        {
            let ascii: String = name
                .chars()
                .map(|c| if c.is_ascii() { c } else { '_' })
                .collect();
            disposition.push_str(&format!(
                "; filename=\"{ascii}\"; filename*=UTF-8''{}",
                percent_encode(&name)
            ));
        }
    }
    (content_type, disposition)
}

/// `type/subtype` of token characters, no parameters.
fn is_media_type(value: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    value
        .split_once('/')
        .is_some_and(|(t, s)| token(t) && token(s))
}

/// A file name safe in a header and on the client's disk: the last path component, without
/// control characters, quotes, backslashes or semicolons, at most 200 characters.
fn sanitize_filename(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let base = text.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | ';'))
        .take(200)
        .collect();
    cleaned.trim().trim_matches('.').to_owned()
}

/// RFC 8187 percent-encoding of UTF-8 (attr-char stays as is).
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        Metadata::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn only_allow_listed_types_are_inline_and_names_are_sanitized() {
        let (t, d) = presentation(&meta(&[("filetype", "image/png"), ("filename", "cat.png")]));
        assert_eq!(t, "image/png");
        assert_eq!(d, "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png");

        let (t, d) = presentation(&meta(&[
            ("filetype", "text/html"),
            ("filename", "../../evil\"; x=\r\n.html"),
        ]));
        assert_eq!(t, "text/html");
        assert!(
            d.starts_with("attachment; filename=\"evil x=.html\""),
            "{d}"
        );

        let (t, d) = presentation(&meta(&[
            ("filetype", "not a type"),
            ("filename", "résumé.pdf"),
        ]));
        assert_eq!(t, "application/octet-stream");
        assert_eq!(
            d,
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        );

        let (t, d) = presentation(&Metadata::default());
        assert_eq!(
            (t.as_str(), d.as_str()),
            ("application/octet-stream", "attachment")
        );
    }
}
