//! The pre-access hook: every HEAD, PATCH, GET and DELETE of an upload, and every partial a new
//! final upload names, is authorized by the hook receiver; a refused request changes nothing.

use std::time::Duration;

use serde_json::json;

use crate::receiver::{Answer, Received, Receiver};
use crate::services::{Cluster, services_enabled};
use crate::support::*;

/// Allows a request only with `Authorization: Bearer <user>` where `<user>` is the upload's
/// `owner` metadata (so ownership is decided from what the upload was created with).
fn owner_only(hook: &Received) -> Answer {
    let body = hook.json();
    if body["Type"] != "pre-access" {
        return Answer::ok(json!({}));
    }
    let owner = body["Event"]["Upload"]["MetaData"]["owner"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = body["Event"]["HTTPRequest"]["Header"]["Authorization"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !owner.is_empty() && token == format!("Bearer {owner}") {
        return Answer::ok(json!({}));
    }
    Answer::ok(json!({
        "RejectUpload": true,
        "HTTPResponse": {
            "StatusCode": 401,
            "Body": "who are you?",
            "Header": {"WWW-Authenticate": "Bearer"}
        }
    }))
}

/// `owner <base64 of name>`.
fn owned_by(name: &str) -> String {
    use base64::Engine as _;
    format!(
        "owner {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    )
}

/// A new 5-byte upload owned by alice on `server`; its URL.
async fn alices_upload(server: &Server) -> String {
    server
        .post(&[
            ("Upload-Length", "5".into()),
            ("Upload-Metadata", owned_by("alice")),
        ])
        .await
}

fn pre_access_calls(receiver: &Receiver) -> usize {
    receiver
        .all()
        .iter()
        .filter(|r| r.json()["Type"] == "pre-access")
        .count()
}

async fn request(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    offset: Option<u64>,
    body: &[u8],
) -> reqwest::Response {
    let mut req = client().request(method, url).header(TUS.0, TUS.1);
    if let Some(token) = token {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(offset) = offset {
        req = req
            .header(OCTETS.0, OCTETS.1)
            .header("Upload-Offset", offset.to_string())
            .body(body.to_vec());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn only_the_owner_reaches_an_upload_on_any_node_and_refusals_change_nothing() {
    if !services_enabled("only_the_owner_reaches_an_upload_on_any_node_and_refusals_change_nothing")
    {
        return;
    }
    let receiver = Receiver::start(owner_only).await;
    let cluster = Cluster::start(
        2,
        &["--hooks-url", &receiver.url, "--hooks-events", "pre-access"],
    )
    .await;
    let url = cluster.nodes[0]
        .post(&[
            ("Upload-Length", "10".into()),
            ("Upload-Metadata", owned_by("alice")),
        ])
        .await;
    let on = |i: usize| cluster.on(i, &url);
    use reqwest::Method;
    let resp = request(Method::PATCH, &on(1), Some("alice"), Some(0), b"hello").await;
    assert_eq!(resp.status(), 204);

    // Without a token, or with someone else's, every request is refused with the receiver's
    // answer, on either node.
    for token in [None, Some("bob")] {
        for (i, method, offset) in [
            (0, Method::HEAD, None),
            (1, Method::PATCH, Some(5)),
            (0, Method::GET, None),
            (1, Method::DELETE, None),
        ] {
            let resp = request(method.clone(), &on(i), token, offset, b"world").await;
            assert_eq!(resp.status(), 401, "{method} with {token:?}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            if method != Method::HEAD {
                assert_eq!(resp.text().await.unwrap(), "who are you?");
            }
        }
    }
    // Nothing changed: the owner finds the upload as it was, and finishes it.
    let resp = request(Method::HEAD, &on(1), Some("alice"), None, b"").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["upload-offset"], "5");
    let resp = request(Method::PATCH, &on(0), Some("alice"), Some(5), b"world").await;
    assert_eq!(resp.status(), 204);
    let resp = request(Method::GET, &on(1), Some("alice"), None, b"").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), "helloworld");

    // A final upload may name only partials its caller may access.
    let partial = cluster.nodes[1]
        .post(&[
            ("Upload-Length", "3".into()),
            ("Upload-Concat", "partial".into()),
            ("Upload-Metadata", owned_by("alice")),
        ])
        .await;
    let resp = request(Method::PATCH, &partial, Some("alice"), Some(0), b"abc").await;
    assert_eq!(resp.status(), 204);
    let concat = format!("final;{partial}");
    let refused = client()
        .post(&cluster.nodes[0].url)
        .header(TUS.0, TUS.1)
        .header("Upload-Concat", &concat)
        .header("Authorization", "Bearer bob")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "bob named alice's partial");
    let allowed = client()
        .post(&cluster.nodes[0].url)
        .header(TUS.0, TUS.1)
        .header("Upload-Concat", &concat)
        .header("Authorization", "Bearer alice")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 201);

    // The owner may delete it; then it is gone for everyone.
    let resp = request(Method::DELETE, &on(1), Some("alice"), None, b"").await;
    assert_eq!(resp.status(), 204);
    assert_eq!(head(&on(0)).await.0, 404);
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_refuses_the_request() {
    let receiver = Receiver::start(|hook| {
        let mut answer = owner_only(hook);
        answer.delay = Duration::from_secs(3);
        answer
    })
    .await;
    let server = Server::start(&[
        "--hooks-url",
        &receiver.url,
        "--hooks-events",
        "pre-access",
        "--hooks-timeout",
        "300ms",
    ])
    .await;
    let url = alices_upload(&server).await;
    let resp = request(
        reqwest::Method::PATCH,
        &url,
        Some("alice"),
        Some(0),
        b"hello",
    )
    .await;
    assert_eq!(resp.status(), 503, "fail closed");
    assert!(resp.text().await.unwrap().contains("ERR_HOOK_FAILED"));
    assert_eq!(server.recorded_offset(&url), 0, "nothing was stored");
}

#[tokio::test]
async fn the_access_cache_reuses_allows_and_never_refusals() {
    let receiver = Receiver::start(owner_only).await;
    let server = Server::start(&[
        "--hooks-url",
        &receiver.url,
        "--hooks-events",
        "pre-access",
        "--hooks-access-cache",
        "1m",
    ])
    .await;
    let url = alices_upload(&server).await;
    let head_as = |token: Option<&'static str>| {
        let url = url.clone();
        async move {
            request(reqwest::Method::HEAD, &url, token, None, b"")
                .await
                .status()
        }
    };
    assert_eq!(head_as(Some("alice")).await, 200);
    assert_eq!(head_as(Some("alice")).await, 200);
    assert_eq!(
        pre_access_calls(&receiver),
        1,
        "the second allow came from the cache"
    );
    assert_eq!(head_as(None).await, 401);
    assert_eq!(head_as(None).await, 401);
    assert_eq!(
        pre_access_calls(&receiver),
        3,
        "refusals are asked every time"
    );
    // Another credential is another entry.
    assert_eq!(head_as(Some("bob")).await, 401);
    assert_eq!(pre_access_calls(&receiver), 4);
}
