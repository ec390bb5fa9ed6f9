//! HTTP hooks end to end, in distributed mode: a real receiver in the test gets tusd-shaped
//! requests from two nodes and steers them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::receiver::{Answer, Received, Receiver};
use crate::services::{Cluster, s3_keeps_object_settings, services_enabled};
use crate::support::*;

const TOKEN: &str = "Bearer s3cret-token";

/// The hook requests of type `kind`.
fn of(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver
        .all()
        .iter()
        .map(Received::json)
        .filter(|j| j["Type"] == kind)
        .collect()
}

/// The hook requests of type `kind` about upload `id`.
fn about(receiver: &Receiver, kind: &str, id: &str) -> Vec<Value> {
    of(receiver, kind)
        .into_iter()
        .filter(|j| j["Event"]["Upload"]["ID"] == id)
        .collect()
}

/// The authorization example of docs/hooks.md, plus the other answers a receiver can give.
fn authorizing_receiver(hook: &Received) -> Answer {
    let request = hook.json();
    let event = &request["Event"];
    let meta = &event["Upload"]["MetaData"];
    match request["Type"].as_str().unwrap() {
        "pre-create" => {
            if event["HTTPRequest"]["Header"]["Authorization"] != json!([TOKEN]) {
                return Answer::ok(json!({
                    "RejectUpload": true,
                    "HTTPResponse": {
                        "StatusCode": 401,
                        "Body": "{\"error\":\"a valid bearer token is required\"}",
                        "Header": {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}
                    }
                }));
            }
            if meta["filename"] == "rename-me.txt" {
                let id = format!("custom-{}", meta["nonce"].as_str().unwrap());
                return Answer::ok(json!({
                    "ChangeFileInfo": {
                        "ID": id,
                        "MetaData": {"filename": "renamed.txt", "owner": "alice"}
                    }
                }));
            }
            // Go's encoding of an empty answer: nil maps are null.
            Answer::ok(json!({
                "HTTPResponse": {"StatusCode": 0, "Body": "", "Header": null},
                "RejectUpload": false,
                "ChangeFileInfo": {"ID": "", "MetaData": null, "Storage": null},
                "StopUpload": false, "RejectTermination": false
            }))
        }
        "pre-finish" => Answer::ok(json!({"HTTPResponse": {"Header": {
            "X-Processed": "yes",
            "Upload-Offset": "1",
            "Tus-Resumable": "0.2.2"
        }}})),
        "pre-terminate" if meta["keep"] == "yes" => Answer::ok(json!({
            "RejectTermination": true,
            "HTTPResponse": {"StatusCode": 403, "Body": "this upload is kept"}
        })),
        _ => Answer::ok(json!({})),
    }
}

#[tokio::test]
async fn hooks_authorize_steer_and_report_every_event_across_nodes() {
    if !services_enabled("hooks_authorize_steer_and_report_every_event_across_nodes") {
        return;
    }
    let receiver = Receiver::start(authorizing_receiver).await;
    let cluster = Cluster::start(
        2,
        &[
            "--hooks-url",
            &receiver.url,
            "--hooks-events",
            "pre-create,post-create,post-receive,pre-finish,post-finish,pre-terminate,post-terminate",
            "--hooks-post-receive-interval",
            "50ms",
        ],
    )
    .await;
    let node = |i: usize| cluster.nodes[i].url.clone();
    let client = client();
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };

    // Without a valid token: refused with the hook's status, body and headers; nothing exists.
    let resp = client
        .post(node(0))
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "10")
        .header("Authorization", "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(resp.headers().get("location").is_none());
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"error\":\"a valid bearer token is required\"}"
    );
    assert_eq!(of(&receiver, "pre-create").len(), 1);
    assert!(
        of(&receiver, "post-create").is_empty(),
        "no upload was created"
    );

    // With the token: pre-create renames it and replaces its metadata.
    let nonce = &tusk_core::UploadId::generate().to_string()[..16];
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let length = 6 * 1024 * 1024 + 123;
    let data = pattern(length, 7);
    let resp = client
        .post(node(0))
        .header(TUS.0, TUS.1)
        .header("Upload-Length", length.to_string())
        .header(
            "Upload-Metadata",
            format!("filename {},nonce {}", b64("rename-me.txt"), b64(nonce)),
        )
        .header("Authorization", TOKEN)
        .header("Cookie", "session=not-for-hooks")
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let url = resp.headers()["location"].to_str().unwrap().to_owned();
    let id = format!("custom-{nonce}");
    assert_eq!(id_of(&url), id, "the hook chose the id");
    let head = client
        .head(cluster.on(1, &url))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["upload-metadata"].to_str().unwrap(),
        format!("filename {},owner {}", b64("renamed.txt"), b64("alice"))
    );

    // pre-create saw the request as tusd would send it: allow-listed headers only, canonical.
    let pre = &of(&receiver, "pre-create")[1];
    assert_eq!(pre["Event"]["Upload"]["ID"], "");
    assert_eq!(pre["Event"]["Upload"]["Size"], length);
    assert_eq!(pre["Event"]["Upload"]["SizeIsDeferred"], false);
    assert_eq!(
        pre["Event"]["Upload"]["MetaData"]["filename"],
        "rename-me.txt"
    );
    let http = &pre["Event"]["HTTPRequest"];
    assert_eq!(http["Method"], "POST");
    assert_eq!(http["URI"], "/files/");
    assert!(
        http["RemoteAddr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(http["Header"]["Authorization"], json!([TOKEN]));
    assert_eq!(http["Header"]["Tus-Resumable"], json!(["1.0.0"]));
    assert!(
        http["Header"].get("Cookie").is_none(),
        "cookies are not forwarded"
    );
    let pre_request = receiver
        .all()
        .into_iter()
        .filter(|r| r.json()["Type"] == "pre-create")
        .nth(1)
        .unwrap();
    assert_eq!(
        pre_request.header("traceparent"),
        Some(traceparent),
        "the client's trace context is passed on"
    );
    assert_eq!(pre_request.header("content-type"), Some("application/json"));

    // post-create (background) names the new id and where the bytes will live.
    wait_until("post-create", || {
        !about(&receiver, "post-create", &id).is_empty()
    })
    .await;
    let created = &about(&receiver, "post-create", &id)[0];
    let storage = &created["Event"]["Upload"]["Storage"];
    assert_eq!(storage["Type"], "s3store");
    assert_eq!(storage["Bucket"], cluster.bucket.as_str());
    assert!(storage["Key"].as_str().unwrap().ends_with(&id));
    assert_eq!(created["Event"]["Upload"]["MetaData"]["owner"], "alice");

    // Two PATCHes on the other node; the second finishes the upload.
    let half = 3 * 1024 * 1024;
    let (status, offset) = patch_with(
        &cluster.on(1, &url),
        0,
        data[..half].to_vec(),
        &[("Authorization", TOKEN.into())],
    )
    .await;
    assert_eq!((status, offset), (204, Some(half as u64)));
    let resp = client
        .patch(cluster.on(1, &url))
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", half.to_string())
        .header("Authorization", TOKEN)
        .body(data[half..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["x-processed"],
        "yes",
        "pre-finish changed the response"
    );
    assert_eq!(
        resp.headers()["upload-offset"],
        length.to_string().as_str(),
        "but not its tus headers"
    );
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert_eq!(cluster.object(&url).await.as_deref(), Some(&data[..]));

    let finish = &about(&receiver, "pre-finish", &id);
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["Event"]["Upload"]["Offset"], length);
    assert_eq!(finish[0]["Event"]["HTTPRequest"]["Method"], "PATCH");
    assert_eq!(
        finish[0]["Event"]["HTTPRequest"]["URI"],
        format!("/files/{id}")
    );
    wait_until("post-finish", || {
        about(&receiver, "post-finish", &id).len() == 1
    })
    .await;
    // At least one: a tick while a PATCH streams, or the report after it commits.
    wait_until("post-receive", || {
        !about(&receiver, "post-receive", &id).is_empty()
    })
    .await;
    for report in about(&receiver, "post-receive", &id) {
        let offset = report["Event"]["Upload"]["Offset"].as_u64().unwrap();
        assert!(offset > 0 && offset <= length as u64, "{offset}");
    }

    // pre-terminate refuses to delete a kept upload; another is deleted and reported.
    let kept = cluster.nodes[0]
        .post(&[
            ("Upload-Length", "5".into()),
            ("Upload-Metadata", format!("keep {}", b64("yes"))),
            ("Authorization", TOKEN.into()),
        ])
        .await;
    let resp = client
        .delete(cluster.on(1, &kept))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.text().await.unwrap(), "this upload is kept");
    assert_eq!(head_status(&cluster.on(0, &kept)).await, 200, "still there");
    let resp = client
        .delete(cluster.on(1, &url))
        .header(TUS.0, TUS.1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(head_status(&cluster.on(0, &url)).await, 404);
    assert_eq!(about(&receiver, "pre-terminate", &id).len(), 1);
    wait_until("post-terminate", || {
        about(&receiver, "post-terminate", &id).len() == 1
    })
    .await;
}

async fn head_status(url: &str) -> u16 {
    head(url).await.0
}

#[tokio::test]
async fn failing_pre_hooks_refuse_and_post_hooks_retry() {
    if !services_enabled("failing_pre_hooks_refuse_and_post_hooks_retry") {
        return;
    }
    // pre-create fails for "fail", hangs for "slow"; post-create fails twice, then succeeds.
    let post_create_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = post_create_calls.clone();
    let receiver = Receiver::start(move |hook| {
        let request = hook.json();
        let meta = &request["Event"]["Upload"]["MetaData"];
        match request["Type"].as_str().unwrap() {
            "pre-create" if meta["mode"] == "fail" => Answer {
                status: 500,
                body: "receiver broke".into(),
                delay: Duration::ZERO,
            },
            "pre-create" if meta["mode"] == "slow" => Answer {
                status: 200,
                body: "{}".into(),
                delay: Duration::from_secs(3),
            },
            "pre-create" if meta["mode"] == "garbage" => Answer {
                status: 200,
                body: "<html>".into(),
                delay: Duration::ZERO,
            },
            "pre-finish" if meta["mode"] == "nofinish" => Answer {
                status: 500,
                body: "{}".into(),
                delay: Duration::ZERO,
            },
            "pre-create" if meta["want"].is_string() => {
                Answer::ok(json!({"ChangeFileInfo": {"ID": meta["want"]}}))
            }
            "post-create" => {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Answer {
                    status: if n < 2 { 503 } else { 200 },
                    body: "{}".into(),
                    delay: Duration::ZERO,
                }
            }
            _ => Answer::ok(json!({})),
        }
    })
    .await;
    let cluster = Cluster::start(
        1,
        &[
            "--hooks-url",
            &receiver.url,
            "--hooks-timeout",
            "500ms",
            "--hooks-retries",
            "3",
            "--hooks-backoff",
            "50ms",
        ],
    )
    .await;
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    for mode in ["fail", "slow", "garbage"] {
        let resp = client()
            .post(&cluster.nodes[0].url)
            .header(TUS.0, TUS.1)
            .header("Upload-Length", "10")
            .header("Upload-Metadata", format!("mode {}", b64(mode)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "{mode}");
        assert_eq!(resp.headers()["retry-after"], "1");
        assert!(resp.headers().get("location").is_none());
        let body = resp.text().await.unwrap();
        assert!(body.starts_with("ERR_HOOK_FAILED"), "{body}");
        assert!(
            !body.contains(&receiver.url),
            "the hook URL stays private: {body}"
        );
    }
    assert!(
        of(&receiver, "post-create").is_empty(),
        "no upload was created"
    );

    // post-create fails twice: the upload is unaffected and the hook arrives on the third try.
    let url = cluster.nodes[0]
        .post(&[
            ("Upload-Length", "3".into()),
            ("Upload-Metadata", format!("mode {}", b64("ok"))),
        ])
        .await;
    assert_eq!(patch(&url, 0, b"abc".to_vec()).await, (204, Some(3)));
    wait_until("post-create delivered on the third attempt", || {
        post_create_calls.load(std::sync::atomic::Ordering::SeqCst) == 3
    })
    .await;
    let id = id_of(&url);
    assert_eq!(about(&receiver, "post-create", id).len(), 3);

    // An id the hook chooses must be valid, free and not reserved.
    let want = format!(
        "mine-{}",
        &tusk_core::UploadId::generate().to_string()[..12]
    );
    let mine = cluster.nodes[0]
        .post(&[
            ("Upload-Length", "1".into()),
            ("Upload-Metadata", format!("want {}", b64(&want))),
        ])
        .await;
    assert_eq!(id_of(&mine), want);
    for taken in [want.as_str(), "_tusk-reaper", "no/slash"] {
        let resp = client()
            .post(&cluster.nodes[0].url)
            .header(TUS.0, TUS.1)
            .header("Upload-Length", "1")
            .header("Upload-Metadata", format!("want {}", b64(taken)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503, "{taken}");
    }
    assert_eq!(
        head(&mine).await,
        (200, Some(0)),
        "the first one is untouched"
    );

    // A failing pre-finish fails the PATCH, but the bytes are stored and the upload is
    // complete (its expiry: an_upload_finished_under_a_failing_pre_finish_keeps_its_retention).
    let url = cluster.nodes[0]
        .post(&[
            ("Upload-Length", "2".into()),
            ("Upload-Metadata", format!("mode {}", b64("nofinish"))),
        ])
        .await;
    let (status, _) = patch(&url, 0, b"ok".to_vec()).await;
    assert_eq!(status, 503);
    assert_eq!(head(&url).await, (200, Some(2)));

    let metrics = scrape(&cluster.nodes[0].url).await;
    let failures = |hook: &str| {
        sample(
            &metrics,
            &format!("tusk_hook_failures_total{{hook=\"{hook}\"}}"),
        )
    };
    assert_eq!(failures("pre-create"), Some(3.0));
    assert_eq!(failures("post-create"), Some(2.0));
    assert_eq!(failures("pre-finish"), Some(1.0));
    assert!(metrics.contains("tusk_hook_duration_seconds_count{hook=\"pre-create\"}"));
}

#[tokio::test]
async fn post_receive_can_stop_an_upload_mid_patch() {
    if !services_enabled("post_receive_can_stop_an_upload_mid_patch") {
        return;
    }
    let receiver = Receiver::start(|hook| {
        let request = hook.json();
        if request["Type"] == "post-receive"
            && request["Event"]["Upload"]["Offset"].as_u64() > Some(0)
        {
            return Answer::ok(json!({
                "StopUpload": true,
                "HTTPResponse": {"StatusCode": 413, "Body": "quota exceeded"}
            }));
        }
        Answer::ok(json!({}))
    })
    .await;
    let cluster = Cluster::start(
        1,
        &[
            "--hooks-url",
            &receiver.url,
            "--hooks-events",
            "post-receive",
            "--hooks-post-receive-interval",
            "50ms",
        ],
    )
    .await;
    let url = cluster.create(0, 10 << 20).await;
    let mut request = RawRequest::patch(&url, 0, 10 << 20).await;
    request.send(&pattern(256 * 1024, 1)).await;
    // The body stalls here; the node reports progress and the hook stops the upload.
    let (status, _) = request.response().await;
    assert_eq!(status, 413);
    assert!(
        of(&receiver, "post-receive")
            .iter()
            .any(|r| r["Event"]["Upload"]["Offset"] == 256 * 1024),
        "progress reports the bytes received so far"
    );
    assert_eq!(head(&url).await.0, 404, "a stopped upload is removed");
    assert_eq!(cluster.multipart_uploads().await, 0);
}

#[tokio::test]
async fn hooks_work_the_same_in_local_mode() {
    let receiver = Receiver::start(|hook| {
        let request = hook.json();
        if request["Type"] == "pre-finish" {
            return Answer::ok(json!({"HTTPResponse": {"Body": "{\"processed\":true}"}}));
        }
        // tusd's file store takes a path here; local storage places files itself.
        if request["Type"] == "pre-create" && request["Event"]["Upload"]["Size"] == 7 {
            return Answer::ok(json!({"ChangeFileInfo": {"Storage": {"Path": "./elsewhere"}}}));
        }
        Answer::ok(json!({}))
    })
    .await;
    let server = Server::start(&["--hooks-url", &receiver.url]).await;
    let url = server.create(4).await;
    let id = id_of(&url).to_owned();
    let resp = client()
        .patch(&url)
        .header(TUS.0, TUS.1)
        .header(OCTETS.0, OCTETS.1)
        .header("Upload-Offset", "0")
        .body(b"tusk".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a pre-finish body turns 204 into 200");
    assert_eq!(resp.headers()["upload-offset"], "4");
    assert_eq!(resp.text().await.unwrap(), "{\"processed\":true}");
    wait_until("post-finish", || {
        about(&receiver, "post-finish", &id).len() == 1
    })
    .await;
    let finished = &about(&receiver, "post-finish", &id)[0];
    let storage = &finished["Event"]["Upload"]["Storage"];
    assert_eq!(storage["Type"], "filestore");
    assert!(storage["Path"].as_str().unwrap().contains(&id));
    assert!(
        of(&receiver, "post-receive").is_empty(),
        "post-receive is off unless listed"
    );
    assert_eq!(head(&url).await, (200, Some(4)));

    // A placement local storage cannot honour fails the POST before anything exists.
    let resp = client()
        .post(&server.url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.unwrap().contains("Storage.Path"));
}

#[tokio::test]
async fn an_upload_finished_under_a_failing_pre_finish_keeps_its_retention() {
    if !services_enabled("an_upload_finished_under_a_failing_pre_finish_keeps_its_retention") {
        return;
    }
    let receiver = Receiver::start(|hook| Answer {
        status: if hook.json()["Type"] == "pre-finish" {
            500
        } else {
            200
        },
        body: "{}".into(),
        delay: Duration::ZERO,
    })
    .await;
    // Unfinished uploads expire after 1 s; finished ones are kept for an hour.
    let cluster = Cluster::start(
        1,
        &[
            "--hooks-url",
            &receiver.url,
            "--expire-after",
            "1s",
            "--finished-retention",
            "1h",
        ],
    )
    .await;
    let url = cluster.create(0, 2).await;
    assert_eq!(patch(&url, 0, b"ok".to_vec()).await.0, 503);
    // Past the unfinished expiry (whole seconds, rounded up): the upload is finished, so a
    // reaper pass must leave it.
    let past = tokio::time::Instant::now() + Duration::from_millis(2500);
    wait_until("the unfinished expiry has passed", || {
        tokio::time::Instant::now() >= past
    })
    .await;
    let report = cluster.cleanup().await;
    assert!(report.contains("0 removed"), "{report}");
    assert_eq!(head(&url).await, (200, Some(2)));
}

/// A hook receiver that answers with a redirect must not get the hook (and the client's
/// headers in it, credentials included) sent on to wherever it points: the hook fails instead.
#[tokio::test]
async fn a_redirecting_hook_receiver_is_a_failure_and_is_not_followed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let elsewhere = Receiver::start(|_| Answer::ok(json!({}))).await;
    let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks_url = format!("http://{}/hooks", redirector.local_addr().unwrap());
    let target = elsewhere.url.clone();
    let redirecting = tokio::spawn(async move {
        while let Ok((mut conn, _)) = redirector.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = conn.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    let server = Server::start(&["--hooks-url", &hooks_url, "--hooks-events", "pre-create"]).await;
    let resp = client()
        .post(&server.url)
        .header(TUS.0, TUS.1)
        .header("Upload-Length", "10")
        .header("Authorization", "Bearer secret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "a failed pre-create hook refuses the upload"
    );
    assert!(
        elsewhere.all().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.all()
    );
    redirecting.abort();
}

/// A pre-create hook's `ChangeFileInfo.Storage` places the upload's object: under its key
/// prefix, with its storage class and encryption, for every node and every later request; a
/// placement S3 would refuse, or a key tusk does not know, fails the POST before anything exists.
#[tokio::test]
async fn a_pre_create_hook_places_the_object_under_its_prefix_class_and_encryption() {
    if !services_enabled(
        "a_pre_create_hook_places_the_object_under_its_prefix_class_and_encryption",
    ) {
        return;
    }
    let receiver = Receiver::start(|hook| {
        let request = hook.json();
        if request["Type"] != "pre-create" {
            return Answer::ok(json!({}));
        }
        let storage = match request["Event"]["Upload"]["MetaData"]["place"].as_str() {
            Some("yes") => json!({
                "KeyPrefix": "tenant-7/2026/",
                "StorageClass": "STANDARD_IA",
                "ServerSideEncryption": "AES256"
            }),
            Some("cheap") => json!({"StorageClass": "CHEAP"}),
            Some("typo") => json!({"StorageClas": "STANDARD_IA"}),
            _ => Value::Null,
        };
        Answer::ok(json!({"ChangeFileInfo": {"Storage": storage}}))
    })
    .await;
    let cluster = Cluster::start(
        2,
        &[
            "--hooks-url",
            &receiver.url,
            "--hooks-events",
            "pre-create,post-finish",
        ],
    )
    .await;
    let create = |place: &'static str, len: usize| {
        let node = cluster.nodes[0].url.clone();
        async move {
            use base64::Engine as _;
            let place = base64::engine::general_purpose::STANDARD.encode(place);
            client()
                .post(node)
                .header(TUS.0, TUS.1)
                .header("Upload-Length", len.to_string())
                .header("Upload-Metadata", format!("place {place}"))
                .send()
                .await
                .unwrap()
        }
    };

    // Parts and a tail, sent half through each node: both read the placement from the state.
    let len = (5 << 20) + 1_234_567; // one 5 MiB part and a tail
    let data = pattern(len, 7);
    let resp = create("yes", len).await;
    assert_eq!(resp.status(), 201);
    let url = resp.headers()["location"].to_str().unwrap().to_owned();
    let id = id_of(&url).to_owned();
    let half = len / 2;
    let (status, _) = patch(&cluster.on(0, &url), 0, data[..half].to_vec()).await;
    assert_eq!(status, 204);
    let (status, offset) = patch(&cluster.on(1, &url), half as u64, data[half..].to_vec()).await;
    assert_eq!((status, offset), (204, Some(len as u64)));
    assert!(download(&cluster.on(1, &url)).await == data);

    let key = format!("tenant-7/2026/{id}");
    let s3 = cluster.s3().await;
    let head = s3
        .head_object()
        .bucket(&cluster.bucket)
        .key(&key)
        .send()
        .await
        .expect("the object is under the hook's prefix");
    assert_eq!(head.content_length(), Some(len as i64));
    if s3_keeps_object_settings() {
        assert_eq!(
            head.storage_class(),
            Some(&aws_sdk_s3::types::StorageClass::StandardIa)
        );
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
        );
    }
    assert!(
        cluster.object(&url).await.is_none(),
        "nothing at the plain key"
    );
    wait_until("post-finish", || {
        about(&receiver, "post-finish", &id).len() == 1
    })
    .await;
    let storage = &about(&receiver, "post-finish", &id)[0]["Event"]["Upload"]["Storage"];
    assert_eq!(storage["Key"], key.as_str());

    // DELETE removes the placed object.
    assert_eq!(delete(&cluster.on(1, &url)).await, 204);
    let gone = s3
        .head_object()
        .bucket(&cluster.bucket)
        .key(&key)
        .send()
        .await;
    assert!(gone.is_err(), "the placed object is deleted");

    // Refused placements: a hook failure (503) naming the setting, and no upload.
    for (place, names) in [("cheap", "StorageClass"), ("typo", "StorageClas")] {
        let resp = create(place, 10).await;
        assert_eq!(resp.status(), 503, "{place}");
        assert!(resp.headers().get("location").is_none());
        let body = resp.text().await.unwrap();
        assert!(body.contains(names), "{place}: {body}");
    }
}
