//! `S3Objects` against a real S3 server (moto in the test services): the object-store
//! conformance suite, start-up checks and error mapping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tusk_core::{ErrorKind, ObjectAttributes, ObjectStore, UploadId};
use tusk_s3::{S3Config, S3Error, S3Objects, StaticCredentials};
use tusk_testkit::object_suite::{self, ReadObject};

/// Moto accepts any key; these never leave the test.
const KEY_ID: &str = "test";
const SECRET: &str = "test";
/// Part of no request: must never show up in an error.
const SECRET_MARKER: &str = "Authorization";

/// Whether tests that need the real S3 run: only when `TUSK_TEST_SERVICES` is "1"
/// (`.services/env` sets it). Otherwise it says on stderr that `test` is skipped.
fn services_enabled(test: &str) -> bool {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: {test} needs S3 (set TUSK_TEST_SERVICES=1; scripts/test.sh does)");
    false
}

fn endpoint() -> String {
    match std::env::var("TUSK_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "TUSK_TEST_S3_ENDPOINT is not set: start the test services with \
             `scripts/services.sh up` and source .services/env"
        ),
    }
}

/// A plain SDK client, independent of the code under test, to create buckets and read back.
fn raw_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(tusk_s3::sdk_http_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(KEY_ID, SECRET, None, None, "tests"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn config(endpoint: &str, bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".to_owned()),
        prefix: prefix.to_owned(),
        force_path_style: true,
        credentials: Some(StaticCredentials::new(KEY_ID, SECRET, None)),
        checksum: tusk_s3::ChecksumMode::default(),
        ..S3Config::default()
    }
}

fn bucket_name() -> String {
    format!("tusk-test-{}", UploadId::generate())
}

/// A fresh bucket of its own for each test, so tests can share one server.
async fn new_bucket(client: &aws_sdk_s3::Client) -> String {
    let bucket = bucket_name();
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    bucket
}

struct Reader {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

#[async_trait]
impl ReadObject for Reader {
    async fn read(&self, key: &str) -> Vec<u8> {
        let key = format!("{}{}", self.prefix, key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"));
        out.body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("read body of {key}: {e}"))
            .into_bytes()
            .to_vec()
    }
}

#[tokio::test]
async fn s3_objects_pass_the_object_suite() {
    if !services_enabled("s3_objects_pass_the_object_suite") {
        return;
    }
    let prefix = "uploads/";
    let (client, bucket, objects) = in_new_bucket(prefix, |config| config).await;
    let reader = Reader {
        client: client.clone(),
        bucket: bucket.clone(),
        prefix: prefix.to_owned(),
    };
    let started = Instant::now();
    object_suite::run(&objects, &reader).await;
    eprintln!("object suite against S3 took {:?}", started.elapsed());

    // Every key the suite wrote went under the prefix, and it cleaned up after itself.
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.is_empty(), "objects left behind: {keys:?}");
}

/// Both checksum modes pass the start-up multipart upload against moto, and the check leaves
/// neither an object nor a multipart upload behind; a value that is neither is refused by name.
#[tokio::test]
async fn both_checksum_modes_pass_the_start_up_check_and_leave_nothing() {
    if !services_enabled("both_checksum_modes_pass_the_start_up_check_and_leave_nothing") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    for mode in ["when-supported", "when-required"] {
        let checksum = tusk_s3::ChecksumMode::parse(mode).unwrap();
        assert_eq!(checksum.as_str(), mode);
        let objects = S3Objects::connect(S3Config {
            checksum,
            ..config(&endpoint, &bucket, "p/")
        })
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
        objects
            .put_object(
                "x",
                Bytes::from_static(b"abc"),
                &ObjectAttributes::default(),
            )
            .await
            .unwrap();
        objects.delete_object("x").await.unwrap();
    }
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    let pending = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    let err = tusk_s3::ChecksumMode::parse("sometimes").unwrap_err();
    assert!(err.to_string().starts_with("s3_checksum:"), "{err}");
}

#[tokio::test]
async fn keys_are_stored_under_the_prefix() {
    if !services_enabled("keys_are_stored_under_the_prefix") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    let objects = S3Objects::connect(config(&endpoint, &bucket, "a/b-"))
        .await
        .expect("connect");
    objects
        .put_object(
            "id.info",
            Bytes::from_static(b"{}"),
            &ObjectAttributes::default(),
        )
        .await
        .expect("put");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("a/b-id.info")
        .send()
        .await
        .expect("object under the prefixed key");
    assert_eq!(head.content_length(), Some(2));
    assert_eq!(objects.bucket(), bucket);
    assert_eq!(objects.prefix(), "a/b-");
}

#[tokio::test]
async fn service_errors_are_classified_and_keep_no_raw_response() {
    if !services_enabled("service_errors_are_classified_and_keep_no_raw_response") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    let objects = S3Objects::connect(config(&endpoint, &bucket, ""))
        .await
        .expect("connect");
    let id = objects
        .create_multipart("k", &ObjectAttributes::default())
        .await
        .expect("create");
    let mut etags = Vec::new();
    for n in 1..=2 {
        let etag = objects
            .upload_part("k", &id, n, Bytes::from_static(b"tiny"))
            .await
            .expect("part");
        // ETags come back as S3 gives them: quoted.
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        etags.push(etag);
    }
    let err = objects
        .complete_multipart("k", &id, &etags)
        .await
        .expect_err("complete with a 4-byte first part");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    assert!(err.message().contains("EntityTooSmall"), "{err}");
    // The SDK's Debug would include the raw XML body (which, for SignatureDoesNotMatch, echoes
    // the canonical request with the session token); only the message chain is kept.
    let debug = format!("{err:?}");
    eprintln!("EntityTooSmall as seen in logs: {debug}");
    assert!(!debug.contains("<Error>"), "{debug}");
    assert!(!debug.contains(SECRET_MARKER), "{debug}");
    objects.abort_multipart("k", &id).await.expect("abort");
}

#[tokio::test]
async fn connect_to_a_missing_bucket_fails_naming_it() {
    if !services_enabled("connect_to_a_missing_bucket_fails_naming_it") {
        return;
    }
    let endpoint = endpoint();
    let bucket = bucket_name();
    let err = S3Objects::connect(config(&endpoint, &bucket, ""))
        .await
        .expect_err("connect to a bucket that does not exist");
    assert!(matches!(err, S3Error::BucketNotFound { .. }), "{err:?}");
    let message = err.to_string();
    eprintln!("missing bucket: {message}");
    assert!(message.contains(&bucket), "{message}");
    assert!(message.contains("does not exist"), "{message}");
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_as_unreachable() {
    let started = Instant::now();
    let err = S3Objects::connect(config("http://127.0.0.1:1", "any-bucket", ""))
        .await
        .expect_err("connect to a closed port");
    eprintln!("closed port refused after {:?}", started.elapsed());
    assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    eprintln!("closed port: {message}");
    assert!(message.contains("unreachable"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert_eq!(tusk_core::Error::from(err).kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn calls_after_the_endpoint_goes_away_are_unavailable() {
    if !services_enabled("calls_after_the_endpoint_goes_away_are_unavailable") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    let proxy = Proxy::start(&endpoint).await;
    let objects = S3Objects::connect(config(&proxy.endpoint(), &bucket, ""))
        .await
        .expect("connect through the proxy");
    let id = objects
        .create_multipart("k", &ObjectAttributes::default())
        .await
        .expect("create through the proxy");

    proxy.cut().await;
    let started = Instant::now();
    let err = objects
        .upload_part("k", &id, 1, Bytes::from_static(b"x"))
        .await
        .expect_err("upload_part with the endpoint gone");
    eprintln!(
        "upload_part failed {:?} after the endpoint went away",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(
        err.message(),
        "object storage (S3) is unavailable; retry later"
    );
    for result in [
        objects.object_size("k").await.map(drop),
        objects
            .put_object("k", Bytes::new(), &ObjectAttributes::default())
            .await,
        objects.abort_multipart("k", &id).await,
    ] {
        let err = result.expect_err("call with the endpoint gone");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }
}

#[tokio::test]
async fn credentials_from_file_variables_are_used() {
    if !services_enabled("credentials_from_file_variables_are_used") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = write(dir.path(), "key", &format!("{KEY_ID}\n"));
    let secret_file = write(dir.path(), "secret", &format!("{SECRET}\r\n"));
    let token_file = write(dir.path(), "token", "session-token\n");
    let env = [
        ("AWS_ACCESS_KEY_ID_FILE", key_file),
        ("AWS_SECRET_ACCESS_KEY_FILE", secret_file),
        ("AWS_SESSION_TOKEN_FILE", token_file),
    ];
    let credentials = StaticCredentials::from_file_variables(lookup(&env))
        .expect("read credential files")
        .expect("file variables are set");
    assert_eq!(
        credentials.access_key_id(),
        KEY_ID,
        "trailing newline trimmed"
    );

    let mut config = config(&endpoint, &bucket, "");
    config.credentials = Some(credentials);
    let objects = S3Objects::connect(config)
        .await
        .expect("connect with file credentials");
    objects
        .put_object("k", Bytes::from_static(b"v"), &ObjectAttributes::default())
        .await
        .expect("put with file credentials");
    assert_eq!(objects.object_size("k").await.expect("size"), Some(1));
}

#[test]
fn file_variables_mix_with_plain_ones_and_are_optional() {
    let none: [(&str, OsString); 0] = [];
    assert!(
        StaticCredentials::from_file_variables(lookup(&none))
            .expect("nothing set")
            .is_none(),
        "no *_FILE variable: the standard chain decides"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = write(dir.path(), "secret", "from-file\n");
    let env = [
        ("AWS_ACCESS_KEY_ID", OsString::from("plain-id")),
        ("AWS_SECRET_ACCESS_KEY_FILE", secret_file),
    ];
    let credentials = StaticCredentials::from_file_variables(lookup(&env))
        .expect("read")
        .expect("set");
    assert_eq!(credentials.access_key_id(), "plain-id");
}

#[test]
fn credential_errors_name_the_variable_never_the_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = write(dir.path(), "secret", "s3cr3t-value\n");
    let missing = dir.path().join("no-such-file").into_os_string();
    let env = [
        ("AWS_ACCESS_KEY_ID_FILE", missing),
        ("AWS_SECRET_ACCESS_KEY_FILE", secret_file.clone()),
    ];
    let err = StaticCredentials::from_file_variables(lookup(&env)).expect_err("unreadable file");
    let message = err.to_string();
    assert!(message.contains("AWS_ACCESS_KEY_ID_FILE"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");

    let env = [("AWS_SECRET_ACCESS_KEY_FILE", secret_file)];
    let err = StaticCredentials::from_file_variables(lookup(&env)).expect_err("no key id");
    let message = err.to_string();
    assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");

    let credentials = StaticCredentials::new("AKIDVISIBLE", "s3cr3t-value", Some("t0ken".into()));
    let mut config = config("http://127.0.0.1:1", "b", "");
    config.credentials = Some(credentials);
    let debug = format!("{config:?}");
    for secret in ["AKIDVISIBLE", "s3cr3t", "t0ken"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

fn write(dir: &Path, name: &str, content: &str) -> OsString {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write credential file");
    path.into_os_string()
}

fn lookup<const N: usize>(env: &[(&str, OsString); N]) -> impl Fn(&str) -> Option<OsString> {
    move |name| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
}

/// A TCP proxy to the S3 server that the test can cut, to make the endpoint go away; it keeps
/// the first [`Proxy::KEPT`] bytes the client sent, to look at the requests.
struct Proxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    const KEPT: usize = 16 << 20;

    async fn start(endpoint: &str) -> Self {
        let authority = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let target = tokio::net::lookup_host(&authority)
            .await
            .expect("resolve the S3 endpoint")
            .next()
            .expect("an address for the S3 endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = sent.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) closes every proxied connection.
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let kept = kept.clone();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match from_client.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    {
                                        let mut kept = kept.lock().unwrap();
                                        let room = Self::KEPT.saturating_sub(kept.len());
                                        kept.extend_from_slice(&buf[..n.min(room)]);
                                    }
                                    if to_server.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to_server.shutdown().await;
                    };
                    let downstream = tokio::io::copy(&mut from_server, &mut to_client);
                    let _ = tokio::join!(upstream, downstream);
                });
            }
        });
        Self { addr, task, sent }
    }

    /// How often `needle` occurs in what clients sent so far.
    fn count_sent(&self, needle: &[u8]) -> usize {
        let sent = self.sent.lock().unwrap();
        sent.windows(needle.len()).filter(|w| *w == needle).count()
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Close the listener and every connection: the port now refuses connections.
    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
        // Nothing listens any more: connecting must fail from here on.
        let refused = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.addr))
            .await
            .map(|r| r.is_err())
            .unwrap_or(true);
        assert!(refused, "the proxy port still accepts connections");
    }
}

/// A fresh bucket, a raw client for it and `S3Objects` over it with `prefix`, its settings
/// changed by `change`.
async fn in_new_bucket(
    prefix: &str,
    change: impl FnOnce(S3Config) -> S3Config,
) -> (aws_sdk_s3::Client, String, S3Objects) {
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    let objects = S3Objects::connect(change(config(&endpoint, &bucket, prefix)))
        .await
        .unwrap();
    (client, bucket, objects)
}

#[tokio::test]
async fn objects_carry_their_attributes_storage_class_and_encryption() {
    if !services_enabled("objects_carry_their_attributes_storage_class_and_encryption") {
        return;
    }
    let (client, bucket, objects) = in_new_bucket("p/", |config| S3Config {
        storage_class: Some("STANDARD_IA".to_owned()),
        sse: Some("AES256".to_owned()),
        ..config
    })
    .await;
    let attributes = ObjectAttributes {
        content_type: Some("image/jpeg".to_owned()),
        content_disposition: Some("inline; filename=\"fire.jpg\"".to_owned()),
        ..ObjectAttributes::default()
    };
    objects
        .put_object("small", Bytes::from_static(b"abc"), &attributes)
        .await
        .unwrap();
    let id = objects.create_multipart("big", &attributes).await.unwrap();
    let etag = objects
        .upload_part("big", &id, 1, Bytes::from_static(b"xyz"))
        .await
        .unwrap();
    objects
        .complete_multipart("big", &id, &[etag])
        .await
        .unwrap();
    for key in ["p/small", "p/big"] {
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("image/jpeg"), "{key}");
        assert_eq!(
            head.content_disposition(),
            Some("inline; filename=\"fire.jpg\""),
            "{key}"
        );
        assert_eq!(
            head.storage_class(),
            Some(&aws_sdk_s3::types::StorageClass::StandardIa),
            "{key}"
        );
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{key}"
        );
    }
    // An upload's own choice (a pre-create hook's) wins over the bucket's settings.
    let own = ObjectAttributes {
        storage_class: Some("ONEZONE_IA".to_owned()),
        ..attributes
    };
    objects
        .put_object("own", Bytes::from_static(b"abc"), &own)
        .await
        .unwrap();
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("p/own")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.storage_class(),
        Some(&aws_sdk_s3::types::StorageClass::OnezoneIa)
    );
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
}

#[test]
fn an_upload_s_placement_is_checked_like_the_bucket_settings() {
    use tusk_core::Placement;
    for (placement, names) in [
        (
            Placement {
                storage_class: Some("CHEAP".to_owned()),
                ..Placement::default()
            },
            "Storage.StorageClass",
        ),
        (
            Placement {
                server_side_encryption: Some("rot13".to_owned()),
                ..Placement::default()
            },
            "Storage.ServerSideEncryption",
        ),
    ] {
        let err = tusk_s3::check_placement(&placement).unwrap_err();
        assert!(err.starts_with(names), "{err}");
    }
    assert!(
        tusk_s3::check_placement(&Placement {
            storage_class: Some("GLACIER_IR".to_owned()),
            server_side_encryption: Some("aws:kms:dsse".to_owned()),
            sse_kms_key_id: Some("k".to_owned()),
            key_prefix: Some("t/".to_owned()),
        })
        .is_ok()
    );
}

#[test]
fn storage_class_and_encryption_settings_are_checked() {
    let base = config("http://127.0.0.1:1", "b", "");
    for (config, key) in [
        (
            S3Config {
                storage_class: Some("CHEAP".to_owned()),
                ..base.clone()
            },
            "s3_storage_class",
        ),
        (
            S3Config {
                sse: Some("rot13".to_owned()),
                ..base.clone()
            },
            "s3_sse",
        ),
        (
            S3Config {
                sse: Some("AES256".to_owned()),
                sse_kms_key_id: Some("k".to_owned()),
                ..base.clone()
            },
            "s3_sse_kms_key_id",
        ),
    ] {
        match config.validate() {
            Err(S3Error::Setting { key: got, .. }) => assert_eq!(got, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    let kms = S3Config {
        sse: Some("aws:kms".to_owned()),
        sse_kms_key_id: Some("arn:aws:kms:eu-west-1:1:key/x".to_owned()),
        storage_class: Some("INTELLIGENT_TIERING".to_owned()),
        ..base
    };
    assert!(kms.validate().is_ok());
}

#[tokio::test]
async fn records_go_under_the_meta_prefix_and_data_under_the_data_prefix() {
    if !services_enabled("records_go_under_the_meta_prefix_and_data_under_the_data_prefix") {
        return;
    }
    let (client, bucket, objects) = in_new_bucket("data/", |config| S3Config {
        meta_prefix: Some("meta/".to_owned()),
        ..config
    })
    .await;
    let none = ObjectAttributes::default();
    objects
        .put_object("abc", Bytes::from_static(b"bytes"), &none)
        .await
        .unwrap();
    objects
        .put_object("abc.info", Bytes::from_static(b"{}"), &none)
        .await
        .unwrap();
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data/abc", "meta/abc.info"]);
    assert_eq!(objects.object_size("abc.info").await.unwrap(), Some(2));
    objects.delete_object("abc.info").await.unwrap();
    assert_eq!(objects.object_size("abc.info").await.unwrap(), None);
    assert_eq!(objects.object_size("abc").await.unwrap(), Some(5));
}

#[test]
fn payload_signing_follows_the_transport() {
    use tusk_s3::PayloadSigning;
    for (signing, endpoint, signs) in [
        (PayloadSigning::Auto, None, false),
        (PayloadSigning::Auto, Some("https://s3.example"), false),
        (PayloadSigning::Auto, Some("HTTP://127.0.0.1:9000"), true),
        (PayloadSigning::Always, None, true),
        (PayloadSigning::Never, Some("http://127.0.0.1:9000"), false),
    ] {
        assert_eq!(signing.signs(endpoint), signs, "{signing:?} {endpoint:?}");
    }
    for value in ["auto", "always", "never"] {
        assert_eq!(PayloadSigning::parse(value).unwrap().as_str(), value);
    }
    let err = PayloadSigning::parse("sometimes").unwrap_err();
    assert!(err.to_string().starts_with("s3_payload_signing:"), "{err}");
}

/// Part and object bodies go as `UNSIGNED-PAYLOAD` when told to (S3 takes them, the bytes
/// arrive whole), and carry their SHA-256 otherwise: counted in the requests themselves.
#[tokio::test]
async fn bodies_are_signed_or_not_as_configured() {
    if !services_enabled("bodies_are_signed_or_not_as_configured") {
        return;
    }
    let endpoint = endpoint();
    let client = raw_client(&endpoint);
    let bucket = new_bucket(&client).await;
    for (signing, unsigned_bodies) in [
        (tusk_s3::PayloadSigning::Never, true),
        (tusk_s3::PayloadSigning::Auto, false),
    ] {
        let proxy = Proxy::start(&endpoint).await;
        let objects = S3Objects::connect(S3Config {
            payload_signing: signing,
            ..config(&proxy.endpoint(), &bucket, "")
        })
        .await
        .expect("connect through the proxy");
        let key = format!("{}-{signing:?}", UploadId::generate());
        let id = objects
            .create_multipart(&key, &ObjectAttributes::default())
            .await
            .unwrap();
        let body = Bytes::from(vec![7u8; 100_000]);
        let etag = objects
            .upload_part(&key, &id, 1, body.clone())
            .await
            .unwrap();
        objects
            .complete_multipart(&key, &id, &[etag])
            .await
            .unwrap();
        objects
            .put_object(
                "small",
                Bytes::from_static(b"abc"),
                &ObjectAttributes::default(),
            )
            .await
            .unwrap();
        let stored = client
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(stored == body, "{signing:?}: the part arrived whole");
        // The start-up check's part, this part and this PutObject.
        let unsigned = proxy.count_sent(b"UNSIGNED-PAYLOAD");
        if unsigned_bodies {
            assert!(unsigned >= 3, "{signing:?}: {unsigned} unsigned bodies");
        } else {
            assert_eq!(unsigned, 0, "{signing:?} over plain HTTP signs every body");
        }
    }
}

/// A part body fed from a channel, as the distributed store feeds a part while PATCHes fill it.
fn channel_body() -> (
    tokio::sync::mpsc::UnboundedSender<tusk_core::Result<Bytes>>,
    tusk_core::ByteStream,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let body = Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (tx, body)
}

/// With unsigned bodies a part goes to S3 while its bytes are still arriving, under both
/// checksum modes (the SDK frames a streamed body differently when it adds a checksum); a
/// stream cut off before its last byte, or failing, stores nothing. Signed bodies cannot be
/// streamed (their hash comes first).
#[tokio::test]
async fn a_part_streams_as_its_bytes_arrive_and_a_cut_stream_stores_nothing() {
    if !services_enabled("a_part_streams_as_its_bytes_arrive_and_a_cut_stream_stores_nothing") {
        return;
    }
    let (_, _, signed) = in_new_bucket("", |config| config).await;
    assert!(
        !signed.streams_parts(),
        "plain HTTP signs bodies by default"
    );

    for checksum in [
        tusk_s3::ChecksumMode::WhenSupported,
        tusk_s3::ChecksumMode::WhenRequired,
    ] {
        let (client, bucket, objects) = in_new_bucket("", |config| S3Config {
            payload_signing: tusk_s3::PayloadSigning::Never,
            checksum,
            ..config
        })
        .await;
        assert!(objects.streams_parts());
        let key = UploadId::generate().to_string();
        let id = objects
            .create_multipart(&key, &ObjectAttributes::default())
            .await
            .unwrap();
        let part: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();

        // Part 1: the first half, a pause while the request is under way, then the rest.
        let (tx, body) = channel_body();
        let upload = tokio::spawn({
            let (objects, key, id) = (objects.clone(), key.clone(), id.clone());
            let size = part.len() as u64;
            async move { objects.upload_part_streamed(&key, &id, 1, size, body).await }
        });
        let half = part.len() / 2;
        tx.send(Ok(Bytes::copy_from_slice(&part[..half]))).unwrap();
        tokio::task::yield_now().await;
        assert!(
            !upload.is_finished(),
            "{checksum:?}: answered before its last byte"
        );
        for piece in part[half..].chunks(256 * 1024) {
            tx.send(Ok(Bytes::copy_from_slice(piece))).unwrap();
        }
        let etag = upload.await.unwrap().unwrap();

        // Part 2 cut off after 1 MiB, part 3 failing after 1 MiB: neither is stored.
        for (number, fail) in [(2, false), (3, true)] {
            let (tx, body) = channel_body();
            let upload = tokio::spawn({
                let (objects, key, id) = (objects.clone(), key.clone(), id.clone());
                async move {
                    objects
                        .upload_part_streamed(&key, &id, number, 5 * 1024 * 1024, body)
                        .await
                }
            });
            tx.send(Ok(Bytes::from(vec![9u8; 1024 * 1024]))).unwrap();
            if fail {
                tx.send(Err(tusk_core::Error::new(ErrorKind::LockLost, "gone")))
                    .unwrap();
            }
            drop(tx);
            let refused = tokio::time::timeout(Duration::from_secs(30), upload)
                .await
                .expect("a cut stream ends its request")
                .unwrap();
            assert!(refused.is_err(), "{checksum:?}: part {number} was stored");
        }
        let listed = client
            .list_parts()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        let numbers: Vec<_> = listed
            .parts()
            .iter()
            .filter_map(|p| p.part_number())
            .collect();
        assert_eq!(numbers, vec![1], "{checksum:?}: parts S3 holds");

        objects
            .complete_multipart(&key, &id, &[etag])
            .await
            .unwrap();
        let stored = Reader {
            client,
            bucket,
            prefix: String::new(),
        }
        .read(&key)
        .await;
        assert!(
            stored == part,
            "{checksum:?}: the streamed part arrived whole"
        );
    }
}
