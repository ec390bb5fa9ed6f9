//! The real services of distributed mode for end-to-end tests: the shared Redis, etcd and S3
//! (moto) that `scripts/services.sh` starts, private instances a test may stop and restart,
//! and a cluster of `tusk` nodes over them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use crate::support::*;

/// Whether tests that need the real services run: only when `TUSK_TEST_SERVICES` is "1"
/// (`.services/env` sets it). Otherwise it says on stderr that `test` is skipped.
pub fn services_enabled(test: &str) -> bool {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "skipped: {test} needs Redis, etcd and S3 (set TUSK_TEST_SERVICES=1; scripts/test.sh does)"
    );
    false
}

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub redis_url: String,
    pub etcd: String,
    pub s3: String,
}

/// The S3 server's access key id and secret: moto takes any (`test`); a real store (garage, by
/// `scripts/e2e-garage.sh`) names its own in `TUSK_TEST_S3_ACCESS_KEY_ID` and
/// `TUSK_TEST_S3_SECRET_ACCESS_KEY`.
pub fn s3_credentials() -> (String, String) {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "test".to_owned());
    (
        var("TUSK_TEST_S3_ACCESS_KEY_ID"),
        var("TUSK_TEST_S3_SECRET_ACCESS_KEY"),
    )
}

/// Whether the test S3 server keeps an object's storage class and encryption and reports them
/// on HeadObject: moto does; garage ignores both (`scripts/e2e-garage.sh` sets
/// `TUSK_TEST_S3_NO_OBJECT_SETTINGS=1`).
pub fn s3_keeps_object_settings() -> bool {
    std::env::var("TUSK_TEST_S3_NO_OBJECT_SETTINGS").as_deref() != Ok("1")
}

/// The environment a `tusk` process over the test services needs for S3.
pub fn s3_env() -> Vec<(&'static str, String)> {
    let (key, secret) = s3_credentials();
    vec![
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test services with `scripts/services.sh up` and \
             `source .services/env` (scripts/test.sh does both)"
        )
    })
}

impl Endpoints {
    /// The shared services named by the environment. With `TUSK_TEST_E2E_REDIS_CLUSTER=1`, the
    /// nodes keep their state in the services' Redis Cluster instead of the single Redis (the
    /// test script runs the distributed tests that way too).
    pub fn shared() -> Endpoints {
        let redis_url = if std::env::var("TUSK_TEST_E2E_REDIS_CLUSTER").as_deref() == Ok("1") {
            required("TUSK_TEST_REDIS_CLUSTER_URLS")
        } else {
            required("TUSK_TEST_REDIS_URL")
        };
        Endpoints {
            redis_url,
            etcd: required("TUSK_TEST_ETCD_ENDPOINTS"),
            s3: required("TUSK_TEST_S3_ENDPOINT")
                .trim_end_matches('/')
                .to_owned(),
        }
    }
}

/// A unique lowercase name for buckets and key prefixes.
pub fn unique(prefix: &str) -> String {
    let id = tusk_core::UploadId::generate();
    format!("{prefix}-{}", &id.as_str()[..16])
}

/// Three (or more) `tusk` nodes sharing one bucket, Redis prefix and etcd prefix.
pub struct Cluster {
    pub nodes: Vec<Server>,
    pub endpoints: Endpoints,
    pub bucket: String,
    redis_prefix: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes over the shared services, with `extra` flags.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        Self::start_over(Endpoints::shared(), n, extra).await
    }

    /// `n` nodes over `endpoints`, with `extra` flags.
    pub async fn start_over(endpoints: Endpoints, n: usize, extra: &[&str]) -> Cluster {
        Self::start_with_env(endpoints, n, extra, &[]).await
    }

    /// `n` nodes over `endpoints`, with `extra` flags and environment `envs`.
    pub async fn start_with_env(
        endpoints: Endpoints,
        n: usize,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Cluster {
        let bucket = unique("tusk-e2e");
        create_bucket(&endpoints.s3, &bucket).await;
        let redis_prefix = format!("{}:", unique("e2e"));
        let mut args: Vec<String> = vec![
            "--s3-bucket".into(),
            bucket.clone(),
            "--s3-endpoint".into(),
            endpoints.s3.clone(),
            "--s3-region".into(),
            "us-east-1".into(),
            "--s3-force-path-style".into(),
            "--redis-url".into(),
            endpoints.redis_url.clone(),
            "--redis-prefix".into(),
            redis_prefix.clone(),
            "--etcd-endpoints".into(),
            endpoints.etcd.clone(),
            "--etcd-prefix".into(),
            format!("{}/", unique("e2e")),
            "--preferred-part-size".into(),
            "5MiB".into(),
        ];
        // Several URLs are the seeds of a Redis Cluster.
        if endpoints.redis_url.contains(',') && !extra.contains(&"--redis-cluster") {
            args.push("--redis-cluster".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cluster = Cluster {
            nodes: Vec::new(),
            endpoints,
            bucket,
            redis_prefix,
            args,
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..n {
            let node = cluster.spawn_node().await;
            cluster.nodes.push(node);
        }
        cluster
    }

    async fn spawn_node(&self) -> Server {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let s3 = s3_env();
        let mut envs: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (*k, v.as_str())).collect();
        envs.extend(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Server::spawn(&self.dir.path().join("unused-data-dir"), &args, &envs).await
    }

    /// Run `tusk cleanup` with the cluster's settings; returns its stdout.
    pub async fn cleanup(&self) -> String {
        let out = tokio::time::timeout(
            PATIENCE,
            Command::new(env!("CARGO_BIN_EXE_tusk"))
                .arg("cleanup")
                .args(&self.args)
                .envs(s3_env())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("tusk cleanup did not finish")
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tusk cleanup failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// A node like the others but with its Redis at `redis_url` instead: what a node sees after a
    /// failover moved its Redis (in production, behind a failover endpoint).
    pub async fn node_with_redis(&self, redis_url: &str) -> Server {
        let mut args = self.args.clone();
        let at = args.iter().position(|a| a == "--redis-url").unwrap();
        args[at + 1] = redis_url.to_owned();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s3 = s3_env();
        let envs: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::spawn(&self.dir.path().join("unused-data-dir"), &args, &envs).await
    }

    /// The Redis key of upload `url`'s state.
    pub fn state_key(&self, url: &str) -> String {
        format!("{}{{{}}}:state", self.redis_prefix, id_of(url))
    }

    /// The URL of upload `url` as served by node `i`.
    pub fn on(&self, i: usize, url: &str) -> String {
        format!("{}{}", self.nodes[i].url, id_of(url))
    }

    /// Create an upload of `length` bytes on node `i`; returns its URL there.
    pub async fn create(&self, i: usize, length: u64) -> String {
        self.nodes[i].create(length).await
    }

    /// A signed S3 client for the cluster's S3 endpoint.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.endpoints.s3).await
    }

    /// The finished object of an upload, read straight from S3.
    pub async fn object(&self, url: &str) -> Option<Vec<u8>> {
        let got = self
            .s3()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(id_of(url))
            .send()
            .await;
        match got {
            Ok(out) => Some(out.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
            Err(err) => panic!("GET object: {err:?}"),
        }
    }

    /// The finished object of `url` is in S3 and holds exactly `data`.
    pub async fn assert_object(&self, url: &str, data: &[u8]) {
        let object = self
            .object(url)
            .await
            .expect("the finished object is in S3");
        assert_eq!(object.len(), data.len());
        assert!(object == data, "object bytes differ");
    }

    /// Sizes of the parts the object of `url` was assembled from (HEAD with partNumber).
    pub async fn part_sizes(&self, url: &str) -> Vec<u64> {
        let s3 = self.s3().await;
        let mut sizes = Vec::new();
        let mut count = 1;
        let mut n = 1;
        while n <= count {
            let out = s3
                .head_object()
                .bucket(&self.bucket)
                .key(id_of(url))
                .part_number(n)
                .send()
                .await
                .unwrap();
            count = out.parts_count().unwrap_or(1);
            sizes.push(out.content_length().unwrap() as u64);
            n += 1;
        }
        sizes
    }

    /// Multipart uploads in progress in the cluster's bucket.
    pub async fn multipart_uploads(&self) -> usize {
        let out = self
            .s3()
            .await
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap();
        out.uploads().len()
    }

    /// Redis keys under the cluster's prefix (on every master of a Redis Cluster).
    pub fn redis_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for url in self.endpoints.redis_url.split(',') {
            let out = std::process::Command::new("redis-cli")
                .args(["-u", url, "--scan", "--pattern"])
                .arg(format!("{}*", self.redis_prefix))
                .output()
                .expect("redis-cli");
            assert!(out.status.success());
            keys.extend(
                String::from_utf8(out.stdout)
                    .unwrap()
                    .lines()
                    .map(str::to_owned),
            );
        }
        keys.sort();
        keys
    }
}

pub async fn create_bucket(s3: &str, bucket: &str) {
    s3_client(s3)
        .await
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket} at {s3}: {e:?}"));
}

/// A signed S3 client for the test services' S3 server at `s3`.
pub async fn s3_client(s3: &str) -> aws_sdk_s3::Client {
    let (key, secret) = s3_credentials();
    let creds = aws_sdk_s3::config::Credentials::new(key, secret, None, None, "e2e");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tusk_s3::sdk_http_client())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(s3)
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A service process of a test's own, which the test may stop and start again on the same
/// port and data directory.
pub struct Private {
    program: &'static str,
    args: Vec<String>,
    child: Option<Child>,
    ready: Ready,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone)]
enum Ready {
    /// Redis: answers PING.
    RedisPing(u16),
    /// etcd: /health says true.
    Health(String),
}

impl Private {
    /// A Redis with an fsync-always append-only file, so a restart keeps every write.
    pub async fn redis() -> (Private, String) {
        Self::redis_with(&[]).await
    }

    /// [`Private::redis`] with `extra` server arguments.
    pub async fn redis_with(extra: &[&str]) -> (Private, String) {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            path(dir.path()),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--save".into(),
            "".into(),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect();
        let mut p = Private {
            program: "redis-server",
            args,
            child: None,
            ready: Ready::RedisPing(port),
            _dir: Some(dir),
        };
        p.start().await;
        (p, format!("redis://127.0.0.1:{port}/"))
    }

    /// A Redis Cluster of three masters of a test's own, each with `replicas` replicas and an
    /// fsync-always append-only file (a node killed and started again keeps every write).
    /// Returns the nodes (masters first), their ports and the seed URLs, comma-separated.
    pub async fn redis_cluster(replicas: usize) -> (Vec<Private>, Vec<u16>, String) {
        let mut masters = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let dir = tempfile::tempdir().unwrap();
            let port = free_cluster_port(&ports);
            let args = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--dir",
                &path(dir.path()),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                // A replica's first sync would otherwise wait 5 s for more replicas to share it.
                "--repl-diskless-sync-delay",
                "0",
            ];
            let mut master = Private {
                program: "redis-server",
                args: args.iter().map(|a| a.to_string()).collect(),
                child: None,
                ready: Ready::RedisPing(port),
                _dir: Some(dir),
            };
            master.start().await;
            masters.push(master);
            ports.push(port);
        }
        let created = std::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &ports {
            wait_for_cluster_ok(*port).await;
            wait_for_replica_link(*port).await;
        }
        if replicas > 0 {
            for port in &ports {
                let out = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "info", "replication"])
                    .output()
                    .expect("redis-cli");
                if String::from_utf8_lossy(&out.stdout).contains("role:master") {
                    wait_for_replicas_streaming(*port, replicas).await;
                }
            }
        }
        let seeds = ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(",");
        (masters, ports, seeds)
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Send `signal` (`-STOP`, `-CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A single-member etcd with its own data directory.
    pub async fn etcd() -> (Private, String) {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args = vec![
            "--name".into(),
            "e2e".into(),
            "--data-dir".into(),
            path(&dir.path().join("etcd")),
            "--listen-client-urls".into(),
            client_url.clone(),
            "--advertise-client-urls".into(),
            client_url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--initial-cluster".into(),
            format!("e2e={peer_url}"),
            "--heartbeat-interval".into(),
            "20".into(),
            "--election-timeout".into(),
            "200".into(),
        ];
        let mut p = Private {
            program: "etcd",
            args,
            child: None,
            ready: Ready::Health(format!("{client_url}/health")),
            _dir: Some(dir),
        };
        p.start().await;
        (p, client_url)
    }

    pub async fn start(&mut self) {
        let child = Command::new(self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.child = Some(child);
        let ready = self.ready.clone();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let ok = match &ready {
                Ready::RedisPing(port) => redis_ping(*port).await,
                Ready::Health(url) => match client().get(url).send().await {
                    Ok(resp) => resp.text().await.unwrap_or_default().contains("true"),
                    Err(_) => false,
                },
            };
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not become ready",
                self.program
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stop the process (SIGTERM, then wait for it to exit).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            tokio::time::timeout(PATIENCE, child.wait())
                .await
                .expect("service did not stop")
                .unwrap();
        }
    }
}

/// Until a Redis Cluster node on `port` reports `cluster_state:ok` (bounded).
pub async fn wait_for_cluster_ok(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "info"])
            .output()
            .expect("redis-cli");
        if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Redis Cluster node on {port} is not ok"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Until a write on the master at `port` is confirmed by `replicas` replicas, with `WAIT` on
/// the connection that wrote it (bounded). After a replica's first sync, Redis 7.0 streams
/// writes to it only once it has sent its first acknowledgement (its cron does, once a second):
/// until then no `WAIT` succeeds, and a test that waits for replicas would fail on a timing.
pub async fn wait_for_replicas_streaming(port: u16, replicas: usize) {
    let cli = |input: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A key in this master's slots (on a cluster node, other keys answer MOVED).
    let key = (0..1000)
        .map(|i| format!("tusk-probe-{i}"))
        .find(|key| cli(&format!("SET {key} 1\n")).trim() == "OK")
        .expect("a key this master serves");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = cli(&format!("SET {key} 1\nWAIT {replicas} 1000\n"));
        let confirmed: usize = out
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        if confirmed >= replicas {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas of the Redis on {port} never confirmed a write"
        );
    }
}

/// Until the Redis on `port`, if it is a replica, has its link to its master up (bounded).
pub async fn wait_for_replica_link(port: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "replication"])
            .output()
            .expect("redis-cli");
        let info = String::from_utf8_lossy(&out.stdout);
        if info.contains("role:master") || info.contains("master_link_status:up") {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Redis replica on {port} never synced: {info}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A port for a Redis Cluster node: free, and its cluster bus port (10000 above) too, both
/// below the kernel's ephemeral range (from 32768), so no outgoing connection can take the bus
/// port before a node killed by a test is started again.
fn free_cluster_port(taken: &[u16]) -> u16 {
    for _ in 0..1000 {
        let port = 10000 + (rand_u16() % 12000);
        let bus = port + 10000;
        if taken.contains(&port)
            || std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
            || std::net::TcpListener::bind(("127.0.0.1", bus)).is_err()
        {
            continue;
        }
        return port;
    }
    panic!("no free port pair for a Redis Cluster node");
}

fn rand_u16() -> u16 {
    let id = tusk_core::UploadId::generate();
    u16::from_str_radix(&id.as_str()[..4], 16).unwrap()
}

fn path(p: &Path) -> String {
    PathBuf::from(p).display().to_string()
}

async fn redis_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A TCP relay in front of a service, which a test can cut (connections refused, open ones
/// dropped) and restore on the same port: an outage as the nodes see it, for a service (moto)
/// that would lose its data if really restarted.
pub struct Relay {
    pub port: u16,
    target: String,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl Relay {
    pub async fn start(target: &str) -> Relay {
        let relay = Relay {
            port: free_port(),
            target: target.to_owned(),
            tasks: Arc::new(Mutex::new(None)),
        };
        relay.restore().await;
        relay
    }

    /// Accept and relay connections again.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let target = self.target.clone();
        let mut set = JoinSet::new();
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        set.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.tasks.lock().unwrap() = Some(set);
    }

    /// Refuse new connections and drop open ones.
    pub fn cut(&self) {
        // Dropping the JoinSet aborts the accept loop, which drops the listener and the set of
        // open connections with it.
        drop(self.tasks.lock().unwrap().take());
    }
}
