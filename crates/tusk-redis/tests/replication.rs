//! Acknowledged means replicated (`redis_wait_replicas`), against a real Redis primary and
//! replica started by the test: a frozen replica (SIGSTOP) makes every acknowledged change fail
//! within the wait timeout, without stalling the store's other commands, and once it thaws the
//! changes are there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tusk_core::{Commit, ErrorKind, Metadata, StateStore, TailChange, UploadId, UploadState};
use tusk_redis::{RedisState, ReplicationWait};

/// Generous bound for things that should happen at once: a condition, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// A redis-server of this test's own, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        server.wait_for("PING", "PONG").await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Wait (bounded) until `command`'s reply contains `wanted`.
    async fn wait_for(&self, command: &str, wanted: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let reply = async {
                let client = redis::Client::open(self.url()).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let mut cmd = redis::Cmd::new();
                for word in command.split(' ') {
                    cmd.arg(word);
                }
                cmd.query_async::<redis::Value>(&mut conn).await.ok()
            };
            let reply = tokio::time::timeout(Duration::from_secs(1), reply)
                .await
                .ok()
                .flatten();
            if format!("{reply:?}").contains(wanted) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{command}: no {wanted} within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Until a write on this master is confirmed by its replica, with `WAIT` on the connection
    /// that wrote it (bounded).
    async fn wait_until_replica_acknowledged(&self) {
        let deadline = Instant::now() + PATIENCE;
        let mut conn = self.conn().await;
        loop {
            let (_, confirmed): ((), i64) = redis::pipe()
                .cmd("SET")
                .arg("tusk-probe")
                .arg(1)
                .cmd("WAIT")
                .arg(1)
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            if confirmed >= 1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica never confirmed a write"
            );
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The upload's tail as this server holds it.
    async fn tail(&self, prefix: &str, id: &UploadId) -> Vec<u8> {
        let mut conn = self.conn().await;
        redis::cmd("GET")
            .arg(format!("{prefix}{{{id}}}:tail"))
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .unwrap()
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A frozen server would ignore the kill until it thaws.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(state: &UploadState, bytes: &'static [u8]) -> Commit {
    Commit {
        expect_parts: 0,
        expect_tail_len: state.tail_len,
        new_parts: Vec::new(),
        tail: TailChange::Append(Bytes::from_static(bytes)),
    }
}

#[tokio::test]
async fn a_frozen_replica_stops_every_acknowledgement_and_nothing_else() {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() != Ok("1") {
        eprintln!("skipped: needs redis-server (TUSK_TEST_SERVICES=1; scripts/test.sh)");
        return;
    }
    // A replica's first sync would otherwise wait 5 s for more replicas to share it.
    let primary = Server::start(&["--repl-diskless-sync-delay", "0"]).await;
    let port = primary.port.to_string();
    let replica = Server::start(&["--replicaof", "127.0.0.1", &port]).await;
    replica
        .wait_for("INFO replication", "master_link_status:up")
        .await;
    // After a replica's first sync, Redis 7.0 streams writes to it only once it has sent its
    // first acknowledgement (its cron does, once a second): no WAIT can succeed before.
    primary.wait_until_replica_acknowledged().await;

    let prefix = "tusk-test:";
    let wait = ReplicationWait {
        replicas: 1,
        timeout: Duration::from_millis(300),
    };
    let state = RedisState::connect(&primary.url(), prefix)
        .await
        .unwrap()
        .with_replication(wait)
        .unwrap();
    assert_eq!(state.connected_replicas().await.unwrap(), Some(1));
    let upload = UploadState {
        id: UploadId::generate(),
        length: Some(100),
        metadata: Metadata::default(),
        part_size: 5 << 20,
        multipart_id: None,
        part_count: 0,
        tail_len: 0,
        finished: false,
        expires_at: None,
        created_at: None,
        concat: None,
        placement: Default::default(),
    };
    let id = upload.id.clone();
    state.create(&upload).await.unwrap();
    let upload = state.load(&id, 1).await.unwrap();
    let upload = state.commit(&id, 1, append(&upload, b"abc")).await.unwrap();
    // Acknowledged means the replica has it already.
    assert_eq!(replica.tail(prefix, &id).await, b"abc");

    replica.signal("-STOP");
    let started = Instant::now();
    let err = state
        .commit(&id, 1, append(&upload, b"def"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("not acknowledged"), "{err}");
    assert!(started.elapsed() < PATIENCE, "bounded by the wait timeout");
    // A HEAD's read waits too: it would report the unconfirmed bytes.
    let err = state.load(&id, 2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // Commands that acknowledge nothing are not stuck behind the waits.
    let unwaited = tokio::time::timeout(PATIENCE, state.get(&id)).await;
    assert_eq!(unwaited.expect("not stalled").unwrap().tail_len, 6);

    replica.signal("-CONT");
    let confirmed = state.load(&id, 3).await.unwrap();
    assert_eq!(
        confirmed.tail_len, 6,
        "the master had it; now the replica confirms it"
    );
    assert_eq!(replica.tail(prefix, &id).await, b"abcdef");
}
