use std::collections::VecDeque;

use crate::budget::{NoRoom, Reservation};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tusk_core::{ChunkSource, Commit, Error, ErrorKind, Result, TailChange, UploadState};

use crate::MultipartStore;
use crate::ahead::{PartAhead, store_part};
use crate::buffer::PartBuffer;
use crate::store::{corrupt_tail, part_number};
use crate::tail_cache::CachedTail;

/// A part on its way to object storage: its ETag. The task is aborted if the PATCH is dropped.
type InflightPart = AbortOnDropHandle<Result<String>>;

/// How much of a stored tail one read fetches: the memory a resumed part holds beyond its
/// budget while it is assembled (the reply, and the Redis connection's read buffer, which keeps
/// the size of the largest reply it held).
const TAIL_SLICE: usize = 256 * 1024;
/// A stored tail of at most this many bytes is read in when a part opens under a kept lock.
const READ_IN_AT_MOST: usize = 1024 * 1024;
/// Budget is reserved in steps of this size as a part's bytes arrive, so a client that sends
/// little holds little: to hold budget a client must send the bytes it holds (a whole part
/// reserved at the first byte let six clients dripping a byte every 10 s hold a node's budget).
const RESERVE_STEP: u64 = 256 * 1024;

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
    /// Bytes of the current part that are in the stored tail.
    stored: usize,
    /// The stored tail's bytes are also in `buf`, as its written prefix (this node wrote them
    /// under this lock: see `tail_cache`), so they are not read back.
    tail_in_buf: bool,
    /// A part is being filled in `buf`.
    part_open: bool,
    /// Budget reserved for the current part (its stored prefix and its bytes so far).
    buf_permit: Option<Reservation>,
    /// The budget wait gave up: the bytes already read are kept over budget (at most one chunk)
    /// and no more are read.
    gave_up: Option<NoRoom>,
    /// Sent parts not yet committed, oldest first.
    inflight: VecDeque<InflightPart>,
    /// ETags of parts confirmed but held back (all-or-nothing bodies commit at the end).
    held: Vec<String>,
    all_or_nothing: bool,
    /// The node keeps the request's lock after it: a tail left in memory can serve its next
    /// PATCH.
    lock_kept: bool,
    /// The request's lock is lost: waiting for object storage is pointless.
    lock_lost: CancellationToken,
    /// The current part's upload, fed as its bytes arrive (see `ahead`).
    ahead: Option<PartAhead>,
    /// The last bytes of the upload's last part, kept from its stream until the tail's fenced
    /// commit passed.
    ahead_last: Option<Bytes>,
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
            .unwrap_or_else(|| crate::deferred_capacity(state.part_size, &self.config))
            .saturating_sub(state.offset());
        let mut writer = Writer {
            store: self,
            buf: PartBuffer::default(),
            // Bytes of the current part already in the stored tail.
            stored: usize::try_from(state.tail_len).unwrap_or(usize::MAX),
            tail_in_buf: false,
            part_open: false,
            buf_permit: None,
            gave_up: None,
            inflight: VecDeque::new(),
            held: Vec::new(),
            all_or_nothing: body.all_or_nothing(),
            lock_kept: body.lock_kept(),
            lock_lost: body.lock_lost(),
            ahead: None,
            ahead_last: None,
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
                if !writer.part_open {
                    writer.open_part().await?;
                }
                let want = writer.part_size() - writer.stored - writer.buf.len();
                let piece = chunk.split_to(want.min(chunk.len()));
                if let Some(step) = writer.room_needed(piece.len()) {
                    writer.reserve(step, body.stopped()).await?;
                }
                writer.buf.extend_from_slice(&piece)?;
                if writer.stored + writer.buf.len() == writer.part_size() {
                    writer.send_part(piece).await?;
                } else {
                    writer.feed_ahead(piece);
                }
            }
            writer.commit_confirmed(false).await?;
            if writer.gave_up.is_some() {
                // No more bytes are read: the body ends here, keeping what arrived.
                break;
            }
        }

        if !body.may_commit() {
            // Parts already committed hold only bytes within the length; nothing more counts.
            tracing::debug!(upload_id = %writer.state.id, "body refused; committing nothing more");
            return Ok(writer.state);
        }
        writer.all_or_nothing = false;
        writer.commit_confirmed(true).await?;
        let gave_up = writer.gave_up;
        let state = writer.commit_tail().await?;
        // A body whose last chunk completed the upload has nothing left to resume.
        if gave_up == Some(NoRoom::TimedOut) && !state.finished {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "this node's upload buffers are full; the {} bytes of this upload received so far are stored (HEAD tells the offset): resume later",
                    state.offset()
                ),
            ));
        }
        Ok(state)
    }
}

impl Writer<'_> {
    fn part_size(&self) -> usize {
        // Part sizes are at most 5 GiB by construction, which fits usize on 64-bit targets.
        usize::try_from(self.state.part_size).unwrap_or(usize::MAX)
    }

    /// Start filling the next part (its budget is reserved as its bytes arrive). A stored tail
    /// this node still has in memory comes with its buffer and its room in the budget. Under a
    /// lock the node keeps after this request, a stored tail of at most a slice is read in at
    /// once if there is room for it (a node keeps locks from its second request on an upload),
    /// so that this PATCH's buffer holds the whole tail and is kept for the next one; otherwise
    /// the tail is read only when the part is full.
    async fn open_part(&mut self) -> Result<()> {
        self.part_open = true;
        self.tail_in_buf = self.stored == 0;
        if self.tail_in_buf {
            self.buf = PartBuffer::with_capacity(self.part_size());
            return Ok(());
        }
        if let Some(cached) = self.store.budget.tails().take(
            &self.state.id,
            self.fence,
            self.state.part_count,
            self.stored,
        ) {
            self.hold(cached.reservation);
            // A body that commits nothing before its end sends no part early either.
            self.ahead = cached
                .ahead
                .filter(|ahead| !self.all_or_nothing && ahead.fed() == cached.buffer.written());
            self.buf = cached.buffer;
            self.tail_in_buf = true;
            return Ok(());
        }
        self.buf = PartBuffer::after_prefix(self.stored, self.part_size());
        if !self.lock_kept || self.all_or_nothing || self.stored > READ_IN_AT_MOST {
            return Ok(());
        }
        let Some(room) = self.store.budget.try_reserve(self.stored as u64) else {
            return Ok(());
        };
        self.hold(room);
        // The buffer is put back whatever the read gives, so the writer is never left with the
        // empty placeholder.
        let mut buf = std::mem::take(&mut self.buf);
        let read = self.read_tail_into(&mut buf, 0).await;
        self.buf = buf;
        read?;
        self.tail_in_buf = true;
        Ok(())
    }

    /// Hand `piece`, just appended to the part, to the part's streamed upload, if there is one;
    /// one that cannot take it is given up (the part is sent whole when full).
    /// Bytes that would complete the stream (only the upload's last part, shorter than a full
    /// one, is completed here) are kept until the tail's fenced commit.
    fn feed_ahead(&mut self, piece: Bytes) {
        let Some(ahead) = &mut self.ahead else {
            return;
        };
        if ahead.completed_by(piece.len()) {
            self.ahead_last = Some(piece);
        } else if !ahead.feed(piece) {
            self.abandon_ahead();
        }
    }

    fn abandon_ahead(&mut self) {
        if self.ahead.take().is_some() {
            tusk_metrics::metrics().parts_stream_abandoned.inc();
        }
    }

    /// Read the stored tail from byte `from` into the prefix of `buf`, in slices of
    /// [`TAIL_SLICE`], fenced.
    async fn read_tail_into(&self, buf: &mut PartBuffer, from: usize) -> Result<()> {
        let mut read = from;
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
            buf.write_prefix(read, &slice)?;
            read += want;
        }
        Ok(())
    }

    /// How much more budget the current part needs before `more` bytes go in: it covers the
    /// stored prefix (read in when the part is full) and the bytes so far, in steps. A body that
    /// may commit nothing before its end (under a checksum) cannot store its bytes early to give
    /// its budget back, so it reserves its whole part at the part's first byte instead. `None`
    /// when it is covered, or when the budget wait already gave up.
    fn room_needed(&self, more: usize) -> Option<u64> {
        if self.gave_up.is_some() {
            return None;
        }
        let part = self.state.part_size;
        let needed = (self.stored + self.buf.len() + more) as u64;
        let held = self.buf_permit.as_ref().map_or(0, Reservation::bytes);
        if needed <= held {
            return None;
        }
        if self.all_or_nothing {
            return Some(part.saturating_sub(held).max(needed - held));
        }
        Some(
            (needed - held)
                .max(RESERVE_STEP)
                .min(part.saturating_sub(held).max(needed - held)),
        )
    }

    /// Reserve `step` more bytes for the current part.
    ///
    /// Budget that is free is taken at once. Otherwise the PATCH must not wait while it holds
    /// part of a part: PATCHes that each hold some and wait for more would wait for each other.
    /// So it first stores the bytes it buffered in the tail (a fenced commit, as when a body
    /// ends) and gives its reservation back, then waits, holding nothing, for the whole part at
    /// once; waiters are served in order, so it is not starved. The wait is bounded by the
    /// configured time and ends at `stop`; after either, this body reads no more (the caller
    /// keeps the bytes it already has, at most one chunk over the budget).
    async fn reserve(
        &mut self,
        step: u64,
        stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Result<()> {
        let budget = &self.store.budget;
        if let Some(reservation) = budget.try_reserve(step) {
            self.hold(reservation);
            return Ok(());
        }
        let mut want = step;
        if self.buf_permit.is_some() && !self.all_or_nothing {
            self.spill().await?;
            want = self.state.part_size;
        }
        let wait = self.store.config.budget_wait;
        match self.store.budget.reserve_within(want, wait, stop).await {
            Ok(reservation) => {
                self.hold(reservation);
                Ok(())
            }
            Err(NoRoom::TooLarge) => Err(Error::new(
                ErrorKind::Backend,
                "the part buffer budget is smaller than one part",
            )),
            Err(why) => {
                tracing::info!(
                    upload_id = %self.state.id,
                    reason = ?why,
                    "no room in the part buffer budget; keeping what arrived and ending the body"
                );
                self.gave_up = Some(why);
                Ok(())
            }
        }
    }

    fn hold(&mut self, reservation: Reservation) {
        match &mut self.buf_permit {
            Some(permit) => permit.absorb(reservation),
            None => self.buf_permit = Some(reservation),
        }
    }

    /// Store the bytes buffered for the current part in the tail and give their budget back;
    /// the part goes on after them (they are read back when it is full). Parts still on their
    /// way to object storage are committed first: the tail follows the last committed part.
    async fn spill(&mut self) -> Result<()> {
        self.commit_confirmed(true).await?;
        let own = self.append_buffer_to_tail().await?;
        tracing::debug!(
            upload_id = %self.state.id,
            bytes = own.len(),
            "part buffer budget spent: buffered bytes stored in the tail"
        );
        self.stored += own.len();
        self.buf = PartBuffer::after_prefix(self.stored, self.part_size());
        // The part is assembled from the stored tail again when full.
        self.abandon_ahead();
        // The tail goes back to being read when the part is full: its room is given back.
        self.tail_in_buf = self.stored == 0;
        self.buf_permit = None;
        Ok(())
    }

    /// Send the full buffer as the next part; wait for the oldest part if too many are out.
    /// `last` are its last bytes: a part streamed while it filled gets them now, after the
    /// fenced check of [`Self::take_part`].
    async fn send_part(&mut self, last: Bytes) -> Result<()> {
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
        let (body, as_buffered) = self.take_part().await?;
        self.part_open = false;
        // The streamed upload has the part's bytes only if the buffer was not corrected from
        // the stored tail.
        let ahead = self
            .ahead
            .take()
            .and_then(|ahead| ahead.completed(as_buffered, last));
        let permit = self.buf_permit.take();
        let objects = self.store.objects.clone();
        let key = self.state.object_key();
        let task = tokio::spawn(async move {
            let etag = store_part(&*objects, &key, &multipart_id, number, body, ahead).await;
            // The part's bytes are released with the permit once object storage has them.
            drop(permit);
            etag
        });
        self.inflight.push_back(AbortOnDropHandle::new(task));
        Ok(())
    }

    /// The full current part: the stored tail (read now, the one time it is needed, into the
    /// room left for it) and then this body's bytes. The tail comes in slices, so reading it
    /// holds at most one slice beyond the part's reserved budget. With it, whether the part is
    /// the buffer as it was filled (no byte read back from the stored tail).
    async fn take_part(&mut self) -> Result<(Bytes, bool)> {
        let mut part = std::mem::take(&mut self.buf);
        let mut read = 0;
        if self.tail_in_buf && self.stored > 0 {
            // The tail is in the buffer: only its last byte is read, fenced like the read it
            // replaces, so a holder that lost the lock since sends no part. A stored tail that
            // ends otherwise is read back whole.
            let last = self.stored - 1;
            let probe = self
                .store
                .state
                .read_tail_range(
                    &self.state.id,
                    last as u64..self.stored as u64,
                    Some(self.fence),
                )
                .await?;
            if probe.len() == 1 && part.byte_at(last) == Some(probe[0]) {
                read = self.stored;
            }
        }
        let as_buffered = read == self.stored;
        self.read_tail_into(&mut part, read).await?;
        self.stored = 0;
        Ok((part.freeze(), as_buffered))
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
        let bound = crate::part_wait(self.state.part_size, &self.store.config);
        let done = tokio::select! {
            biased;
            done = tokio::time::timeout(bound, &mut part) => done,
            // The part's upload is aborted with its handle; a new holder sends these bytes again.
            () = self.lock_lost.cancelled() => {
                return Err(Error::new(ErrorKind::LockLost, "the upload's lock was lost"));
            }
        };
        let Ok(done) = done else {
            tusk_metrics::metrics().part_wait_timeouts.inc();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "object storage did not store a part within {}s; the upload keeps the {} bytes stored before it (HEAD tells the offset): resume later",
                    bound.as_secs(),
                    self.state.offset()
                ),
            ));
        };
        let etag = match done {
            Ok(Ok(etag)) => etag,
            Ok(Err(err)) => {
                return Err(self
                    .store
                    .multipart_gone(&self.state, self.fence, err)
                    .await);
            }
            Err(err) => {
                return Err(
                    Error::new(ErrorKind::Backend, "part upload task failed").with_source(err)
                );
            }
        };
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

    /// Append this body's bytes of the current part to the stored tail (one fenced commit);
    /// they are returned, and the buffer is left empty.
    async fn append_buffer_to_tail(&mut self) -> Result<Bytes> {
        let own = std::mem::take(&mut self.buf).freeze_appended();
        self.append_to_tail(&own).await?;
        Ok(own)
    }

    /// Append `own` to the stored tail (one fenced commit), if there is any.
    async fn append_to_tail(&mut self, own: &Bytes) -> Result<()> {
        if !own.is_empty() {
            self.commit(Vec::new(), TailChange::Append(own.clone()))
                .await?;
            tusk_metrics::metrics()
                .tail_appended_bytes
                .inc_by(own.len() as u64);
        }
        Ok(())
    }

    /// The body ended and every part is committed: store the rest of the buffer as the tail, and
    /// finish the upload if that was its last byte.
    ///
    /// When the buffer holds the whole tail (the stored part of it too), it is kept: to finish
    /// the upload from, or, for this lock's next PATCH, in the node's tail copies.
    async fn commit_tail(mut self) -> Result<UploadState> {
        let whole_tail =
            self.part_open && self.tail_in_buf && self.gave_up.is_none() && self.lock_kept;
        let (own, kept) = if whole_tail {
            // A view: the buffer is kept, and written again only once the view is gone.
            let own = self.buf.view_appended();
            (own, Some(std::mem::take(&mut self.buf).into_written()))
        } else {
            (std::mem::take(&mut self.buf).freeze_appended(), None)
        };
        self.append_to_tail(&own).await?;
        let Writer {
            store,
            mut state,
            fence,
            stored,
            buf_permit,
            ahead,
            ahead_last,
            ..
        } = self;
        if !state.finished && state.length == Some(state.offset()) {
            // The tail's fenced commit passed: the last part's stream may be completed.
            let streamed = ahead
                .and_then(|ahead| ahead.completed(kept.is_some(), ahead_last.unwrap_or_default()));
            // Without the whole tail in memory, finalize reads it back. Either way the last
            // part is at most one part, covered until object storage has it by this body's
            // reservation, or, if the body brought none of its bytes, by one finalize takes.
            let tail = match kept {
                Some(buffer) => Some(buffer.freeze()),
                None => (stored == 0).then_some(own),
            };
            return store
                .finalize(state, fence, tail, buf_permit, streamed)
                .await;
        }
        // The view of the buffer goes first: a kept buffer takes more bytes later.
        drop(own);
        if let (Some(mut buffer), Some(reservation)) = (kept, buf_permit)
            && buffer.is_unshared()
            && buffer.written() as u64 == state.tail_len
            && state.tail_len > 0
            // Not a whole part's reservation for a few bytes (an all-or-nothing body's).
            && reservation.bytes() <= state.tail_len + RESERVE_STEP
        {
            let ahead = match ahead {
                Some(ahead) if ahead.fed() == buffer.written() => Some(ahead),
                Some(_) => None,
                None => store.start_ahead(&mut state, fence, &buffer).await,
            };
            let cached = CachedTail {
                fence,
                parts: state.part_count,
                buffer,
                reservation,
                ahead,
            };
            store.budget.tails().put(&state.id, cached);
        }
        Ok(state)
    }
}
