//! `tusk upload`, the real binary against the real server: through a proxy that resets every
//! connection after 1 MiB, killed with SIGKILL and run again, in parallel partial uploads,
//! after the server lost the upload, through a hang, and its exit codes; the same with
//! `--ietf` (the IETF draft instead of tus 1.0), in local and distributed mode.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tusk_testkit::fault_proxy::{ConnPlan, CutKind, FaultProxy};

use crate::services::{Cluster, services_enabled};
use crate::support::*;

const MIB: u64 = 1024 * 1024;

/// A file to upload and a state directory, both removed with the test.
struct Setup {
    _tmp: tempfile::TempDir,
    file: PathBuf,
    data: Vec<u8>,
    /// `XDG_STATE_HOME` of the uploads run here.
    state_home: PathBuf,
}

impl Setup {
    fn new(name: &str, len: u64, seed: u8) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join(name);
        let data = pattern(len as usize, seed);
        std::fs::write(&file, &data).unwrap();
        let state_home = tmp.path().join("state");
        Setup {
            _tmp: tmp,
            file,
            data,
            state_home,
        }
    }

    /// `tusk upload FILE URL ARGS...`, its state under [`Setup::state_home`].
    fn command(&self, url: &str, args: &[&str]) -> Command {
        self.command_for(&self.file, url, args)
    }

    /// The same for another `file`.
    fn command_for(&self, file: &Path, url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tusk"));
        command
            .arg("upload")
            .arg(file)
            .arg(url)
            .args(args)
            .env("XDG_STATE_HOME", &self.state_home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    fn spawn(&self, url: &str, args: &[&str]) -> Child {
        self.command(url, args).spawn().expect("spawn tusk upload")
    }

    /// Run `tusk upload` to its end (bounded); its stderr is shown in the test's output.
    async fn run(&self, url: &str, args: &[&str]) -> Run {
        finish(self.spawn(url, args)).await
    }

    /// The state files in the default state directory.
    fn state_files(&self) -> Vec<PathBuf> {
        let dir = self.state_home.join("tusk").join("uploads");
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The upload URL (first part) saved in the one state file, once there is one.
    fn saved_url(&self) -> Option<String> {
        self.saved_urls().into_iter().next().flatten()
    }

    /// The URL of each part saved in the one state file (none before there is one).
    fn saved_urls(&self) -> Vec<Option<String>> {
        let Some(file) = self.state_files().into_iter().next() else {
            return Vec::new();
        };
        let Some(state) = std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            return Vec::new();
        };
        state["parts"]
            .as_array()
            .map(|parts| {
                parts
                    .iter()
                    .map(|p| p["url"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How a run of `tusk upload` ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn finish(child: Child) -> Run {
    let output: Output = tokio::time::timeout(PATIENCE * 2, child.wait_with_output())
        .await
        .expect("tusk upload did not finish in time")
        .unwrap();
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!(
        "tusk upload exited {:?}\n--- stdout\n{}--- stderr\n{}---",
        run.code, run.stdout, run.stderr
    );
    run
}

impl Run {
    /// Asserts success; the URL printed (the only line on stdout).
    fn url(&self) -> String {
        assert_eq!(self.code, Some(0), "tusk upload failed: {}", self.stderr);
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "stdout must hold the URL only: {:?}",
            self.stdout
        );
        assert!(lines[0].starts_with("http://"), "{:?}", lines[0]);
        lines[0].to_owned()
    }
}

fn socket_of(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("http://").unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

/// The collection URL of `server`, through `proxy`.
fn through(proxy: &FaultProxy, server: &Server) -> String {
    server.url.replace(
        &socket_of(&server.url).to_string(),
        &proxy.addr().to_string(),
    )
}

/// `url` (possibly through the proxy) on the server itself.
fn direct(server: &Server, url: &str) -> String {
    format!("{}{}", server.url, id_of(url))
}

async fn proxy(server: &Server, plan: impl FnMut(u64) -> ConnPlan + Send + 'static) -> FaultProxy {
    FaultProxy::start(socket_of(&server.url), Box::new(plan))
        .await
        .unwrap()
}

fn ratio(sent: u64, file: u64) -> f64 {
    sent as f64 / file as f64
}

/// Wait (bounded) until `setup`'s state file names an upload and the proxy forwarded at least
/// `bytes` to the server; the URL saved. The server is not asked (a HEAD takes the upload's
/// lock, which ends the PATCH in progress early: a different test).
async fn wait_for_upstream(setup: &Setup, proxy: &FaultProxy, bytes: u64) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(url) = setup.saved_url()
            && proxy.upstream_bytes() >= bytes
        {
            return url;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload never reached {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Start `tusk upload ARGS` through a slow link, SIGKILL it once the server holds a quarter
/// of the file; the URL it had saved.
async fn start_and_kill(
    setup: &Setup,
    server: &Server,
    proxy: &FaultProxy,
    args: &[&str],
) -> String {
    let mut child = setup.spawn(&through(proxy, server), args);
    let len = setup.data.len() as u64;
    let url = wait_for_upstream(setup, proxy, len / 4).await;
    child.start_kill().unwrap();
    let run = finish(child).await;
    assert_eq!(run.code, None, "tusk upload ended before it was killed");
    assert!(run.stdout.is_empty(), "{:?}", run.stdout);
    let (status, offset) = head(&direct(server, &url)).await;
    eprintln!(
        "killed after {} bytes went upstream; the server holds {offset:?}",
        proxy.upstream_bytes()
    );
    assert_eq!(status, 200);
    assert!(offset.unwrap() < len, "the upload finished before the kill");
    url
}

/// `tusk upload ARGS` of 16 MiB to `server` through a proxy that resets every connection
/// after 1 MiB: it finishes, having sent at most 1.05 times the file; the URL and the setup
/// (the caller checks the bytes where the server keeps them).
async fn through_resets_every_mib(server: &Server, args: &[&str]) -> (String, Setup) {
    let len = 16 * MIB;
    let setup = Setup::new("reset.bin", len, 11);
    let proxy = proxy(server, |_| ConnPlan::cut_after(MIB, CutKind::Rst)).await;
    let run = setup.run(&through(&proxy, server), args).await;
    let url = run.url();
    let cuts = proxy.connections().iter().filter(|c| c.cut).count();
    let measured = ratio(proxy.upstream_bytes(), len);
    eprintln!(
        "{args:?}, RST every 1 MiB: {cuts} cuts, {} bytes sent for {len}: ratio {measured:.4}",
        proxy.upstream_bytes()
    );
    assert!(cuts >= 15, "only {cuts} connections were cut");
    assert!(run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(measured <= 1.05, "sent {measured:.4} x the file");
    assert!(
        setup.state_files().is_empty(),
        "the state file outlived the upload"
    );
    (url, setup)
}

/// The server counted requests that spoke the draft at interop version 8: `--ietf` did not
/// fall back to tus.
async fn assert_draft_requests(server: &Server) {
    let metrics = scrape(&server.url).await;
    let series = "tusk_ietf_draft_requests_total{interop_version=\"8\"}";
    let count = sample(&metrics, series).unwrap_or(0.0);
    eprintln!("{series} {count}");
    assert!(count > 0.0, "no draft requests:\n{metrics}");
}

#[tokio::test]
async fn resets_every_mib_lose_no_place_and_resend_almost_nothing() {
    let server = Server::start(&[]).await;
    let (url, setup) = through_resets_every_mib(&server, &[]).await;
    assert!(server.stored(&url) == setup.data, "stored bytes differ");
}

#[tokio::test]
async fn ietf_resets_every_mib_lose_no_place_and_resend_almost_nothing() {
    let server = Server::start(&[]).await;
    let (url, setup) = through_resets_every_mib(&server, &["--ietf"]).await;
    assert!(server.stored(&url) == setup.data, "stored bytes differ");
    assert_draft_requests(&server).await;
    // The draft creation carried the metadata: filename "reset.bin".
    let resp = client()
        .head(direct(&server, &url))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    let metadata = resp.headers()["upload-metadata"].to_str().unwrap();
    assert!(metadata.contains("filename cmVzZXQuYmlu"), "{metadata}");
}

#[tokio::test]
async fn distributed_ietf_resets_every_mib_lose_no_place_and_resend_almost_nothing() {
    if !services_enabled(
        "distributed_ietf_resets_every_mib_lose_no_place_and_resend_almost_nothing",
    ) {
        return;
    }
    let cluster = Cluster::start(1, &[]).await;
    let server = &cluster.nodes[0];
    let (url, setup) = through_resets_every_mib(server, &["--ietf"]).await;
    cluster.assert_object(&url, &setup.data).await;
    assert_draft_requests(server).await;
}

/// `tusk upload --chunk-size 256KiB ARGS` through resets every MiB: byte-exact, and each cut
/// costs the chunk it fell in (so the checksums were sent and checked).
async fn checksummed_chunks_through_resets(server: &Server, args: &[&str]) {
    let len = 6 * MIB;
    let setup = Setup::new("chunks.bin", len, 12);
    let proxy = proxy(server, |_| ConnPlan::cut_after(MIB, CutKind::Rst)).await;
    let state = setup.state_home.join("explicit.json");
    let state_arg = state.to_str().unwrap();
    let mut args = args.to_vec();
    args.extend(["--chunk-size", "256KiB", "--state-file", state_arg]);
    let url = setup.run(&through(&proxy, server), &args).await.url();
    let measured = ratio(proxy.upstream_bytes(), len);
    eprintln!("{args:?}: 256 KiB checksummed chunks, RST every 1 MiB: ratio {measured:.4}");
    assert!(download(&direct(server, &url)).await == setup.data);
    // A checksummed chunk is stored all or nothing, so each cut (every MiB, inside the fourth
    // chunk of its connection) costs that chunk: at most 256 KiB per 768 KiB kept. Plain
    // PATCHes would lose nothing, so the waste also shows the checksums were sent.
    let chunk = 256.0 * 1024.0;
    let bound = 1.0 + chunk / (MIB as f64 - chunk) + 0.02;
    assert!(
        measured <= bound,
        "sent {measured:.4} x the file (bound {bound:.3})"
    );
    assert!(
        measured > 1.1,
        "no chunk was discarded: were checksums sent? {measured:.4}"
    );
    assert!(!state.exists(), "the state file outlived the upload");
}

#[tokio::test]
async fn checksummed_chunks_through_resets_finish_byte_exact() {
    let server = Server::start(&[]).await;
    checksummed_chunks_through_resets(&server, &[]).await;
}

#[tokio::test]
async fn ietf_content_digest_chunks_through_resets_finish_byte_exact() {
    let server = Server::start(&[]).await;
    checksummed_chunks_through_resets(&server, &["--ietf"]).await;
    assert_draft_requests(&server).await;
}

/// `tusk upload ARGS` killed with SIGKILL a quarter of the way and run again: it resumes the
/// same upload, byte-exact, having sent at most 1.10 times the file in all.
async fn killed_and_run_again(server: &Server, args: &[&str]) {
    let len = 16 * MIB;
    let setup = Setup::new("killed.bin", len, 13);
    let proxy = proxy(server, |_| ConnPlan::PASS.at_rate(Some(8 * MIB))).await;
    let saved = start_and_kill(&setup, server, &proxy, args).await;
    assert_eq!(setup.state_files().len(), 1);
    proxy.set_policy(Box::new(|_| ConnPlan::PASS));
    let run = setup.run(&through(&proxy, server), args).await;
    let url = run.url();
    assert_eq!(id_of(&url), id_of(&saved), "a new upload was created");
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    let measured = ratio(proxy.upstream_bytes(), len);
    eprintln!(
        "{args:?}, kill -9 and run again: {} bytes sent for {len}: ratio {measured:.4}",
        proxy.upstream_bytes()
    );
    assert!(measured <= 1.10, "sent {measured:.4} x the file");
    assert!(server.stored(&url) == setup.data, "stored bytes differ");
    assert!(setup.state_files().is_empty());
}

#[tokio::test]
async fn killed_and_run_again_resumes_the_same_upload() {
    let server = Server::start(&[]).await;
    killed_and_run_again(&server, &[]).await;
}

#[tokio::test]
async fn ietf_killed_and_run_again_resumes_the_same_upload() {
    let server = Server::start(&[]).await;
    killed_and_run_again(&server, &["--ietf"]).await;
    assert_draft_requests(&server).await;
}

/// A tus upload and a draft upload of the same file are two uploads: neither run resumes the
/// other's, and each resumes its own.
#[tokio::test]
async fn a_saved_tus_upload_is_not_resumed_with_ietf_nor_the_reverse() {
    let server = Server::start(&[]).await;
    let len = 8 * MIB;
    let setup = Setup::new("protocols.bin", len, 20);
    let proxy = proxy(&server, |_| ConnPlan::PASS.at_rate(Some(4 * MIB))).await;
    let tus_saved = start_and_kill(&setup, &server, &proxy, &[]).await;
    proxy.set_policy(Box::new(|_| ConnPlan::PASS));
    let run = setup.run(&through(&proxy, &server), &["--ietf"]).await;
    let ietf_url = run.url();
    assert_ne!(
        id_of(&ietf_url),
        id_of(&tus_saved),
        "--ietf resumed a tus upload"
    );
    assert!(!run.stderr.contains("resuming"), "{}", run.stderr);
    assert!(
        server.stored(&ietf_url) == setup.data,
        "stored bytes differ"
    );
    // The tus upload's state is still there, and tus resumes it.
    assert_eq!(setup.state_files().len(), 1);
    let run = setup.run(&through(&proxy, &server), &[]).await;
    assert_eq!(id_of(&run.url()), id_of(&tus_saved));
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    assert!(
        server.stored(&tus_saved) == setup.data,
        "stored bytes differ"
    );
    assert!(setup.state_files().is_empty());
}

/// The upload `tusk upload ARGS` had saved is deleted on the server: the next run says so and
/// starts a new one.
async fn lost_upload_started_over(args: &[&str]) {
    let server = Server::start(&[]).await;
    let len = 8 * MIB;
    let setup = Setup::new("lost.bin", len, 14);
    let proxy = proxy(&server, |_| ConnPlan::PASS.at_rate(Some(4 * MIB))).await;
    let saved = start_and_kill(&setup, &server, &proxy, args).await;
    let resp = client()
        .delete(direct(&server, &saved))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    proxy.set_policy(Box::new(|_| ConnPlan::PASS));
    let run = setup.run(&through(&proxy, &server), args).await;
    let url = run.url();
    assert_ne!(id_of(&url), id_of(&saved));
    assert!(
        run.stderr.contains("no longer has the upload"),
        "{}",
        run.stderr
    );
    assert!(download(&direct(&server, &url)).await == setup.data);
}

#[tokio::test]
async fn a_lost_upload_is_started_over() {
    lost_upload_started_over(&[]).await;
}

#[tokio::test]
async fn ietf_a_lost_upload_is_started_over() {
    lost_upload_started_over(&["--ietf"]).await;
}

#[tokio::test]
async fn parallel_partial_uploads_concatenate_byte_exact() {
    let server = Server::start(&[]).await;
    let len = 16 * MIB + 3;
    let setup = Setup::new("parallel.bin", len, 15);
    // Cuts as well, so each partial upload resumes on its own.
    let proxy = proxy(&server, |_| ConnPlan::cut_after(3 * MIB, CutKind::Rst)).await;
    let run = setup
        .run(&through(&proxy, &server), &["--parallel", "4"])
        .await;
    let url = run.url();
    assert!(run.stderr.contains("4 partial uploads"), "{}", run.stderr);
    assert!(download(&direct(&server, &url)).await == setup.data);
    let resp = client()
        .head(direct(&server, &url))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    let concat = resp.headers()["upload-concat"].to_str().unwrap();
    assert_eq!(concat.matches("/files/").count(), 4, "{concat}");
    // The metadata goes with the final upload: filename "parallel.bin".
    let metadata = resp.headers()["upload-metadata"].to_str().unwrap();
    assert!(metadata.contains("filename cGFyYWxsZWwuYmlu"), "{metadata}");
    let measured = ratio(proxy.upstream_bytes(), len);
    eprintln!("--parallel 4, RST every 3 MiB: ratio {measured:.4}");
    assert!(measured <= 1.05, "sent {measured:.4} x the file");
}

#[tokio::test]
async fn a_killed_parallel_upload_resumes_its_partial_uploads() {
    let server = Server::start(&[]).await;
    let len = 16 * MIB;
    let setup = Setup::new("parallel-killed.bin", len, 19);
    let proxy = proxy(&server, |_| ConnPlan::PASS.at_rate(Some(2 * MIB))).await;
    let args = ["--parallel", "4"];
    let mut child = setup.spawn(&through(&proxy, &server), &args);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let saved = loop {
        let urls = setup.saved_urls();
        if urls.len() == 4 && urls.iter().all(Option::is_some) && proxy.upstream_bytes() >= len / 4
        {
            break urls.into_iter().flatten().collect::<Vec<_>>();
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.start_kill().unwrap();
    assert_eq!(finish(child).await.code, None, "ended before the kill");
    let sent_before = proxy.upstream_bytes();
    proxy.set_policy(Box::new(|_| ConnPlan::PASS));
    let run = setup.run(&through(&proxy, &server), &args).await;
    let url = run.url();
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    let resp = client()
        .head(direct(&server, &url))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    let concat = resp.headers()["upload-concat"].to_str().unwrap().to_owned();
    for partial in &saved {
        assert!(concat.contains(id_of(partial)), "{partial} not in {concat}");
    }
    let measured = ratio(proxy.upstream_bytes(), len);
    eprintln!("--parallel 4 killed after {sent_before} bytes and run again: ratio {measured:.4}");
    assert!(measured <= 1.10, "sent {measured:.4} x the file");
    assert!(download(&direct(&server, &url)).await == setup.data);
}

#[tokio::test]
async fn a_hung_patch_is_abandoned_after_the_stall_timeout() {
    let server = Server::start(&[]).await;
    let len = 4 * MIB;
    let setup = Setup::new("hang.bin", len, 16);
    // The first connection hangs after 1 MiB for longer than the test's patience; the rest
    // pass.
    let hang = CutKind::HangThenRst(PATIENCE * 3);
    let proxy = proxy(&server, move |n| {
        if n == 0 {
            ConnPlan::cut_after(MIB, hang)
        } else {
            ConnPlan::PASS
        }
    })
    .await;
    let started = Instant::now();
    let run = setup
        .run(&through(&proxy, &server), &["--timeout", "2s"])
        .await;
    let url = run.url();
    eprintln!("finished {:?} after a hang", started.elapsed());
    assert!(run.stderr.contains("no progress"), "{}", run.stderr);
    assert!(download(&direct(&server, &url)).await == setup.data);
}

#[tokio::test]
async fn exit_codes_tell_file_usage_and_server_failures_apart() {
    let server = Server::start(&["--max-size", "1KiB"]).await;
    let setup = Setup::new("big.bin", 4096, 17);

    // 3: the file is missing.
    let missing = setup.file.with_file_name("missing.bin");
    let run = finish(
        setup
            .command_for(&missing, &server.url, &[])
            .spawn()
            .unwrap(),
    )
    .await;
    assert_eq!(run.code, Some(3), "missing file");
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("missing.bin"), "{}", run.stderr);

    // 1: the server refuses the upload (413, larger than --max-size).
    let run = setup.run(&server.url, &[]).await;
    assert_eq!(run.code, Some(1), "413");
    assert!(run.stderr.contains("413"), "{}", run.stderr);
    assert!(run.stdout.is_empty());

    // 1: nobody listens, and one retry is allowed.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/files/", free.local_addr().unwrap());
    drop(free);
    let started = Instant::now();
    let run = setup
        .run(&dead, &["--max-retries", "1", "--timeout", "2s"])
        .await;
    assert_eq!(run.code, Some(1), "unreachable");
    assert!(run.stderr.contains("gave up after 2"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));

    // 2: usage errors, from clap or from the client's own checks.
    for args in [
        &["--parallel", "0"][..],
        &["--metadata", "bad key=v"],
        &["--header", "no colon here"],
        &["--chunk-size", "0"],
        &["--ietf", "--parallel", "2"],
    ] {
        let run = setup.run(&server.url, args).await;
        assert_eq!(run.code, Some(2), "{args:?}");
        assert!(run.stdout.is_empty());
    }
    // The draft has no concatenation, and the message says what to do instead.
    let run = setup.run(&server.url, &["--ietf", "--parallel", "4"]).await;
    assert!(run.stderr.contains("--parallel"), "{}", run.stderr);
    assert!(run.stderr.contains("concatenation"), "{}", run.stderr);
    let run = setup.run("ftp://example.invalid/files/", &[]).await;
    assert_eq!(run.code, Some(2), "ftp URL");
}

#[tokio::test]
async fn header_values_reach_the_server_but_never_the_output() {
    let server = Server::start(&[]).await;
    let setup = Setup::new("secret.bin", 64 * 1024, 18);
    let run = setup
        .run(
            &server.url,
            &[
                "--header",
                "X-Token: sup3r-s3cret",
                "--metadata",
                "owner=me",
            ],
        )
        .await;
    let url = run.url();
    assert!(!run.stderr.contains("sup3r-s3cret"));
    let resp = client()
        .head(&url)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    let metadata = resp.headers()["upload-metadata"]
        .to_str()
        .unwrap()
        .to_owned();
    // filename "secret.bin", owner "me"; no filetype guessed for .bin.
    assert!(metadata.contains("filename c2VjcmV0LmJpbg=="), "{metadata}");
    assert!(metadata.contains("owner bWU="), "{metadata}");
    assert!(!metadata.contains("filetype"), "{metadata}");
    assert!(download(&url).await == setup.data);
    // --quiet: the URL on stdout, nothing on stderr.
    let run = setup.run(&server.url, &["--quiet"]).await;
    run.url();
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // A bad header is refused naming it, never showing its value.
    let run = setup
        .run(&server.url, &["--header", "Bad Name: sup3r-s3cret"])
        .await;
    assert_eq!(run.code, Some(2));
    assert!(!run.stderr.contains("sup3r-s3cret"), "{}", run.stderr);
}
