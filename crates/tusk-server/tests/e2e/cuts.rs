//! Every byte that reached the server survives, however the connection dies: reset after the
//! server's kernel acknowledged the bytes, orderly close, a hang then a reset (shorter and
//! longer than the read timeout), in local mode and across three distributed nodes, at cut
//! points inside the first part, across a part boundary and inside the tail. The cuts are made
//! by the fault proxy (`tusk_testkit::fault_proxy`) or by a raw socket with `SO_LINGER` 0.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tusk_testkit::fault_proxy::{ConnPlan, CutKind, FaultProxy};

use crate::services::{Cluster, services_enabled};
use crate::support::*;

const MIB: u64 = 1024 * 1024;
/// Bytes of the uploads cut here.
const TOTAL: u64 = 12 * MIB;
/// Body bytes each cut PATCH delivers, in turn: inside the first part (parts are 5 MiB in the
/// clusters), across the first part boundary, inside the second part's tail.
const CUTS: [u64; 3] = [MIB, 5 * MIB, 3 * MIB / 2];
/// A HEAD right after a cut must not wait for a lease (10 s) or the read timeout (30 s).
const PROMPT: Duration = Duration::from_secs(5);

/// One node, or three sharing Redis, etcd and S3.
enum Setup {
    Local(Server),
    Cluster(Cluster),
}

impl Setup {
    async fn local(args: &[&str]) -> Setup {
        Setup::Local(Server::start(args).await)
    }

    async fn cluster(args: &[&str]) -> Setup {
        Setup::Cluster(Cluster::start(3, args).await)
    }

    /// Node `i` (every request lands on the one node in local mode).
    fn node(&self, i: usize) -> &Server {
        match self {
            Setup::Local(server) => server,
            Setup::Cluster(cluster) => &cluster.nodes[i % cluster.nodes.len()],
        }
    }

    /// The URL of upload `id` on node `i`.
    fn upload(&self, i: usize, id: &str) -> String {
        format!("{}{id}", self.node(i).url)
    }

    /// Ids of the uploads stored (local mode: files in the data directory; distributed: state
    /// keys in Redis).
    fn upload_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = match self {
            Setup::Local(server) => std::fs::read_dir(&server.data_dir)
                .unwrap()
                .filter_map(|entry| {
                    let name = entry.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".info").map(str::to_owned)
                })
                .collect(),
            Setup::Cluster(cluster) => cluster
                .redis_keys()
                .iter()
                .filter_map(|key| {
                    let rest = key.split_once(":{")?.1;
                    let (id, kind) = rest.split_once("}:")?;
                    (kind == "state").then(|| id.to_owned())
                })
                .collect(),
        };
        ids.sort();
        ids.dedup();
        ids
    }
}

fn socket_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("http://").unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

/// `url` with its host replaced by the proxy's address.
fn through(proxy: &FaultProxy, url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    format!(
        "http://{}{}",
        proxy.addr(),
        &rest[rest.find('/').unwrap()..]
    )
}

/// Wait (bounded) until the proxy has cut its first connection; asserts the cut came after
/// the server's kernel acknowledged every forwarded byte.
async fn wait_for_cut(proxy: &FaultProxy) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(conn) = proxy.connections().first().filter(|c| c.cut) {
            assert!(
                !conn.cut_unacknowledged,
                "the server did not acknowledge the bytes before the cut"
            );
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy never cut"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three PATCHes, each cut by `kind` after one of [`CUTS`] body bytes; after each, a HEAD on
/// the next node must report exactly the bytes delivered so far, promptly. Then the rest is sent
/// and the whole upload compared byte for byte.
async fn cut_patches_keep_every_byte(setup: Setup, kind: CutKind, seed: u8) {
    let data = pattern(TOTAL as usize, seed);
    let created = setup.node(0).create(TOTAL).await;
    let id = id_of(&created).to_owned();
    let mut offset = 0u64;
    for (i, cut) in CUTS.into_iter().enumerate() {
        let url = setup.upload(i, &id);
        let proxy = FaultProxy::start(socket_of(&url), Box::new(|_| ConnPlan::PASS))
            .await
            .unwrap();
        let via = through(&proxy, &url);
        let head_len = RawRequest::patch_head(&via, offset, TOTAL - offset).len() as u64;
        proxy.set_policy(Box::new(move |_| ConnPlan::cut_after(head_len + cut, kind)));
        let mut raw = RawRequest::patch(&via, offset, TOTAL - offset).await;
        // Writes until the proxy breaks the connection.
        tokio::time::timeout(PATIENCE, raw.send_if_open(&data[offset as usize..]))
            .await
            .expect("the proxy never broke the connection");
        wait_for_cut(&proxy).await;
        assert_eq!(proxy.connections()[0].upstream_bytes, head_len + cut);
        let asked = Instant::now();
        let (status, kept) = head(&setup.upload(i + 1, &id)).await;
        let waited = asked.elapsed();
        eprintln!(
            "{kind:?}: cut after {cut} body bytes at offset {offset}; HEAD {status} {kept:?} in {waited:?}"
        );
        assert_eq!((status, kept), (200, Some(offset + cut)), "{kind:?}");
        assert!(waited < PROMPT, "HEAD after the cut took {waited:?}");
        offset += cut;
    }
    let url = setup.upload(CUTS.len() + 1, &id);
    let (status, end) = patch(&url, offset, data[offset as usize..].to_vec()).await;
    assert_eq!((status, end), (204, Some(TOTAL)));
    assert!(download(&url).await == data, "stored bytes differ");
}

#[tokio::test]
async fn local_resets_after_acknowledged_bytes_keep_every_byte() {
    cut_patches_keep_every_byte(Setup::local(&[]).await, CutKind::Rst, 1).await;
}

#[tokio::test]
async fn local_orderly_closes_keep_every_byte() {
    cut_patches_keep_every_byte(Setup::local(&[]).await, CutKind::Fin, 2).await;
}

#[tokio::test]
async fn local_hangs_then_resets_keep_every_byte() {
    let hang = CutKind::HangThenRst(Duration::from_secs(2));
    cut_patches_keep_every_byte(Setup::local(&[]).await, hang, 3).await;
}

#[tokio::test]
async fn local_hangs_past_the_read_timeout_then_resets_keep_every_byte() {
    let hang = CutKind::HangThenRst(Duration::from_secs(3));
    let setup = Setup::local(&["--read-timeout", "1s"]).await;
    cut_patches_keep_every_byte(setup, hang, 4).await;
}

#[tokio::test]
async fn cluster_resets_after_acknowledged_bytes_keep_every_byte_on_every_node() {
    if !services_enabled("cluster_resets_after_acknowledged_bytes_keep_every_byte_on_every_node") {
        return;
    }
    cut_patches_keep_every_byte(Setup::cluster(&[]).await, CutKind::Rst, 5).await;
}

#[tokio::test]
async fn cluster_orderly_closes_keep_every_byte_on_every_node() {
    if !services_enabled("cluster_orderly_closes_keep_every_byte_on_every_node") {
        return;
    }
    cut_patches_keep_every_byte(Setup::cluster(&[]).await, CutKind::Fin, 6).await;
}

#[tokio::test]
async fn cluster_hangs_then_resets_keep_every_byte_on_every_node() {
    if !services_enabled("cluster_hangs_then_resets_keep_every_byte_on_every_node") {
        return;
    }
    let hang = CutKind::HangThenRst(Duration::from_secs(2));
    cut_patches_keep_every_byte(Setup::cluster(&[]).await, hang, 7).await;
}

#[tokio::test]
async fn cluster_hangs_past_the_read_timeout_then_resets_keep_every_byte() {
    if !services_enabled("cluster_hangs_past_the_read_timeout_then_resets_keep_every_byte") {
        return;
    }
    let hang = CutKind::HangThenRst(Duration::from_secs(3));
    let setup = Setup::cluster(&["--read-timeout", "1s"]).await;
    cut_patches_keep_every_byte(setup, hang, 8).await;
}

/// The failing case of the issue, without a proxy: a PATCH that declares 8 MiB sends 3 MiB,
/// waits until the server's kernel acknowledged them, and resets. The commit must survive actix
/// dropping the request.
async fn a_raw_reset_keeps_every_acknowledged_byte(setup: Setup) {
    let total = 8 * MIB;
    let sent = 3 * MIB;
    let data = pattern(total as usize, 11);
    let url = setup.node(0).create(total).await;
    let mut raw = RawRequest::patch(&url, 0, total).await;
    raw.send(&data[..sent as usize]).await;
    raw.reset_when_acknowledged().await;
    let asked = Instant::now();
    let other = setup.upload(1, id_of(&url));
    let (status, kept) = head(&other).await;
    let waited = asked.elapsed();
    eprintln!("HEAD after the reset: {status} {kept:?} in {waited:?}");
    assert_eq!((status, kept), (200, Some(sent)));
    assert!(waited < PROMPT, "HEAD after the reset took {waited:?}");
    let (status, end) = patch(&other, sent, data[sent as usize..].to_vec()).await;
    assert_eq!((status, end), (204, Some(total)));
    assert!(download(&other).await == data, "stored bytes differ");
}

#[tokio::test]
async fn local_a_raw_reset_keeps_every_acknowledged_byte() {
    a_raw_reset_keeps_every_acknowledged_byte(Setup::local(&[]).await).await;
}

#[tokio::test]
async fn cluster_a_raw_reset_keeps_every_acknowledged_byte() {
    if !services_enabled("cluster_a_raw_reset_keeps_every_acknowledged_byte") {
        return;
    }
    a_raw_reset_keeps_every_acknowledged_byte(Setup::cluster(&[]).await).await;
}

/// creation-with-upload: a POST whose body is reset after 1 MiB keeps that MiB, and the upload
/// it created resumes (its URL found where the server keeps uploads, as the client never saw
/// the response).
async fn a_creation_with_upload_cut_by_a_reset_is_resumable(setup: Setup) {
    let total = 4 * MIB;
    let cut = MIB + 12_345;
    let data = pattern(total as usize, 12);
    let collection = setup.node(0).url.clone();
    let proxy = FaultProxy::start(socket_of(&collection), Box::new(|_| ConnPlan::PASS))
        .await
        .unwrap();
    let via = through(&proxy, &collection);
    let headers = [
        (TUS.0, TUS.1.to_owned()),
        (OCTETS.0, OCTETS.1.to_owned()),
        ("Upload-Length", total.to_string()),
    ];
    let head_len = request_head("POST", &via, &headers, total).len() as u64;
    proxy.set_policy(Box::new(move |_| {
        ConnPlan::cut_after(head_len + cut, CutKind::Rst)
    }));
    let before = setup.upload_ids();
    let mut raw = RawRequest::start("POST", &via, &headers, total).await;
    tokio::time::timeout(PATIENCE, raw.send_if_open(&data))
        .await
        .expect("the proxy never broke the connection");
    wait_for_cut(&proxy).await;
    let created: Vec<String> = setup
        .upload_ids()
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(created.len(), 1, "uploads created: {created:?}");
    let url = setup.upload(1, &created[0]);
    assert_eq!(head(&url).await, (200, Some(cut)));
    let (status, end) = patch(&url, cut, data[cut as usize..].to_vec()).await;
    assert_eq!((status, end), (204, Some(total)));
    assert!(download(&url).await == data, "stored bytes differ");
}

#[tokio::test]
async fn local_a_creation_with_upload_cut_by_a_reset_is_resumable() {
    a_creation_with_upload_cut_by_a_reset_is_resumable(Setup::local(&[]).await).await;
}

#[tokio::test]
async fn cluster_a_creation_with_upload_cut_by_a_reset_is_resumable() {
    if !services_enabled("cluster_a_creation_with_upload_cut_by_a_reset_is_resumable") {
        return;
    }
    a_creation_with_upload_cut_by_a_reset_is_resumable(Setup::cluster(&[]).await).await;
}
