//! The concatenation and concatenation-unfinished extensions: partial uploads, and final
//! uploads assembled from them, possibly created before the partials finish.

use tusk_core::{Concat, ErrorKind, UploadId, UploadInfo};

use crate::{Engine, TusError};

/// Partial uploads one final upload may list: HEAD and GET of a final upload not assembled yet
/// read each of them, so the list bounds that work.
pub(crate) const MAX_PARTIALS_PER_FINAL: usize = 500;
/// Final uploads one partial upload may be part of: each is linked to it and revisited when it
/// completes.
pub(crate) const MAX_FINALS_PER_PARTIAL: usize = 16;

/// Parse `Upload-Concat`: `partial`, or `final;<url> <url> ...` (absolute URLs or paths; the
/// last path segment of each is the partial upload's id). At most
/// [`MAX_PARTIALS_PER_FINAL`] partials, each listed once.
pub(crate) fn parse_concat(value: &str) -> Result<Concat, TusError> {
    let value = value.trim();
    if value == "partial" {
        return Ok(Concat::Partial);
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err(TusError::InvalidConcat(
            "Upload-Concat must be `partial` or `final;<upload URLs>`".into(),
        ));
    };
    let mut ids = Vec::new();
    for url in urls.split_whitespace() {
        let raw = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let id = UploadId::parse(raw)
            .map_err(|_| TusError::InvalidConcat(format!("{url:?} is not the URL of an upload")))?;
        if ids.len() == MAX_PARTIALS_PER_FINAL {
            return Err(TusError::InvalidConcat(format!(
                "a final upload may list at most {MAX_PARTIALS_PER_FINAL} partial uploads"
            )));
        }
        if ids.contains(&id) {
            return Err(TusError::InvalidConcat(format!(
                "partial upload {id} is listed more than once"
            )));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(TusError::InvalidConcat(
            "a final upload needs at least one partial upload URL".into(),
        ));
    }
    Ok(Concat::Final(ids))
}

/// The `Upload-Concat` value that describes `concat`, with upload URLs under `base`.
pub(crate) fn concat_header(concat: &Concat, base: &str) -> String {
    match concat {
        Concat::Partial => "partial".to_owned(),
        Concat::Final(ids) => {
            let urls: Vec<String> = ids.iter().map(|id| format!("{base}{id}")).collect();
            format!("final;{}", urls.join(" "))
        }
    }
}

impl Engine {
    /// The length of a new final upload made of `ids`: each must exist, be partial and have a
    /// known length; the final length is their sum.
    pub(crate) async fn final_length(&self, ids: &[UploadId]) -> Result<u64, TusError> {
        let mut length = 0u64;
        for id in ids {
            let info = match self.store().info(id).await {
                Ok(info) => info,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Err(TusError::InvalidConcat(format!(
                        "partial upload {id} does not exist"
                    )));
                }
                Err(err) => return Err(err.into()),
            };
            // Naming an upload in a final one reads its bytes: it takes the caller's access.
            self.authorize(&info).await?;
            if info.concat != Some(Concat::Partial) {
                return Err(TusError::InvalidConcat(format!(
                    "upload {id} was not created with Upload-Concat: partial"
                )));
            }
            let Some(part) = info.length else {
                return Err(TusError::InvalidConcat(format!(
                    "partial upload {id} has no length yet; declare it before the final upload"
                )));
            };
            let finals = match self.concatenation() {
                Some(concatenation) => concatenation.finals_of(id).await?.len(),
                None => 0,
            };
            if finals >= MAX_FINALS_PER_PARTIAL {
                return Err(TusError::InvalidConcat(format!(
                    "partial upload {id} is already part of {MAX_FINALS_PER_PARTIAL} final uploads"
                )));
            }
            length = length.checked_add(part).ok_or(TusError::MaxSizeExceeded {
                length: u64::MAX,
                max: self.config().max_size,
            })?;
        }
        Ok(length)
    }

    /// After a request completed partial upload `info`: complete the final uploads waiting for
    /// it whose other partials are complete too. Each is locked in turn (never while another is
    /// held); a failure is logged and left for the next HEAD or GET of that final upload.
    pub(crate) async fn complete_finals_of(&self, info: &UploadInfo) {
        if info.concat != Some(Concat::Partial) || !info.is_complete() {
            return;
        }
        let Some(concatenation) = self.concatenation() else {
            return;
        };
        let finals = match concatenation.finals_of(&info.id).await {
            Ok(finals) => finals,
            Err(err) => {
                tracing::warn!(upload_id = %info.id, error = %err, "cannot list final uploads of a partial");
                return;
            }
        };
        for final_id in finals {
            let result = async {
                let guard = self.lock(&final_id).await?;
                let fin = self.store().info_locked(&final_id, guard.fence()).await?;
                self.assemble_if_ready(fin, guard.fence()).await
            }
            .await;
            match result {
                Ok(_) => {}
                Err(TusError::Store(err)) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(upload_id = %final_id, error = %err, "final upload not assembled yet; its next HEAD will");
                }
            }
        }
    }

    /// If `info` is a final upload whose partials are all complete, assemble it now (under its
    /// lock, `fence`); otherwise return it unchanged. A final upload created before its partials
    /// finished completes on the first request that finds them complete.
    pub(crate) async fn assemble_if_ready(
        &self,
        info: UploadInfo,
        fence: u64,
    ) -> Result<UploadInfo, TusError> {
        let Some(Concat::Final(ids)) = &info.concat else {
            return Ok(info);
        };
        // Final uploads exist only where the store concatenates.
        let Some(concatenation) = self.concatenation() else {
            return Ok(info);
        };
        if info.is_complete() {
            return Ok(info);
        }
        let mut partials = Vec::with_capacity(ids.len());
        for id in ids {
            let partial = match self.store().info(id).await {
                Ok(partial) => partial,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    return Err(TusError::PartialGone(id.clone()));
                }
                Err(err) => return Err(err.into()),
            };
            if !partial.is_complete() {
                return Ok(info);
            }
            partials.push(partial);
        }
        let info = concatenation
            .concatenate(&info.id, &partials, fence)
            .await?;
        tracing::info!(upload_id = %info.id, partials = partials.len(), "final upload complete");
        let info = self.refresh_expiry(info, fence).await;
        // Assembled and stored: a failing pre-finish hook cannot undo that, nor fail (or change
        // the response of) the request that happened to assemble it.
        // Its pre-finish's response changes belong to the final upload, not this request.
        let _ = self.finished_logged(&info).await;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_concat_values_parse() {
        assert_eq!(parse_concat("partial").ok(), Some(Concat::Partial));
        let a = UploadId::generate();
        let b = UploadId::generate();
        let value = format!("final;http://x/files/{a} /files/{b}");
        assert_eq!(
            parse_concat(&value).ok(),
            Some(Concat::Final(vec![a.clone(), b.clone()]))
        );
        assert_eq!(
            concat_header(
                &Concat::Final(vec![a.clone(), b.clone()]),
                "http://h/files/"
            ),
            format!("final;http://h/files/{a} http://h/files/{b}")
        );
        let repeated = format!("final;/files/{a} /files/{b} /files/{a}");
        assert!(parse_concat(&repeated).is_err(), "a partial listed twice");
        let many: Vec<String> = (0..=MAX_PARTIALS_PER_FINAL)
            .map(|_| format!("/files/{}", UploadId::generate()))
            .collect();
        assert!(parse_concat(&format!("final;{}", many.join(" "))).is_err());
        assert!(parse_concat(&format!("final;{}", many[1..].join(" "))).is_ok());
        for bad in [
            "",
            "final;",
            "final",
            "partial;x",
            "final;/files/a%2f",
            "whole",
        ] {
            assert!(parse_concat(bad).is_err(), "{bad:?}");
        }
    }
}
