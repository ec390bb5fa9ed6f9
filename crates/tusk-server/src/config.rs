//! Configuration: defaults, then the TOML file, then environment, then flags (clap merges the
//! last two), validated once with errors that name the key and what is allowed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tusk_http::{CorsOrigins, HttpConfig};
use tusk_protocol::EngineConfig;

use crate::cli::Settings;
use crate::units::LogFormat;

/// The validated configuration of `tusk serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub engine: EngineConfig,
    pub http: HttpConfig,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid {key} (flag --{flag}, env TUSK_{env}, TOML key {key}): {reason}")]
    Invalid {
        key: &'static str,
        flag: String,
        env: String,
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        flag: key.replace('_', "-"),
        env: key.to_ascii_uppercase(),
        reason: reason.into(),
    }
}

/// Longest metadata header we accept configuring: proxies and actix cap header sizes anyway.
const MAX_METADATA_LIMIT: u64 = 64 << 10;

/// Layer `cli` (flags and environment) over the file it names over the defaults, and validate.
pub fn load(cli: Settings) -> Result<ServeConfig, ConfigError> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source: Box::new(source),
            })?
        }
        None => Settings::default(),
    };
    validate(cli.over(file))
}

fn validate(s: Settings) -> Result<ServeConfig, ConfigError> {
    let defaults = EngineConfig::default();
    let base_path = s.base_path.unwrap_or_else(|| "/files/".to_owned());
    if !base_path.starts_with('/')
        || base_path.contains(['?', '#', ' ', '%'])
        || base_path.contains("//")
    {
        return Err(invalid(
            "base_path",
            format!("{base_path:?} must be a plain absolute URL path such as /files/"),
        ));
    }
    let base_path = format!("{}/", base_path.trim_end_matches('/'));

    let max_size = s.max_size.map_or(defaults.max_size, |v| v.0);
    if max_size == 0 {
        return Err(invalid("max_size", "must be at least 1 byte"));
    }
    let max_metadata = s
        .max_metadata_size
        .map_or(defaults.max_metadata_bytes as u64, |v| v.0);
    if max_metadata == 0 || max_metadata > MAX_METADATA_LIMIT {
        return Err(invalid(
            "max_metadata_size",
            format!("must be between 1 byte and {MAX_METADATA_LIMIT} bytes"),
        ));
    }

    let base_url = match s.base_url {
        None => None,
        Some(url) => {
            let lower = url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            match rest {
                Some(rest)
                    if !rest.is_empty()
                        && !rest.starts_with('/')
                        && !url.contains(['?', '#', ' ']) =>
                {
                    Some(url.trim_end_matches('/').to_owned())
                }
                _ => {
                    return Err(invalid(
                        "base_url",
                        format!(
                            "{url:?} must be an http:// or https:// URL without query or fragment, such as https://uploads.example.com"
                        ),
                    ));
                }
            }
        }
    };

    let cors = match s.cors_origins {
        None => CorsOrigins::Any,
        Some(list) if list.0.iter().any(|o| o == "*") => {
            if list.0.len() > 1 {
                return Err(invalid(
                    "cors_origins",
                    "\"*\" cannot be combined with other origins",
                ));
            }
            CorsOrigins::Any
        }
        Some(list) => {
            for origin in &list.0 {
                let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin
                        .trim_end_matches('/')
                        .split_once("://")
                        .is_some_and(|(_, h)| h.is_empty() || h.contains('/'));
                if !ok || origin.ends_with('/') {
                    return Err(invalid(
                        "cors_origins",
                        format!(
                            "{origin:?} is not an origin; use scheme://host[:port] such as https://app.example.com, or *"
                        ),
                    ));
                }
            }
            CorsOrigins::List(list.0)
        }
    };

    let positive =
        |key: &'static str, value: Option<crate::units::HumanDuration>, default: Duration| {
            let d = value.map_or(default, |v| v.0);
            if d.is_zero() {
                Err(invalid(key, "must be greater than zero"))
            } else {
                Ok(d)
            }
        };
    let lock_wait = positive("lock_wait", s.lock_wait, defaults.lock_wait)?;
    let read_timeout = positive("read_timeout", s.read_timeout, defaults.read_timeout)?;
    let shutdown_timeout = positive(
        "shutdown_timeout",
        s.shutdown_timeout,
        Duration::from_secs(10),
    )?;
    if shutdown_timeout < Duration::from_secs(1) {
        return Err(invalid("shutdown_timeout", "must be at least 1s"));
    }

    Ok(ServeConfig {
        listen: s
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1080))),
        data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("tusk-data")),
        engine: EngineConfig {
            max_size,
            max_metadata_bytes: max_metadata as usize,
            lock_wait,
            read_timeout,
        },
        http: HttpConfig {
            base_path,
            behind_proxy: s.behind_proxy.unwrap_or(false),
            base_url,
            cors,
        },
        shutdown_timeout,
        log_format: s.log_format.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<ServeConfig, String> {
        let settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(settings).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = validate(Settings::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1080");
        assert_eq!(c.http.base_path, "/files/");
        assert_eq!(c.data_dir, PathBuf::from("tusk-data"));
        assert_eq!(c.engine.max_size, 1 << 40);
        assert_eq!(c.engine.max_metadata_bytes, 4096);
        assert_eq!(c.engine.lock_wait, Duration::from_secs(5));
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.http.cors, CorsOrigins::Any);
        assert!(!c.http.behind_proxy);
    }

    #[test]
    fn toml_values_are_read() {
        let c = from_toml(
            r#"
            listen = "0.0.0.0:8080"
            base_path = "/up"
            max_size = "2GiB"
            max_metadata_size = 1024
            behind_proxy = true
            base_url = "https://up.example.com/"
            cors_origins = ["https://a.example", "http://localhost:3000"]
            lock_wait = "250ms"
            log_format = "json"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.http.base_path, "/up/");
        assert_eq!(c.engine.max_size, 2 << 30);
        assert_eq!(c.engine.max_metadata_bytes, 1024);
        assert!(c.http.behind_proxy);
        assert_eq!(c.http.base_url.as_deref(), Some("https://up.example.com"));
        assert_eq!(c.engine.lock_wait, Duration::from_millis(250));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn flags_beat_the_file() {
        let file: Settings = toml::from_str("lock_wait = \"9s\"\nbase_path = \"/a/\"").unwrap();
        let flags = Settings {
            lock_wait: Some("1s".parse().unwrap()),
            ..Settings::default()
        };
        let c = validate(flags.over(file)).unwrap();
        assert_eq!(c.engine.lock_wait, Duration::from_secs(1));
        assert_eq!(c.http.base_path, "/a/");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("listen = \"nowhere\"", "listen"),
            ("max_size = \"lots\"", "max_size"),
            ("max_size = 0", "max_size"),
            ("base_path = \"files\"", "base_path"),
            ("base_url = \"ftp://x\"", "base_url"),
            ("cors_origins = \"app.example\"", "cors_origins"),
            ("cors_origins = \"*,https://a.example\"", "cors_origins"),
            ("lock_wait = \"0s\"", "lock_wait"),
            ("lock_wait = \"soon\"", "lock_wait"),
            ("log_format = \"xml\"", "log_format"),
            ("max_metadata_size = \"1GiB\"", "max_metadata_size"),
            ("shutdown_timeout = \"10ms\"", "shutdown_timeout"),
            ("unknown_key = 1", "unknown_key"),
        ];
        for (text, key) in cases {
            let err = from_toml(text).expect_err(text);
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
