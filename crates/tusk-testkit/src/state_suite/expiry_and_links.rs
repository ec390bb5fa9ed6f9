//! Expiry, fenced and indexed in order for the reaper, and the links from a partial upload to the
//! final uploads made from it.

use tusk_core::{ErrorKind, Metadata, StateStore, UploadId};

use super::{create, new_state};

pub(super) async fn expiry_is_fenced_indexed_and_ordered(state: &dyn StateStore) {
    let check = "expiry_is_fenced_indexed_and_ordered";
    // Expiry times far in the past, so no other upload of this run can be due before them.
    let mut with_expiry = new_state(Some(10), Metadata::default());
    with_expiry.expires_at = Some(100);
    state.create(&with_expiry).await.expect("create");
    assert_eq!(
        state.get(&with_expiry.id).await.expect("get").expires_at,
        Some(100),
        "{check}: created with an expiry"
    );
    let b = create(state, Some(10)).await;
    let c = create(state, Some(10)).await;
    state.load(&b.id, 5).await.expect("load");
    state.set_expiry(&b.id, 5, Some(50)).await.expect("set b");
    state.set_expiry(&c.id, 0, Some(200)).await.expect("set c");
    let err = state
        .set_expiry(&b.id, 4, Some(1))
        .await
        .expect_err("older fence");
    assert_eq!(err.kind(), ErrorKind::LockLost, "{check}: fenced");
    assert_eq!(state.get(&b.id).await.expect("get").expires_at, Some(50));

    let due = state.expired(150, 10).await.expect("expired");
    assert_eq!(
        due,
        vec![b.id.clone(), with_expiry.id.clone()],
        "{check}: due, oldest first"
    );
    let first = state.expired(1_000, 1).await.expect("expired");
    assert_eq!(first, vec![b.id.clone()], "{check}: limit");
    assert!(
        state.expired(50, 10).await.expect("expired").is_empty(),
        "{check}: before is exclusive"
    );

    state
        .set_expiry(&with_expiry.id, 0, None)
        .await
        .expect("clear");
    assert_eq!(
        state.get(&with_expiry.id).await.expect("get").expires_at,
        None
    );
    state.delete(&b.id, 5).await.expect("delete");
    let due = state.expired(250, 10).await.expect("expired");
    assert_eq!(
        due,
        vec![c.id.clone()],
        "{check}: cleared and deleted uploads leave the index"
    );
    state.delete(&c.id, 0).await.expect("delete");
    state.delete(&with_expiry.id, 0).await.expect("delete");
}

pub(super) async fn final_links_are_a_set(state: &dyn StateStore) {
    let check = "final_links_are_a_set";
    let partial = create(state, Some(3)).await;
    let (a, b) = (UploadId::generate(), UploadId::generate());
    assert!(
        state
            .finals_of(&partial.id)
            .await
            .expect("finals")
            .is_empty(),
        "{check}: none yet"
    );
    state.link_final(&partial.id, &a).await.expect("link a");
    state.link_final(&partial.id, &b).await.expect("link b");
    state
        .link_final(&partial.id, &a)
        .await
        .expect("link a again");
    let mut finals = state.finals_of(&partial.id).await.expect("finals");
    finals.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(finals, expected, "{check}: each final once");
    state.delete(&partial.id, 0).await.expect("delete");
    assert!(
        state
            .finals_of(&partial.id)
            .await
            .expect("finals")
            .is_empty(),
        "{check}: deleted with the upload"
    );
}
