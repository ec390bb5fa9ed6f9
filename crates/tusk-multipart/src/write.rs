use std::collections::VecDeque;

use crate::budget::Reservation;
use bytes::Bytes;
use tokio_util::task::AbortOnDropHandle;
use tusk_core::{ChunkSource, Commit, Error, ErrorKind, Result, TailChange, UploadState};

use crate::MultipartStore;
use crate::buffer::PartBuffer;
use crate::store::{corrupt_tail, part_number, vanished};

/// A part on its way to object storage: its ETag. The task is aborted if the PATCH is dropped.
type InflightPart = AbortOnDropHandle<Result<String>>;

/// How much of a stored tail one read fetches: the memory a resumed part holds beyond its
/// budget while it is assembled.
const TAIL_SLICE: usize = 1024 * 1024;

/// One PATCH body's journey: bytes fill the current part buffer (after room left for the stored
/// tail, which is read from the state store only when the part is full, so a small PATCH never
/// reads it); a
/// full part goes to object storage as the next part while the body keeps arriving;
/// sent parts are committed to state in order as object storage confirms them.
struct Writer<'a> {
    store: &'a MultipartStore,
    state: UploadState,
    fence: u64,
    /// The current part: room for the `stored` tail bytes, then this body's bytes.
    buf: PartBuffer,
    /// Bytes of the current part that are in the stored tail, not in `buf`.
    stored: usize,
    /// Budget reserved for `buf`.
    buf_permit: Option<Reservation>,
    /// Sent parts not yet committed, oldest first.
    inflight: VecDeque<InflightPart>,
    /// ETags of parts confirmed but held back (all-or-nothing bodies commit at the end).
    held: Vec<String>,
    all_or_nothing: bool,
}

impl MultipartStore {
    /// Stream `body` into parts and tail after `state`'s offset; see [`Writer`].
    pub(crate) async fn write_body(
        &self,
        state: UploadState,
        body: &mut dyn ChunkSource,
        fence: u64,
    ) -> Result<UploadState> {
        let room = state
            .length
            .unwrap_or(self.config.max_size)
            .saturating_sub(state.offset());
        let mut writer = Writer {
            store: self,
            buf: PartBuffer::default(),
            // Bytes of the current part already in the stored tail.
            stored: usize::try_from(state.tail_len).unwrap_or(usize::MAX),
            buf_permit: None,
            inflight: VecDeque::new(),
            held: Vec::new(),
            all_or_nothing: body.all_or_nothing(),
            state,
            fence,
        };
        let mut received = 0u64;
        while let Some(mut chunk) = body.next_chunk().await {
            received += chunk.len() as u64;
            if received > room {
                // The engine stops a body at the length first; this is the store's own guard.
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    "body exceeds the upload's length",
                ));
            }
            while !chunk.is_empty() {
                if writer.buf_permit.is_none() {
                    // Reserved when a part's first byte arrives, not when the previous part
                    // leaves: a body that ends at a part boundary never waits for budget, nor
                    // holds it while the upload is completed.
                    writer.start_part().await?;
                }
                let want = writer.part_size() - writer.stored - writer.buf.len();
                let piece = chunk.split_to(want.min(chunk.len()));
                writer.buf.extend_from_slice(&piece)?;
                if writer.stored + writer.buf.len() == writer.part_size() {
                    writer.send_part().await?;
                }
            }
            writer.commit_confirmed(false).await?;
        }

        if !body.may_commit() {
            // Parts already committed hold only bytes within the length; nothing more counts.
            tracing::debug!(upload_id = %writer.state.id, "body refused; committing nothing more");
            return Ok(writer.state);
        }
        writer.all_or_nothing = false;
        writer.commit_confirmed(true).await?;
        writer.commit_tail().await
    }
}

impl Writer<'_> {
    fn part_size(&self) -> usize {
        // Part sizes are at most 5 GiB by construction, which fits usize on 64-bit targets.
        usize::try_from(self.state.part_size).unwrap_or(usize::MAX)
    }

    /// Reserve budget for the next part buffer (waits while the node's budget is spent).
    async fn start_part(&mut self) -> Result<()> {
        let permit = self
            .store
            .budget
            .reserve(self.state.part_size)
            .await
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Backend,
                    "the part buffer budget is smaller than one part",
                )
            })?;
        self.buf_permit = Some(permit);
        self.buf = PartBuffer::after_prefix(self.stored, self.part_size());
        Ok(())
    }

    /// Send the full buffer as the next part; wait for the oldest part if too many are out.
    async fn send_part(&mut self) -> Result<()> {
        if self.inflight.len() >= self.store.config.max_inflight_parts.max(1) {
            self.commit_oldest().await?;
        }
        // Started the first time a part is sent.
        let multipart_id = self
            .store
            .ensure_multipart(&mut self.state, self.fence)
            .await?;
        let number = part_number(
            self.state.part_count as usize + self.held.len() + self.inflight.len() + 1,
        )?;
        let body = self.take_part().await?;
        let permit = self.buf_permit.take();
        let objects = self.store.objects.clone();
        let key = self.state.id.as_str().to_owned();
        let task = tokio::spawn(async move {
            let etag = objects.upload_part(&key, &multipart_id, number, body).await;
            // The part's bytes are released with the permit once object storage has them.
            drop(permit);
            etag
        });
        self.inflight.push_back(AbortOnDropHandle::new(task));
        Ok(())
    }

    /// The full current part: the stored tail (read now, the one time it is needed, into the
    /// room left for it) and then this body's bytes. The tail comes in slices, so reading it
    /// holds at most one slice beyond the part's reserved budget.
    async fn take_part(&mut self) -> Result<Bytes> {
        let mut part = std::mem::take(&mut self.buf);
        let mut read = 0;
        while read < self.stored {
            let want = (self.stored - read).min(TAIL_SLICE);
            let range = read as u64..(read + want) as u64;
            let slice = self
                .store
                .state
                .read_tail_range(&self.state.id, range, Some(self.fence))
                .await?;
            if slice.len() != want {
                let short = read + slice.len();
                return Err(corrupt_tail(&self.state.id, self.stored as u64, short));
            }
            part.write_prefix(read, &slice)?;
            read += want;
        }
        self.stored = 0;
        Ok(part.freeze())
    }

    /// Commit parts whose upload finished; with `wait`, wait for all of them.
    async fn commit_confirmed(&mut self, wait: bool) -> Result<()> {
        while let Some(front) = self.inflight.front() {
            if !wait && !front.is_finished() {
                break;
            }
            self.commit_oldest().await?;
        }
        if !self.all_or_nothing && !self.held.is_empty() {
            let parts = std::mem::take(&mut self.held);
            self.commit(parts, TailChange::Replace(Bytes::new()))
                .await?;
        }
        Ok(())
    }

    /// Wait for the oldest part and commit it (or hold it back for an all-or-nothing body).
    async fn commit_oldest(&mut self) -> Result<()> {
        let Some(mut part) = self.inflight.pop_front() else {
            return Ok(());
        };
        let etag = (&mut part)
            .await
            .map_err(|err| {
                Error::new(ErrorKind::Backend, "part upload task failed").with_source(err)
            })?
            .map_err(vanished)?;
        self.held.push(etag);
        if !self.all_or_nothing {
            let parts = std::mem::take(&mut self.held);
            // The first part of a body absorbs the stored tail; after any part the stored tail
            // is empty, because the bytes after it are only in this node's memory.
            self.commit(parts, TailChange::Replace(Bytes::new()))
                .await?;
        }
        Ok(())
    }

    async fn commit(&mut self, new_parts: Vec<String>, tail: TailChange) -> Result<()> {
        let commit = Commit {
            expect_parts: self.state.part_count,
            expect_tail_len: self.state.tail_len,
            new_parts,
            tail,
        };
        self.state = self
            .store
            .state
            .commit(&self.state.id, self.fence, commit)
            .await?;
        Ok(())
    }

    /// The body ended and every part is committed: store the rest of the buffer as the tail, and
    /// finish the upload if that was its last byte.
    async fn commit_tail(mut self) -> Result<UploadState> {
        let own = std::mem::take(&mut self.buf).freeze_appended();
        if !own.is_empty() {
            self.commit(Vec::new(), TailChange::Append(own.clone()))
                .await?;
            tusk_metrics::metrics()
                .tail_appended_bytes
                .inc_by(own.len() as u64);
        }
        let Writer {
            store,
            state,
            fence,
            stored,
            buf_permit,
            ..
        } = self;
        if !state.finished && state.length == Some(state.offset()) {
            // With tail bytes from earlier PATCHes, finalize reads the whole tail back. Either
            // way the last part is at most one part, covered until object storage has it by
            // this body's reservation, or, if the body brought none of its bytes, by one
            // finalize takes.
            let tail = (stored == 0).then_some(own);
            return store.finalize(state, fence, tail, buf_permit).await;
        }
        Ok(state)
    }
}
