//! GET: download a finished upload (not part of tus; what a server users deploy also does).

use tusk_core::{UploadId, presentation};

use crate::message::{Headers, TusResponse};
use crate::{Engine, TusError};

/// What a `Range` header asks for, against a representation of `length` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Serve everything (no header, or one that must be ignored: malformed, several ranges).
    Whole,
    /// Bytes `start..end`.
    Part(u64, u64),
    /// A valid range that selects nothing: 416.
    Unsatisfiable,
}

fn parse_range(value: &str, length: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        // Multipart ranges are optional (RFC 9110 14.2); the whole body is a valid answer.
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeRequest::Whole,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if length == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Part(length.saturating_sub(n), length),
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return RangeRequest::Whole;
            };
            let end = match last {
                "" => length,
                last => match number(last) {
                    Some(l) if l >= start => l.saturating_add(1).min(length),
                    _ => return RangeRequest::Whole,
                },
            };
            if start >= length {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start, end)
            }
        }
    }
}

impl Engine {
    /// GET: stream a finished upload, honouring `Range` (one range) and `If-None-Match`.
    pub(crate) async fn get(
        &self,
        id: &UploadId,
        headers: &Headers,
    ) -> Result<TusResponse, TusError> {
        // The lock covers reading the state (and finishing an upload a crash left unassembled)
        // and opening the object; a finished upload never changes, so the bytes stream after it
        // is given back and a download never blocks a resume or another download.
        let guard = self.lock_existing(id).await?;
        let info = self.store().info_locked(id, guard.fence()).await?;
        let info = self.unexpired(info, guard.fence()).await?;
        let mut info = self.assemble_if_ready(info, guard.fence()).await?;
        if !info.is_complete()
            && let Some(finished) = self.store().recover_finished(&info, guard.fence()).await?
        {
            info = finished;
        }
        let length = match info.length {
            Some(length) if length == info.offset => length,
            length => {
                return Err(TusError::NotFinished {
                    offset: info.offset,
                    length,
                });
            }
        };
        let etag = format!("\"{id}-{length}\"");
        if let Some(tags) = headers.get("If-None-Match") {
            let matches = tags
                .split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
            if matches {
                return Ok(TusResponse::status(304).header("ETag", etag));
            }
        }
        let (status, start, end) = match headers.get("Range").map(|r| parse_range(r, length)) {
            None | Some(RangeRequest::Whole) => (200, 0, length),
            Some(RangeRequest::Part(start, end)) => (206, start, end),
            Some(RangeRequest::Unsatisfiable) => {
                return Err(TusError::RangeNotSatisfiable { length });
            }
        };
        let stream = self.store().read(id, start, end).await?;
        drop(guard);
        let (content_type, disposition) = presentation(&info.metadata);
        let mut resp = TusResponse::status(status)
            .header("ETag", etag)
            .header("Accept-Ranges", "bytes")
            .header("Content-Type", content_type)
            .header("Content-Disposition", disposition)
            .header("X-Content-Type-Options", "nosniff")
            .header("Cache-Control", "private, no-cache");
        if status == 206 {
            resp = resp.header(
                "Content-Range",
                format!("bytes {start}-{}/{length}", end - 1),
            );
        }
        resp.stream = Some((end - start, stream));
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::*;
        let cases = [
            ("bytes=0-9", Part(0, 10)),
            ("bytes=5-", Part(5, 100)),
            ("bytes=-10", Part(90, 100)),
            ("bytes=-1000", Part(0, 100)),
            ("bytes=90-1000", Part(90, 100)),
            ("bytes=99-99", Part(99, 100)),
            ("bytes=100-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=5-3", Whole),
            ("bytes=0-1,5-6", Whole),
            ("items=0-1", Whole),
            ("bytes=a-b", Whole),
            ("bytes=+1-2", Whole),
            ("bytes=", Whole),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_range(header, 100), expected, "{header}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
    }
}
