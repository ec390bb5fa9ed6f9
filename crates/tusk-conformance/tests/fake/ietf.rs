//! The fake's IETF draft side (interop 8) on the same uploads: requests with
//! `Upload-Draft-Interop-Version` and no `Tus-Resumable`. A new request on an upload ends an
//! append still in flight (the draft's recommended approach), so offsets HEAD reports are
//! accepted by the next append.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::{
    COLLECTION, Conn, Defect, MAX_SIZE, Req, Resp, Server, Upload, apply, id_of, read_body,
};

const INTEROP: &str = "8";
const INCONSISTENT_LENGTH: &str =
    "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";
const MISMATCHING_OFFSET: &str =
    "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";

/// Whether `req` speaks the draft.
pub(super) fn speaks_draft(req: &Req) -> bool {
    req.get("upload-draft-interop-version").is_some() && req.get("tus-resumable").is_none()
}

fn limits(server: &Server) -> String {
    if server.has(Defect::IetfLimitNotInteger) {
        "min-size=0, max-size=\"1 GiB\"".into()
    } else {
        format!("min-size=0, max-size={MAX_SIZE}")
    }
}

fn complete_value(complete: bool) -> &'static str {
    if complete { "?1" } else { "?0" }
}

fn completeness(req: &Req) -> Option<bool> {
    match req.get("upload-complete")? {
        "?1" => Some(true),
        "?0" => Some(false),
        _ => None,
    }
}

fn problem(status: u16, kind: &str, extra: &str) -> Resp {
    let mut resp = Resp::new(status)
        .h("Content-Type", "application/problem+json")
        .h("Upload-Complete", "?0");
    resp.body = format!("{{\"type\":\"{kind}\"{extra}}}").into_bytes();
    resp
}

fn inconsistent(server: &Server) -> Resp {
    if server.has(Defect::IetfNoLengthProblem) {
        Resp::new(400).h("Upload-Complete", "?0")
    } else {
        problem(400, INCONSISTENT_LENGTH, "")
    }
}

pub(super) async fn handle(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    if req.get("upload-draft-interop-version") != Some(INTEROP)
        && !server.has(Defect::Ietf104AnyVersion)
    {
        let _ = read_body(conn, req).await;
        return Resp::new(400).closing();
    }
    let is_collection = req.path == COLLECTION || req.path == COLLECTION.trim_end_matches('/');
    match req.method.as_str() {
        "OPTIONS" => {
            let _ = read_body(conn, req).await;
            let resp = Resp::new(204);
            if server.has(Defect::IetfOptionsNoLimit) {
                resp
            } else {
                resp.h("Upload-Limit", limits(server))
            }
        }
        "POST" if is_collection => create(server, conn, req).await,
        "HEAD" | "GET" => head(server, req).await,
        "PATCH" => append(server, conn, req).await,
        "DELETE" => delete(server, req).await,
        _ => {
            let _ = read_body(conn, req).await;
            Resp::new(405).closing()
        }
    }
}

/// Ends the append in flight on `id`, if any, and waits until it let go.
async fn take_over(server: &Server, id: &str) {
    if server.has(Defect::IetfStaleOffset) || server.has(Defect::NoLocking) {
        return;
    }
    for _ in 0..1000 {
        {
            let state = server.state.lock().await;
            match state.uploads.get(id) {
                Some(upload) if upload.locked => {
                    if let Some(stop) = &upload.stop {
                        stop.notify_one();
                    }
                }
                _ => return,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How a content transfer ended.
enum Received {
    All,
    Cut,
    Stopped,
}

/// Reads `declared` bytes of content into upload `id` from `start`, applying them as they
/// arrive, until done, cut, or stopped by a newer request; then unlocks the upload.
async fn receive(
    server: &Server,
    conn: &mut Conn,
    id: &str,
    start: u64,
    declared: u64,
    stop: Arc<Notify>,
    store: bool,
) -> Received {
    let mut received = 0u64;
    let end = loop {
        if received == declared {
            break Received::All;
        }
        let chunk = tokio::select! {
            biased;
            () = stop.notified() => break Received::Stopped,
            chunk = conn.take((declared - received) as usize) => chunk,
        };
        let Some(mut chunk) = chunk else {
            break Received::Cut;
        };
        if server.has(Defect::IetfAppendCorrupts) && received == 0 && start > 0 {
            chunk[0] ^= 1;
        }
        if store {
            apply(server, id, start + received, &chunk, false).await;
        }
        received += chunk.len() as u64;
    };
    let mut state = server.state.lock().await;
    if let Some(upload) = state.uploads.get_mut(id) {
        upload.locked = false;
        upload.stop = None;
        if matches!(end, Received::Cut) && server.has(Defect::DiscardIncomplete) {
            upload.offset = start;
            upload.data.truncate(start as usize);
        }
    }
    end
}

/// Marks `id` complete (or not, for a transfer that did not end well) after `end`.
/// Settles a request's body (`ignored`: the defect that drops a completing `?1`): whether the
/// upload is complete and its offset, or the 400 a cut body gets.
async fn conclude(
    server: &Server,
    id: &str,
    complete: bool,
    end: &Received,
    ignored: bool,
) -> Result<(bool, u64), Resp> {
    let complete = settle(server, id, complete, end).await && !ignored;
    let mut state = server.state.lock().await;
    if !complete && let Some(upload) = state.uploads.get_mut(id) {
        upload.complete = false;
    }
    if !matches!(end, Received::All) {
        return Err(Resp::new(400).closing());
    }
    Ok((complete, state.uploads.get(id).map_or(0, |u| u.offset)))
}

async fn settle(server: &Server, id: &str, complete: bool, end: &Received) -> bool {
    let mut state = server.state.lock().await;
    let Some(upload) = state.uploads.get_mut(id) else {
        return false;
    };
    let done = match end {
        Received::All => complete,
        Received::Cut | Received::Stopped => complete && server.has(Defect::IetfCutCompletes),
    };
    if done {
        upload.complete = true;
        upload.length = Some(upload.offset);
    }
    upload.complete
}

async fn send_104(conn: &mut Conn, headers: &[(&str, String)]) {
    let mut head = "HTTP/1.1 104 Upload Resumption Supported\r\n".to_owned();
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.stream.write_all(head.as_bytes()).await;
    let _ = conn.stream.flush().await;
}

async fn create(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    let Some(complete) = completeness(req) else {
        let _ = read_body(conn, req).await;
        return Resp::new(400).closing();
    };
    let declared: u64 = req
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let upload_length: Option<u64> = req.get("upload-length").and_then(|v| v.parse().ok());
    if complete
        && upload_length.is_some_and(|l| l != declared)
        && !server.has(Defect::IetfLengthsUnchecked)
    {
        let _ = read_body(conn, req).await;
        return inconsistent(server).closing();
    }
    let length = upload_length.or(complete.then_some(declared));
    if length.is_some_and(|l| l > MAX_SIZE) {
        let _ = read_body(conn, req).await;
        return Resp::new(413).h("Upload-Limit", limits(server)).closing();
    }
    let stop = Arc::new(Notify::new());
    let id = {
        let mut state = server.state.lock().await;
        state.next += 1;
        let id = format!("{:032x}", state.next.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let upload = Upload {
            length,
            locked: true,
            stop: Some(stop.clone()),
            ..Upload::default()
        };
        state.uploads.insert(id.clone(), upload);
        id
    };
    let location = format!("{COLLECTION}{id}");
    if !server.has(Defect::IetfNo104) {
        let mut headers = Vec::new();
        if server.has(Defect::Ietf104WrongLocation) {
            headers.push(("Location", format!("{COLLECTION}elsewhere")));
        } else {
            headers.push(("Location", location.clone()));
        }
        if !server.has(Defect::Ietf104NoVersion) {
            headers.push(("Upload-Draft-Interop-Version", INTEROP.to_owned()));
        }
        if !server.has(Defect::Ietf104NoLimit) {
            headers.push(("Upload-Limit", limits(server)));
        }
        send_104(conn, &headers).await;
    }
    let store = !server.has(Defect::IetfCreationDropsContent);
    let end = receive(server, conn, &id, 0, declared, stop, store).await;
    let (complete, offset) = match conclude(
        server,
        &id,
        complete,
        &end,
        server.has(Defect::IetfCreationCompleteIgnored),
    )
    .await
    {
        Ok(settled) => settled,
        Err(resp) => return resp,
    };
    let mut resp = Resp::new(if server.has(Defect::IetfCreate200) {
        200
    } else {
        201
    })
    .h("Upload-Offset", offset.to_string());
    if !server.has(Defect::IetfCreateNoLocation) {
        resp = resp.h("Location", location);
    }
    if !server.has(Defect::IetfCreateNoComplete) {
        resp = resp.h("Upload-Complete", complete_value(complete));
    }
    if !server.has(Defect::IetfCreateNoLimit) {
        resp = resp.h("Upload-Limit", limits(server));
    }
    resp
}

async fn head(server: &Server, req: &Req) -> Resp {
    let Some(id) = id_of(&req.path) else {
        return Resp::new(404);
    };
    take_over(server, id).await;
    let state = server.state.lock().await;
    let Some(upload) = state.uploads.get(id) else {
        return Resp::new(404);
    };
    if server.has(Defect::IetfHeadRedirect) {
        return Resp::new(302).h("Location", req.path.clone());
    }
    let mut resp = Resp::new(204);
    if !server.has(Defect::IetfHeadNoOffset) {
        resp = resp.h("Upload-Offset", upload.offset.to_string());
    }
    if !server.has(Defect::IetfHeadNoComplete) {
        resp = resp.h("Upload-Complete", complete_value(upload.complete));
    }
    if let Some(length) = upload.length
        && !server.has(Defect::IetfHeadNoLength)
    {
        resp = resp.h("Upload-Length", length.to_string());
    }
    if !server.has(Defect::IetfHeadNoLimit) {
        resp = resp.h("Upload-Limit", limits(server));
    }
    if !server.has(Defect::IetfHeadNoCacheControl) {
        resp = resp.h("Cache-Control", "no-store");
    }
    resp
}

async fn append(server: &Server, conn: &mut Conn, req: &mut Req) -> Resp {
    let Some(id) = id_of(&req.path).map(str::to_owned) else {
        let _ = read_body(conn, req).await;
        return Resp::new(404);
    };
    let offset: Option<u64> = req.get("upload-offset").and_then(|v| v.parse().ok());
    let (Some(offset), Some(complete), Some("application/partial-upload")) =
        (offset, completeness(req), req.get("content-type"))
    else {
        let _ = read_body(conn, req).await;
        return Resp::new(400).closing();
    };
    let declared: u64 = req
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    take_over(server, &id).await;
    let stop = Arc::new(Notify::new());
    let refusal = {
        let mut state = server.state.lock().await;
        match state.uploads.get_mut(&id) {
            None => Some(Resp::new(404)),
            Some(upload) if upload.locked && !server.has(Defect::NoLocking) => {
                Some(Resp::new(423).closing())
            }
            Some(upload) if upload.complete => Some(Resp::new(400).h("Upload-Complete", "?0")),
            Some(upload) if upload.offset != offset && !server.has(Defect::NoLocking) => {
                let resp = if server.has(Defect::IetfMismatchNoProblem) {
                    Resp::new(409).h("Upload-Complete", "?0")
                } else {
                    problem(
                        409,
                        MISMATCHING_OFFSET,
                        &format!(
                            ",\"expected-offset\":{},\"provided-offset\":{offset}",
                            upload.offset
                        ),
                    )
                };
                Some(if server.has(Defect::IetfMismatchNoOffset) {
                    resp
                } else {
                    resp.h("Upload-Offset", upload.offset.to_string())
                })
            }
            Some(upload)
                if complete
                    && upload.length.is_some_and(|l| l != offset + declared)
                    && !server.has(Defect::IetfLengthsUnchecked) =>
            {
                Some(inconsistent(server))
            }
            Some(upload)
                if upload.length.is_some_and(|l| offset + declared > l)
                    && !server.has(Defect::IetfAcceptPastLength) =>
            {
                Some(Resp::new(413).h("Upload-Limit", limits(server)).closing())
            }
            Some(upload) => {
                upload.locked = true;
                upload.stop = Some(stop.clone());
                None
            }
        }
    };
    if let Some(resp) = refusal {
        let _ = read_body(conn, req).await;
        return resp;
    }
    if server.has(Defect::Ietf104OnAppendWithLocation) {
        let headers = [
            ("Location", req.path.clone()),
            ("Upload-Offset", offset.to_string()),
        ];
        send_104(conn, &headers).await;
    }
    let store = !server.has(Defect::IetfAppendNotApplied);
    let end = receive(server, conn, &id, offset, declared, stop, store).await;
    let (complete, offset) = match conclude(
        server,
        &id,
        complete,
        &end,
        server.has(Defect::IetfAppendCompleteIgnored),
    )
    .await
    {
        Ok(settled) => settled,
        Err(resp) => return resp,
    };
    let resp = Resp::new(204).h("Upload-Offset", offset.to_string());
    if server.has(Defect::IetfAppendNoComplete) && !complete {
        resp
    } else {
        resp.h("Upload-Complete", complete_value(complete))
    }
}

async fn delete(server: &Server, req: &Req) -> Resp {
    let Some(id) = id_of(&req.path) else {
        return Resp::new(404);
    };
    take_over(server, id).await;
    let mut state = server.state.lock().await;
    if !state.uploads.contains_key(id) {
        return Resp::new(404);
    }
    if !server.has(Defect::IetfDeleteKeeps) {
        state.uploads.remove(id);
    }
    if server.has(Defect::IetfDeleteRedirect) {
        return Resp::new(301).h("Location", req.path.clone());
    }
    Resp::new(204)
}
