//! `tusk conformance URL` against tusk itself, in local and distributed mode, with every
//! extension tusk advertises required, and `--ietf` (the IETF draft) likewise; and its exit
//! statuses.

use std::process::Output;

use super::services::*;
use super::support::*;

/// What tusk advertises in `Tus-Extension`, plus `cors` and `get`, which it offers too.
async fn advertised(url: &str) -> Vec<String> {
    let resp = client()
        .request(reqwest::Method::OPTIONS, url)
        .send()
        .await
        .unwrap();
    let mut list: Vec<String> = resp.headers()["tus-extension"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|e| e.trim().to_owned())
        .collect();
    list.extend(["cors".to_owned(), "get".to_owned()]);
    list
}

/// Runs `tusk conformance` with `args` (bounded wait).
async fn conformance(args: &[&str]) -> Output {
    tokio::time::timeout(
        PATIENCE * 5,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tusk"))
            .arg("conformance")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("tusk conformance did not finish in time")
    .unwrap()
}

/// Runs every check against `url` with tusk's extensions required; asserts exit 0, no
/// failures in the JSON report, and that only checksum-trailer (not advertised) is skipped.
async fn assert_conforms(url: &str) -> serde_json::Value {
    let require = advertised(url).await.join(",");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = conformance(&[url, "--require", &require, "--json", json.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["summary"]["failed"], 0, "{stdout}");
    let checks = report["checks"].as_array().unwrap();
    for check in checks {
        match check["status"].as_str().unwrap() {
            "pass" => {}
            "skip" => assert_eq!(check["group"], "checksum-trailer", "{check:#}"),
            // SHOULD-level findings on tusk, reported to the engine's owners (docs/conformance.md).
            "warn" => eprintln!("tusk warning: {} {}", check["id"], check["reason"]),
            other => panic!("{other}: {check:#}"),
        }
    }
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "{} passed, 0 failed, 2 skipped",
            report["summary"]["passed"]
        )),
        "{last}"
    );
    report
}

/// Runs the IETF draft checks against `url` at interop version `interop`: asserts exit 0 and
/// that every check passed, apart from those whose sentence is younger than `interop`
/// (skipped). Returns the JSON report.
async fn assert_conforms_ietf(url: &str, interop: u8) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let interop_arg = interop.to_string();
    let args = [
        url,
        "--ietf",
        "--interop",
        &interop_arg,
        "--strict",
        "--json",
        json.to_str().unwrap(),
    ];
    let out = conformance(&args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        report["protocol"],
        format!("draft-ietf-httpbis-resumable-upload interop {interop}")
    );
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 38, "{stdout}");
    for check in checks {
        match check["status"].as_str().unwrap() {
            "pass" => {}
            "skip" => assert!(
                check["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("the sentence arrived with interop version"),
                "{check:#}"
            ),
            other => panic!("{other}: {check:#}"),
        }
    }
    report
}

#[tokio::test]
async fn local_mode_passes_the_ietf_draft_checks() {
    let server = Server::start(&[]).await;
    let report = assert_conforms_ietf(&server.url, 8).await;
    assert_eq!(report["summary"]["passed"], 38, "{report:#}");
    // The older interop versions tusk speaks: checks of later sentences are skipped.
    for interop in [3, 6] {
        assert_conforms_ietf(&server.url, interop).await;
    }
}

#[tokio::test]
async fn distributed_mode_passes_the_ietf_draft_checks() {
    if !services_enabled("distributed_mode_passes_the_ietf_draft_checks") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    let report = assert_conforms_ietf(&cluster.nodes[0].url, 8).await;
    assert_eq!(report["summary"]["passed"], 38, "{report:#}");
}

#[tokio::test]
async fn local_mode_passes_with_every_advertised_extension_required() {
    let server = Server::start(&[]).await;
    let report = assert_conforms(&server.url).await;
    // The cut checks observed the acknowledgement and kept bytes (tusk stores as it receives).
    for id in ["robust-cut-fin-keeps-bytes", "robust-cut-rst-keeps-bytes"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap();
        assert_eq!(check["status"], "pass", "{check:#}");
    }
}

#[tokio::test]
async fn distributed_mode_passes_with_every_advertised_extension_required() {
    if !services_enabled("distributed_mode_passes_with_every_advertised_extension_required") {
        return;
    }
    let cluster = Cluster::start(2, &[]).await;
    assert_conforms(&cluster.nodes[0].url).await;
}

#[tokio::test]
async fn a_required_extension_tusk_lacks_fails_with_exit_1() {
    let server = Server::start(&[]).await;
    let out = conformance(&[
        &server.url,
        "--groups",
        "checksum-trailer",
        "--require",
        "checksum-trailer",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("0 passed, 2 failed, 0 skipped"),
        "{stdout}"
    );
}

#[tokio::test]
async fn bad_ietf_settings_and_a_public_target_are_refused() {
    let out = conformance(&["http://127.0.0.1:1/files/", "--ietf", "--interop", "9"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interop 9"));
    let out = conformance(&["http://127.0.0.1:1/files/", "--interop", "8"]).await;
    assert_eq!(out.status.code(), Some(2), "--interop needs --ietf");
    let out = conformance(&["http://127.0.0.1:1/files/", "--ietf"]).await;
    assert_eq!(out.status.code(), Some(2), "unreachable");
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer OPTIONS"));

    let out = conformance(&["http://1.1.1.1/files/"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}
