//! Final uploads (concatenation) in object storage: assembled inside S3 with UploadPartCopy
//! wherever part sizes allow, streamed through the node otherwise.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use tusk_core::{Error, ErrorKind, Result, UploadId, UploadInfo};

use crate::MultipartStore;
use crate::buffer::PartBuffer;
use crate::config::{MIN_PART_SIZE, S3_MAX_PART_SIZE};
use crate::store::part_number;

/// One part of a final upload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Copied inside object storage from bytes `start..end` of a partial's object.
    Copy {
        source: UploadId,
        start: u64,
        end: u64,
    },
    /// Read through the node from several short ranges and uploaded as one part.
    Stream(Vec<(UploadId, u64, u64)>),
}

/// Cut the concatenation of `partials` (id, length) into parts. Every part but the last must
/// hold at least 5 MiB, and a copied part comes from one source object: a partial range of at
/// least 5 MiB (or the very last bytes) is copied; shorter runs are gathered, with the start
/// of what follows, into a streamed part of 5 MiB. So the node holds at most ~5 MiB.
fn plan(partials: &[(UploadId, u64)]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut gathered: Vec<(UploadId, u64, u64)> = Vec::new();
    let mut gathered_len = 0u64;
    let last = partials.len().saturating_sub(1);
    for (i, (id, len)) in partials.iter().enumerate() {
        let mut pos = 0;
        if gathered_len > 0 {
            let take = (MIN_PART_SIZE - gathered_len).min(*len);
            if take > 0 {
                gathered.push((id.clone(), 0, take));
                gathered_len += take;
                pos = take;
            }
            if gathered_len >= MIN_PART_SIZE {
                pieces.push(Piece::Stream(std::mem::take(&mut gathered)));
                gathered_len = 0;
            }
        }
        while pos < *len {
            let rest = len - pos;
            if gathered_len == 0 && (rest >= MIN_PART_SIZE || i == last) {
                let chunk = rest.min(S3_MAX_PART_SIZE);
                pieces.push(Piece::Copy {
                    source: id.clone(),
                    start: pos,
                    end: pos + chunk,
                });
                pos += chunk;
            } else {
                gathered.push((id.clone(), pos, *len));
                gathered_len += rest;
                pos = *len;
            }
        }
    }
    if gathered_len > 0 {
        pieces.push(Piece::Stream(gathered));
    }
    pieces
}

/// Cut the concatenation of `partials` into parts of exactly `part_size` bytes (the last may be
/// shorter), for stores that require equal parts. A part that lies inside one partial is
/// copied; one that spans partials is streamed through the node (at most `part_size` bytes).
fn plan_equal(partials: &[(UploadId, u64)], part_size: u64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut ranges: Vec<(UploadId, u64, u64)> = Vec::new();
    let mut filled = 0u64;
    let close = |ranges: &mut Vec<(UploadId, u64, u64)>, pieces: &mut Vec<Piece>| {
        let taken = std::mem::take(ranges);
        match taken.as_slice() {
            [(source, start, end)] => pieces.push(Piece::Copy {
                source: source.clone(),
                start: *start,
                end: *end,
            }),
            _ => pieces.push(Piece::Stream(taken)),
        }
    };
    for (id, len) in partials {
        let mut pos = 0;
        while pos < *len {
            let take = (part_size - filled).min(len - pos);
            ranges.push((id.clone(), pos, pos + take));
            filled += take;
            pos += take;
            if filled == part_size {
                close(&mut ranges, &mut pieces);
                filled = 0;
            }
        }
    }
    if filled > 0 {
        close(&mut ranges, &mut pieces);
    }
    pieces
}

impl MultipartStore {
    /// Assemble final upload `id` from complete `partials`; see [`plan`]. Idempotent: parts are
    /// re-made with the same numbers and bytes, and an already completed object is recognised.
    pub(crate) async fn assemble_final(
        &self,
        id: &UploadId,
        partials: &[UploadInfo],
        fence: u64,
    ) -> Result<UploadInfo> {
        let mut state = self.state.load(id, fence).await?;
        if state.finished {
            return Ok(state.info());
        }
        let length = state.length.unwrap_or(0);
        let sizes: Vec<(UploadId, u64)> =
            partials.iter().map(|p| (p.id.clone(), p.offset)).collect();
        let pieces = if self.config.equal_parts {
            plan_equal(
                &sizes,
                crate::config::part_size_for(Some(length), &self.config),
            )
        } else {
            plan(&sizes)
        };
        // Refused before any copy: a plan of more parts than S3 allows would fail at the last.
        part_number(pieces.len().max(1))?;
        let key = &state.object_key();
        if pieces.is_empty() {
            let attributes =
                tusk_core::ObjectAttributes::of_upload(&state.metadata, &state.placement);
            self.objects
                .put_object(key, Bytes::new(), &attributes)
                .await?;
        } else {
            // Each partial's object is where its own pre-create hook placed it.
            let sources: HashMap<&UploadId, String> = partials
                .iter()
                .map(|p| (&p.id, p.placement.object_key(&p.id)))
                .collect();
            let multipart_id = self.ensure_multipart(&mut state, fence).await?;
            let assembled = self.make_parts(key, &multipart_id, &pieces, &sources).await;
            self.completed(key, Some(length), assembled).await?;
        }
        self.mark_finished(&mut state, fence).await?;
        let copied = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Copy { .. }))
            .count();
        tracing::info!(upload_id = %id, length, parts = pieces.len(), copied, "final upload assembled");
        Ok(state.info())
    }

    async fn make_parts(
        &self,
        key: &str,
        multipart_id: &str,
        pieces: &[Piece],
        sources: &HashMap<&UploadId, String>,
    ) -> Result<()> {
        let source_key = |id: &UploadId| {
            sources.get(id).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    format!("upload {key}: partial upload {id} is not among its partials"),
                )
            })
        };
        let mut etags = Vec::with_capacity(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            let number = part_number(i + 1)?;
            let etag = match piece {
                Piece::Copy { source, start, end } => {
                    self.objects
                        .upload_part_copy(
                            key,
                            multipart_id,
                            number,
                            &source_key(source)?,
                            *start,
                            *end,
                        )
                        .await?
                }
                Piece::Stream(ranges) => {
                    let total: u64 = ranges.iter().map(|(_, s, e)| e - s).sum();
                    // The part's bytes are in memory until S3 has them: inside the budget.
                    let _reservation = self
                        .budget
                        .reserve_for(total, self.config.budget_wait, "a concatenation part")
                        .await?;
                    let mut part = PartBuffer::with_capacity(usize::try_from(total).unwrap_or(0));
                    for (source, start, end) in ranges {
                        let mut stream = self
                            .objects
                            .get_object(&source_key(source)?, *start, *end)
                            .await?;
                        while let Some(chunk) = stream.next().await {
                            part.extend_from_slice(&chunk?)?;
                        }
                    }
                    if part.len() as u64 != total {
                        // A source that ended early must not become a short part of the final.
                        return Err(Error::new(
                            ErrorKind::Backend,
                            format!(
                                "upload {key}: partial uploads gave {} of {total} bytes for part {number}",
                                part.len()
                            ),
                        ));
                    }
                    self.objects
                        .upload_part(key, multipart_id, number, part.freeze())
                        .await?
                }
            };
            etags.push(etag);
        }
        self.objects
            .complete_multipart(key, multipart_id, &etags)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ids(n: usize) -> Vec<UploadId> {
        (0..n).map(|_| UploadId::generate()).collect()
    }

    #[test]
    fn big_partials_are_copied_small_ones_gathered() {
        let id = ids(4);
        let pieces = plan(&[
            (id[0].clone(), 6 * MIB),
            (id[1].clone(), MIB),
            (id[2].clone(), 7 * MIB),
            (id[3].clone(), 2 * MIB),
        ]);
        assert_eq!(
            pieces,
            vec![
                Piece::Copy {
                    source: id[0].clone(),
                    start: 0,
                    end: 6 * MIB
                },
                // 1 MiB of the small partial and the first 4 MiB of the next, through the node.
                Piece::Stream(vec![(id[1].clone(), 0, MIB), (id[2].clone(), 0, 4 * MIB)]),
                // The remaining 3 MiB are too short to copy alone and not the end: gathered
                // with the last partial, which ends the object.
                Piece::Stream(vec![
                    (id[2].clone(), 4 * MIB, 7 * MIB),
                    (id[3].clone(), 0, 2 * MIB)
                ]),
            ]
        );
    }

    #[test]
    fn every_part_but_the_last_has_at_least_5_mib_and_bytes_are_in_order() {
        let id = ids(6);
        let sizes = [1, 5 * MIB, 3, 12 * MIB + 1, 0, 4 * MIB];
        let partials: Vec<(UploadId, u64)> =
            id.iter().cloned().zip(sizes.iter().copied()).collect();
        let pieces = plan(&partials);
        let mut covered = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let ranges = match piece {
                Piece::Copy { source, start, end } => vec![(source.clone(), *start, *end)],
                Piece::Stream(r) => r.clone(),
            };
            let len: u64 = ranges.iter().map(|(_, s, e)| e - s).sum();
            assert!(
                i == pieces.len() - 1 || len >= MIN_PART_SIZE,
                "part {i}: {len}"
            );
            covered.extend(ranges);
        }
        // The ranges, in order, tile every partial exactly.
        let mut expect = Vec::new();
        for (id, len) in &partials {
            if *len > 0 {
                expect.push(id.clone());
            }
        }
        let mut at = std::collections::HashMap::new();
        for (source, start, end) in &covered {
            let pos = at.entry(source.clone()).or_insert(0);
            assert_eq!(*start, *pos, "ranges of a partial are contiguous");
            *pos = *end;
        }
        for (id, len) in &partials {
            assert_eq!(at.get(id).copied().unwrap_or(0), *len);
        }
        assert!(plan(&[]).is_empty());
        assert!(plan(&[(id[0].clone(), 0)]).is_empty());
    }

    #[test]
    fn equal_parts_are_copied_inside_a_partial_and_streamed_across_them() {
        let id = ids(3);
        let part = 5 * MIB;
        let pieces = plan_equal(
            &[
                (id[0].clone(), 12 * MIB),
                (id[1].clone(), MIB),
                (id[2].clone(), 4 * MIB + 7),
            ],
            part,
        );
        assert_eq!(
            pieces,
            vec![
                Piece::Copy {
                    source: id[0].clone(),
                    start: 0,
                    end: 5 * MIB
                },
                Piece::Copy {
                    source: id[0].clone(),
                    start: 5 * MIB,
                    end: 10 * MIB
                },
                // 2 MiB + 1 MiB + 2 MiB: across three partials, through the node.
                Piece::Stream(vec![
                    (id[0].clone(), 10 * MIB, 12 * MIB),
                    (id[1].clone(), 0, MIB),
                    (id[2].clone(), 0, 2 * MIB),
                ]),
                // The last part holds what is left.
                Piece::Copy {
                    source: id[2].clone(),
                    start: 2 * MIB,
                    end: 4 * MIB + 7
                },
            ]
        );
        // Every part but the last has exactly the part size, whatever the partials.
        let sizes = [1, 5 * MIB, 3, 12 * MIB + 1, 0, 4 * MIB];
        let partials: Vec<(UploadId, u64)> =
            ids(6).into_iter().zip(sizes.iter().copied()).collect();
        let pieces = plan_equal(&partials, part);
        let lens: Vec<u64> = pieces
            .iter()
            .map(|p| match p {
                Piece::Copy { start, end, .. } => end - start,
                Piece::Stream(r) => r.iter().map(|(_, s, e)| e - s).sum(),
            })
            .collect();
        let (last, rest) = lens.split_last().unwrap();
        assert!(rest.iter().all(|len| *len == part), "{lens:?}");
        assert!(*last <= part && *last > 0);
        assert_eq!(lens.iter().sum::<u64>(), sizes.iter().sum::<u64>());
        assert!(plan_equal(&[], part).is_empty());
    }
}
