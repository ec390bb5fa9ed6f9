use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::units::{ByteSize, CommaList, HumanDuration, LogFormat, OtlpProtocol, Secret};

/// tusk: a resumable-upload server for tus 1.0 and the IETF resumable-upload draft.
#[derive(Debug, Parser)]
#[command(
    name = "tusk",
    version,
    about = "tusk: a resumable-upload server for tus 1.0 and the IETF resumable-upload draft",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve tus uploads. With no options: 127.0.0.1:1080, /files/, data in ./tusk-data.
    ///
    /// Every option can also be set by its environment variable (shown below) or by the same
    /// key, in snake_case, in the TOML file given by --config. Flags beat environment, which
    /// beats the file, which beats the defaults.
    Serve(Box<Settings>),
    /// Remove expired uploads now (one reaper pass until none is left), then exit.
    ///
    /// Takes the same settings as `serve` (flags, environment, --config), so it finds the same
    /// uploads; in distributed mode it takes the cluster's reaper lock like a node would.
    Cleanup(Box<Settings>),
    /// Upload a file to a tus server, resuming through resets, hangs and restarts.
    Upload(Box<crate::upload::UploadArgs>),
    /// Check a tus 1.0 server (or, with --ietf, an IETF resumable-upload draft server) against
    /// the protocol; exit 0 iff no check failed.
    Conformance(Box<crate::conformance::ConformanceArgs>),
}

/// Every setting of `tusk serve`. All optional here: [`crate::config::load`] layers flags and
/// environment over the TOML file over the defaults, then validates.
#[derive(Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file (keys as the flags, in snake_case).
    #[arg(long, env = "TUSK_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address and port to listen on [default: 127.0.0.1:1080]. Port 0 picks a free port.
    #[arg(long, env = "TUSK_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// URL path of the upload collection [default: /files/].
    #[arg(long, env = "TUSK_BASE_PATH", value_name = "PATH")]
    pub base_path: Option<String>,

    /// Directory holding uploads in local mode [default: ./tusk-data].
    #[arg(long, env = "TUSK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Largest upload accepted, in bytes or with a unit (KiB, MiB, GiB, TiB) [default: 1TiB].
    #[arg(long, env = "TUSK_MAX_SIZE", value_name = "BYTES")]
    pub max_size: Option<ByteSize>,

    /// Largest Upload-Metadata header, in bytes or with a unit [default: 4KiB].
    #[arg(long, env = "TUSK_MAX_METADATA_SIZE", value_name = "BYTES")]
    pub max_metadata_size: Option<ByteSize>,

    /// Trust Forwarded / X-Forwarded-Host / X-Forwarded-Proto to build upload URLs
    /// [default: false]. Only enable behind a proxy that sets them.
    #[arg(long, env = "TUSK_BEHIND_PROXY", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub behind_proxy: Option<bool>,

    /// Public origin (optionally with a path prefix) for upload URLs, e.g.
    /// https://uploads.example.com; overrides the request's host [default: none].
    #[arg(long, env = "TUSK_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Browser origins allowed by CORS, comma-separated: "*" for any (no credentials), an
    /// empty string to disable CORS [default: *].
    #[arg(long, env = "TUSK_CORS_ORIGINS", value_name = "LIST")]
    pub cors_origins: Option<CommaList>,

    /// How long a request waits for an upload held by another request (which is asked to
    /// let go) before answering 423 [default: 5s].
    #[arg(long, env = "TUSK_LOCK_WAIT", value_name = "DURATION")]
    pub lock_wait: Option<HumanDuration>,

    /// A PATCH body that sends nothing for this long ends and keeps what arrived [default: 30s].
    #[arg(long, env = "TUSK_READ_TIMEOUT", value_name = "DURATION")]
    pub read_timeout: Option<HumanDuration>,

    /// On SIGTERM/SIGINT, how long in-flight requests get to finish before exit [default: 10s].
    #[arg(long, env = "TUSK_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<HumanDuration>,

    /// Unfinished uploads expire this long after their last PATCH; then they answer 410 and are
    /// removed. 0 disables expiration [default: 7d].
    #[arg(long, env = "TUSK_EXPIRE_AFTER", value_name = "DURATION")]
    pub expire_after: Option<HumanDuration>,

    /// Finished uploads are removed this long after they finished. 0 keeps them [default: 0].
    #[arg(long, env = "TUSK_FINISHED_RETENTION", value_name = "DURATION")]
    pub finished_retention: Option<HumanDuration>,

    /// An unfinished upload expires at this age, however recently it was resumed (keep the
    /// bucket's rule that aborts incomplete multipart uploads a day longer). 0: no limit
    /// [default: 30d].
    #[arg(long, env = "TUSK_MAX_UPLOAD_AGE", value_name = "DURATION")]
    pub max_upload_age: Option<HumanDuration>,

    /// Also speak the IETF resumable upload draft (interop versions 3 to 8: iOS URLSession,
    /// tus-js-client's ietf-draft protocols) to requests that carry Upload-Draft-Interop-Version
    /// [default: true].
    #[arg(long, env = "TUSK_IETF_DRAFT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ietf_draft: Option<bool>,

    /// How often the reaper looks for expired uploads (one node at a time) [default: 1m].
    #[arg(long, env = "TUSK_REAP_INTERVAL", value_name = "DURATION")]
    pub reap_interval: Option<HumanDuration>,

    /// Serve Prometheus metrics on this address instead of at /metrics on --listen
    /// [default: none, /metrics on the main listener].
    #[arg(long, env = "TUSK_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// HTTPS on --listen: the certificate (PEM, with its chain), reloaded when the file changes
    /// and on SIGHUP [default: none, plain HTTP].
    #[arg(
        long,
        env = "TUSK_TLS_CERT_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// The certificate's private key (PEM), with --tls-cert-file.
    #[arg(
        long,
        env = "TUSK_TLS_KEY_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_key_file: Option<PathBuf>,

    /// Lowest TLS version accepted: 1.2 or 1.3 [default: 1.2].
    #[arg(
        long,
        env = "TUSK_TLS_MIN_VERSION",
        value_name = "VERSION",
        help_heading = "TLS"
    )]
    pub tls_min_version: Option<String>,

    /// Mutual TLS: clients must present a certificate from these CAs (PEM) [default: none].
    #[arg(
        long,
        env = "TUSK_TLS_CLIENT_CA_FILE",
        value_name = "FILE",
        help_heading = "TLS"
    )]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Log format on stderr: text or json [default: text]. Verbosity via RUST_LOG.
    #[arg(long, env = "TUSK_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    // --- traces -----------------------------------------------------------------------------
    /// Send OpenTelemetry traces to this OTLP endpoint, e.g. http://collector:4317 (gRPC) or
    /// http://collector:4318 (HTTP; /v1/traces is added to a URL without a path). Service name
    /// from OTEL_SERVICE_NAME [default: none, no traces].
    #[arg(
        long,
        env = "TUSK_OTLP_ENDPOINT",
        value_name = "URL",
        help_heading = "Traces"
    )]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport: grpc or http (protobuf over HTTP) [default: grpc].
    #[arg(
        long,
        env = "TUSK_OTLP_PROTOCOL",
        value_name = "PROTOCOL",
        help_heading = "Traces"
    )]
    pub otlp_protocol: Option<OtlpProtocol>,

    // --- hooks ------------------------------------------------------------------------------
    /// Send tusd-compatible HTTP hooks (JSON POST) to this URL; see docs/hooks.md
    /// [default: none, no hooks].
    #[arg(
        long,
        env = "TUSK_HOOKS_URL",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Hooks"
    )]
    pub hooks_url: Option<Secret>,

    /// Read the hooks URL from this file (it may carry a token).
    #[arg(
        long,
        env = "TUSK_HOOKS_URL_FILE",
        value_name = "FILE",
        help_heading = "Hooks"
    )]
    pub hooks_url_file: Option<PathBuf>,

    /// Hook events to send, comma-separated: pre-create, post-create, post-receive,
    /// pre-finish, post-finish, pre-terminate, post-terminate, pre-access
    /// [default: all but post-receive and pre-access].
    #[arg(
        long,
        env = "TUSK_HOOKS_EVENTS",
        value_name = "LIST",
        help_heading = "Hooks"
    )]
    pub hooks_events: Option<CommaList>,

    /// Client request headers passed to hooks in HTTPRequest.Header, comma-separated; replaces
    /// the default list [default: Authorization, Content-Length, Content-Type, Host, Origin,
    /// Tus-Resumable, Upload-Concat, Upload-Defer-Length, Upload-Length, Upload-Metadata,
    /// Upload-Offset, User-Agent, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto,
    /// X-Request-Id].
    #[arg(
        long,
        env = "TUSK_HOOKS_FORWARD_HEADERS",
        value_name = "LIST",
        help_heading = "Hooks"
    )]
    pub hooks_forward_headers: Option<CommaList>,

    /// How long one hook call may take; a pre-* hook that takes longer refuses the request
    /// with 503 [default: 10s].
    #[arg(
        long,
        env = "TUSK_HOOKS_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Hooks"
    )]
    pub hooks_timeout: Option<HumanDuration>,

    /// Retries of a failed post-* hook [default: 3].
    #[arg(
        long,
        env = "TUSK_HOOKS_RETRIES",
        value_name = "N",
        help_heading = "Hooks"
    )]
    pub hooks_retries: Option<u32>,

    /// Wait before the first retry of a post-* hook, doubled for each next one [default: 1s].
    #[arg(
        long,
        env = "TUSK_HOOKS_BACKOFF",
        value_name = "DURATION",
        help_heading = "Hooks"
    )]
    pub hooks_backoff: Option<HumanDuration>,

    /// At most one post-receive per upload per this interval, per node [default: 1s].
    #[arg(
        long,
        env = "TUSK_HOOKS_POST_RECEIVE_INTERVAL",
        value_name = "DURATION",
        help_heading = "Hooks"
    )]
    pub hooks_post_receive_interval: Option<HumanDuration>,

    /// Reuse a pre-access hook's "allowed" for the same upload and Authorization for this
    /// long, per node (0: ask every time; refusals are never reused) [default: 0].
    #[arg(
        long,
        env = "TUSK_HOOKS_ACCESS_CACHE",
        value_name = "DURATION",
        help_heading = "Hooks"
    )]
    pub hooks_access_cache: Option<HumanDuration>,

    // --- distributed mode -------------------------------------------------------------------
    /// S3 bucket holding upload data. Setting it switches to distributed mode (S3 + Redis);
    /// credentials come from the standard AWS chain (env, profile, web identity, instance
    /// role), with AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE / AWS_SESSION_TOKEN_FILE
    /// read from files [default: none, local mode].
    #[arg(
        long,
        env = "TUSK_S3_BUCKET",
        value_name = "BUCKET",
        help_heading = "Distributed mode"
    )]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL for S3-compatible stores (MinIO, R2, ...) [default: AWS].
    #[arg(
        long,
        env = "TUSK_S3_ENDPOINT",
        value_name = "URL",
        help_heading = "Distributed mode"
    )]
    pub s3_endpoint: Option<String>,

    /// S3 region [default: from the AWS chain, else us-east-1].
    #[arg(
        long,
        env = "TUSK_S3_REGION",
        value_name = "REGION",
        help_heading = "Distributed mode"
    )]
    pub s3_region: Option<String>,

    /// Prefix of every object key tusk writes [default: none].
    #[arg(
        long,
        env = "TUSK_S3_PREFIX",
        value_name = "PREFIX",
        help_heading = "Distributed mode"
    )]
    pub s3_prefix: Option<String>,

    /// Key prefix for tusk's own records (<id>.info), so that --s3-prefix holds only uploads'
    /// objects, e.g. tusk-meta/ [default: beside the data, under --s3-prefix].
    #[arg(
        long,
        env = "TUSK_S3_META_PREFIX",
        value_name = "PREFIX",
        help_heading = "Distributed mode"
    )]
    pub s3_meta_prefix: Option<String>,

    /// Address buckets as endpoint/bucket instead of bucket.endpoint (MinIO, moto)
    /// [default: false].
    #[arg(long, env = "TUSK_S3_FORCE_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Distributed mode")]
    pub s3_force_path_style: Option<bool>,

    /// When the S3 client adds checksums: when-supported (the AWS SDK's default, a CRC32 with
    /// every part) or when-required (for stores that reject those: Cloudflare R2, Backblaze B2,
    /// Wasabi, older MinIO) [default: when-supported].
    #[arg(
        long,
        env = "TUSK_S3_CHECKSUM",
        value_name = "WHEN",
        help_heading = "Distributed mode"
    )]
    pub s3_checksum: Option<String>,

    /// Whether part bodies are SHA-256 signed: auto (unsigned over HTTPS, where TLS protects
    /// them; signed over plain HTTP), always, or never (a store on a trusted network)
    /// [default: auto].
    #[arg(
        long,
        env = "TUSK_S3_PAYLOAD_SIGNING",
        value_name = "WHEN",
        help_heading = "Distributed mode"
    )]
    pub s3_payload_signing: Option<String>,

    /// Assemble concatenated (final) uploads from parts of one size too, copying ranges of the
    /// partial uploads and streaming parts that span two of them through the node, for stores
    /// that require all parts but the last to be the same size (Cloudflare R2)
    /// [default: false].
    #[arg(long, env = "TUSK_S3_EQUAL_PARTS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Distributed mode")]
    pub s3_equal_parts: Option<bool>,

    /// Storage class of uploads' objects, e.g. STANDARD_IA or INTELLIGENT_TIERING
    /// [default: the bucket's].
    #[arg(
        long,
        env = "TUSK_S3_STORAGE_CLASS",
        value_name = "CLASS",
        help_heading = "Distributed mode"
    )]
    pub s3_storage_class: Option<String>,

    /// Server-side encryption of uploads' objects: AES256 (SSE-S3), aws:kms (SSE-KMS) or
    /// aws:kms:dsse [default: the bucket's].
    #[arg(
        long,
        env = "TUSK_S3_SSE",
        value_name = "ALGORITHM",
        help_heading = "Distributed mode"
    )]
    pub s3_sse: Option<String>,

    /// The KMS key (id or ARN) for --s3-sse aws:kms [default: the account's S3 key].
    #[arg(
        long,
        env = "TUSK_S3_SSE_KMS_KEY_ID",
        value_name = "KEY",
        help_heading = "Distributed mode"
    )]
    pub s3_sse_kms_key_id: Option<String>,

    /// Redis holding upload state and tails: redis://[:password@]host:port/db, or rediss://
    /// for TLS; with --redis-cluster, comma-separated seed nodes of the cluster. Required with
    /// --s3-bucket [default: none].
    #[arg(
        long,
        env = "TUSK_REDIS_URL",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Distributed mode"
    )]
    pub redis_url: Option<Secret>,

    /// File holding the Redis URL (for secrets mounted as files); instead of --redis-url.
    #[arg(
        long,
        env = "TUSK_REDIS_URL_FILE",
        value_name = "FILE",
        help_heading = "Distributed mode"
    )]
    pub redis_url_file: Option<PathBuf>,

    /// The Redis URLs are seed nodes of a Redis Cluster (3 masters or more) [default: false].
    #[arg(
        long,
        env = "TUSK_REDIS_CLUSTER",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        help_heading = "Distributed mode"
    )]
    pub redis_cluster: Option<bool>,

    /// A state change is acknowledged (204, or reported by HEAD) only once this many Redis
    /// replicas have it, so a failover to one of them loses nothing acknowledged; 0: Redis's
    /// asynchronous replication [default: 0].
    #[arg(
        long,
        env = "TUSK_REDIS_WAIT_REPLICAS",
        value_name = "N",
        help_heading = "Distributed mode"
    )]
    pub redis_wait_replicas: Option<u32>,

    /// How long a change waits for --redis-wait-replicas replicas before the request answers
    /// 503 (the change is then not acknowledged) [default: 1s].
    #[arg(
        long,
        env = "TUSK_REDIS_WAIT_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Distributed mode"
    )]
    pub redis_wait_timeout: Option<HumanDuration>,

    /// Prefix of tusk's Redis keys [default: tusk:].
    #[arg(
        long,
        env = "TUSK_REDIS_PREFIX",
        value_name = "PREFIX",
        help_heading = "Distributed mode"
    )]
    pub redis_prefix: Option<String>,

    /// etcd endpoints, comma-separated (http:// or https://). Setting them switches locks
    /// from in-process to etcd, so several nodes can serve the same uploads [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_ENDPOINTS",
        value_name = "URL[,URL]",
        help_heading = "Distributed mode"
    )]
    pub etcd_endpoints: Option<CommaList>,

    /// etcd user name (with --etcd-password) [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_USER",
        value_name = "USER",
        help_heading = "Distributed mode"
    )]
    pub etcd_user: Option<String>,

    /// etcd password [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        help_heading = "Distributed mode"
    )]
    pub etcd_password: Option<Secret>,

    /// File holding the etcd password; instead of --etcd-password.
    #[arg(
        long,
        env = "TUSK_ETCD_PASSWORD_FILE",
        value_name = "FILE",
        help_heading = "Distributed mode"
    )]
    pub etcd_password_file: Option<PathBuf>,

    /// CA certificate (PEM) to verify etcd's TLS certificate [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_CA_FILE",
        value_name = "FILE",
        help_heading = "Distributed mode"
    )]
    pub etcd_ca_file: Option<PathBuf>,

    /// Client certificate (PEM) for etcd mutual TLS, with --etcd-key-file [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_CERT_FILE",
        value_name = "FILE",
        help_heading = "Distributed mode"
    )]
    pub etcd_cert_file: Option<PathBuf>,

    /// Client key (PEM) for etcd mutual TLS [default: none].
    #[arg(
        long,
        env = "TUSK_ETCD_KEY_FILE",
        value_name = "FILE",
        help_heading = "Distributed mode"
    )]
    pub etcd_key_file: Option<PathBuf>,

    /// Prefix of tusk's etcd keys [default: tusk/].
    #[arg(
        long,
        env = "TUSK_ETCD_PREFIX",
        value_name = "PREFIX",
        help_heading = "Distributed mode"
    )]
    pub etcd_prefix: Option<String>,

    /// Lease TTL of an etcd upload lock: how long a crashed node's locks outlive it
    /// [default: 10s].
    #[arg(
        long,
        env = "TUSK_LOCK_LEASE",
        value_name = "DURATION",
        help_heading = "Distributed mode"
    )]
    pub lock_lease: Option<HumanDuration>,

    /// Preferred S3 part size; larger when an upload's length needs it to fit --max-parts
    /// [default: 8MiB; 5MiB to 512MiB].
    #[arg(
        long,
        env = "TUSK_PREFERRED_PART_SIZE",
        value_name = "BYTES",
        help_heading = "Distributed mode"
    )]
    pub preferred_part_size: Option<ByteSize>,

    /// Most S3 parts per upload [default: 10000, the S3 limit].
    #[arg(
        long,
        env = "TUSK_MAX_PARTS",
        value_name = "N",
        help_heading = "Distributed mode"
    )]
    pub max_parts: Option<u32>,

    /// Parts of one upload sent to S3 at once while its PATCH keeps streaming [default: 2].
    #[arg(
        long,
        env = "TUSK_MAX_INFLIGHT_PARTS",
        value_name = "N",
        help_heading = "Distributed mode"
    )]
    pub max_inflight_parts: Option<usize>,

    /// Bytes of part buffers one node may hold across all uploads; a PATCH waits (and stops
    /// reading) while it is spent [default: 512MiB].
    #[arg(
        long,
        env = "TUSK_MAX_BUFFERED_BYTES",
        value_name = "BYTES",
        help_heading = "Distributed mode"
    )]
    pub max_buffered_bytes: Option<ByteSize>,

    /// New uploads get 503 while this many uploads can still expire (unfinished ones, and
    /// finished ones kept for --finished-retention); 0: no limit [default: 100000].
    #[arg(
        long,
        env = "TUSK_MAX_UPLOADS",
        value_name = "N",
        help_heading = "Distributed mode"
    )]
    pub max_uploads: Option<u64>,

    /// New uploads get 503 while Redis uses more than this percentage of its maxmemory, so
    /// uploads under way keep room to finish; 0: off [default: 90].
    #[arg(
        long,
        env = "TUSK_REDIS_MEMORY_HIGH_WATER",
        value_name = "PERCENT",
        help_heading = "Distributed mode"
    )]
    pub redis_memory_high_water: Option<u8>,
}

impl Settings {
    /// Fill every unset field of `self` from `lower`.
    pub fn over(self, mut lower: Settings) -> Settings {
        // A secret and its `_file` form are one setting: whichever this layer gives wins over
        // both forms below, instead of the two meeting and being refused as "not both".
        macro_rules! one_setting {
            ($($value:ident / $file:ident),* $(,)?) => {
                $(if self.$value.is_some() || self.$file.is_some() {
                    lower.$value = None;
                    lower.$file = None;
                })*
            };
        }
        one_setting!(
            redis_url / redis_url_file,
            etcd_password / etcd_password_file,
            hooks_url / hooks_url_file,
        );
        macro_rules! layer {
            ($($field:ident),* $(,)?) => {
                Settings { $($field: self.$field.or(lower.$field)),* }
            };
        }
        layer!(
            config,
            listen,
            base_path,
            data_dir,
            max_size,
            max_metadata_size,
            behind_proxy,
            base_url,
            cors_origins,
            lock_wait,
            read_timeout,
            shutdown_timeout,
            log_format,
            otlp_endpoint,
            otlp_protocol,
            hooks_url,
            hooks_url_file,
            hooks_events,
            hooks_forward_headers,
            hooks_timeout,
            hooks_retries,
            hooks_backoff,
            hooks_post_receive_interval,
            hooks_access_cache,
            expire_after,
            finished_retention,
            max_upload_age,
            ietf_draft,
            reap_interval,
            metrics_listen,
            tls_cert_file,
            tls_key_file,
            tls_min_version,
            tls_client_ca_file,
            s3_bucket,
            s3_endpoint,
            s3_region,
            s3_prefix,
            s3_meta_prefix,
            s3_force_path_style,
            s3_checksum,
            s3_payload_signing,
            s3_equal_parts,
            s3_storage_class,
            s3_sse,
            s3_sse_kms_key_id,
            redis_url,
            redis_url_file,
            redis_cluster,
            redis_wait_replicas,
            redis_wait_timeout,
            redis_prefix,
            etcd_endpoints,
            etcd_user,
            etcd_password,
            etcd_password_file,
            etcd_ca_file,
            etcd_cert_file,
            etcd_key_file,
            etcd_prefix,
            lock_lease,
            preferred_part_size,
            max_parts,
            max_inflight_parts,
            max_buffered_bytes,
            max_uploads,
            redis_memory_high_water,
        )
    }
}
