#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failure is a failed test
//! Every check against a fake tus server: all pass when it has no defect, and each defect makes
//! the check(s) enforcing the broken sentence fail, so no check can pass vacuously.

mod fake;

use std::collections::BTreeSet;
use std::time::Duration;

use fake::{Defect, Fake};
use tusk_conformance::{Config, Protocol, Report, Status};

/// A strict run of `only` (all checks of the suite when empty): the IETF suite when the ids
/// are IETF checks, else tus with every extension required.
fn config(url: &str, only: &[&str]) -> Config {
    let mut config = Config::new(url);
    config.only = only.iter().map(|s| (*s).to_owned()).collect();
    config.timeout = Duration::from_secs(3);
    config.big = 256 * 1024;
    config.strict = true;
    if !only.is_empty() && only.iter().all(|id| id.starts_with("ietf-")) {
        config.protocol = Protocol::Ietf;
    } else {
        // Everything the fake advertises, plus `cors` and `get`, which it offers too.
        config.require = fake::EXTENSIONS
            .iter()
            .chain(&["cors", "get"])
            .map(|s| (*s).to_owned())
            .collect();
    }
    config
}

async fn run(defect: Option<Defect>, only: &[&str]) -> Report {
    let fake = Fake::start(defect).await;
    tusk_conformance::run(config(&fake.url, only))
        .await
        .expect("run starts")
}

fn describe(report: &Report) -> String {
    report
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| format!("{} {}: {}", c.status, c.id, c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

fn suite(protocol: Protocol) -> usize {
    tusk_conformance::checks()
        .iter()
        .filter(|c| c.protocol == protocol)
        .count()
}

#[tokio::test]
async fn every_check_passes_against_the_correct_fake() {
    let report = run(None, &[]).await;
    assert_eq!(report.checks.len(), suite(Protocol::Tus1));
    assert!(
        report.checks.iter().all(|c| c.status == Status::Pass),
        "{}",
        describe(&report)
    );
    assert!(report.passed());
    assert_eq!(
        report.summary_line(),
        format!("{} passed, 0 failed, 0 skipped", report.checks.len())
    );
}

#[tokio::test]
async fn every_ietf_check_passes_against_the_correct_fake() {
    let fake = Fake::start(None).await;
    let mut config = config(&fake.url, &[]);
    config.protocol = Protocol::Ietf;
    config.require.clear();
    let report = tusk_conformance::run(config).await.unwrap();
    assert_eq!(report.checks.len(), suite(Protocol::Ietf));
    assert!(
        report.checks.iter().all(|c| c.status == Status::Pass),
        "{}",
        describe(&report)
    );
    assert_eq!(
        report.protocol,
        "draft-ietf-httpbis-resumable-upload interop 8"
    );
}

#[tokio::test]
async fn ietf_settings_are_validated() {
    let mut config = Config::new("http://127.0.0.1:9/files/");
    config.protocol = Protocol::Ietf;
    config.interop = 9;
    let err = tusk_conformance::run(config.clone()).await.unwrap_err();
    assert!(err.to_string().contains("--interop 9"), "{err}");
    config.interop = 8;
    config.require = vec!["creation".into()];
    let err = tusk_conformance::run(config.clone()).await.unwrap_err();
    assert!(err.to_string().contains("--require"), "{err}");
    config.require.clear();
    config.groups = vec!["core".into()];
    let err = tusk_conformance::run(config).await.unwrap_err();
    assert!(err.to_string().contains("ietf-limits"), "{err}");
}

/// Each defect and the checks that must fail because of it.
const TABLE: &[(Defect, &[&str])] = &[
    (Defect::NoTusVersion, &["core-options-version"]),
    (
        Defect::OptionsChecksVersion,
        &["core-options-ignores-tus-resumable"],
    ),
    (Defect::BadExtensionList, &["core-extension-list"]),
    (Defect::BadMaxSize, &["core-max-size-format"]),
    (
        Defect::NoTusResumableOnErrors,
        &["core-tus-resumable-in-responses"],
    ),
    (
        Defect::VersionNoTusVersionHeader,
        &["core-unsupported-version-412"],
    ),
    (
        Defect::VersionProcessedAnyway,
        &["core-unsupported-version-not-processed"],
    ),
    (Defect::HeadNoOffsetWhenZero, &["core-head-offset"]),
    (Defect::HeadNoLength, &["core-head-length"]),
    (Defect::HeadNoCacheControl, &["core-head-no-store"]),
    (Defect::UnknownHead500, &["core-head-unknown"]),
    (Defect::Patch200, &["core-patch-204"]),
    (Defect::PatchCorrupts, &["core-patch-content"]),
    (Defect::IgnoreOffset, &["core-patch-offset-mismatch-409"]),
    (
        Defect::AcceptAnyContentType,
        &["core-patch-content-type-415"],
    ),
    (Defect::UnknownPatch500, &["core-patch-unknown-404"]),
    (
        Defect::NoMethodOverride,
        &["core-method-override", "termination-method-override"],
    ),
    (Defect::Create200, &["creation-201-location"]),
    (Defect::HeadNoMetadata, &["creation-metadata-in-head"]),
    (Defect::EmptyUploadRefused, &["creation-empty-upload"]),
    (Defect::MaxSizeNotEnforced, &["creation-max-size-413"]),
    (Defect::NoLengthAccepted, &["creation-length-required"]),
    (
        Defect::CreationBodyNoOffset,
        &["creation-with-upload-offset"],
    ),
    (
        Defect::CreationBodyCorrupt,
        &["creation-with-upload-content"],
    ),
    (
        Defect::WithUploadWithoutCreation,
        &["creation-with-upload-needs-creation"],
    ),
    (Defect::DeferHeadNoHeader, &["defer-length-head"]),
    (
        Defect::DeferIgnoresPatchLength,
        &["defer-length-set-by-patch"],
    ),
    (Defect::DeferLengthChangeable, &["defer-length-immutable"]),
    (Defect::DeferAnyValue, &["defer-length-value-400"]),
    (Defect::Delete200, &["termination-delete-204"]),
    (Defect::DeleteKeeps, &["termination-then-404"]),
    (Defect::NoChecksumAlgorithmHeader, &["checksum-algorithms"]),
    (Defect::ChecksumAlwaysMismatch, &["checksum-match-204"]),
    (Defect::ChecksumNotVerified, &["checksum-mismatch-460"]),
    (
        Defect::UnknownAlgorithmAccepted,
        &["checksum-unsupported-400"],
    ),
    (
        Defect::TrailerAlwaysMismatch,
        &["checksum-trailer-match-204"],
    ),
    (
        Defect::TrailerNotVerified,
        &["checksum-trailer-mismatch-460"],
    ),
    (Defect::ExpiresBadFormat, &["expiration-date-format"]),
    (Defect::ExpiresNotOnPatch, &["expiration-in-patch-response"]),
    (Defect::PartialHeadNoConcat, &["concat-partial-head"]),
    (Defect::FinalHeadNoConcat, &["concat-final-head"]),
    (Defect::ConcatWrongOrder, &["concat-final-content"]),
    (Defect::FinalPatchAllowed, &["concat-final-patch-403"]),
    (
        Defect::FinalInheritsMetadata,
        &["concat-metadata-not-inherited"],
    ),
    (Defect::UnfinishedFinalRefused, &["concat-unfinished-final"]),
    (
        Defect::UnfinishedFinalHasOffset,
        &["concat-unfinished-no-offset"],
    ),
    (Defect::CorsNoPatchMethod, &["cors-preflight"]),
    (Defect::CorsNoExpose, &["cors-expose-headers"]),
    (Defect::GetCorrupt, &["get-content"]),
    (Defect::RangeWrongContentRange, &["get-range"]),
    (Defect::LenientLength, &["robust-upload-length-invalid"]),
    (Defect::HugeLength500, &["robust-upload-length-huge"]),
    (Defect::LenientOffset, &["robust-upload-offset-invalid"]),
    (Defect::DuplicatesFirstWins, &["robust-duplicate-headers"]),
    (Defect::MalformedMetadata500, &["robust-metadata-malformed"]),
    (Defect::LargeMetadata500, &["robust-metadata-large"]),
    (
        Defect::MetadataAsHeaders,
        &["robust-metadata-header-injection"],
    ),
    (Defect::TraversalServed, &["robust-path-traversal"]),
    (Defect::AcceptPastLength, &["robust-body-past-length"]),
    (
        Defect::ReadPastContentLength,
        &["robust-bytes-past-content-length"],
    ),
    (
        Defect::DiscardIncomplete,
        &["robust-cut-fin-keeps-bytes", "robust-cut-rst-keeps-bytes"],
    ),
    (
        Defect::CorruptIncomplete,
        &["robust-cut-fin-prefix", "robust-cut-rst-prefix"],
    ),
    (
        Defect::NoLocking,
        &["robust-race-same-offset", "robust-patch-while-streaming"],
    ),
    (Defect::LockWaitsForever, &["robust-patch-while-streaming"]),
    // The IETF draft.
    (Defect::IetfOptionsNoLimit, &["ietf-options-upload-limit"]),
    (Defect::IetfLimitNotInteger, &["ietf-limits-valid"]),
    (Defect::IetfCreateNoLocation, &["ietf-creation-location"]),
    (Defect::IetfCreateNoLimit, &["ietf-creation-upload-limit"]),
    (Defect::IetfCreate200, &["ietf-creation-201"]),
    (
        Defect::IetfCreateNoComplete,
        &["ietf-creation-upload-complete"],
    ),
    (
        Defect::IetfCreationCompleteIgnored,
        &["ietf-creation-complete"],
    ),
    (Defect::IetfCreationDropsContent, &["ietf-creation-partial"]),
    (
        Defect::IetfLengthsUnchecked,
        &["ietf-length-mismatch", "ietf-length-mismatch-problem"],
    ),
    (
        Defect::IetfNoLengthProblem,
        &["ietf-length-mismatch-problem"],
    ),
    (Defect::IetfNo104, &["ietf-interim-announced"]),
    (Defect::Ietf104WrongLocation, &["ietf-interim-location"]),
    (Defect::Ietf104NoVersion, &["ietf-interim-interop-version"]),
    (Defect::Ietf104NoLimit, &["ietf-interim-upload-limit"]),
    (
        Defect::Ietf104AnyVersion,
        &["ietf-interim-version-mismatch"],
    ),
    (
        Defect::Ietf104OnAppendWithLocation,
        &["ietf-interim-append-no-location"],
    ),
    (Defect::IetfHeadNoOffset, &["ietf-offset-upload-offset"]),
    (Defect::IetfHeadNoComplete, &["ietf-offset-upload-complete"]),
    (Defect::IetfHeadNoLength, &["ietf-offset-upload-length"]),
    (Defect::IetfHeadNoLimit, &["ietf-offset-upload-limit"]),
    (Defect::IetfHeadNoCacheControl, &["ietf-offset-no-store"]),
    (Defect::IetfHeadRedirect, &["ietf-offset-no-redirect"]),
    (Defect::IetfAppendNotApplied, &["ietf-append-appends"]),
    (
        Defect::IetfAppendNoComplete,
        &["ietf-append-upload-complete"],
    ),
    (
        Defect::IetfMismatchNoOffset,
        &["ietf-append-offset-mismatch"],
    ),
    (
        Defect::IetfMismatchNoProblem,
        &["ietf-append-offset-mismatch-problem"],
    ),
    (
        Defect::IetfAppendCompleteIgnored,
        &["ietf-append-completes"],
    ),
    (Defect::IetfAppendCorrupts, &["ietf-append-content"]),
    (Defect::IetfDeleteKeeps, &["ietf-cancel-deactivates"]),
    (Defect::IetfDeleteRedirect, &["ietf-cancel-no-redirect"]),
    (
        Defect::IetfAcceptPastLength,
        &["ietf-robust-offset-within-length"],
    ),
    (
        Defect::DiscardIncomplete,
        &[
            "ietf-robust-cut-fin-keeps-bytes",
            "ietf-robust-cut-rst-keeps-bytes",
        ],
    ),
    (
        Defect::IetfCutCompletes,
        &[
            "ietf-robust-cut-fin-incomplete",
            "ietf-robust-cut-rst-incomplete",
            "ietf-robust-optimistic-cut",
        ],
    ),
    (Defect::IetfStaleOffset, &["ietf-robust-offset-accepted"]),
    (Defect::NoLocking, &["ietf-robust-race"]),
];

#[tokio::test]
async fn each_defect_fails_the_checks_that_enforce_what_it_breaks() {
    let mut failures = Vec::new();
    for (defect, ids) in TABLE {
        let report = run(Some(*defect), ids).await;
        for id in *ids {
            let check = report
                .check(id)
                .unwrap_or_else(|| panic!("{id} did not run"));
            eprintln!("{defect:?}: {id} {}: {}", check.status, check.reason);
            if check.status != Status::Fail {
                failures.push(format!(
                    "{defect:?}: {id} is {} ({}), expected FAIL",
                    check.status, check.reason
                ));
            }
        }
        if report.passed() {
            failures.push(format!("{defect:?}: the run passed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_check_is_broken_by_some_defect() {
    let covered: BTreeSet<&str> = TABLE
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    let missing: Vec<&str> = tusk_conformance::checks()
        .iter()
        .map(|c| c.id)
        .filter(|id| !covered.contains(id))
        .collect();
    assert!(missing.is_empty(), "checks no defect breaks: {missing:?}");
}

#[tokio::test]
async fn an_unadvertised_extension_is_skipped_unless_required() {
    let fake = Fake::start(Some(Defect::HideTermination)).await;
    let mut config = config(&fake.url, &[]);
    config.groups = vec!["termination".into()];
    config.require.clear();
    let report = tusk_conformance::run(config.clone()).await.unwrap();
    assert!(
        report.checks.iter().all(|c| c.status == Status::Skip),
        "{}",
        describe(&report)
    );
    assert!(report.passed());

    config.require = vec!["termination".into()];
    let report = tusk_conformance::run(config).await.unwrap();
    assert!(
        report.checks.iter().all(|c| c.status == Status::Fail),
        "{}",
        describe(&report)
    );
    assert!(!report.passed());
}

#[tokio::test]
async fn should_failures_are_warnings_unless_strict() {
    let fake = Fake::start(Some(Defect::AcceptAnyContentType)).await;
    let mut config = config(&fake.url, &["core-patch-content-type-415"]);
    config.strict = false;
    let report = tusk_conformance::run(config).await.unwrap();
    assert_eq!(report.checks[0].status, Status::Warn);
    assert!(report.passed());
    assert_eq!(
        report.summary_line(),
        "0 passed, 0 failed, 0 skipped (1 warnings: SHOULD not met)"
    );
    let json: serde_json::Value = serde_json::from_str(&report.json().unwrap()).unwrap();
    assert_eq!(json["summary"]["warnings"], 1);
    assert_eq!(json["checks"][0]["level"], "SHOULD");
    assert_eq!(json["checks"][0]["status"], "warn");
    assert!(
        json["checks"][0]["exchanges"][0]["request"]
            .as_str()
            .unwrap()
            .starts_with("POST ")
    );
}

#[tokio::test]
async fn public_targets_are_refused_without_allow_remote() {
    let err = tusk_conformance::run(Config::new("http://1.1.1.1/files/"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    let err = tusk_conformance::run(Config::new("https://127.0.0.1/files/"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("https is not supported"), "{err}");
}
