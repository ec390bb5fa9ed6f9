//! HTTPS on tusk's own listener, with the real binary and certificates made for each test by
//! the `openssl` command: HTTP/1.1 and HTTP/2 (by ALPN) uploads with `https` upload URLs, a
//! PATCH cut by a reset keeping its bytes, certificates rotated in place (and a bad pair kept
//! out), start-up errors naming the setting, and mutual TLS. And tusk as a client of S3: behind
//! a private CA, and through the proxy its environment names.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use tusk_testkit::fault_proxy::{ConnPlan, CutKind, FaultProxy};

use crate::support::*;

const MIB: usize = 1024 * 1024;

fn openssl(args: &[&str]) {
    let out = StdCommand::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in a directory: it issues certificates for 127.0.0.1 (clients trust its
/// certificate; a self-signed end-entity certificate is refused by webpki-based clients).
pub(crate) struct Ca {
    dir: PathBuf,
    pub(crate) cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    pub(crate) fn new(dir: &Path, name: &str) -> Ca {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
        Ca {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    /// A certificate for 127.0.0.1 with `serial`, and its key: `<name>.pem`, `<name>.key`.
    pub(crate) fn issue(&self, name: &str, serial: u32) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        let csr = self.dir.join(format!("{name}.csr"));
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-copy_extensions",
            "copy",
            "-out",
            cert.to_str().unwrap(),
        ]);
        (cert, key)
    }
}

/// `tusk serve` over TLS with `cert` and `key`, plus `args`.
pub(crate) async fn tls_server(cert: &Path, key: &Path, args: &[&str]) -> Server {
    let mut all = vec![
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ];
    all.extend(args);
    let server = Server::start(&all).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server
}

/// A client trusting `ca` (HTTP/1.1: the test client has no HTTP/2).
fn tls_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// curl with `args`: (its `-w` output, its exit status).
fn curl(args: &[&str]) -> (String, i32) {
    let out = StdCommand::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("the curl command");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn port_of(url: &str) -> u16 {
    let rest = url.strip_prefix("https://127.0.0.1:").unwrap();
    rest[..rest.find('/').unwrap()].parse().unwrap()
}

/// The serial number (hex) of the certificate a new connection to `port` is shown.
fn served_serial(port: u16) -> String {
    let out = StdCommand::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

#[tokio::test]
async fn uploads_go_over_http1_and_http2_with_https_upload_urls() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (cert, key) = authority.issue("server", 1);
    let server = tls_server(&cert, &key, &[]).await;
    let ca = authority.cert.to_str().unwrap();
    let data = pattern(3 * MIB, 21);

    // Created over HTTP/2: the URL it answers with is https.
    let (out, code) = curl(&[
        "--cacert",
        ca,
        "--http2",
        "-X",
        "POST",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        &format!("Upload-Length: {}", data.len()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %header{location}",
        &server.url,
    ]);
    assert_eq!(code, 0);
    let mut words = out.split_whitespace();
    assert_eq!(words.next(), Some("2"), "not HTTP/2: {out}");
    assert_eq!(words.next(), Some("201"), "{out}");
    let url = words.next().unwrap().to_owned();
    assert!(url.starts_with(&server.url), "{url}");

    // The first MiB as a PATCH over HTTP/2.
    let first = dir.path().join("first");
    std::fs::write(&first, &data[..MIB]).unwrap();
    let (out, code) = curl(&[
        "--cacert",
        ca,
        "--http2",
        "-X",
        "PATCH",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "-H",
        "Upload-Offset: 0",
        "--data-binary",
        &format!("@{}", first.display()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %header{upload-offset}",
        &url,
    ]);
    assert_eq!((out.as_str(), code), ("2 204 1048576", 0));

    // The rest over HTTP/1.1, then the whole upload read back.
    let client = tls_client(&authority.cert);
    let resp = client
        .patch(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", MIB.to_string())
        .body(data[MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let stored = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(stored == data, "stored bytes differ");

    // Plain HTTP on the TLS port gets no answer.
    let plain = server.url.replacen("https://", "http://", 1);
    let (_, code) = curl(&["-o", "/dev/null", &plain]);
    assert_ne!(code, 0, "plain HTTP was answered on the TLS listener");
}

#[tokio::test]
async fn a_patch_cut_by_a_reset_over_tls_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (cert, key) = authority.issue("server", 2);
    let server = tls_server(&cert, &key, &[]).await;
    let total = 8 * MIB;
    let cut = 3 * MIB as u64;
    let data = pattern(total, 22);
    let client = tls_client(&authority.cert);
    let url = {
        let resp = client
            .post(&server.url)
            .header(TUS.0, TUS.1)
            .header("Upload-Length", total.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.headers()["location"].to_str().unwrap().to_owned()
    };
    let upstream = format!("127.0.0.1:{}", port_of(&server.url))
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(
        upstream,
        Box::new(move |_| ConnPlan::cut_after(cut, CutKind::Rst)),
    )
    .await
    .unwrap();
    let via = url.replacen(
        &format!("127.0.0.1:{}", port_of(&server.url)),
        &proxy.addr().to_string(),
        1,
    );
    // The certificate names 127.0.0.1, so it holds for the proxy's address too.
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        data.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ));
    let sent = client
        .patch(&via)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", "0")
        .header("Content-Length", total.to_string())
        .body(body)
        .send()
        .await;
    assert!(sent.is_err(), "the PATCH was not cut: {sent:?}");
    let record = proxy.connections()[0];
    assert!(record.cut && !record.cut_unacknowledged, "{record:?}");

    let asked = Instant::now();
    let resp = client.head(&url).header(TUS.0, TUS.1).send().await.unwrap();
    let waited = asked.elapsed();
    let kept: u64 = resp.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("cut after {cut} TLS bytes: {kept} body bytes kept, HEAD in {waited:?}");
    // Everything but the handshake, the request head, the records' framing and the one record
    // the cut split (at most 16 KiB) arrived whole and is kept.
    assert!(
        kept <= cut && kept + 64 * 1024 >= cut,
        "kept {kept} of about {cut} bytes delivered"
    );
    assert!(waited < Duration::from_secs(5), "HEAD took {waited:?}");
    let resp = client
        .patch(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", kept.to_string())
        .body(data[kept as usize..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let stored = client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(stored == data, "stored bytes differ");
}

/// Poll (bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn certificates_rotate_in_place_and_a_bad_pair_keeps_the_one_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (first_cert, first_key) = authority.issue("first", 0x1001);
    // The files the node reads, replaced in place as cert-manager and certbot do.
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let server = tls_server(&cert, &key, &[]).await;
    let port = port_of(&server.url);
    assert_eq!(served_serial(port), "1001");
    let metrics = server.url.replace("/files/", "/metrics");
    let reloads = |result: &str| {
        let (out, _) = curl(&["--cacert", authority.cert.to_str().unwrap(), &metrics]);
        let series = format!("tusk_tls_reloads_total{{result=\"{result}\"}}");
        sample(&out, &series).unwrap_or(0.0)
    };

    // A new pair: new connections get it within the check interval, without a restart.
    let (next_cert, next_key) = authority.issue("next", 0x2002);
    std::fs::copy(&next_key, &key).unwrap();
    std::fs::copy(&next_cert, &cert).unwrap();
    eventually("the new certificate", || served_serial(port) == "2002").await;

    // A certificate with a key that is not its own: the reload fails, the pair in use stays.
    let (third_cert, _) = authority.issue("third", 0x3003);
    let (_, stranger_key) = authority.issue("stranger", 0x4004);
    std::fs::copy(&stranger_key, &key).unwrap();
    std::fs::copy(&third_cert, &cert).unwrap();
    eventually("the failed reload to be counted", || {
        reloads("failed") >= 1.0
    })
    .await;
    assert_eq!(
        served_serial(port),
        "2002",
        "a bad pair replaced the one in use"
    );

    // SIGHUP reloads at once. So that only the signal can have done it, the next pair is
    // written with the same sizes and times as the files the watcher last saw.
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap();
        (meta.len(), meta.modified().unwrap())
    };
    let (cert_stamp, key_stamp) = (stamp(&cert), stamp(&key));
    let mut fifth = None;
    for attempt in 0..32 {
        let (c, k) = authority.issue(&format!("fifth{attempt}"), 0x5005);
        if stamp(&c).0 == cert_stamp.0 && stamp(&k).0 == key_stamp.0 {
            fifth = Some((c, k));
            break;
        }
    }
    let (fifth_cert, fifth_key) = fifth.expect("a certificate of the same size");
    for (from, to, (_, modified)) in [
        (&fifth_key, &key, key_stamp),
        (&fifth_cert, &cert, cert_stamp),
    ] {
        std::fs::copy(from, to).unwrap();
        std::fs::File::options()
            .write(true)
            .open(to)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
    let ok_before = reloads("ok");
    StdCommand::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    eventually("the certificate after SIGHUP", || {
        served_serial(port) == "5005"
    })
    .await;
    assert_eq!(reloads("ok"), ok_before + 1.0);
}

/// Start `tusk serve` with `args` and expect it to exit at once with an error; its stderr.
async fn refused_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut all = vec!["--data-dir", data.to_str().unwrap()];
    all.extend(args);
    refused_start_with(&all, &[], &[]).await
}

#[tokio::test]
async fn start_up_refuses_missing_files_mismatched_keys_and_expired_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (cert, key) = authority.issue("server", 3);
    let (_, other_key) = authority.issue("other", 4);
    let (cert, key, other_key) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        other_key.to_str().unwrap(),
    );

    let err = refused_start(&[
        "--tls-cert-file",
        "/nonexistent/cert.pem",
        "--tls-key-file",
        key,
    ])
    .await;
    assert!(
        err.contains("--tls-cert-file") && err.contains("cannot read"),
        "{err}"
    );
    let err = refused_start(&["--tls-cert-file", cert, "--tls-key-file", other_key]).await;
    assert!(
        err.contains("--tls-key-file") && err.contains("does not fit"),
        "{err}"
    );
    let err = refused_start(&["--tls-cert-file", cert]).await;
    assert!(err.contains("--tls-key-file"), "{err}");
    let err = refused_start(&[
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
        "--tls-min-version",
        "1.1",
    ])
    .await;
    assert!(err.contains("--tls-min-version"), "{err}");

    // Expired: signed with dates in the past (openssl's `ca` takes explicit dates).
    let ca_dir = dir.path();
    std::fs::write(
        ca_dir.join("ca.cnf"),
        "[ca]\ndefault_ca=local\n[local]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=any\n[any]\ncommonName=supplied\n",
    )
    .unwrap();
    std::fs::write(ca_dir.join("index.txt"), "").unwrap();
    std::fs::write(ca_dir.join("serial"), "01\n").unwrap();
    openssl(&[
        "req",
        "-new",
        "-key",
        key,
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        ca_dir.join("old.csr").to_str().unwrap(),
    ]);
    let out = StdCommand::new("openssl")
        .current_dir(ca_dir)
        .args([
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-selfsign",
            "-keyfile",
            key,
            "-in",
            "old.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expired = ca_dir.join("expired.pem");
    let err = refused_start(&[
        "--tls-cert-file",
        expired.to_str().unwrap(),
        "--tls-key-file",
        key,
    ])
    .await;
    assert!(
        err.contains("--tls-cert-file") && err.contains("expired"),
        "{err}"
    );
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (server_cert, server_key) = authority.issue("server", 5);
    let (client_cert, client_key) = authority.issue("client", 7);
    let elsewhere = tempfile::tempdir().unwrap();
    let (stranger_cert, stranger_key) = Ca::new(elsewhere.path(), "other-ca").issue("stranger", 8);
    let server = tls_server(
        &server_cert,
        &server_key,
        &["--tls-client-ca-file", authority.cert.to_str().unwrap()],
    )
    .await;
    let options = |cert: Option<(&Path, &Path)>| {
        let mut args = vec![
            "--cacert".to_owned(),
            authority.cert.to_str().unwrap().to_owned(),
            "-X".to_owned(),
            "OPTIONS".to_owned(),
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{http_code}".to_owned(),
        ];
        if let Some((cert, key)) = cert {
            args.extend([
                "--cert".to_owned(),
                cert.to_str().unwrap().to_owned(),
                "--key".to_owned(),
                key.to_str().unwrap().to_owned(),
            ]);
        }
        args.push(server.url.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    };
    let (out, code) = options(Some((&client_cert, &client_key)));
    assert_eq!((out.as_str(), code), ("204", 0), "a client of the CA");
    let (out, code) = options(None);
    assert!(code != 0 && out != "204", "no client certificate got {out}");
    let (out, code) = options(Some((&stranger_cert, &stranger_key)));
    assert!(
        code != 0 && out != "204",
        "a certificate from elsewhere got {out}"
    );
}

/// Clients that open connections and never finish their TLS handshake (one byte of a
/// ClientHello, then nothing), hundreds at once, neither keep others out nor hold their
/// connections past the handshake bound (10 s).
#[tokio::test]
async fn stalled_handshakes_by_the_hundred_are_dropped_and_do_not_keep_others_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let authority = Ca::new(dir.path(), "ca");
    let (cert, key) = authority.issue("server", 9);
    let server = tls_server(&cert, &key, &[]).await;
    let addr = format!("127.0.0.1:{}", port_of(&server.url));
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // The first byte of a TLS record (a handshake), and nothing more.
        conn.write_all(&[0x16]).await.unwrap();
        stalled.push(conn);
    }
    // An honest client is served meanwhile.
    let resp = tls_client(&authority.cert)
        .request(reqwest::Method::OPTIONS, &server.url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Every stalled connection is closed by the server within the bound (and some slack).
    for mut conn in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf))
            .await
            .expect("a stalled handshake was held past the bound");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server answered a half ClientHello: {read:?}"
        );
    }
    let took = started.elapsed();
    eprintln!("200 stalled handshakes all closed after {took:?}");
    assert!(
        took >= Duration::from_secs(9),
        "closed before the bound: {took:?}"
    );
}

/// A TLS terminator on 127.0.0.1 in front of `target` (`host:port`), serving `cert` and `key`:
/// an S3 endpoint with a certificate from a private CA. Returns its port.
async fn tls_terminator(
    cert: &Path,
    key: &Path,
    target: String,
) -> (u16, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake; nothing to relay.
                let Ok(mut inbound) = acceptor.accept(inbound).await else {
                    return;
                };
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task)
}

/// The S3 client speaks TLS (rustls on ring) and trusts the system's certificate store, which
/// `SSL_CERT_FILE` replaces: a store behind a private CA takes uploads once its CA is named
/// there, and without it the node refuses to start, naming the certificate problem.
#[tokio::test]
async fn s3_behind_a_private_ca_is_trusted_through_ssl_cert_file() {
    use crate::services::*;
    if !services_enabled("s3_behind_a_private_ca_is_trusted_through_ssl_cert_file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "private-ca");
    let (cert, key) = ca.issue("s3", 7);
    let endpoints = Endpoints::shared();
    let (port, terminator) = tls_terminator(&cert, &key, host_port(&endpoints.s3)).await;
    let bucket = unique("tusk-e2e-tls");
    create_bucket(&endpoints.s3, &bucket).await;
    let https = format!("https://127.0.0.1:{port}");
    let args = s3_node_args(&endpoints, &https, &bucket);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let credentials = s3_env();
    let mut envs: Vec<(&str, &str)> = credentials.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Without the CA: no start.
    let stderr = refused_start_with(&args, &envs, &["SSL_CERT_FILE", "SSL_CERT_DIR"]).await;
    assert!(
        stderr.contains(&https) && stderr.contains("certificate"),
        "{stderr}"
    );

    // With it: a 6 MiB upload (a full part and a last one) goes through and reads back (a GET
    // of a finished upload streams the object from S3, through the terminator too).
    let ca_file = ca.cert.to_str().unwrap();
    envs.push(("SSL_CERT_FILE", ca_file));
    let server = Server::spawn(&dir.path().join("unused-data-dir"), &args, &envs).await;
    let data = pattern(6 * MIB, 41);
    let url = server.create(data.len() as u64).await;
    assert_eq!(
        patch(&url, 0, data.clone()).await,
        (204, Some(data.len() as u64))
    );
    assert!(download(&url).await == data, "the object read back differs");
    server.stop().await;
    terminator.abort();
}

/// The arguments of a distributed node over the shared services, with `s3` as its S3 endpoint.
fn s3_node_args(endpoints: &crate::services::Endpoints, s3: &str, bucket: &str) -> Vec<String> {
    use crate::services::unique;
    let mut args: Vec<String> = [
        "--s3-bucket",
        bucket,
        "--s3-endpoint",
        s3,
        "--s3-region",
        "us-east-1",
        "--s3-force-path-style",
        "--redis-url",
        &endpoints.redis_url,
        "--redis-prefix",
        &format!("{}:", unique("e2e")),
        "--etcd-endpoints",
        &endpoints.etcd,
        "--etcd-prefix",
        &format!("{}/", unique("e2e")),
    ]
    .map(str::to_owned)
    .to_vec();
    if endpoints.redis_url.contains(',') {
        args.push("--redis-cluster".to_owned());
    }
    args
}

/// Start `tusk serve` with `args` and `envs` (less the variables `removed`), expect it to exit
/// at once with an error; its stderr.
async fn refused_start_with(args: &[&str], envs: &[(&str, &str)], removed: &[&str]) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tusk"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .kill_on_drop(true);
    for name in removed {
        command.env_remove(name);
    }
    let out = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("tusk did not exit")
        .unwrap();
    assert!(!out.status.success(), "tusk started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The S3 client goes through the proxy `HTTP_PROXY` names, as the SDK's own client does, except
/// for hosts in `NO_PROXY`: a proxy that is not there keeps the node from starting, `NO_PROXY`
/// lets it start anyway, and through a real proxy (a relay: the S3 server answers the
/// absolute-form requests a proxy passes on) uploads go through, and stop when it is cut.
#[tokio::test]
async fn s3_requests_go_through_the_proxy_the_environment_names() {
    use crate::services::*;
    if !services_enabled("s3_requests_go_through_the_proxy_the_environment_names") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoints = Endpoints::shared();
    let bucket = unique("tusk-e2e-proxy");
    create_bucket(&endpoints.s3, &bucket).await;
    let args = s3_node_args(&endpoints, &endpoints.s3, &bucket);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let credentials = s3_env();
    let with_proxy = |proxy: &str, no_proxy: &str| -> Vec<(String, String)> {
        let mut envs: Vec<(String, String)> = credentials
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        // Both spellings, so that none from the test's own environment applies.
        for (name, value) in [
            ("HTTP_PROXY", proxy),
            ("http_proxy", proxy),
            ("NO_PROXY", no_proxy),
            ("no_proxy", no_proxy),
        ] {
            envs.push((name.to_owned(), value.to_owned()));
        }
        envs
    };

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let envs = with_proxy(&nowhere, "");
    let stderr = refused_start_with(
        &args,
        &as_refs(&envs),
        &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
    )
    .await;
    assert!(stderr.contains("unreachable"), "{stderr}");

    let envs = with_proxy(&nowhere, "127.0.0.1");
    let server = Server::spawn(&dir.path().join("a"), &args, &as_refs(&envs)).await;
    server.stop().await;

    let relay = Relay::start(&host_port(&endpoints.s3)).await;
    let envs = with_proxy(&format!("http://127.0.0.1:{}", relay.port), "");
    let server = Server::spawn(&dir.path().join("b"), &args, &as_refs(&envs)).await;
    let data = pattern(6 * MIB, 42);
    let url = server.create(data.len() as u64).await;
    assert_eq!(
        patch(&url, 0, data.clone()).await,
        (204, Some(data.len() as u64))
    );
    assert!(download(&url).await == data, "the object read back differs");
    // Cut the proxy: finishing an upload needs S3, and fails until it is back.
    relay.cut();
    let url = server.create(10).await;
    assert_eq!(patch(&url, 0, b"0123456789".to_vec()).await.0, 503);
    relay.restore().await;
    assert_eq!(head(&url).await, (200, Some(10)));
    server.stop().await;
}

fn as_refs(envs: &[(String, String)]) -> Vec<(&str, &str)> {
    envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `host:port` of an `http(s)://host:port` URL.
fn host_port(url: &str) -> String {
    url.split_once("://")
        .map_or(url, |(_, rest)| rest)
        .to_owned()
}
