//! The Redis state store against a real redis-server (`TUSK_TEST_REDIS_URL`): the shared
//! conformance suite, then what only Redis has (key schema, connection failures, config).
//!
//! Every test uses its own key prefix, so tests can run at the same time on one server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tusk_core::{Commit, ErrorKind, Metadata, StateStore, TailChange, UploadId, UploadState};
use tusk_redis::{RedisError, RedisState};
use tusk_testkit::state_suite;

/// Generous bound for things that should happen at once: a condition, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether tests that need the real Redis run: only when `TUSK_TEST_SERVICES` is "1"
/// (`.services/env` sets it). Otherwise it says on stderr that `test` is skipped.
fn services_enabled(test: &str) -> bool {
    if std::env::var("TUSK_TEST_SERVICES").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: {test} needs Redis (set TUSK_TEST_SERVICES=1; scripts/test.sh does)");
    false
}

fn redis_url() -> String {
    std::env::var("TUSK_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "TUSK_TEST_REDIS_URL is not set: start the test services with \
             `scripts/services.sh up` and source .services/env"
        )
    })
}

/// A key prefix no other test (or run) uses.
fn unique_prefix() -> String {
    format!("tusk-test-{}:", UploadId::generate())
}

async fn connect() -> (RedisState, String) {
    let prefix = unique_prefix();
    let state = RedisState::connect(&redis_url(), &prefix)
        .await
        .expect("connect to TUSK_TEST_REDIS_URL");
    (state, prefix)
}

/// A plain connection for looking behind the store's back.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn keys_under(prefix: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys
}

/// Drop every key a test left under its prefix, so runs do not fill the shared server.
async fn clean_up(prefix: &str) {
    let keys = keys_under(prefix).await;
    if !keys.is_empty() {
        let () = raw().await.del(keys).await.expect("DEL");
    }
}

fn new_state() -> UploadState {
    UploadState {
        id: UploadId::generate(),
        length: Some(20 * 1024 * 1024),
        metadata: Metadata::parse("filename YS50eHQ=").expect("metadata"),
        part_size: 5 * 1024 * 1024,
        multipart_id: None,
        part_count: 0,
        tail_len: 0,
        finished: false,
        expires_at: None,
        created_at: None,
        concat: None,
        placement: Default::default(),
    }
}

/// Every error in `e`'s source chain, as text.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{e} / {e:?}");
    let mut next = e.source();
    while let Some(source) = next {
        out.push_str(&format!(" / {source} / {source:?}"));
        next = source.source();
    }
    out
}

#[tokio::test]
async fn redis_state_passes_the_state_suite() {
    if !services_enabled("redis_state_passes_the_state_suite") {
        return;
    }
    let (state, prefix) = connect().await;
    state_suite::run(&state).await;
    clean_up(&prefix).await;
}

#[tokio::test]
async fn keys_of_one_upload_share_the_hash_tag() {
    if !services_enabled("keys_of_one_upload_share_the_hash_tag") {
        return;
    }
    let (state, prefix) = connect().await;
    let s = new_state();
    state.create(&s).await.expect("create");
    state.set_multipart(&s.id, 3, "mp-1").await.expect("mp");
    state
        .commit(
            &s.id,
            3,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: vec!["\"e1\"".into()],
                tail: TailChange::Append(Bytes::from_static(b"tail")),
            },
        )
        .await
        .expect("commit");

    let id = s.id.as_str();
    let want = [
        format!("{prefix}{{{id}}}:parts"),
        format!("{prefix}{{{id}}}:state"),
        format!("{prefix}{{{id}}}:tail"),
    ];
    assert_eq!(keys_under(&prefix).await, want);
    for key in &want {
        // Redis Cluster hashes only the text between the first '{' and the next '}'.
        let open = key.find('{').expect("a '{'");
        let close = open + key[open..].find('}').expect("a '}'");
        assert_eq!(&key[open + 1..close], id, "hash tag of {key}");
    }

    let mut conn = raw().await;
    let types: Vec<String> = {
        let mut t = Vec::new();
        for key in &want {
            t.push(
                redis::cmd("TYPE")
                    .arg(key)
                    .query_async::<String>(&mut conn)
                    .await
                    .expect("TYPE"),
            );
        }
        t
    };
    assert_eq!(types, ["list", "hash", "string"]);
    let hash: std::collections::HashMap<String, String> =
        conn.hgetall(&want[1]).await.expect("hgetall");
    assert_eq!(hash.get("v").map(String::as_str), Some("1"));
    assert_eq!(hash.get("length").map(String::as_str), Some("20971520"));
    assert_eq!(hash.get("part_size").map(String::as_str), Some("5242880"));
    assert_eq!(hash.get("multipart").map(String::as_str), Some("mp-1"));
    assert_eq!(hash.get("finished").map(String::as_str), Some("0"));
    assert_eq!(hash.get("fence").map(String::as_str), Some("3"));
    let metadata: Metadata =
        serde_json::from_str(hash.get("metadata").expect("metadata")).expect("metadata JSON");
    assert_eq!(metadata, s.metadata);
    let parts: Vec<String> = conn.lrange(&want[0], 0, -1).await.expect("lrange");
    assert_eq!(parts, ["\"e1\""]);
    let tail: Vec<u8> = conn.get(&want[2]).await.expect("get tail");
    assert_eq!(tail, b"tail");

    state.delete(&s.id, 3).await.expect("delete");
    assert_eq!(keys_under(&prefix).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_corrupt_state_hash_is_a_backend_error() {
    if !services_enabled("a_corrupt_state_hash_is_a_backend_error") {
        return;
    }
    let (state, prefix) = connect().await;
    let s = new_state();
    state.create(&s).await.expect("create");
    let key = format!("{prefix}{{{}}}:state", s.id);
    let mut conn = raw().await;
    let () = conn.hset(&key, "v", "99").await.expect("hset");
    let err = state.get(&s.id).await.expect_err("get of a future schema");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let () = conn.hset(&key, "v", "1").await.expect("hset");
    let () = conn.hset(&key, "part_size", "lots").await.expect("hset");
    let err = state
        .load(&s.id, 1)
        .await
        .expect_err("load of a corrupt hash");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    clean_up(&prefix).await;
}

#[tokio::test]
async fn prefixes_with_braces_are_refused() {
    if !services_enabled("prefixes_with_braces_are_refused") {
        return;
    }
    let err = RedisState::connect(&redis_url(), "tusk:{x}:")
        .await
        .expect_err("prefix with braces");
    assert!(matches!(err, RedisError::InvalidPrefix(_)), "{err}");
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_clearly_without_the_password() {
    const PASSWORD: &str = "hunter2-Sup3rSecret";
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
        // Dropped here: nothing listens on the port any more.
    };
    let url = format!("redis://tusk:{PASSWORD}@127.0.0.1:{port}/0");
    let started = Instant::now();
    let err = RedisState::connect(&url, "tusk:")
        .await
        .expect_err("connect to a closed port");
    assert!(started.elapsed() < PATIENCE, "took {:?}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains("cannot connect to Redis"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("tusk:***@"), "{text}");
    assert!(!chain(&err).contains(PASSWORD), "{}", chain(&err));

    let core = tusk_core::Error::from(err);
    assert_eq!(core.kind(), ErrorKind::Unavailable);
    assert_eq!(
        core.message(),
        "state store (Redis) is unavailable; retry later"
    );
    assert!(!chain(&core).contains(PASSWORD), "{}", chain(&core));
}

/// `url` with `user:password@` as its user-info (replacing any there was).
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn passwords_in_the_url_authenticate_and_never_show() {
    if !services_enabled("passwords_in_the_url_authenticate_and_never_show") {
        return;
    }
    // A user of our own, so the test needs no password on the shared server.
    let user = format!("tusk-test-{}", UploadId::generate());
    let password = format!("pw-{}", UploadId::generate());
    let mut conn = raw().await;
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("+@all")
        .query_async::<()>(&mut conn)
        .await
        .expect("ACL SETUSER");

    let url = with_credentials(&redis_url(), &user, &password);
    let prefix = unique_prefix();
    let state = RedisState::connect(&url, &prefix)
        .await
        .expect("connect with user and password");
    let debug = format!("{state:?}");
    assert!(!debug.contains(&password), "{debug}");
    assert!(debug.contains(&format!("{user}:***@")), "{debug}");
    let s = new_state();
    state.create(&s).await.expect("create as the ACL user");
    assert_eq!(state.get(&s.id).await.expect("get"), s);
    state.delete(&s.id, 1).await.expect("delete");

    let wrong = with_credentials(&redis_url(), &user, "wrong-password");
    let err = RedisState::connect(&wrong, &prefix)
        .await
        .expect_err("connect with a wrong password");
    assert!(!chain(&err).contains("wrong-password"), "{}", chain(&err));
    assert!(!chain(&err).contains(&password), "{}", chain(&err));

    redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async::<()>(&mut conn)
        .await
        .expect("ACL DELUSER");
}

/// A TCP proxy in front of the real Redis that can cut every connection and refuse new ones,
/// like a partition, then let traffic through again.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let up = up.clone();
            let conns = conns.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Cut: the client's connection attempt ends at once.
                        drop(inbound);
                        continue;
                    }
                    let conn = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
                }
            }
        });
        Proxy {
            addr,
            up,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The real server's address and the URL to reach it through `proxy` instead.
fn upstream() -> SocketAddr {
    let client = redis::Client::open(redis_url()).expect("client");
    match &client.get_connection_info().addr {
        redis::ConnectionAddr::Tcp(host, port) => {
            let ip = if host == "localhost" {
                "127.0.0.1"
            } else {
                host.as_str()
            };
            format!("{ip}:{port}")
                .parse()
                .expect("an IP address in TUSK_TEST_REDIS_URL")
        }
        other => panic!("the proxy test needs a plain TCP Redis URL, not {other:?}"),
    }
}

fn through(proxy: &Proxy) -> String {
    let url = redis_url();
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((info, hostpath)) => (format!("{info}@"), hostpath),
        None => (String::new(), rest),
    };
    let path = hostpath.find('/').map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{userinfo}{}{path}", proxy.addr)
}

#[tokio::test]
async fn commands_while_redis_is_unreachable_are_unavailable_then_heal() {
    if !services_enabled("commands_while_redis_is_unreachable_are_unavailable_then_heal") {
        return;
    }
    let proxy = Proxy::start(upstream()).await;
    let state = RedisState::connect(&through(&proxy), &unique_prefix())
        .await
        .expect("connect through the proxy");
    let s = new_state();
    state.create(&s).await.expect("create");

    proxy.cut();
    for attempt in 0..3 {
        let started = Instant::now();
        let err = state
            .get(&s.id)
            .await
            .expect_err("get while Redis is unreachable");
        assert_eq!(
            err.kind(),
            ErrorKind::Unavailable,
            "attempt {attempt}: {}",
            chain(&err)
        );
        assert_eq!(
            err.message(),
            "state store (Redis) is unavailable; retry later"
        );
        assert!(started.elapsed() < PATIENCE, "took {:?}", started.elapsed());
    }
    let err = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: Vec::new(),
                tail: TailChange::Append(Bytes::from_static(b"x")),
            },
        )
        .await
        .expect_err("commit while Redis is unreachable");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", chain(&err));

    // The connection manager reconnects by itself once Redis is reachable again.
    proxy.restore();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match state.get(&s.id).await {
            Ok(got) => {
                assert_eq!(got, s, "nothing was written while unreachable");
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.kind(), ErrorKind::Unavailable, "{}", chain(&e));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery after Redis came back: {}", chain(&e)),
        }
    }
    state.delete(&s.id, 1).await.expect("delete after recovery");
}

#[tokio::test]
async fn maxmemory_policy_reads_the_real_value() {
    if !services_enabled("maxmemory_policy_reads_the_real_value") {
        return;
    }
    let (state, _) = connect().await;
    let policy = state
        .maxmemory_policy()
        .await
        .expect("maxmemory_policy")
        .expect("a self-run redis-server allows CONFIG GET");
    let mut conn = raw().await;
    let real: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await
        .expect("CONFIG GET");
    assert_eq!(real, ["maxmemory-policy".to_owned(), policy.clone()]);
    assert_eq!(
        RedisState::policy_can_evict(&policy),
        policy != "noeviction",
        "{policy}"
    );
}

/// A Redis that restarted (or failed over) has lost its script cache: every call still works,
/// loading its script again. Other tests on this Redis reload theirs the same way.
#[tokio::test]
async fn scripts_flushed_from_redis_are_loaded_again() {
    if !services_enabled("scripts_flushed_from_redis_are_loaded_again") {
        return;
    }
    let (state, prefix) = connect().await;
    let s = new_state();
    state.create(&s).await.expect("create");
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw().await)
        .await
        .expect("SCRIPT FLUSH");
    let tail = Bytes::from_static(b"after the flush");
    let after = state
        .commit(
            &s.id,
            1,
            Commit {
                expect_parts: 0,
                expect_tail_len: 0,
                new_parts: Vec::new(),
                tail: TailChange::Append(tail.clone()),
            },
        )
        .await
        .expect("commit after SCRIPT FLUSH");
    assert_eq!(after.tail_len, tail.len() as u64);
    assert_eq!(state.read_tail(&s.id).await.expect("read_tail"), tail);
    clean_up(&prefix).await;
}

/// An expiry index entry whose upload is gone (its delete's ZREM failed, say) would come up in
/// every reaper pass; clearing the expiry of the missing upload drops it.
#[tokio::test]
async fn clearing_the_expiry_of_a_missing_upload_drops_its_index_entry() {
    if !services_enabled("clearing_the_expiry_of_a_missing_upload_drops_its_index_entry") {
        return;
    }
    let (state, prefix) = connect().await;
    let ghost = UploadId::generate();
    let () = redis::cmd("ZADD")
        .arg(format!("{prefix}expiry"))
        .arg(5)
        .arg(ghost.as_str())
        .query_async::<i64>(&mut raw().await)
        .await
        .map(|_| ())
        .expect("ZADD");
    assert_eq!(
        state.expired(10, 10).await.expect("expired"),
        vec![ghost.clone()]
    );
    let err = state
        .set_expiry(&ghost, 1, None)
        .await
        .expect_err("no such upload");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(state.expired(10, 10).await.expect("expired").is_empty());
    clean_up(&prefix).await;
}

/// A tail append's bytes go to Redis as an APPEND beside the commit script, in one
/// transaction: a commit the script refuses (older fence, stale expectation, unknown upload)
/// leaves the tail key exactly as it was, absent included. (A full Redis refusing the whole
/// transaction: the end-to-end `redis_full` tests.)
#[tokio::test]
async fn refused_appends_leave_the_tail_key_as_it_was() {
    if !services_enabled("refused_appends_leave_the_tail_key_as_it_was") {
        return;
    }
    let (state, prefix) = connect().await;
    let append = |expect_tail_len, bytes: &'static [u8]| Commit {
        expect_parts: 0,
        expect_tail_len,
        new_parts: Vec::new(),
        tail: TailChange::Append(Bytes::from_static(bytes)),
    };
    let tail_of = |id: &UploadId| format!("{prefix}{{{id}}}:tail");
    let mut conn = raw().await;

    let upload = new_state();
    let id = upload.id.clone();
    state.create(&upload).await.unwrap();
    state.load(&id, 10).await.unwrap();
    // No tail yet: a refused append must not leave one.
    let refused = state.commit(&id, 9, append(0, b"early")).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::LockLost);
    let exists: bool = conn.exists(tail_of(&id)).await.unwrap();
    assert!(!exists, "a refused first append left a tail key");
    let after = state.commit(&id, 10, append(0, b"abc")).await.unwrap();
    assert_eq!(after.tail_len, 3);
    for (fence, expect, kind) in [
        (9, 3, ErrorKind::LockLost),
        (10, 2, ErrorKind::OffsetMismatch),
        (10, 4, ErrorKind::OffsetMismatch),
    ] {
        let refused = state.commit(&id, fence, append(expect, b"def")).await;
        assert_eq!(
            refused.unwrap_err().kind(),
            kind,
            "fence {fence}, tail {expect}"
        );
        let tail: Vec<u8> = conn.get(tail_of(&id)).await.unwrap();
        assert_eq!(tail, b"abc", "fence {fence}, tail {expect}");
    }
    let after = state.commit(&id, 11, append(3, b"def")).await.unwrap();
    assert_eq!((after.tail_len, after.offset()), (6, 6));
    let tail: Vec<u8> = conn.get(tail_of(&id)).await.unwrap();
    assert_eq!(tail, b"abcdef");

    // An upload that does not exist gets no tail key.
    let unknown = UploadId::generate();
    let refused = state.commit(&unknown, 1, append(0, b"ghost")).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::NotFound);
    let exists: bool = conn.exists(tail_of(&unknown)).await.unwrap();
    assert!(!exists, "an append to an unknown upload left a tail key");
    clean_up(&prefix).await;
}

#[tokio::test]
async fn large_tails_are_staged_in_slices_and_committed_whole() {
    if !services_enabled("large_tails_are_staged_in_slices_and_committed_whole") {
        return;
    }
    let (state, prefix) = connect().await;
    let upload = new_state();
    let id = upload.id.clone();
    state.create(&upload).await.unwrap();
    let tail: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    // A stale staging key of an older holder must not leak into this commit.
    let () = raw()
        .await
        .set(format!("{prefix}{{{id}}}:staging:1"), b"stale".as_slice())
        .await
        .unwrap();
    let commit = |tail: TailChange, expect_tail_len| Commit {
        expect_parts: 0,
        expect_tail_len,
        new_parts: Vec::new(),
        tail,
    };
    let after = state
        .commit(
            &id,
            2,
            commit(TailChange::Append(Bytes::from(tail.clone())), 0),
        )
        .await
        .unwrap();
    assert_eq!(after.tail_len, tail.len() as u64);
    let stored = state
        .read_tail_range(&id, 0..tail.len() as u64, Some(2))
        .await
        .unwrap();
    assert!(stored == tail, "the staged tail differs");
    // Appended to, then replaced, both staged.
    let more = vec![9u8; 600 * 1024];
    state
        .commit(
            &id,
            2,
            commit(
                TailChange::Append(Bytes::from(more.clone())),
                tail.len() as u64,
            ),
        )
        .await
        .unwrap();
    let whole = [tail.as_slice(), more.as_slice()].concat();
    let stored = state
        .read_tail_range(&id, 0..whole.len() as u64, Some(2))
        .await
        .unwrap();
    assert!(stored == whole);
    let replaced = state
        .commit(
            &id,
            3,
            commit(
                TailChange::Replace(Bytes::from(more.clone())),
                whole.len() as u64,
            ),
        )
        .await
        .unwrap();
    assert_eq!(replaced.tail_len, more.len() as u64);
    // Only the older holder's stale key is left of the staging keys.
    let staging: Vec<String> = keys_under(&prefix)
        .await
        .into_iter()
        .filter(|k| k.contains(":staging:"))
        .collect();
    assert_eq!(staging, [format!("{prefix}{{{id}}}:staging:1")]);
    clean_up(&prefix).await;
}
