use crate::support::*;

#[tokio::test]
async fn upload_in_pieces_round_trips_byte_exact() {
    let server = Server::start(&[]).await;
    let data = pattern(700_000, 3);
    let url = server.create(data.len() as u64).await;
    let mut offset = 0usize;
    for piece in [1usize, 299_999, 400_000] {
        let (status, new) = patch(&url, offset as u64, data[offset..offset + piece].to_vec()).await;
        assert_eq!(status, 204);
        offset += piece;
        assert_eq!(new, Some(offset as u64));
    }
    assert_eq!(head(&url).await, (200, Some(700_000)));
    assert_eq!(server.stored(&url), data);
}

#[tokio::test]
async fn method_override_is_honoured() {
    let server = Server::start(&[]).await;
    let url = server.create(5).await;
    let resp = client()
        .post(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", "0")
        .header("X-HTTP-Method-Override", "PATCH")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["upload-offset"], "5");
    let resp = client()
        .post(&url)
        .header(TUS.0, TUS.1)
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(head(&url).await, (404, None));
}

#[tokio::test]
async fn method_override_is_ignored_on_anything_but_post() {
    // Any web page can make a visitor's browser send a GET; it must never become a DELETE.
    let server = Server::start(&[]).await;
    let url = server.create(5).await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::OPTIONS,
    ] {
        client()
            .request(method.clone(), &url)
            .header(TUS.0, TUS.1)
            .header("X-HTTP-Method-Override", "DELETE")
            .send()
            .await
            .unwrap();
        assert_eq!(head(&url).await, (200, Some(0)), "{method} became a DELETE");
    }
}

#[tokio::test]
async fn cors_headers_are_on_errors_and_preflights() {
    let server = Server::start(&["--cors-origins", "https://app.example"]).await;
    let origin = "https://app.example";
    // A 412 still carries CORS headers, or a browser could not even read the error.
    let resp = client()
        .post(&server.url)
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.headers()["access-control-allow-origin"], origin);
    assert!(
        resp.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("Upload-Offset")
    );
    // 404 for an unknown upload too.
    let resp = client()
        .head(format!("{}00000000000000000000000000000000", server.url))
        .header(TUS.0, TUS.1)
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["access-control-allow-origin"], origin);
    // Preflight.
    let resp = client()
        .request(reqwest::Method::OPTIONS, &server.url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "upload-offset, tus-resumable",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in [
        "Upload-Offset",
        "Tus-Resumable",
        "Upload-Metadata",
        "Upload-Length",
        "traceparent",
    ] {
        assert!(allowed.contains(name), "{name}");
    }
    // An origin not on the list gets no grant.
    let resp = client()
        .post(&server.url)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn location_follows_proxy_settings() {
    let forwarded = |req: reqwest::RequestBuilder| {
        req.header(TUS.0, TUS.1)
            .header("Upload-Length", "1")
            .header("X-Forwarded-Host", "uploads.example.com")
            .header("X-Forwarded-Proto", "https")
    };
    let cases = [
        (vec![], "http://127.0.0.1:"),
        (vec!["--behind-proxy"], "https://uploads.example.com/files/"),
        (
            vec!["--base-url", "https://cdn.example/api"],
            "https://cdn.example/api/files/",
        ),
    ];
    for (args, prefix) in cases {
        let server = Server::start(&args).await;
        let resp = forwarded(client().post(&server.url)).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(prefix), "{args:?}: {location}");
    }
}

#[tokio::test]
async fn paths_outside_the_collection_and_traversal_ids_are_404() {
    let server = Server::start(&["--base-path", "/up"]).await;
    assert!(server.url.ends_with("/up/"));
    let root = server.url.trim_end_matches("up/");
    for path in [
        "",
        "files/",
        "up/a/b",
        "up/..%2f..%2fetc%2fpasswd",
        "up/%2e%2e",
    ] {
        let raw = RawRequest::start(
            "HEAD",
            &format!("{root}{path}"),
            &[(TUS.0, TUS.1.into())],
            0,
        )
        .await;
        let (status, headers) = raw.response().await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(header(&headers, "upload-offset"), None);
    }
}

#[tokio::test]
async fn malformed_headers_get_400_not_500() {
    let server = Server::start(&[]).await;
    let url = server.create(10).await;
    let cases: [(&str, &str, u16); 5] = [
        ("Upload-Offset", "abc", 400),
        ("Upload-Offset", "99999999999999999999999999", 400),
        ("Upload-Offset", "-1", 400),
        ("Upload-Offset", "7", 409),
        ("Upload-Length", "x", 400),
    ];
    for (name, value, status) in cases {
        let mut headers = vec![(TUS.0, TUS.1.to_owned()), (OCTETS.0, OCTETS.1.to_owned())];
        if name != "Upload-Offset" {
            headers.push(("Upload-Offset", "0".into()));
        }
        headers.push((name, value.to_owned()));
        let mut raw = RawRequest::start("PATCH", &url, &headers, 1).await;
        raw.send(b"x").await;
        assert_eq!(raw.response().await.0, status, "{name}: {value}");
    }
    let resp = client()
        .post(&server.url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "1")
        .header("Upload-Metadata", format!("k {}", "QUFB".repeat(2000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = client()
        .post(&server.url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "2000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(head(&url).await, (200, Some(0)));
}

#[tokio::test]
async fn checksums_commit_all_or_nothing() {
    let server = Server::start(&[]).await;
    let data = pattern(300_000, 8);
    let url = server.create(data.len() as u64).await;
    let (status, _) = patch(&url, 0, data[..1000].to_vec()).await;
    assert_eq!(status, 204);
    let mut wrong = data[1000..].to_vec();
    wrong[5000] ^= 1;
    let good = sha256_checksum(&data[1000..]);
    let (status, offset) = patch_with(&url, 1000, wrong, std::slice::from_ref(&good)).await;
    assert_eq!((status, offset), (460, None));
    assert_eq!(head(&url).await, (200, Some(1000)));
    let bad_algo = ("Upload-Checksum", "whirlpool AAAA".to_string());
    let (status, _) = patch_with(&url, 1000, data[1000..].to_vec(), &[bad_algo]).await;
    assert_eq!(status, 400);
    let (status, offset) = patch_with(&url, 1000, data[1000..].to_vec(), &[good]).await;
    assert_eq!((status, offset), (204, Some(data.len() as u64)));
    assert_eq!(server.stored(&url), data);
}

#[tokio::test]
async fn finished_uploads_download_with_ranges_and_etags() {
    let server = Server::start(&[]).await;
    let data = pattern(3 << 20, 13);
    let url = server.create(data.len() as u64).await;
    let (status, _) = patch(&url, 0, data[..1000].to_vec()).await;
    assert_eq!(status, 204);
    // Not finished yet: a clear 409.
    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("not finished"));
    let (status, _) = patch(&url, 1000, data[1000..].to_vec()).await;
    assert_eq!(status, 204);

    let resp = client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(data.len() as u64));
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(resp.bytes().await.unwrap(), data);

    let resp = client()
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 1000-1999/{}", data.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), data[1000..2000]);

    let resp = client()
        .get(&url)
        .header("Range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);

    let resp = client()
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
}

/// Poll (bounded) until HEAD of `url` answers `status`.
async fn wait_for_head(url: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while head(url).await.0 != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "HEAD never answered {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn expired_uploads_answer_410_and_are_reaped() {
    let server = Server::start(&["--expire-after", "1s", "--reap-interval", "1s"]).await;
    let url = server.create(10).await;
    let resp = client()
        .patch(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", "0")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let expires = resp.headers()["upload-expires"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(httpdate::parse_http_date(&expires).is_ok(), "{expires}");
    // 200 until it expires, 410 until the reaper removes it, then 404; the data goes too.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = head(&url).await.0;
        assert!(matches!(status, 200 | 410 | 404), "{status}");
        if status == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never reaped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!server.data_dir.join(id_of(&url)).exists());
}

#[tokio::test]
async fn tusk_cleanup_removes_expired_uploads_by_hand() {
    // No reaper during the test (1 h interval): the upload answers 410 until cleanup.
    let server = Server::start(&["--expire-after", "1s", "--reap-interval", "1h"]).await;
    let url = server.create(10).await;
    wait_for_head(&url, 410).await;
    let (status, _) = patch(&url, 0, b"abc".to_vec()).await;
    assert_eq!(status, 410);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 410);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tusk"))
        .args(["cleanup", "--expire-after", "1s", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 removed"), "{stdout}");
    assert_eq!(head(&url).await.0, 404);
}

#[tokio::test]
async fn partial_uploads_concatenate_into_a_final_upload() {
    let server = Server::start(&[]).await;
    let mut partials = Vec::new();
    for part in [&b"hello "[..], b"world"] {
        let url = server
            .post(&[
                ("Upload-Concat", "partial".into()),
                ("Upload-Length", part.len().to_string()),
            ])
            .await;
        assert_eq!(patch(&url, 0, part.to_vec()).await.0, 204);
        partials.push(url);
    }
    let fin = server
        .post(&[("Upload-Concat", format!("final;{}", partials.join(" ")))])
        .await;
    assert_eq!(head(&fin).await, (200, Some(11)));
    assert_eq!(server.stored(&fin), b"hello world");
    assert_eq!(patch(&fin, 11, b"!".to_vec()).await.0, 403);
}

#[tokio::test]
async fn a_final_upload_created_early_completes_with_its_last_partial() {
    let server = Server::start(&[]).await;
    let mut partials = Vec::new();
    for part in [&b"abc"[..], b"defg"] {
        let url = server
            .post(&[
                ("Upload-Concat", "partial".into()),
                ("Upload-Length", part.len().to_string()),
            ])
            .await;
        partials.push(url);
    }
    assert_eq!(patch(&partials[0], 0, b"abc".to_vec()).await.0, 204);
    let fin = server
        .post(&[("Upload-Concat", format!("final;{}", partials.join(" ")))])
        .await;
    let resp = client()
        .head(&fin)
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["upload-length"], "7");
    assert!(
        resp.headers().get("upload-offset").is_none(),
        "not assembled yet"
    );
    assert_eq!(client().get(&fin).send().await.unwrap().status(), 409);
    // The PATCH that completes the last partial assembles the final upload.
    assert_eq!(patch(&partials[1], 0, b"defg".to_vec()).await.0, 204);
    assert_eq!(server.stored(&fin), b"abcdefg");
    assert_eq!(head(&fin).await, (200, Some(7)));
    let resp = client().get(&fin).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), &b"abcdefg"[..]);
}

#[tokio::test]
async fn health_readiness_and_a_metrics_scrape_that_promtool_accepts() {
    // With hooks, so their metrics are in the scrape too.
    let hooks =
        crate::receiver::Receiver::start(|_| crate::receiver::Answer::ok(serde_json::json!({})))
            .await;
    let server = Server::start(&[
        "--shutdown-timeout",
        "20s",
        "--read-timeout",
        "60s",
        "--hooks-url",
        &hooks.url,
        "--hooks-events",
        "pre-create",
    ])
    .await;
    let origin = server.url.trim_end_matches("/files/").to_owned();
    assert_eq!(
        client()
            .get(format!("{origin}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{origin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let url = server.create(5).await;
    assert_eq!(patch(&url, 0, b"hello".to_vec()).await.0, 204);
    let resp = client()
        .get(format!("{origin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let scrape = resp.text().await.unwrap();
    for line in [
        "tusk_uploads_created_total 1",
        "tusk_uploads_finished_total 1",
        "tusk_received_bytes_total 5",
        "tusk_ready 1",
        "tusk_http_requests_total{method=\"PATCH\",route=\"upload\",status=\"204\"} 1",
        "tusk_hook_duration_seconds_count{hook=\"pre-create\"} 1",
    ] {
        assert!(scrape.contains(line), "{line:?} missing from:\n{scrape}");
    }
    assert!(!scrape.contains(id_of(&url)), "an upload id in a label");
    // The scrape passes Prometheus' own linter (scripts/test.sh installs it; a bare
    // `cargo test` without it says so and goes on).
    let promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match promtool {
        Ok(mut promtool) => {
            use tokio::io::AsyncWriteExt as _;
            let mut stdin = promtool.stdin.take().unwrap();
            stdin.write_all(scrape.as_bytes()).await.unwrap();
            drop(stdin);
            let out = promtool.wait_with_output().await.unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(err) => {
            assert!(
                !crate::services::services_enabled("promtool check metrics"),
                "promtool (Debian package prometheus; scripts/test.sh installs it): {err}"
            );
        }
    }

    // Readiness fails as soon as the shutdown drain begins (a stalled PATCH keeps it going).
    let stalled = server.create(100).await;
    let mut raw = RawRequest::patch(&stalled, 0, 100).await;
    raw.send(b"abc").await;
    server.signal("TERM");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ready = client().get(format!("{origin}/readyz")).send().await;
        if !matches!(&ready, Ok(r) if r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready while draining"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = raw.response().await;
}

#[tokio::test]
async fn metrics_can_have_their_own_listener() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(&["--metrics-listen", &addr]).await;
    let origin = server.url.trim_end_matches("/files/").to_owned();
    assert_eq!(
        client()
            .get(format!("{origin}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let resp = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("tusk_http_requests_total")
    );
}
