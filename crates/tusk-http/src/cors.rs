use tusk_protocol::{REQUEST_HEADERS, RESPONSE_HEADERS};

/// Browser origins allowed to call the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// Any origin (`Access-Control-Allow-Origin: *`, never with credentials).
    Any,
    /// Exactly these origins (`scheme://host[:port]`); an empty list disables CORS.
    List(Vec<String>),
}

/// Methods a browser may use, for preflight answers.
const ALLOWED_METHODS: &str = "OPTIONS, HEAD, POST, PATCH, DELETE";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// The CORS headers for a response to a request from `origin`.
pub(crate) fn headers(
    origins: &CorsOrigins,
    origin: Option<&str>,
    preflight: bool,
) -> Vec<(&'static str, String)> {
    let Some(origin) = origin else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match origins {
        CorsOrigins::Any => out.push(("Access-Control-Allow-Origin", "*".to_owned())),
        CorsOrigins::List(list) => {
            out.push(("Vary", "Origin".to_owned()));
            if !list.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                return out;
            }
            out.push(("Access-Control-Allow-Origin", origin.to_owned()));
        }
    }
    if preflight {
        out.push(("Access-Control-Allow-Methods", ALLOWED_METHODS.to_owned()));
        out.push(("Access-Control-Allow-Headers", REQUEST_HEADERS.join(", ")));
        out.push(("Access-Control-Max-Age", PREFLIGHT_MAX_AGE.to_owned()));
    } else {
        out.push(("Access-Control-Expose-Headers", RESPONSE_HEADERS.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(h: &'a [(&str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn any_origin_gets_a_wildcard_and_exposed_headers() {
        let h = headers(&CorsOrigins::Any, Some("https://app.example"), false);
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("*"));
        let exposed = get(&h, "Access-Control-Expose-Headers").unwrap();
        for name in [
            "Location",
            "Upload-Offset",
            "Upload-Length",
            "Tus-Resumable",
            "Upload-Metadata",
        ] {
            assert!(exposed.contains(name), "{name}");
        }
        assert_eq!(get(&h, "Access-Control-Allow-Credentials"), None);
    }

    #[test]
    fn listed_origins_are_echoed_and_others_refused() {
        let origins = CorsOrigins::List(vec!["https://a.example".into()]);
        let ok = headers(&origins, Some("https://a.example"), true);
        assert_eq!(
            get(&ok, "Access-Control-Allow-Origin"),
            Some("https://a.example")
        );
        assert!(
            get(&ok, "Access-Control-Allow-Headers")
                .unwrap()
                .contains("Upload-Offset")
        );
        assert!(
            get(&ok, "Access-Control-Allow-Methods")
                .unwrap()
                .contains("PATCH")
        );
        let refused = headers(&origins, Some("https://evil.example"), true);
        assert_eq!(get(&refused, "Access-Control-Allow-Origin"), None);
        assert_eq!(get(&refused, "Vary"), Some("Origin"));
    }

    #[test]
    fn no_origin_no_cors_headers() {
        assert!(headers(&CorsOrigins::Any, None, false).is_empty());
    }
}
