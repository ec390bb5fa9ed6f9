//! The conformance suite every [`Locker`] must pass.

use std::time::Duration;

use tusk_core::{ErrorKind, Locker, UploadId};

/// Generous bound for waits that should end at once: a condition, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(10);

/// Run every check. Panics on the first failure, naming it.
pub async fn run(locker: &dyn Locker) {
    holder_is_asked_to_release_and_newcomer_gets_the_lock(locker).await;
    holder_that_ignores_release_yields_locked(locker).await;
    fences_increase(locker).await;
    different_uploads_do_not_contend(locker).await;
}

async fn holder_is_asked_to_release_and_newcomer_gets_the_lock(locker: &dyn Locker) {
    let id = UploadId::generate();
    let first = locker.lock(&id, PATIENCE).await.expect("first lock");
    assert!(!first.release_requested().is_cancelled());
    let release = first.release_requested().clone();
    // Bounded: a locker that never asks the holder makes the newcomer fail, not the suite hang.
    let holder = async move {
        let asked = tokio::time::timeout(PATIENCE, release.cancelled()).await;
        drop(first);
        asked.is_ok()
    };
    let (second, asked) = tokio::join!(locker.lock(&id, PATIENCE), holder);
    assert!(asked, "the holder was never asked to release");
    let second = second.expect("second lock after release");
    assert!(!second.release_requested().is_cancelled());
}

async fn holder_that_ignores_release_yields_locked(locker: &dyn Locker) {
    let id = UploadId::generate();
    let first = locker.lock(&id, PATIENCE).await.expect("first lock");
    let err = locker
        .lock(&id, Duration::from_millis(200))
        .await
        .expect_err("lock while held");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(first.release_requested().is_cancelled());
    drop(first);
    locker
        .lock(&id, PATIENCE)
        .await
        .expect("lock after holder left");
}

async fn fences_increase(locker: &dyn Locker) {
    let id = UploadId::generate();
    let a = locker.lock(&id, PATIENCE).await.expect("lock").fence();
    let b = locker.lock(&id, PATIENCE).await.expect("lock").fence();
    assert!(b > a, "fence {b} not above {a}");
}

async fn different_uploads_do_not_contend(locker: &dyn Locker) {
    let a = locker
        .lock(&UploadId::generate(), PATIENCE)
        .await
        .expect("a");
    let b = locker
        .lock(&UploadId::generate(), PATIENCE)
        .await
        .expect("b");
    assert!(!a.release_requested().is_cancelled());
    assert!(!b.release_requested().is_cancelled());
}
