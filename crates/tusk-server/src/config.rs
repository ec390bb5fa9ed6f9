//! Configuration: defaults, then the TOML file, then environment, then flags (clap merges the
//! last two), validated once with errors that name the key and what is allowed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tusk_http::{HttpConfig, TlsConfig, TlsVersion};
// MAX_WAIT: the engine's bound on any wait, also for the server's own shutdown timeout and reap
// interval.
use tusk_protocol::{EngineConfig, MAX_WAIT};

use tusk_etcd::{EtcdConfig, EtcdError};
use tusk_multipart::{DEFAULT_BUFFER_BUDGET, MultipartConfig};
use tusk_redis::{RedisLimits, ReplicationWait};
use tusk_s3::S3Config;

use crate::cli::Settings;
use crate::units::{LogFormat, OtlpProtocol, Secret};
use tusk_protocol::{HookConfig, HookType};

/// The validated configuration of `tusk serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub storage: Storage,
    pub engine: EngineConfig,
    pub http: HttpConfig,
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    pub reap_interval: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub otlp: Option<Otlp>,
    pub hooks: Option<HookSettings>,
    pub tls: Option<TlsConfig>,
}

/// Where traces go.
#[derive(Debug, Clone)]
pub struct Otlp {
    pub endpoint: String,
    pub protocol: OtlpProtocol,
}

/// Hooks: where they go and how they are sent.
#[derive(Debug, Clone)]
pub struct HookSettings {
    pub url: Secret,
    pub config: HookConfig,
}

/// Where uploads live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One node, local disk, in-process locks.
    Local { data_dir: PathBuf },
    /// S3 for data, Redis for state and tails; etcd locks if configured, else in-process.
    Distributed(Box<Distributed>),
}

/// Distributed-mode settings, validated.
#[derive(Debug, Clone)]
pub struct Distributed {
    pub s3: S3Config,
    pub redis_url: Secret,
    /// `redis_url` lists seed nodes of a Redis Cluster.
    pub redis_cluster: bool,
    pub redis_replication: ReplicationWait,
    pub redis_prefix: String,
    pub etcd: Option<EtcdConfig>,
    pub multipart: MultipartConfig,
    pub max_buffered_bytes: u64,
    pub redis_limits: RedisLimits,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The line, its key and the message, never the value: the TOML parser's own report
    /// quotes the whole line, which may hold a secret.
    #[error("config file {path}, line {line}{key}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        /// `, key <name>` when the line has one.
        key: String,
        message: String,
    },
    #[error("invalid {key} (flag --{flag}, env TUSK_{env}, TOML key {key}): {reason}")]
    Invalid {
        key: &'static str,
        flag: String,
        env: String,
        reason: String,
    },
}

/// An S3 setting that is one of a few words, read by tusk-s3's `parse` (which names its key);
/// unset, its default.
fn s3_choice<T: Default>(
    value: Option<String>,
    key: &'static str,
    parse: fn(&str) -> Result<T, tusk_s3::S3Error>,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(T::default()),
        Some(value) => parse(&value).map_err(|err| match err {
            tusk_s3::S3Error::Setting { key, message } => invalid(key, message),
            other => invalid(key, other.to_string()),
        }),
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        flag: key.replace('_', "-"),
        env: key.to_ascii_uppercase(),
        reason: reason.into(),
    }
}

/// Layer `cli` (flags and environment) over the file it names over the defaults, and validate.
pub fn load(cli: Settings) -> Result<ServeConfig, ConfigError> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            toml::from_str(&text).map_err(|err| parse_error(path, &text, &err))?
        }
        None => Settings::default(),
    };
    validate(cli.over(file))
}

/// A TOML error as [`ConfigError::Parse`]: line and key, never the line's text.
fn parse_error(path: &std::path::Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let start = err.span().map_or(0, |span| span.start.min(text.len()));
    let line = text[..start].matches('\n').count() + 1;
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| {
            !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map_or_else(String::new, |key| format!(", key {key}"));
    ConfigError::Parse {
        path: path.to_owned(),
        line,
        key,
        message: err.message().to_owned(),
    }
}

fn validate(mut s: Settings) -> Result<ServeConfig, ConfigError> {
    let hooks = hooks(&mut s)?;
    let tls = tls(&mut s)?;
    // tusk-protocol owns the engine's settings: their defaults and their rules. A zero expiry or
    // retention in a file or flag means off.
    let defaults = EngineConfig::default();
    let off_if_zero =
        |value: Option<crate::units::HumanDuration>, default: Option<Duration>| match value {
            None => default,
            Some(v) if v.0.is_zero() => None,
            Some(v) => Some(v.0),
        };
    let engine = EngineConfig {
        max_size: s.max_size.map_or(defaults.max_size, |v| v.0),
        max_metadata_bytes: s
            .max_metadata_size
            .map_or(defaults.max_metadata_bytes, |v| {
                usize::try_from(v.0).unwrap_or(usize::MAX)
            }),
        lock_wait: s.lock_wait.map_or(defaults.lock_wait, |v| v.0),
        read_timeout: s.read_timeout.map_or(defaults.read_timeout, |v| v.0),
        expire_after: off_if_zero(s.expire_after, defaults.expire_after),
        finished_retention: off_if_zero(s.finished_retention, defaults.finished_retention),
        max_upload_age: off_if_zero(s.max_upload_age, defaults.max_upload_age),
        ietf_draft: s.ietf_draft.unwrap_or(defaults.ietf_draft),
    };
    engine
        .validate()
        .map_err(|err| invalid(err.key, err.message))?;
    let storage = storage(&mut s, engine.max_size)?;
    // tusk-http owns the HTTP layer's settings.
    let http = HttpConfig::from_settings(
        s.base_path.take(),
        s.behind_proxy.unwrap_or(false),
        s.base_url.take(),
        s.cors_origins.take().map(|list| list.0),
        s.metrics_listen.is_none(),
    )
    .map_err(|err| invalid(err.key, err.message))?;

    // A PATCH waits for part buffer budget about as long as it waits for the client's bytes.
    let mut storage = storage;
    if let Storage::Distributed(d) = &mut storage {
        d.multipart.budget_wait = engine.read_timeout;
    }
    let shutdown_timeout = positive(
        "shutdown_timeout",
        s.shutdown_timeout,
        Duration::from_secs(10),
    )?;
    if shutdown_timeout < Duration::from_secs(1) {
        return Err(invalid("shutdown_timeout", "must be at least 1s"));
    }
    let reap_interval = positive("reap_interval", s.reap_interval, Duration::from_secs(60))?;
    let otlp = match s.otlp_endpoint.take() {
        None if s.otlp_protocol.is_some() => {
            return Err(invalid("otlp_protocol", "needs otlp_endpoint"));
        }
        None => None,
        Some(endpoint) => {
            let host = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            if host.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
                return Err(invalid(
                    "otlp_endpoint",
                    "must be an http:// or https:// URL, e.g. http://collector:4317",
                ));
            }
            Some(Otlp {
                endpoint,
                protocol: s.otlp_protocol.unwrap_or_default(),
            })
        }
    };

    Ok(ServeConfig {
        tls,
        listen: s
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1080))),
        storage,
        engine,
        http,
        shutdown_timeout,
        log_format: s.log_format.unwrap_or_default(),
        reap_interval,
        metrics_listen: s.metrics_listen,
        otlp,
        hooks,
    })
}

/// The listener's TLS settings, if any. Whether the files can be used is checked when they are
/// loaded, at start (`tusk_http::TlsSettings::load`).
fn tls(s: &mut Settings) -> Result<Option<TlsConfig>, ConfigError> {
    let min_version = match s.tls_min_version.as_deref().map(str::trim) {
        None | Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        Some(other) => {
            return Err(invalid(
                "tls_min_version",
                format!("{other:?} is not 1.2 or 1.3"),
            ));
        }
    };
    match (s.tls_cert_file.take(), s.tls_key_file.take()) {
        (Some(cert_file), Some(key_file)) => Ok(Some(TlsConfig {
            cert_file,
            key_file,
            client_ca_file: s.tls_client_ca_file.take(),
            min_version,
        })),
        (None, None) => {
            if s.tls_client_ca_file.is_some() || s.tls_min_version.is_some() {
                return Err(invalid(
                    "tls_cert_file",
                    "TLS settings are given but no certificate: set tls_cert_file and tls_key_file",
                ));
            }
            Ok(None)
        }
        (Some(_), None) => Err(invalid(
            "tls_key_file",
            "tls_cert_file needs its private key in tls_key_file",
        )),
        (None, Some(_)) => Err(invalid(
            "tls_cert_file",
            "tls_key_file needs its certificate in tls_cert_file",
        )),
    }
}

/// A duration setting that must not be zero.
fn positive(
    key: &'static str,
    value: Option<crate::units::HumanDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = value.map_or(default, |v| v.0);
    if d.is_zero() {
        Err(invalid(key, "must be greater than zero"))
    } else if d > MAX_WAIT {
        Err(invalid(key, "must be at most 24h"))
    } else {
        Ok(d)
    }
}

/// The hook settings, if a hooks URL is set; hook options without one are an error.
fn hooks(s: &mut Settings) -> Result<Option<HookSettings>, ConfigError> {
    let url = secret_from("hooks_url", s.hooks_url.take(), s.hooks_url_file.take())?;
    let Some(url) = url else {
        let set = [
            ("hooks_events", s.hooks_events.is_some()),
            ("hooks_forward_headers", s.hooks_forward_headers.is_some()),
            ("hooks_timeout", s.hooks_timeout.is_some()),
            ("hooks_retries", s.hooks_retries.is_some()),
            ("hooks_backoff", s.hooks_backoff.is_some()),
            (
                "hooks_post_receive_interval",
                s.hooks_post_receive_interval.is_some(),
            ),
            ("hooks_access_cache", s.hooks_access_cache.is_some()),
        ];
        return match set.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(invalid(key, "needs hooks_url")),
            None => Ok(None),
        };
    };
    if let Err(err) = tusk_hooks::HttpHookSender::check_url(&url.0) {
        return Err(invalid("hooks_url", err.to_string()));
    }
    let defaults = HookConfig::default();
    let events = match s.hooks_events.take() {
        None => defaults.events,
        Some(list) => {
            let mut events = Vec::new();
            for name in &list.0 {
                let kind = HookType::parse(name.trim()).ok_or_else(|| {
                    let all: Vec<&str> = HookType::ALL.iter().map(|t| t.as_str()).collect();
                    invalid(
                        "hooks_events",
                        format!("unknown event {name:?}; known: {}", all.join(", ")),
                    )
                })?;
                if !events.contains(&kind) {
                    events.push(kind);
                }
            }
            events
        }
    };
    let forward_headers = match s.hooks_forward_headers.take() {
        None => defaults.forward_headers,
        Some(list) => {
            for name in &list.0 {
                if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(invalid(
                        "hooks_forward_headers",
                        format!("{name:?} is not a header name"),
                    ));
                }
            }
            list.0
        }
    };
    // tusk-protocol owns the hooks' defaults and rules; the names of events and headers are
    // read above.
    let config = HookConfig {
        events,
        forward_headers,
        timeout: s.hooks_timeout.map_or(defaults.timeout, |v| v.0),
        post_retries: s.hooks_retries.unwrap_or(defaults.post_retries),
        post_backoff: s.hooks_backoff.map_or(defaults.post_backoff, |v| v.0),
        post_receive_interval: s
            .hooks_post_receive_interval
            .map_or(defaults.post_receive_interval, |v| v.0),
        access_cache: s.hooks_access_cache.map_or(defaults.access_cache, |v| v.0),
    };
    config
        .validate()
        .map_err(|err| invalid(err.key, err.message))?;
    Ok(Some(HookSettings { url, config }))
}

/// Read a secret from `file` if given (trailing newline dropped), else take `value`.
fn secret_from(
    key: &'static str,
    value: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(
            key,
            format!("give either {key} or {key}_file, not both"),
        )),
        (value, None) => Ok(value),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|err| invalid(key, format!("cannot read {}: {err}", path.display())))?;
            Ok(Some(Secret(text.trim_end_matches(['\r', '\n']).to_owned())))
        }
    }
}

/// Local or distributed storage, from the distributed-mode settings (which `s` gives up).
fn storage(s: &mut Settings, max_size: u64) -> Result<Storage, ConfigError> {
    let redis_url = secret_from("redis_url", s.redis_url.take(), s.redis_url_file.take())?;
    let etcd_password = secret_from(
        "etcd_password",
        s.etcd_password.take(),
        s.etcd_password_file.take(),
    )?;
    let Some(s3_bucket) = s.s3_bucket.take() else {
        if redis_url.is_some() {
            return Err(invalid(
                "redis_url",
                "Redis holds the state of S3 uploads: set s3_bucket too, or neither",
            ));
        }
        if s.etcd_endpoints.is_some() {
            return Err(invalid(
                "etcd_endpoints",
                "etcd locks serve distributed mode: set s3_bucket and redis_url too",
            ));
        }
        return Ok(Storage::Local {
            data_dir: s
                .data_dir
                .take()
                .unwrap_or_else(|| PathBuf::from("tusk-data")),
        });
    };
    // tusk-s3 owns the S3 settings' rules. Credentials: the AWS chain, with the *_FILE variants.
    let s3 = S3Config {
        bucket: s3_bucket,
        endpoint: s.s3_endpoint.take(),
        region: s.s3_region.take(),
        prefix: s.s3_prefix.take().unwrap_or_default(),
        meta_prefix: s.s3_meta_prefix.take(),
        force_path_style: s.s3_force_path_style.unwrap_or(false),
        credentials: None,
        checksum: s3_choice(
            s.s3_checksum.take(),
            "s3_checksum",
            tusk_s3::ChecksumMode::parse,
        )?,
        payload_signing: s3_choice(
            s.s3_payload_signing.take(),
            "s3_payload_signing",
            tusk_s3::PayloadSigning::parse,
        )?,
        storage_class: s.s3_storage_class.take(),
        sse: s.s3_sse.take(),
        sse_kms_key_id: s.s3_sse_kms_key_id.take(),
    };
    s3.validate().map_err(|err| match err {
        tusk_s3::S3Error::Setting { key, message } => invalid(key, message),
        other => invalid("s3_bucket", other.to_string()),
    })?;
    let Some(redis_url) = redis_url else {
        return Err(invalid(
            "redis_url",
            "distributed mode (s3_bucket is set) needs Redis for upload state",
        ));
    };
    // tusk-redis owns the Redis settings' defaults and rules.
    let redis_prefix = s
        .redis_prefix
        .take()
        .unwrap_or_else(|| tusk_redis::DEFAULT_KEY_PREFIX.to_owned());
    let redis_cluster = s.redis_cluster.unwrap_or(false);
    if let Err(tusk_redis::RedisError::Setting { key, message }) =
        tusk_redis::check_settings(&redis_url.0, redis_cluster, &redis_prefix)
    {
        return Err(invalid(key, message));
    }
    let defaults = ReplicationWait::default();
    let redis_replication = ReplicationWait {
        replicas: s.redis_wait_replicas.unwrap_or(defaults.replicas),
        timeout: s.redis_wait_timeout.map_or(defaults.timeout, |v| v.0),
    };
    if let Err(tusk_redis::RedisError::Setting { key, message }) = redis_replication.validate() {
        return Err(invalid(key, message));
    }

    // tusk-multipart owns these settings: their defaults and their rules.
    let defaults = MultipartConfig::default();
    let multipart = MultipartConfig {
        preferred_part_size: s
            .preferred_part_size
            .map_or(defaults.preferred_part_size, |v| v.0),
        max_parts: s.max_parts.unwrap_or(defaults.max_parts),
        max_size,
        max_inflight_parts: s.max_inflight_parts.unwrap_or(defaults.max_inflight_parts),
        equal_parts: s.s3_equal_parts.unwrap_or(defaults.equal_parts),
        // Set to the read timeout once that is known (see `load`).
        ..defaults
    };
    let max_buffered_bytes = s.max_buffered_bytes.map_or(DEFAULT_BUFFER_BUDGET, |v| v.0);
    multipart
        .validate()
        .and_then(|()| multipart.check_budget(max_buffered_bytes))
        .map_err(|err| invalid(err.key, err.message))?;

    let defaults = RedisLimits::default();
    let redis_limits = RedisLimits {
        max_uploads: s.max_uploads.unwrap_or(defaults.max_uploads),
        memory_high_water_percent: s
            .redis_memory_high_water
            .unwrap_or(defaults.memory_high_water_percent),
    };
    if let Err(tusk_redis::RedisError::Setting { key, message }) = redis_limits.validate() {
        return Err(invalid(key, message));
    }

    let etcd = match s.etcd_endpoints.take() {
        None => {
            if s.etcd_user.is_some() || etcd_password.is_some() {
                return Err(invalid(
                    "etcd_endpoints",
                    "etcd credentials are set but no endpoints",
                ));
            }
            None
        }
        Some(list) => {
            // tusk-etcd owns these settings: their defaults and their rules.
            let defaults = EtcdConfig::default();
            let etcd = EtcdConfig {
                endpoints: list.0,
                user: s.etcd_user.take(),
                password: etcd_password.map(|p| p.0),
                ca_file: s.etcd_ca_file.take(),
                cert_file: s.etcd_cert_file.take(),
                key_file: s.etcd_key_file.take(),
                lease_ttl: s.lock_lease.map_or(defaults.lease_ttl, |v| v.0),
                key_prefix: s.etcd_prefix.take().unwrap_or(defaults.key_prefix),
            };
            etcd.validate().map_err(|err| match err {
                EtcdError::Config { key, message } => invalid(key, message),
                other => invalid("etcd_endpoints", other.to_string()),
            })?;
            Some(etcd)
        }
    };

    Ok(Storage::Distributed(Box::new(Distributed {
        s3,
        redis_url,
        redis_cluster,
        redis_replication,
        redis_prefix,
        etcd,
        multipart,
        max_buffered_bytes,
        redis_limits,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tusk_http::CorsOrigins;

    fn from_toml(text: &str) -> Result<ServeConfig, String> {
        let settings: Settings = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(settings).map_err(|e| e.to_string())
    }

    /// The default the README's configuration table gives for `flag` (the text in backticks of
    /// the third column).
    fn readme_default(flag: &str) -> String {
        let readme = include_str!("../../../README.md");
        let row = readme
            .lines()
            .find(|line| {
                line.starts_with(&format!("| `{flag} ")) || line.starts_with(&format!("| `{flag}`"))
            })
            .unwrap_or_else(|| panic!("no README row for {flag}"));
        let cell = row.split(" | ").nth(2).unwrap_or_default();
        cell.trim_matches(|c| c == '`' || c == ' ').to_owned()
    }

    fn readme_bytes(flag: &str) -> u64 {
        readme_default(flag)
            .parse::<crate::units::ByteSize>()
            .unwrap()
            .0
    }

    fn readme_duration(flag: &str) -> Duration {
        readme_default(flag)
            .parse::<crate::units::HumanDuration>()
            .unwrap()
            .0
    }

    #[test]
    fn defaults_match_the_readme() {
        let c = validate(Settings::default()).unwrap();
        assert_eq!(c.listen.to_string(), readme_default("--listen"));
        assert_eq!(c.http.base_path, readme_default("--base-path"));
        let data_dir = PathBuf::from(readme_default("--data-dir"));
        assert!(
            matches!(&c.storage, Storage::Local { data_dir: d } if data_dir.ends_with(d)),
            "{:?}",
            c.storage
        );
        assert_eq!(c.engine.max_size, readme_bytes("--max-size"));
        assert_eq!(
            c.engine.max_metadata_bytes as u64,
            readme_bytes("--max-metadata-size")
        );
        assert_eq!(c.engine.lock_wait, readme_duration("--lock-wait"));
        assert_eq!(c.engine.read_timeout, readme_duration("--read-timeout"));
        assert_eq!(c.shutdown_timeout, readme_duration("--shutdown-timeout"));
        assert_eq!(
            c.engine.expire_after.unwrap_or_default(),
            readme_duration("--expire-after")
        );
        assert_eq!(
            c.engine.finished_retention.unwrap_or_default(),
            readme_duration("--finished-retention")
        );
        assert_eq!(
            c.engine.max_upload_age.unwrap_or_default(),
            readme_duration("--max-upload-age")
        );
        assert_eq!(c.reap_interval, readme_duration("--reap-interval"));
        assert_eq!(readme_default("--cors-origins"), "*");
        assert_eq!(c.http.cors, CorsOrigins::Any);
        assert_eq!(
            c.http.behind_proxy.to_string(),
            readme_default("--behind-proxy")
        );
        assert_eq!(
            format!("{:?}", c.log_format).to_lowercase(),
            readme_default("--log-format")
        );

        // Distributed mode's defaults, with the two settings it needs.
        let c = from_toml(
            "s3_bucket = \"b\"\nredis_url = \"redis://r\"\netcd_endpoints = \"http://e:2379\"",
        )
        .unwrap();
        let Storage::Distributed(d) = &c.storage else {
            panic!("distributed mode expected")
        };
        assert_eq!(
            d.multipart.preferred_part_size,
            readme_bytes("--preferred-part-size")
        );
        assert_eq!(d.max_buffered_bytes, readme_bytes("--max-buffered-bytes"));
        for (value, flag) in [
            (d.multipart.max_parts.to_string(), "--max-parts"),
            (
                d.multipart.max_inflight_parts.to_string(),
                "--max-inflight-parts",
            ),
            (d.redis_limits.max_uploads.to_string(), "--max-uploads"),
            (
                d.redis_limits.memory_high_water_percent.to_string(),
                "--redis-memory-high-water",
            ),
        ] {
            assert_eq!(value, readme_default(flag), "{flag}");
        }
        let etcd = d.etcd.as_ref().unwrap();
        assert_eq!(etcd.lease_ttl, readme_duration("--lock-lease"));
    }

    /// A default as a value, so "8MiB" and "8388608", or "1m" and "60s", compare equal.
    #[derive(Debug, PartialEq)]
    enum Value {
        Bytes(u64),
        Duration(Duration),
        Text(String),
    }

    /// The code's default of each setting checked against the documents: its TOML key, its
    /// Helm `config`/section key (None: not in the chart), and the value.
    fn code_defaults() -> Vec<(&'static str, Option<&'static str>, Value)> {
        use Value::*;
        let c = validate(Settings::default()).unwrap();
        let d = from_toml(
            "s3_bucket = \"b\"\nredis_url = \"redis://r\"\netcd_endpoints = \"http://e:2379\"",
        )
        .unwrap();
        let Storage::Distributed(d) = d.storage else {
            panic!("distributed mode expected")
        };
        let etcd = d.etcd.unwrap();
        vec![
            ("listen", None, Text(c.listen.to_string())),
            ("base_path", Some("basePath"), Text(c.http.base_path)),
            ("max_size", Some("maxSize"), Bytes(c.engine.max_size)),
            (
                "max_metadata_size",
                Some("maxMetadataSize"),
                Bytes(c.engine.max_metadata_bytes as u64),
            ),
            ("lock_wait", Some("lockWait"), Duration(c.engine.lock_wait)),
            (
                "read_timeout",
                Some("readTimeout"),
                Duration(c.engine.read_timeout),
            ),
            ("shutdown_timeout", None, Duration(c.shutdown_timeout)),
            (
                "expire_after",
                Some("expireAfter"),
                Duration(c.engine.expire_after.unwrap_or_default()),
            ),
            (
                "max_upload_age",
                Some("maxUploadAge"),
                Duration(c.engine.max_upload_age.unwrap_or_default()),
            ),
            (
                "reap_interval",
                Some("reapInterval"),
                Duration(c.reap_interval),
            ),
            ("s3_checksum", None, Text(d.s3.checksum.as_str().to_owned())),
            (
                "s3_payload_signing",
                None,
                Text(d.s3.payload_signing.as_str().to_owned()),
            ),
            ("redis_prefix", None, Text(d.redis_prefix)),
            (
                "redis_cluster",
                Some("redisCluster"),
                Text(d.redis_cluster.to_string()),
            ),
            (
                "redis_wait_replicas",
                Some("redisWaitReplicas"),
                Text(d.redis_replication.replicas.to_string()),
            ),
            (
                "redis_wait_timeout",
                Some("redisWaitTimeout"),
                Duration(d.redis_replication.timeout),
            ),
            ("etcd_prefix", None, Text(etcd.key_prefix)),
            ("lock_lease", Some("lockLease"), Duration(etcd.lease_ttl)),
            (
                "preferred_part_size",
                Some("preferredPartSize"),
                Bytes(d.multipart.preferred_part_size),
            ),
            (
                "max_parts",
                Some("maxParts"),
                Text(d.multipart.max_parts.to_string()),
            ),
            (
                "max_inflight_parts",
                Some("maxInflightParts"),
                Text(d.multipart.max_inflight_parts.to_string()),
            ),
            (
                "max_buffered_bytes",
                Some("maxBufferedBytes"),
                Bytes(d.max_buffered_bytes),
            ),
            (
                "max_uploads",
                Some("maxUploads"),
                Text(d.redis_limits.max_uploads.to_string()),
            ),
            (
                "redis_memory_high_water",
                Some("redisMemoryHighWater"),
                Text(d.redis_limits.memory_high_water_percent.to_string()),
            ),
        ]
    }

    /// `text` read as the kind of value `like` is.
    fn value_like(like: &Value, text: &str) -> Value {
        let text = text.trim().trim_matches(|c| c == '"' || c == '`');
        match like {
            Value::Bytes(_) => Value::Bytes(
                text.parse::<crate::units::ByteSize>()
                    .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                    .0,
            ),
            Value::Duration(_) => Value::Duration(
                text.parse::<crate::units::HumanDuration>()
                    .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                    .0,
            ),
            Value::Text(_) => Value::Text(text.to_owned()),
        }
    }

    /// Settings whose chart value is a deliberate deployment choice, not the binary's default.
    const CHART_CHOICES: &[&str] = &[
        // A pod's part buffers and memory limit are sized for 100 GiB uploads (values.yaml).
        "max_size",
    ];

    #[test]
    fn defaults_agree_in_help_docs_example_and_chart() {
        use clap::CommandFactory;
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |path: &str| std::fs::read_to_string(format!("{root}/../../{path}")).unwrap();
        let docs = read("docs/configuration.md");
        let example = read("deploy/tusk.example.toml");
        let chart = read("helm/tusk/values.yaml");
        let mut cli = crate::cli::Cli::command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help: Vec<(String, String)> = serve
            .get_arguments()
            .filter_map(|arg| {
                let long = arg.get_long()?.to_owned();
                let text = arg.get_long_help().or(arg.get_help())?.to_string();
                Some((long, text))
            })
            .collect();
        for (key, chart_key, value) in code_defaults() {
            let flag = key.replace('_', "-");
            // docs/configuration.md: `| \`key\` | \`--flag\` | \`ENV\` | default | ... |`
            let row = docs
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("{key}: no row in docs/configuration.md"));
            let cell = row.split(" | ").nth(3).unwrap_or_default();
            let shown = cell.split('`').nth(1).unwrap_or(cell);
            assert_eq!(
                value_like(&value, shown),
                value,
                "{key} in docs/configuration.md"
            );
            // deploy/tusk.example.toml: `key = value` or `# key = value`.
            let line = example
                .lines()
                .map(|l| l.trim_start_matches("# "))
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("{key}: missing from deploy/tusk.example.toml"));
            let shown = line.split_once(" = ").unwrap().1;
            assert_eq!(
                value_like(&value, shown),
                value,
                "{key} in the example TOML"
            );
            // --help: `[default: X]`, where the help gives one.
            if let Some((_, text)) = help.iter().find(|(long, _)| *long == flag)
                && let Some(rest) = text.split("[default: ").nth(1)
            {
                let shown = rest.split([']', ';', ',']).next().unwrap();
                assert_eq!(value_like(&value, shown), value, "{key} in --{flag} --help");
            }
            // The Helm chart's values.yaml.
            if let Some(chart_key) = chart_key
                && !CHART_CHOICES.contains(&key)
            {
                let line = chart
                    .lines()
                    .find(|l| l.trim_start().starts_with(&format!("{chart_key}: ")))
                    .unwrap_or_else(|| panic!("{key}: {chart_key} missing from values.yaml"));
                let shown = line.split_once(": ").unwrap().1;
                assert_eq!(
                    value_like(&value, shown),
                    value,
                    "{key} ({chart_key}) in values.yaml"
                );
            }
        }
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

        // A secret given above replaces the file's `_file` form of it, and the other way round.
        let file: Settings =
            toml::from_str("hooks_url_file = \"/run/secrets/none\"\ns3_bucket = \"b\"\nredis_url = \"redis://file\"").unwrap();
        let env = Settings {
            hooks_url: Some("http://env-hooks/".parse().unwrap()),
            redis_url_file: Some(std::env::temp_dir().join("tusk-no-such-secret")),
            ..Settings::default()
        };
        let merged = env.over(file);
        assert!(merged.hooks_url_file.is_none() && merged.hooks_url.is_some());
        assert!(merged.redis_url.is_none() && merged.redis_url_file.is_some());
    }

    #[test]
    fn distributed_settings_are_read_and_secrets_hidden() {
        let c = from_toml(
            r#"
            s3_bucket = "uploads"
            s3_endpoint = "http://127.0.0.1:9000"
            s3_force_path_style = true
            redis_url = "redis://:hunter2@127.0.0.1:6379/0"
            etcd_endpoints = ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
            preferred_part_size = "16MiB"
            max_parts = 100
            max_size = "1GiB"
            "#,
        )
        .unwrap();
        let Storage::Distributed(d) = &c.storage else {
            panic!("expected distributed mode");
        };
        assert_eq!(d.s3.bucket, "uploads");
        assert!(d.s3.force_path_style);
        assert_eq!(d.redis_prefix, "tusk:");
        assert_eq!(d.multipart.preferred_part_size, 16 << 20);
        assert_eq!(d.multipart.max_parts, 100);
        assert_eq!(d.max_buffered_bytes, 512 << 20);
        let etcd = d.etcd.as_ref().unwrap();
        assert_eq!(etcd.endpoints.len(), 2);
        assert_eq!(etcd.lease_ttl, Duration::from_secs(10));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_redis_cluster_and_replica_waits_are_read() {
        let c = from_toml(
            r#"
            s3_bucket = "uploads"
            redis_url = "redis://:pw@10.0.0.1:7000, redis://10.0.0.2:7000"
            redis_cluster = true
            redis_wait_replicas = 1
            redis_wait_timeout = "250ms"
            "#,
        )
        .unwrap();
        let Storage::Distributed(d) = &c.storage else {
            panic!("expected distributed mode");
        };
        assert!(d.redis_cluster);
        assert_eq!(
            tusk_redis::seed_urls(&d.redis_url.0),
            ["redis://:pw@10.0.0.1:7000", "redis://10.0.0.2:7000"]
        );
        assert_eq!(d.redis_replication.replicas, 1);
        assert_eq!(d.redis_replication.timeout, Duration::from_millis(250));
    }

    #[test]
    fn secrets_are_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("redis-url");
        std::fs::write(&path, "redis://:pw@127.0.0.1:6379/\n").unwrap();
        let c = from_toml(&format!(
            "s3_bucket = \"b\"\nredis_url_file = {:?}",
            path.display().to_string()
        ))
        .unwrap();
        let Storage::Distributed(d) = &c.storage else {
            panic!("expected distributed mode");
        };
        assert_eq!(d.redis_url.0, "redis://:pw@127.0.0.1:6379/");
        let err = from_toml("s3_bucket = \"b\"\nredis_url_file = \"/nonexistent/x\"").unwrap_err();
        assert!(err.contains("redis_url"), "{err}");
    }

    #[test]
    fn the_example_file_is_valid_and_shows_every_documented_key() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let example = std::fs::read_to_string(format!("{root}/deploy/tusk.example.toml")).unwrap();
        // Parses with unknown keys refused, and validates as it stands.
        let settings: Settings = toml::from_str(&example).unwrap();
        validate(settings).unwrap();
        // Every key of the settings tables in docs/configuration.md appears in it (set or
        // commented out).
        let docs = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
        let keys: Vec<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|k| {
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        assert!(keys.len() > 30, "found only {keys:?}");
        for key in keys {
            assert!(
                example.contains(key),
                "{key} is missing from deploy/tusk.example.toml"
            );
        }
    }

    #[test]
    fn file_errors_name_the_line_but_never_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tusk.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1080\"\netcd_password = 98765sekrit\n",
        )
        .unwrap();
        let err = load(Settings {
            config: Some(path.clone()),
            ..Settings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2, key etcd_password"), "{err}");
        assert!(!err.contains("98765sekrit"), "{err}");

        // Valid TOML of the wrong type: serde's message would quote the value.
        std::fs::write(&path, "etcd_password = 98765\n").unwrap();
        let err = load(Settings {
            config: Some(path),
            ..Settings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("key etcd_password"), "{err}");
        assert!(err.contains("quoted string"), "{err}");
        assert!(!err.contains("98765"), "{err}");
    }

    #[test]
    fn help_lists_the_headers_forwarded_to_hooks_by_default() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let serve = cli.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        for name in tusk_protocol::DEFAULT_FORWARD_HEADERS {
            assert!(help.contains(name), "{name} missing from --help");
        }
    }

    #[test]
    fn bare_integers_are_seconds() {
        let c = from_toml("expire_after = 0\nlock_wait = 3").unwrap();
        assert_eq!(c.engine.expire_after, None);
        assert_eq!(c.engine.lock_wait, Duration::from_secs(3));
    }

    #[test]
    fn hook_and_trace_settings_are_read() {
        let c = validate(Settings::default()).unwrap();
        assert!(c.hooks.is_none() && c.otlp.is_none(), "both off by default");
        let c = from_toml(
            r#"
            hooks_url = "https://user:token@hooks.example/tus"
            hooks_events = "pre-create, post-finish,pre-create"
            hooks_forward_headers = ["Authorization", "X-Tenant"]
            hooks_timeout = "2s"
            hooks_retries = 0
            otlp_endpoint = "http://c:4318"
            otlp_protocol = "http"
            "#,
        )
        .unwrap();
        let hooks = c.hooks.as_ref().unwrap();
        assert_eq!(
            hooks.config.events,
            vec![HookType::PreCreate, HookType::PostFinish]
        );
        assert_eq!(
            hooks.config.forward_headers,
            vec!["Authorization", "X-Tenant"]
        );
        assert_eq!(hooks.config.timeout, Duration::from_secs(2));
        assert_eq!(hooks.config.post_retries, 0);
        assert_eq!(hooks.config.post_backoff, Duration::from_secs(1));
        assert!(
            !format!("{c:?}").contains("token"),
            "the hooks URL stays secret"
        );
        let otlp = c.otlp.unwrap();
        assert_eq!(otlp.protocol, OtlpProtocol::Http);
        assert_eq!(otlp.endpoint, "http://c:4318");
        let defaults = from_toml("hooks_url = \"http://h/\"")
            .unwrap()
            .hooks
            .unwrap();
        assert!(!defaults.config.events.contains(&HookType::PostReceive));
        assert!(defaults.config.events.contains(&HookType::PreTerminate));
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
            ("expire_after = \"500ms\"", "expire_after"),
            ("reap_interval = \"0s\"", "reap_interval"),
            ("unknown_key = 1", "unknown_key"),
            ("redis_url = \"redis://x\"", "redis_url"),
            ("s3_bucket = \"b\"", "redis_url"),
            ("s3_bucket = \"b\"\nredis_url = \"http://x\"", "redis_url"),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://a:7000,redis://b:7000\"",
                "redis_url",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://a, unix:///s\"\nredis_cluster = true",
                "redis_url",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\nredis_wait_timeout = \"11s\"",
                "redis_wait_timeout",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\ns3_checksum = \"sometimes\"",
                "s3_checksum",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\ns3_payload_signing = \"yes\"",
                "s3_payload_signing",
            ),
            ("etcd_endpoints = \"http://e:2379\"", "etcd_endpoints"),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\npreferred_part_size = \"1MiB\"",
                "preferred_part_size",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\nmax_parts = 0",
                "max_parts",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\npreferred_part_size = \"1GiB\"",
                "preferred_part_size",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\nmax_size = \"6TiB\"\nmax_buffered_bytes = \"4GiB\"",
                "max_size",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\nmax_buffered_bytes = \"8MiB\"",
                "max_buffered_bytes",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\netcd_endpoints = \"e:2379\"",
                "etcd_endpoints",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\netcd_endpoints = \"http://e:2379\"\nlock_lease = \"1s\"",
                "lock_lease",
            ),
            // Bounded, so no deadline computed from a setting can overflow the clock.
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\netcd_endpoints = \"http://e:2379\"\nlock_lease = \"25h\"",
                "lock_lease",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\nredis_prefix = \"a{b}\"",
                "redis_prefix",
            ),
            (
                "s3_bucket = \"b\"\nredis_url = \"redis://r\"\ns3_endpoint = \"s3.example\"",
                "s3_endpoint",
            ),
            ("expire_after = \"36501d\"", "expire_after"),
            ("finished_retention = \"500000000y\"", "finished_retention"),
            ("max_upload_age = \"36501d\"", "max_upload_age"),
            ("read_timeout = \"25h\"", "read_timeout"),
            ("lock_wait = \"500000000y\"", "lock_wait"),
            ("reap_interval = \"25h\"", "reap_interval"),
            ("hooks_events = \"pre-create\"", "hooks_events"),
            ("hooks_timeout = \"1s\"", "hooks_timeout"),
            ("hooks_url = \"ftp://hooks\"", "hooks_url"),
            (
                "hooks_url = \"http://h/\"\nhooks_events = \"pre-upload\"",
                "hooks_events",
            ),
            (
                "hooks_url = \"http://h/\"\nhooks_timeout = \"0s\"",
                "hooks_timeout",
            ),
            (
                "hooks_url = \"http://h/\"\nhooks_retries = 1000",
                "hooks_retries",
            ),
            (
                "hooks_url = \"http://h/\"\nhooks_forward_headers = \"Bad Header\"",
                "hooks_forward_headers",
            ),
            ("otlp_protocol = \"http\"", "otlp_protocol"),
            ("otlp_endpoint = \"collector:4317\"", "otlp_endpoint"),
            ("otlp_endpoint = \"http://\"", "otlp_endpoint"),
            ("otlp_protocol = \"udp\"", "otlp_protocol"),
        ];
        for (text, key) in cases {
            let err = from_toml(text).expect_err(text);
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
