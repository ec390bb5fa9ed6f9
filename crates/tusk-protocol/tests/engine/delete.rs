use crate::common::{Harness, Req, assert_tus};
use tusk_core::UploadId;

#[tokio::test]
async fn termination() {
    let h = Harness::new().await;
    let id = h.create(Some(10)).await;
    h.send(Req::patch(&id, 0).body(b"abc")).await;
    let cases = [
        (Req::delete(&id), 204),
        (Req::delete(&id), 404),
        (Req::head(&id), 404),
        (Req::patch(&id, 3).body(b"d"), 404),
        (Req::delete(&UploadId::generate().to_string()), 404),
        (Req::delete("../../x"), 404),
    ];
    for (i, (req, status)) in cases.into_iter().enumerate() {
        let resp = h.send(req).await;
        assert_eq!(resp.status, status, "step {i}: {resp:?}");
        assert_tus(&resp);
    }
    assert!(h.stored(&id).await.is_none());
}
