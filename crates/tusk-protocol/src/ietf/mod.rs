//! The IETF draft "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload) on the
//! same routes as tus 1.0: a request that carries `Upload-Draft-Interop-Version` with a version
//! tusk speaks is a draft request and needs no `Tus-Resumable`. The uploads are the same
//! uploads, with the same stores, locks, hooks, expiry and guarantees; only the headers differ.
//! What differs between interop versions lives in [`interop`].

mod interop;

pub use interop::{Draft, INTEROP_HEADER, INTEROP_VERSIONS, PARTIAL_UPLOAD};

use tusk_core::{Metadata, UploadId, UploadInfo};

use crate::body::BodyEnd;
use crate::headers::optional_u64;
use crate::message::{Method, Target, TusRequest, TusResponse};
use crate::{Engine, TusError};

/// The problem type of a 409 (draft: "Mismatching Offset").
const MISMATCHING_OFFSET: &str =
    "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";
/// The problem type of lengths that disagree (draft: "Inconsistent Length").
const INCONSISTENT_LENGTH: &str =
    "https://iana.org/assignments/http-problem-types#inconsistent-upload-length";

impl Engine {
    /// Answer a draft request; failures get the draft's headers and problem documents.
    pub(crate) async fn handle_draft(&self, draft: Draft, req: TusRequest) -> TusResponse {
        tusk_metrics::metrics()
            .ietf_requests
            .with_label_values(&[&draft.version().to_string()])
            .inc();
        match self.dispatch_draft(draft, req).await {
            Ok(resp) => resp,
            Err(err) => {
                let resp = draft_error(draft, err);
                // A client told of a size limit retries within it (draft, "Limits").
                match draft.limits(self.config().max_size, None) {
                    Some(limits) if resp.status == 413 => resp.header("Upload-Limit", limits),
                    _ => resp,
                }
            }
        }
    }

    async fn dispatch_draft(&self, draft: Draft, req: TusRequest) -> Result<TusResponse, TusError> {
        let id = match &req.target {
            Target::Upload(raw) => Some(crate::engine::parse_id(raw)),
            Target::Collection => None,
        };
        if let Some(Ok(id)) = &id {
            tracing::Span::current().record("upload_id", tracing::field::display(id));
        }
        let creation = match &req.method {
            Method::Post | Method::Patch => true,
            Method::Other(name) => name == "PUT",
            _ => false,
        };
        let terminates = self.termination().is_some();
        match (&req.method, id) {
            (Method::Options, _) => Ok(self.draft_options(draft)),
            (_, None) if creation => self.draft_create(draft, req).await,
            (Method::Head | Method::Get, Some(id)) => self.draft_offset(draft, &id?).await,
            (Method::Patch, Some(id)) => self.draft_append(draft, &id?, req).await,
            (Method::Delete, Some(id)) if terminates => self.delete(&id?).await,
            (_, None) => Err(TusError::MethodNotAllowed {
                allow: "OPTIONS, POST, PUT, PATCH",
            }),
            (_, Some(_)) => Err(TusError::MethodNotAllowed {
                allow: self.upload_methods(),
            }),
        }
    }

    /// OPTIONS: the tus discovery headers plus the draft's `Upload-Limit`.
    fn draft_options(&self, draft: Draft) -> TusResponse {
        let resp = self.options();
        match draft.limits(self.config().max_size, None) {
            Some(limits) => resp.header("Upload-Limit", limits),
            None => resp,
        }
    }

    /// `Upload-Limit` for `info` (its remaining lifetime when it expires).
    fn draft_limits(&self, draft: Draft, info: &UploadInfo) -> Option<String> {
        let left = info
            .expires_at
            .filter(|_| !info.is_complete())
            .map(|at| at.saturating_sub(self.now_secs()));
        draft.limits(self.config().max_size, left)
    }

    /// Upload creation: any request with content and a completeness header, to the collection.
    /// The upload's URL goes out in a 104 interim response before the content is read, so a
    /// client cut off mid-body can resume.
    async fn draft_create(
        &self,
        draft: Draft,
        mut req: TusRequest,
    ) -> Result<TusResponse, TusError> {
        let headers = &req.headers;
        let complete = draft.complete(headers).ok_or(TusError::InvalidHeader {
            header: draft.complete_name(),
            reason: "is required on draft requests and must be ?0 or ?1".into(),
        })?;
        let content_length = optional_u64(headers, "Content-Length")?;
        let length = agreed_length(
            None,
            optional_u64(headers, "Upload-Length")?,
            complete.then_some(content_length).flatten(),
        )?;
        let max = self.config().max_size;
        if let Some(length) = length
            && length > max
        {
            return Err(TusError::MaxSizeExceeded { length, max });
        }
        if content_length.is_some_and(|len| len > length.unwrap_or(max)) {
            return Err(TusError::BodyTooLarge);
        }
        if length.is_none() && self.length_declaration().is_none() {
            return Err(TusError::DeferUnsupported);
        }
        let metadata = self.draft_metadata(headers)?;
        let checksum = content_digest(headers)?;

        let crate::post::PreCreated {
            id,
            metadata,
            placement,
            mut changes,
        } = self
            .pre_create(UploadId::generate(), metadata, length, None)
            .await?;
        // Locked before it exists (see `post`): a HEAD after the 104 waits for the content's
        // commit.
        let content_guard = if length != Some(0) && content_length != Some(0) {
            Some(self.lock(&id).await?)
        } else {
            None
        };
        let mut info = self
            .create_upload(id.clone(), length, metadata, None, placement)
            .await?;
        let location = format!("{}{id}", req.location_base);
        let limits = self.draft_limits(draft, &info);
        if let Some(interim) = &req.interim {
            let mut interim_headers = vec![
                ("Location", location.clone()),
                (INTEROP_HEADER, draft.version().to_string()),
            ];
            if let Some(limits) = &limits {
                interim_headers.push(("Upload-Limit", limits.clone()));
            }
            if !interim.send(104, &interim_headers) {
                tracing::debug!(upload_id = %id, "this connection cannot carry a 104 interim response");
            }
        }
        if info.is_complete() {
            // Empty and complete: stored complete at creation.
            changes.merge(self.finished_logged(&info).await);
        } else if let Some(guard) = content_guard {
            let received = self
                .receive_to_end(info, req.body.take(), content_length, checksum, &guard)
                .await;
            info = match received {
                Ok((received, end)) => {
                    let received = self
                        .complete_if_ended(received, complete, end, guard.fence())
                        .await?;
                    if received.is_complete() {
                        changes.merge(self.finished_logged(&received).await);
                    }
                    self.refresh_expiry(received, guard.fence()).await
                }
                Err(err @ (TusError::BodyTooLarge | TusError::ChecksumMismatch)) => {
                    return Err(err);
                }
                Err(err @ TusError::HookRejected { .. }) => return Err(err),
                // The upload exists: the client learns where and how much is stored, and
                // resumes instead of starting over.
                Err(err) => {
                    tracing::warn!(upload_id = %id, error = %err, "first content not stored");
                    self.store().info(&id).await?
                }
            };
        }
        tracing::Span::current().record("new_offset", info.offset);
        let (name, value) = draft.complete_header(info.is_complete());
        let mut resp = TusResponse::status(201)
            .header("Location", location)
            .header(name, value)
            .header("Upload-Offset", info.offset.to_string());
        if let Some(limits) = self.draft_limits(draft, &info) {
            resp = resp.header("Upload-Limit", limits);
        }
        Ok(changes.apply(resp))
    }

    /// The metadata of a draft upload: tus's `Upload-Metadata` when the client sends it
    /// (tus-js-client does in draft mode), else the representation's own headers.
    fn draft_metadata(&self, headers: &crate::message::Headers) -> Result<Metadata, TusError> {
        match self.upload_metadata(headers)? {
            Some(metadata) => Ok(metadata),
            None => representation_metadata(headers),
        }
    }

    /// Offset retrieval (HEAD, or GET with the interop header). Holds the lock, so an in-flight
    /// append is asked to commit first and the offset is current.
    async fn draft_offset(&self, draft: Draft, id: &UploadId) -> Result<TusResponse, TusError> {
        let info = self.current(id).await?;
        Ok(self.draft_state(draft, TusResponse::status(204), &info))
    }

    /// The headers that describe an upload's state to a draft client.
    fn draft_state(&self, draft: Draft, resp: TusResponse, info: &UploadInfo) -> TusResponse {
        let (name, value) = draft.complete_header(info.is_complete());
        let mut resp = resp
            .header("Upload-Offset", info.offset.to_string())
            .header(name, value)
            .header("Cache-Control", "no-store");
        if let Some(length) = info.length {
            resp = resp.header("Upload-Length", length.to_string());
        }
        if let Some(limits) = self.draft_limits(draft, info) {
            resp = resp.header("Upload-Limit", limits);
        }
        resp
    }

    /// Upload append: PATCH at `Upload-Offset`; `Upload-Complete: ?1` ends the upload with
    /// this content.
    async fn draft_append(
        &self,
        draft: Draft,
        id: &UploadId,
        mut req: TusRequest,
    ) -> Result<TusResponse, TusError> {
        let headers = &req.headers;
        if let Some(expected) = draft.append_media_type()
            && !crate::headers::is_media_type(headers, expected)
        {
            return Err(TusError::UnsupportedMediaType { expected });
        }
        let offset = optional_u64(headers, "Upload-Offset")?.ok_or(TusError::MissingOffset)?;
        let complete = draft.complete(headers).ok_or(TusError::InvalidHeader {
            header: draft.complete_name(),
            reason: "is required on draft requests and must be ?0 or ?1".into(),
        })?;
        let upload_length = optional_u64(headers, "Upload-Length")?;
        let content_length = optional_u64(headers, "Content-Length")?;
        let checksum = content_digest(headers)?;
        tracing::Span::current().record("offset", offset);

        let (guard, mut info) = self.lock_for_append(id, offset).await?;
        let implied = match (complete, content_length) {
            (true, Some(len)) => Some(offset.saturating_add(len)),
            _ => None,
        };
        if let Some(length) = agreed_length(info.length, upload_length, implied)?
            && info.length.is_none()
        {
            info = self
                .declare_length_for_body(info, length, content_length, guard.fence())
                .await?;
        }
        let was_complete = info.is_complete();
        let (info, end) = self
            .receive_to_end(info, req.body.take(), content_length, checksum, &guard)
            .await?;
        let info = self
            .complete_if_ended(info, complete, end, guard.fence())
            .await?;
        let finish_hooks = if !was_complete && info.is_complete() {
            self.finished(&info).await
        } else {
            Ok(Default::default())
        };
        let info = self.refresh_expiry(info, guard.fence()).await;
        tracing::Span::current().record("new_offset", info.offset);
        drop(guard);
        self.complete_finals_of(&info).await;
        let changes = finish_hooks?;
        let (name, value) = draft.complete_header(info.is_complete());
        let resp = TusResponse::status(204)
            .header(name, value)
            .header("Upload-Offset", info.offset.to_string());
        Ok(changes.apply(resp))
    }

    /// A request that said it completes the upload, whose content arrived whole: an upload
    /// without a length gets the one its content ended at. A whole content that ends before a
    /// known length contradicts it (the bytes stay; the client learns the offset).
    async fn complete_if_ended(
        &self,
        info: UploadInfo,
        complete: bool,
        end: Option<BodyEnd>,
        fence: u64,
    ) -> Result<UploadInfo, TusError> {
        let whole = matches!(end, None | Some(BodyEnd::Complete));
        if !complete || !whole || info.is_complete() {
            return Ok(info);
        }
        match info.length {
            None => {
                let offset = info.offset;
                self.declare_length(info, offset, fence).await
            }
            Some(length) => Err(TusError::InconsistentLength(format!(
                "the request completed the upload at {} bytes, but its length is {length}",
                info.offset
            ))),
        }
    }
}

/// The request's `Content-Digest`, checked over its whole content like tus's `Upload-Checksum`
/// (all or nothing).
fn content_digest(
    headers: &crate::message::Headers,
) -> Result<Option<crate::checksum::Checksum>, TusError> {
    match headers.get("Content-Digest") {
        Some(value) => crate::checksum::Checksum::from_content_digest(value),
        None => Ok(None),
    }
}

/// The one length the indications of a request agree on, with the upload's own: `known`,
/// `Upload-Length`, and offset plus `Content-Length` of a completing request.
fn agreed_length(
    known: Option<u64>,
    declared: Option<u64>,
    implied: Option<u64>,
) -> Result<Option<u64>, TusError> {
    let mut agreed = known;
    for (what, value) in [
        ("Upload-Length", declared),
        ("the completing content's end", implied),
    ] {
        match (agreed, value) {
            (Some(a), Some(b)) if a != b => {
                return Err(TusError::InconsistentLength(format!(
                    "{what} is {b}, but the upload's length is {a}"
                )));
            }
            (None, Some(b)) => agreed = Some(b),
            _ => {}
        }
    }
    Ok(agreed)
}

/// The draft's representation metadata as tus metadata (what GET, hooks and tus clients see):
/// `filetype` from `Content-Type`, `filename` from `Content-Disposition`.
fn representation_metadata(headers: &crate::message::Headers) -> Result<Metadata, TusError> {
    let filetype = headers
        .get("Content-Type")
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case(PARTIAL_UPLOAD));
    let filename = headers
        .get("Content-Disposition")
        .and_then(disposition_filename);
    let pairs = [("filetype", filetype), ("filename", filename.as_deref())];
    Metadata::from_pairs(
        pairs
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?))),
    )
    .map_err(TusError::Metadata)
}

/// The file name of a `Content-Disposition` value: `filename*` (RFC 8187, UTF-8) before
/// `filename`. Control characters are dropped: the name comes back in a header on GET.
fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in value.split(';').skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let raw = raw.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "filename" => plain = Some(raw.trim_matches('"').to_owned()),
            "filename*" => {
                extended = raw
                    .split_once("''")
                    .filter(|(charset, _)| charset.eq_ignore_ascii_case("utf-8"))
                    .and_then(|(_, encoded)| percent_decode(encoded));
            }
            _ => {}
        }
    }
    extended
        .or(plain)
        .map(|name| name.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|name| !name.is_empty())
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A failure as a draft client reads it: `Upload-Complete: ?0` (the upload was not completed
/// by this request), and for a wrong offset or lengths that disagree the draft's problem
/// document.
fn draft_error(draft: Draft, err: TusError) -> TusResponse {
    let problem = match &err {
        TusError::OffsetMismatch { client, server } => Some((
            serde_json::json!({
                "type": MISMATCHING_OFFSET,
                "title": "offset from request does not match offset of resource",
                "expected-offset": server,
                "provided-offset": client,
            }),
            Some(*server),
        )),
        TusError::InconsistentLength(reason) => Some((
            serde_json::json!({
                "type": INCONSISTENT_LENGTH,
                "title": "inconsistent length values for upload",
                "detail": reason,
            }),
            None,
        )),
        _ => None,
    };
    let mut resp = err.into_response();
    // The tus-only header a 412 carries means nothing here.
    resp.headers.retain(|(name, _)| *name != "Tus-Version");
    let (name, value) = draft.complete_header(false);
    resp = resp.header(name, value);
    if let Some((document, offset)) = problem {
        resp.headers.retain(|(name, _)| *name != "Content-Type");
        resp = resp.header("Content-Type", "application/problem+json");
        if let Some(offset) = offset {
            resp = resp.header("Upload-Offset", offset.to_string());
        }
        resp.body = document.to_string();
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_agree() {
        assert_eq!(agreed_length(None, None, None).unwrap(), None);
        assert_eq!(agreed_length(None, Some(5), Some(5)).unwrap(), Some(5));
        assert_eq!(agreed_length(Some(5), None, None).unwrap(), Some(5));
        assert!(matches!(
            agreed_length(None, Some(5), Some(6)),
            Err(TusError::InconsistentLength(_))
        ));
        assert!(matches!(
            agreed_length(Some(5), None, Some(6)),
            Err(TusError::InconsistentLength(_))
        ));
    }

    #[test]
    fn file_names_come_from_content_disposition() {
        assert_eq!(
            disposition_filename("inline; filename=\"a b.jpg\"").as_deref(),
            Some("a b.jpg")
        );
        assert_eq!(
            disposition_filename(
                "inline; filename=\"x.jpg\"; filename*=UTF-8''file%20n%C3%A4me.jpg"
            )
            .as_deref(),
            Some("file näme.jpg")
        );
        assert_eq!(
            disposition_filename("inline; filename=\"a\r\nX-Injected: 1\"").as_deref(),
            Some("aX-Injected: 1")
        );
        assert_eq!(disposition_filename("inline"), None);
    }
}
